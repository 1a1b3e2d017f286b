import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A complete HTTP response read by `HTTPConnection`.
public struct HTTPResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: ByteBuffer

    /// The body as UTF-8 text.
    public var text: String { String(buffer: body) }
}

/// Why an `HTTPConnection` failed.
public struct HTTPConnectionError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// One keep-alive HTTP/1.1 client connection: requests go out as written, responses come back in order.
///
/// Small on purpose: it is what the consumer needs to poll the feed, and what tests need to speak HTTP
/// byte for byte (pipelining, malformed requests) over a real socket.
///
/// Use it from one task at a time.
public final class HTTPConnection {
    private let channel: any Channel
    private let decoder: DecoderBox
    private var iterator: AsyncThrowingStream<HTTPResponse, any Error>.AsyncIterator
    /// The `Host` header sent with requests built by `request(_:_:)`.
    public let hostHeader: String
    /// How long ``nextResponse()`` waits for a whole response before it closes the connection and throws (`nil`:
    /// as long as it takes). A server that accepts a request and never answers must not hold its client forever.
    public var responseTimeout: Duration?

    /// The largest response body accepted by default (a longer one fails the connection).
    public static let defaultMaxResponseBodySize = 64 << 20

    private init(channel: any Channel, decoder: DecoderBox, responses: AsyncThrowingStream<HTTPResponse, any Error>, hostHeader: String) {
        self.channel = channel
        self.decoder = decoder
        self.iterator = responses.makeAsyncIterator()
        self.hostHeader = hostHeader
    }

    /// Connects to `host:port`, over TLS (`https://`) when `tls` is given; then the TLS handshake is complete
    /// when this returns, or it throws `ClientTLSError`.
    ///
    /// A response body longer than `maxResponseBodySize` fails the connection (a hostile or broken server cannot
    /// make its client hold without bound).
    public static func connect(
        host: String, port: Int, tls: ClientTLS? = nil, maxResponseBodySize: Int = defaultMaxResponseBodySize,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> HTTPConnection {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: HTTPResponse.self)
        let decoder = DecoderBox()
        let handshake = PendingTLSHandshake()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try handshake.start(tls, on: channel.pipeline.syncOperations, host: host, port: port)
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(RawRequestResponseDecoder(inner: decoder.decoder))
                    )
                    try channel.pipeline.syncOperations.addHandler(
                        ResponseCollector(continuation: continuation, maxBodySize: maxResponseBodySize)
                    )
                }
            }
            .connect(host: host, port: port).get()
        try await handshake.completed(on: channel)
        return HTTPConnection(channel: channel, decoder: decoder, responses: stream, hostHeader: "\(host):\(port)")
    }

    /// Sends bytes exactly as given (several requests at once, or malformed ones), expecting that many
    /// responses (none of them to `HEAD`).
    public func send(raw bytes: String, expectingResponses count: Int = 1) async throws {
        try await send(raw: ByteBuffer(string: bytes), expectingResponses: count)
    }

    /// Sends bytes exactly as given, expecting that many responses (none of them to `HEAD`).
    public func send(raw bytes: ByteBuffer, expectingResponses count: Int = 1) async throws {
        let decoder = self.decoder
        let channel = self.channel
        try await channel.eventLoop.flatSubmit {
            // Tell the response decoder how many responses to expect before the bytes leave.
            for _ in 0..<count {
                decoder.decoder.write(data: .head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")))
            }
            return channel.writeAndFlush(bytes)
        }.get()
    }

    /// Sends one request and returns its response.
    public func request(
        _ method: HTTPMethod, _ target: String, headers: [(String, String)] = [], body: ByteBuffer? = nil
    ) async throws -> HTTPResponse {
        try await send(raw: Self.encode(method, target, host: hostHeader, headers: headers, body: body), expectingResponses: method == .HEAD ? 0 : 1)
        return try await nextResponse()
    }

    /// Builds the bytes of a request.
    public static func encode(
        _ method: HTTPMethod, _ target: String, host: String, headers: [(String, String)] = [], body: ByteBuffer? = nil
    ) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("\(method.rawValue) \(target) HTTP/1.1\r\n")
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { buffer.writeString("Host: \(host)\r\n") }
        for (name, value) in headers { buffer.writeString("\(name): \(value)\r\n") }
        if let body {
            buffer.writeString("Content-Length: \(body.readableBytes)\r\n\r\n")
            buffer.writeImmutableBuffer(body)
        } else {
            buffer.writeString("\r\n")
        }
        return buffer
    }

    /// The next response, in order; throws when the connection closed first, or when ``responseTimeout`` passed
    /// (the connection is then closed: what the server sends later can no longer be matched to a request).
    public func nextResponse() async throws -> HTTPResponse {
        let timedOut = TimeoutFlag()
        let timer = responseTimeout.map { timeout in
            let channel = self.channel
            return channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                timedOut.set()
                channel.close(promise: nil)
            }
        }
        defer { timer?.cancel() }
        var iterator = self.iterator
        let response = try await iterator.next()
        self.iterator = iterator
        if timedOut.isSet, let timeout = responseTimeout {
            throw HTTPConnectionError(description: "no response within \(timeout.components.seconds) s; the connection was closed")
        }
        guard let response else { throw HTTPConnectionError(description: "the server closed the connection before a response") }
        return response
    }

    /// Whether the server has closed the connection (waits up to `timeout` for it).
    public func isClosedByPeer(within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !channel.isActive { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return !channel.isActive
    }

    /// Closes the connection.
    public func close() async {
        try? await channel.close()
    }
}

@available(*, unavailable)
extension HTTPConnection: Sendable {}

/// Holds the connection's response decoder; touched only on the channel's event loop.
private final class DecoderBox: @unchecked Sendable {
    let decoder = HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)
}

/// NIO's `HTTPResponseDecoder` learns of each request by observing `HTTPClientRequestPart` writes; this
/// connection writes raw bytes instead and tells the decoder how many responses to expect (`send(raw:)`).
/// Responses to `HEAD` requests are not supported.
private struct RawRequestResponseDecoder: ByteToMessageDecoder {
    typealias InboundOut = HTTPClientResponsePart

    let inner: HTTPResponseDecoder

    func decoderAdded(context: ChannelHandlerContext) {
        inner.decoderAdded(context: context)
    }

    func decoderRemoved(context: ChannelHandlerContext) {
        inner.decoderRemoved(context: context)
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        try inner.decode(context: context, buffer: &buffer)
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try inner.decodeLast(context: context, buffer: &buffer, seenEOF: seenEOF)
    }
}

/// Set when a response timeout fired.
private final class TimeoutFlag: Sendable {
    private let fired = Atomic<Bool>(false)
    func set() { fired.store(true, ordering: .relaxed) }
    var isSet: Bool { fired.load(ordering: .relaxed) }
}

private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let continuation: AsyncThrowingStream<HTTPResponse, any Error>.Continuation
    private let maxBodySize: Int
    private var current: HTTPResponse?

    init(continuation: AsyncThrowingStream<HTTPResponse, any Error>.Continuation, maxBodySize: Int) {
        self.continuation = continuation
        self.maxBodySize = maxBodySize
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            current = HTTPResponse(status: head.status, headers: head.headers, body: context.channel.allocator.buffer(capacity: 0))
        case .body(var chunk):
            guard (current?.body.readableBytes ?? 0) + chunk.readableBytes <= maxBodySize else {
                current = nil
                continuation.finish(throwing: HTTPConnectionError(description: "the response body is larger than \(maxBodySize) bytes"))
                context.close(promise: nil)
                return
            }
            current?.body.writeBuffer(&chunk)
        case .end:
            if let response = current { continuation.yield(response) }
            current = nil
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        continuation.finish(throwing: error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        continuation.finish()
        context.fireChannelInactive()
    }
}

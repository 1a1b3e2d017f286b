import FluxCore
@testable import FluxGateway
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Synchronization
import Testing

/// The handler's timeouts on a connection whose clock moves only when the test moves it (`NIOAsyncTestingChannel`,
/// thread-safe: the router answers off the event loop): `408`, the idle close and the linger after a final answer
/// happen at their deadlines and not a moment before, and nothing is timed while a request is answered.
@Suite struct HTTPServerHandlerTests {
    /// The closes asked of the channel. A half-close is recorded and goes no further (the testing channel would
    /// close altogether), so the linger after it shows.
    final class CloseLog: Sendable {
        private let modes = Mutex<[CloseMode]>([])
        var all: [CloseMode] { modes.withLock { $0 } }
        func record(_ mode: CloseMode) { modes.withLock { $0.append(mode) } }
    }

    final class CloseRecorder: ChannelOutboundHandler {
        typealias OutboundIn = Any
        let log: CloseLog
        init(log: CloseLog) { self.log = log }

        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            log.record(mode)
            if mode == .output {
                promise?.succeed(())
            } else {
                context.close(mode: mode, promise: promise)
            }
        }
    }

    /// A connection through the gateway's HTTP handlers, connected at virtual time 0.
    struct Connection {
        let channel: NIOAsyncTestingChannel
        let closes = CloseLog()
        let store = InMemoryEventStore()

        init(requestTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60)) async throws {
            var logger = Logger(label: "test.handler")
            logger.logLevel = .critical
            var configuration = GatewayConfiguration(logger: logger)
            configuration.requestReadTimeout = requestTimeout
            configuration.idleTimeout = idleTimeout
            let router = GatewayRouter(store: store, configuration: configuration)
            let (channel, closes) = (NIOAsyncTestingChannel(), closes)
            try await channel.testingEventLoop.executeInContext {
                try channel.pipeline.syncOperations.addHandler(CloseRecorder(log: closes))
                try GatewayServer.addHTTPHandlers(to: channel.pipeline.syncOperations, router: router, connectionID: 1)
            }
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).get()
            self.channel = channel
        }

        func send(_ text: String) async throws {
            try await channel.writeInbound(ByteBuffer(string: text))
        }

        func advance(by duration: Duration) async {
            await channel.testingEventLoop.advanceTime(by: TimeAmount(duration))
        }

        /// What the handlers wrote since the last look.
        func written() async throws -> String {
            await channel.testingEventLoop.run()
            var text = ""
            while let data = try await channel.readOutbound(as: IOData.self) {
                if case .byteBuffer(let buffer) = data { text += String(buffer: buffer) }
            }
            return text
        }

        /// Waits for the answer the router works out off the event loop; returns all that was written.
        func answer() async throws -> String {
            var text = ""
            if case .byteBuffer(let buffer) = try await channel.waitForOutboundWrite(as: IOData.self) { text = String(buffer: buffer) }
            return try await text + written()
        }

        var isActive: Bool { channel.isActive }
    }

    func expect408(_ answer: String, _ comment: Comment, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(comment): \(answer.prefix(200))", sourceLocation: sourceLocation)
        #expect(answer.contains("Connection: close\r\n"), sourceLocation: sourceLocation)
        #expect(
            answer.hasSuffix(
                #"{"error":"request_timeout","message":"the request did not arrive within 10 s; send it whole, promptly"}"#),
            "\(answer)", sourceLocation: sourceLocation)
    }

    /// After the final answer: our side closes at once, the whole connection after the 2 s linger.
    func expectLingeringClose(_ connection: Connection, sourceLocation: SourceLocation = #_sourceLocation) async {
        #expect(connection.closes.all == [.output], "our side closes after the final answer", sourceLocation: sourceLocation)
        await connection.advance(by: .milliseconds(1999))
        #expect(connection.isActive, "the client has 2 s to read the answer and close", sourceLocation: sourceLocation)
        await connection.advance(by: .milliseconds(1))
        #expect(connection.closes.all == [.output, .all], sourceLocation: sourceLocation)
        #expect(!connection.isActive, sourceLocation: sourceLocation)
    }

    @Test func aSilentConnectionGets408AtTheRequestTimeout() async throws {
        let connection = try await Connection()
        await connection.advance(by: .milliseconds(9999))
        #expect(try await connection.written() == "")
        #expect(connection.closes.all.isEmpty)
        await connection.advance(by: .milliseconds(1))
        expect408(try await connection.written(), "a connection that says nothing")
        await expectLingeringClose(connection)
    }

    @Test func aHeadThatTricklesInGets408TenSecondsAfterTheConnectionOpened() async throws {
        let connection = try await Connection()
        try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n")
        await connection.advance(by: .seconds(5))
        try await connection.send("X-More: y\r\n")  // bytes of an unfinished head do not buy time
        await connection.advance(by: .milliseconds(4999))
        #expect(try await connection.written() == "")
        await connection.advance(by: .milliseconds(1))
        expect408(try await connection.written(), "a head that trickles in")
        await expectLingeringClose(connection)
    }

    @Test func aBodyThatStopsComingGets408TenSecondsAfterItsLastPiece() async throws {
        let connection = try await Connection()
        try await connection.send(
            "POST /streams/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"aggr")
        await connection.advance(by: .seconds(9))
        try await connection.send("egate")  // each piece of the body restarts the clock
        await connection.advance(by: .milliseconds(9999))
        #expect(try await connection.written() == "")
        await connection.advance(by: .milliseconds(1))
        expect408(try await connection.written(), "a body that stops coming")
        #expect(try await connection.store.head() == .start, "nothing was appended")
        await expectLingeringClose(connection)
    }

    @Test func anIdleKeptAliveConnectionClosesWithoutAnAnswer() async throws {
        let connection = try await Connection()
        try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try await connection.answer().hasPrefix("HTTP/1.1 200 OK\r\n"))
        await connection.advance(by: .milliseconds(59_999))
        #expect(connection.isActive)
        // The next request gets the request timeout from its head, and its answer starts the idle timer anew.
        try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try await connection.answer().hasPrefix("HTTP/1.1 200 OK\r\n"))
        await connection.advance(by: .milliseconds(59_999))
        #expect(connection.isActive && connection.closes.all.isEmpty)
        await connection.advance(by: .milliseconds(1))
        #expect(connection.closes.all == [.all], "closed at once, without lingering")
        #expect(!connection.isActive)
        #expect(try await connection.written() == "", "without an answer")
    }

    @Test func aLongPollOutlastsBothTimeouts() async throws {
        let connection = try await Connection()
        try await connection.send("GET /events?after=0&wait=60 HTTP/1.1\r\nHost: x\r\n\r\n")
        await connection.advance(by: .seconds(3600))
        #expect(try await connection.written() == "")
        #expect(connection.isActive && connection.closes.all.isEmpty, "neither timeout cuts a request being answered")
        try await append(connection.store, "late")
        let answer = try await connection.answer()
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(answer.contains(#""aggregate_id":"late""#), "\(answer)")
        await connection.advance(by: .seconds(60))
        #expect(connection.closes.all == [.all], "then idle: closed 60 s after the answer")
    }

    @Test func anAnswerThatClosesTheConnectionLingers() async throws {
        let connection = try await Connection()
        try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let answer = try await connection.answer()
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.contains("Connection: close\r\n"), "\(answer)")
        await expectLingeringClose(connection)
    }
}

import Foundation
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// TLS for the client connections (`https://`, `wss://`): the gateway's certificate is verified against the
/// system trust store, or against the CAs of a PEM file, and must name the host connected to.
///
/// Make it once and reuse it: it holds the `NIOSSLContext` (with the trust store loaded) that every
/// connection is made from.
public struct ClientTLS: Sendable {
    /// The client-side context every connection's `NIOSSLClientHandler` is made from.
    public let context: NIOSSLContext
    /// The PEM file of trusted CAs, when it replaces the system trust store (named in errors).
    public let caFile: String?

    /// Verifies the server against the system trust store, or only against the CA certificates in `caFile`
    /// (PEM) when given.
    ///
    /// - Throws: `ClientTLSError` with code `.unusableCAFile` when `caFile` cannot be read or holds no certificate.
    public init(caFile: String? = nil) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.applicationProtocols = ["http/1.1"]
        if let caFile {
            configuration.trustRoots = .certificates(try Self.loadCertificates(caFile))
        }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw ClientTLSError(code: .handshakeFailed, message: "cannot set up TLS (the trust store?): \(error)")
        }
        self.init(context: context, caFile: caFile)
    }

    /// Uses a context of your own (client certificates, pinned roots, …).
    public init(context: NIOSSLContext, caFile: String? = nil) {
        self.context = context
        self.caFile = caFile
    }

    private static func loadCertificates(_ path: String) throws -> [NIOSSLCertificate] {
        let bytes: Data
        do {
            bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = (error as? CocoaError)?.code == .fileReadNoSuchFile ? "no such file" : error.localizedDescription
            throw ClientTLSError(code: .unusableCAFile, message: "cannot read --ca-file \(path): \(reason)")
        }
        let certificates = (try? NIOSSLCertificate.fromPEMBytes(Array(bytes))) ?? []
        guard !certificates.isEmpty else {
            throw ClientTLSError(
                code: .unusableCAFile,
                message: "--ca-file \(path) holds no PEM certificate (-----BEGIN CERTIFICATE-----); pass the CA certificate that issued the gateway's certificate"
            )
        }
        return certificates
    }

    /// Adds TLS in front of `pipeline`: the client handler, with SNI set to `host` unless it is an IP literal
    /// (RFC 6066 §3), then a watcher that turns handshake failures into `ClientTLSError`. Returns the handshake's
    /// outcome.
    func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, host: String, port: Int) throws -> EventLoopFuture<Void> {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let isIPLiteral = (try? SocketAddress(ipAddress: bare, port: 0)) != nil
        try pipeline.addHandler(NIOSSLClientHandler(context: context, serverHostname: isIPLiteral ? nil : bare))
        let watcher = TLSHandshakeWatcher(endpoint: "\(host):\(port)", caFile: caFile)
        try pipeline.addHandler(watcher)
        return watcher.completed
    }
}

/// The TLS handshake of a connection being set up, handed from its channel initializer to the task connecting.
final class PendingTLSHandshake: Sendable {
    private let outcome = Mutex<EventLoopFuture<Void>?>(nil)

    /// Adds TLS to `pipeline` when `tls` is given, and remembers the handshake.
    func start(_ tls: ClientTLS?, on pipeline: ChannelPipeline.SynchronousOperations, host: String, port: Int) throws {
        guard let tls else { return }
        let future = try tls.addHandlers(to: pipeline, host: host, port: port)
        outcome.withLock { $0 = future }
    }

    /// Waits for the handshake (if TLS was started); on failure closes `channel` and throws `ClientTLSError`.
    func completed(on channel: any Channel) async throws {
        guard let future = outcome.withLock({ $0 }) else { return }
        do {
            try await future.get()
        } catch {
            try? await channel.close()
            throw error
        }
    }
}

/// Why a TLS connection to the gateway failed: whose certificate, what is wrong, and what to do.
public struct ClientTLSError: Error, Sendable, CustomStringConvertible {
    /// What went wrong (an open set).
    public struct Code: Hashable, Sendable {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The server's certificate is not signed by a trusted CA (pass the CA with `--ca-file`).
        public static let untrustedCertificate = Code("untrusted certificate")
        /// The server's certificate does not name the host connected to.
        public static let hostnameMismatch = Code("host name mismatch")
        /// The server does not speak TLS (a plain `http://` port).
        public static let notTLS = Code("not TLS")
        /// The server closed the connection during the handshake (it may be stopping; worth a retry).
        public static let closedDuringHandshake = Code("closed during handshake")
        /// The server did not complete the handshake in time (worth a retry).
        public static let handshakeTimedOut = Code("handshake timed out")
        /// Any other handshake failure.
        public static let handshakeFailed = Code("handshake failed")
        /// The CA file could not be read or holds no certificate.
        public static let unusableCAFile = Code("unusable CA file")
    }

    public var code: Code
    public var message: String
    public var description: String { message }

    /// Whether trying again can help (only when the server closed the connection mid-handshake or did not finish
    /// it in time): a certificate that is not trusted today is not trusted in a second either.
    public var isRetryable: Bool { code == .closedDuringHandshake || code == .handshakeTimedOut }
}

/// Sits right after `NIOSSLClientHandler`: completes `completed` when the handshake is done, and replaces a
/// handshake failure with a `ClientTLSError` that says what to do (for this handler's future and for the
/// handlers after it). A handshake that takes longer than `timeout` fails and closes the connection.
final class TLSHandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let endpoint: String
    private let caFile: String?
    private let timeout: TimeAmount
    private var promise: EventLoopPromise<Void>?
    private var timer: Scheduled<Void>?
    private var isDone = false

    init(endpoint: String, caFile: String?, timeout: TimeAmount = .seconds(10)) {
        self.endpoint = endpoint
        self.caFile = caFile
        self.timeout = timeout
    }

    /// Succeeds when the handshake completed, fails with `ClientTLSError` when it did not.
    var completed: EventLoopFuture<Void> { promise!.futureResult }

    func handlerAdded(context: ChannelHandlerContext) {
        promise = context.eventLoop.makePromise()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(.failure(ClientTLSError(code: .closedDuringHandshake, message: "the TLS handshake with \(endpoint) was abandoned")))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { finish(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !isDone else {
            context.fireErrorCaught(error)
            return
        }
        let failure = translate(error)
        finish(.failure(failure))
        context.fireErrorCaught(failure)
    }

    func channelActive(context: ChannelHandlerContext) {
        let timeout = self.timeout
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let message = "\(handler.value.endpoint) did not complete the TLS handshake within \(timeout); is it serving TLS?"
            handler.value.finish(.failure(ClientTLSError(code: .handshakeTimedOut, message: message)))
            boundContext.value.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(ClientTLSError(code: .closedDuringHandshake, message: "\(endpoint) closed the connection during the TLS handshake; is it serving TLS?")))
        context.fireChannelInactive()
    }

    private func finish(_ result: Result<Void, any Error>) {
        guard !isDone else { return }
        isDone = true
        timer?.cancel()
        timer = nil
        promise?.completeWith(result)
    }

    /// A handshake failure as a `ClientTLSError` that says what to do.
    private func translate(_ error: any Error) -> ClientTLSError {
        if let error = error as? ClientTLSError { return error }
        let detail = "\(error)"
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return ClientTLSError(
                code: .hostnameMismatch,
                message: "the certificate of \(endpoint) is not valid for that host name (\(extra)); connect with a name the certificate lists"
            )
        }
        if detail.contains("CERTIFICATE_VERIFY_FAILED") {
            let trusted = caFile.map { "the CA certificates in \($0)" } ?? "the system trust store"
            return ClientTLSError(
                code: .untrustedCertificate,
                message: "the certificate of \(endpoint) is not trusted: it is not signed by a CA in \(trusted); pass the CA that issued it with --ca-file PEM"
            )
        }
        if detail.contains("WRONG_VERSION_NUMBER") || detail.contains("HTTP_REQUEST") || detail.contains("PACKET_LENGTH_TOO_LONG") {
            return ClientTLSError(code: .notTLS, message: "\(endpoint) does not speak TLS (a plain HTTP port?); use http:// or ws:// for it")
        }
        if case .handshakeFailed(.sslError(let stack)) = error as? NIOSSLError, stack.contains(.eofDuringHandshake) {
            return ClientTLSError(code: .closedDuringHandshake, message: "\(endpoint) closed the connection during the TLS handshake; is it serving TLS?")
        }
        return ClientTLSError(code: .handshakeFailed, message: "the TLS handshake with \(endpoint) failed: \(detail)")
    }
}

import Foundation
import Logging
import NIOCore
import NIOSSL

/// TLS for the gateway's listener: with it, the gateway serves `https://` and `wss://` (the feed, the append
/// API, the push channel, SSE and the web UI, unchanged above TLS).
///
/// Build it from PEM files (`init(certificateChainFile:privateKeyFile:)`, what `fluxgate serve --tls-cert
/// --tls-key` does) or from a `NIOSSLContext` made with a `TLSConfiguration` of your own.
public struct GatewayTLS: Sendable {
    /// The server-side context every connection's `NIOSSLServerHandler` is made from.
    public let context: NIOSSLContext

    /// Serves with a context of your own (client certificates, cipher choices, …).
    public init(context: NIOSSLContext) {
        self.context = context
    }

    /// Loads a certificate chain (the server's certificate first, then intermediates) and its private key from
    /// PEM files; HTTP/1.1 is announced with ALPN.
    ///
    /// - Throws: `GatewayTLSError` saying which file could not be used and why.
    public init(certificateChainFile: String, privateKeyFile: String) throws {
        let chainBytes = try Self.read(certificateChainFile, option: "--tls-cert")
        let chain = (try? NIOSSLCertificate.fromPEMBytes(chainBytes)) ?? []
        guard !chain.isEmpty else {
            throw GatewayTLSError("--tls-cert \(certificateChainFile) holds no PEM certificate (-----BEGIN CERTIFICATE-----); pass the server's certificate in PEM, followed by its intermediates")
        }
        let keyBytes = try Self.read(privateKeyFile, option: "--tls-key")
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw GatewayTLSError("--tls-key \(privateKeyFile) is not an unencrypted PEM private key (\(error)); pass the key of the certificate in PEM, without a passphrase")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.applicationProtocols = ["http/1.1"]
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch NIOSSLError.failedToLoadPrivateKey {
            // BoringSSL checks the key against the chain's first certificate when it is loaded.
            throw GatewayTLSError("the key in --tls-key \(privateKeyFile) does not match the certificate in --tls-cert \(certificateChainFile); pass the key the certificate was issued for")
        } catch {
            throw GatewayTLSError("cannot use --tls-cert \(certificateChainFile) with --tls-key \(privateKeyFile): \(error)")
        }
    }

    private static func read(_ path: String, option: String) throws -> [UInt8] {
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            let reason = (error as? CocoaError)?.code == .fileReadNoSuchFile ? "no such file" : "\(error.localizedDescription)"
            throw GatewayTLSError("cannot read \(option) \(path): \(reason)")
        }
    }

    /// The TLS handlers that go first in a connection's pipeline.
    func makeHandlers(logger: Logger) -> (NIOSSLServerHandler, TLSFailureHandler) {
        (NIOSSLServerHandler(context: context), TLSFailureHandler(logger: logger))
    }
}

/// Why `GatewayTLS` could not be set up: which file, what is wrong with it, and what to pass instead.
public struct GatewayTLSError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Sits right after `NIOSSLServerHandler`: a client that fails the handshake (plain HTTP on the TLS port, a
/// certificate it does not trust) or drops TLS uncleanly is logged at debug and closed; nothing above it sees
/// TLS errors, and other connections are not affected.
final class TLSFailureHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is NIOSSLError || error is BoringSSLError else {
            context.fireErrorCaught(error)
            return
        }
        logger.debug(
            "TLS failed; closing the connection",
            metadata: ["address": "\(context.channel.remoteAddress?.description ?? "unknown")", "error": "\(error)"]
        )
        context.close(promise: nil)
    }
}

import ArgumentParser
import FluxWebSocket
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// `fluxgate echo-client`: the client-role conformance testee of our WebSocket layer (PROTOCOL.md
/// "Conformance testees"): connects, echoes every text and binary message, answers the server's close, and
/// exits 0 after a clean closing handshake.
struct EchoClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-client",
        abstract: "A WebSocket echo client on our RFC 6455 / RFC 7692 layer, for conformance tests and peers.",
        discussion: """
            Exits 0 after a clean closing handshake (close code 1000 or 1001); otherwise non-zero with the reason
            on stderr. Example: fluxgate echo-client --url ws://127.0.0.1:9001/ --deflate
            """,
        // A conformance testee (RFC 6455 test suites and peers), not a user command: left out of `fluxgate --help`.
        shouldDisplay: false
    )

    @Option(help: "The server to connect to: ws://HOST:PORT/PATH.")
    var url: String

    @Flag(help: "Offer permessage-deflate.")
    var deflate = false

    @Option(help: "The largest message accepted, in bytes (larger ones close with 1009).")
    var maxMessageSize = 16 << 20

    private func endpoint() throws -> (host: String, port: Int, target: String) {
        guard let parsed = URL(string: url), parsed.scheme == "ws", let host = parsed.host else {
            throw ValidationError("--url must look like ws://127.0.0.1:9001/path (wss:// is not supported yet), got \(url)")
        }
        var target = parsed.path.isEmpty ? "/" : parsed.path
        if let query = parsed.query { target += "?" + query }
        return (host, parsed.port ?? 80, target)
    }

    func validate() throws {
        _ = try endpoint()
        guard maxMessageSize > 0 else { throw ValidationError("--max-message-size must be positive") }
    }

    func run() async throws {
        let (host, port, target) = try endpoint()
        let group = MultiThreadedEventLoopGroup.singleton
        let upgraded = group.next().makePromise(of: WebSocketConnectionHandlerBox.self)
        let upgrader = WebSocketClientUpgrader(
            handshake: WebSocketClientHandshake(deflate: deflate ? WebSocketDeflateOptions() : nil),
            configuration: WebSocketConnectionConfiguration(role: .client, maxMessageSize: maxMessageSize, pingInterval: nil),
            maxFrameSize: maxMessageSize,
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                    let handler = try channel.pipeline.syncOperations.handler(type: WebSocketConnectionHandler.self)
                    upgraded.succeed(WebSocketConnectionHandlerBox(handler: handler))
                }
            }
        )
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(10))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // Keeps a first frame that arrives in the same read as the 101 response.
                        try channel.pipeline.syncOperations.addWebSocketClientHandlers(upgrader: upgrader)
                        // A refused upgrade (any answer but a valid 101) surfaces as an error: end the connection.
                        try channel.pipeline.syncOperations.addHandler(CloseOnError())
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            // Complete the promise: a promise dropped uncompleted is a fatal error in NIO debug builds.
            upgraded.fail(error)
            FileHandle.standardError.write(Data("echo-client: cannot connect to \(host):\(port): \(error); is the server running?\n".utf8))
            throw ExitCode.failure
        }
        channel.closeFuture.whenComplete { _ in
            upgraded.fail(EchoClientError("the server refused the WebSocket upgrade or closed the connection before it"))
        }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: ["Host": "\(host):\(port)"])
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        let box: WebSocketConnectionHandlerBox
        do {
            box = try await upgraded.futureResult.get()
        } catch {
            FileHandle.standardError.write(Data("echo-client: \(error)\n".utf8))
            throw ExitCode.failure
        }
        try? await channel.closeFuture.get()
        let code = try await channel.eventLoop.submit { box.handler.closeCode }.get()
        guard let code, code == .normalClosure || code == .goingAway else {
            FileHandle.standardError.write(Data("echo-client: the connection ended without a clean closing handshake (close code \(code.map { String($0.rawValue) } ?? "none"))\n".utf8))
            throw ExitCode.failure
        }
    }
}

/// Carries the connection handler out of the event loop; read only on the channel's event loop.
private struct WebSocketConnectionHandlerBox: @unchecked Sendable {
    let handler: WebSocketConnectionHandler
}

private final class CloseOnError: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

private struct EchoClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

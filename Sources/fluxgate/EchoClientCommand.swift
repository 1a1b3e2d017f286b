import ArgumentParser
import FluxWebSocket
import Foundation

/// `fluxgate echo-client`: the client-role conformance testee of our WebSocket layer (README "Wire protocol" →
/// "Conformance testees"): connects, echoes every text and binary message, answers the server's close, and
/// exits 0 after a completed closing handshake, printing its close code.
struct EchoClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-client",
        abstract: "A WebSocket echo client on our RFC 6455 / RFC 7692 layer, for conformance tests and peers.",
        discussion: """
            Exits 0 after a completed closing handshake, whatever its close code (RFC 6455 §7.1.4: the connection
            closed cleanly), and prints the code ("close code 1002"; 1005 for a Close without one). Exits 1, with the
            reason on stderr, when there was no closing handshake: it could not connect, the upgrade was refused,
            TCP closed without Close frames both ways, or the client failed the connection (a protocol error).
            Example: fluxgate echo-client --url ws://127.0.0.1:9001/ --deflate
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

    @Option(help: "How long to wait for the server's answer to the opening handshake, in seconds (1–3600).")
    var handshakeTimeout = 10

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
        guard (1...3600).contains(handshakeTimeout) else {
            throw ValidationError("--handshake-timeout must be 1 to 3600 seconds, got \(handshakeTimeout)")
        }
    }

    func run() async throws {
        let (host, port, target) = try endpoint()
        let socket: WebSocketChannel
        do {
            // The same client as the consumer's push channel: WebSocketClientUpgrader, then WebSocketConnectionHandler.
            socket = try await WebSocketClient.connect(
                to: host, port: port, path: target,
                handshake: WebSocketClientHandshake(deflate: deflate ? WebSocketDeflateOptions() : nil),
                configuration: WebSocketConnectionConfiguration(role: .client, maxMessageSize: maxMessageSize, pingInterval: nil),
                handshakeTimeout: .seconds(handshakeTimeout),
                // Echoes on the event loop, in order with the frames behind each message (a Close right after it);
                // nothing reaches the async sequence.
                messageHandlers: { pipeline in try pipeline.addHandler(EchoHandler()) }
            )
        } catch let error as WebSocketClientError {
            FileHandle.standardError.write(Data("echo-client: \(error)\n".utf8))
            throw ExitCode.failure
        } catch {
            FileHandle.standardError.write(Data("echo-client: cannot connect to \(host):\(port): \(error); is the server running?\n".utf8))
            throw ExitCode.failure
        }
        try? await socket.executeThenClose { inbound, _ in
            // Nothing reaches the sequence (the echo takes every message): it ends when TCP closes, or with the error
            // that failed the connection, whose closing the connection handler then finishes (the server closes first).
            var messages = inbound.makeAsyncIterator()
            while (try? await messages.next()) != nil {}
            try await socket.asyncChannel.channel.closeFuture.get()
        }
        guard await socket.receivedClose() != nil, let code = await socket.closeCode() else {
            let ended = await socket.closeCode().map { "close code \($0.rawValue)" } ?? "no close code"
            FileHandle.standardError.write(Data("echo-client: the connection ended without a closing handshake (\(ended))\n".utf8))
            throw ExitCode.failure
        }
        print("close code \(code.rawValue)")
    }
}

import FluxTesting
import Foundation
import Testing

/// `fluxgate echo-client`'s exit status: 0 after every completed closing handshake, whatever the server's close code,
/// printing it (RFC 6455 §7.1.4 calls each of them clean); 1 when the connection ended without one.
@Suite struct EchoClientExitStatusTests {
    /// Accepts `echo-client` on a scripted server and answers its handshake.
    private static func start() async throws -> (ChildProcess, RawTCPServer, ConformancePeer) {
        let server = try await RawTCPServer.listen()
        let client = try ChildProcess(try ChildProcess.fluxgateExecutable(), ["echo-client", "--url", "ws://127.0.0.1:\(server.port)/"])
        guard let connection = await server.accept(timeout: .seconds(30)) else {
            throw ConformanceProblem(description: "echo-client did not connect; stderr: \(client.errorOutput)")
        }
        let peer = ConformancePeer(connection: connection, side: .server, timeout: .seconds(60))
        _ = try await peer.serverHandshake { _ in nil }
        return (client, server, peer)
    }

    /// The server's Close: a code that is not 1000/1001 (1002, 3000, 4999), one with a reason, and an empty one
    /// (the connection's close code is then 1005, RFC 6455 §7.1.5).
    @Test(arguments: [
        (ScriptFrame.close(code: 1002), 1002), (.close(code: 3000), 3000), (.close(code: 4999, reason: Array("bye".utf8)), 4999),
        (.close(rawPayload: []), 1005),
    ])
    func aCompletedClosingHandshakeExitsZeroAndPrintsTheCode(close: ScriptFrame, printed: Int) async throws {
        let (client, server, peer) = try await Self.start()
        await peer.send([.text("before the close"), close])
        await peer.readUntilClose()
        await peer.connection.shutdownOutput()
        await peer.readToEnd()
        await peer.finish()
        await server.close()
        #expect(peer.transcript.beforeClose == [.text("before the close")])
        #expect(await client.waitForExit(timeout: .seconds(30)) == 0, "stderr: \(client.errorOutput)")
        #expect(client.outputLines == ["close code \(printed)"])
    }

    /// TCP closes with no Close frame: no closing handshake, exit 1 with the reason.
    @Test func aDroppedConnectionExitsOne() async throws {
        let (client, server, peer) = try await Self.start()
        await peer.finish()
        await server.close()
        #expect(await client.waitForExit(timeout: .seconds(30)) == 1)
        #expect(client.errorOutput.contains("without a closing handshake"), "\(client.errorOutput)")
        #expect(client.outputLines.isEmpty)
    }
}

import FluxTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `fluxgate echo-server` (our server role) against an independent implementation: the Python `websockets`
/// package as the client, with and without permessage-deflate.
@Suite struct EchoServerPeerTests {
    static let peer = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/websockets_echo_client.py")

    @Test(arguments: [false, true])
    func pythonWebsocketsClientGetsEveryMessageBack(deflate: Bool) async throws {
        try await withFluxgate(["echo-server", "--port", "0"]) { server in
            let line = try await server.waitForLine(containing: "listening")
            let address = try #require(line.firstMatch(of: /ws:\/\/127\.0\.0\.1:(\d+)/))
            let arguments = [Self.peer.path, "ws://127.0.0.1:\(address.1)"] + (deflate ? ["--deflate"] : [])
            try await withChildProcess(TestPython.executable, arguments) { client in
                #expect(await client.waitForExit(timeout: .seconds(120)) == 0, "\(client.outputLines) \(client.errorOutput.suffix(1000))")
                #expect(client.outputLines.last == "ok")
            }
        }
    }

    @Test func plainHTTPAndBadHandshakesGetAClearError() async throws {
        try await withFluxgate(["echo-server", "--port", "0"]) { server in
            let line = try await server.waitForLine(containing: "listening")
            let match = try #require(line.firstMatch(of: /ws:\/\/127\.0\.0\.1:(\d+)/))
            let port = try #require(Int(match.1))
            let plain = try await RawTCPConnection.connect(port: port)
            try await plain.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let answer = try await plain.readUntil("\r\n\r\n")
            #expect(answer?.hasPrefix("HTTP/1.1 400") == true)
            await plain.close()
            let oldVersion = try await RawTCPConnection.connect(port: port)
            try await oldVersion.send("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
            let refused = try await oldVersion.readUntil("\r\n\r\n")
            #expect(refused?.hasPrefix("HTTP/1.1 426") == true, "\(refused ?? "nothing")")
            #expect(refused?.contains("13") == true)
            await oldVersion.close()
        }
    }
}

/// `fluxgate echo-client` (our client role) against an independent server: the Python `websockets` package.
@Suite struct EchoClientPeerTests {
    static let peer = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/websockets_echo_server.py")

    @Test(arguments: [false, true])
    func echoesEverythingAPythonWebsocketsServerSendsAndClosesCleanly(deflate: Bool) async throws {
        try await withChildProcess(TestPython.executable, [Self.peer.path]) { server in
            let line = try await server.waitForLine(containing: "listening")
            let port = try #require(line.split(separator: " ").last.map(String.init))
            try await withFluxgate(["echo-client", "--url", "ws://127.0.0.1:\(port)/"] + (deflate ? ["--deflate"] : [])) { client in
                #expect(await client.waitForExit(timeout: .seconds(120)) == 0, "\(client.errorOutput)")
            }
            #expect(await server.waitForExit(timeout: .seconds(30)) == 0, "\(server.outputLines) \(server.errorOutput.suffix(800))")
            #expect(server.outputLines.last == "ok")
        }
    }

    @Test func aRefusedUpgradeIsANonZeroExitWithAReason() async throws {
        // A plain HTTP server answers the handshake with 200, not 101.
        try await withChildProcess(TestPython.executable, ["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"]) { plain in
            let line = try await plain.waitForLine(containing: "Serving HTTP")
            let match = try #require(line.firstMatch(of: /port (\d+)/))
            try await withFluxgate(["echo-client", "--url", "ws://127.0.0.1:\(match.1)/"]) { client in
                #expect(await client.waitForExit(timeout: .seconds(30)) != 0)
                #expect(client.errorOutput.contains("refused"))
            }
        }
    }
}

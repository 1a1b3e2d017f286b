import FluxConsumer
import FluxTesting
import NIOCore
import Testing

/// What a client's HTTP connection holds against a server that misbehaves: bounded time and bounded memory.
@Suite(.timeLimit(.minutes(1))) struct HTTPConnectionTests {
    @Test func aServerThatNeverAnswersTimesOut() async throws {
        let server = try await RawTCPServer.listen()
        let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: server.port)
        connection.responseTimeout = .seconds(1)
        let peer = await server.accept(timeout: .seconds(10))  // accepted, never answered
        let started = ContinuousClock.now
        await #expect {
            _ = try await connection.request(.GET, "/events?offset=0")
        } throws: { error in
            String(describing: error).contains("no response within 1 s")
        }
        #expect(ContinuousClock.now - started < .seconds(20))
        await connection.close()
        await peer?.close()
        await server.close()
    }

    @Test func aBodyOverTheLimitFailsTheConnection() async throws {
        let server = try await RawTCPServer.listen()
        let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: server.port, maxResponseBodySize: 1000)
        async let answer: Void = {
            guard let peer = await server.accept(timeout: .seconds(10)) else { return }
            try? await peer.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in 0..<10 { try? await peer.send("200\r\n" + String(repeating: "x", count: 512) + "\r\n") }
            await peer.close()
        }()
        await #expect {
            _ = try await connection.request(.GET, "/events?offset=0")
        } throws: { error in
            String(describing: error).contains("larger than 1000 bytes")
        }
        await answer
        await connection.close()
        await server.close()
    }
}

import FluxCore
import FluxTesting
import Foundation
import Testing

/// Connection limits: a connection over a limit gets `503` with `Retry-After` and a JSON body at once, without
/// waiting for a request, then is closed;
/// the gateway keeps serving the others and admits new connections once some close.
@Suite struct ConnectionLimitTests {
    /// Sends `GET /health` on a new connection; returns the status line and the JSON body.
    func health(_ gateway: TestGateway) async throws -> (head: String, body: [String: Any]) {
        let connection = try await RawTCPConnection.connect(port: gateway.port)
        // A refused connection is answered and closed at once, maybe before the request goes out.
        try? await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try #require(try await connection.readUntil("\r\n\r\n"))
        let match = try #require(head.firstMatch(of: /(?i)content-length: (\d+)/))
        let length = try #require(Int(match.1))
        while connection.withBuffered({ $0.readableBytes }) < length {
            guard try await connection.readMore() else { break }
        }
        let text = connection.withBuffered { $0.readString(length: length) } ?? ""
        await connection.close()
        return (head, (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:])
    }

    /// Waits until a fresh connection is admitted again (closing is noticed asynchronously by the server).
    func eventuallyAdmitted(_ gateway: TestGateway) async throws -> Bool {
        for _ in 0..<100 {
            if try await health(gateway).head.hasPrefix("HTTP/1.1 200") { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func overTheTotalLimitAConnectionGets503AndTheOthersKeepWorking() async throws {
        try await withTestGateway(await TestGateway.start(maxConnections: 2)) { gateway in
            let first = try await RawTCPConnection.connect(port: gateway.port)
            let second = try await RawTCPConnection.connect(port: gateway.port)
            try await first.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await first.readUntil("\r\n\r\n")?.hasPrefix("HTTP/1.1 200") == true)
            let refused = try await health(gateway)
            #expect(refused.head.hasPrefix("HTTP/1.1 503"), "\(refused.head)")
            #expect(refused.head.lowercased().contains("retry-after: 1"))
            #expect(refused.body["error"] as? String == "overloaded")
            #expect((refused.body["message"] as? String)?.contains("maximum of 2 open connections") == true)
            // The admitted connections are unaffected.
            try await second.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await second.readUntil("\r\n\r\n")?.hasPrefix("HTTP/1.1 200") == true)
            await first.close()
            #expect(try await eventuallyAdmitted(gateway), "a slot freed by a close is given to the next connection")
            await second.close()
        }
    }

    @Test func overThePerAddressLimitAConnectionGets503() async throws {
        try await withTestGateway(await TestGateway.start(maxConnectionsPerAddress: 1)) { gateway in
            let held = try await RawTCPConnection.connect(port: gateway.port)
            try await held.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await held.readUntil("\r\n\r\n")?.hasPrefix("HTTP/1.1 200") == true)
            let refused = try await health(gateway)
            #expect(refused.head.hasPrefix("HTTP/1.1 503"))
            #expect((refused.body["message"] as? String)?.contains("127.0.0.1 has its maximum of 1 open connections") == true)
            await held.close()
            #expect(try await eventuallyAdmitted(gateway))
        }
    }
}

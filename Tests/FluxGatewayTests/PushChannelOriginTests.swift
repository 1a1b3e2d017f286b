import FluxCore
import FluxTesting
import Foundation
import Testing

/// Cross-site WebSocket hijacking: a browser page from another origin may not open the push channel unless the
/// operator allows that origin; the gateway's own pages and non-browser clients (no Origin) always may.
@Suite struct PushChannelOriginTests {
    /// Sends a push-channel handshake with `headers` added; returns the response head.
    func handshake(_ gateway: TestGateway, host: String? = nil, origin: String?) async throws -> String {
        let connection = try await RawTCPConnection.connect(port: gateway.port)
        var request = "GET /events/subscribe?after=0 HTTP/1.1\r\nHost: \(host ?? "127.0.0.1:\(gateway.port)")\r\n"
        request += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        if let origin { request += "Origin: \(origin)\r\n" }
        try await connection.send(request + "\r\n")
        let head = try await connection.readUntil("\r\n\r\n")
        await connection.close()
        return try #require(head)
    }

    @Test func anotherOriginIsRefusedWithAClearError() async throws {
        try await withTestGateway { gateway in
            let connection = try await RawTCPConnection.connect(port: gateway.port)
            try await connection.send(
                "GET /events/subscribe?after=0 HTTP/1.1\r\nHost: 127.0.0.1:\(gateway.port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n\r\n"
            )
            let head = try #require(try await connection.readUntil("\r\n\r\n"))
            #expect(head.hasPrefix("HTTP/1.1 403"), "\(head)")
            let match = try #require(head.firstMatch(of: /(?i)content-length: (\d+)/))
            let length = try #require(Int(match.1))
            while connection.withBuffered({ $0.readableBytes }) < length { _ = try await connection.readMore() }
            let body = connection.withBuffered { $0.readString(length: length) } ?? ""
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            #expect(json["error"] as? String == "origin_not_allowed")
            #expect((json["message"] as? String)?.contains("--allow-origin https://evil.example") == true)
            await connection.close()
            // The gateway keeps serving.
            #expect(try await gateway.get("/health").status == .ok)
        }
    }

    @Test func itsOwnOriginAndClientsWithoutOriginAreAccepted() async throws {
        try await withTestGateway { gateway async throws in
            #expect(try await handshake(gateway, origin: nil).hasPrefix("HTTP/1.1 101"))
            #expect(try await handshake(gateway, origin: "http://127.0.0.1:\(gateway.port)").hasPrefix("HTTP/1.1 101"))
            #expect(try await handshake(gateway, origin: "HTTP://127.0.0.1:\(gateway.port)/").hasPrefix("HTTP/1.1 101"), "normalized")
            // Behind a TLS-terminating proxy the page is https while the gateway sees http: same host and port.
            #expect(try await handshake(gateway, host: "feed.example.com", origin: "https://feed.example.com").hasPrefix("HTTP/1.1 101"))
            #expect(try await handshake(gateway, host: "feed.example.com", origin: "https://feed.example.com.evil.example").hasPrefix("HTTP/1.1 403"))
        }
    }

    @Test func configuredOriginsAndTheWildcardAreAccepted() async throws {
        try await withTestGateway(await TestGateway.start(allowedOrigins: ["https://app.example.com/"])) { gateway in
            #expect(try await handshake(gateway, origin: "https://app.example.com").hasPrefix("HTTP/1.1 101"))
            #expect(try await handshake(gateway, origin: "https://other.example.com").hasPrefix("HTTP/1.1 403"))
            try await withTestGateway(await TestGateway.start(allowedOrigins: ["*"])) { open async throws in
                #expect(try await handshake(open, origin: "https://anything.example").hasPrefix("HTTP/1.1 101"))
            }
        }
    }
}

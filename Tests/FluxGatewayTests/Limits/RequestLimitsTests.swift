import FluxConsumer
import FluxCore
@testable import FluxGateway
import FluxTesting
import Foundation
import NIOHTTP1
import Testing

/// Header size, slow requests (slowloris), idle keep-alive connections, append rate: each gets a clear answer and
/// the gateway keeps serving everyone else.
@Suite struct RequestLimitsTests {
    /// Reads until the peer closes; returns everything it sent.
    func readToEnd(_ connection: RawTCPConnection) async throws -> String {
        while try await connection.readMore() {}
        return connection.withBuffered { $0.readString(length: $0.readableBytes) } ?? ""
    }

    @Test func oversizedHeadersGet431() async throws {
        try await withTestGateway(await TestGateway.start { $0.maxHeaderSize = 4096 }) { gateway in
            let connection = try await RawTCPConnection.connect(port: gateway.port)
            try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 8000))\r\n\r\n")
            let answer = try await readToEnd(connection)
            #expect(answer.hasPrefix("HTTP/1.1 431"), "\(answer.prefix(200))")
            #expect(answer.contains(#""error":"headers_too_large""#))
            await connection.close()
            // A token-sized header is fine, and the gateway keeps serving.
            #expect(try await gateway.get("/health", headers: [("X-Fine", String(repeating: "b", count: 2000))]).status == .ok)
        }
    }

    /// Opens a connection, sends `text` (if any) and never finishes the request; returns what the gateway answered.
    func answerToUnfinished(_ text: String?, port: Int) async throws -> String {
        let connection = try await RawTCPConnection.connect(port: port)
        // On a slow machine the gateway may have answered 408 already; the answer is still there to read.
        if let text { try? await connection.send(text) }
        let answer = (try? await readToEnd(connection)) ?? connection.withBuffered { $0.readString(length: $0.readableBytes) } ?? ""
        await connection.close()
        return answer
    }

    /// The request timeout over real sockets (when exactly it fires, per case, is `HTTPServerHandlerTests`').
    @Test func aRequestHeadThatTricklesInGets408() async throws {
        try await withTestGateway(await TestGateway.start { $0.requestReadTimeout = .seconds(3) }) { gateway in
            async let trickling = answerToUnfinished("GET /health HTTP/1.1\r\nHost: x\r\n", port: gateway.port)
            async let silent = answerToUnfinished(nil, port: gateway.port)
            async let body = answerToUnfinished(
                "POST /streams/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"aggr", port: gateway.port
            )
            let (headAnswer, silentAnswer, bodyAnswer) = try await (trickling, silent, body)
            #expect(headAnswer.hasPrefix("HTTP/1.1 408"), "\(headAnswer.prefix(200))")
            #expect(headAnswer.contains(#""error":"request_timeout""#))
            #expect(silentAnswer.hasPrefix("HTTP/1.1 408"), "a connection that says nothing: \(silentAnswer.prefix(200))")
            #expect(bodyAnswer.hasPrefix("HTTP/1.1 408"), "a body that stops coming: \(bodyAnswer.prefix(200))")
            #expect(try await gateway.store.head() == .start)
            #expect(try await gateway.get("/health").status == .ok)
        }
    }

    /// The idle timeout over a real socket (that a long-poll outlasts both timeouts is `HTTPServerHandlerTests`').
    @Test func idleKeepAliveConnectionsAreClosed() async throws {
        try await withTestGateway(await TestGateway.start { $0.idleTimeout = .milliseconds(300) }) { gateway in
            let connection = try await RawTCPConnection.connect(port: gateway.port)
            try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            let answer = try await readToEnd(connection)  // answered, then closed once idle
            #expect(answer.hasPrefix("HTTP/1.1 200"))
            #expect(!answer.contains("HTTP/1.1 408"), "an idle connection is closed without an answer")
            await connection.close()
        }
    }

    @Test func appendsOverTheRateGet429WithRetryAfterPerCaller() async throws {
        let access = try await AccessControl(tokens: [
            .init(name: "a", token: "writer-a-0123456789", scopes: ["write"]),
            .init(name: "b", token: "writer-b-0123456789", scopes: ["write"]),
        ])
        try await withTestGateway(
            await TestGateway.start(accessControl: access) {
                $0.appendRate = 0.001  // one more per 1,000 s: none during the test, however slow the machine
                $0.appendBurst = 2
            }
        ) { gateway in
            let a = [("Authorization", "Bearer writer-a-0123456789")]
            #expect(try await gateway.append("s", events: [("t.E", "1")], headers: a).status == .created)
            #expect(try await gateway.append("s", events: [("t.E", "2")], headers: a).status == .created)
            let limited = try await gateway.append("s", events: [("t.E", "3")], headers: a)
            #expect(limited.status == .tooManyRequests)
            #expect(try limited.jsonObject()["error"] as? String == "rate_limited")
            #expect(limited.headers.first(name: "Retry-After").flatMap(Int.init).map { (1...1000).contains($0) } == true)
            // Another token has its own budget.
            #expect(try await gateway.append("s", events: [("t.E", "4")], headers: [("Authorization", "Bearer writer-b-0123456789")]).status == .created)
            #expect(try await gateway.store.head() == Position(3), "the refused append stored nothing")
        }
    }

    @Test func rateLimiterRefillsOverTime() {
        let limiter = AppendRateLimiter(rate: 10, burst: 1)
        let start = ContinuousClock.now
        #expect(limiter.admit("x", now: start) == nil)
        let wait = limiter.admit("x", now: start)
        #expect(wait == .milliseconds(100))
        #expect(limiter.admit("x", now: start + .milliseconds(50)) != nil)
        #expect(limiter.admit("x", now: start + .milliseconds(150)) == nil)
        #expect(limiter.admit("y", now: start) == nil, "callers are independent")
    }
}

/// Every answer names its request: the client's `X-Request-ID` when it gave a sane one, else one of ours.
@Suite struct RequestIDTests {
    @Test func answersCarryARequestID() async throws {
        try await withTestGateway { gateway in
            let connection = try await gateway.connect()
            let first = try await connection.request(.GET, "/health")
            let second = try await connection.request(.GET, "/nope")
            let ours = try #require(first.headers.first(name: "X-Request-ID"))
            #expect(ours.hasSuffix("-1"))
            #expect(second.headers.first(name: "X-Request-ID") == ours.dropLast(2) + "-2", "same connection, next request")
            let given = try await connection.request(.GET, "/health", headers: [("X-Request-ID", "trace-abc-123")])
            #expect(given.headers.first(name: "X-Request-ID") == "trace-abc-123")
            let unprintable = try await connection.request(.GET, "/health", headers: [("X-Request-ID", "has space")])
            #expect(unprintable.headers.first(name: "X-Request-ID")?.hasSuffix("-4") == true)
            await connection.close()
        }
    }
}

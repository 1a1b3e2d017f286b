import FluxCore
@testable import FluxGateway
import FluxTesting
import Foundation
import Testing

/// Requests that lie about their framing: each gets its own answer, after the answers already due, and nothing
/// a valid request did is lost.
@Suite struct MalformedRequestTests {
    /// Reads until the peer closes; returns everything it sent.
    func readToEnd(_ connection: RawTCPConnection) async throws -> String {
        while try await connection.readMore() {}
        return connection.withBuffered { $0.readString(length: $0.readableBytes) } ?? ""
    }

    static let append = #"{"aggregate_name": "Account", "expected_version": "any", "events": [{"event_type": "t.E", "payload": 1}]}"#

    /// Bad chunk sizes after a valid append pipelined before them: the append is answered 201 (and stored), then
    /// the malformed request gets 400 and the connection closes.
    @Test(arguments: ["zz", "-5", "1ffffffffffffffffff", "5\r\nab"])
    func aMalformedChunkedBodyIsAnswered400AfterTheAnswersDue(_ chunk: String) async throws {
        try await withTestGateway { gateway in
            let connection = try await RawTCPConnection.connect(port: gateway.port)
            try await connection.send(
                "POST /streams/acc-1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(Self.append.utf8.count)\r\n\r\n\(Self.append)"
                    + "POST /streams/acc-2 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\(chunk)\r\n\r\n0\r\n\r\n"
            )
            let answer = try await readToEnd(connection)
            await connection.close()
            let statuses = answer.matches(of: /HTTP\/1\.1 (\d{3})/).map { String($0.1) }
            #expect(statuses.first == "201", "\(answer.prefix(600))")
            #expect(statuses.dropFirst().first == "400", "\(answer.prefix(600))")
            #expect(try await gateway.store.readStream("acc-1", fromVersion: 0, limit: 10).count == 1, "the first append was stored")
            #expect(try await gateway.store.readStream("acc-2", fromVersion: 0, limit: 10).isEmpty)
            #expect(try await gateway.get("/health").status == .ok)
        }
    }

    /// RFC 9112 §6.1: a transfer coding other than chunked is not understood here: 501, and nothing is stored.
    /// (`chunked, chunked` is refused by the request decoder itself, with `400`.)
    @Test(arguments: [("identity, chunked", "501"), ("gzip, chunked", "501"), ("identity", "501"), ("chunked, chunked", "400")])
    func otherTransferCodingsGet501(_ codings: String, _ status: String) async throws {
        try await withTestGateway { gateway in
            let connection = try await RawTCPConnection.connect(port: gateway.port)
            let hex = String(Self.append.utf8.count, radix: 16)
            try await connection.send(
                "POST /streams/acc-1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: \(codings)\r\n\r\n\(hex)\r\n\(Self.append)\r\n0\r\n\r\n"
            )
            let answer = try await readToEnd(connection)
            await connection.close()
            #expect(answer.hasPrefix("HTTP/1.1 \(status)"), "\(answer.prefix(300))")
            #expect(try await gateway.store.head() == .start)
        }
    }

    /// `HEAD` of the event stream (server-sent events) sends the head and no body at all.
    @Test func headOfTheEventStreamHasNoBody() async throws {
        try await withTestGateway { gateway in
            let connection = try await RawTCPConnection.connect(port: gateway.port)
            try await connection.send("HEAD /events/subscribe?after=0 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            let answer = try await readToEnd(connection)
            await connection.close()
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(300))")
            let body = try #require(answer.range(of: "\r\n\r\n")).upperBound
            #expect(answer[body...].isEmpty, "HEAD sent a body: \(answer[body...].debugDescription)")
        }
    }
}

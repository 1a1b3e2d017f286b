import FluxTesting
import FluxWire
import NIOCore
import Testing

/// The server-role cases that need no echo, played against the push channel of a real gateway (`fluxgate serve`,
/// `GET /events/subscribe`): the connection code subscribers meet, not only the echo testee. A subscriber may send
/// only acks, so the cases are those whose expectation holds no data message: pings and pongs, reserved bits and
/// opcodes, masking, fragmentation errors, invalid UTF-8, close codes and reasons — plus the push channel's own
/// message size limit.
@Suite(.conformanceGateway) struct PushChannelConformanceTests {
    /// Catalog cases whose expectation has no data message (cases graded INFORMATIONAL are left out).
    static let cases: [AutobahnCase] = {
        let sections = AutobahnCatalog.section2 + AutobahnCatalog.section3 + AutobahnCatalog.section4 + AutobahnCatalog.section5
            + AutobahnCatalog.serverOnly + AutobahnCatalog.section6 + AutobahnCatalog.section7
        return sections.filter { testCase in
            guard let expected = testCase.expected?() else { return false }
            return !expected.contains {
                switch $0 {
                case .text, .binary: true
                default: false
                }
            }
        }
    }()

    @Test("Autobahn cases without echo, on /events/subscribe", arguments: cases)
    func autobahnCase(_ testCase: AutobahnCase) async throws {
        try await ConformanceSlots.with(.serverRole) { try await Self.play(testCase) }
    }

    /// A subscriber's message over the push channel's 64 KiB limit fails the connection with 1009, in one frame or
    /// in fragments.
    @Test func aMessageOverTheLimitFailsWith1009() async throws {
        let big = [UInt8](repeating: 0x61, count: 64 * 1024 + 1)
        let oneFrame = AutobahnCase("limit.1", "one frame of 64 KiB + 1", script: [.send([.text(bytes: big)])], outcome: .testeeFails(1009))
        let fragments = AutobahnCase(
            "limit.2", "fragments adding up to 64 KiB + 1",
            script: [.send([.text(bytes: Array(big[..<40_000]), fin: false), .continuation(bytes: Array(big[40_000...]), fin: true)])],
            outcome: .testeeFails(1009)
        )
        try await Self.play(oneFrame)
        try await Self.play(fragments)
    }

    static let timeout = Duration.seconds(120)

    private static func play(_ testCase: AutobahnCase) async throws {
        let port = try await ConformanceServer.port()
        let peer = try await subscribe(port: port)
        await peer.play(testCase)
        ConformanceVerdict.check(peer.transcript, against: testCase)
        if testCase.failsConnection {
            #expect(try await ConformanceServer.isRunning(), "the gateway is still running")
            let again = try await subscribe(port: port)
            await again.sendClose()
            await again.readToEnd()
            await again.finish()
            #expect(again.transcript.closeCode == .some(1000), "the gateway still serves subscribers after a failed connection")
        }
    }

    /// Opens a subscription and reads its greeting, `caught_up` (the store is empty), which is no part of a case.
    private static func subscribe(port: Int) async throws -> ConformancePeer {
        let peer = ConformancePeer(connection: try await RawTCPConnection.connect(port: port), side: .client, timeout: timeout)
        _ = try await peer.clientHandshake(host: "127.0.0.1:\(port)", path: "/events/subscribe", extensions: nil)
        let greeting = await peer.nextEvent()
        guard case .text(let text) = greeting, case .caughtUp = PushMessage(json: Array(text.readableBytesView)) else {
            throw ConformanceProblem(description: "the subscription did not start with caught_up: \(String(describing: greeting))")
        }
        peer.forgetEvents()
        return peer
    }
}

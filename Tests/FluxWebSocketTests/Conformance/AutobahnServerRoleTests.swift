import FluxTesting
import NIOCore
import Testing

/// Autobahn TestSuite sections 1–7, 9, 10, 12 and 13 in the server role: a scripted client
/// (``ConformancePeer``) plays each case against `fluxgate echo-server` and checks, as Autobahn does, the
/// echoed payloads, the testee's close code, that the testee then closes TCP, and, after every case that
/// fails the connection, that the server still accepts and echoes.
@Suite(.conformanceEchoServer) struct AutobahnServerRoleTests {
    /// 1.1.1–1.2.8: text and binary messages around every length encoding, and chopped writes.
    @Test("1 Framing", arguments: AutobahnCatalog.section1)
    func framing(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 2.1–2.11: pings are answered, unsolicited pongs ignored, oversized pings fail.
    @Test("2 Pings and pongs", arguments: AutobahnCatalog.section2)
    func pingsAndPongs(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 3.1–3.7: reserved bits fail with 1002.
    @Test("3 Reserved bits", arguments: AutobahnCatalog.section3)
    func reservedBits(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 4.1.1–4.2.5: reserved opcodes fail with 1002.
    @Test("4 Opcodes", arguments: AutobahnCatalog.section4)
    func opcodes(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 5.1–5.20 and an unmasked client frame: fragmentation rules.
    @Test("5 Fragmentation", arguments: AutobahnCatalog.section5 + AutobahnCatalog.serverOnly)
    func fragmentation(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 6.1.1–6.23.7: UTF-8 handling, with the Markus Kuhn sequences and fail-fast checks.
    @Test("6 UTF-8", arguments: AutobahnCatalog.section6)
    func utf8(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 7.1.1–7.13.2: the closing handshake and close codes.
    @Test("7 Close handling", arguments: AutobahnCatalog.section7)
    func closeHandling(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 9.1.1–9.8.6: large messages (16 MiB), many frames, many messages; three at a time to bound memory.
    @Test("9 Limits", arguments: AutobahnCatalog.section9)
    func limits(_ testCase: AutobahnCase) async throws {
        try await ConformanceSlots.with(.largeMessages) { try await Self.run(testCase) }
    }

    /// 10.1.1: an auto-fragmented message.
    @Test("10 Miscellaneous", arguments: AutobahnCatalog.section10)
    func miscellaneous(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 12.1.1–12.5.18: compressed messages of every data set and size with the default offer.
    @Test("12 permessage-deflate payloads", arguments: AutobahnDeflateCatalog.section12ServerRole)
    func deflatePayloads(_ testCase: AutobahnDeflateCase) async throws { try await Self.run(testCase) }

    /// 13.1.x–13.7.x and 13.8+–13.10+: every negotiation offer; the answer must be valid (RFC 7692 §7.1) and
    /// the server must keep to it (window size, context takeover), which the peer's inflater checks.
    @Test("13 permessage-deflate parameters", arguments: AutobahnDeflateCatalog.section13ServerRole)
    func deflateParameters(_ testCase: AutobahnDeflateCase) async throws { try await Self.run(testCase) }

    // MARK: Running a case

    static let timeout = Duration.seconds(300)  // a whole case; only a hung one waits it out (16 MiB echoes in debug builds are slow when the suite runs in parallel)

    static func run(_ testCase: AutobahnCase) async throws {
        try await ConformanceSlots.with(.serverRole) { try await play(testCase) }
    }

    private static func play(_ testCase: AutobahnCase) async throws {
        let port = try await ConformanceServer.port()
        let peer = ConformancePeer(connection: try await RawTCPConnection.connect(port: port), side: .client, timeout: timeout)
        _ = try await peer.clientHandshake(host: "127.0.0.1:\(port)", extensions: nil)
        await peer.play(testCase)
        ConformanceVerdict.check(peer.transcript, against: testCase)
        if testCase.failsConnection {
            try await expectServerStillEchoes(port: port)
        }
    }

    /// After a failed connection the server must keep serving: a new connection gets its message back.
    static func expectServerStillEchoes(port: Int) async throws {
        #expect(try await ConformanceServer.isRunning(), "the echo server is still running")
        let peer = ConformancePeer(connection: try await RawTCPConnection.connect(port: port), side: .client, timeout: timeout)
        _ = try await peer.clientHandshake(host: "127.0.0.1:\(port)", extensions: nil)
        await peer.send([.text("still there?")])
        let echo = await peer.nextEvent()
        await peer.sendClose()
        await peer.readToEnd()
        await peer.finish()
        #expect(echo == .text("still there?"), "the server still echoes after a failed connection")
    }

    static func run(_ testCase: AutobahnDeflateCase) async throws {
        try await ConformanceSlots.with(.serverRole) { try await play(testCase) }
    }

    private static func play(_ testCase: AutobahnDeflateCase) async throws {
        let port = try await ConformanceServer.port()
        let peer = ConformancePeer(connection: try await RawTCPConnection.connect(port: port), side: .client, timeout: timeout)
        let offer = testCase.offers.map(\.headerValue).joined(separator: ", ")
        let headers = try await peer.clientHandshake(host: "127.0.0.1:\(port)", extensions: offer)
        let response = try #require(headers["sec-websocket-extensions"], "the server accepts a valid offer \"\(offer)\"")
        let agreement = try DeflateAgreement.validate(response: response, offers: testCase.offers)
        peer.enableDeflate(agreement)
        for index in 0..<testCase.count {
            let message = testCase.dataset.message(index, size: testCase.size)
            await peer.sendMessage(binary: testCase.dataset.isBinary, payload: message, compressed: true, fragmentSize: testCase.fragmentSize)
            let echo = await peer.nextEvent()
            let expected: ConformanceEvent = testCase.dataset.isBinary ? .binary(message) : .text(message)
            guard echo == expected else {
                Issue.record("message \(index): got \(echo.map(String.init(describing:)) ?? "nothing"), expected \(expected); agreed \(agreement) from \"\(response)\"")
                break
            }
        }
        await peer.sendClose()
        await peer.readUntilClose()
        await peer.readToEnd()
        await peer.finish()
        #expect(peer.transcript.closeCode == .some(1000))
        #expect(peer.transcript.end == .closed)
        #expect(peer.transcript.afterClose.isEmpty)
    }
}

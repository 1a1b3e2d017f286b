import FluxTesting
import Foundation
import NIOCore
import Testing

/// Autobahn TestSuite cases in the client role: a scripted server (``ConformancePeer`` on a
/// ``RawTCPServer``) accepts `fluxgate echo-client`, answers its handshake, plays the case and checks the
/// echoes, the client's close code, that the client masks every frame, and its exit status: 0 after a completed
/// closing handshake whatever its code (printing it), 1 (not a crash) after failing the connection.
@Suite struct AutobahnClientRoleTests {
    /// 1.1.1–1.2.8: framing.
    @Test("1 Framing", arguments: AutobahnCatalog.section1)
    func framing(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 2.1–2.11: pings and pongs.
    @Test("2 Pings and pongs", arguments: AutobahnCatalog.section2)
    func pingsAndPongs(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 3.1–3.7: reserved bits.
    @Test("3 Reserved bits", arguments: AutobahnCatalog.section3)
    func reservedBits(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 4.1.1–4.2.5: reserved opcodes.
    @Test("4 Opcodes", arguments: AutobahnCatalog.section4)
    func opcodes(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 5.1–5.20, and masked server frames (1002).
    @Test("5 Fragmentation and masking", arguments: AutobahnCatalog.section5 + AutobahnCatalog.clientOnly)
    func fragmentation(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 6.1.x–6.4.x, and the first valid and first invalid sequence of each group 6.5–6.23.
    @Test("6 UTF-8 (representative)", arguments: Self.utf8Subset)
    func utf8(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 7.1.1–7.13.2: closing handshake and close codes.
    @Test("7 Close handling", arguments: AutobahnCatalog.section7)
    func closeHandling(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 9.1.6, 9.2.6 (16 MiB), 9.3.1 (4 MiB in 64-byte fragments), 9.7.6 (1000 messages).
    @Test("9 Limits (representative)", .serialized, arguments: AutobahnCatalog.section9.filter { ["9.1.6", "9.2.6", "9.3.1", "9.7.6"].contains($0.id) })
    func limits(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 10.1.1: an auto-fragmented message.
    @Test("10 Miscellaneous", arguments: AutobahnCatalog.section10)
    func miscellaneous(_ testCase: AutobahnCase) async throws { try await Self.run(testCase) }

    /// 12.1.x and 12.4.x: compressed messages with the server accepting the client's offer.
    @Test("12 permessage-deflate payloads", arguments: AutobahnDeflateCatalog.section12ClientRole)
    func deflatePayloads(_ testCase: AutobahnDeflateCase) async throws { try await Self.run(testCase) }

    /// 13.1.x–13.6.x and 13.8+: every server answer; the client must keep to it, which the peer's inflater checks.
    @Test("13 permessage-deflate parameters", arguments: AutobahnDeflateCatalog.section13ClientRole)
    func deflateParameters(_ testCase: AutobahnDeflateCase) async throws { try await Self.run(testCase) }

    static let utf8Subset: [AutobahnCase] = AutobahnCatalog.section6.filter { testCase in
        let parts = testCase.id.split(separator: ".")
        guard let group = Int(parts[1]) else { return false }
        if group <= 4 { return true }
        // The first case of a group, and its first case of the other validity.
        let siblings = AutobahnCatalog.section6.filter { $0.id.hasPrefix("6.\(group).") }
        let firstFailing = siblings.first { $0.failsConnection }
        let firstPassing = siblings.first { !$0.failsConnection }
        return testCase.id == firstFailing?.id || testCase.id == firstPassing?.id
    }

    // MARK: Running a case

    static let timeout = Duration.seconds(300)  // a whole case; only a hung one waits it out (16 MiB echoes in debug builds are slow when the suite runs in parallel)

    /// Runs `body` with the client connected to a fresh scripted server (the peer, once the TCP connection is up);
    /// when `body` returns or throws, the client is stopped and the connection and the listener are closed.
    private static func withEchoClient(deflate: Bool, _ body: (ChildProcess, RawTCPServer, ConformancePeer) async throws -> Void) async throws {
        let server = try await RawTCPServer.listen()
        try await withTeardown({ await server.close() }) {
            // A minute for the scripted server's 101: three 16 MiB cases at once in a debug build on a loaded machine
            // can hold the test process up for longer than the client's default 10 s.
            let arguments = ["echo-client", "--url", "ws://127.0.0.1:\(server.port)/", "--handshake-timeout", "60"]
            try await withFluxgate(arguments + (deflate ? ["--deflate"] : [])) { client in
        guard let connection = await server.accept(timeout: .seconds(30)) else {
            throw ConformanceProblem(description: "echo-client did not connect; stderr: \(client.errorOutput)")
        }
                let peer = ConformancePeer(connection: connection, side: .server, timeout: timeout)
                try await withTeardown({ await peer.finish() }) { try await body(client, server, peer) }
            }
        }
    }

    static func run(_ testCase: AutobahnCase) async throws {
        try await ConformanceSlots.with(.clientRole) { try await play(testCase) }
    }

    private static func play(_ testCase: AutobahnCase) async throws {
        try await withEchoClient(deflate: false) { client, server, peer in
        do {
            _ = try await peer.serverHandshake { _ in nil }
        } catch {
            let status = await client.waitForExit(timeout: .seconds(5))
            throw ConformanceProblem(description: "\(error); echo-client exit status \(status.map(String.init) ?? "none"), stderr: \(client.errorOutput)")
        }
        await peer.run(testCase.script())
        if case .peerClosesNormally = testCase.outcome, !peer.transcript.receivedClose {
            // As Autobahn, close only once the echoes are in: a testee's close timeout then never races a
            // slow reader of a 16 MiB echo.
            await peer.awaitEvents(testCase.expected?().count ?? 0)
            await peer.sendClose()
        }
        await peer.readUntilClose()
        // After the closing handshake, or the client failing the connection, the server closes TCP first
        // (RFC 6455 §7.1.1).
        await peer.connection.shutdownOutput()
        await peer.readToEnd()
        await peer.finish()
        await server.close()
        ConformanceVerdict.check(peer.transcript, against: testCase)
        let status = await client.waitForExit(timeout: .seconds(30))
        switch testCase.outcome {
        case .peerClosesNormally:
            #expect(status == 0, "a clean close exits 0; stderr: \(client.errorOutput)")
            #expect(client.outputLines == ["close code 1000"])
        case .testeeEchoesClose(let codes):
            // Every completed closing handshake is clean (RFC 6455 §7.1.4), whatever the server's code: 1002, 4999, none.
            #expect(status == 0, "a completed closing handshake exits 0; stderr: \(client.errorOutput)")
            // The script's Close carried the first code the testee may echo (none: the code is 1005, §7.1.5).
            let code = codes.first.flatMap { $0 } ?? 1005
            #expect(client.outputLines == ["close code \(code)"])
        case .testeeFails:
            #expect(status == 1, "a failed connection exits 1, not a crash; stderr: \(client.errorOutput)")
        }
    }
    }

    static func run(_ testCase: AutobahnDeflateCase) async throws {
        try await ConformanceSlots.with(.clientRole) { try await play(testCase) }
    }

    private static func play(_ testCase: AutobahnDeflateCase) async throws {
        try await withEchoClient(deflate: true) { client, server, peer in
        var offers: [DeflateExtension] = []
        var offerProblem: (any Error)?
        let request = try await peer.serverHandshake { headers in
            do {
                offers = try DeflateExtension.parse(headers["sec-websocket-extensions"] ?? "")
            } catch {
                offerProblem = error
            }
            return testCase.response
        }
        #expect(offerProblem == nil, "the client's offer \(request["sec-websocket-extensions"] ?? "none") is valid (RFC 7692 §7.1)")
        let agreement = try DeflateAgreement.validate(response: testCase.response, offers: offers)
        peer.enableDeflate(agreement)
        for index in 0..<testCase.count {
            let message = testCase.dataset.message(index, size: testCase.size)
            await peer.sendMessage(binary: testCase.dataset.isBinary, payload: message, compressed: true, fragmentSize: testCase.fragmentSize)
            let echo = await peer.nextEvent()
            let expected: ConformanceEvent = testCase.dataset.isBinary ? .binary(message) : .text(message)
            guard echo == expected else {
                Issue.record("message \(index): got \(echo.map(String.init(describing:)) ?? "nothing"), expected \(expected); agreed \(agreement)")
                break
            }
        }
        await peer.sendClose()
        await peer.readUntilClose()
        await peer.connection.shutdownOutput()
        await peer.readToEnd()
        await peer.finish()
        await server.close()
        #expect(peer.transcript.closeCode == .some(1000))
        #expect(peer.transcript.afterClose.isEmpty)
        #expect(await client.waitForExit(timeout: .seconds(30)) == 0, "stderr: \(client.errorOutput)")
    }
    }
}

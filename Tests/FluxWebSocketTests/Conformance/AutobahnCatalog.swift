import NIOCore

/// The Autobahn TestSuite cases of sections 1–7, 9 and 10 (crossbario/autobahn-testsuite,
/// `autobahntestsuite/case/case*.py`), written as scripts for ``ConformancePeer``. The same scripts run in
/// both roles: the peer masks its frames as a client and not as a server. Sections 12 and 13
/// (permessage-deflate) are in ``AutobahnDeflateCatalog``.
///
/// Autobahn's pauses (up to a second) are shortened: they only make sure the testee sees the bytes in
/// separate reads.
enum AutobahnCatalog {
    static let helloWorld = "Hello, world!"
    static let short = Duration.milliseconds(5)

    // MARK: 1 Framing

    /// 1.1.x text and 1.2.x binary messages of lengths around the 7-bit, 16-bit and 64-bit length encodings
    /// (RFC 6455 §5.2); 1.x.8 sends a 65536-byte message in chops of 997 bytes.
    static let section1: [AutobahnCase] = [(group: 1, opcode: UInt8(0x1), fill: UInt8(ascii: "*")), (group: 2, opcode: UInt8(0x2), fill: UInt8(0xFE))].flatMap { group, opcode, fill -> [AutobahnCase] in
        let kind = opcode == 0x1 ? "text" : "binary"
        let lengths = [0, 125, 126, 127, 128, 65535, 65536]
        var cases = lengths.enumerated().map { index, length in
            AutobahnCase(
                "1.\(group).\(index + 1)", "\(kind) message, payload \(length) bytes",
                script: [.send([ScriptFrame(opcode: opcode, payload: Payload.repeated(fill, length))])],
                expect: [echo(opcode, Payload.repeated(fill, length))])
        }
        cases.append(
            AutobahnCase(
                "1.\(group).8", "\(kind) message, payload 65536 bytes, sent in chops of 997 bytes",
                script: [.send([ScriptFrame(opcode: opcode, payload: Payload.repeated(fill, 65536))], .chunks(997))],
                expect: [echo(opcode, Payload.repeated(fill, 65536))]))
        return cases
    }

    static func echo(_ opcode: UInt8, _ payload: ByteBuffer) -> ConformanceEvent {
        opcode == 0x1 ? .text(payload) : .binary(payload)
    }

    // MARK: 2 Pings and pongs

    /// Pings are answered with their payload (RFC 6455 §5.5.2), pongs nobody asked for are ignored (§5.5.3),
    /// a ping of 126 bytes is a protocol error (§5.5).
    static let section2: [AutobahnCase] = {
        let binary: [UInt8] = [0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF]
        let big = [UInt8](repeating: 0xFE, count: 125)
        let tenPings = (0..<10).map { ScriptFrame.ping("payload-\($0)") }
        let tenPongs = (0..<10).map { ConformanceEvent.pong("payload-\($0)") }
        return [
            AutobahnCase("2.1", "ping without payload", script: [.send([.ping()])], expect: [.pong(bytes: [])]),
            AutobahnCase("2.2", "ping with a small text payload", script: [.send([.ping(helloWorld)])], expect: [.pong(helloWorld)]),
            AutobahnCase("2.3", "ping with a small binary payload", script: [.send([.ping(binary)])], expect: [.pong(bytes: binary)]),
            AutobahnCase("2.4", "ping with a 125-byte binary payload", script: [.send([.ping(big)])], expect: [.pong(bytes: big)]),
            AutobahnCase(
                "2.5", "ping with a 126-byte payload: control frames carry at most 125",
                script: [.send([.ping(big + [0xFE])])], outcome: .testeeFails(1002)),
            AutobahnCase(
                "2.6", "ping with a 125-byte payload, sent in chops of 1 byte",
                script: [.send([.ping(big)], .chunks(1))], expect: [.pong(bytes: big)]),
            AutobahnCase("2.7", "unsolicited pong without payload", script: [.send([.pong()])]),
            AutobahnCase("2.8", "unsolicited pong with payload", script: [.send([.pong("unsolicited pong payload")])]),
            AutobahnCase(
                "2.9", "unsolicited pong, then ping",
                script: [.send([.pong("unsolicited pong payload"), .ping("ping payload")])], expect: [.pong("ping payload")]),
            AutobahnCase("2.10", "10 pings with payload", script: [.send(tenPings)], expect: tenPongs),
            AutobahnCase(
                "2.11", "10 pings with payload, sent in chops of 1 byte with pauses",
                script: [.send(tenPings, .chunks(1, delay: .milliseconds(1)))], expect: tenPongs),
        ]
    }()

    // MARK: 3 Reserved bits

    /// Any RSV bit without a negotiated extension fails the connection with 1002 (RFC 6455 §5.2); what came
    /// before is still echoed, what comes after is not answered.
    static let section3: [AutobahnCase] = [
        AutobahnCase("3.1", "text message with RSV = 1", script: [.send([.text(helloWorld, rsv: 1)])], outcome: .testeeFails(1002)),
        AutobahnCase(
            "3.2", "text message, then text with RSV = 2, then ping",
            script: [.send([.text(helloWorld), .text(helloWorld, rsv: 2), .ping()])],
            expect: [.text(helloWorld)], outcome: .testeeFails(1002)),
        AutobahnCase(
            "3.3", "text message, then text with RSV = 3, then ping, frame-wise chops",
            script: [.send([.text(helloWorld), .text(helloWorld, rsv: 3), .ping()], .perFrame)],
            expect: [.text(helloWorld)], outcome: .testeeFails(1002)),
        AutobahnCase(
            "3.4", "text message, then text with RSV = 4, then ping, octet-wise chops",
            script: [.send([.text(helloWorld), .text(helloWorld, rsv: 4), .ping()], .chunks(1))],
            expect: [.text(helloWorld)], outcome: .testeeFails(1002)),
        AutobahnCase(
            "3.5", "binary message with RSV = 5", script: [.send([.binary(Array(0...255), rsv: 5)])],
            outcome: .testeeFails(1002)),
        AutobahnCase("3.6", "ping with RSV = 6", script: [.send([.ping(Array(helloWorld.utf8), rsv: 6)])], outcome: .testeeFails(1002)),
        AutobahnCase("3.7", "close with RSV = 7", script: [.send([.close(code: 1000, rsv: 7)])], outcome: .testeeFails(1002)),
    ]

    // MARK: 4 Opcodes

    /// Reserved opcodes 3–7 (data) and 11–15 (control) fail the connection with 1002 (RFC 6455 §5.2).
    static let section4: [AutobahnCase] = {
        let payload = Array("reserved opcode payload".utf8)
        var cases: [AutobahnCase] = []
        for (group, base) in [(1, UInt8(3)), (2, UInt8(11))] {
            let kind = group == 1 ? "non-control" : "control"
            cases.append(
                AutobahnCase(
                    "4.\(group).1", "\(kind) frame with reserved opcode \(base)",
                    script: [.send([.reserved(opcode: base)])], outcome: .testeeFails(1002)))
            cases.append(
                AutobahnCase(
                    "4.\(group).2", "\(kind) frame with reserved opcode \(base + 1) and payload",
                    script: [.send([.reserved(opcode: base + 1, payload)])], outcome: .testeeFails(1002)))
            for offset in 2...4 {
                let opcode = base + UInt8(offset)
                let reservedPayload: [UInt8] = offset == 2 ? [] : payload
                let frames: [ScriptFrame] = [.text(helloWorld), .reserved(opcode: opcode, reservedPayload), .ping()]
                cases.append(
                    AutobahnCase(
                        "4.\(group).\(offset + 1)", "text, \(kind) frame with reserved opcode \(opcode), ping",
                        script: [.send(frames)], expect: [.text(helloWorld)], outcome: .testeeFails(1002)))
            }
        }
        return cases
    }()

    // MARK: 5 Fragmentation

    /// Fragmented messages (RFC 6455 §5.4): control frames may interleave but never be fragmented; a
    /// continuation needs a message to continue, and a new message cannot start inside one.
    static let section5: [AutobahnCase] = {
        let twoFragments: [ScriptFrame] = [.text("fragment1", fin: false), .continuation("fragment2", fin: true)]
        let withPing: [ScriptFrame] = [.text("fragment1", fin: false), .ping("ping payload"), .continuation("fragment2", fin: true)]
        let chops: [(String, Chop)] = [("in one chop", .whole), ("in frame-wise chops", .perFrame), ("in octet-wise chops", .chunks(1, delay: .milliseconds(1)))]
        var cases: [AutobahnCase] = [
            AutobahnCase(
                "5.1", "ping in 2 fragments",
                script: [.send([.ping(Array("fragment1".utf8), fin: false), .continuation("fragment2", fin: true)])],
                outcome: .testeeFails(1002)),
            AutobahnCase(
                "5.2", "pong in 2 fragments",
                script: [.send([.pong(Array("fragment1".utf8), fin: false), .continuation("fragment2", fin: true)])],
                outcome: .testeeFails(1002)),
        ]
        for (index, (how, chop)) in chops.enumerated() {
            cases.append(
                AutobahnCase(
                    "5.\(3 + index)", "text message in 2 fragments, \(how)", script: [.send(twoFragments, chop)],
                    expect: [.text("fragment1fragment2")]))
        }
        for (index, (how, chop)) in chops.enumerated() {
            cases.append(
                AutobahnCase(
                    "5.\(6 + index)", "text message in 2 fragments with a ping between them, \(how)", script: [.send(withPing, chop)],
                    expect: [.pong("ping payload"), .text("fragment1fragment2")]))
        }
        for (index, (how, chop)) in chops.enumerated() {
            cases.append(
                AutobahnCase(
                    "5.\(9 + index)", "continuation with FIN and nothing to continue, then text, \(how)",
                    script: [.send([.continuation("non-continuation payload", fin: true), .text(helloWorld)], chop)],
                    outcome: .testeeFails(1002)))
        }
        for (index, (how, chop)) in chops.enumerated() {
            cases.append(
                AutobahnCase(
                    "5.\(12 + index)", "continuation without FIN and nothing to continue, then text, \(how)",
                    script: [.send([.continuation("non-continuation payload", fin: false), .text(helloWorld)], chop)],
                    outcome: .testeeFails(1002)))
        }
        let pongs: [ScriptFrame] = [
            .text("fragment1", fin: false), .continuation("fragment2", fin: false), .ping("pongme 1!"), .continuation("fragment3", fin: false),
        ]
        let strayContinuation: [ScriptFrame] = [.continuation("fragment1", fin: false), .text("fragment2", fin: false), .continuation("fragment3", fin: true)]
        let strayFinalContinuation: [ScriptFrame] = [.continuation("fragment1", fin: true), .text("fragment2", fin: false), .continuation("fragment3", fin: true)]
        let rest: [ScriptFrame] = [.continuation("fragment4", fin: false), .ping("pongme 2!"), .continuation("fragment5", fin: true)]
        cases += [
            AutobahnCase(
                "5.15", "text in 2 fragments, then continuation with nothing to continue, then text",
                script: [.send([.text("fragment1", fin: false), .continuation("fragment2", fin: true), .continuation("fragment3", fin: false), .text("fragment4")])],
                expect: [.text("fragment1fragment2")], outcome: .testeeFails(1002)),
            AutobahnCase(
                "5.16", "twice: continuation (no FIN), text (no FIN), continuation (FIN)",
                script: [.send(strayContinuation + strayContinuation)], outcome: .testeeFails(1002)),
            AutobahnCase(
                "5.17", "twice: continuation (FIN), text (no FIN), continuation (FIN)",
                script: [.send(strayFinalContinuation + strayFinalContinuation)], outcome: .testeeFails(1002)),
            AutobahnCase(
                "5.18", "text in 2 fragments, both with the text opcode",
                script: [.send([.text("fragment1", fin: false), .text("fragment2")])], outcome: .testeeFails(1002)),
            AutobahnCase(
                "5.19", "text in 5 fragments with 2 pings between them and a pause",
                script: [.send(pongs), .pause(.milliseconds(100)), .send(rest)],
                expect: [.pong("pongme 1!"), .pong("pongme 2!"), .text("fragment1fragment2fragment3fragment4fragment5")]),
            AutobahnCase(
                "5.20", "as 5.19, frame-wise chops",
                script: [.send(pongs, .perFrame), .pause(.milliseconds(100)), .send(rest, .perFrame)],
                expect: [.pong("pongme 1!"), .pong("pongme 2!"), .text("fragment1fragment2fragment3fragment4fragment5")]),
        ]
        return cases
    }()

    // MARK: 6 UTF-8

    /// Text must be valid UTF-8 (RFC 6455 §8.1, RFC 3629); invalid text fails with 1007, as early as the
    /// frame that makes it invalid (6.3.2, 6.4.1, 6.4.2 check fail-fast).
    static let section6: [AutobahnCase] = {
        let validText = Array("Hello-µ@ßöäüàá-UTF-8!!".utf8)
        let invalid = AutobahnUTF8Sequences.kosme + [0xED, 0xA0, 0x80] + Array("edited".utf8)
        let split = 9  // between "Hello-µ@" and "ßöäüàá…"
        var cases: [AutobahnCase] = [
            AutobahnCase("6.1.1", "empty text message", script: [.send([.text("")])], expect: [.text("")]),
            AutobahnCase(
                "6.1.2", "text message of 3 empty fragments",
                script: [.send([.text("", fin: false), .continuation("", fin: false), .continuation("", fin: true)])], expect: [.text("")]),
            AutobahnCase(
                "6.1.3", "text message of an empty, a non-empty and an empty fragment",
                script: [.send([.text("", fin: false), .continuation("middle frame payload", fin: false), .continuation("", fin: true)])],
                expect: [.text("middle frame payload")]),
            AutobahnCase("6.2.1", "valid UTF-8 in one fragment", script: [.send([.text(bytes: validText)])], expect: [.text(ByteBuffer(bytes: validText))]),
            AutobahnCase(
                "6.2.2", "valid UTF-8 in 2 fragments split at a character boundary",
                script: [.send([.text(bytes: Array(validText[..<split]), fin: false), .continuation(bytes: Array(validText[split...]), fin: true)])],
                expect: [.text(ByteBuffer(bytes: validText))]),
            AutobahnCase(
                "6.2.3", "valid UTF-8, one fragment per byte", script: [.send(bytewise(validText))],
                expect: [.text(ByteBuffer(bytes: validText))]),
            AutobahnCase(
                "6.2.4", "valid UTF-8 (κόσμε), one fragment per byte", script: [.send(bytewise(AutobahnUTF8Sequences.kosme))],
                expect: [.text(ByteBuffer(bytes: AutobahnUTF8Sequences.kosme))]),
            AutobahnCase("6.3.1", "invalid UTF-8 in one fragment", script: [.send([.text(bytes: invalid)])], outcome: .testeeFails(1007)),
            AutobahnCase(
                "6.3.2", "invalid UTF-8, one fragment per byte: fails at the first invalid fragment",
                script: [.send(Array(bytewise(invalid).prefix(13))), .awaitClose, .send(Array(bytewise(invalid).dropFirst(13)))],
                outcome: .testeeFails(1007)),
            AutobahnCase(
                "6.4.1", "3 fragments, the second invalid: fails before the third is sent",
                script: [
                    .send([.text(bytes: AutobahnUTF8Sequences.kosme, fin: false)]), .pause(short),
                    .send([.continuation(bytes: [0xF4, 0x90, 0x80, 0x80], fin: false)]), .awaitClose,
                    .send([.continuation("edited", fin: true)]),
                ],
                outcome: .testeeFails(1007)),
            AutobahnCase(
                "6.4.2", "3 fragments, the invalid code point split between the first and second",
                script: [
                    .send([.text(bytes: AutobahnUTF8Sequences.kosme + [0xF4], fin: false)]), .pause(short),
                    .send([.continuation(bytes: [0x90], fin: false)]), .awaitClose,
                    .send([.continuation(bytes: [0x80, 0x80] + Array("edited".utf8), fin: true)]),
                ],
                outcome: .testeeFails(1007)),
            // Autobahn grades a failure after the whole frame NON-STRICT for these two; both are accepted here.
            AutobahnCase(
                "6.4.3", "one invalid frame sent in 3 chops",
                script: [.send([.text(bytes: AutobahnUTF8Sequences.kosme + [0xF4, 0x90, 0x80, 0x80] + Array("edited".utf8))], .chunks(13, delay: short))],
                outcome: .testeeFails(1007)),
            AutobahnCase(
                "6.4.4", "one invalid frame sent in chops of 1 byte",
                script: [.send([.text(bytes: AutobahnUTF8Sequences.kosme + [0xF4, 0x90] + Array("edited".utf8))], .chunks(1, delay: .milliseconds(1)))],
                outcome: .testeeFails(1007)),
        ]
        for group in AutobahnUTF8Sequences.groups {
            for (index, sequence) in group.sequences.enumerated() {
                let hex = sequence.bytes.prefix(12).map { String(format2: $0) }.joined()
                cases.append(
                    AutobahnCase(
                        "6.\(group.number).\(index + 1)", "\(group.title): \(sequence.valid ? "valid" : "invalid") 0x\(hex)",
                        script: [.send([.text(bytes: sequence.bytes)])],
                        expect: sequence.valid ? [.text(ByteBuffer(bytes: sequence.bytes))] : [],
                        outcome: sequence.valid ? .peerClosesNormally : .testeeFails(1007)))
            }
        }
        return cases
    }()

    static func bytewise(_ bytes: [UInt8]) -> [ScriptFrame] {
        bytes.enumerated().map { index, byte in
            ScriptFrame(fin: index == bytes.count - 1, opcode: index == 0 ? 0x1 : 0x0, payload: ByteBuffer(bytes: [byte]))
        }
    }

    // MARK: 7 Close handling

    /// The closing handshake (RFC 6455 §5.5.1, §7): the testee echoes a valid status code, sends nothing after
    /// its Close, ignores frames after the peer's Close, and fails with 1002 for invalid codes (§7.4) or a
    /// 1-byte body, and with 1007 for a reason that is not UTF-8.
    static let section7: [AutobahnCase] = {
        let invalidReason = AutobahnUTF8Sequences.kosme + [0xED, 0xA0, 0x80] + Array("edited".utf8)
        var cases: [AutobahnCase] = [
            AutobahnCase(
                "7.1.1", "text message, then close", script: [.send([.text("Hello World!"), .close(code: 1000)])],
                expect: [.text("Hello World!")], outcome: .testeeEchoesClose([1000])),
            AutobahnCase(
                "7.1.2", "close twice", script: [.send([.close(code: 1000), .close(code: 1000)])], outcome: .testeeEchoesClose([1000])),
            AutobahnCase(
                "7.1.3", "close, then ping: no pong", script: [.send([.close(code: 1000), .ping("Hello World!")])],
                outcome: .testeeEchoesClose([1000])),
            AutobahnCase(
                "7.1.4", "close, then text: no echo", script: [.send([.close(code: 1000), .text("Hello World!")])],
                outcome: .testeeEchoesClose([1000])),
            AutobahnCase(
                "7.1.5", "first fragment, close, last fragment: no echo",
                script: [.send([.text("fragment1", fin: false), .close(code: 1000), .continuation("fragment2", fin: true)])],
                outcome: .testeeEchoesClose([1000])),
            AutobahnCase(
                "7.1.6", "256 KiB text, then close, then ping (INFORMATIONAL)",
                script: [.send([ScriptFrame(opcode: 0x1, payload: Payload.text(262_144)), .close(code: 1000), .ping("Hello World!")])],
                informational: true, outcome: .testeeEchoesClose([1000])),
            AutobahnCase("7.3.1", "close with an empty body", script: [.send([.close(rawPayload: [])])], outcome: .testeeEchoesClose([nil, 1000])),
            AutobahnCase("7.3.2", "close with a 1-byte body", script: [.send([.close(rawPayload: [0x61])])], outcome: .testeeFails(1002)),
            AutobahnCase("7.3.3", "close with code 1000 and no reason", script: [.send([.close(code: 1000)])], outcome: .testeeEchoesClose([1000])),
            AutobahnCase(
                "7.3.4", "close with code 1000 and a reason", script: [.send([.close(code: 1000, reason: Array("Hello World!".utf8))])],
                outcome: .testeeEchoesClose([1000])),
            AutobahnCase(
                "7.3.5", "close with a 123-byte reason (the most that fits)",
                script: [.send([.close(code: 1000, reason: [UInt8](repeating: 0x2A, count: 123))])], outcome: .testeeEchoesClose([1000])),
            AutobahnCase(
                "7.3.6", "close with a 124-byte reason: a 126-byte control frame",
                script: [.send([.close(code: 1000, reason: [UInt8](repeating: 0x2A, count: 124))])], outcome: .testeeFails(1002)),
            AutobahnCase(
                "7.5.1", "close with a reason that is not UTF-8", script: [.send([.close(code: 1000, reason: invalidReason)])],
                outcome: .testeeFails(1007)),
        ]
        for (index, code) in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].enumerated() {
            cases.append(
                AutobahnCase(
                    "7.7.\(index + 1)", "close with valid code \(code)", script: [.send([.close(code: UInt16(code))])],
                    outcome: .testeeEchoesClose([UInt16(code)])))
        }
        for (index, code) in [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999].enumerated() {
            cases.append(
                AutobahnCase(
                    "7.9.\(index + 1)", "close with invalid code \(code)", script: [.send([.close(code: UInt16(code))])],
                    outcome: .testeeFails(1002)))
        }
        cases.append(
            AutobahnCase("7.9.10+", "close with invalid code 1015 (TLS failure, local only)", script: [.send([.close(code: 1015)])], outcome: .testeeFails(1002)))
        cases += [
            AutobahnCase("7.13.1", "close with code 5000 (beyond the registry)", script: [.send([.close(code: 5000)])], outcome: .testeeFails(1002)),
            AutobahnCase("7.13.2", "close with code 65535", script: [.send([.close(code: 65535)])], outcome: .testeeFails(1002)),
        ]
        return cases
    }()

    // MARK: 9 Limits and performance

    /// Large messages (up to 16 MiB), many small frames and many messages: Autobahn measures time, this
    /// suite checks that every byte comes back.
    static let section9: [AutobahnCase] = {
        let mebibyte = 1 << 20
        var cases: [AutobahnCase] = []
        for (group, opcode) in [(1, UInt8(0x1)), (2, UInt8(0x2))] {
            let kind = opcode == 0x1 ? "text" : "binary"
            for (index, size) in [65536, 262_144, mebibyte, 4 * mebibyte, 8 * mebibyte, 16 * mebibyte].enumerated() {
                cases.append(
                    AutobahnCase(
                        "9.\(group).\(index + 1)", "\(kind) message of \(size) bytes in one frame",
                        script: [.send([ScriptFrame(opcode: opcode, payload: payload(opcode, size))])],
                        expect: [echo(opcode, payload(opcode, size))]))
            }
        }
        for (group, opcode) in [(3, UInt8(0x1)), (4, UInt8(0x2))] {
            let kind = opcode == 0x1 ? "text" : "binary"
            for (index, fragment) in [64, 256, 1024, 4096, 16384, 65536, 262_144, mebibyte, 4 * mebibyte].enumerated() {
                cases.append(
                    AutobahnCase(
                        "9.\(group).\(index + 1)", "4 MiB \(kind) message in fragments of \(fragment) bytes",
                        script: [.send(Payload.fragments(of: payload(opcode, 4 * mebibyte), size: fragment, opcode: opcode))],
                        expect: [echo(opcode, payload(opcode, 4 * mebibyte))]))
            }
        }
        for (group, opcode) in [(5, UInt8(0x1)), (6, UInt8(0x2))] {
            let kind = opcode == 0x1 ? "text" : "binary"
            for (index, chop) in [64, 128, 256, 512, 1024, 2048].enumerated() {
                cases.append(
                    AutobahnCase(
                        "9.\(group).\(index + 1)", "1 MiB \(kind) message sent in chops of \(chop) bytes",
                        script: [.send([ScriptFrame(opcode: opcode, payload: payload(opcode, mebibyte))], .chunks(chop))],
                        expect: [echo(opcode, payload(opcode, mebibyte))]))
            }
        }
        for (group, opcode) in [(7, UInt8(0x1)), (8, UInt8(0x2))] {
            let kind = opcode == 0x1 ? "text" : "binary"
            for (index, size) in [0, 16, 64, 256, 1024, 4096].enumerated() {
                cases.append(
                    AutobahnCase(
                        "9.\(group).\(index + 1)", "1000 \(kind) messages of \(size) bytes",
                        script: [.send((0..<1000).map { _ in ScriptFrame(opcode: opcode, payload: payload(opcode, size)) })],
                        expect: Array(repeating: echo(opcode, payload(opcode, size)), count: 1000)))
            }
        }
        return cases
    }()

    static func payload(_ opcode: UInt8, _ size: Int) -> ByteBuffer {
        opcode == 0x1 ? Payload.text(size) : Payload.repeated(0xFE, size)
    }

    // MARK: 10 Miscellaneous

    /// 10.1.1: a 65536-byte text message the peer auto-fragments into frames of 1300 bytes.
    static let section10: [AutobahnCase] = [
        AutobahnCase(
            "10.1.1", "65536-byte text message auto-fragmented into frames of 1300 bytes",
            script: [.send(Payload.fragments(of: Payload.text(65536), size: 1300, opcode: 0x1))],
            expect: [.text(Payload.text(65536))])
    ]

    // MARK: Client role only

    /// What only a client checks: a server must not mask its frames (RFC 6455 §5.1).
    static let clientOnly: [AutobahnCase] = [
        AutobahnCase(
            "5.1.1+", "masked text message from the server",
            script: [.send([ScriptFrame(opcode: 0x1, payload: ByteBuffer(string: helloWorld), masking: .masked)])],
            outcome: .testeeFails(1002)),
        AutobahnCase(
            "5.1.2+", "text message, then a masked ping from the server",
            script: [.send([.text(helloWorld), ScriptFrame(opcode: 0x9, payload: ByteBuffer(string: "masked"), masking: .masked)])],
            expect: [.text(helloWorld)], outcome: .testeeFails(1002)),
    ]

    /// What only a server checks: a client must mask its frames (RFC 6455 §5.1).
    static let serverOnly: [AutobahnCase] = [
        AutobahnCase(
            "5.1.1+", "unmasked text message from the client",
            script: [.send([ScriptFrame(opcode: 0x1, payload: ByteBuffer(string: helloWorld), masking: .unmasked)])],
            outcome: .testeeFails(1002))
    ]
}

extension String {
    /// Two lowercase hex digits.
    init(format2 byte: UInt8) {
        self = (byte < 16 ? "0" : "") + String(byte, radix: 16)
    }
}

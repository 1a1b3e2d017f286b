import FluxWebSocket
import NIOCore
import Testing

typealias Machine = WebSocketConnectionStateMachine<ContinuousClock.Instant>

extension WebSocketConnectionStateMachine.Action: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.none, .none), (.closeConnection, .closeConnection): true
        case (.deliver(let a), .deliver(let b)): a == b
        case (.send(let a), .send(let b)): a == b
        case (.sendAndCloseConnection(let a), .sendAndCloseConnection(let b)): a == b
        default: false
        }
    }
}

@Suite struct WebSocketConnectionStateMachineTests {
    static let t0 = ContinuousClock.now
    static let key = WebSocketMaskingKey(1, 2, 3, 4)

    static func server(
        maxMessageSize: Int = 16 * 1024 * 1024,
        pingInterval: Duration? = nil,
        deflate: WebSocketDeflateParameters? = nil
    ) -> Machine {
        Machine(configuration: .init(role: .server, maxMessageSize: maxMessageSize, pingInterval: pingInterval), deflate: deflate, now: t0)
    }

    static func client() -> Machine {
        Machine(configuration: .init(role: .client, pingInterval: nil), now: t0)
    }

    /// A client-to-server frame (masked, as the server requires).
    static func frame(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true, rsv1: Bool = false) -> WebSocketFrame {
        WebSocketFrame(fin: fin, rsv1: rsv1, opcode: opcode, maskKey: key, data: ByteBuffer(bytes: bytes))
    }

    static func text(_ string: String, fin: Bool = true) -> WebSocketFrame { frame(.text, Array(string.utf8), fin: fin) }

    static func closeFrame(_ code: WebSocketCloseCode?, _ reason: String = "") -> WebSocketFrame {
        WebSocketClosePayload(code: code, reason: reason).frame()
    }

    static func failure(_ code: WebSocketCloseCode) -> Machine.Action {
        .sendAndCloseConnection(WebSocketFrame(opcode: .connectionClose, data: ByteBuffer(bytes: [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)])))
    }

    /// Compares a failure action by close code only (the reason text is informational).
    static func expectFailure(_ action: Machine.Action, _ code: WebSocketCloseCode, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .sendAndCloseConnection(let frame) = action, frame.opcode == .connectionClose,
            let payload = try? WebSocketClosePayload(parsing: frame.data)
        else {
            Issue.record("expected a Close \(code), got \(action)", sourceLocation: sourceLocation)
            return
        }
        #expect(payload.code == code, sourceLocation: sourceLocation)
    }

    // MARK: Masking direction (RFC 6455 §5.1)

    @Test func serverRejectsUnmaskedFrames() {
        var machine = Self.server()
        Self.expectFailure(machine.frameReceived(WebSocketFrame(opcode: .text, data: ByteBuffer(string: "hi")), now: Self.t0), .protocolError)
        #expect(!machine.isOpen && machine.closeCode == .protocolError)
    }

    @Test func clientRejectsMaskedFrames() {
        var machine = Self.client()
        Self.expectFailure(machine.frameReceived(Self.text("hi"), now: Self.t0), .protocolError)
    }

    @Test func clientAcceptsUnmaskedFrames() {
        var machine = Self.client()
        let action = machine.frameReceived(WebSocketFrame(opcode: .binary, data: ByteBuffer(bytes: [1, 2])), now: Self.t0)
        #expect(action == .deliver(WebSocketMessage(opcode: .binary, data: ByteBuffer(bytes: [1, 2]))))
    }

    // MARK: Messages and fragmentation (§5.4)

    @Test func deliversSingleFrameMessages() {
        var machine = Self.server()
        #expect(machine.frameReceived(Self.text("Hello"), now: Self.t0) == .deliver(WebSocketMessage(opcode: .text, data: ByteBuffer(string: "Hello"))))
        #expect(machine.frameReceived(Self.frame(.binary, [0xFF, 0x00]), now: Self.t0) == .deliver(WebSocketMessage(opcode: .binary, data: ByteBuffer(bytes: [0xFF, 0x00]))))
        #expect(machine.frameReceived(Self.text(""), now: Self.t0) == .deliver(WebSocketMessage(opcode: .text, data: ByteBuffer())))
    }

    @Test func reassemblesFragmentsWithInterleavedControlFrames() {
        var machine = Self.server()
        #expect(machine.frameReceived(Self.text("Hel", fin: false), now: Self.t0) == .none)
        #expect(machine.frameReceived(Self.frame(.ping, [7]), now: Self.t0) == .send(WebSocketFrame(opcode: .pong, data: ByteBuffer(bytes: [7]))))
        #expect(machine.frameReceived(Self.frame(.continuation, Array("lo, ".utf8), fin: false), now: Self.t0) == .none)
        #expect(machine.frameReceived(Self.frame(.pong, [1]), now: Self.t0) == .none)
        #expect(machine.frameReceived(Self.frame(.continuation, Array("world".utf8)), now: Self.t0)
            == .deliver(WebSocketMessage(opcode: .text, data: ByteBuffer(string: "Hello, world"))))
        // The next message starts afresh.
        #expect(machine.frameReceived(Self.frame(.binary, [1], fin: false), now: Self.t0) == .none)
        #expect(machine.frameReceived(Self.frame(.continuation, []), now: Self.t0) == .deliver(WebSocketMessage(opcode: .binary, data: ByteBuffer(bytes: [1]))))
    }

    @Test func continuationWithoutStartFails() {
        var machine = Self.server()
        Self.expectFailure(machine.frameReceived(Self.frame(.continuation, [1]), now: Self.t0), .protocolError)
    }

    @Test func newDataFrameDuringFragmentedMessageFails() {
        var machine = Self.server()
        _ = machine.frameReceived(Self.text("a", fin: false), now: Self.t0)
        Self.expectFailure(machine.frameReceived(Self.frame(.binary, [1]), now: Self.t0), .protocolError)
    }

    @Test func messageTooBigFails() {
        var single = Self.server(maxMessageSize: 10)
        Self.expectFailure(single.frameReceived(Self.frame(.binary, [UInt8](repeating: 0, count: 11)), now: Self.t0), .messageTooBig)
        var fragmented = Self.server(maxMessageSize: 10)
        #expect(fragmented.frameReceived(Self.frame(.binary, [UInt8](repeating: 0, count: 6), fin: false), now: Self.t0) == .none)
        Self.expectFailure(fragmented.frameReceived(Self.frame(.continuation, [UInt8](repeating: 0, count: 5)), now: Self.t0), .messageTooBig)
        var exact = Self.server(maxMessageSize: 10)
        _ = exact.frameReceived(Self.frame(.binary, [UInt8](repeating: 0, count: 6), fin: false), now: Self.t0)
        #expect(exact.frameReceived(Self.frame(.continuation, [UInt8](repeating: 0, count: 4)), now: Self.t0) != .none)
    }

    @Test func acceptsSixteenMebibyteMessages() {
        var machine = Self.server()
        let chunk = [UInt8](repeating: 0x61, count: 1 << 20)
        for index in 0..<15 {
            #expect(machine.frameReceived(Self.frame(index == 0 ? .text : .continuation, chunk, fin: false), now: Self.t0) == .none)
        }
        guard case .deliver(let message) = machine.frameReceived(Self.frame(.continuation, chunk), now: Self.t0) else {
            Issue.record("16 MiB message not delivered")
            return
        }
        #expect(message.data.readableBytes == 16 << 20 && message.isText)
    }

    // MARK: UTF-8 (§8.1)

    @Test func invalidUTF8InASingleFrameFailsWith1007() {
        var machine = Self.server()
        Self.expectFailure(machine.frameReceived(Self.frame(.text, [0x61, 0xC0, 0x80]), now: Self.t0), .invalidFramePayloadData)
    }

    @Test func invalidUTF8FailsFastInTheFirstBadFragment() {
        var machine = Self.server()
        #expect(machine.frameReceived(Self.frame(.text, [0x61], fin: false), now: Self.t0) == .none)
        Self.expectFailure(machine.frameReceived(Self.frame(.continuation, [0xED, 0xA0], fin: false), now: Self.t0), .invalidFramePayloadData)
    }

    @Test func sequencesMaySpanFragments() {
        var machine = Self.server()
        let euro = Array("€".utf8)
        #expect(machine.frameReceived(Self.frame(.text, [euro[0]], fin: false), now: Self.t0) == .none)
        #expect(machine.frameReceived(Self.frame(.continuation, [euro[1]], fin: false), now: Self.t0) == .none)
        #expect(machine.frameReceived(Self.frame(.continuation, [euro[2]]), now: Self.t0) == .deliver(WebSocketMessage(opcode: .text, data: ByteBuffer(string: "€"))))
    }

    @Test func truncatedSequenceAtMessageEndFails() {
        var machine = Self.server()
        _ = machine.frameReceived(Self.frame(.text, [0x61], fin: false), now: Self.t0)
        Self.expectFailure(machine.frameReceived(Self.frame(.continuation, [0xE2, 0x82]), now: Self.t0), .invalidFramePayloadData)
    }

    @Test func binaryIsNotValidated() {
        var machine = Self.server()
        #expect(machine.frameReceived(Self.frame(.binary, [0xFF]), now: Self.t0) != .none)
        #expect(machine.isOpen)
    }

    // MARK: Ping and pong (§5.5.2, §5.5.3)

    @Test func pingIsAnsweredWithTheSamePayload() {
        var machine = Self.server()
        let payload = randomBytes(125)
        #expect(machine.frameReceived(Self.frame(.ping, payload), now: Self.t0) == .send(WebSocketFrame(opcode: .pong, data: ByteBuffer(bytes: payload))))
        #expect(machine.frameReceived(Self.frame(.ping, []), now: Self.t0) == .send(WebSocketFrame(opcode: .pong, data: ByteBuffer())))
    }

    @Test func keepAlivePingsAndPongTimeout() throws {
        var machine = Machine(configuration: .init(role: .server, pingInterval: .seconds(30), pongTimeout: .seconds(10)), now: Self.t0)
        #expect(machine.nextDeadline == Self.t0 + .seconds(30))
        #expect(machine.timerFired(now: Self.t0 + .seconds(29)) == .none)

        guard case .send(let ping) = machine.timerFired(now: Self.t0 + .seconds(30)), ping.opcode == .ping else {
            Issue.record("expected a ping")
            return
        }
        #expect(machine.nextDeadline == Self.t0 + .seconds(40))
        // An unrelated pong is not the answer; like any frame it shows the peer alive (another pong timeout).
        #expect(machine.frameReceived(Self.frame(.pong, [9]), now: Self.t0 + .seconds(31)) == .none)
        #expect(machine.nextDeadline == Self.t0 + .seconds(41))
        // The echo of our ping is; the next ping is due an interval later.
        #expect(machine.frameReceived(Self.frame(.pong, ping.data.bytes), now: Self.t0 + .seconds(32)) == .none)
        #expect(machine.nextDeadline == Self.t0 + .seconds(62))

        guard case .send(let second) = machine.timerFired(now: Self.t0 + .seconds(62)) else {
            Issue.record("expected a second ping")
            return
        }
        #expect(second.data != ping.data, "each ping carries a fresh payload")
        Self.expectFailure(machine.timerFired(now: Self.t0 + .seconds(72)), .goingAway)
        #expect(!machine.isOpen && machine.nextDeadline == nil)
    }

    /// A slow reader reaches our ping only after its backlog: while it shows life (frames arrive, its TCP takes in
    /// our bytes) it gets more time; once it stops, the pong timeout fails it.
    @Test func aPeerThatShowsLifeGetsMoreTimeForItsPong() throws {
        var machine = Machine(configuration: .init(role: .server, pingInterval: .seconds(30), pongTimeout: .seconds(10)), now: Self.t0)
        machine.peerShowedLife(now: Self.t0 + .seconds(5))
        #expect(machine.nextDeadline == Self.t0 + .seconds(30), "no pong awaited: nothing changes")
        guard case .send(let ping) = machine.timerFired(now: Self.t0 + .seconds(30)) else {
            Issue.record("expected a ping")
            return
        }
        machine.peerShowedLife(now: Self.t0 + .seconds(38))
        #expect(machine.nextDeadline == Self.t0 + .seconds(48))
        #expect(machine.timerFired(now: Self.t0 + .seconds(40)) == .none)
        #expect(machine.frameReceived(Self.text("ack"), now: Self.t0 + .seconds(47)) == .deliver(WebSocketMessage(opcode: .text, data: ByteBuffer(string: "ack"))))
        #expect(machine.nextDeadline == Self.t0 + .seconds(57))
        #expect(machine.frameReceived(Self.frame(.pong, ping.data.bytes), now: Self.t0 + .seconds(50)) == .none)
        #expect(machine.nextDeadline == Self.t0 + .seconds(80))
        guard case .send = machine.timerFired(now: Self.t0 + .seconds(80)) else {
            Issue.record("expected a second ping")
            return
        }
        Self.expectFailure(machine.timerFired(now: Self.t0 + .seconds(90)), .goingAway)
    }

    @Test func noPingsWhenDisabled() {
        let machine = Self.server(pingInterval: nil)
        #expect(machine.nextDeadline == nil)
    }

    // MARK: Closing handshake (§5.5.1, §7)

    @Test func serverEchoesTheCloseCodeThenClosesTCP() {
        var machine = Self.server()
        var close = Self.closeFrame(.normalClosure, "bye")
        close.maskKey = Self.key
        #expect(machine.frameReceived(close, now: Self.t0) == .sendAndCloseConnection(Self.closeFrame(.normalClosure)))
        #expect(machine.closeCode == .normalClosure && !machine.isOpen)
        #expect(machine.frameReceived(Self.text("late"), now: Self.t0) == .none)
    }

    @Test func emptyCloseIsAnsweredWithAnEmptyClose() {
        var machine = Self.server()
        #expect(machine.frameReceived(Self.frame(.connectionClose, []), now: Self.t0) == .sendAndCloseConnection(Self.closeFrame(nil)))
        #expect(machine.closeCode == .noStatusReceived)
    }

    @Test func applicationCodesAreEchoed() {
        var machine = Self.server()
        #expect(machine.frameReceived(Self.frame(.connectionClose, [0x0F, 0xA0]), now: Self.t0) == .sendAndCloseConnection(Self.closeFrame(WebSocketCloseCode(rawValue: 4000))))
    }

    @Test func invalidClosePayloadsFail() {
        var oneByte = Self.server()
        Self.expectFailure(oneByte.frameReceived(Self.frame(.connectionClose, [0x03]), now: Self.t0), .protocolError)
        for code: UInt16 in [999, 1004, 1005, 1006, 1015, 1016, 2000, 5000] {
            var machine = Self.server()
            Self.expectFailure(machine.frameReceived(Self.frame(.connectionClose, [UInt8(code >> 8), UInt8(code & 0xFF)]), now: Self.t0), .protocolError)
        }
        var badReason = Self.server()
        Self.expectFailure(badReason.frameReceived(Self.frame(.connectionClose, [0x03, 0xE8, 0xED, 0xA0, 0x80]), now: Self.t0), .invalidFramePayloadData)
    }

    @Test func closeDuringAFragmentedMessageIsHonoured() {
        var machine = Self.server()
        _ = machine.frameReceived(Self.text("part", fin: false), now: Self.t0)
        #expect(machine.frameReceived(Self.frame(.connectionClose, [0x03, 0xE8]), now: Self.t0) == .sendAndCloseConnection(Self.closeFrame(.normalClosure)))
    }

    @Test func weCloseFirstAndThePeerAnswers() {
        var machine = Self.server()
        #expect(machine.close(code: .goingAway, reason: "shutdown", now: Self.t0) == .send(Self.closeFrame(.goingAway, "shutdown")))
        #expect(!machine.isOpen && machine.nextDeadline == Self.t0 + .seconds(5))
        #expect(machine.close(now: Self.t0) == .none, "only one Close is sent")
        #expect(machine.frameReceived(Self.text("still arriving"), now: Self.t0) == .none)
        #expect(machine.frameReceived(Self.frame(.ping, []), now: Self.t0) == .none)
        #expect(machine.frameReceived(Self.frame(.connectionClose, [0x03, 0xE9]), now: Self.t0) == .closeConnection)
        #expect(machine.closeCode == .goingAway)
    }

    @Test func closeTimeoutClosesTCP() {
        var machine = Self.server()
        _ = machine.close(now: Self.t0)
        #expect(machine.timerFired(now: Self.t0 + .seconds(4)) == .none)
        #expect(machine.timerFired(now: Self.t0 + .seconds(5)) == .closeConnection)
        #expect(machine.nextDeadline == nil)
    }

    @Test func clientEchoesCloseAndWaitsForTheServerToCloseTCP() {
        var machine = Self.client()
        #expect(machine.frameReceived(Self.closeFrame(.normalClosure), now: Self.t0) == .send(Self.closeFrame(.normalClosure)))
        #expect(machine.nextDeadline == Self.t0 + .seconds(5))
        #expect(machine.timerFired(now: Self.t0 + .seconds(5)) == .closeConnection)
    }

    @Test func clientClosingFirstWaitsForTCPCloseAfterTheAnswer() {
        var machine = Self.client()
        _ = machine.close(now: Self.t0)
        #expect(machine.frameReceived(Self.closeFrame(.normalClosure), now: Self.t0 + .seconds(1)) == .none)
        #expect(machine.nextDeadline == Self.t0 + .seconds(6))
        machine.connectionClosed()
        #expect(machine.nextDeadline == nil && machine.closeCode == .normalClosure)
    }

    @Test func protocolErrorAfterOurCloseJustClosesTCP() {
        var machine = Self.server()
        _ = machine.close(now: Self.t0)
        #expect(machine.errorCaught(.reservedOpcode, now: Self.t0) == .closeConnection)
    }

    @Test func parserErrorsMapToCloseCodes() {
        var protocolError = Self.server()
        Self.expectFailure(protocolError.errorCaught(.nonMinimalLength, now: Self.t0), .protocolError)
        var tooBig = Self.server()
        Self.expectFailure(tooBig.errorCaught(.frameTooLarge, now: Self.t0), .messageTooBig)
        #expect(tooBig.errorCaught(.frameTooLarge, now: Self.t0) == .none, "already failed")
    }

    @Test func abruptTCPCloseIsAbnormal() {
        var machine = Self.server()
        machine.connectionClosed()
        #expect(machine.closeCode == .abnormalClosure)
        #expect(machine.frameReceived(Self.text("x"), now: Self.t0) == .none)
    }

    /// The peer's Close is kept, code and reason, whoever closed first: the closing handshake is then complete
    /// (RFC 6455 §7.1.4). A failed or dropped connection has none.
    @Test func thePeersCloseIsKeptOnceTheClosingHandshakeIsComplete() {
        var peerFirst = Self.client()
        #expect(peerFirst.receivedClose == nil)
        _ = peerFirst.frameReceived(Self.closeFrame(WebSocketCloseCode(rawValue: 4409), "epoch mismatch"), now: Self.t0)
        #expect(peerFirst.receivedClose == WebSocketClosePayload(code: WebSocketCloseCode(rawValue: 4409), reason: "epoch mismatch"))
        _ = peerFirst.frameReceived(Self.closeFrame(.normalClosure, "again"), now: Self.t0)
        #expect(peerFirst.receivedClose?.reason == "epoch mismatch", "frames after the handshake are ignored")

        var empty = Self.client()
        _ = empty.frameReceived(WebSocketFrame(opcode: .connectionClose, data: ByteBuffer()), now: Self.t0)
        #expect(empty.receivedClose == WebSocketClosePayload(code: nil) && empty.closeCode == .noStatusReceived)

        var weFirst = Self.client()
        _ = weFirst.close(code: .goingAway, now: Self.t0)
        #expect(weFirst.receivedClose == nil, "our Close alone is no handshake")
        _ = weFirst.frameReceived(Self.closeFrame(.goingAway), now: Self.t0)
        #expect(weFirst.receivedClose == WebSocketClosePayload(code: .goingAway))

        var failed = Self.client()
        _ = failed.frameReceived(WebSocketFrame(opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xE7])), now: Self.t0)  // 999
        #expect(failed.receivedClose == nil && failed.closeCode == .protocolError)
        var dropped = Self.client()
        dropped.connectionClosed()
        #expect(dropped.receivedClose == nil)
    }

    // MARK: permessage-deflate (RFC 7692)

    static let helloCompressed: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]

    @Test func inflatesCompressedMessages() {
        var machine = Self.server(deflate: WebSocketDeflateParameters())
        #expect(machine.frameReceived(Self.frame(.text, Self.helloCompressed, rsv1: true), now: Self.t0) == .deliver(WebSocketMessage(opcode: .text, data: ByteBuffer(string: "Hello"))))
        // RFC 7692 §7.2.3.2: the second message uses the first one's window.
        #expect(machine.frameReceived(Self.frame(.text, [0xF2, 0x00, 0x11, 0x00, 0x00], rsv1: true), now: Self.t0) == .deliver(WebSocketMessage(opcode: .text, data: ByteBuffer(string: "Hello"))))
        // Uncompressed messages stay allowed.
        #expect(machine.frameReceived(Self.text("plain"), now: Self.t0) == .deliver(WebSocketMessage(opcode: .text, data: ByteBuffer(string: "plain"))))
    }

    @Test func inflatesFragmentedCompressedMessages() {
        var machine = Self.server(deflate: WebSocketDeflateParameters())
        #expect(machine.frameReceived(Self.frame(.text, [0xF2, 0x48, 0xCD], fin: false, rsv1: true), now: Self.t0) == .none)
        #expect(machine.frameReceived(Self.frame(.continuation, [0xC9, 0xC9, 0x07, 0x00]), now: Self.t0) == .deliver(WebSocketMessage(opcode: .text, data: ByteBuffer(string: "Hello"))))
    }

    @Test func rsv1OnContinuationFails() {
        var machine = Self.server(deflate: WebSocketDeflateParameters())
        _ = machine.frameReceived(Self.frame(.text, [0xF2, 0x48, 0xCD], fin: false, rsv1: true), now: Self.t0)
        Self.expectFailure(machine.frameReceived(Self.frame(.continuation, [0xC9], rsv1: true), now: Self.t0), .protocolError)
    }

    @Test func rsv1WithoutDeflateFails() {
        var machine = Self.server()
        Self.expectFailure(machine.frameReceived(Self.frame(.text, Self.helloCompressed, rsv1: true), now: Self.t0), .protocolError)
    }

    @Test func decompressedSizeIsLimited() {
        let bomb = WebSocketDeflateCompressor(configuration: .init()).compress(ByteBuffer(repeating: 0x61, count: 1 << 20))
        var machine = Self.server(maxMessageSize: 1000, deflate: WebSocketDeflateParameters())
        Self.expectFailure(machine.frameReceived(Self.frame(.binary, bomb.bytes, rsv1: true), now: Self.t0), .messageTooBig)
    }

    @Test func compressedTextIsValidated() {
        let bad = WebSocketDeflateCompressor(configuration: .init()).compress(ByteBuffer(bytes: [0x61, 0xFF, 0x62]))
        var machine = Self.server(deflate: WebSocketDeflateParameters())
        Self.expectFailure(machine.frameReceived(Self.frame(.text, bad.bytes, rsv1: true), now: Self.t0), .invalidFramePayloadData)
    }
}

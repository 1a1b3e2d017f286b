import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketClosePayloadTests {
    @Test func parsesEmptyBodyAsNoCode() throws {
        let payload = try WebSocketClosePayload(parsing: ByteBuffer())
        #expect(payload.code == nil && payload.reason.isEmpty)
    }

    @Test func parsesCodeAndReason() throws {
        let payload = try WebSocketClosePayload(parsing: ByteBuffer(bytes: [0x03, 0xE8] + Array("bye ☃".utf8)))
        #expect(payload.code == .normalClosure)
        #expect(payload.reason == "bye ☃")
    }

    @Test func rejectsOneByteBody() {
        #expect(throws: WebSocketError.invalidClosePayload) { try WebSocketClosePayload(parsing: ByteBuffer(bytes: [0x03])) }
    }

    @Test(arguments: [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] as [UInt16])
    func rejectsCodesInvalidOnTheWire(code: UInt16) {
        var body = ByteBuffer()
        body.writeInteger(code)
        #expect(throws: WebSocketError.invalidCloseCode) { try WebSocketClosePayload(parsing: body) }
    }

    @Test func rejectsInvalidUTF8Reason() {
        // Autobahn 7.5.1's reason bytes: a UTF-16 surrogate encoded in UTF-8 (ED A0 80).
        let body = ByteBuffer(bytes: [0x03, 0xE8, 0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64])
        #expect(throws: WebSocketError.invalidUTF8) { try WebSocketClosePayload(parsing: body) }
        #expect(throws: WebSocketError.invalidUTF8) { try WebSocketClosePayload(parsing: ByteBuffer(bytes: [0x03, 0xE8, 0xE2, 0x82])) }
    }

    @Test func writesCodeAndReason() {
        var buffer = ByteBuffer()
        WebSocketClosePayload(code: .goingAway, reason: "restart").write(into: &buffer)
        #expect(buffer.bytes == [0x03, 0xE9] + Array("restart".utf8))
        #expect(WebSocketClosePayload(code: .goingAway, reason: "restart").encodedSize == 9)
    }

    @Test func writesNothingWithoutACode() {
        var buffer = ByteBuffer()
        WebSocketClosePayload(code: nil, reason: "ignored").write(into: &buffer)
        #expect(buffer.readableBytes == 0)
    }

    @Test func cutsLongReasonsAtACharacterBoundary() throws {
        let reason = String(repeating: "a", count: 122) + "€€"  // 122 + 6 bytes: the first € would straddle 123
        var buffer = ByteBuffer()
        WebSocketClosePayload(code: .normalClosure, reason: reason).write(into: &buffer)
        #expect(buffer.readableBytes == 2 + 122)
        let parsed = try WebSocketClosePayload(parsing: buffer)
        #expect(parsed.reason == String(repeating: "a", count: 122))

        var exact = ByteBuffer()
        WebSocketClosePayload(code: .normalClosure, reason: String(repeating: "b", count: 200)).write(into: &exact)
        #expect(exact.readableBytes == 125)
    }

    @Test func buildsACloseFrame() {
        let frame = WebSocketClosePayload(code: .protocolError).frame()
        #expect(frame.opcode == .connectionClose && frame.fin)
        #expect(frame.data.bytes == [0x03, 0xEA])
    }
}

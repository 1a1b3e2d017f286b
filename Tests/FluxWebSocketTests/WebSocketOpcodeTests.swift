import FluxWebSocket
import Testing

@Suite struct WebSocketOpcodeTests {
    @Test func knownOpcodesHaveTheirWireValues() {
        #expect(WebSocketOpcode.continuation.rawValue == 0x0)
        #expect(WebSocketOpcode.text.rawValue == 0x1)
        #expect(WebSocketOpcode.binary.rawValue == 0x2)
        #expect(WebSocketOpcode.connectionClose.rawValue == 0x8)
        #expect(WebSocketOpcode.ping.rawValue == 0x9)
        #expect(WebSocketOpcode.pong.rawValue == 0xA)
    }

    @Test func classifiesControlAndReserved() {
        let reserved: [UInt8] = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]
        for value in UInt8(0)...0xF {
            let opcode = WebSocketOpcode(rawValue: value)!
            #expect(opcode.isControl == (value >= 0x8))
            #expect(opcode.isReserved == reserved.contains(value))
        }
    }

    @Test func rejectsValuesWiderThanFourBits() {
        #expect(WebSocketOpcode(rawValue: 0x10) == nil)
        #expect(WebSocketOpcode(rawValue: 0xFF) == nil)
    }

    @Test func describesItself() {
        #expect(WebSocketOpcode.ping.description == "ping")
        #expect(WebSocketOpcode(rawValue: 0xB)!.description == "reserved(0xb)")
    }
}

import FluxWebSocket
import Testing

@Suite struct WebSocketCloseCodeTests {
    /// RFC 6455 §7.4 as the Autobahn TestSuite (cases 7.7.x and 7.9.x) checks it.
    @Test func wireValidityMatchesAutobahn() {
        let valid: [UInt16] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
        let invalid: [UInt16] = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
        for code in valid { #expect(WebSocketCloseCode(rawValue: code).isValidOnWire, "\(code)") }
        for code in invalid { #expect(!WebSocketCloseCode(rawValue: code).isValidOnWire, "\(code)") }
    }

    @Test func exhaustiveRanges() {
        for raw in UInt16(0)...UInt16(5100) {
            let expected = (1000...1003).contains(raw) || (1007...1014).contains(raw) || (3000...4999).contains(raw)
            #expect(WebSocketCloseCode(rawValue: raw).isValidOnWire == expected)
        }
    }

    @Test func namedCodes() {
        #expect(WebSocketCloseCode.normalClosure.rawValue == 1000)
        #expect(WebSocketCloseCode.protocolError.rawValue == 1002)
        #expect(WebSocketCloseCode.invalidFramePayloadData.rawValue == 1007)
        #expect(WebSocketCloseCode.messageTooBig.rawValue == 1009)
    }
}

import FluxWebSocket
import Testing

@Suite struct WebSocketDeflateParametersTests {
    @Test func headerValueListsOnlyWhatIsSet() {
        #expect(WebSocketDeflateParameters().headerValue == "permessage-deflate")
        #expect(WebSocketDeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 8).headerValue
            == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8")
    }

    @Test func rolesPickTheRightSide() {
        let agreed = WebSocketDeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: false, serverMaxWindowBits: 10, clientMaxWindowBits: 12)
        #expect(agreed.compressorConfiguration(isServer: true) == .init(windowBits: 10, noContextTakeover: true))
        #expect(agreed.decompressorConfiguration(isServer: true) == .init(windowBits: 12, noContextTakeover: false))
        #expect(agreed.compressorConfiguration(isServer: false) == .init(windowBits: 12, noContextTakeover: false))
        #expect(agreed.decompressorConfiguration(isServer: false) == .init(windowBits: 10, noContextTakeover: true))
    }
}

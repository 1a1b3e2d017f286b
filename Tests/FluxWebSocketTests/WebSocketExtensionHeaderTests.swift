@testable import FluxWebSocket
import Testing

@Suite struct WebSocketExtensionHeaderTests {
    typealias Parameter = WebSocketExtensionHeader.Parameter

    @Test func parsesListsAndParameters() {
        let parsed = WebSocketExtensionHeader.parse(["permessage-deflate; client_max_window_bits, x-foo;A=1", "Other"])
        #expect(parsed == [
            WebSocketExtensionHeader(name: "permessage-deflate", parameters: [Parameter(name: "client_max_window_bits", value: nil)]),
            WebSocketExtensionHeader(name: "x-foo", parameters: [Parameter(name: "a", value: "1")]),
            WebSocketExtensionHeader(name: "other", parameters: []),
        ])
    }

    @Test func unquotesValuesAndKeepsQuotedSeparators() {
        let parsed = WebSocketExtensionHeader.parse(["ext; a=\"10\"; b=\"x,y\""])
        #expect(parsed.count == 1)
        #expect(parsed.first?.parameters.first == Parameter(name: "a", value: "10"))
    }

    @Test func toleratesWhitespaceAndEmptyElements() {
        let parsed = WebSocketExtensionHeader.parse([" ,  permessage-deflate ;  server_no_context_takeover  ,"])
        #expect(parsed == [WebSocketExtensionHeader(name: "permessage-deflate", parameters: [Parameter(name: "server_no_context_takeover", value: nil)])])
    }

    @Test func skipsMalformedElements() {
        #expect(WebSocketExtensionHeader.parse(["=x; a=1", "ext; a="]).isEmpty)
    }
}

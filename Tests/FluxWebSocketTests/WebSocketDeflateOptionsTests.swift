@testable import FluxWebSocket
import Testing

@Suite struct WebSocketDeflateOptionsTests {
    static func negotiate(_ header: String, options: WebSocketDeflateOptions = WebSocketDeflateOptions()) -> WebSocketDeflateParameters? {
        options.negotiateAsServer(offers: WebSocketExtensionHeader.parse([header]))
    }

    @Test func plainOffer() {
        #expect(Self.negotiate("permessage-deflate") == WebSocketDeflateParameters())
        #expect(WebSocketDeflateParameters().headerValue == "permessage-deflate")
    }

    @Test func echoesContextTakeoverRequests() {
        #expect(Self.negotiate("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
            == WebSocketDeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true))
    }

    @Test func serverImposesItsOwnSettings() {
        let options = WebSocketDeflateOptions(serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 12, clientMaxWindowBits: 10)
        #expect(Self.negotiate("permessage-deflate", options: options)
            == WebSocketDeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 12))
        #expect(Self.negotiate("permessage-deflate; client_max_window_bits", options: options)?.clientMaxWindowBits == 10)
    }

    @Test func windowBitsAreTheMinimumOfBothSides() {
        let options = WebSocketDeflateOptions(serverMaxWindowBits: 12, clientMaxWindowBits: 11)
        let agreed = Self.negotiate("permessage-deflate; server_max_window_bits=10; client_max_window_bits=13", options: options)
        #expect(agreed == WebSocketDeflateParameters(serverMaxWindowBits: 10, clientMaxWindowBits: 11))
        #expect(agreed?.headerValue == "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11")
    }

    @Test func clientWindowOnlyWhenOffered() {
        let agreed = Self.negotiate("permessage-deflate", options: WebSocketDeflateOptions(clientMaxWindowBits: 9))
        #expect(agreed?.clientMaxWindowBits == nil)
    }

    @Test func declinesInvalidOffersAndTakesTheNextOne() {
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            // Found by Tests/Fuzz FuzzExtensionHeader: Int("+10") parses, but a sign is not 1*DIGIT.
            "permessage-deflate; server_max_window_bits=+10",
            "permessage-deflate; client_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=\"+10\"",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; unknown",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "x-webkit-deflate-frame",
        ] {
            #expect(Self.negotiate(bad) == nil, "\(bad)")
        }
        #expect(Self.negotiate("permessage-deflate; server_max_window_bits=7, permessage-deflate; client_no_context_takeover")
            == WebSocketDeflateParameters(clientNoContextTakeover: true))
    }

    @Test func quotedValuesAreAccepted() {
        #expect(Self.negotiate("permessage-deflate; server_max_window_bits=\"10\"")?.serverMaxWindowBits == 10)
    }

    @Test func offerHeader() {
        #expect(WebSocketDeflateOptions().offerHeaderValue == "permessage-deflate; client_max_window_bits")
        #expect(WebSocketDeflateOptions(serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 9).offerHeaderValue
            == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9")
    }
}

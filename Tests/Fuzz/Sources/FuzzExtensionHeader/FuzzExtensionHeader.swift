@testable import FluxWebSocket
import FuzzSupport
import NIOHTTP1

// Parses arbitrary `Sec-WebSocket-Extensions` values (RFC 6455 §9.1) and negotiates permessage-deflate on
// them in both roles (RFC 7692 §7.1).
//
// Input layout: [options] [header text...]; the text is split into header fields at newlines.
// options bits 0–2 / 3–5: our server / client max window bits 8–15; bit 6: server_no_context_takeover;
// bit 7: client_no_context_takeover.
//
// Checks:
// - parsed names and parameter names are lowercase and non-empty, values non-empty and without quotes;
// - window-bits values are accepted only when written as plain decimal digits (RFC 7692 §7.1.2.1);
// - server role: an agreed parameter set has windows 8–15 within both sides' limits, and its response header
//   parses back, as a valid response, to the same parameters;
// - client role: a response the client accepts has windows within what it offered, and the options' own
//   offer header is accepted by a server with the same options.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    let options = WebSocketDeflateOptions(
        serverNoContextTakeover: flags & 0x40 != 0,
        clientNoContextTakeover: flags & 0x80 != 0,
        serverMaxWindowBits: 8 + Int(flags & 7),
        clientMaxWindowBits: 8 + Int((flags >> 3) & 7)
    )
    let text = String(decoding: input.rest(), as: UTF8.self)
    let values = text.split(whereSeparator: \.isNewline).map(String.init)

    let elements = WebSocketExtensionHeader.parse(values)
    for element in elements {
        fuzzCheck(!element.name.isEmpty && element.name == element.name.lowercased(), "bad extension name \(element.name)")
        for parameter in element.parameters {
            fuzzCheck(!parameter.name.isEmpty && parameter.name == parameter.name.lowercased(), "bad parameter name \(parameter.name)")
            if let value = parameter.value {
                fuzzCheck(!value.isEmpty && !value.contains("\""), "bad parameter value \(value)")
            }
        }
    }

    // RFC 7692 §7.1.2.1: window values are 1*DIGIT without leading zeros; only such values may be accepted.
    for element in elements where element.name == WebSocketDeflateParameters.extensionName {
        for isResponse in [false, true] where WebSocketDeflateOffer(element, isResponse: isResponse) != nil {
            for parameter in element.parameters where parameter.name.hasSuffix("_max_window_bits") {
                guard let value = parameter.value else { continue }
                fuzzCheck(value.utf8.allSatisfy { (0x30...0x39).contains($0) } && !value.hasPrefix("0"),
                          "accepted \(parameter.name)=\(value), which is not a decimal number without leading zeros")
            }
        }
    }

    // Server role.
    if let agreed = options.negotiateAsServer(offers: elements) {
        for bits in [agreed.serverMaxWindowBits, agreed.clientMaxWindowBits] {
            fuzzCheck(bits.map { (8...15).contains($0) } ?? true, "window bits \(String(describing: bits)) out of range")
        }
        fuzzCheck((agreed.serverMaxWindowBits ?? 15) <= options.serverMaxWindowBits || agreed.serverMaxWindowBits == nil,
                  "server window \(String(describing: agreed.serverMaxWindowBits)) over our \(options.serverMaxWindowBits)")
        fuzzCheck(!options.serverNoContextTakeover || agreed.serverNoContextTakeover, "dropped our server_no_context_takeover")
        let response = WebSocketExtensionHeader.parse([agreed.headerValue])
        fuzzCheck(response.count == 1, "our response header \(agreed.headerValue) does not parse")
        let parsed = WebSocketDeflateOffer(response[0], isResponse: true)
        fuzzCheck(parsed != nil, "our response \(agreed.headerValue) is not a valid response")
        if let parsed {
            fuzzCheck(parsed.serverNoContextTakeover == agreed.serverNoContextTakeover
                      && parsed.clientNoContextTakeover == agreed.clientNoContextTakeover
                      && parsed.serverMaxWindowBits == agreed.serverMaxWindowBits
                      && parsed.clientMaxWindowBits == agreed.clientMaxWindowBits.map { .some($0) },
                      "response \(agreed.headerValue) parses back differently")
        }
    }

    // Client role: the input as the server's answer to our offer.
    for element in elements where element.name == WebSocketDeflateParameters.extensionName {
        guard let accepted = try? options.acceptResponse(element) else { continue }
        fuzzCheck((accepted.clientMaxWindowBits ?? 15) <= options.clientMaxWindowBits, "client window over our offer")
        fuzzCheck((accepted.serverMaxWindowBits ?? 15) <= options.serverMaxWindowBits || options.serverMaxWindowBits == 15,
                  "server window over our offer")
        fuzzCheck(!options.clientNoContextTakeover || accepted.clientNoContextTakeover, "dropped our client_no_context_takeover")
        // Both directions must be usable by zlib as configured.
        _ = WebSocketDeflateCompressor(configuration: accepted.compressorConfiguration(isServer: false))
        _ = WebSocketDeflateDecompressor(configuration: accepted.decompressorConfiguration(isServer: false))
    }

    // Our own offer is one our own server accepts.
    let offer = WebSocketExtensionHeader.parse([options.offerHeaderValue])
    fuzzCheck(options.negotiateAsServer(offers: offer) != nil, "our offer \(options.offerHeaderValue) is refused by our server")
    return 0
}

import FluxTesting

/// One permessage-deflate element of a `Sec-WebSocket-Extensions` header, parsed strictly by the test
/// (RFC 7692 §7.1): only the four parameters, each at most once, window sizes `8`–`15`.
struct DeflateExtension: Sendable, Equatable {
    var serverNoContextTakeover = false
    var clientNoContextTakeover = false
    var serverMaxWindowBits: Int?
    /// `nil` when absent, `.some(nil)` when bare (allowed in an offer only), `.some(n)` with a value.
    var clientMaxWindowBits: Int??

    /// The header value for this element.
    var headerValue: String {
        var value = "permessage-deflate"
        if serverNoContextTakeover { value += "; server_no_context_takeover" }
        if clientNoContextTakeover { value += "; client_no_context_takeover" }
        if let serverMaxWindowBits { value += "; server_max_window_bits=\(serverMaxWindowBits)" }
        switch clientMaxWindowBits {
        case .some(.some(let bits)): value += "; client_max_window_bits=\(bits)"
        case .some(.none): value += "; client_max_window_bits"
        case .none: break
        }
        return value
    }

    /// Parses a whole header value (one or more comma-separated elements); a problem is returned as text.
    static func parse(_ header: String) throws -> [DeflateExtension] {
        var elements: [DeflateExtension] = []
        for element in header.split(separator: ",") {
            let pieces = element.split(separator: ";").map { $0.trimmingCharacters(in: " \t") }
            guard pieces.first == "permessage-deflate" else { throw ConformanceProblem(description: "unknown extension in \"\(header)\"") }
            var parsed = DeflateExtension()
            var seen: Set<String> = []
            for piece in pieces.dropFirst() {
                let parts = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: " \t") }
                let name = parts[0]
                var value = parts.count == 2 ? parts[1] : nil
                if let quoted = value, quoted.count >= 2, quoted.hasPrefix("\""), quoted.hasSuffix("\"") {
                    value = String(quoted.dropFirst().dropLast())
                }
                guard seen.insert(name).inserted else { throw ConformanceProblem(description: "\(name) repeated in \"\(header)\"") }
                func bits(_ value: String?) -> Int? {
                    guard let value, !value.hasPrefix("0"), value.allSatisfy(\.isASCII), let bits = Int(value),
                        (8...15).contains(bits), !value.hasPrefix("+")
                    else { return nil }
                    return bits
                }
                switch name {
                case "server_no_context_takeover" where value == nil: parsed.serverNoContextTakeover = true
                case "client_no_context_takeover" where value == nil: parsed.clientNoContextTakeover = true
                case "server_max_window_bits":
                    guard let bits = bits(value) else { throw ConformanceProblem(description: "bad server_max_window_bits in \"\(header)\"") }
                    parsed.serverMaxWindowBits = bits
                case "client_max_window_bits":
                    if value == nil {
                        parsed.clientMaxWindowBits = .some(nil)
                    } else {
                        guard let bits = bits(value) else { throw ConformanceProblem(description: "bad client_max_window_bits in \"\(header)\"") }
                        parsed.clientMaxWindowBits = .some(bits)
                    }
                default:
                    throw ConformanceProblem(description: "unknown or malformed parameter \(piece) in \"\(header)\"")
                }
            }
            elements.append(parsed)
        }
        guard !elements.isEmpty else { throw ConformanceProblem(description: "empty extension header") }
        return elements
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var text = self
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return String(text)
    }
}

/// What both ends use after the handshake: windows and context takeover of each direction.
struct DeflateAgreement: Sendable, Equatable {
    var serverWindowBits = 15
    var clientWindowBits = 15
    var serverNoContextTakeover = false
    var clientNoContextTakeover = false

    /// Checks a server's response against the offers it answers (RFC 7692 §5, §7.1) and derives the agreement.
    ///
    /// A response must hold one element that is valid for one of the offers: `server_no_context_takeover`
    /// granted if requested, `server_max_window_bits` present and not larger if requested,
    /// `client_max_window_bits` only if offered, with a value, not larger than an offered value.
    static func validate(response: String, offers: [DeflateExtension]) throws -> DeflateAgreement {
        let elements = try DeflateExtension.parse(response)
        guard elements.count == 1, let answer = elements.first else {
            throw ConformanceProblem(description: "the response must accept exactly one permessage-deflate element: \"\(response)\"")
        }
        var problems: [String] = []
        for offer in offers {
            if offer.serverNoContextTakeover && !answer.serverNoContextTakeover {
                problems.append("server_no_context_takeover requested but not granted")
                continue
            }
            if let requested = offer.serverMaxWindowBits, (answer.serverMaxWindowBits ?? 16) > requested {
                problems.append("server_max_window_bits=\(requested) requested, answered \(answer.serverMaxWindowBits.map(String.init) ?? "nothing")")
                continue
            }
            var clientWindow = 15
            if case .some(.some(let offered)) = offer.clientMaxWindowBits { clientWindow = offered }
            if let answered = answer.clientMaxWindowBits {
                guard case .some(let bits) = answered else {
                    problems.append("client_max_window_bits without a value in a response")
                    continue
                }
                guard offer.clientMaxWindowBits != nil else {
                    problems.append("client_max_window_bits answered but not offered")
                    continue
                }
                guard bits <= clientWindow else {
                    problems.append("client_max_window_bits=\(bits) exceeds the offered \(clientWindow)")
                    continue
                }
                clientWindow = bits
            }
            return DeflateAgreement(
                    serverWindowBits: answer.serverMaxWindowBits ?? 15,
                    clientWindowBits: clientWindow,
                    serverNoContextTakeover: answer.serverNoContextTakeover,
                    clientNoContextTakeover: answer.clientNoContextTakeover || offer.clientNoContextTakeover)
        }
        throw ConformanceProblem(description: "\"\(response)\" is valid for none of the offers: \(problems.joined(separator: "; "))")
    }
}

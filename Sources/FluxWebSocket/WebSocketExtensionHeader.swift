/// Parsing of `Sec-WebSocket-Extensions` header values (RFC 6455 §9.1):
/// `extension-list = 1#extension`, `extension = token *( ";" param )`, `param = token [ "=" (token | quoted-string) ]`.
struct WebSocketExtensionHeader: Hashable, Sendable {
    /// One `name=value` (or bare `name`) parameter; quoted values are unquoted.
    struct Parameter: Hashable, Sendable {
        var name: String
        var value: String?
    }

    /// The extension token, lowercased for comparison.
    var name: String
    /// Parameters in order, names lowercased.
    var parameters: [Parameter]

    /// Parses every header field value into extensions, in order. Malformed elements are skipped.
    static func parse(_ values: [String]) -> [WebSocketExtensionHeader] {
        values.flatMap { parse(value: $0) }
    }

    private static func parse(value: String) -> [WebSocketExtensionHeader] {
        var result: [WebSocketExtensionHeader] = []
        for element in split(value, on: ",") {
            let pieces = split(element, on: ";").map { $0.trimmingASCIISpaces() }
            guard let name = pieces.first, !name.isEmpty, !name.contains("=") else { continue }
            var parameters: [Parameter] = []
            var valid = true
            for piece in pieces.dropFirst() {
                if let equals = piece.firstIndex(of: "=") {
                    let key = piece[..<equals].trimmingASCIISpaces()
                    var raw = piece[piece.index(after: equals)...].trimmingASCIISpaces()
                    if raw.count >= 2, raw.first == "\"", raw.last == "\"" {
                        raw = raw.dropFirst().dropLast()
                    }
                    guard !key.isEmpty, !raw.isEmpty, !raw.contains("\"") else {
                        valid = false
                        break
                    }
                    parameters.append(Parameter(name: key.lowercased(), value: String(raw)))
                } else if !piece.isEmpty {
                    parameters.append(Parameter(name: piece.lowercased(), value: nil))
                }
            }
            if valid {
                result.append(WebSocketExtensionHeader(name: name.lowercased(), parameters: parameters))
            }
        }
        return result
    }

    /// Splits on `separator` outside double-quoted strings.
    private static func split(_ text: some StringProtocol, on separator: Character) -> [Substring] {
        let text = Substring(text)
        var parts: [Substring] = []
        var start = text.startIndex
        var quoted = false
        var index = text.startIndex
        while index < text.endIndex {
            let char = text[index]
            if char == "\"" {
                quoted.toggle()
            } else if char == separator && !quoted {
                parts.append(text[start..<index])
                start = text.index(after: index)
            }
            index = text.index(after: index)
        }
        parts.append(text[start...])
        return parts.map { $0.trimmingASCIISpaces() }.filter { !$0.isEmpty }
    }
}

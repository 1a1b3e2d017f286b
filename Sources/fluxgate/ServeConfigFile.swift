import Foundation

/// `fluxgate serve --config FILE`: a JSON object whose keys are `serve`'s long option names and whose values are
/// their arguments, e.g.
///
/// ```json
/// {"host": "0.0.0.0", "port": 8080, "store": "postgres://fluxgate@db/fluxgate",
///  "token-file": "/etc/fluxgate/tokens.json", "allow-origin": ["https://app.example.com"], "max-subscriptions": 20000}
/// ```
///
/// `"sinks"` may hold the webhook sinks to put at start, an object of name → definition (it becomes `--sinks`).
///
/// The file's options go before the command line's, so a flag overrides the file's value (list options such as
/// `allow-origin` add to the file's list). `true` stands for a flag without a value; `null` and `false` are skipped.
enum ServeConfigFile {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// A JSON value an option can take: a string or number (its argument), `true` (a flag), `null`, or a list.
    enum Value: Decodable {
        case text(String)
        case flag(Bool)
        case null
        case list([Value])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let flag = try? container.decode(Bool.self) {
                self = .flag(flag)
            } else if let integer = try? container.decode(Int64.self) {
                self = .text(String(integer))
            } else if let number = try? container.decode(Double.self) {
                self = .text(String(number))
            } else if let text = try? container.decode(String.self) {
                self = .text(text)
            } else {
                self = .list(try container.decode([Value].self))
            }
        }
    }

    /// The command line with `serve --config FILE` replaced by the file's options; other command lines unchanged.
    static func expand(_ arguments: [String]) throws -> [String] {
        guard arguments.first == "serve" else { return arguments }
        var rest = Array(arguments.dropFirst())
        var path: String?
        var index = 0
        while index < rest.count {
            if rest[index] == "--config" {
                guard index + 1 < rest.count else { throw Failure(description: "--config needs a file: fluxgate serve --config FILE") }
                path = rest[index + 1]
                rest.removeSubrange(index...(index + 1))
            } else if rest[index].hasPrefix("--config=") {
                path = String(rest[index].dropFirst("--config=".count))
                rest.remove(at: index)
            } else {
                index += 1
            }
        }
        guard let path else { return arguments }
        return ["serve"] + (try options(fromFile: path)) + rest
    }

    static func options(fromFile path: String) throws -> [String] {
        var data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw Failure(description: "cannot read the config file \(path): \(error.localizedDescription)")
        }
        // "sinks" holds an object (webhook sinks by name): it becomes --sinks with that object's JSON text.
        var inlineSinks: String?
        if let top = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let sinks = top["sinks"], !(sinks is NSNull) {
            guard JSONSerialization.isValidJSONObject(sinks), sinks is [String: Any] else {
                throw Failure(description: #"the config file \#(path): "sinks" must be an object of webhook sink name → definition, e.g. {"billing": {"url": "https://example.com/hooks", "secret": "whsec_…"}}"#)
            }
            inlineSinks = String(decoding: try JSONSerialization.data(withJSONObject: sinks, options: [.sortedKeys]), as: UTF8.self)
            var rest = top
            rest["sinks"] = nil
            data = try JSONSerialization.data(withJSONObject: rest)
        }
        let object: [String: Value]
        do {
            object = try JSONDecoder().decode([String: Value].self, from: data)
        } catch {
            throw Failure(description: "the config file \(path) is not a JSON object of serve options (strings, numbers, true, lists), e.g. {\"port\": 8080, \"store\": \"sqlite:events.sqlite\"}")
        }
        var arguments: [String] = inlineSinks.map { ["--sinks", $0] } ?? []
        for key in object.keys.sorted() {
            guard key.range(of: "^[a-z][a-z0-9-]*$", options: .regularExpression) != nil, key != "config" else {
                throw Failure(description: "the config file \(path) has the key \"\(key)\"; keys are serve's option names without dashes, e.g. \"max-connections\"")
            }
            let values: [Value]
            if case .list(let list) = object[key]! { values = list } else { values = [object[key]!] }
            for value in values {
                switch value {
                case .null, .flag(false): continue
                case .flag(true): arguments.append("--\(key)")
                case .text(let text): arguments += ["--\(key)", text]
                case .list: throw Failure(description: "the config file \(path): \"\(key)\" is a list of lists")
                }
            }
        }
        return arguments
    }
}

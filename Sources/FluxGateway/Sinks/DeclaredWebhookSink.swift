import FluxCore
import FluxWire

/// A webhook sink declared in the gateway's configuration: its name and its definition, the JSON document
/// `PUT /sinks/{name}` takes (README "Webhook sinks"). `fluxgate serve --sink NAME=JSON`, or the config file's
/// `"sinks": {"NAME": {…}}`.
public struct DeclaredWebhookSink: Sendable, Equatable {
    public var name: String
    public var body: String

    /// A declaration that is not valid, in words that say what to change.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Checks the declaration as `PUT` would, without a store: the name, the JSON object and every field. A declared
    /// sink must name its `secret` (every node and every start must sign with the same one; a made-up one would
    /// never be shown).
    public init(name: String, body: String) throws(Failure) {
        guard WebhookSinkDefinition.isValidName(name) else {
            throw Failure(description: "a webhook sink's name is 1 to 120 of A-Z a-z 0-9 . _ -; \(name.prefix(140).debugDescription) is not")
        }
        let document: JSONValue
        do {
            document = try JSONParser.parse(Array(body.utf8))
        } catch {
            throw Failure(description: "webhook sink \(name): its definition is not valid JSON (\(error))")
        }
        guard document.isObject else {
            throw Failure(description: #"webhook sink \#(name): its definition must be a JSON object such as {"url": "https://example.com/hooks", "secret": "whsec_…"}"#)
        }
        guard document["secret"] != nil else {
            throw Failure(description: "webhook sink \(name): a declared sink needs its \"secret\" (whsec_ and the base64 of 16 to 128 random bytes), the same on every node")
        }
        do {
            _ = try GatewayRouter.sinkDefinition(name, document, existing: nil)
        } catch let error as BadRequest {
            throw Failure(description: "webhook sink \(name): \(error.message)")
        } catch {
            throw Failure(description: "webhook sink \(name): \(error)")
        }
        self.name = name
        self.body = body
    }

    /// The sinks of a JSON object of name → definition (`--sinks`, `--sinks-file`, the config file's `sinks`);
    /// `source` names where it came from in the errors.
    public static func declarations(in text: String, source: String) throws(Failure) -> [DeclaredWebhookSink] {
        let bytes = Array(text.utf8)
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw Failure(description: "\(source) is not valid JSON (\(error))")
        }
        guard case .object(let members) = document.kind else {
            throw Failure(description: #"\#(source) must be a JSON object of sink name → definition, e.g. {"billing": {"url": "https://example.com/hooks", "secret": "whsec_…"}}"#)
        }
        var seen = Set<String>()
        var sinks: [DeclaredWebhookSink] = []
        for (name, value) in members {
            guard seen.insert(name).inserted else { throw Failure(description: "\(source) declares the webhook sink \(name) twice") }
            guard value.range.lowerBound >= 0, value.range.upperBound <= bytes.count else {
                throw Failure(description: "\(source): the definition of \(name) could not be read")
            }
            do {
                sinks.append(try DeclaredWebhookSink(name: name, body: String(decoding: bytes[value.range], as: UTF8.self)))
            } catch {
                throw Failure(description: "\(source): \(error.description)")
            }
        }
        return sinks
    }
}

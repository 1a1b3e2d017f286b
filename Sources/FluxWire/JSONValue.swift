/// A parsed JSON value that remembers where it came from.
///
/// Every value keeps the byte range it was parsed from, so that a payload can be stored exactly as the writer
/// sent it (no re-encoding, no number reformatting).
public struct JSONValue: Sendable {
    /// The kind of value and its content.
    public enum Kind: Sendable {
        case object([(key: String, value: JSONValue)])
        case array([JSONValue])
        case string(String)
        /// A number, as its literal text (e.g. `"-1"`, `"2.5e3"`).
        case number(String)
        case bool(Bool)
        case null
        /// A value checked for structure but not built (see `JSONParser.parse(_:opaqueKeys:)`); use its range.
        case opaque
    }

    public var kind: Kind
    /// The byte range of this value in the parsed input.
    public var range: Range<Int>

    /// The value for `key` when this is an object (the first one if the key repeats).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = kind else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    /// The string, when this is a string.
    public var stringValue: String? {
        if case .string(let string) = kind { return string }
        return nil
    }

    /// The integer, when this is a number without fraction or exponent that fits in `Int64`.
    public var int64Value: Int64? {
        if case .number(let text) = kind { return Int64(text) }
        return nil
    }

    /// The elements, when this is an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let elements) = kind { return elements }
        return nil
    }

    /// Whether this is an object.
    public var isObject: Bool {
        if case .object = kind { return true }
        return false
    }

    /// A short name of the kind, for error messages.
    public var kindName: String {
        switch kind {
        case .object: return "object"
        case .array: return "array"
        case .string: return "string"
        case .number: return "number"
        case .bool: return "boolean"
        case .null: return "null"
        case .opaque: return "value"
        }
    }
}

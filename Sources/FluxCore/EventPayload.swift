import Foundation

/// An event's payload: one JSON value, kept as the exact UTF-8 bytes the writer gave.
///
/// Stores persist these bytes as they are and the feed embeds them without re-encoding, so a payload reaches
/// consumers byte for byte as it was appended.
public struct EventPayload: Hashable, Sendable, CustomStringConvertible {
    /// The JSON text, UTF-8.
    public let bytes: [UInt8]

    /// Wraps bytes already known to be valid JSON (read back from a store, or sliced from a parsed document).
    /// To check bytes from elsewhere, use FluxWire's `EventPayload(validating:)`.
    public init(trustedJSON bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Encodes a value with `JSONEncoder`.
    public init(encoding value: some Encodable, encoder: JSONEncoder = JSONEncoder()) throws {
        self.bytes = Array(try encoder.encode(value))
    }

    /// Decodes the payload with `JSONDecoder`.
    public func decode<T: Decodable>(_ type: T.Type, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        try decoder.decode(type, from: Data(bytes))
    }

    /// The JSON `null` payload.
    public static let null = EventPayload(trustedJSON: Array("null".utf8))

    public var description: String { String(decoding: bytes, as: UTF8.self) }
}

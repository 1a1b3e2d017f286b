import Foundation

/// The identity of a store, made once when the store is created.
///
/// Offsets (positions) are only meaningful against the epoch they were read from: a consumer that stored a
/// position under one epoch must not trust it against another (the store was replaced or reset).
public struct StoreEpoch: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    /// A new random epoch.
    public static func random() -> StoreEpoch {
        StoreEpoch(rawValue: UUID().uuidString.lowercased())
    }

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

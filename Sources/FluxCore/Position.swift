/// A global position in the store: 1 for the first event ever stored, then 2, 3, …
///
/// Positions are dense (no gaps, ever) and commit order equals position order: once a reader has seen
/// position N, no event with a position ≤ N can appear later. `Position.start` (0) means "before the first
/// event", so reading after it returns everything.
public struct Position: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: Int64

    public init(rawValue: Int64) { self.rawValue = rawValue }
    public init(_ value: Int64) { self.rawValue = value }

    /// Before the first event.
    public static let start = Position(0)

    /// The position right after this one.
    public var next: Position { Position(rawValue + 1) }

    public static func < (lhs: Position, rhs: Position) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { String(rawValue) }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

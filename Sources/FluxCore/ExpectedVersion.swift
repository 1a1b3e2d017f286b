/// What a writer believes about a stream's version when it appends (optimistic concurrency).
///
/// A stream's first event has version 0; `exact(n)` means "the stream's last event has version n".
public enum ExpectedVersion: Hashable, Sendable, CustomStringConvertible {
    /// The stream must not exist yet (wire value `-1`).
    case noStream
    /// Append whatever the stream's version is.
    case any
    /// The stream's last event must have exactly this version.
    case exact(Int64)

    /// The wire form used by the HTTP API: `-1` is `.noStream`, `n ≥ 0` is `.exact(n)`.
    public init?(wireValue: Int64) {
        if wireValue == -1 {
            self = .noStream
        } else if wireValue >= 0 {
            self = .exact(wireValue)
        } else {
            return nil
        }
    }

    /// Whether a stream whose last version is `current` (`-1` when it does not exist) satisfies this expectation.
    public func isSatisfied(byCurrentVersion current: Int64) -> Bool {
        switch self {
        case .any: return true
        case .noStream: return current == -1
        case .exact(let version): return current == version
        }
    }

    public var description: String {
        switch self {
        case .noStream: return "no stream"
        case .any: return "any"
        case .exact(let version): return "version \(version)"
        }
    }
}

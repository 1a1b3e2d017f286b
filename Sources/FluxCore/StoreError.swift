/// An error from an event store.
///
/// Match on the code: `catch StoreError.conflict { … }`. A conflict is safe to retry after reloading the
/// aggregate: nothing of the failed append was stored.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. An open set: new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case conflict, duplicateEventID, invalidAppend, storeUnavailable, corrupted
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The stream's version is not what the writer expected (optimistic concurrency).
        public static let conflict = Code(.conflict)
        /// An event id in the append is already stored somewhere else.
        public static let duplicateEventID = Code(.duplicateEventID)
        /// The request itself is wrong (empty, too long, malformed); retrying it as is will fail again.
        public static let invalidAppend = Code(.invalidAppend)
        /// The store could not be reached or used (I/O error, closed, locked).
        public static let storeUnavailable = Code(.storeUnavailable)
        /// The stored data does not satisfy the store's invariants.
        public static let corrupted = Code(.corrupted)

        public var description: String {
            switch base {
            case .conflict: return "conflict"
            case .duplicateEventID: return "duplicate event id"
            case .invalidAppend: return "invalid append"
            case .storeUnavailable: return "store unavailable"
            case .corrupted: return "corrupted store"
            }
        }
    }

    public var code: Code
    /// What went wrong and, where it helps, what to do.
    public var message: String
    /// For conflicts: the stream's current version (`-1` when it does not exist).
    public var currentVersion: Int64?

    public init(_ code: Code, _ message: String, currentVersion: Int64? = nil) {
        self.code = code
        self.message = message
        self.currentVersion = currentVersion
    }

    public static let conflict = Code.conflict
    public static let duplicateEventID = Code.duplicateEventID
    public static let invalidAppend = Code.invalidAppend
    public static let storeUnavailable = Code.storeUnavailable
    public static let corrupted = Code.corrupted

    public var description: String { "\(code): \(message)" }

    /// A conflict error for a stream whose version is `current`.
    public static func versionConflict(aggregateID: String, expected: ExpectedVersion, current: Int64) -> StoreError {
        let currentText = current == -1 ? "does not exist" : "is at version \(current)"
        return StoreError(
            .conflict,
            "stream \(aggregateID) \(currentText) but the append expected \(expected); reload the aggregate and retry",
            currentVersion: current
        )
    }
}

/// Lets `catch StoreError.conflict` match a `StoreError` with that code.
public func ~= (pattern: StoreError.Code, error: any Error) -> Bool {
    (error as? StoreError)?.code == pattern
}

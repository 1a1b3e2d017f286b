/// An error from an event store.
///
/// Match on the code: `catch StoreError.conflict { … }`. A conflict is safe to retry after reloading the
/// aggregate: nothing of the failed append was stored.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. An open set: new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case conflict, duplicateEventID, invalidAppend, storeUnavailable, corrupted, aggregateNameMismatch, notFound, invalidDefinition
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
        /// The append's aggregate name is not the name of the stream's stored events: a stream belongs to one
        /// aggregate name for life. Not a conflict: reloading and retrying fails again; append under another
        /// aggregate id instead.
        public static let aggregateNameMismatch = Code(.aggregateNameMismatch)
        /// What the request names (a consumer group, a parked event) does not exist.
        public static let notFound = Code(.notFound)
        /// A definition (of a consumer group) is not valid; correct it and send it again.
        public static let invalidDefinition = Code(.invalidDefinition)

        public var description: String {
            switch base {
            case .conflict: return "conflict"
            case .duplicateEventID: return "duplicate event id"
            case .invalidAppend: return "invalid append"
            case .storeUnavailable: return "store unavailable"
            case .corrupted: return "corrupted store"
            case .aggregateNameMismatch: return "aggregate name mismatch"
            case .notFound: return "not found"
            case .invalidDefinition: return "invalid definition"
            }
        }
    }

    public var code: Code
    /// What went wrong and, where it helps, what to do.
    public var message: String
    /// For conflicts: the stream's current version (`-1` when it does not exist).
    public var currentVersion: Int64?
    /// For aggregate name mismatches: the aggregate name of the stream's stored events. The message names it too;
    /// a caller that may not learn it (an access-controlled gateway) can tell it apart here and word its own answer.
    public var storedAggregateName: String?

    public init(_ code: Code, _ message: String, currentVersion: Int64? = nil, storedAggregateName: String? = nil) {
        self.code = code
        self.message = message
        self.currentVersion = currentVersion
        self.storedAggregateName = storedAggregateName
    }

    public static let conflict = Code.conflict
    public static let duplicateEventID = Code.duplicateEventID
    public static let invalidAppend = Code.invalidAppend
    public static let storeUnavailable = Code.storeUnavailable
    public static let corrupted = Code.corrupted
    public static let aggregateNameMismatch = Code.aggregateNameMismatch
    public static let notFound = Code.notFound
    public static let invalidDefinition = Code.invalidDefinition

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

    /// The error for an append under `appendedName` into a stream whose events have `storedName` (`nil` when the
    /// store could not read it back).
    public static func nameMismatch(aggregateID: String, storedName: String?, appendedName: String) -> StoreError {
        StoreError(
            .aggregateNameMismatch,
            "stream \(aggregateID) belongs to \(storedName.map { "aggregate_name \($0)" } ?? "another aggregate_name"); an append with aggregate_name \(appendedName) cannot go into it: use another aggregate id",
            storedAggregateName: storedName
        )
    }
}

/// Lets `catch StoreError.conflict` match a `StoreError` with that code.
public func ~= (pattern: StoreError.Code, error: any Error) -> Bool {
    (error as? StoreError)?.code == pattern
}

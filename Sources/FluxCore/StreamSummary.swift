/// One stream (the events of one aggregate) as a stream listing shows it: its id and name, its version, and where
/// and when its last event was stored. See ``EventReader/streams(after:prefix:aggregateNames:limit:)``.
public struct StreamSummary: Hashable, Sendable {
    /// The stream's aggregate id.
    public var aggregateID: String
    /// The aggregate name of the stream's events (a stream has one name for life).
    public var aggregateName: String
    /// The version of the stream's last event: 0 for a stream of one event (versions are dense from 0).
    public var version: Int64
    /// The global position of the stream's last event.
    public var lastPosition: Position
    /// When the stream's last event was stored, milliseconds since 1970-01-01T00:00:00Z.
    public var lastRecordedAtMilliseconds: Int64

    public init(aggregateID: String, aggregateName: String, version: Int64, lastPosition: Position, lastRecordedAtMilliseconds: Int64) {
        self.aggregateID = aggregateID
        self.aggregateName = aggregateName
        self.version = version
        self.lastPosition = lastPosition
        self.lastRecordedAtMilliseconds = lastRecordedAtMilliseconds
    }

    /// The summary of the stream whose last event is `event`.
    public init(lastEvent event: RecordedEvent) {
        self.init(
            aggregateID: event.aggregateID, aggregateName: event.aggregateName, version: event.version,
            lastPosition: event.position, lastRecordedAtMilliseconds: event.recordedAtMilliseconds
        )
    }

    /// How many events the stream holds.
    public var eventCount: Int64 { version + 1 }
}

/// The order and the bounds of a stream listing, shared by every store so that they page alike.
///
/// Streams are listed in the byte order of their ids' UTF-8 form: SQLite's `BINARY` collation, PostgreSQL's
/// `"C"` collation, and Unicode scalar order (Swift's `<` on `String` compares canonical equivalents as equal, so
/// it is not used). In that order, the ids that start with a prefix are contiguous: a listing seeks to the first
/// of them and stops at the first id that does not start with it.
public enum StreamListing {
    /// Whether `lhs` comes before `rhs` in listing order (UTF-8 bytes, lexicographically).
    public static func precedes(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
    }

    /// Whether `id` starts with `prefix`, byte for byte.
    public static func hasPrefix(_ id: String, _ prefix: String) -> Bool {
        id.utf8.starts(with: prefix.utf8)
    }

    /// Where a listing starts: the first id it may return is `bound` itself when `inclusive`, else the first id after
    /// `bound`. Without a cursor, or with one before the prefix, it starts at the prefix; else after the cursor.
    public static func start(after cursor: String?, prefix: String) -> (bound: String, inclusive: Bool) {
        guard let cursor, !precedes(cursor, prefix) else { return (prefix, true) }
        return (cursor, false)
    }

    /// Whether a listing's text arguments can match any stored stream: ids and names holding a control character are
    /// never stored (`EventKey`), so such a prefix, cursor or name finds nothing on every store (SQLite would cut
    /// the text at a NUL, PostgreSQL refuses it). Returns the names that can match, or `nil` when nothing can.
    public static func printableArguments(after cursor: String?, prefix: String, aggregateNames: Set<String>) -> Set<String>? {
        guard EventKey.isPrintable(prefix), cursor.map(EventKey.isPrintable) ?? true else { return nil }
        if aggregateNames.allSatisfy(EventKey.isPrintable) { return aggregateNames }
        let kept = aggregateNames.filter(EventKey.isPrintable)
        return kept.isEmpty ? nil : kept
    }
}

/// How much an acknowledged append survives: the `PRAGMA synchronous` level of the store's writer connection.
///
/// The store always runs in WAL mode. An open set of levels: new ones may be added.
public struct SQLiteDurability: Hashable, Sendable, CustomStringConvertible {
    /// The value given to `PRAGMA synchronous`.
    let pragmaValue: String

    private init(pragmaValue: String) {
        self.pragmaValue = pragmaValue
    }

    /// The default: every commit is synced to disk (`synchronous=FULL`) before the append is acknowledged, so an
    /// acknowledged append survives a process kill, an OS crash and a power loss.
    public static let full = SQLiteDurability(pragmaValue: "FULL")

    /// Commits are written to the WAL without a sync (`synchronous=NORMAL`): an acknowledged append survives a
    /// process kill, but the last commits may be lost in an OS crash or a power loss. Faster; for tests,
    /// benchmarks and data that can be rebuilt.
    public static let normal = SQLiteDurability(pragmaValue: "NORMAL")

    /// The number SQLite answers to `PRAGMA synchronous` for this level: 2 for FULL, 1 for NORMAL.
    var pragmaNumber: Int { pragmaValue == "FULL" ? 2 : 1 }

    public var description: String { pragmaValue.lowercased() }
}

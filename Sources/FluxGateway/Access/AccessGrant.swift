/// Which aggregates a permission covers: none, all, or those with the given `aggregate_name`s.
public enum AggregateAccess: Sendable, Equatable {
    case none
    case all
    case only(Set<String>)

    /// Whether events of `aggregateName` are covered.
    public func covers(_ aggregateName: String) -> Bool {
        switch self {
        case .none: return false
        case .all: return true
        case .only(let names): return names.contains(aggregateName)
        }
    }

    /// This access widened by `other` (a token may carry several scopes).
    func union(_ other: AggregateAccess) -> AggregateAccess {
        switch (self, other) {
        case (.all, _), (_, .all): return .all
        case (.none, let access), (let access, .none): return access
        case (.only(let a), .only(let b)): return .only(a.union(b))
        }
    }
}

/// What an authenticated caller may do, from its token's scopes.
///
/// Scopes (space-separated in a JWT's `scope` claim, or a list in `scopes`/the token file):
/// - `read`: the feed, single events, stream reads and subscriptions; `read:NAME` only events whose
///   `aggregate_name` is NAME (repeat for several names);
/// - `write`: appends; `write:NAME` only appends with `aggregate_name` NAME;
/// - `metrics`: `GET /metrics`;
/// - `groups`: consumer groups' members (fetch, acknowledge, reject, inspect; what they read stays within `read`);
///   `groups:admin` also creates, changes and deletes groups and replays parked events.
/// Other scopes are ignored (a token may carry scopes of other services).
public struct AccessGrant: Sendable, Equatable {
    /// Who the token names (a JWT's `sub`, a token file entry's `name`); for logs, never the token itself.
    public var subject: String
    public var read: AggregateAccess
    public var write: AggregateAccess
    public var metrics: Bool
    /// Consumer groups: as a member (`groups`), and as their administrator (`groups:admin`).
    public var consumeGroups = false
    public var administerGroups = false
    /// When the token stops being valid (a JWT's `exp`); subscriptions end then. `nil`: never.
    public var expiresAt: ContinuousClock.Instant?

    public init(
        subject: String, read: AggregateAccess = .none, write: AggregateAccess = .none, metrics: Bool = false,
        expiresAt: ContinuousClock.Instant? = nil
    ) {
        self.subject = subject
        self.read = read
        self.write = write
        self.metrics = metrics
        self.expiresAt = expiresAt
    }

    /// Everything allowed: what every request gets when the gateway has no access control.
    public static let unrestricted: AccessGrant = {
        var grant = AccessGrant(subject: "anonymous", read: .all, write: .all, metrics: true)
        grant.consumeGroups = true
        grant.administerGroups = true
        return grant
    }()

    /// A grant from scope strings; unknown scopes are ignored.
    public init(subject: String, scopes: some Sequence<some StringProtocol>, expiresAt: ContinuousClock.Instant? = nil) {
        self.init(subject: subject, expiresAt: expiresAt)
        for scope in scopes {
            let parts = scope.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let access: AggregateAccess = parts.count == 2 ? (parts[1].isEmpty ? .none : .only([String(parts[1])])) : .all
            switch parts[0] {
            case "read": read = read.union(access)
            case "write": write = write.union(access)
            case "metrics" where parts.count == 1: metrics = true
            case "groups" where parts.count == 1: consumeGroups = true
            case "groups" where parts[1] == "admin": administerGroups = true
            default: continue
            }
        }
    }
}

/// How a consumer group retries and parks (the gateway's `GroupLedger` applies it).
public struct ConsumerGroupPolicy: Hashable, Sendable {
    /// How long a member may hold a leased event before it goes to another member.
    public var leaseTimeout: Duration
    /// Failed deliveries (rejections, lapsed leases, members gone) before an event is parked.
    public var maximumAttempts: Int
    /// The wait before the second attempt, doubled for each further one up to `maximumBackoff`.
    public var backoff: Duration
    public var maximumBackoff: Duration
    /// Whether an aggregate's later events wait while one of its events is parked (order per aggregate holds), or
    /// go on (the parked event, once replayed, comes after them).
    public var holdsAggregateWhileParked: Bool

    public init(
        leaseTimeout: Duration = .seconds(30), maximumAttempts: Int = 5, backoff: Duration = .milliseconds(500),
        maximumBackoff: Duration = .seconds(60), holdsAggregateWhileParked: Bool = true
    ) {
        self.leaseTimeout = leaseTimeout
        self.maximumAttempts = maximumAttempts
        self.backoff = backoff
        self.maximumBackoff = maximumBackoff
        self.holdsAggregateWhileParked = holdsAggregateWhileParked
    }
}

/// A consumer group as it is defined: its name, which events it takes, where it starts, and its policy.
public struct ConsumerGroupDefinition: Hashable, Sendable {
    public var name: String
    public var filter: EventFilter
    /// The group takes the matching events after this position (its first checkpoint).
    public var start: Position
    public var policy: ConsumerGroupPolicy

    /// - Throws: `StoreError.invalidDefinition` for a name that is not 1–128 of `A–Z a–z 0–9 . _ -`, or a policy out
    ///   of range (lease 1 s – 1 h, 1–1000 attempts, backoffs 0 – 1 h with the first at most the maximum).
    public init(name: String, filter: EventFilter = .all, start: Position = .start, policy: ConsumerGroupPolicy = ConsumerGroupPolicy()) throws {
        guard Self.isValidName(name) else {
            throw StoreError(
                .invalidDefinition,
                "a consumer group's name is 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'; \(name.debugDescription.prefix(140)) is not"
            )
        }
        guard (Duration.seconds(1)...Duration.seconds(3600)).contains(policy.leaseTimeout) else {
            throw StoreError(.invalidDefinition, "a consumer group's lease timeout is 1 s to 1 h, not \(policy.leaseTimeout)")
        }
        guard (1...1000).contains(policy.maximumAttempts) else {
            throw StoreError(.invalidDefinition, "a consumer group's maximum attempts are 1 to 1000, not \(policy.maximumAttempts)")
        }
        guard (Duration.zero...Duration.seconds(3600)).contains(policy.maximumBackoff),
            (Duration.zero...policy.maximumBackoff).contains(policy.backoff)
        else {
            throw StoreError(
                .invalidDefinition,
                "a consumer group's backoff is 0 to its maximum backoff, which is 0 to 1 h (given \(policy.backoff) and \(policy.maximumBackoff))"
            )
        }
        guard start >= .start else { throw StoreError(.invalidDefinition, "a consumer group starts at position 0 or later") }
        self.name = name
        self.filter = filter
        self.start = start
        self.policy = policy
    }

    /// 1–128 characters of `A–Z a–z 0–9 . _ -` (safe in a URL path, a file name and a log line).
    public static func isValidName(_ name: String) -> Bool {
        (1...128).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            }
    }
}

/// An event a consumer group gave up on after its policy's attempts, kept until it is replayed and acknowledged.
public struct ParkedGroupEvent: Hashable, Sendable {
    public var position: Position
    public var attempts: Int
    /// The last failure's reason (what the member said, or why its lease ended).
    public var reason: String
    /// When it was parked, in milliseconds since 1970.
    public var parkedAt: Int64

    public init(position: Position, attempts: Int, reason: String, parkedAt: Int64) {
        self.position = position
        self.attempts = attempts
        self.reason = reason
        self.parkedAt = parkedAt
    }
}

/// A consumer group as it is stored: its definition, its checkpoint, the events acknowledged after the checkpoint,
/// and its parked events (oldest first).
public struct ConsumerGroupRecord: Hashable, Sendable {
    public var definition: ConsumerGroupDefinition
    /// Every matching event up to here was acknowledged or parked.
    public var checkpoint: Position
    /// Events after the checkpoint that were acknowledged already (an earlier one was not yet), as ascending,
    /// disjoint ranges: a restarted group does not deliver them again.
    public var acknowledged: [ClosedRange<Position>]
    public var parked: [ParkedGroupEvent]

    public init(
        definition: ConsumerGroupDefinition, checkpoint: Position, acknowledged: [ClosedRange<Position>] = [], parked: [ParkedGroupEvent] = []
    ) {
        self.definition = definition
        self.checkpoint = checkpoint
        self.acknowledged = acknowledged
        self.parked = parked
    }
}

/// Position ranges as stores keep them in one text column: `"5-9,12,15-20"` (ascending, disjoint).
public enum PositionRanges {
    /// The ranges covering `positions` (any order; repeats are fine).
    public static func ranges(of positions: some Sequence<Position>) -> [ClosedRange<Position>] {
        var ranges: [ClosedRange<Position>] = []
        for position in positions.sorted() {
            if let last = ranges.last, position <= last.upperBound.next {
                ranges[ranges.count - 1] = last.lowerBound...max(last.upperBound, position)
            } else {
                ranges.append(position...position)
            }
        }
        return ranges
    }

    public static func encode(_ ranges: [ClosedRange<Position>]) -> String {
        ranges.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
    }

    /// `nil` for text that is not ascending, disjoint ranges of positive positions.
    public static func decode(_ text: String) -> [ClosedRange<Position>]? {
        guard !text.isEmpty else { return [] }
        var ranges: [ClosedRange<Position>] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int64(bounds[0]), let high = Int64(bounds[bounds.count - 1]),
                low > 0, low <= high, (ranges.last?.upperBound.rawValue ?? 0) < low
            else { return nil }
            ranges.append(Position(low)...Position(high))
        }
        return ranges
    }
}

/// Where consumer groups keep what must survive a restart: definitions, checkpoints and parked events. Every event
/// store implements it in its own database, so a group's state lives beside the events it is about.
///
/// Errors: `StoreError.notFound` for a group that does not exist, `StoreError.conflict` for a name in use,
/// `StoreError.storeUnavailable` when the database cannot be used.
public protocol ConsumerGroupStore: Sendable {
    /// Every group, by name.
    func consumerGroups() async throws -> [ConsumerGroupRecord]
    /// The group named `name`, or `nil`.
    func consumerGroup(named name: String) async throws -> ConsumerGroupRecord?
    /// Stores a new group whose checkpoint is its start.
    func createConsumerGroup(_ definition: ConsumerGroupDefinition) async throws -> ConsumerGroupRecord
    /// Replaces a group's filter and policy; its checkpoint and parked events stay.
    func updateConsumerGroup(_ definition: ConsumerGroupDefinition) async throws
    /// Deletes a group with its checkpoint and parked events; whether it existed.
    func deleteConsumerGroup(named name: String) async throws -> Bool
    /// Saves a group's progress: its checkpoint and the events acknowledged after it (replacing the ones saved
    /// before). The checkpoint moves forward as the group acknowledges, or anywhere when an operator resets it (a
    /// reset also drops the parked events after the new checkpoint: they will be delivered again).
    func saveConsumerGroupCheckpoint(_ position: Position, acknowledged: [ClosedRange<Position>], group name: String, reset: Bool) async throws
    /// Records a parked event (replacing an earlier record of the same position).
    func parkConsumerGroupEvent(_ parked: ParkedGroupEvent, group name: String) async throws
    /// Forgets a parked event (replayed and acknowledged); whether it was parked.
    func unparkConsumerGroupEvent(at position: Position, group name: String) async throws -> Bool
}

extension ConsumerGroupStore {
    /// `StoreError.notFound` for group `name`.
    public static func unknownGroup(_ name: String) -> StoreError {
        StoreError(.notFound, "there is no consumer group named \(name); list them with GET /groups or create it")
    }

    /// `StoreError.conflict` for a group name in use.
    public static func groupExists(_ name: String) -> StoreError {
        StoreError(.conflict, "a consumer group named \(name) exists already; update it, or delete it first")
    }
}

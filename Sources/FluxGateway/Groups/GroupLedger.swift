import FluxCore
import HeapModule

/// The rules of one consumer group, without I/O and without a clock: which member may process which event, in what
/// order, until when, and how far the group's checkpoint has come. A driver feeds it events read from the store
/// (``add(_:readThrough:)``), the members' requests (``lease(to:max:now:)``, ``acknowledge(_:by:)``,
/// ``reject(_:by:reason:now:)``, ``leave(_:now:)``) and the time (``expire(now:)`` at ``nextDeadline``), and persists
/// what ``takeChanges()`` reports (checkpoint moves, parked events).
///
/// Guarantees (each is tested in `GroupLedgerTests`):
/// 1. **At least once**: an event is handed out until it is acknowledged or parked; a lease that lapses, a member that
///    leaves and a rejection all hand it out again, after a backoff.
/// 2. **Order per aggregate, one member at a time**: an aggregate's events are handed out in position order (its
///    version order), and while any of them is leased, none of its events goes to anyone else; different aggregates
///    go to different members in parallel.
/// 3. **Parking**: an event that failed ``Policy/maximumAttempts`` times is parked with its last reason. With
///    ``Policy/ParkedEvents/holdAggregate`` (the default) its aggregate's later events wait until it is replayed
///    (``replay(_:)``) — a read model never sees an aggregate's events out of order; with
///    ``Policy/ParkedEvents/continueAggregate`` they go on, and the replayed event comes after them.
/// 4. **Checkpoint**: the highest position such that every matching event up to it was acknowledged or parked (a parked
///    event is kept in the parked list, so the checkpoint may pass it without losing it). Everything after the
///    checkpoint is handed out again after a restart: the at-least-once window is only what was not acknowledged.
/// 5. **Credit**: a member never holds more leased events than the credit it joined with.
///
/// Memory is bounded by ``Policy/window`` events read ahead of the checkpoint (``wantedEvents``), plus the parked list.
struct GroupLedger<Instant: InstantProtocol> where Instant.Duration == Duration {
    typealias MemberID = UInt64

    /// How the group retries, parks and reads ahead.
    struct Policy: Sendable, Equatable {
        /// What happens to an aggregate's later events while one of its events is parked.
        enum ParkedEvents: String, Sendable, Equatable {
            /// They wait until the parked event is replayed: order per aggregate holds (the default).
            case holdAggregate = "hold"
            /// They are handed out; a replayed event comes after them.
            case continueAggregate = "continue"
        }

        /// How long a member may hold a leased event before it is handed to another.
        var leaseTimeout: Duration = .seconds(30)
        /// Attempts (leases that ended without an acknowledgement) before an event is parked.
        var maximumAttempts = 5
        /// The wait before the second attempt; doubled for each further one, up to ``maximumBackoff``.
        var backoff: Duration = .milliseconds(500)
        var maximumBackoff: Duration = .seconds(60)
        var parkedEvents: ParkedEvents = .holdAggregate
        /// Events held ahead of the checkpoint (read from the store, not yet acknowledged)…
        var window = 10_000
        /// …and their payload bytes: no more is read while the window holds this much (large events make a window
        /// of fewer events; at least one is always read).
        var windowBytes = 32 << 20

        /// The share of a backoff that is random (0 to 1): attempt `n + 1` of an event waits between `(1 − jitter)` and
        /// all of ``backoff(after:)``, so that the retries of events that failed together (a receiver down) spread out.
        /// The randomness is a hash of the event's position and the attempt: the ledger stays deterministic.
        var jitter = 0.0

        /// ``backoff(after:)`` less its jitter for the event at `position`.
        func jitteredBackoff(after attempt: Int, position: Int64) -> Duration {
            let wait = backoff(after: attempt)
            guard jitter > 0 else { return wait }
            var mixed = UInt64(bitPattern: position) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(attempt)
            mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            mixed ^= mixed >> 31
            let unit = Double(mixed >> 11) / Double(1 << 53)  // [0, 1)
            return wait * (1 - min(1, jitter) * unit)
        }

        /// The wait before attempt `attempt + 1`, after `attempt` failed ones.
        func backoff(after attempt: Int) -> Duration {
            var wait = backoff
            for _ in 1..<max(1, attempt) {
                wait *= 2
                if wait >= maximumBackoff { return maximumBackoff }
            }
            return min(wait, maximumBackoff)
        }
    }

    /// An event handed to a member.
    struct Delivery: Equatable, Sendable {
        var event: RecordedEvent
        /// 1 for the first delivery, 2 for the first redelivery, …
        var attempt: Int
    }

    /// An event that failed ``Policy/maximumAttempts`` times.
    struct ParkedEvent: Equatable, Sendable {
        var event: RecordedEvent
        var attempts: Int
        var reason: String
    }

    /// What a driver persists, in order.
    enum Change: Equatable, Sendable {
        case checkpoint(Position)
        case parked(ParkedEvent)
        /// A parked event was replayed and then acknowledged: its parked record may go.
        case resolved(Position)
    }

    enum Failure: Error, Equatable, Sendable {
        /// The member never joined or has left.
        case unknownMember(MemberID)
        /// The event is not leased to this member (never was, its lease lapsed, or it was acknowledged already).
        case notLeased(Position, MemberID)
        /// No parked event has this position.
        case notParked(Position)
    }

    /// Counts for metrics and the API.
    struct Statistics: Equatable, Sendable {
        var checkpoint: Position
        /// Events read ahead of the checkpoint and not yet acknowledged or parked.
        var window: Int
        var leased: Int
        var parked: Int
        var members: Int
        /// Deliveries after the first of their event, since the ledger was made.
        var redeliveries: Int
        var acknowledged: Int
    }

    private enum State: Equatable {
        case ready
        case leased(MemberID, until: Instant)
        case done
    }

    private struct Entry {
        /// The event in a box: entries are copied in and out of the window's dictionary as their state changes, and
        /// a boxed event costs one retain per copy instead of one per field of the event.
        private let box: EventBox
        var event: RecordedEvent { box.event }
        var state: State = .ready
        /// Leases of this event that ended without an acknowledgement.
        var failures = 0
        var lastReason = ""
        /// Replayed from the parked list: outside the window's order, never holding the checkpoint.
        var replayed = false

        init(event: RecordedEvent, state: State = .ready, failures: Int = 0, replayed: Bool = false) {
            self.box = EventBox(event)
            self.state = state
            self.failures = failures
            self.replayed = replayed
        }
    }

    private final class EventBox {
        let event: RecordedEvent
        init(_ event: RecordedEvent) { self.event = event }
    }

    private struct Aggregate {
        /// Its events not yet acknowledged or parked, in the order they are handed out.
        var queue: [Int64] = []
        /// The member holding leases on its events, and how many.
        var holder: MemberID?
        var leased = 0
        /// Not before this instant (a backoff after a failure).
        var notBefore: Instant?
        /// Its event at this position is parked and ``Policy/ParkedEvents/holdAggregate`` holds the rest.
        var heldBy: Int64?
    }

    private struct Member {
        var credit: Int
        var leased: Set<Int64> = []
    }

    /// An aggregate that may be handed out, keyed by the position of its next event (oldest first).
    private struct Candidate: Comparable {
        var position: Int64
        var aggregateID: String
        static func < (lhs: Self, rhs: Self) -> Bool { lhs.position < rhs.position }
    }

    /// A moment at which something may change: a lease ends or a backoff does.
    private struct Timer: Comparable {
        var at: Instant
        var position: Int64
        static func < (lhs: Self, rhs: Self) -> Bool { lhs.at < rhs.at }
        static func == (lhs: Self, rhs: Self) -> Bool { lhs.at == rhs.at && lhs.position == rhs.position }
    }

    let policy: Policy
    private(set) var checkpoint: Position
    /// The store has been read up to here (the next read starts after it).
    private(set) var readThrough: Position
    /// Positions of the window, in order; `order[front...]` are live.
    private var order: [Int64] = []
    private var front = 0
    private var entries: [Int64: Entry] = [:]
    private var aggregates: [String: Aggregate] = [:]
    private var members: [MemberID: Member] = [:]
    private var candidates = Heap<Candidate>()
    private var timers = Heap<Timer>()
    private var parkedEvents: [Int64: ParkedEvent] = [:]
    private var changes: [Change] = []
    private var redeliveries = 0
    private var acknowledged = 0

    /// Events after the checkpoint acknowledged before a restart, not yet read again: they are done when read.
    private var acknowledgedBefore: Set<Int64> = []
    /// Window events acknowledged (not parked) after the checkpoint, kept as they change so that saving the
    /// progress after each settlement costs what was acknowledged out of order, not the whole window.
    private var acknowledgedAhead: Set<Int64> = []

    /// A group resuming after `checkpoint` (the store is read from there), with the events it had acknowledged after
    /// the checkpoint and the events parked before (neither is handed out again).
    init(checkpoint: Position, acknowledged: [ClosedRange<Position>] = [], parked: [ParkedEvent] = [], policy: Policy = Policy()) {
        self.policy = policy
        self.checkpoint = checkpoint
        self.readThrough = checkpoint
        // At most a window's worth (what one run can have acknowledged ahead of its checkpoint): a damaged record
        // must not make the group hold more; anything past that is delivered again, as at least once allows.
        for range in acknowledged where range.upperBound > checkpoint {
            let lower = max(range.lowerBound.rawValue, checkpoint.rawValue + 1)
            let room = Int64(max(0, policy.window - acknowledgedBefore.count))
            guard room > 0 else { break }
            acknowledgedBefore.formUnion(lower...min(range.upperBound.rawValue, lower + room - 1))
        }
        for parked in parked {
            parkedEvents[parked.event.position.rawValue] = parked
            if policy.parkedEvents == .holdAggregate {
                aggregates[parked.event.aggregateID, default: Aggregate()].heldBy = parked.event.position.rawValue
            }
        }
    }

    // MARK: Events from the store

    /// How many events the window has room for (read them after ``readThrough``): none while its payloads take
    /// ``Policy/windowBytes``.
    var wantedEvents: Int {
        guard windowBytes < policy.windowBytes else { return 0 }
        return max(0, policy.window - (order.count - front))
    }

    /// Payload bytes of the events in the window.
    private(set) var windowBytes = 0

    /// Adds events read from the store after ``readThrough``, in position order, and moves ``readThrough`` to
    /// `through` (at least the last event's position: a filtered read may have looked further).
    mutating func add(_ events: [RecordedEvent], readThrough through: Position) {
        for event in events {
            let position = event.position.rawValue
            precondition(position > readThrough.rawValue, "events are added in position order, after readThrough")
            readThrough = event.position
            order.append(position)
            windowBytes += event.payload.bytes.count
            // Acknowledged or parked before a restart: done (the checkpoint passes it; a parked one stays listed).
            let wasAcknowledged = acknowledgedBefore.remove(position) != nil
            if wasAcknowledged { acknowledgedAhead.insert(position) }
            if wasAcknowledged || parkedEvents[position] != nil {
                entries[position] = Entry(event: event, state: .done)
                continue
            }
            entries[position] = Entry(event: event)
            var aggregate = aggregates[event.aggregateID, default: Aggregate()]
            aggregate.queue.append(position)
            let wasIdle = aggregate.queue.count == 1
            aggregates[event.aggregateID] = aggregate
            if wasIdle { offer(event.aggregateID) }
        }
        readThrough = max(readThrough, through)
        // Acknowledged before a restart but not read again (the filter or the partitions served changed): forgotten,
        // so that they do not take the window's room for ever.
        if !acknowledgedBefore.isEmpty { acknowledgedBefore = acknowledgedBefore.filter { $0 > readThrough.rawValue } }
        advanceCheckpoint()
    }

    // MARK: Members

    /// A member joins with `credit`: the most events it holds at once. A member that joins again (each pull fetch
    /// does) keeps the events it holds; they count against its new credit.
    mutating func join(_ member: MemberID, credit: Int) {
        members[member, default: Member(credit: 1)].credit = max(1, credit)
    }

    /// A member leaves (it closed, died or was dropped): its leased events are handed out again, each counted as a
    /// failed attempt (a member that dies of an event must not get it for ever).
    mutating func leave(_ member: MemberID, now: Instant) {
        guard let leaving = members.removeValue(forKey: member) else { return }
        for position in leaving.leased.sorted() {
            release(position, failed: true, reason: "its member left", now: now)
        }
    }

    /// Leases up to `max` events to `member` (within its credit), oldest aggregates first; an aggregate's events go
    /// out in order, and several of one aggregate may go in one lease. Leases end after the policy's timeout, or at
    /// `endingBy` when that is sooner (a node's own lease on the events it serves ends then).
    mutating func lease(to member: MemberID, max: Int, now: Instant, endingBy: Instant? = nil) throws(Failure) -> [Delivery] {
        guard var holder = members[member] else { throw .unknownMember(member) }
        expire(now: now)
        var room = Swift.min(max, holder.credit - holder.leased.count)
        var deliveries: [Delivery] = []
        var postponed: [Candidate] = []
        while room > 0, let candidate = candidates.popMin() {
            guard var aggregate = aggregates[candidate.aggregateID], let next = aggregate.queue.first,
                next == candidate.position, aggregate.holder == nil, aggregate.heldBy == nil
            else { continue }  // stale: the aggregate moved on since it was offered
            if let notBefore = aggregate.notBefore, notBefore > now {
                postponed.append(candidate)
                continue
            }
            aggregate.notBefore = nil
            let until = Swift.min(now.advanced(by: policy.leaseTimeout), endingBy ?? now.advanced(by: policy.leaseTimeout))
            for position in aggregate.queue where room > 0 {
                guard var entry = entries[position], entry.state == .ready else { break }
                entry.state = .leased(member, until: until)
                entries[position] = entry
                timers.insert(Timer(at: until, position: position))
                holder.leased.insert(position)
                aggregate.leased += 1
                room -= 1
                if entry.failures > 0 { redeliveries += 1 }
                deliveries.append(Delivery(event: entry.event, attempt: entry.failures + 1))
            }
            aggregate.holder = member
            aggregates[candidate.aggregateID] = aggregate
        }
        for candidate in postponed { candidates.insert(candidate) }
        members[member] = holder
        return deliveries
    }

    /// `member` processed these events: they are done, and the checkpoint moves past them when nothing before them
    /// is left. All or nothing: if one is not leased to `member`, none is acknowledged.
    mutating func acknowledge(_ positions: [Position], by member: MemberID) throws(Failure) {
        guard members[member] != nil else { throw .unknownMember(member) }
        for position in positions {
            guard case .leased(member, _)? = entries[position.rawValue]?.state else { throw .notLeased(position, member) }
        }
        for position in positions {
            let raw = position.rawValue
            guard let entry = entries[raw], case .leased = entry.state else { continue }  // listed twice
            members[member]?.leased.remove(raw)
            acknowledged += 1
            if entry.replayed {
                entries[raw] = nil
                if raw > checkpoint.rawValue { windowBytes -= entry.event.payload.bytes.count }  // it was in the window
                changes.append(.resolved(position))
            } else {
                entries[raw]?.state = .done
                acknowledgedAhead.insert(raw)
            }
            finish(raw, of: entry.event.aggregateID)
        }
        advanceCheckpoint()
    }

    /// `member` failed to process the event at `position`: it is handed out again after a backoff, or parked once it
    /// has failed ``Policy/maximumAttempts`` times. The member's later leased events of the same aggregate are
    /// released too (not counted as attempts): they must not be processed before it.
    mutating func reject(_ position: Position, by member: MemberID, reason: String, now: Instant) throws(Failure) {
        guard members[member] != nil else { throw .unknownMember(member) }
        guard case .leased(member, _)? = entries[position.rawValue]?.state else { throw .notLeased(position, member) }
        release(position.rawValue, failed: true, reason: reason, now: now)
    }

    // MARK: Time

    /// The next instant at which ``expire(now:)`` has something to do (a lease ends or a backoff does).
    var nextDeadline: Instant? { timers.min?.at }

    /// Ends the leases that lapsed by `now` (each a failed attempt) and offers aggregates whose backoff ended.
    mutating func expire(now: Instant) {
        while let timer = timers.min, timer.at <= now {
            _ = timers.removeMin()
            guard let entry = entries[timer.position] else { continue }
            switch entry.state {
            case .leased(let member, let until) where until <= now:
                // A lease of several events of one aggregate lapses as one: its first event counts the failed
                // attempt, the later ones go back unharmed.
                let aggregateID = entry.event.aggregateID
                let first = aggregates[aggregateID]?.queue.first { position in
                    if case .leased(member, _)? = entries[position]?.state { true } else { false }
                } ?? timer.position
                release(first, failed: true, reason: "its lease of \(policy.leaseTimeout) lapsed", now: now)
            case .ready:
                offer(entry.event.aggregateID)  // a backoff ended
            default:
                break
            }
        }
    }

    // MARK: Parked events

    /// Parked events, oldest first.
    var parked: [ParkedEvent] { parkedEvents.values.sorted { $0.event.position < $1.event.position } }

    /// Hands a parked event out again (attempts from zero), before its aggregate's later events when they were held.
    mutating func replay(_ position: Position) throws(Failure) {
        guard let parked = parkedEvents.removeValue(forKey: position.rawValue) else { throw .notParked(position) }
        let aggregateID = parked.event.aggregateID
        entries[position.rawValue] = Entry(event: parked.event, replayed: true)
        var aggregate = aggregates[aggregateID, default: Aggregate()]
        if aggregate.heldBy == position.rawValue { aggregate.heldBy = nil }
        aggregate.queue.insert(position.rawValue, at: 0)
        aggregates[aggregateID] = aggregate
        offer(aggregateID)
    }

    /// Replays every parked event.
    mutating func replayAll() {
        for parked in self.parked { try? replay(parked.event.position) }
    }

    // MARK: Reporting

    /// Whether the event at `position` is leased to `member` now.
    func isLeased(_ position: Position, to member: MemberID) -> Bool {
        if case .leased(member, _)? = entries[position.rawValue]?.state { true } else { false }
    }

    /// What changed since the last call (for the driver to persist), in order.
    mutating func takeChanges() -> [Change] {
        defer { changes = [] }
        return changes
    }

    /// Positions parked in changes not yet taken.
    var parkedInChanges: [Int64] {
        changes.compactMap { if case .parked(let parked) = $0 { parked.event.position.rawValue } else { nil } }
    }

    /// Gives back changes a driver took and could not persist (the store failed): they come first in the next
    /// ``takeChanges()``, so a parked event is never forgotten while the checkpoint passes it.
    mutating func putBack(_ unpersisted: [Change]) {
        changes.insert(contentsOf: unpersisted, at: 0)
    }

    /// The events after the checkpoint that were acknowledged (not parked), as ranges: what a restart must not hand
    /// out again (``init(checkpoint:acknowledged:parked:policy:)``). O(events acknowledged ahead of the checkpoint).
    var acknowledgedAfterCheckpoint: [ClosedRange<Position>] {
        let after = checkpoint.rawValue
        return PositionRanges.ranges(of: acknowledgedAhead.union(acknowledgedBefore).lazy.filter { $0 > after }.map { Position($0) })
    }

    /// Events acknowledged so far (it changes with every acknowledgement).
    var acknowledgedCount: Int { acknowledged }

    var statistics: Statistics {
        Statistics(
            checkpoint: checkpoint, window: order.count - front, leased: members.values.reduce(0) { $0 + $1.leased.count },
            parked: parkedEvents.count, members: members.count, redeliveries: redeliveries, acknowledged: acknowledged
        )
    }

    // MARK: Internals

    /// Puts an aggregate among those that may be handed out, keyed by its next event.
    private mutating func offer(_ aggregateID: String) {
        guard let aggregate = aggregates[aggregateID], let next = aggregate.queue.first, aggregate.holder == nil,
            aggregate.heldBy == nil
        else { return }
        candidates.insert(Candidate(position: next, aggregateID: aggregateID))
    }

    /// An event of `aggregateID` was acknowledged (or parked): it leaves the aggregate's queue; when the aggregate's
    /// lease has no event left, the aggregate may go out again.
    private mutating func finish(_ position: Int64, of aggregateID: String) {
        guard var aggregate = aggregates[aggregateID] else { return }
        aggregate.queue.removeAll { $0 == position }
        aggregate.leased -= 1
        if aggregate.leased <= 0 {
            aggregate.leased = 0
            aggregate.holder = nil
        }
        if aggregate.queue.isEmpty, aggregate.holder == nil, aggregate.heldBy == nil, aggregate.notBefore == nil {
            aggregates[aggregateID] = nil
        } else {
            aggregates[aggregateID] = aggregate
            offer(aggregateID)
        }
    }

    /// Ends the lease of the event at `position` and of its member's later leased events of the same aggregate
    /// (they must not be processed before it); a failed one counts an attempt and waits a backoff, or is parked. The
    /// member's earlier leased events of the aggregate stay leased, and the aggregate with them.
    private mutating func release(_ position: Int64, failed: Bool, reason: String, now: Instant) {
        guard var entry = entries[position], case .leased(let member, _) = entry.state else { return }
        let aggregateID = entry.event.aggregateID
        guard var aggregate = aggregates[aggregateID] else { return }
        for later in aggregate.queue where later > position {
            guard case .leased(member, _)? = entries[later]?.state else { continue }
            entries[later]?.state = .ready
            members[member]?.leased.remove(later)
        }
        members[member]?.leased.remove(position)
        entry.state = .ready
        if failed {
            entry.failures += 1
            entry.lastReason = reason
        }
        aggregate.leased = aggregate.queue.count(where: { other in
            other != position && { if case .leased(member, _)? = entries[other]?.state { true } else { false } }()
        })
        if aggregate.leased == 0 { aggregate.holder = nil }
        if failed, entry.failures >= policy.maximumAttempts {
            let record = ParkedEvent(event: entry.event, attempts: entry.failures, reason: reason)
            parkedEvents[position] = record
            changes.append(.parked(record))
            aggregate.queue.removeAll { $0 == position }
            // In the window it is done (the checkpoint may pass it: the parked list keeps it); a replayed one is not
            // in the window.
            entries[position] = entry.replayed ? nil : Entry(event: entry.event, state: .done, failures: entry.failures)
            if entry.replayed, position > checkpoint.rawValue { windowBytes -= entry.event.payload.bytes.count }
            if policy.parkedEvents == .holdAggregate { aggregate.heldBy = position }
            aggregates[aggregateID] = aggregate
            offer(aggregateID)
            advanceCheckpoint()
            return
        }
        entries[position] = entry
        if failed {
            let notBefore = now.advanced(by: policy.jitteredBackoff(after: entry.failures, position: position))
            aggregate.notBefore = notBefore
            timers.insert(Timer(at: notBefore, position: position))
        }
        aggregates[aggregateID] = aggregate
        offer(aggregateID)
    }

    /// Moves the checkpoint past the window's leading events that are done, dropping them.
    private mutating func advanceCheckpoint() {
        var moved = false
        while front < order.count {
            let position = order[front]
            // No entry: a replayed event acknowledged while still in the window.
            let entry = entries[position]
            if let entry, entry.state != .done { break }
            windowBytes -= entry?.event.payload.bytes.count ?? 0
            entries[position] = nil
            acknowledgedAhead.remove(position)
            front += 1
            checkpoint = Position(position)
            moved = true
        }
        if front == order.count, readThrough > checkpoint {
            checkpoint = readThrough
            moved = true
        }
        if front > 1024, front * 2 > order.count {
            order.removeFirst(front)
            front = 0
        }
        if moved { changes.append(.checkpoint(checkpoint)) }
    }
}

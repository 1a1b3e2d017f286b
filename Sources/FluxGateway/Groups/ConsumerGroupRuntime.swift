import FluxCore
import Logging
import Synchronization

/// One consumer group at work on this node: its `GroupLedger`, fed from the store and the clock, and what the ledger
/// decides written back to the store (checkpoint, parked events). Members are named by the caller (HTTP pull: the
/// `member` parameter, or one made for it on its first fetch).
actor ConsumerGroupRuntime {
    typealias Ledger = GroupLedger<ContinuousClock.Instant>

    let definition: ConsumerGroupDefinition
    private let store: any EventStore & ConsumerGroupStore
    private let logger: Logger
    private let metrics: GatewayMetrics
    private var ledger: Ledger
    private var memberIDs: [String: Ledger.MemberID] = [:]
    private var memberNames: [Ledger.MemberID: String] = [:]
    private var lastSeen: [Ledger.MemberID: ContinuousClock.Instant] = [:]
    /// Members fetching or connected right now (a count per member): never forgotten as idle.
    private var present: [Ledger.MemberID: Int] = [:]
    /// Counts settlements, departures and replays; waiting fetches wait on it (``waitForChange(within:)``).
    private var changeCount: Int64 = 0
    private let changes = HeadSignal()
    private var nextMember: Ledger.MemberID = 1
    /// The checkpoint and acknowledged ranges after it last written to the store.
    private var savedCheckpoint: Position
    private var savedAcknowledged: [ClosedRange<Position>]
    /// The ledger's acknowledgement count when the progress was last compared with the saved one.
    private var acknowledgedWhenSaved = 0
    /// Counts changes of the progress; `savedVersion` is the last one stored (``saveProgress()``).
    private var progressVersion = 0
    private var savedVersion = 0
    private var writingProgress = false
    private var progressWaiters: [(version: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    /// Parked events whose record is being written (or failed to be): no checkpoint is stored past them, so that
    /// none is forgotten if the gateway stops before its record is stored.
    private var parksInFlight: Set<Int64> = []
    private let pages = PageSizer(byteBudget: 4 << 20)
    /// Stopped because the group was changed, reset or deleted: it writes nothing more and answers nothing more.
    private var retired = false
    /// Store writes under way, and who waits for them to end (``retire()``).
    private var writing = 0
    private var writesEnded: [CheckedContinuation<Void, Never>] = []
    /// The most members a group keeps at once; a new one beyond it is refused until idle ones are forgotten.
    static let maximumMembers = 1000

    /// The runtime of a stored group: its parked events are read from the store first (the ledger holds their
    /// aggregates and can replay them).
    static func start(
        record: ConsumerGroupRecord, store: any EventStore & ConsumerGroupStore, logger: Logger, metrics: GatewayMetrics = GatewayMetrics()
    ) async throws -> ConsumerGroupRuntime {
        var parked: [Ledger.ParkedEvent] = []
        for stored in record.parked {
            let events = try await store.read(after: Position(stored.position.rawValue - 1), limit: 1, filter: .all)
            guard let event = events.first, event.position == stored.position else { continue }
            parked.append(Ledger.ParkedEvent(event: event, attempts: stored.attempts, reason: stored.reason))
        }
        return ConsumerGroupRuntime(record: record, parked: parked, store: store, logger: logger, metrics: metrics)
    }

    private init(
        record: ConsumerGroupRecord, parked: [Ledger.ParkedEvent], store: any EventStore & ConsumerGroupStore, logger: Logger, metrics: GatewayMetrics
    ) {
        self.definition = record.definition
        self.store = store
        self.logger = logger
        self.metrics = metrics
        let policy = record.definition.policy
        var ledgerPolicy = Ledger.Policy()
        ledgerPolicy.leaseTimeout = policy.leaseTimeout
        ledgerPolicy.maximumAttempts = policy.maximumAttempts
        ledgerPolicy.backoff = policy.backoff
        ledgerPolicy.maximumBackoff = policy.maximumBackoff
        ledgerPolicy.parkedEvents = policy.holdsAggregateWhileParked ? .holdAggregate : .continueAggregate
        self.ledger = Ledger(checkpoint: record.checkpoint, acknowledged: record.acknowledged, parked: parked, policy: ledgerPolicy)
        self.savedCheckpoint = record.checkpoint
        self.savedAcknowledged = record.acknowledged
    }

    /// What `GET /groups/{name}` shows of the group at work.
    struct Status: Sendable {
        var statistics: Ledger.Statistics
        var members: [String]
    }

    var status: Status {
        Status(statistics: ledger.statistics, members: memberNames.values.sorted())
    }

    /// Leases up to `max` events to `member` (made up when `nil`), waiting up to `wait` for some. While it waits
    /// the member counts as present (it is not forgotten as idle, however long the wait).
    func fetch(member name: String?, max: Int, wait: Duration) async throws -> (member: String, deliveries: [Ledger.Delivery]) {
        let now = ContinuousClock.now
        let name = name ?? "member-\(nextMember)-\(UInt32.random(in: 0...UInt32.max))"
        let id = try join(name, credit: max, now: now)
        present[id, default: 0] += 1
        defer {
            present[id, default: 1] -= 1
            if present[id] == 0 { present[id] = nil }
            lastSeen[id] = ContinuousClock.now
        }
        let deadline = now.advanced(by: wait)
        while true {
            try checkActive()
            forgetIdleMembers(now: ContinuousClock.now, except: id)
            try await fill()
            let deliveries = try ledger.lease(to: id, max: max, now: ContinuousClock.now)
            metrics.recordGroupRedeliveries(definition.name, count: deliveries.count { $0.attempt > 1 })
            try await persist()
            let remaining = deadline - ContinuousClock.now
            if !deliveries.isEmpty || remaining <= .zero { return (name, deliveries) }
            try await waitForChange(within: remaining)
        }
    }

    /// Waits until something may have changed what a fetch gets: new events in the store (when the window has
    /// room for them), a member's settlement or departure, a replay, or the ledger's next deadline (a lease that
    /// lapses, a backoff that ends); at most `limit`, and never more than a second.
    private func waitForChange(within limit: Duration) async throws {
        var bound = min(limit, .seconds(1))
        if let next = ledger.nextDeadline { bound = min(bound, Swift.max(.milliseconds(1), next - ContinuousClock.now)) }
        let (store, changes, mark, readThrough, wantsEvents, timeout) = (
            store, changes, Position(changeCount), ledger.readThrough, ledger.wantedEvents > 0, bound
        )
        await withTaskGroup(of: Void.self) { group in
            // A full window does not read the store: new events there change nothing until acknowledgements come.
            if wantsEvents { group.addTask { _ = try? await store.waitForHead(beyond: readThrough, timeout: timeout) } }
            group.addTask { _ = await changes.wait(beyond: mark, timeout: timeout) }
            await group.next()
            group.cancelAll()
        }
        try Task.checkCancellation()
    }

    /// Wakes waiting fetches: a settlement, a departure or a replay may let them lease something.
    private func changed() {
        changeCount += 1
        changes.publish(Position(changeCount))
    }

    /// A WebSocket member is connected: it counts as present (never forgotten as idle) until ``leave(_:)``.
    func attach(_ name: String, credit: Int) throws {
        try checkActive()
        let id = try join(name, credit: credit, now: ContinuousClock.now)
        present[id, default: 0] += 1
    }

    /// A member has gone (its WebSocket closed): the events it held are handed to others at once, each counted as a
    /// failed attempt.
    func leave(_ name: String) async throws {
        guard let id = memberIDs[name] else { return }
        present[id, default: 1] -= 1
        guard present[id, default: 0] <= 0 else { return }  // still fetching or connected elsewhere
        present[id] = nil
        ledger.leave(id, now: ContinuousClock.now)
        lastSeen[id] = nil
        memberIDs[name] = nil
        memberNames[id] = nil
        changed()
        guard !retired else { return }
        try await persist()
    }

    /// `member` processed these events.
    func acknowledge(_ positions: [Position], by name: String) async throws {
        try checkActive()
        guard let id = memberIDs[name] else { throw Ledger.Failure.unknownMember(0) }
        lastSeen[id] = ContinuousClock.now
        let before = ledger.acknowledgedCount
        try ledger.acknowledge(positions, by: id)
        metrics.recordGroupAcknowledged(definition.name, count: ledger.acknowledgedCount - before)
        changed()
        try await persist()
    }

    /// `member` failed to process the event at `position`.
    func reject(_ position: Position, by name: String, reason: String) async throws {
        try checkActive()
        guard let id = memberIDs[name] else { throw Ledger.Failure.unknownMember(0) }
        lastSeen[id] = ContinuousClock.now
        try ledger.reject(position, by: id, reason: Self.storable(reason), now: ContinuousClock.now)
        changed()
        try await persist()
    }

    /// Hands a parked event out again (or every parked event when `position` is `nil`).
    func replay(_ position: Position?) async throws {
        try checkActive()
        if let position {
            try ledger.replay(position)
        } else {
            ledger.replayAll()
        }
        changed()
    }

    /// The longest reason kept, in UTF-8 bytes.
    static let maximumReasonBytes = 1000

    /// A member's reason as every store keeps it: control characters (PostgreSQL's text refuses NUL) become spaces,
    /// and it is cut to ``maximumReasonBytes`` at a character boundary.
    static func storable(_ reason: String) -> String {
        var kept = ""
        var bytes = 0
        for character in reason {
            let clean: Character = character.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } ? " " : character
            bytes += clean.utf8.count
            guard bytes <= maximumReasonBytes else { break }
            kept.append(clean)
        }
        return kept
    }

    /// Stops the runtime for good (its group was changed, reset or deleted): once this returns, it writes nothing
    /// more to the store, so what the caller writes next stands; its members' calls fail and they fetch again from
    /// the group's next runtime.
    func retire() async {
        retired = true
        changed()  // waiting fetches end now (with the conflict), not at their deadline
        while writing > 0 {
            await withCheckedContinuation { writesEnded.append($0) }
        }
    }

    // MARK: Internals

    private func checkActive() throws {
        guard !retired else {
            throw StoreError(.conflict, "consumer group \(definition.name) was changed, reset or deleted meanwhile: nothing was settled; fetch again")
        }
    }

    private func join(_ name: String, credit: Int, now: ContinuousClock.Instant) throws(TooManyMembers) -> Ledger.MemberID {
        let id: Ledger.MemberID
        if let known = memberIDs[name] {
            id = known
        } else {
            forgetIdleMembers(now: now, except: 0)
            guard memberIDs.count < Self.maximumMembers else { throw TooManyMembers(group: definition.name) }
            id = nextMember
            nextMember += 1
            memberIDs[name] = id
            memberNames[id] = name
        }
        ledger.join(id, credit: credit)
        lastSeen[id] = now
        return id
    }

    /// A pull member that has not been seen for a lease timeout has gone: its leases lapsed already, and it no longer
    /// counts as a member.
    private func forgetIdleMembers(now: ContinuousClock.Instant, except kept: Ledger.MemberID) {
        for (id, seen) in lastSeen where id != kept && present[id] == nil && now - seen > definition.policy.leaseTimeout {
            ledger.leave(id, now: now)
            lastSeen[id] = nil
            if let name = memberNames.removeValue(forKey: id) { memberIDs[name] = nil }
        }
    }

    /// Reads what the window has room for; an actor's other calls may run meanwhile, so a read that another fill
    /// overtook is dropped.
    private func fill() async throws {
        ledger.expire(now: ContinuousClock.now)
        let wanted = ledger.wantedEvents
        guard wanted > 0 else { return }
        let after = ledger.readThrough
        let head = try await store.head()
        guard head > after else { return }
        // Pages of about 4 MiB whatever the events' size (PageSizer), so that one read never holds much more.
        let (events, continues) = try await pages.read(from: store, after: after, limit: min(wanted, 1000), filter: definition.filter)
        guard ledger.readThrough == after else { return }
        // A page that does not continue saw everything up to the head read before it.
        let through = continues ? (events.last?.position ?? after) : max(head, events.last?.position ?? after)
        ledger.add(events, readThrough: through)
    }

    /// Writes what the ledger changed: parked and resolved events at once, the checkpoint when it moved.
    private func persist() async throws {
        try checkActive()
        writing += 1
        defer {
            writing -= 1
            if writing == 0 {
                let waiting = writesEnded
                writesEnded = []
                for waiter in waiting { waiter.resume() }
            }
        }
        var checkpoint: Position?
        let changes = ledger.takeChanges()
        for change in changes { if case .parked(let parked) = change { parksInFlight.insert(parked.event.position.rawValue) } }
        for (index, change) in changes.enumerated() {
            do {
                try await persist(change)
            } catch {
                ledger.putBack(Array(changes[index...]))  // retried by the next call; the checkpoint waits for them
                throw error
            }
            switch change {
            case .checkpoint(let position):
                checkpoint = position
            case .parked(let parked):
                parksInFlight.remove(parked.event.position.rawValue)
                progressVersion += 1  // a checkpoint held back below it may now be written
            case .resolved:
                break
            }
        }
        // The progress (checkpoint and what was acknowledged after it) when it may have changed: a restart resumes
        // from it, handing out again only what was not acknowledged.
        let checkpointMoved = checkpoint.map { $0 != savedCheckpoint } ?? false
        if checkpointMoved || ledger.acknowledgedCount != acknowledgedWhenSaved {
            acknowledgedWhenSaved = ledger.acknowledgedCount
            progressVersion += 1
        }
        try await saveProgress()
    }

    /// Writes one change of the ledger (a checkpoint move is written with the progress, after the others).
    private func persist(_ change: Ledger.Change) async throws {
        switch change {
        case .checkpoint:
            break
        case .parked(let parked):
            logger.warning(
                "a consumer group parked an event",
                metadata: ["group": "\(definition.name)", "position": "\(parked.event.position)", "attempts": "\(parked.attempts)", "reason": "\(parked.reason)"])
            try await store.parkConsumerGroupEvent(
                ParkedGroupEvent(position: parked.event.position, attempts: parked.attempts, reason: parked.reason, parkedAt: Timestamp.nowMilliseconds()),
                group: definition.name)
        case .resolved(let position):
            _ = try await store.unparkConsumerGroupEvent(at: position, group: definition.name)
        }
    }

    /// Writes the progress up to ``progressVersion`` before returning (an acknowledgement is answered only once it
    /// is stored). Writes are not repeated per caller: while one is under way, later callers wait for the next
    /// one, which covers all of them — on SQLite each write is a durable transaction, and four members settling at
    /// once would otherwise queue four of them.
    private func saveProgress() async throws {
        let mine = progressVersion
        guard savedVersion < mine else { return }
        if writingProgress {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                progressWaiters.append((mine, continuation))
            }
            return
        }
        writingProgress = true
        defer { writingProgress = false }
        do {
            while savedVersion < progressVersion {
                try checkActive()
                let target = progressVersion
                var (position, acknowledged) = (ledger.checkpoint, ledger.acknowledgedAfterCheckpoint)
                // (A replayed event parked again lies at or below the stored checkpoint, and its record is still stored.)
                let unsavedAhead = parksInFlight.union(ledger.parkedInChanges).filter { $0 > savedCheckpoint.rawValue }
                if let unsaved = unsavedAhead.min(), unsaved <= position.rawValue {
                    // Only up to just before a parked event whose record is not stored yet (what was acknowledged
                    // between is delivered again after a restart, as at least once allows).
                    position = Position(unsaved - 1)
                    acknowledged = []
                }
                if position != savedCheckpoint || acknowledged != savedAcknowledged {
                    try await store.saveConsumerGroupCheckpoint(position, acknowledged: acknowledged, group: definition.name, reset: false)
                    (savedCheckpoint, savedAcknowledged) = (position, acknowledged)
                }
                savedVersion = target
                let covered = progressWaiters.filter { $0.version <= target }
                progressWaiters.removeAll { $0.version <= target }
                for waiter in covered { waiter.continuation.resume() }
            }
        } catch {
            let failed = progressWaiters
            progressWaiters = []
            for waiter in failed { waiter.continuation.resume(throwing: error) }
            throw error
        }
    }
}

/// A group has ``ConsumerGroupRuntime/maximumMembers`` members already (each seen within its lease timeout).
struct TooManyMembers: Error {
    var group: String
}

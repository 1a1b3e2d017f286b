import FluxCore
import Logging
import Synchronization

/// One consumer group at work on this node: its `GroupLedger`, fed from the store and the clock, and what the ledger
/// decides written back to the store (checkpoint, parked events). Members are named by the caller (HTTP pull: the
/// `member` parameter, or one made for it on its first fetch).
///
/// On a store that several nodes share (a `ConsumerGroupCoordinator`: PostgreSQL) the ledger holds only the events of
/// the partitions this node holds (`ConsumerGroupPartitions`), and a heartbeat keeps them: it renews their leases,
/// takes the node's share when members come, and gives partitions up when other nodes' members come — once the
/// events leased from them are settled, so that an aggregate is never served by two nodes at once.
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
    /// A fill is reading the store; these fetches wait for it (``fill()``).
    private var filling = false
    private var fillWaiters: [CheckedContinuation<Void, Never>] = []
    /// Stopped because the group was changed, reset or deleted: it writes nothing more and answers nothing more.
    private var retired = false
    /// The background write of acknowledgements (``acknowledgeInBackground(_:by:)``), and whether more came since it began.
    private var backgroundSave: Task<Void, Never>?
    private var saveAgain = false
    private let backgroundSaveInterval: Duration
    private var lastBackgroundSave: ContinuousClock.Instant?
    /// Wakes a background write waiting for its interval (``flush()``).
    private let saveNow = HeadSignal()
    private var saveNowCount: Int64 = 0
    private var flushing = false
    /// Store writes under way, and who waits for them to end (``retire()``).
    private var writing = 0
    private var writesEnded: [CheckedContinuation<Void, Never>] = []
    /// The most members a group keeps at once; a new one beyond it is refused until idle ones are forgotten.
    static let maximumMembers = 1000
    /// Each member's credit (a ledger made again for other partitions is given its members again).
    private var credits: [Ledger.MemberID: Int] = [:]
    /// How this node shares the group with other nodes; `nil` when the store is not shared.
    private var cluster: Cluster?
    private var heartbeat: Task<Void, Never>?
    /// The ledger is being made again for other partitions (``applyPendingPartitions()``, or partitions lost): nothing
    /// is leased meanwhile, and no second change begins before this one ends. Two changes at once would each make a
    /// ledger, and the later one would drop what members settled on the earlier one (delivering it again, out of order).
    private var changingPartitions = false
    private var partitionChangeWaiters: [CheckedContinuation<Void, Never>] = []
    private var lastSlowHeartbeatWarning: ContinuousClock.Instant?
    private let heartbeatRequests = HeadSignal()
    private var heartbeatRequestCount: Int64 = 0
    /// Set once retired: the registry starts a new runtime in its place.
    let hasRetired = Atomic<Bool>(false)

    /// This node's part of a group shared by several nodes.
    struct Cluster {
        let coordinator: any ConsumerGroupCoordinator
        let node: String
        /// The group's generation when this runtime started (a change, reset or re-creation renews it).
        var generation: Int64?
        /// The partitions whose events the ledger holds.
        var serving: Set<Int> = []
        /// Each served partition's stored checkpoint when it was taken: its events up to there are done.
        var floors: [Int: Position] = [:]
        /// Leases handed out end by then: the node's own leases on its partitions last that long after the
        /// heartbeat that last renewed them began.
        var grantsUntil: ContinuousClock.Instant = .now
        /// Partitions to give up or take: nothing is handed out until the events leased are settled (or lapse),
        /// then the ledger is made again for the new partitions.
        var pending: ConsumerGroupAssignment?
        var coordinating = false
        var nodes = 0
        /// Heartbeats in a row with no member here and no partition held.
        var idleBeats = 0

        func serves(_ event: RecordedEvent) -> Bool {
            let partition = ConsumerGroupPartitions.partition(of: event.aggregateID)
            guard serving.contains(partition) else { return false }
            return event.position > (floors[partition] ?? .start)
        }
    }

    /// How long a node holds its partitions after a heartbeat: the group's lease timeout, so that a node that dies
    /// hands its work on as a member that dies does.
    private var partitionLease: Duration { definition.policy.leaseTimeout }

    /// A webhook sink's group is delivered from one node at a time (its receiver sees one sender); other groups'
    /// partitions are dealt out among the nodes with members.
    private var sharing: ConsumerGroupSharing { definition.name.hasPrefix(WebhookSinkDefinition.groupPrefix) ? .oneNode : .partitioned }

    /// The runtime of a stored group: its parked events are read from the store first (the ledger holds their
    /// aggregates and can replay them).
    static func start(
        record: ConsumerGroupRecord, store: any EventStore & ConsumerGroupStore, logger: Logger, metrics: GatewayMetrics = GatewayMetrics(),
        node: String = ConsumerGroupRuntime.node, backgroundSaveInterval: Duration = ConsumerGroupRuntime.defaultBackgroundSaveInterval
    ) async throws -> ConsumerGroupRuntime {
        var parked: [Ledger.ParkedEvent] = []
        for stored in record.parked {
            let events = try await store.read(after: Position(stored.position.rawValue - 1), limit: 1, filter: .all)
            guard let event = events.first, event.position == stored.position else { continue }
            parked.append(Ledger.ParkedEvent(event: event, attempts: stored.attempts, reason: stored.reason))
        }
        let runtime = ConsumerGroupRuntime(
            record: record, parked: parked, store: store, logger: logger, metrics: metrics, backgroundSaveInterval: backgroundSaveInterval)
        if let coordinator = store as? any ConsumerGroupCoordinator {
            await runtime.share(with: coordinator, node: node)
        }
        return runtime
    }

    /// This gateway process's name among the nodes that share groups.
    static let node = "node-\(UInt64.random(in: 1...UInt64.max))"

    private init(
        record: ConsumerGroupRecord, parked: [Ledger.ParkedEvent], store: any EventStore & ConsumerGroupStore, logger: Logger, metrics: GatewayMetrics,
        backgroundSaveInterval: Duration
    ) {
        self.definition = record.definition
        self.backgroundSaveInterval = backgroundSaveInterval
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
        // Webhook sinks' groups retry with jitter (README "Webhook sinks"): a receiver that was down is not hit by every
        // retry at once when it comes back.
        if record.definition.name.hasPrefix(WebhookSinkDefinition.groupPrefix) { ledgerPolicy.jitter = 0.5 }
        self.ledger = Ledger(checkpoint: record.checkpoint, acknowledged: record.acknowledged, parked: parked, policy: ledgerPolicy)
        self.savedCheckpoint = record.checkpoint
        self.savedAcknowledged = record.acknowledged
    }

    /// What `GET /groups/{name}` shows of the group at work.
    struct Status: Sendable {
        var statistics: Ledger.Statistics
        var members: [String]
        /// The group's checkpoint as this node knows it; `nil` when nodes share the group (each holds only some
        /// partitions: the stored checkpoint is the group's).
        var checkpoint: Position?
        /// Nodes with members of the group (nodes share it), this one included.
        var nodes: Int?
    }

    var status: Status {
        Status(
            statistics: ledger.statistics, members: memberNames.values.sorted(), checkpoint: cluster == nil ? ledger.checkpoint : nil,
            nodes: cluster?.nodes)
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
            // The store is read in pages of a quarter window or more while the window has events to lease, and for
            // whatever room there is only when it has none: a settlement frees one place, and reading one event per
            // settlement cost more than the settlement.
            try await fill(atLeast: refillThreshold)
            var deliveries = try leaseIfServing(to: id, max: max)
            if deliveries.isEmpty, ledger.wantedEvents > 0 {
                try await fill(atLeast: 1)
                deliveries = try leaseIfServing(to: id, max: max)
            }
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
            store, changes, Position(changeCount), ledger.readThrough, ledger.wantedEvents > 0 && cluster?.serving.isEmpty != true, bound
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
        credits[id] = nil
        memberIDs[name] = nil
        memberNames[id] = nil
        changed()
        guard !retired else { return }
        try await persist()
        try await applyPendingPartitions()
    }

    /// `member` processed these events.
    func acknowledge(_ positions: [Position], by name: String) async throws {
        try settle(positions, by: name)
        try await persist()
        try await applyPendingPartitions()
    }

    /// `member` processed these events; they are settled at once and stored in the background (one write after
    /// another, each covering every acknowledgement before it), not before this returns. For a webhook sink, whose
    /// receiver has answered already: a crash before the write delivers those events again, as at least once allows,
    /// and the next delivery does not wait for a durable write. ``flush()`` waits for what is not stored yet.
    func acknowledgeInBackground(_ positions: [Position], by name: String) throws {
        try settle(positions, by: name)
        guard backgroundSave == nil else {
            saveAgain = true
            return
        }
        backgroundSave = Task { await self.saveInBackground() }
    }

    /// Acknowledges in the ledger (not stored yet) and wakes waiting fetches.
    private func settle(_ positions: [Position], by name: String) throws {
        try checkActive()
        guard let id = memberIDs[name] else { throw Ledger.Failure.unknownMember(0) }
        lastSeen[id] = ContinuousClock.now
        let before = ledger.acknowledgedCount
        try ledger.acknowledge(positions, by: id)
        metrics.recordGroupAcknowledged(definition.name, count: ledger.acknowledgedCount - before)
        changed()
    }

    /// Stores what ``acknowledgeInBackground(_:by:)`` settled (the sink's deliverer stops): a background write
    /// waiting for its interval writes at once.
    func flush() async {
        flushing = true
        defer { flushing = false }
        saveNowCount += 1
        saveNow.publish(Position(saveNowCount))
        // In a task of its own: the caller is often being cancelled (the gateway stops), and the write must not be.
        let writer = Task { await self.backgroundSave?.value }
        await writer.value
        guard !retired else { return }
        do {
            try await Task { try await self.persist() }.value
        } catch {
            logger.notice("a consumer group's progress could not be stored as its member stopped", metadata: ["group": "\(definition.name)", "error": "\(error)"])
        }
    }

    /// The least time between two background writes by default: each covers the acknowledgements of this time at
    /// least, so that a sink delivering thousands of events a second makes a few durable writes a second, not one per
    /// delivery round (a crash delivers again what was acknowledged in the last one at most).
    static let defaultBackgroundSaveInterval = Duration.milliseconds(100)

    private func saveInBackground() async {
        repeat {
            if let last = lastBackgroundSave, !flushing, ContinuousClock.now - last < backgroundSaveInterval {
                // (``flush()`` ends the wait.)
                _ = await saveNow.wait(beyond: Position(saveNowCount), timeout: last + backgroundSaveInterval - ContinuousClock.now)
            }
            lastBackgroundSave = ContinuousClock.now
            saveAgain = false
            do {
                try await persist()
                try await applyPendingPartitions()
            } catch {
                guard !retired else { break }
                // The acknowledgements stay in the ledger: the next write (the next acknowledgement's) covers them.
                logger.warning("a consumer group's progress could not be stored; it is retried with the next acknowledgement",
                               metadata: ["group": "\(definition.name)", "error": "\(error)"])
                break
            }
        } while saveAgain && !retired
        backgroundSave = nil
    }

    /// `member` failed to process the event at `position`.
    func reject(_ position: Position, by name: String, reason: String) async throws {
        try checkActive()
        guard let id = memberIDs[name] else { throw Ledger.Failure.unknownMember(0) }
        lastSeen[id] = ContinuousClock.now
        try ledger.reject(position, by: id, reason: Self.storable(reason), now: ContinuousClock.now)
        changed()
        try await persist()
        try await applyPendingPartitions()
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
        hasRetired.store(true, ordering: .relaxed)
        heartbeat?.cancel()
        heartbeat = nil
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
        credits[id] = max(1, credit)
        lastSeen[id] = now
        if let cluster, cluster.serving.isEmpty, cluster.pending == nil { requestHeartbeat() }  // a first member here
        return id
    }

    /// A pull member that has not been seen for a lease timeout has gone: its leases lapsed already, and it no longer
    /// counts as a member.
    private func forgetIdleMembers(now: ContinuousClock.Instant, except kept: Ledger.MemberID) {
        for (id, seen) in lastSeen where id != kept && present[id] == nil && now - seen > definition.policy.leaseTimeout {
            ledger.leave(id, now: now)
            lastSeen[id] = nil
            credits[id] = nil
            if let name = memberNames.removeValue(forKey: id) { memberIDs[name] = nil }
        }
    }

    /// The room in the window (events) worth a read while the window still has events to lease.
    private var refillThreshold: Int { Swift.max(1, ledger.policy.window / 4) }

    /// Reads what the window has room for (when it is `minimum` events or more); an actor's other calls may run meanwhile, so a read that another fill
    /// overtook is dropped. One read at a time: a fetch that comes while another reads waits for that read (its
    /// events serve both) instead of reading the same page again.
    private func fill(atLeast minimum: Int) async throws {
        ledger.expire(now: ContinuousClock.now)
        let wanted = ledger.wantedEvents
        guard wanted >= Swift.max(1, minimum), cluster?.serving.isEmpty != true else { return }
        guard !filling else {
            await withCheckedContinuation { fillWaiters.append($0) }
            return
        }
        filling = true
        defer {
            filling = false
            let waiting = fillWaiters
            fillWaiters = []
            for waiter in waiting { waiter.resume() }
        }
        let after = ledger.readThrough
        let head = try await store.head()
        guard head > after else { return }
        // Pages of about 4 MiB whatever the events' size (PageSizer), so that one read never holds much more.
        let (events, continues) = try await pages.read(from: store, after: after, limit: min(wanted, 1000), filter: definition.filter)
        guard ledger.readThrough == after else { return }
        // A page that does not continue saw everything up to the head read before it.
        let through = continues ? (events.last?.position ?? after) : max(head, events.last?.position ?? after)
        // Shared with other nodes: only the events of the partitions served here, and not those done before they came.
        ledger.add(cluster.map { cluster in events.filter(cluster.serves) } ?? events, readThrough: through)
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
                    if let cluster {
                        try await savePartitions(cluster, position, acknowledged)
                    } else {
                        try await store.saveConsumerGroupCheckpoint(position, acknowledged: acknowledged, group: definition.name, reset: false)
                    }
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

// MARK: Sharing the group with other nodes

extension ConsumerGroupRuntime {
    /// Shares the group with the other nodes of `coordinator`'s database: the ledger holds nothing until a heartbeat
    /// gives this node partitions (when it has members), and the heartbeat runs until the runtime retires.
    fileprivate func share(with coordinator: any ConsumerGroupCoordinator, node: String) {
        cluster = Cluster(coordinator: coordinator, node: node)
        // Nothing is served before the first heartbeat: the ledger starts empty, at no partition.
        ledger = Ledger(checkpoint: ledger.checkpoint, policy: ledger.policy)
        let interval = min(Duration.seconds(1), definition.policy.leaseTimeout / 4)
        let requests = heartbeatRequests
        heartbeat = Task { [weak self] in
            var seen = Position.start
            while !Task.isCancelled {
                guard let self else { return }
                await self.beat()
                seen = await requests.wait(beyond: seen, timeout: interval)
            }
        }
    }

    /// This node stops serving the group (the gateway stops; the runtime has retired): it says it has no members and
    /// gives its partitions up at once when no event is leased from them — else they go to other nodes when their
    /// leases lapse, as the leases of the events lapse.
    func leaveOtherNodes() async {
        guard let cluster, retired else { return }
        ledger.expire(now: ContinuousClock.now)
        do {
            let assignment = try await cluster.coordinator.coordinateConsumerGroup(
                definition.name, node: cluster.node, serving: false, sharing: sharing, lease: ledger.statistics.leased == 0 ? .zero : partitionLease)
            guard ledger.statistics.leased == 0 else { return }
            try await cluster.coordinator.releaseConsumerGroupPartitions(Set(assignment.held.keys), group: definition.name, node: cluster.node)
        } catch {
            logger.notice(
                "a stopping node could not give up a consumer group's partitions; other nodes take them when their leases lapse",
                metadata: ["group": "\(definition.name)", "error": "\(error)"])
        }
    }

    /// Asks for a heartbeat now (a first member came).
    fileprivate func requestHeartbeat() {
        heartbeatRequestCount += 1
        heartbeatRequests.publish(Position(heartbeatRequestCount))
    }

    private func beat() async {
        do {
            try await coordinate()
        } catch let error as StoreError where error.code == .notFound {
            // The group was deleted (maybe by another node): this runtime's state is no longer anyone's.
            await retire()
        } catch {
            guard !retired else { return }
            logger.warning(
                "a consumer group's heartbeat failed; this node hands out nothing once its partitions' leases end, and retries",
                metadata: ["group": "\(definition.name)", "error": "\(error)"])
        }
    }

    /// Leases to a member, unless the events of this node's partitions may not go out now: while partitions change
    /// hands, or when the last heartbeat is too old for a lease to end within the node's own.
    fileprivate func leaseIfServing(to id: Ledger.MemberID, max: Int) throws(Ledger.Failure) -> [Ledger.Delivery] {
        let now = ContinuousClock.now
        guard let cluster else { return try ledger.lease(to: id, max: max, now: now) }
        // A lease shorter than a quarter of the timeout would lapse before a member could use it: wait for a heartbeat.
        guard cluster.pending == nil, !changingPartitions, !cluster.serving.isEmpty, cluster.grantsUntil - now > definition.policy.leaseTimeout / 4 else {
            ledger.expire(now: now)
            return []
        }
        return try ledger.lease(to: id, max: max, now: now, endingBy: cluster.grantsUntil)
    }

    /// One heartbeat: renews this node's partitions and learns its share; a change of the partitions served is
    /// applied once the events leased are settled (``applyPendingPartitions()``).
    private func coordinate() async throws {
        guard let current = cluster, !retired, !current.coordinating else { return }
        cluster?.coordinating = true
        defer { cluster?.coordinating = false }
        let asked = ContinuousClock.now
        let assignment = try await current.coordinator.coordinateConsumerGroup(
            definition.name, node: current.node, serving: !memberIDs.isEmpty, sharing: sharing, lease: partitionLease)
        guard !retired, var cluster else { return }
        warnIfSlow(heartbeat: ContinuousClock.now - asked)
        if let generation = cluster.generation, generation != assignment.generation {
            logger.notice(
                "a consumer group was changed, reset or re-created on another node; its runtime here starts again",
                metadata: ["group": "\(definition.name)"])
            await retire()
            return
        }
        cluster.generation = assignment.generation
        cluster.grantsUntil = asked + partitionLease
        cluster.nodes = assignment.liveNodes
        let held = Set(assignment.held.keys)
        let lost = cluster.serving.subtracting(held)
        let wanted = held.intersection(assignment.share)
        cluster.pending = (wanted == cluster.serving && held == wanted) ? nil : assignment
        // A runtime with no members that holds nothing (started to answer GET /groups/{name}, or its members left)
        // stops beating after a minute: the registry starts a new one when the group is used again.
        cluster.idleBeats = (memberIDs.isEmpty && held.isEmpty && cluster.serving.isEmpty) ? cluster.idleBeats + 1 : 0
        self.cluster = cluster
        if cluster.idleBeats >= 60 {
            await retire()
            return
        }
        if !lost.isEmpty {
            // This node's lease on them lapsed and another node took them: what it leased from them lapsed too (leases
            // end with the node's), so it stops serving them at once (once a change under way has ended: it leases
            // nothing meanwhile).
            await beginPartitionChange()
            defer { endPartitionChange() }
            let lostNow = self.cluster?.serving.subtracting(held) ?? []
            if !lostNow.isEmpty, !retired {
                logger.warning(
                    "a consumer group's partitions were taken by another node (this node's heartbeats were late); their events are handed out there",
                    metadata: ["group": "\(definition.name)", "partitions": "\(lostNow.sorted())"])
                try await rebuild(serving: (self.cluster?.serving ?? []).intersection(held), progress: assignment.held, current: [:])
                changed()
            }
        }
        try await applyPendingPartitions()
    }

    /// Says so (at most once a minute) when heartbeats take so long that too little of the node's lease is left after
    /// one for this node to hand events out (``leaseIfServing(to:max:)``): a database too slow for the group's lease
    /// timeout, which then wants raising.
    private func warnIfSlow(heartbeat took: Duration) {
        let usable = partitionLease - partitionLease / 4
        guard took > usable / 2 else { return }
        let now = ContinuousClock.now
        if let last = lastSlowHeartbeatWarning, now - last < .seconds(60) { return }
        lastSlowHeartbeatWarning = now
        logger.warning(
            took >= usable
                ? "a consumer group's heartbeat took longer than its lease allows: this node hands out none of its events until heartbeats are faster; raise the group's lease_timeout_ms or relieve the database"
                : "a consumer group's heartbeat took over half of the time its lease allows: a slower one stops this node from handing events out",
            metadata: ["group": "\(definition.name)", "heartbeat": "\(took)", "lease": "\(partitionLease)"])
    }

    /// Gives up and takes partitions as the last heartbeat said, once no event is leased: saves the progress of the
    /// partitions served, releases the ones beyond this node's share, and makes the ledger again for the others.
    fileprivate func applyPendingPartitions() async throws {
        // (A change under way: the heartbeat after it applies what is pending then.)
        guard let cluster, let assignment = cluster.pending, !retired, !changingPartitions else { return }
        ledger.expire(now: ContinuousClock.now)
        guard ledger.statistics.leased == 0 else { return }  // settlements and lapses call this again
        changingPartitions = true
        defer { endPartitionChange() }
        try await persist()
        guard let current = self.cluster, current.pending == assignment else { return }  // a newer heartbeat came
        let held = Set(assignment.held.keys)
        let wanted = held.intersection(assignment.share)
        try await current.coordinator.releaseConsumerGroupPartitions(held.subtracting(wanted), group: definition.name, node: current.node)
        // The partitions served already go on from what this ledger did (stored just now, newer than the heartbeat's).
        let ours = ConsumerGroupPartitionProgress(checkpoint: ledger.checkpoint, acknowledged: ledger.acknowledgedAfterCheckpoint)
        let continuing = Dictionary(uniqueKeysWithValues: current.serving.intersection(wanted).map { ($0, ours) })
        try await rebuild(serving: wanted, progress: assignment.held, current: continuing)
        if self.cluster?.pending == assignment { self.cluster?.pending = nil }
        changed()
    }

    /// Waits for a change of the partitions under way to end, then begins one (``endPartitionChange()`` ends it).
    private func beginPartitionChange() async {
        while changingPartitions {
            await withCheckedContinuation { partitionChangeWaiters.append($0) }
        }
        changingPartitions = true
    }

    private func endPartitionChange() {
        changingPartitions = false
        let waiting = partitionChangeWaiters
        partitionChangeWaiters = []
        for waiter in waiting { waiter.resume() }
    }

    /// Makes the ledger again for `serving`: from the lowest of their checkpoints, with what was acknowledged after
    /// them and their parked events; the members stay (what they held was settled or lapsed).
    private func rebuild(
        serving: Set<Int>, progress stored: [Int: ConsumerGroupPartitionProgress], current: [Int: ConsumerGroupPartitionProgress]
    ) async throws {
        var progress: [Int: ConsumerGroupPartitionProgress] = [:]
        var acknowledged: [ClosedRange<Position>] = []
        for partition in serving {
            var merged = stored[partition] ?? ConsumerGroupPartitionProgress(checkpoint: definition.start)
            if let ours = current[partition] {
                merged.checkpoint = max(merged.checkpoint, ours.checkpoint)
                merged.acknowledged += ours.acknowledged
            }
            progress[partition] = merged
            acknowledged += merged.acknowledged
        }
        let start = progress.values.map(\.checkpoint).min() ?? ledger.checkpoint
        var parked: [Ledger.ParkedEvent] = []
        if !serving.isEmpty, let record = try await store.consumerGroup(named: definition.name) {
            for stored in record.parked {
                let events = try await store.read(after: Position(stored.position.rawValue - 1), limit: 1, filter: .all)
                guard let event = events.first, event.position == stored.position,
                    serving.contains(ConsumerGroupPartitions.partition(of: event.aggregateID))
                else { continue }
                parked.append(Ledger.ParkedEvent(event: event, attempts: stored.attempts, reason: stored.reason))
            }
        }
        guard !retired else { return }
        var ledger = Ledger(checkpoint: start, acknowledged: Self.merged(acknowledged), parked: parked, policy: self.ledger.policy)
        for id in memberIDs.values { ledger.join(id, credit: credits[id] ?? 1) }
        self.ledger = ledger
        cluster?.serving = serving
        cluster?.floors = progress.mapValues(\.checkpoint)
        (savedCheckpoint, savedAcknowledged) = (start, ledger.acknowledgedAfterCheckpoint)
        acknowledgedWhenSaved = 0
        parksInFlight = []
        logger.info(
            "a consumer group's partitions on this node changed",
            metadata: ["group": "\(definition.name)", "partitions": "\(serving.sorted())", "from": "\(start)"])
    }

    /// Saves the served partitions' progress; fails when this node no longer holds them all.
    fileprivate func savePartitions(_ cluster: Cluster, _ position: Position, _ acknowledged: [ClosedRange<Position>]) async throws {
        guard let generation = cluster.generation, !cluster.serving.isEmpty else { return }
        let saved = try await cluster.coordinator.saveConsumerGroupPartitions(
            cluster.serving, checkpoint: position, acknowledged: acknowledged, group: definition.name, node: cluster.node, generation: generation)
        guard saved else {
            requestHeartbeat()
            throw StoreError(
                .conflict,
                "this node no longer holds consumer group \(definition.name)'s partitions (another node took them, or the group changed): what was settled here is delivered again; fetch again")
        }
    }

    /// Ascending, disjoint ranges covering `ranges`.
    static func merged(_ ranges: [ClosedRange<Position>]) -> [ClosedRange<Position>] {
        var result: [ClosedRange<Position>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, range.lowerBound <= last.upperBound.next {
                result[result.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                result.append(range)
            }
        }
        return result
    }
}

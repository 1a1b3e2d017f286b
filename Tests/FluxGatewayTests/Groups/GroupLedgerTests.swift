import FluxCore
import FluxTesting
import Foundation
import Testing

@testable import FluxGateway

/// The consumer-group rules without I/O: time is given, so leases lapse and backoffs end without sleeping.
@Suite struct GroupLedgerTests {
    typealias Ledger = GroupLedger<ContinuousClock.Instant>
    static let t0 = ContinuousClock.now

    static func at(_ seconds: Double) -> ContinuousClock.Instant { t0.advanced(by: .milliseconds(Int64(seconds * 1000))) }

    /// Events at positions `first...`, one per aggregate id given, in that order.
    static func events(_ aggregates: [String], from first: Int64 = 1) -> [RecordedEvent] {
        var versions: [String: Int64] = [:]
        return aggregates.enumerated().map { offset, aggregate in
            defer { versions[aggregate, default: 0] += 1 }
            return RecordedEvent(
                eventID: "e\(first + Int64(offset))", position: Position(first + Int64(offset)), aggregateID: aggregate, aggregateName: "A",
                version: versions[aggregate, default: 0], eventType: "t", recordedAtMilliseconds: 0, payload: .null
            )
        }
    }

    static func positions(_ deliveries: [Ledger.Delivery]) -> [Int64] { deliveries.map(\.event.position.rawValue) }

    static func checkpoints(_ changes: [Ledger.Change]) -> [Int64] {
        changes.compactMap { if case .checkpoint(let position) = $0 { position.rawValue } else { nil } }
    }

    @Test func anAggregateGoesToOneMemberAtATimeInOrderAndAggregatesGoInParallel() throws {
        var ledger = Ledger(checkpoint: .start)
        ledger.add(Self.events(["a", "b", "a", "b", "a", "b"]), readThrough: Position(6))
        ledger.join(1, credit: 2)
        ledger.join(2, credit: 2)
        #expect(Self.positions(try ledger.lease(to: 1, max: 10, now: Self.at(0))) == [1, 3], "a's oldest events, within the credit")
        #expect(Self.positions(try ledger.lease(to: 2, max: 10, now: Self.at(0))) == [2, 4], "b goes to the other member")
        #expect(try ledger.lease(to: 1, max: 10, now: Self.at(0)).isEmpty, "no credit left")
        try ledger.acknowledge([Position(1), Position(3)], by: 1)
        #expect(Self.positions(try ledger.lease(to: 1, max: 10, now: Self.at(0))) == [5], "a's next; b is still held by member 2")
        #expect(ledger.checkpoint == Position(1), "2 is not acknowledged yet")
        try ledger.acknowledge([Position(2), Position(4)], by: 2)
        #expect(ledger.checkpoint == Position(4))
        #expect(Self.positions(try ledger.lease(to: 2, max: 10, now: Self.at(0))) == [6])
        try ledger.acknowledge([Position(5)], by: 1)
        try ledger.acknowledge([Position(6)], by: 2)
        #expect(ledger.checkpoint == Position(6))
        #expect(Self.checkpoints(ledger.takeChanges()) == [1, 4, 5, 6])
        #expect(ledger.statistics.window == 0)
        #expect(ledger.statistics.acknowledged == 6)
    }

    @Test func jitterCutsABackoffByUpToItsShareDifferentlyPerEventAndTheSameEachTime() throws {
        var policy = Ledger.Policy()
        policy.backoff = .seconds(1)
        policy.maximumBackoff = .seconds(60)
        #expect(policy.jitteredBackoff(after: 3, position: 7) == .seconds(4), "no jitter by default")
        policy.jitter = 0.5
        let waits = (1...200).map { policy.jitteredBackoff(after: 3, position: Int64($0)) }
        #expect(waits.allSatisfy { (Duration.seconds(2)...Duration.seconds(4)).contains($0) }, "within [½, 1] of 4 s")
        #expect(Set(waits).count > 150, "spread out: \(Set(waits).count) different waits")
        #expect(policy.jitteredBackoff(after: 3, position: 7) == policy.jitteredBackoff(after: 3, position: 7), "deterministic")
        // The ledger waits the jittered backoff: a rejected event is not handed out before it ends.
        var ledger = Ledger(checkpoint: .start, policy: policy)
        ledger.add(Self.events(["a"]), readThrough: Position(1))
        ledger.join(1, credit: 1)
        _ = try ledger.lease(to: 1, max: 1, now: Self.at(0))
        try ledger.reject(Position(1), by: 1, reason: "no", now: Self.at(0))
        let wait = policy.jitteredBackoff(after: 1, position: 1)
        #expect(try ledger.lease(to: 1, max: 1, now: Self.at(0) + wait - .milliseconds(1)).isEmpty)
        #expect(Self.positions(try ledger.lease(to: 1, max: 1, now: Self.at(0) + wait)) == [1])
    }

    @Test func whatWasAcknowledgedOrParkedAfterTheCheckpointIsNotHandedOutAgainAfterARestart() throws {
        var policy = Ledger.Policy()
        policy.maximumAttempts = 1
        policy.parkedEvents = .continueAggregate
        var ledger = Ledger(checkpoint: .start, policy: policy)
        ledger.add(Self.events(["a", "b", "c", "d", "e", "f"]), readThrough: Position(6))
        ledger.join(1, credit: 10)
        #expect(Self.positions(try ledger.lease(to: 1, max: 10, now: Self.at(0))) == [1, 2, 3, 4, 5, 6])
        try ledger.acknowledge([Position(2), Position(3), Position(5)], by: 1)
        try ledger.reject(Position(4), by: 1, reason: "bad", now: Self.at(0))
        #expect(ledger.checkpoint == .start, "1 is not acknowledged")
        #expect(ledger.acknowledgedAfterCheckpoint == [Position(2)...Position(3), Position(5)...Position(5)], "4 is parked, not acknowledged")
        let parked = ledger.parked
        #expect(parked.map(\.event.position) == [Position(4)])

        // The restart: the store keeps the checkpoint, the ranges and the parked event.
        var restarted = Ledger(checkpoint: ledger.checkpoint, acknowledged: ledger.acknowledgedAfterCheckpoint, parked: parked, policy: policy)
        #expect(restarted.acknowledgedAfterCheckpoint == [Position(2)...Position(3), Position(5)...Position(5)], "kept before they are read again")
        restarted.add(Self.events(["a", "b", "c", "d", "e", "f"]), readThrough: Position(6))
        restarted.join(1, credit: 10)
        #expect(Self.positions(try restarted.lease(to: 1, max: 10, now: Self.at(0))) == [1, 6], "only what was neither acknowledged nor parked")
        try restarted.acknowledge([Position(1)], by: 1)
        #expect(restarted.checkpoint == Position(5), "past 2, 3, the parked 4 and 5")
        #expect(restarted.acknowledgedAfterCheckpoint.isEmpty)
        try restarted.acknowledge([Position(6)], by: 1)
        #expect(restarted.checkpoint == Position(6))
        #expect(restarted.parked.map(\.event.position) == [Position(4)], "still listed for replay")
    }

    @Test func positionRangesRoundTripAndRefuseWhatIsNotRanges() {
        let ranges = PositionRanges.ranges(of: [Position(9), Position(5), Position(6), Position(7), Position(12), Position(6)])
        #expect(ranges == [Position(5)...Position(7), Position(9)...Position(9), Position(12)...Position(12)])
        #expect(PositionRanges.encode(ranges) == "5-7,9,12")
        #expect(PositionRanges.decode("5-7,9,12") == ranges)
        #expect(PositionRanges.decode("") == [])
        for bad in ["7-5", "5,5", "9,5", "0", "-3", "a", "5-", ",", "1-2-3", "99999999999999999999"] {
            #expect(PositionRanges.decode(bad) == nil, "\(bad)")
        }
    }

    @Test func aMemberThatJoinsAgainKeepsWhatItHoldsWithinItsCreditAndGivesItBackWhenItLeaves() throws {
        var ledger = Ledger(checkpoint: .start)
        ledger.add(Self.events(["a", "b", "c", "d", "e", "f"]), readThrough: Position(6))
        ledger.join(1, credit: 4)
        #expect(Self.positions(try ledger.lease(to: 1, max: 4, now: Self.at(0))) == [1, 2, 3, 4])
        ledger.join(1, credit: 4)  // a pull member's next fetch
        #expect(try ledger.lease(to: 1, max: 4, now: Self.at(0)).isEmpty, "its credit is used by what it holds")
        ledger.join(2, credit: 10)
        #expect(Self.positions(try ledger.lease(to: 2, max: 10, now: Self.at(0))) == [5, 6])
        ledger.leave(1, now: Self.at(1))
        #expect(Self.positions(try ledger.lease(to: 2, max: 10, now: Self.at(60))) == [1, 2, 3, 4], "everything it held, at once")
    }

    @Test func theCheckpointPassesWhatAFilteredReadSkipped() {
        var ledger = Ledger(checkpoint: Position(10))
        ledger.add([], readThrough: Position(50))
        #expect(ledger.checkpoint == Position(50), "nothing matched up to 50: nothing to wait for")
        #expect(ledger.takeChanges() == [.checkpoint(Position(50))])
    }

    @Test func aLapsedLeaseIsHandedToAnotherMemberAfterTheBackoff() throws {
        var policy = Ledger.Policy()
        policy.leaseTimeout = .seconds(30)
        policy.backoff = .seconds(1)
        var ledger = Ledger(checkpoint: .start, policy: policy)
        ledger.add(Self.events(["a", "a", "b"]), readThrough: Position(3))
        ledger.join(1, credit: 10)
        ledger.join(2, credit: 10)
        #expect(Self.positions(try ledger.lease(to: 1, max: 10, now: Self.at(0))) == [1, 2, 3])
        try ledger.acknowledge([Position(3)], by: 1)
        #expect(ledger.nextDeadline == Self.at(30))
        ledger.expire(now: Self.at(29.9))
        #expect(ledger.statistics.leased == 2, "not yet")
        ledger.expire(now: Self.at(30))
        #expect(ledger.statistics.leased == 0)
        #expect(try ledger.lease(to: 2, max: 10, now: Self.at(30.5)).isEmpty, "backing off")
        let again = try ledger.lease(to: 2, max: 10, now: Self.at(31))
        #expect(Self.positions(again) == [1, 2], "in order, to the other member")
        #expect(again.map(\.attempt) == [2, 1], "the lease's first event failed; the second went back unharmed")
        #expect(throws: Ledger.Failure.notLeased(Position(1), 1)) { try ledger.acknowledge([Position(1)], by: 1) }
        try ledger.acknowledge([Position(1), Position(2)], by: 2)
        #expect(ledger.checkpoint == Position(3))
        #expect(ledger.statistics.redeliveries == 1)
    }

    @Test func aMemberThatLeavesHandsItsEventsToTheOthers() throws {
        var policy = Ledger.Policy()
        policy.backoff = .zero
        var ledger = Ledger(checkpoint: .start, policy: policy)
        ledger.add(Self.events(["a", "b", "a"]), readThrough: Position(3))
        ledger.join(1, credit: 10)
        ledger.join(2, credit: 10)
        #expect(Self.positions(try ledger.lease(to: 1, max: 10, now: Self.at(0))) == [1, 3, 2])
        ledger.leave(1, now: Self.at(1))
        #expect(throws: Ledger.Failure.unknownMember(1)) { try ledger.lease(to: 1, max: 1, now: Self.at(1)) }
        let taken = try ledger.lease(to: 2, max: 10, now: Self.at(1))
        #expect(Set(Self.positions(taken)) == [1, 2, 3])
        #expect(Self.positions(taken).filter { $0 != 2 } == [1, 3], "a's events still in order")
    }

    @Test func aRejectedEventIsRetriedWithBackoffThenParkedAndItsAggregateWaits() throws {
        var policy = Ledger.Policy()
        policy.maximumAttempts = 3
        policy.backoff = .seconds(1)
        var ledger = Ledger(checkpoint: .start, policy: policy)
        ledger.add(Self.events(["poison", "poison", "ok", "ok"]), readThrough: Position(4))
        ledger.join(1, credit: 1)
        var now = 0.0
        var attempts: [Int] = []
        while true {
            let leased = try ledger.lease(to: 1, max: 1, now: Self.at(now))
            guard let first = leased.first, first.event.aggregateID == "poison", first.event.position == Position(1) else {
                // The backoff keeps the poison aggregate out: the other aggregate flows meanwhile.
                if let other = leased.first {
                    #expect(other.event.aggregateID == "ok")
                    try ledger.acknowledge([other.event.position], by: 1)
                }
                now += 0.25
                if now > 60 { break }
                continue
            }
            attempts.append(first.attempt)
            try ledger.reject(Position(1), by: 1, reason: "boom \(first.attempt)", now: Self.at(now))
            if ledger.parked.count == 1 { break }
        }
        #expect(attempts == [1, 2, 3])
        #expect(ledger.parked.map(\.reason) == ["boom 3"])
        #expect(ledger.parked.map(\.attempts) == [3])
        // The aggregate's second event waits for the parked one; the other aggregate is done.
        for later in 0..<8 {
            for delivery in try ledger.lease(to: 1, max: 1, now: Self.at(now + Double(later))) {
                #expect(delivery.event.aggregateID == "ok")
                try ledger.acknowledge([delivery.event.position], by: 1)
            }
        }
        #expect(ledger.checkpoint == Position(1), "past the parked event (it is kept in the parked list), not past the held one")
        let changes = ledger.takeChanges()
        #expect(changes.contains(.parked(Ledger.ParkedEvent(event: Self.events(["poison"])[0], attempts: 3, reason: "boom 3"))))
        // Replayed after the handler is fixed: first the parked event, then the held one.
        try ledger.replay(Position(1))
        #expect(ledger.parked.isEmpty)
        let replayed = try ledger.lease(to: 1, max: 1, now: Self.at(now + 10))
        #expect(Self.positions(replayed) == [1])
        #expect(replayed.first?.attempt == 1, "attempts start again")
        try ledger.acknowledge([Position(1)], by: 1)
        #expect(ledger.takeChanges().contains(.resolved(Position(1))))
        let held = try ledger.lease(to: 1, max: 1, now: Self.at(now + 10))
        #expect(Self.positions(held) == [2])
        try ledger.acknowledge([Position(2)], by: 1)
        #expect(ledger.checkpoint == Position(4))
        #expect(throws: Ledger.Failure.notParked(Position(1))) { try ledger.replay(Position(1)) }
    }

    @Test func withContinueTheAggregateGoesOnAndTheReplayedEventComesAfter() throws {
        var policy = Ledger.Policy()
        policy.maximumAttempts = 1
        policy.parkedEvents = .continueAggregate
        var ledger = Ledger(checkpoint: .start, policy: policy)
        ledger.add(Self.events(["a", "a"]), readThrough: Position(2))
        ledger.join(1, credit: 1)
        #expect(Self.positions(try ledger.lease(to: 1, max: 1, now: Self.at(0))) == [1])
        try ledger.reject(Position(1), by: 1, reason: "bad", now: Self.at(0))
        #expect(ledger.parked.count == 1)
        #expect(Self.positions(try ledger.lease(to: 1, max: 1, now: Self.at(0))) == [2], "no wait for the parked one")
        try ledger.acknowledge([Position(2)], by: 1)
        #expect(ledger.checkpoint == Position(2))
        ledger.replayAll()
        #expect(Self.positions(try ledger.lease(to: 1, max: 1, now: Self.at(1))) == [1])
    }

    @Test func rejectingAnEventReleasesTheMembersLaterEventsOfItsAggregateOnly() throws {
        var policy = Ledger.Policy()
        policy.backoff = .seconds(1)
        var ledger = Ledger(checkpoint: .start, policy: policy)
        ledger.add(Self.events(["a", "a", "a", "b"]), readThrough: Position(4))
        ledger.join(1, credit: 10)
        ledger.join(2, credit: 10)
        #expect(Self.positions(try ledger.lease(to: 1, max: 10, now: Self.at(0))) == [1, 2, 3, 4])
        try ledger.reject(Position(2), by: 1, reason: "no", now: Self.at(0))
        #expect(ledger.statistics.leased == 2, "1 and 4 stay leased")
        #expect(try ledger.lease(to: 2, max: 10, now: Self.at(5)).isEmpty, "a's event 1 is still held by member 1")
        try ledger.acknowledge([Position(1)], by: 1)
        let retried = try ledger.lease(to: 2, max: 10, now: Self.at(5))
        #expect(Self.positions(retried) == [2, 3])
        #expect(retried.map(\.attempt) == [2, 1])
    }

    @Test func anAcknowledgementOfAnythingNotLeasedToTheCallerAcknowledgesNothing() throws {
        var ledger = Ledger(checkpoint: .start)
        ledger.add(Self.events(["a", "b"]), readThrough: Position(2))
        ledger.join(1, credit: 1)
        ledger.join(2, credit: 1)
        _ = try ledger.lease(to: 1, max: 1, now: Self.at(0))
        _ = try ledger.lease(to: 2, max: 1, now: Self.at(0))
        #expect(throws: Ledger.Failure.notLeased(Position(2), 1)) { try ledger.acknowledge([Position(1), Position(2)], by: 1) }
        #expect(throws: Ledger.Failure.notLeased(Position(99), 1)) { try ledger.acknowledge([Position(99)], by: 1) }
        #expect(throws: Ledger.Failure.unknownMember(7)) { try ledger.acknowledge([Position(1)], by: 7) }
        #expect(ledger.statistics.acknowledged == 0)
        #expect(ledger.statistics.leased == 2)
        #expect(ledger.checkpoint == .start)
    }

    @Test func theWindowBoundsWhatIsReadAhead() throws {
        var policy = Ledger.Policy()
        policy.window = 3
        var ledger = Ledger(checkpoint: .start, policy: policy)
        #expect(ledger.wantedEvents == 3)
        ledger.add(Self.events(["a", "b", "c"]), readThrough: Position(3))
        #expect(ledger.wantedEvents == 0)
        ledger.join(1, credit: 10)
        _ = try ledger.lease(to: 1, max: 10, now: Self.at(0))
        try ledger.acknowledge([Position(2)], by: 1)
        #expect(ledger.wantedEvents == 0, "1 still holds the checkpoint")
        try ledger.acknowledge([Position(1)], by: 1)
        #expect(ledger.wantedEvents == 2)
        #expect(ledger.readThrough == Position(3))
    }

    @Test func aRestartedGroupKeepsItsParkedEventsAndHoldsTheirAggregates() throws {
        let parked = Ledger.ParkedEvent(event: Self.events(["a"], from: 5)[0], attempts: 5, reason: "boom")
        var ledger = Ledger(checkpoint: Position(5), parked: [parked])
        ledger.add(Self.events(["a", "b"], from: 6), readThrough: Position(7))
        ledger.join(1, credit: 10)
        #expect(Self.positions(try ledger.lease(to: 1, max: 10, now: Self.at(0))) == [7], "a waits for its parked event")
        try ledger.replay(Position(5))
        #expect(Self.positions(try ledger.lease(to: 1, max: 10, now: Self.at(0))) == [5, 6])
    }

    /// Many aggregates, members that ack, reject, let leases lapse and leave, over simulated time: every event is
    /// acknowledged, no aggregate is ever leased to two members, each aggregate's first deliveries come in order,
    /// and the checkpoint ends at the head.
    @Test(arguments: [1, 2, 3, 4, 5])
    func randomWorkLosesNothingAndKeepsOrderPerAggregate(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        var policy = Ledger.Policy()
        policy.maximumAttempts = 1000  // nothing parks here
        policy.leaseTimeout = .seconds(5)
        policy.backoff = .milliseconds(100)
        policy.maximumBackoff = .seconds(1)
        policy.window = 500
        var ledger = Ledger(checkpoint: .start, policy: policy)
        let total = 3000
        let all = Self.events((0..<total).map { _ in "agg-\(random.next() % 50)" })
        var nextToAdd = 0
        var members: [UInt64: Int] = [:]  // id -> credit
        var nextMember: UInt64 = 1
        for _ in 0..<4 {
            members[nextMember] = 1 + Int(random.next() % 8)
            ledger.join(nextMember, credit: members[nextMember]!)
            nextMember += 1
        }
        var held: [UInt64: [RecordedEvent]] = [:]
        var acknowledged = Set<Int64>()
        var lastAcknowledgedVersion: [String: Int64] = [:]
        var now = 0.0
        var steps = 0
        while acknowledged.count < total {
            steps += 1
            #expect(steps < 200_000, "no progress")
            if steps >= 200_000 { break }
            now += 0.01
            let instant = Self.at(now)
            if nextToAdd < total, ledger.wantedEvents > 0 {
                let count = min(ledger.wantedEvents, total - nextToAdd, 1 + Int(random.next() % 40))
                ledger.add(Array(all[nextToAdd..<(nextToAdd + count)]), readThrough: all[nextToAdd + count - 1].position)
                nextToAdd += count
            }
            ledger.expire(now: instant)
            let member = Array(members.keys).sorted()[Int(random.next() % UInt64(members.count))]
            switch random.next() % 20 {
            case 0:
                // Leaves (dies); a new member joins.
                ledger.leave(member, now: instant)
                members[member] = nil
                held[member] = nil
                members[nextMember] = 1 + Int(random.next() % 8)
                ledger.join(nextMember, credit: members[nextMember]!)
                nextMember += 1
            case 1:
                // Rejects the first event it holds.
                if let first = held[member]?.first {
                    try? ledger.reject(first.position, by: member, reason: "r", now: instant)
                    held[member] = []  // its later events of that aggregate were released; forget and re-lease
                }
            case 2:
                break  // sits still: its leases may lapse
            default:
                let leased = try ledger.lease(to: member, max: 1 + Int(random.next() % 8), now: instant)
                held[member, default: []] += leased.map(\.event)
                // No aggregate is leased to two members at once.
                var holders: [String: Set<UInt64>] = [:]
                for (holder, events) in held {
                    for event in events where ledger.isLeased(event.position, to: holder) {
                        holders[event.aggregateID, default: []].insert(holder)
                    }
                }
                for (aggregate, members) in holders {
                    #expect(members.count <= 1, "\(aggregate) leased to \(members.sorted())")
                }
                // Acknowledges some of what it holds (the rest stays in hand: it may lapse), in order, stopping at the
                // first that is no longer its own.
                var kept: [RecordedEvent] = []
                var budget = Int(random.next() % 6)
                for event in held[member] ?? [] {
                    guard kept.isEmpty, budget > 0, ledger.isLeased(event.position, to: member) else {
                        kept.append(event)
                        continue
                    }
                    try ledger.acknowledge([event.position], by: member)
                    budget -= 1
                    if !acknowledged.insert(event.position.rawValue).inserted {
                        Issue.record("\(event.position) acknowledged twice")
                    }
                    let previous = lastAcknowledgedVersion[event.aggregateID, default: -1]
                    #expect(event.version == previous + 1, "\(event.aggregateID): version \(event.version) after \(previous)")
                    lastAcknowledgedVersion[event.aggregateID] = event.version
                }
                held[member] = kept.filter { ledger.isLeased($0.position, to: member) }
            }
            // What a restart would be told was acknowledged after the checkpoint is exactly that (nothing parks here),
            // and the checkpoint never passes an event that was not acknowledged.
            if steps % 50 == 0 {
                let checkpoint = ledger.checkpoint.rawValue
                let reported = Set(ledger.acknowledgedAfterCheckpoint.flatMap { $0.lowerBound.rawValue...$0.upperBound.rawValue })
                #expect(reported == acknowledged.filter { $0 > checkpoint }, "step \(steps)")
                #expect(checkpoint == 0 || acknowledged.contains(checkpoint) || checkpoint == ledger.readThrough.rawValue, "step \(steps)")
            }
        }
        #expect(ledger.acknowledgedAfterCheckpoint.isEmpty)
        #expect(ledger.statistics.redeliveries > 0 && nextMember > 10, "the run exercised redelivery and members leaving")
        #expect(acknowledged.count == total)
        #expect(ledger.checkpoint == Position(Int64(total)))
        #expect(ledger.statistics.window == 0)
        #expect(ledger.statistics.leased == 0)
    }
}

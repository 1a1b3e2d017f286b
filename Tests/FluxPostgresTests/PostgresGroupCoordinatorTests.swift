import FluxCore
import FluxPostgres
import FluxTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Several gateway nodes sharing consumer groups through PostgreSQL (`PostgresEventStore+GroupCoordinator.swift`):
/// the partition leases and progress rows, then two `fluxgate serve` nodes with `group_worker.py` members on each, and
/// one node killed. Serialized: its node-killing runs (and the webhook sink's, in PostgresGroupCoordinatorTests+WebhookSinks.swift) time
/// heartbeats and leases, which two such runs at once on two cores make late.
@Suite(.serialized) struct PostgresGroupCoordinatorTests {
    /// The groups' lease timeout: short, so that a killed node's partitions move soon, yet long enough for a heartbeat
    /// on a loaded CI machine (a node hands out nothing while its heartbeats take three quarters of the lease).
    static let lease = Duration.seconds(5)

    static func definition(_ name: String, lease: Duration = lease) throws -> ConsumerGroupDefinition {
        try ConsumerGroupDefinition(name: name, policy: ConsumerGroupPolicy(leaseTimeout: lease, backoff: .milliseconds(10)))
    }

    @Test func nodesWithMembersShareThePartitionsAndALapsedOrReleasedOneMoves() async throws {
        let store = try await PostgresEventStore.open(try await TestPostgres.shared.freshDatabase())
        _ = try await store.createConsumerGroup(try Self.definition("work"))
        let all = Set(0..<ConsumerGroupPartitions.count)

        // Alone, a node takes every partition; a node without members takes none.
        let a1 = try await store.coordinateConsumerGroup("work", node: "a", serving: true, sharing: .partitioned, lease: .seconds(60))
        #expect(Set(a1.held.keys) == all && a1.share == all && a1.liveNodes == 1)
        #expect(a1.held.values.allSatisfy { $0.checkpoint == .start })
        let idle = try await store.coordinateConsumerGroup("work", node: "c", serving: false, sharing: .partitioned, lease: .seconds(60))
        #expect(idle.held.isEmpty && idle.share.isEmpty && idle.liveNodes == 1)

        // A second node with members: its share is half, but A still holds it (leased) until A releases it.
        let b1 = try await store.coordinateConsumerGroup("work", node: "b", serving: true, sharing: .partitioned, lease: .seconds(60))
        #expect(b1.liveNodes == 2 && b1.share.count == ConsumerGroupPartitions.count / 2 && b1.held.isEmpty)
        let a2 = try await store.coordinateConsumerGroup("work", node: "a", serving: true, sharing: .partitioned, lease: .seconds(60))
        #expect(a2.share == all.subtracting(b1.share) && Set(a2.held.keys) == all, "A keeps what it holds until it releases it")
        try await store.releaseConsumerGroupPartitions(all.subtracting(a2.share), group: "work", node: "a")
        let b2 = try await store.coordinateConsumerGroup("work", node: "b", serving: true, sharing: .partitioned, lease: .seconds(60))
        #expect(Set(b2.held.keys) == b1.share)

        // Progress is saved only by the holder, in the group's generation; the group's checkpoint is the lowest.
        #expect(try await store.saveConsumerGroupPartitions(b1.share, checkpoint: Position(40), acknowledged: [Position(42)...Position(43)], group: "work", node: "b", generation: b2.generation))
        #expect(try await store.saveConsumerGroupPartitions(a2.share, checkpoint: Position(30), acknowledged: [], group: "work", node: "a", generation: a2.generation))
        #expect(!(try await store.saveConsumerGroupPartitions(b1.share, checkpoint: Position(50), acknowledged: [], group: "work", node: "a", generation: a2.generation)),
            "A does not hold B's partitions")
        #expect(!(try await store.saveConsumerGroupPartitions(a2.share, checkpoint: Position(50), acknowledged: [], group: "work", node: "a", generation: a2.generation + 1)),
            "another generation's runtime saves nothing")
        #expect(try await store.consumerGroup(named: "work")?.checkpoint == Position(30))
        let b3 = try await store.coordinateConsumerGroup("work", node: "b", serving: true, sharing: .partitioned, lease: .seconds(60))
        #expect(b3.held.values.allSatisfy { $0 == ConsumerGroupPartitionProgress(checkpoint: Position(40), acknowledged: [Position(42)...Position(43)]) })

        // B's lease lapses (its heartbeats stopped): A, now alone, takes B's partitions with their progress.
        _ = try await store.coordinateConsumerGroup("work", node: "b", serving: true, sharing: .partitioned, lease: .milliseconds(1))
        try await Task.sleep(for: .milliseconds(50))
        let a3 = try await store.coordinateConsumerGroup("work", node: "a", serving: true, sharing: .partitioned, lease: .seconds(60))
        #expect(a3.liveNodes == 1 && Set(a3.held.keys) == all)
        #expect(a3.held[b1.share.min()!]?.checkpoint == Position(40))

        // A reset renews the generation and moves every partition.
        try await store.saveConsumerGroupCheckpoint(Position(5), acknowledged: [], group: "work", reset: true)
        let a4 = try await store.coordinateConsumerGroup("work", node: "a", serving: true, sharing: .partitioned, lease: .seconds(60))
        #expect(a4.generation != a3.generation && a4.held.values.allSatisfy { $0.checkpoint == Position(5) && $0.acknowledged.isEmpty })
        #expect(!(try await store.saveConsumerGroupPartitions(all, checkpoint: Position(9), acknowledged: [], group: "work", node: "a", generation: a3.generation)))
        // So does a change of its definition.
        try await store.updateConsumerGroup(try Self.definition("work", lease: .seconds(4)))
        #expect(try await store.coordinateConsumerGroup("work", node: "a", serving: true, sharing: .partitioned, lease: .seconds(60)).generation != a4.generation)
        // A deleted group is unknown.
        #expect(try await store.deleteConsumerGroup(named: "work"))
        await #expect(throws: StoreError.self) { try await store.coordinateConsumerGroup("work", node: "a", serving: true, sharing: .partitioned, lease: .seconds(60)) }
        await store.close()
    }

    @Test func aGroupServedByOneNodeIsHeldWhollyByOneAndMovesWhenItsLeaseLapses() async throws {
        let store = try await PostgresEventStore.open(try await TestPostgres.shared.freshDatabase())
        let all = Set(0..<ConsumerGroupPartitions.count)
        for round in 0..<5 {
            // Two nodes beating at once for a new group: one of them holds every partition, the other none.
            let name = "sink.race-\(round)"
            _ = try await store.createConsumerGroup(try Self.definition(name))
            async let first = store.coordinateConsumerGroup(name, node: "b", serving: true, sharing: .oneNode, lease: .seconds(60))
            async let second = store.coordinateConsumerGroup(name, node: "a", serving: true, sharing: .oneNode, lease: .seconds(60))
            let (b, a) = try await (first, second)
            #expect(Set([Set(a.held.keys), Set(b.held.keys)]) == [all, []], "round \(round): a holds \(a.held.count), b \(b.held.count)")
        }

        _ = try await store.createConsumerGroup(try Self.definition("sink.one"))
        let b1 = try await store.coordinateConsumerGroup("sink.one", node: "b", serving: true, sharing: .oneNode, lease: .seconds(60))
        #expect(Set(b1.held.keys) == all && b1.share == all)
        // A node that comes first in byte order joins: B keeps the group (no handover while B lives).
        let a1 = try await store.coordinateConsumerGroup("sink.one", node: "a", serving: true, sharing: .oneNode, lease: .seconds(60))
        #expect(a1.held.isEmpty && a1.share.isEmpty && a1.liveNodes == 2)
        #expect(try await store.saveConsumerGroupPartitions(all, checkpoint: Position(12), acknowledged: [], group: "sink.one", node: "b", generation: b1.generation))
        // B's lease lapses (it was killed): A takes every partition, from B's progress.
        _ = try await store.coordinateConsumerGroup("sink.one", node: "b", serving: true, sharing: .oneNode, lease: .milliseconds(1))
        try await Task.sleep(for: .milliseconds(50))
        let a2 = try await store.coordinateConsumerGroup("sink.one", node: "a", serving: true, sharing: .oneNode, lease: .seconds(60))
        #expect(Set(a2.held.keys) == all && a2.held.values.allSatisfy { $0.checkpoint == Position(12) })
        // B comes back: A keeps it. A stops (no members; it releases once settled): B takes it then, not before.
        let b2 = try await store.coordinateConsumerGroup("sink.one", node: "b", serving: true, sharing: .oneNode, lease: .seconds(60))
        #expect(b2.held.isEmpty)
        let leaving = try await store.coordinateConsumerGroup("sink.one", node: "a", serving: false, sharing: .oneNode, lease: .seconds(60))
        #expect(leaving.share.isEmpty && Set(leaving.held.keys) == all, "a leaving node keeps what it holds until it releases it")
        #expect(try await store.coordinateConsumerGroup("sink.one", node: "b", serving: true, sharing: .oneNode, lease: .seconds(60)).held.isEmpty)
        try await store.releaseConsumerGroupPartitions(all, group: "sink.one", node: "a")
        let b3 = try await store.coordinateConsumerGroup("sink.one", node: "b", serving: true, sharing: .oneNode, lease: .seconds(60))
        #expect(Set(b3.held.keys) == all)

        // A sink disabled (its receiver answered 410 on the node delivering it) renews its group's generation: a node
        // that would take the partitions over sees the change before it could deliver, and stops.
        _ = try await store.putWebhookSink(try WebhookSinkDefinition(name: "one", url: "http://127.0.0.1:9/", secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]))
        try await store.disableWebhookSink(named: "one", reason: "410")
        let b4 = try await store.coordinateConsumerGroup("sink.one", node: "b", serving: true, sharing: .oneNode, lease: .seconds(60))
        #expect(b4.generation != b3.generation)
        await store.close()
    }

    /// The issue's acceptance run across nodes: two `fluxgate serve` nodes on one database, two WebSocket workers on
    /// each, writers appending meanwhile; node A is SIGKILLed mid-flight (its workers can reach no other node). Node
    /// B's workers take A's partitions once A's leases lapse: every event handled, each aggregate in version order
    /// and by one worker at a time, and the group's checkpoint exact.
    @Test func twoNodesShareAGroupAndKillingOneLosesNothing() async throws {
        let location = try await TestPostgres.shared.freshDatabase()
        let url = "postgres://\(location.username)@\(location.host):\(location.port)/\(location.database)"
        let store = try await PostgresEventStore.open(location)
        _ = try await store.createConsumerGroup(try Self.definition("work"))
        let (aggregates, rounds, perRound) = (1000, 10, 10)  // 100,000 events, as the single-node run
        let total = aggregates * rounds * perRound
        try await Self.appendRound(store, aggregates: aggregates, events: perRound)
        var handled: [GroupWorkerLog.Handled] = []
        var fromA: [GroupWorkerLog.Handled] = []
        var nodeLogs: [(String, [String])] = []
        var killedAt = 0.0
        try await withFluxgate(["serve", "--port", "0", "--store", url]) { nodeA in
            try await withFluxgate(["serve", "--port", "0", "--store", url]) { nodeB in
                let portA = try await Self.port(nodeA), portB = try await Self.port(nodeB)
                let worker = { (port: Int, name: String) in
                    [PythonGroupWorker.script.path, "http://127.0.0.1:\(port)", "work", "--credit", "100", "--member", name]
                }
                try await withChildProcess(TestPython.executable, worker(portA, "a1")) { a1 in
                    try await withChildProcess(TestPython.executable, worker(portA, "a2")) { a2 in
                        // A serves alone first; B's workers join and A hands half of the partitions over.
                        try await Self.waitUntil("node A's workers handle events", showing: [("node A", nodeA), ("a1", a1), ("a2", a2)]) { GroupWorkerLog.handled(a1.outputLines + a2.outputLines).count > 200 }
                        try await withChildProcess(TestPython.executable, worker(portB, "b1")) { b1 in
                            try await withChildProcess(TestPython.executable, worker(portB, "b2")) { b2 in
                                let writers = Task {
                                    for _ in 1..<rounds { try await Self.appendRound(store, aggregates: aggregates, events: perRound) }
                                }
                                try await Self.waitUntil("node B's workers take a share", showing: [("node A", nodeA), ("node B", nodeB), ("b1", b1), ("b2", b2)]) { GroupWorkerLog.handled(b1.outputLines + b2.outputLines).count > 2000 }
                                let onABefore = GroupWorkerLog.handled(a1.outputLines + a2.outputLines).count
                                try await Self.waitUntil("node A's workers handle more beside B's", showing: [("node A", nodeA), ("node B", nodeB), ("a1", a1), ("a2", a2)]) {
                                    GroupWorkerLog.handled(a1.outputLines + a2.outputLines).count > onABefore + 2000
                                }
                                killedAt = Self.monotonicSeconds()  // the workers' clock (Python's time.monotonic)
                                nodeA.signal(SIGKILL)
                                _ = await nodeA.waitForExit(timeout: .seconds(30))
                                let killed = ContinuousClock.now
                                try await writers.value
                                try await Self.waitForCheckpoint(store, "work", total)
                                print("two nodes, one killed: checkpoint at the head \(ContinuousClock.now - killed) after the kill")
                                fromA = GroupWorkerLog.handled(a1.outputLines + a2.outputLines)
                                handled = fromA + GroupWorkerLog.handled(b1.outputLines + b2.outputLines)
                                nodeLogs = [("A", nodeA), ("B", nodeB)].map { name, node in
                                    (name, (node.outputLines + node.errorOutput.split(separator: "\n").map(String.init)).filter { $0.contains("partition") })
                                }
                            }
                        }
                    }
                }
            }
        }
        #expect(Set(handled.map(\.position)) == Set(1...total), "every event handled: \(Set(handled.map(\.position)).count) of \(total)")
        // A's workers handled some events whose acknowledgements died with A: B hands them out again (at least once),
        // from the first one A did not store. Without those handlings, each aggregate's events were handled in
        // version order and by one worker at a time, across both nodes.
        let kept = GroupWorkerLog.droppingRedone(handled) { $0.hasPrefix("a") }
        let problems = GroupWorkerLog.orderProblems(kept)
        #expect(problems.isEmpty, "\(problems)")
        if let first = problems.first, let aggregate = first.split(separator: ":").first.map(String.init) {
            // What happened to that aggregate, and how the partitions moved, for the one who reads the failure.
            let start = handled.map(\.started).min() ?? 0
            print("\(aggregate) (partition \(ConsumerGroupPartitions.partition(of: aggregate))), as handled (node A killed at \(killedAt - start) s):")
            for item in handled.filter({ $0.aggregate == aggregate }).sorted(by: { $0.started < $1.started }) {
                print("  \(String(format: "%8.3f", item.started - start)) s  \(item.worker)  v\(item.version)  position \(item.position)  attempt \(item.attempt)")
            }
            for (name, lines) in nodeLogs { print("node \(name):\n" + lines.suffix(40).joined(separator: "\n")) }
        }
        let again = handled.count - kept.count
        // Both nodes served at once: A went on with its share after B's workers began.
        let firstOnB = handled.filter { !$0.worker.hasPrefix("a") }.map(\.started).min() ?? .infinity
        let aAfterB = fromA.count { $0.started > firstOnB }
        #expect(aAfterB > 0, "node A handed nothing out once node B served")
        print("two nodes: \(handled.count) handlings of \(total) events (\(fromA.count) on the killed node, \(aAfterB) of them while B served), \(again) handled again after the kill")
        #expect(try await store.consumerGroup(named: "work")?.checkpoint == Position(Int64(total)))
        await store.close()
    }

    // MARK: Helpers

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    enum PythonGroupWorker {
        static let script = TestPython.repositoryRoot.appendingPathComponent("clients/python/group_worker.py")
    }

    static func port(_ node: ChildProcess) async throws -> Int {
        let line = try await node.waitForLine(containing: "listening")
        return try #require(line.firstMatch(of: /http:\/\/127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) }, "\(line)")
    }

    static func appendRound(_ store: any EventStore, aggregates: Int, events: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for aggregate in 0..<aggregates {
                group.addTask {
                    let batch = (0..<events).map { index in NewEvent(eventType: "t.E", payload: EventPayload(trustedJSON: Array("{\"i\":\(index)}".utf8))) }
                    try await store.append(AppendRequest(aggregateID: "agg-\(aggregate)", aggregateName: "A", expectedVersion: .any, events: batch))
                }
            }
            try await group.waitForAll()
        }
    }

    /// Waits for `condition`; when it does not come within `limit`, the error tells what `processes` (the nodes and
    /// workers involved) last wrote, so that a failure on a loaded CI machine says where things stood.
    static func waitUntil(
        _ what: String, within limit: Duration = .seconds(300), showing processes: [(String, ChildProcess)] = [], _ condition: () -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + limit
        while !condition() {
            guard ContinuousClock.now < deadline else {
                let shown = processes.map { name, process in
                    "--- \(name) (\(process.isRunning ? "running" : "exited")): last stdout lines:\n"
                        + process.outputLines.suffix(15).joined(separator: "\n")
                        + "\n--- \(name): stderr:\n" + String(process.errorOutput.suffix(3000))
                }
                // And what the machine was busy with (a process left behind by an earlier test, a load that starves these).
                let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?"
                let busiest = (try? await ChildProcess.run(URL(fileURLWithPath: "/bin/ps"), ["-eo", "pid,ppid,pcpu,etime,args", "--sort=-pcpu"]))?
                    .outputLines.prefix(12).map { String($0.prefix(200)) }.joined(separator: "\n") ?? "?"
                throw TestSetupError(
                    "\(what): not within \(limit)\n" + shown.joined(separator: "\n") + "\n--- load average: \(load)--- busiest processes:\n\(busiest)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func waitForCheckpoint(_ store: PostgresEventStore, _ group: String, _ target: Int, within limit: Duration = .seconds(600)) async throws {
        let deadline = ContinuousClock.now + limit
        var last = Position.start
        while ContinuousClock.now < deadline {
            last = try await store.consumerGroup(named: group)?.checkpoint ?? .start
            if last.rawValue >= target { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSetupError("group \(group)'s checkpoint is \(last), not \(target), after \(limit)")
    }
}

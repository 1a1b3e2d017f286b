import FluxCore
import FluxGateway
import FluxSQLite
import FluxTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `clients/python/group_worker.py` (the `websockets` package and the standard library's HTTP client) as the members
/// of consumer groups, in child processes: sharing, order per aggregate, one worker per aggregate at a time, a
/// poison event parked and replayed, a worker killed, one joining late, and the gateway restarted.
@Suite struct PythonGroupWorkerTests {
    static let script = TestPython.repositoryRoot.appendingPathComponent("clients/python/group_worker.py")

    typealias Handled = GroupWorkerLog.Handled

    static func handled(_ lines: [String]) -> [Handled] { GroupWorkerLog.handled(lines) }
    static func orderProblems(_ handled: [Handled]) -> [String] { GroupWorkerLog.orderProblems(handled) }

    static func appendRound(_ store: any EventStore, aggregates: Range<Int>, events: Int, type: String = "t.E") async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for aggregate in aggregates {
                group.addTask {
                    let batch = (0..<events).map { index in
                        NewEvent(eventType: type, payload: EventPayload(trustedJSON: Array("{\"i\":\(index)}".utf8)))
                    }
                    try await store.append(AppendRequest(aggregateID: "agg-\(aggregate)", aggregateName: "A", expectedVersion: .any, events: batch))
                }
            }
            try await group.waitForAll()
        }
    }

    static func checkpoint(_ gateway: TestGateway, _ group: String) async throws -> Int {
        try await gateway.get("/groups/\(group)").jsonObject()["checkpoint"] as? Int ?? -1
    }

    static func waitForCheckpoint(_ gateway: TestGateway, _ group: String, _ target: Int, within limit: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + limit
        var last = -1
        while ContinuousClock.now < deadline {
            last = try await checkpoint(gateway, group)
            if last >= target { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("group \(group)'s checkpoint is \(last), not \(target), after \(limit)")
    }

    @Test func webSocketWorkersShareAGroupInOrderAndAPullWorkerToo() async throws {
        try await withTestGateway { gateway in
            #expect(try await gateway.request(.PUT, "/groups/ws", json: "{}").status == .created)
            #expect(try await gateway.request(.PUT, "/groups/pull", json: "{}").status == .created)
            let base = "http://127.0.0.1:\(gateway.port)"
            let worker = [Self.script.path, base, "ws", "--credit", "7", "--handler-delay", "0.001", "--member"]
            try await withChildProcess(TestPython.executable, worker + ["w1"]) { first in
                try await withChildProcess(TestPython.executable, worker + ["w2"]) { second in
                    try await withChildProcess(TestPython.executable, [Self.script.path, base, "pull", "--pull", "--max", "50", "--wait", "1"]) { puller in
                        // Both connected before the events come, so that both take a share.
                        try await SubscriptionHubTests.waitUntil {
                            (try? await gateway.get("/groups/ws").jsonObject()["members"] as? [String]) == ["w1", "w2"]
                        }
                        try await Self.appendRound(gateway.store, aggregates: 0..<10, events: 20)
                        try await Self.waitForCheckpoint(gateway, "ws", 200)
                        try await Self.waitForCheckpoint(gateway, "pull", 200)
                        let handled = Self.handled(first.outputLines + second.outputLines)
                        #expect(Set(handled.map(\.position)) == Set(1...200), "every event, \(handled.count) handled")
                        #expect(Self.orderProblems(handled).isEmpty, "\(Self.orderProblems(handled))")
                        #expect(Set(handled.map(\.worker)) == ["w1", "w2"], "both workers took a share")
                        let pulled = Self.handled(puller.outputLines)
                        #expect(pulled.map(\.position).sorted() == Array(1...200) || Set(pulled.map(\.position)) == Set(1...200))
                        #expect(Self.orderProblems(pulled).isEmpty)
                    }
                }
            }
        }
    }

    @Test func aPoisonEventIsParkedWhileTheRestFlowsAndIsReplayedOnceFixed() async throws {
        try await withTestGateway { gateway in
            // agg-0's first event is the poison; agg-1 … agg-4 are fine.
            try await Self.appendRound(gateway.store, aggregates: 0..<1, events: 1, type: "t.Poison")
            try await Self.appendRound(gateway.store, aggregates: 0..<5, events: 4)
            #expect(try await gateway.request(.PUT, "/groups/g", json: #"{"maximum_attempts": 3, "backoff_ms": 10}"#).status == .created)
            let base = "http://127.0.0.1:\(gateway.port)"
            try await withChildProcess(TestPython.executable, [Self.script.path, base, "g", "--fail-on-type", "t.Poison"]) { worker in
                let deadline = ContinuousClock.now + .seconds(60)
                var parked: [[String: Any]] = []
                while parked.isEmpty, ContinuousClock.now < deadline {
                    parked = try await gateway.get("/groups/g/parked").jsonObject()["parked"] as? [[String: Any]] ?? []
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(parked.first?["position"] as? Int == 1 && parked.first?["attempts"] as? Int == 3, "\(parked)")
                #expect((parked.first?["reason"] as? String)?.contains("--fail-on-type") == true)
                // The other aggregates flow: everything but agg-0 (held behind its parked event) is handled.
                let others = Set(try await gateway.store.read(after: .start, limit: 100, filter: .all).filter { $0.aggregateID != "agg-0" }.map { Int($0.position.rawValue) })
                let flowDeadline = ContinuousClock.now + .seconds(60)
                while !others.isSubset(of: Set(Self.handled(worker.outputLines).filter { !$0.rejected }.map(\.position))), ContinuousClock.now < flowDeadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(others.isSubset(of: Set(Self.handled(worker.outputLines).filter { !$0.rejected }.map(\.position))))
                #expect(!Self.handled(worker.outputLines).contains { $0.aggregate == "agg-0" && $0.position != 1 }, "agg-0 waits behind its parked event")
            }
            // The handler is fixed: a worker without --fail-on-type, and the parked event replayed.
            try await withChildProcess(TestPython.executable, [Self.script.path, base, "g", "--pull", "--wait", "1"]) { fixed in
                #expect(try await gateway.request(.POST, "/groups/g/parked/1/replay").status == .ok)
                try await Self.waitForCheckpoint(gateway, "g", 21, within: .seconds(60))
                let handled = Self.handled(fixed.outputLines)
                #expect(handled.first { $0.position == 1 } != nil, "the replayed event was handled")
                #expect(Self.orderProblems(handled).isEmpty)
            }
            #expect((try await gateway.get("/groups/g/parked").jsonObject()["parked"] as? [Any])?.isEmpty == true)
        }
    }

    /// The issue's acceptance run: 4 WebSocket workers share 100,000 events over 1,000 aggregates while writers keep
    /// appending; one worker is killed with SIGKILL mid-flight and one joins late. Every event is acknowledged, each
    /// aggregate's events are handled in version order and never by two workers at once, and after a gateway restart
    /// on the same SQLite file the checkpoint is exactly the head.
    @Test func fourWorkersAKillAndALateJoinerAndARestartLoseNothing() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-group-kill-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("events.sqlite").path
        let (aggregates, rounds, perRound) = (1000, 10, 10)  // 1,000 aggregates × 10 rounds × 10 events = 100,000
        let total = aggregates * rounds * perRound
        let store = try SQLiteEventStore(path: path)
        var handled: [Handled] = []
        try await withTestGateway(await TestGateway.start(store: store)) { gateway in
            #expect(try await gateway.request(.PUT, "/groups/work", json: #"{"lease_timeout_ms": 5000, "backoff_ms": 10}"#).status == .created)
            try await Self.appendRound(gateway.store, aggregates: 0..<aggregates, events: perRound)
            let base = "http://127.0.0.1:\(gateway.port)"
            let worker = [Self.script.path, base, "work", "--credit", "200", "--member"]
            try await withChildProcess(TestPython.executable, worker + ["w1"]) { first in
                try await withChildProcess(TestPython.executable, worker + ["w2"]) { second in
                    try await withChildProcess(TestPython.executable, worker + ["doomed"]) { doomed in
                        // Writers keep appending while the workers work.
                        let writers = Task {
                            for _ in 1..<rounds { try await Self.appendRound(gateway.store, aggregates: 0..<aggregates, events: perRound) }
                        }
                        // SIGKILL mid-flight: once the doomed worker has handled some thousands of events.
                        let deadline = ContinuousClock.now + .seconds(120)
                        while Self.handled(doomed.outputLines).count < 3000, ContinuousClock.now < deadline {
                            try await Task.sleep(for: .milliseconds(20))
                        }
                        doomed.signal(SIGKILL)
                        _ = await doomed.waitForExit(timeout: .seconds(10))
                        try await withChildProcess(TestPython.executable, worker + ["late"]) { late in
                            try await writers.value
                            try await Self.waitForCheckpoint(gateway, "work", total, within: .seconds(600))
                            handled = Self.handled(first.outputLines + second.outputLines + doomed.outputLines + late.outputLines)
                            #expect(Self.handled(late.outputLines).count > 0, "the late worker took a share")
                        }
                    }
                }
            }
        }
        try await store.close()
        #expect(Set(handled.map(\.position)) == Set(1...total), "every event handled: \(Set(handled.map(\.position)).count) of \(total)")
        // What the doomed worker printed of the batch it was killed in was handed out again, from its first event.
        let kept = GroupWorkerLog.droppingRedone(handled) { $0 == "doomed" }
        #expect(Self.orderProblems(kept).isEmpty, "\(Self.orderProblems(kept))")
        print("group kill run: \(handled.count) handlings of \(total) events, \(handled.filter { $0.attempt > 1 }.count) redeliveries")

        let reopened = try SQLiteEventStore(path: path)
        try await withTestGateway(await TestGateway.start(store: reopened)) { gateway in
            let group = try await gateway.get("/groups/work").jsonObject()
            #expect(group["checkpoint"] as? Int == total && group["lag"] as? Int == 0, "\(group)")
            #expect(try await GroupEndpointTests.fetch(gateway, "work", member: "after", max: 10).events.isEmpty, "nothing delivered again")
        }
        try await reopened.close()
    }

    @Test func anUnknownGroupOrABadTokenStopsTheWorkerWithAReason() async throws {
        try await withTestGateway { gateway in
            for mode in [[], ["--pull"]] {
                let run = try await ChildProcess.run(
                    TestPython.executable, [Self.script.path, "http://127.0.0.1:\(gateway.port)", "nope"] + mode, timeout: .seconds(60))
                #expect(run.status == 2, "\(mode): \(run.errorOutput)")
                #expect(run.errorOutput.contains("refused this worker") && run.errorOutput.contains("404"), "\(mode): \(run.errorOutput)")
            }
        }
    }
}

import ArgumentParser
import FluxConsumer
import FluxCore
import FluxGateway
import Foundation
import Logging
import Synchronization

/// `fluxgate demo`: the bank example end to end — commands on aggregates, the embedded store, the gateway's
/// feed, and a read model that consumes the feed over HTTP and prints balances.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the bank example end to end on the embedded store, then exit.",
        discussion: """
            Creates accounts, runs credits and debits from concurrent tellers (optimistic-concurrency conflicts are retried, overdrafts refused), serves the events through the gateway, and consumes them with a read model over the gateway's push channel (WebSocket). Ends by itself within seconds and prints what it did.

            With --serve the gateway keeps serving the demo's events afterwards, until Ctrl-C: open the web UI, curl the feed, or tail it (the demo prints the commands).
            """
    )

    @Option(help: "The event store: sqlite:PATH or memory (default: a new SQLite file in a temporary folder).")
    var store: StoreLocation?

    @Option(help: "The port for the demo's gateway (0 picks a free one).")
    var port = 0

    @Option(help: "How many credit/debit commands the tellers run.")
    var commands = 60

    @Flag(help: "Keep the gateway serving the demo's events after the checks, until Ctrl-C or SIGTERM.")
    var serve = false

    func run() async throws {
        let started = ContinuousClock.now
        let location = store ?? .sqlite(path: FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-demo-\(UUID().uuidString)/events.sqlite").path)
        let opened = try await location.open()
        var logger = Logger(label: "fluxgate.demo")
        logger.logLevel = .warning
        let server = GatewayServer(store: opened.store, configuration: GatewayConfiguration(port: port, logger: logger))
        let boundPort = try await server.start()
        print("▶ gateway on http://127.0.0.1:\(boundPort), store \(location) (epoch \(opened.store.epoch))")

        // The read model: a separate consumer of the gateway's push channel (WebSocket), keyed by position.
        let target = Mutex<Position?>(nil)
        let liveModel = Mutex(ReadModel())
        var consumerConfiguration = EventConsumer.Configuration()
        consumerConfiguration.logger.logLevel = .error
        let consumer = EventConsumer(
            host: "127.0.0.1", port: boundPort, name: "demo-balances", checkpoints: InMemoryCheckpointStore(),
            filter: EventFilter(aggregateNames: ["Account"]), configuration: consumerConfiguration
        )
        let readModel = Task { () -> ReadModel in
            try await consumer.run { event in
                let (balance, reached) = liveModel.withLock { model -> (Int, Position) in
                    model.apply(event)
                    return (model.balances[event.aggregateID] ?? 0, model.position)
                }
                print("    read model @\(event.position): \(event.eventType) → \(event.aggregateID) = \(balance)")
                if let target = target.withLock({ $0 }), reached >= target { consumer.stop() }
            }
            return liveModel.withLock { $0 }
        }
        // The write side: aggregates through the repository.
        let repository = Repository<Account>(store: opened.store)
        let accounts = ["alice": 100, "bob": 50, "carol": 0]
        for (id, balance) in accounts.sorted(by: { $0.key < $1.key }) {
            try await repository.update(id) { try $0.create(balance: balance) }
            print("  created account \(id) with \(balance)")
        }

        // A stale save is a typed conflict, and nothing is written.
        var first = try await repository.load("alice")
        var second = try await repository.load("alice")
        try first.execute { try $0.credit(5, transaction: "tx-first") }
        try second.execute { try $0.credit(7, transaction: "tx-second") }
        try await repository.save(&first)
        do {
            try await repository.save(&second)
        } catch StoreError.conflict {
            print("  conflict detected: two tellers loaded alice at version \(first.version - 1); the second save was refused, nothing written")
        }

        // Concurrent tellers: each command reloads and retries on conflict.
        let tellers = 4
        let stats = try await withThrowingTaskGroup(of: TellerStats.self) { group in
            for teller in 0..<tellers {
                group.addTask {
                    var stats = TellerStats()
                    var generator = SystemRandomNumberGenerator()
                    for index in stride(from: teller, to: commands, by: tellers) {
                        let account = accounts.keys.sorted()[Int.random(in: 0..<accounts.count, using: &generator)]
                        let amount = Int.random(in: 1...60, using: &generator)
                        let transaction = "tx-\(index)"
                        let isCredit = Bool.random(using: &generator)
                        while true {
                            var aggregate = try await repository.load(account)
                            do {
                                try aggregate.execute {
                                    isCredit ? try $0.credit(amount, transaction: transaction) : try $0.debit(amount, transaction: transaction)
                                }
                            } catch let error as Account.CommandError {
                                stats.refused += 1
                                print("  refused: \(error)")
                                break
                            }
                            do {
                                try await repository.save(&aggregate)
                                stats.applied += 1
                                break
                            } catch StoreError.conflict {
                                stats.conflictsRetried += 1
                            }
                        }
                    }
                    return stats
                }
            }
            var total = TellerStats()
            for try await stats in group { total.add(stats) }
            return total
        }
        let head = try await opened.store.head()
        print("  tellers: \(stats.applied) commands applied, \(stats.refused) refused (overdraft), \(stats.conflictsRetried) conflicts retried")

        var aggregateBalances: [String: Int] = [:]
        for id in accounts.keys { aggregateBalances[id] = try await repository.load(id).state.balance }

        // Tell the read model where the end is, then wait for it.
        target.withLock { $0 = head }
        if liveModel.withLock({ $0.position }) >= head { consumer.stop() }
        let model = try await withThrowingTaskGroup(of: ReadModel?.self) { group in
            group.addTask { try await readModel.value }
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                consumer.stop()
                return nil
            }
            let result = try await group.next() ?? nil
            group.cancelAll()
            return result
        }
        guard let model else {
            await server.stop()
            try await opened.close()
            throw ValidationError("the read model did not catch up within 30 s")
        }
        print("▶ read model consumed \(model.eventsSeen) events over the push channel, up to position \(model.position) (store head \(head))")
        var consistent = model.position == head
        for id in accounts.keys.sorted() {
            let aggregateBalance = aggregateBalances[id] ?? 0
            let readBalance = model.balances[id] ?? 0
            consistent = consistent && aggregateBalance == readBalance
            print("  \(id.padding(toLength: 6, withPad: " ", startingAt: 0)) balance \(readBalance) (aggregate says \(aggregateBalance))")
        }
        let elapsed = ContinuousClock.now - started
        print(consistent
            ? "✔ read model and aggregates agree; \(head) events stored in \(location); done in \(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000) ms"
            : "✘ read model and aggregates disagree")
        guard consistent else {
            await server.stop()
            try await opened.close()
            throw ExitCode.failure
        }
        let url = "http://127.0.0.1:\(boundPort)"
        if serve {
            print("""
                ▶ the gateway keeps serving the demo's \(head) events at \(url) until Ctrl-C:
                    web UI     \(url)/
                    the feed   curl -s '\(url)/events?after=0&limit=5&embed=payload'
                    one stream curl -s '\(url)/streams/alice'
                    live       fluxgate tail \(url)    (from a checkout: swift run fluxgate tail \(url))
                    append     curl -s -X POST \(url)/streams/dave -H 'Content-Type: application/json' \\
                                 -d '{"aggregate_name": "Account", "expected_version": -1, "events": [{"event_type": "account.AccountCreated", "payload": {"balance": 10}}]}'
                """)
            fflush(nil)  // every stream; a pipe buffers: the user (or a script) reads this while the demo waits
            await Self.waitForStopSignal()
            print("▶ stopping")
        }
        await server.stop()
        try await opened.close()
        if !serve {
            print("""
                Next: `fluxgate demo --serve` keeps the demo's gateway running to explore (web UI, feed, tail); \
                `fluxgate serve --store \(location)` serves these events again.
                """)
        }
    }

    /// Returns on SIGINT or SIGTERM (Ctrl-C, `kill`).
    private static func waitForStopSignal() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumed = Mutex(false)
            let sources = [SIGINT, SIGTERM].map { signal in
                Foundation.signal(signal, SIG_IGN)
                return DispatchSource.makeSignalSource(signal: signal)
            }
            for source in sources {
                source.setEventHandler {
                    let first = resumed.withLock { done in
                        defer { done = true }
                        return !done
                    }
                    guard first else { return }
                    sources.forEach { $0.cancel() }
                    continuation.resume()
                }
                source.resume()
            }
        }
    }
}

private struct TellerStats: Sendable {
    var applied = 0
    var refused = 0
    var conflictsRetried = 0

    mutating func add(_ other: TellerStats) {
        applied += other.applied
        refused += other.refused
        conflictsRetried += other.conflictsRetried
    }
}

/// Balances by account, built from the feed; keyed by position so that a replayed event changes nothing.
private struct ReadModel: Sendable {
    var balances: [String: Int] = [:]
    var position = Position.start
    var eventsSeen = 0

    mutating func apply(_ event: RecordedEvent) {
        guard event.position > position else { return }
        position = event.position
        eventsSeen += 1
        switch event.eventType {
        case AccountCreated.eventType:
            if let created = try? event.payload.decode(AccountCreated.self) { balances[created.accountID] = created.balance }
        case AccountCredited.eventType:
            if let credited = try? event.payload.decode(AccountCredited.self) { balances[credited.accountID, default: 0] += credited.amount }
        case AccountDebited.eventType:
            if let debited = try? event.payload.decode(AccountDebited.self) { balances[debited.accountID, default: 0] -= debited.amount }
        default:
            break
        }
    }
}

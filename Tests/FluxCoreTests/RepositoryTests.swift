import FluxCore
import Testing

private struct Opened: DomainEvent {
    static let eventType = "test.Opened"
    var owner: String
}

private struct Deposited: DomainEvent {
    static let eventType = "test.Deposited"
    var amount: Int
}

private struct Wallet: Aggregate {
    struct Closed: Error {}
    static let aggregateName = "Wallet"
    static let eventTypes: [any DomainEvent.Type] = [Opened.self, Deposited.self]
    let id: String
    var owner: String?
    var balance = 0

    init(id: String) { self.id = id }

    mutating func apply(_ event: any DomainEvent) {
        switch event {
        case let opened as Opened: owner = opened.owner
        case let deposited as Deposited: balance += deposited.amount
        default: break
        }
    }

    func open(owner: String) -> [any DomainEvent] { self.owner == nil ? [Opened(owner: owner)] : [] }
    func deposit(_ amount: Int) throws -> [any DomainEvent] {
        guard owner != nil else { throw Closed() }
        return [Deposited(amount: amount)]
    }
}

@Suite struct RepositoryTests {
    @Test func savesAndReplaysTypedEvents() async throws {
        let store = InMemoryEventStore()
        let repository = Repository<Wallet>(store: store)
        var wallet = try await repository.load("w1")
        #expect(wallet.version == -1)
        wallet.execute { $0.open(owner: "ann") }
        try wallet.execute { try $0.deposit(30) }
        #expect(wallet.state.balance == 30)
        let result = try await repository.save(&wallet)
        #expect(result?.version == 1)
        #expect(wallet.pendingEvents.isEmpty && wallet.version == 1)

        let stored = try await store.read(after: .start, limit: 10)
        #expect(stored.map(\.eventType) == ["test.Opened", "test.Deposited"])
        #expect(stored.map(\.aggregateName) == ["Wallet", "Wallet"])
        #expect(stored[1].payload.description == #"{"amount":30}"#)

        let reloaded = try await repository.load("w1")
        #expect(reloaded.state.owner == "ann" && reloaded.state.balance == 30 && reloaded.version == 1)
    }

    @Test func savingNothingIsANoOp() async throws {
        let store = InMemoryEventStore()
        let repository = Repository<Wallet>(store: store)
        var wallet = try await repository.load("w1")
        #expect(try await repository.save(&wallet) == nil)
        #expect(try await store.head() == .start)
    }

    @Test func staleSaveIsATypedConflictAndStoresNothing() async throws {
        let store = InMemoryEventStore()
        let repository = Repository<Wallet>(store: store)
        try await repository.update("w1") { $0.open(owner: "ann") }
        var first = try await repository.load("w1")
        var second = try await repository.load("w1")
        try first.execute { try $0.deposit(1) }
        try second.execute { try $0.deposit(2) }
        try await repository.save(&first)
        await #expect(throws: StoreError.self) { try await repository.save(&second) }
        do {
            try await repository.save(&second)
            Issue.record("expected a conflict")
        } catch StoreError.conflict {
            // matched by code
        }
        #expect(try await repository.load("w1").state.balance == 1)
        #expect(second.pendingEvents.count == 1, "a failed save keeps the pending events for a retry")
    }

    @Test func updateRetriesConflicts() async throws {
        let store = InMemoryEventStore()
        let repository = Repository<Wallet>(store: store)
        try await repository.update("w1") { $0.open(owner: "ann") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask { try await repository.update("w1", maxAttempts: 100) { try $0.deposit(1) } }
            }
            try await group.waitForAll()
        }
        #expect(try await repository.load("w1").state.balance == 20)
        #expect(try await store.head() == Position(21))
    }

    @Test func unknownEventTypeIsAClearError() async throws {
        let store = InMemoryEventStore()
        try await store.append(
            AppendRequest(aggregateID: "w1", aggregateName: "Wallet", expectedVersion: .any,
                          events: [NewEvent(eventType: "test.Unknown", payload: .null)]))
        let repository = Repository<Wallet>(store: store)
        await #expect(throws: EventDecodingError.self) { try await repository.load("w1") }
    }
}

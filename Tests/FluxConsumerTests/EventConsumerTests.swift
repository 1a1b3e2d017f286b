import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import Logging
import Synchronization
import Testing

/// Records what a handler saw.
private final class Received: Sendable {
    let positions = Mutex<[Int64]>([])
    var count: Int { positions.withLock { $0.count } }
    var all: [Int64] { positions.withLock { $0 } }
    func add(_ event: RecordedEvent) { positions.withLock { $0.append(event.position.rawValue) } }

    func wait(for count: Int, timeout: Duration = .seconds(120)) async throws {  // generous: the whole suite runs in parallel
        let deadline = ContinuousClock.now + timeout
        while self.count < count {
            guard ContinuousClock.now < deadline else { throw ConformanceTimeout(count: self.count, wanted: count) }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

private struct ConformanceTimeout: Error { var count: Int; var wanted: Int }

private func gateway(_ store: any EventStore, port: Int = 0) async throws -> (GatewayServer, Int) {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: port, logger: logger))
    return (server, try await server.start())
}

/// A gateway on a port below Linux's ephemeral range (32768–60999): a port from `port: 0` is in that range, and once
/// its gateway stops, any client socket of a test running beside this one may be given it as its own local port
/// (or the consumer's retries may connect to themselves), so that starting a gateway on it again fails with
/// "Address already in use".
private func gatewayOutsideTheEphemeralRange(_ store: any EventStore) async throws -> (GatewayServer, Int) {
    var lastError: (any Error)?
    for _ in 0..<50 {
        do {
            return try await gateway(store, port: Int.random(in: 20_000..<32_000))
        } catch {
            lastError = error  // taken by another process: try another
        }
    }
    throw lastError!
}

private func append(_ store: any EventStore, _ count: Int, type: String = "t.E") async throws {
    for _ in 0..<count {
        try await store.append(AppendRequest(aggregateID: "a", aggregateName: "A", expectedVersion: .any, events: [NewEvent(eventType: type, payload: .null)]))
    }
}

private func quietConfiguration(_ transport: EventConsumer.Configuration.Transport = .automatic) -> EventConsumer.Configuration {
    var configuration = EventConsumer.Configuration()
    configuration.transport = transport
    configuration.waitSeconds = 1
    configuration.logger.logLevel = .critical
    return configuration
}

@Suite struct EventConsumerTests {
    @Test(arguments: [EventConsumer.Configuration.Transport.automatic, .polling])
    func deliversBacklogThenLiveEventsAndCheckpointsEach(transport: EventConsumer.Configuration.Transport) async throws {
        let store = InMemoryEventStore()
        try await append(store, 25)
        let (server, port) = try await gateway(store)
        let checkpoints = InMemoryCheckpointStore()
        let consumer = EventConsumer(host: "127.0.0.1", port: port, name: "rm", checkpoints: checkpoints, configuration: quietConfiguration(transport))
        let received = Received()
        let run = Task { try await consumer.run { received.add($0) } }
        try await received.wait(for: 25)
        try await append(store, 5)
        try await received.wait(for: 30)
        #expect(received.all == Array(1...30))
        #expect(try await checkpoints.load(consumer: "rm") == Checkpoint(position: Position(30), epoch: store.epoch))
        consumer.stop()
        try await run.value
        await server.stop()
    }

    @Test(arguments: [EventConsumer.Configuration.Transport.automatic, .polling])
    func aRestartResumesFromTheCheckpointWithExactlyTheMissedEvents(transport: EventConsumer.Configuration.Transport) async throws {
        let store = InMemoryEventStore()
        try await append(store, 10)
        let (server, port) = try await gateway(store)
        let checkpoints = InMemoryCheckpointStore()
        let first = EventConsumer(host: "127.0.0.1", port: port, name: "rm", checkpoints: checkpoints, configuration: quietConfiguration(transport))
        let firstReceived = Received()
        let firstRun = Task { try await first.run { firstReceived.add($0) } }
        try await firstReceived.wait(for: 10)
        first.stop()
        try await firstRun.value
        try await append(store, 7)
        let second = EventConsumer(host: "127.0.0.1", port: port, name: "rm", checkpoints: checkpoints, configuration: quietConfiguration(transport))
        let secondReceived = Received()
        let secondRun = Task { try await second.run { secondReceived.add($0) } }
        try await secondReceived.wait(for: 7)
        try await Task.sleep(for: .milliseconds(100))
        #expect(secondReceived.all == Array(11...17))
        second.stop()
        try await secondRun.value
        await server.stop()
    }

    @Test(arguments: [EventConsumer.Configuration.Transport.automatic, .polling])
    func anEpochMismatchIsAnErrorNotASilentReset(transport: EventConsumer.Configuration.Transport) async throws {
        let store = InMemoryEventStore()
        try await append(store, 3)
        let (server, port) = try await gateway(store)
        let checkpoints = InMemoryCheckpointStore()
        try await checkpoints.save(Checkpoint(position: Position(2), epoch: StoreEpoch(rawValue: "another-store")), consumer: "rm")
        let consumer = EventConsumer(host: "127.0.0.1", port: port, name: "rm", checkpoints: checkpoints, configuration: quietConfiguration(transport))
        let received = Received()
        await #expect(throws: ConsumerError.self) { try await consumer.run { received.add($0) } }
        #expect(received.count == 0)
        #expect(try await checkpoints.load(consumer: "rm")?.epoch == StoreEpoch(rawValue: "another-store"), "the checkpoint is left alone")
        await server.stop()
    }

    @Test(arguments: [EventConsumer.Configuration.Transport.automatic, .polling])
    func pauseHoldsDeliveryAndResumeContinues(transport: EventConsumer.Configuration.Transport) async throws {
        let store = InMemoryEventStore()
        let (server, port) = try await gateway(store)
        let consumer = EventConsumer(host: "127.0.0.1", port: port, name: "rm", checkpoints: InMemoryCheckpointStore(), configuration: quietConfiguration(transport))
        let received = Received()
        let run = Task { try await consumer.run { received.add($0) } }
        try await append(store, 3)
        try await received.wait(for: 3)
        consumer.pause()
        try await append(store, 4)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(received.count <= 4, "at most the event already being handed over when paused")
        consumer.resume()
        try await received.wait(for: 7)
        #expect(received.all == Array(1...7))
        consumer.stop()
        try await run.value
        await server.stop()
    }

    @Test(arguments: [EventConsumer.Configuration.Transport.automatic, .polling])
    func aFailingHandlerStopsTheConsumerAndItsEventIsNotCheckpointed(transport: EventConsumer.Configuration.Transport) async throws {
        struct HandlerFailed: Error {}
        let store = InMemoryEventStore()
        try await append(store, 5)
        let (server, port) = try await gateway(store)
        let checkpoints = InMemoryCheckpointStore()
        let consumer = EventConsumer(host: "127.0.0.1", port: port, name: "rm", checkpoints: checkpoints, configuration: quietConfiguration(transport))
        await #expect(throws: HandlerFailed.self) {
            try await consumer.run { event in if event.position == Position(3) { throw HandlerFailed() } }
        }
        #expect(try await checkpoints.load(consumer: "rm")?.position == Position(2))
        await server.stop()
    }

    @Test(arguments: [EventConsumer.Configuration.Transport.automatic, .polling])
    func reconnectsWhenTheGatewayComesBack(transport: EventConsumer.Configuration.Transport) async throws {
        let store = InMemoryEventStore()
        try await append(store, 4)
        let (probe, port) = try await gatewayOutsideTheEphemeralRange(store)
        await probe.stop()  // the port is free again: nothing listens yet
        let consumer = EventConsumer(host: "127.0.0.1", port: port, name: "rm", checkpoints: InMemoryCheckpointStore(), configuration: quietConfiguration(transport))
        let received = Received()
        let run = Task { try await consumer.run { received.add($0) } }
        try await Task.sleep(for: .milliseconds(300))
        #expect(received.count == 0)
        let (server, _) = try await gateway(store, port: port)
        try await received.wait(for: 4)
        #expect(received.all == [1, 2, 3, 4])
        consumer.stop()
        try await run.value
        await server.stop()
    }

    @Test func fallsBackToPollingWhenAProxyRefusesTheUpgrade() async throws {
        let store = InMemoryEventStore()
        try await append(store, 30)
        let (server, port) = try await gateway(store)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("refusing_proxy.py")
        try await withChildProcess(TestPython.executable, [script.path, "0", "\(port)"]) { proxy in
            let line = try await proxy.waitForLine(containing: "listening")
            let proxyPort = try #require(Int(line.split(separator: " ").last ?? ""))
            var configuration = quietConfiguration()
            configuration.retryPushChannelAfter = .milliseconds(300)
            let consumer = EventConsumer(host: "127.0.0.1", port: proxyPort, name: "rm", checkpoints: InMemoryCheckpointStore(), configuration: configuration)
            let received = Received()
            let run = Task { try await consumer.run { received.add($0) } }
            try await received.wait(for: 30)
            try await append(store, 20)
            try await received.wait(for: 50)
            try await Task.sleep(for: .milliseconds(800))  // a few refused retries of the push channel in between
            try await append(store, 5)
            try await received.wait(for: 55)
            #expect(received.all == Array(1...55), "every event once, in order, through polling")
            consumer.stop()
            try await run.value
        }
        await server.stop()
    }
}

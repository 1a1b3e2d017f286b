import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import Logging
import Synchronization
import Testing

/// The consumer against a gateway with access control: its token gets it the events; without one (or with one
/// lacking the read scope) it stops at once with `.unauthorized` instead of retrying forever.
@Suite struct EventConsumerAccessTests {
    static let reader = "consumer-reader-0123456789"
    static let writer = "consumer-writer-0123456789"

    func gateway(_ store: any EventStore) async throws -> (GatewayServer, Int) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let access = try await AccessControl(tokens: [
            .init(name: "reader", token: Self.reader, scopes: ["read"]),
            .init(name: "writer", token: Self.writer, scopes: ["write"]),
        ])
        let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, accessControl: access, logger: logger))
        return (server, try await server.start())
    }

    func configuration(_ transport: EventConsumer.Configuration.Transport, token: String?) -> EventConsumer.Configuration {
        var configuration = EventConsumer.Configuration()
        configuration.transport = transport
        configuration.waitSeconds = 1
        configuration.logger.logLevel = .critical
        configuration.accessToken = token
        return configuration
    }

    @Test(arguments: [EventConsumer.Configuration.Transport.automatic, .polling])
    func aTokenWithTheReadScopeGetsTheEvents(transport: EventConsumer.Configuration.Transport) async throws {
        let store = InMemoryEventStore()
        for _ in 0..<10 {
            try await store.append(AppendRequest(aggregateID: "a", aggregateName: "A", expectedVersion: .any, events: [NewEvent(eventType: "t.E", payload: .null)]))
        }
        let (server, port) = try await gateway(store)
        let consumer = EventConsumer(
            host: "127.0.0.1", port: port, name: "rm", checkpoints: InMemoryCheckpointStore(), configuration: configuration(transport, token: Self.reader)
        )
        let positions = Mutex<[Int64]>([])
        let run = Task { try await consumer.run { event in positions.withLock { $0.append(event.position.rawValue) } } }
        let deadline = ContinuousClock.now + .seconds(90)
        while positions.withLock({ $0.count }) < 10, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(positions.withLock { $0 } == Array(1...10))
        consumer.stop()
        try await run.value
        await server.stop()
    }

    @Test(arguments: [EventConsumer.Configuration.Transport.automatic, .polling], [nil, writer])
    func noTokenOrAWrongOneStopsTheConsumerAtOnce(transport: EventConsumer.Configuration.Transport, token: String?) async throws {
        let (server, port) = try await gateway(InMemoryEventStore())
        let consumer = EventConsumer(
            host: "127.0.0.1", port: port, name: "rm", checkpoints: InMemoryCheckpointStore(), configuration: configuration(transport, token: token)
        )
        do {
            try await consumer.run { _ in }
            Issue.record("the consumer ran without a usable token")
        } catch let error as ConsumerError {
            #expect(error.code == .unauthorized)
            #expect(error.message.contains(token == nil ? "401" : "403"), "\(error.message)")
        }
        await server.stop()
    }
}

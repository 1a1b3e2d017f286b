import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// A TLS gateway with the test CA's server certificate, over `store`.
private func tlsGateway(_ store: any EventStore, _ certificates: TestCertificates) async throws -> (GatewayServer, Int) {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    var configuration = GatewayConfiguration(port: 0, logger: logger)
    configuration.tls = try GatewayTLS(certificateChainFile: certificates.certificateFile, privateKeyFile: certificates.keyFile)
    let server = GatewayServer(store: store, configuration: configuration)
    return (server, try await server.start())
}

private func appendEvents(_ store: any EventStore, _ count: Int) async throws {
    for _ in 0..<count {
        try await store.append(AppendRequest(aggregateID: "a", aggregateName: "A", expectedVersion: .any, events: [NewEvent(eventType: "t.E", payload: .null)]))
    }
}

private func configuration(_ transport: EventConsumer.Configuration.Transport, tls: ClientTLS) -> EventConsumer.Configuration {
    var configuration = EventConsumer.Configuration()
    configuration.transport = transport
    configuration.waitSeconds = 1
    configuration.logger.logLevel = .critical
    configuration.tls = tls
    return configuration
}

@Suite struct ClientTLSTests {
    @Test(arguments: [EventConsumer.Configuration.Transport.automatic, .polling])
    func aConsumerReceivesBacklogAndLiveEventsOverTLS(transport: EventConsumer.Configuration.Transport) async throws {
        let certificates = try await TestCertificates.shared()
        let store = InMemoryEventStore()
        try await appendEvents(store, 5)
        let (server, port) = try await tlsGateway(store, certificates)
        let consumer = EventConsumer(
            host: "localhost", port: port, name: "tls", checkpoints: InMemoryCheckpointStore(),
            configuration: configuration(transport, tls: try ClientTLS(caFile: certificates.caFile))
        )
        let positions = Positions()
        let run = Task { try await consumer.run { positions.add($0.position.rawValue) } }
        try await waitUntil { positions.all.count >= 5 }
        try await appendEvents(store, 3)
        try await waitUntil { positions.all.count >= 8 }
        consumer.stop()
        try await run.value
        #expect(positions.all == Array(1...8))
        await server.stop()
    }

    @Test(arguments: [EventConsumer.Configuration.Transport.automatic, .polling])
    func aConsumerThatDoesNotTrustTheCertificateStopsWithAClearError(transport: EventConsumer.Configuration.Transport) async throws {
        let certificates = try await TestCertificates.shared()
        let store = InMemoryEventStore()
        try await appendEvents(store, 1)
        let (server, port) = try await tlsGateway(store, certificates)
        // The system trust store does not know the test CA.
        let consumer = EventConsumer(
            host: "localhost", port: port, name: "untrusting", checkpoints: InMemoryCheckpointStore(),
            configuration: configuration(transport, tls: try ClientTLS())
        )
        let started = ContinuousClock.now
        let error = await #expect(throws: ConsumerError.self) { try await consumer.run { _ in } }
        #expect(error?.code == .tlsFailed)
        #expect(error?.message.contains("is not trusted") == true, "\(String(describing: error))")
        #expect(ContinuousClock.now - started < .seconds(10), "fails at once instead of retrying")
        await server.stop()
    }

    @Test func aServerThatNeverAnswersTheHandshakeTimesOut() async throws {
        let certificates = try await TestCertificates.shared()
        // Accepts connections and never writes a byte.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(silent.localAddress?.port)
        let started = ContinuousClock.now
        let error = await #expect(throws: ClientTLSError.self) {
            try await HTTPConnection.connect(host: "localhost", port: port, tls: try ClientTLS(caFile: certificates.caFile))
        }
        #expect(error?.code == .handshakeTimedOut, "\(String(describing: error))")
        #expect(error?.isRetryable == true)
        #expect(ContinuousClock.now - started < .seconds(20))
        try await silent.close()
    }

    @Test func aMissingCAFileIsNamed() throws {
        do {
            _ = try ClientTLS(caFile: "/nonexistent/ca.pem")
            Issue.record("a missing CA file must fail")
        } catch let error as ClientTLSError {
            #expect(error.code == .unusableCAFile)
            #expect(error.message == "cannot read --ca-file /nonexistent/ca.pem: no such file")
        }
    }
}

private struct Timeout: Error {}

/// The positions a handler saw.
private final class Positions: Sendable {
    private let value = Mutex<[Int64]>([])
    var all: [Int64] { value.withLock { $0 } }
    func add(_ position: Int64) { value.withLock { $0.append(position) } }
}

/// Polls `condition` every 10 ms for up to 20 s.
private func waitUntil(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(20)
    while !condition() {
        guard ContinuousClock.now < deadline else { throw Timeout() }
        try await Task.sleep(for: .milliseconds(10))
    }
}

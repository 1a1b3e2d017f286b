import FluxCore
import FluxGateway
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// A store whose every call fails, to see the router's answers to store failures.
private struct FailingStore: EventStore {
    var error: any Error
    var epoch: StoreEpoch { StoreEpoch(rawValue: "failing") }
    func head() async throws -> Position { throw error }
    func read(after position: Position, limit: Int, filter: EventFilter) async throws -> [RecordedEvent] { throw error }
    func readStream(_ aggregateID: String, fromVersion: Int64, limit: Int) async throws -> [RecordedEvent] { throw error }
    func event(id: String) async throws -> RecordedEvent? { throw error }
    func streams(after cursor: String?, prefix: String, aggregateNames: Set<String>, limit: Int) async throws -> [StreamSummary] { throw error }
    func waitForHead(beyond position: Position, timeout: Duration) async throws -> Position { throw error }
    func append(_ request: AppendRequest) async throws -> AppendResult { throw error }
}

private struct DiskOnFire: Error {}

@Suite struct GatewayRouterTests {
    private func respond(_ store: any EventStore, _ method: HTTPMethod, _ uri: String, body: String = "") async -> GatewayResponse {
        var logger = Logger(label: "test.router")
        logger.logLevel = .critical
        let router = GatewayRouter(store: store, configuration: GatewayConfiguration(logger: logger))
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "localhost")
        return await router.respond(to: GatewayRequest(method: method, uri: uri, headers: headers, body: ByteBuffer(string: body)))
    }

    @Test func storeUnavailableIs503WithRetryAfter() async {
        let store = FailingStore(error: StoreError(.storeUnavailable, "disk I/O error; check the volume"))
        for uri in ["/health", "/events?after=0", "/events/x", "/streams/s"] {
            let response = await respond(store, .GET, uri)
            #expect(response.status == .serviceUnavailable, "\(uri)")
            #expect(response.headers.first(name: "Retry-After") == "1")
            #expect(String(buffer: response.body).contains("store_unavailable"))
        }
        let append = await respond(store, .POST, "/streams/s", body: #"{"aggregate_name": "A", "expected_version": -1, "events": [{"event_type": "t", "payload": 1}]}"#)
        #expect(append.status == .serviceUnavailable)
    }

    @Test func unexpectedErrorsAre500WithAJSONBody() async {
        let response = await respond(FailingStore(error: DiskOnFire()), .GET, "/health")
        #expect(response.status == .internalServerError)
        #expect(String(buffer: response.body).hasPrefix(#"{"error":"internal""#))
        // The cause is the operator's (the log has it), not the client's.
        #expect(!String(buffer: response.body).contains(String(describing: DiskOnFire())))
        #expect(String(buffer: response.body).contains("request id"))
    }
}

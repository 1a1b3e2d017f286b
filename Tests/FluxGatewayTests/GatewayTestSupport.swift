import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// A gateway on a loopback port over its own store, for one test.
struct TestGateway {
    let store: any EventStore
    let server: GatewayServer
    let port: Int

    static func start(
        store: any EventStore = InMemoryEventStore(), maxBodySize: Int = 1 << 20, publicURL: String? = nil,
        allowedOrigins: Set<String> = [], maxConnections: Int = 16_000, maxConnectionsPerAddress: Int? = nil,
        accessControl: AccessControl? = nil, configure: (inout GatewayConfiguration) -> Void = { _ in }
    ) async throws -> TestGateway {
        var logger = Logger(label: "test.gateway")
        logger.logLevel = .warning
        var configuration = GatewayConfiguration(
            host: "127.0.0.1", port: 0, publicURL: publicURL, maxRequestBodySize: maxBodySize, allowedOrigins: allowedOrigins,
            maxConnections: maxConnections, maxConnectionsPerAddress: maxConnectionsPerAddress, accessControl: accessControl,
            logger: logger
        )
        // Generous read and idle timeouts: a loaded CI machine may take seconds between connecting and sending.
        // Tests of those timeouts set their own.
        configuration.requestReadTimeout = .seconds(120)
        configuration.idleTimeout = .seconds(240)
        configure(&configuration)
        let server = GatewayServer(store: store, configuration: configuration)
        let port = try await server.start()
        return TestGateway(store: store, server: server, port: port)
    }

    /// A new connection; a response that does not come within 120 s fails the request (a hung gateway fails its test
    /// instead of hanging the run; the longest long-poll of the tests waits 60 s).
    func connect() async throws -> HTTPConnection {
        let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
        connection.responseTimeout = .seconds(120)
        return connection
    }

    /// One request on a new connection.
    @discardableResult
    func request(
        _ method: HTTPMethod, _ target: String, json: String? = nil, headers: [(String, String)] = []
    ) async throws -> HTTPResponse {
        let connection = try await connect()
        var headers = headers
        if json != nil, !headers.contains(where: { $0.0.lowercased() == "content-type" }) {
            headers.append(("Content-Type", "application/json"))
        }
        let response = try await connection.request(method, target, headers: headers, body: json.map { ByteBuffer(string: $0) })
        await connection.close()
        return response
    }

    func get(_ target: String, headers: [(String, String)] = []) async throws -> HTTPResponse {
        try await request(.GET, target, headers: headers)
    }

    /// Appends through the HTTP API and checks it was created.
    @discardableResult
    func append(
        _ aggregateID: String, name: String = "Account", expected: String = "\"any\"", events: [(type: String, payload: String)],
        headers: [(String, String)] = []
    ) async throws -> HTTPResponse {
        let list = events.map { #"{"event_type": "\#($0.type)", "payload": \#($0.payload)}"# }.joined(separator: ",")
        return try await request(
            .POST, "/streams/\(aggregateID)", json: #"{"aggregate_name": "\#(name)", "expected_version": \#(expected), "events": [\#(list)]}"#,
            headers: headers
        )
    }

    func stop() async {
        await server.stop()
    }
}

/// Starts a gateway for one test (`TestGateway.start()` unless `start` says otherwise), runs `body` with it, and stops
/// it when `body` returns or throws: awaited, so that no server, subscription or event-loop work outlives the test.
func withTestGateway<Result>(
    _ start: @autoclosure () async throws -> TestGateway = try await TestGateway.start(),
    isolation: isolated (any Actor)? = #isolation, _ body: (TestGateway) async throws -> Result
) async throws -> Result {
    let gateway = try await start()
    return try await withTeardown({ await gateway.stop() }) { try await body(gateway) }
}

extension HTTPResponse {
    /// The body parsed as a JSON object (fails the test's `try` when it is not).
    func jsonObject() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            throw TestFailure("body is not a JSON object: \(text.prefix(200))")
        }
        return object
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Appends `count` events of type `t.E` with `payloadSize`-byte string payloads to stream `id`, in one append.
func append(_ store: any EventStore, _ id: String, count: Int = 1, payloadSize: Int = 10) async throws {
    let payload = EventPayload(trustedJSON: Array(("\"" + String(repeating: "p", count: payloadSize) + "\"").utf8))
    try await store.append(AppendRequest(
        aggregateID: id, aggregateName: "S", expectedVersion: .any,
        events: (0..<count).map { _ in NewEvent(eventType: "t.E", payload: payload) }))
}

/// Once the server's one subscriber is live, appends 10,000 events of ≈1 KB (12 MB: more than the socket buffers of a
/// subscriber that does not read can hold) and waits, at most 10 s, until the hub meets its full queue.
func overflowTheLiveSubscriber(of server: GatewayServer, store: any EventStore) async throws {
    // Wait until it is live, so that it is the hub that meets its full socket.
    let deadline = ContinuousClock.now + .seconds(10)
    while server.hub.liveCount == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
    try #require(server.hub.liveCount == 1)
    for index in 0..<2000 { try await append(store, "s\(index % 3)", count: 5, payloadSize: 1000) }
    let behind = ContinuousClock.now + .seconds(10)
    while server.hub.fellBehindCount == 0, ContinuousClock.now < behind { try await Task.sleep(for: .milliseconds(10)) }
}

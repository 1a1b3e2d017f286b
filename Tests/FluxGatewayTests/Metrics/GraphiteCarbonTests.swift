import FluxConsumer
import FluxTesting
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `fluxgate serve --graphite` against a real carbon-cache (Debian's graphite-carbon) on loopback, read back with
/// whisper-fetch: the appended-events counter arrives; a carbon started late is connected to while the gateway
/// serves; a carbon killed and restarted gets pushes again.
@Suite(.serialized) struct GraphiteCarbonTests {
    /// Runs `fluxgate serve` (memory store, free port) pushing to `127.0.0.1:carbonPort` every second; `body` gets
    /// the process and the gateway's HTTP port.
    func serve(carbonPort: Int, _ body: (ChildProcess, Int) async throws -> Void) async throws {
        try await withFluxgate([
            "serve", "--port", "0", "--store", "memory", "--graphite", "127.0.0.1:\(carbonPort)", "--graphite-interval", "1",
        ]) { server in
            let line = try await server.waitForLine(containing: "listening")
            let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) })
            try await body(server, port)
        }
    }

    /// Appends `count` events in one append through the HTTP API.
    func append(port: Int, count: Int) async throws {
        let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
        let events = (0..<count).map { #"{"event_type": "t.E", "payload": \#($0)}"# }.joined(separator: ",")
        let body = ByteBuffer(string: #"{"aggregate_name": "A", "expected_version": "any", "events": [\#(events)]}"#)
        let response = try await connection.request(.POST, "/streams/a", headers: [("Content-Type", "application/json")], body: body)
        await connection.close()
        #expect(response.status.code == 201)
    }

    /// Whether `GET /health` answers 200.
    func healthy(port: Int) async throws -> Bool {
        let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
        let response = try await connection.request(.GET, "/health")
        await connection.close()
        return response.status.code == 200
    }

    @Test func theAppendedEventsCounterReachesCarbon() async throws {
        try await withCarbon(port: try freeCarbonPort()) { carbon in
            try await serve(carbonPort: carbon.port) { server, port in
                try await append(port: port, count: 2)
                try await append(port: port, count: 1)
                try await carbon.waitForValue("fluxgate.appended_events_total") { $0 == 3 }
                // A labelled series: label_value components in label-name order.
                try await carbon.waitForValue("fluxgate.http_requests_total.method_POST.route__streams__aggregate_id_.status_201") { $0 == 2 }
                try await carbon.waitForValue("fluxgate.http_request_duration_seconds.route__streams__aggregate_id_.count") { $0 == 2 }
                server.signal(SIGINT)
                #expect(await server.waitForExit(timeout: .seconds(60)) == 0, "\(server.errorOutput.suffix(1000))")
                let log = (server.outputLines + [server.errorOutput]).joined(separator: "\n")
                #expect(log.contains("pushed the last metrics snapshot"), "\(log.suffix(1500))")
            }
        }
    }

    @Test func aCarbonStartedLaterIsConnectedToWhileTheGatewayServes() async throws {
        let port = try freeCarbonPort()
        try await withCarbon(port: port, started: false) { carbon in
            try await serve(carbonPort: port) { server, httpPort in
                _ = try await server.waitForLine(containing: "carbon is unreachable", timeout: .seconds(60))
                #expect(try await healthy(port: httpPort))
                try await append(port: httpPort, count: 4)
                try await Task.sleep(for: .seconds(2))
                try await carbon.start()
                try await carbon.waitForValue("fluxgate.appended_events_total") { $0 == 4 }
                try await carbon.waitForValue("fluxgate.graphite_dropped_snapshots_total") { $0 >= 1 }
                _ = try await server.waitForLine(containing: "connected to carbon", timeout: .seconds(60))
            }
        }
    }

    @Test func pushingResumesAfterCarbonIsKilledAndRestarted() async throws {
        try await withCarbon(port: try freeCarbonPort()) { carbon in
            try await serve(carbonPort: carbon.port) { server, port in
                try await append(port: port, count: 1)
                try await carbon.waitForValue("fluxgate.appended_events_total") { $0 == 1 }
                await carbon.kill()
                _ = try await server.waitForLine(containing: "carbon is unreachable", timeout: .seconds(60))
                try await append(port: port, count: 2)
                #expect(try await healthy(port: port))
                try await carbon.start()
                try await carbon.waitForValue("fluxgate.appended_events_total") { $0 == 3 }
                let log = (server.outputLines + [server.errorOutput]).joined(separator: "\n")
                #expect(log.components(separatedBy: "connected to carbon").count - 1 >= 2, "\(log.suffix(2000))")
            }
        }
    }
}

import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import FluxWire
import Foundation
import Logging
import FluxWebSocket
import NIOCore
import NIOSSL
import Testing

/// A gateway serving TLS on a loopback port with the test CA's server certificate.
private func tlsGateway(_ certificates: TestCertificates, store: any EventStore = InMemoryEventStore()) async throws -> TestGateway {
    var logger = Logger(label: "test.gateway.tls")
    logger.logLevel = .warning
    var configuration = GatewayConfiguration(host: "127.0.0.1", port: 0, logger: logger)
    configuration.tls = try GatewayTLS(certificateChainFile: certificates.certificateFile, privateKeyFile: certificates.keyFile)
    let server = GatewayServer(store: store, configuration: configuration)
    return TestGateway(store: store, server: server, port: try await server.start())
}

@Suite struct GatewayTLSTests {
    @Test(arguments: ["localhost", "127.0.0.1"])
    func healthAndTheFeedOverHTTPSWithTheCATrusted(host: String) async throws {
        let certificates = try await TestCertificates.shared()
        try await withTestGateway(await tlsGateway(certificates)) { gateway in
            let tls = try ClientTLS(caFile: certificates.caFile)
            let connection = try await HTTPConnection.connect(host: host, port: gateway.port, tls: tls)
            let health = try await connection.request(.GET, "/health")
            #expect(health.status == .ok)
            let created = try await connection.request(
                .POST, "/streams/t-1", headers: [("Content-Type", "application/json")],
                body: ByteBuffer(string: #"{"aggregate_name": "T", "expected_version": "any", "events": [{"event_type": "t.E", "payload": 1}]}"#)
            )
            #expect(created.status == .created)
            // With TLS on and no public URL or X-Forwarded-Proto, envelope URLs are https.
            let feed = try await connection.request(.GET, "/events?after=0")
            let events = try #require(try feed.jsonObject()["events"] as? [[String: Any]])
            #expect((events.first?["url"] as? String)?.hasPrefix("https://\(host):\(gateway.port)/") == true, "\(events)")
            await connection.close()
        }
    }

    @Test func anAppendReachesAWSSSubscriber() async throws {
        let certificates = try await TestCertificates.shared()
        try await withTestGateway(await tlsGateway(certificates)) { gateway in
            let tls = try ClientTLS(caFile: certificates.caFile)
            let subscription = try await PushChannelConnection.connect(host: "localhost", port: gateway.port, target: "/events/subscribe?after=0", tls: tls)
            let writer = try await HTTPConnection.connect(host: "localhost", port: gateway.port, tls: tls)
            let created = try await writer.request(
                .POST, "/streams/w-1", headers: [("Content-Type", "application/json")],
                body: ByteBuffer(string: #"{"aggregate_name": "W", "expected_version": "any", "events": [{"event_type": "t.Secure", "payload": {"n": 1}}]}"#)
            )
            #expect(created.status == .created)
            await writer.close()
            var received: [RecordedEvent] = []
            while received.isEmpty, let message = try await subscription.next() {
                if case .events(_, let events) = message { received += events }
            }
            #expect(received.map(\.eventType) == ["t.Secure"])
            #expect(received.first?.position == Position(1))
            await subscription.close()
        }
    }

    /// Our async WebSocket client (FluxWebSocket) over wss://, trusting the test CA.
    @Test func theAsyncWebSocketClientSubscribesOverWSS() async throws {
        let certificates = try await TestCertificates.shared()
        try await withTestGateway(await tlsGateway(certificates)) { gateway in
            try await append(gateway.store, "s", count: 3)
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(certificates.caFile)
            let socket = try await WebSocketClient.connect(to: "localhost", port: gateway.port, path: "/events/subscribe?after=0", tls: tls)
            let positions = try await withTimeLimit(.seconds(60), "reading the backlog") {
                try await socket.executeThenClose { inbound, _ in
                    var positions: [Int64] = []
                    for try await message in inbound {
                        switch PushMessage(json: Array(message.data.readableBytesView)) {
                        case .caughtUp: return positions
                        case .events(_, let events): positions += events.map(\.position.rawValue)
                        case nil: Issue.record("not a push message: \(String(buffer: message.data))")
                        }
                    }
                    return positions
                }
            }
            #expect(positions == [1, 2, 3])
            var untrusting = TLSConfiguration.makeClientConfiguration()
            untrusting.trustRoots = .certificates([])
            await #expect(throws: (any Error).self) {
                _ = try await WebSocketClient.connect(to: "localhost", port: gateway.port, path: "/events/subscribe?after=0", tls: untrusting)
            }
        }
    }

    /// An independent TLS and WebSocket stack (Python's `ssl` on OpenSSL, the `websockets` package) as a wss subscriber.
    @Test func aPythonWebSocketsClientSubscribesOverWSS() async throws {
        let certificates = try await TestCertificates.shared()
        try await withTestGateway(await tlsGateway(certificates)) { gateway in
            try await gateway.store.append(AppendRequest(aggregateID: "p", aggregateName: "P", expectedVersion: .any, events: [NewEvent(eventType: "t.Py", payload: .null)]))
            let script = """
                import json, ssl, sys
                from websockets.sync.client import connect
                context = ssl.create_default_context(cafile=sys.argv[2])
                with connect(sys.argv[1], ssl=context, open_timeout=10) as socket:
                    while True:
                        message = json.loads(socket.recv(timeout=10))
                        if message["type"] == "events":
                            print(json.dumps([event["event_type"] for event in message["events"]]))
                            break
                """
            try await withChildProcess(
                TestPython.executable,
                ["-c", script, "wss://localhost:\(gateway.port)/events/subscribe?after=0", certificates.caFile]
            ) { python in
                #expect(await python.waitForExit(timeout: .seconds(30)) == 0, "\(python.errorOutput)")
                #expect(python.outputLines == [#"["t.Py"]"#], "\(python.errorOutput)")
            }
        }
    }

    @Test func aCertificateTheClientDoesNotTrustFailsClearly() async throws {
        let certificates = try await TestCertificates.shared()
        try await withTestGateway(await tlsGateway(certificates)) { gateway in
            // No CA given: the system trust store does not know the test CA.
            let started = ContinuousClock.now
            let error = await #expect(throws: ClientTLSError.self) {
                try await HTTPConnection.connect(host: "localhost", port: gateway.port, tls: try ClientTLS())
            }
            #expect(error?.code == .untrustedCertificate)
            #expect(error?.message.contains("not trusted") == true, "\(String(describing: error))")
            #expect(error?.message.contains("--ca-file") == true)
            let pushError = await #expect(throws: ClientTLSError.self) {
                try await PushChannelConnection.connect(host: "localhost", port: gateway.port, target: "/events/subscribe", tls: try ClientTLS())
            }
            #expect(pushError?.code == .untrustedCertificate)
            #expect(ContinuousClock.now - started < .seconds(10), "fails, does not hang")
            // The server keeps serving trusted clients.
            let trusted = try await HTTPConnection.connect(host: "localhost", port: gateway.port, tls: try ClientTLS(caFile: certificates.caFile))
            #expect(try await trusted.request(.GET, "/health").status == .ok)
            await trusted.close()
        }
    }

    @Test func aPlainHTTPClientOnTheTLSPortIsClosedAndOthersKeepWorking() async throws {
        let certificates = try await TestCertificates.shared()
        try await withTestGateway(await tlsGateway(certificates)) { gateway in
            let tls = try ClientTLS(caFile: certificates.caFile)
            let before = try await HTTPConnection.connect(host: "localhost", port: gateway.port, tls: tls)
            #expect(try await before.request(.GET, "/health").status == .ok)
            let plain = try await RawTCPConnection.connect(port: gateway.port)
            try await plain.send("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline, (try? await plain.readMore()) == true {}
            #expect(!plain.isActive, "the plain client is closed")
            #expect(!String(buffer: plain.buffered).contains("HTTP/1.1"), "no plain HTTP answer on the TLS port")
            await plain.close()
            // A connection opened before keeps working, and new ones are served.
            #expect(try await before.request(.GET, "/health").status == .ok)
            await before.close()
            let after = try await HTTPConnection.connect(host: "127.0.0.1", port: gateway.port, tls: tls)
            #expect(try await after.request(.GET, "/health").status == .ok)
            await after.close()
        }
    }

    @Test func aTLSClientOnAPlainPortIsToldItIsNotTLS() async throws {
        let certificates = try await TestCertificates.shared()
        try await withTestGateway { gateway in
            let error = await #expect(throws: ClientTLSError.self) {
                try await HTTPConnection.connect(host: "localhost", port: gateway.port, tls: try ClientTLS(caFile: certificates.caFile))
            }
            #expect(error?.code == .notTLS, "\(String(describing: error))")
        }
    }

    @Test func unusableFilesAreNamedInTheError() async throws {
        let certificates = try await TestCertificates.shared()
        let missing = certificates.directory.appendingPathComponent("missing.pem").path
        #expect(throws: GatewayTLSError.self) { try GatewayTLS(certificateChainFile: missing, privateKeyFile: certificates.keyFile) }
        do {
            _ = try GatewayTLS(certificateChainFile: missing, privateKeyFile: certificates.keyFile)
        } catch {
            #expect("\(error)" == "cannot read --tls-cert \(missing): no such file")
        }
        do {
            _ = try GatewayTLS(certificateChainFile: certificates.keyFile, privateKeyFile: certificates.keyFile)
            Issue.record("a key is not a certificate")
        } catch {
            #expect("\(error)".contains("holds no PEM certificate"), "\(error)")
        }
        do {
            _ = try GatewayTLS(certificateChainFile: certificates.certificateFile, privateKeyFile: certificates.certificateFile)
            Issue.record("a certificate is not a key")
        } catch {
            #expect("\(error)".contains("--tls-key"), "\(error)")
        }
        do {
            _ = try GatewayTLS(certificateChainFile: certificates.certificateFile, privateKeyFile: certificates.unrelatedKeyFile)
            Issue.record("the unrelated key does not match the certificate")
        } catch {
            #expect("\(error)".contains("does not match the certificate"), "\(error)")
        }
        #expect(throws: ClientTLSError.self) { try ClientTLS(caFile: missing) }
    }
}

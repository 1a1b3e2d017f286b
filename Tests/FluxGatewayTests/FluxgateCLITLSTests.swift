import FluxConsumer
import FluxTesting
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `fluxgate serve --tls-cert --tls-key` and `fluxgate tail https://… --ca-file` as a user runs them.
@Suite struct FluxgateCLITLSTests {
    @Test func serveWantsTLSCertAndKeyTogether() async throws {
        for arguments in [["--tls-cert", "server.pem"], ["--tls-key", "server-key.pem"]] {
            try await withFluxgate(["serve", "--port", "0", "--store", "memory"] + arguments) { serve in
                #expect(await serve.waitForExit() != 0)
                #expect(serve.errorOutput.contains("--tls-cert and --tls-key go together"), "\(serve.errorOutput)")
            }
        }
    }

    @Test func serveNamesACertificateFileItCannotRead() async throws {
        try await withFluxgate(
            ["serve", "--port", "0", "--store", "memory", "--tls-cert", "/nonexistent/server.pem", "--tls-key", "/nonexistent/key.pem"]
        ) { serve in
            #expect(await serve.waitForExit() != 0)
            #expect(serve.errorOutput.contains("cannot read --tls-cert /nonexistent/server.pem: no such file"), "\(serve.errorOutput)")
        }
    }

    @Test func tailFollowsAnHTTPSGatewayWithTheCAAndRefusesWithoutIt() async throws {
        let certificates = try await TestCertificates.shared()
        try await withFluxgate(
            ["serve", "--port", "0", "--store", "memory", "--tls-cert", certificates.certificateFile, "--tls-key", certificates.keyFile]
        ) { serve in
            let listening = try await serve.waitForLine(containing: "listening")
            let address = try #require(listening.firstMatch(of: /https:\/\/127\.0\.0\.1:(\d+)/), "\(listening)")
            let port = try #require(Int(address.1))

            let writer = try await HTTPConnection.connect(host: "localhost", port: port, tls: try ClientTLS(caFile: certificates.caFile))
            let created = try await writer.request(
                .POST, "/streams/c-1", headers: [("Content-Type", "application/json")],
                body: ByteBuffer(string: #"{"aggregate_name": "C", "expected_version": "any", "events": [{"event_type": "t.E", "payload": 1}]}"#)
            )
            #expect(created.status == .created)
            await writer.close()

            try await withFluxgate(["tail", "https://localhost:\(port)", "--ca-file", certificates.caFile, "--limit", "1"]) { tail in
                #expect(await tail.waitForExit(timeout: .seconds(30)) == 0, "\(tail.errorOutput)")
                let line = try #require(tail.outputLines.first)
                let envelope = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(envelope["position"] as? Int == 1)
                #expect((envelope["url"] as? String)?.hasPrefix("https://localhost:\(port)/") == true, "\(line)")
            }

            try await withFluxgate(["tail", "wss://localhost:\(port)"]) { untrusting in
                let status = await untrusting.waitForExit(timeout: .seconds(15))
                #expect(status != nil && status != 0, "fails instead of retrying forever")
                #expect(untrusting.errorOutput.contains("is not trusted"), "\(untrusting.errorOutput)")
            }

            serve.signal(SIGINT)
            #expect(await serve.waitForExit(timeout: .seconds(20)) == 0)
        }
    }
}

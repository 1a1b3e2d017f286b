import FluxGateway
import FluxTesting
import Foundation
import Testing

/// `fluxgate sinks …` against a live gateway: every subcommand, refusals said on stderr with exit status 1, bad
/// options refused before any request.
@Suite struct SinksCommandTests {
    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32?, output: String, errors: String) {
        try await withFluxgate(["sinks"] + arguments, environment: environment) { command in
            let status = await command.waitForExit(timeout: .seconds(60))
            return (status, command.outputLines.joined(separator: "\n"), command.errorOutput)
        }
    }

    @Test func createListShowParkedReplayAndDelete() async throws {
        try await withTestGateway { gateway in
            try await WebhookSinkTests.appendRound(gateway.store, aggregates: 0..<1, events: 1)
            let url = ["--url", "http://127.0.0.1:\(gateway.port)"]
            let closed = try ClosedPort()
            let created = try await Self.run(
                ["create", "billing", "--target", "http://127.0.0.1:\(closed.port)/hooks", "--aggregate-name", "A", "--maximum-attempts", "1",
                 "--timeout", "2", "--concurrency", "2"] + url)
            #expect(created.status == 0, "\(created.errors)")
            #expect(created.output.contains(#""timeout_ms" : 2000"#) && created.output.contains(#""secret" : "whsec_"#), "a made secret, shown once: \(created.output)")

            let listed = try await Self.run(["list"] + url)
            #expect(listed.status == 0 && listed.output.contains("NAME") && listed.output.contains("billing"), "\(listed.output) \(listed.errors)")

            // Nothing listens there: event 1 is parked after its one attempt.
            try await SubscriptionHubTests.waitUntil {
                (try await gateway.get("/sinks/billing").jsonObject()["parked"] as? Int) == 1
            }
            let parked = try await Self.run(["parked", "billing"] + url)
            #expect(parked.status == 0 && parked.output.contains("connection refused"), "\(parked.output) \(parked.errors)")
            let replayed = try await Self.run(["replay", "billing", "--position", "1"] + url)
            #expect(replayed.status == 0 && replayed.output.contains("replaying event 1"), "\(replayed.output) \(replayed.errors)")
            let notParked = try await Self.run(["replay", "billing", "--position", "3"] + url)
            #expect(notParked.status == 1 && notParked.errors.contains("404") && notParked.errors.contains("fluxgate sinks:"), "\(notParked.errors)")

            // A private CA for an https receiver, from a PEM file.
            let certificates = try await TestCertificates.shared()
            let withCA = try await Self.run(
                ["update", "billing", "--target", "https://localhost:\(closed.port)/hooks", "--receiver-ca-file", certificates.caFile] + url)
            #expect(withCA.status == 0 && withCA.output.contains("BEGIN CERTIFICATE"), "\(withCA.output) \(withCA.errors)")

            let shown = try await Self.run(["show", "billing"] + url)
            #expect(shown.status == 0 && shown.output.contains("secret_fingerprints") && !shown.output.contains("whsec_"), "\(shown.output)")
            let deleted = try await Self.run(["delete", "billing"] + url)
            #expect(deleted.status == 0 && deleted.output.contains("deleted sink billing"))
            let gone = try await Self.run(["show", "billing"] + url)
            #expect(gone.status == 1 && gone.errors.contains("404") && gone.errors.contains("no webhook sink named billing"), "\(gone.errors)")
            withExtendedLifetime(closed) {}
        }
    }

    @Test func badOptionsAreRefusedBeforeAnyRequest() async throws {
        for arguments in [
            ["show", "bad name"], ["create", "s", "--target", "ftp://x/"], ["create", "s", "--target", "http://x/", "--concurrency", "0"],
            ["create", "s", "--target", "http://x/", "--timeout", "0"], ["create", "s", "--target", "http://x/", "--maximum-attempts", "5000"],
            ["create", "s"], ["replay", "s", "--position", "0"],
        ] {
            let refused = try await Self.run(arguments + ["--url", "http://127.0.0.1:9"])
            #expect(refused.status != 0 && refused.status != 1, "\(arguments): a usage error, not a failed request (\(String(describing: refused.status)))")
            #expect(refused.errors.contains("Error:"), "\(arguments): \(refused.errors)")
        }
    }
}

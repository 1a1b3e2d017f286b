import FluxGateway
import FluxTesting
import Foundation
import Testing

/// `fluxgate groups …` against a live gateway: every subcommand, the gateway's refusals said on stderr with exit
/// status 1, bad options refused before any request, and tokens from the environment.
@Suite struct GroupsCommandTests {
    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32?, output: String, errors: String) {
        try await withFluxgate(["groups"] + arguments, environment: environment) { command in
            let status = await command.waitForExit(timeout: .seconds(60))
            return (status, command.outputLines.joined(separator: "\n"), command.errorOutput)
        }
    }

    @Test func createListShowResetParkedReplayAndDelete() async throws {
        try await withTestGateway { gateway in
            try await GroupEndpointTests.appendEvents(gateway, aggregates: 2, each: 2)
            let url = ["--url", "http://127.0.0.1:\(gateway.port)"]
            let created = try await Self.run(["create", "billing", "--aggregate-name", "Account", "--start", "0", "--maximum-attempts", "1", "--lease-timeout", "5"] + url)
            #expect(created.status == 0, "\(created.errors)")
            #expect(created.output.contains(#""maximum_attempts" : 1"#) && created.output.contains(#""lease_timeout_ms" : 5000"#), "\(created.output)")

            let listed = try await Self.run(["list"] + url)
            #expect(listed.status == 0, "\(listed.errors)")
            #expect(listed.output.contains("NAME") && listed.output.contains("billing"), "\(listed.output)")

            // A member parks event 1, so that parked and replay have something to show.
            #expect(try await GroupEndpointTests.fetch(gateway, "billing", member: "m", max: 1).events.map(\.position) == [1])
            #expect(try await gateway.request(.POST, "/groups/billing/nack", json: #"{"member": "m", "position": 1, "reason": "bad data"}"#).status == .ok)
            let parked = try await Self.run(["parked", "billing"] + url)
            #expect(parked.status == 0 && parked.output.contains("bad data"), "\(parked.output) \(parked.errors)")
            let replayed = try await Self.run(["replay", "billing", "--position", "1"] + url)
            #expect(replayed.status == 0 && replayed.output.contains("replaying event 1"), "\(replayed.output) \(replayed.errors)")
            let notParked = try await Self.run(["replay", "billing", "--position", "3"] + url)
            #expect(notParked.status == 1 && notParked.errors.contains("404") && notParked.errors.contains("not parked"), "\(notParked.errors)")

            let reset = try await Self.run(["reset", "billing", "--to", "head"] + url)
            #expect(reset.status == 0 && reset.output.contains(#""lag" : 0"#), "\(reset.output) \(reset.errors)")
            let shown = try await Self.run(["show", "billing"] + url)
            #expect(shown.status == 0 && shown.output.contains(#""checkpoint" : 4"#), "\(shown.output)")

            let deleted = try await Self.run(["delete", "billing"] + url)
            #expect(deleted.status == 0 && deleted.output.contains("deleted group billing"))
            let gone = try await Self.run(["show", "billing"] + url)
            #expect(gone.status == 1 && gone.errors.contains("404") && gone.errors.contains("no consumer group named billing"), "\(gone.errors)")
        }
    }

    @Test func badOptionsAreRefusedBeforeAnyRequestAndAnAbsentGatewayIsSaid() async throws {
        for arguments in [
            ["show", "bad name"], ["reset", "g", "--to", "-1"], ["reset", "g", "--to", "tail"], ["create", "g", "--lease-timeout", "0"],
            ["create", "g", "--maximum-attempts", "5000"], ["create", "g", "--parked-events", "drop"], ["replay", "g", "--position", "0"],
            ["list", "--url", "ftp://x"],
        ] {
            let refused = try await Self.run(arguments + ["--url", "http://127.0.0.1:9"].filter { _ in !arguments.contains("--url") })
            #expect(refused.status != 0 && refused.status != 1, "\(arguments): a usage error, not a failed request (\(String(describing: refused.status)))")
            #expect(refused.errors.contains("Error:"), "\(arguments): \(refused.errors)")
        }
        let closed = try ClosedPort()
        let absent = try await Self.run(["list", "--url", "http://127.0.0.1:\(closed.port)"])
        #expect(absent.status == 1 && absent.errors.contains("no answer from"), "\(absent.errors)")
        withExtendedLifetime(closed) {}
    }

    @Test func aTokenComesFromTheEnvironmentAndAMissingScopeIsSaid() async throws {
        let access = try await AccessControl(tokens: [
            .init(name: "admin", token: "a", scopes: ["groups:admin"]),
            .init(name: "member", token: "m", scopes: ["read", "groups"]),
        ])
        try await withTestGateway(await TestGateway.start(accessControl: access)) { gateway in
            let url = ["--url", "http://127.0.0.1:\(gateway.port)"]
            let anonymous = try await Self.run(["create", "g"] + url)
            #expect(anonymous.status == 1 && anonymous.errors.contains("401"), "\(anonymous.errors)")
            let byMember = try await Self.run(["create", "g"] + url, environment: ["FLUXGATE_TOKEN": "m"])
            #expect(byMember.status == 1 && byMember.errors.contains("403"), "\(byMember.errors)")
            let byAdmin = try await Self.run(["create", "g"] + url, environment: ["FLUXGATE_TOKEN": "a"])
            #expect(byAdmin.status == 0, "\(byAdmin.errors)")
            let listedWithFlag = try await Self.run(["list", "--token", "m", "--json"] + url)
            #expect(listedWithFlag.status == 0 && listedWithFlag.output.contains(#""name" : "g""#), "\(listedWithFlag.output) \(listedWithFlag.errors)")
        }
    }
}

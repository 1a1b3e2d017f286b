import FluxConsumer
import FluxCore
import FluxGateway
import FluxSQLite
import Foundation
import NIOCore
import Testing

/// The consumer groups' HTTP API over real sockets: definitions, pull members, settling, parking, access, restarts.
@Suite struct GroupEndpointTests {
    static func appendEvents(_ gateway: TestGateway, aggregates: Int, each: Int) async throws {
        for round in 0..<each {
            for aggregate in 0..<aggregates {
                #expect(try await gateway.append("acc-\(aggregate)", events: [(type: "Credited", payload: #"{"round": \#(round)}"#)]).status == .created)
            }
        }
    }

    /// `(member, [(position, aggregate id, attempt)])` of a fetch.
    static func fetch(_ gateway: TestGateway, _ group: String, member: String, max: Int, wait: Double = 0, headers: [(String, String)] = []) async throws
        -> (status: Int, events: [(position: Int, aggregate: String, attempt: Int)])
    {
        let response = try await gateway.request(.POST, "/groups/\(group)/fetch?member=\(member)&max=\(max)&wait=\(wait)", headers: headers)
        guard response.status == .ok else { return (Int(response.status.code), []) }
        let body = try response.jsonObject()
        #expect(body["member"] as? String == member)
        let events = (body["events"] as? [[String: Any]] ?? []).map { item in
            let event = item["event"] as? [String: Any] ?? [:]
            return (position: event["position"] as? Int ?? -1, aggregate: event["aggregate_id"] as? String ?? "", attempt: item["attempt"] as? Int ?? -1)
        }
        return (200, events)
    }

    static func ack(_ gateway: TestGateway, _ group: String, member: String, _ positions: [Int]) async throws -> HTTPResponse {
        try await gateway.request(.POST, "/groups/\(group)/ack", json: #"{"member": "\#(member)", "positions": \#(positions)}"#)
    }

    @Test func aGroupIsCreatedInspectedChangedListedAndDeleted() async throws {
        try await withTestGateway { gateway in
            let created = try await gateway.request(.PUT, "/groups/billing", json: #"{"filter": {"aggregate_names": ["Account"]}, "start": "0", "maximum_attempts": 3, "parked_events": "continue"}"#)
            #expect(created.status == .created, "\(created.text)")
            var body = try created.jsonObject()
            #expect(body["name"] as? String == "billing")
            #expect(body["maximum_attempts"] as? Int == 3)
            #expect(body["parked_events"] as? String == "continue")
            #expect((body["filter"] as? [String: Any])?["aggregate_names"] as? [String] == ["Account"])
            let changed = try await gateway.request(.PUT, "/groups/billing", json: #"{"lease_timeout_ms": 5000}"#)
            #expect(changed.status == .ok)
            body = try changed.jsonObject()
            #expect(body["lease_timeout_ms"] as? Int == 5000)
            #expect((try await gateway.get("/groups").jsonObject()["groups"] as? [[String: Any]])?.map { $0["name"] as? String } == ["billing"])
            #expect(try await gateway.request(.DELETE, "/groups/billing").status == .noContent)
            #expect(try await gateway.get("/groups/billing").status == .notFound)
            #expect(try await gateway.request(.DELETE, "/groups/billing").status == .notFound)
        }
    }

    @Test func membersShareTheEventsAnAggregateAtATimeAndTheCheckpointFollowsTheAcknowledgements() async throws {
        try await withTestGateway { gateway in
            try await Self.appendEvents(gateway, aggregates: 4, each: 5)
            #expect(try await gateway.request(.PUT, "/groups/rm", json: #"{"start": "0"}"#).status == .created)
            var seen: [String: [Int]] = [:]
            var done = 0
            var rounds = 0
            while done < 20 {
                rounds += 1
                #expect(rounds < 100, "no progress")
                if rounds >= 100 { break }
                let a = try await Self.fetch(gateway, "rm", member: "a", max: 3)
                let b = try await Self.fetch(gateway, "rm", member: "b", max: 3)
                let aggregatesOfA = Set(a.events.map(\.aggregate))
                let aggregatesOfB = Set(b.events.map(\.aggregate))
                #expect(aggregatesOfA.isDisjoint(with: aggregatesOfB), "one member at a time per aggregate")
                for (member, events) in [("a", a.events), ("b", b.events)] where !events.isEmpty {
                    for event in events { seen[event.aggregate, default: []].append(event.position) }
                    #expect(try await Self.ack(gateway, "rm", member: member, events.map(\.position)).status == .ok)
                    done += events.count
                }
            }
            for (aggregate, positions) in seen {
                #expect(positions == positions.sorted(), "\(aggregate) in order")
                #expect(positions.count == 5)
            }
            let group = try await gateway.get("/groups/rm").jsonObject()
            #expect(group["checkpoint"] as? Int == 20)
            #expect(group["lag"] as? Int == 0)
            #expect(group["acknowledged"] as? Int == 20)
            #expect(Set(group["members"] as? [String] ?? []) == ["a", "b"])
        }
    }

    @Test func aRejectedEventIsParkedListedAndReplayed() async throws {
        try await withTestGateway { gateway in
            try await Self.appendEvents(gateway, aggregates: 1, each: 2)
            #expect(try await gateway.request(.PUT, "/groups/p", json: #"{"maximum_attempts": 1}"#).status == .created)
            let first = try await Self.fetch(gateway, "p", member: "m", max: 1)
            #expect(first.events.map(\.position) == [1])
            let rejected = try await gateway.request(.POST, "/groups/p/nack", json: #"{"member": "m", "position": 1, "reason": "poison pill"}"#)
            #expect(rejected.status == .ok, "\(rejected.text)")
            let parked = try await gateway.get("/groups/p/parked").jsonObject()["parked"] as? [[String: Any]]
            #expect(parked?.map { $0["position"] as? Int } == [1])
            #expect(parked?.first?["reason"] as? String == "poison pill")
            #expect(try await Self.fetch(gateway, "p", member: "m", max: 5).events.isEmpty, "the aggregate's next event waits (hold)")
            #expect(try await gateway.request(.POST, "/groups/p/parked/1/replay").status == .ok)
            #expect(try await gateway.request(.POST, "/groups/p/parked/1/replay").status == .notFound)
            let replayed = try await Self.fetch(gateway, "p", member: "m", max: 5)
            #expect(replayed.events.map(\.position) == [1, 2])
            #expect(try await Self.ack(gateway, "p", member: "m", [1, 2]).status == .ok)
            #expect((try await gateway.get("/groups/p/parked").jsonObject()["parked"] as? [Any])?.isEmpty == true)
            #expect(try await gateway.get("/groups/p").jsonObject()["checkpoint"] as? Int == 2)
        }
    }

    @Test func badInputGetsAClearErrorAndSettlesNothing() async throws {
        try await withTestGateway { gateway in
            try await Self.appendEvents(gateway, aggregates: 2, each: 1)
            #expect(try await gateway.request(.POST, "/groups/nope/fetch").status == .notFound)
            #expect(try await gateway.request(.PUT, "/groups/bad%20name", json: "{}").status == .badRequest)
            #expect(try await gateway.request(.PUT, "/groups/g", json: "{not json").status == .badRequest)
            #expect(try await gateway.request(.PUT, "/groups/g", json: #"{"maximum_attempts": 0}"#).status == .badRequest)
            #expect(try await gateway.request(.PUT, "/groups/g", json: #"{"lease_timeout_ms": 10}"#).status == .badRequest, "lease below 1 s")
            #expect(try await gateway.request(.PUT, "/groups/g", json: #"{"start": "yesterday"}"#).status == .badRequest)
            #expect(try await gateway.request(.PUT, "/groups/g", json: "{}").status == .created)
            #expect(try await gateway.request(.POST, "/groups/g/fetch?max=0").status == .badRequest)
            #expect(try await gateway.request(.POST, "/groups/g/fetch?max=99999999999999999999").status == .badRequest)
            #expect(try await gateway.request(.POST, "/groups/g/fetch?wait=nan").status == .badRequest)
            let leased = try await Self.fetch(gateway, "g", member: "m1", max: 1)
            #expect(leased.events.count == 1)
            _ = try await Self.fetch(gateway, "g", member: "m2", max: 1)
            let other = leased.events[0].position == 1 ? 2 : 1
            let refused = try await Self.ack(gateway, "g", member: "m1", [leased.events[0].position, other])
            #expect(refused.status == .conflict, "one of them is leased to m2")
            #expect(try await Self.ack(gateway, "g", member: "stranger", [leased.events[0].position]).status == .conflict)
            #expect(try await gateway.request(.POST, "/groups/g/ack", json: #"{"member": "m1", "positions": "x"}"#).status == .badRequest)
            #expect(try await gateway.request(.POST, "/groups/g/nack", json: #"{"member": "m1"}"#).status == .badRequest)
            // The member may be in the query (a proxy routes by it), but not a different one from the body's.
            let mixed = #"{"member": "m2", "positions": [\#(leased.events[0].position)]}"#
            #expect(try await gateway.request(.POST, "/groups/g/ack?member=m1", json: mixed).status == .badRequest)
            #expect(try await gateway.get("/groups/g").jsonObject()["acknowledged"] as? Int == 0, "nothing acknowledged by mistake")
            let queried = #"{"positions": [\#(leased.events[0].position)]}"#
            #expect(try await gateway.request(.POST, "/groups/g/ack?member=m1", json: queried).status == .ok)
        }
    }

    static func bearer(_ token: String) -> [(String, String)] { [("Authorization", "Bearer \(token)")] }

    @Test func scopesSeparateMembersFromAdministrators() async throws {
        let access = try await AccessControl(tokens: [
            .init(name: "reader", token: "r", scopes: ["read"]),
            .init(name: "member", token: "m", scopes: ["read", "groups"]),
            .init(name: "admin", token: "a", scopes: ["groups:admin"]),
            .init(name: "narrow", token: "n", scopes: ["read:Orders", "groups"]),
            .init(name: "writer", token: "w", scopes: ["write"]),
        ])
        try await withTestGateway(await TestGateway.start(accessControl: access)) { gateway in
            let (reader, member, admin, narrow, writer) = (Self.bearer("r"), Self.bearer("m"), Self.bearer("a"), Self.bearer("n"), Self.bearer("w"))
            let appended = try await gateway.request(
                .POST, "/streams/acc-1", json: #"{"aggregate_name": "Account", "expected_version": "any", "events": [{"event_type": "t", "payload": 1}]}"#,
                headers: writer)
            #expect(appended.status == .created)
            let createdByMember = try await gateway.request(.PUT, "/groups/g", json: "{}", headers: member)
            #expect(createdByMember.status == .forbidden, "a member may not create groups")
            let createdByAdmin = try await gateway.request(.PUT, "/groups/g", json: "{}", headers: admin)
            #expect(createdByAdmin.status == .created)
            let byReader = try await Self.fetch(gateway, "g", member: "x", max: 1, headers: reader)
            #expect(byReader.status == 403, "read alone is no membership")
            let byNarrow = try await Self.fetch(gateway, "g", member: "x", max: 1, headers: narrow)
            #expect(byNarrow.status == 403, "the group reads more than the token may")
            let byMember = try await Self.fetch(gateway, "g", member: "x", max: 1, headers: member)
            #expect(byMember.events.count == 1)
            let deletedByMember = try await gateway.request(.DELETE, "/groups/g", headers: member)
            #expect(deletedByMember.status == .forbidden)
            let anonymous = try await gateway.request(.POST, "/groups/g/fetch")
            #expect(anonymous.status == .unauthorized)
        }
    }

    @Test func aResetReplaysFromThePositionAndEndsTheOldLeasesAndWaits() async throws {
        try await withTestGateway { gateway in
            try await Self.appendEvents(gateway, aggregates: 3, each: 2)
            #expect(try await gateway.request(.PUT, "/groups/rm", json: "{}").status == .created)
            let first = try await Self.fetch(gateway, "rm", member: "m", max: 10)
            #expect(first.events.count == 6)
            #expect(try await Self.ack(gateway, "rm", member: "m", first.events.map(\.position)).status == .ok)
            #expect(try await gateway.get("/groups/rm").jsonObject()["checkpoint"] as? Int == 6)

            // A member waiting in a long fetch while the group is reset: its wait ends with 409, and the reset stands.
            let waiting = Task { try await gateway.request(.POST, "/groups/rm/fetch?member=w&max=10&wait=20") }
            try await Task.sleep(for: .milliseconds(300))  // not a wait for a timeout: the fetch only has to be under way
            let reset = try await gateway.request(.POST, "/groups/rm/reset", json: #"{"position": 2}"#)
            #expect(reset.status == .ok, "\(reset.text)")
            #expect(try reset.jsonObject()["checkpoint"] as? Int == 2)
            let ended = try await waiting.value
            #expect(ended.status == .conflict, "\(ended.text)")
            #expect(try await gateway.get("/groups/rm").jsonObject()["checkpoint"] as? Int == 2, "the old runtime wrote nothing after the reset")

            let again = try await Self.fetch(gateway, "rm", member: "m", max: 10)
            #expect(again.events.map(\.position).sorted() == [3, 4, 5, 6], "everything after the position, again")
            #expect(try await Self.ack(gateway, "rm", member: "m", [3, 4, 5, 6]).status == .ok)

            let toHead = try await gateway.request(.POST, "/groups/rm/reset", json: #"{"position": "head"}"#)
            #expect(try toHead.jsonObject()["lag"] as? Int == 0)
            #expect(try await gateway.request(.POST, "/groups/rm/reset", json: #"{"position": 99}"#).status == .badRequest)
            #expect(try await gateway.request(.POST, "/groups/rm/reset", json: #"{"position": -1}"#).status == .badRequest)
            #expect(try await gateway.request(.POST, "/groups/rm/reset", json: #"{}"#).status == .badRequest)
            #expect(try await gateway.request(.POST, "/groups/none/reset", json: #"{"position": 0}"#).status == .notFound)
            #expect(try await gateway.request(.GET, "/groups/rm/reset").status == .methodNotAllowed)
        }
    }

    @Test func metricsShowEachGroupsLagInFlightMembersParkedAcknowledgementsAndRedeliveries() async throws {
        try await withTestGateway { gateway in
            try await Self.appendEvents(gateway, aggregates: 2, each: 2)
            #expect(try await gateway.request(.PUT, "/groups/g", json: #"{"backoff_ms": 0, "maximum_attempts": 2}"#).status == .created)
            func figures() async throws -> [String: Double] {
                let text = try await gateway.get("/metrics").text
                var found: [String: Double] = [:]
                for line in text.split(separator: "\n") where line.hasPrefix("fluxgate_group_") && line.contains(#"group="g""#) {
                    let parts = line.split(separator: " ")
                    found[String(parts[0].prefix { $0 != "{" })] = Double(parts[parts.count - 1])
                }
                return found
            }
            #expect(try await figures()["fluxgate_group_lag_events"] == 4, "a group that has not run yet shows its lag")
            #expect(try await Self.fetch(gateway, "g", member: "m", max: 10).events.map(\.position) == [1, 3, 2, 4])
            #expect(try await Self.ack(gateway, "g", member: "m", [1, 3]).status == .ok)
            var now = try await figures()
            #expect(now["fluxgate_group_lag_events"] == 3 && now["fluxgate_group_in_flight_events"] == 2, "\(now)")
            #expect(now["fluxgate_group_members"] == 1 && now["fluxgate_group_acknowledged_total"] == 2, "\(now)")
            #expect(try await gateway.request(.POST, "/groups/g/nack", json: #"{"member": "m", "position": 2}"#).status == .ok)
            #expect(try await Self.fetch(gateway, "g", member: "m", max: 10).events.map(\.attempt) == [2, 1], "2 again, then 4")
            #expect(try await gateway.request(.POST, "/groups/g/nack", json: #"{"member": "m", "position": 2}"#).status == .ok)
            now = try await figures()
            #expect(now["fluxgate_group_parked_events"] == 1 && now["fluxgate_group_redeliveries_total"] == 1, "\(now)")
            #expect(now["fluxgate_group_lag_events"] == 1 && now["fluxgate_group_in_flight_events"] == 0, "past the parked 2, 4 waits: \(now)")
            #expect(try await gateway.request(.DELETE, "/groups/g").status == .noContent)
            #expect(try await figures().isEmpty, "a deleted group's series go")
        }
    }

    @Test func theCheckpointAcknowledgedAndParkedEventsSurviveARestartOnSQLite() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-groups-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("events.sqlite").path
        do {
            let store = try SQLiteEventStore(path: path)
            try await withTestGateway(await TestGateway.start(store: store)) { gateway in
                try await Self.appendEvents(gateway, aggregates: 3, each: 2)
                #expect(try await gateway.request(.PUT, "/groups/rm", json: #"{"maximum_attempts": 1}"#).status == .created)
                let leased = try await Self.fetch(gateway, "rm", member: "m", max: 3)
                #expect(leased.events.map(\.position) == [1, 4, 2], "acc-0's two events, then acc-1's first")
                #expect(try await Self.ack(gateway, "rm", member: "m", [1, 4]).status == .ok)
                #expect(try await gateway.request(.POST, "/groups/rm/nack", json: #"{"member": "m", "position": 2, "reason": "bad"}"#).status == .ok)
                #expect(try await gateway.get("/groups/rm").jsonObject()["checkpoint"] as? Int == 2, "1 acknowledged, 2 parked")
            }
            try await store.close()
        }
        let reopened = try SQLiteEventStore(path: path)
        try await withTestGateway(await TestGateway.start(store: reopened)) { gateway in
            let group = try await gateway.get("/groups/rm").jsonObject()
            #expect(group["checkpoint"] as? Int == 2)
            #expect(group["parked"] as? Int == 1)
            let next = try await Self.fetch(gateway, "rm", member: "m", max: 10)
            // After the checkpoint (2): acc-2's events (3, 6); not acc-0's 4, acknowledged after the checkpoint before
            // the restart; acc-1's 5 waits for its parked event.
            #expect(next.events.map(\.position) == [3, 6])
            #expect(try await Self.ack(gateway, "rm", member: "m", [3, 6]).status == .ok)
            let settled = try await gateway.get("/groups/rm").jsonObject()
            #expect(settled["checkpoint"] as? Int == 4, "3 and 4 done, 5 held behind the parked 2: \(settled)")
        }
        try await reopened.close()
    }
}

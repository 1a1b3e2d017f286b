import FluxCore
import FluxGateway
import Foundation
import NIOCore
import Testing

/// Consumer group members over WebSocket (`GET /groups/{name}/subscribe`), over real sockets: pushed leases within
/// the credit, settlements, hand-over when a member goes, refusals, and the group changing under a member.
@Suite struct GroupMemberChannelTests {
    /// A member connected to group `group` of `gateway`.
    static func member(_ gateway: TestGateway, _ group: String, name: String, credit: Int = 10) async throws -> PushChannelTestClient {
        try await PushChannelTestClient(port: gateway.port, query: "member=\(name)&credit=\(credit)", path: "/groups/\(group)/subscribe")
    }

    /// `(position, aggregate id, attempt)` of every event a member was sent, in order.
    static func deliveries(_ client: PushChannelTestClient) -> [(position: Int, aggregate: String, attempt: Int)] {
        client.texts.flatMap { text -> [(position: Int, aggregate: String, attempt: Int)] in
            guard let message = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], message["type"] as? String == "events" else {
                return []
            }
            return (message["events"] as? [[String: Any]] ?? []).map { item in
                let event = item["event"] as? [String: Any] ?? [:]
                return (event["position"] as? Int ?? -1, event["aggregate_id"] as? String ?? "", item["attempt"] as? Int ?? -1)
            }
        }
    }

    static func errors(_ client: PushChannelTestClient) -> [String] {
        client.texts.compactMap { text in
            guard let message = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], message["type"] as? String == "error" else {
                return nil
            }
            return message["error"] as? String
        }
    }

    @Test func eventsArePushedWithinTheCreditSettledAndHandedOverWhenAMemberGoes() async throws {
        try await withTestGateway { gateway in
            try await GroupEndpointTests.appendEvents(gateway, aggregates: 3, each: 2)
            #expect(try await gateway.request(.PUT, "/groups/rm", json: "{}").status == .created)
            let first = try await Self.member(gateway, "rm", name: "a", credit: 4)
            #expect(first.status == 101, "\(first.responseHead)")
            try await first.read(until: { _ in Self.deliveries(first).count == 4 })
            let leased = Self.deliveries(first)
            #expect(Set(leased.map(\.position)).count == 4, "four events, within the credit of 4: \(leased)")
            // Order per aggregate: an aggregate's second event never comes before its first.
            for aggregate in Set(leased.map(\.aggregate)) {
                let positions = leased.filter { $0.aggregate == aggregate }.map(\.position)
                #expect(positions == positions.sorted())
            }
            let second = try await Self.member(gateway, "rm", name: "b", credit: 10)
            try await second.read(until: { _ in Self.deliveries(second).count == 2 })
            #expect(Set(Self.deliveries(second).map(\.aggregate)).isDisjoint(with: leased.map(\.aggregate)), "never an aggregate another member holds")

            // a settles one of its events and goes; what it held goes to b at once, as a second attempt.
            let settled = leased[0].position
            try await first.send(text: #"{"type":"ack","positions":[\#(settled)]}"#)
            try await first.sendClose(code: 1000)
            try await first.readUntilClosed()
            await first.close()
            try await second.read(until: { _ in Self.deliveries(second).count == 5 })
            let handedOver = Self.deliveries(second).dropFirst(2)
            #expect(Set(handedOver.map(\.position)) == Set(leased.dropFirst().map(\.position)), "what a held, except what it settled")
            // The first of each aggregate's handed-over events counts a failed attempt (the member went with it); the
            // aggregate's later ones were released with it, not attempted.
            for aggregate in Set(handedOver.map(\.aggregate)) {
                #expect(handedOver.first { $0.aggregate == aggregate }?.attempt == 2, "\(Array(handedOver))")
            }
            try await second.send(text: #"{"type":"ack","positions":\#(Self.deliveries(second).map(\.position))}"#)
            try await SubscriptionHubTests.waitUntil { (try? await gateway.get("/groups/rm").jsonObject()["checkpoint"] as? Int) == 6 }
            #expect(second.closeCode == nil)
            await second.close()
        }
    }

    @Test func aRefusedSettlementIsAnsweredAndAMalformedMessageCloses1008() async throws {
        try await withTestGateway { gateway in
            try await GroupEndpointTests.appendEvents(gateway, aggregates: 1, each: 1)
            #expect(try await gateway.request(.PUT, "/groups/g", json: "{}").status == .created)
            let member = try await Self.member(gateway, "g", name: "m")
            try await member.read(until: { _ in Self.deliveries(member).count == 1 })
            try await member.send(text: #"{"type":"ack","positions":[99]}"#)
            try await member.read(until: { _ in Self.errors(member) == ["not_leased"] })
            #expect(member.closeCode == nil, "a refused settlement keeps the connection")
            try await member.send(text: #"{"type":"nack","position":1,"reason":"try later"}"#)
            try await member.read(until: { _ in Self.deliveries(member).count == 2 })
            #expect(Self.deliveries(member).last?.attempt == 2, "the rejected event comes again")
            for bad in [#"{"type":"ack","positions":[]}"#, #"{"type":"ack","positions":[0]}"#, #"{"type":"subscribe"}"#, "not json"] {
                let other = try await Self.member(gateway, "g", name: "x\(bad.count)")
                try await other.send(text: bad)
                try await other.readUntilClosed()
                #expect(other.closeCode == 1008, "\(bad)")
                await other.close()
            }
            await member.close()
            #expect(try await gateway.get("/groups/g").jsonObject()["checkpoint"] as? Int == 0, "nothing was acknowledged by mistake")
        }
    }

    @Test func refusalsBeforeTheUpgradeAndAResetUnderAMember() async throws {
        try await withTestGateway { gateway in
            try await GroupEndpointTests.appendEvents(gateway, aggregates: 1, each: 1)
            let unknown = try await Self.member(gateway, "none", name: "m")
            #expect(unknown.status == 404)
            await unknown.close()
            #expect(try await gateway.request(.PUT, "/groups/g", json: "{}").status == .created)
            let badCredit = try await PushChannelTestClient(port: gateway.port, query: "credit=0", path: "/groups/g/subscribe")
            #expect(badCredit.status == 400)
            await badCredit.close()
            #expect(try await gateway.get("/groups/g/subscribe").status == .badRequest, "no upgrade")

            let member = try await Self.member(gateway, "g", name: "m")
            try await member.read(until: { _ in Self.deliveries(member).count == 1 })
            #expect(try await gateway.request(.POST, "/groups/g/reset", json: #"{"position": 0}"#).status == .ok)
            try await member.readUntilClosed()
            #expect(member.closeCode == 1012, "the group changed under the member: \(member.closeReason)")
            await member.close()
            let again = try await Self.member(gateway, "g", name: "m")
            try await again.read(until: { _ in Self.deliveries(again).count == 1 })
            #expect(Self.deliveries(again).first?.position == 1, "after the reset, from the position")
            await again.close()
        }
    }
}

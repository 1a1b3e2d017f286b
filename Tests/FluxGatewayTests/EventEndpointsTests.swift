import FluxConsumer
import FluxCore
import FluxGateway
import Foundation
import NIOCore
import Testing

@Suite struct EventEndpointsTests {
    @Test func singleEventIsTheBarePayloadOrTheEnvelope() async throws {
        try await withTestGateway { gateway in
            let payload = #"{"account_id": "acc-1", "amount": 50}"#
            try await gateway.request(
                .POST, "/streams/acc-1", json: #"{"aggregate_name": "Account", "expected_version": -1, "events": [{"event_type": "account.AccountCredited", "payload": \#(payload), "event_id": "ev-1"}]}"#)
            let bare = try await gateway.get("/events/ev-1")
            #expect(bare.status == .ok)
            #expect(bare.text == payload)
            let envelope = try await gateway.get("/events/ev-1?envelope=true").jsonObject()
            #expect(envelope["event_id"] as? String == "ev-1")
            #expect(envelope["aggregate_id"] as? String == "acc-1")
            #expect((envelope["payload"] as? [String: Any])?["amount"] as? Int == 50)
            #expect((envelope["recorded_at"] as? String)?.hasSuffix("Z") == true)
            let missing = try await gateway.get("/events/nope")
            #expect(missing.status == .notFound)
            #expect(try missing.jsonObject()["error"] as? String == "not_found")
            let bad = try await gateway.get("/events/ev-1?envelope=maybe")
            #expect(bad.status == .badRequest)
        }
    }

    @Test func streamReadsInVersionOrderWithPaging() async throws {
        try await withTestGateway { gateway in
            for index in 0..<5 {
                try await gateway.append("s-1", events: [("t", "\(index)")])
                try await gateway.append("s-2", events: [("t", "\(index + 100)")])
            }
            let all = try await gateway.get("/streams/s-1").jsonObject()
            let events = try #require(all["events"] as? [[String: Any]])
            #expect(events.compactMap { $0["aggregate_version"] as? Int } == [0, 1, 2, 3, 4])
            #expect(events.compactMap { $0["payload"] as? Int } == [0, 1, 2, 3, 4])
            #expect(all["next"] == nil)
            let page = try await gateway.get("/streams/s-1?from_version=1&limit=2").jsonObject()
            #expect((page["events"] as? [[String: Any]])?.compactMap { $0["aggregate_version"] as? Int } == [1, 2])
            #expect((page["next"] as? String)?.hasSuffix("/streams/s-1?from_version=3&limit=2") == true)
            let past = try await gateway.get("/streams/s-1?from_version=9")
            #expect(past.status == .ok)
            #expect((try past.jsonObject()["events"] as? [Any])?.isEmpty == true)
            #expect(try await gateway.get("/streams/unknown").status == .notFound)
            #expect(try await gateway.get("/streams/s-1?from_version=-1").status == .badRequest)
            #expect(try await gateway.get("/streams/s-1?limit=x").status == .badRequest)
        }
    }

    @Test func healthReportsHeadAndEpoch() async throws {
        try await withTestGateway { gateway in
            try await gateway.append("a", events: [("t", "1"), ("t", "2")])
            let body = try await gateway.get("/health").jsonObject()
            #expect(body["status"] as? String == "ok")
            #expect(body["head"] as? Int == 2)
            #expect(body["epoch"] as? String == gateway.store.epoch.rawValue)
        }
    }
}

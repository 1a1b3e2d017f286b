import FluxCore
import Foundation
import Testing

/// `WebhookSinkDefinition`'s rules (`WebhookSinkStore.swift`): names, secrets, policy ranges, its group.
@Suite struct WebhookSinkStoreTests {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    @Test func aSinksGroupIsNamedApartAndLeasesLongerThanItsLongestChain() throws {
        let sink = try WebhookSinkDefinition(
            name: "billing", url: "https://example.com/", filter: EventFilter(aggregateNames: ["Account"]), secrets: [Self.secret],
            policy: WebhookSinkPolicy(concurrency: 4, timeout: .seconds(5), maximumAttempts: 9, backoff: .milliseconds(20), maximumBackoff: .seconds(7)))
        let group = try sink.groupDefinition(start: Position(3))
        #expect(group.name == "sink.billing" && group.filter == sink.filter && group.start == Position(3))
        #expect(group.policy.leaseTimeout == .seconds(30), "4 deliveries of 5 s one after another, and 10 s more")
        #expect(group.policy.maximumAttempts == 9 && group.policy.backoff == .milliseconds(20) && group.policy.maximumBackoff == .seconds(7))
        #expect(group.policy.holdsAggregateWhileParked, "order per aggregate holds while an event is parked")
        #expect(try ConsumerGroupDefinition(name: String(repeating: "x", count: 120)).name.count == 120)
        #expect(try WebhookSinkDefinition(name: String(repeating: "x", count: 120), url: "http://x/", secrets: [Self.secret]).groupDefinition(start: .start).name.count == 125)
    }

    @Test func aDefinitionRoundTripsThroughJSON() throws {
        let sink = try WebhookSinkDefinition(
            name: "a.b", url: "https://example.com/?q=ü", filter: EventFilter(eventTypes: ["x.Y"]), secrets: [Self.secret, "whsec_b2xkb2xkb2xkb2xkb2xk"],
            policy: WebhookSinkPolicy(concurrency: 2, timeout: .milliseconds(250)))
        let decoded = try JSONDecoder().decode(WebhookSinkDefinition.self, from: try JSONEncoder().encode(sink))
        #expect(decoded == sink)
    }

    @Test func badDefinitionsAreRefused() {
        let policies: [WebhookSinkPolicy] = [
            WebhookSinkPolicy(concurrency: 0), WebhookSinkPolicy(concurrency: 65), WebhookSinkPolicy(timeout: .milliseconds(99)),
            WebhookSinkPolicy(timeout: .seconds(61)), WebhookSinkPolicy(maximumAttempts: 0), WebhookSinkPolicy(maximumAttempts: 1001),
            WebhookSinkPolicy(backoff: .seconds(2), maximumBackoff: .seconds(1)), WebhookSinkPolicy(maximumBackoff: .seconds(3601)),
        ]
        for policy in policies {
            #expect(throws: StoreError.self, "\(policy)") { try WebhookSinkDefinition(name: "s", url: "http://x/", secrets: [Self.secret], policy: policy) }
        }
        for name in ["", "a b", String(repeating: "x", count: 121)] {
            #expect(throws: StoreError.self) { try WebhookSinkDefinition(name: name, url: "http://x/", secrets: [Self.secret]) }
        }
        for secrets in [[], [""], [Self.secret, Self.secret, Self.secret]] {
            #expect(throws: StoreError.self) { try WebhookSinkDefinition(name: "s", url: "http://x/", secrets: secrets) }
        }
        #expect(throws: StoreError.self) { try WebhookSinkDefinition(name: "s", url: "", secrets: [Self.secret]) }
    }
}

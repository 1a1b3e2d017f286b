@testable import FluxGateway
import Testing

@Suite struct AccessGrantTests {
    @Test func scopesGrantReadWriteAndMetrics() {
        let grant = AccessGrant(subject: "s", scopes: ["read", "write:Account", "write:Order", "metrics", "profile", "read:"])
        #expect(grant.read == .all)
        #expect(grant.write == .only(["Account", "Order"]))
        #expect(grant.metrics)
        #expect(grant.write.covers("Order"))
        #expect(!grant.write.covers("Invoice"))
    }

    @Test func noScopesGrantNothing() {
        let grant = AccessGrant(subject: "s", scopes: [String]())
        #expect(grant.read == .none && grant.write == .none && !grant.metrics)
        #expect(!grant.read.covers("Account"))
        #expect(!AccessGrant(subject: "s", scopes: ["metrics:x", "admin"]).metrics)
    }

    @Test func aWideScopeWinsOverANarrowOne() {
        #expect(AccessGrant(subject: "s", scopes: ["read:Account", "read"]).read == .all)
        #expect(AccessGrant(subject: "s", scopes: ["read", "read:Account"]).read == .all)
        #expect(AccessGrant.unrestricted.read == .all && AccessGrant.unrestricted.write == .all)
    }
}

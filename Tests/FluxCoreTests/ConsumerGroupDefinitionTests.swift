import FluxCore
import Foundation
import Testing

@Suite struct ConsumerGroupDefinitionTests {
    @Test(arguments: ["a", "billing.v2", "read-model_7", String(repeating: "x", count: 128)])
    func validNames(_ name: String) throws {
        #expect(try ConsumerGroupDefinition(name: name).name == name)
    }

    @Test(arguments: ["", "a b", "a/b", "grüße", "a\u{0}b", "../x", String(repeating: "x", count: 129), "%2F"])
    func invalidNamesAreRefusedWithTheRule(_ name: String) {
        #expect(throws: StoreError.self) { try ConsumerGroupDefinition(name: name) }
        do {
            _ = try ConsumerGroupDefinition(name: name)
        } catch let error as StoreError {
            #expect(error.code == .invalidDefinition)
            #expect(error.message.contains("1 to 128 characters"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func policiesOutOfRangeAreRefused() {
        let bad: [ConsumerGroupPolicy] = [
            ConsumerGroupPolicy(leaseTimeout: .milliseconds(999)),
            ConsumerGroupPolicy(leaseTimeout: .seconds(3601)),
            ConsumerGroupPolicy(maximumAttempts: 0),
            ConsumerGroupPolicy(maximumAttempts: 1001),
            ConsumerGroupPolicy(backoff: .seconds(2), maximumBackoff: .seconds(1)),
            ConsumerGroupPolicy(backoff: .seconds(-1)),
            ConsumerGroupPolicy(maximumBackoff: .seconds(3601)),
        ]
        for policy in bad {
            #expect(throws: StoreError.self, "\(policy)") { try ConsumerGroupDefinition(name: "g", policy: policy) }
        }
        #expect(throws: StoreError.self) { try ConsumerGroupDefinition(name: "g", start: Position(-1)) }
    }

    @Test func aFilterIsStoredAsSortedJSONAndReadBack() throws {
        let filter = EventFilter(aggregateNames: ["b", "a"], eventTypes: ["t"], aggregateIDs: [])
        let text = String(decoding: try JSONEncoder().encode(filter), as: UTF8.self)
        #expect(text.contains(#"["a","b"]"#))
        #expect(try JSONDecoder().decode(EventFilter.self, from: Data(text.utf8)) == filter)
        #expect(try JSONDecoder().decode(EventFilter.self, from: Data("{}".utf8)) == .all)
    }
}

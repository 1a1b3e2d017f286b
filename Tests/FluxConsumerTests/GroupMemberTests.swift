import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import Logging
import NIOCore
import Testing

/// `GroupMember`, the Swift client of consumer groups over WebSocket, against a real gateway: an AsyncSequence of
/// leased events settled with `ack()` / `nack(reason:)`, hand-over between members, and the gateway's refusals.
@Suite struct GroupMemberTests {
    static func withGroupGateway(_ body: (InMemoryEventStore, Int) async throws -> Void) async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let store = InMemoryEventStore()
        let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, logger: logger))
        let port = try await server.start()
        try await withTeardown({ await server.stop() }) {
            _ = try await store.createConsumerGroup(
                try ConsumerGroupDefinition(name: "billing", policy: ConsumerGroupPolicy(backoff: .milliseconds(10))))
            try await body(store, port)
        }
    }

    static func append(_ store: InMemoryEventStore, aggregates: Int, each: Int) async throws {
        for round in 0..<each {
            for aggregate in 0..<aggregates {
                try await store.append(AppendRequest(
                    aggregateID: "acc-\(aggregate)", aggregateName: "Account", expectedVersion: .any,
                    events: [NewEvent(eventType: "Credited", payload: EventPayload(trustedJSON: Array("{\"round\":\(round)}".utf8)))]))
            }
        }
    }

    @Test func leasedEventsComeInOrderPerAggregateAndAreSettled() async throws {
        try await Self.withGroupGateway { store, port in
            try await Self.append(store, aggregates: 3, each: 3)
            let member = try await GroupMember.connect(host: "127.0.0.1", port: port, group: "billing", member: "swift-1", credit: 5)
            var seen: [(position: Int64, aggregate: String, version: Int64, attempt: Int)] = []
            var rejectedOnce = false
            for try await leased in member {
                seen.append((leased.event.position.rawValue, leased.event.aggregateID, leased.event.version, leased.attempt))
                if leased.event.position == Position(2), !rejectedOnce {
                    rejectedOnce = true
                    try await leased.nack(reason: "not yet")
                    continue
                }
                try await leased.ack()
                if Set(seen.filter { $0.attempt >= 1 }.map(\.position)).count == 9, seen.contains(where: { $0.position == 2 && $0.attempt == 2 }) {
                    break
                }
            }
            #expect(seen.contains { $0.position == 2 && $0.attempt == 2 }, "the rejected event came again: \(seen)")
            for aggregate in ["acc-0", "acc-1", "acc-2"] {
                let versions = seen.filter { $0.aggregate == aggregate }.map(\.version)
                #expect(versions == versions.sorted(), "\(aggregate) in version order: \(versions)")
            }
            let record = try await store.consumerGroup(named: "billing")
            // The runtime saves its checkpoint after the last ack is processed; it may lag the loop by a moment.
            let deadline = ContinuousClock.now + .seconds(30)
            var checkpoint = record?.checkpoint ?? .start
            while checkpoint < Position(9), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                checkpoint = try await store.consumerGroup(named: "billing")?.checkpoint ?? .start
            }
            #expect(checkpoint == Position(9))
            await member.close()
        }
    }

    @Test func whatAMemberHeldGoesToAnotherWhenItCloses() async throws {
        try await Self.withGroupGateway { store, port in
            try await Self.append(store, aggregates: 1, each: 2)
            let first = try await GroupMember.connect(host: "127.0.0.1", port: port, group: "billing", member: "a", credit: 10)
            let held = try #require(try await first.nextEvent())
            #expect(held.event.position == Position(1) && held.attempt == 1)
            let second = try await GroupMember.connect(host: "127.0.0.1", port: port, group: "billing", member: "b", credit: 10)
            await first.close()
            let handedOver = try #require(try await second.nextEvent())
            #expect(handedOver.event.position == Position(1) && handedOver.attempt == 2)
            await second.close()
        }
    }

    @Test func anUnknownGroupIsRefusedAndAResetClosesWith1012() async throws {
        try await Self.withGroupGateway { store, port in
            await #expect(throws: PushChannelError.self) {
                _ = try await GroupMember.connect(host: "127.0.0.1", port: port, group: "nope")
            }
            do {
                _ = try await GroupMember.connect(host: "127.0.0.1", port: port, group: "nope")
            } catch let error as PushChannelError {
                #expect(error.refusedStatus == 404)
            }
            try await Self.append(store, aggregates: 1, each: 1)
            let member = try await GroupMember.connect(host: "127.0.0.1", port: port, group: "billing")
            _ = try #require(try await member.nextEvent())
            let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            let reset = try await connection.request(
                .POST, "/groups/billing/reset", headers: [("Content-Type", "application/json")], body: ByteBuffer(string: #"{"position": 0}"#))
            #expect(reset.status == .ok)
            await connection.close()
            #expect(try await member.nextEvent() == nil)
            #expect(await member.closeCode == 1012)
            await member.close()
        }
    }
}

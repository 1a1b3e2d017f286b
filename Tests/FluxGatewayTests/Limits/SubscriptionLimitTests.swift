import FluxCore
@testable import FluxGateway
import FluxTesting
import Foundation
import Testing

/// A gateway at its maximum of subscriptions closes a new WebSocket with 1013 and answers SSE with 503; a slot
/// comes back when a subscriber leaves.
@Suite struct SubscriptionLimitTests {
    @Test func overTheLimitWebSocketsGet1013AndSSEGets503() async throws {
        try await withTestGateway(await TestGateway.start { $0.maxSubscriptions = 2 }) { gateway in
            try await append(gateway.store, "s")
            let first = try await PushChannelTestClient(port: gateway.port, query: "after=0")
            let second = try await PushChannelTestClient(port: gateway.port, query: "after=0")
            try await first.read(untilPositions: 1)
            try await second.read(untilPositions: 1)

            let third = try await PushChannelTestClient(port: gateway.port, query: "after=0")
            #expect(third.status == 101)
            try await third.readUntilClosed()
            #expect(third.closeCode == 1013)
            #expect(third.closeReason.contains("maximum of 2 subscriptions"))
            await third.close()
            let sse = try await gateway.get("/events/subscribe?after=0", headers: [("Accept", "text/event-stream")])
            #expect(sse.status == .serviceUnavailable)
            #expect(sse.headers.first(name: "Retry-After") != nil)

            // The first subscriber leaves: its slot is free again.
            try await first.sendClose()
            try await first.readUntilClosed()
            await first.close()
            var reopened: PushChannelTestClient?
            for _ in 0..<50 {
                let client = try await PushChannelTestClient(port: gateway.port, query: "after=0")
                try await client.read(untilPositions: 1, timeout: .seconds(5))
                if client.positions == [1] {
                    reopened = client
                    break
                }
                await client.close()
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(reopened != nil, "a slot came back after a subscriber left")
            await reopened?.close()
            await second.close()
        }
    }

    @Test func slotsAreCountedAndGivenBackOnce() {
        let slots = SubscriptionSlots(maximum: 1)
        var slot = slots.take()
        #expect(slot != nil && slots.take() == nil && slots.count == 1)
        slot?.release()
        slot?.release()
        #expect(slots.count == 0)
        slot = slots.take()
        #expect(slots.count == 1)
        slot = nil
        #expect(slots.count == 0, "a dropped slot is given back")
        #expect(SubscriptionSlots(maximum: nil).take() != nil)
    }
}

import FluxCore
@testable import FluxGateway
import FluxTesting
import Foundation
import Testing

/// Pages by bytes as well as by count: large events make pages of fewer events, and nothing is skipped.
@Suite struct PageSizerTests {
    func event(_ position: Int64, payloadBytes: Int) -> RecordedEvent {
        RecordedEvent(
            eventID: "e\(position)", position: Position(position), aggregateID: "a", aggregateName: "A", version: position - 1,
            eventType: "t", recordedAtMilliseconds: 0, payload: EventPayload(trustedJSON: Array(("\"" + String(repeating: "x", count: payloadBytes) + "\"").utf8))
        )
    }

    @Test func cutsAPageToItsBudgetAndLearnsTheEventSize() {
        let sizer = PageSizer(byteBudget: 100_000, initialEstimate: 100)
        #expect(sizer.count(limit: 1000) == 1000)
        let big = (1...1000).map { event(Int64($0), payloadBytes: 8192) }
        let (page, cut) = sizer.fit(big)
        #expect(cut && page.count == 11, "\(page.count) events of 8 KiB in 100,000 bytes")
        #expect(page.map(\.position) == (1...11).map { Position(Int64($0)) }, "a prefix, in order")
        for _ in 0..<4 { _ = sizer.fit(page) }
        #expect((11...12).contains(sizer.count(limit: 1000)), "asks for what fits: \(sizer.count(limit: 1000))")
        #expect(sizer.count(limit: 5) == 5)
    }

    @Test func keepsOneEventLargerThanTheBudget() {
        let sizer = PageSizer(byteBudget: 1000)
        let (page, cut) = sizer.fit([event(1, payloadBytes: 5000), event(2, payloadBytes: 5000)])
        #expect(page.count == 1 && cut)
        #expect(sizer.count(limit: 100) == 1)
        #expect(sizer.fit([]).page.isEmpty)
    }

    /// Through the feed: 8 KiB events, `limit=1000`, a 64 KiB budget: each page holds what fits, says `next` after
    /// its last event, and following `next` reads every event once.
    @Test func theFeedFollowsPagesCutByBytesWithoutSkipping() async throws {
        try await withTestGateway(await TestGateway.start { $0.maxPageBytes = 64 * 1024 }) { gateway in
            try await append(gateway.store, "big", count: 100, payloadSize: 8192)
            var target = "/events?after=0&limit=1000&embed=payload"
            var positions: [Int] = []
            var pages = 0
            while pages < 100 {
                let body = try await gateway.get(target).jsonObject()
                let events = try #require(body["events"] as? [[String: Any]])
                if events.isEmpty { break }
                pages += 1
                #expect(events.count <= 8, "a page of \(events.count) events of 8 KiB in a 64 KiB budget")
                positions += events.compactMap { $0["position"] as? Int }
                let next = try #require(body["next"] as? String)
                let path = try #require(next.range(of: "/events"))
                target = String(next[path.lowerBound...])
            }
            #expect(positions == Array(1...100), "every event once, in order")
            #expect(pages >= 13)
        }
    }
}

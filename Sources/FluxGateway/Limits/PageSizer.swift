import FluxCore
import Synchronization

/// Sizes the gateway's reads from the store by bytes as well as by count, so that one page (a feed response, a
/// catch-up frame, a live batch) holds about ``byteBudget`` of events whatever their size: 1,000 events of 8 KiB
/// are an 8 MiB page, 1,000 of 1 MiB a gigabyte.
///
/// The store reads by count, so the sizer learns the events' average encoded size from the pages it sees and
/// asks for as many as fit; a page read before it had learned (or with a few big events among small ones) is
/// cut to the budget, keeping at least one event. A page cut short, or read with a smaller count than asked for,
/// says so: it continues after its last event like a full page (nothing is skipped).
final class PageSizer: Sendable {
    /// Bytes of envelope around a payload (ids, names, positions, timestamps, url), about.
    static let envelopeOverhead = 320

    /// What a page of events may take, about (at least one event is always read).
    let byteBudget: Int
    /// Running estimate of one event's encoded size.
    private let bytesPerEvent: Atomic<Int>

    init(byteBudget: Int, initialEstimate: Int = 1024) {
        self.byteBudget = max(1, byteBudget)
        self.bytesPerEvent = Atomic(max(1, initialEstimate))
    }

    /// How many events to read for a page of at most `limit` events.
    func count(limit: Int) -> Int {
        max(1, min(limit, byteBudget / max(1, bytesPerEvent.load(ordering: .relaxed))))
    }

    /// Learns from `events` (just read) and returns the longest prefix within the budget (at least one event), and
    /// whether it cut any.
    func fit(_ events: [RecordedEvent]) -> (page: [RecordedEvent], cut: Bool) {
        guard !events.isEmpty else { return (events, false) }
        var total = 0
        var kept = events.count
        for (index, event) in events.enumerated() {
            total += event.payload.bytes.count + Self.envelopeOverhead
            if total > byteBudget, index > 0 {
                kept = index
                break
            }
        }
        let observed = events.prefix(kept).reduce(0) { $0 + $1.payload.bytes.count } / kept + Self.envelopeOverhead
        // A moving average that follows a change of event sizes within a few pages.
        let previous = bytesPerEvent.load(ordering: .relaxed)
        bytesPerEvent.store(max(1, (previous + 3 * observed) / 4), ordering: .relaxed)
        return kept == events.count ? (events, false) : (Array(events.prefix(kept)), true)
    }

    /// Reads a page of at most `limit` events after `position`: `continues` is true when more may follow right
    /// after its last event (it was full by count, or cut by bytes), false when it holds every match up to the
    /// store's head at the time of the read.
    func read(
        from store: any EventReader, after position: Position, limit: Int, filter: EventFilter
    ) async throws -> (page: [RecordedEvent], continues: Bool) {
        let asked = count(limit: limit)
        let events = try await store.read(after: position, limit: asked, filter: filter)
        let (page, cut) = fit(events)
        return (page, cut || events.count == asked)
    }
}

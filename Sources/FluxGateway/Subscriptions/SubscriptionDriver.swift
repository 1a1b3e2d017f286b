import FluxCore
import FluxWire
import NIOCore

/// Drives one subscriber whatever its transport: reads the backlog from the store at the subscriber's
/// own pace (each write waits for the transport), announces `caught_up` once, joins the hub's live tail,
/// and when it falls behind or the hub lags, goes back to the store from where delivery stopped.
struct SubscriptionDriver: Sendable {
    let store: any EventStore
    let hub: SubscriptionHub
    let filter: EventFilter
    let baseURL: String
    let pageSize: Int
    /// Sizes catch-up pages by bytes as well (large events make pages of fewer events).
    let pages: PageSizer

    /// How a transport sends what the driver reads itself (catch-up); each call returns once the bytes are
    /// accepted by a transport that is not over its high-water mark.
    struct Transport: Sendable {
        /// Sends one page the subscriber read itself (encoded for this subscriber only).
        var sendPage: @Sendable ([RecordedEvent], EnvelopeEncoder) async throws -> Void
        var sendCaughtUp: @Sendable (Position) async throws -> Void
        var sink: any SubscriberSink
    }

    /// Runs until cancelled or the transport fails.
    func run(after start: Position, transport: Transport) async throws {
        let id = hub.makeSubscriberID()
        defer { hub.leave(id: id) }
        let encoder = EnvelopeEncoder(baseURL: baseURL)
        var position = start
        var caughtUpSent = false
        while !Task.isCancelled {
            // Catch up from the store, page by page: while a full page is encoded and handed to the transport,
            // the next one is read (one page ahead at most; the one after waits until the transport took this one).
            var (head, page, continues) = try await headAndPage(after: position)
            while true {
                try Task.checkCancellation()
                guard let last = page.last else {
                    position = max(position, head)
                    break
                }
                hub.metrics.recordPageFromStore(through: last.position, head: head)
                guard continues else {
                    try await transport.sendPage(page, encoder)
                    position = max(position, head, last.position)
                    break
                }
                async let following = headAndPage(after: last.position)
                try await transport.sendPage(page, encoder)
                position = last.position
                (head, page, continues) = try await following
            }
            if !caughtUpSent {
                try await transport.sendCaughtUp(position)
                caughtUpSent = true
            }
            switch hub.join(id: id, position: position, filter: filter, baseURL: baseURL, sink: transport.sink) {
            case .joined:
                position = await hub.detached(id: id, joinedAt: position)
            case .behind(let dispatched):
                if dispatched <= position {
                    // The hub is not running yet (or stopping): poll the store again shortly.
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        }
    }

    /// The store's head, then a page after `position`: the page sees at least everything up to that head.
    /// `continues`: more may follow right after the page's last event.
    private func headAndPage(after position: Position) async throws -> (head: Position, page: [RecordedEvent], continues: Bool) {
        let head = try await store.head()
        let (page, continues) = try await pages.read(from: store, after: position, limit: pageSize, filter: filter)
        return (head, page, continues)
    }
}

import FluxCore
import FluxWire
import NIOCore
import NIOHTTP1

/// Feeds a live subscriber over a server-sent-events response.
final class ServerSentEventsSink: SubscriberSink {
    let writer: BoundedOutboundWriter
    let names: ServerSentEvents.EventNames

    init(writer: BoundedOutboundWriter, names: ServerSentEvents.EventNames) {
        self.writer = writer
        self.names = names
    }

    func offer(_ batch: DeliveryBatch, writes: OutboundWriteBatch) -> Bool {
        writer.offer(batch.serverSentEvents(names: names), events: batch.events.count, batch: writes)
    }
}

extension GatewayRouter {
    /// `GET /events/subscribe` with `Accept: text/event-stream`: the push channel's fallback as server-sent
    /// events (README "Wire protocol" → "Server-sent events").
    func serverSentEvents(_ request: GatewayRequest, grant: AccessGrant) async throws -> GatewayResponse {
        guard let hub else {
            return .error(.serviceUnavailable, "unavailable", "subscriptions are not enabled on this server")
        }
        var query = try SubscriptionQuery(request, lastEventID: request.headers.first(name: "Last-Event-ID"))
        query.filter = try restrict(query.filter, to: grant)
        let names = try Self.eventNames(request)
        guard let slot = subscriptionSlots.take() else {
            return .error(
                .serviceUnavailable, "overloaded",
                "the gateway has its maximum of \(subscriptionSlots.maximum ?? 0) subscriptions; retry later or on another node",
                headers: ["Retry-After": "5"]
            )
        }
        if let mismatch = try await query.mismatch(with: store) {
            return .error(.conflict, "epoch_mismatch", mismatch.message)
        }
        let driver = SubscriptionDriver(
            store: store, hub: hub, filter: query.filter, baseURL: baseURL(for: request), pageSize: configuration.subscriptionPageSize,
            pages: subscriptionPages
        )
        let after = query.after
        let keepAlive = configuration.pingInterval
        let expiresAt = grant.expiresAt
        let headers: HTTPHeaders = [
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
        ]
        let metrics = self.metrics
        return .streaming(headers: headers) { writer in
            defer { slot.release() }
            metrics.subscriberJoined(.serverSentEvents)
            defer { metrics.subscriberLeft(.serverSentEvents) }
            let sink = ServerSentEventsSink(writer: writer, names: names)
            let transport = SubscriptionDriver.Transport(
                sendPage: { page, encoder in
                    var buffer = ByteBuffer()
                    buffer.reserveCapacity(page.reduce(0) { $0 + $1.payload.bytes.count + 400 })
                    for event in page { EncodedEvent(event, encoder: encoder).writeServerSentEvent(names: names, into: &buffer) }
                    try await writer.write(buffer, events: page.count)
                },
                sendCaughtUp: { head in
                    var buffer = ByteBuffer()
                    ServerSentEvents.writeCaughtUp(head: head, into: &buffer)
                    try await writer.write(buffer)
                },
                sink: sink
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await driver.run(after: after, transport: transport) }
                group.addTask {
                    // A comment line now and then keeps proxies from closing an idle stream.
                    while true {
                        try await Task.sleep(for: keepAlive)
                        _ = writer.offer(ServerSentEvents.keepAlive)
                    }
                }
                if let expiresAt {
                    // The stream ends when the access token expires; EventSource reconnects (with a fresh token).
                    group.addTask { try await Task.sleep(until: expiresAt) }
                }
                try await group.next()
                group.cancelAll()
            }
        }
    }
}

extension GatewayRouter {
    /// `event_names=type` (the default: each event named after its event type) or `event_names=message` (no names:
    /// every event reaches `EventSource.onmessage`).
    static func eventNames(_ request: GatewayRequest) throws(BadRequest) -> ServerSentEvents.EventNames {
        guard let text = request.queryValue("event_names") else { return .type }
        guard let names = ServerSentEvents.EventNames(rawValue: text) else {
            throw BadRequest("event_names must be type (events named after their event type) or message (every event a plain message), got \"\(text.prefix(40))\"")
        }
        return names
    }
}

import FluxCore

/// Where a live subscriber's events go: the transport side of a subscription (server-sent events,
/// WebSocket). Called by the hub from its task; must not block.
public protocol SubscriberSink: AnyObject, Sendable {
    /// Queues a batch for the wire. Returns `false`, queuing nothing, when the subscriber already has more
    /// outbound bytes pending than its high-water mark: it then falls behind and catches up from the store
    /// at its own pace. Returns `false` too when the connection is gone.
    /// The write itself goes into `writes`, which the hub submits once per event loop after the dispatch.
    func offer(_ batch: DeliveryBatch, writes: OutboundWriteBatch) -> Bool
}

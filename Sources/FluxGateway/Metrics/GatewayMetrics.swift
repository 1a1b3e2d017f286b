import FluxCore
import NIOHTTP1
import Prometheus
import Synchronization

/// One gateway's metrics, in its own Prometheus registry, rendered by `GET /metrics`.
///
/// Each ``GatewayServer`` owns one, so several servers in one process (tests) keep separate figures, and the
/// library never touches the process-wide `MetricsSystem`. This is the one place that knows metric names.
/// Every metric object is made once (labelled ones on first use, then cached), so recording costs an atomic
/// add, or a short lock for a histogram; hooks on hot paths count per batch, never per event.
public final class GatewayMetrics: Sendable {
    /// The registry `/metrics` renders; an application may register its own metrics in it.
    public let registry: PrometheusCollectorRegistry

    /// A swift-metrics factory over ``registry``: an application that calls
    /// `MetricsSystem.bootstrap(server.metrics.factory)` once at startup gets its own swift-metrics
    /// (and its libraries') in the gateway's `/metrics` too.
    public var factory: PrometheusMetricsFactory { PrometheusMetricsFactory(registry: registry) }

    /// How a subscriber is connected: the `transport` label of `fluxgate_subscribers`.
    public enum Transport: Sendable {
        case webSocket
        case serverSentEvents
    }

    /// A store call timed in `fluxgate_store_operation_duration_seconds`.
    enum StoreOperation: Sendable {
        case append, read, readStream, readEvent, listStreams
    }

    /// The `route`, `method` and `status` labels of one HTTP series.
    private struct RequestKey: Hashable {
        var route: HTTPRoute
        var method: String
        var status: UInt
    }

    private struct RequestSeries {
        var count: Counter
        var duration: DurationHistogram
    }

    // HTTP
    private let requestSeries = Mutex<[RequestKey: RequestSeries]>([:])
    private let routeDurations = Mutex<[HTTPRoute: DurationHistogram]>([:])
    private let connections: Gauge
    private let connectionsRefused: Counter
    // Store
    private let appends: Counter
    private let appendedEvents: Counter
    private let appendConflicts: Counter
    private let headPosition: Gauge
    /// The highest head seen; the gauge is set under the same lock, so it never moves back.
    private let head = Mutex<Int64>(0)
    private let appendDuration: DurationHistogram
    private let readDuration: DurationHistogram
    private let readStreamDuration: DurationHistogram
    private let readEventDuration: DurationHistogram
    private let listStreamsDuration: DurationHistogram
    // Subscribers
    private let webSocketSubscribers: Gauge
    private let serverSentEventsSubscribers: Gauge
    private let deliveries: Counter
    private let bytesOut: Counter
    private let fellBehind: Counter
    private let ackedLag: ValueHistogram
    private let deliveredLag: ValueHistogram
    private let webSocketCloses = Mutex<[String: Counter]>([:])
    // Consumer groups, by group name (made on first use, removed with the group)
    private let groupSeries = Mutex<[String: GroupSeries]>([:])
    // Webhook sinks, by sink name (made on first delivery, removed with the sink)
    private let sinkSeries = Mutex<[String: SinkSeries]>([:])
    // Graphite (made when a reporter starts, so a gateway that pushes nowhere shows none)
    private let graphiteDropped = Mutex<Counter?>(nil)

    private struct GroupSeries {
        var lag: Gauge
        var inFlight: Gauge
        var members: Gauge
        var parked: Gauge
        var acknowledged: Counter
        var redeliveries: Counter
    }

    private struct SinkSeries {
        var outcomes: [String: Counter] = [:]
        var duration: DurationHistogram
    }

    /// Latency buckets of webhook deliveries, in seconds (a delivery's timeout is at most a minute).
    static let sinkBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60),
    ]

    /// Latency buckets of HTTP requests, in seconds (a long-poll may wait up to a minute).
    static let requestBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
        .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]
    /// Latency buckets of store calls, in seconds.
    static let storeBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(5),
    ]
    /// Lag buckets, in events.
    static let lagBuckets: [Double] = [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "fluxgate", metricName: metric, unitName: unit, helpText: help)
        }
        connections = registry.makeGauge(descriptor: name("connections", "", "Open client connections."))
        connectionsRefused = registry.makeCounter(
            descriptor: name("connections_refused", "total", "Connections refused by a connection limit (answered 503)."))

        appends = registry.makeCounter(descriptor: name("appends", "total", "Appends stored through the gateway."))
        appendedEvents = registry.makeCounter(descriptor: name("appended_events", "total", "Events stored through the gateway's appends."))
        appendConflicts = registry.makeCounter(
            descriptor: name("append_conflicts", "total", "Appends refused because the stream's version was not the expected one."))
        headPosition = registry.makeGauge(descriptor: name("head_position", "", "The highest global position the gateway has seen in the store."))
        let storeDuration = name("store_operation_duration", "seconds", "Event store call latency by operation.")
        func storeHistogram(_ operation: String) -> DurationHistogram {
            registry.makeDurationHistogram(descriptor: storeDuration, labels: [("operation", operation)], buckets: Self.storeBuckets)
        }
        appendDuration = storeHistogram("append")
        readDuration = storeHistogram("read")
        readStreamDuration = storeHistogram("read_stream")
        readEventDuration = storeHistogram("read_event")
        listStreamsDuration = storeHistogram("list_streams")

        let subscribers = name("subscribers", "", "Subscribers connected, by transport.")
        webSocketSubscribers = registry.makeGauge(descriptor: subscribers, labels: [("transport", "websocket")])
        serverSentEventsSubscribers = registry.makeGauge(descriptor: subscribers, labels: [("transport", "sse")])
        deliveries = registry.makeCounter(descriptor: name("deliveries", "total", "Events handed to subscribers' connections (each subscriber counts)."))
        bytesOut = registry.makeCounter(descriptor: name("subscriber_bytes_out", "total", "Bytes written to subscribers (frames, SSE streams)."))
        fellBehind = registry.makeCounter(
            descriptor: name("subscriber_fell_behind", "total", "Times a live subscriber fell behind and went back to reading the store."))
        let lag = name("subscriber_lag", "events", "Head position minus a subscriber's position, observed at each ack (acked) and each page read from the store (delivered).")
        ackedLag = registry.makeValueHistogram(descriptor: lag, labels: [("position", "acked")], buckets: Self.lagBuckets)
        deliveredLag = registry.makeValueHistogram(descriptor: lag, labels: [("position", "delivered")], buckets: Self.lagBuckets)
    }

    // MARK: HTTP

    /// Counts one answered request and its latency, by route template (never the raw path). `duration` is `nil` for
    /// a request answered before it arrived whole (408, 413, 431, malformed): it is counted, not timed.
    func recordRequest(route: HTTPRoute, method: HTTPMethod, status: HTTPResponseStatus, duration: Duration?) {
        let key = RequestKey(route: route, method: Self.label(for: method), status: status.code)
        let series = requestSeries.withLock { cache in
            if let series = cache[key] { return series }
            let series = RequestSeries(
                count: registry.makeCounter(
                    descriptor: MetricNameDescriptor(
                        namespace: "fluxgate", metricName: "http_requests", unitName: "total",
                        helpText: "HTTP requests answered, by route template, method and status."),
                    labels: [("route", route.rawValue), ("method", key.method), ("status", String(key.status))]
                ),
                duration: routeDuration(route)
            )
            cache[key] = series
            return series
        }
        series.count.increment()
        if let duration { series.duration.record(duration) }
    }

    private func routeDuration(_ route: HTTPRoute) -> DurationHistogram {
        routeDurations.withLock { cache in
            if let histogram = cache[route] { return histogram }
            let histogram = registry.makeDurationHistogram(
                descriptor: MetricNameDescriptor(
                    namespace: "fluxgate", metricName: "http_request_duration", unitName: "seconds",
                    helpText: "HTTP request latency by route template, until the response head (a WebSocket handshake, an SSE stream's start)."),
                labels: [("route", route.rawValue)], buckets: Self.requestBuckets
            )
            cache[route] = histogram
            return histogram
        }
    }

    /// The `method` label: the standard methods by name, anything else as `other` (bounded cardinality).
    static func label(for method: HTTPMethod) -> String {
        switch method {
        case .GET: "GET"
        case .HEAD: "HEAD"
        case .POST: "POST"
        case .PUT: "PUT"
        case .DELETE: "DELETE"
        case .PATCH: "PATCH"
        case .OPTIONS: "OPTIONS"
        default: "other"
        }
    }

    /// A connection was admitted.
    func connectionOpened() { connections.increment() }
    /// An admitted connection closed.
    func connectionClosed() { connections.decrement() }
    /// A connection was refused by a connection limit.
    func connectionRefused() { connectionsRefused.increment() }

    // MARK: Store

    /// Records one store call's latency.
    func recordStoreCall(_ operation: StoreOperation, duration: Duration) {
        switch operation {
        case .append: appendDuration.record(duration)
        case .read: readDuration.record(duration)
        case .readStream: readStreamDuration.record(duration)
        case .readEvent: readEventDuration.record(duration)
        case .listStreams: listStreamsDuration.record(duration)
        }
    }

    /// Counts a stored append of `events` events.
    func recordAppend(events: Int, result: AppendResult) {
        appends.increment()
        // A retry answered from what was stored before stored nothing new.
        if !result.isReplay { appendedEvents.increment(by: Int64(events)) }
        observeHead(result.lastPosition)
    }

    /// Counts an append refused with a version conflict.
    func recordConflict() { appendConflicts.increment() }

    /// Notes a head position read from the store or returned by an append; the gauge only moves forward.
    func observeHead(_ position: Position) {
        head.withLock { head in
            guard position.rawValue > head else { return }
            head = position.rawValue
            headPosition.set(to: Double(position.rawValue))
        }
    }

    /// The highest head position seen.
    var headSeen: Position { Position(head.withLock { $0 }) }

    // MARK: Subscribers

    /// A subscriber started (its subscription runs).
    func subscriberJoined(_ transport: Transport) { gauge(transport).increment() }
    /// A subscriber's subscription ended.
    func subscriberLeft(_ transport: Transport) { gauge(transport).decrement() }

    private func gauge(_ transport: Transport) -> Gauge {
        switch transport {
        case .webSocket: webSocketSubscribers
        case .serverSentEvents: serverSentEventsSubscribers
        }
    }

    /// Bytes handed to a subscriber's connection, carrying `events` events (0 for control messages).
    func recordSent(bytes: Int, events: Int) {
        bytesOut.increment(by: Int64(bytes))
        if events > 0 { deliveries.increment(by: Int64(events)) }
    }

    /// A live subscriber fell behind (went back to the store).
    func recordFellBehind() { fellBehind.increment() }

    /// A subscriber acknowledged `position`: its lag is the head minus that.
    func recordAck(_ position: Position) {
        ackedLag.record(Double(max(0, headSeen.rawValue - position.rawValue)))
    }

    /// A subscriber was sent a page read from the store up to `position`, while the store's head was `head`.
    func recordPageFromStore(through position: Position, head: Position) {
        deliveredLag.record(Double(max(0, max(head, headSeen).rawValue - position.rawValue)))
    }

    /// Counts one WebSocket connection's close by its close code (RFC 6455 §7.4): the code of the Close frame
    /// the gateway sent (its own, or the one it echoed), 1005 for a Close without a code, 1006 for a connection
    /// that ended without a closing handshake. Codes outside 1000–1015 and the gateway's own 4400/4409 are
    /// counted as `other`.
    func recordWebSocketClose(code: UInt16) {
        let label = (1000...1015).contains(code) || code == 4400 || code == 4409 ? String(code) : "other"
        let counter = webSocketCloses.withLock { cache in
            if let counter = cache[label] { return counter }
            let counter = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "fluxgate", metricName: "websocket_closes", unitName: "total",
                    helpText: "Push-channel WebSocket connections closed, by close code."),
                labels: [("code", label)]
            )
            cache[label] = counter
            return counter
        }
        counter.increment()
    }

    // MARK: Consumer groups

    /// A group's state when `/metrics` is read: lag (head − checkpoint), leased events, members, parked events.
    /// `running` is false for a group no runtime works for on this node (its in-flight and members are 0 here).
    func recordGroup(_ group: String, lag: Int64, inFlight: Int, members: Int, parked: Int) {
        let series = self.series(ofGroup: group)
        series.lag.set(Double(max(0, lag)))
        series.inFlight.set(Double(inFlight))
        series.members.set(Double(members))
        series.parked.set(Double(parked))
    }

    /// Counts events a group's members acknowledged.
    func recordGroupAcknowledged(_ group: String, count: Int) {
        guard count > 0 else { return }
        series(ofGroup: group).acknowledged.increment(by: Int64(count))
    }

    /// Counts events a group handed out again (after a lapsed lease, a member gone or a rejection).
    func recordGroupRedeliveries(_ group: String, count: Int) {
        guard count > 0 else { return }
        series(ofGroup: group).redeliveries.increment(by: Int64(count))
    }

    /// Removes the series of groups that no longer exist.
    func forgetGroups(except kept: Set<String>) {
        let gone: [GroupSeries] = groupSeries.withLock { cache in
            let names = cache.keys.filter { !kept.contains($0) }
            return names.compactMap { cache.removeValue(forKey: $0) }
        }
        for series in gone {
            for gauge in [series.lag, series.inFlight, series.members, series.parked] { registry.unregisterGauge(gauge) }
            registry.unregisterCounter(series.acknowledged)
            registry.unregisterCounter(series.redeliveries)
        }
    }

    private func series(ofGroup group: String) -> GroupSeries {
        groupSeries.withLock { cache in
            if let series = cache[group] { return series }
            func descriptor(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
                MetricNameDescriptor(namespace: "fluxgate", metricName: metric, unitName: unit, helpText: help)
            }
            let labels = [("group", group)]
            let series = GroupSeries(
                lag: registry.makeGauge(descriptor: descriptor("group_lag", "events", "A consumer group's head position minus its checkpoint."), labels: labels),
                inFlight: registry.makeGauge(
                    descriptor: descriptor("group_in_flight", "events", "Events a consumer group has leased to its members on this node."), labels: labels),
                members: registry.makeGauge(descriptor: descriptor("group_members", "", "A consumer group's members on this node."), labels: labels),
                parked: registry.makeGauge(
                    descriptor: descriptor("group_parked", "events", "Events a consumer group parked after its attempts, awaiting replay."), labels: labels),
                acknowledged: registry.makeCounter(
                    descriptor: descriptor("group_acknowledged", "total", "Events a consumer group's members acknowledged."), labels: labels),
                redeliveries: registry.makeCounter(
                    descriptor: descriptor("group_redeliveries", "total", "Events a consumer group handed out again after a failed attempt."), labels: labels)
            )
            cache[group] = series
            return series
        }
    }

    // MARK: Webhook sinks

    /// Counts one delivery attempt of a sink by its outcome (`delivered`, `gone`, `http_status`, `timeout`,
    /// `connection`, `tls`, `other`) and times it.
    func recordSinkDelivery(_ sink: String, outcome: String, duration: Duration) {
        let (counter, histogram) = sinkSeries.withLock { cache -> (Counter, DurationHistogram) in
            func descriptor(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
                MetricNameDescriptor(namespace: "fluxgate", metricName: metric, unitName: unit, helpText: help)
            }
            var series = cache[sink] ?? SinkSeries(
                duration: registry.makeDurationHistogram(
                    descriptor: descriptor("sink_delivery_duration", "seconds", "How long a webhook sink's delivery attempts took, whatever their outcome."),
                    labels: [("sink", sink)], buckets: Self.sinkBuckets))
            let counter = series.outcomes[outcome] ?? registry.makeCounter(
                descriptor: descriptor("sink_deliveries", "total", "A webhook sink's delivery attempts, by outcome."),
                labels: [("sink", sink), ("outcome", outcome)])
            series.outcomes[outcome] = counter
            cache[sink] = series
            return (counter, series.duration)
        }
        counter.increment()
        histogram.record(duration)
    }

    /// Removes the series of sinks that no longer exist.
    func forgetSinks(except kept: Set<String>) {
        let gone: [SinkSeries] = sinkSeries.withLock { cache in
            let names = cache.keys.filter { !kept.contains($0) }
            return names.compactMap { cache.removeValue(forKey: $0) }
        }
        for series in gone {
            for counter in series.outcomes.values { registry.unregisterCounter(counter) }
            registry.unregisterDurationHistogram(series.duration)
        }
    }

    // MARK: Graphite

    /// Registers `fluxgate_graphite_dropped_snapshots_total` (at 0), once: ``GraphiteReporter`` calls it when it starts.
    func enableGraphiteMetrics() { _ = graphiteDroppedCounter() }

    /// Counts a snapshot the Graphite reporter dropped whole: carbon unreachable, or slower than the snapshots come.
    func recordGraphiteDroppedSnapshot() { graphiteDroppedCounter().increment() }

    private func graphiteDroppedCounter() -> Counter {
        graphiteDropped.withLock { counter in
            if let counter { return counter }
            let made = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "fluxgate", metricName: "graphite_dropped_snapshots", unitName: "total",
                    helpText: "Metrics snapshots not pushed to Graphite: carbon unreachable, or its socket's backlog past the bound."))
            counter = made
            return made
        }
    }

    // MARK: Exposition

    /// The Prometheus text exposition format's content type (version 0.0.4).
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Every metric in the Prometheus text format.
    public func exposition() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 * 1024)
        registry.emit(into: &bytes)
        return bytes
    }
}

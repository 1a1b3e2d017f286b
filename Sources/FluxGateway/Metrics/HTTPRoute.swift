/// The route template a request addressed: the `route` label of the HTTP metrics. Templates, never raw paths,
/// so the label's cardinality stays bounded whatever clients send.
///
/// Mirrors the dispatch in `GatewayRouter.dispatch(_:)`: a route added there belongs here too (until then it
/// is counted as `other`).
enum HTTPRoute: String, Hashable, Sendable, CaseIterable {
    case events = "/events"
    case event = "/events/{id}"
    case subscribe = "/events/subscribe"
    case streams = "/streams"
    case stream = "/streams/{aggregate_id}"
    case health = "/health"
    case metrics = "/metrics"
    /// The web UI: `/` and everything under `/ui/`.
    case webUI = "/ui"
    /// No endpoint (404) or a malformed path (400).
    case other = "other"

    init(_ request: GatewayRequest) {
        guard let segments = request.pathSegments else {
            self = .other
            return
        }
        switch (segments.first, segments.count) {
        case ("events", 1): self = .events
        case ("events", 2) where segments[1] == "subscribe": self = .subscribe
        case ("events", 2): self = .event
        case ("streams", 1): self = .streams
        case ("streams", 2): self = .stream
        case ("health", 1): self = .health
        case ("metrics", 1): self = .metrics
        case (nil, 0), ("ui", _): self = .webUI
        default: self = .other
        }
    }
}

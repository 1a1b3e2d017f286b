import FluxCore
import FluxWire
import NIOCore
import NIOHTTP1

extension GatewayRouter {
    /// What a feed request asks for, after validation.
    struct FeedQuery {
        /// Events per page of the original feed (`offset=` without `limit`), as the original flux server served them.
        static let originalPageSize = 20
        /// The original flux feed (`offset=`): its exact page shape, nothing added.
        var legacy: Bool
        var after: Position
        var limit: Int
        var filter: EventFilter
        var embedPayload: Bool
        var wait: Duration

        init(_ request: GatewayRequest, configuration: GatewayConfiguration) throws(BadRequest) {
            let offset = try request.integerParameter("offset", minimum: 0)
            let after = try request.integerParameter("after", minimum: 0)
            if offset != nil && after != nil {
                throw BadRequest("give either offset (the original feed) or after, not both")
            }
            legacy = offset != nil
            self.after = Position(offset ?? after ?? 0)
            // The original feed's consumer advances its offset past a whole page even when fetching an entry
            // failed, so its pages keep the original's size (20) unless `limit` asks for more.
            let defaultLimit = legacy ? Self.originalPageSize : configuration.defaultPageSize
            let limit = try request.integerParameter("limit", minimum: 1) ?? Int64(defaultLimit)
            self.limit = Int(min(limit, Int64(configuration.maxPageSize)))
            embedPayload = false
            for embed in request.queryValues("embed") {
                guard embed == "payload" else { throw BadRequest("embed accepts only \"payload\", got \"\(embed.prefix(40))\"") }
                embedPayload = true
            }
            let wait = try request.integerParameter("wait", minimum: 0) ?? 0
            self.wait = .seconds(min(wait, Int64(configuration.maxWaitSeconds)))
            filter = EventFilter(
                aggregateNames: Set(request.queryValues("aggregate_name")),
                eventTypes: Set(request.queryValues("event_type")),
                aggregateIDs: Set(request.queryValues("aggregate_id"))
            )
        }
    }

    /// `GET /events`: the original flux feed (`offset=`) and the extended feed (`after=`, filters, long-poll).
    func feed(_ request: GatewayRequest, grant: AccessGrant) async throws -> GatewayResponse {
        var query = try FeedQuery(request, configuration: configuration)
        query.filter = try restrict(query.filter, to: grant)
        let deadline = ContinuousClock.now + query.wait
        var scanned = query.after
        var head: Position
        var events: [RecordedEvent]
        var continues: Bool
        while true {
            // The head is read first: the read that follows sees at least every event up to it, so when
            // nothing matches, nothing up to `head` can match later (positions are dense, in commit order).
            head = try await store.head()
            // At most `limit` events and about `maxPageBytes` of them: large events make a page of fewer events,
            // which continues after its last event like a full one.
            (events, continues) = try await feedPages.read(from: store, after: scanned, limit: query.limit, filter: query.filter)
            let remaining = deadline - ContinuousClock.now
            if !events.isEmpty || remaining <= .zero { break }
            scanned = max(scanned, head)
            _ = try await store.waitForHead(beyond: scanned, timeout: remaining)
            try Task.checkCancellation()
        }
        if let last = events.last { head = max(head, last.position) }
        let isFull = continues

        let base = baseURL(for: request)
        let encoder = EnvelopeEncoder(baseURL: base)
        var json = JSONWriter(buffer: ByteBuffer())
        json.buffer.reserveCapacity(events.count * (query.embedPayload ? 500 : 300) + 200)
        json.raw("{")
        json.key("description"); json.raw("\"event feed\"")
        json.raw(",")
        json.key("events"); json.raw("[")
        for (index, event) in events.enumerated() {
            if index > 0 { json.raw(",") }
            encoder.write(event, includePayload: query.embedPayload, into: &json)
        }
        json.raw("]")
        if !query.legacy {
            json.raw(",")
            json.key("head"); json.integer(head.rawValue)
            json.raw(",")
            json.key("epoch"); json.string(store.epoch.rawValue)
            json.raw(",")
            // A full page continues after its last event; a short page has seen everything up to the head.
            let nextAfter = isFull ? events[events.count - 1].position : max(query.after, head, events.last?.position ?? .start)
            json.key("next"); json.string(nextPageURL(base: base, request: request, query: query, after: nextAfter))
        }
        json.raw("}")
        return cacheable(json.buffer, request: request, immutable: isFull)
    }

    func nextPageURL(base: String, request: GatewayRequest, query: FeedQuery, after: Position) -> String {
        var url = base + "/events?after=\(after.rawValue)&limit=\(query.limit)"
        for name in ["aggregate_name", "event_type", "aggregate_id"] {
            for value in request.queryValues(name) { url += "&\(name)=\(URLEncoding.encodeQueryValue(value))" }
        }
        if query.embedPayload { url += "&embed=payload" }
        return url
    }

    /// A JSON `200` that caches forever when `immutable` (a full page never changes), else revalidates by ETag.
    func cacheable(_ body: ByteBuffer, request: GatewayRequest, immutable: Bool) -> GatewayResponse {
        let etag = "\"" + String(Self.fnv1a(body.readableBytesView), radix: 16) + "\""
        var headers: HTTPHeaders = ["ETag": etag]
        headers.add(name: "Cache-Control", value: immutable ? immutableCacheControl : "no-cache")
        if let ifNoneMatch = request.headers.first(name: "If-None-Match") {
            let tags = ifNoneMatch.split(separator: ",").map { $0.trimmingSpaces() }
            if tags.contains(etag) || tags.contains("W/" + etag) || tags.contains("*") {
                return GatewayResponse(status: .notModified, headers: headers)
            }
        }
        return .json(.ok, body, headers: headers)
    }

    static func fnv1a(_ bytes: ByteBufferView) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}

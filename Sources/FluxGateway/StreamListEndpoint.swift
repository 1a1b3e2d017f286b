import FluxCore
import FluxWire
import NIOCore
import NIOHTTP1

extension GatewayRouter {
    /// What a stream listing asks for, after validation (README "Wire protocol" → "Reading").
    struct StreamListQuery: Equatable {
        /// Only streams whose aggregate id starts with this, byte for byte (`""`: every stream).
        var prefix: String
        /// The last aggregate id of the previous page; `nil` for the first page.
        var after: String?
        var limit: Int

        /// - Throws: `BadRequest` for a `limit` that is not an integer from 1 to the gateway's largest page, and for a
        ///   `prefix` or `after` that no aggregate id can match: longer than an aggregate id may be, or holding a
        ///   control character (`EventKey`). An empty `after` is the first page.
        init(_ request: GatewayRequest, configuration: GatewayConfiguration) throws(BadRequest) {
            prefix = try Self.keyParameter(request, "prefix") ?? ""
            after = try Self.keyParameter(request, "after").flatMap { $0.isEmpty ? nil : $0 }
            let limit = try request.integerParameter("limit", minimum: 1, maximum: Int64(max(1, configuration.maxPageSize)))
            self.limit = limit.map { Int($0) } ?? max(1, min(configuration.defaultPageSize, configuration.maxPageSize))
        }

        /// A query value compared with aggregate ids: at most `EventKey.maximumLength` bytes, no control character.
        private static func keyParameter(_ request: GatewayRequest, _ name: String) throws(BadRequest) -> String? {
            guard let value = request.queryValue(name) else { return nil }
            let length = value.utf8.count
            guard length <= EventKey.maximumLength else {
                throw BadRequest(
                    "\(name) is \(length) bytes long; aggregate ids are at most \(EventKey.maximumLength) UTF-8 bytes, so shorten it"
                )
            }
            if let control = EventKey.firstControlCharacter(in: value) {
                let hex = String(control.value, radix: 16, uppercase: true)
                throw BadRequest(
                    "\(name) holds the control character U+\(hex.count == 1 ? "000" : "00")\(hex) at byte \(control.offset); aggregate ids never do, so remove it"
                )
            }
            return value
        }
    }

    /// `GET /streams?prefix=P&after=ID&limit=L`: the streams, in the byte order of their aggregate ids, a page at a
    /// time (keyset paging: `next` continues after the page's last id); only those the caller may read.
    func streamList(_ request: GatewayRequest, grant: AccessGrant) async throws -> GatewayResponse {
        let query = try StreamListQuery(request, configuration: configuration)
        // A token limited to some aggregate names lists only their streams: the others are not named, not even as a
        // cursor (the store passes over them, so a page is full or the listing is at its end).
        // An empty name set means every name to the store, so a grant that covers no name lists nothing (fail closed:
        // `authorize` refuses such a grant already).
        let streams: [StreamSummary]
        switch grant.read {
        case .all:
            streams = try await store.streams(after: query.after, prefix: query.prefix, aggregateNames: [], limit: query.limit)
        case .only(let allowed) where !allowed.isEmpty:
            streams = try await store.streams(after: query.after, prefix: query.prefix, aggregateNames: allowed, limit: query.limit)
        case .only, .none:
            streams = []
        }
        let base = baseURL(for: request)
        var json = JSONWriter(buffer: ByteBuffer())
        json.buffer.reserveCapacity(streams.count * 300 + 200)
        json.raw("{")
        json.key("streams"); json.raw("[")
        for (index, stream) in streams.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{")
            json.key("aggregate_id"); json.string(stream.aggregateID)
            json.raw(",")
            json.key("aggregate_name"); json.string(stream.aggregateName)
            json.raw(",")
            json.key("aggregate_version"); json.integer(stream.version)
            json.raw(",")
            json.key("event_count"); json.integer(stream.eventCount)
            json.raw(",")
            json.key("last_position"); json.integer(stream.lastPosition.rawValue)
            json.raw(",")
            json.key("last_recorded_at"); json.string(Timestamp.rfc3339(milliseconds: stream.lastRecordedAtMilliseconds))
            json.raw(",")
            json.key("url"); json.string(base + "/streams/" + URLEncoding.encodePathSegment(stream.aggregateID))
            json.raw("}")
        }
        json.raw("]")
        json.raw(",")
        json.key("prefix"); json.string(query.prefix)
        json.raw(",")
        json.key("limit"); json.integer(Int64(query.limit))
        if let last = streams.last, streams.count == query.limit {
            json.raw(",")
            json.key("next"); json.string(Self.streamListURL(base: base, prefix: query.prefix, after: last.aggregateID, limit: query.limit))
        }
        json.raw("}")
        // Streams come and change with every append: revalidate by ETag (a polling page gets a 304 while nothing moved).
        return cacheable(json.buffer, request: request, immutable: false)
    }

    /// The URL of a page of the stream listing.
    static func streamListURL(base: String, prefix: String, after: String?, limit: Int) -> String {
        var url = base + "/streams?"
        if !prefix.isEmpty { url += "prefix=" + URLEncoding.encodeQueryValue(prefix) + "&" }
        if let after { url += "after=" + URLEncoding.encodeQueryValue(after) + "&" }
        return url + "limit=\(limit)"
    }
}

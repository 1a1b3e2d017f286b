import FluxCore
import FluxWire
import NIOCore
import NIOHTTP1

extension GatewayRouter {
    /// `GET /events/{event_id}`: the bare payload, as the original feed served it; `?envelope=true` for the envelope.
    func singleEvent(_ request: GatewayRequest, id: String, grant: AccessGrant) async throws -> GatewayResponse {
        let envelope = try request.booleanParameter("envelope") ?? false
        // An event the caller may not read is answered as one that does not exist: a 403 would tell it the id is taken.
        guard let event = try await store.event(id: id), grant.read.covers(event.aggregateName) else {
            return .error(.notFound, "not_found", "no event with id \(id.prefix(300))")
        }
        // A stored event never changes: clients may cache it for good.
        let headers: HTTPHeaders = ["Cache-Control": immutableCacheControl]
        if !envelope {
            return .json(.ok, ByteBuffer(bytes: event.payload.bytes), headers: headers)
        }
        var json = JSONWriter(buffer: ByteBuffer())
        EnvelopeEncoder(baseURL: baseURL(for: request)).write(event, includePayload: true, into: &json)
        return .json(.ok, json.buffer, headers: headers)
    }

    /// `GET /streams/{aggregate_id}?from_version=V&limit=L`: one aggregate's events with payloads, in version order.
    func stream(_ request: GatewayRequest, aggregateID: String, grant: AccessGrant) async throws -> GatewayResponse {
        let fromVersion = try request.integerParameter("from_version", minimum: 0) ?? 0
        let limit = Int(min(try request.integerParameter("limit", minimum: 1) ?? Int64(configuration.defaultPageSize), Int64(configuration.maxPageSize)))
        let events = try await store.readStream(aggregateID, fromVersion: fromVersion, limit: limit)
        let first = fromVersion == 0 ? events.first : try await store.readStream(aggregateID, fromVersion: 0, limit: 1).first
        // A stream the caller may not read is answered as one that does not exist (past its end too): a 403, or an
        // empty page, would tell it the aggregate id is taken.
        guard let first, grant.read.covers(first.aggregateName), events.allSatisfy({ grant.read.covers($0.aggregateName) }) else {
            return .error(.notFound, "not_found", "no stream with aggregate_id \(aggregateID.prefix(300))")
        }
        let base = baseURL(for: request)
        let encoder = EnvelopeEncoder(baseURL: base)
        var json = JSONWriter(buffer: ByteBuffer())
        json.raw("{")
        json.key("aggregate_id"); json.string(aggregateID)
        json.raw(",")
        json.key("events"); json.raw("[")
        for (index, event) in events.enumerated() {
            if index > 0 { json.raw(",") }
            encoder.write(event, includePayload: true, into: &json)
        }
        json.raw("]")
        if let last = events.last, events.count == limit {
            json.raw(",")
            json.key("next")
            json.string(base + "/streams/" + URLEncoding.encodePathSegment(aggregateID) + "?from_version=\(last.version + 1)&limit=\(limit)")
        }
        json.raw("}")
        return .json(.ok, json.buffer, headers: ["Cache-Control": "no-cache"])
    }
}

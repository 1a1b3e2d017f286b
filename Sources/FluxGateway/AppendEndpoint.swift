import FluxCore
import FluxWire
import NIOCore
import NIOHTTP1

extension GatewayRouter {
    /// `POST /streams/{aggregate_id}`: appends events atomically (README "Wire protocol" → "Appending").
    func append(_ request: GatewayRequest, aggregateID: String, grant: AccessGrant) async throws -> GatewayResponse {
        if let contentType = request.headers.first(name: "Content-Type"),
            !contentType.lowercased().hasPrefix("application/json")
        {
            return .error(.unsupportedMediaType, "unsupported_media_type", "the body must be application/json, got \(contentType.prefix(60))")
        }
        if let limiter = appendLimiter {
            let caller = configuration.accessControl == nil ? "address " + (request.remoteAddress ?? "unknown") : "token " + grant.subject
            if let wait = limiter.admit(caller) {
                let seconds = max(1, Int((Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18).rounded(.up)))
                return .error(
                    .tooManyRequests, "rate_limited",
                    "\(caller) may append \(limiter.rate == limiter.rate.rounded() ? String(Int(limiter.rate)) : String(limiter.rate)) times per second (bursts of \(Int(limiter.burst))); retry in \(seconds) s",
                    headers: ["Retry-After": String(seconds)]
                )
            }
        }
        let appendRequest = try Self.parseAppend(body: request.body, aggregateID: aggregateID)
        guard grant.write.covers(appendRequest.aggregateName) else {
            throw AccessDenied.forbidden(
                "the token of \(grant.subject) may not append to aggregate_name \(appendRequest.aggregateName.prefix(100))"
            )
        }
        let result: AppendResult
        do {
            result = try await store.append(appendRequest)
        } catch let error as StoreError {
            throw Self.hidingUnreadable(error, request: appendRequest, grant: grant)
        }
        var json = JSONWriter(buffer: ByteBuffer())
        json.raw("{")
        json.key("aggregate_id"); json.string(result.aggregateID)
        json.raw(",")
        json.key("first_position"); json.integer(result.firstPosition.rawValue)
        json.raw(",")
        json.key("last_position"); json.integer(result.lastPosition.rawValue)
        json.raw(",")
        json.key("version"); json.integer(result.version)
        json.raw(",")
        json.key("epoch"); json.string(store.epoch.rawValue)
        json.raw("}")
        return .json(.created, json.buffer)
    }

    /// A refused append tells no more about a stream than the caller may read: a caller that may not read the
    /// stream (its stored aggregate name, or for a conflict the append's own) learns that the append conflicts, not
    /// the stream's version or name.
    static func hidingUnreadable(_ error: StoreError, request: AppendRequest, grant: AccessGrant) -> StoreError {
        switch error.code {
        case .aggregateNameMismatch where !grant.read.covers(error.storedAggregateName ?? ""):
            return StoreError(
                .aggregateNameMismatch,
                "stream \(request.aggregateID.prefix(300)) belongs to another aggregate_name; use another aggregate id"
            )
        case .conflict where !grant.read.covers(request.aggregateName):
            return StoreError(
                .conflict,
                "the append to stream \(request.aggregateID.prefix(300)) conflicts with its current version; reload the aggregate and retry"
            )
        case .duplicateEventID where grant.read != .all:
            // The clash may be with another stream's events, which the caller may not read.
            return StoreError(
                .duplicateEventID,
                "an event_id of this append is already stored with other events or content; a retry must resend the same events, a new append needs new event ids"
            )
        default:
            return error
        }
    }

    /// Parses and checks an append body; payloads keep the exact bytes the client sent.
    static func parseAppend(body: ByteBuffer, aggregateID: String) throws -> AppendRequest {
        let bytes = body.readableBytesView
        guard !bytes.isEmpty else { throw BadRequest("the body is empty; send {\"aggregate_name\": …, \"expected_version\": …, \"events\": [...]}") }
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw BadRequest("the body is not valid JSON: \(error)")
        }
        guard document.isObject else { throw BadRequest("the body must be a JSON object, got \(document.kindName)") }
        guard let nameValue = document["aggregate_name"] else { throw BadRequest("aggregate_name is missing") }
        guard let aggregateName = nameValue.stringValue, !aggregateName.isEmpty else {
            throw BadRequest("aggregate_name must be a non-empty string")
        }
        guard let expectedValue = document["expected_version"] else {
            throw BadRequest("expected_version is missing (the stream's last version, -1 for a new stream, or \"any\")")
        }
        let expected: ExpectedVersion
        if expectedValue.stringValue == "any" {
            expected = .any
        } else if let number = expectedValue.int64Value, let version = ExpectedVersion(wireValue: number) {
            expected = version
        } else {
            throw BadRequest("expected_version must be an integer ≥ -1 or \"any\"")
        }
        guard let eventsValue = document["events"] else { throw BadRequest("events is missing") }
        guard let eventValues = eventsValue.arrayValue else { throw BadRequest("events must be an array") }
        guard !eventValues.isEmpty else { throw BadRequest("events is empty; an append needs at least one event") }
        let allBytes = Array(bytes)
        var events: [NewEvent] = []
        events.reserveCapacity(eventValues.count)
        for (index, value) in eventValues.enumerated() {
            guard value.isObject else { throw BadRequest("events[\(index)] must be an object") }
            guard let eventType = value["event_type"]?.stringValue, !eventType.isEmpty else {
                throw BadRequest("events[\(index)].event_type must be a non-empty string")
            }
            guard let payload = value["payload"] else { throw BadRequest("events[\(index)].payload is missing") }
            var eventID: String?
            if let idValue = value["event_id"] {
                // Its length and characters are checked with the other ids and names, by validate() below.
                guard let id = idValue.stringValue else { throw BadRequest("events[\(index)].event_id must be a string") }
                eventID = id
            }
            events.append(
                NewEvent(eventID: eventID, eventType: eventType, payload: EventPayload(trustedJSON: Array(allBytes[payload.range])))
            )
        }
        let appendRequest = AppendRequest(aggregateID: aggregateID, aggregateName: aggregateName, expectedVersion: expected, events: events)
        do {
            try appendRequest.validate()
        } catch {
            throw BadRequest(error.message)
        }
        return appendRequest
    }
}

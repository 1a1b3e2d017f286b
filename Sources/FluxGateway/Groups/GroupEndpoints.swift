import FluxCore
import FluxWebSocket
import FluxWire
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// The consumer groups of a gateway's store, each started on first use (`ConsumerGroupRuntime`); a group changed or
/// deleted through the API is stopped, and starts again from its stored state.
final class ConsumerGroupRegistry: Sendable {
    let store: any EventStore & ConsumerGroupStore
    private let logger: Logger
    private let metrics: GatewayMetrics
    private let runtimes = Mutex<[String: Task<ConsumerGroupRuntime?, any Error>]>([:])

    init(store: any EventStore & ConsumerGroupStore, logger: Logger, metrics: GatewayMetrics) {
        self.store = store
        self.logger = logger
        self.metrics = metrics
    }

    /// The status of the group's runtime when one is at work on this node (none is started for it).
    func runningStatus(_ name: String) async -> ConsumerGroupRuntime.Status? {
        guard let task = runtimes.withLock({ $0[name] }), let runtime = try? await task.value else { return nil }
        return await runtime.status
    }

    /// The group at work, started from its stored record; `nil` when no such group is stored. A runtime that retired
    /// by itself (another node changed the group) is replaced.
    func runtime(_ name: String) async throws -> ConsumerGroupRuntime? {
        let (store, logger, metrics) = (self.store, self.logger, self.metrics)
        while true {
            let task = runtimes.withLock { runtimes in
                if let running = runtimes[name] { return running }
                let starting = Task<ConsumerGroupRuntime?, any Error> {
                    guard let record = try await store.consumerGroup(named: name) else { return nil }
                    return try await ConsumerGroupRuntime.start(record: record, store: store, logger: logger, metrics: metrics)
                }
                runtimes[name] = starting
                return starting
            }
            do {
                guard let runtime = try await task.value else {
                    drop(name, task)
                    return nil
                }
                guard !runtime.hasRetired.load(ordering: .relaxed) else {
                    drop(name, task)
                    continue
                }
                return runtime
            } catch {
                drop(name, task)
                throw error
            }
        }
    }

    /// Stops every group at work (the gateway stops): on a store that nodes share, their partitions go to the
    /// other nodes.
    func stopAll() async {
        let tasks = runtimes.withLock { runtimes in
            defer { runtimes = [:] }
            return Array(runtimes.values)
        }
        for task in tasks {
            guard let runtime = try? await task.value else { continue }
            await runtime.retire()
            await runtime.leaveOtherNodes()
        }
    }

    /// Stops the group's runtime before its stored state is changed (its leases end; what was not acknowledged is
    /// delivered again by the next runtime). Once this returns, the old runtime writes nothing more.
    func forget(_ name: String) async {
        let task = runtimes.withLock { $0.removeValue(forKey: name) }
        if let runtime = try? await task?.value { await runtime.retire() }
    }

    /// Forgets a start that found no group or failed (unless another start took its place meanwhile).
    private func drop(_ name: String, _ task: Task<ConsumerGroupRuntime?, any Error>) {
        runtimes.withLock { runtimes in
            if runtimes[name] == task { runtimes[name] = nil }
        }
    }
}

extension GatewayRouter {
    /// Stops the consumer groups at work on this node (the gateway stops).
    func stopGroups() async {
        await groups?.stopAll()
    }

    /// `/groups…`: the consumer groups API (README "Consumer groups").
    func groupsEndpoint(_ request: GatewayRequest, segments: [String]) async throws -> GatewayResponse {
        guard let groups else {
            return .error(.notImplemented, "not_implemented", "this gateway's store keeps no consumer groups")
        }
        if segments.count == 1 {
            guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
            _ = try await authorize(request, for: .consumeGroups)
            return try await listGroups(groups)
        }
        let name = segments[1]
        guard !name.hasPrefix(WebhookSinkDefinition.groupPrefix) else {
            // Sinks' groups (`sink.<name>`) are managed through /sinks only.
            if request.method == .PUT {
                return .error(.badRequest, "bad_request", "consumer group names starting with \"sink.\" belong to webhook sinks; choose another name")
            }
            return .error(.notFound, "not_found", "\(name.prefix(140).debugDescription) is a webhook sink's group; see /sinks/\(name.dropFirst(WebhookSinkDefinition.groupPrefix.count).prefix(120))")
        }
        guard ConsumerGroupDefinition.isValidName(name) else {
            if request.method == .PUT {
                return .error(.badRequest, "bad_request", "a consumer group's name is 1 to 128 of A-Z a-z 0-9 . _ -; \(name.prefix(140).debugDescription) is not")
            }
            return .error(.notFound, "not_found", "there is no consumer group named \(name.prefix(140).debugDescription); names are 1 to 128 of A-Z a-z 0-9 . _ -")
        }
        switch (segments.count, segments.count > 2 ? segments[2] : nil) {
        case (2, nil):
            switch request.method {
            case .GET:
                _ = try await authorize(request, for: .consumeGroups)
                return try await inspectGroup(groups, name)
            case .PUT:
                _ = try await authorize(request, for: .administerGroups)
                return try await putGroup(groups, name, request)
            case .DELETE:
                _ = try await authorize(request, for: .administerGroups)
                await groups.forget(name)
                guard try await groups.store.deleteConsumerGroup(named: name) else { throw unknown(name) }
                await groups.forget(name)
                return GatewayResponse(status: .noContent)
            default:
                return methodNotAllowed(request, allow: "GET, HEAD, PUT, DELETE")
            }
        case (3, "fetch"):
            guard request.method == .POST else { return methodNotAllowed(request, allow: "POST") }
            let grant = try await authorize(request, for: .consumeGroups)
            return try await fetch(groups, name, request, grant: grant)
        case (3, "ack"), (3, "nack"):
            guard request.method == .POST else { return methodNotAllowed(request, allow: "POST") }
            _ = try await authorize(request, for: .consumeGroups)
            return try await settle(groups, name, request, acknowledge: segments[2] == "ack")
        case (3, "parked"):
            guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
            _ = try await authorize(request, for: .consumeGroups)
            guard let record = try await groups.store.consumerGroup(named: name) else { throw unknown(name) }
            var json = JSONWriter(buffer: ByteBuffer())
            json.raw("{"); json.key("group"); json.string(name); json.raw(","); json.key("parked"); json.raw("[")
            for (index, parked) in record.parked.enumerated() {
                if index > 0 { json.raw(",") }
                Self.writeParked(parked, into: &json)
            }
            json.raw("]}")
            return .json(.ok, json.buffer)
        case (3, "replay"):
            guard request.method == .POST else { return methodNotAllowed(request, allow: "POST") }
            _ = try await authorize(request, for: .administerGroups)
            return try await replay(groups, name, segments: segments)
        case (3, "subscribe"):
            guard request.method == .GET else { return methodNotAllowed(request, allow: "GET") }
            let grant = try await authorize(request, for: .consumeGroups)
            return try await subscribeMember(groups, name, request, grant: grant)
        case (3, "reset"):
            guard request.method == .POST else { return methodNotAllowed(request, allow: "POST") }
            _ = try await authorize(request, for: .administerGroups)
            return try await reset(groups, name, request)
        default:
            if segments.count == 5, segments[2] == "parked", segments[4] == "replay" {
                guard request.method == .POST else { return methodNotAllowed(request, allow: "POST") }
                _ = try await authorize(request, for: .administerGroups)
                return try await replay(groups, name, segments: segments)
            }
            return .error(.notFound, "not_found", "no endpoint at \(request.method) /\(segments.joined(separator: "/")); see the README's \"Consumer groups\"")
        }
    }

    private func unknown(_ name: String) -> StoreError {
        StoreError(.notFound, "there is no consumer group named \(name); list them with GET /groups or create it with PUT /groups/\(name)")
    }

    private func listGroups(_ groups: ConsumerGroupRegistry) async throws -> GatewayResponse {
        let records = try await groups.store.consumerGroups()
        let head = try await store.head()
        var json = JSONWriter(buffer: ByteBuffer())
        json.raw("{"); json.key("groups"); json.raw("[")
        for (index, record) in records.filter({ !$0.definition.name.hasPrefix(WebhookSinkDefinition.groupPrefix) }).enumerated() {
            if index > 0 { json.raw(",") }
            // Groups at work on this node show their members and what is in flight; none is started for the list.
            Self.writeGroup(record, head: head, status: await groups.runningStatus(record.definition.name), into: &json)
        }
        json.raw("]}")
        return .json(.ok, json.buffer)
    }

    private func inspectGroup(_ groups: ConsumerGroupRegistry, _ name: String) async throws -> GatewayResponse {
        guard let record = try await groups.store.consumerGroup(named: name) else { throw unknown(name) }
        let status = try await groups.runtime(name)?.status
        var json = JSONWriter(buffer: ByteBuffer())
        Self.writeGroup(record, head: try await store.head(), status: status, into: &json)
        return .json(.ok, json.buffer)
    }

    /// `PUT /groups/{name}`: creates the group (201) or changes its filter and policy (200; its checkpoint stays).
    private func putGroup(_ groups: ConsumerGroupRegistry, _ name: String, _ request: GatewayRequest) async throws -> GatewayResponse {
        let document = try Self.jsonBody(request, example: #"{"filter": {"aggregate_names": ["Account"]}, "start": "0"}"#)
        let filter = try Self.filter(document["filter"])
        var policy = ConsumerGroupPolicy()
        func milliseconds(_ key: String) throws -> Duration? {
            guard let value = document[key] else { return nil }
            guard let number = value.int64Value, (0...3_600_000).contains(number) else {
                throw BadRequest("\(key) must be an integer number of milliseconds from 0 to 3600000")
            }
            return .milliseconds(number)
        }
        if let lease = try milliseconds("lease_timeout_ms") { policy.leaseTimeout = lease }
        if let backoff = try milliseconds("backoff_ms") { policy.backoff = backoff }
        if let maximum = try milliseconds("maximum_backoff_ms") { policy.maximumBackoff = maximum }
        if let attempts = document["maximum_attempts"] {
            guard let number = attempts.int64Value, (1...1000).contains(number) else { throw BadRequest("maximum_attempts must be an integer from 1 to 1000") }
            policy.maximumAttempts = Int(number)
        }
        if let parked = document["parked_events"] {
            switch parked.stringValue {
            case "hold": policy.holdsAggregateWhileParked = true
            case "continue": policy.holdsAggregateWhileParked = false
            default: throw BadRequest(#"parked_events must be "hold" (an aggregate's later events wait for its parked event) or "continue""#)
            }
        }
        var start = Position.start
        if let value = document["start"] { start = try await position(value, named: "start") }
        let definition = try ConsumerGroupDefinition(name: name, filter: filter, start: start, policy: policy)
        await groups.forget(name)
        if try await groups.store.consumerGroup(named: name) != nil {
            try await groups.store.updateConsumerGroup(definition)
            await groups.forget(name)
            return try await inspectGroup(groups, name)
        }
        _ = try await groups.store.createConsumerGroup(definition)
        var response = try await inspectGroup(groups, name)
        response.status = .created
        return response
    }

    /// `"0"`, `"head"` or a position (a number or its text), as `start` and `position` take it.
    private func position(_ value: JSONValue, named key: String) async throws -> Position {
        if value.stringValue == "head" { return try await store.head() }
        guard let text = value.stringValue ?? value.int64Value.map(String.init), let number = Int64(text), number >= 0 else {
            throw BadRequest(#"\#(key) must be "0", "head" or a position (the group takes the events after it)"#)
        }
        return Position(number)
    }

    /// `POST /groups/{name}/reset` `{"position": "0" | "head" | N}`: moves the checkpoint there (back to replay a read
    /// model, forward to skip); the group's leases end, what it acknowledged after the new checkpoint is forgotten and
    /// its parked events after it are dropped: everything after the position is delivered again.
    private func reset(_ groups: ConsumerGroupRegistry, _ name: String, _ request: GatewayRequest) async throws -> GatewayResponse {
        let document = try Self.jsonBody(request, example: #"{"position": "0"}"#)
        guard let value = document["position"] else { throw BadRequest(#"the body must name the position: {"position": "0" | "head" | N}"#) }
        let target = try await position(value, named: "position")
        guard target <= (try await store.head()) else {
            throw BadRequest("position \(target.rawValue) is past the store's head; reset to \"head\" to skip everything stored")
        }
        await groups.forget(name)
        try await groups.store.saveConsumerGroupCheckpoint(target, acknowledged: [], group: name, reset: true)
        await groups.forget(name)
        configuration.logger.notice("a consumer group was reset", metadata: ["group": "\(name)", "position": "\(target)"])
        return try await inspectGroup(groups, name)
    }

    /// A member reads only what its token may read: a group's filter must stay within the caller's read access.
    private func checkMemberReads(_ definition: ConsumerGroupDefinition, grant: AccessGrant) throws {
        if case .only(let names) = grant.read {
            let wanted = definition.filter.aggregateNames
            guard !wanted.isEmpty, wanted.isSubset(of: names) else {
                throw AccessDenied.forbidden("this token may read only \(names.sorted().joined(separator: ", ")); group \(definition.name) takes other aggregates")
            }
        } else if case .none = grant.read {
            throw AccessDenied.forbidden("this token has no read scope; a group's members read its events")
        }
    }

    /// `GET /groups/{name}/subscribe?member=M&credit=N` with a WebSocket upgrade: a member that the group pushes
    /// leased events to, at most `credit` (1–1000, default 100) unsettled at once (``GroupMemberHandler``). An
    /// unknown group is `404`, a bad query `400`, both before the upgrade.
    private func subscribeMember(_ groups: ConsumerGroupRegistry, _ name: String, _ request: GatewayRequest, grant: AccessGrant) async throws -> GatewayResponse {
        guard request.headers.first(name: "Upgrade")?.lowercased() == "websocket" else {
            return .error(.badRequest, "bad_request", "a group member subscribes with a WebSocket upgrade; or pull with POST /groups/\(name)/fetch")
        }
        let acceptance: WebSocketServerHandshake.Acceptance
        switch checkWebSocketUpgrade(request, deflate: nil) {
        case .refuse(let refusal): return refusal
        case .accept(let accepted): acceptance = accepted
        }
        let credit = try request.queryValue("credit").map { text -> Int in
            guard let number = Int(text), (1...1000).contains(number) else { throw BadRequest("credit must be an integer from 1 to 1000") }
            return number
        } ?? 100
        let member = try request.queryValue("member").map { text -> String in
            guard ConsumerGroupDefinition.isValidName(text) else { throw BadRequest("member must be 1 to 128 of A-Z a-z 0-9 . _ -") }
            return text
        } ?? "member-\(UInt64.random(in: 0...UInt64.max))"
        guard let runtime = try await groups.runtime(name) else { throw unknown(name) }
        try checkMemberReads(runtime.definition, grant: grant)
        let slot = subscriptionSlots.take()
        let settings = GroupMemberHandler.Settings(
            runtime: runtime, group: name, member: member, credit: credit, baseURL: baseURL(for: request),
            closeFirst: slot == nil
                ? (.tryAgainLater, "the gateway has its maximum of \(subscriptionSlots.maximum ?? 0) subscriptions; retry later or on another node") : nil,
            highWater: configuration.subscriberHighWater, pingInterval: configuration.pingInterval, pongTimeout: configuration.pongTimeout,
            expiresAt: grant.expiresAt, slot: slot, metrics: metrics, logger: configuration.logger)
        var response = GatewayResponse(status: .switchingProtocols, headers: acceptance.headers)
        response.upgrade = PushChannelUpgrade(headers: acceptance.headers, deflate: nil, connection: settings.connection) {
            GroupMemberHandler(settings: settings)
        }
        return response
    }

    /// `POST /groups/{name}/fetch?member=M&max=N&wait=S`: leases up to `max` events to member `M` (made up when not
    /// given, and returned), waiting up to `wait` seconds for some.
    private func fetch(_ groups: ConsumerGroupRegistry, _ name: String, _ request: GatewayRequest, grant: AccessGrant) async throws -> GatewayResponse {
        let max = try request.queryValue("max").map { text -> Int in
            guard let number = Int(text), (1...1000).contains(number) else { throw BadRequest("max must be an integer from 1 to 1000") }
            return number
        } ?? 10
        let wait = try request.queryValue("wait").map { text -> Duration in
            guard let number = Double(text), number.isFinite, (0...60).contains(number) else { throw BadRequest("wait must be 0 to 60 seconds") }
            return .milliseconds(Int64(number * 1000))
        } ?? .zero
        let member = try request.queryValue("member").map { text -> String in
            guard ConsumerGroupDefinition.isValidName(text) else { throw BadRequest("member must be 1 to 128 of A-Z a-z 0-9 . _ -") }
            return text
        }
        guard let runtime = try await groups.runtime(name) else { throw unknown(name) }
        try checkMemberReads(runtime.definition, grant: grant)
        let memberName: String
        let deliveries: [ConsumerGroupRuntime.Ledger.Delivery]
        do {
            (memberName, deliveries) = try await runtime.fetch(member: member, max: max, wait: wait)
        } catch let full as TooManyMembers {
            return .error(
                .serviceUnavailable, "too_many_members",
                "group \(full.group) has its maximum of \(ConsumerGroupRuntime.maximumMembers) members; reuse a member name, or retry once idle members lapse",
                headers: ["Retry-After": "5"])
        }
        let encoder = EnvelopeEncoder(baseURL: baseURL(for: request))
        var json = JSONWriter(buffer: ByteBuffer())
        json.raw("{"); json.key("member"); json.string(memberName); json.raw(","); json.key("events"); json.raw("[")
        for (index, delivery) in deliveries.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{"); json.key("attempt"); json.integer(Int64(delivery.attempt)); json.raw(","); json.key("event")
            encoder.write(delivery.event, includePayload: true, into: &json)
            json.raw("}")
        }
        json.raw("]}")
        return .json(.ok, json.buffer)
    }

    /// `POST /groups/{name}/ack` `{"member": M, "positions": [p, …]}` and `…/nack` `{"member": M, "position": p,
    /// "reason": "…"}`; the member may be given as `?member=M` instead of (or as well as) in the body.
    private func settle(_ groups: ConsumerGroupRegistry, _ name: String, _ request: GatewayRequest, acknowledge: Bool) async throws -> GatewayResponse {
        let document = try Self.jsonBody(request, example: acknowledge ? #"{"member": "m1", "positions": [7, 8]}"# : #"{"member": "m1", "position": 7, "reason": "…"}"#)
        // The member may be in the query too (a proxy in front of several nodes routes by it); both must agree.
        let queried = try request.queryValue("member")
        guard let member = document["member"]?.stringValue ?? queried, ConsumerGroupDefinition.isValidName(member) else {
            throw BadRequest("member must be the member name its fetch answered")
        }
        guard queried == nil || queried == member else {
            throw BadRequest("the member in the query (\(queried!.prefix(140))) is not the member in the body (\(member.prefix(140)))")
        }
        guard let runtime = try await groups.runtime(name) else { throw unknown(name) }
        do {
            if acknowledge {
                guard let values = document["positions"]?.arrayValue, (1...1000).contains(values.count) else {
                    throw BadRequest("positions must be an array of 1 to 1000 positions")
                }
                let positions = try values.map { value -> Position in
                    guard let number = value.int64Value, number > 0 else { throw BadRequest("positions must hold positions (integers > 0)") }
                    return Position(number)
                }
                try await runtime.acknowledge(positions, by: member)
                return .json(.ok, ByteBuffer(string: #"{"acknowledged":\#(positions.count)}"#))
            }
            guard let number = document["position"]?.int64Value, number > 0 else { throw BadRequest("position must be an integer > 0") }
            let reason = document["reason"]?.stringValue ?? "rejected by its member"
            try await runtime.reject(Position(number), by: member, reason: reason)  // the runtime cleans and cuts it
            return .json(.ok, ByteBuffer(string: #"{"rejected":1}"#))
        } catch let failure as ConsumerGroupRuntime.Ledger.Failure {
            switch failure {
            case .unknownMember:
                return .error(.conflict, "not_leased", "\(member) is not a member of group \(name) (it never fetched, or it was idle past the lease timeout): nothing was settled; fetch again")
            case .notLeased(let position, _):
                return .error(.conflict, "not_leased", "event \(position.rawValue) is not leased to \(member) (its lease lapsed, it was settled already, or it never was): nothing was settled")
            case .notParked(let position):
                return .error(.notFound, "not_found", "event \(position.rawValue) is not parked in group \(name)")
            }
        }
    }

    private func replay(_ groups: ConsumerGroupRegistry, _ name: String, segments: [String]) async throws -> GatewayResponse {
        guard let runtime = try await groups.runtime(name) else { throw unknown(name) }
        var position: Position?
        if segments.count == 5 {
            guard let number = Int64(segments[3]), number > 0 else { throw BadRequest("the parked event's position must be an integer > 0") }
            position = Position(number)
        }
        do {
            try await runtime.replay(position)
        } catch ConsumerGroupRuntime.Ledger.Failure.notParked(let missing) {
            return .error(.notFound, "not_found", "event \(missing.rawValue) is not parked in group \(name)")
        }
        return .json(.ok, ByteBuffer(string: #"{"replayed":true}"#))
    }

    // MARK: JSON

    static func jsonBody(_ request: GatewayRequest, example: String) throws -> JSONValue {
        let bytes = request.body.readableBytesView
        guard !bytes.isEmpty else { throw BadRequest("the body is empty; send JSON such as \(example)") }
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw BadRequest("the body is not valid JSON: \(error)")
        }
        guard document.isObject else { throw BadRequest("the body must be a JSON object such as \(example)") }
        return document
    }

    static func filter(_ value: JSONValue?) throws -> EventFilter {
        guard let value else { return .all }
        guard value.isObject else { throw BadRequest("filter must be an object of aggregate_names, event_types and aggregate_ids (arrays of strings)") }
        func strings(_ key: String) throws -> Set<String> {
            guard let array = value[key] else { return [] }
            guard let elements = array.arrayValue, elements.count <= 100 else { throw BadRequest("filter.\(key) must be an array of at most 100 strings") }
            return Set(try elements.map { element in
                guard let text = element.stringValue, (1...256).contains(text.utf8.count), EventKey.isPrintable(text) else {
                    throw BadRequest("filter.\(key) must hold non-empty printable strings of at most 256 bytes")
                }
                return text
            })
        }
        return EventFilter(aggregateNames: try strings("aggregate_names"), eventTypes: try strings("event_types"), aggregateIDs: try strings("aggregate_ids"))
    }

    static func writeGroup(_ record: ConsumerGroupRecord, head: Position, status: ConsumerGroupRuntime.Status?, into json: inout JSONWriter) {
        let definition = record.definition
        let policy = definition.policy
        json.raw("{")
        json.key("name"); json.string(definition.name); json.raw(",")
        json.key("filter"); json.raw("{")
        json.key("aggregate_names"); writeStrings(definition.filter.aggregateNames, into: &json); json.raw(",")
        json.key("event_types"); writeStrings(definition.filter.eventTypes, into: &json); json.raw(",")
        json.key("aggregate_ids"); writeStrings(definition.filter.aggregateIDs, into: &json)
        json.raw("},")
        json.key("start"); json.integer(definition.start.rawValue); json.raw(",")
        json.key("lease_timeout_ms"); json.integer(policy.leaseTimeout.wholeMilliseconds); json.raw(",")
        json.key("maximum_attempts"); json.integer(Int64(policy.maximumAttempts)); json.raw(",")
        json.key("backoff_ms"); json.integer(policy.backoff.wholeMilliseconds); json.raw(",")
        json.key("maximum_backoff_ms"); json.integer(policy.maximumBackoff.wholeMilliseconds); json.raw(",")
        json.key("parked_events"); json.string(policy.holdsAggregateWhileParked ? "hold" : "continue"); json.raw(",")
        let checkpoint = max(record.checkpoint, status?.checkpoint ?? .start)
        json.key("checkpoint"); json.integer(checkpoint.rawValue); json.raw(",")
        json.key("head"); json.integer(head.rawValue); json.raw(",")
        json.key("lag"); json.integer(max(0, head.rawValue - checkpoint.rawValue)); json.raw(",")
        json.key("parked"); json.integer(Int64(record.parked.count))
        if let status {
            json.raw(",")
            json.key("members"); writeStrings(Set(status.members), into: &json); json.raw(",")
            json.key("in_flight"); json.integer(Int64(status.statistics.leased)); json.raw(",")
            json.key("redeliveries"); json.integer(Int64(status.statistics.redeliveries)); json.raw(",")
            json.key("acknowledged"); json.integer(Int64(status.statistics.acknowledged))
            if let nodes = status.nodes {
                json.raw(",")
                json.key("nodes"); json.integer(Int64(nodes))
            }
        }
        json.raw("}")
    }

    static func writeParked(_ parked: ParkedGroupEvent, into json: inout JSONWriter) {
        json.raw("{")
        json.key("position"); json.integer(parked.position.rawValue); json.raw(",")
        json.key("attempts"); json.integer(Int64(parked.attempts)); json.raw(",")
        json.key("reason"); json.string(parked.reason); json.raw(",")
        json.key("parked_at"); json.integer(parked.parkedAt)
        json.raw("}")
    }

    private static func writeStrings(_ values: Set<String>, into json: inout JSONWriter) {
        json.raw("[")
        for (index, value) in values.sorted().enumerated() {
            if index > 0 { json.raw(",") }
            json.string(value)
        }
        json.raw("]")
    }
}

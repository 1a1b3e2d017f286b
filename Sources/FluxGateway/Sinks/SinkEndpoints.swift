import FluxCore
import FluxWire
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

extension GatewayRouter {
    /// Starts delivering the webhook sinks (the gateway started and listens at `baseURL`).
    func startSinks(baseURL: String) async {
        await putDeclaredSinks()
        await resealSecrets()
        await sinks?.start(baseURL: baseURL)
    }

    /// Stops the webhook sinks' deliveries and their HTTP client (the gateway stops).
    func stopSinks() async {
        await sinks?.stopAll()
    }

    /// `/sinks…`: the webhook sinks API (README "Webhook sinks"). Reading takes the `groups` scope, changing
    /// `groups:admin` (a sink is a consumer group whose member is the gateway).
    func sinksEndpoint(_ request: GatewayRequest, segments: [String]) async throws -> GatewayResponse {
        guard let sinks else {
            return .error(.notImplemented, "not_implemented", "this gateway's store keeps no webhook sinks")
        }
        if segments.count == 1 {
            guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
            _ = try await authorize(request, for: .consumeGroups)
            var json = JSONWriter(buffer: ByteBuffer())
            json.raw("{"); json.key("sinks"); json.raw("[")
            let head = try await store.head()
            for (index, record) in try await sinks.store.webhookSinks().enumerated() {
                if index > 0 { json.raw(",") }
                try await writeSink(record, sinks, head: head, into: &json)
            }
            json.raw("]}")
            return .json(.ok, json.buffer)
        }
        let name = segments[1]
        guard WebhookSinkDefinition.isValidName(name) else {
            if request.method == .PUT {
                return .error(.badRequest, "bad_request", "a webhook sink's name is 1 to 120 of A-Z a-z 0-9 . _ -; \(name.prefix(140).debugDescription) is not")
            }
            return .error(.notFound, "not_found", "there is no webhook sink named \(name.prefix(140).debugDescription); names are 1 to 120 of A-Z a-z 0-9 . _ -")
        }
        switch (segments.count, segments.count > 2 ? segments[2] : nil) {
        case (2, nil):
            switch request.method {
            case .GET:
                _ = try await authorize(request, for: .consumeGroups)
                return try await inspectSink(sinks, name)
            case .PUT:
                _ = try await authorize(request, for: .administerGroups)
                return try await putSink(sinks, name, request)
            case .DELETE:
                _ = try await authorize(request, for: .administerGroups)
                guard let record = try await sinks.store.webhookSink(named: name) else { throw unknownSink(name) }
                // The sink first, then its group: a deliverer that starts meanwhile finds no sink and stops.
                await sinks.halt(name)
                _ = try await sinks.store.deleteWebhookSink(named: name)
                await sinks.halt(name)
                await sinks.groups.forget(record.definition.groupName)
                _ = try await sinks.groups.store.deleteConsumerGroup(named: record.definition.groupName)
                await sinks.groups.forget(record.definition.groupName)
                configuration.logger.notice("a webhook sink was deleted", metadata: ["sink": "\(name)"])
                return GatewayResponse(status: .noContent)
            default:
                return methodNotAllowed(request, allow: "GET, HEAD, PUT, DELETE")
            }
        case (3, "parked"):
            guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
            _ = try await authorize(request, for: .consumeGroups)
            guard let record = try await sinks.store.webhookSink(named: name) else { throw unknownSink(name) }
            let parked = try await sinks.groups.store.consumerGroup(named: record.definition.groupName)?.parked ?? []
            var json = JSONWriter(buffer: ByteBuffer())
            json.raw("{"); json.key("sink"); json.string(name); json.raw(","); json.key("parked"); json.raw("[")
            for (index, event) in parked.enumerated() {
                if index > 0 { json.raw(",") }
                Self.writeParked(event, into: &json)
            }
            json.raw("]}")
            return .json(.ok, json.buffer)
        case (3, "replay"):
            guard request.method == .POST else { return methodNotAllowed(request, allow: "POST") }
            _ = try await authorize(request, for: .administerGroups)
            return try await replaySink(sinks, name, position: nil)
        default:
            if segments.count == 5, segments[2] == "parked", segments[4] == "replay" {
                guard request.method == .POST else { return methodNotAllowed(request, allow: "POST") }
                _ = try await authorize(request, for: .administerGroups)
                guard let number = Int64(segments[3]), number > 0 else { throw BadRequest("the parked event's position must be an integer > 0") }
                return try await replaySink(sinks, name, position: Position(number))
            }
            return .error(.notFound, "not_found", "no endpoint at \(request.method) /\(segments.joined(separator: "/")); see the README's \"Webhook sinks\"")
        }
    }

    private func unknownSink(_ name: String) -> StoreError {
        StoreError(.notFound, "there is no webhook sink named \(name); list them with GET /sinks or create it with PUT /sinks/\(name)")
    }

    private func inspectSink(_ sinks: WebhookSinkRegistry, _ name: String, secret: String? = nil) async throws -> GatewayResponse {
        guard let record = try await sinks.store.webhookSink(named: name) else { throw unknownSink(name) }
        var json = JSONWriter(buffer: ByteBuffer())
        try await writeSink(record, sinks, head: try await store.head(), secret: secret, into: &json)
        return .json(.ok, json.buffer)
    }

    /// `PUT /sinks/{name}`: creates the sink (201) or replaces its URL, filter, secrets and policy (200; its checkpoint
    /// and parked events stay); either way it is enabled (a sink disabled by a `410` starts again).
    private func putSink(_ sinks: WebhookSinkRegistry, _ name: String, _ request: GatewayRequest) async throws -> GatewayResponse {
        let document = try Self.jsonBody(request, example: #"{"url": "https://example.com/hooks", "secret": "whsec_…"}"#)
        let existing = try await sinks.store.webhookSink(named: name)
        // A new secret replaces the stored ones: they need not be readable then (a key lost, or another node's).
        let given = document["secret"] != nil
        let parsed = try Self.sinkDefinition(
            name, document, existing: try existing.map { given ? ((try? $0.definition.opened(with: sinks.seal)) ?? $0.definition) : try opened($0.definition, sinks) })
        let created = try await applySink(sinks, parsed.definition, start: try await parsed.start.position(in: store), exists: existing != nil)
        var response = try await inspectSink(sinks, name, secret: parsed.generatedSecret)
        if created { response.status = .created }
        return response
    }

    /// Where a new sink starts: after position 0, the head, or a position.
    enum SinkStart: Equatable, Sendable {
        case position(Position)
        case head

        func position(in store: any EventStore) async throws -> Position {
            switch self {
            case .position(let position): position
            case .head: try await store.head()
            }
        }
    }

    /// A sink's definition from a `PUT /sinks/{name}` document (README "Webhook sinks"); what `existing` had stands for
    /// what the document leaves out (its first secret, its policy). Without a secret and without `existing`, one is
    /// made (`generatedSecret`). Throws `BadRequest` naming what is wrong.
    static func sinkDefinition(
        _ name: String, _ document: JSONValue, existing: WebhookSinkDefinition?
    ) throws -> (definition: WebhookSinkDefinition, start: SinkStart, generatedSecret: String?) {
        guard let url = document["url"]?.stringValue else { throw BadRequest(#"url is required: the receiver's absolute http or https URL"#) }
        try checkSinkURL(url)
        let filter = try filter(document["filter"])
        var secrets: [String]
        var generated: String?
        if let value = document["secret"] {
            guard let secret = value.stringValue else { throw BadRequest("secret must be a string: whsec_ and the base64 of 16 to 128 random bytes") }
            try checkSecret(secret, key: "secret")
            secrets = [secret]
        } else if let existing {
            secrets = [existing.secrets[0]]
        } else {
            let secret = WebhookSignature.generateSecret()
            secrets = [secret]
            generated = secret
        }
        if let value = document["previous_secret"], !isNull(value) {
            guard let previous = value.stringValue else { throw BadRequest("previous_secret must be a string in the whsec_ form, or null") }
            try checkSecret(previous, key: "previous_secret")
            if previous != secrets[0] { secrets.append(previous) }
        }
        var policy = existing?.policy ?? WebhookSinkPolicy()
        func integer(_ key: String, _ range: ClosedRange<Int64>, _ unit: String) throws -> Int64? {
            guard let value = document[key] else { return nil }
            guard let number = value.int64Value, range.contains(number) else {
                throw BadRequest("\(key) must be an integer \(unit)from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        if let number = try integer("concurrency", 1...64, "") { policy.concurrency = Int(number) }
        if let number = try integer("timeout_ms", 100...60_000, "number of milliseconds ") { policy.timeout = .milliseconds(number) }
        if let number = try integer("maximum_attempts", 1...1000, "") { policy.maximumAttempts = Int(number) }
        if let number = try integer("backoff_ms", 0...3_600_000, "number of milliseconds ") { policy.backoff = .milliseconds(number) }
        if let number = try integer("maximum_backoff_ms", 0...3_600_000, "number of milliseconds ") { policy.maximumBackoff = .milliseconds(number) }
        var caCertificates: String?
        if let value = document["ca_certificates"], !isNull(value) {
            guard let pem = value.stringValue else { throw BadRequest(Self.caCertificatesHelp) }
            _ = try Self.trustRoots(pem)
            caCertificates = pem
        }
        let definition = try WebhookSinkDefinition(name: name, url: url, filter: filter, secrets: secrets, policy: policy, caCertificates: caCertificates)
        var start = SinkStart.position(.start)
        if let value = document["start"] {
            if value.stringValue == "head" {
                start = .head
            } else if let text = value.stringValue ?? value.int64Value.map(String.init), let number = Int64(text), number >= 0 {
                start = .position(Position(number))
            } else {
                throw BadRequest(#"start must be "0", "head" or a position (the sink delivers the events after it)"#)
            }
        }
        _ = try definition.groupDefinition(start: .start)  // its group's definition is valid too
        return (definition, start, generated)
    }

    static let caCertificatesHelp =
        "ca_certificates must be PEM CA certificates (-----BEGIN CERTIFICATE----- …), 1 to 32 of them in at most 64 KiB, or null for the system's trust store"

    /// The certificates of a sink's `ca_certificates`; throws `BadRequest` for anything else.
    static func trustRoots(_ pem: String) throws -> [NIOSSLCertificate] {
        guard (1...WebhookSinkDefinition.maximumCACertificatesBytes).contains(pem.utf8.count), pem.contains("-----BEGIN CERTIFICATE-----"),
            let certificates = try? NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)), (1...32).contains(certificates.count)
        else { throw BadRequest(caCertificatesHelp) }
        return certificates
    }

    /// A stored definition with its secrets opened; a secret sealed with another key (or without one given) is a
    /// `409`: the sink cannot be changed keeping secrets nobody here can read.
    private func opened(_ definition: WebhookSinkDefinition, _ sinks: WebhookSinkRegistry) throws -> WebhookSinkDefinition {
        do {
            return try definition.opened(with: sinks.seal)
        } catch {
            throw StoreError(.conflict, "\(error.description) (or put the sink with a new secret)")
        }
    }

    /// Stores the sink and its group (created, or changed keeping its checkpoint and parked events; its secrets sealed
    /// when the gateway has a sinks key) and starts its deliverer again; whether the sink was created.
    private func applySink(_ sinks: WebhookSinkRegistry, _ given: WebhookSinkDefinition, start: Position, exists: Bool) async throws -> Bool {
        let definition = given.sealed(with: sinks.seal)
        let name = definition.name
        let group = try definition.groupDefinition(start: start)
        await sinks.halt(name)
        let created: Bool
        do {
            await sinks.groups.forget(group.name)
            if try await sinks.groups.store.consumerGroup(named: group.name) != nil {
                if !exists {
                    // Left by a deletion that stopped half way: a new sink starts clean.
                    _ = try await sinks.groups.store.deleteConsumerGroup(named: group.name)
                    _ = try await sinks.groups.store.createConsumerGroup(group)
                } else {
                    try await sinks.groups.store.updateConsumerGroup(group)
                }
            } else {
                _ = try await sinks.groups.store.createConsumerGroup(group)
            }
            created = try await sinks.store.putWebhookSink(definition)
            await sinks.groups.forget(group.name)
        } catch {
            sinks.resume(name)  // from what is stored (it stops at once if there is no sink)
            throw error
        }
        sinks.resume(name)
        configuration.logger.notice("a webhook sink was put", metadata: ["sink": "\(name)", "url": "\(definition.url)", "created": "\(created)"])
        return created
    }

    /// Seals again with the current key the stored secrets of sinks that were stored as given or sealed with a previous
    /// key (`--sinks-previous-key-file`: a key rotation). Only the stored form changes: a disabled sink stays disabled,
    /// and a sink put or disabled meanwhile by another node is left to that change. Failures are logged.
    func resealSecrets() async {
        guard let sinks, let seal = sinks.seal else { return }
        do {
            for record in try await sinks.store.webhookSinks() where record.definition.secrets.contains(where: seal.shouldReseal) {
                guard try await sinks.store.replaceWebhookSinkDefinition(record.definition.sealed(with: seal), ifStoredAs: record.definition) else {
                    continue  // put again meanwhile (sealed then) or deleted
                }
                configuration.logger.notice("a webhook sink's secrets were sealed with the current sinks key", metadata: ["sink": "\(record.definition.name)"])
            }
        } catch {
            configuration.logger.error("could not seal the webhook sinks' secrets with the current key; they stay as stored", metadata: ["error": "\(error)"])
        }
    }

    /// Puts the sinks declared in the configuration (`--sink`, the config file's `sinks`) whose stored definition
    /// differs or which are missing; a declared sink that is stored as declared is left as it is (also when a `410`
    /// disabled it: `PUT` enables it). Failures are logged: the gateway serves on.
    func putDeclaredSinks() async {
        guard let sinks, !configuration.webhookSinks.isEmpty else { return }
        for declared in configuration.webhookSinks {
            do {
                let document = try JSONParser.parse(Array(declared.body.utf8))
                let existing = try await sinks.store.webhookSink(named: declared.name)
                let stored = try? existing.map { try $0.definition.opened(with: sinks.seal) }
                let parsed = try Self.sinkDefinition(declared.name, document, existing: stored ?? nil)
                // (Sealed secrets differ each time they are sealed: compare them opened.)
                if let stored, stored == parsed.definition { continue }
                _ = try await applySink(sinks, parsed.definition, start: try await parsed.start.position(in: store), exists: existing != nil)
            } catch {
                configuration.logger.error(
                    "a webhook sink declared in the configuration could not be put; it is left as stored",
                    metadata: ["sink": "\(declared.name)", "error": "\(error)"])
            }
        }
    }

    private func replaySink(_ sinks: WebhookSinkRegistry, _ name: String, position: Position?) async throws -> GatewayResponse {
        guard let record = try await sinks.store.webhookSink(named: name) else { throw unknownSink(name) }
        guard let runtime = try await sinks.groups.runtime(record.definition.groupName) else { throw unknownSink(name) }
        do {
            try await runtime.replay(position)
        } catch ConsumerGroupRuntime.Ledger.Failure.notParked(let missing) {
            return .error(.notFound, "not_found", "event \(missing.rawValue) is not parked in webhook sink \(name)")
        }
        return .json(.ok, ByteBuffer(string: #"{"replayed":true}"#))
    }

    /// An absolute `http` or `https` URL with a host.
    static func checkSinkURL(_ text: String) throws {
        guard (1...2048).contains(text.utf8.count), let url = URL(string: text), let scheme = url.scheme?.lowercased() else {
            throw BadRequest("url must be an absolute http or https URL such as https://example.com/hooks; \(text.prefix(200).debugDescription) is not")
        }
        guard scheme == "http" || scheme == "https" else {
            throw BadRequest("url's scheme must be http or https, not \(scheme.prefix(40).debugDescription)")
        }
        guard let host = url.host, !host.isEmpty else { throw BadRequest("url must name a host, as in https://example.com/hooks") }
        guard url.user == nil, url.password == nil else {
            throw BadRequest("url must carry no credentials: the receiver checks the webhook-signature header instead")
        }
    }

    static func isNull(_ value: JSONValue) -> Bool {
        if case .null = value.kind { true } else { false }
    }

    static func checkSecret(_ secret: String, key: String) throws {
        guard !secret.isEmpty else { throw BadRequest("\(key) is empty; give whsec_ and the base64 of 16 to 128 random bytes, or leave secret out to have one made") }
        guard WebhookSignature(secret: secret) != nil else {
            throw BadRequest("\(key) must be whsec_ followed by the base64 of 16 to 128 random bytes (the Standard Webhooks form)")
        }
    }

    /// A sink as the API shows it: never its secrets (their fingerprints instead), except a secret made for it just now.
    private func writeSink(_ record: WebhookSinkRecord, _ sinks: WebhookSinkRegistry, head: Position, secret: String? = nil, into json: inout JSONWriter) async throws {
        let definition = record.definition
        let policy = definition.policy
        let group = try await sinks.groups.store.consumerGroup(named: definition.groupName)
        let status = await sinks.groups.runningStatus(definition.groupName)
        json.raw("{")
        json.key("name"); json.string(definition.name); json.raw(",")
        json.key("url"); json.string(definition.url); json.raw(",")
        json.key("filter"); json.raw("{")
        let lists: [(StaticString, Set<String>)] = [
            ("aggregate_names", definition.filter.aggregateNames), ("event_types", definition.filter.eventTypes), ("aggregate_ids", definition.filter.aggregateIDs),
        ]
        for (index, (key, values)) in lists.enumerated() {
            if index > 0 { json.raw(",") }
            json.key(key); json.raw("[")
            for (position, value) in values.sorted().enumerated() {
                if position > 0 { json.raw(",") }
                json.string(value)
            }
            json.raw("]")
        }
        json.raw("},")
        json.key("secret_fingerprints"); json.raw("[")
        for (index, stored) in definition.secrets.enumerated() {
            if index > 0 { json.raw(",") }
            // The fingerprint of the secret itself, sealed or not; "sealed" when this gateway cannot open it.
            if let secret = try? (sinks.seal.map { try $0.open(stored) } ?? stored), !WebhookSecretSeal.isSealed(secret) {
                json.string(WebhookSignature.fingerprint(of: secret))
            } else {
                json.string("sealed")
            }
        }
        json.raw("],")
        if let secret {
            json.key("secret"); json.string(secret); json.raw(",")
        }
        json.key("ca_certificates")
        if let pem = definition.caCertificates { json.string(pem) } else { json.raw("null") }
        json.raw(",")
        json.key("concurrency"); json.integer(Int64(policy.concurrency)); json.raw(",")
        json.key("timeout_ms"); json.integer(policy.timeout.wholeMilliseconds); json.raw(",")
        json.key("maximum_attempts"); json.integer(Int64(policy.maximumAttempts)); json.raw(",")
        json.key("backoff_ms"); json.integer(policy.backoff.wholeMilliseconds); json.raw(",")
        json.key("maximum_backoff_ms"); json.integer(policy.maximumBackoff.wholeMilliseconds); json.raw(",")
        json.key("enabled"); json.raw(record.enabled ? "true" : "false"); json.raw(",")
        if !record.enabled {
            json.key("disabled_reason"); json.string(record.disabledReason); json.raw(",")
        }
        json.key("delivering"); json.raw(sinks.isDelivering(definition.name) && record.enabled ? "true" : "false"); json.raw(",")
        let checkpoint = max(group?.checkpoint ?? .start, status?.checkpoint ?? .start)
        json.key("checkpoint"); json.integer(checkpoint.rawValue); json.raw(",")
        json.key("head"); json.integer(head.rawValue); json.raw(",")
        json.key("lag"); json.integer(max(0, head.rawValue - checkpoint.rawValue)); json.raw(",")
        json.key("parked"); json.integer(Int64(group?.parked.count ?? 0))
        if let status {
            json.raw(",")
            json.key("in_flight"); json.integer(Int64(status.statistics.leased)); json.raw(",")
            json.key("redeliveries"); json.integer(Int64(status.statistics.redeliveries)); json.raw(",")
            json.key("acknowledged"); json.integer(Int64(status.statistics.acknowledged))
        }
        json.raw("}")
    }
}

import AsyncHTTPClient
import FluxCore
import FluxWire
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The webhook sinks of a gateway's store, each delivered by a ``WebhookSinkDeliverer`` task while the gateway runs
/// (``start(baseURL:)`` to ``stopAll()``), over one `HTTPClient` (connection reuse, TLS verification; no redirects
/// are followed) that ``stopAll()`` shuts down.
final class WebhookSinkRegistry: Sendable {
    let store: any WebhookSinkStore
    let groups: ConsumerGroupRegistry
    private let logger: Logger

    private struct State {
        var client: HTTPClient?
        var baseURL = ""
        var deliverers: [String: Task<Void, Never>] = [:]
        var stopped = false
    }

    private let state = Mutex(State())

    init(store: any WebhookSinkStore, groups: ConsumerGroupRegistry, logger: Logger) {
        self.store = store
        self.groups = groups
        self.logger = logger
    }

    /// Starts delivering every enabled sink (the gateway started); envelopes' `url`s start with `baseURL`.
    func start(baseURL: String) async {
        let started = state.withLock { state -> Bool in
            guard state.client == nil, !state.stopped else { return false }
            var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(60)))
            // Up to a sink's most deliveries in flight to one receiver at once.
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
            // A refused connection or a failed TLS handshake fails the attempt at once, with its cause (the group's
            // backoff retries), instead of being retried here until the timeout hides why.
            configuration.connectionPool.retryConnectionEstablishment = false
            configuration.httpVersion = .automatic
            state.client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
            state.baseURL = baseURL
            return true
        }
        guard started else { return }
        do {
            for record in try await store.webhookSinks() where record.enabled {
                try await ensureGroup(record.definition, start: .start)
                launch(record.definition)
            }
        } catch {
            logger.error("could not start the webhook sinks; put them again", metadata: ["error": "\(error)"])
        }
    }

    /// Whether the sink's deliverer runs on this node.
    func isDelivering(_ name: String) -> Bool {
        state.withLock { state in state.deliverers[name].map { _ in true } ?? false }
    }

    /// Stops the sink's deliverer (before its definition or group changes); its leases end when its group is forgotten.
    func halt(_ name: String) async {
        let task = state.withLock { $0.deliverers.removeValue(forKey: name) }
        task?.cancel()
        await task?.value
    }

    /// Starts the sink's deliverer again from its stored record, when it is enabled and the gateway runs.
    func resume(_ name: String) async throws {
        guard let record = try await store.webhookSink(named: name), record.enabled else { return }
        launch(record.definition)
    }

    /// Stops every deliverer and shuts the HTTP client down (the gateway stops).
    func stopAll() async {
        let (tasks, client) = state.withLock { state in
            state.stopped = true
            defer {
                state.deliverers = [:]
                state.client = nil
            }
            return (Array(state.deliverers.values), state.client)
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        do {
            try await client?.shutdown()
        } catch {
            logger.notice("the webhook sinks' HTTP client did not shut down cleanly", metadata: ["error": "\(error)"])
        }
    }

    /// Creates the sink's consumer group when it is missing, starting after `start`.
    func ensureGroup(_ definition: WebhookSinkDefinition, start: Position) async throws {
        if try await groups.store.consumerGroup(named: definition.groupName) == nil {
            do {
                _ = try await groups.store.createConsumerGroup(try definition.groupDefinition(start: start))
            } catch let error as StoreError where error.code == .conflict {
                // Created meanwhile (another node).
            }
        }
    }

    private func launch(_ definition: WebhookSinkDefinition) {
        let signatures = definition.secrets.compactMap(WebhookSignature.init(secret:))
        guard signatures.count == definition.secrets.count else {
            logger.error("a webhook sink's stored secret is not in the whsec_ form; put the sink again", metadata: ["sink": "\(definition.name)"])
            return
        }
        let (groups, store, logger) = (self.groups, self.store, self.logger)
        state.withLock { state in
            guard let client = state.client, !state.stopped else { return }
            state.deliverers[definition.name]?.cancel()
            let deliverer = WebhookSinkDeliverer(
                definition: definition, groups: groups, store: store,
                delivery: WebhookDelivery(client: client, url: definition.url, signatures: signatures, timeout: definition.policy.timeout),
                encoder: EnvelopeEncoder(baseURL: state.baseURL), logger: logger)
            state.deliverers[definition.name] = Task { await deliverer.run() }
        }
    }
}

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
    /// Seals secrets at rest; the deliverers open them.
    let seal: WebhookSecretSeal?
    private let logger: Logger
    private let metrics: GatewayMetrics

    private struct State {
        /// Made for the first deliverer (a gateway without sinks has none to shut down).
        var client: HTTPClient?
        var started = false
        var baseURL = ""
        var deliverers: [String: (id: UInt64, task: Task<Void, Never>)] = [:]
        var nextID: UInt64 = 0
        var watcher: Task<Void, Never>?
        var stopped = false
        /// Stored definitions whose deliverer found them unusable here (it logged why): not started again by the
        /// watcher until the sink is put or changed.
        var unusable: [String: WebhookSinkDefinition] = [:]
    }

    private let state = Mutex(State())

    /// How often the registry looks for enabled sinks that no deliverer serves here (created or enabled on another
    /// node that shares the store, or whose deliverer stopped).
    static let watchInterval: Duration = .seconds(5)

    init(store: any WebhookSinkStore, groups: ConsumerGroupRegistry, seal: WebhookSecretSeal?, logger: Logger, metrics: GatewayMetrics) {
        self.store = store
        self.groups = groups
        self.seal = seal
        self.logger = logger
        self.metrics = metrics
    }

    /// Starts delivering every enabled sink (the gateway started), and looks every ``watchInterval`` for enabled sinks
    /// that no deliverer serves here; envelopes' `url`s start with `baseURL`.
    func start(baseURL: String) async {
        let started = state.withLock { state -> Bool in
            guard !state.started, !state.stopped else { return false }
            state.started = true
            state.baseURL = baseURL
            return true
        }
        guard started else { return }
        // In a task, not awaited: a store that is slow to answer does not hold the gateway's start.
        let watcher = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                await self.launchIdle()
                try? await Task.sleep(for: Self.watchInterval)
            }
        }
        state.withLock { state in
            if state.stopped { watcher.cancel() } else { state.watcher = watcher }
        }
    }

    /// Starts a deliverer for each enabled sink that has none here.
    private func launchIdle() async {
        do {
            // (A sink's group is made by PUT before the sink is stored, and deleted after it: a deliverer never
            // makes one, so that none is left behind by a deletion under way.)
            for record in try await store.webhookSinks() where record.enabled && !isDelivering(record.definition.name) {
                let name = record.definition.name
                if state.withLock({ $0.unusable[name] == record.definition }) { continue }
                launch(name)
            }
        } catch {
            logger.warning("could not read the webhook sinks; trying again shortly", metadata: ["error": "\(error)"])
        }
    }

    /// Whether a deliverer of the sink runs on this node.
    func isDelivering(_ name: String) -> Bool {
        state.withLock { $0.deliverers[name] != nil }
    }

    /// Stops the sink's deliverer (before its definition or group changes); its leases end when its group is forgotten.
    func halt(_ name: String) async {
        let task = state.withLock { $0.deliverers.removeValue(forKey: name)?.task }
        task?.cancel()
        await task?.value
    }

    /// Starts the sink's deliverer again, when the gateway runs (it stops at once when the sink is not enabled).
    func resume(_ name: String) {
        launch(name)
    }

    /// Stops every deliverer and shuts the HTTP client down (the gateway stops).
    func stopAll() async {
        let (tasks, client, watcher) = state.withLock { state in
            state.stopped = true
            defer {
                state.deliverers = [:]
                state.client = nil
                state.watcher = nil
            }
            return (state.deliverers.values.map(\.task), state.client, state.watcher)
        }
        watcher?.cancel()
        for task in tasks { task.cancel() }
        await watcher?.value
        for task in tasks { await task.value }
        do {
            try await client?.shutdown()
        } catch {
            logger.notice("the webhook sinks' HTTP client did not shut down cleanly", metadata: ["error": "\(error)"])
        }
    }

    /// The sinks' HTTP client: TLS verified (the system's trust store), connections reused, no redirects followed.
    private static func makeClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(60)))
        // Up to a sink's most deliveries in flight to one receiver at once.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        // A refused connection or a failed TLS handshake fails the attempt at once, with its cause (the group's
        // backoff retries), instead of being retried here until the timeout hides why.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.httpVersion = .automatic
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    private func launch(_ name: String) {
        let (groups, store, seal, logger, metrics) = (self.groups, self.store, self.seal, self.logger, self.metrics)
        state.withLock { state in
            guard state.started, !state.stopped else { return }
            let client = state.client ?? Self.makeClient()
            state.client = client
            state.deliverers[name]?.task.cancel()
            let deliverer = WebhookSinkDeliverer(
                name: name, groups: groups, store: store, seal: seal, client: client, encoder: EnvelopeEncoder(baseURL: state.baseURL), logger: logger,
                metrics: metrics)
            state.nextID += 1
            let id = state.nextID
            state.unusable[name] = nil
            let task = Task { [weak self] in
                let ending = await deliverer.run()
                // Ended by itself (410, deleted, disabled, unusable): no longer delivering here, unless another took
                // its place.
                self?.state.withLock { state in
                    guard state.deliverers[name]?.id == id else { return }
                    state.deliverers[name] = nil
                    if case .unusable(let definition) = ending { state.unusable[name] = definition }
                }
            }
            state.deliverers[name] = (id, task)
        }
    }
}

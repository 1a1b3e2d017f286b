import AsyncHTTPClient
import FluxCore
import FluxWire
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// One webhook sink at work: the one member (``member``) of the sink's consumer group, it leases the group's events
/// and POSTs each to the receiver (``WebhookDelivery``). The group's ledger gives the guarantees: an aggregate's
/// events come in order and one at a time (a lease may hold several of one aggregate: they are posted one after the
/// other, and a failure releases the later ones), different aggregates go out in parallel up to the sink's
/// concurrency (the member's credit), failures are retried after a backoff and parked after the sink's attempts,
/// and the checkpoint is stored as events are acknowledged.
struct WebhookSinkDeliverer: Sendable {
    /// The member name the gateway takes in its sinks' groups.
    static let member = "gateway"

    let name: String
    let groups: ConsumerGroupRegistry
    let store: any WebhookSinkStore
    let seal: WebhookSecretSeal?
    let client: HTTPClient
    let encoder: EnvelopeEncoder
    let logger: Logger
    let metrics: GatewayMetrics

    /// Set when the receiver answered `410 Gone`: the sink is disabled and delivers nothing more.
    final class Gone: Sendable {
        let flag = Atomic<Bool>(false)
        var isSet: Bool { flag.load(ordering: .relaxed) }
    }

    /// Delivers until cancelled (the gateway stops; the registry starts another for a changed sink), the receiver
    /// answers `410`, or the sink is found deleted or disabled. The sink's record is read again each time its group
    /// starts again (a change, here or on another node, retires the group's runtime), so a changed URL, secret or
    /// policy is used from then on.
    func run() async -> Ending {
        let gone = Gone()
        let logger = self.logger
        var groupName = WebhookSinkDefinition.groupPrefix + name
        while !Task.isCancelled, !gone.isSet {
            do {
                guard let record = try await store.webhookSink(named: name), record.enabled else {
                    logger.info("a webhook sink stops: it was deleted or disabled", metadata: ["sink": "\(name)"])
                    return .stopped
                }
                groupName = record.definition.groupName
                let definition: WebhookSinkDefinition
                do {
                    definition = try record.definition.opened(with: seal)
                } catch {
                    logger.error("a webhook sink cannot sign: \(error.description)", metadata: ["sink": "\(name)"])
                    return .unusable(record.definition)
                }
                let signatures = definition.secrets.compactMap(WebhookSignature.init(secret:))
                guard signatures.count == definition.secrets.count else {
                    logger.error("a webhook sink's stored secret is not in the whsec_ form; put the sink again", metadata: ["sink": "\(name)"])
                    return .unusable(record.definition)
                }
                var tls: TLSConfiguration?
                if let pem = definition.caCertificates {
                    guard let roots = try? GatewayRouter.trustRoots(pem) else {
                        logger.error("a webhook sink's stored CA certificates are not PEM certificates; put the sink again", metadata: ["sink": "\(name)"])
                        return .unusable(record.definition)
                    }
                    tls = TLSConfiguration.makeClientConfiguration()
                    tls?.trustRoots = .certificates(roots)
                }
                let delivery = WebhookDelivery(client: client, url: definition.url, signatures: signatures, timeout: definition.policy.timeout, tls: tls)
                guard let runtime = try await groups.runtime(groupName) else {
                    logger.warning("a webhook sink's consumer group is missing; put the sink again", metadata: ["sink": "\(name)"])
                    try await Task.sleep(for: .seconds(1))
                    continue
                }
                do {
                    try await withThrowingDiscardingTaskGroup { group in
                        while !Task.isCancelled, !gone.isSet {
                            let (_, deliveries) = try await runtime.fetch(member: Self.member, max: definition.policy.concurrency, wait: .seconds(1))
                            for chain in Self.chains(deliveries) {
                                group.addTask { try await deliver(chain, of: definition, with: delivery, through: runtime, gone: gone) }
                            }
                        }
                    }
                } catch {
                    await runtime.flush()
                    throw error
                }
                await runtime.flush()
            } catch {
                if Task.isCancelled || gone.isSet { break }
                // The group was changed or reset meanwhile (its runtime retired), or the store failed: start again
                // from the sink's and the group's stored state.
                logger.notice("a webhook sink starts its group again", metadata: ["sink": "\(name)", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        if gone.isSet {
            // What it still held goes back to the group, counting no attempt; the group starts again when the sink is put.
            await groups.forget(groupName)
        }
        return .stopped
    }

    /// Why ``run()`` ended.
    enum Ending: Sendable {
        /// Cancelled, deleted, disabled or gone (410).
        case stopped
        /// This stored definition cannot be delivered here (a secret sealed with another key, a damaged secret or CA):
        /// the registry starts no deliverer for it again until the sink is put (its error was logged once).
        case unusable(WebhookSinkDefinition)
    }

    /// Deliveries grouped by aggregate, each group in the ledger's (position) order.
    static func chains(_ deliveries: [ConsumerGroupRuntime.Ledger.Delivery]) -> [[ConsumerGroupRuntime.Ledger.Delivery]] {
        var order: [String] = []
        var chains: [String: [ConsumerGroupRuntime.Ledger.Delivery]] = [:]
        for delivery in deliveries {
            if chains[delivery.event.aggregateID] == nil { order.append(delivery.event.aggregateID) }
            chains[delivery.event.aggregateID, default: []].append(delivery)
        }
        return order.map { chains[$0]! }
    }

    /// Posts one aggregate's leased events one after the other; the first that fails is rejected (the ledger releases
    /// the later ones without counting an attempt) and ends the chain.
    private func deliver(
        _ chain: [ConsumerGroupRuntime.Ledger.Delivery], of definition: WebhookSinkDefinition, with delivery: WebhookDelivery,
        through runtime: ConsumerGroupRuntime, gone: Gone
    ) async throws {
        for leased in chain {
            guard !gone.isSet, !Task.isCancelled else { return }  // left leased: the runtime is forgotten or stopped
            var json = JSONWriter(buffer: ByteBuffer())
            encoder.write(leased.event, includePayload: true, into: &json)
            let started = ContinuousClock.now
            let outcome = await delivery.post(id: leased.event.eventID, body: json.buffer)
            if !Task.isCancelled { metrics.recordSinkDelivery(definition.name, outcome: outcome.label, duration: ContinuousClock.now - started) }
            switch outcome {
            case .delivered:
                // Stored in the background: the receiver has it, and a crash before the write only delivers it again.
                try await runtime.acknowledgeInBackground([leased.event.position], by: Self.member)
            case .gone:
                guard !gone.flag.exchange(true, ordering: .relaxed) else { return }
                let reason = "the receiver answered 410 Gone at \(Timestamp.rfc3339(milliseconds: Timestamp.nowMilliseconds())); PUT the sink again to enable it"
                logger.warning("a webhook sink's receiver answered 410 Gone: the sink is disabled", metadata: ["sink": "\(definition.name)", "url": "\(definition.url)"])
                try? await store.disableWebhookSink(named: definition.name, reason: reason)
                return
            case .failed(let reason, _):
                guard !Task.isCancelled else { return }
                logger.info(
                    "a webhook delivery failed",
                    metadata: ["sink": "\(definition.name)", "position": "\(leased.event.position)", "attempt": "\(leased.attempt)", "reason": "\(reason)"])
                try await runtime.reject(leased.event.position, by: Self.member, reason: reason)
                return
            }
        }
    }
}

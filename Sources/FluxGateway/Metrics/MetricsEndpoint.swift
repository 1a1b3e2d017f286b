import NIOCore
import NIOHTTP1

extension GatewayRouter {
    /// `GET /metrics`: this gateway's metrics in the Prometheus text format (version 0.0.4).
    func metricsExposition() async -> GatewayResponse {
        let headers: HTTPHeaders = ["Content-Type": GatewayMetrics.contentType, "Cache-Control": "no-store"]
        return GatewayResponse(status: .ok, headers: headers, body: ByteBuffer(bytes: await metricsSnapshot()))
    }

    /// The metrics as `GET /metrics` serves them (groups' gauges refreshed first), in the Prometheus text format:
    /// the one snapshot both the endpoint and ``GraphiteReporter`` render.
    func metricsSnapshot() async -> [UInt8] {
        await refreshGroupMetrics()
        return metrics.exposition()
    }
}

extension GatewayRouter {
    /// Sets the consumer groups' gauges from their stored records and, for groups at work on this node, their
    /// runtimes. A store that cannot be read leaves the last figures (and `/metrics` still answers).
    func refreshGroupMetrics() async {
        guard let groups else { return }
        guard let records = try? await groups.store.consumerGroups(), let head = try? await store.head() else { return }
        for record in records {
            let status = await groups.runningStatus(record.definition.name)
            let checkpoint = max(record.checkpoint, status?.checkpoint ?? .start)
            metrics.recordGroup(
                record.definition.name, lag: head.rawValue - checkpoint.rawValue, inFlight: status?.statistics.leased ?? 0,
                members: status?.members.count ?? 0, parked: record.parked.count)
        }
        metrics.forgetGroups(except: Set(records.map(\.definition.name)))
        // A sink's lag and parked events are its group's (`group="sink.NAME"`); its deliveries are counted apart.
        if let sinks, let stored = try? await sinks.store.webhookSinks() {
            metrics.forgetSinks(except: Set(stored.map(\.definition.name)))
        }
    }
}

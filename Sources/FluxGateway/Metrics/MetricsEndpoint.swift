import NIOCore
import NIOHTTP1

extension GatewayRouter {
    /// `GET /metrics`: this gateway's metrics in the Prometheus text format (version 0.0.4).
    func metricsExposition() -> GatewayResponse {
        let headers: HTTPHeaders = ["Content-Type": GatewayMetrics.contentType, "Cache-Control": "no-store"]
        return GatewayResponse(status: .ok, headers: headers, body: ByteBuffer(bytes: metrics.exposition()))
    }
}

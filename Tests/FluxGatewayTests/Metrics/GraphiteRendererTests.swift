@testable import FluxGateway
import Testing

/// Rendering a `/metrics` snapshot as Graphite plaintext lines: paths, sanitizing, histograms, values.
@Suite struct GraphiteRendererTests {
    func render(_ exposition: String, prefix: String = "fluxgate", timestamp: Int64 = 1_700_000_000) -> [String] {
        let bytes = GraphiteRenderer.render(exposition: Array(exposition.utf8), prefix: prefix, timestamp: timestamp)
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    @Test(arguments: [
        ("appended_events_total", "appended_events_total"),
        ("/events/{id}", "_events__id_"),
        ("a.b c", "a_b_c"),
        ("0.005", "0_005"),
        ("é-ok_9", "_-ok_9"),
        ("", "_"),
    ])
    func sanitizeKeepsOnlyGraphiteSafeCharacters(input: String, expected: String) {
        #expect(GraphiteRenderer.sanitize(input) == expected)
    }

    @Test func countersAndGaugesBecomeOneLineEachUnderThePrefixWithoutTheNamespace() {
        let lines = render("""
            # HELP fluxgate_appended_events_total Events stored.
            # TYPE fluxgate_appended_events_total counter
            fluxgate_appended_events_total 42
            # TYPE fluxgate_connections gauge
            fluxgate_connections 3
            # TYPE app_jobs gauge
            app_jobs 1.5

            """, prefix: "prod.gw-1")
        #expect(lines == [
            "prod.gw-1.appended_events_total 42 1700000000",
            "prod.gw-1.connections 3 1700000000",
            "prod.gw-1.app_jobs 1.5 1700000000",
            "",
        ])
    }

    @Test func labelsBecomeNameValueComponentsInLabelNameOrder() {
        let lines = render("""
            # TYPE fluxgate_http_requests_total counter
            fluxgate_http_requests_total{route="/events/{id}",method="GET",status="200"} 7
            fluxgate_http_requests_total{status="404",route="other",method="POST"} 1
            # TYPE fluxgate_group_lag_events gauge
            fluxgate_group_lag_events{group="billing.v2 \\"eu\\""} 5
            """)
        #expect(lines.dropLast() == [
            "fluxgate.http_requests_total.method_GET.route__events__id_.status_200 7 1700000000",
            "fluxgate.http_requests_total.method_POST.route_other.status_404 1 1700000000",
            "fluxgate.group_lag_events.group_billing_v2__eu_ 5 1700000000",
        ])
    }

    @Test func histogramSeriesEndInBucketSumAndCount() {
        let lines = render("""
            # TYPE fluxgate_http_request_duration_seconds histogram
            fluxgate_http_request_duration_seconds_bucket{route="/health",le="0.005"} 2
            fluxgate_http_request_duration_seconds_bucket{route="/health",le="+Inf"} 3
            fluxgate_http_request_duration_seconds_sum{route="/health"} 0.0123
            fluxgate_http_request_duration_seconds_count{route="/health"} 3
            # TYPE rpc_seconds summary
            rpc_seconds{quantile="0.5"} 0.2
            rpc_seconds_sum 4
            rpc_seconds_count 10
            """)
        #expect(lines.dropLast() == [
            "fluxgate.http_request_duration_seconds.route__health.bucket.le_0_005 2 1700000000",
            "fluxgate.http_request_duration_seconds.route__health.bucket.le_inf 3 1700000000",
            "fluxgate.http_request_duration_seconds.route__health.sum 0.0123 1700000000",
            "fluxgate.http_request_duration_seconds.route__health.count 3 1700000000",
            "fluxgate.rpc_seconds.quantile_0_5 0.2 1700000000",
            "fluxgate.rpc_seconds.sum 4 1700000000",
            "fluxgate.rpc_seconds.count 10 1700000000",
        ])
    }

    @Test func valuesThatAreNotFiniteAreLeftOut() {
        let lines = render("""
            # TYPE a gauge
            a NaN
            # TYPE b gauge
            b +Inf
            # TYPE c gauge
            c 1e-05
            """)
        #expect(lines.dropLast() == ["fluxgate.c 1e-05 1700000000"])
    }

    /// The gateway's own exposition, with every kind of series in use: every line is `path value timestamp`, every
    /// path component is Graphite-safe, and no two series share a path.
    @Test func theGatewaysOwnMetricsRenderToDistinctSafePaths() {
        let metrics = GatewayMetrics()
        metrics.recordRequest(route: .event, method: .GET, status: .ok, duration: .milliseconds(3))
        metrics.recordRequest(route: .other, method: .POST, status: .notFound, duration: nil)
        metrics.recordStoreCall(.append, duration: .microseconds(80))
        metrics.recordWebSocketClose(code: 1006)
        metrics.recordGroup("billing.v2", lag: 4, inFlight: 1, members: 2, parked: 0)
        metrics.enableGraphiteMetrics()
        let lines = render(String(decoding: metrics.exposition(), as: UTF8.self)).dropLast()
        #expect(lines.count > 100)
        var paths = Set<String>()
        for line in lines {
            #expect(line.wholeMatch(of: /[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)* [-+0-9.eE]+ 1700000000/) != nil, "\(line)")
            let path = String(line.split(separator: " ")[0])
            #expect(paths.insert(path).inserted, "two series at \(path)")
        }
        #expect(paths.contains("fluxgate.appended_events_total"))
        #expect(paths.contains("fluxgate.graphite_dropped_snapshots_total"))
        #expect(paths.contains("fluxgate.group_lag_events.group_billing_v2"))
        #expect(paths.contains("fluxgate.store_operation_duration_seconds.operation_append.count"))
        #expect(paths.contains("fluxgate.websocket_closes_total.code_1006"))
    }
}

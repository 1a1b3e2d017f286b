@testable import FluxGateway
import Testing

/// Reading the Prometheus text format the gateway serves: names, escaped label values, families and their types.
@Suite struct PrometheusTextSampleTests {
    @Test func samplesCarryTheirLabelsUnescapedAndTheirFamilysType() throws {
        let text = #"""
            # HELP x_seconds Latency.
            # TYPE x_seconds histogram
            x_seconds_bucket{path="a\"b\\c\nd",le="1"} 4
            x_seconds_sum 2.5 1700000000000
            # TYPE y counter
            y{a="1", b="2"} 3
            z 1
            not a sample
            """#
        let samples = PrometheusTextSample.parse(Array(text.utf8))
        #expect(samples.map(\.name) == ["x_seconds_bucket", "x_seconds_sum", "y", "z"])
        let bucket = try #require(samples.first)
        #expect(bucket.labels.map(\.name) == ["path", "le"])
        #expect(bucket.labels.first?.value == "a\"b\\c\nd")
        #expect(bucket.familyName == "x_seconds" && bucket.familyType == "histogram")
        #expect(samples[1].value == 2.5 && samples[1].valueText == "2.5", "a timestamp after the value is ignored")
        #expect(samples[2].labels.map(\.value) == ["1", "2"] && samples[2].familyType == "counter")
        #expect(samples[3].familyType == "untyped" && samples[3].familyName == "z")
    }

    @Test func aCounterNamedLikeAHistogramSeriesKeepsItsOwnFamily() {
        let samples = PrometheusTextSample.parse(Array("# TYPE jobs_count counter\njobs_count 2\n".utf8))
        #expect(samples.first?.familyName == "jobs_count" && samples.first?.familyType == "counter")
    }
}

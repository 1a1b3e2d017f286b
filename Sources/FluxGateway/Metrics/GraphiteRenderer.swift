/// Renders a metrics snapshot (the gateway's Prometheus text exposition, the bytes `GET /metrics` serves) as
/// Graphite plaintext protocol lines, `path value timestamp\n`. Pure: no I/O, no clock (the timestamp is given).
///
/// A series' path is, dot-separated (README "Metrics", "Pushing to Graphite"):
/// 1. the prefix (`fluxgate`, or `--graphite-prefix`);
/// 2. the metric family's name without its `fluxgate_` namespace (the prefix stands for it):
///    `fluxgate_appended_events_total` → `appended_events_total`;
/// 3. one component `label_value` per label, in label-name order: `{route="/events",method="GET",status="200"}` →
///    `method_GET.route__events.status_200`;
/// 4. for a histogram's or summary's series a last part: `count`, `sum`, or `bucket.le_0_005` (`le_inf` for
///    `+Inf`).
///
/// Every component is sanitized: a character other than `A–Z a–z 0–9 _ -` becomes `_`. Samples whose value is not
/// finite (`NaN`, `±Inf`) are left out: Graphite stores numbers.
public enum GraphiteRenderer {
    /// The namespace the gateway's own metrics carry; the prefix replaces it.
    static let namespace = "fluxgate_"

    /// Whether `byte` may appear in a Graphite path component as written: `A–Z a–z 0–9 _ -`.
    static func isPathByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    /// `text` as one path component: every character other than `A–Z a–z 0–9 _ -` (a dot, a space, a slash, braces,
    /// anything beyond ASCII) becomes one `_`; an empty text becomes `_`.
    public static func sanitize(_ text: some StringProtocol) -> String {
        guard !text.isEmpty else { return "_" }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            if scalar.isASCII, isPathByte(UInt8(scalar.value)) {
                bytes.append(UInt8(scalar.value))
            } else {
                bytes.append(UInt8(ascii: "_"))
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The Graphite lines of `exposition` (Prometheus text format), each series' path under `prefix` (already
    /// checked with ``GraphiteConfiguration/checkPrefix(_:)``), all stamped with `timestamp` (Unix seconds).
    public static func render(exposition: [UInt8], prefix: String, timestamp: Int64) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(exposition.count * 3 / 2)
        let stamp = " " + String(timestamp) + "\n"
        for sample in PrometheusTextSample.parse(exposition) where sample.value.isFinite {
            output.append(contentsOf: path(of: sample, prefix: prefix).utf8)
            output.append(UInt8(ascii: " "))
            output.append(contentsOf: sample.valueText.utf8)
            output.append(contentsOf: stamp.utf8)
        }
        return output
    }

    /// The path of one sample (see the type's documentation).
    static func path(of sample: PrometheusTextSample, prefix: String) -> String {
        var family = Substring(sample.familyName)
        if family.hasPrefix(namespace), family.count > namespace.count { family = family.dropFirst(namespace.count) }
        var components = [prefix, sanitize(family)]
        let isHistogram = sample.familyType == "histogram"
        let isBucket = isHistogram && sample.name == sample.familyName + "_bucket"
        var bound: String?
        for label in sample.labels.sorted(by: { $0.name < $1.name }) {
            if isBucket && label.name == "le" {
                bound = label.value
                continue
            }
            components.append(sanitize(label.name) + "_" + sanitize(label.value))
        }
        if isBucket {
            components.append("bucket")
            let limit = bound.map { $0 == "+Inf" ? "inf" : sanitize($0) } ?? "inf"
            components.append("le_" + limit)
        } else if isHistogram || sample.familyType == "summary" {
            if sample.name == sample.familyName + "_sum" {
                components.append("sum")
            } else if sample.name == sample.familyName + "_count" {
                components.append("count")
            }
        }
        return components.joined(separator: ".")
    }
}

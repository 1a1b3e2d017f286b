/// One sample line of the Prometheus text format (version 0.0.4): `name{label="value",…} value [timestamp]`,
/// with the `# TYPE` of its family. ``GraphiteRenderer`` reads `/metrics`' own bytes with it, so the values pushed
/// to Graphite are exactly the ones Prometheus scrapes (there is one place that produces them, ``GatewayMetrics``).
struct PrometheusTextSample: Equatable {
    /// The sample's name as written (`…_bucket`, `…_sum` and `…_count` for a histogram's series).
    var name: String
    /// Its labels in the order written, values unescaped.
    var labels: [(name: String, value: String)]
    /// Its value as written (`3`, `0.25`, `1e-05`); ``value`` is the number.
    var valueText: String
    var value: Double
    /// The type of the family the sample belongs to (`counter`, `gauge`, `histogram`, `summary`, `untyped`), from
    /// the family's `# TYPE` line; `untyped` without one.
    var familyType: String
    /// The family's name: ``name`` without `_bucket`, `_sum` or `_count` for a histogram or summary series.
    var familyName: String

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.name == rhs.name && lhs.labels.map(\.name) == rhs.labels.map(\.name) && lhs.labels.map(\.value) == rhs.labels.map(\.value)
            && lhs.valueText == rhs.valueText && lhs.familyType == rhs.familyType && lhs.familyName == rhs.familyName
    }

    /// The samples of an exposition, in order. Comments other than `# TYPE`, blank lines and lines that are not
    /// samples (the format is the gateway's own, so there are none) are skipped.
    static func parse(_ exposition: [UInt8]) -> [PrometheusTextSample] {
        var types: [String: String] = [:]
        var samples: [PrometheusTextSample] = []
        for line in exposition.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            if line.first == UInt8(ascii: "#") {
                // "# TYPE name type"
                let words = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
                if words.count == 4, words[1].elementsEqual("TYPE".utf8) {
                    types[String(decoding: words[2], as: UTF8.self)] = String(decoding: words[3], as: UTF8.self)
                }
                continue
            }
            guard var sample = parseSample(line) else { continue }
            (sample.familyName, sample.familyType) = family(of: sample.name, types: types)
            samples.append(sample)
        }
        return samples
    }

    /// The family a sample name belongs to, and its type.
    private static func family(of name: String, types: [String: String]) -> (String, String) {
        if let type = types[name] { return (name, type) }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let type = types[base], type == "histogram" || (type == "summary" && suffix != "_bucket") { return (base, type) }
        }
        return (name, "untyped")
    }

    /// Parses `name{labels} value [timestamp]`; `nil` for a line that is not one.
    private static func parseSample(_ line: ArraySlice<UInt8>) -> PrometheusTextSample? {
        var index = line.startIndex
        let nameStart = index
        while index < line.endIndex, line[index] != UInt8(ascii: "{"), line[index] != UInt8(ascii: " "), line[index] != UInt8(ascii: "\t") {
            index += 1
        }
        guard index > nameStart else { return nil }
        let name = String(decoding: line[nameStart..<index], as: UTF8.self)
        var labels: [(name: String, value: String)] = []
        if index < line.endIndex, line[index] == UInt8(ascii: "{") {
            index += 1
            while true {
                while index < line.endIndex, line[index] == UInt8(ascii: " ") || line[index] == UInt8(ascii: ",") { index += 1 }
                guard index < line.endIndex else { return nil }
                if line[index] == UInt8(ascii: "}") {
                    index += 1
                    break
                }
                let labelStart = index
                while index < line.endIndex, line[index] != UInt8(ascii: "=") { index += 1 }
                guard index + 1 < line.endIndex, line[index + 1] == UInt8(ascii: "\"") else { return nil }
                let labelName = String(decoding: line[labelStart..<index], as: UTF8.self).trimmingSpaces()
                index += 2
                var value: [UInt8] = []
                while true {
                    guard index < line.endIndex else { return nil }
                    let byte = line[index]
                    index += 1
                    if byte == UInt8(ascii: "\"") { break }
                    if byte == UInt8(ascii: "\\"), index < line.endIndex {
                        let escaped = line[index]
                        index += 1
                        value.append(escaped == UInt8(ascii: "n") ? UInt8(ascii: "\n") : escaped)
                    } else {
                        value.append(byte)
                    }
                }
                labels.append((labelName, String(decoding: value, as: UTF8.self)))
            }
        }
        let rest = line[index...].split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") })
        guard let first = rest.first else { return nil }
        let valueText = String(decoding: first, as: UTF8.self)
        guard let value = Double(valueText) else { return nil }
        return PrometheusTextSample(name: name, labels: labels, valueText: valueText, value: value, familyType: "untyped", familyName: name)
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var text = Substring(self)
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return String(text)
    }
}

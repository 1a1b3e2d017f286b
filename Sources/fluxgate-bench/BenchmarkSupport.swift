import Foundation

// Shared by the benchmarks: option parsing, medians, report lines.

struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func value(of option: String, in arguments: [String]) -> String? {
    guard let index = arguments.firstIndex(of: option), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func report(_ name: String, _ rates: [Double]) {
    let label = name.padding(toLength: max(name.count, 42), withPad: " ", startingAt: 0)
    print("  \(label) " + String(format: "median %10.0f events/s   (min %.0f, max %.0f)", median(rates), rates.min() ?? 0, rates.max() ?? 0))
}

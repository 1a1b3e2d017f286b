import Foundation

/// What `clients/python/group_worker.py` printed: a JSON line per event it handled. The group tests read it to check
/// the consumer groups' guarantees from the members' side.
public enum GroupWorkerLog {
    /// One line a worker printed: an event it handled.
    public struct Handled: Sendable {
        public var worker: String
        public var position: Int
        public var aggregate: String
        public var version: Int
        public var attempt: Int
        /// When the handler began and ended, in seconds of the machine's monotonic clock (Python's `time.monotonic()`: every worker on this machine reads the same clock).
        public var started: Double
        public var ended: Double
        public var rejected: Bool
    }

    /// The handled events in `lines` (other lines are skipped).
    public static func handled(_ lines: [String]) -> [Handled] {
        lines.compactMap { line in
            guard let item = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let event = item["event"] as? [String: Any]
            else { return nil }
            return Handled(
                worker: item["worker"] as? String ?? "", position: event["position"] as? Int ?? -1, aggregate: event["aggregate_id"] as? String ?? "",
                version: event["aggregate_version"] as? Int ?? -1, attempt: item["attempt"] as? Int ?? -1, started: item["started"] as? Double ?? 0,
                ended: item["ended"] as? Double ?? 0, rejected: item["rejected"] as? Bool ?? false)
        }
    }

    /// `handled` without the handlings by `killed` workers (or by the workers of a killed node) that another handling
    /// of the same event followed: a worker prints an event when it has handled it and acknowledges the batch after,
    /// so what it printed of the batch it died in was never acknowledged, and was rightly handed out again.
    public static func droppingRedone(_ handled: [Handled], by killed: (String) -> Bool) -> [Handled] {
        let last = Dictionary(handled.map { ($0.position, $0.started) }, uniquingKeysWith: max)
        return handled.filter { !killed($0.worker) || last[$0.position] == $0.started }
    }

    /// Problems with the guarantees in what the workers handled (at most 20): each aggregate's events in version
    /// order (an event may be handled again after a failure, never an earlier one after a later one), and never by
    /// two workers at once.
    public static func orderProblems(_ handled: [Handled]) -> [String] {
        var problems: [String] = []
        for (aggregate, events) in Dictionary(grouping: handled, by: \.aggregate) {
            let byStart = events.sorted { $0.started < $1.started }
            for (earlier, later) in zip(byStart, byStart.dropFirst()) {
                if later.version < earlier.version {
                    problems.append("\(aggregate): version \(later.version) after \(earlier.version)")
                }
                if later.worker != earlier.worker, later.started < earlier.ended {
                    problems.append("\(aggregate): \(earlier.worker) and \(later.worker) at once")
                }
            }
        }
        return problems.sorted().prefix(20).map { $0 }
    }
}

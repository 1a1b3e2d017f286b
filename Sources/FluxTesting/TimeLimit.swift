/// A wait that ran out of time: the peer or process it waited for hung.
public struct TimeLimitExceeded: Error, CustomStringConvertible {
    public var description: String
}

/// Runs `operation`, failing with ``TimeLimitExceeded`` (and cancelling it) after `limit`, so that a peer that never
/// answers fails the test instead of hanging the run. `operation` must end when cancelled, as NIO's async channels
/// and `AsyncStream`s do.
public func withTimeLimit<Result: Sendable>(
    _ limit: Duration, _ what: String = "the operation", _ operation: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    try await withThrowingTaskGroup(of: Result.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TimeLimitExceeded(description: "\(what) took more than \(limit)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

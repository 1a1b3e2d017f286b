/// Runs `body`, then awaits `teardown`, whether `body` returned or threw: what a test started (a server, a child
/// process) is stopped before the test ends, where `defer { Task { … } }` would let it outlive the test.
public func withTeardown<Result>(
    _ teardown: () async -> Void, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> Result
) async throws -> Result {
    let result: Result
    do {
        result = try await body()
    } catch {
        await teardown()
        throw error
    }
    await teardown()
    return result
}

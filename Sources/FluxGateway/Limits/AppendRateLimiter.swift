import Synchronization

/// Appends per second per caller (its token's subject, or its address on an open gateway), as token buckets:
/// a caller may append `burst` times at once, then `rate` times per second. Over it: `429` with `Retry-After`.
final class AppendRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let rate: Double
    let burst: Double
    private let buckets = Mutex<[String: Bucket]>([:])

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = max(1, burst)
    }

    /// Takes one append from `caller`'s bucket; returns `nil` when allowed, else how long until the next one is.
    func admit(_ caller: String, now: ContinuousClock.Instant = .now) -> Duration? {
        buckets.withLock { buckets in
            var bucket = buckets[caller] ?? Bucket(tokens: burst, updated: now)
            let elapsed = bucket.updated.duration(to: now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(burst, bucket.tokens + max(0, seconds) * rate)
            bucket.updated = now
            defer {
                buckets[caller] = bucket
                if buckets.count > 100_000 { Self.forgetFull(&buckets, now: now, rate: rate, burst: burst) }
            }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return .milliseconds(Int64(((1 - bucket.tokens) / rate * 1000).rounded(.up)))
        }
    }

    /// Drops buckets that have refilled (they equal a new one), so many one-off callers cost no memory.
    private static func forgetFull(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant, rate: Double, burst: Double) {
        buckets = buckets.filter { _, bucket in
            let elapsed = bucket.updated.duration(to: now)
            return bucket.tokens + Double(elapsed.components.seconds) * rate < burst
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Event times: milliseconds since 1970-01-01T00:00:00Z, as stores keep them.
///
/// Their wire forms (`created` in asctime, `recorded_at` in RFC 3339) are FluxWire's (`Timestamp+Wire.swift`).
public enum Timestamp {
    /// Milliseconds since 1970-01-01T00:00:00Z from the system's real-time clock.
    @Sendable public static func nowMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How many connections the process's descriptor limit leaves room for.
///
/// Running out of descriptors is not only refused connections: the runtime, the store and the logger need
/// descriptors too (timers, files, wake-up pipes), and some of them cannot fail gracefully. So the gateway admits at
/// most the soft `RLIMIT_NOFILE` less a reserve (`fluxgate serve` first raises the soft limit to the hard one).
public enum DescriptorBudget {
    /// Descriptors kept back from connections: store files and connections, runtime timers and pipes, logs, and
    /// connections refused with `503` while they are answered.
    public static func reserve(forLimit limit: Int) -> Int {
        RefusalBudget.maximumLingering + min(512, max(64, limit / 16))
    }

    /// The connections admitted under a descriptor limit of `limit`: at most `configured`, and never so many that
    /// the reserve is eaten.
    public static func connections(configured: Int, descriptorLimit limit: Int) -> Int {
        max(1, min(configured, limit - reserve(forLimit: limit)))
    }

    /// The soft descriptor limit in force (`nil` when it cannot be read). Anything past `Int`'s range
    /// (`RLIM_INFINITY`) is as good as no limit.
    public static func currentLimit() -> Int? {
        var limits = rlimit()
        guard getrlimit(resource, &limits) == 0 else { return nil }
        return limits.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limits.rlim_cur)
    }

    /// Raises the soft descriptor limit to the hard one where it is lower: a process-wide setting, for the program
    /// to choose (`fluxgate serve` does, before it starts the gateway).
    public static func raiseSoftLimit() {
        var limits = rlimit()
        guard getrlimit(resource, &limits) == 0, limits.rlim_cur < limits.rlim_max else { return }
        limits.rlim_cur = limits.rlim_max
        _ = setrlimit(resource, &limits)
    }

    #if os(Linux)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resource = RLIMIT_NOFILE
    #endif
}

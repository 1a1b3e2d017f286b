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
/// descriptors too (timers, files, wake-up pipes), and some of them cannot fail gracefully. So the gateway raises
/// its soft `RLIMIT_NOFILE` to the hard limit when it starts and admits at most the limit less a reserve.
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

    /// Raises the soft descriptor limit to the hard one where it is lower; returns the soft limit in force after
    /// (`nil` when it cannot be read).
    public static func raiseSoftLimit() -> Int? {
        #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        var limits = rlimit()
        guard getrlimit(resource, &limits) == 0 else { return nil }
        if limits.rlim_cur < limits.rlim_max {
            var raised = limits
            raised.rlim_cur = limits.rlim_max
            if setrlimit(resource, &raised) == 0 { limits = raised }
        }
        // RLIM_INFINITY and absurd values: anything past Int's range is as good as no limit.
        return limits.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limits.rlim_cur)
    }
}

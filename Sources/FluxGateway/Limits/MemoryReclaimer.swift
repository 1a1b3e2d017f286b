import CMalloc
import ServiceLifecycle

/// Gives the memory the gateway freed back to the operating system, so that a burst (a thousand subscribers
/// catching up, a flood of large appends) does not stay resident after it.
///
/// glibc's allocator keeps freed memory in its per-thread arenas and returns only the top of each heap, and
/// after a large buffer is freed it raises its mmap threshold (up to 32 MiB), so later large buffers come from the
/// heaps as well. ``configureAllocator()`` fixes the threshold, so buffers of 256 KiB and more (pages, frames) are
/// mapped and unmapped on their own; the service trims every arena every ``interval``. Elsewhere than on glibc
/// both do nothing.
public struct MemoryReclaimer: Service {
    /// How often free memory is returned.
    public var interval: Duration

    public init(interval: Duration = .seconds(5)) {
        self.interval = interval
    }

    /// Buffers of this size and more are mapped on their own and returned when freed.
    public static let mmapThreshold = 256 * 1024

    /// Sets the allocator up for a long-running server; call it once, early (`fluxgate serve` does).
    public static func configureAllocator() {
        _ = fluxgate_set_mmap_threshold(Int32(mmapThreshold))
    }

    /// Returns free memory to the system now.
    public static func trim() {
        _ = fluxgate_trim()
    }

    /// Trims every ``interval`` until the service group shuts down.
    public func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                // Woken by a graceful shutdown too: a plain sleep held the service group's shutdown (it stops services
                // in reverse order, this one before the gateway) for up to an interval, while the gateway kept serving.
                let interval = self.interval
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            Self.trim()
        }
    }
}

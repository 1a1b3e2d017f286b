import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// How far the peer's TCP has taken in what we sent: the kernel's count of our bytes it acknowledged
/// (Linux `tcp_info.tcpi_bytes_acked`, RFC 4898 `tcpEStatsAppHCThruOctetsAcked`).
///
/// Once a slow reader's receive buffer is full its TCP acknowledges new bytes only as the application reads, so a
/// growing count while a pong is overdue means the peer is reading its way to our ping (see
/// ``WebSocketConnectionStateMachine/peerShowedLife(now:)``); a hung or vanished peer's count stands still.
public enum TCPDeliveryProgress {
    /// The count for the channel's socket, or `nil` where the platform or channel cannot tell (not a socket,
    /// not Linux, kernel too old). Call on the channel's event loop or anywhere; the future completes on the loop.
    public static func bytesAcknowledged(on channel: any Channel) -> EventLoopFuture<UInt64?> {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else { return channel.eventLoop.makeSucceededFuture(nil) }
        let info: EventLoopFuture<KernelTCPInfo> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(IPPROTO_TCP), name: SocketOptionName(TCP_INFO))
        return info.map { $0.bytesAcknowledged }.recover { _ in nil }
        #else
        return channel.eventLoop.makeSucceededFuture(nil)
        #endif
    }
}

#if os(Linux)
/// The kernel's `struct tcp_info` (linux/tcp.h) as raw words: Glibc's declaration of the struct stops before the
/// byte counters. The kernel copies as much as the caller's buffer holds and zero means "not reported".
struct KernelTCPInfo: Sendable {
    /// 256 bytes, more than kernels up to 6.x fill; a homogeneous tuple is laid out contiguously.
    var words: (
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64
    ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    /// `tcpi_bytes_acked`, at byte offset 120: 8 one-byte fields, 24 `__u32`s, then `tcpi_pacing_rate` and
    /// `tcpi_max_pacing_rate` (Linux 4.1 and later); `nil` when the kernel left it zero.
    var bytesAcknowledged: UInt64? {
        let value = withUnsafeBytes(of: words) { $0.load(fromByteOffset: 120, as: UInt64.self) }
        return value == 0 ? nil : value
    }
}
#endif

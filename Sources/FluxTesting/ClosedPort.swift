#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP port that refuses connections for as long as this value lives: a socket bound to it that never
/// listens. A port that was merely closed can be taken at once by any other test's server (the kernel hands out
/// ephemeral ports again), so a "nothing listens there" test must hold its port like this.
public final class ClosedPort: Sendable {
    /// The port; connecting to `127.0.0.1:port` is refused (ECONNREFUSED).
    public let port: Int
    private let descriptor: Int32

    public init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ConformanceFailure(description: "socket() failed (errno \(errno))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard bound == 0, named == 0 else {
            close(descriptor)
            throw ConformanceFailure(description: "could not bind a loopback port (errno \(errno))")
        }
        self.descriptor = descriptor
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A POSIX TCP socket on loopback for tests that need a peer the runtime does not schedule: attacks (it sends what
/// it likes and reads only when told to, with a small receive buffer so that answers it does not read back up into
/// the gateway quickly) and slow readers on threads of their own.
final class TestSocket {
    let descriptor: Int32

    /// Connects to `127.0.0.1:port`; `receiveBuffer` sets `SO_RCVBUF` before connecting (the kernel doubles it).
    init(port: Int, receiveBuffer: Int32? = 4096) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestSocketError("socket: errno \(errno)") }
        if var size = receiveBuffer {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let error = errno
            close(descriptor)
            throw TestSocketError("connect to port \(port): errno \(error)")
        }
    }

    deinit { close(descriptor) }

    /// Sends as much of `bytes` as the socket takes within `timeout`; returns how many bytes went.
    @discardableResult
    func send(_ bytes: [UInt8], timeout: Duration = .seconds(5)) -> Int {
        let deadline = ContinuousClock.now + timeout
        var sent = 0
        while sent < bytes.count, ContinuousClock.now < deadline {
            guard waitUntil(events: Int16(POLLOUT), before: deadline) else { break }
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if count > 0 {
                sent += count
            } else if count < 0, errno != EAGAIN, errno != EWOULDBLOCK, errno != EINTR {
                break
            }
        }
        return sent
    }

    func send(_ text: String, timeout: Duration = .seconds(5)) -> Int {
        send(Array(text.utf8), timeout: timeout)
    }

    /// Reads what arrives until the peer closes or `timeout` passes; `closed` tells which.
    func readAll(timeout: Duration) -> (bytes: [UInt8], closed: Bool) {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            guard waitUntil(events: Int16(POLLIN), before: deadline) else { break }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count == 0 { return (received, true) }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                return (received, true)  // reset: closed as well
            }
            received += chunk[0..<count]
        }
        return (received, false)
    }

    /// Reads until `marker` has arrived, the peer closes or `timeout` passes.
    func read(until marker: String, timeout: Duration) -> String {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline, !String(decoding: received, as: UTF8.self).contains(marker) {
            guard waitUntil(events: Int16(POLLIN), before: deadline) else { break }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count <= 0 {
                if count < 0, errno == EAGAIN || errno == EINTR { continue }
                break
            }
            received += chunk[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    private func waitUntil(events: Int16, before deadline: ContinuousClock.Instant) -> Bool {
        let remaining = ContinuousClock.now.duration(to: deadline)
        let milliseconds = max(0, min(1000, Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000)))
        var descriptorEvents = pollfd(fd: descriptor, events: events, revents: 0)
        return poll(&descriptorEvents, 1, milliseconds) > 0
    }
}

struct TestSocketError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

#if canImport(Glibc)
import Glibc
#endif

/// A minimal blocking HTTP/1.1 client on a POSIX socket, for measuring a server's round trips without an async
/// client's own task switches in the figure (the way a Go or C client calls). GET only; answers must carry a
/// `Content-Length` (every Fluxgate answer but a stream does).
final class BlockingHTTPClient {
    private let port: UInt16
    private var socket: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var pending: [UInt8] = []

    init(port: Int) {
        self.port = UInt16(port)
    }

    deinit { disconnect() }

    func disconnect() {
        if socket >= 0 { close(socket) }
        socket = -1
        pending = []
    }

    private func connectIfNeeded() throws {
        guard socket < 0 else { return }
        let descriptor = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw BenchmarkError("socket() failed") }
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw BenchmarkError("cannot connect to 127.0.0.1:\(port)")
        }
        socket = descriptor
    }

    /// GETs `target`; returns the status code and the body.
    func get(_ target: String) throws -> (status: Int, body: [UInt8]) {
        try connectIfNeeded()
        let request = Array("GET \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUser-Agent: bench\r\n\r\n".utf8)
        let sent = request.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, 0) }
        guard sent == request.count else { throw BenchmarkError("send failed") }
        // Read until the head is complete, then until Content-Length bytes of body.
        var headEnd: Int?
        while true {
            if let end = Self.find([13, 10, 13, 10], in: pending) {
                headEnd = end + 4
                break
            }
            try receive()
        }
        let head = String(decoding: pending[..<headEnd!], as: UTF8.self)
        let status = Int(head.split(separator: " ", maxSplits: 2).dropFirst().first ?? "") ?? 0
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        while pending.count < headEnd! + length { try receive() }
        let body = Array(pending[headEnd!..<(headEnd! + length)])
        pending.removeFirst(headEnd! + length)
        return (status, body)
    }

    private func receive() throws {
        let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { throw BenchmarkError("the server closed the connection") }
        pending += buffer[..<count]
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<(start + needle.count)]) == needle { return start }
        }
        return nil
    }
}

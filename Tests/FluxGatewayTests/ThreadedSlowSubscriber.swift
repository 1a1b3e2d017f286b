import FluxWebSocket
import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A push-channel subscriber that reads slowly on a thread of its own, with blocking socket calls: at most one
/// receive-buffer's worth every `pause`, answering each ping as it reaches it.
///
/// A thread keeps the pace it is given; a task in Swift's shared pool may be held up for seconds while the whole
/// suite runs, which a keep-alive test cannot tell from a peer that stopped reading.
struct ThreadedSlowSubscriber {
    struct Outcome: Sendable {
        var positions: [Int] = []
        var pings = 0
        /// Pings that arrived after the last event of the backlog (the keep-alive cycle went on).
        var pingsAfterBacklog = 0
        var closeCode: UInt16?
        var closeReason = ""
        var failure: String?
    }

    let port: Int
    let query: String
    /// The socket's receive buffer (the kernel doubles it).
    var receiveBuffer: Int32 = 4096
    var pause: Duration

    /// Reads until `events` events arrived, then `linger` longer at full speed, or until the server closes.
    func run(events: Int, linger: Duration, timeout: Duration) async -> Outcome {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: read(events: events, linger: linger, timeout: timeout))
            }
        }
    }

    private func read(events: Int, linger: Duration, timeout: Duration) -> Outcome {
        var outcome = Outcome()
        let socket: TestSocket
        do {
            socket = try TestSocket(port: port, receiveBuffer: receiveBuffer)
        } catch {
            return failed("\(error)")
        }
        defer { withExtendedLifetime(socket) {} }  // it closes its descriptor when it goes
        let descriptor = socket.descriptor
        var timeoutValue = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeoutValue, socklen_t(MemoryLayout<timeval>.size))
        let request = "GET /events/subscribe?\(query) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(WebSocketHandshake.randomKey())\r\nSec-WebSocket-Version: 13\r\n\r\n"
        guard sendAll(descriptor, Array(request.utf8)) else { return failed("send: errno \(errno)") }

        var buffer = ByteBuffer()
        var parser = WebSocketFrameParser(configuration: .init(maxFrameSize: 1 << 26))
        var upgraded = false
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let deadline = ContinuousClock.now + timeout
        var lingerUntil: ContinuousClock.Instant?
        while ContinuousClock.now < deadline, outcome.closeCode == nil {
            if let lingerUntil, ContinuousClock.now >= lingerUntil { break }
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count < 0, errno == EAGAIN || errno == EINTR { continue }
            guard count > 0 else { break }  // end of stream (or reset)
            buffer.writeBytes(chunk[0..<count])
            if !upgraded {
                guard let end = buffer.readableBytesView.firstRange(of: [13, 10, 13, 10]) else { continue }
                let head = String(decoding: buffer.readableBytesView[..<end.lowerBound], as: UTF8.self)
                guard head.hasPrefix("HTTP/1.1 101") else { return failed("handshake refused: \(head)") }
                buffer.moveReaderIndex(to: end.upperBound)
                upgraded = true
            }
            while let frame = try? parser.parseStep(&buffer), case .frame(let frame) = frame {
                switch frame.opcode {
                case .ping:
                    outcome.pings += 1
                    if lingerUntil != nil { outcome.pingsAfterBacklog += 1 }
                    let pong = WebSocketFrame(opcode: .pong, maskKey: WebSocketMaskingKey(rawValue: .random(in: 0...UInt32.max)), data: frame.data)
                    _ = sendAll(descriptor, Array(WebSocketFrameEncoder.encode(pong, allocator: ByteBufferAllocator()).readableBytesView))
                case .connectionClose:
                    var data = frame.data
                    outcome.closeCode = data.readInteger(as: UInt16.self) ?? 1005
                    outcome.closeReason = data.readString(length: data.readableBytes) ?? ""
                case .text:
                    let json = try? JSONSerialization.jsonObject(with: Data(frame.data.readableBytesView)) as? [String: Any]
                    for event in json?["events"] as? [[String: Any]] ?? [] {
                        outcome.positions.append(event["position"] as? Int ?? -1)
                    }
                    if outcome.positions.count >= events, lingerUntil == nil { lingerUntil = .now + linger }
                default:
                    break
                }
            }
            buffer.discardReadBytes()
            if lingerUntil == nil { Thread.sleep(forTimeInterval: Double(pause.components.attoseconds) / 1e18 + Double(pause.components.seconds)) }
        }
        return outcome

        func failed(_ message: String) -> Outcome {
            var failed = outcome
            failed.failure = message
            return failed
        }
    }

    private func sendAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }
}

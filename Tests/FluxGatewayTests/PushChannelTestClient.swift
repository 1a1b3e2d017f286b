import FluxTesting
import FluxWebSocket
import FluxWire
import Foundation
import NIOCore
import NIOHTTP1

/// A push-channel subscriber built from our own client-role pieces (handshake request, frame parser,
/// connection state machine with inflation), over a raw socket.
final class PushChannelTestClient {
    let connection: RawTCPConnection
    let responseHead: String
    private var parser: WebSocketFrameParser
    private var machine: WebSocketConnectionStateMachine<ContinuousClock.Instant>?
    private(set) var positions: [Int64] = []
    private(set) var caughtUpHeads: [Int64] = []
    private(set) var epochs: Set<String> = []
    private(set) var closeCode: UInt16?
    private(set) var closeReason = ""
    private(set) var compressedFrames = 0
    /// Every text message received, as sent.
    private(set) var texts: [String] = []

    var status: Int { Int(responseHead.split(separator: " ").dropFirst().first ?? "0") ?? 0 }

    init(
        port: Int, query: String, path: String = "/events/subscribe", deflate: Bool = false, extraHeaders: [String] = [], receiveBuffer: Int? = nil
    ) async throws {
        connection = try await RawTCPConnection.connect(port: port, receiveBuffer: receiveBuffer)
        let key = WebSocketHandshake.randomKey()
        var request = "GET \(path)?\(query) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        if deflate { request += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" }
        for header in extraHeaders { request += header + "\r\n" }
        try await connection.send(request + "\r\n")
        responseHead = try await connection.readUntil("\r\n\r\n") ?? ""
        var negotiated: WebSocketDeflateParameters?
        if responseHead.lowercased().contains("sec-websocket-extensions: permessage-deflate") {
            negotiated = WebSocketDeflateParameters(serverNoContextTakeover: responseHead.contains("server_no_context_takeover"))
        }
        parser = WebSocketFrameParser(configuration: .init(maxFrameSize: 1 << 24, allowedReservedBits: negotiated == nil ? [] : [.rsv1]))
        if responseHead.hasPrefix("HTTP/1.1 101") {
            expectAccept(responseHead, key: key)
            machine = WebSocketConnectionStateMachine(configuration: .init(role: .client, pingInterval: nil), deflate: negotiated, now: .now)
        }
    }

    /// Sends a text message (masked, as a client must).
    func send(text: String) async throws {
        let frame = WebSocketFrame(opcode: .text, maskKey: WebSocketMaskingKey(rawValue: .random(in: 0...UInt32.max)), data: ByteBuffer(string: text))
        try await connection.send(raw: WebSocketFrameEncoder.encode(frame, allocator: ByteBufferAllocator()))
    }

    /// Sends a Close (masked).
    func sendClose(code: UInt16 = 1000) async throws {
        var payload = ByteBuffer()
        payload.writeInteger(code)
        let frame = WebSocketFrame(opcode: .connectionClose, maskKey: WebSocketMaskingKey(rawValue: 0x1234_5678), data: payload)
        try await connection.send(raw: WebSocketFrameEncoder.encode(frame, allocator: ByteBufferAllocator()))
    }

    /// Reads until `count` event positions arrived, or the connection closed, or the timeout passed.
    func read(untilPositions count: Int, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while positions.count < count, closeCode == nil {
            guard ContinuousClock.now < deadline else { throw TestFailure("got \(positions.count) of \(count) events") }
            if try await !step() { break }
        }
    }

    /// Reads until the `caught_up` message arrived (it may follow catch-up events read already, when appends kept the
    /// subscriber catching up), or the connection closed, or the timeout passed.
    func readUntilCaughtUp(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while caughtUpHeads.isEmpty, closeCode == nil {
            guard ContinuousClock.now < deadline else { throw TestFailure("no caught_up after \(positions.count) events") }
            if try await !step() { break }
        }
    }

    /// Reads until `condition` holds for the text messages received, or the connection closed, or the timeout passed.
    func read(until condition: ([String]) -> Bool, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition(texts), closeCode == nil {
            guard ContinuousClock.now < deadline else { throw TestFailure("the condition did not hold after \(texts.count) messages: \(texts.suffix(3))") }
            if try await !step() { break }
        }
    }

    /// Reads until the server's Close arrives (or the stream ends).
    func readUntilClosed(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while closeCode == nil, ContinuousClock.now < deadline {
            if try await !step() { break }
        }
    }

    /// Parses what is buffered; reads more when nothing is. Returns `false` at end of stream.
    private func step() async throws -> Bool {
        while true {
            let step = try connection.withBuffered { buffer in try parser.parseStep(&buffer) }
            guard case .frame(let frame) = step else { break }
            if frame.rsv1 { compressedFrames += 1 }
            if frame.opcode == .connectionClose {
                var data = frame.data
                closeCode = data.readInteger(as: UInt16.self)
                closeReason = data.readString(length: data.readableBytes) ?? ""
            }
            guard var machine else { continue }
            let action = machine.frameReceived(frame, now: .now)
            self.machine = machine
            switch action {
            case .deliver(let message):
                handle(message)
            case .send(let reply), .sendAndCloseConnection(let reply):
                var masked = reply
                masked.maskKey = WebSocketMaskingKey(rawValue: 0x0BAD_F00D)
                // The server may already have closed TCP after its Close: a failed reply is fine then.
                try? await connection.send(raw: WebSocketFrameEncoder.encode(masked, allocator: ByteBufferAllocator()))
            default:
                break
            }
            return true
        }
        return try await connection.readMore()
    }

    private func handle(_ message: WebSocketMessage) {
        if message.isText { texts.append(String(buffer: message.data)) }
        switch PushMessage(json: Array(message.data.readableBytesView)) {
        case .events(let epoch, let events):
            epochs.insert(epoch.rawValue)
            positions += events.map(\.position.rawValue)
        case .caughtUp(let head):
            caughtUpHeads.append(head.rawValue)
        case nil:
            break
        }
    }

    func close() async { await connection.close() }
}

/// Checks the server's `Sec-WebSocket-Accept` (RFC 6455 §4.2.2).
private func expectAccept(_ head: String, key: String) {
    precondition(head.contains("Sec-WebSocket-Accept: \(WebSocketHandshake.acceptValue(forKey: key))") || head.lowercased().contains("sec-websocket-accept: \(WebSocketHandshake.acceptValue(forKey: key).lowercased())"), "wrong Sec-WebSocket-Accept in \(head)")
}

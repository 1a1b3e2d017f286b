import Crypto
import FluxTesting
import Foundation
import NIOCore
import Synchronization

/// How a script hands its frames to TCP (Autobahn's "chops").
enum Chop: Sendable {
    /// All frames of the step in one write.
    case whole
    /// One write per frame.
    case perFrame
    /// The step's bytes in writes of `size` bytes, with an optional pause after each.
    case chunks(Int, delay: Duration? = nil)
}

/// One step of an Autobahn case script.
enum ScriptStep: Sendable {
    case send([ScriptFrame], Chop = .whole)
    case pause(Duration)
    /// Reads until the testee's Close arrives before going on: the testee must fail the connection at this
    /// point, not later (Autobahn's "fail fast", graded STRICT).
    case awaitClose
}

/// What the peer saw of the testee, from the opening handshake to the end of TCP.
struct ConformanceTranscript {
    enum End: Equatable {
        /// The testee closed TCP (FIN).
        case closed
        /// The connection was reset, or broke on a write.
        case reset(String)
        /// The peer gave up waiting; the testee hung.
        case timedOut
    }

    /// Events before the testee's Close.
    var beforeClose: [ConformanceEvent] = []
    /// The testee's Close frame: status code (`nil` for an empty body).
    var closeCode: UInt16??
    /// Anything the testee sent after its Close (a conforming endpoint sends nothing, RFC 6455 §5.5.1).
    var afterClose: [ConformanceEvent] = []
    var end: End?

    var receivedClose: Bool { closeCode != nil }
}

/// A scripted WebSocket endpoint over a plain TCP connection: it sends whatever frames a case prescribes,
/// byte for byte, and reads the testee's frames with its own parser (``ConformanceFrameReader``),
/// checking masking, RSV bits and fragmentation on the way, and inflating with its own zlib.
final class ConformancePeer {
    /// The side the peer plays: `.client` against a server testee (masks its frames, expects unmasked ones).
    enum Side {
        case client
        case server
    }

    let connection: RawTCPConnection
    let side: Side
    private(set) var transcript = ConformanceTranscript()
    private var generator = SeededGenerator(seed: 0x5EED)
    private var deflater: ConformanceDeflater?
    private var inflater: ConformanceInflater?
    private var fragments: (opcode: UInt8, compressed: Bool, data: ByteBuffer)?
    /// Why writing stopped, if it did.
    private(set) var writeFailure: String?
    private var watchdog: Scheduled<Void>?

    init(connection: RawTCPConnection, side: Side, timeout: Duration) {
        self.connection = connection
        self.side = side
        // One read may wait as long as the whole case (a 16 MiB echo in a debug build, the suite running in parallel).
        connection.timeout = timeout
        // Read while sending, as Autobahn's client does: a script of 1000 messages is 4 MiB, and an echoing testee that
        // stops reading while its echoes are not read would wait for us as we wait for it until the watchdog.
        connection.readsWhileWriting = true
        let flag = TimeoutFlag()
        self.timeoutFlag = flag
        watchdog = connection.closeAfter(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)) { flag.set() }
    }

    private let timeoutFlag: TimeoutFlag

    deinit {
        watchdog?.cancel()
    }

    /// Uses permessage-deflate as agreed from now on.
    func enableDeflate(_ agreement: DeflateAgreement) {
        let mine = side == .client
            ? (agreement.clientWindowBits, agreement.clientNoContextTakeover)
            : (agreement.serverWindowBits, agreement.serverNoContextTakeover)
        let theirs = side == .client
            ? (agreement.serverWindowBits, agreement.serverNoContextTakeover)
            : (agreement.clientWindowBits, agreement.clientNoContextTakeover)
        deflater = ConformanceDeflater(windowBits: mine.0, noContextTakeover: mine.1)
        inflater = ConformanceInflater(windowBits: theirs.0, noContextTakeover: theirs.1)
    }

    // MARK: Opening handshake

    /// RFC 6455 §1.3's example key and its accept value: an independent check of the server's answer.
    static let sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="
    static let sampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    /// Client side: sends the upgrade request (with `extensions` as `Sec-WebSocket-Extensions`) and checks
    /// the `101` answer; returns the response headers, names lowercased.
    func clientHandshake(host: String, path: String = "/", extensions: String?) async throws -> [String: String] {
        var request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(Self.sampleKey)\r\nSec-WebSocket-Version: 13\r\n"
        if let extensions { request += "Sec-WebSocket-Extensions: \(extensions)\r\n" }
        try await connection.send(request + "\r\n")
        guard let head = try await connection.readUntil("\r\n\r\n") else {
            throw ConformanceProblem(description: "the server closed the connection instead of answering the handshake")
        }
        let (startLine, headers) = Self.parseHead(head)
        guard startLine.hasPrefix("HTTP/1.1 101") else { throw ConformanceProblem(description: "handshake refused: \(head)") }
        guard headers["upgrade"]?.lowercased() == "websocket", headers["connection"]?.lowercased().contains("upgrade") == true,
            headers["sec-websocket-accept"] == Self.sampleAccept
        else { throw ConformanceProblem(description: "invalid 101 response: \(head)") }
        return headers
    }

    /// Server side: reads the upgrade request, lets `respond` pick the `Sec-WebSocket-Extensions` answer
    /// from the request headers, and sends `101`. Returns the request headers, names lowercased.
    func serverHandshake(extensions respond: ([String: String]) -> String?) async throws -> [String: String] {
        guard let head = try await connection.readUntil("\r\n\r\n") else {
            throw ConformanceProblem(description: "the client closed the connection before its upgrade request")
        }
        let (startLine, headers) = Self.parseHead(head)
        guard startLine.hasPrefix("GET "), headers["sec-websocket-version"] == "13", let key = headers["sec-websocket-key"],
            headers["upgrade"]?.lowercased() == "websocket"
        else { throw ConformanceProblem(description: "invalid upgrade request: \(head)") }
        let accept = Data(Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
        var response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)\r\n"
        if let extensions = respond(headers) { response += "Sec-WebSocket-Extensions: \(extensions)\r\n" }
        try await connection.send(response + "\r\n")
        return headers
    }

    private static func parseHead(_ head: String) -> (String, [String: String]) {
        var lines = head.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let startLine = lines.isEmpty ? "" : lines.removeFirst()
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = headers[name].map { "\($0), \(value)" } ?? value
        }
        return (startLine, headers)
    }

    // MARK: Sending

    /// Plays a script; write errors are ignored, since a testee may fail the connection mid-script.
    func run(_ steps: [ScriptStep]) async {
        for step in steps {
            switch step {
            case .send(let frames, let chop):
                await send(frames, chop: chop)
            case .pause(let duration):
                try? await Task.sleep(for: duration)
            case .awaitClose:
                await readUntilClose()
            }
        }
    }

    func send(_ frames: [ScriptFrame], chop: Chop = .whole) async {
        let encoded = frames.map { frame in
            let mask: Bool
            switch frame.masking {
            case .asRoleRequires: mask = side == .client
            case .masked: mask = true
            case .unmasked: mask = false
            }
            return frame.encoded(mask: mask, using: &generator)
        }
        switch chop {
        case .whole:
            var all = ByteBuffer()
            all.reserveCapacity(encoded.reduce(0) { $0 + $1.readableBytes })
            for var frame in encoded { all.writeBuffer(&frame) }
            await write(all)
        case .perFrame:
            for frame in encoded { await write(frame) }
        case .chunks(let size, let delay):
            var all = ByteBuffer()
            for var frame in encoded { all.writeBuffer(&frame) }
            while all.readableBytes > 0 {
                await write(all.readSlice(length: min(size, all.readableBytes))!)
                if let delay { try? await Task.sleep(for: delay) }
            }
        }
    }

    /// Writes unless an earlier write failed: a testee that failed the connection may have closed it
    /// already, and the reads that follow tell what it sent before.
    private func write(_ bytes: ByteBuffer) async {
        guard writeFailure == nil else { return }
        do {
            try await connection.send(raw: bytes)
        } catch {
            writeFailure = "\(error)"
        }
    }

    /// Sends one data message, compressed with the peer's own deflater when asked (RSV1 on the first frame
    /// only, RFC 7692 §6.1), fragmented into frames of `fragmentSize` bytes (0: one frame).
    func sendMessage(binary: Bool, payload: ByteBuffer, compressed: Bool, fragmentSize: Int) async {
        var data = compressed ? deflater!.compress(payload) : payload
        var frames: [ScriptFrame] = []
        repeat {
            let size = fragmentSize > 0 ? min(fragmentSize, data.readableBytes) : data.readableBytes
            let piece = data.readSlice(length: size)!
            frames.append(
                ScriptFrame(
                    fin: data.readableBytes == 0, rsv: frames.isEmpty && compressed ? 4 : 0,
                    opcode: frames.isEmpty ? (binary ? 0x2 : 0x1) : 0x0, payload: piece))
        } while data.readableBytes > 0
        await send(frames)
    }

    /// Sends our Close with `code`.
    func sendClose(code: UInt16 = 1000) async {
        await send([.close(code: code)])
    }

    // MARK: Reading

    /// Reads the next message or control frame the testee sends before its Close (`nil` once it closed).
    func nextEvent() async -> ConformanceEvent? {
        let count = transcript.beforeClose.count
        while transcript.beforeClose.count == count && !transcript.receivedClose && transcript.end == nil {
            await readFrame()
        }
        return transcript.beforeClose.count > count ? transcript.beforeClose[count] : nil
    }

    /// Plays `testCase`'s script as Autobahn does — after it, once the expected answers are in, a Close 1000 unless
    /// the script closed or the testee did — and reads to the end of the connection: the transcript is then complete
    /// for ``ConformanceVerdict``.
    func play(_ testCase: AutobahnCase) async {
        await run(testCase.script())
        if case .peerClosesNormally = testCase.outcome, !transcript.receivedClose {
            // Close only once the echoes are in: a testee's close timeout then never races a slow reader of a 16 MiB echo.
            await awaitEvents(testCase.expected?().count ?? 0)
            await sendClose()
        }
        await readUntilClose()
        await readToEnd()
        await finish()
    }

    /// Forgets the events read so far (a testee's greeting that is not part of a case).
    func forgetEvents() {
        transcript.beforeClose.removeAll()
    }

    /// Reads until `count` events arrived before the testee's Close (or it closed, or the connection ended).
    func awaitEvents(_ count: Int) async {
        while transcript.beforeClose.count < count && !transcript.receivedClose && transcript.end == nil {
            await readFrame()
        }
    }

    /// Reads until the testee's Close frame (or the end of the connection).
    func readUntilClose() async {
        while !transcript.receivedClose && transcript.end == nil {
            await readFrame()
        }
    }

    /// Reads until the testee closes TCP.
    func readToEnd() async {
        while transcript.end == nil {
            await readFrame()
        }
    }

    /// Stops reading for good; records a hang if the watchdog fired.
    func finish() async {
        watchdog?.cancel()
        if timeoutFlag.isSet { transcript.end = .timedOut }
        await connection.close()
    }

    private func readFrame() async {
        do {
            let frame = try connection.withBuffered { buffer -> WireFrame? in
                let frame = try ConformanceFrameReader.read(&buffer)
                if buffer.readerIndex > 1 << 20 { buffer.discardReadBytes() }
                return frame
            }
            if let frame {
                record(process(frame))
                return
            }
        } catch {
            record(.violation("\(error)"))
            transcript.end = .reset("unparseable bytes")
            return
        }
        do {
            if try await connection.readMore() == false {
                transcript.end = timeoutFlag.isSet ? .timedOut : .closed
            }
        } catch {
            transcript.end = timeoutFlag.isSet ? .timedOut : .reset("\(error)")
        }
    }

    private func record(_ event: ConformanceEvent?) {
        guard let event else { return }
        if transcript.receivedClose {
            transcript.afterClose.append(event)
        } else if case .close(let code, _) = event {
            transcript.closeCode = .some(code)
        } else {
            transcript.beforeClose.append(event)
        }
    }

    /// Checks one frame against RFC 6455 (and RFC 7692 when negotiated); returns what it completes.
    private func process(_ frame: WireFrame) -> ConformanceEvent? {
        switch side {
        case .client where frame.masked: return .violation("a server frame is masked (RFC 6455 §5.1)")
        case .server where !frame.masked: return .violation("a client frame is not masked (RFC 6455 §5.1)")
        default: break
        }
        switch frame.opcode {
        case 0x8, 0x9, 0xA:
            guard frame.fin, frame.rsv == 0, frame.payload.readableBytes <= 125 else {
                return .violation("malformed control frame (fin \(frame.fin), rsv \(frame.rsv), \(frame.payload.readableBytes) bytes)")
            }
            var payload = frame.payload
            switch frame.opcode {
            case 0x9: return .ping(payload)
            case 0xA: return .pong(payload)
            default:
                switch payload.readableBytes {
                case 0: return .close(code: nil, reason: ByteBuffer())
                case 1: return .violation("a close frame with a 1-byte body")
                default:
                    let code = payload.readInteger(as: UInt16.self)!
                    return .close(code: code, reason: payload)
                }
            }
        case 0x1, 0x2:
            guard fragments == nil else { return .violation("a new data frame inside a fragmented message") }
            let compressed = frame.rsv == 4 && inflater != nil
            guard frame.rsv == 0 || compressed else { return .violation("RSV bits \(frame.rsv) on a data frame") }
            fragments = (frame.opcode, compressed, frame.payload)
        case 0x0:
            guard fragments != nil else { return .violation("a continuation frame without a message to continue") }
            guard frame.rsv == 0 else { return .violation("RSV bits \(frame.rsv) on a continuation frame") }
            var payload = frame.payload
            fragments!.data.writeBuffer(&payload)
        default:
            return .violation("reserved opcode \(frame.opcode)")
        }
        guard frame.fin, let message = fragments else { return nil }
        fragments = nil
        var data = message.data
        if message.compressed {
            do {
                data = try inflater!.decompress(data)
            } catch {
                return .violation("\(error)")
            }
        }
        if message.opcode == 0x1 {
            guard String(validating: data.readableBytesView, as: UTF8.self) != nil else {
                return .violation("the testee sent a text message that is not UTF-8")
            }
            return .text(data)
        }
        return .binary(data)
    }
}

/// Set by the watchdog on the event loop, read by the test.
private final class TimeoutFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

@available(*, unavailable)
extension ConformancePeer: Sendable {}

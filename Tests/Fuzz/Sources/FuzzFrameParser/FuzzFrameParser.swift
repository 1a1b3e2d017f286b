import FluxWebSocket
import FuzzSupport
import NIOCore

// Feeds arbitrary bytes to `WebSocketFrameParser` and the frames it yields to
// `WebSocketConnectionStateMachine`, in the server or the client role, with or without permessage-deflate.
//
// Input layout: [flags] [split count n] [n split lengths] [stream...].
// flags bit 0: server role; bit 1: deflate negotiated; bits 2–3: max frame size (125, 1 KiB, 64 KiB, 1 MiB).
//
// Checks:
// - parsing the stream whole and fed in chunks (the split lengths) gives the same frames and the same error:
//   the parser must accept input split at any byte boundary;
// - re-encoding each frame reproduces exactly the bytes it was parsed from (the parser accepts only the
//   minimal length encoding, so the encoding is unique);
// - no frame is larger than the limit;
// - the state machine never delivers a text message that is not UTF-8, nor a message over its size limit.

private let frameSizes = [125, 1024, 65536, 1 << 20]


private func parseAll(_ chunks: [ArraySlice<UInt8>], configuration: WebSocketFrameParser.Configuration) -> ([WebSocketFrame], WebSocketError?, consumed: Int) {
    var parser = WebSocketFrameParser(configuration: configuration)
    var buffer = ByteBuffer()
    var frames: [WebSocketFrame] = []
    var consumed = 0
    var total = 0
    for chunk in chunks {
        buffer.writeBytes(chunk)
        while true {
            let before = buffer.readerIndex
            do {
                let step = try parser.parseStep(&buffer)
                total += buffer.readerIndex - before
                guard case .frame(let frame) = step else { break }
                frames.append(frame)
                // The parser consumes a header before its payload is there: count whole frames only.
                consumed = total
            } catch {
                return (frames, error, consumed)
            }
        }
        buffer.discardReadBytes()
    }
    return (frames, nil, consumed)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    let isServer = flags & 1 != 0
    let deflate = flags & 2 != 0
    let maxFrameSize = frameSizes[Int(flags >> 2) & 3]
    let splits = input.take(Int(input.byte() & 7))
    let stream = input.rest()

    let configuration = WebSocketFrameParser.Configuration(maxFrameSize: maxFrameSize, allowedReservedBits: deflate ? .rsv1 : [])
    let whole = parseAll([stream[...]], configuration: configuration)
    let split = parseAll(chunks(of: stream, lengths: splits), configuration: configuration)
    fuzzCheck(whole.0 == split.0, "frames differ when the input is split \(splits)")
    fuzzCheck(whole.1?.description == split.1?.description, "errors differ when split: \(String(describing: whole.1)) vs \(String(describing: split.1))")

    // Re-encoding reproduces the consumed bytes exactly.
    var encoded = ByteBuffer()
    for frame in whole.0 {
        fuzzCheck(frame.data.readableBytes <= maxFrameSize, "frame of \(frame.data.readableBytes) bytes over the limit \(maxFrameSize)")
        WebSocketFrameEncoder.encode(frame, into: &encoded)
    }
    if whole.1 == nil {
        fuzzCheck(encoded.readableBytes == whole.consumed, "re-encoded \(encoded.readableBytes) bytes, parsed \(whole.consumed)")
        fuzzCheck(encoded.readableBytesView.elementsEqual(stream[..<whole.consumed]), "re-encoding differs from the input")
    }

    // The connection state machine on the parsed frames.
    let maxMessageSize = maxFrameSize * 2
    var machine = WebSocketConnectionStateMachine<ContinuousClock.Instant>(
        configuration: WebSocketConnectionConfiguration(role: isServer ? .server : .client, maxMessageSize: maxMessageSize, pingInterval: .seconds(1)),
        deflate: deflate ? WebSocketDeflateParameters() : nil,
        now: .now
    )
    frames: for frame in whole.0 {
        switch machine.frameReceived(frame, now: .now) {
        case .deliver(let message):
            fuzzCheck(message.data.readableBytes <= maxMessageSize, "delivered \(message.data.readableBytes) bytes over \(maxMessageSize)")
            if message.opcode == .text {
                fuzzCheck(String(validating: message.data.readableBytesView, as: UTF8.self) != nil, "delivered invalid UTF-8 text")
            } else {
                fuzzCheck(message.opcode == .binary, "delivered a \(message.opcode) message")
            }
        case .send(let frame):
            fuzzCheck(frame.opcode.isControl && frame.data.readableBytes <= 125, "sent an invalid control frame \(frame.opcode)")
        case .sendAndCloseConnection(let frame):
            fuzzCheck(frame.opcode == .connectionClose && frame.data.readableBytes <= 125, "closing with an invalid frame")
            break frames
        case .closeConnection:
            break frames
        case .none:
            break
        }
    }
    if let error = whole.1 {
        _ = machine.errorCaught(error, now: .now)
    }
    _ = machine.timerFired(now: .now.advanced(by: .seconds(60)))
    machine.connectionClosed()
    return 0
}

import FluxWebSocket
import FluxTesting
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// `fluxgate-bench websocket [decode|echo|idle] [options]`: our WebSocket layer against NIOWebSocket, side by
/// side in one run.
///
/// - decode: the same masked client frames (16 KiB binary, 100-byte text) decoded and unmasked by our
///   parser and by NIOWebSocket's decoder, both as `ByteToMessageDecoder`s on an `EmbeddedChannel` fed 64 KiB
///   chunks (like socket reads); ours also as a bare parser loop (no channel), and `memcpy` of the bytes as the
///   physical ceiling. Text: ours validates UTF-8, theirs cannot.
/// - echo: round trips/s, 100 connections × 512-byte binary messages on loopback, our echo server vs an
///   NIOWebSocket one (`NIOWebSocketBaseline`), the same client (`LoadClient`, on two threads so that it is not the
///   bottleneck), alternating runs, with the median of per-round ratios. Also the
///   server thread's CPU time per round trip (steadier than round trips/s on a shared machine) and both
///   pipelines' cost per message without sockets, which shows how much of a round trip is the WebSocket layer.
/// - idle: RSS growth per idle connection of each server running as a child process, 10,000 connections.
enum WebSocketBenchmark {
    /// The frame-size limit of both servers (what `fluxgate echo-server` uses by default).
    static let maxFrameSize = 16 << 20

    static func run(arguments: [String]) async throws {
        let part = arguments.first.flatMap { $0.hasPrefix("--") ? nil : $0 } ?? "all"
        let port = Int(value(of: "--port", in: arguments) ?? "") ?? 0
        switch part {
        case "serve-ours":
            try await serve(try await startOurEchoServer(group: MultiThreadedEventLoopGroup.singleton, port: port))
            return
        case "serve-nio":
            try await serve(
                try await NIOWebSocketBaseline.startEchoServer(group: MultiThreadedEventLoopGroup.singleton, host: "127.0.0.1", port: port, maxFrameSize: maxFrameSize))
            return
        case "drive":
            // The echo benchmark's client against a server in another process (serve-ours, serve-nio or
            // `fluxgate echo-server`), so that each server can be profiled on its own (perf, strace -p).
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let client = try await loadClient(arguments, group: group, port: port)
            for _ in 0..<(Int(value(of: "--rounds", in: arguments) ?? "") ?? 3) {
                let run = try await client.run(seconds: Double(value(of: "--seconds", in: arguments) ?? "") ?? 3)
                print(String(format: "%.0f round trips/s", run.roundTripsPerSecond))
            }
            await client.close()
            try await group.shutdownGracefully()
            return
        case "echo-work":
            // A fixed amount of echo work against one server (`--server ours|nio`, `--round-trips N`), threads as in
            // `echo`, to time whole processes side by side.
            let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: Int(value(of: "--client-threads", in: arguments) ?? "") ?? 2)
            let server = value(of: "--server", in: arguments) == "nio"
                ? try await NIOWebSocketBaseline.startEchoServer(group: serverGroup, host: "127.0.0.1", port: 0, maxFrameSize: maxFrameSize)
                : try await startOurEchoServer(group: serverGroup, port: 0)
            let client = try await loadClient(arguments, group: clientGroup, port: server.localAddress!.port!)
            try await client.run(roundTrips: Int(value(of: "--round-trips", in: arguments) ?? "") ?? 300_000)
            await client.close()
            try await server.close()
            try await serverGroup.shutdownGracefully()
            try await clientGroup.shutdownGracefully()
            return
        case "all", "decode", "echo", "idle":
            break
        default:
            print("""
                usage: fluxgate-bench websocket [decode|echo|idle|echo-work|drive] [--rounds N] [--seconds S] [--connections N] [--message-size B]
                                                [--megabytes M] [--chunk B] [--idle-connections N]
                  decode: --rounds (15), --megabytes of binary frames (64; a quarter of it as text), --chunk bytes per read (65536)
                  echo:   --rounds (5) of --seconds (3) per server, --connections (100), --message-size (512), --client-threads (2)
                  idle:   --idle-connections (10000); uses `fluxgate echo-server` when built next to this binary
                  echo-work --server ours|nio --round-trips N: a fixed amount of echo work against one server, to time
                          whole processes side by side; drive --port P: the echo client against a server in another
                          process (serve-ours, serve-nio, `fluxgate echo-server`), e.g. to profile that server alone
                """)
            exit(2)
        }

        var summary: [String] = []
        if part == "all" || part == "decode" {
            summary += try decode(
                rounds: Int(value(of: "--rounds", in: arguments) ?? "") ?? 15,
                megabytes: Int(value(of: "--megabytes", in: arguments) ?? "") ?? 64,
                chunkSize: Int(value(of: "--chunk", in: arguments) ?? "") ?? 65536)
        }
        if part == "all" || part == "echo" {
            summary += try await echo(
                rounds: Int(value(of: "--rounds", in: arguments) ?? "") ?? 5,
                seconds: Double(value(of: "--seconds", in: arguments) ?? "") ?? 3,
                connections: Int(value(of: "--connections", in: arguments) ?? "") ?? 100,
                messageSize: Int(value(of: "--message-size", in: arguments) ?? "") ?? 512,
                clientThreads: Int(value(of: "--client-threads", in: arguments) ?? "") ?? 2)
        }
        if part == "all" || part == "idle" {
            summary += try await idle(connections: Int(value(of: "--idle-connections", in: arguments) ?? "") ?? 10_000)
        }
        print("\nsummary (targets from the issue):")
        for line in summary { print("  " + line) }
    }

    // MARK: Decode

    struct DecodeInput {
        var name: String
        var wire: ByteBuffer
        var frames: Int
        var payloadBytes: Int
        var isText: Bool
    }

    static func decode(rounds: Int, megabytes: Int, chunkSize: Int) throws -> [String] {
        var random = SeededGenerator(seed: 42)
        let binaryPayload = (0..<16384).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        // 100 bytes of JSON-like text with a 2-byte and two 3-byte sequences, so validation leaves the ASCII path.
        var text = #"{"type":"quote","sym":"EUR/USD","bid":1.08421,"note":"café — 5 €","pad":""#
        text += String(repeating: "x", count: 98 - text.utf8.count) + #""}"#
        precondition(text.utf8.count == 100)
        let inputs = [
            makeInput("binary 16 KiB frames", payload: binaryPayload, opcode: 0x2, totalBytes: megabytes << 20, random: &random),
            makeInput("text 100-byte frames", payload: Array(text.utf8), opcode: 0x1, totalBytes: megabytes << 18, random: &random),
        ]
        print("websocket decode: masked client frames decoded + unmasked, \(rounds) rounds; ByteToMessageHandler on EmbeddedChannel fed \(chunkSize)-byte chunks")
        var summary: [String] = []
        for input in inputs {
            print("  \(input.name): \(input.frames) frames, \(input.wire.readableBytes) bytes on the wire")
            var memcpySeconds: [Double] = []
            var parserSeconds: [Double] = []
            var oursSeconds: [Double] = []
            var oursNoUTF8Seconds: [Double] = []
            var theirsSeconds: [Double] = []
            let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: input.wire.readableBytes, alignment: 64)
            defer { destination.deallocate() }
            for _ in 0..<rounds {
                memcpySeconds.append(timedSeconds {
                    input.wire.withUnsafeReadableBytes { source in
                        _ = memcpy(destination.baseAddress!, source.baseAddress!, source.count)
                    }
                })
                var fresh = copy(input.wire)
                parserSeconds.append(try timedSecondsThrowing {
                    try check(input, decodeWithParser(&fresh, validateUTF8: input.isText), "our parser")
                })
                var chunks = split(input.wire, chunkSize: chunkSize)
                oursSeconds.append(try timedSecondsThrowing {
                    try check(input, decodeWithOurHandler(&chunks, validateUTF8: input.isText), "our decoder")
                })
                if input.isText {
                    chunks = split(input.wire, chunkSize: chunkSize)
                    oursNoUTF8Seconds.append(try timedSecondsThrowing {
                        try check(input, decodeWithOurHandler(&chunks, validateUTF8: false), "our decoder")
                    })
                }
                chunks = split(input.wire, chunkSize: chunkSize)
                theirsSeconds.append(try timedSecondsThrowing {
                    try check(input, NIOWebSocketBaseline.decode(&chunks, maxFrameSize: maxFrameSize), "NIOWebSocket")
                })
            }
            let bytes = Double(input.wire.readableBytes)
            let frames = Double(input.frames)
            reportThroughput("memcpy of the same bytes (ceiling)", memcpySeconds, bytes: bytes, frames: frames)
            reportThroughput("NIOWebSocket decoder + unmaskedData (baseline)", theirsSeconds, bytes: bytes, frames: frames)
            if input.isText {
                reportThroughput("ours, decoder, no UTF-8 validation", oursNoUTF8Seconds, bytes: bytes, frames: frames)
            }
            reportThroughput("ours, decoder" + (input.isText ? " + UTF-8 validation" : ""), oursSeconds, bytes: bytes, frames: frames)
            reportThroughput("ours, bare parser loop" + (input.isText ? " + UTF-8 validation" : ""), parserSeconds, bytes: bytes, frames: frames)
            let ratio = median(theirsSeconds) / median(oursSeconds)  // seconds per pass: theirs/ours is the speed ratio
            let parserRatio = median(theirsSeconds) / median(parserSeconds)
            let ceiling = median(memcpySeconds) / median(oursSeconds)
            print(String(format: "  ratio ours/NIOWebSocket: %.2f× (bare parser: %.2f×); ours reaches %.0f%% of memcpy", ratio, parserRatio, ceiling * 100))
            if input.isText {
                summary.append(String(format: "decode text, ours with UTF-8 validation vs theirs without: %.2f× (target ≥ 1.0×) %@", ratio, ratio >= 1.0 ? "met" : "NOT met"))
            } else {
                summary.append(String(format: "decode binary 16 KiB: %.2f× NIOWebSocket (target ≥ 1.5×) %@", ratio, ratio >= 1.5 ? "met" : "NOT met"))
            }
        }
        return summary
    }

    static func makeInput(_ name: String, payload: [UInt8], opcode: UInt8, totalBytes: Int, random: inout SeededGenerator) -> DecodeInput {
        let frameSize = WebSocketFrameEncoder.headerSize(payloadLength: payload.count, masked: true) + payload.count
        let count = max(1, totalBytes / frameSize)
        var wire = ByteBuffer()
        wire.reserveCapacity(count * frameSize)
        for _ in 0..<count {
            WebSocketWire.writeMaskedFrame(opcode: opcode, payload: payload, key: UInt32(truncatingIfNeeded: random.next()), into: &wire)
        }
        return DecodeInput(name: name, wire: wire, frames: count, payloadBytes: count * payload.count, isText: opcode == 0x1)
    }

    /// A private copy: decoders unmask in place, and a real read buffer is not shared either.
    static func copy(_ buffer: ByteBuffer) -> ByteBuffer {
        var result = ByteBuffer()
        result.reserveCapacity(buffer.readableBytes)
        result.writeImmutableBuffer(buffer)
        return result
    }

    /// Private copies of `chunkSize`-byte pieces, as successive socket reads would deliver them.
    static func split(_ buffer: ByteBuffer, chunkSize: Int) -> [ByteBuffer] {
        var chunks: [ByteBuffer] = []
        var offset = buffer.readerIndex
        while offset < buffer.writerIndex {
            let length = min(chunkSize, buffer.writerIndex - offset)
            chunks.append(copy(buffer.getSlice(at: offset, length: length)!))
            offset += length
        }
        return chunks
    }

    static func check(_ input: DecodeInput, _ count: DecodeCount, _ decoder: String) throws {
        guard count.frames == input.frames, count.payloadBytes == input.payloadBytes else {
            throw BenchmarkError("\(decoder) saw \(count.frames) frames, \(count.payloadBytes) bytes; expected \(input.frames), \(input.payloadBytes)")
        }
    }

    /// The bare loop: ``WebSocketFrameParser`` over one buffer (payloads unmasked in place), UTF-8 validation of text.
    static func decodeWithParser(_ buffer: inout ByteBuffer, validateUTF8: Bool) throws -> DecodeCount {
        var parser = WebSocketFrameParser(configuration: .init(maxFrameSize: maxFrameSize))
        var validator = WebSocketUTF8Validator()
        var count = DecodeCount()
        while case .frame(let frame) = try parser.parseStep(&buffer) {
            count.frames &+= 1
            count.payloadBytes &+= frame.data.readableBytes
            count.checksum &+= Int(frame.data.getInteger(at: frame.data.readerIndex, as: UInt8.self) ?? 0)
            if validateUTF8 {
                guard validator.validate(frame.data), validator.finish() else { throw BenchmarkError("invalid UTF-8") }
            }
        }
        return count
    }

    /// Our parser (``OurFrameDecoder``) in a `ByteToMessageHandler` on an `EmbeddedChannel`, the same harness as
    /// NIOWebSocket's in ``NIOWebSocketBaseline/decode(_:maxFrameSize:)``. The chunks are consumed.
    static func decodeWithOurHandler(_ chunks: inout [ByteBuffer], validateUTF8: Bool) throws -> DecodeCount {
        let sink = OurFrameSink(validateUTF8: validateUTF8)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(OurFrameDecoder(configuration: .init(maxFrameSize: maxFrameSize))))
        try channel.pipeline.syncOperations.addHandler(sink)
        for index in chunks.indices {
            var chunk = ByteBuffer()
            swap(&chunk, &chunks[index])  // hand the only reference over, as a socket read would
            try channel.writeInbound(chunk)
        }
        _ = try channel.finish()
        if sink.invalidUTF8 { throw BenchmarkError("invalid UTF-8") }
        return sink.count
    }

    /// Counts our frames (already unmasked by the parser) and validates text payloads.
    final class OurFrameSink: ChannelInboundHandler {
        typealias InboundIn = FluxWebSocket.WebSocketFrame
        let validateUTF8: Bool
        var validator = WebSocketUTF8Validator()
        var count = DecodeCount()
        var invalidUTF8 = false

        init(validateUTF8: Bool) { self.validateUTF8 = validateUTF8 }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = Self.unwrapInboundIn(data)
            count.frames &+= 1
            count.payloadBytes &+= frame.data.readableBytes
            count.checksum &+= Int(frame.data.getInteger(at: frame.data.readerIndex, as: UInt8.self) ?? 0)
            if validateUTF8 && !(validator.validate(frame.data) && validator.finish()) {
                invalidUTF8 = true
            }
        }
    }

    // MARK: Echo

    /// The echo client of `drive` and `echo-work`, with `--connections` (100) and `--message-size` (512).
    static func loadClient(_ arguments: [String], group: EventLoopGroup, port: Int) async throws -> LoadClient {
        try await LoadClient.connect(
            group: group, port: port, connections: Int(value(of: "--connections", in: arguments) ?? "") ?? 100,
            messageSize: Int(value(of: "--message-size", in: arguments) ?? "") ?? 512)
    }

    static func echo(rounds: Int, seconds: Double, connections: Int, messageSize: Int, clientThreads: Int) async throws -> [String] {
        // One event-loop thread for the servers and two for the client, on the two cores of the build machine: the
        // server thread is then the one the round trips wait for. (With one client thread, the faster server
        // makes the client the bottleneck: `--client-threads 1` shows it near 100% busy.)
        let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: clientThreads)
        let ourServer = try await startOurEchoServer(group: serverGroup, port: 0)
        let theirServer = try await NIOWebSocketBaseline.startEchoServer(group: serverGroup, host: "127.0.0.1", port: 0, maxFrameSize: maxFrameSize)
        let ourClient = try await LoadClient.connect(group: clientGroup, port: ourServer.localAddress!.port!, connections: connections, messageSize: messageSize)
        let theirClient = try await LoadClient.connect(group: clientGroup, port: theirServer.localAddress!.port!, connections: connections, messageSize: messageSize)
        print("websocket echo: \(connections) connections × \(messageSize)-byte masked binary messages on loopback, one in flight each; \(rounds) rounds of \(seconds) s per server, alternating; server on one event-loop thread, client on \(clientThreads)")

        // CPU time of the server's and the client's event-loop threads (/proc/self/task/TID/schedstat), to tell
        // the servers' cost per round trip apart from what the shared machine lets them run.
        let serverThread = try await threadID(of: serverGroup.next())
        var clientThreadIDs: [Int] = []
        for loop in clientGroup.makeIterator() { clientThreadIDs.append(try await threadID(of: loop)) }
        let cpuTime = { [threadCPUNanoseconds(serverThread), clientThreadIDs.reduce(0) { $0 + threadCPUNanoseconds($1) }] }

        _ = try await ourClient.run(seconds: 1)  // warm-up
        _ = try await theirClient.run(seconds: 1)
        var ours: [LoadClient.Run] = []
        var theirs: [LoadClient.Run] = []
        for round in 0..<rounds {
            if round % 2 == 0 {
                ours.append(try await ourClient.run(seconds: seconds, cpuTime: cpuTime))
                theirs.append(try await theirClient.run(seconds: seconds, cpuTime: cpuTime))
            } else {
                theirs.append(try await theirClient.run(seconds: seconds, cpuTime: cpuTime))
                ours.append(try await ourClient.run(seconds: seconds, cpuTime: cpuTime))
            }
        }
        await ourClient.close()
        await theirClient.close()
        try await ourServer.close()
        try await theirServer.close()
        try await serverGroup.shutdownGracefully()
        try await clientGroup.shutdownGracefully()

        for (name, runs) in [("NIOWebSocket echo server (baseline)", theirs), ("ours (fluxgate echo-server setup)", ours)] {
            reportRate(name, runs.map(\.roundTripsPerSecond), unit: "round trips/s")
            let serverMicroseconds = runs.map { Double($0.cpuNanoseconds[0]) / 1e3 / Double(max($0.roundTrips, 1)) }
            let serverBusy = runs.map { Double($0.cpuNanoseconds[0]) / 1e9 / $0.seconds * 100 }
            let clientBusy = runs.map { Double($0.cpuNanoseconds[1]) / 1e9 / $0.seconds * 100 }
            print(String(format: "    server thread CPU per round trip: median %.2f µs; server thread busy %.0f%%, client threads busy %.0f%% (of one core)",
                         median(serverMicroseconds), median(serverBusy), median(clientBusy)))
        }
        let pipeline = try echoPipelineCost(messageSize: messageSize, rounds: rounds)
        print(String(format: "  the WebSocket pipelines alone (EmbeddedChannel, no sockets): ours %.0f ns, NIOWebSocket %.0f ns per echoed message (%.2f×)",
                     pipeline.ours, pipeline.theirs, pipeline.theirs / pipeline.ours))
        // Each round runs both servers back to back: the median of the per-round ratios is steadier than the ratio
        // of medians when the shared machine's speed drifts between rounds.
        let pairedRatio = median(zip(ours, theirs).map { $0.roundTripsPerSecond / $1.roundTripsPerSecond })
        print(String(format: "  paired (per round) ratio ours/NIOWebSocket, median: %.2f×", pairedRatio))
        let ratio = median(ours.map(\.roundTripsPerSecond)) / median(theirs.map(\.roundTripsPerSecond))
        let cpuRatio = median(theirs.map { Double($0.cpuNanoseconds[0]) / Double(max($0.roundTrips, 1)) })
            / median(ours.map { Double($0.cpuNanoseconds[0]) / Double(max($0.roundTrips, 1)) })
        print(String(format: "  ratio ours/NIOWebSocket: %.2f× round trips/s; %.2f× less server CPU per round trip", ratio, cpuRatio))
        return [String(format: "echo round trips/s, %d × %d B: %.0f vs %.0f, %.2f× (paired %.2f×; target ≥ 1.2×) %@; server CPU per round trip %.2f× less",
                       connections, messageSize, median(ours.map(\.roundTripsPerSecond)), median(theirs.map(\.roundTripsPerSecond)), ratio,
                       pairedRatio, pairedRatio >= 1.2 ? "met" : "NOT met", cpuRatio)]
    }

    /// Ours like ``NIOWebSocketBaseline/echoInMemory(frame:messages:maxFrameSize:)``: the handlers
    /// ``WebSocketServerUpgrader`` installs plus the echo handler, on an `EmbeddedChannel`.
    static func echoInMemory(frame: ByteBuffer, messages: Int) throws -> Int {
        let channel = EmbeddedChannel()
        try WebSocketServerUpgrader.addHandlers(
            to: channel.pipeline.syncOperations,
            configuration: WebSocketConnectionConfiguration(role: .server, maxMessageSize: maxFrameSize, pingInterval: nil),
            deflate: nil, maxFrameSize: maxFrameSize)
        try channel.pipeline.syncOperations.addHandler(OurEchoHandler())
        var written = 0
        for _ in 0..<messages {
            var input = channel.allocator.buffer(capacity: frame.readableBytes)
            input.writeImmutableBuffer(frame)
            try channel.writeInbound(input)
            while let output = try channel.readOutbound(as: ByteBuffer.self) {
                written &+= output.readableBytes
            }
        }
        // Not `finish()`: ours would start a closing handshake and wait for the peer's Close on a clock that
        // an EmbeddedChannel never advances.
        return written
    }

    /// Nanoseconds per echoed message of both pipelines without sockets (medians of `rounds`).
    static func echoPipelineCost(messageSize: Int, rounds: Int) throws -> (ours: Double, theirs: Double) {
        var frame = ByteBuffer()
        WebSocketWire.writeMaskedFrame(opcode: 0x2, payload: (0..<messageSize).map { UInt8(truncatingIfNeeded: $0) }, key: 0x0BAD_CAFE, into: &frame)
        let messages = 200_000
        let expected = messages * WebSocketWire.serverFrameSize(payloadLength: messageSize)
        var ours: [Double] = []
        var theirs: [Double] = []
        for _ in 0..<rounds {
            ours.append(try timedSecondsThrowing {
                guard try echoInMemory(frame: frame, messages: messages) == expected else { throw BenchmarkError("ours echoed the wrong bytes") }
            } / Double(messages) * 1e9)
            theirs.append(try timedSecondsThrowing {
                guard try NIOWebSocketBaseline.echoInMemory(frame: frame, messages: messages, maxFrameSize: maxFrameSize) == expected else {
                    throw BenchmarkError("NIOWebSocket echoed the wrong bytes")
                }
            } / Double(messages) * 1e9)
        }
        return (median(ours), median(theirs))
    }

    /// The kernel thread ID of the thread running `loop`.
    static func threadID(of loop: EventLoop) async throws -> Int {
        let link = try await loop.submit { try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self") }.get()
        guard let tid = Int(link.split(separator: "/").last ?? "") else { throw BenchmarkError("cannot read /proc/thread-self: \(link)") }
        return tid
    }

    /// Nanoseconds thread `tid` of this process has run on a CPU (the first field of its schedstat).
    static func threadCPUNanoseconds(_ tid: Int) -> UInt64 {
        guard let text = try? String(contentsOfFile: "/proc/self/task/\(tid)/schedstat", encoding: .utf8) else { return 0 }
        return UInt64(text.split(separator: " ").first ?? "") ?? 0
    }

    /// Our echo server, set up as `fluxgate echo-server` does (Sources/fluxgate/EchoServerCommand.swift):
    /// TCP_NODELAY, 16 MiB frames and messages, no keep-alive pings, permessage-deflate accepted when offered.
    static func startOurEchoServer(group: EventLoopGroup, port: Int) async throws -> Channel {
        let maxMessageSize = maxFrameSize
        let handshake = WebSocketServerHandshake(deflate: WebSocketDeflateOptions())
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let upgrader = WebSocketServerUpgrader(
                    handshake: handshake,
                    configuration: WebSocketConnectionConfiguration(role: .server, maxMessageSize: maxMessageSize, pingInterval: nil),
                    maxFrameSize: maxMessageSize,
                    upgradePipelineHandler: { channel, _, _ in try channel.pipeline.syncOperations.addHandler(OurEchoHandler()) }
                )
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureWebSocketServerPipeline(upgrader: upgrader)
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
    }

    /// Sends every message back (the `EchoHandler` of `fluxgate echo-server`).
    final class OurEchoHandler: ChannelInboundHandler {
        typealias InboundIn = WebSocketMessage
        typealias OutboundOut = WebSocketOutboundMessage

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(Self.wrapOutboundOut(.message(Self.unwrapInboundIn(data))), promise: nil)
        }
    }

    /// The hidden `serve-ours` / `serve-nio` modes: the child processes of the idle benchmark.
    static func serve(_ channel: Channel) async throws {
        print("listening on \(channel.localAddress?.port ?? 0)")
        fflush(nil)
        try await channel.closeFuture.get()
    }

    // MARK: Idle

    static func idle(connections: Int) async throws -> [String] {
        raiseDescriptorLimit()
        let benchExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let fluxgate = benchExecutable.deletingLastPathComponent().appendingPathComponent("fluxgate")
        let ours: (String, URL, [String]) =
            FileManager.default.isExecutableFile(atPath: fluxgate.path)
            ? ("ours: fluxgate echo-server", fluxgate, ["echo-server", "--host", "127.0.0.1", "--port"])
            : ("ours: fluxgate-bench websocket serve-ours (no fluxgate binary next to this one)", benchExecutable, ["websocket", "serve-ours", "--port"])
        let servers = [ours, ("NIOWebSocket: fluxgate-bench websocket serve-nio", benchExecutable, ["websocket", "serve-nio", "--port"])]
        print("websocket idle: \(connections) idle connections (handshake done, then silence) to a server in a child process; RSS from /proc/PID/status")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var perConnection: [Double] = []
        for (name, executable, arguments) in servers {
            let port = try await freePort(group: group)
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments + [String(port)]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer {
                process.terminate()
                process.waitUntilExit()
            }
            try await waitForListener(group: group, port: port)
            // Warm-up connections stay open, so lazily built state is in the baseline.
            let warm = try await LoadClient.connect(group: group, port: port, connections: 100, messageSize: 16)
            _ = try await warm.run(seconds: 0.2)
            try await Task.sleep(for: .milliseconds(500))
            let before = try residentKiB(process.processIdentifier)
            let clients = try await LoadClient.connect(group: group, port: port, connections: connections, messageSize: 16, concurrency: 200)
            try await Task.sleep(for: .seconds(1))
            let after = try residentKiB(process.processIdentifier)
            let kib = Double(after - before) / Double(connections)
            perConnection.append(kib)
            print(String(format: "  %@: RSS %.1f MiB → %.1f MiB, %.2f KiB per connection", name, Double(before) / 1024, Double(after) / 1024, kib))
            await clients.close()
            await warm.close()
        }
        try await group.shutdownGracefully()
        return [String(format: "idle connections: %.2f KiB each (NIOWebSocket %.2f KiB) at %d (target ≤ 8 KiB) %@",
                       perConnection[0], perConnection[1], connections, perConnection[0] <= 8 ? "met" : "NOT met")]
    }

    static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    static func residentKiB(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { throw BenchmarkError("no VmRSS for process \(pid)") }
        return kib
    }

    static func freePort(group: EventLoopGroup) async throws -> Int {
        let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }

    static func waitForListener(group: EventLoopGroup, port: Int) async throws {
        for _ in 0..<200 {
            if let channel = try? await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get() {
                try? await channel.close()
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchmarkError("the server child did not listen on port \(port) within 10 s")
    }

    // MARK: Reporting

    /// `seconds` are durations of one pass over `bytes` / `frames`.
    static func reportThroughput(_ name: String, _ seconds: [Double], bytes: Double, frames: Double) {
        let label = name.padding(toLength: max(name.count, 50), withPad: " ", startingAt: 0)
        let best = seconds.min() ?? 0
        let worst = seconds.max() ?? 0
        let middle = median(seconds)
        print("    \(label) " + String(format: "median %8.0f MB/s %12.0f frames/s   (MB/s min %.0f, max %.0f)",
                                        bytes / middle / 1e6, frames / middle, bytes / worst / 1e6, bytes / best / 1e6))
    }

    static func reportRate(_ name: String, _ rates: [Double], unit: String) {
        let label = name.padding(toLength: max(name.count, 42), withPad: " ", startingAt: 0)
        print("  \(label) " + String(format: "median %10.0f %@   (min %.0f, max %.0f)", median(rates), unit, rates.min() ?? 0, rates.max() ?? 0))
    }

    static func timedSeconds(_ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        body()
        return (clock.now - start).seconds
    }

    static func timedSecondsThrowing(_ body: () throws -> Void) throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try body()
        return (clock.now - start).seconds
    }
}

/// What a decode pass saw: frames, payload bytes, and a checksum that keeps the work observable.
struct DecodeCount {
    var frames = 0
    var payloadBytes = 0
    var checksum = 0
}



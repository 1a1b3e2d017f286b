import FluxWebSocket
import NIOCore

/// Our ``WebSocketFrameParser`` as a `ByteToMessageDecoder`: the decode benchmark runs it in the same harness as
/// NIOWebSocket's `WebSocketFrameDecoder` (a `ByteToMessageHandler` on an `EmbeddedChannel`), so that the two
/// parsers are compared and not two pipelines. (The product parses inside `WebSocketConnectionHandler`.)
struct OurFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = WebSocketFrame

    private var parser: WebSocketFrameParser

    init(configuration: WebSocketFrameParser.Configuration) {
        parser = WebSocketFrameParser(configuration: configuration)
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch try parser.parseStep(&buffer) {
        case .frame(let frame):
            context.fireChannelRead(Self.wrapInboundOut(frame))
            return .continue
        case .needMoreData:
            return .needMoreData
        }
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

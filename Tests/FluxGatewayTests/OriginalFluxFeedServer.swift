import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A stand-in for a running service of the original Go flux framework, serving its feed format exactly:
/// `GET /events?offset=N` → `{"description":"event feed","events":[EventEntry…]}` with 20 entries a page (`null`
/// past the end, as Go encodes a nil slice), `GET /events/ID` → the bare payload JSON, as Go's `json.Encoder`
/// writes it (with a trailing newline).
final class OriginalFluxFeedServer: Sendable {
    struct Event: Sendable {
        var id: String
        var aggregateName: String
        var aggregateVersion: Int
        var eventType: String
        var payload: String
    }

    private struct State {
        var events: [Event]
        /// Event ids whose next payload fetch answers 500.
        var failOnce: Set<String> = []
        var payloadFetches = 0
    }

    private let box: StateBox
    private let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }
    var baseURL: String { "http://127.0.0.1:\(port)" }

    static let pageSize = 20

    private init(box: StateBox, channel: any Channel) {
        self.box = box
        self.channel = channel
    }

    static func start(events: [Event], failOnce: Set<String> = []) async throws -> OriginalFluxFeedServer {
        let box = StateBox(state: State(events: events, failOnce: failOnce))
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = OriginalFluxFeedServer(box: box, channel: channel)
        box.server.withLock { $0 = server.baseURL }
        return server
    }

    /// How many payload GETs were answered (including failed ones).
    var payloadFetches: Int { box.state.withLock { $0.payloadFetches } }

    func stop() async {
        try? await channel.close()
    }

    /// The bank example's history: three accounts, created, credited and debited, interleaved, 38 events
    /// (so the feed has a full page, a partial one, then `null`).
    static func bankHistory() -> [Event] {
        var events: [Event] = []
        var versions: [String: Int] = [:]
        func add(_ account: String, _ type: String, _ fields: String) {
            let version = versions[account, default: -1] + 1
            versions[account] = version
            events.append(
                Event(
                    id: String(format: "5f0c%04x-1b2c-4d3e-8f40-0000000000%02x", events.count, events.count),
                    aggregateName: "*account.Account", aggregateVersion: version, eventType: "account.\(type)",
                    payload: #"{"account_id":"\#(account)",\#(fields)}"# + "\n"
                ))
        }
        for account in ["acc-1", "acc-2", "acc-3"] { add(account, "AccountCreated", #""balance":0"#) }
        for round in 0..<14 {
            let account = ["acc-1", "acc-2", "acc-3"][round % 3]
            add(account, "AccountCredited", #""transaction_id":"t\#(round)","amount":\#(100 + round)"#)
            add(account, "AccountDebited", #""transaction_id":"d\#(round)","amount":\#(10 + round)"#)
            if round % 2 == 0 {
                add(account, "AccountCredited", #""transaction_id":"x\#(round)","amount":1"#)
            }
        }
        return events
    }

    private final class StateBox: Sendable {
        let state: Mutex<State>
        let server = Mutex<String>("")
        init(state: State) { self.state = Mutex(state) }
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let box: StateBox
        private var uri = ""

        init(box: StateBox) { self.box = box }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): uri = head.uri
            case .body: break
            case .end:
                let (status, body) = answer(uri)
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: status == .ok ? "application/json" : "text/plain")
                headers.add(name: "Content-Length", value: String(body.utf8.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }

        private func answer(_ uri: String) -> (HTTPResponseStatus, String) {
            let base = box.server.withLock { $0 }
            let components = URLComponents(string: uri)
            let path = components?.path ?? uri
            if path == "/events" {
                // Go's strconv.Atoi of the offset; the original ignores every other parameter.
                let offset = components?.queryItems?.first(where: { $0.name == "offset" })?.value.flatMap { Int($0) } ?? 0
                let events = box.state.withLock { $0.events }
                let page = offset < events.count ? Array(events[offset..<min(events.count, offset + OriginalFluxFeedServer.pageSize)]) : []
                if page.isEmpty { return (.ok, #"{"description":"event feed","events":null}"# + "\n") }
                let entries = page.map { event in
                    #"{"event_id":"\#(event.id)","url":"\#(base)/events/\#(event.id)","aggregate_name":"\#(event.aggregateName)","aggregate_version":\#(event.aggregateVersion),"event_type":"\#(event.eventType)","created":"Mon Jan  2 15:04:05 UTC 2017"}"#
                }
                return (.ok, #"{"description":"event feed","events":[\#(entries.joined(separator: ","))]}"# + "\n")
            }
            if path.hasPrefix("/events/") {
                let id = String(path.dropFirst("/events/".count))
                return box.state.withLock { state in
                    state.payloadFetches += 1
                    if state.failOnce.remove(id) != nil { return (.internalServerError, "boom\n") }
                    guard let event = state.events.first(where: { $0.id == id }) else { return (.notFound, "404 page not found\n") }
                    return (.ok, event.payload)
                }
            }
            return (.notFound, "404 page not found\n")
        }
    }
}

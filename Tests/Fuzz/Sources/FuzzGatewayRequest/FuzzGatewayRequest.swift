import Dispatch
import FluxCore
@testable import FluxGateway
import FluxWire
import Foundation
import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Synchronization

// Runs HTTP requests through the gateway's request path: NIO's `HTTPRequestDecoder` with the gateway's limits (as
// `GatewayServer.start` configures it), the checks `HTTPServerHandler` makes before routing (body limit, transfer
// codings, HEAD answered as GET), then `GatewayRouter.respond(to:countedAs:)`. Each input gets a fresh in-memory
// store holding three events (`evt-1`, `evt-2` of `Account` `acc-1`; `evt-3` of `Customer` `cust-1`; epoch
// `fuzz-epoch`, a fixed clock) and a fresh router and hub over it, so an input's answers do not depend on the ones
// before it (only the `/metrics` body does: the metrics are shared, see `sharedMetrics`). The router's tasks run on
// the fuzzing thread (`CallerThreadExecutor`), which keeps libFuzzer's leak detection meaningful and cheap.
//
// Input layout: [flags] then, by flags bit 0:
// - 0, "wire": [n] [n & 7 split lengths] [raw bytes...]: the bytes are fed to the decoder in chunks of those lengths
//   (see `chunks(of:lengths:)`); each complete request (at most 8) is routed in order, as one keep-alive connection
//   would be answered, until the decoder fails or an answer would close the connection.
// - 1, "structured": [method] [route] [headers1] [headers2] [token] [uriLength] [uri text...] [extraLength]
//   [extra text...] [body...]: one request, built directly; the URI is a route prefix plus the text (query strings
//   and percent-escapes), `extra` is the value of the headers that take one (a bad token, Last-Event-ID, Origin,
//   X-Forwarded-Host, If-None-Match, Host, Sec-WebSocket-Protocol).
// Other flags bits: 1 access control (static tokens `secret-token` = read:Account write:Account, `ops-token` = read
// metrics, and an HS256 JWT key); 2 `127.0.0.1` is a trusted proxy (X-Forwarded-*); 3 appends limited to 1 per second
// (burst 1); 4 no subscription slots; 5 a public URL and an allowed origin; 6 small limits (256-byte bodies, 512-byte
// heads); 7 smaller pages (by count and by bytes). Long-polls never wait (`maxWaitSeconds = 0`).
//
// Checks, for every answer:
// - the status is one the router can give (101 200 201 304 400 401 403 404 405 409 415 426 429 503), never 500;
// - every failure (≥ 400) is `application/json` with an `{"error": code, "message": …}` object, a code that fits
//   the status (no `internal`; 401 with `WWW-Authenticate`, 405 with `Allow`, 429 with `Retry-After`), and 401/403
//   only from access control or the WebSocket origin check;
// - every other JSON body parses (FluxWire's strict `JSONParser`), a 304 has no body and answers an If-None-Match,
//   a feed or stream page holds at most `maxPageSize` events, response headers are tokens without CR, LF or NUL in
//   their values;
// - a `101` only for a WebSocket GET to /events/subscribe, a stream only for SSE;
// - a `201` moved the store's head by exactly the number of events in the body (or not at all for a replay whose
//   events all name their ids), with `last_position - first_position + 1` events; any other answer left it alone.
// Set FUZZ_VERBOSE=1 to print every request and answer (for triage of a reproducer).

// MARK: - Fixtures

private let staticToken = "secret-token"
private let opsToken = "ops-token"
private let jwtSecret = "fuzz-secret-0123456789abcdef-hs2"
/// HS256 over `jwtSecret`: sub jwt-user, exp 2100-01-01, scope "read:Account write:Account metrics".
private let validJWT =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJqd3QtdXNlciIsImV4cCI6NDEwMjQ0NDgwMCwic2NvcGUiOiJyZWFkOkFjY291bnQgd3JpdGU6QWNjb3VudCBtZXRyaWNzIn0.Z55F48RCWBgzbFor99Dq8nLBdopjkEN68lIfqC6kWx8"
private let webSocketKey = "dGhlIHNhbXBsZSBub25jZQ=="
private let maxRequestsPerInput = 8
private let verbose = ProcessInfo.processInfo.environment["FUZZ_VERBOSE"] != nil

private func log(_ line: String) {
    FileHandle.standardError.write(Data("[fuzz] \(line)\n".utf8))
}

/// A value handed out of a task run by `runBlocking`.
private final class Box<Value>: @unchecked Sendable {
    var value: Value?
}

/// Runs tasks on the thread that calls `run(until:)`: the fuzzing thread itself.
///
/// With tasks on Swift's global executor, every input's task is handed to libdispatch from this thread and finished
/// on a pool thread, which keeps the continuation in its own cache: each input then ends with two more mallocs than
/// frees, and libFuzzer answers every such input by running it again and scanning the whole heap for leaks (most of
/// the time was spent there). On this thread, an input's allocations and frees balance, so a leak check runs only
/// when something really stays allocated, e.g. a retain cycle in the request path.
private final class CallerThreadExecutor: TaskExecutor {
    private let jobs = Mutex<[UnownedJob]>([])
    private let available = DispatchSemaphore(value: 0)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        available.signal()
    }

    /// Runs jobs until `isDone` holds, waiting for jobs resumed from other threads (a timer) when none is ready.
    func run(until isDone: () -> Bool) {
        while !isDone() {
            available.wait()
            let job = jobs.withLock { $0.removeFirst() }
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

private let callerThread = CallerThreadExecutor()

/// Runs `body` in a task on the calling (libFuzzer) thread and returns its result. A task that never finishes
/// hangs here, and libFuzzer reports a timeout.
private func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let box = Box<T>()
    Task(executorPreference: callerThread) {
        box.value = await body()
    }
    callerThread.run(until: { box.value != nil })
    return box.value!
}

/// Built once (it is async and hashes the tokens): the same for every input that enables access control.
private let sharedAccessControl: AccessControl = runBlocking {
    do {
        return try await AccessControl(
            tokens: [
                .init(name: "t", token: staticToken, scopes: ["read:Account", "write:Account"]),
                .init(name: "ops", token: opsToken, scopes: ["read", "metrics"]),
            ],
            jwt: .init(hmacSecrets: [Array(jwtSecret.utf8)])
        )
    } catch {
        fatalError("cannot set up access control: \(error)")
    }
}

private func makeConfiguration(flags: UInt8) -> GatewayConfiguration {
    let small = flags & 0x40 != 0
    let smallPages = flags & 0x80 != 0
    let limited = flags & 0x08 != 0
    var configuration = GatewayConfiguration(
        publicURL: flags & 0x20 != 0 ? "https://feed.example/" : nil,
        maxRequestBodySize: small ? 256 : 8192,
        defaultPageSize: smallPages ? 1 : 2, maxPageSize: smallPages ? 2 : 3,
        maxWaitSeconds: 0, subscriptionPageSize: 2,
        allowedOrigins: flags & 0x20 != 0 ? ["https://app.example"] : [],
        maxHeaderSize: small ? 512 : 32 * 1024,
        maxSubscriptions: flags & 0x10 != 0 ? 0 : nil,
        appendRate: limited ? 1 : nil, appendBurst: limited ? 1 : nil,
        accessControl: flags & 0x02 != 0 ? sharedAccessControl : nil
    )
    if flags & 0x04 != 0 { configuration.trustedProxies = ["127.0.0.1"] }
    if smallPages { configuration.maxPageBytes = 400 }  // about one event: pages cut by bytes
    return configuration
}

/// The request decoder's limits, as `GatewayServer.start` derives them from the configuration.
private func decoderLimits(_ configuration: GatewayConfiguration) -> NIOHTTPDecoderLimitConfiguration {
    var limits = NIOHTTPDecoderLimitConfiguration()
    limits.maxHeaderListSize = configuration.maxHeaderSize
    limits.maxHeaderFieldSize = configuration.maxHeaderSize
    limits.maxHeaderFieldCount = 200
    return limits
}

private func seededStore() async -> InMemoryEventStore {
    let store = InMemoryEventStore(epoch: StoreEpoch(rawValue: "fuzz-epoch"), clock: { 1_700_000_000_000 })
    func event(_ id: String, _ type: String, _ payload: String) -> NewEvent {
        NewEvent(eventID: id, eventType: type, payload: EventPayload(trustedJSON: Array(payload.utf8)))
    }
    do {
        try await store.append(
            AppendRequest(
                aggregateID: "acc-1", aggregateName: "Account", expectedVersion: .noStream,
                events: [event("evt-1", "Opened", #"{"owner":"Zoë"}"#), event("evt-2", "Credited", #"{"amount":10}"#)]
            )
        )
        try await store.append(
            AppendRequest(
                aggregateID: "cust-1", aggregateName: "Customer", expectedVersion: .noStream,
                events: [event("evt-3", "Registered", #"[1,"two",{"3":null}]"#)]
            )
        )
    } catch {
        fatalError("cannot seed the store: \(error)")
    }
    return store
}

// MARK: - Requests

/// What the connection does with a request, as `HTTPServerHandler` would.
private enum Exchange: Sendable {
    /// A whole request, routed.
    case route(HTTPRequestHead, ByteBuffer)
    /// Refused before routing (413, 501); the connection closes.
    case refuse(HTTPRequestHead, UInt)
}

/// `HTTPServerHandler.channelRead(.head)`'s checks: a declared body over the limit (413), a transfer coding other
/// than chunked (501).
private func refusal(of head: HTTPRequestHead, maxBodySize: Int) -> UInt? {
    if let length = head.headers.first(name: "Content-Length").flatMap(Int.init), length > maxBodySize { return 413 }
    let codings = head.headers[canonicalForm: "Transfer-Encoding"].map { $0.lowercased() }
    if !codings.isEmpty, codings != ["chunked"] { return 501 }
    return nil
}

/// Mode A: decodes raw bytes as the server's pipeline does and collects what it would route.
private func wireExchanges(_ bytes: [UInt8], lengths: [UInt8], configuration: GatewayConfiguration) -> [Exchange] {
    let channel = EmbeddedChannel()
    do {
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: decoderLimits(configuration)))
        )
    } catch {
        fatalError("cannot set up the pipeline: \(error)")
    }
    var parts: [HTTPServerRequestPart] = []
    var ends = 0
    for chunk in chunks(of: bytes, lengths: lengths) {
        var failed = false
        do {
            try channel.writeInbound(ByteBuffer(bytes: chunk))
        } catch {
            failed = true  // a parser error: the server answers 400 (after the requests already whole) and closes
            if verbose { log("decoder error: \(error)") }
        }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            parts.append(part)
            if case .end = part { ends += 1 }
        }
        if failed || ends >= maxRequestsPerInput { break }
    }
    _ = try? channel.finish()

    var exchanges: [Exchange] = []
    var receiving: (HTTPRequestHead, ByteBuffer)?
    for part in parts {
        switch part {
        case .head(let head):
            guard receiving == nil else { continue }
            if let status = refusal(of: head, maxBodySize: configuration.maxRequestBodySize) {
                exchanges.append(.refuse(head, status))
                return exchanges
            }
            receiving = (head, ByteBuffer())
        case .body(var chunk):
            guard let (head, received) = receiving else { continue }
            if received.readableBytes + chunk.readableBytes > configuration.maxRequestBodySize {
                exchanges.append(.refuse(head, 413))
                return exchanges
            }
            receiving = nil
            var body = received
            body.writeBuffer(&chunk)
            receiving = (head, body)
        case .end:
            guard let (head, body) = receiving else { continue }
            receiving = nil
            exchanges.append(.route(head, body))
            if exchanges.count == maxRequestsPerInput { return exchanges }
        }
    }
    return exchanges
}

private let methods: [HTTPMethod] = [.GET, .POST, .HEAD, .PUT, .DELETE, .OPTIONS, .PATCH, .RAW(value: "FETCH")]
private let routePrefixes = [
    "/events", "/events/", "/streams/", "/events/subscribe", "/health", "/metrics", "/", "/ui/",
    "/streams/acc-1", "/events/evt-1", "/events?", "/streams/cust-1?",
]

/// Header and URI text as NIO's parser could hand it over: no control characters (values keep obs-text).
private func headerText(_ bytes: [UInt8]) -> String {
    String(decoding: bytes.filter { ($0 >= 0x20 && $0 != 0x7F) || $0 == 0x09 }, as: UTF8.self)
}

private func uriText(_ bytes: [UInt8]) -> String {
    String(decoding: bytes.filter { $0 > 0x20 && $0 != 0x7F }, as: UTF8.self)
}

/// Mode B: one request built from the input's fields.
private func structuredExchange(_ input: inout FuzzInput, configuration: GatewayConfiguration) -> Exchange {
    let method = methods[Int(input.byte()) % methods.count]
    var uri = routePrefixes[Int(input.byte()) % routePrefixes.count]
    let headerBits = input.byte()
    let moreHeaderBits = input.byte()
    let tokenChoice = input.byte()
    uri += uriText(input.take(Int(input.byte())))
    let extra = headerText(input.take(Int(input.byte())))
    let body = input.rest()

    var headers = HTTPHeaders()
    headers.add(name: "Host", value: moreHeaderBits & 0x01 != 0 ? extra : "gw.test:8080")
    if headerBits & 0x01 != 0 { headers.add(name: "Accept", value: "text/event-stream") }
    if headerBits & 0x02 != 0 {
        headers.add(name: "Connection", value: "Upgrade")
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "Sec-WebSocket-Key", value: webSocketKey)
        headers.add(name: "Sec-WebSocket-Version", value: moreHeaderBits & 0x04 != 0 ? "8" : "13")
        if moreHeaderBits & 0x02 != 0 {
            headers.add(name: "Sec-WebSocket-Extensions", value: "permessage-deflate; client_max_window_bits")
        }
        if moreHeaderBits & 0x20 != 0 { headers.add(name: "Sec-WebSocket-Protocol", value: extra) }
    }
    if headerBits & 0x04 != 0 { headers.add(name: "Content-Type", value: "application/json") }
    if headerBits & 0x08 != 0 { headers.add(name: "Content-Type", value: "text/plain") }
    if headerBits & 0x10 != 0 { headers.add(name: "Last-Event-ID", value: extra) }
    if headerBits & 0x20 != 0 { headers.add(name: "Origin", value: moreHeaderBits & 0x40 != 0 ? extra : "http://gw.test:8080") }
    if headerBits & 0x40 != 0 {
        headers.add(name: "X-Forwarded-Host", value: extra)
        headers.add(name: "X-Forwarded-Proto", value: "https")
    }
    if headerBits & 0x80 != 0 { headers.add(name: "If-None-Match", value: moreHeaderBits & 0x80 != 0 ? "*" : extra) }
    switch tokenChoice & 7 {
    case 1: headers.add(name: "Authorization", value: "Bearer " + staticToken)
    case 2: headers.add(name: "Authorization", value: "Bearer " + opsToken)
    case 3: headers.add(name: "Authorization", value: "Bearer " + extra)
    case 4: uri += (uri.contains("?") ? "&" : "?") + "access_token=" + staticToken
    case 5: headers.add(name: "Authorization", value: "Bearer " + validJWT)
    case 6: headers.add(name: "Authorization", value: "Basic c2VjcmV0LXRva2Vu")
    case 7: headers.add(name: "Authorization", value: "bearer   \(staticToken)  ")
    default: break
    }
    if !body.isEmpty || method == .POST { headers.add(name: "Content-Length", value: String(body.count)) }
    let version: HTTPVersion = moreHeaderBits & 0x08 != 0 ? .http1_0 : .http1_1
    let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: headers)
    if let status = refusal(of: head, maxBodySize: configuration.maxRequestBodySize) { return .refuse(head, status) }
    return .route(head, ByteBuffer(bytes: body))
}

// MARK: - Routing

/// One routed request and what it did.
private struct Outcome: Sendable {
    var head: HTTPRequestHead
    var request: GatewayRequest
    var response: GatewayResponse
    var headBefore: Int64
    var headAfter: Int64
}

/// One set of metrics for every input: making a Prometheus registry took about 30 % of an input's time. Only the
/// body of `GET /metrics` depends on it (its counts are the process's); everything else an answer depends on, the
/// store, router, hub, subscription slots and rate limiter, is made anew for each input.
private let sharedMetrics = GatewayMetrics()

/// Routes the exchanges in order over a fresh store and router, stopping where the connection would close.
private func route(_ exchanges: [Exchange], configuration: GatewayConfiguration) async -> [Outcome] {
    let store = await seededStore()
    let metrics = sharedMetrics
    let metered = MeteredEventStore(store, metrics: metrics)
    let hub = SubscriptionHub(store: metered, logger: configuration.logger, metrics: metrics)
    let router = GatewayRouter(store: metered, configuration: configuration, hub: hub, metrics: metrics)
    var outcomes: [Outcome] = []
    for (index, exchange) in exchanges.enumerated() {
        guard case .route(let head, let body) = exchange else { break }
        // As HTTPServerHandler.dispatch: HEAD is answered as GET (and never upgrades).
        var headers = head.headers
        if head.method == .HEAD { headers.remove(name: "Upgrade") }
        let method: HTTPMethod = head.method == .HEAD ? .GET : head.method
        var request = GatewayRequest(method: method, version: head.version, uri: head.uri, headers: headers, body: body)
        request.remoteAddress = "127.0.0.1"
        request.requestID = "fuzz-\(index + 1)"
        let before = (try? await store.head())?.rawValue ?? -1
        let response = await router.respond(to: request, countedAs: head.method)
        let after = (try? await store.head())?.rawValue ?? -1
        outcomes.append(Outcome(head: head, request: request, response: response, headBefore: before, headAfter: after))
        // The connection closes after this answer: nothing more is read as HTTP.
        if !head.isKeepAlive || response.upgrade != nil || response.stream != nil { break }
    }
    return outcomes
}

// MARK: - Checks

private let routerStatuses: Set<UInt> = [101, 200, 201, 304, 400, 401, 403, 404, 405, 409, 415, 426, 429, 503]
/// The error codes each failure status may carry.
private let errorCodes: [UInt: Set<String>] = [
    400: ["bad_request", "bad_handshake"],
    401: ["unauthorized"],
    403: ["forbidden", "origin_not_allowed", "bad_handshake"],
    404: ["not_found"],
    405: ["method_not_allowed"],
    409: ["conflict", "duplicate_event_id", "aggregate_name_mismatch", "epoch_mismatch"],
    415: ["unsupported_media_type"],
    426: ["bad_handshake"],
    429: ["rate_limited"],
    503: ["overloaded", "web_ui_unavailable"],
]

private func check(_ outcome: Outcome, configuration: GatewayConfiguration) {
    let response = outcome.response
    let request = outcome.request
    let status = response.status.code
    let what = "\(outcome.head.method) \(request.uri.prefix(300)) → \(status) \(String(buffer: response.body).prefix(300))"
    if verbose { log("\(what) (head \(outcome.headBefore) → \(outcome.headAfter))") }
    fuzzCheck(routerStatuses.contains(status), "unexpected status: \(what)")
    for (name, value) in response.headers {
        fuzzCheck(!name.isEmpty && name.utf8.allSatisfy(isTokenByte), "response header name \(name) is not a token: \(what)")
        fuzzCheck(!value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }), "response header \(name) has CR, LF or NUL: \(what)")
    }
    let segments = request.pathSegments ?? []
    let isSubscribe = segments == ["events", "subscribe"] && request.method == .GET

    if response.upgrade != nil || status == 101 {
        fuzzCheck(response.upgrade != nil && status == 101, "101 without an upgrade or an upgrade without 101: \(what)")
        fuzzCheck(isSubscribe && outcome.head.method == .GET, "upgrade outside GET /events/subscribe: \(what)")
        fuzzCheck(response.headers["Sec-WebSocket-Accept"].count == 1, "101 without one Sec-WebSocket-Accept: \(what)")
        fuzzCheck(headAfterIsUnchanged(outcome), "an upgrade changed the store: \(what)")
        return
    }
    if response.stream != nil {
        fuzzCheck(status == 200 && isSubscribe, "a stream outside GET /events/subscribe: \(what)")
        fuzzCheck(response.headers.first(name: "Content-Type") == "text/event-stream", "a stream that is not text/event-stream: \(what)")
        fuzzCheck(headAfterIsUnchanged(outcome), "a subscription changed the store: \(what)")
        return
    }

    let contentType = response.headers.first(name: "Content-Type") ?? ""
    var document: JSONValue?
    if contentType.lowercased().hasPrefix("application/json") {
        do {
            document = try JSONParser.parse(response.body.readableBytesView)
        } catch {
            fuzzCheck(false, "a JSON answer that does not parse (\(error)): \(what)")
        }
    }
    if status >= 400 {
        fuzzCheck(contentType == "application/json", "a failure that is not JSON: \(what)")
        let code = document?["error"]?.stringValue
        fuzzCheck(document?.isObject == true && code != nil && document?["message"]?.stringValue != nil, "a failure without error and message: \(what)")
        fuzzCheck(code != "internal", "an internal error: \(what)")
        fuzzCheck(errorCodes[status]?.contains(code ?? "") == true, "error code \(code ?? "nil") does not fit status \(status): \(what)")
        switch status {
        case 401:
            fuzzCheck(configuration.accessControl != nil, "401 on an open gateway: \(what)")
            fuzzCheck(response.headers.first(name: "WWW-Authenticate") != nil, "401 without WWW-Authenticate: \(what)")
        case 403 where code == "forbidden":
            fuzzCheck(configuration.accessControl != nil, "403 forbidden on an open gateway: \(what)")
        case 405:
            fuzzCheck(response.headers.first(name: "Allow") != nil, "405 without Allow: \(what)")
        case 429:
            fuzzCheck(configuration.appendRate != nil, "429 without a rate limit: \(what)")
            fuzzCheck(response.headers.first(name: "Retry-After") != nil, "429 without Retry-After: \(what)")
        case 503 where code == "overloaded":
            fuzzCheck(configuration.maxSubscriptions == 0, "overloaded with free subscription slots: \(what)")
        default:
            break
        }
    }
    if status == 304 {
        fuzzCheck(response.body.readableBytes == 0, "304 with a body: \(what)")
        fuzzCheck(request.headers.first(name: "If-None-Match") != nil, "304 without If-None-Match: \(what)")
    }
    // A feed or stream page (a single event's bare payload may hold anything, an "events" member too).
    if status == 200, segments == ["events"] || segments.first == "streams", let events = document?["events"]?.arrayValue {
        fuzzCheck(events.count <= configuration.maxPageSize, "a page of \(events.count) events: \(what)")
    }

    if status == 201 {
        fuzzCheck(outcome.head.method == .POST && segments.first == "streams", "201 for something other than an append: \(what)")
        guard let body = try? JSONParser.parse(request.body.readableBytesView), let events = body["events"]?.arrayValue else {
            fuzzCheck(false, "201 for a body without an events array: \(what)")
            return
        }
        let appended = outcome.headAfter - outcome.headBefore
        let isReplay = events.allSatisfy { $0["event_id"] != nil }
        fuzzCheck(
            appended == Int64(events.count) || (appended == 0 && isReplay),
            "201 for \(events.count) events moved the head by \(appended): \(what)"
        )
        let first = document?["first_position"]?.int64Value
        let last = document?["last_position"]?.int64Value
        fuzzCheck(first != nil && last != nil, "201 without positions: \(what)")
        if let first, let last {
            fuzzCheck(last - first + 1 == Int64(events.count), "201 positions \(first)…\(last) for \(events.count) events: \(what)")
            if appended > 0 {
                fuzzCheck(first == outcome.headBefore + 1 && last == outcome.headAfter, "201 positions are not the new events': \(what)")
            }
        }
    } else {
        fuzzCheck(headAfterIsUnchanged(outcome), "a \(status) answer changed the store's head: \(what)")
    }
}

private func headAfterIsUnchanged(_ outcome: Outcome) -> Bool { outcome.headAfter == outcome.headBefore }


// MARK: - Entry point

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    let configuration = makeConfiguration(flags: flags)
    let exchanges: [Exchange]
    if flags & 1 == 0 {
        let lengths = input.take(Int(input.byte() & 7))
        exchanges = wireExchanges(input.rest(), lengths: lengths, configuration: configuration)
    } else {
        exchanges = [structuredExchange(&input, configuration: configuration)]
    }
    if verbose, case .refuse(let head, let status)? = exchanges.last { log("\(head.method) \(head.uri.prefix(300)) refused before routing: \(status)") }
    guard case .route = exchanges.first else { return 0 }
    let outcomes = runBlocking { await route(exchanges, configuration: configuration) }
    for outcome in outcomes {
        check(outcome, configuration: configuration)
    }
    return 0
}

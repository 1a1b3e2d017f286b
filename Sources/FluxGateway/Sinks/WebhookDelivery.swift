import AsyncHTTPClient
import FluxCore
import NIOCore
import NIOHTTP1

/// How one delivery to a sink's receiver ended.
enum WebhookDeliveryOutcome: Equatable, Sendable {
    /// A 2xx answer: the event is acknowledged.
    case delivered
    /// `410 Gone`: the receiver wants no more events; the sink is disabled.
    case gone
    /// Anything else; the reason names the cause ("HTTP 500", "timed out after 5 s", "connection refused", …).
    case failed(String, Cause)

    /// A failure's kind: the `outcome` label of `fluxgate_sink_deliveries_total`.
    enum Cause: String, Sendable {
        case httpStatus = "http_status"
        case timeout
        case connection
        case tls
        case other
    }

    /// The `outcome` label of `fluxgate_sink_deliveries_total`.
    var label: String {
        switch self {
        case .delivered: "delivered"
        case .gone: "gone"
        case .failed(_, let cause): cause.rawValue
        }
    }
}

/// One POST of an event to a receiver, signed (Standard Webhooks), within the sink's timeout.
struct WebhookDelivery: Sendable {
    let client: HTTPClient
    let url: String
    let signatures: [WebhookSignature]
    let timeout: Duration

    /// The most bytes of an answer's body that are read (and thrown away: only the status counts); the rest is not
    /// read (the connection is closed), so a receiver's long answer costs no memory and does not fail the delivery.
    static let maximumAnswerBytes = 64 << 10

    func post(id: String, body: ByteBuffer, now: Int64 = Timestamp.nowMilliseconds() / 1000) async -> WebhookDeliveryOutcome {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "user-agent", value: "fluxgate-webhooks")
        request.headers.add(name: "webhook-id", value: id)
        request.headers.add(name: "webhook-timestamp", value: String(now))
        request.headers.add(
            name: "webhook-signature", value: WebhookSignature.header(secrets: signatures, id: id, timestamp: now, body: body.readableBytesView))
        request.body = .bytes(body)
        let (client, timeout, prepared) = (client, timeout, request)
        do {
            // The whole exchange (connecting, sending, the answer's head and body) within the timeout: the task that
            // loses the race is cancelled, and a cancelled request closes its connection.
            let status = try await withThrowingTaskGroup(of: HTTPResponseStatus?.self) { group in
                group.addTask {
                    let response = try await client.execute(prepared, timeout: TimeAmount(timeout) + .seconds(1))
                    var read = 0
                    for try await chunk in response.body {
                        read += chunk.readableBytes
                        if read >= Self.maximumAnswerBytes { break }
                    }
                    return response.status
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
            guard let status else { return .failed("timed out after \(Self.describe(timeout))", .timeout) }
            if (200..<300).contains(status.code) { return .delivered }
            if status == .gone { return .gone }
            return .failed("HTTP \(status.code)\(status.reasonPhrase.isEmpty ? "" : " \(status.reasonPhrase)")", .httpStatus)
        } catch is CancellationError {
            return .failed("the gateway stopped during the delivery", .other)
        } catch {
            let (reason, cause) = Self.reason(for: error, timeout: timeout)
            return .failed(reason, cause)
        }
    }

    /// A failure's cause in words (what an operator reads in the parked list) and its kind.
    static func reason(for error: any Error, timeout: Duration) -> (String, WebhookDeliveryOutcome.Cause) {
        let text = String(describing: error)
        if let client = error as? HTTPClientError {
            if [.deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout].contains(client) { return ("timed out after \(describe(timeout))", .timeout) }
            if client == .remoteConnectionClosed { return ("the receiver closed the connection before answering", .connection) }
            if client == .bodyLengthMismatch { return ("the receiver's answer was cut off", .connection) }
        }
        let lowered = text.lowercased()
        if lowered.contains("connection refused") || lowered.contains("econnrefused") || lowered.contains("errno: 111") {
            return ("connection refused", .connection)
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return (
                "TLS failure: the receiver's certificate could not be verified (CERTIFICATE_VERIFY_FAILED: an unknown CA, a wrong host name or an expired certificate)",
                .tls
            )
        }
        if lowered.contains("ssl") || lowered.contains("tls") || lowered.contains("certificate") || lowered.contains("handshake") {
            return ("TLS failure: \(text.prefix(300))", .tls)
        }
        if lowered.contains("connection reset") || lowered.contains("eof") || lowered.contains("closed") {
            return ("the connection was closed before an answer: \(text.prefix(200))", .connection)
        }
        if lowered.contains("timeout") || lowered.contains("timed out") { return ("timed out after \(describe(timeout))", .timeout) }
        return ("delivery failed: \(text.prefix(300))", .other)
    }

    static func describe(_ duration: Duration) -> String {
        let milliseconds = duration.wholeMilliseconds
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }
}

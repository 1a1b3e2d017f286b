import AsyncHTTPClient
import FluxCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#endif

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
    /// The sink's own trust roots (`ca_certificates`), else `nil`: the client's (the system's trust store).
    var tls: TLSConfiguration? = nil

    /// The most bytes of an answer's body that are read (and thrown away: only the status counts); the rest is not
    /// read (the connection is closed), so a receiver's long answer costs no memory and does not fail the delivery.
    static let maximumAnswerBytes = 64 << 10

    /// Reads and drops up to ``maximumAnswerBytes`` of an answer's body, for at most `time`; the task that loses the
    /// race is cancelled (a body left unread closes its connection).
    private static func drain(_ body: HTTPClientResponse.Body, within time: Duration) async {
        guard time > .zero else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var read = 0
                do {
                    for try await chunk in body {
                        read += chunk.readableBytes
                        if read >= maximumAnswerBytes { break }
                    }
                } catch {}
            }
            group.addTask { try? await Task.sleep(for: time) }
            await group.next()
            group.cancelAll()
        }
    }

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
        request.tlsConfiguration = tls
        let started = ContinuousClock.now
        do {
            // Connecting, sending and the answer's head within the timeout (async-http-client's deadline fails the
            // request, and closes its connection, when it passes).
            let response = try await client.execute(request, timeout: TimeAmount(timeout))
            let status = response.status
            // The status is the answer. Its body is read only to reuse the connection: none to read after a 204 or a
            // `content-length: 0` (no timer then); else up to maximumAnswerBytes within what is left of the timeout,
            // and a body that does not end by then is left unread (its connection is closed), the status standing.
            if status == .noContent || response.headers.first(name: "content-length") == "0" {
                do { for try await _ in response.body {} } catch {}  // its end came with the head
            } else {
                await Self.drain(response.body, within: timeout - (ContinuousClock.now - started))
            }
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

    /// A failure's cause in words (what an operator reads in the parked list) and its kind: from the error's type
    /// (async-http-client's, swift-nio's socket and connection errors, swift-nio-ssl's), then from its description
    /// for errors that come wrapped in others.
    static func reason(for error: any Error, timeout: Duration) -> (String, WebhookDeliveryOutcome.Cause) {
        if let client = error as? HTTPClientError {
            if [.deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout].contains(client) { return ("timed out after \(describe(timeout))", .timeout) }
            if client == .remoteConnectionClosed { return ("the receiver closed the connection before answering", .connection) }
            if client == .bodyLengthMismatch { return ("the receiver's answer was cut off", .connection) }
        }
        if let connection = error as? NIOConnectionError {
            if let inner = connection.connectionErrors.first?.error { return reason(for: inner, timeout: timeout) }
            if let dns = connection.dnsAError ?? connection.dnsAAAAError {
                return ("the receiver's host \(connection.host) could not be resolved (\(String(describing: dns).prefix(200)))", .connection)
            }
        }
        if let io = error as? IOError {
            switch io.errnoCode {
            case ECONNREFUSED: return ("connection refused", .connection)
            case ECONNRESET, EPIPE: return ("the connection was reset before an answer", .connection)
            case EHOSTUNREACH, ENETUNREACH: return ("the receiver's host is unreachable", .connection)
            case ETIMEDOUT: return ("timed out after \(describe(timeout))", .timeout)
            default: return ("connection failed: \(String(describing: io).prefix(200))", .connection)
            }
        }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return tlsReason(String(describing: error))
        }
        let text = String(describing: error)
        let lowered = text.lowercased()
        if lowered.contains("connection refused") || lowered.contains("econnrefused") || lowered.contains("errno: 111") {
            return ("connection refused", .connection)
        }
        if lowered.contains("ssl") || lowered.contains("tls") || lowered.contains("certificate") || lowered.contains("handshake") {
            return tlsReason(text)
        }
        if lowered.contains("connection reset") || lowered.contains("eof") || lowered.contains("closed") {
            return ("the connection was closed before an answer: \(text.prefix(200))", .connection)
        }
        if lowered.contains("timeout") || lowered.contains("timed out") { return ("timed out after \(describe(timeout))", .timeout) }
        return ("delivery failed: \(text.prefix(300))", .other)
    }

    private static func tlsReason(_ text: String) -> (String, WebhookDeliveryOutcome.Cause) {
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return (
                "TLS failure: the receiver's certificate could not be verified (CERTIFICATE_VERIFY_FAILED: an unknown CA, a wrong host name or an expired certificate)",
                .tls
            )
        }
        return ("TLS failure: \(text.prefix(300))", .tls)
    }

    static func describe(_ duration: Duration) -> String {
        let milliseconds = duration.wholeMilliseconds
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }
}

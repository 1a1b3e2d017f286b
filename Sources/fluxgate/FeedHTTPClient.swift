import FluxConsumer
import Foundation
import NIOCore
import NIOHTTP1

/// GETs of absolute URLs for `fluxgate import`: one keep-alive `HTTPConnection` per host and port, each request
/// retried a few times with backoff when the network fails or the server answers 5xx (or 408, 429).
///
/// A status other than 200 that is not worth retrying fails at once: the original flux consumer ignored statuses
/// and decoded error pages as empty events; an import must not store those.
/// Use it from one task at a time.
final class FeedHTTPClient {
    /// How long one request may wait for its whole answer (a feed server that accepts and never answers would
    /// otherwise hold the import forever); it then counts as a failed attempt and is retried.
    static let responseTimeout: Duration = .seconds(30)
    /// Why a GET failed for good; the description names the URL.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private var connections: [String: HTTPConnection] = [:]
    private let tls: ClientTLS?
    private let attempts: Int
    private let firstBackoff: Duration

    init(tls: ClientTLS?, attempts: Int = 4, firstBackoff: Duration = .milliseconds(250)) {
        self.tls = tls
        self.attempts = max(1, attempts)
        self.firstBackoff = firstBackoff
    }

    /// The body of `url`'s 200 response.
    func get(_ url: String) async throws -> ByteBuffer {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else {
            throw Failure(description: "\(Self.redacted(url)) is not an http:// or https:// URL")
        }
        let secure = scheme == "https"
        if secure, tls == nil {
            throw Failure(description: "\(Self.redacted(url)) is https but the import was started with an http:// URL; start it with the https:// URL")
        }
        let port = components.port ?? (secure ? 443 : 80)
        var target = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        if let query = components.percentEncodedQuery { target += "?" + query }
        var headers = [("Accept", "application/json"), ("User-Agent", "fluxgate-import")]
        if let user = components.user {
            // Go's client sends URL userinfo as Basic credentials; Fluxgate's gateway takes a token as the password.
            let credentials = Data("\(user):\(components.password ?? "")".utf8).base64EncodedString()
            headers.append(("Authorization", "Basic \(credentials)"))
        }
        let key = "\(scheme)://\(host.lowercased()):\(port)"
        var lastProblem = ""
        var backoff = firstBackoff
        for attempt in 1...attempts {
            if attempt > 1 {
                try await Task.sleep(for: backoff)
                backoff *= 2
            }
            let response: HTTPResponse
            do {
                response = try await exchange(key: key, host: host, port: port, secure: secure, target: target, headers: headers)
            } catch {
                lastProblem = "\(error)"
                continue
            }
            if response.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "close" }) {
                await drop(key)
            }
            if response.status == .ok { return response.body }
            lastProblem = "the server answered \(response.status.code) \(response.status.reasonPhrase)"
            let retryable = response.status.code >= 500 || response.status == .requestTimeout || response.status == .tooManyRequests
            if !retryable { break }
        }
        throw Failure(description: "GET \(Self.redacted(url)) failed: \(lastProblem)")
    }

    /// One request over the kept connection to `key`, or a new one. A kept connection that fails (the server
    /// closed it in between, as an HTTP/1.0 server does after each response) is replaced by a new one at once,
    /// without counting an attempt.
    private func exchange(
        key: String, host: String, port: Int, secure: Bool, target: String, headers: [(String, String)]
    ) async throws -> HTTPResponse {
        if let kept = connections[key] {
            do {
                return try await kept.request(.GET, target, headers: headers)
            } catch {
                await drop(key)
            }
        }
        let connection: HTTPConnection
        do {
            connection = try await HTTPConnection.connect(host: host, port: port, tls: secure ? tls : nil)
            connection.responseTimeout = Self.responseTimeout
        } catch {
            throw Failure(description: "cannot connect to \(host):\(port): \(error)")
        }
        connections[key] = connection
        do {
            return try await connection.request(.GET, target, headers: headers)
        } catch {
            await drop(key)
            throw error
        }
    }

    /// Closes every connection.
    func close() async {
        for connection in connections.values { await connection.close() }
        connections = [:]
    }

    private func drop(_ key: String) async {
        if let connection = connections.removeValue(forKey: key) { await connection.close() }
    }

    /// The URL without its userinfo (a token may be the password), for messages.
    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.user != nil || components.password != nil else { return url }
        components.user = nil
        components.password = nil
        return components.string ?? url
    }
}

@available(*, unavailable)
extension FeedHTTPClient: Sendable {}

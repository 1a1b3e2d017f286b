import FluxCore
import NIOCore
import NIOHTTP1

/// Reads the gateway's JSON feed page by page over one keep-alive connection, long-polling at the head.
///
/// The polling half of the consumer: it works through any HTTP proxy and is what a consumer falls back to
/// when the push channel is not available.
public final class FeedPoller {
    private let host: String
    private let port: Int
    private let filter: EventFilter
    private let pageSize: Int
    private let waitSeconds: Int
    private let tls: ClientTLS?
    private let accessToken: String?
    private var connection: HTTPConnection?
    /// The last position handed out; the next page starts after it.
    public private(set) var position: Position

    /// - Parameters:
    ///   - after: the position to start after (0 for everything).
    ///   - waitSeconds: how long a request at the head waits for new events (long-poll).
    ///   - tls: poll over `https://` with these trust settings (`nil`: plain `http://`).
    public init(
        host: String, port: Int, after: Position = .start, filter: EventFilter = .all, pageSize: Int = 1000, waitSeconds: Int = 5,
        tls: ClientTLS? = nil, accessToken: String? = nil
    ) {
        self.tls = tls
        self.accessToken = accessToken
        self.host = host
        self.port = port
        self.position = after
        self.filter = filter
        self.pageSize = pageSize
        self.waitSeconds = waitSeconds
    }

    /// The next page after `after` (empty when nothing arrived within the wait); sets `position` to it.
    public func nextPage(after: Position) async throws -> FeedPage {
        position = after
        return try await nextPage()
    }

    /// The next page after `position` (empty when nothing arrived within the wait); advances `position`.
    public func nextPage() async throws -> FeedPage {
        var target = "/events?after=\(position.rawValue)&limit=\(pageSize)&embed=payload&wait=\(waitSeconds)"
        for (name, values) in [("aggregate_name", filter.aggregateNames), ("event_type", filter.eventTypes), ("aggregate_id", filter.aggregateIDs)] {
            for value in values.sorted() {
                target += "&\(name)=\(value.addingPercentEscapes())"
            }
        }
        let connection = try await connected()
        let response: HTTPResponse
        do {
            response = try await connection.request(.GET, target, headers: accessToken.map { [("Authorization", "Bearer \($0)")] } ?? [])
        } catch {
            await connection.close()
            self.connection = nil
            throw error
        }
        if response.status == .unauthorized || response.status == .forbidden {
            throw FeedRefusedError(message: "the gateway refused the access token (\(response.status.code)): \(response.text.prefix(300))")
        }
        guard response.status == .ok else {
            throw HTTPConnectionError(description: "the feed answered \(response.status.code): \(response.text.prefix(300))")
        }
        let page = try FeedPage(json: response.body)
        if let last = page.events.last { position = last.position }
        return page
    }

    private func connected() async throws -> HTTPConnection {
        if let connection { return connection }
        let connection = try await HTTPConnection.connect(host: host, port: port, tls: tls)
        // A long-poll answers within its wait; past that and a margin, the server is not answering.
        connection.responseTimeout = .seconds(Int64(waitSeconds) + 30)
        self.connection = connection
        return connection
    }

    /// Closes the connection.
    public func close() async {
        await connection?.close()
        connection = nil
    }
}

@available(*, unavailable)
extension FeedPoller: Sendable {}

/// The feed refused the request's token (`401`/`403`): retrying with the same token cannot help.
public struct FeedRefusedError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension String {
    func addingPercentEscapes() -> String {
        var result = ""
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                result += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return result
    }
}

/// Where and how often ``GraphiteReporter`` pushes the gateway's metrics: a carbon server's plaintext listener
/// (`HOST:PORT`), the path prefix of every series, and the interval between snapshots. Pure values and their
/// checks, no I/O: `fluxgate serve --graphite HOST:PORT --graphite-prefix P --graphite-interval S` builds one.
public struct GraphiteConfiguration: Sendable, Equatable {
    /// The carbon server's host name or address.
    public var host: String
    /// Its plaintext (line) receiver's port, 1–65535 (carbon's default is 2003).
    public var port: Int
    /// The first components of every series' path, dot-separated (`fluxgate`, `prod.gateway-1`).
    public var prefix: String
    /// Time between two snapshots, 1 s – 1 h.
    public var interval: Duration
    /// Bytes written but not yet taken by carbon's socket past which a snapshot is dropped whole instead of queued.
    public var maxPendingBytes: Int
    /// How long graceful shutdown waits for the last snapshot to reach carbon's socket (connecting first if needed).
    public var shutdownFlushTimeout: Duration

    /// The prefix when none is given.
    public static let defaultPrefix = "fluxgate"
    /// The interval when none is given.
    public static let defaultInterval = Duration.seconds(10)
    /// The allowed intervals, in seconds.
    public static let intervalRange: ClosedRange<Double> = 1...3600

    /// A checked configuration; throws ``GraphiteConfiguration/Failure`` saying which value is wrong and why.
    public init(
        host: String, port: Int, prefix: String = defaultPrefix, interval: Duration = defaultInterval,
        maxPendingBytes: Int = 1 << 20, shutdownFlushTimeout: Duration = .seconds(3)
    ) throws {
        guard !host.isEmpty else { throw Failure("the carbon server's host is empty; give HOST:PORT, e.g. graphite.example.com:2003") }
        guard (1...65535).contains(port) else { throw Failure("the carbon server's port must be 1…65535, got \(port)") }
        try Self.checkPrefix(prefix)
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        guard Self.intervalRange.contains(seconds) else {
            throw Failure("the Graphite interval must be between 1 and 3600 seconds, got \(seconds)")
        }
        self.host = host
        self.port = port
        self.prefix = prefix
        self.interval = interval
        self.maxPendingBytes = max(1, maxPendingBytes)
        self.shutdownFlushTimeout = shutdownFlushTimeout
    }

    /// Why a Graphite setting is refused, in words the user can act on.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Splits `HOST:PORT` (`carbon:2003`, `127.0.0.1:2003`, `[::1]:2003`) into its host and port.
    public static func parseAddress(_ address: String) throws -> (host: String, port: Int) {
        let example = "e.g. graphite.example.com:2003 or [::1]:2003"
        let host: Substring
        let portText: Substring
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]"), address[address.index(after: close)...].hasPrefix(":") else {
                throw Failure("\(address) is not HOST:PORT; an IPv6 address goes in brackets, \(example)")
            }
            host = address[address.index(after: address.startIndex)..<close]
            portText = address[address.index(close, offsetBy: 2)...]
        } else {
            guard let colon = address.lastIndex(of: ":") else {
                throw Failure("\(address) has no port; give HOST:PORT of carbon's plaintext receiver, \(example)")
            }
            host = address[..<colon]
            portText = address[address.index(after: colon)...]
            if host.contains(":") { throw Failure("\(address) is not HOST:PORT; an IPv6 address goes in brackets, \(example)") }
        }
        guard !host.isEmpty else { throw Failure("\(address) has no host; give HOST:PORT, \(example)") }
        guard !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber), let port = Int(portText) else {
            throw Failure("\(address): the port must be a number 1…65535, \(example)")
        }
        guard (1...65535).contains(port) else { throw Failure("\(address): the port must be 1…65535, got \(port)") }
        return (String(host), port)
    }

    /// Checks a prefix: one or more dot-separated components of letters, digits, `_` and `-` (Graphite's path
    /// components; anything else would split or break the path).
    public static func checkPrefix(_ prefix: String) throws {
        let components = prefix.split(separator: ".", omittingEmptySubsequences: false)
        guard !prefix.isEmpty, components.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(GraphiteRenderer.isPathByte) }) else {
            throw Failure(
                "the Graphite prefix must be dot-separated names of letters, digits, _ and - (e.g. fluxgate or prod.gateway-1), got \"\(prefix)\"")
        }
    }
}

import ArgumentParser
import FluxCore
import FluxGateway
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// `fluxgate serve`: runs the gateway until SIGINT or SIGTERM.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the JSON feed and the append API over an event store.",
        discussion: """
            Examples:
              fluxgate serve          # fluxgate-data/events.sqlite on 127.0.0.1:8080
              fluxgate serve --port 9000 --store memory
              fluxgate serve --host 0.0.0.0 --public-url https://feed.example.com
              fluxgate serve --tls-cert server.pem --tls-key server-key.pem   # https
              FLUXGATE_STORE_FILE=db.url fluxgate serve   # the store URL from a file
              fluxgate serve --graphite carbon:2003   # push metrics to Graphite

            Every option also reads a variable: --max-connections from FLUXGATE_MAX_CONNECTIONS, and so on (lists comma-separated); the command line wins over the environment, which wins over --config's file.

            Stop with Ctrl-C (SIGINT) or SIGTERM: in-flight appends finish, then the server exits.
            """
    )

    @Option(
        help: ArgumentHelp(
            "A JSON file of serve options: {\"port\": 8080, \"store\": \"…\", \"token-file\": \"…\"}; flags override it.",
            valueName: "file"
        )
    )
    var config: String?

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "The event store: sqlite:PATH (the default), postgres://USER@HOST:PORT/DATABASE (several gateways on one database), or memory.")
    var store = StoreLocation.sqlite(path: StoreLocation.defaultSQLitePath)

    @Option(help: "The base URL written into each event's url (default: the request's Host header, or X-Forwarded-* from a --trusted-proxy). Set it on a gateway that faces the internet.")
    var publicURL: String?

    @Option(
        name: .customLong("trusted-proxy"),
        help: "The address (127.0.0.1, ::1) of a reverse proxy whose X-Forwarded-Host and X-Forwarded-Proto are believed; repeat it. Others' are ignored."
    )
    var trustedProxies: [String] = []

    @Option(help: "The largest request body accepted, in bytes.")
    var maxBodySize = 1 << 20

    @Option(
        name: .customLong("allow-origin"),
        help: "A browser origin (https://app.example.com) whose pages may use the gateway: open the push channel, and read, subscribe (SSE) and append through CORS; repeat it, or * for any. The gateway's own origin is always allowed."
    )
    var allowedOrigins: [String] = []

    @Option(help: "Open connections accepted in total; more get 503 with Retry-After.")
    var maxConnections = 16_000

    @Option(help: "Open connections accepted from one client address (default: no limit per address).")
    var maxConnectionsPerAddress: Int?

    @Option(help: "The largest request head (all headers), in bytes; larger gets 431.")
    var maxHeaderSize = 32 * 1024

    @Option(help: "Seconds a client has to send a request head (and each body chunk); then 408 and close.")
    var requestTimeout = 10.0

    @Option(help: "Seconds a keep-alive connection may stay idle between requests.")
    var idleTimeout = 60.0

    @Option(help: "Seconds between keep-alive pings on a quiet push-channel connection; a subscriber whose connection shows no life for as long again after a ping is closed with 1001. Lower it behind proxies that drop idle connections sooner.")
    var pingInterval = 30.0

    @Option(help: "Live subscriptions (WebSocket and SSE) at once (default: bounded by --max-connections); more get close 1013 or 503.")
    var maxSubscriptions: Int?

    @Option(help: "Appends per second per token (per client address on an open gateway); more get 429 with Retry-After (default: no limit).")
    var appendRate: Double?

    @Option(help: "Appends a token may make at once before --append-rate applies (default: the rate).")
    var appendBurst: Double?

    @Option(
        help: ArgumentHelp(
            "A JSON file of static bearer tokens and their scopes (read, read:NAME, write, write:NAME, metrics).",
            discussion: #"{"tokens": [{"name": "dashboard", "token": "…", "scopes": ["read"]}]}; "sha256": hex instead of "token" keeps the token out of the file."#
        )
    )
    var tokenFile: String?

    @Option(name: .customLong("jwt-secret-file"), help: "A file holding an HS256 secret (at least 32 bytes) that JWTs may be signed with; repeatable.")
    var jwtSecretFiles: [String] = []

    @Option(
        name: .customLong("jwt-public-key"),
        help: "A PEM public key or certificate (RSA for RS256, P-256 for ES256) that JWTs may be signed with; its file name without extension is its kid; repeatable."
    )
    var jwtPublicKeys: [String] = []

    @Option(name: .customLong("jwt-issuer"), help: "Accept only JWTs whose iss is this.")
    var jwtIssuer: String?

    @Option(name: .customLong("jwt-audience"), help: "Accept only JWTs whose aud includes this.")
    var jwtAudience: String?

    @Option(help: "Serve https:// and wss:// with this certificate chain (PEM: the server's certificate, then intermediates); needs --tls-key.")
    var tlsCert: String?

    @Option(help: "The private key of --tls-cert (PEM, unencrypted).")
    var tlsKey: String?

    @Option(
        help: ArgumentHelp(
            "Push the metrics of /metrics to a Graphite carbon server's plaintext receiver at HOST:PORT (e.g. graphite.example.com:2003).",
            discussion: "Paths: the prefix, the metric's name without fluxgate_, then label_value per label (README \"Metrics\").",
            valueName: "host:port"
        )
    )
    var graphite: String?

    @Option(help: "The first components of the Graphite paths, dot-separated names of letters, digits, _ and - (default: fluxgate).")
    var graphitePrefix: String?

    @Option(help: "Seconds between two pushes to Graphite, 1…3600 (default: 10).")
    var graphiteInterval: Double?

    @Option(
        help: ArgumentHelp(
            "Webhook sinks to put at start: a JSON object of name → definition, each as PUT /sinks/{name} takes it, with its secret.",
            discussion: "A declared sink is created when missing and changed when stored otherwise (keeping its checkpoint); the config file's \"sinks\" object comes here.",
            valueName: "json"
        )
    )
    var sinks: String?

    @Option(help: "A file holding the JSON object of --sinks (keep it readable by the gateway only: it holds the signing secrets).")
    var sinksFile: String?

    @Option(help: "Seal webhook sinks' secrets at rest with this key: a file holding the base64 of 32 random bytes (openssl rand -base64 32), the same on every node.")
    var sinksKeyFile: String?

    @Option(help: "A key that sealed sinks' secrets before --sinks-key-file's (a rotation): it opens them, and each start seals them again with the current key; repeatable.")
    var sinksPreviousKeyFile: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535, got \(port)") }
        guard maxBodySize > 0 else { throw ValidationError("--max-body-size must be positive") }
        guard maxConnections > 0 else { throw ValidationError("--max-connections must be positive") }
        guard maxHeaderSize >= 1024 else { throw ValidationError("--max-header-size must be at least 1024") }
        guard (0.001...86_400).contains(requestTimeout), (0.001...86_400).contains(idleTimeout) else {
            throw ValidationError("--request-timeout and --idle-timeout must be between 0.001 and 86400 seconds")
        }
        guard (1...86_400).contains(pingInterval) else { throw ValidationError("--ping-interval must be between 1 and 86400 seconds") }
        if let maxSubscriptions, maxSubscriptions <= 0 { throw ValidationError("--max-subscriptions must be positive") }
        if let appendRate, !(0.001...1_000_000_000).contains(appendRate) {
            throw ValidationError("--append-rate must be between 0.001 and 1000000000 appends per second")
        }
        if let appendBurst, !(1...1_000_000_000).contains(appendBurst) { throw ValidationError("--append-burst must be between 1 and 1000000000") }
        if appendBurst != nil && appendRate == nil { throw ValidationError("--append-burst goes with --append-rate") }
        if let maxConnectionsPerAddress, maxConnectionsPerAddress <= 0 {
            throw ValidationError("--max-connections-per-address must be positive")
        }
        for origin in allowedOrigins where origin != "*" && !(origin.hasPrefix("http://") || origin.hasPrefix("https://")) {
            throw ValidationError("--allow-origin takes an origin such as https://app.example.com, or *; got \(origin)")
        }
        if let publicURL, !(publicURL.hasPrefix("http://") || publicURL.hasPrefix("https://")) {
            throw ValidationError("--public-url must start with http:// or https://, got \(publicURL)")
        }
        if (tlsCert == nil) != (tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together: pass both (the certificate chain and its private key, PEM) to serve TLS, or neither")
        }
        _ = try graphiteConfiguration()
        _ = try declaredSinks()
        _ = try secretSeal()
    }

    /// The key of --sinks-key-file; `nil` without it.
    func secretSeal() throws -> WebhookSecretSeal? {
        guard let sinksKeyFile else {
            if !sinksPreviousKeyFile.isEmpty { throw ValidationError("--sinks-previous-key-file goes with --sinks-key-file (the current key)") }
            return nil
        }
        do {
            return try WebhookSecretSeal(file: sinksKeyFile, previousFiles: sinksPreviousKeyFile)
        } catch {
            throw ValidationError("--sinks-key-file: \(error.description)")
        }
    }

    /// The webhook sinks of --sinks-file and --sinks (a name in both is refused).
    func declaredSinks() throws -> [DeclaredWebhookSink] {
        var declared: [DeclaredWebhookSink] = []
        do {
            if let sinksFile {
                let data: Data
                do {
                    data = try Data(contentsOf: URL(fileURLWithPath: sinksFile))
                } catch {
                    throw ValidationError("cannot read --sinks-file \(sinksFile): \(error.localizedDescription)")
                }
                guard data.count <= 16 << 20 else { throw ValidationError("--sinks-file \(sinksFile) is larger than 16 MiB") }
                declared += try DeclaredWebhookSink.declarations(in: String(decoding: data, as: UTF8.self), source: "--sinks-file \(sinksFile)")
            }
            if let sinks {
                declared += try DeclaredWebhookSink.declarations(in: sinks, source: "--sinks")
            }
        } catch let failure as DeclaredWebhookSink.Failure {
            throw ValidationError(failure.description)
        }
        var names = Set<String>()
        for sink in declared where !names.insert(sink.name).inserted {
            throw ValidationError("the webhook sink \(sink.name) is declared by both --sinks-file and --sinks; keep one")
        }
        return declared
    }

    /// The Graphite reporter's settings from --graphite, --graphite-prefix and --graphite-interval; `nil` without
    /// --graphite. Each bad value is refused naming its option.
    func graphiteConfiguration() throws -> GraphiteConfiguration? {
        guard let graphite else {
            if graphitePrefix != nil || graphiteInterval != nil {
                throw ValidationError("--graphite-prefix and --graphite-interval go with --graphite HOST:PORT (the carbon server to push to)")
            }
            return nil
        }
        let address: (host: String, port: Int)
        do {
            address = try GraphiteConfiguration.parseAddress(graphite)
        } catch let failure as GraphiteConfiguration.Failure {
            throw ValidationError("--graphite \(failure.description)")
        }
        let prefix = graphitePrefix ?? GraphiteConfiguration.defaultPrefix
        do {
            try GraphiteConfiguration.checkPrefix(prefix)
        } catch let failure as GraphiteConfiguration.Failure {
            throw ValidationError("--graphite-prefix: \(failure.description)")
        }
        let seconds = graphiteInterval ?? 10
        guard GraphiteConfiguration.intervalRange.contains(seconds) else {
            let given = seconds == seconds.rounded() && abs(seconds) < 1e15 ? String(Int64(seconds)) : String(seconds)
            throw ValidationError("--graphite-interval must be between 1 and 3600 seconds, got \(given)")
        }
        do {
            return try GraphiteConfiguration(host: address.host, port: address.port, prefix: prefix, interval: .milliseconds(Int64(seconds * 1000)))
        } catch let failure as GraphiteConfiguration.Failure {
            throw ValidationError("--graphite: \(failure.description)")
        }
    }

    /// Access control from --token-file and the --jwt-* options; `nil` (an open gateway) when none is given.
    func accessControl() async throws -> AccessControl? {
        guard tokenFile != nil || !jwtSecretFiles.isEmpty || !jwtPublicKeys.isEmpty else {
            if jwtIssuer != nil || jwtAudience != nil {
                throw ValidationError("--jwt-issuer and --jwt-audience need a key: add --jwt-secret-file or --jwt-public-key")
            }
            return nil
        }
        func contents(_ path: String, _ option: String) throws -> Data {
            do {
                return try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw ValidationError("cannot read \(option) \(path): \(error.localizedDescription)")
            }
        }
        do {
            let tokens = try tokenFile.map { try AccessControl.StaticToken.load(file: $0) } ?? []
            var secrets: [[UInt8]] = []
            for path in jwtSecretFiles {
                var secret = Array(try contents(path, "--jwt-secret-file"))
                while let last = secret.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { secret.removeLast() }
                secrets.append(secret)
            }
            var keys: [(kid: String, pem: String)] = []
            for path in jwtPublicKeys {
                let kid = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
                keys.append((kid, String(decoding: try contents(path, "--jwt-public-key"), as: UTF8.self)))
            }
            let jwt = AccessControl.JWTSettings(hmacSecrets: secrets, publicKeys: keys, issuer: jwtIssuer, audience: jwtAudience)
            return try await AccessControl(tokens: tokens, jwt: jwt)
        } catch let error as AccessControlError {
            throw ValidationError(error.description)
        }
    }

    func run() async throws {
        // Process-wide settings for a long-running server: descriptors up to the hard limit, an allocator that
        // gives back what a burst freed.
        DescriptorBudget.raiseSoftLimit()
        MemoryReclaimer.configureAllocator()
        var logger = Logger(label: "fluxgate")
        logger.logLevel = logLevel
        let environment = try? ServeEnvironment.expand(Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
        if let variables = environment?.variables, !variables.isEmpty {
            logger.info("options from the environment", metadata: ["variables": "\(variables.joined(separator: ", "))"])
        }
        let accessControl = try await accessControl()
        if accessControl == nil {
            logger.notice("no access control: every client may read and append (see --token-file, --jwt-secret-file, --jwt-public-key)")
        }
        // Check the address and load the certificate before opening the store: a port in use or a bad file fails
        // fast, with the port or the file named.
        try await ListenAddressCheck.check(host: host, port: port)
        let tls = try tlsCert.map { try GatewayTLS(certificateChainFile: $0, privateKeyFile: tlsKey ?? "") }
        let served = try await store.openForServing(logger: logger)
        var configuration = GatewayConfiguration(
            host: host, port: port, publicURL: publicURL, maxRequestBodySize: maxBodySize, allowedOrigins: Set(allowedOrigins),
            maxConnections: maxConnections, maxConnectionsPerAddress: maxConnectionsPerAddress, maxHeaderSize: maxHeaderSize,
            requestReadTimeout: .milliseconds(Int64(requestTimeout * 1000)), idleTimeout: .milliseconds(Int64(idleTimeout * 1000)),
            maxSubscriptions: maxSubscriptions, appendRate: appendRate, appendBurst: appendBurst, accessControl: accessControl,
            logger: logger
        )
        configuration.tls = tls
        configuration.webhookSinks = try declaredSinks()
        configuration.webhookSecretSeal = try secretSeal()
        configuration.trustedProxies = Set(trustedProxies)
        configuration.pingInterval = .milliseconds(Int64(pingInterval * 1000))
        let storeName = store.description
        // Made here, not by the server, so that the Graphite reporter (which starts before the store is open) counts
        // in the same registry.
        let metrics = GatewayMetrics()
        let gateway = GatewayLauncher(
            store: served.store, configuration: configuration, storeName: storeName, metrics: metrics, logger: logger
        )
        let graphite = try graphiteConfiguration().map { graphite in
            GraphiteReporter(configuration: graphite, metrics: metrics, logger: logger) { [started = gateway.started] in
                // What GET /metrics serves; before the store is open, the figures so far.
                if let server = started.server { await server.metricsSnapshot() } else { metrics.exposition() }
            }
        }
        // In shutdown order, last first: the memory reclaimer, the gateway (its connections, its hub), the Graphite
        // reporter (its last snapshot then includes the appends the gateway finished), then the store's own service
        // (queued appends answered, head watcher, connection pool).
        let services: [ServiceGroupConfiguration.ServiceConfiguration] =
            (served.service.map { [.init(service: $0)] } ?? []) + (graphite.map { [.init(service: $0)] } ?? []) + [
                .init(service: gateway),
                // Freed memory goes back to the system after a burst (it ends with the gateway, quietly).
                .init(service: MemoryReclaimer(), successTerminationBehavior: .ignore),
            ]
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        do {
            try await group.run()
        } catch let error as StoreError where served.service != nil {
            try? await served.close()
            throw ValidationError("cannot open the PostgreSQL store at \(storeName): \(error)")
        } catch {
            try? await served.close()
            throw error
        }
        try await served.close()
        logger.info("store closed")
    }
}

/// Starts the gateway once its store is open (a PostgreSQL store opens inside the service group, before this).
struct GatewayLauncher: Service {
    let store: @Sendable () async throws -> any EventStore
    let configuration: GatewayConfiguration
    let storeName: String
    let metrics: GatewayMetrics
    let logger: Logger
    /// The server once made (for the Graphite reporter's snapshots).
    let started = StartedGateway()

    func run() async throws {
        let store = try await store()
        logger.info("store opened", metadata: ["store": "\(storeName)", "epoch": "\(store.epoch)"])
        let server = GatewayServer(store: store, configuration: configuration, metrics: metrics)
        started.server = server
        try await server.run()
    }
}

/// The gateway server ``GatewayLauncher`` made, once it has.
final class StartedGateway: Sendable {
    private let box = Mutex<GatewayServer?>(nil)

    var server: GatewayServer? {
        get { box.withLock { $0 } }
        set { box.withLock { $0 = newValue } }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

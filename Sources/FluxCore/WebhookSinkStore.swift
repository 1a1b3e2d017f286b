/// How a webhook sink delivers: how many deliveries are in flight at once (each of a different aggregate), how long
/// one may take, and how it retries and parks (the sink's consumer group applies the last three).
public struct WebhookSinkPolicy: Hashable, Sendable, Codable {
    /// Deliveries in flight at once, 1–64; an aggregate's next event always waits for the one before it.
    public var concurrency: Int
    /// How long one delivery may take (connecting, sending, the answer's head and body), 100 ms – 60 s.
    public var timeout: Duration
    /// Failed deliveries before an event is parked, 1–1000.
    public var maximumAttempts: Int
    /// The wait before the second attempt, doubled for each further one up to `maximumBackoff` (with jitter).
    public var backoff: Duration
    public var maximumBackoff: Duration

    public init(
        concurrency: Int = 4, timeout: Duration = .seconds(5), maximumAttempts: Int = 8, backoff: Duration = .seconds(1),
        maximumBackoff: Duration = .seconds(300)
    ) {
        self.concurrency = concurrency
        self.timeout = timeout
        self.maximumAttempts = maximumAttempts
        self.backoff = backoff
        self.maximumBackoff = maximumBackoff
    }

    enum CodingKeys: String, CodingKey {
        case concurrency, timeoutMilliseconds, maximumAttempts, backoffMilliseconds, maximumBackoffMilliseconds
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        concurrency = try container.decode(Int.self, forKey: .concurrency)
        timeout = .milliseconds(try container.decode(Int64.self, forKey: .timeoutMilliseconds))
        maximumAttempts = try container.decode(Int.self, forKey: .maximumAttempts)
        backoff = .milliseconds(try container.decode(Int64.self, forKey: .backoffMilliseconds))
        maximumBackoff = .milliseconds(try container.decode(Int64.self, forKey: .maximumBackoffMilliseconds))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(concurrency, forKey: .concurrency)
        try container.encode(timeout.wholeMilliseconds, forKey: .timeoutMilliseconds)
        try container.encode(maximumAttempts, forKey: .maximumAttempts)
        try container.encode(backoff.wholeMilliseconds, forKey: .backoffMilliseconds)
        try container.encode(maximumBackoff.wholeMilliseconds, forKey: .maximumBackoffMilliseconds)
    }
}

/// A webhook sink as it is defined (README "Webhook sinks"): the gateway itself is the one member of a consumer group
/// (``groupName``) and POSTs each event it leases to `url`, signed with `secrets` (Standard Webhooks).
public struct WebhookSinkDefinition: Hashable, Sendable, Codable {
    public var name: String
    /// An absolute `http` or `https` URL (the gateway checks its form; FluxCore only keeps it).
    public var url: String
    public var filter: EventFilter
    /// One or two signing secrets in the Standard Webhooks form `whsec_<base64>`; with two (a rotation), every
    /// delivery carries both signatures.
    public var secrets: [String]
    public var policy: WebhookSinkPolicy
    /// PEM certificates of the CAs an `https` receiver's certificate must chain to, instead of the system's trust
    /// store (a receiver behind a private CA); `nil`: the system's. At most ``maximumCACertificatesBytes``.
    public var caCertificates: String?

    /// The longest ``caCertificates``.
    public static let maximumCACertificatesBytes = 64 << 10

    /// Sinks' consumer groups are named `sink.<name>`: a user's group can never be named so (the groups API refuses it).
    public static let groupPrefix = "sink."

    /// The consumer group that holds the sink's checkpoint and parked events.
    public var groupName: String { Self.groupPrefix + name }

    /// - Throws: `StoreError.invalidDefinition` for a name that is not 1–120 of `A–Z a–z 0–9 . _ -`, no secret or more
    ///   than two, an empty URL, or a policy out of range.
    public init(
        name: String, url: String, filter: EventFilter = .all, secrets: [String], policy: WebhookSinkPolicy = WebhookSinkPolicy(),
        caCertificates: String? = nil
    ) throws {
        guard Self.isValidName(name) else {
            throw StoreError(
                .invalidDefinition,
                "a webhook sink's name is 1 to 120 characters of A-Z, a-z, 0-9, '.', '_' and '-'; \(name.debugDescription.prefix(140)) is not")
        }
        guard !url.isEmpty, url.utf8.count <= 2048 else { throw StoreError(.invalidDefinition, "a webhook sink's url is 1 to 2048 bytes") }
        guard (1...2).contains(secrets.count), secrets.allSatisfy({ !$0.isEmpty }) else {
            throw StoreError(.invalidDefinition, "a webhook sink has one signing secret, or two while rotating, and none is empty")
        }
        guard (1...64).contains(policy.concurrency) else {
            throw StoreError(.invalidDefinition, "a webhook sink's concurrency is 1 to 64, not \(policy.concurrency)")
        }
        guard (Duration.milliseconds(100)...Duration.seconds(60)).contains(policy.timeout) else {
            throw StoreError(.invalidDefinition, "a webhook sink's timeout is 100 ms to 60 s, not \(policy.timeout)")
        }
        guard (1...1000).contains(policy.maximumAttempts) else {
            throw StoreError(.invalidDefinition, "a webhook sink's maximum attempts are 1 to 1000, not \(policy.maximumAttempts)")
        }
        guard (Duration.zero...Duration.seconds(3600)).contains(policy.maximumBackoff), (Duration.zero...policy.maximumBackoff).contains(policy.backoff)
        else {
            throw StoreError(
                .invalidDefinition,
                "a webhook sink's backoff is 0 to its maximum backoff, which is 0 to 1 h (given \(policy.backoff) and \(policy.maximumBackoff))")
        }
        if let caCertificates, caCertificates.isEmpty || caCertificates.utf8.count > Self.maximumCACertificatesBytes {
            throw StoreError(.invalidDefinition, "a webhook sink's CA certificates are 1 byte to 64 KiB of PEM, or none")
        }
        self.name = name
        self.url = url
        self.filter = filter
        self.secrets = secrets
        self.policy = policy
        self.caCertificates = caCertificates
    }

    /// 1–120 characters of `A–Z a–z 0–9 . _ -`: with the ``groupPrefix`` it is a valid consumer group name.
    public static func isValidName(_ name: String) -> Bool {
        name.utf8.count <= 120 && ConsumerGroupDefinition.isValidName(name)
    }

    /// The consumer group the sink delivers from: its lease outlasts the longest chain of deliveries a lease can hold
    /// (one aggregate's events, up to `concurrency` of them, one after another), and an aggregate's later events wait
    /// while one of its events is parked (order per aggregate holds).
    public func groupDefinition(start: Position) throws -> ConsumerGroupDefinition {
        // (On a store that nodes share, a dead node's partitions go to the others after this lease too.)
        let lease = min(Duration.seconds(3600), max(Duration.seconds(1), policy.timeout * policy.concurrency + .seconds(10)))
        return try ConsumerGroupDefinition(
            name: groupName, filter: filter, start: start,
            policy: ConsumerGroupPolicy(
                leaseTimeout: lease, maximumAttempts: policy.maximumAttempts, backoff: policy.backoff, maximumBackoff: policy.maximumBackoff,
                holdsAggregateWhileParked: true))
    }
}

/// A webhook sink as it is stored: its definition, and whether it delivers (a `410 Gone` from its receiver disables
/// it, with the reason; `PUT` enables it again).
public struct WebhookSinkRecord: Hashable, Sendable {
    public var definition: WebhookSinkDefinition
    public var enabled: Bool
    /// Why it was disabled (empty while enabled).
    public var disabledReason: String

    public init(definition: WebhookSinkDefinition, enabled: Bool = true, disabledReason: String = "") {
        self.definition = definition
        self.enabled = enabled
        self.disabledReason = disabledReason
    }
}

/// Where webhook sinks' definitions live, beside their consumer groups (``ConsumerGroupStore``: checkpoints and
/// parked events) in the store's own database.
public protocol WebhookSinkStore: Sendable {
    /// Every sink, by name.
    func webhookSinks() async throws -> [WebhookSinkRecord]
    /// The sink named `name`, or `nil`.
    func webhookSink(named name: String) async throws -> WebhookSinkRecord?
    /// Stores a sink, or replaces one's definition; either way it is enabled. Whether it was created.
    func putWebhookSink(_ definition: WebhookSinkDefinition) async throws -> Bool
    /// Replaces a sink's definition with `definition` only while it is stored as `expected`, and leaves whether it is
    /// enabled as it is: a change of how the definition is stored (its secrets sealed again with another key), which
    /// neither undoes a `410`'s disabling nor overwrites a `PUT` made meanwhile. Whether it was replaced.
    func replaceWebhookSinkDefinition(_ definition: WebhookSinkDefinition, ifStoredAs expected: WebhookSinkDefinition) async throws -> Bool
    /// Disables a sink (it delivers nothing until it is put again), with the reason.
    func disableWebhookSink(named name: String, reason: String) async throws
    /// Deletes a sink's definition (its consumer group is deleted apart); whether it existed.
    func deleteWebhookSink(named name: String) async throws -> Bool
}

extension WebhookSinkStore {
    /// `StoreError.notFound` for sink `name`.
    public static func unknownSink(_ name: String) -> StoreError {
        StoreError(.notFound, "there is no webhook sink named \(name); list them with GET /sinks or create it with PUT /sinks/\(name)")
    }
}

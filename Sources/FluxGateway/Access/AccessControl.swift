import Crypto
import JWTKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Who may do what on a gateway: bearer tokens from a static token file and/or JWTs (HS256, RS256, ES256).
///
/// A request's token comes from `Authorization: Bearer …`, or from the `access_token` query parameter (browsers
/// cannot set headers on a WebSocket or an `EventSource`). The token itself is never logged or stored: static
/// tokens are kept as SHA-256 digests.
public struct AccessControl: Sendable {
    /// One entry of a static token file.
    public struct StaticToken: Sendable {
        public var name: String
        /// SHA-256 of the token.
        public var digest: [UInt8]
        public var scopes: [String]

        public init(name: String, token: String, scopes: [String]) {
            self.init(name: name, digest: Array(SHA256.hash(data: Array(token.utf8))), scopes: scopes)
        }

        public init(name: String, digest: [UInt8], scopes: [String]) {
            self.name = name
            self.digest = digest
            self.scopes = scopes
        }
    }

    /// How JWTs are checked.
    public struct JWTSettings: Sendable {
        /// Shared secrets for HS256.
        public var hmacSecrets: [[UInt8]]
        /// PEM public keys or certificates for RS256 (RSA) and ES256 (P-256), each with a key id (`kid`).
        public var publicKeys: [(kid: String, pem: String)]
        /// When set, a token's `iss` must equal it.
        public var issuer: String?
        /// When set, a token's `aud` must include it.
        public var audience: String?
        /// Clock skew tolerated on `exp` and `nbf`.
        public var leeway: Duration

        public init(
            hmacSecrets: [[UInt8]] = [], publicKeys: [(kid: String, pem: String)] = [], issuer: String? = nil,
            audience: String? = nil, leeway: Duration = .seconds(60)
        ) {
            self.hmacSecrets = hmacSecrets
            self.publicKeys = publicKeys
            self.issuer = issuer
            self.audience = audience
            self.leeway = leeway
        }
    }

    /// Why a token was not accepted (answered with `401`).
    public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    private let staticTokens: [[UInt8]: AccessGrant]
    /// The verification keys by the `alg` they serve: a token is checked only against keys of its header's
    /// algorithm, so an HS256 secret never verifies a token headed `RS256` (RFC 8725 §3.1, algorithm confusion).
    private let keysByAlgorithm: [String: JWTKeyCollection]
    private var algorithms: Set<String> { Set(keysByAlgorithm.keys) }
    private let issuer: String?
    private let audience: String?
    private let leeway: Duration

    /// - Throws: `AccessControlError` when a key cannot be used.
    public init(tokens: [StaticToken] = [], jwt: JWTSettings? = nil) async throws {
        var staticTokens: [[UInt8]: AccessGrant] = [:]
        for token in tokens {
            staticTokens[token.digest] = AccessGrant(subject: token.name, scopes: token.scopes)
        }
        self.staticTokens = staticTokens
        self.issuer = jwt?.issuer
        self.audience = jwt?.audience
        self.leeway = jwt?.leeway ?? .seconds(60)
        var keysByAlgorithm: [String: JWTKeyCollection] = [:]
        func collection(_ algorithm: String) -> JWTKeyCollection {
            if let keys = keysByAlgorithm[algorithm] { return keys }
            let keys = JWTKeyCollection()
            keysByAlgorithm[algorithm] = keys
            return keys
        }
        for (index, secret) in (jwt?.hmacSecrets ?? []).enumerated() {
            guard secret.count >= 32 else {
                throw AccessControlError("an HS256 secret must be at least 32 bytes (256 bits); generate one with: openssl rand -base64 48")
            }
            await collection("HS256").add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: JWKIdentifier(string: "hs256-\(index)"))
        }
        for (kid, pem) in jwt?.publicKeys ?? [] {
            let isCertificate = pem.contains("BEGIN CERTIFICATE")
            if let rsa = try? (isCertificate ? Insecure.RSA.PublicKey(certificatePEM: pem) : Insecure.RSA.PublicKey(pem: pem)) {
                await collection("RS256").add(rsa: rsa, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
            } else if let ec = try? (isCertificate ? ES256PublicKey(certificate: pem) : ES256PublicKey(pem: pem)) {
                await collection("ES256").add(ecdsa: ec, kid: JWKIdentifier(string: kid))
            } else {
                throw AccessControlError("the JWT key \(kid) is neither an RSA nor a P-256 (ES256) public key or certificate in PEM")
            }
        }
        self.keysByAlgorithm = keysByAlgorithm
    }

    /// The longest a token's grant is kept, whatever its `exp` says: a far-future or absurd `exp` (a number
    /// beyond any clock) is valid but never converted unchecked.
    static let longestGrant: Double = 10 * 365 * 24 * 3600

    /// The grant of a bearer token, or why it is refused.
    public func authenticate(_ token: String) async -> Result<AccessGrant, Rejection> {
        if let grant = staticTokens[Array(SHA256.hash(data: Array(token.utf8)))] {
            return .success(grant)
        }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard !keysByAlgorithm.isEmpty, parts.count == 3 else {
            return .failure(Rejection(description: "the token is not valid here"))
        }
        guard let alg = Self.algorithm(ofHeader: parts[0]) else {
            return .failure(Rejection(description: "the token is not a well-formed JWT"))
        }
        guard let keys = keysByAlgorithm[alg] else {
            return .failure(Rejection(description: "JWTs signed with \(alg.prefix(20)) are not accepted; this gateway accepts \(algorithms.sorted().joined(separator: ", "))"))
        }
        let claims: AccessClaims
        do {
            claims = try await keys.verify(token, as: AccessClaims.self, iteratingKeys: true)
        } catch {
            return .failure(Rejection(description: "the JWT's signature does not verify against this gateway's keys"))
        }
        let now = Date()
        let leewaySeconds = Double(leeway.components.seconds)
        guard let expiration = claims.exp?.value else {
            return .failure(Rejection(description: "the JWT has no exp claim; issue tokens that expire"))
        }
        // jwt-kit's own claim verifiers, with the leeway moved into the date they compare with.
        do {
            try claims.exp?.verifyNotExpired(currentDate: now.addingTimeInterval(-leewaySeconds))
        } catch {
            return .failure(Rejection(description: "the JWT expired; get a new one"))
        }
        do {
            try claims.nbf?.verifyNotBefore(currentDate: now.addingTimeInterval(leewaySeconds))
        } catch {
            return .failure(Rejection(description: "the JWT is not valid yet (nbf)"))
        }
        if let issuer, claims.iss?.value != issuer {
            return .failure(Rejection(description: "the JWT's issuer is not \(issuer)"))
        }
        if let audience, (try? claims.aud?.verifyIntendedAudience(includes: audience)) == nil {
            return .failure(Rejection(description: "the JWT's audience does not include \(audience)"))
        }
        var scopes = claims.scopes ?? []
        scopes += (claims.scope ?? "").split(separator: " ").map(String.init)
        // Every claim is a number from outside: bound it before it becomes an integer (a huge `exp` trapped here).
        let remaining = expiration.timeIntervalSince(now) + leewaySeconds
        let bounded = remaining.isFinite ? min(max(0, remaining), Self.longestGrant) : Self.longestGrant
        let grant = AccessGrant(
            subject: claims.sub?.value ?? "jwt", scopes: scopes,
            expiresAt: ContinuousClock.now + .milliseconds(Int64(bounded * 1000))
        )
        return .success(grant)
    }

    /// The `alg` of a JWT's header, or `nil` when the header is not base64url JSON with an `alg` string.
    static func algorithm(ofHeader header: Substring) -> String? {
        var base64 = String(header).replacing("-", with: "+").replacing("_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64),
            let fields = try? JSONDecoder().decode([String: JSONScalar].self, from: data),
            case .string(let alg) = fields["alg"]
        else { return nil }
        return alg
    }

    private enum JSONScalar: Decodable {
        case string(String)
        case other

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            self = (try? container.decode(String.self)).map(JSONScalar.string) ?? .other
        }
    }
}

/// The claims Fluxgate reads from a JWT. `exp`, `nbf`, `iss` and `aud` are checked by `AccessControl` (with leeway).
struct AccessClaims: JWTPayload {
    var sub: SubjectClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var iss: IssuerClaim?
    var aud: AudienceClaim?
    /// OAuth style: space-separated scopes.
    var scope: String?
    /// Or a list.
    var scopes: [String]?

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Access control cannot be set up as configured (a bad key or token file).
public struct AccessControlError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

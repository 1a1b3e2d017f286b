@testable import FluxGateway
import FluxTesting
import Crypto
import Foundation
import JWTKit
import Testing

/// Claims as an issuer would sign them.
struct TestClaims: JWTPayload {
    var sub: SubjectClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var iss: IssuerClaim?
    var aud: AudienceClaim?
    var scope: String?
    var scopes: [String]?

    init(
        scope: String? = "read", scopes: [String]? = nil, expiresIn: TimeInterval? = 300, notBefore: Date? = nil,
        issuer: String? = nil, audience: String? = nil, subject: String = "svc"
    ) {
        self.sub = SubjectClaim(value: subject)
        self.exp = expiresIn.map { ExpirationClaim(value: Date().addingTimeInterval($0)) }
        self.nbf = notBefore.map { NotBeforeClaim(value: $0) }
        self.iss = issuer.map { IssuerClaim(value: $0) }
        self.aud = audience.map { AudienceClaim(value: [$0]) }
        self.scope = scope
        self.scopes = scopes
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A JWT issuer for tests: an HS256 secret and an ES256 key pair.
struct TestIssuer {
    static let secret = Array("a-test-secret-of-at-least-32-bytes-long!".utf8)
    let ecdsa = ES256PrivateKey()

    func hs256(_ claims: TestClaims, secret: [UInt8] = TestIssuer.secret) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return try await keys.sign(claims)
    }

    func es256(_ claims: TestClaims) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: ecdsa)
        return try await keys.sign(claims)
    }

    func accessControl(issuer: String? = nil, audience: String? = nil, leeway: Duration = .seconds(60)) async throws -> AccessControl {
        try await AccessControl(
            jwt: .init(
                hmacSecrets: [Self.secret], publicKeys: [("ec-1", ecdsa.publicKey.pemRepresentation)], issuer: issuer, audience: audience,
                leeway: leeway
            )
        )
    }
}

@Suite struct AccessControlTests {
    func outcome(_ access: AccessControl, _ token: String) async -> String {
        switch await access.authenticate(token) {
        case .success(let grant): return "ok \(grant.subject)"
        case .failure(let rejection): return rejection.description
        }
    }

    @Test func hs256AndES256TokensAreAcceptedWithTheirScopes() async throws {
        let issuer = TestIssuer()
        let access = try await issuer.accessControl()
        let token = try await issuer.hs256(TestClaims(scope: "read:Account write:Account", scopes: ["metrics"]))
        guard case .success(let grant) = await access.authenticate(token) else {
            Issue.record("a valid HS256 token was refused")
            return
        }
        #expect(grant.subject == "svc")
        #expect(grant.read == .only(["Account"]) && grant.write == .only(["Account"]) && grant.metrics)
        let expiresAt = try #require(grant.expiresAt)
        #expect(expiresAt > .now + .seconds(200) && expiresAt < .now + .seconds(400))
        #expect(await outcome(access, try await issuer.es256(TestClaims())) == "ok svc")
    }

    @Test func rs256KeysFromPEMFilesAreAccepted() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-rsa-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let privatePath = directory.appendingPathComponent("private.pem").path
        let publicPath = directory.appendingPathComponent("public.pem").path
        try await TestCertificates.openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", privatePath])
        try await TestCertificates.openssl(["pkey", "-in", privatePath, "-pubout", "-out", publicPath])
        let signer = JWTKeyCollection()
        await signer.add(rsa: try Insecure.RSA.PrivateKey(pem: String(contentsOfFile: privatePath, encoding: .utf8)), digestAlgorithm: .sha256)
        let token = try await signer.sign(TestClaims(scope: "write"))
        let access = try await AccessControl(jwt: .init(publicKeys: [("rsa", try String(contentsOfFile: publicPath, encoding: .utf8))]))
        #expect(await outcome(access, token) == "ok svc")
        // Only RS256 is configured: an HS256 token is refused by its algorithm before any key is tried.
        #expect(await outcome(access, try await TestIssuer().hs256(TestClaims())).contains("HS256 are not accepted"))
    }

    @Test func badTokensAreRefusedWithTheReason() async throws {
        let issuer = TestIssuer()
        let access = try await issuer.accessControl(issuer: "https://id.example", audience: "fluxgate", leeway: .zero)
        let good = TestClaims(issuer: "https://id.example", audience: "fluxgate")
        #expect(await outcome(access, try await issuer.hs256(good)) == "ok svc")
        #expect(await outcome(access, try await issuer.hs256(good, secret: Array("another-secret-of-at-least-32-bytes!!".utf8))).contains("signature does not verify"))
        var expired = good
        expired.exp = ExpirationClaim(value: Date().addingTimeInterval(-5))
        #expect(await outcome(access, try await issuer.hs256(expired)).contains("expired"))
        var eternal = good
        eternal.exp = nil
        #expect(await outcome(access, try await issuer.hs256(eternal)).contains("no exp claim"))
        var early = good
        early.nbf = NotBeforeClaim(value: Date().addingTimeInterval(600))
        #expect(await outcome(access, try await issuer.hs256(early)).contains("not valid yet"))
        #expect(await outcome(access, try await issuer.hs256(TestClaims(issuer: "https://evil.example", audience: "fluxgate"))).contains("issuer"))
        #expect(await outcome(access, try await issuer.hs256(TestClaims(issuer: "https://id.example", audience: "other"))).contains("audience"))
        #expect(await outcome(access, try await issuer.hs256(TestClaims(issuer: "https://id.example"))).contains("audience"), "no aud at all")
        // alg "none" with no signature, and garbage.
        let unsigned = try await issuer.hs256(good).split(separator: ".")
        let noneHeader = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64EncodedString().replacing("=", with: "")
        #expect(await outcome(access, "\(noneHeader).\(unsigned[1]).").contains("none are not accepted"))
        #expect(await outcome(access, "not-a-token").contains("not valid"))
        #expect(await outcome(access, "a.b.c").contains("not a well-formed JWT"))
    }

    /// A JWT put together by hand: any header and claims, signed with HMAC-SHA256 over `header.claims`.
    static func forged(header: String, claims: String, secret: [UInt8] = TestIssuer.secret) -> String {
        func base64URL(_ bytes: some Sequence<UInt8>) -> String {
            Data(bytes).base64EncodedString().replacing("+", with: "-").replacing("/", with: "_").replacing("=", with: "")
        }
        let signingInput = base64URL(Array(header.utf8)) + "." + base64URL(Array(claims.utf8))
        let signature = HMAC<SHA256>.authenticationCode(for: Array(signingInput.utf8), using: SymmetricKey(data: secret))
        return signingInput + "." + base64URL(signature)
    }

    @Test func numericClaimsBeyondAnyClockAreBoundedNotTrapped() async throws {
        let access = try await TestIssuer().accessControl()
        let header = #"{"alg":"HS256","typ":"JWT"}"#
        // Far in the future (the gateway died converting this to Int64 milliseconds): valid, its grant bounded.
        for exp in ["1e300", "9223372036854775807", "1.7976931348623157e308"] {
            let token = Self.forged(header: header, claims: #"{"sub":"far","exp":\#(exp),"scope":"read"}"#)
            guard case .success(let grant) = await access.authenticate(token) else {
                Issue.record("exp \(exp) was refused")
                continue
            }
            let expiresAt = try #require(grant.expiresAt)
            #expect(expiresAt <= .now + .seconds(AccessControl.longestGrant + 60), "exp \(exp)")
        }
        // Not numbers a clock can hold: refused with 401's reason, never a trap.
        for claims in [#"{"exp":1e400,"scope":"read"}"#, #"{"exp":-1e300,"scope":"read"}"#, #"{"exp":"soon"}"#, #"{"exp":1,"nbf":1e300}"#] {
            if case .success = await access.authenticate(Self.forged(header: header, claims: claims)) {
                Issue.record("\(claims) was accepted")
            }
        }
    }

    @Test func aTokenIsVerifiedOnlyWithKeysOfItsHeadersAlgorithm() async throws {
        let issuer = TestIssuer()
        let access = try await issuer.accessControl()  // an HS256 secret and an ES256 public key
        let claims = #"{"sub":"mallory","exp":\#(Int(Date().timeIntervalSince1970) + 300),"scope":"write"}"#
        #expect(await outcome(access, Self.forged(header: #"{"alg":"HS256","typ":"JWT"}"#, claims: claims)) == "ok mallory")
        // Signed with the HS256 secret but headed ES256 (algorithm confusion): the EC key does not verify it.
        #expect(await outcome(access, Self.forged(header: #"{"alg":"ES256","typ":"JWT"}"#, claims: claims)).contains("signature does not verify"))
    }

    @Test func shortSecretsAndUnusableKeysAreRefusedAtStartup() async {
        await #expect(throws: AccessControlError.self) { try await AccessControl(jwt: .init(hmacSecrets: [Array("short".utf8)])) }
        await #expect(throws: AccessControlError.self) { try await AccessControl(jwt: .init(publicKeys: [("k", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")])) }
    }

    @Test func tokensNeverAppearInLoggedURIs() {
        let request = GatewayRequest(method: .GET, uri: "/events/subscribe?after=3&access_token=s3cret.tok.en&epoch=e", headers: [:], body: .init())
        #expect(request.redactedURI == "/events/subscribe?after=3&access_token=REDACTED&epoch=e")
        #expect(request.bearerToken == "s3cret.tok.en")
        let header = GatewayRequest(method: .GET, uri: "/events", headers: ["Authorization": "Bearer  abc "], body: .init())
        #expect(header.bearerToken == "abc")
        #expect(GatewayRequest(method: .GET, uri: "/x?access_token=t", headers: [:], body: .init()).redactedURI == "/x?access_token=REDACTED")
    }
}

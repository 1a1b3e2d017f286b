import Crypto
import Foundation

/// Standard Webhooks signatures (https://www.standardwebhooks.com, "Signature scheme"): `v1,` and the base64 of the
/// HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the secret's bytes. Secrets are written
/// `whsec_<base64 of 24 to 64 random bytes>`; the key is the decoded part.
struct WebhookSignature: Sendable {
    /// The secret's key bytes.
    let key: SymmetricKey

    /// The prefix of a secret in the spec's form.
    static let secretPrefix = "whsec_"

    /// `nil` unless `secret` is `whsec_` and base64 of 16 to 128 bytes.
    init?(secret: String) {
        guard secret.hasPrefix(Self.secretPrefix), let bytes = Data(base64Encoded: String(secret.dropFirst(Self.secretPrefix.count))),
            (16...128).contains(bytes.count)
        else { return nil }
        key = SymmetricKey(data: bytes)
    }

    /// A new secret: `whsec_` and 32 random bytes in base64.
    static func generateSecret() -> String {
        secretPrefix + SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    func sign(id: String, timestamp: Int64, body: some Collection<UInt8>) -> String {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Array("\(id).\(timestamp).".utf8))
        mac.update(data: Array(body))
        return "v1," + Data(mac.finalize()).base64EncodedString()
    }

    /// The `webhook-signature` header of a delivery signed with every secret (two while a secret is rotated),
    /// separated by spaces as the spec allows.
    static func header(secrets: [WebhookSignature], id: String, timestamp: Int64, body: some Collection<UInt8>) -> String {
        secrets.map { $0.sign(id: id, timestamp: timestamp, body: body) }.joined(separator: " ")
    }

    /// A fingerprint of a secret that shows which one is set without revealing it: the first 8 bytes of the SHA-256 of
    /// the whole secret text, in hex.
    static func fingerprint(of secret: String) -> String {
        SHA256.hash(data: Array(secret.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}

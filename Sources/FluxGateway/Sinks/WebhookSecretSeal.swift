import Crypto
import FluxCore
import Foundation

/// Webhook sinks' signing secrets sealed at rest (`fluxgate serve --sinks-key-file FILE`): the store keeps
/// `sealed:v1:` and the base64 of AES-256-GCM's nonce, ciphertext and tag, so a copy of the database (a backup, a
/// replica, a leaked dump) does not let anyone sign webhooks. The key never goes into the store. Without a key,
/// secrets are stored as given; with one, secrets stored as given before are used as they are and sealed at the next
/// start (``GatewayRouter/resealSecrets()``) or put. Every node that shares a store needs the same key.
///
/// Rotating the key: start every node with the new key and the old one as a previous key
/// (`--sinks-previous-key-file`). Secrets sealed with a previous key still open, and each start seals the stored
/// secrets of every sink again with the current key (only their stored form: a disabled sink stays disabled). Once
/// every node has started so, the previous key can go.
public struct WebhookSecretSeal: Sendable {
    /// The current key (it seals), then the previous ones (they only open).
    private let keys: [SymmetricKey]

    static let prefix = "sealed:v1:"

    /// A key that cannot be used, in words that say what to do.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The keys: each the base64 of 32 random bytes (`openssl rand -base64 32`); `previous` ones only open.
    public init(base64 text: String, previous: [String] = []) throws(Failure) {
        keys = try ([text] + previous).map { (text: String) throws(Failure) -> SymmetricKey in
            guard let bytes = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32 else {
                throw Failure(description: "a sinks key is the base64 of 32 random bytes, e.g. from `openssl rand -base64 32`")
            }
            return SymmetricKey(data: bytes)
        }
    }

    /// The keys kept in `path` and `previousPaths` (files readable by the gateway only).
    public init(file path: String, previousFiles previousPaths: [String] = []) throws(Failure) {
        let texts = try ([path] + previousPaths).map { (path: String) throws(Failure) -> String in
            guard let data = FileManager.default.contents(atPath: path), data.count <= 1024 else {
                throw Failure(description: "cannot read the sinks key file \(path) (the base64 of 32 random bytes, e.g. from `openssl rand -base64 32`)")
            }
            return String(decoding: data, as: UTF8.self)
        }
        do {
            try self.init(base64: texts[0], previous: Array(texts.dropFirst()))
        } catch {
            throw Failure(description: "the sinks key files \(([path] + previousPaths).joined(separator: ", ")): \(error.description)")
        }
    }

    static func isSealed(_ stored: String) -> Bool { stored.hasPrefix(prefix) }

    /// Whether a stored secret should be sealed again: stored as given, or sealed with a previous key.
    func shouldReseal(_ stored: String) -> Bool {
        guard Self.isSealed(stored) else { return true }
        return (unseal(stored)?.key ?? 0) > 0
    }

    /// The secret sealed with this key (a new random nonce each time).
    func seal(_ secret: String) -> String {
        // AES-GCM with a random 96-bit nonce cannot fail for a 256-bit key; `combined` is non-nil for that nonce size.
        let box = try! AES.GCM.seal(Data(secret.utf8), using: keys[0])
        return Self.prefix + box.combined!.base64EncodedString()
    }

    /// The secret of a stored one: sealed ones opened with this key; others as they are.
    func open(_ stored: String) throws(Failure) -> String {
        guard Self.isSealed(stored) else { return stored }
        guard let (secret, _) = unseal(stored) else {
            throw Failure(description: "a stored webhook secret was sealed with another key than --sinks-key-file's; give the key that sealed it, or put the sink again with its secret")
        }
        return secret
    }

    /// A sealed secret opened, with the index in `keys` of the key that opened it (0: the current one); `nil` when it
    /// is damaged or none of these keys sealed it.
    private func unseal(_ stored: String) -> (secret: String, key: Int)? {
        guard let combined = Data(base64Encoded: String(stored.dropFirst(Self.prefix.count))),
            let box = try? AES.GCM.SealedBox(combined: combined)
        else { return nil }
        for (index, key) in keys.enumerated() {
            if let opened = try? AES.GCM.open(box, using: key) { return (String(decoding: opened, as: UTF8.self), index) }
        }
        return nil
    }
}

extension WebhookSinkDefinition {
    /// This definition with its secrets sealed by `seal`'s current key (as given without one): those stored as given,
    /// and those sealed with a previous key.
    func sealed(with seal: WebhookSecretSeal?) -> WebhookSinkDefinition {
        guard let seal else { return self }
        var copy = self
        copy.secrets = secrets.map { stored in
            guard seal.shouldReseal(stored) else { return stored }
            return seal.seal((try? seal.open(stored)) ?? stored)
        }
        return copy
    }

    /// This definition with its secrets opened by `seal`; a sealed secret without a key cannot be opened.
    func opened(with seal: WebhookSecretSeal?) throws(WebhookSecretSeal.Failure) -> WebhookSinkDefinition {
        var copy = self
        copy.secrets = try secrets.map { (stored: String) throws(WebhookSecretSeal.Failure) -> String in
            guard WebhookSecretSeal.isSealed(stored) else { return stored }
            guard let seal else {
                throw WebhookSecretSeal.Failure(description: "webhook sink \(name)'s secrets are sealed at rest; start the gateway with the --sinks-key-file that sealed them")
            }
            return try seal.open(stored)
        }
        return copy
    }
}

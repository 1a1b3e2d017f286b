import Crypto
import FluxCore
import Foundation

/// Webhook sinks' signing secrets sealed at rest (`fluxgate serve --sinks-key-file FILE`): the store keeps
/// `sealed:v1:` and the base64 of AES-256-GCM's nonce, ciphertext and tag, so a copy of the database (a backup, a
/// replica, a leaked dump) does not let anyone sign webhooks. The key never goes into the store. Without a key,
/// secrets are stored as given; a stored secret that is not sealed is used as it is, and sealed the next time its sink
/// is put. Every node that shares a store needs the same key.
public struct WebhookSecretSeal: Sendable {
    private let key: SymmetricKey

    static let prefix = "sealed:v1:"

    /// A key that cannot be used, in words that say what to do.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The key: the base64 of 32 random bytes (`openssl rand -base64 32`).
    public init(base64 text: String) throws(Failure) {
        guard let bytes = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32 else {
            throw Failure(description: "a sinks key is the base64 of 32 random bytes, e.g. from `openssl rand -base64 32`")
        }
        key = SymmetricKey(data: bytes)
    }

    /// The key kept in `path` (readable by the gateway only).
    public init(file path: String) throws(Failure) {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 1024 else {
            throw Failure(description: "cannot read the sinks key file \(path) (the base64 of 32 random bytes, e.g. from `openssl rand -base64 32`)")
        }
        do {
            try self.init(base64: String(decoding: data, as: UTF8.self))
        } catch {
            throw Failure(description: "the sinks key file \(path): \(error.description)")
        }
    }

    static func isSealed(_ stored: String) -> Bool { stored.hasPrefix(prefix) }

    /// The secret sealed with this key (a new random nonce each time).
    func seal(_ secret: String) -> String {
        // AES-GCM with a random 96-bit nonce cannot fail for a 256-bit key; `combined` is non-nil for that nonce size.
        let box = try! AES.GCM.seal(Data(secret.utf8), using: key)
        return Self.prefix + box.combined!.base64EncodedString()
    }

    /// The secret of a stored one: sealed ones opened with this key; others as they are.
    func open(_ stored: String) throws(Failure) -> String {
        guard Self.isSealed(stored) else { return stored }
        guard let combined = Data(base64Encoded: String(stored.dropFirst(Self.prefix.count))),
            let box = try? AES.GCM.SealedBox(combined: combined), let opened = try? AES.GCM.open(box, using: key)
        else {
            throw Failure(description: "a stored webhook secret was sealed with another key than --sinks-key-file's; give the key that sealed it, or put the sink again with its secret")
        }
        return String(decoding: opened, as: UTF8.self)
    }
}

extension WebhookSinkDefinition {
    /// This definition with its secrets sealed by `seal` (as given without one).
    func sealed(with seal: WebhookSecretSeal?) -> WebhookSinkDefinition {
        guard let seal else { return self }
        var copy = self
        copy.secrets = secrets.map { WebhookSecretSeal.isSealed($0) ? $0 : seal.seal($0) }
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

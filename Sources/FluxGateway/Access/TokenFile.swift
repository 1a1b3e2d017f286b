import Crypto
import FluxWire

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension AccessControl.StaticToken {
    /// Reads a static token file (JSON):
    ///
    /// ```json
    /// {"tokens": [
    ///   {"name": "dashboard", "token": "a-long-random-string", "scopes": ["read"]},
    ///   {"name": "billing", "sha256": "<hex SHA-256 of the token>", "scopes": ["write:Account", "read:Account"]}
    /// ]}
    /// ```
    ///
    /// Give `sha256` instead of `token` to keep the token itself out of the file (`printf %s TOKEN | sha256sum`).
    public static func load(file path: String) throws -> [AccessControl.StaticToken] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw AccessControlError("cannot read the token file \(path): \(error.localizedDescription)")
        }
        return try parse(data, source: path)
    }

    /// Parses the token file format of `load(file:)`.
    public static func parse(_ data: Data, source: String = "the token file") throws -> [AccessControl.StaticToken] {
        struct File: Decodable {
            struct Entry: Decodable {
                var name: String
                var token: String?
                var sha256: String?
                var scopes: [String]
            }
            var tokens: [Entry]
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw AccessControlError(
                "\(source) is not a token file: expected {\"tokens\": [{\"name\": …, \"token\" or \"sha256\": …, \"scopes\": [\"read\", …]}]} (\(error))"
            )
        }
        var seen = Set<String>()
        return try file.tokens.map { entry in
            guard seen.insert(entry.name).inserted else { throw AccessControlError("\(source): the name \(entry.name) appears twice") }
            switch (entry.token, entry.sha256) {
            case (let token?, nil):
                guard token.utf8.count >= 16 else {
                    throw AccessControlError("\(source): the token of \(entry.name) is shorter than 16 bytes; use a long random one (openssl rand -hex 32)")
                }
                return AccessControl.StaticToken(name: entry.name, token: token, scopes: entry.scopes)
            case (nil, let hex?):
                guard let digest = Self.bytes(hex: hex), digest.count == 32 else {
                    throw AccessControlError("\(source): the sha256 of \(entry.name) must be 64 hex digits")
                }
                return AccessControl.StaticToken(name: entry.name, digest: digest, scopes: entry.scopes)
            default:
                throw AccessControlError("\(source): give \(entry.name) either a token or a sha256, not both or neither")
            }
        }
    }

    private static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = URLEncoding.hexDigitValue(digits[index]), let low = URLEncoding.hexDigitValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }
}

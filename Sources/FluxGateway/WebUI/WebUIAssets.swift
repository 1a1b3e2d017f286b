import Foundation
import NIOCore

/// One file of the web UI, ready to serve: its bytes, media type and entity tag.
struct WebAsset: Sendable {
    /// The file name, as requested under `/ui/`.
    let name: String
    /// The `Content-Type` to answer with (text types carry `charset=utf-8`).
    let contentType: String
    let body: ByteBuffer
    /// A strong entity tag derived from the bytes (RFC 9110 §8.8.3), quoted.
    let etag: String
}

/// The files served to browsers (`Sources/FluxGateway/WebUI/Assets`): the page at `/`, its script and style,
/// and the JS client module `fluxgate.js`. Compiled into the binary by the EmbedWebAssets build plugin
/// (`EmbeddedWebAssets`), decoded once on first use and kept in memory.
struct WebUIAssets: Sendable {
    /// The page served at `/`.
    static let indexName = "index.html"

    private let assets: [String: WebAsset]

    /// Every asset by name.
    var names: [String] { assets.keys.sorted() }

    subscript(name: String) -> WebAsset? { assets[name] }

    /// The assets compiled into this build.
    static let embedded = WebUIAssets(files: EmbeddedWebAssets.files.map { (name: $0.name, bytes: [UInt8](Data(base64Encoded: $0.base64) ?? Data())) })

    /// The given files, by name.
    init(files: [(name: String, bytes: [UInt8])]) {
        var assets: [String: WebAsset] = [:]
        for (name, bytes) in files {
            let body = ByteBuffer(bytes: bytes)
            let etag = "\"" + String(GatewayRouter.fnv1a(body.readableBytesView), radix: 16) + "-" + String(bytes.count, radix: 16) + "\""
            assets[name] = WebAsset(name: name, contentType: Self.contentType(forName: name), body: body, etag: etag)
        }
        self.assets = assets
    }

    /// Loads every regular file of `directory` (not its subdirectories, not hidden files).
    init(directory: URL) throws {
        var files: [(name: String, bytes: [UInt8])] = []
        for file in try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.isRegularFileKey]) {
            // `fluxgate.js` is also reached through the `clients/js` symlink; read what a link points to.
            let resolved = file.resolvingSymlinksInPath()
            guard (try? resolved.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
            guard !file.lastPathComponent.hasPrefix(".") else { continue }
            files.append((file.lastPathComponent, [UInt8](try Data(contentsOf: resolved))))
        }
        self.init(files: files)
    }

    /// The media type for a file name, by its extension; text types are UTF-8.
    static func contentType(forName name: String) -> String {
        let ext = name.split(separator: ".").last.map { $0.lowercased() } ?? ""
        switch ext {
        case "html", "htm": return "text/html; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"  // RFC 9239
        case "css": return "text/css; charset=utf-8"
        case "json": return "application/json"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "ico": return "image/x-icon"
        case "txt": return "text/plain; charset=utf-8"
        case "woff2": return "font/woff2"
        default: return "application/octet-stream"
        }
    }
}

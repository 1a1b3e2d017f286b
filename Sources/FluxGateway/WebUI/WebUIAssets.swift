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
/// and the JS client module `fluxgate.js`. Read from the target's resource bundle once, on first use, and
/// kept in memory; a file that is not there is never looked for on disk again.
struct WebUIAssets: Sendable {
    /// The page served at `/`.
    static let indexName = "index.html"

    private let assets: [String: WebAsset]

    /// Every asset by name.
    var names: [String] { assets.keys.sorted() }

    subscript(name: String) -> WebAsset? { assets[name] }

    /// The bundled assets, loaded on first use; `nil` when the resource bundle is not installed next to the
    /// executable (see `bundledDirectory()`).
    static let bundled: WebUIAssets? = bundledDirectory().flatMap { try? WebUIAssets(directory: $0) }

    /// Loads every regular file of `directory` (not its subdirectories).
    init(directory: URL) throws {
        var assets: [String: WebAsset] = [:]
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.isRegularFileKey])
        for file in files {
            // `fluxgate.js` is also reached through the `clients/js` symlink; read what the link points to.
            let resolved = file.resolvingSymlinksInPath()
            guard (try? resolved.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
            let name = file.lastPathComponent
            guard !name.hasPrefix(".") else { continue }
            let bytes = try Data(contentsOf: resolved)
            let body = ByteBuffer(bytes: bytes)
            let etag = "\"" + String(GatewayRouter.fnv1a(body.readableBytesView), radix: 16) + "-" + String(bytes.count, radix: 16) + "\""
            assets[name] = WebAsset(name: name, contentType: Self.contentType(forName: name), body: body, etag: etag)
        }
        self.assets = assets
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

    /// Where the bundled `Assets` folder is: `Bundle.module`. On Linux SwiftPM's accessor stops the process
    /// when the resource bundle is neither next to the executable nor in the build directory (a binary
    /// installed without it), so the bundle is looked for first, next to the executable as started and as
    /// its symlinks resolve; when it is missing the UI answers `503` instead of taking the gateway down.
    static func bundledDirectory() -> URL? {
        #if os(Linux)
        let bundleName = "fluxgate_FluxGateway.resources"
        let fileManager = FileManager.default
        if !fileManager.fileExists(atPath: Bundle.main.bundleURL.appendingPathComponent(bundleName).path) {
            // Bundle.module looks only next to the executable as started (and in the build directory).
            guard let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() else { return nil }
            let assets = executable.deletingLastPathComponent().appendingPathComponent(bundleName).appendingPathComponent("Assets")
            return fileManager.fileExists(atPath: assets.path) ? assets : nil
        }
        #endif
        return Bundle.module.url(forResource: "Assets", withExtension: nil)
    }
}

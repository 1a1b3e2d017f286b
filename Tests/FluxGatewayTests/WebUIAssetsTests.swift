import Foundation
import Testing

@testable import FluxGateway

/// The web UI's files as compiled into the gateway.
@Suite struct WebUIAssetsTests {
    static let sourceAssets = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/FluxGateway/WebUI/Assets")

    @Test func theBinaryHoldsEverySourceFileByteForByte() throws {
        let assets = WebUIAssets.embedded
        let sourceNames = try FileManager.default.contentsOfDirectory(atPath: Self.sourceAssets.path).filter { !$0.hasPrefix(".") }.sorted()
        #expect(assets.names == sourceNames)
        for name in ["index.html", "app.js", "style.css", "fluxgate.js", "favicon.svg"] {
            #expect(sourceNames.contains(name), "\(name) is missing from WebUI/Assets")
        }
        for name in sourceNames {
            let asset = try #require(assets[name])
            let onDisk = try Data(contentsOf: Self.sourceAssets.appendingPathComponent(name))
            #expect(Data(asset.body.readableBytesView) == onDisk, "\(name) differs from the source file: rebuild")
        }
    }

    @Test(arguments: [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("fluxgate.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
        ("logo.png", "image/png"),
        ("data.json", "application/json"),
        ("README", "application/octet-stream"),
    ])
    func mediaTypesFollowTheExtension(name: String, type: String) {
        #expect(WebUIAssets.contentType(forName: name) == type)
    }

    @Test func entityTagsAreQuotedAndDifferPerFile() throws {
        let assets = WebUIAssets.embedded
        let tags = assets.names.compactMap { assets[$0]?.etag }
        #expect(tags.count == assets.names.count)
        #expect(Set(tags).count == tags.count)
        for tag in tags { #expect(tag.hasPrefix("\"") && tag.hasSuffix("\"") && tag.count > 2) }
        // Loaded again, the same bytes give the same tags (a restart does not invalidate browser caches).
        let again = try WebUIAssets(directory: Self.sourceAssets)
        #expect(assets.names.map { assets[$0]?.etag } == again.names.map { again[$0]?.etag })
    }

    @Test func theJSClientInClientsIsALinkToTheServedModule() throws {
        let link = Self.sourceAssets.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("clients/js/fluxgate.js")
        let destination = try FileManager.default.destinationOfSymbolicLink(atPath: link.path)
        #expect(destination == "../../Sources/FluxGateway/WebUI/Assets/fluxgate.js")
        #expect(link.resolvingSymlinksInPath().path == Self.sourceAssets.appendingPathComponent("fluxgate.js").resolvingSymlinksInPath().path)
    }
}

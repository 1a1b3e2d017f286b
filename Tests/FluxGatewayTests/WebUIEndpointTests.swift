import FluxConsumer
import FluxCore
import FluxGateway
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// `/` and `/ui/{name}` over a real loopback socket, and the rest of the router beside them.
@Suite struct WebUIEndpointTests {
    @Test func theRootServesThePage() async throws {
        try await withTestGateway { gateway in
            let page = try await gateway.get("/")
            #expect(page.status == .ok)
            #expect(page.headers.first(name: "Content-Type") == "text/html; charset=utf-8")
            #expect(page.headers.first(name: "Cache-Control") == "no-cache")
            #expect(page.headers.first(name: "ETag")?.hasPrefix("\"") == true)
            #expect(page.headers.first(name: "X-Content-Type-Options") == "nosniff")
            #expect(page.headers.first(name: "Content-Security-Policy")?.contains("default-src 'self'") == true)
            #expect(page.text.hasPrefix("<!doctype html>"))
            #expect(page.text.contains(#"<script type="module" src="ui/app.js"></script>"#))
            #expect(page.text.contains(#"href="ui/style.css""#))
            // No build step, no CDN: everything the page loads is the gateway's own.
            #expect(!page.text.contains("://"))
            #expect(page.headers.first(name: "Content-Length") == String(page.body.readableBytes))
        }
    }

    @Test(arguments: [
        ("/ui/index.html", "text/html; charset=utf-8", "<!doctype html>"),
        ("/ui/app.js", "text/javascript; charset=utf-8", #"import { FluxgateSubscription } from "./fluxgate.js";"#),
        ("/ui/fluxgate.js", "text/javascript; charset=utf-8", "export class FluxgateSubscription"),
        ("/ui/style.css", "text/css; charset=utf-8", ":root"),
        ("/ui/favicon.svg", "image/svg+xml", "<svg"),
    ])
    func eachAssetHasItsType(path: String, type: String, content: String) async throws {
        try await withTestGateway { gateway in
            let response = try await gateway.get(path)
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "Content-Type") == type)
            #expect(response.headers.first(name: "ETag") != nil)
            #expect(response.headers.first(name: "Cache-Control") == "no-cache")
            #expect(response.text.contains(content))
        }
    }

    @Test func aKnownEntityTagIsAnswered304() async throws {
        try await withTestGateway { gateway in
            let first = try await gateway.get("/ui/app.js")
            let etag = try #require(first.headers.first(name: "ETag"))
            // One keep-alive connection: a 304 without a body must leave the next response intact.
            let connection = try await gateway.connect()
            for header in [etag, "W/" + etag, "\"other\", " + etag, "*"] {
                let revalidated = try await connection.request(.GET, "/ui/app.js", headers: [("If-None-Match", header)])
                #expect(revalidated.status == .notModified, "If-None-Match: \(header)")
                #expect(revalidated.body.readableBytes == 0)
                #expect(revalidated.headers.first(name: "ETag") == etag)
                #expect(revalidated.headers.first(name: "Cache-Control") == "no-cache")
            }
            let changed = try await connection.request(.GET, "/ui/app.js", headers: [("If-None-Match", "\"stale\"")])
            #expect(changed.status == .ok)
            #expect(changed.body == first.body)
            let page = try await gateway.get("/")
            #expect(page.headers.first(name: "ETag") != etag)
            await connection.close()
        }
    }

    @Test(arguments: ["/ui/nope.js", "/ui/", "/ui/a/b.js", "/ui/..%2Fapp.js", "/ui/%2E%2E", "/index.html"])
    func unknownAssetsAre404JSON(path: String) async throws {
        try await withTestGateway { gateway in
            let response = try await gateway.get(path)
            #expect(response.status == .notFound)
            #expect(response.headers.first(name: "Content-Type") == "application/json")
            #expect(try response.jsonObject()["error"] as? String == "not_found")
            #expect(try (response.jsonObject()["message"] as? String)?.isEmpty == false)
        }
    }

    @Test func onlyGETIsAllowed() async throws {
        try await withTestGateway { gateway in
            for (method, path) in [(HTTPMethod.POST, "/"), (.DELETE, "/ui/app.js"), (.PUT, "/ui/style.css")] {
                let response = try await gateway.request(method, path, json: method == .POST ? "{}" : nil)
                #expect(response.status == .methodNotAllowed, "\(method) \(path)")
                #expect(response.headers.first(name: "Allow") == "GET, HEAD")
                #expect(try response.jsonObject()["error"] as? String == "method_not_allowed")
            }
        }
    }

    @Test func theRoutersOtherRoutesAreUnaffected() async throws {
        try await withTestGateway { gateway in
            let appended = try await gateway.append("acc-1", events: [("account.AccountCredited", #"{"amount": 50}"#)])
            #expect(appended.status == .created)
            let health = try await gateway.get("/health")
            #expect(health.status == .ok)
            #expect(try health.jsonObject()["head"] as? Int == 1)
            let feed = try await gateway.get("/events?offset=0")
            #expect(feed.status == .ok)
            #expect(feed.headers.first(name: "Content-Type") == "application/json")
            #expect(try (feed.jsonObject()["events"] as? [Any])?.count == 1)
            let stream = try await gateway.get("/streams/acc-1")
            #expect(stream.status == .ok)
            let events = try #require(try stream.jsonObject()["events"] as? [[String: Any]])
            let id = try #require(events.first?["event_id"] as? String)
            let payload = try await gateway.get("/events/\(id)")
            #expect(payload.text == #"{"amount": 50}"#)
            #expect(try await gateway.get("/streams/none").status == .notFound)
            let missing = try await gateway.get("/nothing/here")
            #expect(missing.status == .notFound)
            #expect(try missing.jsonObject()["error"] as? String == "not_found")
            // A path that merely starts like the UI's is not the UI.
            #expect(try await gateway.get("/uix/app.js").status == .notFound)
        }
    }
}

import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import Testing

/// CORS in a real browser: `Browser/cors_check.py` drives headless chromium on a page of a second gateway (another
/// origin) against the gateway under test, through `fetch()` and `fluxgate.js`.
@Suite(.serialized) struct CrossOriginBrowserTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Browser/cors_check.py")

    func runCheck(page: TestGateway, gateway: TestGateway, _ arguments: [String]) async throws {
        try await withChildProcess(
            TestPython.executable,
            [Self.script.path, "http://127.0.0.1:\(page.port)", "http://127.0.0.1:\(gateway.port)", "--timeout", "150"] + arguments
        ) { process in
            let status = await process.waitForExit(timeout: .seconds(180))
            let output = (process.outputLines.joined(separator: "\n") + "\n" + process.errorOutput).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(status == 0, "cors_check.py exited \(status.map(String.init) ?? "— still running after 180 s, stopped"):\n\(output)")
        }
    }

    func seed(_ gateway: TestGateway) async throws {
        for index in 1...5 {
            try await gateway.store.append(AppendRequest(
                aggregateID: "acc-\(index % 2)", aggregateName: "Account", expectedVersion: .any,
                events: [NewEvent(eventType: "account.AccountCredited", payload: EventPayload(trustedJSON: Array(#"{"amount": \#(index)}"#.utf8)))]))
        }
    }

    /// With `--allow-origin` for the page's origin and access control on: the page reads the feed, appends (a
    /// preflighted POST with a token), and fluxgate.js subscribes over server-sent events and over polling.
    @Test func anAllowedOriginReadsAppendsAndSubscribesWithoutWebSocket() async throws {
        let token = "cors-browser-token-0123456789"
        try await withTestGateway { page in
            let access = try await AccessControl(tokens: [.init(name: "page", token: token, scopes: ["read", "write"])])
            try await withTestGateway(await TestGateway.start(allowedOrigins: ["http://127.0.0.1:\(page.port)"], accessControl: access)) { gateway in
                try await seed(gateway)
                try await runCheck(page: page, gateway: gateway, ["--expect", "allowed", "--token", token])
            }
        }
    }

    /// A gateway that allows no other origin: the page cannot read it, and fluxgate.js says so through its error
    /// callback (naming the `--allow-origin` to add) and stops, instead of reconnecting for ever.
    @Test func aRefusedOriginGetsAnErrorFromTheJSClientNotEndlessReconnects() async throws {
        try await withTestGateway { page in
            try await withTestGateway { gateway in
                try await seed(gateway)
                try await runCheck(page: page, gateway: gateway, ["--expect", "refused"])
            }
        }
    }
}

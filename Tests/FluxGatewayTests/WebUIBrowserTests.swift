import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import Testing

/// The web UI in a real browser: `Browser/ui_check.py` drives headless chromium through chromedriver
/// (installed by scripts/setup.sh) against a gateway on a loopback port.
@Suite(.serialized) struct WebUIBrowserTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Browser/ui_check.py")

    /// Where each run leaves its screenshot (kept after the test, to look at).
    static func screenshot(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-ui-\(name).png")
    }

    /// Over the WebSocket push channel; through a proxy that refuses it (the page falls back to server-sent
    /// events); through one that refuses event streams too (the page long-polls the feed).
    /// `websocket+token`: a gateway with access control; the page gets its token in the URL's fragment.
    /// Over WebSocket, `--extended` checks the rest of the page too: the stream list (prefix search, next page, a
    /// click opening a stream), the open stream following an append, an older page of the global history, the
    /// subscriber and lag figures, and no sideways scrolling at 360 px (a second screenshot, `-360.png`).
    @Test(arguments: ["websocket", "sse", "polling", "websocket+token"])
    func aNewEventAppearsAndItsPayloadShows(transport: String) async throws {
        let token = "browser-token-0123456789"
        let access = transport.hasSuffix("+token")
            ? try await AccessControl(tokens: [.init(name: "browser", token: token, scopes: ["read", "write"])]) : nil
        try await withTestGateway(await TestGateway.start(accessControl: access)) { gateway in
            for index in 1...12 {
                try await gateway.store.append(AppendRequest(
                    aggregateID: "acc-\(index % 4)", aggregateName: "Account", expectedVersion: .any,
                    events: [NewEvent(eventType: index % 3 == 0 ? "account.AccountDebited" : "account.AccountCredited",
                                      payload: EventPayload(trustedJSON: Array(#"{"amount": \#(index * 10)}"#.utf8)))]))
            }
            // Streams for the stream list: list-00 … list-24 (a page of 20 and the next), 1 to 3 events each.
            for index in 0..<25 {
                try await gateway.store.append(AppendRequest(
                    aggregateID: "list-" + (index < 10 ? "0" : "") + String(index), aggregateName: "UICheck", expectedVersion: .noStream,
                    events: (0...(index % 3)).map { _ in NewEvent(eventType: "uicheck.Listed", payload: EventPayload(trustedJSON: Array("{}".utf8))) }))
            }
            let refusals = ["websocket": ["--extended"], "sse": ["--refuse-push"], "polling": ["--refuse-push", "--refuse-sse"], "websocket+token": ["--token", token]][transport] ?? []
            let screenshot = Self.screenshot(transport)
            try? FileManager.default.removeItem(at: screenshot)
            try await withChildProcess(
                TestPython.executable,
                [Self.script.path, "http://127.0.0.1:\(gateway.port)", screenshot.path, "--timeout", "120"] + refusals
            ) { process in
                let status = await process.waitForExit(timeout: .seconds(180))
                let output = (process.outputLines.joined(separator: "\n") + "\n" + process.errorOutput).trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(status == 0, "ui_check.py exited \(status.map(String.init) ?? "— still running after 180 s, stopped"):\n\(output)")
                let size = (try? FileManager.default.attributesOfItem(atPath: screenshot.path)[.size] as? Int) ?? 0
                #expect(size > 0, "no screenshot at \(screenshot.path)")
                let header = try? FileHandle(forReadingFrom: screenshot).read(upToCount: 8)
                #expect(header == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "\(screenshot.path) is not a PNG")
            }
        }
    }

    /// A gateway with access control holding one event, the page opened without a token: it asks once (however many
    /// of its requests were refused), says it waits for a token rather than "No events yet" while the head is 1, asks
    /// again with the reason after a wrong token, then shows event 1 and never asks again, not even after a reload.
    @Test func theTokenPromptAsksOnceAndHeadOneShowsItsEvent() async throws {
        let token = "browser-token-0123456789"
        let access = try await AccessControl(tokens: [.init(name: "browser", token: token, scopes: ["read", "write"])])
        try await withTestGateway(await TestGateway.start(accessControl: access)) { gateway in
            try await gateway.store.append(AppendRequest(
                aggregateID: "acc-1", aggregateName: "Account", expectedVersion: .noStream,
                events: [NewEvent(eventType: "account.AccountOpened", payload: EventPayload(trustedJSON: Array(#"{"owner": "ada"}"#.utf8)))]))
            let screenshot = Self.screenshot("token-prompt")
            try? FileManager.default.removeItem(at: screenshot)
            try await withChildProcess(
                TestPython.executable,
                [Self.script.path, "http://127.0.0.1:\(gateway.port)", screenshot.path, "--timeout", "120", "--prompt-token", token]
            ) { process in
                let status = await process.waitForExit(timeout: .seconds(180))
                let output = (process.outputLines.joined(separator: "\n") + "\n" + process.errorOutput).trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(status == 0, "ui_check.py --prompt-token exited \(status.map(String.init) ?? "— still running after 180 s, stopped"):\n\(output)")
            }
        }
    }
}

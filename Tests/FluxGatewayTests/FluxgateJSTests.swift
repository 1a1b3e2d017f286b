import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import Testing

/// `fluxgate.js` outside the web UI: in Node, used as the README says (the module saved as `fluxgate.mjs`; Node 18
/// to 21 have no WebSocket, so it subscribes over server-sent events with its bearer token, `Browser/node_check.mjs`),
/// and its TypeScript declarations, which must name every option the module reads.
@Suite struct FluxgateJSTests {
    static let check = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Browser/node_check.mjs")
    static let module = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/FluxGateway/WebUI/Assets/fluxgate.js")

    @Test func subscribesWithItsTokenAndDeliversEveryEventOnce() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-node-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let module = directory.appendingPathComponent("fluxgate.mjs")
        try FileManager.default.copyItem(at: Self.module, to: module)
        let token = "node-reader-0123456789"
        let access = try await AccessControl(tokens: [.init(name: "node", token: token, scopes: ["read"])])
        try await withTestGateway(await TestGateway.start(accessControl: access)) { gateway in
            for index in 1...20 {
                try await gateway.store.append(AppendRequest(
                    aggregateID: "n\(index % 3)", aggregateName: "N", expectedVersion: .any,
                    events: [NewEvent(eventType: "t", payload: EventPayload(trustedJSON: Array(#"{"i": \#(index)}"#.utf8)))]))
            }
            let run = try await ChildProcess.run(
                URL(fileURLWithPath: "/usr/bin/env"), ["node", Self.check.path, module.path, "http://127.0.0.1:\(gateway.port)", "20", token],
                timeout: .seconds(60))
            #expect(run.status == 0, "\(run.outputLines) \(run.errorOutput.suffix(2000))")
            #expect(run.outputLines.last?.hasPrefix("node_check: ok: 20 events") == true, "\(run.outputLines)")
        }
    }

    @Test func aGroupMemberHandlesEveryEventInOrderAndRetriesWhatItRejected() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-node-group-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let module = directory.appendingPathComponent("fluxgate.mjs")
        try FileManager.default.copyItem(at: Self.module, to: module)
        try await withTestGateway { gateway in
            for index in 1...30 {
                try await gateway.store.append(AppendRequest(
                    aggregateID: "g\(index % 4)", aggregateName: "N", expectedVersion: .any,
                    events: [NewEvent(eventType: index % 7 == 0 ? "t.Poison" : "t", payload: EventPayload(trustedJSON: Array(#"{"i": \#(index)}"#.utf8)))]))
            }
            #expect(try await gateway.request(.PUT, "/groups/js", json: #"{"backoff_ms": 10}"#).status == .created)
            let run = try await ChildProcess.run(
                URL(fileURLWithPath: "/usr/bin/env"),
                ["node", Self.groupCheck.path, module.path, "http://127.0.0.1:\(gateway.port)", "js", "30", "t.Poison"], timeout: .seconds(60))
            #expect(run.status == 0, "\(run.outputLines) \(run.errorOutput.suffix(2000))")
            #expect(run.outputLines.last?.hasPrefix("node_group_check: ok: 30 events") == true, "\(run.outputLines)")
            #expect(try await gateway.get("/groups/js").jsonObject()["checkpoint"] as? Int == 30)
        }
    }

    static let groupCheck = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Browser/node_group_check.mjs")

    @Test func theTypeScriptDeclarationsNameEveryOptionTheModuleReads() throws {
        let module = try String(contentsOf: Self.module, encoding: .utf8)
        let declarations = try String(
            contentsOf: Self.module.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("clients/js/fluxgate.d.ts"),
            encoding: .utf8)
        let options = Set(module.matches(of: /options\.([A-Za-z]+)/).map { String($0.1) })
        #expect(options.count >= 10, "\(options)")
        for option in options.sorted() {
            #expect(declarations.contains("  \(option)?:"), "fluxgate.d.ts does not declare the option \(option)")
        }
        for member in ["start(): void", "stop(): void", "readonly position: number", "readonly epoch", "readonly transport"] {
            #expect(declarations.contains(member), "fluxgate.d.ts lacks \(member)")
        }
    }
}

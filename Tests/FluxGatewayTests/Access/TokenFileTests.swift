import FluxGateway
import Foundation
import Testing

@Suite struct TokenFileTests {
    @Test func tokensAndDigestsAreRead() async throws {
        let file = #"""
            {"tokens": [
              {"name": "dashboard", "token": "0123456789abcdef-dashboard", "scopes": ["read"]},
              {"name": "billing", "sha256": "\#(String(repeating: "ab", count: 32))", "scopes": ["write:Account"]}
            ]}
            """#
        let tokens = try AccessControl.StaticToken.parse(Data(file.utf8))
        #expect(tokens.map(\.name) == ["dashboard", "billing"])
        #expect(tokens[1].digest == Array(repeating: 0xab, count: 32))
        let access = try await AccessControl(tokens: tokens)
        guard case .success(let grant) = await access.authenticate("0123456789abcdef-dashboard") else {
            Issue.record("the dashboard token was refused")
            return
        }
        #expect(grant.subject == "dashboard" && grant.read == .all && grant.write == .none)
        guard case .failure = await access.authenticate("0123456789abcdef-dashboarD") else {
            Issue.record("a different token was accepted")
            return
        }
    }

    @Test func badFilesAreRefusedWithTheReason() {
        func message(_ text: String) -> String {
            do {
                _ = try AccessControl.StaticToken.parse(Data(text.utf8), source: "tokens.json")
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(message("[1,2]").contains("is not a token file"))
        #expect(message(#"{"tokens": [{"name": "a", "token": "short", "scopes": []}]}"#).contains("shorter than 16 bytes"))
        #expect(message(#"{"tokens": [{"name": "a", "sha256": "abc", "scopes": []}]}"#).contains("64 hex digits"))
        #expect(message(#"{"tokens": [{"name": "a", "scopes": []}]}"#).contains("either a token or a sha256"))
        #expect(
            message(#"{"tokens": [{"name": "a", "token": "0123456789abcdefg", "scopes": []}, {"name": "a", "token": "0123456789abcdefh", "scopes": []}]}"#)
                .contains("appears twice")
        )
        #expect(throws: AccessControlError.self) { try AccessControl.StaticToken.load(file: "/nonexistent/tokens.json") }
    }
}

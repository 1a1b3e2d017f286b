import ArgumentParser
import FluxConsumer
import Foundation
import NIOCore

/// `fluxgate health [URL]`: asks a gateway's `/health`; exit status 0 when it answers `"status": "ok"`.
/// For container health checks and scripts that wait for a gateway (no curl needed in the image).
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Ask a gateway whether it serves: prints its /health answer, exit status 0 when it is ok.",
        discussion: """
            Exit status 1 when the gateway cannot be reached or does not answer ok (the reason is printed on stderr).

            Examples:
              fluxgate health                       # http://127.0.0.1:8080
              fluxgate health https://feed.example.com --ca-file ca.pem
            """
    )

    @Argument(help: "The gateway's URL (http:// or https://).")
    var url = "http://127.0.0.1:8080"

    @Option(help: "With https://: trust only the CA certificates in this PEM file instead of the system trust store.")
    var caFile: String?

    func validate() throws {
        guard let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https",
            parsed.host?.isEmpty == false
        else {
            throw ValidationError("URL must look like http://127.0.0.1:8080, got \(url)")
        }
    }

    func run() async throws {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        let secure = base.lowercased().hasPrefix("https://")
        let client = FeedHTTPClient(tls: secure ? try ClientTLS(caFile: caFile) : nil, attempts: 1)
        let body: ByteBuffer
        do {
            body = try await client.get(base + "/health")
        } catch {
            await client.close()
            FileHandle.standardError.write(Data("fluxgate health: no answer from \(base)/health: \(RetryReporter.cause(of: error))\n".utf8))
            throw ExitCode(1)
        }
        await client.close()
        let text = String(buffer: body)
        print(text)
        let status = (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["status"] as? String
        guard status == "ok" else {
            FileHandle.standardError.write(Data("fluxgate health: \(base)/health did not answer \"status\": \"ok\"\n".utf8))
            throw ExitCode(1)
        }
    }
}

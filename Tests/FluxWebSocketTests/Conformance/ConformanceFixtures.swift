import FluxTesting
import Foundation
import NIOCore
import Testing

/// The `fluxgate` child process the server-role cases of a suite talk to, as a suite trait
/// (`@Suite(.conformanceEchoServer)`, `@Suite(.conformanceGateway)`): started once for the suite, on a free port, and
/// stopped when the suite ends, whether its cases passed, failed or threw.
struct ConformanceServer: SuiteTrait, TestScoping {
    private struct Running: Sendable {
        let process: ChildProcess
        let port: Int
    }

    /// The `fluxgate` arguments.
    let arguments: [String]

    @TaskLocal private static var running: Running?

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        try await withFluxgate(arguments) { server in
            let line = try await server.waitForLine(containing: "listening", timeout: .seconds(60))
            guard let match = line.firstMatch(of: /127\.0\.0\.1:(\d+)/), let port = Int(match.1) else {
                throw ConformanceProblem(description: "no port in \"\(line)\"")
            }
            try await Self.$running.withValue(Running(process: server, port: port), operation: function)
        }
    }

    private static func current() throws -> Running {
        guard let running else {
            throw ConformanceProblem(description: "no server: the suite needs the .conformanceEchoServer or .conformanceGateway trait")
        }
        return running
    }

    /// The server's port.
    static func port() async throws -> Int {
        try current().port
    }

    /// Whether the server process is still alive (a crash fails every later case, this says why).
    static func isRunning() async throws -> Bool {
        try current().process.isRunning
    }
}

extension Trait where Self == ConformanceServer {
    /// Runs the suite's cases against one `fluxgate echo-server` with Autobahn's 16 MiB message limit.
    static var conformanceEchoServer: Self { ConformanceServer(arguments: ["echo-server", "--port", "0", "--max-message-size", "16777216"]) }
    /// Runs the suite's cases against one `fluxgate serve` on the in-memory store: its push channel, with no
    /// keep-alive ping during a case (a case chopped into 1-byte writes with pauses may take longer than 30 s on a
    /// loaded machine, and a ping is no part of its expectation).
    static var conformanceGateway: Self {
        ConformanceServer(arguments: ["serve", "--port", "0", "--store", "memory", "--log-level", "info", "--ping-interval", "86400"])
    }
}

/// Bounds how many cases run at once, so parameterized tests on a 2-core machine neither start hundreds of
/// child processes nor starve one another into timeouts.
actor ConformanceSlots {
    static let serverRole = ConformanceSlots(8)
    static let clientRole = ConformanceSlots(4)
    /// Section 9 cases hold up to 16 MiB several times over each.
    static let largeMessages = ConformanceSlots(3)

    private var available: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(_ count: Int) { available = count }

    func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    /// Runs `body` holding one slot, given back however `body` ends.
    static func with<Result: Sendable>(_ slots: ConformanceSlots, _ body: () async throws -> Result) async throws -> Result {
        await slots.acquire()
        do {
            let result = try await body()
            await slots.release()
            return result
        } catch {
            await slots.release()
            throw error
        }
    }

    func release() {
        if waiting.isEmpty {
            available += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

/// Checks a transcript against a case's expectation, as Autobahn grades it.
enum ConformanceVerdict {
    static func check(_ transcript: ConformanceTranscript, against testCase: AutobahnCase, sourceLocation: SourceLocation = #_sourceLocation) {
        let violations = (transcript.beforeClose + transcript.afterClose).filter {
            if case .violation = $0 { return true }
            return false
        }
        #expect(violations.isEmpty, "protocol violations by the testee", sourceLocation: sourceLocation)
        if let expected = testCase.expected?() {
            #expect(transcript.beforeClose == expected, "messages and control frames before the Close", sourceLocation: sourceLocation)
        }
        #expect(transcript.afterClose.isEmpty, "nothing may follow the testee's Close (RFC 6455 §5.5.1)", sourceLocation: sourceLocation)
        switch testCase.outcome {
        case .peerClosesNormally:
            #expect(transcript.closeCode == .some(1000), "the testee echoes Close 1000", sourceLocation: sourceLocation)
            #expect(transcript.end == .closed, "the connection ends cleanly", sourceLocation: sourceLocation)
        case .testeeEchoesClose(let codes):
            #expect(transcript.closeCode.map { codes.contains($0) } == true, "the testee echoes the Close: one of \(codes)", sourceLocation: sourceLocation)
            #expect(transcript.end == .closed, "the connection ends cleanly", sourceLocation: sourceLocation)
        case .testeeFails(let code):
            #expect(transcript.closeCode == .some(code), "the testee fails the connection with \(code)", sourceLocation: sourceLocation)
            #expect(transcript.end != .timedOut && transcript.end != nil, "the testee closes TCP", sourceLocation: sourceLocation)
        }
    }
}

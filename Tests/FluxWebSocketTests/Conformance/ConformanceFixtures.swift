import FluxTesting
import Foundation
import NIOCore
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A `fluxgate` child process the server-role cases talk to: started once, on a free port, and killed when the test
/// process exits.
final class ConformanceServer: Sendable {
    /// `fluxgate echo-server` with Autobahn's 16 MiB message limit.
    static let echo = ConformanceServer(["echo-server", "--port", "0", "--max-message-size", "16777216"])
    /// `fluxgate serve` on the in-memory store: its push channel.
    static let gateway = ConformanceServer(["serve", "--port", "0", "--store", "memory", "--log-level", "info"])

    private let started: Task<(ChildProcess, Int), any Error>

    private init(_ arguments: [String]) {
        started = Task {
            let server = try ChildProcess(try ChildProcess.fluxgateExecutable(), arguments)
            conformanceServers.withLock { $0.append(server.processIdentifier) }
            atexit { conformanceServers.withLock { for process in $0 { kill(process, SIGKILL) } } }
            let line = try await server.waitForLine(containing: "listening", timeout: .seconds(60))
            guard let match = line.firstMatch(of: /127\.0\.0\.1:(\d+)/), let port = Int(match.1) else {
                throw ConformanceProblem(description: "no port in \"\(line)\"")
            }
            return (server, port)
        }
    }

    /// The server's port.
    func port() async throws -> Int {
        try await started.value.1
    }

    /// Whether the server process is still alive (a crash fails every later case, this says why).
    func isRunning() async throws -> Bool {
        kill(try await started.value.0.processIdentifier, 0) == 0
    }
}

/// The servers' process ids, for the `atexit` handler.
private let conformanceServers = Mutex<[Int32]>([])

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

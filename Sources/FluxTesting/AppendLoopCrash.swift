import FluxCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The crash test of the store conformance story: `fluxgate append-loop` processes append in a loop and print
/// `ack POSITION EVENT_ID` for each acknowledged append; they are killed with SIGKILL mid-write, and the store,
/// reopened, must hold every acknowledged append at its position, with positions still dense.
public enum AppendLoopCrash {
    /// An append a killed process had acknowledged.
    public struct Ack: Sendable, Hashable {
        public var position: Int64
        public var eventID: String
    }

    /// A crash round that could not run (a process ended by itself, or acknowledged too little in time).
    public struct RoundFailure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `processes` children `fluxgate append-loop ARGUMENTS`, waits until together they acknowledged `acks`
    /// appends (within `timeout`), kills them all with SIGKILL and returns every append they acknowledged.
    public static func runAndKill(_ arguments: [String], processes: Int = 1, acks: Int, timeout: Duration = .seconds(120)) async throws -> [Ack] {
        let executable = try ChildProcess.fluxgateExecutable()
        let children = try (0..<processes).map { _ in try ChildProcess(executable, ["append-loop"] + arguments) }
        return try await withTeardown({ for child in children { await child.stop(grace: .zero) } }) {
            let deadline = ContinuousClock.now + timeout
            while children.map({ parse($0.outputLines).count }).reduce(0, +) < acks {
                for child in children {
                    if let status = await child.waitForExit(timeout: .zero) {
                        throw RoundFailure(description: "append-loop exited by itself with \(status); stderr: \(child.errorOutput.suffix(2000))")
                    }
                }
                guard ContinuousClock.now < deadline else {
                    throw RoundFailure(description: "fewer than \(acks) acks within \(timeout); stderr: \(children.map { $0.errorOutput.suffix(1000) })")
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            children.forEach { $0.signal(SIGKILL) }
            // Reaped, and the pipes read to their end: every complete line is in.
            for child in children where await child.waitForExit(timeout: .seconds(30)) == nil {
                throw RoundFailure(description: "a killed append-loop (pid \(child.processIdentifier)) did not exit")
            }
            // A moment for what the killed processes had sent to land: a PostgreSQL server still commits a
            // transaction whose COMMIT arrived before its client died, after the client is gone.
            try await Task.sleep(for: .milliseconds(100))
            return children.flatMap { parse($0.outputLines) }
        }
    }

    /// Reads the whole store and returns what is wrong (empty when nothing is): positions must be 1…head each once,
    /// every acknowledged append stored at its position with its event id, and no position acknowledged twice.
    public static func problems(in store: any EventStore, acknowledged: [Ack]) async throws -> [String] {
        var problems: [String] = []
        let head = try await store.head()
        var stored: [Int64: String] = [:]
        var cursor = Position.start
        var expected: Int64 = 1
        while true {
            let page = try await store.read(after: cursor, limit: 1000)
            guard let last = page.last else { break }
            for event in page {
                if event.position.rawValue != expected, problems.count < 10 {
                    problems.append("positions must be dense: expected \(expected), read \(event.position)")
                }
                expected = event.position.rawValue + 1
                stored[event.position.rawValue] = event.eventID
            }
            cursor = last.position
        }
        if Int64(stored.count) != head.rawValue {
            problems.append("positions 1...\(head) must each be stored once, read \(stored.count)")
        }
        let lost = acknowledged.filter { stored[$0.position] != $0.eventID }
        if !lost.isEmpty {
            problems.append("\(lost.count) of \(acknowledged.count) acknowledged appends are missing or moved, e.g. \(lost.prefix(3))")
        }
        if Set(acknowledged.map(\.position)).count != acknowledged.count {
            problems.append("a position was acknowledged twice")
        }
        return problems
    }

    /// The acks in an append-loop's output lines.
    static func parse(_ lines: [String]) -> [Ack] {
        lines.compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[0] == "ack", let position = Int64(parts[1]) else { return nil }
            return Ack(position: position, eventID: String(parts[2]))
        }
    }
}

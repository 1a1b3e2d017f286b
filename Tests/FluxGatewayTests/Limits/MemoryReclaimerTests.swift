@testable import FluxGateway
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// The reclaimer really reaches glibc's allocator: memory freed by a burst goes back to the system.
@Suite struct MemoryReclaimerTests {
    static func residentKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/status")))
    func trimReturnsFreedHeapMemory() async throws {
        // Many small blocks (below any mmap threshold) on one thread's arena, touched, then all freed but the last,
        // which pins the top of the heap: the allocator keeps the freed middle resident until it is trimmed.
        let pinned: Int = await Task.detached {
            var blocks: [UnsafeMutableRawPointer] = []
            for _ in 0..<200_000 {
                let block = UnsafeMutableRawPointer.allocate(byteCount: 1000, alignment: 16)
                block.initializeMemory(as: UInt8.self, repeating: 0x5A, count: 1000)
                blocks.append(block)
            }
            for block in blocks.dropLast() { block.deallocate() }
            return Int(bitPattern: blocks.last!)
        }.value
        let before = Self.residentKiB()
        MemoryReclaimer.trim()
        let after = Self.residentKiB()
        UnsafeMutableRawPointer(bitPattern: pinned)?.deallocate()
        let freedBytes = 199_999 * 1000
        #expect(freedBytes > 0)
        #expect(before - after > 50_000, "trim gave back \(before - after) KiB of about \(freedBytes / 1024) KiB freed (before \(before), after \(after))")
    }

    /// A graceful shutdown wakes the reclaimer from its sleep: the service group stops it before the gateway, so a
    /// sleeping reclaimer used to keep the gateway serving for up to an interval after SIGTERM.
    @Test func aGracefulShutdownEndsItsSleep() async throws {
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [.init(service: MemoryReclaimer(interval: .seconds(600)))], logger: Logger(label: "test"))
        )
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                try await Task.sleep(for: .seconds(120))
                throw CancellationError()  // still asleep after two minutes: the shutdown did not wake it
            }
            try await Task.sleep(for: .milliseconds(100))
            await group.triggerGracefulShutdown()
            try await tasks.next()
            tasks.cancelAll()
        }
    }
}

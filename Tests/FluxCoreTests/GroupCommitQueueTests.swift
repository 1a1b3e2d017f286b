import Dispatch
import FluxCore
import Foundation
import Synchronization
import Testing

/// The queue shared by the SQLite and PostgreSQL writers, on its own: batches, writer loops, gathering, closing.
@Suite struct GroupCommitQueueTests {
    @Test func oneCallerStartsTheWriterAndTheLoopTakesEverythingInArrivalOrder() {
        let queue = GroupCommitQueue<Int>(maximumBatch: 4, maximumWriters: 1)
        #expect(queue.enqueue([1]) == .startWriter)
        #expect(queue.enqueue([2, 3]) == .queued, "a loop runs: it takes them")
        #expect(queue.enqueue([4, 5, 6]) == .queued)
        #expect(queue.nextBatch() == [1, 2, 3, 4], "at most maximumBatch, oldest first")
        #expect(queue.enqueue([7]) == .queued)
        #expect(queue.nextBatch() == [5, 6, 7])
        #expect(queue.writers == 1)
        #expect(queue.nextBatch() == nil, "nothing queued: the loop is counted out")
        #expect(queue.writers == 0)
        #expect(queue.enqueue([8]) == .startWriter, "the next append starts a loop again")
        #expect(queue.nextBatch() == [8])
        #expect(queue.nextBatch() == nil)
    }

    @Test func itemsQueuedTogetherStayTogetherAndInOrder() {
        let queue = GroupCommitQueue<String>(maximumBatch: 8, maximumWriters: 1)
        _ = queue.enqueue(["a"])
        _ = queue.enqueue(["b1", "b2", "b3"])
        _ = queue.enqueue(["c"])
        #expect(queue.nextBatch() == ["a", "b1", "b2", "b3", "c"])
    }

    @Test func atMostMaximumWritersLoopsRun() {
        let queue = GroupCommitQueue<Int>(maximumBatch: 2, maximumWriters: 2)
        #expect(queue.enqueue([1]) == .startWriter)
        #expect(queue.enqueue([2]) == .startWriter)
        #expect(queue.enqueue([3]) == .queued)
        #expect(queue.writers == 2)
        #expect(queue.nextBatch() == [1, 2])
        #expect(queue.nextBatch() == [3])
        #expect(queue.nextBatch() == nil)
        #expect(queue.writers == 1)
        #expect(queue.enqueue([4]) == .startWriter, "one loop ended: room for another")
    }

    @Test func closingRefusesNewItemsAndWaitsForTheLoopsToAnswerTheQueuedOnes() async {
        let queue = GroupCommitQueue<Int>(maximumBatch: 10, maximumWriters: 1)
        #expect(queue.enqueue([1, 2]) == .startWriter)
        let closed = Flag()
        let closing = Task {
            await queue.close()
            closed.set()
        }
        while !queue.isClosed { await Task.yield() }
        #expect(queue.enqueue([99]) == .refused)
        #expect(!closed.isSet, "a loop still runs")
        #expect(queue.nextBatch() == [1, 2], "what was queued before close() is still taken")
        #expect(!closed.isSet, "the batch is not answered yet")
        #expect(queue.nextBatch() == nil)
        await closing.value
        #expect(closed.isSet)
        #expect(queue.enqueue([3]) == .refused)
    }

    @Test func closingAnIdleQueueReturnsAtOnce() async {
        let queue = GroupCommitQueue<Int>(maximumBatch: 10, maximumWriters: 1)
        await queue.close()
        #expect(queue.enqueue([1]) == .refused)
    }

    @Test func gatherEndsWhenTheTargetIsReachedLongBeforeItsWindow() async {
        let queue = GroupCommitQueue<Int>(maximumBatch: 10, maximumWriters: 1)
        _ = queue.enqueue([1])
        _ = queue.nextBatch()
        let started = ContinuousClock.now
        async let gathered: Void = queue.gather(until: 3, within: .seconds(60))
        for item in 2...4 {
            try? await Task.sleep(for: .milliseconds(5))
            _ = queue.enqueue([item])
        }
        await gathered
        #expect(ContinuousClock.now - started < .seconds(30), "woken by the third item, not by the window")
        #expect(queue.queued >= 3)
        #expect(queue.expiredGatherWindows == 0)
    }

    @Test func gatherEndsWithItsWindowWhenTheTargetIsNotReached() async {
        let queue = GroupCommitQueue<Int>(maximumBatch: 10, maximumWriters: 1)
        _ = queue.enqueue([1])
        _ = queue.nextBatch()
        _ = queue.enqueue([2])
        await queue.gather(until: 5, within: .milliseconds(20))
        #expect(queue.queued == 1)
        #expect(queue.expiredGatherWindows == 1)
    }

    @Test func gatherDoesNotWaitForWhatIsQueuedOrForAClosedQueueOrBeyondABatch() async {
        let queue = GroupCommitQueue<Int>(maximumBatch: 2, maximumWriters: 1)
        _ = queue.enqueue([1, 2])
        // A target above maximumBatch counts as maximumBatch: two queued items already make a whole batch.
        await queue.gather(until: 50, within: .seconds(60))
        await queue.gather(until: 0, within: .seconds(60))
        #expect(queue.nextBatch() == [1, 2])
        let closing = Task { await queue.close() }
        while !queue.isClosed { await Task.yield() }
        await queue.gather(until: 2, within: .seconds(60))
        #expect(queue.expiredGatherWindows == 0)
        #expect(queue.nextBatch() == nil)
        await closing.value
    }

    @Test func aLoopOnAThreadGathersToo() async {
        let queue = GroupCommitQueue<Int>(maximumBatch: 10, maximumWriters: 1)
        _ = queue.enqueue([1])
        _ = queue.nextBatch()
        let woken = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            DispatchQueue(label: "writer").async {
                let started = ContinuousClock.now
                queue.gatherBlocking(until: 2, within: .seconds(60))
                continuation.resume(returning: ContinuousClock.now - started < .seconds(30))
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(20)) {
                _ = queue.enqueue([2])
                _ = queue.enqueue([3])
            }
        }
        #expect(woken, "woken by the second item, not by the window")
        let expired = await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            DispatchQueue(label: "writer").async {
                queue.gatherBlocking(until: 10, within: .milliseconds(20))
                continuation.resume(returning: queue.expiredGatherWindows)
            }
        }
        #expect(expired == 1, "the window ended it")
        _ = queue.enqueue([4])
        #expect(queue.nextBatch()?.count == 3)
        #expect(queue.nextBatch() == nil)
    }
}

/// A flag set by one task and read by another.
private final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
}

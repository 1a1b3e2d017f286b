import FluxCore
import Testing

/// `ConsumerGroupPartitions`: the partition of an aggregate is the same in every process, and the live nodes deal the
/// partitions out so that each is held by exactly one of them.
@Suite struct ConsumerGroupCoordinationTests {
    @Test func anAggregatesPartitionIsFNV1aOfItsIDAndSpreads() {
        // FNV-1a 64 of "" is its offset basis, 0xcbf29ce484222325; of "a", 0xaf63dc4c8601ec8c.
        #expect(ConsumerGroupPartitions.partition(of: "") == Int(0xcbf2_9ce4_8422_2325 % UInt64(16)))
        #expect(ConsumerGroupPartitions.partition(of: "a") == Int(0xaf63_dc4c_8601_ec8c % UInt64(16)))
        var counts = [Int](repeating: 0, count: ConsumerGroupPartitions.count)
        for index in 0..<16_000 { counts[ConsumerGroupPartitions.partition(of: "agg-\(index)")] += 1 }
        #expect(counts.allSatisfy { (800...1200).contains($0) }, "\(counts)")
    }

    @Test func liveNodesShareEveryPartitionOnceWhateverTheirNumber() {
        for count in 1...20 {
            let nodes = (0..<count).map { "node-\($0 * 7919 % 101)" }
            let shares = nodes.map { ConsumerGroupPartitions.share(of: $0, among: nodes.reversed()) }
            #expect(shares.reduce(0) { $0 + $1.count } == ConsumerGroupPartitions.count)
            #expect(shares.reduce(into: Set<Int>()) { $0.formUnion($1) } == Set(0..<ConsumerGroupPartitions.count))
            // As evenly as they can (beyond 16 nodes, some hold none).
            #expect(shares.map(\.count).max()! - shares.map(\.count).min()! <= 1)
        }
        #expect(ConsumerGroupPartitions.share(of: "gone", among: ["a", "b"]).isEmpty)
    }
}

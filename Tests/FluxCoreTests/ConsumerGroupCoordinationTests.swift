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

    @Test func aGroupServedByOneNodeGoesWhollyToAHolderElseToTheFirstLiveNode() {
        let all = Set(0..<ConsumerGroupPartitions.count)
        func share(_ node: String, _ live: [String], _ holders: [String]) -> Set<Int> {
            ConsumerGroupPartitions.share(of: node, among: live, holding: holders, sharing: .oneNode)
        }
        // Nobody holds any: the first live node in byte order ("B" < "a") takes them all.
        #expect(share("B", ["a", "B", "c"], []) == all)
        #expect(share("a", ["a", "B", "c"], []).isEmpty && share("c", ["a", "B", "c"], []).isEmpty)
        // A holder keeps them, even when a node that comes first joins.
        #expect(share("c", ["a", "B", "c"], ["c"]) == all && share("B", ["a", "B", "c"], ["c"]).isEmpty)
        // Two holders (a start race): the first in byte order gets them all, the other gives its part up.
        #expect(share("a", ["a", "c"], ["c", "a"]) == all && share("c", ["a", "c"], ["c", "a"]).isEmpty)
        // A holder that is leaving (no longer live) keeps them until it releases them; nobody else takes them meanwhile.
        #expect(ConsumerGroupPartitions.soleHolder(among: ["a"], holding: ["z"]) == "z")
        #expect(share("a", ["a"], ["z"]).isEmpty && share("z", ["a"], ["z"]).isEmpty)
        // No node live, none holding.
        #expect(ConsumerGroupPartitions.soleHolder(among: [String](), holding: [String]()) == nil)
        // Partitioned sharing is the dealt share, whatever the holders.
        #expect(ConsumerGroupPartitions.share(of: "a", among: ["a", "b"], holding: ["b"], sharing: .partitioned)
            == ConsumerGroupPartitions.share(of: "a", among: ["a", "b"]))
    }
}

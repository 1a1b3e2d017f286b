/// How several gateway nodes share one consumer group (README design notes, "Consumer groups on several nodes").
///
/// A group's aggregates fall into ``count`` partitions by a hash of the aggregate id that every node computes alike.
/// A node that has members of the group holds a share of the partitions, leased in the shared database; it hands
/// out only the events of the partitions it holds, so an aggregate is served by one node at a time and the group's
/// rules (order per aggregate, one member at a time) hold inside that node. Each partition keeps its own progress
/// (checkpoint and acknowledged positions), so a partition that moves to another node resumes exactly there.
public enum ConsumerGroupPartitions {
    /// Partitions per group: the most nodes that can share one group's work.
    public static let count = 16

    /// The partition of an aggregate: FNV-1a (64 bits) of its id's UTF-8 bytes, modulo ``count`` (stable across
    /// processes and versions, unlike Swift's seeded `Hasher`).
    public static func partition(of aggregateID: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in aggregateID.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return Int(hash % UInt64(count))
    }

    /// The partitions `node` should hold while `live` nodes (it among them) have members of the group: the live
    /// nodes in byte order of their names deal the partitions out in turn, so every node computes the same share
    /// for each. None for a node that is not live.
    public static func share(of node: String, among live: some Collection<String>) -> Set<Int> {
        let ordered = Set(live).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        guard let index = ordered.firstIndex(of: node) else { return [] }
        return Set(stride(from: index, to: count, by: ordered.count))
    }

    /// The node that should hold every partition of a group served by one node at a time (``ConsumerGroupSharing/oneNode``):
    /// a node that holds some already (the first in byte order when several do, as after two nodes started at once),
    /// else the first live node in byte order; none when no node is live and none holds any. A holder that is no longer
    /// live (it stops, and gives them up once their events are settled) stays the one until it has released them.
    public static func soleHolder(among live: some Collection<String>, holding holders: some Collection<String>) -> String? {
        let precedes: (String, String) -> Bool = { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return holders.min(by: precedes) ?? live.min(by: precedes)
    }

    /// The partitions `node` should hold of a group shared as `sharing` says, while `live` nodes have members of it and
    /// `holders` hold some of its partitions (leases not lapsed).
    public static func share(
        of node: String, among live: some Collection<String>, holding holders: some Collection<String>, sharing: ConsumerGroupSharing
    ) -> Set<Int> {
        switch sharing {
        case .partitioned:
            return share(of: node, among: live)
        case .oneNode:
            guard live.contains(node), soleHolder(among: live, holding: holders) == node else { return [] }
            return Set(0..<count)
        }
    }
}

/// How the nodes that have members of a group share its work.
public enum ConsumerGroupSharing: Hashable, Sendable {
    /// The live nodes deal the group's partitions out among themselves (``ConsumerGroupPartitions/share(of:among:)``).
    case partitioned
    /// One node at a time holds every partition (a webhook sink: its receiver sees one sender); when that node stops
    /// or its lease lapses, another takes them all, from their stored progress.
    case oneNode
}

/// A partition's progress as the shared database keeps it.
public struct ConsumerGroupPartitionProgress: Hashable, Sendable {
    /// Every matching event of the partition up to here was acknowledged or parked.
    public var checkpoint: Position
    /// Events after the checkpoint acknowledged already (they may include other partitions' events, which were
    /// acknowledged too: a node saves one set for all the partitions it holds).
    public var acknowledged: [ClosedRange<Position>]

    public init(checkpoint: Position, acknowledged: [ClosedRange<Position>] = []) {
        self.checkpoint = checkpoint
        self.acknowledged = acknowledged
    }
}

/// What a node holds of a group after ``ConsumerGroupCoordinator/coordinateConsumerGroup(_:node:serving:sharing:lease:)``.
public struct ConsumerGroupAssignment: Hashable, Sendable {
    /// Counts the group's changes, resets and re-creations: a node that sees it change stops its runtime (its state
    /// is no longer the group's) and starts again.
    public var generation: Int64
    /// The partitions this node holds now (their leases just renewed or taken), with their stored progress.
    public var held: [Int: ConsumerGroupPartitionProgress]
    /// The partitions this node should hold: its share among the live nodes. It releases the ones it holds beyond
    /// it (once their events are settled) and takes the rest when their holder releases them or its lease lapses.
    public var share: Set<Int>
    /// Nodes with members of the group, this one included when it has some.
    public var liveNodes: Int

    public init(generation: Int64, held: [Int: ConsumerGroupPartitionProgress], share: Set<Int>, liveNodes: Int) {
        self.generation = generation
        self.held = held
        self.share = share
        self.liveNodes = liveNodes
    }
}

/// A store whose consumer groups several gateway nodes share (PostgreSQL): partitions leased to nodes, and progress
/// kept per partition. A store without it serves each group from one node.
///
/// Errors: `StoreError.notFound` for a group that does not exist; `StoreError.storeUnavailable` when the database
/// cannot be used.
public protocol ConsumerGroupCoordinator: Sendable {
    /// A node's heartbeat for a group: it says whether it has members (`serving`), renews the leases of the partitions
    /// it holds for `lease` (on the database's clock), takes the free or lapsed ones of its share (as `sharing` deals
    /// them), and learns the rest. Every node of a group must pass the same `sharing`.
    func coordinateConsumerGroup(
        _ name: String, node: String, serving: Bool, sharing: ConsumerGroupSharing, lease: Duration
    ) async throws -> ConsumerGroupAssignment
    /// Saves the progress of `partitions` (each keeps the higher of its checkpoint and `checkpoint`), only while `node`
    /// holds every one of them and the group's generation is still `generation`; whether it did (when not, the node
    /// lost them and must stop handing out their events).
    func saveConsumerGroupPartitions(
        _ partitions: Set<Int>, checkpoint: Position, acknowledged: [ClosedRange<Position>], group name: String, node: String, generation: Int64
    ) async throws -> Bool
    /// Gives up `partitions` that `node` holds (their events are settled and their progress saved): another node may
    /// take them at once.
    func releaseConsumerGroupPartitions(_ partitions: Set<Int>, group name: String, node: String) async throws
}

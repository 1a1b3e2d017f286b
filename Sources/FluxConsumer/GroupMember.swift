import FluxCore
import FluxWire
import Foundation

/// A member of a consumer group kept by the gateway (README "Consumer groups"), over WebSocket: the group's events
/// leased to this member, in order per aggregate, at most `credit` unsettled at once. Settle each event with
/// ``LeasedEvent/ack()`` or ``LeasedEvent/nack(reason:)``; what is not settled when the member goes is handed to
/// the group's other members.
///
/// ```swift
/// let member = try await GroupMember.connect(host: "127.0.0.1", port: 8080, group: "billing", member: "worker-1")
/// for try await leased in member {
///     try await handle(leased.event)
///     try await leased.ack()
/// }
/// ```
///
/// Use from one task at a time. The gateway closes members with 1012 when the group is reset, changed or deleted
/// (``closeCode``): reconnect then.
public final class GroupMember: AsyncSequence {
    public typealias Element = LeasedEvent

    /// An event leased to this member.
    public struct LeasedEvent {
        public let event: RecordedEvent
        /// 1 the first time the group hands the event out, then 2, 3, … after failed attempts.
        public let attempt: Int
        fileprivate let member: GroupMember

        /// The event was handled: the group is done with it.
        public func ack() async throws { try await member.acknowledge([event.position]) }

        /// The event could not be handled: the group hands it out again after a backoff, and parks it after its
        /// attempts. The aggregate's later events leased to this member go back with it: the member skips them (they
        /// come again after this one).
        public func nack(reason: String) async throws { try await member.reject(event.position, aggregateID: event.aggregateID, reason: reason) }
    }

    /// The member's name in the group.
    public let name: String
    private let connection: PushChannelConnection
    private var buffered: [LeasedEvent] = []
    private var next = 0
    /// Aggregates with a rejected event in the current batch: their later events of the batch went back with it.
    private var rejectedAggregates: Set<String> = []
    /// Settlements the gateway refused (``GroupMessage/error(code:message:)``), oldest first, at most 100.
    public private(set) var refusals: [String] = []

    private init(name: String, connection: PushChannelConnection) {
        self.name = name
        self.connection = connection
    }

    /// Joins group `group` as member `member` (made up when `nil`) with `credit` (1–1000).
    ///
    /// Throws `PushChannelError` with `refusedStatus` 404 for an unknown group, 400 for a bad member name or credit,
    /// 401/403 without the `groups` scope.
    public static func connect(
        host: String, port: Int, group: String, member: String? = nil, credit: Int = 100, tls: ClientTLS? = nil,
        headers: [(String, String)] = []
    ) async throws -> GroupMember {
        let name = member ?? "member-\(UInt64.random(in: 0...UInt64.max))"
        let query = "member=\(URLEncoding.encodeQueryValue(name))&credit=\(credit)"
        let connection = try await PushChannelConnection.connect(
            host: host, port: port, target: "/groups/\(URLEncoding.encodePathSegment(group))/subscribe?\(query)", deflate: false, tls: tls,
            headers: headers)
        return GroupMember(name: name, connection: connection)
    }

    /// The next leased event; `nil` once the connection closed (see ``closeCode``).
    public func nextEvent() async throws -> LeasedEvent? {
        while next < buffered.count, rejectedAggregates.contains(buffered[next].event.aggregateID) { next += 1 }
        while next >= buffered.count {
            buffered.removeAll(keepingCapacity: true)
            rejectedAggregates.removeAll()
            next = 0
            guard let text = try await connection.nextText() else { return nil }
            switch GroupMessage(json: Array(text.readableBytesView)) {
            case .events(let leases):
                buffered = leases.map { LeasedEvent(event: $0.event, attempt: $0.attempt, member: self) }
            case .error(_, let message):
                if refusals.count == 100 { refusals.removeFirst() }
                refusals.append(message)
            case nil:
                continue
            }
        }
        defer { next += 1 }
        return buffered[next]
    }

    /// The rest of the current batch of leased events, or the next batch (as the gateway sent it); `nil` once the
    /// connection closed. For members that settle a batch at once (``acknowledge(_:)``).
    public func nextBatch() async throws -> [LeasedEvent]? {
        guard let first = try await nextEvent() else { return nil }
        var batch = [first]
        while next < buffered.count {
            if !rejectedAggregates.contains(buffered[next].event.aggregateID) { batch.append(buffered[next]) }
            next += 1
        }
        return batch
    }

    /// Acknowledges events (all or nothing at the gateway; a refusal arrives as a ``refusals`` entry).
    public func acknowledge(_ positions: [Position]) async throws {
        for start in stride(from: 0, to: positions.count, by: GroupSettlement.maximumPositions) {
            let slice = positions[start..<Swift.min(positions.count, start + GroupSettlement.maximumPositions)]
            try await connection.send(text: GroupSettlement.ack(Array(slice)).json)
        }
    }

    /// Rejects an event (see ``LeasedEvent/nack(reason:)``); the aggregate's later events of the current batch are
    /// skipped.
    public func reject(_ position: Position, aggregateID: String, reason: String) async throws {
        rejectedAggregates.insert(aggregateID)
        try await connection.send(text: GroupSettlement.nack(position, reason: reason).json)
    }

    /// The close code the gateway sent, once the connection ended.
    public var closeCode: UInt16? {
        get async { await connection.close?.code }
    }

    /// Leaves the group: what this member holds unsettled goes to the others.
    public func close() async {
        await connection.close()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let member: GroupMember
        public mutating func next() async throws -> LeasedEvent? { try await member.nextEvent() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(member: self) }
}

@available(*, unavailable)
extension GroupMember: Sendable {}

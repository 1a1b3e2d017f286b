import FluxCore
import FluxWire
import Foundation
import NIOCore

/// Copies the history of a running service of the original Go flux framework into a Fluxgate store, by reading
/// its feed the way its consumer did: `GET <base>/events?offset=N` for a page of entries, then `GET <entry.url>`
/// for each entry's bare payload.
///
/// Idempotent by event id: an entry whose `event_id` is already stored is checked (same event type, aggregate name,
/// aggregate id and payload bytes, else the import fails) and not stored again, so an import can be re-run, or
/// resumed after a crash, from any earlier offset. Versions are numbered per aggregate in feed order; each run of
/// consecutive new events of one aggregate is one append with `.exact(last stored version)`, so a concurrent
/// writer on the same stream is a conflict, never an interleaving.
struct FluxFeedImporter {
    struct Options {
        var baseURL: String
        var aggregateIDField: String
        var aggregateNameMap: [String: String] = [:]
        var stripPointerNames = false
        var fromOffset: Int64 = 0
        /// Sent as `limit=` when set (a Fluxgate gateway honours it; the original ignores it and pages 20).
        var pageSize: Int?
        var skipMissingID = false
        /// The most events in one append.
        var maximumBatch = 500
    }

    /// What an import did.
    struct Summary: Equatable {
        /// Entries read from the feed.
        var read = 0
        /// Events stored by this run.
        var stored = 0
        /// Events found already stored (same content).
        var alreadyThere = 0
        /// Events skipped for want of an aggregate id (`--skip-missing-id`).
        var skippedWithoutID = 0
        /// The offset after the last entry read.
        var nextOffset: Int64 = 0
    }

    /// Why an import stopped; the description says where and what to do.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// An import that stopped: why, and what it did before.
    struct Stopped: Error, CustomStringConvertible {
        var reason: any Error
        var summary: Summary
        var description: String { "\(reason)" }
    }

    /// One entry of a page, as the original's `feed.EventEntry`.
    struct Entry {
        var eventID: String
        var url: String
        var aggregateName: String
        var eventType: String
    }

    let options: Options
    let store: any EventStore
    let client: FeedHTTPClient
    let progress: (Summary) -> Void

    /// The event waiting to be appended with the ones before it of the same aggregate.
    private struct Pending {
        var aggregateID: String
        var aggregateName: String
        var events: [NewEvent]
        var offsets: [Int64]
    }

    /// Runs the import to the feed's end; on failure, what was read before the failing entry is stored first, then
    /// `Stopped` says why and what was done.
    func run() async throws -> Summary {
        var summary = Summary(nextOffset: options.fromOffset)
        var versions: [String: Int64] = [:]
        var pending: Pending?
        let base = options.baseURL.hasSuffix("/") ? String(options.baseURL.dropLast()) : options.baseURL

        func flush() async throws {
            guard let batch = pending else { return }
            pending = nil
            let last: Int64
            if let known = versions[batch.aggregateID] {
                last = known
            } else {
                last = try await lastVersion(of: batch.aggregateID)
            }
            let request = AppendRequest(
                aggregateID: batch.aggregateID, aggregateName: batch.aggregateName,
                expectedVersion: last == -1 ? .noStream : .exact(last), events: batch.events
            )
            do {
                let result = try await store.append(request)
                versions[batch.aggregateID] = result.version
                summary.stored += batch.events.count
            } catch {
                let first = batch.events[0]
                throw Failure(
                    description: "cannot store event \(first.eventID) (offset \(batch.offsets[0])\(batch.events.count > 1 ? " and the \(batch.events.count - 1) after it" : "")) in stream \(batch.aggregateID): \(error)"
                        + ((error as? StoreError)?.code == .conflict ? "; another writer appended to this stream during the import: stop it and re-run the import" : "")
                )
            }
        }

        do {
            while true {
                var pageURL = "\(base)/events?offset=\(summary.nextOffset)"
                if let pageSize = options.pageSize { pageURL += "&limit=\(pageSize)" }
                let body = try await client.get(pageURL)
                let entries = try Self.parsePage(body, url: FeedHTTPClient.redacted(pageURL))
                if entries.isEmpty { break }
                for entry in entries {
                    let offset = summary.nextOffset
                    if pending?.events.contains(where: { $0.eventID == entry.eventID }) == true { try await flush() }
                    let payloadBytes = Array(try await client.get(entry.url).readableBytesView)
                    let aggregateName = mappedName(entry.aggregateName)
                    guard let aggregateID = try extractAggregateID(in: payloadBytes, entry: entry, offset: offset) else {
                        summary.skippedWithoutID += 1
                        summary.read += 1
                        summary.nextOffset += 1
                        continue
                    }
                    let event = NewEvent(eventID: entry.eventID, eventType: entry.eventType, payload: EventPayload(trustedJSON: payloadBytes))
                    if let stored = try await store.event(id: entry.eventID) {
                        try Self.check(stored, against: event, aggregateID: aggregateID, aggregateName: aggregateName, offset: offset)
                        summary.alreadyThere += 1
                    } else if var batch = pending, batch.aggregateID == aggregateID, batch.aggregateName == aggregateName,
                        batch.events.count < options.maximumBatch
                    {
                        pending = nil
                        batch.events.append(event)
                        batch.offsets.append(offset)
                        pending = batch
                    } else {
                        try await flush()
                        pending = Pending(aggregateID: aggregateID, aggregateName: aggregateName, events: [event], offsets: [offset])
                    }
                    summary.read += 1
                    summary.nextOffset += 1
                }
                try await flush()
                progress(summary)
            }
        } catch {
            // Store what was read before the failure, so that a re-run has less to do; report the first failure.
            try? await flush()
            throw Stopped(reason: error, summary: summary)
        }
        return summary
    }

    /// The aggregate name an entry's events are stored under.
    func mappedName(_ name: String) -> String {
        if let mapped = options.aggregateNameMap[name] { return mapped }
        if options.stripPointerNames, name.hasPrefix("*"), name.count > 1 { return String(name.dropFirst()) }
        return name
    }

    /// The aggregate id from the payload's `aggregateIDField` (a string, or an integer as its decimal text);
    /// `nil` when it is missing and `--skip-missing-id` is set.
    private func extractAggregateID(in payload: [UInt8], entry: Entry, offset: Int64) throws -> String? {
        let field = options.aggregateIDField
        let value: JSONValue
        do {
            value = try JSONParser.parse(payload)
        } catch {
            throw Failure(description: "event \(entry.eventID) at offset \(offset): its payload (\(FeedHTTPClient.redacted(entry.url))) is not JSON: \(error)")
        }
        let problem: String
        if !value.isObject {
            problem = "its payload is a JSON \(value.kindName), not an object with \"\(field)\""
        } else if let id = value[field] {
            if let text = id.stringValue { return text }
            if case .number = id.kind, let number = id.int64Value { return String(number) }
            problem = "its payload's \"\(field)\" is a \(id.kindName) that is not a string or an integer"
        } else {
            problem = "its payload has no \"\(field)\" field"
        }
        if options.skipMissingID, !value.isObject || value[field] == nil { return nil }
        throw Failure(
            description: "event \(entry.eventID) (\(entry.eventType)) at offset \(offset): \(problem); name the payload field that holds the aggregate id with --aggregate-id-field, or pass --skip-missing-id to skip such events"
        )
    }

    /// The last version of a stream (`-1` when it does not exist), found with O(log n) one-event reads.
    private func lastVersion(of aggregateID: String) async throws -> Int64 {
        func exists(_ version: Int64) async throws -> Bool {
            !(try await store.readStream(aggregateID, fromVersion: version, limit: 1).isEmpty)
        }
        guard try await exists(0) else { return -1 }
        var low: Int64 = 0  // exists
        var step: Int64 = 1
        var high: Int64  // does not exist
        while true {
            let probe = low + step
            if try await exists(probe) {
                low = probe
                step *= 2
            } else {
                high = probe
                break
            }
        }
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if try await exists(middle) { low = middle } else { high = middle }
        }
        return low
    }

    /// Fails unless the stored event with an entry's id is that entry's event.
    static func check(_ stored: RecordedEvent, against event: NewEvent, aggregateID: String, aggregateName: String, offset: Int64) throws {
        var differing: [String] = []
        if stored.eventType != event.eventType { differing.append("event_type \(stored.eventType) (feed: \(event.eventType))") }
        if stored.aggregateID != aggregateID { differing.append("aggregate id \(stored.aggregateID) (feed: \(aggregateID))") }
        if stored.aggregateName != aggregateName { differing.append("aggregate_name \(stored.aggregateName) (feed: \(aggregateName))") }
        if stored.payload.bytes != event.payload.bytes { differing.append("payload bytes") }
        if !differing.isEmpty {
            throw Failure(
                description: "event \(event.eventID) at offset \(offset) is already stored with other content: \(differing.joined(separator: ", ")); this store holds other events under the feed's ids (import into another store, or check --aggregate-name-map and --aggregate-id-field against the earlier import)"
            )
        }
    }

    /// The entries of a feed page; empty at the feed's end (`"events": null` or `[]`).
    ///
    /// Every field the import uses must have its type; `aggregate_version` and `created` are not used (versions are
    /// numbered anew in feed order), so they are not converted and a value out of any range cannot trap.
    static func parsePage(_ body: ByteBuffer, url: String) throws -> [Entry] {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body.readableBytesView)
        } catch {
            throw Failure(description: "the feed page \(url) is not JSON (\(error)); is the URL a flux service's base URL?")
        }
        guard value.isObject, let events = value["events"] else {
            throw Failure(description: "the feed page \(url) is not a flux feed page (an object with \"events\"); is the URL a flux service's base URL?")
        }
        if case .null = events.kind { return [] }
        guard let list = events.arrayValue else {
            throw Failure(description: "the feed page \(url) has \"events\" as a \(events.kindName), not an array")
        }
        return try list.enumerated().map { index, element in
            func text(_ key: String) throws -> String {
                guard let field = element[key], let string = field.stringValue, !string.isEmpty else {
                    throw Failure(description: "the feed page \(url): entry \(index) has no non-empty string \"\(key)\"")
                }
                return string
            }
            guard element.isObject else {
                throw Failure(description: "the feed page \(url): entry \(index) is a \(element.kindName), not an object")
            }
            return Entry(eventID: try text("event_id"), url: try text("url"), aggregateName: try text("aggregate_name"), eventType: try text("event_type"))
        }
    }
}

import FluxCore
import NIOCore

/// A message the gateway sends a consumer group's WebSocket member (README "Wire protocol" → "Consumer groups"):
/// one JSON object per text message.
///
/// - `{"type":"events","group":G,"member":M,"events":[{"attempt":A,"event":ENVELOPE},…]}`: events leased to the
///   member, each to be settled with an ack or a nack;
/// - `{"type":"error","error":CODE,"message":TEXT}`: a settlement the gateway refused (nothing of it was settled).
///
/// What a member sends is a ``GroupSettlement``.
public enum GroupMessage: Sendable, Equatable {
    /// A leased event and how many times it has been handed out (1 the first time).
    public struct Lease: Sendable, Equatable {
        public var event: RecordedEvent
        public var attempt: Int

        public init(event: RecordedEvent, attempt: Int) {
            self.event = event
            self.attempt = attempt
        }
    }

    case events([Lease])
    case error(code: String, message: String)

    /// Writes an events message, each envelope written by `writeEvent` (with its payload).
    @inlinable
    public static func writeEvents<Leases: Sequence>(
        _ leases: Leases, group: String, member: String, into json: inout JSONWriter, writeEvent: (Leases.Element, inout JSONWriter) -> Int
    ) {
        json.raw(#"{"type":"events","group":"#)
        json.string(group)
        json.raw(#","member":"#)
        json.string(member)
        json.raw(#","events":["#)
        var first = true
        for lease in leases {
            if !first { json.raw(",") }
            first = false
            json.raw(#"{"event":"#)
            let attempt = writeEvent(lease, &json)
            json.raw(#","attempt":"#)
            json.integer(Int64(attempt))
            json.raw("}")
        }
        json.raw("]}")
    }

    /// Writes `{"type":"error","error":code,"message":message}`.
    public static func writeError(code: String, message: String, into json: inout JSONWriter) {
        json.raw(#"{"type":"error","error":"#)
        json.string(code)
        json.raw(#","message":"#)
        json.string(message)
        json.raw("}")
    }

    /// Decodes one text message (UTF-8 bytes); `nil` for JSON that is no message of this protocol or of a type this
    /// version does not know. A lease whose envelope lacks a field is left out.
    public init?(json bytes: [UInt8]) {
        guard let json = try? JSONParser.parse(bytes, opaqueKeys: EnvelopeDecoder.opaqueKeys) else { return nil }
        switch json["type"]?.stringValue {
        case "events":
            guard let values = json["events"]?.arrayValue else { return nil }
            self = .events(values.compactMap { value in
                guard let envelope = value["event"], let event = EnvelopeDecoder.event(from: envelope, in: bytes),
                    let attempt = value["attempt"]?.int64Value, attempt >= 1, attempt <= Int64(Int32.max)
                else { return nil }
                return Lease(event: event, attempt: Int(attempt))
            })
        case "error":
            self = .error(code: json["error"]?.stringValue ?? "error", message: json["message"]?.stringValue ?? "")
        default:
            return nil
        }
    }
}

/// What a consumer group's member sends: `{"type":"ack","positions":[p,…]}` (1–1000 positions, all or nothing) or
/// `{"type":"nack","position":p,"reason":"…"}`.
public enum GroupSettlement: Sendable, Equatable {
    case ack([Position])
    case nack(Position, reason: String)

    /// The most positions one ack may carry.
    public static let maximumPositions = 1000
    /// The longest reason kept (longer ones are cut).
    public static let maximumReasonBytes = 1000

    /// The message's JSON text.
    public var json: String {
        var json = JSONWriter(buffer: ByteBuffer())
        switch self {
        case .ack(let positions):
            json.raw(#"{"type":"ack","positions":["#)
            for (index, position) in positions.enumerated() {
                if index > 0 { json.raw(",") }
                json.integer(position.rawValue)
            }
            json.raw("]}")
        case .nack(let position, let reason):
            json.raw(#"{"type":"nack","position":"#)
            json.integer(position.rawValue)
            json.raw(#","reason":"#)
            json.string(reason)
            json.raw("}")
        }
        return String(buffer: json.buffer)
    }

    /// Parses a member's message; `nil` for anything that is not a well-formed ack or nack.
    public init?(json bytes: some Collection<UInt8>) {
        guard let json = try? JSONParser.parse(bytes) else { return nil }
        switch json["type"]?.stringValue {
        case "ack":
            guard let values = json["positions"]?.arrayValue, (1...Self.maximumPositions).contains(values.count) else { return nil }
            var positions: [Position] = []
            positions.reserveCapacity(values.count)
            for value in values {
                guard let number = value.int64Value, number > 0 else { return nil }
                positions.append(Position(number))
            }
            self = .ack(positions)
        case "nack":
            guard let number = json["position"]?.int64Value, number > 0 else { return nil }
            let reason: String
            if let value = json["reason"] {
                guard let text = value.stringValue else { return nil }
                reason = text
            } else {
                reason = "rejected by its member"
            }
            self = .nack(Position(number), reason: String(decoding: reason.utf8.prefix(Self.maximumReasonBytes), as: UTF8.self))
        default:
            return nil
        }
    }
}

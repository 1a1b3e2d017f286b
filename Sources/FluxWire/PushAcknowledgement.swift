import FluxCore

/// The one message a subscriber may send on the push channel (README "Wire protocol" → "Push channel"):
/// `{"type":"ack","position":N}`, optional, after it handled the events up to `N` (it feeds the gateway's lag
/// figures). The gateway closes the connection with 1008 on anything else.
public struct PushAcknowledgement: Sendable, Hashable {
    /// The last position the subscriber handled.
    public var position: Position

    public init(position: Position) { self.position = position }

    /// The shape of the message, for error messages that tell a subscriber what it may send.
    public static let shape = #"{"type": "ack", "position": N}"#

    /// The message's JSON text, as a subscriber sends it.
    public var json: String { #"{"type":"ack","position":\#(position.rawValue)}"# }

    /// Decodes a subscriber's text message; `nil` for anything but an ack with a whole position ≥ 0.
    public init?(json bytes: some Collection<UInt8>) {
        guard let json = try? JSONParser.parse(bytes), json["type"]?.stringValue == "ack",
            let position = json["position"]?.int64Value, position >= 0
        else { return nil }
        self.position = Position(position)
    }
}

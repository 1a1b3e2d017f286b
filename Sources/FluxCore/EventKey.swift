/// The rule for the text that stores look events up by: aggregate ids, aggregate names, event types and event ids.
///
/// Such text is non-empty, at most `maximumLength` UTF-8 bytes, and printable: no C0 control character
/// (U+0000–U+001F) and no DEL (U+007F). SQLite handles text as C strings where it meets Swift (a NUL ends it:
/// `acc-1\0x` was stored whole but bound and read back as `acc-1`, another stream) and PostgreSQL refuses NUL in
/// text; the other control characters have no use in an id and hide it in logs, URLs and terminals.
/// `AppendRequest.validate()` refuses appends that break the rule; reads by an id or name that holds a control
/// character find nothing, on every store.
public enum EventKey {
    /// The longest aggregate id, aggregate name, event type or event id accepted, in UTF-8 bytes.
    public static let maximumLength = 256

    /// The first control character (C0 or DEL) in `text`: its value and the offset of its byte in the UTF-8 form.
    ///
    /// Scans the UTF-8 bytes in place: every byte of a multi-byte sequence is 0x80 or more, so a byte below 0x20 or
    /// equal to 0x7F is always a whole character.
    public static func firstControlCharacter(in text: String) -> (value: UInt8, offset: Int)? {
        var offset = 0
        for byte in text.utf8 {
            if byte < 0x20 || byte == 0x7F { return (byte, offset) }
            offset += 1
        }
        return nil
    }

    /// Whether `text` holds no control character, so that a stored event may have it as an id or name.
    public static func isPrintable(_ text: String) -> Bool {
        firstControlCharacter(in: text) == nil
    }
}

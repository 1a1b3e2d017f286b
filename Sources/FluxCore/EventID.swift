/// Event ids made by Fluxgate when the writer gives none: UUID version 7 (RFC 9562 §5.7).
///
/// The first 48 bits are the Unix time in milliseconds, so ids made one after another sort one after
/// another: a store's unique index on `event_id` then grows at its right edge instead of touching a random
/// page per insert, which keeps group commits small on disk. The remaining 74 bits are random.
public enum EventID {
    /// A new UUIDv7 in the canonical lowercase form, e.g. `019abc12-3456-7def-8123-456789abcdef`.
    public static func make() -> String {
        make(milliseconds: Timestamp.nowMilliseconds(), random: (UInt64.random(in: .min ... .max), UInt64.random(in: .min ... .max)))
    }

    static func make(milliseconds: Int64, random: (UInt64, UInt64)) -> String {
        let time = UInt64(truncatingIfNeeded: milliseconds) & 0xFFFF_FFFF_FFFF
        // 48 bits time, 4 bits version (7), 12 bits random; 2 bits variant (10), 62 bits random.
        let high = time << 16 | 0x7000 | (random.0 & 0x0FFF)
        let low = 0x8000_0000_0000_0000 | (random.1 & 0x3FFF_FFFF_FFFF_FFFF)
        let hex = Array("0123456789abcdef".utf8)
        var bytes = [UInt8]()
        bytes.reserveCapacity(36)
        for (index, shift) in stride(from: 60, through: 0, by: -4).enumerated() {
            if index == 8 || index == 12 { bytes.append(UInt8(ascii: "-")) }
            bytes.append(hex[Int((high >> UInt64(shift)) & 0xF)])
        }
        for (index, shift) in stride(from: 60, through: 0, by: -4).enumerated() {
            if index == 0 || index == 4 { bytes.append(UInt8(ascii: "-")) }
            bytes.append(hex[Int((low >> UInt64(shift)) & 0xF)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

import FluxCore

/// The wire forms of event times (README "Wire protocol" → "Events and positions"): `created` in C's asctime
/// format and `recorded_at` in RFC 3339 with milliseconds, both UTC, computed with integer arithmetic (no calendars,
/// no allocation but the result).
extension Timestamp {
    struct Civil {
        var year: Int64, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int, weekday: Int
    }

    /// Civil date from days since the epoch (Howard Hinnant's algorithm).
    static func civil(milliseconds: Int64) -> Civil {
        let millis = ((milliseconds % 1000) + 1000) % 1000
        let seconds = (milliseconds - millis) / 1000
        let secondOfDay = ((seconds % 86_400) + 86_400) % 86_400
        let days = (seconds - secondOfDay) / 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = Int(((days % 7) + 11) % 7)  // 0 = Sunday; 1970-01-01 was a Thursday (4)
        return Civil(
            year: year, month: month, day: day, hour: Int(secondOfDay / 3600), minute: Int(secondOfDay % 3600 / 60),
            second: Int(secondOfDay % 60), millisecond: Int(millis), weekday: weekday
        )
    }

    static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    private static func pad2(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }

    /// C's `asctime` format in UTC without the newline, as the original flux feed wrote `created`:
    /// `Thu Nov 26 15:02:12 2026` (the day of month is padded with a space: `Sun Nov  1 …`).
    public static func asctime(milliseconds: Int64) -> String {
        let c = civil(milliseconds: milliseconds)
        let day = c.day < 10 ? " \(c.day)" : String(c.day)
        return "\(weekdays[c.weekday]) \(months[c.month - 1]) \(day) \(pad2(c.hour)):\(pad2(c.minute)):\(pad2(c.second)) \(c.year)"
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-26T15:02:12.345Z`.
    public static func rfc3339(milliseconds: Int64) -> String {
        let c = civil(milliseconds: milliseconds)
        let ms = c.millisecond < 10 ? "00\(c.millisecond)" : c.millisecond < 100 ? "0\(c.millisecond)" : String(c.millisecond)
        var year = String(c.year)
        while year.utf8.count < 4 { year = "0" + year }
        return "\(year)-\(pad2(c.month))-\(pad2(c.day))T\(pad2(c.hour)):\(pad2(c.minute)):\(pad2(c.second)).\(ms)Z"
    }

    /// Parses the RFC 3339 form this module writes (`2026-11-26T15:02:12.345Z`, fraction optional, UTC only).
    public static func parseRFC3339(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { parseRFC3339(utf8: $0) }
    }

    private static func parseRFC3339(utf8 bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                let byte = bytes[index]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var millis: Int64 = 0
        if bytes.count > 20 {
            // Digits past the ninth are checked but not added up: an endless fraction must not overflow.
            let end = bytes.count - 1
            guard bytes[19] == UInt8(ascii: "."), bytes.count > 21, let fraction = number(20..<min(end, 29)),
                bytes[min(end, 29)..<end].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
            else { return nil }
            let digits = min(end, 29) - 20
            millis = fraction
            if digits < 3 {
                for _ in digits..<3 { millis *= 10 }
            } else {
                for _ in 3..<digits { millis /= 10 }
            }
        } else if bytes[19] != UInt8(ascii: "Z") {
            return nil
        }
        // Days from civil (Howard Hinnant).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis
    }

    /// Writes `asctime(milliseconds:)` as UTF-8 through `write`, without building a String.
    public static func writeAsctime(milliseconds: Int64, _ write: (UnsafeRawBufferPointer) -> Void) {
        let c = civil(milliseconds: milliseconds)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { out in
            var index = 0
            func put(_ byte: UInt8) { out[index] = byte; index += 1 }
            func two(_ value: Int, padWithSpace: Bool = false) {
                put(value < 10 ? (padWithSpace ? 0x20 : 0x30) : 0x30 + UInt8(value / 10))
                put(0x30 + UInt8(value % 10))
            }
            for byte in weekdays[c.weekday].utf8 { put(byte) }
            put(0x20)
            for byte in months[c.month - 1].utf8 { put(byte) }
            put(0x20)
            two(c.day, padWithSpace: true)
            put(0x20); two(c.hour); put(0x3A); two(c.minute); put(0x3A); two(c.second); put(0x20)
            for byte in String(c.year).utf8 { put(byte) }
            write(UnsafeRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(out)[0..<index]))
        }
    }

    /// Writes `rfc3339(milliseconds:)` as UTF-8 through `write`, without building a String (years 0–9999).
    public static func writeRFC3339(milliseconds: Int64, _ write: (UnsafeRawBufferPointer) -> Void) {
        let c = civil(milliseconds: milliseconds)
        guard (0...9999).contains(c.year) else {
            let text = rfc3339(milliseconds: milliseconds)
            text.utf8.withContiguousStorageIfAvailable { write(UnsafeRawBufferPointer($0)) }
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { out in
            var index = 0
            func put(_ byte: UInt8) { out[index] = byte; index += 1 }
            func digits(_ value: Int, _ count: Int) {
                var divisor = 1
                for _ in 1..<count { divisor *= 10 }
                var rest = value
                for _ in 0..<count {
                    put(0x30 + UInt8(rest / divisor))
                    rest %= divisor
                    divisor /= 10
                }
            }
            digits(Int(c.year), 4); put(0x2D); digits(c.month, 2); put(0x2D); digits(c.day, 2); put(0x54)
            digits(c.hour, 2); put(0x3A); digits(c.minute, 2); put(0x3A); digits(c.second, 2); put(0x2E)
            digits(c.millisecond, 3); put(0x5A)
            write(UnsafeRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(out)[0..<index]))
        }
    }
}

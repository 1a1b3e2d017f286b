import FluxCore
import FluxWire
import Testing

@Suite struct TimestampTests {
    @Test func formatsAsctimeLikeC() {
        // 2026-11-26T15:02:12.345Z
        #expect(Timestamp.asctime(milliseconds: 1_795_705_332_345) == "Thu Nov 26 15:02:12 2026")
        // Single-digit days are padded with a space, like asctime(3) and Go's time.ANSIC.
        #expect(Timestamp.asctime(milliseconds: 1_793_491_200_000) == "Sun Nov  1 00:00:00 2026")
        #expect(Timestamp.asctime(milliseconds: 0) == "Thu Jan  1 00:00:00 1970")
        #expect(Timestamp.asctime(milliseconds: 951_782_400_000) == "Tue Feb 29 00:00:00 2000")
    }

    @Test func formatsRFC3339WithMilliseconds() {
        #expect(Timestamp.rfc3339(milliseconds: 1_795_705_332_345) == "2026-11-26T15:02:12.345Z")
        #expect(Timestamp.rfc3339(milliseconds: 5) == "1970-01-01T00:00:00.005Z")
        #expect(Timestamp.rfc3339(milliseconds: 951_868_799_999) == "2000-02-29T23:59:59.999Z")
    }
}

@Suite struct TimestampParsingTests {
    @Test func parsesWhatItWrites() {
        for millis: Int64 in [0, 5, 951_868_799_999, 1_795_705_332_345, 4_102_444_800_000] {
            #expect(Timestamp.parseRFC3339(Timestamp.rfc3339(milliseconds: millis)) == millis)
        }
        #expect(Timestamp.parseRFC3339("2026-11-26T15:02:12Z") == 1_795_705_332_000)
        #expect(Timestamp.parseRFC3339("2026-11-26T15:02:12.3Z") == 1_795_705_332_300)
    }

    @Test func rejectsOtherForms() {
        for text in ["", "2026-11-26", "2026-11-26T15:02:12+01:00", "2026-13-26T15:02:12Z", "2026-11-26T15:02:12.Z", "yyyy-11-26T15:02:12Z"] {
            #expect(Timestamp.parseRFC3339(text) == nil, "\(text)")
        }
    }

    /// A timestamp comes from a peer (a gateway's feed): a fraction of any length is read, never overflowed.
    @Test func longFractionsAreCutNotOverflowed() {
        #expect(Timestamp.parseRFC3339("2026-11-26T15:02:12.345678901Z") == 1_795_705_332_345)
        #expect(Timestamp.parseRFC3339("2026-11-26T15:02:12." + String(repeating: "9", count: 40) + "Z") == 1_795_705_332_999)
        #expect(Timestamp.parseRFC3339("2026-11-26T15:02:12." + String(repeating: "9", count: 40) + "xZ") == nil)
    }
}

@Suite struct TimestampWritingTests {
    @Test(arguments: [Int64(0), 5, 951_868_799_999, 1_795_705_332_345, 1_793_491_200_000, 253_402_300_799_999])
    func writesTheSameBytesAsTheStringForms(_ millis: Int64) {
        var asctime: [UInt8] = []
        Timestamp.writeAsctime(milliseconds: millis) { asctime += $0 }
        #expect(String(decoding: asctime, as: UTF8.self) == Timestamp.asctime(milliseconds: millis))
        var rfc3339: [UInt8] = []
        Timestamp.writeRFC3339(milliseconds: millis) { rfc3339 += $0 }
        #expect(String(decoding: rfc3339, as: UTF8.self) == Timestamp.rfc3339(milliseconds: millis))
    }
}

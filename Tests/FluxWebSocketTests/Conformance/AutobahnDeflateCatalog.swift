import FluxTesting
import NIOCore
import Testing

/// Stand-ins for the test files of Autobahn sections 12 and 13, generated deterministically: prose
/// (Goethe's Faust in Autobahn), a bitmap, a PDF (mostly incompressible), JSON and HTML. The text sets are
/// ASCII so that any slice of them is valid UTF-8, as Autobahn's are.
enum ConformanceDataset: String, Sendable, CaseIterable {
    case prose, bitmap, document, json, html

    /// Autobahn sends the first three as binary messages, JSON and HTML as text.
    var isBinary: Bool { self == .prose || self == .bitmap || self == .document }

    var summary: String {
        switch self {
        case .prose: "German prose (binary)"
        case .bitmap: "512×512 grey bitmap (binary)"
        case .document: "mostly incompressible document (binary)"
        case .json: "JSON records (text)"
        case .html: "HTML table (text)"
        }
    }

    var bytes: [UInt8] {
        switch self {
        case .prose: Self.proseBytes
        case .bitmap: Self.bitmapBytes
        case .document: Self.documentBytes
        case .json: Self.jsonBytes
        case .html: Self.htmlBytes
        }
    }

    /// Message `index` of a case: consecutive slices of `size` bytes, wrapping around, as Autobahn does.
    func message(_ index: Int, size: Int) -> ByteBuffer {
        let data = bytes
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        var position = (index * size) % data.count
        while buffer.readableBytes < size {
            let take = min(size - buffer.readableBytes, data.count - position)
            buffer.writeBytes(data[position..<(position + take)])
            position = (position + take) % data.count
        }
        return buffer
    }

    private static let proseBytes: [UInt8] = {
        let words = ["Habe", "nun,", "ach!", "Philosophie,", "Juristerei", "und", "Medizin,", "Und", "leider", "auch", "Theologie",
                     "Durchaus", "studiert,", "mit", "heißem", "Bemühn.", "Da", "steh", "ich", "nun,", "ich", "armer", "Tor!", "Und", "bin",
                     "so", "klug", "als", "wie", "zuvor;", "Heiße", "Magister,", "heiße", "Doktor", "gar"]
        var generator = SeededGenerator(seed: 12)
        var text: [UInt8] = []
        while text.count < 200_000 {
            text += Array(words[Int(generator.next() % UInt64(words.count))].utf8)
            text.append(generator.next() % 9 == 0 ? 0x0A : 0x20)
        }
        return text
    }()

    private static let bitmapBytes: [UInt8] = {
        var generator = SeededGenerator(seed: 13)
        var image = [UInt8](repeating: 0, count: 1078)  // BMP header and palette stand-in
        image.reserveCapacity(1078 + 512 * 512)
        for y in 0..<512 {
            for x in 0..<512 {
                let shade = (x * 3 + y * 5 + (x * y) / 512) / 8
                image.append(UInt8(truncatingIfNeeded: shade + Int(generator.next() % 6)))
            }
        }
        return image
    }()

    private static let documentBytes: [UInt8] = {
        var generator = SeededGenerator(seed: 14)
        var bytes: [UInt8] = []
        while bytes.count < 200_000 {
            bytes += Array("\n\(bytes.count) 0 obj << /Length 4096 /Filter /FlateDecode >> stream\n".utf8)
            bytes += (0..<4096).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        }
        return bytes
    }()

    private static let jsonBytes: [UInt8] = {
        var generator = SeededGenerator(seed: 15)
        var text = "["
        var id = 0
        while text.utf8.count < 200_000 {
            let value = generator.next() % 100_000
            text += #"{"id":\#(id),"name":"user\#(value)","active":\#(value % 2 == 0),"score":\#(Double(value) / 7),"tags":["a\#(value % 13)","b\#(value % 7)"]},"#
            id += 1
        }
        return Array((text + "{}]").utf8)
    }()

    private static let htmlBytes: [UInt8] = {
        var generator = SeededGenerator(seed: 16)
        var text = "<!DOCTYPE html><html><head><title>Data</title></head><body><table>\n"
        while text.utf8.count < 200_000 {
            let value = generator.next() % 1_000_000
            text += "<tr class=\"row\"><td>\(value)</td><td><a href=\"/item/\(value % 977)\">item \(value % 977)</a></td><td>\(value % 3 == 0 ? "yes" : "no")</td></tr>\n"
        }
        return Array((text + "</table></body></html>").utf8)
    }()
}

/// One case of Autobahn sections 12 and 13: compressed messages echoed under given deflate parameters.
struct AutobahnDeflateCase: Sendable, CustomTestStringConvertible {
    let id: String
    let summary: String
    /// Server role: the offers the peer sends (13.7 sends three).
    var offers: [DeflateExtension] = [DeflateExtension(clientNoContextTakeover: true, clientMaxWindowBits: .some(nil))]
    /// Client role: the scripted server's `Sec-WebSocket-Extensions` answer to the testee's offer.
    var response = "permessage-deflate"
    let dataset: ConformanceDataset
    let size: Int
    /// Autobahn sends 1000 messages per case; a few cover the same ground (context takeover across
    /// messages, windows, fragmentation) in a fraction of the time.
    var count = 8
    /// The peer fragments each compressed message into frames of this many bytes (0: one frame).
    let fragmentSize: Int

    var testDescription: String { "\(id) \(summary)" }
}

/// The cases of Autobahn sections 12 and 13 (`case12_x_x.py`).
enum AutobahnDeflateCatalog {
    /// Autobahn's (payload size, auto-fragment size) list, numbered from 1.
    static let messageSizes: [(size: Int, fragment: Int)] = [
        (16, 0), (64, 0), (256, 0), (1024, 0), (4096, 0), (8192, 0), (16384, 0), (32768, 0), (65536, 0), (131_072, 0),
        (8192, 256), (16384, 256), (32768, 256), (65536, 256), (131_072, 256), (131_072, 1024), (131_072, 4096), (131_072, 32768),
    ]

    static func describe(_ size: (size: Int, fragment: Int)) -> String {
        "\(size.size)-byte messages" + (size.fragment > 0 ? ", compressed payload in frames of \(size.fragment) bytes" : "")
    }

    /// 12.x.y: each data set at every size with Autobahn's default offer
    /// (`permessage-deflate; client_no_context_takeover; client_max_window_bits`).
    static let section12ServerRole: [AutobahnDeflateCase] = ConformanceDataset.allCases.enumerated().flatMap { setIndex, dataset in
        messageSizes.enumerated().map { index, size in
            AutobahnDeflateCase(
                id: "12.\(setIndex + 1).\(index + 1)", summary: "\(dataset.summary), \(describe(size)), default offer",
                dataset: dataset, size: size.size, fragmentSize: size.fragment)
        }
    }

    /// Autobahn's section 13 client offers: (server_no_context_takeover requested, server_max_window_bits
    /// requested), always with `client_no_context_takeover; client_max_window_bits` accepted.
    static let section13Offers: [[DeflateExtension]] = {
        func offer(_ serverNoContextTakeover: Bool, _ serverBits: Int?) -> DeflateExtension {
            DeflateExtension(
                serverNoContextTakeover: serverNoContextTakeover, clientNoContextTakeover: true, serverMaxWindowBits: serverBits,
                clientMaxWindowBits: .some(nil))
        }
        return [
            [offer(false, nil)], [offer(true, nil)], [offer(false, 8)], [offer(false, 15)], [offer(true, 8)], [offer(true, 15)],
            [offer(true, 8), offer(true, nil), offer(false, nil)],
        ]
    }()

    /// The sizes of section 13 run here (Autobahn's numbering): small, medium, large, and fragmented.
    static let section13Sizes = [1, 4, 9, 10, 11, 18]

    /// 13.x.y with Autobahn's offers, plus (`13.8+`–`13.10+`) every window size 9–15 for each direction,
    /// alone and with both `no_context_takeover` parameters.
    static let section13ServerRole: [AutobahnDeflateCase] = {
        var cases: [AutobahnDeflateCase] = []
        for (offerIndex, offers) in section13Offers.enumerated() {
            for sizeIndex in section13Sizes {
                let size = messageSizes[sizeIndex - 1]
                cases.append(
                    AutobahnDeflateCase(
                        id: "13.\(offerIndex + 1).\(sizeIndex)", summary: "offer \"\(offers.map(\.headerValue).joined(separator: ", "))\", \(describe(size))",
                        offers: offers, dataset: .json, size: size.size, fragmentSize: size.fragment))
            }
        }
        for bits in 9...15 {
            let variants: [(String, DeflateExtension)] = [
                ("13.8.\(bits)+", DeflateExtension(serverMaxWindowBits: bits)),
                ("13.9.\(bits)+", DeflateExtension(clientMaxWindowBits: .some(bits))),
                ("13.10.\(bits)+", DeflateExtension(serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: bits, clientMaxWindowBits: .some(bits))),
            ]
            for (id, offer) in variants {
                cases.append(
                    AutobahnDeflateCase(
                        id: id, summary: "offer \"\(offer.headerValue)\", 16384-byte messages", offers: [offer], dataset: .json, size: 16384,
                        fragmentSize: 0))
            }
        }
        return cases.sorted { $0.id.localizedStandardCompare($1.id) == .orderedAscending }
    }()

    /// Client role, 12.x.y: the scripted server accepts the testee's offer as is, for two data sets.
    static let section12ClientRole: [AutobahnDeflateCase] = [(1, ConformanceDataset.prose), (4, .json)].flatMap { setIndex, dataset in
        [1, 5, 10, 15, 18].map { sizeIndex in
            let size = messageSizes[sizeIndex - 1]
            return AutobahnDeflateCase(
                id: "12.\(setIndex).\(sizeIndex)", summary: "\(dataset.summary), \(describe(size))", dataset: dataset, size: size.size,
                fragmentSize: size.fragment)
        }
    }

    /// Client role, 13.x: Autobahn's server answers (accept1–accept6; accept7 picks accept5 for our offer),
    /// plus answers where the server limits itself (`server_no_context_takeover`, `server_max_window_bits`
    /// 9–15, allowed without being requested, RFC 7692 §7.1.1.1, §7.1.2.1).
    static let section13ClientRole: [AutobahnDeflateCase] = {
        let answers = [
            "permessage-deflate", "permessage-deflate; client_no_context_takeover", "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=15", "permessage-deflate; client_no_context_takeover; client_max_window_bits=8",
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=15",
        ]
        var cases: [AutobahnDeflateCase] = []
        for (index, answer) in answers.enumerated() {
            for sizeIndex in [4, 10, 17] {
                let size = messageSizes[sizeIndex - 1]
                cases.append(
                    AutobahnDeflateCase(
                        id: "13.\(index + 1).\(sizeIndex)", summary: "answer \"\(answer)\", \(describe(size))", response: answer, dataset: .json,
                        size: size.size, fragmentSize: size.fragment))
            }
        }
        for bits in [9, 12, 15] {
            let answer = "permessage-deflate; server_no_context_takeover; server_max_window_bits=\(bits); client_max_window_bits=\(bits)"
            cases.append(
                AutobahnDeflateCase(
                    id: "13.8.\(bits)+", summary: "answer \"\(answer)\", 16384-byte messages", response: answer, dataset: .json, size: 16384,
                    fragmentSize: 0))
        }
        return cases
    }()
}

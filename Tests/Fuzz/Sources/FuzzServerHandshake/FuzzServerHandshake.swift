import FluxWebSocket
import FuzzSupport
import NIOHTTP1

// Builds an HTTP request head from arbitrary text and runs the server's opening-handshake validation
// (`WebSocketServerHandshake.evaluate`, RFC 6455 §4.2) with permessage-deflate enabled.
//
// Input layout: [flags] [text...]. flags bit 0: method POST instead of GET; bit 1: HTTP/1.0; bit 2: an
// origin check that refuses every origin; bits 3–4: subprotocols offered by the server (none, "chat",
// "chat, superchat"). The text's lines are header fields "Name: value"; lines without a colon are skipped.
//
// Checks:
// - a rejection has status 400, 403 or 426 and a reason; 426 carries `Sec-WebSocket-Version: 13`;
// - an acceptance has exactly one `Sec-WebSocket-Accept`, the RFC 6455 §4.2.2 hash of the request's key,
//   a subprotocol the client offered, and a `Sec-WebSocket-Extensions` header that matches what was agreed;
// - our own client handshake code accepts the response when given the same key and offer.

private let serverSubprotocols: [[String]] = [[], ["chat"], ["chat", "superchat"], []]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    let text = String(decoding: input.rest(), as: UTF8.self)
    var headers = HTTPHeaders()
    for line in text.split(whereSeparator: \.isNewline) {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let name = line[..<colon]
        // NIOHTTP1's parser only produces token names (RFC 9110 §5.6.2) and `HTTPHeaders.add` asserts it.
        guard !name.isEmpty, name.utf8.allSatisfy({ isTokenByte($0) }) else { continue }
        headers.add(name: String(name), value: String(line[line.index(after: colon)...].drop { $0 == " " }))
    }
    let head = HTTPRequestHead(
        version: flags & 2 != 0 ? .http1_0 : .http1_1, method: flags & 1 != 0 ? .POST : .GET, uri: "/", headers: headers)
    let refuseAll: WebSocketServerHandshake.OriginCheck = { _ in false }
    let handshake = WebSocketServerHandshake(
        subprotocols: serverSubprotocols[Int(flags >> 3) & 3],
        originCheck: flags & 4 != 0 ? refuseAll : nil,
        deflate: WebSocketDeflateOptions()
    )

    switch handshake.evaluate(head) {
    case .reject(let rejection):
        fuzzCheck([400, 403, 426].contains(rejection.status.code), "rejected with \(rejection.status.code)")
        fuzzCheck(!rejection.reason.isEmpty, "rejected without a reason")
        if rejection.status.code == 426 {
            fuzzCheck(rejection.headers["Sec-WebSocket-Version"] == ["13"], "426 without Sec-WebSocket-Version: 13")
        }
    case .accept(let acceptance):
        fuzzCheck(flags & 3 == 0, "accepted a POST or HTTP/1.0 request")
        let key = String(Substring(headers["Sec-WebSocket-Key"][0]).trimmingCharacters(in: [" ", "\t"]))
        fuzzCheck(acceptance.headers["Sec-WebSocket-Accept"] == [WebSocketHandshake.acceptValue(forKey: key)], "wrong accept value")
        let offered = headers[canonicalForm: "Sec-WebSocket-Protocol"].map(String.init)
        if let subprotocol = acceptance.subprotocol {
            fuzzCheck(offered.contains(subprotocol), "selected \(subprotocol), not offered")
        }
        fuzzCheck(acceptance.headers["Sec-WebSocket-Extensions"] == (acceptance.deflate.map { [$0.headerValue] } ?? []),
                  "extension header does not match the agreement")
        // Our client, with the same key and subprotocols, accepts what our server answered.
        if acceptance.deflate == nil {
            var responseHeaders = acceptance.headers
            responseHeaders.replaceOrAdd(name: "Upgrade", value: "websocket")
            let client = WebSocketClientHandshake(subprotocols: offered, key: key)
            let response = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: responseHeaders)
            do {
                let agreed = try client.validate(response)
                fuzzCheck(agreed.subprotocol == acceptance.subprotocol, "client and server disagree on the subprotocol")
            } catch {
                fuzzCheck(false, "our client refuses our server's answer: \(error)")
            }
        }
    }
    return 0
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> Substring {
        var result = self
        while let first = result.first, set.contains(first) { result.removeFirst() }
        while let last = result.last, set.contains(last) { result.removeLast() }
        return result
    }
}


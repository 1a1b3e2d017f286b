import Foundation
import Testing

@testable import FluxGateway

@Suite struct WebhookSignatureTests {
    /// The Standard Webhooks spec's published example (its libraries' tests use it too).
    @Test func signsTheSpecsTestVector() throws {
        let signature = try #require(WebhookSignature(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let body = Array(#"{"test": 2432232314}"#.utf8)
        #expect(signature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func twoSecretsSignAtOnceSeparatedBySpaces() throws {
        let first = try #require(WebhookSignature(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let second = try #require(WebhookSignature(secret: WebhookSignature.generateSecret()))
        let header = WebhookSignature.header(secrets: [first, second], id: "e1", timestamp: 5, body: Array("{}".utf8))
        let parts = header.split(separator: " ").map(String.init)
        #expect(parts.count == 2 && parts.allSatisfy { $0.hasPrefix("v1,") })
        #expect(parts[0] == first.sign(id: "e1", timestamp: 5, body: Array("{}".utf8)))
        #expect(parts[1] == second.sign(id: "e1", timestamp: 5, body: Array("{}".utf8)))
    }

    @Test func secretsMustBeInTheWhsecForm() {
        #expect(WebhookSignature(secret: "") == nil)
        #expect(WebhookSignature(secret: "whsec_") == nil)
        #expect(WebhookSignature(secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == nil, "no prefix")
        #expect(WebhookSignature(secret: "whsec_not base64!") == nil)
        #expect(WebhookSignature(secret: "whsec_AAAA") == nil, "3 bytes is too short a key")
        let made = WebhookSignature.generateSecret()
        #expect(made.hasPrefix("whsec_") && WebhookSignature(secret: made) != nil)
        #expect(WebhookSignature.fingerprint(of: made).count == 16)
        #expect(WebhookSignature.fingerprint(of: made) != WebhookSignature.fingerprint(of: WebhookSignature.generateSecret()))
    }

    @Test func failureReasonsNameTheCause() {
        #expect(WebhookDelivery.describe(.seconds(5)) == "5 s")
        #expect(WebhookDelivery.describe(.milliseconds(1500)) == "1500 ms")
    }
}

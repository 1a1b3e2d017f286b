import AsyncHTTPClient
import NIOCore
import NIOSSL
import Testing

@testable import FluxGateway

#if canImport(Glibc)
import Glibc
#endif

/// `WebhookDelivery.reason(for:timeout:)`: each kind of failure becomes a reason an operator understands and the
/// `outcome` label of `fluxgate_sink_deliveries_total`, from the error's type (the real failures over sockets are in
/// `WebhookSinkTests.failuresAreParkedWithAReasonThatNamesTheCause`).
@Suite struct WebhookDeliveryTests {
    static func reason(_ error: any Error) -> (String, WebhookDeliveryOutcome.Cause) {
        WebhookDelivery.reason(for: error, timeout: .milliseconds(1500))
    }

    @Test func errorsAreClassifiedByTheirType() {
        #expect(Self.reason(HTTPClientError.readTimeout) == ("timed out after 1500 ms", .timeout))
        #expect(Self.reason(HTTPClientError.remoteConnectionClosed) == ("the receiver closed the connection before answering", .connection))
        #expect(Self.reason(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == ("connection refused", .connection))
        #expect(Self.reason(IOError(errnoCode: ECONNRESET, reason: "read")) == ("the connection was reset before an answer", .connection))
        #expect(Self.reason(IOError(errnoCode: EHOSTUNREACH, reason: "connect")).1 == .connection)
        #expect(Self.reason(NIOSSLError.handshakeFailed(.sslError([]))).1 == .tls)
        #expect(Self.reason(NIOSSLExtraError.failedToValidateHostname).1 == .tls)
        // Errors of other kinds fall back to their description.
        struct Wrapped: Error, CustomStringConvertible { var description: String }
        #expect(Self.reason(Wrapped(description: "handshake failed: CERTIFICATE_VERIFY_FAILED")).0.contains("could not be verified"))
        #expect(Self.reason(Wrapped(description: "something odd")) == ("delivery failed: something odd", .other))
    }
}

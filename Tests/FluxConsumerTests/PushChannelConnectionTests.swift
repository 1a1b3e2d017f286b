import FluxConsumer
import FluxTesting
import Testing

@Suite struct PushChannelConnectionTests {
    /// A server that takes the connection and never answers the handshake fails the connect, it does not hang.
    @Test func aServerThatNeverAnswersTheHandshakeFailsTheConnect() async throws {
        let server = try await RawTCPServer.listen()
        let port = server.port
        async let accepted = server.accept(timeout: .seconds(60))
        await #expect {
            _ = try await PushChannelConnection.connect(host: "127.0.0.1", port: port, target: "/events/subscribe?after=0", handshakeTimeoutSeconds: 1)
        } throws: { error in
            (error as? PushChannelError)?.refusedStatus == nil && "\(error)".contains("did not answer the WebSocket handshake")
        }
        let connection = await accepted
        #expect(connection != nil)
        let request = try await connection?.readUntil("\r\n\r\n")
        #expect(request?.hasPrefix("GET /events/subscribe?after=0 HTTP/1.1") == true)
        await connection?.close()
        await server.close()
    }
}

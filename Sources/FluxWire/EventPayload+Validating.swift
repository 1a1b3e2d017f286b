import FluxCore

extension EventPayload {
    /// Wraps JSON bytes after checking that they hold exactly one valid JSON value (RFC 8259, with
    /// ``JSONParser``'s limits).
    public init(validating bytes: some Collection<UInt8>) throws(JSONParser.Error) {
        let array = Array(bytes)
        _ = try JSONParser.parse(array)
        self.init(trustedJSON: array)
    }
}

import FluxGateway
import Testing

/// Checking the Graphite settings: `HOST:PORT`, the prefix, the interval.
@Suite struct GraphiteConfigurationTests {
    @Test(arguments: [
        ("carbon:2003", "carbon", 2003),
        ("127.0.0.1:1", "127.0.0.1", 1),
        ("[::1]:65535", "::1", 65535),
        ("graphite.example.com:2003", "graphite.example.com", 2003),
    ])
    func addressesSplitIntoHostAndPort(address: String, host: String, port: Int) throws {
        let parsed = try GraphiteConfiguration.parseAddress(address)
        #expect(parsed.host == host && parsed.port == port)
    }

    @Test(arguments: [
        ("nohost", "has no port"),
        ("host:0", "must be 1…65535, got 0"),
        ("host:99999", "must be 1…65535, got 99999"),
        ("host:", "must be a number"),
        ("host:20x3", "must be a number"),
        (":2003", "has no host"),
        ("::1:2003", "in brackets"),
        ("[::1]2003", "in brackets"),
    ])
    func badAddressesAreRefusedSayingWhy(address: String, reason: String) {
        #expect {
            try GraphiteConfiguration.parseAddress(address)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test(arguments: ["fluxgate", "prod.gateway-1", "a_b.C9"])
    func prefixesOfSafeComponentsAreAccepted(prefix: String) throws {
        try GraphiteConfiguration.checkPrefix(prefix)
    }

    @Test(arguments: ["", ".", "a..b", "a.", ".a", "a b", "a/b", "é"])
    func otherPrefixesAreRefused(prefix: String) {
        #expect(throws: GraphiteConfiguration.Failure.self) { try GraphiteConfiguration.checkPrefix(prefix) }
    }

    @Test func theIntervalIsOneSecondToOneHour() throws {
        #expect(try GraphiteConfiguration(host: "h", port: 2003).interval == .seconds(10))
        #expect(try GraphiteConfiguration(host: "h", port: 2003).prefix == "fluxgate")
        _ = try GraphiteConfiguration(host: "h", port: 2003, interval: .seconds(1))
        _ = try GraphiteConfiguration(host: "h", port: 2003, interval: .seconds(3600))
        for interval in [Duration.zero, .milliseconds(999), .seconds(3601)] {
            #expect(throws: GraphiteConfiguration.Failure.self) { try GraphiteConfiguration(host: "h", port: 2003, interval: interval) }
        }
        #expect(throws: GraphiteConfiguration.Failure.self) { try GraphiteConfiguration(host: "h", port: 0) }
        #expect(throws: GraphiteConfiguration.Failure.self) { try GraphiteConfiguration(host: "", port: 2003) }
    }
}

import FluxCore
import FluxPostgres
import Testing

@Suite struct PostgresLocationTests {
    @Test func parsesAFullURL() throws {
        let location = try PostgresLocation(url: "postgres://app:s%40cret@db.internal:6543/events?sslmode=require")
        #expect(location.host == "db.internal")
        #expect(location.port == 6543)
        #expect(location.username == "app")
        #expect(location.password == "s@cret")
        #expect(location.database == "events")
        #expect(location.tlsMode == .require)
        #expect(location.description == "postgres://app@db.internal:6543/events", "no password in logs")
    }

    @Test func defaultsThePortAndTLS() throws {
        let location = try PostgresLocation(url: "postgresql://app@127.0.0.1/events")
        #expect(location.port == 5432)
        #expect(location.password == nil)
        #expect(location.tlsMode == .disable)
    }

    @Test(arguments: [
        "mysql://app@host/db", "postgres://host/db", "postgres://app@host", "postgres://app@host/",
        "postgres://app@host/db?sslmode=maybe", "postgres://app@host/db?colour=blue", "not a url",
    ])
    func refusesABadURLWithAClearMessage(_ url: String) {
        #expect {
            try PostgresLocation(url: url)
        } throws: { error in
            let error = error as? StoreError
            return error?.code == .storeUnavailable && error?.message.contains("postgres://user:password@host:port/database") == true
        }
    }
}

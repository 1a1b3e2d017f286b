import FluxCore
import Testing

@Suite struct EventIDTests {
    @Test func isAVersion7UUIDInCanonicalForm() {
        let id = EventID.make()
        #expect(id.count == 36)
        let parts = id.split(separator: "-")
        #expect(parts.map(\.count) == [8, 4, 4, 4, 12])
        #expect(parts[2].first == "7", "version 7")
        #expect(["8", "9", "a", "b"].contains(parts[3].first), "RFC 9562 variant")
        #expect(id == id.lowercased())
    }

    @Test func idsMadeLaterSortLater() async throws {
        let first = EventID.make()
        try await Task.sleep(for: .milliseconds(3))
        let second = EventID.make()
        #expect(first < second)
        #expect(Set((0..<1000).map { _ in EventID.make() }).count == 1000)
    }
}

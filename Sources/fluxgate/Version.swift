/// The release of this `fluxgate` build, printed by `fluxgate --version`. Raise it with each release (semantic
/// versioning: the wire contract in the README's "Wire protocol" section is the public API that the major
/// number protects).
enum FluxgateVersion {
    static let current = "0.9.0"
}

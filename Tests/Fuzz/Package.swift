// swift-tools-version: 6.1
// libFuzzer targets for the FluxWebSocket protocol core and the gateway's HTTP request path. Not part of the root
// package: build and run with ./run.sh (see README.md), which uses `swift build --sanitize=fuzzer --sanitize=address`.
import PackageDescription

/// One executable per fuzz target; each defines `LLVMFuzzerTestOneInput` and gets `main` from libFuzzer.
func fuzzTarget(_ name: String, dependencies: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name,
        dependencies: [
            "FuzzSupport",
            .product(name: "FluxWebSocket", package: "fluxgate"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ] + dependencies
    )
}

let package = Package(
    name: "FluxgateFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "fluxgate", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // Shared helpers: a byte reader over the fuzzer's input and a check that traps with a message.
        .target(name: "FuzzSupport"),
        fuzzTarget("FuzzFrameParser"),
        fuzzTarget("FuzzServerHandshake"),
        fuzzTarget("FuzzDeflateDecompressor"),
        fuzzTarget("FuzzExtensionHeader"),
        fuzzTarget("FuzzUTF8Validator"),
        // The gateway's request path: NIO's request decoder in front of GatewayRouter, over an in-memory store.
        fuzzTarget(
            "FuzzGatewayRequest",
            dependencies: [
                .product(name: "FluxGateway", package: "fluxgate"),
                .product(name: "FluxWire", package: "fluxgate"),
                .product(name: "FluxCore", package: "fluxgate"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version: 6.1
// libFuzzer targets for the FluxWebSocket protocol core, FluxWire's JSON reader and the gateway's HTTP request path.
// Not part of the root package: build and run with ./run.sh (see README.md), which uses
// `swift build --sanitize=fuzzer --sanitize=address`.
import PackageDescription

/// One executable per fuzz target; each defines `LLVMFuzzerTestOneInput` and gets `main` from libFuzzer. Targets of
/// the WebSocket layer and the gateway get FluxWebSocket and NIO's HTTP types; the others only what they name.
func fuzzTarget(_ name: String, webSocketLayer: Bool = true, dependencies: [Target.Dependency] = []) -> Target {
    let webSocket: [Target.Dependency] = [
        .product(name: "FluxWebSocket", package: "fluxgate"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
    ]
    return .executableTarget(name: name, dependencies: ["FuzzSupport"] + (webSocketLayer ? webSocket : []) + dependencies)
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
        // FluxWire's JSON reader and the wire messages read with it: no WebSocket layer, so that building this
        // target alone (`FUZZ_TARGETS=FuzzJSONReader ./run.sh`) builds NIOCore, FluxCore and FluxWire only.
        fuzzTarget("FuzzJSONReader", webSocketLayer: false, dependencies: [
            .product(name: "FluxWire", package: "fluxgate"), .product(name: "FluxCore", package: "fluxgate"),
        ]),
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

// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "fluxgate",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "FluxCore", targets: ["FluxCore"]),
        .library(name: "FluxWire", targets: ["FluxWire"]),
        .library(name: "FluxSQLite", targets: ["FluxSQLite"]),
        .library(name: "FluxPostgres", targets: ["FluxPostgres"]),
        .library(name: "FluxWebSocket", targets: ["FluxWebSocket"]),
        .library(name: "FluxGateway", targets: ["FluxGateway"]),
        .library(name: "FluxConsumer", targets: ["FluxConsumer"]),
        .library(name: "FluxTesting", targets: ["FluxTesting"]),
        .executable(name: "fluxgate", targets: ["fluxgate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        // The HTTP client that webhook sinks deliver with (README "Webhook sinks"): TLS verification, connection reuse,
        // timeouts.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // Pure event-sourcing core: no I/O, no NIO.
        .target(name: "FluxCore"),
        // The wire protocol (README "Wire protocol"): the byte-range JSON reader and the cursor writer, event envelopes,
        // push-channel and server-sent-event messages, timestamps' and URLs' wire forms. Above FluxCore, no I/O.
        .target(
            name: "FluxWire",
            dependencies: [
                "FluxCore",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Embedded SQLite event store and checkpoint store (the default).
        .target(
            name: "FluxSQLite",
            dependencies: [
                "FluxCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                // The SQLite C API under GRDB, for the writer's per-append statements (SQLiteAppendStatements).
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // PostgreSQL event store and checkpoint store, for several gateway nodes on one database.
        .target(
            name: "FluxPostgres",
            dependencies: [
                "FluxCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // glibc's allocator controls (malloc.h) for the gateway's MemoryReclaimer.
        .systemLibrary(name: "CMalloc"),
        // System zlib for RFC 7692 permessage-deflate.
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Our RFC 6455 + RFC 7692 implementation.
        .target(
            name: "FluxWebSocket",
            dependencies: [
                "CZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The HTTP gateway: JSON feed, append API, long-poll, health, Prometheus metrics.
        .target(
            name: "FluxGateway",
            dependencies: [
                "FluxCore",
                "FluxWire",
                "FluxWebSocket",
                "CMalloc",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            // The browser UI and the JS client module (clients/js/fluxgate.js links here), served at `/`: compiled
            // into the binary by the EmbedWebAssets plugin, so `fluxgate` is one file to install.
            exclude: ["WebUI/Assets"],
            plugins: ["EmbedWebAssets"]
        ),
        // The build plugin that compiles FluxGateway's web UI files into it.
        .plugin(name: "EmbedWebAssets", capability: .buildTool(), path: "Sources/EmbedWebAssetsPlugin"),
        // The client library: HTTP feed polling (WebSocket subscription to come), checkpoints.
        .target(
            name: "FluxConsumer",
            dependencies: [
                "FluxCore",
                "FluxWire",
                "FluxWebSocket",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Store conformance suite and test helpers, reused by every store's tests.
        .target(
            name: "FluxTesting",
            dependencies: [
                "FluxCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The command-line tool.
        .executableTarget(
            name: "fluxgate",
            dependencies: [
                "FluxCore",
                "FluxWire",
                "FluxSQLite",
                "FluxPostgres",
                "FluxGateway",
                "FluxConsumer",
                "FluxWebSocket",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Benchmarks (not tests): prints medians and ratios against baselines run in the same process.
        .executableTarget(
            name: "fluxgate-bench",
            dependencies: [
                "FluxCore",
                "FluxSQLite",
                "FluxPostgres",
                "FluxGateway",
                "FluxConsumer",
                "FluxWebSocket",
                // ChildProcess and RawTCPConnection: the memory benchmark runs the gateway in a child process.
                "FluxTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
                // The bare SQLite lookup that `fluxgate-bench legacy` compares the store's lookup by id with.
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                // The baseline of `fluxgate-bench websocket` only: the product itself never uses NIOWebSocket.
                .product(name: "NIOWebSocket", package: "swift-nio"),
                // The ceiling of `fluxgate-bench sinks`: the receiver posted to straight, as the sinks do.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(name: "FluxCoreTests", dependencies: ["FluxCore", "FluxTesting"]),
        .testTarget(
            name: "FluxWireTests",
            dependencies: ["FluxWire", "FluxCore", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(name: "FluxTestingTests", dependencies: ["FluxTesting"]),
        .testTarget(name: "FluxSQLiteTests", dependencies: ["FluxSQLite", "FluxTesting", "fluxgate"]),
        .testTarget(name: "FluxPostgresTests", dependencies: ["FluxPostgres", "FluxTesting", "fluxgate", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "FluxWebSocketTests",
            dependencies: [
                "FluxWebSocket",
                "FluxTesting",
                "fluxgate",
                // The push channel's conformance cases read its greeting (`caught_up`) with its own message type.
                "FluxWire",
                // The conformance suite's scripted peers compress and hash with their own zlib and SHA-1 code.
                "CZlib",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            exclude: ["Peers"]
        ),
        .testTarget(
            name: "FluxConsumerTests", dependencies: ["FluxConsumer", "FluxGateway", "FluxTesting", "FluxWebSocket", "FluxWire"],
            exclude: ["refusing_proxy.py"]
        ),
        .testTarget(
            name: "FluxGatewayTests",
            dependencies: [
                "FluxGateway", "FluxSQLite", "FluxConsumer", "FluxTesting", "FluxWebSocket", "FluxWire", "fluxgate",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                // WebhookDeliveryTests make the errors a delivery can meet.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            exclude: ["Browser"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

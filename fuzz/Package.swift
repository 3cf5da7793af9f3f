// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for the POS wire protocol. A separate package so the root package never needs sanitizer
// flags. The root package exports no libraries, so `Sources/POSProtocol` and `Sources/LoyaltyCore` here are
// symlinks to the server's own sources: the fuzzers exercise the real decoder and validation, not copies.
// Build and run through scripts/fuzz.sh (see docs/fuzzing.md).

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "loyalty-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    ],
    targets: [
        .target(
            name: "LoyaltyCore",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "POSProtocol",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            exclude: ["pos_v1.proto"],
            swiftSettings: swiftSettings
        ),
        // Harness code shared by the fuzzers and the corpus generator; no libFuzzer entry point.
        .target(
            name: "FuzzHarness",
            dependencies: [
                "POSProtocol",
                "LoyaltyCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "FrameDecoderFuzzer",
            dependencies: ["FuzzHarness"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "PayloadFuzzer",
            dependencies: ["FuzzHarness"],
            swiftSettings: swiftSettings
        ),
        // Writes the seed corpus (fuzz/corpus/) from real encoders; built without sanitizers.
        .executableTarget(
            name: "CorpusGenerator",
            dependencies: ["FuzzHarness"],
            swiftSettings: swiftSettings
        ),
    ]
)

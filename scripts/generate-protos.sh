#!/usr/bin/env bash
# Regenerates Sources/POSProtocol/Generated/*.pb.swift from Sources/POSProtocol/*.proto.
# Needs Debian's protoc (protobuf-compiler) and protoc-gen-swift built from the swift-protobuf package this
# project depends on (built here once, in release mode, into .build-protoc/). The output is committed, so normal
# builds never run protoc.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v protoc >/dev/null || { echo "install protoc: apt-get install protobuf-compiler" >&2; exit 1; }
swift package resolve >/dev/null
PLUGIN_DIR=".build-protoc"
swift build -c release --product protoc-gen-swift --package-path .build/checkouts/swift-protobuf \
    --scratch-path "$PLUGIN_DIR" >&2
PLUGIN="$PLUGIN_DIR/release/protoc-gen-swift"
mkdir -p Sources/POSProtocol/Generated
protoc --plugin=protoc-gen-swift="$PLUGIN" --swift_opt=Visibility=Public \
    --swift_out=Sources/POSProtocol/Generated -I Sources/POSProtocol Sources/POSProtocol/*.proto
echo "generated: $(ls Sources/POSProtocol/Generated)"

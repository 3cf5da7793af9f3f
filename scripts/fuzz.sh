#!/usr/bin/env bash
# Builds one libFuzzer target of fuzz/ and runs it on a copy of its seed corpus.
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
#
#   TARGET   FrameDecoderFuzzer or PayloadFuzzer
#   SECONDS  run time; 0 = no time limit (then pass e.g. -runs=10000000)
#
# Environment:
#   FUZZ_SANITIZERS  sanitizers besides libFuzzer (default: address; "none" for coverage only, faster)
#   FUZZ_WORK_DIR    where the corpus copy, the log and crashing inputs go (default: a new temp directory)
#
# The committed corpus is never written to: the run works on a copy, so new inputs stay in FUZZ_WORK_DIR.
# Exits non-zero when the fuzzer finds a crash, and prints where the crashing input was saved.
# See docs/fuzzing.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="$ROOT/fuzz"

log() { printf '[fuzz] %s\n' "$*" >&2; }
die() { printf '[fuzz] error: %s\n' "$*" >&2; exit 2; }

[ $# -ge 2 ] || die "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]"
TARGET="$1"
SECONDS_LIMIT="$2"
shift 2
[[ "$SECONDS_LIMIT" =~ ^[0-9]+$ ]] || die "SECONDS must be a whole number, got '$SECONDS_LIMIT'"

# Per-target defaults. Frames: inputs up to 512 bytes reach many frames at the small limit; any single allocation
# of 1 MB or more is a failure (the decoder must never trust a length beyond its 64 KiB maximum).
case "$TARGET" in
    FrameDecoderFuzzer) TARGET_FLAGS=(-max_len=512 -malloc_limit_mb=1) ;;
    PayloadFuzzer) TARGET_FLAGS=(-max_len=4096 -malloc_limit_mb=64) ;;
    *) die "unknown target '$TARGET' (FrameDecoderFuzzer, PayloadFuzzer)" ;;
esac

SANITIZERS="${FUZZ_SANITIZERS:-address}"
# swiftc keeps only the last -sanitize= option, so `swift build --sanitize=fuzzer --sanitize=address` silently
# builds Swift code without coverage. Hence one list through -Xswiftc, which comes last on every swiftc command;
# `--sanitize=fuzzer` is still given so SwiftPM links libFuzzer's main() instead of the target's entry point.
SANITIZE="fuzzer"
SCRATCH="$FUZZ_DIR/.build"
if [ "$SANITIZERS" != "none" ]; then
    SANITIZE="fuzzer,$SANITIZERS"
    [ "$SANITIZERS" = "address" ] || SCRATCH="$FUZZ_DIR/.build-${SANITIZERS//,/-}"
else
    SCRATCH="$FUZZ_DIR/.build-coverage-only"
fi
# The malloc limit needs a sanitizer's allocator hooks; without one libFuzzer only watches RSS.

# Same dependency versions as the server.
if [ ! -f "$FUZZ_DIR/Package.resolved" ] && [ -f "$ROOT/Package.resolved" ]; then
    cp "$ROOT/Package.resolved" "$FUZZ_DIR/Package.resolved"
fi

BUILD_FLAGS=(--package-path "$FUZZ_DIR" --scratch-path "$SCRATCH" -c release
    --sanitize=fuzzer -Xswiftc "-sanitize=$SANITIZE" -Xswiftc -parse-as-library)
log "building $TARGET (release, -sanitize=$SANITIZE, in $SCRATCH)"
# -parse-as-library: the target has no top-level code; libFuzzer supplies main().
nice -n 10 swift build "${BUILD_FLAGS[@]}" --product "$TARGET" >&2
BINARY="$(swift build "${BUILD_FLAGS[@]}" --show-bin-path)/$TARGET"
[ -x "$BINARY" ] || die "no binary at $BINARY"

WORK_DIR="${FUZZ_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/loyalty-fuzz-$TARGET.XXXXXX")}"
mkdir -p "$WORK_DIR/corpus" "$WORK_DIR/artifacts"
cp "$FUZZ_DIR/corpus/$TARGET"/* "$WORK_DIR/corpus/"
LOG="$WORK_DIR/fuzz.log"
log "work dir $WORK_DIR ($(ls "$WORK_DIR/corpus" | wc -l) corpus files); log $LOG"

set +e
# One fuzzer at a time, at low priority: the machine is shared.
nice -n 10 "$BINARY" "$WORK_DIR/corpus" \
    -max_total_time="$SECONDS_LIMIT" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$WORK_DIR/artifacts/" "${TARGET_FLAGS[@]}" "$@" 2>&1 | tee "$LOG" \
    | grep --line-buffered -E '^#[0-9]+\s+(INITED|pulse|DONE)|^Done|ERROR|SUMMARY|Fatal error|Test unit written'
STATUS=${PIPESTATUS[0]}
set -e

EXECUTIONS="$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -1)"
EXEC_PER_S="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOG" | tail -1)"
TOTAL_S="$(sed -n 's/.*in \([0-9]*\) second(s).*/\1/p' "$LOG" | tail -1)"
LAST_STATUS="$(grep -E '^#[0-9]+' "$LOG" | tail -1 || true)"
PEAK_RSS_MB="$(sed -n 's/^stat::peak_rss_mb: *//p' "$LOG" | tail -1)"
log "target $TARGET: ${EXECUTIONS:-?} executions, ${EXEC_PER_S:-?} exec/s, ${TOTAL_S:-?} s, peak RSS ${PEAK_RSS_MB:-?} MB"
log "last status: ${LAST_STATUS:-none}"
log "corpus grown to $(ls "$WORK_DIR/corpus" | wc -l) files in $WORK_DIR/corpus"

if [ "$STATUS" -ne 0 ]; then
    log "FAILED (libFuzzer exit status $STATUS); crashing input(s):"
    ls -1 "$WORK_DIR/artifacts/" | sed "s|^|[fuzz]   $WORK_DIR/artifacts/|" >&2
    log "reproduce: $BINARY <input>"
    exit "$STATUS"
fi
log "no crash"

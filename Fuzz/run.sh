#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/*) with libFuzzer and AddressSanitizer and runs each for a
# bounded time, one after the other. `make fuzz` calls this; it is not part of `make test`.
#
# Knobs (environment):
#   FUZZ_SECONDS=60        run time per target
#   FUZZ_TARGETS="..."     which targets (default: all four)
#   FUZZ_BUILD_DIR=.build-fuzz   scratch path (kept apart from .build)
#   FUZZ_RSS_MB=2048       libFuzzer -rss_limit_mb: a process above it is a finding
#   FUZZ_MALLOC_MB=64      libFuzzer -malloc_limit_mb: one allocation above it is a finding
#                          (inputs are at most a few KiB, so that is an amplification of >10,000x)
#   FUZZ_TIMEOUT=10        seconds one input may take before it is a finding
#   FUZZ_ARGS="..."        more libFuzzer flags (e.g. -jobs=2, -dict=..., -seed=1)
#
# Seeds are Fuzz/corpus/<kind>/ (Fuzz/make_corpus.py writes them); what the fuzzer adds goes to
# $FUZZ_BUILD_DIR/corpus/<target>/ so the committed corpus does not change. Findings (crashes,
# out-of-memory, timeouts) are written to $FUZZ_BUILD_DIR/findings/<target>/; the script exits 1
# when there is any. Reproduce one with: $FUZZ_BUILD_DIR/release/<target> <file>.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-FuzzDeframer FuzzInferRequest FuzzTensorCoding FuzzONNX}
BUILD_DIR=${FUZZ_BUILD_DIR:-.build-fuzz}
RSS_MB=${FUZZ_RSS_MB:-2048}
MALLOC_MB=${FUZZ_MALLOC_MB:-64}
TIMEOUT=${FUZZ_TIMEOUT:-10}
EXTRA=${FUZZ_ARGS:-}

seeds_for() {
    case "$1" in
        FuzzDeframer) echo Fuzz/corpus/deframer ;;
        FuzzInferRequest | FuzzTensorCoding) echo Fuzz/corpus/requests ;;
        FuzzONNX) echo Fuzz/corpus/onnx ;;
        *) echo "unknown fuzz target $1" >&2; exit 2 ;;
    esac
}

for target in $TARGETS; do
    seeds_for "$target" >/dev/null
    # `--sanitize fuzzer` tells SwiftPM that libFuzzer supplies main; the one
    # -sanitize=fuzzer,address after it is what swiftc uses (it keeps only the last -sanitize,
    # so `--sanitize fuzzer --sanitize address` would build with ASan but no coverage).
    SWERVE_FUZZ=1 swift build --scratch-path "$BUILD_DIR" -c release --sanitize fuzzer \
        -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address \
        -Xswiftc -enable-testing --product "$target"
done

# Swift's own backtracer would take the crash signal from libFuzzer; ASan reports instead.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=0}

failed=()
summary=()
for target in $TARGETS; do
    work="$BUILD_DIR/corpus/$target"
    findings="$BUILD_DIR/findings/$target"
    log="$BUILD_DIR/findings/$target.log"
    mkdir -p "$work" "$findings"
    echo "== $target: ${SECONDS_PER_TARGET}s from $(seeds_for "$target") (log: $log)"
    status=0
    # shellcheck disable=SC2086
    "$BUILD_DIR/release/$target" "$work" "$(seeds_for "$target")" \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$MALLOC_MB" \
        -timeout="$TIMEOUT" -artifact_prefix="$findings/" -print_final_stats=1 $EXTRA \
        >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || echo "cov: ?")
    line="$target: $runs runs, $speed/s, $cov, corpus $(find "$work" -type f | wc -l) files"
    if [ "$status" -ne 0 ]; then
        line="$line: FINDING (exit $status): $(grep -m1 -E 'ERROR: |SUMMARY: |Fatal error' "$log" || true)"
        failed+=("$target")
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "== fuzz summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "findings in: ${failed[*]} (see $BUILD_DIR/findings/)"
    exit 1
fi

#!/usr/bin/env bash
# Serving-path benchmarks: each figure beside a baseline measured in the same run, on one server
# whose temporary repository holds copies of the example models under different config.json
# "serving_mode"s (closed loop, concurrency 32, one row per request):
#   a) Zipf(1.1) over 1,000,000 distinct inputs on breast_cancer_logreg: `cached` vs `dynamic`
#      throughput and p99, the server's cache hit ratio; and S3-FIFO vs LRU hit ratio at the same
#      entry budget, by an offline replay of the same request stream (paths_replay.py; the server
#      cannot be switched to LRU by config, so LRU is only measured offline).
#   b) uniform inputs over the same 1,000,000: `auto` vs `dynamic` throughput (target: auto
#      within 5% of dynamic).
#   c) ad_conversion_onehot, uniform over its 144 category rows: `static` vs `dynamic`
#      throughput and p99; the table's build time, bytes and cells (PathStatistics).
# Each pair runs interleaved (A B A B ...) PATHS_REPS times, each repetition on a fresh copy of the
# model (cold cache, same input stream); figures are medians over the repetitions, and the
# "paired ratio" is the median of each run over the baseline run right after it.
# Results: benchmarks/results/paths.json (+ paths-runs/*.json, one per bench run).
#
# Knobs (environment): PATHS_DURATION (s per run, default 5), PATHS_WARMUP (s, default 1),
# PATHS_REPS (default 4), PATHS_CONCURRENCY (default 32), PATHS_CACHE_BYTES (the cached
# model's response cache, default 4 MiB: ~8k entries, well under the working set of the Zipf
# stream), PATHS_SEED (default 42), SWERVE_BUILD_DIR (.build), BENCH_SKIP_BUILD=1 to use an
# existing release binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DURATION=${PATHS_DURATION:-5}
WARMUP=${PATHS_WARMUP:-1}
REPS=${PATHS_REPS:-4}
CONCURRENCY=${PATHS_CONCURRENCY:-32}
CACHE_BYTES=${PATHS_CACHE_BYTES:-4194304}
SEED=${PATHS_SEED:-42}
DISTINCT=1000000
ZIPF=1.1
BUILD_DIR=${SWERVE_BUILD_DIR:-.build}
EXAMPLES=$ROOT/examples/repository
RESULTS=$ROOT/benchmarks/results
RUNS=$RESULTS/paths-runs
PYTHON=$ROOT/.venv/bin/python
[[ -x $PYTHON ]] || PYTHON=$(command -v python3)

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'paths.sh: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=""
STARTED=$(date +%s)

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -------------------------------------------------------------------------------
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "swift build -c release --scratch-path $BUILD_DIR"
    if ! swift build -c release --scratch-path "$BUILD_DIR" >"$WORK/build.log" 2>&1; then
        tail -40 "$WORK/build.log" >&2
        die "release build failed"
    fi
fi
SWERVE=$ROOT/$BUILD_DIR/release/swerve
[[ -x $SWERVE ]] || die "no release binary at $SWERVE"

# --- repository: one copy of a model per (mode, repetition) ------------------------------
REPO=$WORK/repository
mkdir -p "$REPO"
# copy_model SOURCE NAME MODE [CACHE_BYTES]
copy_model() {
    local src=$1 name=$2 mode=$3 cache=${4:-}
    cp -r "$EXAMPLES/$src" "$REPO/$name"
    "$PYTHON" - "$REPO/$name/config.json" "$mode" "$cache" <<'EOF'
import json, sys
path, mode, cache = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path) as f:
    config = json.load(f)
config["serving_mode"] = mode
if cache:
    config["response_cache"] = {"max_bytes": int(cache)}
with open(path, "w") as f:
    json.dump(config, f, indent=2)
EOF
}
for rep in $(seq 1 "$REPS"); do
    copy_model breast_cancer_logreg "bc_cached_$rep" cached "$CACHE_BYTES"
    copy_model breast_cancer_logreg "bc_dynamic_$rep" dynamic
    copy_model breast_cancer_logreg "bc_auto_$rep" auto "$CACHE_BYTES"
    copy_model ad_conversion_onehot "ad_static_$rep" static
    copy_model ad_conversion_onehot "ad_dynamic_$rep" dynamic
done
# The ad model's vocabularies (device; country; ad category), from its lineage record.
VOCAB=$("$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1]))["domain"]; print(";".join(",".join(v) for v in d.values()))' \
    "$EXAMPLES/ad_conversion_onehot/1/metadata.json")
AD_ROWS=$("$PYTHON" -c 'import json,sys,math; d=json.load(open(sys.argv[1]))["domain"]; print(math.prod(len(v) for v in d.values()))' \
    "$EXAMPLES/ad_conversion_onehot/1/metadata.json")

# --- server --------------------------------------------------------------------------------
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
PORT=$(free_port)
METRICS_PORT=$(free_port)
log "swerve serve (temporary repository of $(ls "$REPO" | wc -l) model copies) on 127.0.0.1:$PORT"
"$SWERVE" serve --repository "$REPO" --grpc-port "$PORT" --metrics-port "$METRICS_PORT" --log-level warning \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
expected=$(ls "$REPO" | wc -l)
ready=0
for _ in $(seq 1 120); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server exited"; }
    if out=$("$SWERVE" models --server "127.0.0.1:$PORT" --timeout 2 2>/dev/null); then
        ready=$(awk '$3 == "READY" && $2 ~ /^[0-9]+$/' <<<"$out" | wc -l)
        [[ $ready -ge $expected ]] && break
        if grep -Eq '^[^ ]+ +[0-9]+ +(UNAVAILABLE|FAILED)' <<<"$out"; then
            echo "$out" >&2
            die "a model failed to load"
        fi
    fi
    sleep 0.5
done
[[ $ready -ge $expected ]] || { cat "$WORK/server.log" >&2; die "only $ready of $expected models ready after 60 s"; }

# --- runs ----------------------------------------------------------------------------------
rm -rf "$RUNS"
mkdir -p "$RUNS"
# bench NAME MODEL ARGS...: one closed-loop run, JSON to $RUNS/NAME.json, summary to stderr.
bench() {
    local name=$1 model=$2
    shift 2
    echo "-- $name ($model $*)" >&2
    "$SWERVE" bench --server "127.0.0.1:$PORT" --model "$model" --concurrency "$CONCURRENCY" \
        --duration "$DURATION" --warmup "$WARMUP" --seed "$SEED" --quiet --label "$name" \
        --json "$RUNS/$name.json" "$@" >"$WORK/$name.out" 2>&1 \
        || { cat "$WORK/$name.out" >&2; die "bench $name failed"; }
    grep -E '^(throughput|latency|  measured phase)' "$WORK/$name.out" | sed 's/^/   /' >&2
}

log "a) Zipf($ZIPF) over $DISTINCT inputs, breast_cancer_logreg: cached vs dynamic"
for rep in $(seq 1 "$REPS"); do
    bench "zipf_cached_$rep" "bc_cached_$rep" --inputs "zipf:$ZIPF" --distinct "$DISTINCT"
    bench "zipf_dynamic_$rep" "bc_dynamic_$rep" --inputs "zipf:$ZIPF" --distinct "$DISTINCT"
done
log "b) uniform over $DISTINCT inputs, breast_cancer_logreg: auto vs dynamic"
for rep in $(seq 1 "$REPS"); do
    bench "uniform_auto_$rep" "bc_auto_$rep" --inputs uniform --distinct "$DISTINCT"
    bench "uniform_dynamic_$rep" "bc_dynamic_$rep" --inputs uniform --distinct "$DISTINCT"
done
log "c) ad_conversion_onehot, uniform over its $AD_ROWS category rows: static vs dynamic"
for rep in $(seq 1 "$REPS"); do
    bench "ad_static_$rep" "ad_static_$rep" --inputs uniform --distinct "$AD_ROWS" --vocab "input=$VOCAB"
    bench "ad_dynamic_$rep" "ad_dynamic_$rep" --inputs uniform --distinct "$AD_ROWS" --vocab "input=$VOCAB"
done
stop_server

# --- report --------------------------------------------------------------------------------
log "offline S3-FIFO vs LRU replay, and the report"
"$PYTHON" "$ROOT/benchmarks/paths_report.py" --runs "$RUNS" --reps "$REPS" --out "$RESULTS/paths.json" \
    --replay "$ROOT/benchmarks/paths_replay.py" --zipf "$ZIPF" --distinct "$DISTINCT" --seed "$SEED" \
    --cache-bytes "$CACHE_BYTES" --concurrency "$CONCURRENCY" --duration "$DURATION"
echo "paths.sh: done in $(( $(date +%s) - STARTED )) s; results in benchmarks/results/paths.json" >&2

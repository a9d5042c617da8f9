#!/usr/bin/env bash
# End-to-end benchmarks of Swerve, each figure beside a baseline measured in the same run:
#   a) ModelInfer throughput and p50/p99 per example model at concurrency 1, 8, 64
#   b) the same load with dynamic batching off (max_batch_size 1): the batching gain
#   c) HTTP/2 ceiling: h2load against nghttpd serving a response-sized file vs. against Swerve
#   d) the inference core alone vs. onnxruntime (one thread each) on batches of 1, 32, 256
#   e) the batching gain on the issue's MLP (two hidden layers of 256) as its input widens
# Results: benchmarks/results/latest.json (+ runs/*.json, runs/load-*.html: one `swerve bench
# --report` page per sweep; latency.png when matplotlib exists).
#
# Knobs (environment): BENCH_DURATION (s per load run, default 5), BENCH_WARMUP (s, default 1),
# BENCH_CONCURRENCY ("1 8 64"), BENCH_CORE_BATCHES ("1 32 256"), SWERVE_BUILD_DIR (.build),
# H2_ROUNDS (3), BATCHING_WIDTHS ("64 1024 4096 32768"), BATCHING_CONCURRENCY (64), BATCHING_ROUNDS (3), BENCH_SKIP_BUILD=1 to use an
# existing release binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
CONCURRENCY=${BENCH_CONCURRENCY:-"1 8 64"}
CORE_BATCHES=${BENCH_CORE_BATCHES:-"1 32 256"}
BATCHING_WIDTHS=${BATCHING_WIDTHS:-"64 1024 4096 32768"}
BATCHING_CONCURRENCY=${BATCHING_CONCURRENCY:-64}
BATCHING_ROUNDS=${BATCHING_ROUNDS:-3}
BUILD_DIR=${SWERVE_BUILD_DIR:-.build}
REPOSITORY=$ROOT/examples/repository
RESULTS=$ROOT/benchmarks/results
RUNS=$RESULTS/runs
PYTHON=$ROOT/.venv/bin/python
[[ -x $PYTHON ]] || PYTHON=$(command -v python3)

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------
if ! command -v h2load >/dev/null || ! command -v nghttpd >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        log "installing nghttp2-client nghttp2-server"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nghttp2-client nghttp2-server >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nghttp2-client nghttp2-server >/dev/null; }
    else
        echo "run.sh: h2load/nghttpd missing (apt-get install nghttp2-client nghttp2-server); skipping the HTTP/2 ceiling" >&2
    fi
fi
HAVE_H2LOAD=0
command -v h2load >/dev/null && command -v nghttpd >/dev/null && HAVE_H2LOAD=1
HAVE_ORT=0
"$PYTHON" -c 'import onnxruntime, numpy' 2>/dev/null && HAVE_ORT=1

WORK=$(mktemp -d)
SERVER_PID=""
NGHTTPD_PID=""

# --- build -------------------------------------------------------------------------------
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "swift build -c release"
    if ! swift build -c release --scratch-path "$BUILD_DIR" >"$WORK/build.log" 2>&1; then
        tail -40 "$WORK/build.log" >&2
        rm -rf "$WORK"
        die "release build failed"
    fi
fi
SWERVE=$ROOT/$BUILD_DIR/release/swerve
[[ -x $SWERVE ]] || die "no release binary at $SWERVE"

rm -rf "$RUNS"
mkdir -p "$RUNS"

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() {
    stop_server
    for pid in ${DYNAMIC_PID:-} ${UNBATCHED_PID:-}; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $NGHTTPD_PID ]]; then
        kill "$NGHTTPD_PID" 2>/dev/null || true
        wait "$NGHTTPD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_server REPOSITORY NAME: starts Swerve, waits (bounded) until every model is READY or
# has failed, and sets PORT and READY_MODELS.
start_server() {
    local repository=$1 name=$2
    PORT=$(free_port)
    local metrics_port
    metrics_port=$(free_port)
    # shellcheck disable=SC2086  # SWERVE_SERVE_ARGS is a list of extra flags, e.g. "--event-loops 1"
    "$SWERVE" serve --repository "$repository" --grpc-port "$PORT" --metrics-port "$metrics_port" --log-level warning ${SWERVE_SERVE_ARGS:-} \
        >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    local out="" i
    for i in $(seq 1 120); do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "server '$name' exited"; }
        if out=$("$SWERVE" models --server "127.0.0.1:$PORT" --timeout 2 2>/dev/null) \
            && ! grep -Eq '^[^ ]+ +[0-9]+ +(LOADING|UNLOADING)' <<<"$out" \
            && grep -Eq '^[^ ]+ +[0-9]+ +READY' <<<"$out"; then
            break
        fi
        out=""
        sleep 0.5
    done
    [[ -n $out ]] || { cat "$WORK/$name.log" >&2; die "server '$name' not ready after 60 s"; }
    READY_MODELS=$(awk '$3 == "READY" && NF >= 3 && $1 != "MODEL" { print $1 }' <<<"$out" | sort -u | tr '\n' ' ')
    awk '$3 != "READY" && $1 != "MODEL" && NF >= 3 && $2 ~ /^[0-9]+$/ { print "run.sh: not benchmarking " $1 ": " $0 }' <<<"$out" >&2
    echo "server '$name' on 127.0.0.1:$PORT, ready: $READY_MODELS" >&2
}

# unbatched_copy SRC DST: a copy of repository SRC with batching off (max_batch_size 1).
unbatched_copy() {
    cp -r "$1" "$2"
    "$PYTHON" - "$2" <<'PY'
import json, pathlib, sys
for config in pathlib.Path(sys.argv[1]).glob("*/config.json"):
    c = json.loads(config.read_text())
    c["max_batch_size"] = 1
    config.write_text(json.dumps(c, indent=2) + "\n")
PY
}

# load CONFIG: a) / b): a sweep over CONCURRENCY for every ready model (every step measured, each
# with its own warm-up), its JSON and its HTML report (latency against throughput, spectra,
# per-second timelines) in $RUNS.
load() {
    local config=$1 model
    for model in $READY_MODELS; do
        "$SWERVE" bench --server "127.0.0.1:$PORT" --model "$model" --sweep "concurrency=${CONCURRENCY// /,}" --full-sweep \
            --duration "$DURATION" --warmup "$WARMUP" --quiet --label "$config" \
            --json "$RUNS/load-$config-$model.json" --report "$RUNS/load-$config-$model.html" \
            | grep -F '[step ' | sed "s/^/$config $model /" >&2
    done
}

# --- d) the inference core alone (before any server, so nothing else runs) ---------------
log "d) inference core vs onnxruntime (one thread each)"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
for model_dir in "$REPOSITORY"/*/; do
    model=$(basename "$model_dir")
    file=$(ls -d "$model_dir"[0-9]*/model.onnx 2>/dev/null | sort -V | tail -1)
    [[ -n $file ]] || continue
    # The core benchmarks generate numeric inputs; string-input models (ad_conversion_onehot) are
    # measured by benchmarks/paths.sh instead.
    if [[ -f "$model_dir/config.json" ]] && grep -q '"BYTES"' "$model_dir/config.json"; then
        echo "run.sh: skipping $model in the core benchmark (string inputs; see benchmarks/paths.sh)" >&2
        continue
    fi
    for b in $CORE_BATCHES; do
        iterations=$(( b >= 256 ? 500 : (b >= 32 ? 3000 : 20000) ))
        "$SWERVE" bench --core --model-file "$file" --batch "$b" --iterations "$iterations" \
            --json "$RUNS/core-swerve-$model-b$b.json" >&2 \
            || echo "run.sh: swerve core bench failed for $model batch $b" >&2
        if [[ $HAVE_ORT == 1 ]]; then
            "$PYTHON" "$ROOT/benchmarks/ort_bench.py" --model-file "$file" --batch "$b" --iterations "$iterations" \
                --json "$RUNS/core-ort-$model-b$b.json" >&2
        fi
    done
done

# --- a) batched server -------------------------------------------------------------------
log "a) ModelInfer, examples/repository as configured (dynamic batching)"
start_server "$REPOSITORY" batched
load batched

# --- c) HTTP/2 ceiling: the same server against nghttpd, in alternating rounds --------------
# The machine is shared and noisy, so the servers take turns (H2_ROUNDS rounds each, all of them
# up throughout) and the summary reports every round's ratio and their median. h2load repeats one
# request body, so Swerve as configured (`auto`) soon answers it from its response cache; a second
# Swerve serving the same model in `dynamic` mode shows the computed path (batcher and worker).
H2_MODEL=""
if [[ $HAVE_H2LOAD == 1 ]]; then
    # The issue's target is stated on the logistic model.
    for m in breast_cancer_logreg $READY_MODELS; do
        if [[ " $READY_MODELS " == *" $m "* ]]; then H2_MODEL=$m; break; fi
    done
fi
H2_ARGS=(-c 8 -m 16 -t 1 -D 5 --warm-up-time 1)
H2_ROUNDS=${H2_ROUNDS:-3}
if [[ -n $H2_MODEL ]]; then
    "$SWERVE" bench --server "127.0.0.1:$PORT" --model "$H2_MODEL" --batch 1 --dump-request "$WORK/request.bin" >&2
    # The size of one answer, from a)'s sweep on the model.
    response_bytes=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"][0]["response_bytes"])' \
        "$RUNS/load-batched-$H2_MODEL.json")
    mkdir -p "$WORK/www"
    # The 5-byte gRPC prefix is part of what Swerve sends as DATA.
    head -c $((response_bytes + 5)) /dev/urandom >"$WORK/www/response.bin"
    main=("$SERVER_PID" "$PORT" "$READY_MODELS")
    mkdir -p "$WORK/h2-dynamic"
    cp -r "$REPOSITORY/$H2_MODEL" "$WORK/h2-dynamic/"
    "$PYTHON" - "$WORK/h2-dynamic/$H2_MODEL/config.json" <<'PY'
import json, pathlib, sys
p = pathlib.Path(sys.argv[1])
c = json.loads(p.read_text()) if p.exists() else {}
c["serving_mode"] = "dynamic"
p.write_text(json.dumps(c, indent=2) + "\n")
PY
    start_server "$WORK/h2-dynamic" h2-dynamic
    DYNAMIC_PID=$SERVER_PID DYNAMIC_PORT=$PORT
    SERVER_PID=${main[0]} PORT=${main[1]} READY_MODELS=${main[2]}
    NGHTTPD_PORT=$(free_port)
    nghttpd --no-tls -d "$WORK/www" "$NGHTTPD_PORT" >"$WORK/nghttpd.log" 2>&1 &
    NGHTTPD_PID=$!
    for _ in $(seq 1 50); do
        (echo >"/dev/tcp/127.0.0.1/$NGHTTPD_PORT") 2>/dev/null && break
        sleep 0.1
    done
    for round in $(seq 1 "$H2_ROUNDS"); do
        log "c) round $round/$H2_ROUNDS: h2load ${H2_ARGS[*]} against Swerve ($H2_MODEL, one row; as configured, then dynamic), then nghttpd (static $((response_bytes + 5))-byte file)"
        h2load "${H2_ARGS[@]}" -d "$WORK/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
            "http://127.0.0.1:$PORT/inference.GRPCInferenceService/ModelInfer" >"$RUNS/h2load-swerve-$round.txt" 2>&1 || true
        grep -E 'finished in|status codes' "$RUNS/h2load-swerve-$round.txt" >&2 || true
        h2load "${H2_ARGS[@]}" -d "$WORK/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
            "http://127.0.0.1:$DYNAMIC_PORT/inference.GRPCInferenceService/ModelInfer" >"$RUNS/h2load-dynamic-$round.txt" 2>&1 || true
        grep -E 'finished in|status codes' "$RUNS/h2load-dynamic-$round.txt" >&2 || true
        h2load "${H2_ARGS[@]}" -d "$WORK/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
            "http://127.0.0.1:$NGHTTPD_PORT/response.bin" >"$RUNS/h2load-nghttpd-$round.txt" 2>&1 || true
        grep -E 'finished in|status codes' "$RUNS/h2load-nghttpd-$round.txt" >&2 || true
    done
    kill "$NGHTTPD_PID" 2>/dev/null || true
    wait "$NGHTTPD_PID" 2>/dev/null || true
    NGHTTPD_PID=""
    kill "$DYNAMIC_PID" 2>/dev/null || true
    wait "$DYNAMIC_PID" 2>/dev/null || true
    DYNAMIC_PID=""
fi
stop_server

# --- b) batching off ---------------------------------------------------------------------
log "b) ModelInfer, the same repository with max_batch_size 1 (no batching)"
unbatched_copy "$REPOSITORY" "$WORK/repository-unbatched"
start_server "$WORK/repository-unbatched" unbatched
load unbatched
stop_server

# --- e) batching gain as the work per row grows ------------------------------------------
# The same MLP shape (hidden layers of 256) with wider inputs: the wider the input, the more a
# batch saves by reading each weight once for many rows instead of once per row. Both servers
# (batched, and max_batch_size 1) stay up and take turns, BATCHING_ROUNDS rounds per model.
log "e) batching gain: MLP with two hidden layers of 256, inputs of width $BATCHING_WIDTHS, concurrency $BATCHING_CONCURRENCY"
# shellcheck disable=SC2086  # a list of widths
"$PYTHON" "$ROOT/benchmarks/make_batching_models.py" "$WORK/batching" $BATCHING_WIDTHS
unbatched_copy "$WORK/batching" "$WORK/batching-unbatched"
start_server "$WORK/batching-unbatched" batching-unbatched
UNBATCHED_PID=$SERVER_PID UNBATCHED_PORT=$PORT
start_server "$WORK/batching" batching-batched
for model in $READY_MODELS; do
    "$SWERVE" bench --model "$model" --target "batched=127.0.0.1:$PORT" --target "unbatched=127.0.0.1:$UNBATCHED_PORT" \
        --rounds "$BATCHING_ROUNDS" --concurrency "$BATCHING_CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" --quiet \
        --json "$RUNS/batching-$model.json" | grep -F '[round ' | sed "s/^/e) $model /" >&2
done
stop_server
kill "$UNBATCHED_PID" 2>/dev/null || true
wait "$UNBATCHED_PID" 2>/dev/null || true
UNBATCHED_PID=""

# --- summary -----------------------------------------------------------------------------
log "summary"
"$PYTHON" "$ROOT/benchmarks/summarize.py" "$RUNS" "$RESULTS/latest.json" \
    --duration "$DURATION" --h2load-args "${H2_ARGS[*]}" --h2load-model "$H2_MODEL"

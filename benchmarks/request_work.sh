#!/usr/bin/env bash
# Per-request work on the computed path, counted rather than timed: mallocs, swift_retain and
# swift_release calls per ModelInfer request in the server process (perf uprobes on the malloc the
# server links — jemalloc's, else libc's —
# and libswiftCore's retain/release; needs root and `perf`), for breast_cancer_logreg one row with
# `serving_mode` dynamic at h2load -c 8 -m 16 and -c 1 -m 1, and digits_mlp with 16-row requests.
# Usage: benchmarks/request_work.sh            (release build of this tree)
#        SWERVE=/path/to/swerve [REQUESTS=20000] benchmarks/request_work.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
N=${REQUESTS:-20000}
if [[ -z ${SWERVE:-} ]]; then
    swift build -c release --scratch-path "${SWERVE_BUILD_DIR:-.build-release}" >&2
    SWERVE=$ROOT/${SWERVE_BUILD_DIR:-.build-release}/release/swerve
fi
command -v perf >/dev/null && command -v h2load >/dev/null || { echo "request_work.sh: needs perf and h2load" >&2; exit 1; }
MALLOC_LIB=$(ldd "$SWERVE" | awk '/libjemalloc.so/ {print $3}')
[[ -n $MALLOC_LIB ]] || MALLOC_LIB=$(ldd "$SWERVE" | awk '/libc.so.6/ {print $3}')
# A group of our own: an event named "malloc" may already exist for another library.
MALLOC_EVENT=swerve_alloc:$(basename "$MALLOC_LIB" | cut -d. -f1)_malloc
CORE=$(ldd "$SWERVE" | awk '/libswiftCore.so/ {print $3}')
perf probe -q -x "$MALLOC_LIB" --add "$MALLOC_EVENT=malloc" 2>/dev/null || true
perf probe -q -x "$CORE" --add swift_retain 2>/dev/null || true
perf probe -q -x "$CORE" --add swift_release 2>/dev/null || true
W=$(mktemp -d)
PID=
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
for m in breast_cancer_logreg digits_mlp; do
    mkdir -p "$W/repo/$m"; cp -r "$ROOT/examples/repository/$m/1" "$W/repo/$m/1"
    python3 - "$ROOT/examples/repository/$m/config.json" "$W/repo/$m/config.json" "${EXECUTION:-}" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["serving_mode"] = "dynamic"
if sys.argv[3]:
    c["execution"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"))
PY
done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$SWERVE" serve --repository "$W/repo" --host 127.0.0.1 --grpc-port $port --metrics-port $((port + 1)) --drain-seconds 0 >"$W/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$((port + 1))/v2/health/ready" >/dev/null && break; sleep 0.1; done
"$SWERVE" bench --server 127.0.0.1:$port --model breast_cancer_logreg --batch 1 --dump-request "$W/logreg.bin" >/dev/null 2>&1
"$SWERVE" bench --server 127.0.0.1:$port --model digits_mlp --batch 16 --dump-request "$W/mlp16.bin" >/dev/null 2>&1
count() {  # label request-file h2load-args...
    local label=$1 body=$2; shift 2
    # Warm up first, so one-time allocations (connections, buffers) do not count.
    h2load -n 2000 "$@" -d "$body" -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$port/inference.GRPCInferenceService/ModelInfer" >/dev/null 2>&1
    perf stat -x, -o "$W/stat.txt" -e "$MALLOC_EVENT",probe_libswiftCore:swift_retain,probe_libswiftCore:swift_release -p "$PID" -- \
        h2load -n "$N" "$@" -d "$body" -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$port/inference.GRPCInferenceService/ModelInfer" >"$W/h2load.txt" 2>&1
    local ok; ok=$(sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p' "$W/h2load.txt")
    awk -F, -v n="$N" -v label="$label" -v ok="$ok" '
        /_malloc/ {m = $1} /swift_retain/ {r = $1} /swift_release/ {s = $1}
        END {printf "| %s | %.1f | %.1f | %.1f | %s of %d |\n", label, m / n, r / n, s / n, ok, n}' "$W/stat.txt"
}
echo "| load | mallocs / request | swift_retain / request | swift_release / request | 2xx |"
echo "|---|---:|---:|---:|---:|"
count "logreg 1 row, h2load -c 8 -m 16" "$W/logreg.bin" -c 8 -m 16 -t 1
count "logreg 1 row, h2load -c 1 -m 1" "$W/logreg.bin" -c 1 -m 1 -t 1
count "digits_mlp 16 rows, h2load -c 8 -m 16" "$W/mlp16.bin" -c 8 -m 16 -t 1

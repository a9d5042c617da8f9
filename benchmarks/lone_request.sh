#!/usr/bin/env bash
# A lone request (h2load -c 1 -m 1) and the floor the transport sets under it: p50 / p99 per request
# and the server's user and system CPU per request (/proc/PID/stat over REQUESTS requests after a
# warm-up) for
#   - ModelInfer: breast_cancer_logreg one row, `serving_mode` dynamic (computed on every request);
#   - grpc.health.v1.Health/Check (no model work, a small protobuf each way);
#   - an unimplemented method: the same ModelInfer request sent to a method the server does not
#     have, answered UNIMPLEMENTED by the transport after the same read, HTTP/2 and gRPC work;
#   - nghttpd serving a static file of ModelInfer's response size (the anchor).
# The server is pinned to the last CPU and h2load to the first (when there are two or more), so the
# figures are the server's own; rounds alternate. Usage:
#   benchmarks/lone_request.sh                          (release build of this tree)
#   SWERVE=/path/to/swerve ROUNDS=3 REQUESTS=20000 benchmarks/lone_request.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-2}
N=${REQUESTS:-20000}
if [[ -z ${SWERVE:-} ]]; then
    swift build -c release --scratch-path "${SWERVE_BUILD_DIR:-.build-release}" >&2
    SWERVE=$ROOT/${SWERVE_BUILD_DIR:-.build-release}/release/swerve
fi
command -v h2load >/dev/null && command -v nghttpd >/dev/null || { echo "lone_request.sh: needs h2load and nghttpd (make deps)" >&2; exit 1; }
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
CPUS=$(nproc)
SERVER_CPU=$((CPUS - 1)); CLIENT_CPU=0
# Arrays, not a function: a backgrounded function runs in a subshell, and $! would be its PID.
ON_SERVER_CPU=(); ON_CLIENT_CPU=()
if ((CPUS > 1)); then ON_SERVER_CPU=(taskset -c $SERVER_CPU); ON_CLIENT_CPU=(taskset -c $CLIENT_CPU); fi
mkdir -p "$W/repo"
cp -r examples/repository/breast_cancer_logreg "$W/repo/"
python3 - "$W/repo/breast_cancer_logreg/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["serving_mode"] = "dynamic"
json.dump(c, open(sys.argv[1], "w"))
PY
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
g=$(free_port); m=$(free_port)
"${ON_SERVER_CPU[@]}" "$SWERVE" serve --repository "$W/repo" --host 127.0.0.1 --grpc-port "$g" --metrics-port "$m" --drain-seconds 0 >"$W/swerve.log" 2>&1 &
SPID=$!; PIDS+=($SPID)
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$m/v2/health/ready" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$m/v2/health/ready" >/dev/null || { echo "lone_request.sh: server not ready; see its log:" >&2; cat "$W/swerve.log" >&2; exit 1; }
"$SWERVE" bench --server "127.0.0.1:$g" --model breast_cancer_logreg --batch 1 --dump-request "$W/request.bin" >/dev/null 2>&1
printf '\0\0\0\0\0' >"$W/health.bin"   # a gRPC frame holding an empty HealthCheckRequest
infer=http://127.0.0.1:$g/inference.GRPCInferenceService/ModelInfer
bytes=$(h2load -n 100 -c 1 -d "$W/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' "$infer" 2>&1 \
    | sed -nE 's/^traffic: .* \(([0-9]+)\) data.*/\1/p')
mkdir -p "$W/www"; head -c $((bytes / 100)) /dev/urandom >"$W/www/response.bin"
n=$(free_port)
"${ON_SERVER_CPU[@]}" nghttpd --no-tls -d "$W/www" "$n" >/dev/null 2>&1 &
NPID=$!; PIDS+=($NPID)
sleep 0.5
HZ=$(getconf CLK_TCK)
measure() {  # label pid url body
    local args=(-c 1 -m 1 -t 1 -d "$4" -H 'content-type: application/grpc' -H 'te: trailers')
    h2load "${args[@]}" -n 2000 "$3" >/dev/null 2>&1
    local u0 s0 u1 s1 out
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$2/stat")
    out=$("${ON_CLIENT_CPU[@]}" h2load "${args[@]}" -n "$N" --log-file "$W/lat.log" "$3" 2>&1)
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$2/stat")
    grep -q "^requests: .* 0 failed, 0 errored" <<<"$out" || { echo "lone_request.sh: $1 had failed requests" >&2; exit 1; }
    python3 - "$W/lat.log" "$1" "$u0" "$s0" "$u1" "$s1" "$HZ" "$N" <<'PY'
import sys
path, label = sys.argv[1], sys.argv[2]
u0, s0, u1, s1, hz, n = (float(x) for x in sys.argv[3:])
t = sorted(int(line.split("\t")[2]) for line in open(path) if line.strip())
us = lambda ticks: ticks * 1e6 / hz / n
print(f"{label}\t{t[len(t) // 2]}\t{t[int(0.99 * len(t))]}\t{us(u1 - u0):.1f}\t{us(s1 - s0):.1f}")
PY
}
rows=()
for r in $(seq 1 "$ROUNDS"); do
    rows+=("$(measure ModelInfer $SPID "$infer" "$W/request.bin")")
    rows+=("$(measure Health/Check $SPID "http://127.0.0.1:$g/grpc.health.v1.Health/Check" "$W/health.bin")")
    rows+=("$(measure unimplemented $SPID "http://127.0.0.1:$g/inference.GRPCInferenceService/NoSuchMethod" "$W/request.bin")")
    rows+=("$(measure nghttpd $NPID "http://127.0.0.1:$n/response.bin" "$W/request.bin")")
    echo "[round $r/$ROUNDS done]" >&2
done
printf '%s\n' "${rows[@]}" >"$W/rows.tsv"
python3 - "$W/rows.tsv" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
labels = ["ModelInfer", "Health/Check", "unimplemented", "nghttpd"]
anchor = statistics.median(int(r[1]) for r in rows if r[0] == "nghttpd")
print("| call | p50 µs | p99 µs | p50 / nghttpd's (medians) | server user µs/request | server system µs/request |")
print("|---|---:|---:|---:|---:|---:|")
for label in labels:
    rs = [r for r in rows if r[0] == label]
    col = lambda i: " / ".join(r[i] for r in rs)
    ratio = statistics.median(int(r[1]) for r in rs) / anchor
    print(f"| {label} | {col(1)} | {col(2)} | {ratio:.2f} | {col(3)} | {col(4)} |")
print(f"\n{len(rows) // len(labels)} rounds, one figure per round; unimplemented = the floor (no model work).")
PY

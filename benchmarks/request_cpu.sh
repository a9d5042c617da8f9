#!/usr/bin/env bash
# CPU time per request of the server process, Swerve (breast_cancer_logreg one row, `serving_mode`
# dynamic) beside nghttpd (a static file of the response's size), at h2load -c 8 -m 16: the user +
# system time the server's /proc/PID/stat counts over REQUESTS requests after a warm-up, in
# alternating rounds. On a 2-core machine shared with h2load, throughput at 8×16 is bounded by
# (server CPU + h2load CPU) per request / 2 cores, so this is what the 8×16 ratio to nghttpd
# follows.
# Usage: benchmarks/request_cpu.sh            (release build of this tree)
#        SWERVE=/path/to/swerve ROUNDS=3 REQUESTS=400000 EXECUTION=inline benchmarks/request_cpu.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-3}
N=${REQUESTS:-400000}
if [[ -z ${SWERVE:-} ]]; then
    swift build -c release --scratch-path "${SWERVE_BUILD_DIR:-.build-release}" >&2
    SWERVE=$ROOT/${SWERVE_BUILD_DIR:-.build-release}/release/swerve
fi
command -v h2load >/dev/null && command -v nghttpd >/dev/null || { echo "request_cpu.sh: needs h2load and nghttpd (make deps)" >&2; exit 1; }
W=$(mktemp -d)
PID=
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/repo"
cp -r examples/repository/breast_cancer_logreg "$W/repo/"
python3 - "$W/repo/breast_cancer_logreg/config.json" "${EXECUTION:-}" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["serving_mode"] = "dynamic"
if sys.argv[2]:
    c["execution"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))
PY
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
load() {  # url requests
    h2load -c 8 -m 16 -t 1 -n "$2" -d "$W/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' "$1" 2>&1
}
measure() {  # name -> prints "cpu_us_per_request req_per_s"
    local url
    if [[ $1 == swerve ]]; then
        local g m
        g=$(free_port); m=$(free_port)
        "$SWERVE" serve --repository "$W/repo" --host 127.0.0.1 --grpc-port "$g" --metrics-port "$m" --drain-seconds 0 >"$W/swerve.log" 2>&1 &
        PID=$!
        for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$m/v2/health/ready" >/dev/null && break; sleep 0.1; done
        url=http://127.0.0.1:$g/inference.GRPCInferenceService/ModelInfer
        [[ -f $W/request.bin ]] || "$SWERVE" bench --server "127.0.0.1:$g" --model breast_cancer_logreg --batch 1 --dump-request "$W/request.bin" >/dev/null 2>&1
        if [[ ! -d $W/www ]]; then
            local bytes
            bytes=$(load "$url" 100 | sed -nE 's/^traffic: .* \(([0-9]+)\) data.*/\1/p')
            mkdir -p "$W/www"; head -c $((bytes / 100)) /dev/urandom >"$W/www/response.bin"
        fi
    else
        local p
        p=$(free_port)
        nghttpd --no-tls -d "$W/www" "$p" >/dev/null 2>&1 &
        PID=$!
        sleep 0.5
        url=http://127.0.0.1:$p/response.bin
    fi
    load "$url" 50000 >/dev/null
    local a b out
    a=$(ticks "$PID")
    out=$(load "$url" "$N")
    b=$(ticks "$PID")
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
    grep -q "^requests: .* 0 failed, 0 errored" <<<"$out" || { echo "request_cpu.sh: $1 had failed requests" >&2; exit 1; }
    python3 -c "print('%.2f %s' % (($b - $a) * 1e6 / $HZ / $N, '$(sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p' <<<"$out")'))"
}
printf '| round | Swerve CPU µs/request | nghttpd CPU µs/request | ratio | Swerve req/s | nghttpd req/s |\n|---|---:|---:|---:|---:|---:|\n'
for r in $(seq 1 "$ROUNDS"); do
    read -r s_cpu s_rate < <(measure swerve)
    read -r n_cpu n_rate < <(measure nghttpd)
    printf '| %d | %s | %s | %s | %s | %s |\n' "$r" "$s_cpu" "$n_cpu" "$(python3 -c "print('%.2f' % ($s_cpu / $n_cpu))")" "$s_rate" "$n_rate"
    echo "[round $r/$ROUNDS done]" >&2
done

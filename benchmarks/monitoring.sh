#!/usr/bin/env bash
# What watching served traffic costs: server CPU per request and req/s at h2load -c 8 -m 16 for
# breast_cancer_logreg (with reference statistics) computed on every request (`serving_mode`
# dynamic), with the prediction log and the drift monitor both off, both at 1% and both at 100%
# sampling, in alternating rounds; and how many records each run logged and how many requests
# the drift monitor observed.
# Usage: benchmarks/monitoring.sh            (release build of this tree)
#        SWERVE=/path/to/swerve ROUNDS=3 REQUESTS=200000 benchmarks/monitoring.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-3}
N=${REQUESTS:-200000}
if [[ -z ${SWERVE:-} ]]; then
    swift build -c release --scratch-path "${SWERVE_BUILD_DIR:-.build-release}" >&2
    SWERVE=$ROOT/${SWERVE_BUILD_DIR:-.build-release}/release/swerve
fi
command -v h2load >/dev/null || { echo "monitoring.sh: needs h2load (make deps)" >&2; exit 1; }
W=$(mktemp -d)
PID=
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
for mode in off 1pct all; do
    mkdir -p "$W/$mode"; cp -r examples/repository/breast_cancer_logreg "$W/$mode/"
    python3 - "$W/$mode/breast_cancer_logreg/config.json" "$mode" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["serving_mode"] = "dynamic"
rate = {"off": None, "1pct": 0.01, "all": 1.0}[sys.argv[2]]
c["monitoring"] = {"sample_rate": rate or 0, "window_seconds": 5}
if rate is not None:
    c["prediction_log"] = {"sample_rate": rate, "max_bytes": 64 << 20}
json.dump(c, open(sys.argv[1], "w"))
PY
done
# Reference statistics (version 2, beside the same model file): 1,000 rows of 30 features.
python3 - "$W/reference.csv" <<'PY'
import random, sys
random.seed(5)
with open(sys.argv[1], "w") as f:
    f.write(",".join(f"f{i}" for i in range(30)) + "\n")
    for _ in range(1000):
        f.write(",".join(repr(random.gauss(0, 1)) for _ in range(30)) + "\n")
PY
for mode in off 1pct all; do
    "$SWERVE" publish "$W/$mode/breast_cancer_logreg/1/model.onnx" --repository "$W/$mode" --name breast_cancer_logreg \
        --reference-data "$W/reference.csv" >/dev/null
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HZ=$(getconf CLK_TCK)
load() { h2load -c 8 -m 16 -t 1 -n "$2" -d "$W/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' "$1" 2>&1; }
measure() {  # mode -> "cpu_us req_per_s logged observed"
    local g m url a b out logged metrics observed
    g=$(free_port); m=$(free_port)
    "$SWERVE" serve --repository "$W/$1" --prediction-log-dir "$W/logs-$1" --host 127.0.0.1 --grpc-port "$g" \
        --metrics-port "$m" --drain-seconds 0 >"$W/swerve-$1.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$m/v2/health/ready" >/dev/null && break; sleep 0.1; done
    [[ -f $W/request.bin ]] || "$SWERVE" bench --server "127.0.0.1:$g" --model breast_cancer_logreg --batch 1 --dump-request "$W/request.bin" >/dev/null 2>&1
    url=http://127.0.0.1:$g/inference.GRPCInferenceService/ModelInfer
    load "$url" 30000 >/dev/null
    a=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    out=$(load "$url" "$N")
    b=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    sleep 0.2  # the writer's last group
    metrics=$(curl -s "http://127.0.0.1:$m/metrics")
    logged=$(awk '/^swerve_prediction_log_records_total/ && /outcome="written"/ {s += $2} END {print s + 0}' <<<"$metrics")
    observed=$(awk '/^swerve_drift_samples_total/ && /outcome="observed"/ {s += $2} END {print s + 0}' <<<"$metrics")
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
    grep -q "^requests: .* 0 failed, 0 errored" <<<"$out" || { echo "monitoring.sh: $1 had failed requests" >&2; exit 1; }
    python3 -c "print('%.2f %s %s %s' % (($b - $a) * 1e6 / $HZ / $N, '$(sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p' <<<"$out")', '$logged', '$observed'))"
}
printf '| round | off µs/req | off req/s | 1%% µs/req | 1%% req/s | 1%% logged | 1%% observed | 100%% µs/req | 100%% req/s | 100%% logged | 100%% observed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for r in $(seq 1 "$ROUNDS"); do
    read -r c0 r0 _ _ < <(measure off)
    read -r c1 r1 l1 o1 < <(measure 1pct)
    read -r c2 r2 l2 o2 < <(measure all)
    printf '| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$r" "$c0" "$r0" "$c1" "$r1" "$l1" "$o1" "$c2" "$r2" "$l2" "$o2"
    echo "[round $r/$ROUNDS done]" >&2
done

#!/usr/bin/env bash
# Rolling-update benchmark: what a rollout and an in-process version swap cost the traffic, and how
# long a published version takes to be READY everywhere. One run (no repetitions): the figures are
# ratios beside a steady state measured in the same run, on the same processes.
#   a) 3 replicas behind HAProxy (deploy/local/cluster.sh) on one repository, digits_mlp
#      (serving_mode dynamic, every request distinct), label-managed (stable=1), polled every
#      ROLLOUT_POLL s. Open loop at ROLLOUT_RATE req/s through HAProxy:
#        steady (v1 stable) | publish v2 -> READY on every replica (RolloutStatistics) |
#        during `swerve rollout` of v2 (steps 25,50,100, bake ROLLOUT_BAKE s) | after (v2 stable).
#   b) 1 server direct on its own copy (version policy latest 1, no labels): steady, then during
#      the in-process swap to a newly published version (load, warm-up, swap, drain, unload),
#      and publish -> READY on it.
# Prints a table for the README; the rollout and the swap also get a `swerve bench --report` page
# (per-second rate, p99 and errors) in benchmarks/results/rollout-{during,swap}.html. Knobs: ROLLOUT_RATE (default 300), ROLLOUT_DURATION (s per
# steady run, 10), ROLLOUT_BAKE (5), ROLLOUT_POLL (0.5), SWERVE_BUILD_DIR (.build),
# ROLLOUT_BUILD (release|debug, default release), BENCH_SKIP_BUILD=1, SWERVE_BIN.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RATE=${ROLLOUT_RATE:-300}
DURATION=${ROLLOUT_DURATION:-10}
BAKE=${ROLLOUT_BAKE:-5}
POLL=${ROLLOUT_POLL:-0.5}
BUILD=${ROLLOUT_BUILD:-release}
BUILD_DIR=${SWERVE_BUILD_DIR:-.build}
[[ ${BENCH_SKIP_BUILD:-0} == 1 ]] || swift build --scratch-path "$BUILD_DIR" -c "$BUILD"
BIN=${SWERVE_BIN:-$ROOT/$BUILD_DIR/$BUILD/swerve}
[[ -x $BIN ]] || { echo "rollout.sh: no $BIN" >&2; exit 1; }
export SWERVE_BIN=$BIN
MODEL=digits
PY=$ROOT/.venv/bin/python
[[ -x $PY ]] || PY=python3  # ready_wait needs grpcio

WORK=$(mktemp -d)
CLUSTER=$WORK/cluster
SINGLE_PID=""
cleanup() {
    CLUSTER_DIR=$CLUSTER deploy/local/cluster.sh down >/dev/null 2>&1 || true
    if [[ -n $SINGLE_PID ]] && kill -0 "$SINGLE_PID" 2>/dev/null; then
        kill -TERM "$SINGLE_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SINGLE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SINGLE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

repo() {  # dir
    mkdir -p "$1/$MODEL"
    cp examples/repository/digits_mlp/config.json "$1/$MODEL/config.json"
    python3 - "$1/$MODEL/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["serving_mode"] = "dynamic"; json.dump(c, open(sys.argv[1], "w"))
PY
    "$BIN" publish examples/repository/digits_mlp/1/model.onnx --repository "$1" --name "$MODEL" >/dev/null
}

bench() {  # endpoint json duration [more bench flags]
    local endpoint=$1 out=$2 seconds=$3; shift 3
    "$BIN" bench --server "$endpoint" --model "$MODEL" --rate "$RATE" --concurrency 64 --connections 2 --duration "$seconds" \
        --warmup 0 --timeout 20 --quiet --json "$out" "$@" >/dev/null
}
# The two phases with a change under load also get a page with their per-second timeline.
RESULTS=$ROOT/benchmarks/results
mkdir -p "$RESULTS"

# Seconds until every address answers ModelReady(MODEL, version) true (a hand-encoded grpc call).
ready_wait() {  # version t0 addresses...
    "$PY" - "$MODEL" "$@" <<'PY'
import socket, subprocess, sys, time
model, version, t0, addrs = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
def field(n, s):
    b = s.encode(); return bytes([n << 3 | 2, len(b)]) + b
req = field(1, model) + field(2, version)
import grpc
pending = set(addrs)
chans = {a: grpc.insecure_channel(a) for a in addrs}
calls = {a: c.unary_unary("/inference.GRPCInferenceService/ModelReady") for a, c in chans.items()}
deadline = time.time() + 120
while pending and time.time() < deadline:
    for a in list(pending):
        try:
            if calls[a](req, timeout=2) == b"\x08\x01":
                pending.discard(a)
        except grpc.RpcError:
            pass
    time.sleep(0.01)
print(f"{time.time() - t0:.2f}" if not pending else "timeout")
PY
}

# a) the cluster
repo "$WORK/repo"
"$BIN" label --model "$MODEL" stable=1 --repository "$WORK/repo" >/dev/null
CLUSTER_DIR=$CLUSTER deploy/local/cluster.sh up -n 3 --repository "$WORK/repo" --drain-seconds 0 -- --poll-interval "$POLL" >&2
EP=$(CLUSTER_DIR=$CLUSTER deploy/local/cluster.sh endpoint)
REPLICAS=$(for f in "$CLUSTER"/replicas/r*.grpc; do echo -n "127.0.0.1:$(cat "$f"),"; done)
REPLICAS=${REPLICAS%,}

bench "$EP" "$WORK/steady.json" "$DURATION"
T0=$(date +%s.%N)
"$BIN" publish examples/repository/digits_mlp/1/model.onnx --repository "$WORK/repo" --name "$MODEL" >/dev/null
# shellcheck disable=SC2086
CLUSTER_READY=$(ready_wait 2 "$T0" ${REPLICAS//,/ })
# The load covers the whole rollout (3 bakes + the waits for every replica to apply each share).
ROLL_SECONDS=$(python3 -c "print(3 * $BAKE + 4)")
bench "$EP" "$WORK/during.json" "$ROLL_SECONDS" --report "$RESULTS/rollout-during.html" &
BENCH_PID=$!
R0=$(date +%s.%N)
set +e
"$BIN" rollout --model "$MODEL" --version 2 --replicas "$REPLICAS" --repository "$WORK/repo" --steps 25,50,100 \
    --bake "${BAKE}s" --max-p99-ratio 3 >"$WORK/rollout.log" 2>&1
ROLL_RC=$?
set -e
R1=$(date +%s.%N)
wait "$BENCH_PID"
bench "$EP" "$WORK/after.json" "$DURATION"
CLUSTER_DIR=$CLUSTER deploy/local/cluster.sh down >/dev/null

# b) one server, an in-process swap
repo "$WORK/single"
GRPC=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
METRICS=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --repository "$WORK/single" --host 127.0.0.1 --grpc-port "$GRPC" --metrics-port "$METRICS" \
    --drain-seconds 0 --poll-interval "$POLL" >"$WORK/single.log" 2>&1 &
SINGLE_PID=$!
ready_wait 1 "$(date +%s.%N)" "127.0.0.1:$GRPC" >/dev/null
bench "127.0.0.1:$GRPC" "$WORK/single-steady.json" "$DURATION"
bench "127.0.0.1:$GRPC" "$WORK/single-swap.json" "$DURATION" --report "$RESULTS/rollout-swap.html" &
BENCH_PID=$!
sleep "$(python3 -c "print($DURATION / 3)")"
S0=$(date +%s.%N)
"$BIN" publish examples/repository/digits_mlp/1/model.onnx --repository "$WORK/single" --name "$MODEL" >/dev/null
SINGLE_READY=$(ready_wait 2 "$S0" "127.0.0.1:$GRPC")
wait "$BENCH_PID"

python3 - "$WORK" "$RATE" "$DURATION" "$BAKE" "$POLL" "$BUILD" "$CLUSTER_READY" "$SINGLE_READY" "$ROLL_RC" \
    "$(python3 -c "print(f'{$R1 - $R0:.1f}')")" <<'PY'
import json, sys
work, rate, duration, bake, poll, build, cready, sready, rc, rsecs = sys.argv[1:]
r = lambda n: json.load(open(f"{work}/{n}.json"))
rows = [("3 replicas via HAProxy, steady (v1 stable)", "steady", "steady"),
        (f"during `swerve rollout` v1 -> v2 (steps 25,50,100, bake {bake} s; {3 * float(bake) + 4:g} s of load)", "during", "steady"),
        ("after the rollout (v2 stable)", "after", "steady"),
        ("1 server direct, steady", "single-steady", "single-steady"),
        ("1 server, during an in-process swap to a new version", "single-swap", "single-steady")]
print(f"\n### Rolling updates ({build} build, digits_mlp dynamic, open loop {rate} req/s, "
      f"{duration} s steady runs, one run; replicas poll the repository every {poll} s)\n")
print("| phase | req/s | p50 ms | p99 ms | p50 vs steady | p99 vs steady | failed |")
print("|---|---:|---:|---:|---:|---:|---:|")
for label, name, base in rows:
    x, b = r(name), r(base)
    l, bl = x["latency_micros"], b["latency_micros"]
    print(f"| {label} | {x['throughput_rps']:.0f} | {l['p50'] / 1000:.2f} | {l['p99'] / 1000:.2f} | "
          f"{l['p50'] / max(1, bl['p50']):.2f} | {l['p99'] / max(1, bl['p99']):.2f} | {x['errors']} |")
outcome = {"0": "promoted", "3": "rolled back"}.get(rc, f"exit {rc}")
print(f"\npublish -> READY on all 3 replicas: {cready} s; on the single server: {sready} s "
      f"(repository poll every {poll} s, then load, compile, warm-up)")
print(f"rollout: {outcome} in {rsecs} s (3 steps x {bake} s bake + waits for every replica to apply each share)")
PY
echo
sed 's/^/    /' "$WORK/rollout.log"
echo "per-second timelines: $RESULTS/rollout-during.html, $RESULTS/rollout-swap.html"

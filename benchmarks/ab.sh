#!/usr/bin/env bash
# A/B of two swerve binaries with h2load, in alternating rounds (the machine is shared and noisy).
set -euo pipefail
# Usage: BEFORE=path/to/old/swerve AFTER=path/to/new/swerve [ROUNDS=5] benchmarks/ab.sh
# Servers: as configured (cache) and dynamic for both binaries, plus AFTER on a model with a
# canary at 50% (labels.json), all up throughout; h2load -c 8 -m 16 -t 1 -D 5 per server per round.
B=${BEFORE:?set BEFORE to the old swerve binary}
A=${AFTER:?set AFTER to the new swerve binary}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EX=$ROOT/examples/repository/breast_cancer_logreg
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
ROUNDS=${ROUNDS:-4}
mk() {  # dir mode versions labels
    mkdir -p $1/breast_cancer_logreg
    python3 - $EX/config.json $1/breast_cancer_logreg/config.json $2 <<'PY'
import json,sys
c=json.load(open(sys.argv[1]))
if sys.argv[3]!="auto": c["serving_mode"]=sys.argv[3]
json.dump(c,open(sys.argv[2],"w"))
PY
    for v in $3; do cp -r $EX/1 $1/breast_cancer_logreg/$v; done
    if [[ -n ${4:-} ]]; then echo "$4" > $1/breast_cancer_logreg/labels.json; fi
}
mk $W/cfg auto 1
mk $W/dyn dynamic 1
mk $W/lab dynamic "1 2" '{"stable":1,"canary":2,"canary_percent":50,"generation":1}'
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill $p 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'cleanup; rm -rf "$W"' EXIT
port=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])")
declare -A PORT METRICS
start() { # name bin repo
    local g=$port m=$((port+1)); port=$((port+2))
    $2 serve --repository $3 --host 127.0.0.1 --grpc-port $g --metrics-port $m --drain-seconds 0 > $W/$1.log 2>&1 &
    PIDS+=($!); PORT[$1]=$g; METRICS[$1]=$m
}
start before-cfg $B $W/cfg; start after-cfg $A $W/cfg
start before-dyn $B $W/dyn; start after-dyn $A $W/dyn
start after-lab $A $W/lab
for n in "${!METRICS[@]}"; do  # ready within 60 s, or give up
    for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:${METRICS[$n]}/v2/health/ready" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:${METRICS[$n]}/v2/health/ready" >/dev/null || { echo "ab.sh: $n not ready; see $W/$n.log" >&2; exit 1; }
done
$A bench --server 127.0.0.1:${PORT[after-cfg]} --model breast_cancer_logreg --batch 1 --dump-request $W/request.bin > /dev/null 2>&1
for r in $(seq 1 $ROUNDS); do
  for n in before-cfg after-cfg before-dyn after-dyn after-lab; do
    out=$(h2load -c 8 -m 16 -t 1 -D 5 --warm-up-time 1 -d $W/request.bin -H 'content-type: application/grpc' -H 'te: trailers' \
        http://127.0.0.1:${PORT[$n]}/inference.GRPCInferenceService/ModelInfer 2>&1)
    rps=$(echo "$out" | grep -oE 'finished in [0-9.]+s, [0-9.]+ req/s' | grep -oE '[0-9.]+ req/s' | cut -d' ' -f1)
    codes=$(echo "$out" | grep -E 'status codes' | tr -s ' ')
    echo "round $r $n $rps |$codes"
  done
done

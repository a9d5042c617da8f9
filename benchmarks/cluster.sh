#!/usr/bin/env bash
# Cluster benchmark (release build): what HAProxy and the extra hop cost, and what cache-affine
# routing buys. On a 2-core machine the figure that matters is the cost of the balancer, not
# scaling: replicas, HAProxy and the load generator share the same cores.
#   a) closed loop, CLUSTER_CONCURRENCY workers on 4 connections, breast_cancer_logreg
#      (serving_mode dynamic, every request distinct): throughput and p50/p99 of one replica
#      direct (the baseline) and 1, 2, 3 replicas through HAProxy (round robin).
#   b) Zipf(1.1) over 10^6 inputs on a `cached` copy (CLUSTER_CACHE_BYTES per replica), 3
#      replicas: hit ratio (from each replica's /metrics) and req/s, affine (--route-key) vs
#      round robin, beside one replica direct with 3x the cache.
# The configurations alternate, CLUSTER_REPS rounds; figures are medians over the rounds,
# ratios are beside the baseline (direct; round robin). Prints a table for the README.
# Knobs: CLUSTER_DURATION (s per run, default 5), CLUSTER_REPS (3), CLUSTER_CONCURRENCY (32),
# CLUSTER_CACHE_BYTES (262144), SWERVE_BUILD_DIR (.build), BENCH_SKIP_BUILD=1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DURATION=${CLUSTER_DURATION:-5}
REPS=${CLUSTER_REPS:-3}
CONCURRENCY=${CLUSTER_CONCURRENCY:-32}
CACHE_BYTES=${CLUSTER_CACHE_BYTES:-262144}
BUILD_DIR=${SWERVE_BUILD_DIR:-.build}
[[ ${BENCH_SKIP_BUILD:-0} == 1 ]] || swift build --scratch-path "$BUILD_DIR" -c release
BIN=${SWERVE_BIN:-$ROOT/$BUILD_DIR/release/swerve}
[[ -x $BIN ]] || { echo "cluster.sh: no $BIN" >&2; exit 1; }
export SWERVE_BIN=$BIN

WORK=$(mktemp -d)
CLUSTERS=()
cleanup() {
    local c
    for c in "${CLUSTERS[@]}"; do CLUSTER_DIR=$c deploy/local/cluster.sh down >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

repo() {  # dir serving_mode cache_bytes
    mkdir -p "$1"
    cp -r examples/repository/breast_cancer_logreg "$1/bc"
    python3 - "$1/bc/config.json" "$2" "$3" <<'PY'
import json, sys
path, mode, cache = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = json.load(open(path))
c["serving_mode"] = mode
if mode == "cached":
    c["response_cache"] = {"max_bytes": cache}
json.dump(c, open(path, "w"))
PY
}

up() {  # name n repository -> prints the state dir
    local dir=$WORK/$1
    CLUSTERS+=("$dir")
    CLUSTER_DIR=$dir deploy/local/cluster.sh up -n "$2" --repository "$3" --drain-seconds 0 >&2
}

bench() {  # endpoint json extra...
    local endpoint=$1 out=$2; shift 2
    "$BIN" bench --server "$endpoint" --model bc --duration "$DURATION" --warmup 1 --quiet --json "$out" "$@" >/dev/null
}

cache_counts() {  # metrics ports... -> "hits misses"
    local h=0 m=0 port
    for port in "$@"; do
        read -r a b < <(curl -s -m 5 "http://127.0.0.1:$port/metrics" |
            awk '/^swerve_cache_hits_total/ {h+=$NF} /^swerve_cache_misses_total/ {m+=$NF} END {printf "%d %d\n", h, m}')
        h=$((h + a)); m=$((m + b))
    done
    echo "$h $m"
}

repo "$WORK/dyn" dynamic 0
repo "$WORK/cached3" cached "$CACHE_BYTES"
repo "$WORK/cached1" cached $((3 * CACHE_BYTES))

# a) HAProxy cost. One cluster of 3; 1 and 2 replicas are the same cluster with the others
# in maintenance (HAProxy runtime API), so every configuration meets the same processes.
up hop 3 "$WORK/dyn"
HOP=$WORK/hop
HOP_EP=$(CLUSTER_DIR=$HOP deploy/local/cluster.sh endpoint)
R1_EP=127.0.0.1:$(cat "$HOP/replicas/r1.grpc")
haproxy_cmd() {
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode()+b"\n"); s.recv(65536)' "$HOP/haproxy.sock" "$1"
}
use_replicas() {  # n: r1..rn ready, the rest in maintenance
    local i
    for i in 1 2 3; do
        if ((i <= $1)); then haproxy_cmd "set server swerve_rr/r$i state ready"; else haproxy_cmd "set server swerve_rr/r$i state maint"; fi
    done
    sleep 1
}
for ((rep = 1; rep <= REPS; rep++)); do
    bench "$R1_EP" "$WORK/a-direct-$rep.json" --concurrency "$CONCURRENCY" --connections 4
    for n in 1 2 3; do
        use_replicas "$n"
        bench "$HOP_EP" "$WORK/a-haproxy$n-$rep.json" --concurrency "$CONCURRENCY" --connections 4
    done
done
use_replicas 3
CLUSTER_DIR=$HOP deploy/local/cluster.sh down >/dev/null

# b) affinity. Each run has its own seed (its own inputs), so no run profits from another's cache.
up aff 3 "$WORK/cached3"
up one 1 "$WORK/cached1"
AFF_EP=$(CLUSTER_DIR=$WORK/aff deploy/local/cluster.sh endpoint)
AFF_PORTS=$(cat "$WORK"/aff/replicas/*.metrics)
ONE_EP=127.0.0.1:$(cat "$WORK/one/replicas/r1.grpc")
ONE_PORTS=$(cat "$WORK/one/replicas/r1.metrics")
zipf_run() {  # label endpoint ports seed extra...
    local label=$1 endpoint=$2 ports=$3 seed=$4; shift 4
    read -r h0 m0 < <(cache_counts $ports)
    bench "$endpoint" "$WORK/b-$label-$seed.json" --concurrency "$CONCURRENCY" --connections 4 \
        --inputs zipf:1.1 --distinct 1000000 --seed "$seed" "$@"
    read -r h1 m1 < <(cache_counts $ports)
    python3 - "$WORK/b-$label-$seed.json" $((h1 - h0)) $((m1 - m0)) <<'PY'
import json, sys
path, h, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(path)); r["hit_ratio"] = h / max(1, h + m); json.dump(r, open(path, "w"))
PY
}
seed=100
for ((rep = 1; rep <= REPS; rep++)); do
    zipf_run rr "$AFF_EP" "$AFF_PORTS" $((seed++))
    zipf_run affine "$AFF_EP" "$AFF_PORTS" $((seed++)) --route-key
    zipf_run single "$ONE_EP" "$ONE_PORTS" $((seed++))
done

python3 - "$WORK" "$DURATION" "$REPS" "$CONCURRENCY" "$CACHE_BYTES" <<'PY'
import glob, json, statistics, sys
work, duration, reps, conc, cache = sys.argv[1:]
def runs(prefix):
    return [json.load(open(p)) for p in sorted(glob.glob(f"{work}/{prefix}-*.json"))]
def med(rs, f):
    return statistics.median(f(r) for r in rs)
rps = lambda r: r["throughput_rps"]
p50 = lambda r: r["latency_micros"]["p50"] / 1000
p99 = lambda r: r["latency_micros"]["p99"] / 1000
errs = lambda r: r["errors"]
print(f"\n### HAProxy cost (breast_cancer_logreg dynamic, closed loop {conc} workers / 4 connections, "
      f"{duration} s x {reps} alternating rounds, medians)\n")
print("| configuration | req/s | vs direct | p50 ms | p99 ms | failed |")
print("|---|---:|---:|---:|---:|---:|")
base = runs("a-direct")
b = med(base, rps)
for label, prefix in (("1 replica direct", "a-direct"), ("1 replica via HAProxy", "a-haproxy1"),
                      ("2 replicas via HAProxy", "a-haproxy2"), ("3 replicas via HAProxy", "a-haproxy3")):
    rs = runs(prefix)
    print(f"| {label} | {med(rs, rps):.0f} | {med(rs, rps) / b:.2f} | {med(rs, p50):.2f} | {med(rs, p99):.2f} | {sum(map(errs, rs))} |")
print(f"\n### Cache-affine routing (bc cached, {int(cache) // 1024} KiB cache per replica, Zipf(1.1) over 10^6 "
      f"inputs, closed loop {conc} workers, {duration} s x {reps} rounds, medians)\n")
print("| configuration | hit ratio | req/s | vs round robin | p99 ms | failed |")
print("|---|---:|---:|---:|---:|---:|")
rr = runs("b-rr")
for label, prefix in (("3 replicas, round robin", "b-rr"), ("3 replicas, affine (--route-key)", "b-affine"),
                      ("1 replica direct, 3x cache", "b-single")):
    rs = runs(prefix)
    print(f"| {label} | {med(rs, lambda r: r['hit_ratio']):.3f} | {med(rs, rps):.0f} | "
          f"{med(rs, rps) / med(rr, rps):.2f} | {med(rs, p99):.2f} | {sum(map(errs, rs))} |")
PY

#!/usr/bin/env bash
# The computed path against its anchors, in alternating rounds (the machine is shared and noisy):
#   1. h2load -c 8 -m 16: breast_cancer_logreg one row, `serving_mode` dynamic (computed on every
#      request) and `cached` (answered from the response cache), beside nghttpd serving a static
#      file of the response's size: req/s and the ratio to nghttpd per round.
#   2. h2load -c 1 -m 1: the same three, p50 and p99 per request (h2load --log-file), ratio to nghttpd;
#      beside them the stack's floor: the same request to a method the server does not have, which
#      the transport answers UNIMPLEMENTED after the same read, HTTP/2 and gRPC work and no model
#      work (what a lone request costs before any inference is done).
#   3. Batcher efficiency: digits_mlp, 64-row requests, `swerve bench` closed loop at concurrency 8,
#      rows/s beside `swerve bench --core` at batch 64 (the core alone, one thread), alternating.
# Usage: benchmarks/computed.sh            (release build of this tree)
#        SWERVE=/path/to/swerve ROUNDS=5 benchmarks/computed.sh
# Knobs: ROUNDS (3), SECONDS_PER_RUN (5), EXECUTION (config.json "execution" for the dynamic model;
# unset: the server's default).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-5}
if [[ -z ${SWERVE:-} ]]; then
    swift build -c release --scratch-path "${SWERVE_BUILD_DIR:-.build-release}" >&2
    SWERVE=$ROOT/${SWERVE_BUILD_DIR:-.build-release}/release/swerve
fi
command -v h2load >/dev/null && command -v nghttpd >/dev/null || { echo "computed.sh: needs h2load and nghttpd (make deps)" >&2; exit 1; }
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
log() { printf '== %s\n' "$*" >&2; }

EX=$ROOT/examples/repository
mk() {  # dir model mode
    mkdir -p "$1/$2"
    cp -r "$EX/$2/1" "$1/$2/1"
    python3 - "$EX/$2/config.json" "$1/$2/config.json" "$3" "${EXECUTION:-}" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["serving_mode"] = sys.argv[3]
if sys.argv[4]:
    c["execution"] = sys.argv[4]
json.dump(c, open(sys.argv[2], "w"))
PY
}
mk "$W/dyn" breast_cancer_logreg dynamic
mk "$W/cac" breast_cancer_logreg cached
mk "$W/mlp" digits_mlp dynamic
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
declare -A PORT
start() {  # name repo
    local g=$port m=$((port + 1)); port=$((port + 2))
    "$SWERVE" serve --repository "$2" --host 127.0.0.1 --grpc-port $g --metrics-port $m --drain-seconds 0 >"$W/$1.log" 2>&1 &
    PIDS+=($!); PORT[$1]=$g
    for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$m/v2/health/ready" >/dev/null && return; sleep 0.1; done
    echo "computed.sh: $1 not ready; see $W/$1.log" >&2; cat "$W/$1.log" >&2; exit 1
}
start dynamic "$W/dyn"; start cached "$W/cac"; start mlp "$W/mlp"
"$SWERVE" bench --server 127.0.0.1:${PORT[dynamic]} --model breast_cancer_logreg --batch 1 --dump-request "$W/request.bin" >/dev/null 2>&1
# nghttpd serves a file as long as Swerve's response body (the gRPC message with its 5-byte prefix).
response_bytes=$(h2load -n 100 -c 1 -d "$W/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:${PORT[dynamic]}/inference.GRPCInferenceService/ModelInfer" 2>&1 \
    | sed -nE 's/^traffic: .* \(([0-9]+)\) data.*/\1/p')
response_bytes=$((response_bytes / 100))
mkdir -p "$W/www"; head -c "$response_bytes" /dev/urandom >"$W/www/response.bin"
nport=$port; port=$((port + 1))
nghttpd --no-tls -d "$W/www" $nport >"$W/nghttpd.log" 2>&1 & PIDS+=($!)
sleep 0.5
declare -A URL=([dynamic]="http://127.0.0.1:${PORT[dynamic]}/inference.GRPCInferenceService/ModelInfer"
                [cached]="http://127.0.0.1:${PORT[cached]}/inference.GRPCInferenceService/ModelInfer"
                [nghttpd]="http://127.0.0.1:$nport/response.bin"
                [floor]="http://127.0.0.1:${PORT[dynamic]}/inference.GRPCInferenceService/NoSuchMethod")
h2() {  # name out-prefix args... (with --log-file OUT.log among args for per-request times)
    local name=$1 out=$2; shift 2
    h2load "$@" --warm-up-time 1 -D "$SECS" -d "$W/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
        "${URL[$name]}" >"$out.txt" 2>&1 || true
}
for r in $(seq 1 "$ROUNDS"); do
    for n in dynamic cached nghttpd; do
        log "round $r/$ROUNDS: h2load -c 8 -m 16 against $n"
        # No per-request log at 8x16: h2load writing a line per request (twice as many for the
        # faster server) took CPU from the servers it shares the two cores with.
        h2 $n "$W/c8-$n-$r" -c 8 -m 16 -t 1
        log "round $r/$ROUNDS: h2load -c 1 -m 1 against $n"
        h2 $n "$W/c1-$n-$r" -c 1 -m 1 -t 1 --log-file "$W/c1-$n-$r.log"
    done
    log "round $r/$ROUNDS: h2load -c 1 -m 1, an unimplemented method (the floor)"
    h2 floor "$W/c1-floor-$r" -c 1 -m 1 -t 1 --log-file "$W/c1-floor-$r.log"
    for rows in 64 16; do
        log "round $r/$ROUNDS: digits_mlp $rows-row requests at concurrency 8, then the core alone at batch $rows"
        "$SWERVE" bench --server 127.0.0.1:${PORT[mlp]} --model digits_mlp --batch $rows --concurrency 8 \
            --duration "$SECS" --warmup 1 --quiet --json "$W/mlp-server-$rows-$r.json" >/dev/null 2>&1 || true
        "$SWERVE" bench --core --model-file "$EX/digits_mlp/1/model.onnx" --batch $rows \
            --iterations $((SECS * 256000 / rows)) --json "$W/mlp-core-$rows-$r.json" >/dev/null 2>&1 || true
    done
done
python3 - "$W" "$ROUNDS" <<'PY'
import json, re, statistics, sys
w, rounds = sys.argv[1], int(sys.argv[2])
def rps(path):
    m = re.search(r"finished in [0-9.]+s, ([0-9.]+) req/s", open(path).read())
    return float(m.group(1)) if m else float("nan")
def errors(path):
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", open(path).read())
    return sum(int(x) for x in m.groups()[1:]) if m else -1
def pct(path, q):
    t = sorted(int(line.split("\t")[2]) for line in open(path) if line.strip())
    return t[min(len(t) - 1, int(q * len(t)))] if t else float("nan")
med = statistics.median
print("\n1. h2load -c 8 -m 16, req/s (ratio to nghttpd)")
print("| round | dynamic | cached | nghttpd | dynamic/nghttpd | cached/nghttpd | non-2xx |")
print("|---|---:|---:|---:|---:|---:|---:|")
rd, rc = [], []
for r in range(1, rounds + 1):
    d, c, n = (rps(f"{w}/c8-{x}-{r}.txt") for x in ("dynamic", "cached", "nghttpd"))
    e = sum(errors(f"{w}/c8-{x}-{r}.txt") for x in ("dynamic", "cached"))
    rd.append(d / n); rc.append(c / n)
    print(f"| {r} | {d:,.0f} | {c:,.0f} | {n:,.0f} | {d/n:.3f} | {c/n:.3f} | {e} |")
print(f"| median | | | | **{med(rd):.3f}** | **{med(rc):.3f}** | |")
print("\n2. h2load -c 1 -m 1, per-request µs p50 / p99 (ratio of p50 to nghttpd's); floor: an unimplemented method")
print("| round | dynamic | cached | floor | nghttpd | dynamic p50 ratio | cached p50 ratio | floor p50 ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
pd, pc, pf = [], [], []
for r in range(1, rounds + 1):
    v = {x: (pct(f"{w}/c1-{x}-{r}.log", 0.5), pct(f"{w}/c1-{x}-{r}.log", 0.99)) for x in ("dynamic", "cached", "floor", "nghttpd")}
    pd.append(v["dynamic"][0] / v["nghttpd"][0]); pc.append(v["cached"][0] / v["nghttpd"][0])
    pf.append(v["floor"][0] / v["nghttpd"][0])
    print(f"| {r} | {v['dynamic'][0]} / {v['dynamic'][1]} | {v['cached'][0]} / {v['cached'][1]} | "
          f"{v['floor'][0]} / {v['floor'][1]} | {v['nghttpd'][0]} / {v['nghttpd'][1]} | "
          f"{pd[-1]:.2f} | {pc[-1]:.2f} | {pf[-1]:.2f} |")
print(f"| median | | | | | **{med(pd):.2f}** | **{med(pc):.2f}** | **{med(pf):.2f}** |")
for rows in (64, 16):
    print(f"\n3. digits_mlp, {rows}-row requests, concurrency 8: server rows/s vs the core alone at batch {rows}")
    print("| round | server rows/s | core rows/s | ratio |")
    print("|---|---:|---:|---:|")
    eff = []
    for r in range(1, rounds + 1):
        try:
            s = json.load(open(f"{w}/mlp-server-{rows}-{r}.json")); c = json.load(open(f"{w}/mlp-core-{rows}-{r}.json"))
        except (OSError, ValueError):
            print(f"| {r} | failed | | |"); continue
        srows, crows = s["rows_per_second"], c["rows_per_second"]
        eff.append(srows / crows)
        print(f"| {r} | {srows:,.0f} | {crows:,.0f} | {srows/crows:.2f} |")
    if eff:
        print(f"| median | | | **{med(eff):.2f}** |")
PY

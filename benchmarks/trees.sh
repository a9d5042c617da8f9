#!/usr/bin/env bash
# Tree ensembles against the engines people use, single thread, same files, same rows
# (scripts/make_tree_models.py --bench: a 100-tree depth-6 LightGBM model on 50 features, a
# 500-tree depth-8 XGBoost model on 200 features, a 300-tree scikit-learn random forest on 30):
#   per-row µs at batch 1, 32 and 256 for Swerve (ONNX file and native file), onnxruntime (ONNX),
#   the library's own predict (native file) and treelite/tl2cgen-compiled C (native file, when
#   it installs), ROUNDS alternating rounds, medians of p50s;
# then the server end to end: h2load -c 8 -m 16 req/s of a one-row request to the LightGBM model
# (native file) beside the logistic regression example, both computed on every request.
# Usage: benchmarks/trees.sh           (release build of this tree)
#        SWERVE=/path/to/swerve ROUNDS=3 BATCHES="1 32 256" benchmarks/trees.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-2}
BATCHES=${BATCHES:-"1 32 256"}
SECS=${SECONDS_PER_RUN:-5}
PYTHON=$ROOT/.venv/bin/python
[[ -x $PYTHON ]] || PYTHON=$(command -v python3)
if [[ -z ${SWERVE:-} ]]; then
    swift build -c release --scratch-path "${SWERVE_BUILD_DIR:-.build-release}" >&2
    SWERVE=$ROOT/${SWERVE_BUILD_DIR:-.build-release}/release/swerve
fi
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
echo "making the benchmark models…" >&2
"$PYTHON" scripts/make_tree_models.py --bench "$W/m" >/dev/null
declare -A FEATURES=([lgb100]=50 [xgb500]=200 [rf300]=30)
declare -A NATIVE=([lgb100]=lgb100.lgb.txt [xgb500]=xgb500.xgb.json)
declare -A LIB=([lgb100]=lightgbm [xgb500]=xgboost)
treelite=yes
"$PYTHON" -c "import treelite, tl2cgen" 2>/dev/null || treelite=no
total=$((3 * $(echo $BATCHES | wc -w)))
step=0
for m in lgb100 xgb500 rf300; do
    f=${FEATURES[$m]}
    for b in $BATCHES; do
        step=$((step + 1))
        iters=$(( b == 1 ? 3000 : (b == 32 ? 400 : 80) ))
        for r in $(seq 1 "$ROUNDS"); do
            "$SWERVE" bench --core --model-file "$W/m/$m.onnx" --core-rows "$W/m/$m.f32" --batch "$b" --iterations "$iters" --json "$W/swerve-onnx-$m-$b-$r.json" >/dev/null
            "$PYTHON" benchmarks/tree_bench.py --engine ort --model-file "$W/m/$m.onnx" --rows-file "$W/m/$m.f32" --features "$f" --batch "$b" --iterations "$iters" --json "$W/ort-$m-$b-$r.json" >/dev/null
            if [[ -n ${NATIVE[$m]:-} ]]; then
                "$SWERVE" bench --core --model-file "$W/m/${NATIVE[$m]}" --core-rows "$W/m/$m.f32" --batch "$b" --iterations "$iters" --json "$W/swerve-native-$m-$b-$r.json" >/dev/null
                "$PYTHON" benchmarks/tree_bench.py --engine "${LIB[$m]}" --model-file "$W/m/${NATIVE[$m]}" --rows-file "$W/m/$m.f32" --features "$f" --batch "$b" --iterations "$iters" --json "$W/lib-$m-$b-$r.json" >/dev/null
                if [[ $treelite == yes ]]; then
                    "$PYTHON" benchmarks/tree_bench.py --engine treelite --model-file "$W/m/${NATIVE[$m]}" --rows-file "$W/m/$m.f32" --features "$f" --batch "$b" --iterations "$iters" --json "$W/treelite-$m-$b-$r.json" >/dev/null 2>&1
                fi
            fi
        done
        printf '[%d/%d] %s batch %s: %s iterations x %s rounds\n' "$step" "$total" "$m" "$b" "$iters" "$ROUNDS" >&2
    done
done
"$PYTHON" - "$W" "$ROUNDS" "$BATCHES" "$treelite" <<'PY'
import json, os, statistics, sys
w, rounds, batches, treelite = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4]
def per_row(kind, m, b):
    runs = []
    for r in range(1, rounds + 1):
        path = f"{w}/{kind}-{m}-{b}-{r}.json"
        if os.path.exists(path):
            d = json.load(open(path))
            runs.append(d.get("p50_micros") / int(b))
    return statistics.median(runs) if runs else None
def cell(v):
    return "—" if v is None else f"{v:,.3f}"
print(f"Per-row µs (p50 per batch / batch), median of {rounds} alternating rounds; ratios are the other engine's time / Swerve's (above 1: Swerve faster).")
print()
print("| model | batch | Swerve (ONNX) | onnxruntime | vs ort | Swerve (native) | library predict | vs library | treelite C | vs treelite |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for m in ("lgb100", "xgb500", "rf300"):
    for b in batches:
        so, o = per_row("swerve-onnx", m, b), per_row("ort", m, b)
        sn, lib, tl = per_row("swerve-native", m, b), per_row("lib", m, b), per_row("treelite", m, b)
        ratio = lambda a, s: "—" if a is None or s is None else f"{a / s:.2f}x"
        print(f"| {m} | {b} | {cell(so)} | {cell(o)} | {ratio(o, so)} | {cell(sn)} | {cell(lib)} | {ratio(lib, sn)} | {cell(tl)} | {ratio(tl, sn)} |")
if treelite != "yes":
    print("\ntreelite/tl2cgen did not install: no compiled-C column.")
PY

# The server end to end.
EX=$ROOT/examples/repository
mkdir -p "$W/repo/gbdt/1" "$W/repo/logreg/1"
cp "$W/m/lgb100.lgb.txt" "$W/repo/gbdt/1/model.lgb.txt"
echo '{"max_batch_size": 64, "serving_mode": "dynamic"}' > "$W/repo/gbdt/config.json"
cp -r "$EX/breast_cancer_logreg/1/." "$W/repo/logreg/1/"
"$PYTHON" - "$EX/breast_cancer_logreg/config.json" "$W/repo/logreg/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["serving_mode"] = "dynamic"; json.dump(c, open(sys.argv[2], "w"))
PY
port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$SWERVE" serve --repository "$W/repo" --host 127.0.0.1 --grpc-port "$port" --metrics-port $((port + 1)) --drain-seconds 0 >"$W/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$((port + 1))/v2/health/ready" >/dev/null && break; sleep 0.1; done
"$SWERVE" bench --server 127.0.0.1:$port --model gbdt --batch 1 --dump-request "$W/gbdt.bin" >/dev/null 2>&1
"$SWERVE" bench --server 127.0.0.1:$port --model logreg --batch 1 --dump-request "$W/logreg.bin" >/dev/null 2>&1
echo
echo "Server, h2load -c 8 -m 16, one-row requests computed on every request (req/s):"
echo
echo "| round | LightGBM 100 trees (native file) | logistic regression | ratio |"
echo "|---|---:|---:|---:|"
for r in $(seq 1 "$ROUNDS"); do
    rate() {
        h2load -c 8 -m 16 -t 1 -D "$SECS" --warm-up-time 1 -d "$W/$1.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
            "http://127.0.0.1:$port/inference.GRPCInferenceService/ModelInfer" 2>&1 | sed -nE 's/^finished in .*s, ([0-9.]+) req\/s.*/\1/p'
    }
    g=$(rate gbdt); l=$(rate logreg)
    echo "| $r | ${g%.*} | ${l%.*} | $("$PYTHON" -c "print(f'{$g / $l:.2f}')") |"
done

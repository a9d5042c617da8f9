#!/usr/bin/env bash
# The inference core beside onnxruntime on the operator mix people export (benchmarks/
# make_core_models.py: MLPs with Relu, Tanh, Sigmoid, GELU and LayerNorm, Softmax heads, narrow to
# extra wide), batches 1, 32 and 256, one thread each, same files, in one run. Each (model, batch)
# runs Swerve then onnxruntime, ROUNDS times alternating; the table gives the medians of the
# per-run medians (p50 µs per batch) and Swerve's speed (onnxruntime's time / Swerve's).
# Usage: benchmarks/core.sh            (release build of this tree)
#        SWERVE=/path/to/swerve ROUNDS=3 BATCHES="1 32 256" benchmarks/core.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-2}
BATCHES=${BATCHES:-"1 32 256"}
PYTHON=$ROOT/.venv/bin/python
[[ -x $PYTHON ]] || PYTHON=$(command -v python3)
if [[ -z ${SWERVE:-} ]]; then
    swift build -c release --scratch-path "${SWERVE_BUILD_DIR:-.build-release}" >&2
    SWERVE=$ROOT/${SWERVE_BUILD_DIR:-.build-release}/release/swerve
fi
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
MODELS=$("$PYTHON" benchmarks/make_core_models.py "$W/models")
total=$(( $(echo "$MODELS" | wc -l) * $(echo $BATCHES | wc -w) ))
step=0
for m in $MODELS; do
    for b in $BATCHES; do
        step=$((step + 1))
        file=$W/models/$m.onnx
        # About a second per run: calibrate the iteration count on a short Swerve run.
        "$SWERVE" bench --core --model-file "$file" --batch "$b" --iterations 20 --json "$W/cal.json" >/dev/null
        iters=$("$PYTHON" -c "import json; t = json.load(open('$W/cal.json'))['mean_micros']; print(max(20, min(20000, int(1e6 / max(t, 1e-3)))))")
        for r in $(seq 1 "$ROUNDS"); do
            "$SWERVE" bench --core --model-file "$file" --batch "$b" --iterations "$iters" --json "$W/s-$m-$b-$r.json" >/dev/null
            "$PYTHON" benchmarks/ort_bench.py --model-file "$file" --batch "$b" --iterations "$iters" --json "$W/o-$m-$b-$r.json" >/dev/null
        done
        printf '[%d/%d] %s batch %s: %s iterations x %s rounds\n' "$step" "$total" "$m" "$b" "$iters" "$ROUNDS" >&2
    done
done
"$PYTHON" - "$W" "$ROUNDS" "$BATCHES" $MODELS <<'PY'
import json, statistics, sys
w, rounds, batches, models = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
print("| model | batch | Swerve µs | onnxruntime µs | Swerve speed (ort / Swerve) |")
print("|---|---:|---:|---:|---:|")
worst = {}
for m in models:
    for b in batches:
        s = statistics.median(json.load(open(f"{w}/s-{m}-{b}-{r}.json"))["p50_micros"] for r in range(1, rounds + 1))
        o = statistics.median(json.load(open(f"{w}/o-{m}-{b}-{r}.json"))["p50_micros"] for r in range(1, rounds + 1))
        worst[b] = min(worst.get(b, float("inf")), o / s)
        print(f"| {m} | {b} | {s:,.2f} | {o:,.2f} | {o / s:.2f}x |")
print()
for b in batches:
    print(f"slowest model at batch {b}: {worst[b]:.2f}x onnxruntime's speed")
PY

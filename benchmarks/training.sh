#!/usr/bin/env bash
# Training benchmark: Swerve's trainer beside scikit-learn (and PyTorch CPU when the venv has it),
# on the same machine, data and split, in one run.
#
# Data: a synthetic binary task (TRAIN_ROWS × TRAIN_FEATURES standard-normal features, label drawn
# from a logistic model with pairwise interactions), generated once with numpy and a fixed seed and
# cached as CSV under $TRAIN_DATA_DIR. Every model trains on Swerve's own split of it (70% train,
# 10% validation, 20% holdout; recomputed in training_bench.py) with features standardized on the
# training rows, batch 256, Adam, the same L2 objective:
#   logistic: Swerve `--model logistic` (Adam, lr 0.002) vs LogisticRegression(lbfgs, C = 1/(l2·n))
#   mlp:      Swerve `--model mlp --hidden 64` vs MLPClassifier((64,), adam, lr 0.001, alpha = l2·batch)
# Figures: training throughput (examples/s over the training passes, validation scoring excluded),
# training seconds until the validation log loss first reaches a target (the worst final loss among
# the compared runs + a margin, so every run reaches it), the final validation log loss, and
# Swerve's data-parallel speed-up with --threads 2 vs 1 (same seed; release build).
# Results: benchmarks/results/training.json.
#
# Knobs (environment): TRAIN_ROWS (200000), TRAIN_FEATURES (64), TRAIN_SEED (7),
# TRAIN_MLP_EPOCHS (15), TRAIN_LOGISTIC_EPOCHS (20), TRAIN_THREADS (2), TRAIN_DATA_DIR
# (/tmp/swerve-bench-training/rROWS_fFEATURES_sSEED), SWERVE_BUILD_DIR (.build),
# BENCH_SKIP_BUILD=1 to use an existing release binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROWS=${TRAIN_ROWS:-200000}
FEATURES=${TRAIN_FEATURES:-64}
SEED=${TRAIN_SEED:-7}
MLP_EPOCHS=${TRAIN_MLP_EPOCHS:-15}
LOGISTIC_EPOCHS=${TRAIN_LOGISTIC_EPOCHS:-20}
THREADS=${TRAIN_THREADS:-2}
BUILD_DIR=${SWERVE_BUILD_DIR:-.build}
DATA=${TRAIN_DATA_DIR:-${TMPDIR:-/tmp}/swerve-bench-training/r${ROWS}_f${FEATURES}_s${SEED}}
RESULTS=$ROOT/benchmarks/results
PYTHON=$ROOT/.venv/bin/python
[[ -x $PYTHON ]] || PYTHON=$(command -v python3)
HELPER=$ROOT/benchmarks/training_bench.py
BATCH=256
L2=1e-4
HIDDEN=64
MLP_LR=0.001
LOGISTIC_LR=0.002

log() { printf '\n== %s\n' "$*" >&2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STARTED=$(date +%s)

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "release build ($BUILD_DIR)"
    swift build -c release --scratch-path "$BUILD_DIR" --product swerve >&2
fi
SWERVE=$BUILD_DIR/release/swerve
[[ -x $SWERVE ]] || { echo "training.sh: no release binary at $SWERVE" >&2; exit 1; }

log "data: $ROWS rows x $FEATURES features, seed $SEED"
"$PYTHON" "$HELPER" gen "$DATA" --rows "$ROWS" --features "$FEATURES" --seed "$SEED"

COMMON=(--seed "$SEED" --validation 0.1 --holdout 0.2 --l2 "$L2" --batch-size "$BATCH" --hidden "$HIDDEN"
        --mlp-lr "$MLP_LR" --mlp-epochs "$MLP_EPOCHS" --logistic-lr "$LOGISTIC_LR" --logistic-epochs "$LOGISTIC_EPOCHS"
        --threads "$THREADS")

# Swerve: logistic and MLP, THREADS and 1 thread, same seed. metrics.json holds each epoch's
# validation loss and training examples/s.
WALL="{"
for kind in logistic mlp; do
    for t in $(printf '%s\n' "$THREADS" 1 | awk '!seen[$0]++'); do
        if [[ $kind == mlp ]]; then args=(--model mlp --hidden "$HIDDEN" --lr "$MLP_LR" --epochs "$MLP_EPOCHS")
        else args=(--model logistic --lr "$LOGISTIC_LR" --epochs "$LOGISTIC_EPOCHS"); fi
        log "swerve $kind, $t thread(s)"
        s0=$(date +%s.%N)
        "$SWERVE" train --data "$DATA/train.csv" --schema "$DATA/schema.json" "${args[@]}" --optimizer adam \
            --l2 "$L2" --batch-size "$BATCH" --patience 0 --threads "$t" --seed "$SEED" --validation 0.1 --holdout 0.2 \
            --name "bench-$kind" --output "$WORK/$kind-t$t" >"$WORK/$kind-t$t.log" 2>&1 \
            || { cat "$WORK/$kind-t$t.log" >&2; exit 1; }
        s1=$(date +%s.%N)
        grep -E '^epoch' "$WORK/$kind-t$t.log" | tail -n 2 >&2
        WALL+="\"${kind}_t$t\": $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.3f", b - a }'),"
    done
done
WALL="${WALL%,}}"

log "baselines (scikit-learn$("$PYTHON" -c 'import torch' 2>/dev/null && echo ', PyTorch CPU'))"
"$PYTHON" "$HELPER" baselines "$DATA" "${COMMON[@]}" --out "$WORK/baselines.json"

log "report"
"$PYTHON" "$HELPER" report "${COMMON[@]}" --baselines "$WORK/baselines.json" --wall "$WALL" \
    --swerve "logistic_t$THREADS=$WORK/logistic-t$THREADS/metrics.json" "logistic_t1=$WORK/logistic-t1/metrics.json" \
             "mlp_t$THREADS=$WORK/mlp-t$THREADS/metrics.json" "mlp_t1=$WORK/mlp-t1/metrics.json" \
    --out "$RESULTS/training.json"
echo "total $(( $(date +%s) - STARTED ))s"

#!/usr/bin/env bash
# Runs Triton's perf_analyzer (installed into the venv by scripts/setup-venv.sh) with the
# libcudart it links on LD_LIBRARY_PATH (no GPU is needed for -i grpc against a CPU server).
# Example, against `make run`:
#   scripts/perf-analyzer.sh -i grpc -u 127.0.0.1:8001 -m breast_cancer_logreg --concurrency-range 1:4
set -euo pipefail
venv=${VENV:-"$(cd "$(dirname "$0")/.." && pwd)/.venv"}
exe="$venv/bin/perf_analyzer"
libs=$(compgen -G "$venv/lib/python*/site-packages/nvidia/cuda_runtime/lib" | head -n1 || true)
if [ ! -x "$exe" ] || [ -z "$libs" ]; then
  echo "perf_analyzer is not installed in $venv: run scripts/setup-venv.sh (make venv)" >&2
  exit 1
fi
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$exe" "$@"

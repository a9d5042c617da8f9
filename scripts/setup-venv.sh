#!/usr/bin/env bash
# Creates the Python venv for the interop tests and examples/make_examples.py,
# and installs IntegrationTests/interop/requirements.txt into it. Skips the install when
# the stamp shows the same requirements (and the same python) were installed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
req=IntegrationTests/interop/requirements.txt
stamp="$venv/.swerve-requirements.stamp"
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv"
  "$python" -m venv "$venv"
fi

want="$(sha256sum "$req" | cut -d' ' -f1) $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
if ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing $req into $venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
  echo "$want" > "$stamp"
fi

# Triton's perf_analyzer, for the ModelStatistics interop test (test_statistics.py). The
# tritonclient manylinux wheel ships the binary as $venv/bin/perf_analyzer; it links libcudart.so.12
# (from nvidia-cuda-runtime-cu12, under site-packages/nvidia/cuda_runtime/lib: no GPU needed, see
# scripts/perf-analyzer.sh) and libb64.so.0d (apt libb64-0d, in the Makefile's APT_PKGS).
# --no-deps: tritonclient[all] pins numpy<2 and protobuf<5, which would downgrade what onnx and
# grpcio-tools need here; the binary uses none of its Python dependencies.
if ! [ -x "$venv/bin/perf_analyzer" ] || ! compgen -G "$venv/lib/python*/site-packages/nvidia/cuda_runtime/lib/libcudart.so.12" >/dev/null; then
  echo "installing perf_analyzer (tritonclient 2.50.0) into $venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q --no-deps \
    "tritonclient==2.50.0" "nvidia-cuda-runtime-cu12==12.9.79"
fi

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
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "installing $req into $venv"
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
echo "$want" > "$stamp"

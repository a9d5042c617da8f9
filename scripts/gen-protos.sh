#!/usr/bin/env bash
# Regenerates the committed protobuf-c code in Sources/CSwerveProto from protos/.
# Needs protoc-c (Debian: protobuf-c-compiler). Run after changing any .proto.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc-c >/dev/null || { echo "protoc-c missing: apt-get install protobuf-c-compiler" >&2; exit 1; }
out=Sources/CSwerveProto
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
protoc-c --proto_path=protos --c_out="$tmp" protos/*.proto
for f in "$tmp"/*.pb-c.c; do cp "$f" "$out/"; done
for f in "$tmp"/*.pb-c.h; do cp "$f" "$out/include/"; done
# The generated .c files include their header as "name.pb-c.h"; it lives in include/.
sed -i 's|#include "\([a-z_]*\.pb-c\.h\)"|#include "\1"|' "$out"/*.pb-c.c
echo "generated: $(ls "$out"/*.pb-c.c | xargs -n1 basename | tr '\n' ' ')"

#!/usr/bin/env bash
# gRPC over TLS vs cleartext on the same release binary and model: two `swerve serve` processes
# (one with --tls-cert/--tls-key) on the example repository, loaded in turn by h2load with the
# same one-row ModelInfer body (`swerve bench --dump-request`), in alternating rounds (single
# runs on a shared 2-core machine vary by ±10%). Prints each round's req/s and mean latency and
# the TLS/cleartext ratios. A throwaway CA and certificate are made with openssl.
#
# Knobs (environment): TLS_ROUNDS (3), H2LOAD_ARGS ("-c 8 -m 16 -t 1 -D 5"), TLS_MODEL
# (breast_cancer_logreg), SWERVE (.build/release/swerve; built when missing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${TLS_ROUNDS:-3}
read -r -a H2_ARGS <<<"${H2LOAD_ARGS:--c 8 -m 16 -t 1 -D 5}"
MODEL=${TLS_MODEL:-breast_cancer_logreg}
SWERVE=${SWERVE:-$ROOT/.build/release/swerve}
for tool in h2load openssl; do command -v $tool >/dev/null || { echo "tls.sh: needs $tool" >&2; exit 1; }; done
[[ -x $SWERVE ]] || swift build -c release --scratch-path .build >&2

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=swerve bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
    -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
    -extfile ext.cnf 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PLAIN=$(free_port); TLS=$(free_port)
"$SWERVE" serve --repository "$ROOT/examples/repository" --grpc-port "$PLAIN" --metrics-port 0 >plain.log 2>&1 &
PIDS+=($!)
"$SWERVE" serve --repository "$ROOT/examples/repository" --grpc-port "$TLS" --metrics-port 0 \
    --tls-cert server.pem --tls-key server.key >tls.log 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    "$SWERVE" models --server "127.0.0.1:$PLAIN" >/dev/null 2>&1 \
        && "$SWERVE" models --server "127.0.0.1:$TLS" --ca-cert ca.pem >/dev/null 2>&1 && break
    sleep 0.2
done
"$SWERVE" bench --server "127.0.0.1:$TLS" --ca-cert ca.pem --model "$MODEL" --batch 1 --dump-request request.bin >&2

run() {  # run SCHEME PORT -> "req/s mean_ms"
    local out
    out=$(h2load "${H2_ARGS[@]}" -d request.bin -H 'content-type: application/grpc' -H 'te: trailers' \
        "$1://127.0.0.1:$2/inference.GRPCInferenceService/ModelInfer" 2>&1)
    grep -q ' 0 failed, 0 errored' <<<"$out" || { echo "$out" >&2; echo "tls.sh: h2load saw errors" >&2; exit 1; }
    local rps mean unit
    rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
    read -r mean unit < <(awk '/^time for request:/ {v=$6; sub(/[a-z]+$/, "", v); u=$6; sub(/^[0-9.]+/, "", u); print v, u}' <<<"$out")
    case $unit in us) mean=$(awk -v v="$mean" 'BEGIN {print v / 1000}') ;; s) mean=$(awk -v v="$mean" 'BEGIN {print v * 1000}') ;; esac
    echo "$rps $mean"
}

echo "h2load ${H2_ARGS[*]}, $MODEL one row, $ROUNDS alternating rounds"
printf '%-6s %12s %12s %12s %12s %9s %9s\n' round "clear req/s" "tls req/s" "clear ms" "tls ms" "rps ratio" "lat ratio"
for round in $(seq 1 "$ROUNDS"); do
    read -r crps cms < <(run http "$PLAIN")
    read -r trps tms < <(run https "$TLS")
    printf '%-6s %12s %12s %12s %12s %9.3f %9.3f\n' "$round" "$crps" "$trps" "$cms" "$tms" \
        "$(awk -v a="$trps" -v b="$crps" 'BEGIN {print a / b}')" "$(awk -v a="$tms" -v b="$cms" 'BEGIN {print a / b}')"
done

#!/usr/bin/env bash
# A local Swerve cluster: N replicas on one repository behind HAProxy, all on 127.0.0.1 on
# free ports, every process tracked by PID in a state directory.
#
#   cluster.sh up [-n N] [--repository DIR] [--port P] [--drain-seconds S] [-- SERVE-ARGS...]
#   cluster.sh add                 start one more replica and put it into rotation
#   cluster.sh remove [NAME]       SIGTERM a replica (the last by default): it drains, leaves
#                                  rotation by its failing health check, exits; then HAProxy forgets it
#   cluster.sh kill NAME           SIGKILL a replica (failure drills); it stays configured, DOWN
#   cluster.sh restart NAME        start a stopped or killed replica again on its ports
#   cluster.sh status              replicas, their readiness, HAProxy's view
#   cluster.sh endpoint            the gRPC endpoint (host:port)
#   cluster.sh replicas            the replicas' own gRPC addresses, host:port,... (swerve rollout --replicas)
#   cluster.sh down                stop everything by PID
#
# Environment: SWERVE_BIN (default .build/release/swerve), CLUSTER_DIR (default .cluster),
# HAPROXY (default haproxy), CLUSTER_WAIT (seconds any one wait may take, default 60),
# CLUSTER_RETRY_ON (HAProxy's retry-on, default "conn-failure empty-response"; "none" to see
# what the replicas' drain achieves without HAProxy's replays), CLUSTER_POLL_INTERVAL (seconds
# between the replicas' repository scans, default 1: how soon they see new versions and labels).
# SERVE-ARGS after "--" go to every replica's `swerve serve` (e.g. -- --cache-bytes 1000000).
# Clients sending x-swerve-route-key are routed by it (consistent hashing); others round robin.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
STATE=${CLUSTER_DIR:-$PWD/.cluster}
HAPROXY=${HAPROXY:-haproxy}
WAIT=${CLUSTER_WAIT:-60}
TEMPLATE=$root/deploy/haproxy/haproxy.cfg.in

die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { echo "cluster.sh: $*" >&2; }

# What HAProxy replays on another replica ("none" shows what the replicas alone achieve).
RETRY_ON=${CLUSTER_RETRY_ON:-conn-failure empty-response}
[[ $RETRY_ON =~ ^[a-z0-9\ -]+$ ]] || die "CLUSTER_RETRY_ON must be HAProxy retry-on keywords, not '$RETRY_ON'"

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# A port nobody listens on now (the kernel's pick; a race with other programs is possible).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# One command to HAProxy's runtime API; prints the answer.
hapx() {
    python3 - "$STATE/haproxy.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode(errors="replace"))
PY
}

# HTTP status of a replica's readiness endpoint ("000" when nothing answers).
ready_code() {
    curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$1/v2/health/ready" 2>/dev/null || true
}

# Waits (bounded by $WAIT) until `cmd...` succeeds; $1 says what for.
wait_for() {  # what, probe...: 0 when the probe succeeds; 1 on timeout or when it returns 2 (never will)
    local what=$1; shift
    local deadline=$((SECONDS + WAIT)) rc
    while true; do
        rc=0
        "$@" || rc=$?
        ((rc == 0)) && return 0
        ((rc == 2)) && { log "stopped waiting for $what"; return 1; }
        ((SECONDS < deadline)) || { log "gave up after ${WAIT}s waiting for $what"; return 1; }
        sleep 0.1
    done
}

load_state() {
    [[ -f $STATE/cluster.env ]] || die "no cluster in $STATE (cluster.sh up first)"
    # shellcheck disable=SC1091
    source "$STATE/cluster.env"
}

replicas() {  # names of configured replicas, in order
    local f
    for f in "$STATE"/replicas/*.grpc; do [[ -e $f ]] && basename "$f" .grpc; done | sort -V
}

server_line() {  # name grpc-port metrics-port
    echo "server $1 127.0.0.1:$2 proto h2 check port $3 check-proto h1 inter 250ms fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down"
}

render_config() {
    local servers="" name
    for name in $(replicas); do
        servers+="    $(server_line "$name" "$(cat "$STATE/replicas/$name.grpc")" "$(cat "$STATE/replicas/$name.metrics")")"$'\n'
    done
    local out=$STATE/haproxy.cfg.tmp
    python3 - "$TEMPLATE" "$out" "$FRONTEND_PORT" "$STATS_PORT" "$STATE" "$servers" "$BIND_HOST" "$RETRY_ON" <<'PY'
import sys
template, out, port, stats, state, servers, host, retry_on = sys.argv[1:]
text = open(template).read()
for key, value in (("@FRONTEND_PORT@", port), ("@STATS_PORT@", stats), ("@STATE_DIR@", state),
                   ("@SERVERS@", servers.rstrip("\n")), ("@BIND_HOST@", host), ("@RETRY_ON@", retry_on)):
    text = text.replace(key, value)
open(out, "w").write(text)
PY
    mv "$out" "$STATE/haproxy.cfg"
}

start_replica() {  # name: starts it on its recorded ports, waits until ready
    local name=$1
    local grpc metrics pid
    grpc=$(cat "$STATE/replicas/$name.grpc")
    metrics=$(cat "$STATE/replicas/$name.metrics")
    if alive "$(cat "$STATE/replicas/$name.pid" 2>/dev/null)"; then die "$name is running"; fi
    # shellcheck disable=SC2086
    "$SWERVE_BIN" serve --repository "$REPOSITORY" --host 127.0.0.1 --grpc-port "$grpc" --metrics-port "$metrics" \
        --drain-seconds "$DRAIN_SECONDS" --poll-interval "${CLUSTER_POLL_INTERVAL:-1}" "${SERVE_ARGS[@]}" >>"$STATE/replicas/$name.log" 2>&1 &
    pid=$!
    echo "$pid" >"$STATE/replicas/$name.pid"
    if ! wait_for "$name (pid $pid) to be ready on :$metrics" replica_ready "$pid" "$metrics"; then
        tail -5 "$STATE/replicas/$name.log" >&2 || true
        # Not left running half-started: stop it (bounded) before reporting the failure.
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            local deadline=$((SECONDS + 10))
            while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
            alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
        fi
        return 1
    fi
    log "$name ready: pid $pid, grpc 127.0.0.1:$grpc, metrics 127.0.0.1:$metrics"
}

replica_ready() {
    alive "$1" || { log "replica pid $1 exited"; return 2; }
    [[ $(ready_code "$2") == 200 ]]
}

# HAProxy's status of server $2 in backend $1 (UP, DOWN, MAINT, ...), from "show stat".
server_status() {
    hapx "show stat" | awk -F, -v be="$1" -v sv="$2" '$1==be && $2==sv {print $18}'
}

server_up_everywhere() {
    [[ $(server_status swerve_rr "$1") == UP* && $(server_status swerve_affine "$1") == UP* ]]
}

cmd_up() {
    local n=3 repository=$root/examples/repository port="" drain=5 host=127.0.0.1
    SERVE_ARGS=()
    while (($#)); do
        case $1 in
            -n) n=$2; shift 2 ;;
            --repository) repository=$2; shift 2 ;;
            --port) port=$2; shift 2 ;;
            --drain-seconds) drain=$2; shift 2 ;;
            --) shift; SERVE_ARGS=("$@"); break ;;
            *) die "up: unknown argument $1" ;;
        esac
    done
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 64)) || die "-n must be 1..64"
    [[ -d $repository ]] || die "no repository at $repository"
    SWERVE_BIN=${SWERVE_BIN:-$root/.build/release/swerve}
    [[ -x $SWERVE_BIN ]] || die "no swerve binary at $SWERVE_BIN (make release, or set SWERVE_BIN)"
    command -v "$HAPROXY" >/dev/null || die "no $HAPROXY (make deps installs it)"
    if [[ -f $STATE/cluster.env ]]; then
        local pid
        for pid in $(cat "$STATE"/replicas/*.pid "$STATE/haproxy.pid" 2>/dev/null); do
            alive "$pid" && die "a cluster is running in $STATE (cluster.sh down first)"
        done
        rm -rf "$STATE"
    fi
    mkdir -p "$STATE/replicas"
    FRONTEND_PORT=${port:-$(free_port)}
    STATS_PORT=$(free_port)
    REPOSITORY=$(cd "$repository" && pwd)
    DRAIN_SECONDS=$drain
    BIND_HOST=$host
    SWERVE_BIN=$(cd "$(dirname "$SWERVE_BIN")" && pwd)/$(basename "$SWERVE_BIN")
    {
        # -g: the file is sourced inside a function (load_state).
        declare -p FRONTEND_PORT STATS_PORT REPOSITORY DRAIN_SECONDS BIND_HOST SWERVE_BIN SERVE_ARGS RETRY_ON |
            sed -e 's/^declare -- /declare -g /' -e 's/^declare -\([a-z]\)/declare -g\1/'
        echo "NEXT_REPLICA=$((n + 1))"
    } >"$STATE/cluster.env"
    local i
    for ((i = 1; i <= n; i++)); do
        free_port >"$STATE/replicas/r$i.grpc"
        free_port >"$STATE/replicas/r$i.metrics"
        start_replica "r$i" || { cmd_down; die "replica r$i did not start"; }
    done
    render_config
    "$HAPROXY" -c -q -f "$STATE/haproxy.cfg" || { cmd_down; die "haproxy rejects $STATE/haproxy.cfg"; }
    "$HAPROXY" -D -f "$STATE/haproxy.cfg" >>"$STATE/haproxy.log" 2>&1 || { cmd_down; die "haproxy did not start (see $STATE/haproxy.log)"; }
    wait_for "haproxy's stats socket" test -S "$STATE/haproxy.sock" || { cmd_down; die "haproxy did not start"; }
    for ((i = 1; i <= n; i++)); do
        wait_for "HAProxy to see r$i UP" server_up_everywhere "r$i" || { cmd_down; die "r$i never came UP in HAProxy"; }
    done
    echo "cluster up: $n replicas behind HAProxy at 127.0.0.1:$FRONTEND_PORT (gRPC, HTTP/2 cleartext)"
    echo "stats: http://127.0.0.1:$STATS_PORT/   state: $STATE"
}

cmd_add() {
    load_state
    local name=r$NEXT_REPLICA
    free_port >"$STATE/replicas/$name.grpc"
    free_port >"$STATE/replicas/$name.metrics"
    sed -i "s/^NEXT_REPLICA=.*/NEXT_REPLICA=$((NEXT_REPLICA + 1))/" "$STATE/cluster.env"
    start_replica "$name" || { rm -f "$STATE/replicas/$name".{grpc,metrics}; die "$name did not start"; }
    local line be answer
    line=$(server_line "$name" "$(cat "$STATE/replicas/$name.grpc")" "$(cat "$STATE/replicas/$name.metrics")")
    for be in swerve_rr swerve_affine; do
        answer=$(hapx "add server $be/${line#server }")
        [[ $answer == *"New server registered"* ]] || die "HAProxy refused $name in $be: $answer"
        hapx "enable health $be/$name" >/dev/null
        hapx "enable server $be/$name" >/dev/null
    done
    # The file keeps what the running HAProxy holds, for a reload.
    render_config
    wait_for "HAProxy to see $name UP" server_up_everywhere "$name" || die "$name never came UP in HAProxy"
    echo "$name added"
}

cmd_remove() {
    load_state
    local name=${1:-$(replicas | tail -1)}
    [[ -n $name && -f $STATE/replicas/$name.grpc ]] || die "no replica ${name:-left}"
    local pid
    pid=$(cat "$STATE/replicas/$name.pid" 2>/dev/null || true)
    if alive "$pid"; then
        kill -TERM "$pid"
        # The replica answers 503 on readiness at once and goes on serving through its drain
        # delay; HAProxy's checks take it out of rotation, then it exits by itself.
        local limit=$((DRAIN_SECONDS + 45))  # drain + final GOAWAY (≤ 2 s) + --shutdown-timeout (30 s) + spare
        local deadline=$((SECONDS + limit))
        while alive "$pid"; do
            ((SECONDS < deadline)) || { log "$name did not exit within ${limit}s; SIGKILL"; kill -KILL "$pid"; break; }
            sleep 0.1
        done
    fi
    local be answer deadline
    for be in swerve_rr swerve_affine; do
        hapx "set server $be/$name state maint" >/dev/null
        deadline=$((SECONDS + 10))
        while :; do
            answer=$(hapx "del server $be/$name")
            [[ $answer == *"Server deleted"* ]] && break
            ((SECONDS < deadline)) || { log "HAProxy keeps $be/$name (in maintenance): $answer"; break; }
            hapx "shutdown sessions server $be/$name" >/dev/null || true
            sleep 0.2
        done
    done
    rm -f "$STATE/replicas/$name".{grpc,metrics,pid}
    render_config
    echo "$name removed"
}

cmd_kill() {
    load_state
    local name=${1:?kill NAME}
    local pid
    pid=$(cat "$STATE/replicas/$name.pid" 2>/dev/null || true)
    alive "$pid" || die "$name is not running"
    kill -KILL "$pid"
    echo "$name (pid $pid) killed"
}

cmd_restart() {
    load_state
    local name=${1:?restart NAME}
    [[ -f $STATE/replicas/$name.grpc ]] || die "no replica $name"
    start_replica "$name" || die "$name did not start"
    wait_for "HAProxy to see $name UP" server_up_everywhere "$name" || die "$name never came UP in HAProxy"
    echo "$name restarted"
}

cmd_status() {
    load_state
    local name pid state
    printf '%-6s %-8s %-7s %-7s %-6s\n' replica pid grpc metrics ready
    for name in $(replicas); do
        pid=$(cat "$STATE/replicas/$name.pid" 2>/dev/null || echo -)
        if alive "$pid"; then state=$(ready_code "$(cat "$STATE/replicas/$name.metrics")"); else state="dead"; fi
        printf '%-6s %-8s %-7s %-7s %-6s\n' "$name" "$pid" "$(cat "$STATE/replicas/$name.grpc")" \
            "$(cat "$STATE/replicas/$name.metrics")" "$state"
    done
    if [[ -S $STATE/haproxy.sock ]] && alive "$(cat "$STATE/haproxy.pid" 2>/dev/null)"; then
        echo "haproxy pid $(cat "$STATE/haproxy.pid") at 127.0.0.1:$FRONTEND_PORT (stats http://127.0.0.1:$STATS_PORT/):"
        # pxname, svname, scur (current), stot (calls sent), status
        hapx "show stat" | awk -F, '$1 ~ /^swerve_/ {printf "  %-14s %-8s %-8s current %-5s calls %s\n", $1, $2, $18, $5, $8}'
    else
        echo "haproxy: not running"
    fi
}

cmd_endpoint() {
    load_state
    echo "127.0.0.1:$FRONTEND_PORT"
}

cmd_replicas() {
    load_state
    local name out=()
    for name in $(replicas); do out+=("127.0.0.1:$(cat "$STATE/replicas/$name.grpc")"); done
    (IFS=,; echo "${out[*]}")
}

cmd_down() {
    [[ -d $STATE ]] || { echo "nothing in $STATE"; return 0; }
    local pids=() pid f
    for f in "$STATE"/replicas/*.pid "$STATE/haproxy.pid"; do
        [[ -f $f ]] || continue
        for pid in $(cat "$f"); do alive "$pid" && pids+=("$pid"); done
    done
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # Replicas drain first (their --drain-seconds), then exit; bounded.
    local limit=$(( ${DRAIN_SECONDS:-5} + 45 ))  # as in remove
    local deadline=$((SECONDS + limit))
    for pid in "${pids[@]}"; do
        while alive "$pid"; do
            ((SECONDS < deadline)) || { log "pid $pid still running after ${limit}s; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; break; }
            sleep 0.1
        done
    done
    rm -f "$STATE"/replicas/*.pid "$STATE/haproxy.pid" "$STATE/haproxy.sock"
    echo "cluster down (${#pids[@]} processes stopped)"
}

main() {
    local command=${1:-}
    shift || true
    case $command in
        up) cmd_up "$@" ;;
        add) cmd_add ;;
        remove) cmd_remove "$@" ;;
        kill) cmd_kill "$@" ;;
        restart) cmd_restart "$@" ;;
        status) cmd_status ;;
        endpoint) cmd_endpoint ;;
        replicas) cmd_replicas ;;
        down)
            [[ -f $STATE/cluster.env ]] && source "$STATE/cluster.env"
            cmd_down ;;
        *) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [[ -z $command || $command == help ]] || exit 2 ;;
    esac
}

main "$@"

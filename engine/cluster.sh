#!/bin/bash
# cluster.sh up|down|check - a whole Docker Swarm on one machine, for cluster
# tests (make cluster-up, make cluster-down, make cluster-check). Root only.
#
#   up     two extra engines beside the main one, each with its own socket
#          (/run/envhub-node2.sock, /run/envhub-node3.sock), data root and exec
#          root, and a bridge of its own created beforehand without an address
#          (envhub-n2, envhub-n3: an extra engine started with --bridge none
#          would delete the main engine's docker0); a swarm over 127.0.0.1 (the
#          main engine its manager on 127.0.0.1:2377, the others workers on
#          2378 and 2379); the registry on 127.0.0.1:5000 (registry.sh); then
#          the check below. Any failure undoes what was started.
#   down   undoes every part, also after a failed or interrupted up: the
#          workers leave and stop, their bridges, mounts and data go, the
#          manager leaves the swarm when this script made it one, the registry
#          stops. Safe to run again.
#   check  the base image goes to the registry; every node pulls it by digest
#          and runs one python3 job in a container with no network; prints
#          each node's answer and time.
#   envhub (the last step of up) envhub in cluster mode: the server on
#          127.0.0.1:$CLUSTER_PORT (catalog, node key and logs in var/cluster/)
#          with the registry, and an `envhub node` beside each engine (main,
#          node2, node3), each given the base image under its usual name.
#          down stops them first.
#   engine-up N  start extra node N's engine again (a test killed it).
#
# Nothing listens beyond loopback: every engine speaks on its unix socket,
# the swarm and the registry on 127.0.0.1.
set -Eeuo pipefail

STATE=${STATE:-var}
MAIN_SOCKET=${SOCKET:-/var/run/docker.sock}
IMAGE=${IMAGE:-envhub/python:bookworm}
REGISTRY_ADDR=${REGISTRY_ADDR:-127.0.0.1:5000}
NODES=(2 3)
BIN=${BIN:-build/envhub}
CLUSTER_PORT=${CLUSTER_PORT:-8100}
NODE_SLOTS=${NODE_SLOTS:-4}
DIR="$STATE/cluster"
HERE=$(cd "$(dirname "$0")" && pwd)

say() { echo "cluster: $*"; }
main() { docker -H "unix://$MAIN_SOCKET" "$@"; }
node_sock() { echo "/run/envhub-node$1.sock"; }
node() { local n=$1; shift; docker -H "unix://$(node_sock "$n")" "$@"; }
node_dir() { echo "$DIR/node$1"; }
exec_root() { echo "/run/envhub-node$1"; }
answers() { curl -sf --max-time 2 --unix-socket "$1" http://localhost/_ping >/dev/null 2>&1; }

start_node() {
    local n=$1 dir sock
    dir=$(node_dir "$n")
    sock=$(node_sock "$n")
    mkdir -p "$dir/data"
    if [ -f "$dir/dockerd.pid" ] && kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null; then
        say "node$n: its engine runs already"
        return
    fi
    if ! ip link show "envhub-n$n" >/dev/null 2>&1; then
        ip link add "envhub-n$n" type bridge
        touch "$dir/bridge-created"
    fi
    ip link set "envhub-n$n" up
    # its own daemon.json: the main engine's runtimes and settings stay its own
    echo '{}' >"$dir/daemon.json"
    nohup dockerd --config-file "$dir/daemon.json" --host "unix://$sock" \
        --data-root "$(cd "$dir/data" && pwd)" --exec-root "$(exec_root "$n")" \
        --pidfile "$dir/dockerd.pid" --bridge "envhub-n$n" --iptables=false --ip-masq=false \
        >"$dir/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        answers "$sock" && { say "node$n: engine ready on $sock"; return; }
        sleep 1
    done
    say "node$n: the engine did not answer within 60 s; the end of $dir/dockerd.log:" >&2
    tail -20 "$dir/dockerd.log" >&2
    return 1
}

stop_node() {
    local n=$1 dir sock pid
    dir=$(node_dir "$n")
    sock=$(node_sock "$n")
    if answers "$sock"; then
        node "$n" swarm leave --force >/dev/null 2>&1 && say "node$n: left the swarm" || true
    fi
    if [ -f "$dir/dockerd.pid" ]; then
        pid=$(cat "$dir/dockerd.pid")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$pid" 2>/dev/null || true
            say "node$n: engine stopped (pid $pid)"
        fi
        rm -f "$dir/dockerd.pid"
    fi
    # what a killed engine left mounted under its roots
    local root
    for root in "$(exec_root "$n")" "$(cd "$dir" 2>/dev/null && pwd)/data"; do
        awk -v r="$root" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done
    done
    if [ -f "$dir/bridge-created" ] || ip link show "envhub-n$n" >/dev/null 2>&1; then
        ip link del "envhub-n$n" 2>/dev/null && say "node$n: bridge envhub-n$n removed" || true
    fi
    rm -rf "$dir" "$(exec_root "$n")" "$sock"
}

form_swarm() {
    local state token
    state=$(main info --format '{{.Swarm.LocalNodeState}}')
    if [ "$state" = "inactive" ]; then
        main swarm init --advertise-addr 127.0.0.1:2377 --listen-addr 127.0.0.1:2377 >/dev/null
        touch "$DIR/manager-created"
        say "main engine: swarm manager on 127.0.0.1:2377"
    elif [ ! -f "$DIR/manager-created" ]; then
        say "the main engine is in a swarm this script did not make ($state); leave it first" >&2
        return 1
    fi
    token=$(main swarm join-token -q worker)
    for n in "${NODES[@]}"; do
        if [ "$(node "$n" info --format '{{.Swarm.LocalNodeState}}')" = "active" ]; then
            continue
        fi
        local port=$((2376 + n))
        node "$n" swarm join --token "$token" --listen-addr "127.0.0.1:$port" \
            --advertise-addr "127.0.0.1:$port" 127.0.0.1:2377 >/dev/null
        say "node$n: joined as a worker (127.0.0.1:$port)"
    done
    main node ls
}

check() {
    local ref digest t0 out
    ref="$REGISTRY_ADDR/$IMAGE"
    main tag "$IMAGE" "$ref"
    digest=$(main push "$ref" | awk '/digest: sha256:/ { for (i = 1; i <= NF; i++) if ($i == "digest:") print $(i + 1) }')
    main rmi "$ref" >/dev/null
    [ -n "$digest" ] || { say "the push named no digest" >&2; return 1; }
    say "base image in the registry as ${ref%:*}@$digest"
    for n in main "${NODES[@]}"; do
        local d=(main)
        [ "$n" = main ] || d=(node "$n")
        t0=$(date +%s%N)
        "${d[@]}" pull -q "${ref%:*}@$digest" >/dev/null
        out=$("${d[@]}" run --rm --network none --read-only --user 1000 --cap-drop ALL \
            --label envhub.cluster-check=1 "${ref%:*}@$digest" \
            python3 -c 'import socket; print("python on", socket.gethostname())')
        say "node $n: pulled by digest and ran a job in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $out"
    done
    # Swarm's part: a global service on the host network gets one task per node
    t0=$(date +%s%N)
    main service create -q --detach --name envhub-cluster-check --mode global --network host \
        --label envhub.cluster-check=1 "${ref%:*}@$digest" sleep 300 >/dev/null
    local running=0
    for _ in $(seq 1 60); do
        running=$(main service ps envhub-cluster-check --filter desired-state=running \
            --format '{{.CurrentState}}' | grep -c '^Running' || true)
        [ "$running" -ge $((1 + ${#NODES[@]})) ] && break
        sleep 1
    done
    main service rm envhub-cluster-check >/dev/null
    # the main engine keeps only its own tag (once the service's task is gone)
    for _ in $(seq 1 20); do
        main rmi "${ref%:*}@$digest" >/dev/null 2>&1 && break
        sleep 0.5
    done
    [ "$running" -ge $((1 + ${#NODES[@]})) ] ||
        { say "the global service runs $running tasks, not one per node" >&2; return 1; }
    say "a global service ran one task on each of the $running nodes within $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

# A process of ours, by its pid file: stopped with SIGTERM, then SIGKILL.
stop_pid() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

# An `envhub node` named $1 beside the engine on socket $2.
start_agent() {
    local name=$1 sock=$2
    ENVHUB_URL="http://127.0.0.1:$CLUSTER_PORT" DOCKER_HOST="unix://$sock" \
        nohup "$BIN" node --name "$name" --node-key-file "$DIR/node.key" \
        --concurrent-limit "$NODE_SLOTS" --pool-size 1 --labels envhub.cluster=1 \
        >"$DIR/node-$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/node-$name.pid"
}

start_envhub() {
    local ref digest
    [ -x "$BIN" ] || { say "no envhub binary at $BIN (make build)" >&2; return 1; }
    # every engine has the base image under its usual name (pulled by digest)
    ref="$REGISTRY_ADDR/$IMAGE"
    main tag "$IMAGE" "$ref"
    digest=$(main push "$ref" | awk '/digest: sha256:/ { for (i = 1; i <= NF; i++) if ($i == "digest:") print $(i + 1) }')
    main rmi "$ref" >/dev/null
    for n in "${NODES[@]}"; do
        node "$n" pull -q "${ref%:*}@$digest" >/dev/null
        node "$n" tag "${ref%:*}@$digest" "$IMAGE"
    done
    [ -f "$DIR/node.key" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$DIR/node.key")
    nohup "$BIN" serve --listen "127.0.0.1:$CLUSTER_PORT" --db "$DIR/envhub.db" \
        --cluster swarm --node-key-file "$DIR/node.key" --registry "$REGISTRY_ADDR" \
        --labels envhub.cluster=1 >"$DIR/server.log" 2>&1 </dev/null &
    echo $! >"$DIR/server.pid"
    for _ in $(seq 1 50); do
        curl -sf --max-time 1 "http://127.0.0.1:$CLUSTER_PORT/health" >/dev/null && break
        sleep 0.2
    done
    start_agent main "$MAIN_SOCKET"
    for n in "${NODES[@]}"; do start_agent "node$n" "$(node_sock "$n")"; done
    for _ in $(seq 1 50); do
        [ "$(curl -sf --max-time 1 "http://127.0.0.1:$CLUSTER_PORT/cluster/nodes" |
            grep -o '"state":"ready"' | wc -l)" -ge $((1 + ${#NODES[@]})) ] && break
        sleep 0.2
    done
    ENVHUB_URL="http://127.0.0.1:$CLUSTER_PORT" "$BIN" cluster status
    say "envhub in cluster mode on http://127.0.0.1:$CLUSTER_PORT (nodes: main$(printf ', node%s' "${NODES[@]}"))"
}

stop_envhub() {
    local f
    for f in "$DIR"/node-*.pid; do [ -e "$f" ] && stop_pid "$f"; done
    stop_pid "$DIR/server.pid"
    # what the nodes' jobs and pools left on the engines that still answer
    main ps -aq --filter label=envhub.cluster=1 | xargs -r docker -H "unix://$MAIN_SOCKET" rm -f >/dev/null 2>&1 || true
    for n in "${NODES[@]}"; do
        answers "$(node_sock "$n")" || continue
        node "$n" ps -aq --filter label=envhub.cluster=1 | xargs -r docker -H "unix://$(node_sock "$n")" rm -f >/dev/null 2>&1 || true
    done
    main images -q --filter label=envhub.cluster=1 | sort -u | xargs -r docker -H "unix://$MAIN_SOCKET" rmi -f >/dev/null 2>&1 || true
    rm -f "$DIR/node.key" "$DIR"/envhub.db* "$DIR"/*.log
}

case "${1:-}" in
up)
    [ "$(id -u)" -eq 0 ] || { say "run as root (it starts engines and creates bridges)" >&2; exit 1; }
    answers "$MAIN_SOCKET" || { say "the main engine does not answer on $MAIN_SOCKET (make engine)" >&2; exit 1; }
    mkdir -p "$DIR"
    trap 'say "set-up failed; undoing it" >&2; bash "$HERE/cluster.sh" down' ERR
    for n in "${NODES[@]}"; do start_node "$n"; done
    form_swarm
    STATE="$STATE" REGISTRY_ADDR="$REGISTRY_ADDR" bash "$HERE/registry.sh" up
    check
    start_envhub
    trap - ERR
    say "up: 3 engines in one swarm, registry on $REGISTRY_ADDR, envhub on 127.0.0.1:$CLUSTER_PORT; make cluster-down undoes it"
    ;;
down)
    stop_envhub
    for n in "${NODES[@]}"; do stop_node "$n"; done
    if [ -f "$DIR/manager-created" ]; then
        main swarm leave --force >/dev/null 2>&1 && say "main engine: left the swarm" || true
        rm -f "$DIR/manager-created"
    fi
    main service rm envhub-cluster-check >/dev/null 2>&1 || true
    main ps -aq --filter label=envhub.cluster-check=1 | xargs -r docker -H "unix://$MAIN_SOCKET" rm -f >/dev/null 2>&1 || true
    STATE="$STATE" REGISTRY_ADDR="$REGISTRY_ADDR" bash "$HERE/registry.sh" down
    rmdir "$DIR" 2>/dev/null || true
    ip link show docker0 >/dev/null 2>&1 || say "warning: the main engine's docker0 is missing" >&2
    say "down"
    ;;
check)
    check
    ;;
engine-up)
    # the engine of extra node $2 again (after a test killed it); its node rejoins by itself
    start_node "${2:?which node: 2 or 3}"
    ;;
*)
    echo "usage: $0 up|down|check" >&2
    exit 2
    ;;
esac

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
#
# Nothing listens beyond loopback: every engine speaks on its unix socket,
# the swarm and the registry on 127.0.0.1.
set -Eeuo pipefail

STATE=${STATE:-var}
MAIN_SOCKET=${SOCKET:-/var/run/docker.sock}
IMAGE=${IMAGE:-envhub/python:bookworm}
REGISTRY_ADDR=${REGISTRY_ADDR:-127.0.0.1:5000}
NODES=(2 3)
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
    trap - ERR
    say "up: 3 engines in one swarm, registry on $REGISTRY_ADDR; make cluster-down undoes it"
    ;;
down)
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
*)
    echo "usage: $0 up|down|check" >&2
    exit 2
    ;;
esac

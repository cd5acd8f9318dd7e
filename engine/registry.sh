#!/bin/bash
# registry.sh up|down|status - Debian's docker-registry on loopback, for
# ENVHUB_REGISTRY on one machine (make registry, make registry-down).
#
#   up      start it on $REGISTRY_ADDR (127.0.0.1:5000) with its storage in
#           $STATE/registry/data and deletes enabled (envhub removes the images
#           of deleted and retired environments); nothing when it answers already
#   down    stop the registry this script started (its pid file), keep the data
#   status  say whether it answers
#
# Loopback only: the engine pushes to and pulls from 127.0.0.0/8 over plain
# HTTP without further configuration.
set -euo pipefail

STATE=${STATE:-var}
ADDR=${REGISTRY_ADDR:-127.0.0.1:5000}
DIR="$STATE/registry"
PIDFILE="$DIR/registry.pid"

answers() { curl -sf --max-time 2 "http://$ADDR/v2/" >/dev/null 2>&1; }

case "${1:-}" in
up)
    case "$ADDR" in
    127.*:*) ;;
    *) echo "registry: REGISTRY_ADDR '$ADDR' must be a loopback host:port (127.x.y.z:port)" >&2; exit 2 ;;
    esac
    if answers; then
        echo "registry: answers on $ADDR"
        exit 0
    fi
    BINARY=$(command -v docker-registry) ||
        { echo "registry: docker-registry is not installed (apt-get install docker-registry)" >&2; exit 1; }
    mkdir -p "$DIR/data"
    cat >"$DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $(cd "$DIR/data" && pwd)
  delete:
    enabled: true
http:
  addr: $ADDR
EOF
    nohup "$BINARY" serve "$DIR/config.yml" >"$DIR/registry.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 50); do
        if answers; then
            echo "registry: started on $ADDR (pid $(cat "$PIDFILE"), data $DIR/data, log $DIR/registry.log)"
            exit 0
        fi
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
        sleep 0.2
    done
    echo "registry: did not answer on $ADDR; the end of $DIR/registry.log:" >&2
    tail -20 "$DIR/registry.log" >&2 || true
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    rm -f "$PIDFILE"
    exit 1
    ;;
down)
    if [ -f "$PIDFILE" ]; then
        pid=$(cat "$PIDFILE")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            echo "registry: stopped (pid $pid)"
        fi
        rm -f "$PIDFILE"
    else
        echo "registry: none started here"
    fi
    ;;
status)
    if answers; then echo "registry: answers on $ADDR"; else echo "registry: does not answer on $ADDR"; exit 1; fi
    ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac

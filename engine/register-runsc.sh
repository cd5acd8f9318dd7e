#!/bin/bash
# register-runsc.sh - register Debian's gVisor (runsc) with the Docker engine as
# the runtime "runsc", for environments whose policy asks for it
# ({"runtime": "runsc"}). Run as root by `make engine` when runsc is installed.
#
# Adds the runtime to /etc/docker/daemon.json (keeping what is there) with
# --network=none among its arguments (without it every start fails on these
# machines: "cannot run with network enabled in root network namespace"),
# then makes a running dockerd reload its runtimes (SIGHUP). Does nothing when
# the engine already knows runsc.
set -euo pipefail

CONFIG=${DAEMON_JSON:-/etc/docker/daemon.json}
SOCKET=${SOCKET:-/var/run/docker.sock}
RUNSC=$(command -v runsc) || { echo "register-runsc: runsc is not installed" >&2; exit 1; }

known() {
    curl -sf --max-time 5 --unix-socket "$SOCKET" http://localhost/info 2>/dev/null |
        python3 -c 'import json,sys; sys.exit(0 if "runsc" in json.load(sys.stdin).get("Runtimes", {}) else 1)'
}

if known; then
    echo "engine: runtime runsc (gVisor) is registered"
    exit 0
fi
mkdir -p "$(dirname "$CONFIG")"
python3 - "$CONFIG" "$RUNSC" <<'PY'
import json, os, sys
path, runsc = sys.argv[1], sys.argv[2]
conf = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        conf = json.load(f)
conf.setdefault("runtimes", {})["runsc"] = {"path": runsc, "runtimeArgs": ["--network=none"]}
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(conf, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
PY
# a running engine reloads its runtimes on SIGHUP; one started later reads the file
if [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    kill -HUP "$(cat /var/run/docker.pid)"
    for _ in $(seq 1 20); do known && break; sleep 0.5; done
    known || { echo "register-runsc: the engine did not pick up runsc from $CONFIG" >&2; exit 1; }
fi
echo "engine: registered runtime runsc (gVisor) in $CONFIG"

#!/usr/bin/env python3
"""make bench (gVisor part): POST /execute print('hi') in an environment whose policy asks
for runtime runsc (gVisor) beside the same environment under runc, cold (pool_size 0: a
fresh container per job) and warm (pool_size 4), interleaved rounds in one run; prints
p50/p95 of each and the runsc/runc ratios. Skipped (exit 0, with the reason) when the
engine has no runsc runtime (make engine registers Debian's runsc when it is installed).

Environment: ENVHUB_BIN, GVISOR_ROUNDS (interleaved rounds, default 15)."""

import os
import secrets
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError  # noqa: E402

BIN = os.path.abspath(os.environ.get("ENVHUB_BIN", "build/envhub"))
ROUNDS = int(os.environ.get("GVISOR_ROUNDS", "15"))
RUN_ID = "bench-" + secrets.token_hex(4)


def wait_ready(port, name, within=600):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status, env = bl.api(port, "GET", f"/environments/{name}")
        if status == 200 and env["status"] != "building":
            if env["status"] != "ready":
                raise BenchError(f"{name} ended {env['status']}: {env.get('error')}")
            return
        time.sleep(1)
    raise BenchError(f"{name} not ready within {within} s")


def main():
    engine = bl.Engine()
    runtimes = engine.call("GET", "/info").get("Runtimes", {})
    if "runsc" not in runtimes:
        print("bench-gvisor: skipped: the engine has no runtime runsc (apt-get install runsc; "
              "make engine registers it)")
        return 0
    tmp = tempfile.mkdtemp(prefix="envhub-bench-gvisor-")
    server = bl.Server(BIN, RUN_ID, "gvisor", ["--pool-size", "0"], tmp)
    names = {}
    ok = False
    try:
        server.start()
        for runtime in ("runc", "runsc"):
            for mode, pool in (("cold", 0), ("warm", 4)):
                name = f"bench-{runtime}-{mode}-{secrets.token_hex(2)}"
                status, env = bl.api(server.port, "POST", "/environments", {
                    "name": name, "setup_script": f"# make bench {RUN_ID}\ntrue\n",
                    "policy": {"runtime": runtime, "pool_size": pool}})
                if status != 200:
                    raise BenchError(f"cannot create {name}: {status} {env}")
                names[(runtime, mode)] = name
        for name in names.values():
            wait_ready(server.port, name)
        lat = {k: [] for k in names}
        for k, name in names.items():  # warm-up: image pages, pools filled
            bl.execute(server.port, "print('hi')", bl.check_hi, environment=name)
        time.sleep(3)
        for r in range(ROUNDS):
            for k in (list(names) if r % 2 == 0 else list(reversed(list(names)))):
                lat[k].append(bl.execute(server.port, "print('hi')", bl.check_hi, environment=names[k]))
                if k[1] == "warm":
                    time.sleep(0.5)  # the pool refills
        print(f"\nprint('hi') through POST /execute, {ROUNDS} interleaved rounds, c=1 "
              f"(cold: pool_size 0, a fresh container per job; warm: pool_size 4)")
        print(f"  {'':24} {'p50 ms':>9} {'p95 ms':>9}")
        s = {k: bl.summarize(v) for k, v in lat.items()}
        for mode in ("cold", "warm"):
            for runtime in ("runc", "runsc"):
                x = s[(runtime, mode)]
                print(f"  {mode + ' ' + runtime:<24} {x['p50']:9.1f} {x['p95']:9.1f}")
            print(f"  {mode + ' runsc/runc p50':<24} {s[('runsc', mode)]['p50'] / s[('runc', mode)]['p50']:9.2f}x")
        ok = True
    finally:
        for name in names.values():
            try:
                bl.api(server.port, "DELETE", f"/environments/{name}")
            except OSError:
                pass
        server.stop()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench-gvisor: {e}", file=sys.stderr)
        sys.exit(1)

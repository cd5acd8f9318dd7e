#!/usr/bin/env python3
"""make bench-preload (also part of make bench): preloaded imports (issue 14, item 2),
every figure measured in this run.

One server with default settings builds environments/data-science.sh twice: `ds-plain`
(policy pool_size 2) and `ds-preload` (the same, with preload ["numpy", "pandas"]; the
image is reused, the policy is not part of an image's definition). The job
    import pandas as pd; print(pd.DataFrame({"a": [1, 2]}).a.sum())
runs warm, one request a second, in rounds that alternate the two environments so drift
hits both alike; pool hits and misses of each are printed beside the latencies.

Environment: ENVHUB_BIN, BENCH_PRELOAD_JOBS (per round, default 10), BENCH_PRELOAD_ROUNDS
(per environment, default 2)."""

import os
import secrets
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.environ.get("ENVHUB_BIN", "build/envhub"))
JOBS = int(os.environ.get("BENCH_PRELOAD_JOBS", "10"))
ROUNDS = int(os.environ.get("BENCH_PRELOAD_ROUNDS", "2"))
RUN_ID = "bench-preload-" + secrets.token_hex(4)
JOB = 'import pandas as pd; print(pd.DataFrame({"a": [1, 2]}).a.sum())'
BUILD_WITHIN = 1800


def note(msg):
    print(f"[bench-preload] {msg}", file=sys.stderr, flush=True)


def check_three(answer):
    return None if answer.get("stdout") == "3\n" else f"stdout {answer.get('stdout')!r}, expected '3\\n'"


def build(port, name, script, policy):
    status, body = bl.api(port, "POST", "/environments",
                          {"name": name, "setup_script": script, "policy": policy})
    if status not in (200, 201, 202):
        raise BenchError(f"POST /environments {name}: {status} {body}")
    t0 = time.monotonic()
    while time.monotonic() - t0 < BUILD_WITHIN:
        status, env = bl.api(port, "GET", f"/environments/{name}")
        if status == 200 and env.get("status") == "ready":
            return time.monotonic() - t0
        if status == 200 and env.get("status") == "failed":
            raise BenchError(f"environment {name} failed: {env.get('error')}")
        time.sleep(2)
    raise BenchError(f"environment {name} not ready after {BUILD_WITHIN} s")


def p50(lat):
    return bl.summarize(lat)["p50"]


def main():
    engine = bl.Engine()
    if not engine.ping():
        sys.exit(f"bench-preload: no Docker engine answers on {engine.path} (make engine)")
    with open(os.path.join(ROOT, "environments", "data-science.sh")) as f:
        script = f.read()
    tmp = tempfile.mkdtemp(prefix="envhub-bench-preload-")
    binary = os.path.join(tmp, "envhub")
    shutil.copy2(BIN, binary)
    server = bl.Server(binary, RUN_ID, "default", [], tmp)
    try:
        server.start()
        port = server.port
        note("building environments/data-science.sh (apt-get from the Debian mirror)")
        t_plain = build(port, "ds-plain", script, {"pool_size": 2})
        t_pre = build(port, "ds-preload", script, {"pool_size": 2, "preload": ["numpy", "pandas"]})
        note(f"built: ds-plain {t_plain:.0f} s, ds-preload {t_pre:.1f} s (its image reused)")

        lat = {"ds-plain": [], "ds-preload": []}
        for _ in range(ROUNDS):
            for env in ("ds-plain", "ds-preload"):
                if bl.wait_quiet(server, engine, within=120) is None:
                    raise BenchError(f"the pools did not fill before the {env} round")
                before = bl.pool_numbers(port, env)
                note(f"{env}: open loop, 1 request/s, {JOBS} s")
                load, _ = bl.open_loop(lambda _i, e=env: bl.execute(port, JOB, check_three, environment=e),
                                       1, JOBS)
                if load.errors:
                    raise BenchError(f"{env}: {len(load.errors)} failed: {load.errors[0]}")
                after = bl.pool_numbers(port, env)
                lat[env].extend(load.latencies)
                note(f"{env}: p50 {p50(load.latencies):.1f} ms, pool hits "
                     f"{after['hits'] - before['hits']}, misses {after['misses'] - before['misses']}")

        _, health = bl.api(port, "GET", "/health")
        failed = [w for w in health.get("warnings", []) if w.get("code") == "preload_failed"]
        if failed:
            raise BenchError(f"/health reports a preload failure: {failed}")

        print()
        print(f"{JOB}")
        print(f"{'warm, 1 request/s, default settings, pool_size 2':<52} {'p50 ms':>8} {'p95 ms':>8}")
        for env, values in lat.items():
            s = bl.summarize(values)
            print(f"{env:<52} {s['p50']:8.1f} {s['p95']:8.1f}")
        r = p50(lat["ds-preload"]) / p50(lat["ds-plain"])
        print()
        print("target (issue 14), ratio of figures measured above:")
        print(f"  {'preload p50 / no preload p50':<46} = {r:6.2f}x  (at most 0.2x)  "
              f"{'PASS' if r <= 0.2 else 'MISS'}")
        return 0
    except BenchError as e:
        print(f"bench-preload: {e}", file=sys.stderr)
        print(f"--- {server.name}\n{server.log_tail()}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        engine.remove_labelled(f"envhub.test={RUN_ID}")
        engine.remove_labelled_images(f"envhub.test={RUN_ID}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

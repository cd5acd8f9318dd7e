#!/usr/bin/env python3
"""make bench-pool (and make bench): live containers under a mixed load, with the removal
backlog bounded (ENVHUB_MAX_REMOVAL_BACKLOG: the default 32, and a tight 4 where the
backpressure shows) and, in the same run, with the bound effectively off (1000000) as the
baseline.

Each server runs with its defaults otherwise (pool 2 growing with demand up to
ENVHUB_MAX_POOL_SIZE 10, CONCURRENT_LIMIT 10). The load: BENCH_POOL_CLIENTS (10) clients in
a closed loop for BENCH_POOL_SECONDS (60) s, cycling through hello, an exception, exit 3, a
2 s timeout, an input and an output file, and 1 MB of output; every answer is checked.
The engine is sampled every 0.25 s for the server's containers (its labels). Printed per
server: jobs, wrong answers, throughput, the peak of live containers, the bound (pool
ceiling + slots + backlog), the containers of finished jobs still alive 20 s after the
last answer, and what /metrics says (hits, misses, the highest pool target and removal
backlog seen once a second, the refill time's moving average, backlog waits). A benchmark,
not a test: the exit status is 0 unless something broke (a wrong answer, a server that did
not start).

Environment: ENVHUB_BIN, DOCKER_IMAGE, BENCH_POOL_SECONDS, BENCH_POOL_CLIENTS,
BENCH_POOL_BACKLOGS (the servers' ENVHUB_MAX_REMOVAL_BACKLOG, default "32,4,1000000")."""

import base64
import json
import os
import secrets
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError  # noqa: E402

BIN = os.path.abspath(os.environ.get("ENVHUB_BIN", "build/envhub"))
SECONDS = float(os.environ.get("BENCH_POOL_SECONDS", "60"))
CLIENTS = int(os.environ.get("BENCH_POOL_CLIENTS", "10"))
BACKLOGS = [int(b) for b in os.environ.get("BENCH_POOL_BACKLOGS", "32,4,1000000").split(",")]
RUN_ID = "bench-" + secrets.token_hex(4)
AFTER = 20.0  # s after the last answer when the finished jobs' containers are counted
SLOTS = 10
POOL_CEILING = 10

ME = "import socket; print(socket.gethostname(), flush=True)\n"
MB = 1048576
MIXED = [
    ("hello", ME + "print('hello')", None, 20,
     lambda a: a["status"] == "succeeded" and a["stdout"].endswith("hello\n")),
    ("exception", ME + "raise ValueError('boom')", None, 20,
     lambda a: a["status"] == "failed" and "ValueError: boom" in a["stderr"]),
    ("exit 3", ME + "import sys; sys.exit(3)", None, 20,
     lambda a: a["status"] == "failed" and a["exit_code"] == 3),
    ("timeout", ME + "import time; time.sleep(30)", None, 2, lambda a: a["status"] == "timeout"),
    ("files", ME + "open('out.txt', 'w').write(open('in.txt').read().upper())",
     {"in.txt": base64.b64encode(b"hello").decode()}, 20,
     lambda a: a["status"] == "succeeded"
     and base64.b64decode(a["files"].get("out.txt", "")) == b"HELLO"),
    ("1 MB output", ME + f"import sys; sys.stdout.write('x' * {MB})", None, 20,
     lambda a: a["status"] == "succeeded" and len(a["stdout"]) >= MB - 64),
]


def one_job(port, k):
    name, code, files, timeout, check = MIXED[k % len(MIXED)]
    body = {"code": code, "timeout": timeout}
    if files:
        body["files"] = files
    status, raw = bl.http_call(port, "POST", "/execute", body, timeout=timeout + 120)
    try:
        answer = json.loads(raw)
    except ValueError:
        raise BenchError(f"{name}: answered {status} with no JSON: {raw[:200]!r}")
    if status != 200 or not check(answer):
        raise BenchError(f"{name}: answered {status}: {str(answer)[:300]}")
    return answer["stdout"].split("\n", 1)[0].strip()


def metric(ms, name, **labels):
    return sum(v for n, lab, v in ms if n == name and all(lab.get(k) == w for k, w in labels.items()))


def run(engine, tmpdir, name, backlog):
    server = bl.Server(BIN, RUN_ID, name, ["--max-removal-backlog", str(backlog)], tmpdir).start()
    try:
        bl.wait_quiet(server, engine, within=60)
        used, wrong, jobs = set(), [], 0
        lock = threading.Lock()
        samples = []
        peaks = {"target": 0, "backlog": 0}
        stop = threading.Event()

        def sampler():
            n = 0
            while not stop.is_set():
                samples.append(len(engine.containers(server.label)))
                if n % 4 == 0:  # /metrics once a second: the target and the backlog at their peak
                    ms = bl.metrics(server.port)
                    peaks["target"] = max(peaks["target"],
                                          metric(ms, "envhub_pool_target", environment=""))
                    peaks["backlog"] = max(peaks["backlog"],
                                           metric(ms, "envhub_containers_removal_backlog"))
                n += 1
                time.sleep(0.25)

        def client(i):
            nonlocal jobs
            k = i
            while time.monotonic() < t_end:
                try:
                    host = one_job(server.port, k)
                    with lock:
                        used.add(host)
                        jobs += 1
                except Exception as e:  # noqa: BLE001 - counted and reported
                    with lock:
                        wrong.append(f"{e.__class__.__name__}: {e}")
                k += 1

        s = threading.Thread(target=sampler, daemon=True)
        s.start()
        t0 = time.monotonic()
        t_end = t0 + SECONDS
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_last = time.monotonic()
        while time.monotonic() < t_last + AFTER:
            time.sleep(0.25)
        stop.set()
        s.join()
        alive = {c["Id"][:12] for c in engine.containers(server.label)}
        left = len(alive & used)
        ms = bl.metrics(server.port)
        pool = {"environment": ""}
        return {
            "name": name, "backlog": backlog, "jobs": jobs, "wrong": wrong,
            "rate": jobs / (t_last - t0), "peak": max(samples) if samples else 0,
            "bound": POOL_CEILING + SLOTS + backlog, "left": left,
            "hits": metric(ms, "envhub_pool_hits_total", **pool),
            "misses": metric(ms, "envhub_pool_misses_total", **pool),
            "target": peaks["target"], "backlog_peak": peaks["backlog"],
            "refill": metric(ms, "envhub_pool_refill_seconds", quantile="0.5", **pool),
            "waits": metric(ms, "envhub_removal_backlog_wait_seconds_count"),
            "wait_s": metric(ms, "envhub_removal_backlog_wait_seconds_sum"),
        }
    finally:
        server.stop()
        engine.remove_labelled(server.label)


def main():
    engine = bl.Engine()
    if not engine.ping():
        raise BenchError("no Docker engine answers")
    tmpdir = tempfile.mkdtemp(prefix="envhub-bench-pool-")
    print(f"bench_pool: {CLIENTS} clients, closed loop, {SECONDS:.0f} s each, mixed jobs "
          f"({', '.join(m[0] for m in MIXED)}); defaults otherwise (ENVHUB_POOL_SIZE 2, "
          f"ENVHUB_MAX_POOL_SIZE {POOL_CEILING}, CONCURRENT_LIMIT {SLOTS})")
    rows = []
    try:
        for backlog in BACKLOGS:
            name = "unbounded" if backlog >= 1000000 else f"bound-{backlog}"
            rows.append(run(engine, tmpdir, name, backlog))
    finally:
        engine.remove_labelled(f"envhub.test={RUN_ID}")
    print(f"{'run':<10} {'backlog':>8} {'jobs':>5} {'wrong':>5} {'jobs/s':>6} {'peak live':>9} "
          f"{'bound':>7} {'left@20s':>8} {'hits':>5} {'misses':>6} {'max target':>10} "
          f"{'max backlog':>11} {'refill s':>8} {'waits':>5} {'wait s':>7}")
    for r in rows:
        print(f"{r['name']:<10} {r['backlog']:>8} {r['jobs']:>5} {len(r['wrong']):>5} {r['rate']:>6.2f} "
              f"{r['peak']:>9} {r['bound']:>7} {r['left']:>8} {r['hits']:>5.0f} {r['misses']:>6.0f} "
              f"{r['target']:>10.0f} {r['backlog_peak']:>11.0f} {r['refill']:>8.3f} {r['waits']:>5.0f} "
              f"{r['wait_s']:>7.1f}")
    bad = [w for r in rows for w in r["wrong"]]
    if bad:
        print("wrong answers:", *bad[:10], sep="\n  ")
        return 1
    for b in rows:
        if b["backlog"] < 1000000:
            print(f"{b['name']}: peak {b['peak']} live containers "
                  f"({'within' if b['peak'] <= b['bound'] else 'ABOVE'} the bound {b['bound']}), "
                  f"{b['left']} finished jobs' containers alive {AFTER:.0f} s after the last answer")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench_pool: {e}", file=sys.stderr)
        sys.exit(1)

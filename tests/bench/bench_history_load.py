#!/usr/bin/env python3
"""make bench-history-load: /health and /execute while clients loop full-text searches over
a 1,000,000-row history, beside the same server idle, in one run.

Seeds BENCH_ROWS (default 1,000,000) executions with build/bench/seed_history (as
bench-history does; BENCH_DB=path serves an already seeded catalog instead, left as it
is but for the rows /execute adds), serves it with default settings but for
ENVHUB_QUERY_BUDGET_MS (QUERY_BUDGET_MS, default 2000, printed), and measures from
127.0.0.1:

  idle:     HEALTH_N x GET /health, then EXEC_N x POST /execute print('hi'), sequential;
  searched: the same, while SEARCHERS (4) clients, processes of their own, each on a
            keep-alive connection, loop GET /executions?q=... (a word alone, limit 50; or a
            word with environment and status, the slower kind), each answer read before
            the next request.

Printed: /health p50/p99 and /execute p50/p99 idle and searched, with their ratios; the
searches' count, rate, statuses and p50/p95. Run it with ENVHUB_BIN set to an older
build to see the same numbers with the searches holding the catalog's one lock.
Only 127.0.0.1 and the engine's socket are used. Exit status 0 unless something broke."""

import http.client
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import multiprocessing
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError  # noqa: E402

BIN = os.path.abspath(os.environ.get("ENVHUB_BIN", "build/envhub"))
SEED = os.environ.get("SEED_BIN", "build/bench/seed_history")
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
BUDGET_MS = int(os.environ.get("QUERY_BUDGET_MS", "2000"))
SEARCHERS = int(os.environ.get("SEARCHERS", "4"))
HEALTH_N = int(os.environ.get("HEALTH_N", "300"))
EXEC_N = int(os.environ.get("EXEC_N", "20"))
RUN_ID = "bench-" + secrets.token_hex(4)
ENVS = ["data-science", "machine-learning", "web-development", "basic-python", "etl-jobs",
        "reporting"]
STATUSES = ["succeeded", "failed", "timeout", "oom", "error", "interrupted"]
WORDS = ["read_csv", "requests.get", "transform_4242", "metric_17", "statistics.mean",
         "model_42.fit", "data_999.csv", "api.example.com items 31337", "head", "import"]


def search_loop(port, seed, stop, results):
    """One searcher (a process of its own, so that it takes no time from the measuring
    thread's interpreter): requests until `stop`, then (statuses, seconds, errors)."""
    rnd = random.Random(seed)
    statuses, times, errors = {}, [], 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    while not stop.is_set():
        p = {"q": rnd.choice(WORDS), "limit": 50}
        if rnd.random() < 0.5:
            p.update(environment=rnd.choice(ENVS), status=rnd.choice(STATUSES))
        t0 = time.perf_counter()
        try:
            conn.request("GET", "/executions?" + urllib.parse.urlencode(p))
            r = conn.getresponse()
            r.read()
        except (OSError, http.client.HTTPException):
            conn.close()  # the server closes idle keep-alive connections: reconnect
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            errors += 1
            continue
        times.append(time.perf_counter() - t0)
        statuses[r.status] = statuses.get(r.status, 0) + 1
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.close()
    results.put((statuses, times, errors))


class Searchers:
    def __init__(self, port):
        self.port = port
        self.stop = multiprocessing.Event()
        self.results = multiprocessing.Queue()
        self.procs = []
        self.statuses, self.times, self.errors = {}, [], 0

    def start(self):
        for i in range(SEARCHERS):
            p = multiprocessing.Process(target=search_loop,
                                        args=(self.port, 1000 + i, self.stop, self.results),
                                        daemon=True)
            self.procs.append(p)
            p.start()

    def finish(self):
        self.stop.set()
        for _ in self.procs:
            statuses, times, errors = self.results.get(timeout=330)
            for k, v in statuses.items():
                self.statuses[k] = self.statuses.get(k, 0) + v
            self.times += times
            self.errors += errors
        for p in self.procs:
            p.join(timeout=30)


def main():
    tmp = tempfile.mkdtemp(prefix="envhub-bench-history-load-")
    db = os.environ.get("BENCH_DB") or os.path.join(tmp, "history.db")
    # an older build (the baseline) has no budget to set
    has_budget = "--query-budget-ms" in subprocess.run([BIN, "config"], capture_output=True,
                                                        text=True).stdout
    flags = ["--query-budget-ms", str(BUDGET_MS)] if has_budget else []
    server = bl.Server(BIN, RUN_ID, "history-load", flags, tmp)
    server.db = db
    ok = False
    try:
        print(f"bench-history-load: {os.cpu_count()} CPUs, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {BIN}", flush=True)
        if not os.environ.get("BENCH_DB"):
            print(f"seeding {ROWS:,} executions into {db} ...", flush=True)
            t0 = time.time()
            subprocess.run([SEED, db, str(ROWS), "--days", "365", "--seed", "20261123",
                            "--quiet"], check=True)
            print(f"  {time.time() - t0:.0f} s", flush=True)
        server.start(within=120)
        print(f"envhub {' '.join(flags) or '(no query budget in this build)'} (other settings "
              f"default), catalog {db} "
              f"({os.path.getsize(db) / 1e9:.2f} GB)")
        print(f"searched: {SEARCHERS} clients looping GET /executions?q=word[&environment&status]"
              f"&limit=50; measured: {HEALTH_N} x GET /health, {EXEC_N} x POST /execute, "
              f"sequential, from 127.0.0.1", flush=True)
        bl.execute(server.port, "print('hi')", bl.check_hi)  # warm up
        for w in WORDS:  # and the page cache, as a running server's would be
            bl.http_call(server.port, "GET", "/executions?" + urllib.parse.urlencode({"q": w}),
                         timeout=300)
        idle_health, idle_exec = bl.measure_health_and_hi(server.port, HEALTH_N, EXEC_N)

        load = Searchers(server.port)
        load.start()
        time.sleep(2)  # let it take hold
        t0 = time.monotonic()
        busy_health, busy_exec = bl.measure_health_and_hi(server.port, HEALTH_N, EXEC_N)
        seconds = time.monotonic() - t0
        load.finish()
        health_after = bl.health_once(server.port)

        def row(name, idle, busy, key):
            ratio = busy[key] / idle[key] if idle[key] else float("nan")
            print(f"  {name:<22} {idle[key]:9.1f} ms {busy[key]:11.1f} ms   x{ratio:.2f}")

        print("\n                            idle        searched    ratio")
        row("GET /health p50", idle_health, busy_health, "p50")
        row("GET /health p99", idle_health, busy_health, "p99")
        row("POST /execute p50", idle_exec, busy_exec, "p50")
        row("POST /execute p99", idle_exec, busy_exec, "p99")
        s = bl.summarize(load.times)
        print(f"\n  searches: {s['n']} in {seconds:.0f} s ({s['n'] / seconds:.0f}/s), "
              f"p50 {s['p50']:.1f} ms, p95 {s['p95']:.1f} ms; statuses "
              f"{dict(sorted(load.statuses.items()))}"
              f"{'; client errors ' + str(load.errors) if load.errors else ''}")
        print(f"  GET /health after: {health_after * 1000:.1f} ms; load average at the end: "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if server.proc.poll() is not None:
            raise BenchError("the server exited during the searches")
        ok = True
    finally:
        server.stop()
        if ok and not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench-history-load: {e}", file=sys.stderr)
        sys.exit(1)

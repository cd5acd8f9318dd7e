#!/usr/bin/env python3
"""make bench-history: the history API over 1,000,000 executions.

Seeds a fresh catalog with BENCH_ROWS (default 1,000,000) executions through the
catalog API (build/bench/seed_history: realistic sizes, one transaction per 10,000
rows, every row chained), serves it, then measures from one keep-alive client:

  - a filtered first page (environment + status + since, and other filters): p50/p95
  - a page deep in the cursor chain (100,000+ rows down): p50/p95
  - a text search over the code (alone and with filters): p50/p95
  - statistics by day (the last 30 days, and the whole history): p50/p95
  - the export of every row as JSON lines and as CSV: rows/s, and the server's
    peak RSS (VmHWM) before and after
  - GET /audit/verify over the whole chain: rows/s

Targets (2-core machine): filtered page p95 < 20 ms, export > 100,000 rows/s,
verify > 200,000 rows/s. The catalog lives in a temporary folder, removed at the end
unless BENCH_KEEP=1; BENCH_DB=path reuses a seeded catalog instead.
"""
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
BIN = os.environ.get("ENVHUB_BIN", "build/envhub")
SEED = os.environ.get("SEED_BIN", "build/bench/seed_history")
RUNS = int(os.environ.get("BENCH_RUNS", "200"))
RUN_ID = "bench-" + secrets.token_hex(4)
ENVS = ["data-science", "machine-learning", "web-development", "basic-python", "etl-jobs",
        "reporting"]
STATUSES = ["succeeded", "failed", "timeout", "oom", "error", "interrupted"]
WORDS = ["read_csv", "requests.get", "transform_4242", "metric_17", "statistics.mean",
         "model_42.fit", "data_999.csv", "api.example.com items 31337", "head"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def vm_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def get(self, path, params=None):
        if params:
            path += "?" + urllib.parse.urlencode(params)
        for attempt in (1, 2):
            t0 = time.perf_counter()
            try:
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                body = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                # the server closes keep-alive connections left idle
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                if attempt == 2:
                    raise
        dt = time.perf_counter() - t0
        if r.status != 200:
            sys.exit(f"bench: GET {path} answered {r.status}: {body[:300]!r}")
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        return dt, body

    def stream_lines(self, path, params):
        """Rows of a streamed export; returns (rows, bytes, seconds)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        t0 = time.perf_counter()
        conn.request("GET", path + "?" + urllib.parse.urlencode(params))
        r = conn.getresponse()
        if r.status != 200:
            sys.exit(f"bench: export answered {r.status}: {r.read()[:300]!r}")
        lines = size = 0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            lines += chunk.count(b"\n")
            size += len(chunk)
        dt = time.perf_counter() - t0
        conn.close()
        return lines, size, dt


def pct(values, p):
    values = sorted(values)
    return values[max(0, min(len(values) - 1, int(round(p / 100 * len(values) + 0.5)) - 1))]


def timed(client, make_params, runs, path="/executions"):
    times = []
    for _ in range(runs):
        dt, _ = client.get(path, make_params())
        times.append(dt * 1000)
    return pct(times, 50), pct(times, 95)


def start_server(tmp, db):
    port = free_port()
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--db", db, "--labels",
         f"envhub.test={RUN_ID}"], stdout=log, stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("ENVHUB_")})
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    sys.exit("bench: envhub did not start; see " + log.name)


def main():
    tmp = tempfile.mkdtemp(prefix="envhub-bench-history-")
    db = os.environ.get("BENCH_DB") or os.path.join(tmp, "history.db")
    proc = None
    try:
        print(f"bench-history: {os.cpu_count()} CPUs, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        if not os.environ.get("BENCH_DB"):
            print(f"seeding {ROWS:,} executions into {db} ...", flush=True)
            t0 = time.time()
            subprocess.run([SEED, db, str(ROWS), "--days", "365", "--seed", "20261123"],
                           check=True)
            seed_s = time.time() - t0
            print(f"  {seed_s:.0f} s ({ROWS / seed_s:,.0f} rows/s), catalog "
                  f"{os.path.getsize(db) / 1e9:.2f} GB", flush=True)
        proc, port = start_server(tmp, db)
        c = Client(port)
        rnd = random.Random(7)
        _, body = c.get("/executions", {"limit": 1})
        newest = json.loads(body)["items"][0]
        now = int(time.mktime(time.strptime(newest["recorded_at"][:19], "%Y-%m-%dT%H:%M:%S"))
                  - time.timezone) * 1000
        month = now - 30 * 86400000
        for _ in range(20):  # warm the page cache a little, as a running server's would be
            c.get("/executions", {"status": rnd.choice(STATUSES)})

        results = []

        def filtered():
            choice = rnd.randrange(5)
            p = {}
            if choice == 0:  # the example
                p = {"environment": rnd.choice(ENVS), "status": "failed",
                     "since": iso(now - rnd.randrange(1, 60) * 86400000)}
            elif choice == 1:
                p = {"environment": rnd.choice(ENVS), "environment_version": rnd.randint(1, 2)}
            elif choice == 2:
                p = {"principal": f"user{rnd.randrange(60):02d}", "status": rnd.choice(STATUSES)}
            elif choice == 3:
                p = {"status": rnd.choice(STATUSES), "until": iso(now - rnd.randrange(300) * 86400000)}
            else:
                p = {"environment": rnd.choice(ENVS), "status": rnd.choice(STATUSES),
                     "since": iso(now - 200 * 86400000), "until": iso(now - 100 * 86400000)}
            p["limit"] = 50
            return p

        p50, p95 = timed(c, filtered, RUNS)
        results.append(("filtered first page (limit 50)", p50, p95, "p95 < 20 ms", p95 < 20))

        # the cursor chain: walk 200 pages of 500 down, then revisit deep cursors
        cursors, cursor = [], None
        t0 = time.perf_counter()
        for _ in range(200):
            p = {"limit": 500}
            if cursor:
                p["cursor"] = cursor
            _, body = c.get("/executions", p)
            cursor = json.loads(body)["next_cursor"]
            cursors.append(cursor)
        walk_s = time.perf_counter() - t0
        deep = cursors[150:]
        p50, p95 = timed(c, lambda: {"cursor": rnd.choice(deep), "limit": 50}, RUNS)
        results.append(("page 75,000+ rows deep (limit 50)", p50, p95, "", None))
        cursors, cursor = [], None
        for _ in range(100):
            p = {"limit": 500, "status": "failed"}
            if cursor:
                p["cursor"] = cursor
            _, body = c.get("/executions", p)
            cursor = json.loads(body)["next_cursor"]
            if cursor:
                cursors.append(cursor)
        p50, p95 = timed(c, lambda: {"status": "failed", "cursor": rnd.choice(cursors[60:]),
                                     "limit": 50}, RUNS)
        results.append(("status=failed page 30,000+ rows deep", p50, p95, "", None))

        p50, p95 = timed(c, lambda: {"q": rnd.choice(WORDS), "limit": 50}, RUNS)
        results.append(("text search q= (limit 50)", p50, p95, "", None))
        p50, p95 = timed(c, lambda: {"q": rnd.choice(WORDS), "environment": rnd.choice(ENVS),
                                     "status": "failed", "limit": 50}, RUNS)
        results.append(("text search + environment + status", p50, p95, "", None))

        p50, p95 = timed(c, lambda: {"group": "day", "since": iso(month)}, 20,
                         "/executions/stats")
        results.append(("stats by day, last 30 days", p50, p95, "", None))
        p50, p95 = timed(c, lambda: {"group": "day", "environment": rnd.choice(ENVS),
                                     "since": iso(month)}, 20, "/executions/stats")
        results.append(("stats by day, one environment, 30 days", p50, p95, "", None))
        p50, p95 = timed(c, lambda: {"group": "day"}, 5, "/executions/stats")
        results.append((f"stats by day, all {ROWS:,} rows", p50, p95, "", None))

        print()
        print(f"{'request':42} {'p50 ms':>9} {'p95 ms':>9}  target")
        for name, a, b, target, ok in results:
            mark = "" if ok is None else ("  ok" if ok else "  MISSED")
            print(f"{name:42} {a:9.1f} {b:9.1f}  {target}{mark}")
        print(f"(walking 200 pages of 500 rows: {walk_s:.2f} s)")

        print()
        hwm0 = vm_kb(proc.pid, "VmHWM")
        rates = []
        for fmt in ("jsonl", "csv"):
            lines, size, dt = c.stream_lines("/executions/export", {"format": fmt})
            rows = lines - (1 if fmt == "csv" else 0)
            rates.append(rows / dt)
            print(f"export {fmt:5}: {rows:,} rows, {size / 1e6:.0f} MB in {dt:.2f} s = "
                  f"{rows / dt:,.0f} rows/s  (target > 100,000){'' if rows / dt > 100000 else '  MISSED'}")
        hwm1 = vm_kb(proc.pid, "VmHWM")
        print(f"server peak RSS (VmHWM): {hwm0 / 1024:.1f} MB before the exports, "
              f"{hwm1 / 1024:.1f} MB after; VmRSS now {vm_kb(proc.pid, 'VmRSS') / 1024:.1f} MB")

        dt, body = c.get("/audit/verify")
        v = json.loads(body)
        rate = v["count"] / dt
        print(f"verify: ok={v['ok']} {v['count']:,} links in {dt:.2f} s = {rate:,.0f} rows/s "
              f"(target > 200,000){'' if rate > 200000 else '  MISSED'}; head {v['head'][:16]}…")
        t0 = time.perf_counter()
        r = subprocess.run([BIN, "audit", "verify", "--db", db], capture_output=True, text=True)
        dt = time.perf_counter() - t0
        print(f"verify offline (envhub audit verify --db): exit {r.returncode} in {dt:.2f} s = "
              f"{v['count'] / dt:,.0f} rows/s")
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

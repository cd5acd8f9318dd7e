#!/usr/bin/env python3
"""make soak (a benchmark, not part of make bench): SOAK_MINUTES (30) minutes of the mixed
load of bench_pool.py (hello, an exception, exit 3, a 2 s timeout, an input and an output
file, 1 MB of output; every answer checked) from SOAK_CLIENTS (10) clients in a closed loop,
against one server with default settings (ENVHUB_MAX_REMOVAL_BACKLOG 32) but no daily output
budget (the load stores about 5 GB in 30 minutes). It stops early past 100 wrong answers.

Printed once a minute: jobs, wrong answers, jobs/s, p50 and p95, the server's RSS (VmRSS)
and its peak (VmHWM), its CPU per job, the peak of live containers (the engine sampled every
0.25 s) against the bound (ENVHUB_MAX_POOL_SIZE + CONCURRENT_LIMIT + the backlog), the
removal backlog and the pool's burst returns. At the end: the RSS of the last minute against
the second one, the highest live count, and the containers of the server still alive a
minute after the last answer (they must be none but the pool's ready ones, which are fresh).

Environment: ENVHUB_BIN, SOAK_MINUTES, SOAK_CLIENTS."""

import os
import secrets
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError  # noqa: E402
from bench_pool import one_job, metric  # noqa: E402

BIN = os.path.abspath(os.environ.get("ENVHUB_BIN", "build/envhub"))
MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "10"))
RUN_ID = "soak-" + secrets.token_hex(4)
BOUND = 10 + 10 + 32  # ENVHUB_MAX_POOL_SIZE + CONCURRENT_LIMIT + ENVHUB_MAX_REMOVAL_BACKLOG (defaults)
AFTER = 60.0


def note(msg):
    print(f"[soak] {msg}", file=sys.stderr, flush=True)


def main():
    engine = bl.Engine()
    if not engine.ping():
        sys.exit(f"soak: no Docker engine answers on {engine.path} (make engine)")
    tmp = tempfile.mkdtemp(prefix="envhub-soak-")
    binary = os.path.join(tmp, "envhub")
    shutil.copy2(BIN, binary)
    # 30 minutes of it store about 5 GB of output: past the default daily budget of one
    # caller (ENVHUB_OUTPUT_BUDGET, 1g), whose refusals would then be the answers
    server = bl.Server(binary, RUN_ID, "default", ["--output-budget", "0"], tmp)
    lock = threading.Lock()
    minute = {"lat": [], "wrong": [], "peak": 0, "backlog": 0}
    used, all_wrong = set(), []
    stop = threading.Event()
    try:
        server.start()
        bl.wait_quiet(server, engine, within=60)
        t0 = time.monotonic()
        t_end = t0 + MINUTES * 60

        def client(i):
            k = i
            while time.monotonic() < t_end and len(all_wrong) + len(minute["wrong"]) <= 100:
                s = time.perf_counter()
                try:
                    host = one_job(server.port, k)
                    with lock:
                        minute["lat"].append(time.perf_counter() - s)
                        used.add(host)
                except Exception as e:  # noqa: BLE001 - counted and reported
                    with lock:
                        minute["wrong"].append(f"{e.__class__.__name__}: {e}")
                k += 1

        def sampler():
            n = 0
            while not stop.is_set():
                live = len(engine.containers(server.label))
                with lock:
                    minute["peak"] = max(minute["peak"], live)
                if n % 4 == 0:
                    b = metric(bl.metrics(server.port), "envhub_containers_removal_backlog")
                    with lock:
                        minute["backlog"] = max(minute["backlog"], b)
                n += 1
                time.sleep(0.25)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        sam = threading.Thread(target=sampler, daemon=True)
        sam.start()
        for t in threads:
            t.start()
        print(f"{'min':>3} {'jobs':>5} {'wrong':>5} {'jobs/s':>6} {'p50 ms':>7} {'p95 ms':>7} {'RSS MB':>6} "
              f"{'peak MB':>7} {'cpu ms/job':>10} {'live peak':>9} {'bound':>5} {'backlog':>7} {'bursts':>6}",
              flush=True)
        rss, peaks = [], []
        cpu0 = server.cpu_seconds()
        m = 0
        while any(t.is_alive() for t in threads):
            time.sleep(min(60.0, max(0.1, t0 + (m + 1) * 60 - time.monotonic())))
            if time.monotonic() < t0 + (m + 1) * 60 and any(t.is_alive() for t in threads):
                continue
            m += 1
            with lock:
                lat, wrong, peak, backlog = minute["lat"], minute["wrong"], minute["peak"], minute["backlog"]
                minute.update(lat=[], wrong=[], peak=0, backlog=0)
            all_wrong.extend(wrong)
            st = bl.summarize(lat)
            cpu1 = server.cpu_seconds()
            r = server.status_kb("VmRSS") / 1024
            rss.append(r)
            peaks.append(peak)
            bursts = metric(bl.metrics(server.port), "envhub_pool_burst_returns_total")
            print(f"{m:>3} {len(lat):>5} {len(wrong):>5} {len(lat) / 60:>6.1f} {st['p50']:>7.1f} {st['p95']:>7.1f} "
                  f"{r:>6.1f} {server.status_kb('VmHWM') / 1024:>7.1f} "
                  f"{(cpu1 - cpu0) * 1000 / max(1, len(lat)):>10.1f} {peak:>9} {BOUND:>5} {backlog:>7} {bursts:>6.0f}",
                  flush=True)
            cpu0 = cpu1
        t_last = time.monotonic()
        note(f"load over; waiting {AFTER:.0f} s")
        while time.monotonic() < t_last + AFTER:
            time.sleep(0.5)
        stop.set()
        sam.join(timeout=10)
        alive = {c["Id"][:12] for c in engine.containers(server.label)}
        left = sorted(alive & used)
        print()
        print(f"wrong answers: {len(all_wrong)}" + (f" (first: {all_wrong[0]})" if all_wrong else ""))
        if len(rss) >= 2:
            print(f"RSS: minute 2 {rss[1]:.1f} MB, last minute {rss[-1]:.1f} MB "
                  f"({rss[-1] / rss[1]:.2f}x), highest from minute 2 on {max(rss[1:]):.1f} MB")
        print(f"live containers: highest {max(peaks) if peaks else 0} (bound {BOUND})"
              f" {'PASS' if peaks and max(peaks) <= BOUND else 'MISS'}")
        print(f"containers of finished jobs alive {AFTER:.0f} s after the last answer: {len(left)}"
              f" {'PASS' if not left else 'MISS ' + ' '.join(left[:10])}")
        return 1 if all_wrong else 0
    except BenchError as e:
        print(f"soak: {e}", file=sys.stderr)
        print(server.log_tail(), file=sys.stderr)
        return 1
    finally:
        stop.set()
        server.stop()
        engine.remove_labelled(f"envhub.test={RUN_ID}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

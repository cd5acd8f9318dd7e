#!/usr/bin/env python3
"""make bench-agent (also part of make bench): the agent transport against today's exec
path and the raw baselines, every figure measured in this run (issue 14).

Baselines: a bare Engine API exec of python3 -c print('hi') into a running sandbox
container; `docker run --rm` with the sandbox's limits; the raw exec-reuse ceiling (10
clients, each exec'ing into a running container of its own, closed loop).
envhub, two servers of each transport (ENVHUB_JOB_TRANSPORT=agent, the default, and
exec), print('hi'):
  - default settings (pool 2, single-use containers): open loop, one request a second
    (a bare exec half a second after each, in the same seconds), and closed loop at c=1;
  - recycling (--pool-size 10 --pool-recycle 100): closed loop at c=10, jobs/s, server
    CPU per job and peak RSS (VmHWM).
The c=1 phases alternate the transports round by round so drift hits both alike.

Environment: ENVHUB_BIN, DOCKER_IMAGE (envhub/python:bookworm), BENCH_AGENT_JOBS (per
phase, default 20)."""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError  # noqa: E402

IMAGE = os.environ.get("DOCKER_IMAGE", "envhub/python:bookworm")
BIN = os.path.abspath(os.environ.get("ENVHUB_BIN", "build/envhub"))
JOBS = int(os.environ.get("BENCH_AGENT_JOBS", "20"))
RUN_ID = "bench-agent-" + secrets.token_hex(4)
RAW_LABELS = {"envhub.test": RUN_ID, "envhub.bench": f"{RUN_ID}-raw"}
HI_CMD = ["python3", "-c", "print('hi')"]
DOCKER_RUN = [
    "docker", "run", "--rm", "--network", "none", "--read-only", "--user", "1000:1000",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--memory", "512m",
    "--memory-swap", "512m", "--cpus", "1", "--pids-limit", "128", "--log-driver", "none",
    "--tmpfs", "/workspace:rw,nosuid,nodev,size=128m,uid=1000,gid=1000", "--tmpfs", "/tmp",
    "--label", f"envhub.test={RUN_ID}", "-w", "/workspace", IMAGE, "python3", "-c", "print('hi')",
]


def note(msg):
    print(f"[bench-agent] {msg}", file=sys.stderr, flush=True)


def bare_exec(engine, cid):
    t0 = time.perf_counter()
    code, out, _err = engine.exec_run(cid, HI_CMD)
    if code != 0 or out != b"hi\n":
        raise BenchError(f"bare exec: exit {code}, stdout {out!r}")
    return time.perf_counter() - t0


def docker_run():
    t0 = time.perf_counter()
    p = subprocess.run(DOCKER_RUN, capture_output=True, text=True)
    if p.returncode != 0 or p.stdout != "hi\n":
        raise BenchError(f"docker run: exit {p.returncode}: {p.stderr.strip()[:200]}")
    return time.perf_counter() - t0


def p50(load_or_list):
    lat = getattr(load_or_list, "latencies", load_or_list)
    if not lat:
        return float("nan")
    return bl.summarize(lat)["p50"]  # ms


def check(load, what):
    if load.errors:
        raise BenchError(f"{what}: {len(load.errors)} failed, first: {load.errors[0]}")


def main():
    engine = bl.Engine()
    if not engine.ping():
        sys.exit(f"bench-agent: no Docker engine answers on {engine.path} (make engine)")
    if not engine.image_exists(IMAGE):
        sys.exit(f"bench-agent: the engine lacks {IMAGE} (make base-image)")
    tmp = tempfile.mkdtemp(prefix="envhub-bench-agent-")
    binary = os.path.join(tmp, "envhub")
    shutil.copy2(BIN, binary)
    servers, bare = [], []
    rows, targets = [], []
    try:
        for _ in range(10):
            cid = engine.create_sandbox(IMAGE, RAW_LABELS)
            engine.start(cid)
            bare.append(cid)

        def server(name, *flags):
            s = bl.Server(binary, RUN_ID, name, flags, tmp)
            servers.append(s)
            return s.start()

        hi = {}
        defaults = {t: server(f"default-{t}", "--job-transport", t) for t in ("agent", "exec")}
        for t, s in defaults.items():
            hi[t] = lambda *_a, s=s: bl.execute(s.port, "print('hi')", bl.check_hi)
            bl.wait_quiet(s, engine)
            hi[t]()  # warm-up

        # baselines, c=1
        note(f"baselines: {JOBS} bare execs, {JOBS // 2} docker runs")
        exec_c1 = [bare_exec(engine, bare[0]) for _ in range(JOBS)]
        docker_c1 = [docker_run() for _ in range(JOBS // 2)]
        rows.append(("bare Engine API exec, c=1", p50(exec_c1), None))
        rows.append(("docker run --rm, c=1", p50(docker_c1), None))

        # default settings, one request a second, transports alternating
        open_l = {}
        for t in ("agent", "exec", "agent", "exec"):
            bl.wait_quiet(defaults[t], engine)
            note(f"default settings ({t}): open loop, 1 request/s, {JOBS // 2} s")
            main_l, side = bl.open_loop(hi[t], 1, JOBS // 2, side_job=lambda _i: bare_exec(engine, bare[1]))
            check(main_l, f"open loop {t}")
            open_l.setdefault(t, ([], []))
            open_l[t][0].extend(main_l.latencies)
            open_l[t][1].extend(side.latencies)
        for t, (lat, side) in open_l.items():
            rows.append((f"envhub {t}, defaults, 1 request/s", p50(lat), f"bare exec same seconds {p50(side):.1f} ms"))

        # default settings, closed loop c=1
        closed = {}
        for t in ("agent", "exec", "agent", "exec"):
            bl.wait_quiet(defaults[t], engine)
            note(f"default settings ({t}): closed loop c=1, {JOBS // 2} jobs")
            load = bl.closed_loop(hi[t], 1, JOBS // 2)
            check(load, f"closed loop {t}")
            closed.setdefault(t, []).extend(load.latencies)
        for t, lat in closed.items():
            rows.append((f"envhub {t}, defaults, closed loop c=1", p50(lat), f"{len(lat) / sum(lat):.1f} jobs/s"))
        for s in list(defaults.values()):
            s.stop()

        # the raw exec-reuse ceiling at c=10
        note("raw exec reuse: 10 clients x 10 execs")
        raw = bl.closed_loop(lambda i: bare_exec(engine, bare[i]), 10, 10)
        check(raw, "raw exec reuse")
        rows.append(("raw exec reuse, c=10 (ceiling)", p50(raw), f"{raw.rate:.1f} jobs/s"))

        # recycling at c=10, both transports
        rec = {}
        for t in ("agent", "exec"):
            s = server(f"recycle-{t}", "--job-transport", t, "--pool-size", "10", "--pool-recycle", "100")
            job = lambda *_a, s=s: bl.execute(s.port, "print('hi')", bl.check_hi)  # noqa: E731
            bl.wait_quiet(s, engine)
            bl.closed_loop(job, 10, 1)  # warm-up
            bl.wait_quiet(s, engine)
            note(f"recycling ({t}): c=10 x 10 jobs")
            cpu0 = s.cpu_seconds()
            load = bl.closed_loop(job, 10, 10)
            cpu = (s.cpu_seconds() - cpu0) * 1000 / max(1, load.jobs)
            hwm = s.status_kb("VmHWM") / 1024
            check(load, f"recycling {t}")
            rec[t] = load
            rows.append((f"envhub {t}, recycling, c=10", p50(load),
                         f"{load.rate:.1f} jobs/s; cpu {cpu:.1f} ms/job; peak RSS {hwm:.0f} MB"))
            s.stop()

        print()
        head = "print('hi')"
        print(f"{head:<48} {'p50 ms':>8}  notes")
        for name, v, extra in rows:
            print(f"{name:<48} {v:8.1f}  {extra or ''}")
        ex, dk = p50(exec_c1), p50(docker_c1)
        a_open = p50(open_l["agent"][0])
        targets.append(("warm 1 req/s p50 / bare exec p50", a_open / ex, 0.5))
        targets.append(("warm 1 req/s p50 / docker run --rm p50", a_open / dk, 0.1))
        targets.append(("closed loop c=1 p50 / bare exec p50", p50(closed["agent"]) / ex, 1.0))
        print()
        print("targets (issue 14), ratios of figures measured above:")
        for name, r, limit in targets:
            print(f"  {name:<46} = {r:6.2f}x  (at most {limit}x)  {'PASS' if r <= limit else 'MISS'}")
        r = rec["agent"].rate / raw.rate
        print(f"  {'recycling c=10 jobs/s / raw exec-reuse jobs/s':<46} = {r:6.2f}x  (at least 3x)  "
              f"{'PASS' if r >= 3 else 'MISS'}")
        print(f"  for reading them: agent / exec transport, 1 req/s p50 = "
              f"{a_open / p50(open_l['exec'][0]):.2f}x; closed loop c=1 = "
              f"{p50(closed['agent']) / p50(closed['exec']):.2f}x; recycling c=10 jobs/s = "
              f"{rec['agent'].rate / rec['exec'].rate:.2f}x")
        return 0
    except BenchError as e:
        print(f"bench-agent: {e}", file=sys.stderr)
        for s in servers:
            print(f"--- {s.name}\n{s.log_tail()}", file=sys.stderr)
        return 1
    finally:
        for s in servers:
            s.stop()
        engine.remove_labelled(f"envhub.test={RUN_ID}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""make bench: envhub's POST /execute beside the raw baselines, all measured in one run.

Baselines (same run, same engine, same machine):
  host python3 -c print('hi'); a bare Engine API exec into an already running sandbox
  container; a fresh container per job through the raw Engine API (create with
  NetworkDisabled, start, exec, remove with force) at concurrency 1 and 10;
  `docker run --rm` by the CLI with the sandbox's limits.
envhub (servers started here, each with a catalog of its own):
  warm (--pool-size 10): closed loop at concurrency 1, 2, 4, 10 and open loop (one request
  per second per client) at concurrency 1 and 4; cold (--pool-size 0): concurrency 1 and
  10; recycling (--pool-size 10 --pool-recycle 100) at concurrency 10; 1 MB of output per
  job at concurrency 10 (--output-limit 2m) for the peak RSS; `import numpy` in a built
  environment, cold and warm; CPU seconds per job from /proc; the basic-python build and
  its unchanged rebuild (a cache hit).

The c=1 comparisons are interleaved (each round runs every kind once, in a shuffled
order, and waits for the engine to settle between them), the c=10 fresh-container
comparison alternates rounds, the open-loop runs time a bare exec half a second after
each request: drift on a shared machine then hits both sides alike, and the ratios hold
where absolute numbers do not. Targets are printed as PASS/MISS; the exit status is 0
unless something broke (a failed request, a wrong answer, a server that did not start).

Environment: ENVHUB_BIN (the binary), DOCKER_IMAGE (envhub/python:bookworm), BENCH_RUNS
(interleaved rounds at c=1, default 20)."""

import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_RUNS", "20"))
IMAGE = os.environ.get("DOCKER_IMAGE", "envhub/python:bookworm")
BIN = os.path.abspath(os.environ.get("ENVHUB_BIN", "build/envhub"))
HOST_PYTHON = "/usr/bin/python3"
RUN_ID = "bench-" + secrets.token_hex(4)
TEST_LABEL = f"envhub.test={RUN_ID}"
RAW_LABELS = {"envhub.test": RUN_ID, "envhub.bench": f"{RUN_ID}-raw"}
HERE = os.path.dirname(os.path.abspath(__file__))

HI = "print('hi')"
HI_CMD = ["python3", "-c", HI]
MB = 1048576
BIG = f"import sys; sys.stdout.write('x'*{MB})"
NUMPY = "import numpy; print(numpy.__version__)"
NUMPY_SCRIPT = ("apt-get update && apt-get install -y --no-install-recommends python3-numpy "
                "&& rm -rf /var/lib/apt/lists/*")
POOL = 10

DOCKER_RUN = [
    "docker", "run", "--rm", "--network", "none", "--read-only", "--user", "1000:1000",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--memory", "512m",
    "--memory-swap", "512m", "--cpus", "1", "--pids-limit", "128", "--shm-size", "4m",
    "--log-driver", "none", "--tmpfs", "/workspace:rw,nosuid,nodev,size=128m,uid=1000,gid=1000",
    "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m", "--label", TEST_LABEL,
    "-w", "/workspace", IMAGE, "python3", "-c", HI,
]

T_START = time.monotonic()


def note(msg):
    print(f"bench [{time.monotonic() - T_START:5.0f}s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- checks of answers

def check_big(answer):
    out = answer.get("stdout") or ""
    if len(out) != MB or out.strip("x") or answer.get("stdout_truncated"):
        return f"stdout of {len(out)} characters (truncated: {answer.get('stdout_truncated')}), expected {MB} x"
    return None


def check_numpy(answer):
    out = answer.get("stdout") or ""
    return None if re.fullmatch(r"\d+\.\d+(\.\d+)?\S*\n", out) else f"stdout {out[:200]!r}, expected a version"


# ---------------------------------------------------------------- the report

class Report:
    def __init__(self):
        self.rows = []      # (section, name, summary | None, jobs/s, note)
        self.values = {}    # key -> number, for the ratios
        self.errors = []    # what broke
        self.lines = []     # free lines after the table (builds, resources)

    def row(self, section, name, load=None, latencies=None, rate=None, note_text="", key=None):
        lat = load.latencies if load is not None else (latencies or [])
        s = bl.summarize(lat) if lat else None
        if rate is None and load is not None:
            rate = load.rate
        if load is not None and load.errors:
            self.errors.append(f"{name}: {len(load.errors)} failed, first: {load.errors[0]}")
            note_text = (note_text + f"; {len(load.errors)} FAILED").lstrip("; ")
        self.rows.append((section, name, s, rate, note_text))
        if key and s:
            self.values[key + ".p50"] = s["p50"]
        if key and rate is not None:
            self.values[key + ".rate"] = rate
        return s

    def line(self, text):
        self.lines.append(text)


REPORT = Report()


def serial(fn, n):
    """n calls of fn() one after the other -> a Load (c=1, closed loop)."""
    return bl.closed_loop(lambda _i: fn(), 1, n)


def c1_rate(latencies):
    return len(latencies) / sum(latencies) if latencies else None


# ---------------------------------------------------------------- baselines' jobs

def host_python():
    t0 = time.perf_counter()
    p = subprocess.run([HOST_PYTHON, "-c", HI], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0 or p.stdout != "hi\n":
        raise BenchError(f"host python3: exit {p.returncode}, stdout {p.stdout!r}")
    return elapsed


def docker_run():
    t0 = time.perf_counter()
    p = subprocess.run(DOCKER_RUN, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0 or p.stdout != "hi\n":
        raise BenchError(f"docker run: exit {p.returncode}: {p.stderr.strip()[:300]}")
    return elapsed


def bare_exec(engine, cid):
    t0 = time.perf_counter()
    code, out, err = engine.exec_run(cid, HI_CMD)
    elapsed = time.perf_counter() - t0
    if code != 0 or out != b"hi\n":
        raise BenchError(f"bare exec: exit {code}, stdout {out!r}, stderr {err[:200]!r}")
    return elapsed


def raw_fresh(engine):
    t0 = time.perf_counter()
    out = engine.fresh_job(IMAGE, RAW_LABELS, HI_CMD)
    elapsed = time.perf_counter() - t0
    if out != b"hi\n":
        raise BenchError(f"raw fresh container: stdout {out!r}")
    return elapsed


def raw_quiet(engine, keep, within=30):
    """Until only the `keep` running bare-exec containers of ours are left."""
    deadline = time.monotonic() + within
    while len(engine.containers(f"envhub.bench={RUN_ID}-raw")) > keep and time.monotonic() < deadline:
        time.sleep(0.1)


# ---------------------------------------------------------------- phases

class Bench:
    def __init__(self, tmp):
        self.tmp = tmp
        # a copy: the servers started late in the run are the same program as the first ones,
        # whatever a rebuild of build/ does meanwhile (the tree is shared)
        self.binary = os.path.join(tmp, "envhub")
        shutil.copy2(BIN, self.binary)
        self.engine = bl.Engine()
        self.servers = []
        self.bare = []  # running containers for the bare exec baseline

    def server(self, name, *flags):
        s = bl.Server(self.binary, RUN_ID, name, flags, self.tmp)
        self.servers.append(s)
        s.start()
        return s

    def stop(self, server):
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def quiet(self, server, what=""):
        waited = bl.wait_quiet(server, self.engine)
        if waited is None:
            note(f"{server.name}: the pool did not refill within 60 s {what}(going on)")
        return waited

    def ex(self, server, code=HI, check=bl.check_hi, environment=None):
        return lambda *_a: bl.execute(server.port, code, check, environment=environment)

    # -- c=1, interleaved: host python3, bare exec, raw fresh, docker run, envhub warm and cold
    def phase_c1(self, warm, cold):
        kinds = {
            "host": host_python,
            "exec": lambda: bare_exec(self.engine, self.bare[0]),
            "fresh": lambda: raw_fresh(self.engine),
            "docker": docker_run,
            "warm": self.ex(warm),
            "cold": self.ex(cold),
        }
        settle = {"warm": lambda: self.quiet(warm), "cold": lambda: self.quiet(cold)}
        samples = {k: [] for k in kinds}
        errors = {k: [] for k in kinds}
        note(f"c=1 interleaved: 2 warm-up rounds, then {ROUNDS} rounds of {', '.join(kinds)}")
        for rnd in range(2 + ROUNDS):
            order = list(kinds)
            random.shuffle(order)
            for k in order:
                try:
                    t = kinds[k]()
                    if rnd >= 2:
                        samples[k].append(t)
                except (BenchError, OSError) as e:
                    errors[k].append(str(e))
                if k in settle:
                    settle[k]()
        for k, errs in errors.items():
            if errs:
                REPORT.errors.append(f"c=1 {k}: {len(errs)} failed, first: {errs[0]}")
        return samples

    # -- warm closed loop at c = 1, 2, 4, 10
    def phase_warm_sweep(self, warm):
        out = {}
        for c, per in ((1, 30), (2, 30), (4, 30), (10, 10)):
            self.quiet(warm)
            before = bl.pool_numbers(warm.port, "")
            cpu0 = warm.cpu_seconds()
            note(f"warm closed loop c={c}: {c * per} jobs")
            load = bl.closed_loop(self.ex(warm), c, per)
            after = bl.pool_numbers(warm.port, "")
            self.quiet(warm, "after the batch ")  # the replacements' cost belongs to the batch
            cpu = warm.cpu_seconds() - cpu0
            hits = after["hits"] - before["hits"]
            misses = after["misses"] - before["misses"]
            out[c] = (load, hits, misses, cpu)
        return out

    # -- open loop: one request per second per client, a bare exec 0.5 s after each
    def phase_open(self, warm):
        out = {}
        for c, per in ((1, 12), (4, 12)):
            self.quiet(warm)
            note(f"warm open loop c={c}: {per} s, one request per second per client")
            before = bl.pool_numbers(warm.port, "")
            main, side = bl.open_loop(self.ex(warm), c, per,
                                      side_job=lambda i: bare_exec(self.engine, self.bare[i]))
            after = bl.pool_numbers(warm.port, "")
            out[c] = (main, side, after["hits"] - before["hits"], after["misses"] - before["misses"])
        return out

    # -- cold closed loop at c = 2 and 4 (c=1 is interleaved above, c=10 below)
    def phase_cold_sweep(self, cold):
        out = {}
        for c, per in ((2, 8), (4, 5)):
            self.quiet(cold)
            cpu0 = cold.cpu_seconds()
            note(f"cold closed loop c={c}: {c * per} jobs")
            load = bl.closed_loop(self.ex(cold), c, per)
            self.quiet(cold, "after the batch ")
            out[c] = (load, cold.cpu_seconds() - cpu0)
        return out

    # -- c=10 fresh container per job: the raw sequence and envhub cold, alternating rounds
    def phase_c10_cold(self, cold, rounds=2, per=3):
        raw, env = bl.Load(), bl.Load()
        cpu = 0.0
        for r in range(rounds):
            raw_quiet(self.engine, len(self.bare))
            note(f"c=10 fresh container per job, round {r + 1}/{rounds}: raw Engine API, {10 * per} jobs")
            load = bl.closed_loop(lambda _i: raw_fresh(self.engine), 10, per)
            merge(raw, load)
            self.quiet(cold)
            note(f"c=10 fresh container per job, round {r + 1}/{rounds}: envhub cold, {10 * per} jobs")
            cpu0 = cold.cpu_seconds()
            load = bl.closed_loop(self.ex(cold), 10, per)
            self.quiet(cold, "after the batch ")
            cpu += cold.cpu_seconds() - cpu0
            merge(env, load)
        return raw, env, cpu

    def phase_recycle(self):
        s = self.server("recycle", "--pool-size", str(POOL), "--pool-recycle", "100")
        try:
            self.quiet(s)
            note("recycling: warm-up, then c=10 x 10 jobs")
            bl.closed_loop(self.ex(s), 10, 1)
            self.quiet(s)
            before = bl.pool_numbers(s.port, "")
            cpu0 = s.cpu_seconds()
            load = bl.closed_loop(self.ex(s), 10, 10)
            after = bl.pool_numbers(s.port, "")
            self.quiet(s, "after the batch ")
            cpu = s.cpu_seconds() - cpu0
            return load, after["hits"] - before["hits"], after["misses"] - before["misses"], cpu
        finally:
            self.stop(s)

    def phase_big(self):
        s = self.server("big", "--pool-size", str(POOL), "--output-limit", "2m")
        try:
            self.quiet(s)
            note("1 MB of output per job: warm-up, then c=10 x 5 jobs")
            bl.closed_loop(self.ex(s, BIG, check_big), 2, 1)
            self.quiet(s)
            rss0 = s.status_kb("VmRSS")
            cpu0 = s.cpu_seconds()
            load = bl.closed_loop(self.ex(s, BIG, check_big), 10, 5)
            hwm = s.status_kb("VmHWM")
            self.quiet(s, "after the batch ")
            cpu = s.cpu_seconds() - cpu0
            return load, cpu, rss0, hwm
        finally:
            self.stop(s)

    # -- import numpy in a built environment, cold and warm
    def phase_numpy(self, cold):
        name = "bench-numpy-" + secrets.token_hex(3)
        note(f"numpy: building {name} (apt-get python3-numpy)")
        t0 = time.perf_counter()
        # the run id in a comment: a build from scratch, not a cache hit on an earlier run's
        body = {"name": name, "setup_script": f"# make bench {RUN_ID}\n{NUMPY_SCRIPT}\n",
                "policy": {"pool_size": POOL}}
        status, env = bl.api(cold.port, "POST", "/environments", body)
        policy_note = ""
        if status != 200:  # a server that knows `policy` but refuses this one
            policy_note = f"POST /environments refused the policy ({status}: {str(env)[:120]})"
            body.pop("policy")
            status, env = bl.api(cold.port, "POST", "/environments", body)
        if status != 200:
            raise BenchError(f"cannot create {name}: {status} {env}")
        build = wait_version(cold.port, name, 1)
        build_s = time.perf_counter() - t0
        REPORT.line(f"{'numpy environment build (create to ready)':<52} {build_s:8.1f} s")
        image = bl.api(cold.port, "GET", f"/environments/{name}")[1]["docker_image"]
        # a pool of its own when POST /environments took the policy (it shows in /metrics)
        deadline = time.monotonic() + 5
        target = 0
        while time.monotonic() < deadline and not target:
            target = bl.pool_numbers(cold.port, name)["target"]
            time.sleep(0.2)
        results = {}
        other = None
        try:
            if target:
                warm_env, warm_srv = name, cold
                other = self.server("numpy-cold", "--image", image, "--pool-size", "0")
                cold_env, cold_srv = None, other
                how = (f"warm: the environment's policy pool_size {target}; cold: a server whose "
                       f"default image is the environment's (--image, --pool-size 0)")
            else:
                cold_env, cold_srv = name, cold
                other = self.server("numpy-warm", "--image", image, "--pool-size", str(POOL))
                warm_env, warm_srv = None, other
                how = ("POST /environments has no pool policy (no pool in /metrics for the "
                       "environment): cold is POST /execute with `environment`; warm is a server "
                       f"whose default image is the environment's image (--image {image} "
                       f"--pool-size {POOL})")
            if policy_note:
                how = policy_note + "; " + how
            for mode, srv, env_name in (("cold", cold_srv, cold_env), ("warm", warm_srv, warm_env)):
                job = self.ex(srv, NUMPY, check_numpy, environment=env_name)
                self.quiet(srv)
                job()  # warm-up: the page cache for the image's numpy
                for c, per in ((1, 10), (2, 5), (4, 4), (10, 3)):
                    self.quiet(srv)
                    before = bl.pool_numbers(srv.port, env_name or "")
                    note(f"numpy {mode} c={c}: {c * per} jobs")
                    load = bl.closed_loop(job, c, per)
                    after = bl.pool_numbers(srv.port, env_name or "")
                    results[(mode, c)] = (load, after["hits"] - before["hits"],
                                          after["misses"] - before["misses"])
        finally:
            if other:
                self.stop(other)
            bl.api(cold.port, "DELETE", f"/environments/{name}")
        return results, how, build

    def phase_builds(self, cold):
        """The basic-python example built from scratch, then rebuilt unchanged (a cache hit)."""
        name = "bench-basic-" + secrets.token_hex(3)
        with open(os.path.join(HERE, "../../environments/basic-python.sh")) as f:
            script = f.read().rstrip("\n") + f"\n# make bench {RUN_ID}: a build from scratch\n"
        note(f"builds: {name} from scratch, then an unchanged rebuild")
        t0 = time.perf_counter()
        status, env = bl.api(cold.port, "POST", "/environments", {"name": name, "setup_script": script})
        if status != 200:
            raise BenchError(f"cannot create {name}: {env}")
        try:
            first = wait_version(cold.port, name, 1)
            build_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            bl.api(cold.port, "POST", f"/environments/{name}/rebuild", {})
            second = wait_version(cold.port, name, 2)
            rebuild_s = time.perf_counter() - t0
        finally:
            bl.api(cold.port, "DELETE", f"/environments/{name}")
        if not second.get("cache_hit") or second.get("image_id") != first.get("image_id"):
            raise BenchError("the unchanged rebuild was not a cache hit")
        return build_s, rebuild_s, first.get("cache_hit")


def merge(into, load):
    into.latencies += load.latencies
    into.errors += load.errors
    into.wall += load.wall


STEP_IMAGES = set()


def wait_version(port, name, version, deadline_s=600):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        builds = bl.api(port, "GET", f"/environments/{name}/builds")[1]["builds"]
        latest = builds[0] if builds else {}
        if latest.get("version") == version and latest.get("status") in ("ready", "failed", "cancelled"):
            if latest["status"] != "ready":
                _s, log = bl.http_call(port, "GET", f"/environments/{name}/builds/{version}/log")
                note_step_images(log.decode(errors="replace"))
                raise BenchError(f"build of {name} v{version} {latest['status']}: {latest.get('error')}")
            return latest
        time.sleep(0.2)
    raise BenchError(f"build of {name} v{version} did not finish in {deadline_s} s")


def note_step_images(log):
    """A failed build leaves its COPY setup.sh step as an untagged image: note it for removal."""
    lines = [line.strip() for line in log.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Step ") and "COPY setup.sh" in line:
            for after in lines[i + 1:i + 4]:
                ref = after[len("--->"):].strip() if after.startswith("--->") else ""
                if re.fullmatch(r"[0-9a-f]{12}", ref):
                    STEP_IMAGES.add(ref)
                    break


# ---------------------------------------------------------------- printing

def fmt(x, spec="8.1f"):
    return format(x, spec) if x is not None and x == x else " " * (int(spec.split(".")[0]) - 1) + "-"


def hit_note(hits, misses):
    return f"pool hits {hits}/{hits + misses}"


def print_report(started):
    w = 58
    print()
    print(f"envhub bench {RUN_ID}: image {IMAGE}, {os.cpu_count()} CPUs, load average at start "
          f"{started['load']}, Docker {started['docker']}; latency = POST sent to the whole answer read")
    print()
    head = f"{'name':<{w}} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'jobs/s':>7}  note"
    section = None
    print(head)
    for sec, name, s, rate, text in REPORT.rows:
        if sec != section:
            print(f"-- {sec} " + "-" * (len(head) - len(sec) - 4))
            section = sec
        if s:
            print(f"{name:<{w}} {s['n']:>4} {fmt(s['p50'])} {fmt(s['p95'])} {fmt(s['p99'])} "
                  f"{fmt(rate, '7.2f')}  {text}")
        else:
            print(f"{name:<{w}} {'-':>4} {'-':>8} {'-':>8} {'-':>8} {fmt(rate, '7.2f')}  {text}")
    print()
    for text in REPORT.lines:
        print(text)


def target_line(label, value, target, op, unit="x"):
    if value is None or value != value:
        print(f"{label:<64} = {'n/a':>7}   (target {op} {target}{unit})  NOT MEASURED")
        return None
    ok = value <= target if op == "<=" else value >= target if op == ">=" else value < target
    shown = f"{value:.3f}{unit}" if unit == "x" else f"{value:.1f} {unit}"  # 3 places: no 1.60x MISS
    goal = f"{target:.2f}x" if unit == "x" else f"{target} {unit}"
    print(f"{label:<64} = {shown:>9}  (target {op} {goal})  {'PASS' if ok else 'MISS'}")
    return ok


def ratio(a, b):
    v = REPORT.values
    return v[a] / v[b] if a in v and b in v and v[b] else None


def print_targets(extra):
    v = REPORT.values
    print()
    print("targets (issue 7), each ratio from numbers measured in this run:")
    target_line("warm c=1 p50 / docker run --rm p50 (interleaved)", ratio("warm1.p50", "docker.p50"), 0.40, "<=")
    target_line("warm c=1 p50 / bare Engine API exec p50 (interleaved)", ratio("warm1.p50", "exec.p50"), 1.60, "<=")
    target_line("cold c=1 p50 / docker run --rm p50 (interleaved)", ratio("cold1.p50", "docker.p50"), 0.70, "<=")
    target_line("cold c=10 jobs/s / raw Engine API fresh container c=10 jobs/s",
                ratio("cold10.rate", "fresh10.rate"), 0.90, ">=")
    print(f"{'  cold c=10: requests lost or failed':<64} = {extra['cold10_failed']:>9}  (target 0)  "
          f"{'PASS' if extra['cold10_failed'] == 0 else 'MISS'}")
    target_line("below saturation c=1 p50 / bare exec p50 (same seconds)", ratio("open1.p50", "openexec1.p50"),
                1.60, "<=")
    target_line("below saturation c=4 p50 / bare exec p50 (same seconds)", ratio("open4.p50", "openexec4.p50"),
                1.60, "<=")
    target_line("recycling (--pool-recycle 100) jobs/s at c=10", v.get("recycle10.rate"), 10, ">=", "jobs/s")
    target_line("envhub CPU per job (warm c=10, print('hi'))", extra.get("cpu_warm10"), 5, "<", "ms")
    target_line("envhub peak RSS (VmHWM), c=10, 1 MB of output per job", extra.get("hwm_mb"), 64, "<", "MB")
    print()
    print("for reading them:")
    for label, a, b in (("warm c=1 closed loop p50 / docker run --rm p50", "warm_cl1.p50", "docker.p50"),
                        ("warm c=1 closed loop p50 / bare exec p50", "warm_cl1.p50", "exec.p50"),
                        ("bare exec p50 / docker run --rm p50", "exec.p50", "docker.p50"),
                        ("raw fresh container c=1 p50 / docker run --rm p50", "fresh1.p50", "docker.p50"),
                        ("cold c=1 p50 / raw fresh container c=1 p50", "cold1.p50", "fresh1.p50"),
                        ("warm c=10 jobs/s / raw fresh container c=10 jobs/s", "warm_cl10.rate", "fresh10.rate"),
                        ("numpy warm c=1 p50 / numpy cold c=1 p50", "np_warm1.p50", "np_cold1.p50")):
        r = ratio(a, b)
        if r is not None:
            print(f"  {label:<62} = {r:6.2f}x")


# ---------------------------------------------------------------- main

def main():
    if not shutil.which("docker"):
        sys.exit("bench: the docker CLI is needed for the baseline (apt-get install docker.io)")
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        sys.exit(f"bench: no envhub binary at {BIN} (make build)")
    engine = bl.Engine()
    if not engine.ping():
        sys.exit(f"bench: no Docker engine answers on {engine.path} (make engine)")
    if not engine.image_exists(IMAGE):
        sys.exit(f"bench: the engine lacks {IMAGE} (make base-image)")
    started = {"load": " ".join(open("/proc/loadavg").read().split()[:3]),
               "docker": engine.call("GET", "/version").get("Version")}

    def on_term(_sig, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = tempfile.mkdtemp(prefix="envhub-bench-")
    try:
        bench = Bench(tmp)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(f"bench: cannot copy {BIN}: {e}")
    extra = {"cold10_failed": 0}
    broke = None
    try:
        note(f"run {RUN_ID}: starting envhub warm (--pool-size {POOL}) and cold (--pool-size 0)")
        warm = bench.server("warm", "--pool-size", str(POOL))
        cold = bench.server("cold", "--pool-size", "0")
        for _ in range(4):
            cid = engine.create_sandbox(IMAGE, RAW_LABELS)
            engine.start(cid)
            bench.bare.append(cid)

        # 1. c=1, interleaved
        bench.quiet(warm)
        bench.quiet(cold)
        warm_cpu0 = warm.cpu_seconds()
        s = bench.phase_c1(warm, cold)
        warm_c1_cpu = (warm.cpu_seconds() - warm_cpu0) / max(1, len(s["warm"]) + 2)
        B = "baselines, c=1 (interleaved rounds)"
        REPORT.row(B, "host python3 -c print('hi')", latencies=s["host"], rate=c1_rate(s["host"]))
        REPORT.row(B, "Engine API exec into a running container", latencies=s["exec"],
                   rate=c1_rate(s["exec"]), note_text="create exec, start, inspect", key="exec")
        REPORT.row(B, "Engine API fresh container (NetworkDisabled)", latencies=s["fresh"],
                   rate=c1_rate(s["fresh"]), note_text="create, start, exec, remove", key="fresh1")
        REPORT.row(B, "docker run --rm (CLI, same limits)", latencies=s["docker"],
                   rate=c1_rate(s["docker"]), key="docker")
        E = "envhub, c=1 (interleaved with the baselines above)"
        REPORT.row(E, "warm (--pool-size 10), pool refilled before each", latencies=s["warm"],
                   rate=c1_rate(s["warm"]), note_text=f"cpu {warm_c1_cpu * 1000:.1f} ms/job", key="warm1")
        REPORT.row(E, "cold (--pool-size 0)", latencies=s["cold"], rate=c1_rate(s["cold"]), key="cold1")

        # 2. warm closed loop sweep
        W = "envhub warm (--pool-size 10), closed loop, print('hi')"
        for c, (load, hits, misses, cpu) in bench.phase_warm_sweep(warm).items():
            cpu_ms = cpu * 1000 / max(1, load.jobs)
            if c == 10:
                extra["cpu_warm10"] = cpu_ms
            REPORT.row(W, f"warm c={c}", load=load, key=f"warm_cl{c}",
                       note_text=f"{hit_note(hits, misses)}; cpu {cpu_ms:.1f} ms/job")

        # 3. open loop, below saturation
        O = "below saturation: 1 request/s per client, bare exec 0.5 s after each"
        for c, (main_load, side, hits, misses) in bench.phase_open(warm).items():
            REPORT.row(O, f"envhub warm, open loop c={c}", load=main_load, rate=None,
                       note_text=hit_note(hits, misses), key=f"open{c}")
            REPORT.row(O, f"bare Engine API exec, open loop c={c}", load=side, key=f"openexec{c}")
        bench.stop(warm)

        # 4. cold closed loop at c=2 and 4, then c=10 beside the raw sequence
        C = "envhub cold (--pool-size 0), closed loop, print('hi')"
        for c, (load, cpu) in bench.phase_cold_sweep(cold).items():
            REPORT.row(C, f"cold c={c}", load=load, key=f"cold_cl{c}",
                       note_text=f"cpu {cpu * 1000 / max(1, load.jobs):.1f} ms/job")
        raw, env, cpu = bench.phase_c10_cold(cold)
        extra["cold10_failed"] = 2 * 10 * 3 - env.jobs  # failed or lost: answered jobs are counted
        F = "c=10, fresh container per job (alternating rounds)"
        REPORT.row(F, "Engine API fresh container (NetworkDisabled)", load=raw, key="fresh10",
                   note_text="create, start, exec, remove")
        REPORT.row(F, "envhub cold (--pool-size 0)", load=env, key="cold10",
                   note_text=f"cpu {cpu * 1000 / max(1, env.jobs):.1f} ms/job")

        # 5. recycling
        load, hits, misses, cpu = bench.phase_recycle()
        REPORT.row("recycling (--pool-size 10 --pool-recycle 100)", "warm recycled, c=10", load=load,
                   key="recycle10",
                   note_text=f"{hit_note(hits, misses)}; cpu {cpu * 1000 / max(1, load.jobs):.1f} ms/job")

        # 6. 1 MB of output per job
        load, cpu, rss0, hwm = bench.phase_big()
        extra["hwm_mb"] = hwm / 1024
        REPORT.row("1 MB of stdout per job (--pool-size 10 --output-limit 2m)", "warm c=10, 1 MB each",
                   load=load, note_text=f"cpu {cpu * 1000 / max(1, load.jobs):.1f} ms/job")
        REPORT.line(f"{'envhub peak RSS (VmHWM) over the 1 MB run':<52} {hwm / 1024:8.1f} MB "
                    f"(RSS before it {rss0 / 1024:.1f} MB)")

        # 7. import numpy
        try:
            results, how, _build = bench.phase_numpy(cold)
            N = "import numpy; print(numpy.__version__)"
            for (mode, c), (load, hits, misses) in sorted(results.items()):
                REPORT.row(N, f"numpy {mode} c={c}", load=load, key=f"np_{mode}{c}",
                           note_text=hit_note(hits, misses) if hits + misses else "")
            REPORT.line("numpy: " + how)
        except BenchError as e:
            REPORT.errors.append(f"numpy: {e}")

        # 8. builds
        build_s, rebuild_s, first_hit = bench.phase_builds(cold)
        REPORT.line(f"{'basic-python build (create to ready)':<52} {build_s:8.1f} s"
                    + (" (a cache hit!)" if first_hit else " (from scratch)"))
        REPORT.line(f"{'no-op rebuild (cache hit) to ready':<52} {rebuild_s * 1000:8.0f} ms")
    except KeyboardInterrupt:
        broke = "interrupted"
    except (BenchError, OSError) as e:
        broke = f"{e.__class__.__name__}: {e}"
    finally:
        note("cleaning up: servers, containers, images")
        for srv in list(bench.servers):
            srv.stop()
        engine.remove_labelled(TEST_LABEL)
        engine.remove_labelled_images(TEST_LABEL)
        for ref in sorted(STEP_IMAGES):
            engine.remove_image(ref)
        left = engine.containers(TEST_LABEL)
        if left:
            note(f"containers left with {TEST_LABEL}: {[c['Id'][:12] for c in left]}")
        shutil.rmtree(tmp, ignore_errors=True)

    print_report(started)
    if broke:
        print(f"\nbench: stopped early: {broke}")
    else:
        print_targets(extra)
    if REPORT.errors:
        print("\nfailures (the bench exits 1):")
        for e in REPORT.errors:
            print("  " + e)
    print(f"\nbench: {time.monotonic() - T_START:.0f} s in all")
    return 1 if (broke or REPORT.errors) else 0


if __name__ == "__main__":
    sys.exit(main())

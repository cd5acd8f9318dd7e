"""make bench-cluster: warm POST /execute in cluster mode against one engine, in the same
run, and what placing a job costs the server.

Two servers on this machine's engine: `single` (default settings: the agent transport,
a warm pool of 2) and `cluster` (ENVHUB_CLUSTER=swarm, no pool of its own) with three
`envhub node` processes, each keeping a warm pool of 1 (so the two set-ups hold about
as many warm containers). Jobs are print('hi').

  1. one request a second, 20 jobs, the two servers alternating, two rounds: p50 each,
     and the ratio cluster / single (target: at most 1.3x);
  2. closed loop c=1, 20 jobs each, alternating: p50 (the scheduling overhead per job,
     lease, spec, result and the extra HTTP hops, is the difference of the p50s, mixed
     with what the nodes' warm containers and bursts save);
  3. closed loop c=6, 10 jobs per client each: jobs/s, and the CPU the server spends per
     job (utime + stime of its process), and the nodes' CPU per job, from /proc.

The last lines turn the server's CPU per job into how many jobs a second one server can
place on one core, and say where the first bottleneck will be.

Debian's python3 only. Traffic goes to 127.0.0.1 and the engine's unix socket."""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

BIN = os.environ.get("ENVHUB_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "envhub"))
IMAGE = os.environ.get("DOCKER_IMAGE", "envhub/python:bookworm")
JOBS = int(os.environ.get("BENCH_CLUSTER_JOBS", "20"))
RUN_ID = secrets.token_hex(4)


def note(msg):
    print(f"[bench-cluster] {msg}", file=sys.stderr, flush=True)


class Node:
    def __init__(self, binary, name, port, key, labels, tmp):
        self.name = name
        self.log_path = os.path.join(tmp, f"node-{name}.log")
        env = bl.server_env()
        env["ENVHUB_URL"] = f"http://127.0.0.1:{port}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "node", "--name", name, "--node-key-file", key, "--labels", labels,
                 "--pool-size", "1"], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                start_new_session=True)

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / bl.CLK_TCK

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def p50(lat):
    return bl.summarize(lat)["p50"]


def check(load, what):
    if load.errors:
        raise bl.BenchError(f"{what}: {len(load.errors)} failed: {load.errors[:3]}")


def warm_nodes(port, names, within=60):
    """Until every node reports a warm container of the default image."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        _status, doc = bl.api(port, "GET", "/cluster/nodes")
        ready = {n["name"] for n in doc["nodes"] if n["state"] == "ready" and IMAGE in n["warm"]}
        if set(names) <= ready:
            return
        time.sleep(0.2)
    raise bl.BenchError(f"nodes not warm within {within} s: {doc}")


def main():
    engine = bl.Engine()
    if not engine.ping():
        sys.exit(f"bench-cluster: no Docker engine answers on {engine.path} (make engine)")
    if not engine.image_exists(IMAGE):
        sys.exit(f"bench-cluster: the engine lacks {IMAGE} (make base-image)")
    tmp = tempfile.mkdtemp(prefix="envhub-bench-cluster-")
    binary = os.path.join(tmp, "envhub")
    shutil.copy2(BIN, binary)
    key = os.path.join(tmp, "node.key")
    with open(key, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    labels = f"envhub.test={RUN_ID},envhub.bench={RUN_ID}-nodes"
    servers, nodes, rows = [], [], []
    try:
        single = bl.Server(binary, RUN_ID, "single", [], tmp).start()
        servers.append(single)
        cluster = bl.Server(binary, RUN_ID, "cluster",
                            ["--cluster", "swarm", "--node-key-file", key, "--pool-size", "0"], tmp).start()
        servers.append(cluster)
        names = [f"b{RUN_ID}-{i}" for i in (1, 2, 3)]
        nodes = [Node(binary, n, cluster.port, key, labels, tmp) for n in names]
        warm_nodes(cluster.port, names)
        job = {s.name: (lambda *_a, s=s: bl.execute(s.port, "print('hi')", bl.check_hi))
               for s in (single, cluster)}
        for s in (single, cluster):
            job[s.name]()  # warm-up

        def settle(s):
            if s is single:
                bl.wait_quiet(single, engine)
            else:
                warm_nodes(cluster.port, names)

        open_lat = {"single": [], "cluster": []}
        for name in ("single", "cluster", "single", "cluster"):
            s = single if name == "single" else cluster
            settle(s)
            note(f"{name}: 1 request/s, {JOBS // 2} jobs")
            load, _side = bl.open_loop(job[name], 1, JOBS // 2)
            check(load, f"open loop {name}")
            open_lat[name].extend(load.latencies)
        closed_lat = {"single": [], "cluster": []}
        for name in ("single", "cluster", "single", "cluster"):
            s = single if name == "single" else cluster
            settle(s)
            note(f"{name}: closed loop c=1, {JOBS // 2} jobs")
            load = bl.closed_loop(job[name], 1, JOBS // 2)
            check(load, f"closed loop {name}")
            closed_lat[name].extend(load.latencies)

        busy = {}
        for name in ("single", "cluster"):
            s = single if name == "single" else cluster
            settle(s)
            note(f"{name}: closed loop c=6 x 10 jobs")
            cpu0 = s.cpu_seconds()
            ncpu0 = sum(n.cpu_seconds() for n in nodes) if name == "cluster" else 0.0
            load = bl.closed_loop(job[name], 6, 10)
            check(load, f"c=6 {name}")
            cpu = (s.cpu_seconds() - cpu0) * 1000 / load.jobs
            ncpu = ((sum(n.cpu_seconds() for n in nodes) - ncpu0) * 1000 / load.jobs
                    if name == "cluster" else None)
            busy[name] = (load, cpu, ncpu)

        o_s, o_c = p50(open_lat["single"]), p50(open_lat["cluster"])
        c_s, c_c = p50(closed_lat["single"]), p50(closed_lat["cluster"])
        rows.append(("single engine, 1 request/s", o_s, ""))
        rows.append(("cluster, 3 nodes, 1 request/s", o_c, ""))
        rows.append(("single engine, closed loop c=1", c_s, ""))
        rows.append(("cluster, 3 nodes, closed loop c=1", c_c, ""))
        for name in ("single", "cluster"):
            load, cpu, ncpu = busy[name]
            extra = f"{load.rate:.1f} jobs/s; server CPU {cpu:.2f} ms/job"
            if ncpu is not None:
                extra += f"; nodes' CPU {ncpu:.2f} ms/job"
            rows.append((f"{name}, closed loop c=6", p50(load.latencies), extra))

        print()
        print(f"{'print(hi)':<40} {'p50 ms':>8}  notes")
        for name, v, extra in rows:
            print(f"{name:<40} {v:8.1f}  {extra}")
        ratio = o_c / o_s
        print()
        print(f"warm /execute p50, cluster / single (1 request/s) = {ratio:.2f}x  (at most 1.3x)  "
              f"{'PASS' if ratio <= 1.3 else 'MISS'}")
        cpu_c = busy["cluster"][1]
        print(f"scheduling overhead per job: p50 cluster - single = {o_c - o_s:+.1f} ms at 1 request/s, "
              f"{c_c - c_s:+.1f} ms in a closed loop c=1 (where the nodes' own warm containers "
              f"and bursts count too); the server's CPU {cpu_c - busy['single'][1]:+.2f} ms/job")
        print(f"the server's CPU per job placed (c=6) = {cpu_c:.2f} ms: one core places at most "
              f"{1000 / cpu_c:.0f} jobs/s; single mode's server CPU per job run = "
              f"{busy['single'][1]:.2f} ms")
    except bl.BenchError as e:
        print(f"bench-cluster: {e}", file=sys.stderr)
        for s in servers:
            print(f"--- {s.name}\n{s.log_tail()}", file=sys.stderr)
        sys.exit(1)
    finally:
        for n in nodes:
            n.stop()
        for s in servers:
            s.stop()
        engine.remove_labelled(f"envhub.test={RUN_ID}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""make bench: latency of POST /execute against `docker run --rm`, measured in one run.

Starts envhub on a free loopback port with a fresh catalog, then times
`print('hi')` N times through POST /execute and N times through the docker CLI
with the same limits (read-only root, tmpfs workspace, uid 1000, no
capabilities, no network, memory/CPU/pids limits), and prints the medians and
their ratio. Both run against the same engine on the same machine, one after
the other, so the ratio holds on a noisy machine where absolute numbers do not.
"""
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

N = int(os.environ.get("BENCH_RUNS", "20"))
IMAGE = os.environ.get("DOCKER_IMAGE", "envhub/python:bookworm")
BIN = os.environ.get("ENVHUB_BIN", "build/envhub")
RUN_ID = "bench-" + secrets.token_hex(4)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp):
    port = free_port()
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--db", os.path.join(tmp, "bench.db"),
         "--labels", f"envhub.test={RUN_ID}"],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("bench: envhub did not start; see " + log.name)


def time_execute(port, code):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({"code": code, "timeout": 30})
    t0 = time.perf_counter()
    conn.request("POST", "/execute", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    elapsed = time.perf_counter() - t0
    conn.close()
    if resp.status != 200 or not data.get("success") or data.get("stdout") != "hi\n":
        sys.exit(f"bench: unexpected answer {resp.status}: {data}")
    return elapsed


DOCKER_RUN = [
    "docker", "run", "--rm", "--network", "none", "--read-only", "--user", "1000:1000",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--memory", "512m",
    "--memory-swap", "512m", "--cpus", "1", "--pids-limit", "128", "--shm-size", "4m",
    "--log-driver", "none", "--tmpfs", "/workspace:rw,nosuid,nodev,size=128m,uid=1000,gid=1000",
    "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m", "--label", f"envhub.test={RUN_ID}",
    "-w", "/workspace", IMAGE, "python3", "-c", "print('hi')",
]


def time_docker_run():
    t0 = time.perf_counter()
    out = subprocess.run(DOCKER_RUN, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0 or out.stdout != "hi\n":
        sys.exit(f"bench: docker run failed: {out.stderr}")
    return elapsed


def api(port, method, path, body=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, (json.loads(data) if data else None)


def wait_version(port, name, version, deadline_s=900):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        status, env = api(port, "GET", f"/environments/{name}")
        builds = api(port, "GET", f"/environments/{name}/builds")[1]["builds"]
        latest = builds[0] if builds else {}
        if latest.get("version") == version and latest.get("status") in ("ready", "failed"):
            if latest["status"] != "ready":
                sys.exit(f"bench: build of {name} v{version} failed: {latest.get('error')}")
            return latest
        time.sleep(0.2)
    sys.exit(f"bench: build of {name} v{version} did not finish")


def time_builds(port):
    """The basic-python example built from scratch, then rebuilt unchanged (a cache hit)."""
    name = "bench-basic-" + secrets.token_hex(3)
    with open(os.path.join(os.path.dirname(__file__), "../../environments/basic-python.sh")) as f:
        script = f.read()
    t0 = time.perf_counter()
    status, env = api(port, "POST", "/environments", {"name": name, "setup_script": script})
    if status != 200:
        sys.exit(f"bench: cannot create {name}: {env}")
    first = wait_version(port, name, 1)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    api(port, "POST", f"/environments/{name}/rebuild", {})
    second = wait_version(port, name, 2)
    rebuild_s = time.perf_counter() - t0
    api(port, "DELETE", f"/environments/{name}")
    if not second.get("cache_hit") or second.get("image_id") != first.get("image_id"):
        sys.exit("bench: the unchanged rebuild was not a cache hit")
    return build_s, rebuild_s


def summary(name, samples):
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    print(f"{name:<38} median {statistics.median(ms):8.1f} ms   p95 {p95:8.1f} ms   (n={len(ms)})")
    return statistics.median(ms)


def main():
    if not shutil.which("docker"):
        sys.exit("bench: the docker CLI is needed for the baseline (apt-get install docker.io)")
    tmp = tempfile.mkdtemp(prefix="envhub-bench-")
    proc, port = start_server(tmp)
    try:
        for _ in range(3):  # warm the page cache and the engine for both
            time_execute(port, "print('hi')")
            time_docker_run()
        envhub, docker = [], []
        for _ in range(N):  # interleaved, so drift on the machine hits both alike
            envhub.append(time_execute(port, "print('hi')"))
            docker.append(time_docker_run())
        print(f"envhub bench: print('hi'), {N} runs each, interleaved, image {IMAGE}")
        m_envhub = summary("POST /execute (fresh container per job)", envhub)
        m_docker = summary("docker run --rm (CLI, same limits)", docker)
        print(f"{'ratio envhub / docker run':<38} {m_envhub / m_docker:8.2f}x   (target <= 0.80x)")
        build_s, rebuild_s = time_builds(port)
        print(f"{'basic-python build (create to ready)':<38} {build_s:8.1f} s")
        print(f"{'no-op rebuild (cache hit) to ready':<38} {rebuild_s * 1000:8.0f} ms")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Cluster mode on real engines: `make cluster-test` runs this module against what `make
cluster-up` started (three engines in one swarm, the registry, envhub on 127.0.0.1:8100
in cluster mode, an `envhub node` beside each engine). Without that cluster (no
ENVHUB_CLUSTER_URL) it is skipped: `make test` does not start engines of its own.

Shown here: 60 jobs spread over the three engines, each row naming its node; an
environment built on the manager, pushed to the registry, runs on every node (the two
extra ones pull it by digest); killing one extra engine while 20 jobs run: the others
finish, the cut-off ones end interrupted naming the node, new jobs go to the remaining
nodes, and the node rejoins once its engine is back."""

import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from helpers import execute_many

URL = os.environ.get("ENVHUB_CLUSTER_URL")
STATE = os.environ.get("ENVHUB_CLUSTER_STATE", "")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

pytestmark = pytest.mark.skipif(not URL, reason="no cluster (make cluster-test starts one)")


def nodes():
    return {n["name"]: n for n in requests.get(f"{URL}/cluster/nodes", timeout=10).json()["nodes"]}


def wait_ready(names, within=90):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ns = nodes()
        if all(ns.get(n, {}).get("state") == "ready" for n in names):
            return ns
        time.sleep(0.5)
    raise AssertionError(f"not all of {names} ready within {within} s: {nodes()}")


def run(code, environment=None, timeout=None):
    body = {"code": code}
    if environment:
        body["environment"] = environment
    if timeout:
        body["timeout"] = timeout
    path = "/execute-with-environment" if environment else "/execute"
    r = requests.post(f"{URL}{path}", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def node_of(execution_id):
    return requests.get(f"{URL}/executions/{execution_id}", timeout=10).json()["node"]


def many(codes, concurrency):
    return execute_many(URL, codes, concurrency)


def set_drain(keep):
    for n in nodes():
        requests.post(f"{URL}/cluster/nodes/{n}/{'resume' if n in keep else 'drain'}", timeout=10)


ALL = ["main", "node2", "node3"]


def test_sixty_jobs_spread_over_the_three_engines():
    wait_ready(ALL)
    answers = many([f"print({i})" for i in range(60)], concurrency=8)
    per = {}
    for i, r in enumerate(answers):
        assert r.status_code == 200 and r.json()["stdout"] == f"{i}\n", r.text
        n = node_of(r.json()["id"])
        per[n] = per.get(n, 0) + 1
    assert set(per) == set(ALL), per
    print("jobs per node:", per)


def test_a_version_built_on_the_manager_runs_on_every_node():
    name = f"cluster-{os.getpid()}"
    r = requests.post(f"{URL}/environments", json={"name": name,
                      "setup_script": "echo on-every-node > /opt/marker\n"}, timeout=30)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 600
    while True:
        env = requests.get(f"{URL}/environments/{name}", timeout=10).json()
        if env["status"] != "building" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert env["status"] == "ready", env
    assert env.get("registry_image", "").startswith("127.0.0.1:"), env
    try:
        for n in ALL:
            set_drain({n})
            t0 = time.monotonic()
            doc = run("print(open('/opt/marker').read().strip())", environment=name)
            assert doc["stdout"] == "on-every-node\n", doc
            assert node_of(doc["id"]) == n
            print(f"{n}: first job of the new version in {time.monotonic() - t0:.2f} s")
    finally:
        set_drain(set(ALL))
        requests.delete(f"{URL}/environments/{name}", timeout=60)
    # the extra nodes pulled it; deleted, it leaves them too (and the registry)
    ref = env["registry_image"]
    deadline = time.monotonic() + 30
    left = []
    while time.monotonic() < deadline:
        left = [n for n in (2, 3) if subprocess.run(
            ["docker", "-H", f"unix:///run/envhub-node{n}.sock", "image", "inspect", ref],
            capture_output=True, timeout=30).returncode == 0]
        if not left:
            break
        time.sleep(0.5)
    assert not left, f"{ref} still on node(s) {left}"
    print(f"deleted: its image left the extra nodes within {30 - (deadline - time.monotonic()):.1f} s")


def test_killing_an_extra_engine_during_20_jobs():
    wait_ready(ALL)
    victim = "node3"
    out = {}

    def job(i):
        out[i] = requests.post(f"{URL}/execute", json={"code": f"import time; time.sleep(5); print({i})"},
                               timeout=300)

    ts = [threading.Thread(target=job, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and nodes()[victim]["running"] == 0:
        time.sleep(0.2)
    time.sleep(1.5)
    with open(os.path.join(STATE, "cluster", "node3", "dockerd.pid")) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()
    for t in ts:
        t.join(300)
    statuses = {i: r.json()["status"] for i, r in out.items()}
    lost = [i for i, s in statuses.items() if s == "interrupted"]
    ok = [i for i, s in statuses.items() if s == "succeeded"]
    assert lost and len(lost) + len(ok) == 20, statuses
    for i in lost:
        doc = out[i].json()
        assert victim in doc["error"], doc
        assert node_of(doc["id"]) == victim
    for i in ok:
        assert out[i].json()["stdout"] == f"{i}\n"
    print(f"{len(lost)} interrupted on {victim}, {len(ok)} finished; all answered "
          f"{time.monotonic() - t_kill:.1f} s after the kill")
    deadline = time.monotonic() + 5  # its next heartbeat says so (every second)
    while nodes()[victim]["state"] == "ready" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert nodes()[victim]["state"] in ("engine_down", "lost"), nodes()[victim]
    answers = many(["print('after')"] * 8, concurrency=4)
    assert all(r.status_code == 200 and r.json()["stdout"] == "after\n" for r in answers)
    assert victim not in {node_of(r.json()["id"]) for r in answers}
    # its engine back: the node starts again and takes jobs
    t0 = time.monotonic()
    env = dict(os.environ, STATE=STATE)
    p = subprocess.run(["bash", os.path.join(ROOT, "engine", "cluster.sh"), "engine-up", "3"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_ready([victim], within=120)
    print(f"{victim} ready again {time.monotonic() - t0:.1f} s after its engine was started")
    seen = set()
    deadline = time.monotonic() + 120
    while victim not in seen and time.monotonic() < deadline:
        for r in many(["print(3)"] * 8, concurrency=8):
            assert r.status_code == 200, r.text
            seen.add(node_of(r.json()["id"]))
    assert victim in seen, seen

"""Cluster mode (ENVHUB_CLUSTER=swarm): the server keeps the queue and the catalog, the
nodes (`envhub node`) lease its jobs, run them on their engine and send the results back.

Here the three nodes are three `envhub node` processes on this machine's one engine (the
engines of a real swarm are `make cluster-up`'s business); each is a node of its own to
the server: its own name, token, boot, slots, warm pool and leftovers. What is checked:
jobs spread over the nodes and their rows name the node; a node killed while it runs jobs
loses them (interrupted, naming it) and the others go on; it rejoins when it starts again;
drain and resume; cancel on a node; the nodes' calls need their token and a result the
node does not hold a lease for is refused; a node that sends a forged result does not get
it recorded; no node up is a 503."""

import csv
import io
import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from helpers import (create_env, delete_env, docker_api, execute, execute_many,
                     labelled_containers, server_env, wait_env)

NODE_TIMEOUT = 3  # seconds of silence before the server gives a node up


class Node:
    """One `envhub node` process."""

    def __init__(self, binary, name, server, key_file, label, tmpdir, slots=3):
        self.binary, self.name, self.server = binary, name, server
        self.key_file, self.label, self.slots = key_file, label, slots
        self.log_path = os.path.join(tmpdir, f"node-{name}.log")
        self.proc = None

    def start(self):
        env = server_env()
        env["ENVHUB_URL"] = self.server.url
        args = [self.binary, "node", "--name", self.name, "--node-key-file", self.key_file,
                "--labels", self.label, "--concurrent-limit", str(self.slots), "--pool-size", "1"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, start_new_session=True)
        return self

    def stop(self, sig=signal.SIGTERM, within=20):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=within)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode if self.proc else None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def nodes_doc(server):
    r = requests.get(f"{server.url}/cluster/nodes", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def node_states(server):
    return {n["name"]: n["state"] for n in nodes_doc(server)["nodes"]}


def wait_nodes(server, names, state="ready", within=30):
    deadline = time.monotonic() + within
    states = {}
    while time.monotonic() < deadline:
        states = node_states(server)
        if all(states.get(n) == state for n in names):
            return states
        time.sleep(0.2)
    raise AssertionError(f"nodes {names} not {state} within {within} s: {states}")


def row(server, execution_id):
    r = requests.get(f"{server.url}/executions/{execution_id}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def run_many(server, codes, concurrency):
    """POST /execute for each code, @concurrency at once; the answers in order."""
    return execute_many(server.url, codes, concurrency)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cluster") / "node.key"
    path.write_bytes(os.urandom(32).hex().encode() + b"\n")
    return str(path)


@pytest.fixture(scope="module")
def cluster(envhub_module_factory, envhub_bin, key_file, run_id):
    """A cluster-mode server and three nodes n1..n3 (names unique to this run)."""
    server = envhub_module_factory("--cluster", "swarm", "--node-key-file", key_file,
                                   "--node-timeout", str(NODE_TIMEOUT), "--pool-size", "0")
    names = [f"t{run_id[:6]}-n{i}" for i in (1, 2, 3)]
    nodes = {n: Node(envhub_bin, n, server, key_file, server.label, server.tmpdir).start()
             for n in names}
    try:
        wait_nodes(server, names)
        yield server, nodes
    finally:
        for node in nodes.values():
            node.stop()
        for node in nodes.values():
            assert "AddressSanitizer" not in node.log(), node.log()[-3000:]


def test_no_node_up_is_a_503_that_says_so(envhub_factory, key_file):
    server = envhub_factory("--cluster", "swarm", "--node-key-file", key_file)
    r = requests.post(f"{server.url}/execute", json={"code": "print(1)"}, timeout=30)
    assert r.status_code == 503, r.text
    assert "no node is up" in r.json()["detail"], r.text


def test_cluster_mode_needs_a_node_key(envhub_bin, tmp_path):
    env = server_env()
    p = subprocess.run([envhub_bin, "serve", "--listen", "127.0.0.1:1", "--db",
                        str(tmp_path / "x.db"), "--cluster", "swarm"],
                       capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode != 0 and "ENVHUB_NODE_KEY_FILE" in p.stderr, p.stderr
    short = tmp_path / "short.key"
    short.write_text("tiny\n")
    p = subprocess.run([envhub_bin, "serve", "--listen", "127.0.0.1:1", "--db",
                        str(tmp_path / "x.db"), "--cluster", "swarm", "--node-key-file",
                        str(short)], capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode != 0 and "at least 16" in p.stderr, p.stderr
    p = subprocess.run([envhub_bin, "serve", "--listen", "127.0.0.1:1", "--db",
                        str(tmp_path / "x.db"), "--cluster", "kubernetes"],
                       capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode != 0 and "ENVHUB_CLUSTER" in p.stderr, p.stderr


def test_sixty_jobs_spread_over_the_nodes_and_their_rows_name_them(cluster):
    server, nodes = cluster
    codes = [f"import os\nprint({i}, os.getuid())" for i in range(60)]
    answers = run_many(server, codes, concurrency=6)
    ids = []
    for i, r in enumerate(answers):
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["status"] == "succeeded" and doc["stdout"] == f"{i} 1000\n", doc
        ids.append(doc["id"])
    per_node = {}
    for eid in ids:
        node = row(server, eid)["node"]
        assert node in nodes, node
        per_node[node] = per_node.get(node, 0) + 1
    assert set(per_node) == set(nodes), per_node  # every node ran some
    assert sum(per_node.values()) == 60
    # the history filters by node, and the export has the column
    some = next(iter(nodes))
    r = requests.get(f"{server.url}/executions", params={"node": some, "limit": 200}, timeout=30)
    assert r.status_code == 200, r.text
    items = [it for it in r.json()["items"] if it["id"] in ids]
    assert len(items) == per_node[some] and all(it["node"] == some for it in items)
    r = requests.get(f"{server.url}/executions", params={"node": "../x"}, timeout=30)
    assert r.status_code == 400 and r.json()["detail"].startswith("node:"), r.text
    r = requests.get(f"{server.url}/executions/export", params={"format": "csv"}, timeout=60)
    assert r.status_code == 200, r.text
    rows = {x["id"]: x for x in csv.DictReader(io.StringIO(r.text))}
    assert all(rows[eid]["node"] in nodes for eid in ids)
    # the status shows the work done per node
    doc = nodes_doc(server)
    done = {n["name"]: n["jobs_done"] for n in doc["nodes"]}
    assert all(done[n] >= per_node[n] for n in nodes), (done, per_node)
    assert doc["placed"] >= 60 and doc["queued"] == 0 and doc["leased"] == 0, doc


def test_files_and_failures_come_back_from_a_node(cluster):
    server, nodes = cluster
    code = ("open('out.txt','w').write(open('in.txt').read().upper())\n"
            "import sys; print('err', file=sys.stderr); sys.exit(3)")
    doc = execute(server, code, files={"in.txt": "aGVsbG8="})
    assert doc["status"] == "failed" and doc["exit_code"] == 3, doc
    assert doc["stderr"] == "err\n" and doc["files"]["out.txt"] == "SEVMTE8=", doc
    doc = execute(server, "import time; time.sleep(5)", timeout=1)
    assert doc["status"] == "timeout", doc
    assert row(server, doc["id"])["node"] in nodes


def test_the_nodes_calls_need_their_token(cluster, key_file, envhub_bin):
    server, nodes = cluster
    name = next(iter(nodes))
    url = f"{server.url}/cluster/nodes/{name}/heartbeat"
    body = {"slots": 1}
    r = requests.post(url, json=body, headers={"X-Envhub-Boot": "abc"}, timeout=10)
    assert r.status_code == 401 and "token" in r.json()["detail"], r.text
    other = subprocess.run([envhub_bin, "cluster", "token", "someone-else", "--node-key-file",
                            key_file], capture_output=True, text=True, timeout=10)
    assert other.returncode == 0, other.stderr
    r = requests.post(url, json=body, timeout=10,
                      headers={"X-Envhub-Boot": "abc", "Authorization": f"Bearer {other.stdout.strip()}"})
    assert r.status_code == 401, r.text  # another node's token
    # with its own token: the boot id and the fields are checked before anything changes
    mine = subprocess.run([envhub_bin, "cluster", "token", "fake-node", "--node-key-file",
                           key_file], capture_output=True, text=True, timeout=10).stdout.strip()
    auth = {"Authorization": f"Bearer {mine}"}
    fake = f"{server.url}/cluster/nodes/fake-node"
    r = requests.post(f"{fake}/heartbeat", json=body, headers=auth, timeout=10)
    assert r.status_code == 400 and r.json()["detail"].startswith("X-Envhub-Boot"), r.text
    hdr = dict(auth, **{"X-Envhub-Boot": "boot1"})
    for bad, field in (({"slots": -1}, "slots"), ({"slots": 1, "running": [1]}, "running"),
                       ({"slots": 1, "warm": ["x"] * 300}, "warm"), ({}, "slots")):
        r = requests.post(f"{fake}/heartbeat", json=bad, headers=hdr, timeout=10)
        assert r.status_code == 422 and r.json()["detail"].startswith(field), (bad, r.text)
    assert "fake-node" not in node_states(server)
    # a lease before any heartbeat, and a result for a lease it does not hold
    r = requests.post(f"{fake}/lease", json={}, headers=hdr, timeout=10)
    assert r.status_code == 409, r.text
    r = requests.post(f"{fake}/results/ex_000000000000000000000000", data="{}",
                      headers=dict(hdr, **{"Content-Type": "application/json"}), timeout=10)
    assert r.status_code == 409 and "holds no lease" in r.json()["detail"], r.text


def test_a_forged_result_from_a_node_is_refused(cluster, key_file, envhub_bin):
    """A node of its own (this test) leases a job and sends back a result that breaks the
    rules: a path out of the workspace. The row ends in error saying so; nothing of it is
    kept."""
    server, nodes = cluster
    for n in nodes:
        requests.post(f"{server.url}/cluster/nodes/{n}/drain", timeout=10)
    token = subprocess.run([envhub_bin, "cluster", "token", "forger", "--node-key-file", key_file],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    hdr = {"Authorization": f"Bearer {token}", "X-Envhub-Boot": "forger1",
           "Content-Type": "application/json"}
    base = f"{server.url}/cluster/nodes/forger"
    try:
        r = requests.post(f"{base}/heartbeat", json={"slots": 1}, headers=hdr, timeout=10)
        assert r.status_code == 200, r.text
        answer = {}

        def submit():
            answer["r"] = requests.post(f"{server.url}/execute", json={"code": "print(1)"},
                                        timeout=60)

        t = threading.Thread(target=submit)
        t.start()
        r = requests.post(f"{base}/lease", json={"wait_ms": 5000}, headers=hdr, timeout=20)
        assert r.status_code == 200, r.text
        spec = r.json()
        assert spec["image"] and spec["limits"]["memory"] > 0 and spec["input_tar"], spec
        forged = {"status": "succeeded", "exit_code": 0, "stdout": "", "stdout_truncated": False,
                  "stderr": "", "stderr_truncated": False, "execution_time": 0.1,
                  "files": [{"path": "../../etc/passwd", "data": "eA=="}], "display": [],
                  "files_skipped": []}
        import json as _json
        r = requests.post(f"{base}/results/{spec['id']}", data=_json.dumps(forged), headers=hdr,
                          timeout=10)
        assert r.status_code == 200, r.text
        t.join(60)
        res = answer["r"]
        assert res.status_code == 502, res.text
        assert "forger" in res.json()["detail"] and "unsafe path" in res.json()["detail"], res.text
        doc = row(server, spec["id"])
        assert doc["status"] == "error" and doc["node"] == "forger", doc
        assert doc["files"] == [] or not doc.get("files"), doc
        # a second result for the same job is refused: nothing is recorded twice
        r = requests.post(f"{base}/results/{spec['id']}", data=_json.dumps(forged), headers=hdr,
                          timeout=10)
        assert r.status_code == 409, r.text
    finally:
        requests.post(f"{server.url}/cluster/nodes/forger/drain", timeout=10)
        for n in nodes:
            requests.post(f"{server.url}/cluster/nodes/{n}/resume", timeout=10)


def test_drain_keeps_new_jobs_off_a_node_and_resume_brings_them_back(cluster, envhub_bin):
    server, nodes = cluster
    drained = sorted(nodes)[0]
    env = dict(server_env(), ENVHUB_URL=server.url)
    p = subprocess.run([envhub_bin, "cluster", "drain", drained], capture_output=True, text=True,
                       timeout=30, env=env)
    assert p.returncode == 0 and "drained" in p.stdout, (p.stdout, p.stderr)
    p = subprocess.run([envhub_bin, "cluster", "status"], capture_output=True, text=True,
                       timeout=30, env=env)
    line = next(x for x in p.stdout.splitlines() if x.startswith(drained))
    assert " drained " in line, p.stdout
    answers = run_many(server, ["print(1)"] * 15, concurrency=5)
    assert all(r.status_code == 200 and r.json()["stdout"] == "1\n" for r in answers)
    used = {row(server, r.json()["id"])["node"] for r in answers}
    assert drained not in used and used, used
    p = subprocess.run([envhub_bin, "cluster", "resume", drained], capture_output=True, text=True,
                       timeout=30, env=env)
    assert p.returncode == 0, p.stderr
    deadline = time.monotonic() + 60
    seen = set()
    while drained not in seen and time.monotonic() < deadline:
        for r in run_many(server, ["print(2)"] * 6, concurrency=6):
            assert r.status_code == 200, r.text
            seen.add(row(server, r.json()["id"])["node"])
    assert drained in seen, seen
    r = requests.post(f"{server.url}/cluster/nodes/no-such-node/drain", timeout=10)
    assert r.status_code == 404, r.text


def test_a_cancel_reaches_the_job_on_its_node(cluster):
    server, nodes = cluster
    r = requests.post(f"{server.url}/executions", json={"code": "import time; time.sleep(60)"},
                      timeout=30)
    assert r.status_code == 202, r.text
    eid = r.json()["id"]
    deadline = time.monotonic() + 30
    while row(server, eid)["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # a heartbeat lists it: the lease is started
    t0 = time.monotonic()
    r = requests.post(f"{server.url}/executions/{eid}/cancel", timeout=30)
    assert r.status_code in (200, 202), r.text
    while row(server, eid)["status"] == "running" and time.monotonic() - t0 < 20:
        time.sleep(0.2)
    doc = row(server, eid)
    assert doc["status"] == "interrupted" and "cancelled by" in (doc["error"] or ""), doc
    assert doc["node"] in nodes


def test_a_node_killed_mid_jobs_loses_them_and_rejoins(cluster, envhub_bin, key_file):
    server, nodes = cluster
    victim_name = sorted(nodes)[1]
    victim = nodes[victim_name]
    out = {}

    def job(i):
        out[i] = requests.post(f"{server.url}/execute",
                               json={"code": f"import time; time.sleep(4); print({i})"}, timeout=120)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    # every node has leased some: the victim's are started once its heartbeat listed them
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        doc = nodes_doc(server)
        if sum(n["leased"] for n in doc["nodes"]) == 9:
            break
        time.sleep(0.1)
    time.sleep(1.5)
    victim.stop(sig=signal.SIGKILL)
    t_kill = time.monotonic()
    orphans = {c["Id"] for c in labelled_containers(server.label)
               if c["Labels"].get("envhub.instance") == f"node-{victim_name}"}
    assert orphans  # its jobs' containers (and its warm one) outlive it
    for t in threads:
        t.join(120)
    lost = [i for i, r in out.items() if r.json()["status"] == "interrupted"]
    ok = [i for i, r in out.items() if r.json()["status"] == "succeeded"]
    assert lost and len(lost) + len(ok) == 9, {i: r.text[:200] for i, r in out.items()}
    for i in lost:
        doc = out[i].json()
        assert victim_name in doc["error"] and "stopped answering" in doc["error"], doc
        assert row(server, doc["id"])["node"] == victim_name
    for i in ok:
        assert out[i].json()["stdout"] == f"{i}\n"
        assert row(server, out[i].json()["id"])["node"] != victim_name
    assert time.monotonic() - t_kill < 4 + NODE_TIMEOUT + 10
    assert node_states(server)[victim_name] == "lost"
    # new jobs go to the others
    answers = run_many(server, ["print('after')"] * 6, concurrency=3)
    assert all(r.status_code == 200 and r.json()["stdout"] == "after\n" for r in answers)
    assert victim_name not in {row(server, r.json()["id"])["node"] for r in answers}
    doc = nodes_doc(server)
    assert next(n for n in doc["nodes"] if n["name"] == victim_name)["jobs_lost"] == len(lost)
    # its containers outlived it: the node removes them when it starts again, and rejoins
    nodes[victim_name] = Node(envhub_bin, victim_name, server, key_file, server.label,
                              server.tmpdir).start()
    wait_nodes(server, [victim_name])
    left = {c["Id"] for c in labelled_containers(server.label)} & orphans
    assert not left, left  # removed at its start, before it reported
    seen = set()
    deadline = time.monotonic() + 60
    while victim_name not in seen and time.monotonic() < deadline:
        for r in run_many(server, ["print(3)"] * 6, concurrency=6):
            assert r.status_code == 200 and r.json()["stdout"] == "3\n", r.text
            seen.add(row(server, r.json()["id"])["node"])
    assert victim_name in seen, seen


def test_an_environment_built_on_the_server_runs_on_every_node_with_its_pool_shared(cluster,
                                                                                   run_id):
    server, nodes = cluster
    name = f"cl-env-{run_id}"
    create_env(server, name, "echo built > /opt/marker\n", policy={"pool_size": 3})
    wait_env(server, name)
    try:
        # its pool of 3 is shared out: one warm container on each node
        deadline = time.monotonic() + 60
        warm = {}
        while time.monotonic() < deadline:
            warm = {n["name"]: n["warm"] for n in nodes_doc(server)["nodes"] if n["name"] in nodes}
            if all(any(name in image for image in w) for w in warm.values()):
                break
            time.sleep(0.5)
        assert all(any(name in image for image in w) for w in warm.values()), (name, warm)
        # each node says so in its pools, and `envhub cluster status` shows them
        pools = {n["name"]: n["pools"] for n in nodes_doc(server)["nodes"] if n["name"] in nodes}
        assert all(any(name in p and "of 1" in p for p in ps) for ps in pools.values()), pools
        # and each node runs its jobs: the others drained in turn
        for target in nodes:
            for n in nodes:
                requests.post(f"{server.url}/cluster/nodes/{n}/{'resume' if n == target else 'drain'}",
                              timeout=10)
            doc = execute(server, "print(open('/opt/marker').read().strip())", environment=name)
            assert doc["status"] == "succeeded" and doc["stdout"] == "built\n", doc
            r = row(server, doc["id"])
            assert r["node"] == target and r["environment"] == name, r
    finally:
        for n in nodes:
            requests.post(f"{server.url}/cluster/nodes/{n}/resume", timeout=10)
        delete_env(server, name)


def test_health_tells_the_nodes(cluster):
    server, nodes = cluster
    doc = requests.get(f"{server.url}/health", timeout=10).json()
    c = doc["cluster"]
    assert c["nodes_up"] >= len(nodes) and c["queued"] == 0 and c["pulling"] == [], c


def test_a_frozen_node_loses_its_jobs_and_its_late_results_are_refused(cluster):
    """SIGSTOP a node while it runs jobs: past the node timeout the server gives it up (its
    jobs end interrupted, naming it; new jobs go elsewhere). SIGCONT: its late results are
    refused (nothing recorded twice), its containers of those jobs are killed at the
    server's word, and it takes jobs again."""
    server, nodes = cluster
    victim = sorted(nodes)[2]
    proc = nodes[victim].proc
    for n in nodes:
        requests.post(f"{server.url}/cluster/nodes/{n}/{'resume' if n == victim else 'drain'}",
                      timeout=10)
    out = {}

    def job(i):
        out[i] = requests.post(f"{server.url}/execute",
                               json={"code": f"import time; time.sleep(3); print({i})"}, timeout=120)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            n = next(x for x in nodes_doc(server)["nodes"] if x["name"] == victim)
            if n["running"] == 2:
                break
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        for n in nodes:
            if n != victim:
                requests.post(f"{server.url}/cluster/nodes/{n}/resume", timeout=10)
        for t in threads:
            t.join(60)
        waited = time.monotonic() - t0
        for r in out.values():
            doc = r.json()
            assert doc["status"] == "interrupted" and victim in doc["error"], doc
            assert "stopped answering" in doc["error"], doc
        assert NODE_TIMEOUT <= waited < NODE_TIMEOUT + 5, waited
        assert node_states(server)[victim] == "lost"
        doc = execute(server, "print('elsewhere')")
        assert doc["stdout"] == "elsewhere\n" and row(server, doc["id"])["node"] != victim
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    # thawed: it reports again, its late results are refused, the rows stay as they were
    wait_nodes(server, [victim])
    time.sleep(4)  # its jobs end (3 s of sleep) and their results are posted, refused
    for r in out.values():
        assert row(server, r.json()["id"])["status"] == "interrupted"
    assert "holds no lease" in nodes[victim].log() or "refused the result" in nodes[victim].log()
    seen = set()
    deadline = time.monotonic() + 30
    while victim not in seen and time.monotonic() < deadline:
        for r in run_many(server, ["print(5)"] * 6, concurrency=6):
            assert r.status_code == 200 and r.json()["stdout"] == "5\n", r.text
            seen.add(row(server, r.json()["id"])["node"])
    assert victim in seen, seen


def test_a_followed_job_on_a_node_streams_its_output_while_it_runs(cluster):
    """An asynchronous job's output, relayed by its node as it comes, reaches a follower
    of GET /executions/{id}/output while the job runs, whole and in order."""
    import http.client
    import json as _json
    server, nodes = cluster
    code = ("import sys, time\n"
            "for i in range(6):\n"
            "    print(f'tick {i}', flush=True)\n"
            "    if i == 2:\n"
            "        print('half way', file=sys.stderr, flush=True)\n"
            "    time.sleep(0.5)\n")
    r = requests.post(f"{server.url}/executions", json={"code": code, "timeout": 30}, timeout=30)
    assert r.status_code == 202, r.text
    eid = r.json()["id"]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", f"/executions/{eid}/output?follow=1")
    resp = conn.getresponse()
    assert resp.status == 200
    events, event, data = [], None, []
    try:
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line == "" and (event or data):
                events.append((time.monotonic(), event, "\n".join(data)))
                event, data = None, []
    finally:
        conn.close()
    assert events and events[-1][1] == "end", events[-3:]
    out = "".join(_json.loads(d) for _t, e, d in events if e == "stdout")
    err = "".join(_json.loads(d) for _t, e, d in events if e == "stderr")
    assert out == "".join(f"tick {i}\n" for i in range(6)) and err == "half way\n", events
    first = next(t for t, e, _d in events if e == "stdout")
    assert events[-1][0] - first >= 1.5, "the output came only at the end"
    assert row(server, eid)["node"] in nodes


def test_metrics_have_a_line_per_node(cluster):
    server, nodes = cluster
    text = requests.get(f"{server.url}/metrics", timeout=30).text
    for n in nodes:
        assert f'envhub_cluster_node_up{{node="{n}"}} 1' in text, text[-2000:]
        assert f'envhub_cluster_node_jobs_total{{node="{n}"}}' in text
    assert "envhub_cluster_queued 0" in text


def test_a_drain_outlives_a_restart_of_the_server(envhub_factory, key_file, envhub_bin):
    server = envhub_factory("--cluster", "swarm", "--node-key-file", key_file, "--node-timeout", "3")
    token = subprocess.run([envhub_bin, "cluster", "token", "keeper", "--node-key-file", key_file],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    hdr = {"Authorization": f"Bearer {token}", "X-Envhub-Boot": "k1"}

    def beat(s):
        r = requests.post(f"{s.url}/cluster/nodes/keeper/heartbeat", json={"slots": 1}, headers=hdr,
                          timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    assert beat(server)["drained"] is False
    assert requests.post(f"{server.url}/cluster/nodes/keeper/drain", timeout=10).status_code == 200
    assert beat(server)["drained"] is True
    server.stop()
    again = envhub_factory("--cluster", "swarm", "--node-key-file", key_file, "--node-timeout", "3",
                           db_path=server.db_path)
    assert node_states(again) == {"keeper": "lost"}  # known, drained, not heard from yet
    assert beat(again)["drained"] is True
    assert node_states(again) == {"keeper": "drained"}
    assert requests.post(f"{again.url}/cluster/nodes/keeper/resume", timeout=10).status_code == 200
    assert beat(again)["drained"] is False
    # a job for it waits in the queue (it never asks for work); once it is lost, the job
    # ends rather than hang: no node is left
    t0 = time.monotonic()
    r = requests.post(f"{again.url}/execute", json={"code": "print(1)"}, timeout=30)
    assert r.status_code == 503 and "no node is up" in r.json()["detail"], r.text
    assert time.monotonic() - t0 < 3 + 5

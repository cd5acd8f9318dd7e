"""Builds and versions (issue 3): rebuilds to N+1 while N keeps serving, failed rebuilds,
the cache hit of an unchanged definition, build logs followed live (server-sent events)
and a server killed during a build."""

import json
import os
import signal
import threading
import time

import requests

from helpers import (is_waiting_sandbox, build_log, build_step_containers, catalog_row, container_exists, create_env, execute,
                     get_build, get_env, image_exists, image_id_of, labelled_containers, labelled_images,
                     note_step_images, parse_iso, short, wait_build, wait_env, wait_log_contains)
from test_validation import assert_detail

BUILD_FIELDS = {"id", "environment", "version", "status", "docker_image", "image_id", "cache_hit", "error",
                "queued_at", "started_at", "finished_at", "definition", "log_lines", "python_found",
                "base_image", "base_image_id", "log_url"}

# Each version writes its number where jobs can read it: a job then shows which version it ran on.
READ_VERSION = "print(open('/opt/envhub-test-version').read().strip())\n"


def version_script(run_id, n, extra=""):
    return f"# {run_id}\necho {n} > /opt/envhub-test-version\n{extra}"


def rebuild(server, name, body=None):
    if body is None:
        return requests.post(f"{server.url}/environments/{name}/rebuild", timeout=30)
    return requests.post(f"{server.url}/environments/{name}/rebuild", json=body, timeout=30)


def builds_of(server, name):
    r = requests.get(f"{server.url}/environments/{name}/builds", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["builds"]), body
    return body["builds"]


# ---------------------------------------------------------------- rebuild N -> N+1

class ExecutionLoop:
    """Threads running jobs in an environment back to back until stopped; every answer
    is kept with the time it was asked and the version the environment said it served."""

    def __init__(self, server, name, threads=2):
        self.server, self.name = server, name
        self.stop_event = threading.Event()
        self.results = []  # (thread, started monotonic, status code, JSON or text)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i):
        while not self.stop_event.is_set():
            t0 = time.monotonic()
            try:
                r = requests.post(f"{self.server.url}/execute", json={"code": READ_VERSION, "environment": self.name,
                                                                      "timeout": 30}, timeout=90)
                body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else r.text
                item = (i, t0, r.status_code, body)
            except requests.RequestException as e:
                item = (i, t0, None, f"{e.__class__.__name__}: {e}")
            with self.lock:
                self.results.append(item)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=120)

    def count(self):
        with self.lock:
            return len(self.results)


def test_rebuild_builds_n_plus_1_while_executions_keep_succeeding_on_n(envhub, run_id):
    name = f"rebuild-{run_id}"
    create_env(envhub, name, version_script(run_id, 1))
    v1 = wait_env(envhub, name)
    assert v1["version"] == 1

    with ExecutionLoop(envhub, name) as loop:
        # a few jobs on version 1 before the rebuild starts
        deadline = time.monotonic() + 60
        while loop.count() < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        rebuild_at = time.monotonic()
        r = rebuild(envhub, name, {"setup_script": version_script(run_id, 2, f"echo v2-begin-{run_id}\nsleep 6\n")})
        assert r.status_code == 202, r.text
        queued = r.json()
        assert not BUILD_FIELDS - set(queued), f"missing {sorted(BUILD_FIELDS - set(queued))}: {queued}"
        assert queued["environment"] == name and queued["version"] == 2
        assert queued["status"] in ("queued", "building"), queued
        assert queued["image_id"] is None and queued["finished_at"] is None and queued["cache_hit"] is False
        parse_iso(queued["queued_at"])

        # a second rebuild while this one is queued or running: 409
        r = rebuild(envhub, name, {})
        assert_detail(r, 409, None)

        # while version 2 builds, version 1 stays in service
        wait_log_contains(envhub, name, f"v2-begin-{run_id}", version=2)
        during = get_env(envhub, name)
        assert during["status"] == "ready" and during["version"] == 1, during
        assert during["image_id"] == v1["image_id"]
        assert during["latest_build"] == {"version": 2, "status": "building"}, during

        v2_build = wait_build(envhub, name, 2)
        switched_at = time.monotonic()
        # each build in the list leads to its log
        listed = {b["version"]: b for b in builds_of(envhub, name)}
        log = requests.get(envhub.url + listed[2]["log_url"], timeout=30)
        assert log.status_code == 200 and f"v2-begin-{run_id}" in log.text, (listed[2], log.text[:500])
        env = get_env(envhub, name)
        assert env["version"] == 2 and env["status"] == "ready", env
        assert env["image_id"] == v2_build["image_id"] != v1["image_id"]
        assert env["setup_script"] == version_script(run_id, 2, f"echo v2-begin-{run_id}\nsleep 6\n")
        assert env["error"] is None
        # a few more jobs after the switch
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with loop.lock:
                after = [x for x in loop.results if x[1] > switched_at]
            if len(after) >= 4:
                break
            time.sleep(0.1)

    results = loop.results
    failures = [x for x in results if x[2] != 200 or not isinstance(x[3], dict) or x[3].get("success") is not True]
    assert not failures, f"{len(failures)} of {len(results)} jobs failed during the rebuild: " \
                         f"{[(x[2], short(x[3]) if isinstance(x[3], dict) else x[3]) for x in failures[:5]]}"
    while_building = [x for x in results if rebuild_at < x[1] < switched_at and x[3]["stdout"] == "1\n"]
    assert len(while_building) >= 2, f"only {len(while_building)} jobs ran on version 1 during the rebuild"
    images = {1: v1["image_id"], 2: v2_build["image_id"]}
    seen = {1: 0, 2: 0}
    last = {}
    for thread, t0, _status, body in sorted(results, key=lambda x: x[1]):
        ran = int(body["stdout"].strip())
        row = catalog_row(envhub.db_path, body["id"])
        # the row records the version and image the job really ran on
        assert (row["environment"], row["environment_version"], row["image_id"]) == (name, ran, images[ran]), row
        assert ran >= last.get(thread, 1), f"thread {thread} ran on version {ran} after {last[thread]}"
        last[thread] = ran
        seen[ran] += 1
        if t0 > switched_at:
            assert ran == 2, f"a job asked for after the switch ran on version {ran}"
    assert seen[1] >= 2 and seen[2] >= 4, seen

    builds = builds_of(envhub, name)
    assert [(b["version"], b["status"]) for b in builds] == [(2, "ready"), (1, "ready")]
    assert image_exists(v1["image_id"]), "version 1's image went right after the switch"
    res = execute(envhub, READ_VERSION, timeout=30, environment=name)
    assert res["stdout"] == "2\n"
    row = catalog_row(envhub.db_path, res["id"])
    assert (row["environment_version"], row["image_id"]) == (2, v2_build["image_id"])


def test_failed_rebuild_leaves_version_n_in_service_and_shows_the_failure(envhub, run_id):
    name = f"bad-rebuild-{run_id}"
    create_env(envhub, name, version_script(run_id, 1))
    v1 = wait_env(envhub, name)

    r = rebuild(envhub, name, {"setup_script": f"echo broken-{run_id}\ncat /nonexistent-{run_id}\necho never\n"})
    assert r.status_code == 202, r.text
    assert r.json()["version"] == 2
    failed = wait_build(envhub, name, 2, until=("failed",))
    note_step_images(build_log(envhub, name, 2))
    assert failed["error"] and failed["image_id"] is None, failed
    assert failed["finished_at"] is not None

    env = get_env(envhub, name)
    assert env["status"] == "ready" and env["version"] == 1, env
    assert env["image_id"] == v1["image_id"] and env["docker_image"] == v1["docker_image"]
    assert env["setup_script"] == v1["setup_script"], "the failed definition replaced the one in service"
    assert isinstance(env["error"], str) and env["error"].strip(), env
    assert env["latest_build"] == {"version": 2, "status": "failed"}
    assert [(b["version"], b["status"]) for b in builds_of(envhub, name)] == [(2, "failed"), (1, "ready")]
    log = build_log(envhub, name, 2)
    assert f"broken-{run_id}" in log.splitlines(), log[-3000:]
    assert f"setup.sh failed at line 2: cat /nonexistent-{run_id}" in log, log[-3000:]

    res = execute(envhub, READ_VERSION, timeout=30, environment=name)
    assert res["success"] is True and res["stdout"] == "1\n", short(res)
    row = catalog_row(envhub.db_path, res["id"])
    assert (row["environment_version"], row["image_id"]) == (1, v1["image_id"])


def test_invalid_rebuild_is_refused_and_changes_nothing(envhub, basic_env, run_id):
    name = basic_env["name"]
    before = get_env(envhub, name)
    n_builds = len(builds_of(envhub, name))
    for body, status, words in [
        ({"setup_script": "apt-get update\nrm -rf /\n"}, 400, ("dangerous command",)),
        ({"setup_script": ""}, 400, ("setup_script",)),
        ({"setup_script": "#" * 10001}, 400, ("setup_script",)),
        ({"setup_script": 5}, 422, ("setup_script",)),
        ({"base_image": "Not A Reference!"}, 400, ("base_image",)),
        ({"base_image": ["x"]}, 422, ("base_image",)),
    ]:
        r = rebuild(envhub, name, body)
        assert_detail(r, status, words)
    r = requests.post(f"{envhub.url}/environments/{name}/rebuild", data=b'{"setup_script": ',
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert_detail(r, 422, None)
    after = get_env(envhub, name)
    assert (after["version"], after["image_id"], after["setup_script"], after["latest_build"]) == \
        (before["version"], before["image_id"], before["setup_script"], before["latest_build"])
    assert len(builds_of(envhub, name)) == n_builds


# ---------------------------------------------------------------- cache hit

def test_unchanged_definition_rebuilt_is_a_cache_hit_with_no_new_image(envhub, run_id):
    name = f"cached-{run_id}"
    script = version_script(run_id, 1, f"echo cache-{run_id}\n")
    create_env(envhub, name, script)
    v1 = wait_env(envhub, name)
    b1 = get_build(envhub, name, 1)
    assert b1["cache_hit"] is False
    ours = lambda: sorted(i["Id"] for i in labelled_images(f"envhub.test={envhub.run_id}"))  # noqa: E731
    images_before = ours()
    assert v1["image_id"] in images_before

    # an empty POST, then the same script sent again: both unchanged definitions
    for version, body in ((2, None), (3, {"setup_script": script})):
        t0 = time.monotonic()
        r = rebuild(envhub, name, body)
        assert r.status_code == 202, r.text
        assert r.json()["version"] == version
        build = wait_build(envhub, name, version)
        assert build["cache_hit"] is True, build
        assert build["image_id"] == v1["image_id"], (build, v1)
        assert build["definition"] == b1["definition"]
        assert build["python_found"] == b1["python_found"]
        assert time.monotonic() - t0 < 30, "a cache hit took as long as a build"
        env = get_env(envhub, name)
        assert env["version"] == version and env["status"] == "ready"
        assert env["image_id"] == v1["image_id"]
        assert image_id_of(env["docker_image"]) == v1["image_id"], "the new version's tag names another image"
        assert "Step 1/" not in build_log(envhub, name, version), "a cache hit ran docker build"
        assert ours() == images_before, "a cache hit made a new image"

    inv1 = requests.get(f"{envhub.url}/environments/{name}/packages?version=1", timeout=30).json()
    inv3 = requests.get(f"{envhub.url}/environments/{name}/packages", timeout=30).json()
    assert inv3["version"] == 3 and inv3["packages"] == inv1["packages"] and inv3["total"] > 0
    res = execute(envhub, READ_VERSION, timeout=30, environment=name)
    assert res["stdout"] == "1\n", short(res)
    row = catalog_row(envhub.db_path, res["id"])
    assert (row["environment_version"], row["image_id"]) == (3, v1["image_id"])

    # a changed script is not a cache hit
    r = rebuild(envhub, name, {"setup_script": version_script(run_id, 4)})
    assert r.status_code == 202, r.text
    b4 = wait_build(envhub, name, 4)
    assert b4["cache_hit"] is False and b4["image_id"] != v1["image_id"]


# ---------------------------------------------------------------- logs, live

def read_events(resp):
    """Yields (monotonic time, {"id", "event", "data"} or {"comment"}) as the server writes
    them, reading the body a byte at a time so nothing waits in a buffer."""
    line = b""
    event = {}
    for byte in resp.iter_content(chunk_size=1):
        if byte != b"\n":
            line += byte
            continue
        text = line.decode("utf-8", errors="replace")
        line = b""
        if text == "":
            if event:
                yield time.monotonic(), event
            event = {}
        elif text.startswith(":"):
            yield time.monotonic(), {"comment": text[1:].strip()}
        else:
            key, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[key] = event[key] + "\n" + value if key == "data" and key in event else value


def test_sse_log_follow_receives_lines_before_the_build_ends(envhub, run_id):
    name = f"follow-{run_id}"
    ticks = 8
    create_env(envhub, name, f"echo follow-begin-{run_id}\nfor i in $(seq 1 {ticks}); do echo tick-$i; sleep 1; done\n")
    r = requests.get(f"{envhub.url}/environments/{name}/builds/1/log?follow=1", stream=True, timeout=(10, 60))
    try:
        assert r.status_code == 200, r.text[:1000]
        assert r.headers.get("Content-Type", "").startswith("text/event-stream"), r.headers
        data, ids, end = [], [], None
        while_building = None
        tick_times = {}
        for at, event in read_events(r):
            if "comment" in event:
                continue
            if event.get("event") == "end":
                end = json.loads(event["data"])
                break
            assert "data" in event and "id" in event, event
            ids.append(int(event["id"]))
            data.append(event["data"])
            if event["data"].startswith("tick-"):
                tick_times[event["data"]] = at
            if event["data"] == f"follow-begin-{run_id}" and while_building is None:
                while_building = get_env(envhub, name)
    finally:
        r.close()

    assert end is not None, f"the stream ended without an end event after {len(data)} lines"
    assert end["status"] == "ready" and end["version"] == 1 and end.get("error") is None, end
    assert while_building is not None, f"no follow-begin line came: {data[-20:]}"
    assert while_building["status"] == "building", \
        f"the first script line arrived only when the build was over: {while_building}"
    assert while_building["latest_build"]["status"] == "building", while_building
    # the lines came as they were written, not all at once at the end
    assert "tick-1" in tick_times and f"tick-{ticks}" in tick_times, sorted(tick_times)
    assert tick_times[f"tick-{ticks}"] - tick_times["tick-1"] >= ticks / 2, tick_times
    assert ids == sorted(set(ids)), "event ids are not increasing"
    # every line of the stored log came, in order
    assert data == build_log(envhub, name, 1).splitlines()
    assert get_env(envhub, name)["status"] == "ready"


def test_follow_of_a_finished_build_replays_the_log_and_ends(envhub, basic_env):
    name = basic_env["name"]
    stored = build_log(envhub, name, 1).splitlines()
    for path in (f"/environments/{name}/builds/1/log?follow=1", f"/environments/{name}/logs?follow=1"):
        r = requests.get(envhub.url + path, stream=True, timeout=(10, 30))
        try:
            assert r.status_code == 200
            events = [e for _at, e in read_events(r) if "comment" not in e]
        finally:
            r.close()
        assert events[-1].get("event") == "end", events[-3:]
        end = json.loads(events[-1]["data"])
        assert end["status"] == "ready" and end["version"] >= 1, end
        if "builds/1" in path:
            assert [e["data"] for e in events[:-1]] == stored


def test_follow_resumes_after_last_event_id(envhub, basic_env):
    name = basic_env["name"]
    stored = build_log(envhub, name, 1).splitlines()
    r = requests.get(f"{envhub.url}/environments/{name}/builds/1/log?follow=1", stream=True, timeout=(10, 30),
                     headers={"Last-Event-ID": "5"})
    try:
        events = [e for _at, e in read_events(r) if "comment" not in e]
    finally:
        r.close()
    assert [e["data"] for e in events[:-1]] == stored[5:]
    assert int(events[0]["id"]) == 6


# ---------------------------------------------------------------- restart safety

def test_kill_9_during_a_build_then_restart_leaves_no_stuck_row_and_no_container(envhub_factory, run_id):
    since = time.time()
    first = envhub_factory()
    name = f"restart-{run_id}"
    script = f"echo restart-begin-{run_id}\nsleep 12\necho restart-end-{run_id}\n"
    create_env(first, name, script)
    log = wait_log_contains(first, name, f"restart-begin-{run_id}", version=1)
    steps = [line.split("Running in", 1)[1].strip() for line in log.splitlines() if "Running in" in line]
    assert steps, f"no build step container in the log:\n{log[-3000:]}"
    note_step_images(log)
    assert any(container_exists(c) for c in steps), "the build's step container is not there while it runs"
    assert get_env(first, name)["status"] == "building"

    instance = first.instance_id()
    assert instance, "the server logged no instance id"
    os.kill(first.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)

    restarted_at = time.time()
    second = envhub_factory(db_path=first.db_path)
    env = get_env(second, name)
    assert env["status"] in ("building", "ready", "failed"), env
    env = wait_env(second, name, until=("ready", "failed"), within=120)
    builds = builds_of(second, name)
    assert all(b["status"] not in ("queued", "building") for b in builds), builds
    if env["status"] == "failed":
        assert env["error"] and env["error"].strip(), f"failed with no reason: {env}"
    else:
        # requeued and built again
        assert env["version"] == 1 and builds[0]["status"] == "ready", (env, builds)
        again = build_log(second, name, 1)
        assert f"restart-end-{run_id}" in again.splitlines(), again[-3000:]
        res = execute(second, "print('after restart')", timeout=30, environment=name)
        assert res["success"] is True, short(res)

    # no container of the killed build, no build step container, and no container the
    # killed server made (its warm pool): the new server's own pool is legitimate
    instances = {instance, second.instance_id()}
    deadline = time.monotonic() + 15
    while True:
        left_steps = [c for c in steps if container_exists(c)]
        left_build = [(c["Id"][:12], c["State"], c["Command"][:80]) for c in build_step_containers(since)]
        left_killed = [(c["Id"][:12], c["State"], c["Command"][:40], c["Labels"])
                       for c in labelled_containers(second.label)
                       if c["Labels"].get("envhub.instance") in instances and c["Created"] < int(restarted_at)]
        if not (left_steps or left_build or left_killed) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not left_steps, f"the killed build's step containers are still there: {left_steps}"
    assert not left_build, f"build step containers left behind: {left_build}"
    assert not left_killed, f"containers of the killed server left behind: {left_killed}"
    for c in labelled_containers(second.label):
        if c["Labels"].get("envhub.instance") in instances:
            assert is_waiting_sandbox(c["Command"]) and c["State"] == "running", \
                f"a container of the new server that is not a waiting pool container: {c}"
    second_log = second.log_text()
    assert "ERROR: AddressSanitizer" not in second_log

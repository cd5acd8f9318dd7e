"""Limits on environment builds (issue 3), each against a server of its own started with
small settings: the build timeout (ENVHUB_BUILD_TIMEOUT), at most ENVHUB_BUILD_CONCURRENCY
builds at once, the per-build process limit (ENVHUB_BUILD_PIDS) against a script that forks
until it cannot, and no build step container left behind when a step fails.

The step containers of a build are docker build's (unlabelled): they are found by the ids
the build log names ("Running in <id>") and by the image they run on, so that builds of
other servers on the same engine do not disturb the checks."""

import re
import time

import pytest
import requests

from helpers import (build_log, container_exists, containers_on_image, create_env, delete_env, docker_api, execute,
                     get_build, get_metrics, note_step_images, parse_iso, short, wait_env, wait_until)

BUILD_TIMEOUT = 10  # s, the smallest the server accepts
BUILD_PIDS = 64


@pytest.fixture(scope="module")
def limited(envhub_module_factory):
    """A server whose builds may take BUILD_TIMEOUT s and BUILD_PIDS processes."""
    return envhub_module_factory("--build-timeout", str(BUILD_TIMEOUT), "--build-pids", str(BUILD_PIDS),
                                 "--build-concurrency", "2", "--pool-size", "0")


@pytest.fixture(scope="module")
def two_at_once(envhub_module_factory):
    """A server that runs at most 2 builds at once."""
    return envhub_module_factory("--build-concurrency", "2", "--pool-size", "0")


def step_containers(log):
    """The ids of the step containers the build log names."""
    return [line.split("Running in", 1)[1].strip() for line in log.splitlines() if "Running in" in line]


def step_image_ids(log):
    """The ids (12 hex) of the images the build's steps made from `COPY setup.sh` on: they
    hold the script, so only this build runs containers on them (the base image and the
    steps before the COPY are shared with every other build on that base)."""
    lines = log.splitlines()
    copy = next((i for i, line in enumerate(lines) if line.startswith("Step ") and "COPY setup.sh" in line), None)
    if copy is None:
        return []
    return sorted({m.group(1) for line in lines[copy:] if (m := re.fullmatch(r"\s*---> ([0-9a-f]{12})\s*", line))})


def assert_no_step_container_left(server, name, version=1, within=15.0):
    """No container the build's log names is still there, and no container runs on an
    image of its steps."""
    log = build_log(server, name, version)
    note_step_images(log)
    steps = step_containers(log)
    assert steps, f"the build log names no step container:\n{log[-3000:]}"
    images = step_image_ids(log)

    def left():
        named = [c for c in steps if container_exists(c)]
        on_images = [(c["Id"][:12], c.get("State"), c.get("Command", "")[:80])
                     for image in images for c in containers_on_image_prefix(image)]
        return named, on_images

    deadline = time.monotonic() + within
    while True:
        named, on_images = left()
        if not (named or on_images) or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    assert not named, f"step containers of {name!r} left behind: {named}\n{log[-2000:]}"
    assert not on_images, f"containers on the step images of {name!r} left behind: {on_images}"
    return steps


def containers_on_image_prefix(short_id):
    """containers_on_image() for a short (12 hex) image id."""
    status, body = docker_api("GET", f"/v1.41/images/{short_id}/json")
    if status != 200:
        return []  # the image is gone, so is every container on it
    return containers_on_image(body["Id"])


def seconds(a, b):
    return (parse_iso(b) - parse_iso(a)).total_seconds()


# ---------------------------------------------------------------- the build timeout

def test_a_build_past_its_timeout_fails_promptly_naming_the_limit_and_leaves_no_container(limited, run_id):
    name = f"slow-{run_id}"
    t0 = time.monotonic()
    create_env(limited, name, f"echo slow-begin-{run_id}\nsleep 60\necho slow-end-{run_id}\n")
    env = wait_env(limited, name, until=("failed",), within=BUILD_TIMEOUT + 30, poll=0.2)
    took = time.monotonic() - t0
    assert BUILD_TIMEOUT - 1 <= took <= BUILD_TIMEOUT + 12, \
        f"the build ended {took:.1f} s after it was created, its limit is {BUILD_TIMEOUT} s: {env}"
    assert env["version"] == 0 and env["image_id"] is None, env
    assert "time limit" in env["error"] and f"{BUILD_TIMEOUT} s" in env["error"] \
        and "ENVHUB_BUILD_TIMEOUT" in env["error"], env

    build = get_build(limited, name, 1)
    assert build["status"] == "failed" and build["error"] == env["error"], build
    assert BUILD_TIMEOUT - 1 <= seconds(build["started_at"], build["finished_at"]) <= BUILD_TIMEOUT + 10, build
    log = build_log(limited, name, 1)
    lines = log.splitlines()
    assert f"slow-begin-{run_id}" in lines, log[-3000:]
    assert f"slow-end-{run_id}" not in lines, log[-3000:]
    assert lines[-1] == f"envhub: build failed: {env['error']}", lines[-5:]

    # the step that was sleeping is gone (killed and removed), not left to sleep on
    assert_no_step_container_left(limited, name)
    delete_env(limited, name)


# ---------------------------------------------------------------- at most N builds at once

def test_at_most_two_builds_run_at_once_and_the_third_waits_for_one_to_end(two_at_once, run_id):
    names = [f"conc{i}-{run_id}" for i in range(3)]
    for i, name in enumerate(names):
        create_env(two_at_once, name, f"echo conc-{i}-{run_id}\nsleep 4\n")

    # watch the queue: never more than 2 building; for a while 2 building and 1 queued
    most_building, seen_two_and_queued, metrics_seen = 0, False, []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        envs = {e["name"]: e for e in requests.get(f"{two_at_once.url}/environments", timeout=30)
                .json()["environments"] if e["name"] in names}
        states = [envs[n]["latest_build"]["status"] for n in names]
        building, queued = states.count("building"), states.count("queued")
        most_building = max(most_building, building)
        if building == 2 and queued == 1:
            seen_two_and_queued = True
            m = get_metrics(two_at_once)
            metrics_seen.append((m.value("envhub_builds_running"), m.value("envhub_builds_queued")))
        if all(s in ("ready", "failed", "cancelled") for s in states):
            break
        time.sleep(0.1)
    for name in names:
        wait_env(two_at_once, name, within=5)
    assert most_building <= 2, f"{most_building} builds ran at once with --build-concurrency 2"
    assert seen_two_and_queued, "never saw 2 builds running with the third queued"
    assert all(running <= 2 for running, _ in metrics_seen), metrics_seen
    assert any(running == 2 and queued >= 1 for running, queued in metrics_seen), metrics_seen

    # the builds' own times: two ran together, the third started only once one had ended
    builds = sorted((get_build(two_at_once, n, 1) for n in names), key=lambda b: parse_iso(b["started_at"]))
    for b in builds:
        note_step_images(build_log(two_at_once, b["environment"], 1))
    first, second, third = builds
    assert parse_iso(second["started_at"]) < parse_iso(first["finished_at"]), \
        f"the first two builds did not overlap: {[(b['environment'], b['started_at'], b['finished_at']) for b in builds]}"
    first_end = min(parse_iso(first["finished_at"]), parse_iso(second["finished_at"]))
    assert parse_iso(third["started_at"]) >= first_end, \
        f"the third build started before either of the first two ended: " \
        f"{[(b['environment'], b['started_at'], b['finished_at']) for b in builds]}"
    # it was queued all along: queued with the others, started seconds later
    assert seconds(third["queued_at"], third["started_at"]) >= 3.5, third
    for name in names:
        delete_env(two_at_once, name)


# ---------------------------------------------------------------- processes

# Forks children that sleep until a fork fails (or a cap that no build with a process limit
# reaches), bounded by `timeout 10`; then says how many it made. Not a `f(){ f|f& }` that
# the dangerous-command check refuses.
FORKER = """echo forker-begin-{run_id}
timeout 10 python3 - <<'PY'
import os, time
n = 0
while n < 3000:
    try:
        pid = os.fork()
    except OSError as e:
        print("forker-{run_id}: fork failed after %d children: %s" % (n, e), flush=True)
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    n += 1
else:
    print("forker-{run_id}: cap reached with %d children" % n, flush=True)
PY
echo forker-end-{run_id}
"""


def test_a_script_that_forks_until_it_fails_is_held_by_the_build_process_limit(limited, run_id):
    if "builds run without a process limit" in limited.log_text():
        line = next(li for li in limited.log_text().splitlines() if "without a process limit" in li)
        pytest.skip(f"no build process limit on this engine: {line}")
    name = f"forker-{run_id}"
    t0 = time.monotonic()
    created = requests.post(f"{limited.url}/environments", json={"name": name, "setup_script": FORKER.format(
        run_id=run_id)}, timeout=30)
    assert created.status_code == 200, f"the script was refused: {created.status_code} {created.text}"
    # the server keeps answering while the build forks
    assert wait_until(lambda: f"forker-begin-{run_id}" in build_log(limited, name, 1), within=30), \
        build_log(limited, name, 1)[-2000:]
    r = requests.get(f"{limited.url}/health", timeout=10)
    assert r.status_code == 200, r.text
    env = wait_env(limited, name, until=("ready", "failed"), within=60, poll=0.25)
    took = time.monotonic() - t0
    assert took < 45, f"the build took {took:.1f} s"

    log = build_log(limited, name, 1)
    note_step_images(log)
    assert "process limit set" in log, log[-3000:]
    said = re.search(rf"^forker-{run_id}: fork failed after (\d+) children", log, re.M)
    assert said, f"the forks never failed (no process limit?):\n{log[-3000:]}"
    children = int(said.group(1))
    assert 1 <= children < BUILD_PIDS, f"{children} children with --build-pids {BUILD_PIDS}"
    assert f"forker-end-{run_id}" in log.splitlines(), log[-3000:]

    # the server still answers and runs jobs; the image is usable when the build passed
    r = requests.get(f"{limited.url}/health", timeout=10)
    assert r.status_code == 200, r.text
    res = execute(limited, "print('still here')", timeout=30)
    assert res["success"] is True and res["stdout"] == "still here\n", short(res)
    if env["status"] == "ready":
        res = execute(limited, "import os; print(os.getuid())", timeout=30, environment=name)
        assert res["success"] is True and res["stdout"] == "1000\n", short(res)
    else:
        assert env["error"], env
    assert_no_step_container_left(limited, name)
    delete_env(limited, name)


# ---------------------------------------------------------------- a failing step

def test_a_failing_step_leaves_no_step_container_behind(limited, run_id):
    name = f"stepfail-{run_id}"
    create_env(limited, name, f"echo stepfail-{run_id}\nexit 7\n")
    env = wait_env(limited, name, until=("failed",), within=60, poll=0.2)
    assert env["error"], env
    log = build_log(limited, name, 1)
    assert f"stepfail-{run_id}" in log.splitlines(), log[-3000:]
    steps = assert_no_step_container_left(limited, name, within=5)
    # the failed step's container existed (named by the log) and is gone
    assert len(steps) == 1, steps
    delete_env(limited, name)

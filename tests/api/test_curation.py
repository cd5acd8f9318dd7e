"""Curation (issue 8): policies applied to jobs, acceptance checks (test_script and the
default import check), package inventory queries and version diffs, lifecycle states
(deprecated warns, retired answers 410 and keeps its history), base-image drift.

One server for the module (its own catalog; retired images removed after 2 s, a drift
check every 2 s, four builds at once) and five environments built together at the start:

  numpy  python3-numpy from Debian, a passing test_script, policy memory 96 MiB and
         network bridge; then version 2 adds python3-six without a test_script (the
         import check), version 3 the same definition with a failing test_script
  locked a trivial build whose test_script reports the sandbox it runs in, then fails
  broken a setup script that drops a package pip lists but that does not import
  drift  built on a base tag of this run, which is then moved to another image
  life   deprecated, retired, reinstated
"""

import glob
import json
import os
import re
import subprocess
import time
import urllib.parse

import pytest
import requests

from helpers import (DEFAULT_IMAGE, UnixHTTPConnection, catalog_row, create_env, docker_api,
                     docker_socket_path, execute, get_env, image_exists, image_id_of, log_tail,
                     server_env, short, wait_build, wait_env)

MiB = 1024 * 1024
POLICY_MEMORY = 96 * MiB


def mirror_host():
    """The host of the Debian mirror the builds use (as environments/bootstrap-base.sh
    finds it): the first .../debian URI of the apt sources, deb.debian.org when none."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            for line in f:
                if line.startswith("URIs:"):
                    for uri in line.split()[1:]:
                        if re.search(r"/debian/?$", uri):
                            return urllib.parse.urlparse(uri).hostname
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if parts and parts[0] == "deb":
                        for uri in parts[1:]:
                            if re.match(r"https?://", uri) and re.search(r"/debian/?$", uri):
                                return urllib.parse.urlparse(uri).hostname
    return "deb.debian.org"


MIRROR = mirror_host()

APT = "apt-get update\napt-get install -y --no-install-recommends {}\nrm -rf /var/lib/apt/lists/*\n"
NUMPY_V1 = APT.format("python3-numpy")
NUMPY_V2 = APT.format("python3-numpy python3-six")
NUMPY_TEST = ("import os, numpy\nassert numpy.arange(4).sum() == 6\nassert os.getuid() == 1000\n"
              "print('acceptance ok', numpy.__version__)\n")
FAILING_V3_TEST = "import sys\nprint('version 3 does not pass')\nsys.exit(1)\n"
LOCKED_TEST = f"""import os, socket, sys
print("uid", os.getuid())
try:
    open("/usr/lib/envhub-probe", "w")
    print("root: writable")
except OSError as e:
    print("root: read-only errno", e.errno)
try:
    socket.create_connection(({MIRROR!r}, 80), 5)
    print("network: yes")
except OSError:
    print("network: no")
print("failing on purpose", file=sys.stderr)
sys.exit(3)
"""
BROKEN_SCRIPT = """d=/usr/local/lib/python3.11/dist-packages
mkdir -p "$d/brokenpkg" "$d/brokenpkg-1.0.dist-info"
echo 'raise ImportError("brokenpkg is broken on purpose")' > "$d/brokenpkg/__init__.py"
printf 'Metadata-Version: 2.1\\nName: brokenpkg\\nVersion: 1.0\\n' > "$d/brokenpkg-1.0.dist-info/METADATA"
"""
NET_CODE = f"""import socket
try:
    print("resolved", socket.gethostbyname({MIRROR!r}))
    socket.create_connection(({MIRROR!r}, 80), 10).close()
    print("connected")
except OSError as e:
    print("no network:", type(e).__name__)
"""


# ---------------------------------------------------------------- helpers

def engine_call(method, path, body=None, timeout=60):
    """An Engine API call with a JSON body (helpers.docker_api sends none)."""
    conn = UnixHTTPConnection(docker_socket_path(), timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Host": "docker"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    return resp.status, (json.loads(raw) if raw and raw[:1] in b"{[" else raw.decode(errors="replace"))


def cli(server, binary, *args, timeout=120):
    env = server_env()
    env["ENVHUB_URL"] = server.url
    return subprocess.run([binary] + [str(a) for a in args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def rebuild(server, name, **body):
    r = requests.post(f"{server.url}/environments/{name}/rebuild", json=body, timeout=30)
    assert r.status_code == 202, f"rebuild {name}: {r.status_code} {r.text}"
    return r.json()


def lifecycle(server, name, state, replacement=None):
    body = {"state": state}
    if replacement:
        body["replacement"] = replacement
    return requests.post(f"{server.url}/environments/{name}/lifecycle", json=body, timeout=60)


def post_execute(server, body, timeout=90):
    return requests.post(f"{server.url}/execute", json=body, timeout=timeout)


# ---------------------------------------------------------------- the module's world

@pytest.fixture(scope="module")
def server(envhub_module_factory):
    # --allow-network 1: the policies here give one environment the bridge network
    return envhub_module_factory("--retire-grace", "2", "--drift-interval", "2",
                                 "--build-concurrency", "4", "--allow-network", "1")


@pytest.fixture(scope="module")
def base_tag(run_id, docker_engine):
    """envhub-test/base-<run>:1, a second name of the default image; removed at the end."""
    repo = f"envhub-test/base-{run_id}"
    status, body = docker_api("POST", f"/v1.41/images/{urllib.parse.quote(DEFAULT_IMAGE, safe='')}/tag?"
                                      f"repo={urllib.parse.quote(repo, safe='')}&tag=1")
    assert status == 201, f"tag {DEFAULT_IMAGE} as {repo}:1: {status} {body}"
    yield f"{repo}:1"
    # the tag only (no force): the default image keeps its own name
    docker_api("DELETE", f"/v1.41/images/{urllib.parse.quote(repo + ':1', safe='')}", timeout=60)


@pytest.fixture(scope="module")
def world(server, run_id, base_tag):
    """Every environment of the module, built; timings in ["seconds"]."""
    t0 = time.monotonic()
    names = {k: f"cur-{k}-{run_id}" for k in ("numpy", "locked", "broken", "drift", "life")}
    create_env(server, names["numpy"], NUMPY_V1, test_script=NUMPY_TEST,
               policy={"memory": POLICY_MEMORY, "network": "bridge"})
    create_env(server, names["locked"], f"echo locked-{run_id}\n", test_script=LOCKED_TEST)
    create_env(server, names["broken"], BROKEN_SCRIPT)
    create_env(server, names["drift"], f"echo drift-{run_id}\n", base_image=base_tag,
               policy={"network": "none"})
    create_env(server, names["life"], f"echo life-{run_id}\n")
    seconds = {}
    for key in ("locked", "broken", "drift", "life"):
        wait_env(server, names[key], until=("ready", "failed"))
        seconds[key] = time.monotonic() - t0
    v1 = wait_env(server, names["numpy"])
    seconds["numpy v1"] = time.monotonic() - t0
    t1 = time.monotonic()
    assert rebuild(server, names["numpy"], setup_script=NUMPY_V2, test_script="")["version"] == 2
    wait_build(server, names["numpy"], 2)
    seconds["numpy v2"] = time.monotonic() - t1
    t2 = time.monotonic()
    assert rebuild(server, names["numpy"], test_script=FAILING_V3_TEST)["version"] == 3
    wait_build(server, names["numpy"], 3, until=("failed",))
    seconds["numpy v3"] = time.monotonic() - t2
    seconds["all"] = time.monotonic() - t0
    print(f"\ncuration builds (s): " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    return {"names": names, "numpy_v1": v1, "seconds": seconds}


# ---------------------------------------------------------------- policy

def test_policy_memory_maximum_is_applied_and_a_request_cannot_raise_it(server, world):
    name = world["names"]["numpy"]
    env = get_env(server, name)
    assert env["policy"] == {"memory": POLICY_MEMORY, "network": "bridge"}, env["policy"]
    # a job over the environment's memory ends oom
    res = execute(server, "b = b'x' * (400 * 1024 * 1024)\nprint(len(b))\n", timeout=60,
                  environment=name)
    assert res["status"] == "oom", short(res)
    row = catalog_row(server.db_path, res["id"])
    assert row["status"] == "oom" and json.loads(row["limits"])["memory"] == POLICY_MEMORY, row
    # the history API shows the limits it ran with
    detail = requests.get(f"{server.url}/executions/{res['id']}", timeout=30).json()
    assert detail["limits"]["memory"] == POLICY_MEMORY, detail
    # asking for more than the environment allows: 400 naming limits.memory
    r = post_execute(server, {"code": "print(1)", "environment": name, "limits": {"memory": 512 * MiB}})
    assert r.status_code == 400, r.text
    assert "limits.memory" in r.json()["detail"], r.text
    # lowering it is fine, and recorded
    res = execute(server, "import numpy\nprint(numpy.ones(3).sum())\n", environment=name,
                  limits={"memory": 64 * MiB})
    assert res["success"] is True and res["stdout"] == "3.0\n", short(res)
    assert json.loads(catalog_row(server.db_path, res["id"])["limits"])["memory"] == 64 * MiB
    # a policy past the server's maximum is refused when the environment is defined
    r = requests.post(f"{server.url}/environments", timeout=30,
                      json={"name": f"too-big-{server.run_id}", "setup_script": "echo\n",
                            "policy": {"memory": 64 * 1024 * MiB}})
    assert r.status_code == 400 and "policy.memory" in r.json()["detail"], r.text


def test_network_bridge_reaches_the_debian_mirror_and_none_does_not(server, world):
    res = execute(server, NET_CODE, timeout=30, environment=world["names"]["numpy"])
    assert res["success"] is True, short(res)
    assert "resolved" in res["stdout"] and "connected" in res["stdout"], short(res)
    res = execute(server, NET_CODE, timeout=30, environment=world["names"]["drift"])
    assert res["success"] is True, short(res)
    assert "no network:" in res["stdout"] and "connected" not in res["stdout"], short(res)
    assert json.loads(catalog_row(server.db_path, res["id"])["limits"])["network"] == "none"


# ---------------------------------------------------------------- acceptance checks

def test_passing_test_script_runs_in_the_sandbox_before_the_version_serves(server, world):
    name = world["names"]["numpy"]
    log = requests.get(f"{server.url}/environments/{name}/builds/1/log", timeout=30).text
    assert "envhub: acceptance check: running test_script in a sandbox" in log, log[-3000:]
    assert f"memory {POLICY_MEMORY} bytes" in log and "network bridge" in log, log[-3000:]
    assert "test_script| acceptance ok" in log, log[-3000:]
    assert "envhub: test_script passed" in log, log[-3000:]
    build = requests.get(f"{server.url}/environments/{name}/builds/1", timeout=30).json()
    assert build["status"] == "ready" and build["test_script"] == NUMPY_TEST, build


def test_failing_test_script_keeps_a_new_environment_from_ready(server, world):
    name = world["names"]["locked"]
    env = get_env(server, name)
    assert env["status"] == "failed" and env["version"] == 0, env
    assert env["error"] == "test_script failed (exit 3): failing on purpose", env
    log = requests.get(f"{server.url}/environments/{name}/logs", timeout=30).text
    # the check ran locked down like a job: uid 1000, read-only root, no network
    for line in ("test_script| uid 1000", "test_script| root: read-only errno 30",
                 "test_script| network: no", "test_script| failing on purpose"):
        assert line in log, f"{line!r} not in the log:\n{log[-3000:]}"
    assert "network none" in log, log[-3000:]
    r = post_execute(server, {"code": "print(1)", "environment": name})
    assert r.status_code == 400, r.text
    # its image is not kept
    assert not image_exists(env["docker_image"])


def test_failing_test_script_on_a_rebuild_keeps_the_previous_version_serving(server, world):
    name = world["names"]["numpy"]
    env = get_env(server, name)
    assert env["status"] == "ready" and env["version"] == 2, env
    assert env["latest_build"] == {"version": 3, "status": "failed"}, env
    assert env["error"].startswith("test_script failed (exit 1): version 3 does not pass"), env
    log = requests.get(f"{server.url}/environments/{name}/builds/3/log", timeout=30).text
    assert "reusing image" in log and "test_script| version 3 does not pass" in log, log[-3000:]
    build3 = requests.get(f"{server.url}/environments/{name}/builds/3", timeout=30).json()
    assert not image_exists(build3["docker_image"]), "the failed version's tag stayed"
    # version 2 serves on
    res = execute(server, "import numpy, six\nprint('ok')\n", environment=name)
    assert res["success"] is True, short(res)
    assert catalog_row(server.db_path, res["id"])["environment_version"] == 2
    assert image_exists(env["docker_image"])


def test_default_import_check_imports_what_the_setup_script_installed(server, world):
    name = world["names"]["numpy"]
    log = requests.get(f"{server.url}/environments/{name}/builds/2/log", timeout=30).text
    assert "envhub: import check: importing the 2 pip packages the setup script installed" in log, \
        log[-3000:]
    assert "envhub: import check passed: 2 packages imported, 0 skipped" in log, log[-3000:]


def test_default_import_check_catches_a_package_that_does_not_import(server, world):
    name = world["names"]["broken"]
    env = get_env(server, name)
    assert env["status"] == "failed" and env["version"] == 0, env
    assert "brokenpkg" in env["error"] and "does not import" in env["error"], env
    assert "ImportError: brokenpkg is broken on purpose" in env["error"], env
    log = requests.get(f"{server.url}/environments/{name}/logs", timeout=30).text
    assert "envhub: package inventory: 4 pip packages" in log, log[-3000:]  # pip lists it
    assert "envhub: import check: package 'brokenpkg' does not import" in log, log[-3000:]


# ---------------------------------------------------------------- inventory queries and diffs

def test_packages_query_lists_the_environments_carrying_numpy(server, world, envhub_bin):
    name = world["names"]["numpy"]
    r = requests.get(f"{server.url}/packages", params={"name": "numpy"}, timeout=30)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert [e["environment"] for e in doc["environments"]] == [name], doc
    assert doc["environments"][0]["versions"] == [2, 1] and doc["environments"][0]["in_service"], doc
    match = doc["matches"][0]
    assert match["manager"] == "pip" and match["package"] == "numpy", match
    numpy_version = match["version"]
    assert int(numpy_version.split(".")[0]) == 1, numpy_version  # bookworm: 1.24
    # version filters (PEP 440)
    for spec, hit in (("<2", True), (f"=={numpy_version}", True), (">=2", False),
                      (">=1.20,<2", True), ("<1", False)):
        doc = requests.get(f"{server.url}/packages", params={"name": "numpy", "version": spec},
                           timeout=30).json()
        assert bool(doc["matches"]) is hit, (spec, doc)
    # per version: six only in version 2; dpkg names too
    doc = requests.get(f"{server.url}/packages", params={"name": "six"}, timeout=30).json()
    assert [(e["environment"], e["versions"]) for e in doc["environments"]] == [(name, [2])], doc
    doc = requests.get(f"{server.url}/packages", params={"name": "python3-numpy", "manager": "dpkg",
                                                        "current": "1"}, timeout=30).json()
    assert [(m["environment"], m["environment_version"]) for m in doc["matches"]] == [(name, 2)], doc
    # bad filters are 400 naming the field
    r = requests.get(f"{server.url}/packages", params={"name": "numpy", "version": "<"}, timeout=30)
    assert r.status_code == 400 and r.json()["detail"].startswith("version:"), r.text
    assert requests.get(f"{server.url}/packages", timeout=30).status_code == 400
    # the CLI
    p = cli(server, envhub_bin, "packages", "numpy", "--version", "<2")
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stdout.splitlines() if line.startswith(name)]
    assert len(lines) == 2 and numpy_version in lines[0], p.stdout


def test_diff_between_versions_shows_exactly_the_added_package(server, world, envhub_bin):
    name = world["names"]["numpy"]
    r = requests.get(f"{server.url}/environments/{name}/diff", params={"from": 1, "to": 2}, timeout=30)
    assert r.status_code == 200, r.text
    d = r.json()
    added = {(p["manager"], p["name"]) for p in d["packages"]["added"]}
    assert added == {("dpkg", "python3-six"), ("pip", "six")}, d["packages"]
    assert d["packages"]["removed"] == [] and d["packages"]["changed"] == [], d["packages"]
    assert d["packages"]["unchanged"] > 100, d["packages"]
    assert d["setup_script"]["changed"] is True
    assert d["setup_script"]["diff"] == (
        f"--- {name}/v1/setup.sh\n+++ {name}/v2/setup.sh\n@@ -1,3 +1,3 @@\n apt-get update\n"
        "-apt-get install -y --no-install-recommends python3-numpy\n"
        "+apt-get install -y --no-install-recommends python3-numpy python3-six\n"
        " rm -rf /var/lib/apt/lists/*\n"), d["setup_script"]["diff"]
    assert d["test_script"]["changed"] is True and "-print('acceptance ok'" in d["test_script"]["diff"]
    assert d["base_image"]["changed"] is False and d["policy"]["changed"] is False, d
    # without versions: the version in service against the ready one before it
    assert requests.get(f"{server.url}/environments/{name}/diff", timeout=30).json()["packages"] == \
        d["packages"]
    r = requests.get(f"{server.url}/environments/{name}/diff", params={"from": 1, "to": 9}, timeout=30)
    assert r.status_code == 404, r.text
    p = cli(server, envhub_bin, "env", "diff", name, "1", "2")
    assert p.returncode == 0, p.stderr
    assert "packages: 2 added, 0 removed, 0 changed" in p.stdout, p.stdout
    assert re.search(r"\+ pip\s+six\s", p.stdout) and re.search(r"\+ dpkg\s+python3-six\s", p.stdout), \
        p.stdout
    assert "+apt-get install -y --no-install-recommends python3-numpy python3-six" in p.stdout


# ---------------------------------------------------------------- lifecycle

def test_deprecated_warns_retired_answers_410_and_keeps_history(server, world, envhub_bin):
    name, repl = world["names"]["life"], world["names"]["numpy"]
    first = execute(server, "print('before')\n", environment=name)
    assert first["success"] is True and "warning" not in first, short(first)

    r = lifecycle(server, name, "deprecated", repl)
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["lifecycle"] == "deprecated" and env["replacement"] == repl, env
    assert env["status"] == "ready" and env["lifecycle_changed_by"], env
    res = execute(server, "print('still runs')\n", environment=name)
    assert res["success"] is True and res["stdout"] == "still runs\n", short(res)
    assert repl in res["warning"] and "deprecated" in res["warning"], short(res)
    assert catalog_row(server.db_path, res["id"])["warning"] == res["warning"]
    detail = requests.get(f"{server.url}/executions/{res['id']}", timeout=30).json()
    assert detail["warning"] == res["warning"], detail
    # a session's calls carry it too
    r = requests.post(f"{server.url}/sessions", json={"environment": name}, timeout=60)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        r = requests.post(f"{server.url}/sessions/{sid}/execute", json={"code": "print(1)"}, timeout=60)
        assert r.status_code == 200 and r.json().get("warning") == res["warning"], r.text
    finally:
        requests.delete(f"{server.url}/sessions/{sid}", timeout=30)
    assert catalog_row(server.db_path, first["id"])["warning"] is None

    # curators see use and state in the listing
    listing = requests.get(f"{server.url}/environments", timeout=30).json()["environments"]
    item = next(e for e in listing if e["name"] == name)
    assert item["lifecycle"] == "deprecated" and item["last_used"], item
    assert item["runs"] == {"7d": 3, "30d": 3, "90d": 3}, item["runs"]  # two runs and a session call

    p = cli(server, envhub_bin, "env", "retire", name, "--replacement", repl)
    assert p.returncode == 0, p.stderr
    image = get_env(server, name)["docker_image"]
    for path in ("/execute", "/execute-with-environment"):
        r = requests.post(server.url + path, json={"code": "print(1)", "environment": name}, timeout=30)
        assert r.status_code == 410, r.text
        assert repl in r.json()["detail"] and "retired" in r.json()["detail"], r.text
    r = requests.post(f"{server.url}/sessions", json={"environment": name}, timeout=30)
    assert r.status_code == 410, r.text
    r = requests.post(f"{server.url}/environments/{name}/rebuild", json={}, timeout=30)
    assert r.status_code == 409 and "retired" in r.json()["detail"], r.text

    # history kept: the environment, its builds and its executions
    env = get_env(server, name)
    assert env["lifecycle"] == "retired" and env["version"] == 1, env
    assert requests.get(f"{server.url}/environments/{name}/builds", timeout=30).json()["total"] == 1
    r = requests.get(f"{server.url}/executions", params={"environment": name}, timeout=30)
    assert r.status_code == 200, r.text
    assert {first["id"], res["id"]} <= {e["id"] for e in r.json()["items"]}, r.json()
    # the images go after the grace period (2 s here)
    deadline = time.monotonic() + 30
    while image_exists(image) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not image_exists(image), f"{image} is still there 30 s after the retirement"
    deadline = time.monotonic() + 10
    while get_env(server, name)["images_removed_at"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert get_env(server, name)["images_removed_at"], get_env(server, name)

    # reinstated: the same definition is built again and runs
    p = cli(server, envhub_bin, "env", "reinstate", name)
    assert p.returncode == 0 and "version 2 is being built" in p.stdout, (p.stdout, p.stderr)
    env = wait_env(server, name)
    wait_build(server, name, 2)
    env = get_env(server, name)
    assert env["lifecycle"] == "active" and env["version"] == 2 and env["warning"] is None, env
    assert env["images_removed_at"] is None, env
    res = execute(server, "print('back')\n", environment=name)
    assert res["success"] is True and "warning" not in res, short(res)


def test_lifecycle_requests_are_checked(server, world):
    name = world["names"]["drift"]
    r = lifecycle(server, name, "sunset")
    assert r.status_code == 400 and r.json()["detail"].startswith("state:"), r.text
    r = lifecycle(server, name, "deprecated", "no-such-environment")
    assert r.status_code == 400 and r.json()["detail"].startswith("replacement:"), r.text
    r = lifecycle(server, name, "deprecated", name)
    assert r.status_code == 400, r.text
    r = lifecycle(server, "no-such-environment", "retired")
    assert r.status_code == 404, r.text
    r = requests.post(f"{server.url}/environments/{name}/lifecycle", json={"replacement": "x"}, timeout=30)
    assert r.status_code == 422, r.text
    assert get_env(server, name)["lifecycle"] == "active"


# ---------------------------------------------------------------- drift

def test_drift_is_detected_after_the_base_tag_moves(server, world, base_tag, run_id, envhub_bin):
    name = world["names"]["drift"]
    env = get_env(server, name)
    assert env["base_image"] == base_tag and env["drift"]["drifted"] is False, env["drift"]
    built_on = env["drift"]["built_on"]
    assert built_on == image_id_of(DEFAULT_IMAGE), env["drift"]

    # move the tag: commit a container of it with one more label
    status, c = engine_call("POST", "/v1.41/containers/create",
                            {"Image": base_tag, "Cmd": ["true"], "Labels": {"envhub.test": run_id}})
    assert status == 201, c
    try:
        repo, tag = base_tag.rsplit(":", 1)
        changes = urllib.parse.quote(f"LABEL envhub.test={run_id} envhub.drift=1")
        status, committed = engine_call(
            "POST", f"/v1.41/commit?container={c['Id']}&repo={urllib.parse.quote(repo, safe='')}"
                    f"&tag={tag}&changes={changes}")
        assert status == 201, committed
    finally:
        docker_api("DELETE", f"/v1.41/containers/{c['Id']}?force=1")
    new_id = image_id_of(base_tag)
    assert new_id != built_on

    # the periodic check (every 2 s here) records it: the listing shows it
    deadline = time.monotonic() + 20
    drift = None
    while time.monotonic() < deadline:
        listing = requests.get(f"{server.url}/environments", timeout=30).json()["environments"]
        drift = next(e for e in listing if e["name"] == name)["drift"]
        if drift and drift["drifted"]:
            break
        time.sleep(0.5)
    assert drift and drift["drifted"] is True and drift["resolves_to"] == new_id, drift
    assert drift["rebuild"]["path"] == f"/environments/{name}/rebuild", drift

    # `envhub env check` reports it and offers the rebuild (exit 1); others are fine
    p = cli(server, envhub_bin, "env", "check")
    assert p.returncode == 1, (p.stdout, p.stderr)
    row = next(line for line in p.stdout.splitlines() if line.startswith(name))
    assert "DRIFTED" in row, p.stdout
    assert f"envhub env rebuild {name}" in p.stdout, p.stdout
    numpy_row = next(line for line in p.stdout.splitlines() if line.startswith(world["names"]["numpy"]))
    assert " ok " in numpy_row, p.stdout
    doc = requests.get(f"{server.url}/drift", timeout=30).json()
    assert doc["drifted"] == 1, doc
    assert get_env(server, name)["drift"]["drifted"] is True

    # the rebuild it offers takes the environment onto the new base image
    rebuild(server, name)
    wait_build(server, name, 2)
    env = get_env(server, name)
    assert env["version"] == 2 and env["drift"]["drifted"] is False, env["drift"]
    assert env["drift"]["built_on"] == new_id
    log = requests.get(f"{server.url}/environments/{name}/builds/2/log", timeout=30).text
    assert "building again" in log and "reusing image" not in log, log[-3000:]
    assert cli(server, envhub_bin, "env", "check", name).returncode == 0
    # its images go now, so that the moved base tag can go at the end of the module
    assert requests.delete(f"{server.url}/environments/{name}", timeout=60).status_code == 200

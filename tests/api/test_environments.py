"""Environments (issue 3): a bash setup script on a base image built into a Docker image
that jobs run in; SimplePySandbox's create/list/get/delete contract and its errors.

The environment most tests use (`basic_env`, conftest.py) is built once per run."""

import os
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import BASIC_SCRIPT
from helpers import (DEFAULT_IMAGE, b64, build_log, build_step_containers, catalog_row, container_exists,
                     create_env, delete_env, docker_api, execute, get_env, image_exists, image_id_of,
                     describe_containers, labelled_containers, labelled_images, note_step_images, parse_iso, short,
                     unb64, wait_env, wait_log_contains, wait_no_container_on_image)
from test_validation import assert_detail

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "environments")

ENV_FIELDS = {"name", "description", "base_image", "docker_image", "status", "created_at", "last_used",
              "setup_script", "python_version"}
ENVHUB_ENV_FIELDS = {"version", "image_id", "error", "updated_at", "definition", "created_by", "latest_build"}


def post_env(server, body):
    return requests.post(f"{server.url}/environments", json=body, timeout=30)


def env_images(name):
    """Images the engine holds for environment `name` (by the label envhub puts on them)."""
    return labelled_images(f"envhub.environment={name}")


def assert_absent(server, name):
    r = requests.get(f"{server.url}/environments/{name}", timeout=30)
    assert_detail(r, 404, None)
    assert r.json()["detail"] == f"环境 '{name}' 不存在"


# ---------------------------------------------------------------- create -> ready -> execute

def test_create_answers_building_then_the_build_turns_ready_and_jobs_run_in_it(envhub, basic_env):
    created, name = basic_env["created"], basic_env["name"]
    # the POST answer: SimplePySandbox's fields plus envhub's, status building, nothing in service yet
    assert not (ENV_FIELDS | ENVHUB_ENV_FIELDS) - set(created), \
        f"missing {sorted((ENV_FIELDS | ENVHUB_ENV_FIELDS) - set(created))}: {created}"
    assert created["status"] == "building"
    assert created["description"] == "API tests: requests"
    assert created["base_image"] == DEFAULT_IMAGE
    assert created["setup_script"] == BASIC_SCRIPT
    assert created["python_version"] == "3.11"
    assert created["last_used"] is None
    assert created["version"] == 0 and created["image_id"] is None and created["error"] is None
    assert created["latest_build"]["version"] == 1
    assert created["latest_build"]["status"] in ("queued", "building")
    assert isinstance(created["docker_image"], str) and created["docker_image"]
    parse_iso(created["created_at"])
    assert basic_env["seen"][0] == "building" and basic_env["seen"][-1] == "ready", basic_env["seen"]

    env = get_env(envhub, name)
    assert env["status"] == "ready"
    assert env["version"] == 1
    assert env["error"] is None
    assert env["latest_build"] == {"version": 1, "status": "ready"}
    assert env["image_id"].startswith("sha256:")
    assert env["created_at"] == created["created_at"]
    assert parse_iso(env["updated_at"]) >= parse_iso(env["created_at"])
    # the engine has the image under the environment's tag, with the run's label
    status, info = docker_api("GET", f"/v1.41/images/{urllib.parse.quote(env['docker_image'], safe='')}/json")
    assert status == 200, f"the engine has no {env['docker_image']}: {info}"
    assert info["Id"] == env["image_id"]
    assert info["Config"]["Labels"].get("envhub.environment") == name
    assert info["Config"]["Labels"].get("envhub.test") == envhub.run_id

    # the environment is listed
    r = requests.get(f"{envhub.url}/environments", timeout=30)
    assert r.status_code == 200, r.text
    listing = r.json()
    assert set(listing) >= {"environments", "total"} and listing["total"] == len(listing["environments"])
    assert name in [e["name"] for e in listing["environments"]]

    # a job runs in it: requests is there (the default image has no requests)
    code = "import requests, sys\nprint('requests', requests.__version__)\nprint(sys.version_info[:2])\n"
    res = execute(envhub, code, timeout=30, environment=name)
    assert res["success"] is True, short(res)
    assert res["stdout"].startswith("requests "), short(res)
    row = catalog_row(envhub.db_path, res["id"])
    assert row["environment"] == name and row["environment_version"] == 1, row
    assert row["image_id"] == env["image_id"], row
    plain = execute(envhub, "import requests\n", timeout=30)
    assert plain["success"] is False and "ModuleNotFoundError" in plain["stderr"], short(plain)

    # POST /execute-with-environment too
    r = requests.post(f"{envhub.url}/execute-with-environment",
                      json={"code": "import requests; print('ok')", "environment": name}, timeout=90)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["success"] is True and res["stdout"] == "ok\n", short(res)
    row = catalog_row(envhub.db_path, res["id"])
    assert (row["environment"], row["environment_version"], row["image_id"]) == (name, 1, env["image_id"])


def test_build_records_the_log_python_and_the_package_inventory(envhub, basic_env):
    name = basic_env["name"]
    r = requests.get(f"{envhub.url}/environments/{name}/builds", timeout=30)
    assert r.status_code == 200, r.text
    builds = r.json()
    assert builds["total"] == len(builds["builds"]) >= 1
    build = builds["builds"][-1]
    assert build["version"] == 1 and build["status"] == "ready", build
    assert build["environment"] == name
    assert build["python_found"] and build["python_found"].startswith("Python 3"), build
    assert build["base_image"] == DEFAULT_IMAGE and build["base_image_id"].startswith("sha256:")
    for key in ("queued_at", "started_at", "finished_at"):
        parse_iso(build[key])
    assert parse_iso(build["finished_at"]) >= parse_iso(build["started_at"]) >= parse_iso(build["queued_at"])

    r = requests.get(f"{envhub.url}/environments/{name}/builds/1/log", timeout=30)
    assert r.status_code == 200
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    assert r.headers.get("X-Envhub-Build-Status") == "ready"
    lines = r.text.splitlines()
    assert len(lines) == build["log_lines"], (len(lines), build["log_lines"])
    assert any("python3-requests" in line for line in lines), r.text[-3000:]
    assert requests.get(f"{envhub.url}/environments/{name}/logs", timeout=30).text == r.text

    r = requests.get(f"{envhub.url}/environments/{name}/packages", timeout=30)
    assert r.status_code == 200, r.text
    inv = r.json()
    assert inv["environment"] == name and inv["version"] == 1
    assert inv["total"] == len(inv["packages"]) > 0
    dpkg = {p["name"]: p["version"] for p in inv["packages"] if p["manager"] == "dpkg"}
    assert "python3-requests" in dpkg and dpkg["python3-requests"], sorted(dpkg)[:50]
    assert {p["manager"] for p in inv["packages"]} <= {"pip", "dpkg"}
    r = requests.get(f"{envhub.url}/environments/{name}/packages?version=1", timeout=30)
    assert r.status_code == 200 and r.json()["packages"] == inv["packages"]


@pytest.mark.slow
def test_data_science_example_builds_and_runs_pandas_and_sklearn(envhub, run_id):
    with open(os.path.join(EXAMPLES, "data-science.sh")) as f:
        script = f.read()
    name = f"data-science-{run_id}"
    create_env(envhub, name, script, description="numpy, pandas, scipy, matplotlib, sklearn, statsmodels")
    env = wait_env(envhub, name, within=600)
    assert env["version"] == 1
    code = (
        "import pandas, sklearn, numpy, scipy, matplotlib, statsmodels\n"
        "from sklearn.linear_model import LinearRegression\n"
        "import matplotlib.pyplot as plt\n"
        "df = pandas.DataFrame({'x': [1, 2, 3, 4], 'y': [2, 4, 6, 8]})\n"
        "model = LinearRegression().fit(df[['x']], df['y'])\n"
        "print('coef', round(float(model.coef_[0]), 6))\n"
        "print('mean', df['y'].mean())\n"
        "plt.plot(df['x'], df['y']); plt.savefig('plot.png')\n"
    )
    res = execute(envhub, code, timeout=120, environment=name)
    assert res["success"] is True, short(res)
    assert "coef 2.0\n" in res["stdout"] and "mean 5.0\n" in res["stdout"], short(res)
    assert unb64(res["files"]["plot.png"]).startswith(b"\x89PNG"), sorted(res["files"])
    row = catalog_row(envhub.db_path, res["id"])
    assert (row["environment"], row["environment_version"], row["image_id"]) == (name, 1, env["image_id"])
    inv = requests.get(f"{envhub.url}/environments/{name}/packages", timeout=30).json()
    dpkg = {p["name"] for p in inv["packages"] if p["manager"] == "dpkg"}
    assert {"python3-pandas", "python3-sklearn", "python3-numpy"} <= dpkg


# ---------------------------------------------------------------- a failing setup script

def test_failing_script_ends_failed_with_the_failing_line_in_the_log(envhub, run_id):
    name = f"fails-{run_id}"
    script = f"echo start-{run_id}\nfalse\necho never-{run_id}\n"
    create_env(envhub, name, script)
    env = wait_env(envhub, name, until=("failed",))
    assert env["version"] == 0 and env["image_id"] is None, env
    assert isinstance(env["error"], str) and env["error"].strip(), env
    assert env["latest_build"] == {"version": 1, "status": "failed"}

    r = requests.get(f"{envhub.url}/environments/{name}/logs", timeout=30)
    assert r.status_code == 200
    assert r.headers.get("X-Envhub-Build-Status") == "failed"
    note_step_images(r.text)
    lines = r.text.splitlines()
    assert f"start-{run_id}" in lines, r.text[-3000:]
    assert f"never-{run_id}" not in lines, r.text[-3000:]
    assert any("setup.sh failed at line 2: false" in line for line in lines), r.text[-3000:]

    build = requests.get(f"{envhub.url}/environments/{name}/builds/1", timeout=30).json()
    assert build["status"] == "failed" and build["error"], build
    assert build["image_id"] is None, build

    # nothing to run in: 400 with the seed's message
    r = requests.post(f"{envhub.url}/execute", json={"code": "print(1)", "environment": name}, timeout=30)
    assert_detail(r, 400, None)
    assert r.json()["detail"] == f"环境 '{name}' 状态为 failed，无法使用"
    r = requests.get(f"{envhub.url}/environments/{name}/packages", timeout=30)
    assert_detail(r, 404, (name,))
    delete_env(envhub, name)


def test_base_image_that_cannot_be_had_fails_with_a_clear_error(envhub, run_id):
    # no registry here: a base image the engine does not have cannot be pulled
    name = f"no-base-{run_id}"
    base = f"envhub-test-missing/base-{run_id}:none"
    created = create_env(envhub, name, "echo hi\n", base_image=base)
    assert created["base_image"] == base
    env = wait_env(envhub, name, until=("failed",), within=120)
    assert base in env["error"], env
    assert base in build_log(envhub, name), build_log(envhub, name)[-2000:]
    delete_env(envhub, name)


# ---------------------------------------------------------------- names and validation

@pytest.mark.parametrize("name", [
    "", "-leading-dash", "_leading_underscore", "a" * 51, "has space", "dot.name", "slash/name",
    "semi;colon", "ünïcödé", "tab\tname", "new\nline", "quote'name",
], ids=["empty", "leading_dash", "leading_underscore", "51_chars", "space", "dot", "slash", "semicolon",
        "non_ascii", "tab", "newline", "quote"])
def test_invalid_name_is_400_naming_name(envhub, name):
    r = post_env(envhub, {"name": name, "setup_script": "echo hi"})
    assert_detail(r, 400, ("name",))
    listed = requests.get(f"{envhub.url}/environments", timeout=30).json()["environments"]
    assert name not in [e["name"] for e in listed]


@pytest.mark.parametrize("body,words", [
    ({"setup_script": "echo hi"}, ("name",)),
    ({"name": "x-missing-script"}, ("setup_script",)),
    ({"name": None, "setup_script": "echo hi"}, ("name",)),
    ({"name": 5, "setup_script": "echo hi"}, ("name",)),
    ({"name": ["x"], "setup_script": "echo hi"}, ("name",)),
    ({"name": "x-wrong-script", "setup_script": 5}, ("setup_script",)),
    ({"name": "x-wrong-script", "setup_script": ["echo hi"]}, ("setup_script",)),
    ({"name": "x-wrong-desc", "setup_script": "echo hi", "description": 5}, ("description",)),
    ({"name": "x-wrong-base", "setup_script": "echo hi", "base_image": {}}, ("base_image",)),
    ({"name": "x-wrong-py", "setup_script": "echo hi", "python_version": 3.11}, ("python_version",)),
], ids=["missing_name", "missing_script", "name_null", "name_int", "name_list", "script_int", "script_list",
        "description_int", "base_image_object", "python_version_float"])
def test_missing_or_mistyped_field_is_422(envhub, body, words):
    r = post_env(envhub, body)
    assert_detail(r, 422, words)
    if isinstance(body.get("name"), str):
        assert_absent(envhub, body["name"])


def test_invalid_json_body_is_422(envhub):
    r = requests.post(f"{envhub.url}/environments", data=b'{"name": "x"',
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert_detail(r, 422, None)


@pytest.mark.parametrize("script", ["", "#" * 10001], ids=["empty", "10001_chars"])
def test_empty_or_oversized_script_is_400_naming_setup_script(envhub, run_id, script):
    name = f"bad-script-{run_id}"
    r = post_env(envhub, {"name": name, "setup_script": script})
    assert_detail(r, 400, ("setup_script",))
    assert_absent(envhub, name)


def test_script_of_exactly_10000_chars_is_accepted(envhub, run_id):
    name = f"script-10000-{run_id}"
    script = "echo fits\n" + "#" * (10000 - len("echo fits\n"))
    assert len(script) == 10000
    create_env(envhub, name, script)
    wait_env(envhub, name)
    delete_env(envhub, name)


def test_duplicate_name_is_400_also_when_it_differs_only_by_case(envhub, basic_env):
    name = basic_env["name"]
    before = get_env(envhub, name)
    for dup in (name, name.upper(), name.capitalize()):
        r = post_env(envhub, {"name": dup, "setup_script": "echo other"})
        assert_detail(r, 400, None)
        assert r.json()["detail"] == f"环境 '{dup}' 已存在", r.json()
    after = get_env(envhub, name)
    assert (after["setup_script"], after["version"], after["image_id"]) == \
        (before["setup_script"], before["version"], before["image_id"])
    listed = [e["name"] for e in requests.get(f"{envhub.url}/environments", timeout=30).json()["environments"]]
    assert listed.count(name) == 1 and name.upper() not in listed


def test_unknown_environment_is_404_with_the_seed_message_everywhere(envhub, run_id):
    name = f"nope-{run_id}"
    want = f"环境 '{name}' 不存在"
    for method, path in [("GET", f"/environments/{name}"), ("DELETE", f"/environments/{name}"),
                         ("GET", f"/environments/{name}/builds"), ("GET", f"/environments/{name}/builds/1"),
                         ("GET", f"/environments/{name}/builds/1/log"), ("GET", f"/environments/{name}/logs"),
                         ("GET", f"/environments/{name}/packages")]:
        r = requests.request(method, envhub.url + path, timeout=30)
        assert_detail(r, 404, None)
        assert r.json()["detail"] == want, (method, path, r.json())
    r = requests.post(f"{envhub.url}/environments/{name}/rebuild", json={}, timeout=30)
    assert_detail(r, 404, None)
    assert r.json()["detail"] == want
    for path in ("/execute", "/execute-with-environment"):
        r = requests.post(envhub.url + path, json={"code": "print(1)", "environment": name}, timeout=30)
        assert_detail(r, 404, None)
        assert r.json()["detail"] == want, (path, r.json())


def test_execute_with_environment_requires_the_environment(envhub):
    r = requests.post(f"{envhub.url}/execute-with-environment", json={"code": "print(1)"}, timeout=30)
    assert_detail(r, 422, ("environment",))


# ---------------------------------------------------------------- dangerous commands

@pytest.mark.parametrize("line", [
    "rm -rf /",
    "rm -rf /*",
    "sudo rm -rf --no-preserve-root /",
    "apt-get update && rm -fr /",
    "mkfs.ext4 /dev/sda1",
    "mkfs /dev/sdb",
    "dd if=/dev/zero of=/dev/sda bs=1M",
    ":(){ :|:& };:",
    "shutdown -h now",
    "reboot",
    "chmod -R 777 /",
    "echo garbage > /dev/sda",
], ids=["rm_rf_root", "rm_rf_root_star", "sudo_rm_no_preserve", "rm_fr_after_and", "mkfs_ext4", "mkfs",
        "dd_of_sda", "fork_bomb", "shutdown", "reboot", "chmod_777_root", "redirect_to_sda"])
def test_dangerous_command_is_refused_with_400_naming_it(envhub, run_id, line):
    name = f"danger-{run_id}"
    r = post_env(envhub, {"name": name, "setup_script": f"#!/bin/bash\necho before\n{line}\necho after\n"})
    detail = assert_detail(r, 400, ("dangerous command",))
    assert "setup_script" in detail, detail
    assert_absent(envhub, name)


def test_harmless_lookalikes_and_comments_are_accepted(envhub, run_id):
    name = f"lookalike-{run_id}"
    script = "# never: rm -rf /\nmkdir -p /tmp/x && rm -rf /tmp/x\necho 'dd of=/dev/null is fine'\n"
    create_env(envhub, name, script)
    wait_env(envhub, name)
    delete_env(envhub, name)


# ---------------------------------------------------------------- delete

def test_delete_removes_the_environment_and_its_image(envhub, run_id):
    name = f"delete-me-{run_id}"
    create_env(envhub, name, f"echo {name} > /opt/envhub-test-marker\n")
    env = wait_env(envhub, name)
    assert image_exists(env["docker_image"]) and image_exists(env["image_id"])
    assert [i["Id"] for i in env_images(name)] == [env["image_id"]]

    r = requests.delete(f"{envhub.url}/environments/{name}", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"message": f"环境 '{name}' 已删除"}
    assert_absent(envhub, name)
    assert name not in [e["name"] for e in requests.get(f"{envhub.url}/environments", timeout=30).json()["environments"]]
    assert not image_exists(env["docker_image"]), f"{env['docker_image']} is still there"
    assert not image_exists(env["image_id"]), f"{env['image_id']} is still there"
    assert env_images(name) == []
    r = requests.delete(f"{envhub.url}/environments/{name}", timeout=30)
    assert_detail(r, 404, None)
    assert r.json()["detail"] == f"环境 '{name}' 不存在"
    # the name is free again
    create_env(envhub, name, f"echo again-{run_id}\n")
    wait_env(envhub, name)
    delete_env(envhub, name)


def test_delete_keeps_an_image_another_environment_reuses(envhub, run_id):
    script = f"echo shared-{run_id} > /opt/envhub-test-marker\n"
    first, second = f"shared-a-{run_id}", f"shared-b-{run_id}"
    create_env(envhub, first, script)
    a = wait_env(envhub, first)
    create_env(envhub, second, script)  # the same definition: its image is reused
    b = wait_env(envhub, second)
    assert b["image_id"] == a["image_id"], (a, b)

    delete_env(envhub, first)
    assert not image_exists(a["docker_image"]), f"{a['docker_image']} is still there"
    assert image_exists(b["docker_image"]) and image_id_of(b["docker_image"]) == b["image_id"]
    res = execute(envhub, "print(open('/opt/envhub-test-marker').read().strip())", timeout=30, environment=second)
    assert res["success"] is True and res["stdout"] == f"shared-{run_id}\n", short(res)
    # the job's container is removed after the answer; deleting while it is still there
    # is test_delete_while_a_job_runs_removes_the_image_once_the_job_ends
    assert wait_no_container_on_image(b["image_id"]) == []

    delete_env(envhub, second)
    assert not image_exists(b["docker_image"]) and not image_exists(b["image_id"])


def test_delete_during_the_build_cancels_it(envhub, run_id):
    name = f"cancel-me-{run_id}"
    since = time.time()
    create_env(envhub, name, f"echo cancel-begin-{run_id}\nsleep 60\necho cancel-end-{run_id}\n")
    log = wait_log_contains(envhub, name, f"cancel-begin-{run_id}")
    steps = [line.split("Running in", 1)[1].strip() for line in log.splitlines() if "Running in" in line]
    assert steps, f"no build step container in the log:\n{log[-3000:]}"
    note_step_images(log)

    # building: not usable yet
    r = requests.post(f"{envhub.url}/execute", json={"code": "print(1)", "environment": name}, timeout=30)
    assert_detail(r, 400, None)
    assert r.json()["detail"] == f"环境 '{name}' 状态为 building，无法使用"

    t0 = time.monotonic()
    delete_env(envhub, name)
    assert time.monotonic() - t0 < 30
    assert_absent(envhub, name)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [c for c in steps if container_exists(c)] + [c["Id"][:12] for c in build_step_containers(since)]
        if not left:
            break
        time.sleep(0.5)
    assert not left, f"build containers left after the delete: {left}"
    assert env_images(name) == []
    # the delete did not take the server's other work down
    res = execute(envhub, "print('still here')", timeout=30)
    assert res["stdout"] == "still here\n", short(res)


# ---------------------------------------------------------------- last_used

def test_last_used_changes_on_every_use(envhub, basic_env):
    name = basic_env["name"]
    before = get_env(envhub, name)["last_used"]
    t0 = time.time()
    res = execute(envhub, "print(1)", timeout=30, environment=name)
    assert res["success"] is True, short(res)
    first = get_env(envhub, name)["last_used"]
    assert first is not None and first != before, (before, first)
    first_t = parse_iso(first)
    assert abs(first_t.timestamp() - t0) < 120, (first, t0)
    if before is not None:
        assert first_t > parse_iso(before)

    time.sleep(1.1)
    r = requests.post(f"{envhub.url}/execute-with-environment", json={"code": "print(2)", "environment": name},
                      timeout=90)
    assert r.status_code == 200 and r.json()["success"] is True, r.text
    second = get_env(envhub, name)["last_used"]
    assert parse_iso(second) > first_t, (first, second)
    listed = {e["name"]: e for e in requests.get(f"{envhub.url}/environments", timeout=30).json()["environments"]}
    assert listed[name]["last_used"] == second

    # a refused request is no use
    requests.post(f"{envhub.url}/execute", json={"code": "", "environment": name}, timeout=30)
    assert get_env(envhub, name)["last_used"] == second


def test_job_files_round_trip_in_an_environment(envhub, basic_env):
    code = "import requests\nopen('out.txt', 'w').write(open('in.txt').read().upper())\n"
    res = execute(envhub, code, timeout=30, environment=basic_env["name"], files={"in.txt": b64("hello env")})
    assert res["success"] is True, short(res)
    assert unb64(res["files"]["out.txt"]) == b"HELLO ENV"


# ---------------------------------------------------------------- delete while in use (last: it
# failed when written, see the note below, and -x stops there)

def test_delete_while_a_job_runs_removes_the_image_once_the_job_ends(envhub, run_id):
    """Found failing: DELETE /environments/NAME removes the tag with force while a job's
    container still uses the image, so the engine only untags it and the image stays
    (unnamed, still labelled envhub.environment=NAME) for good. The same happens right
    after a job, as the job's container is removed after the answer is sent."""
    name = f"busy-{run_id}"
    create_env(envhub, name, f"echo busy-{run_id} > /opt/envhub-test-marker\n")
    env = wait_env(envhub, name)
    answers = []
    job = threading.Thread(target=lambda: answers.append(requests.post(
        f"{envhub.url}/execute", json={"code": "import time; time.sleep(4); print('done')", "environment": name,
                                       "timeout": 30}, timeout=90)))
    job.start()
    try:
        deadline = time.monotonic() + 30
        while not any(c.get("ImageID") == env["image_id"] and c.get("State") == "running"
                      for c in labelled_containers(envhub.label)):
            assert time.monotonic() < deadline, "the job's container never ran"
            time.sleep(0.1)
        delete_env(envhub, name)
    finally:
        job.join(timeout=90)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert_absent(envhub, name)
    left = wait_no_container_on_image(env["image_id"])
    assert left == [], f"containers of the deleted environment left: {describe_containers(left)}"
    deadline = time.monotonic() + 15
    while image_exists(env["image_id"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [(i["Id"][:19], i["RepoTags"]) for i in env_images(name)]
    assert not image_exists(env["image_id"]), \
        f"the deleted environment's image {env['image_id'][:19]} is still in the engine: {left}"


def test_a_network_policy_is_refused_unless_the_administrator_allows_networks(envhub, run_id):
    """ENVHUB_ALLOW_NETWORK is off by default: a curator cannot give jobs the bridge."""
    name = f"net-{run_id}"
    r = requests.post(f"{envhub.url}/environments", timeout=30, json={
        "name": name, "setup_script": "true", "policy": {"network": "bridge"}})
    detail = assert_detail(r, 400, ["ENVHUB_ALLOW_NETWORK"])
    assert "policy.network" in detail, detail
    assert requests.get(f"{envhub.url}/environments/{name}", timeout=30).status_code == 404
    # none is always fine, and the server's maximum is named for what is refused
    r = requests.post(f"{envhub.url}/environments", timeout=30, json={
        "name": name, "setup_script": "true", "policy": {"network": "none"}})
    assert r.status_code == 200, r.text
    wait_env(envhub, name)
    assert requests.delete(f"{envhub.url}/environments/{name}", timeout=60).status_code == 200

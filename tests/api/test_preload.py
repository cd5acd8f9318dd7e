"""Preloaded imports (issue 14, item 2): an environment's policy `preload` names modules
its warm containers import before any job arrives (the agent imports them as PID 1; the
job, forked from it, finds them in sys.modules). The acceptance check imports them as the
agent will and fails the build naming the module that does not import; a module that
imports there but not in a warm container is reported in the job's answer and in
/health, never silently."""

import requests

from helpers import create_env, execute, short, wait_env, build_log, post_execute

# Two modules of the image's own: one records who imported it, one refuses to be
# imported by PID 1 (so the acceptance check passes and the warm containers fail).
SCRIPT = """#!/bin/bash
# envhub API tests: modules for policy.preload
d=/usr/lib/python3/dist-packages
printf 'import os\\nPID = os.getpid()\\n' > $d/envhub_probe.py
printf 'import os\\nif os.getpid() == 1:\\n    raise ImportError("not in PID 1")\\n' > $d/envhub_flaky.py
"""

PROBE = (
    "import sys\n"
    "print('envhub_probe' in sys.modules)\n"
    "import envhub_probe\n"
    "print(envhub_probe.PID)\n"
)


def test_preloaded_modules_are_imported_by_the_agent_before_the_job(envhub_module_factory, run_id):
    server = envhub_module_factory("--pool-size", "1")
    name = f"preload-{run_id}"
    create_env(server, name, SCRIPT, policy={"preload": ["envhub_probe", "json"], "pool_size": 1})
    env = wait_env(server, name)
    assert env["policy"]["preload"] == ["envhub_probe", "json"], env
    log = build_log(server, name)
    assert "envhub: preload check: envhub_probe imported in" in log, log[-2000:]
    assert "envhub: preload check passed" in log, log[-2000:]

    # every job of the environment finds the module there, imported by PID 1
    for _ in range(3):
        res = execute(server, PROBE, environment=name)
        assert res["success"], short(res)
        assert res["stdout"] == "True\n1\n", short(res)
        assert "warning" not in res or not res["warning"], short(res)

    # the same image without preload: the job imports it itself
    plain = f"plain-{run_id}"
    create_env(server, plain, SCRIPT)
    wait_env(server, plain)
    res = execute(server, PROBE, environment=plain)
    assert res["success"] and res["stdout"].startswith("False\n"), short(res)
    assert res["stdout"] != "False\n1\n", short(res)

    # lowered limits: a container of the job's own, which preloads nothing
    r = post_execute(server, {"code": PROBE, "environment": name, "limits": {"memory": 64 * 1024 * 1024}})
    assert r.status_code == 200, r.text
    assert r.json()["success"] and r.json()["stdout"].startswith("False\n"), short(r.json())

    health = requests.get(f"{server.url}/health", timeout=30).json()
    assert not [w for w in health["warnings"] if w["code"] == "preload_failed"], health


def test_a_module_that_does_not_import_fails_the_build(envhub, run_id):
    name = f"preload-bad-{run_id}"
    create_env(envhub, name, SCRIPT, policy={"preload": ["json", "envhub_no_such_module"]})
    env = wait_env(envhub, name, until=("failed",))
    assert env["error"].startswith("policy.preload: 'envhub_no_such_module' does not import "
                                   "(ModuleNotFoundError: No module named 'envhub_no_such_module')"), env
    log = build_log(envhub, name)
    assert "envhub: preload check: json imported in" in log, log[-2000:]
    assert "envhub: preload check: envhub_no_such_module does not import" in log, log[-2000:]


def test_a_bad_preload_is_refused_naming_the_field_and_changes_nothing(envhub, run_id):
    cases = [
        ("numpy", "policy.preload: must be a list of module names"),
        (["os; import socket"], "policy.preload[0]: 'os; import socket' is not a module name"),
        (["os", "os"], "policy.preload[1]: 'os' is listed twice"),
        ([f"m{i}" for i in range(33)], "policy.preload: 33 modules is over the maximum of 32"),
        (["a" * 101], "is not a module name"),
    ]
    for i, (preload, detail) in enumerate(cases):
        name = f"preload-refused-{i}-{run_id}"
        r = requests.post(f"{envhub.url}/environments", timeout=30,
                          json={"name": name, "setup_script": "true", "policy": {"preload": preload}})
        assert 400 <= r.status_code < 500 and detail in r.json()["detail"], (preload, r.status_code, r.text)
        assert requests.get(f"{envhub.url}/environments/{name}", timeout=30).status_code == 404


def test_a_preload_failing_in_warm_containers_is_reported_in_the_answer_and_health(
        envhub_module_factory, run_id):
    server = envhub_module_factory("--pool-size", "1")
    name = f"preload-flaky-{run_id}"
    # the acceptance check imports it (not as PID 1); the agent cannot
    create_env(server, name, SCRIPT, policy={"preload": ["envhub_flaky"], "pool_size": 1})
    wait_env(server, name)
    assert "envhub: preload check: envhub_flaky imported in" in build_log(server, name)

    res = execute(server, "print('ran')", environment=name)
    assert res["success"] and res["stdout"] == "ran\n", short(res)
    assert res["warning"] == ("policy.preload: this job's container could not import envhub_flaky: "
                              "ImportError: not in PID 1; the code ran without it"), short(res)
    health = requests.get(f"{server.url}/health", timeout=30).json()
    assert health["status"] == "healthy", health
    found = [w for w in health["warnings"] if w["code"] == "preload_failed"]
    assert len(found) == 1, health
    assert found[0]["environment"] == name and found[0]["version"] == 1, found
    assert found[0]["modules"] == "envhub_flaky: ImportError: not in PID 1", found
    assert f"environment '{name}' version 1 could not import" in found[0]["detail"], found

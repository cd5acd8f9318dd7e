"""Fixtures: the envhub binary, a session server, a factory for servers with their own
flags, an environment built once for the run, and the removal of every container and
image this run labelled.

    cd tests/api && ENVHUB_BIN=/abs/build/envhub /usr/bin/python3 -m pytest -q -x -p no:cacheprovider .

Without a Docker engine the tests are skipped with the reason (a failure under CI=true)."""

import os
import secrets
import shutil
import tempfile
import time

import pytest

import helpers

HERE = os.path.dirname(os.path.abspath(__file__))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test shows the end of each running server's log."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in list(helpers.LIVE_SERVERS):
            report.sections.append((f"envhub log tail ({server.url}, {server.log_path})", server.log_tail()))


@pytest.fixture(scope="session")
def envhub_bin():
    path = os.environ.get("ENVHUB_BIN") or os.path.join(HERE, "..", "..", "build", "envhub")
    path = os.path.abspath(path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"no envhub binary at {path}: run `make build` (or set ENVHUB_BIN)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def docker_engine():
    if not helpers.engine_answers():
        reason = f"no Docker engine answers on {helpers.docker_socket_path()} (make engine starts one)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return helpers.docker_socket_path()


@pytest.fixture(scope="session")
def run_id():
    return secrets.token_hex(6)


@pytest.fixture(scope="session")
def run_label(run_id, docker_engine):
    """`envhub.test=<run id>`; at session end every container with it is removed."""
    label = f"envhub.test={run_id}"
    yield label
    removed = helpers.remove_labelled_containers(label)
    if removed:
        print(f"\nremoved containers left with {label}: {removed}")
    # the servers are stopped by now (they depend on this fixture): the environment
    # images they built carry the label too
    helpers.remove_labelled_images(label, run_id)
    helpers.remove_step_images()


_tmpdirs = []
_late_problems = []  # found after the last test ran (-x stopped the run): reported at session end


def _stop(server):
    _status, killed = server.stop()
    log = server.log_text()
    if killed:
        return f"envhub (pid {server.pid}) ignored SIGTERM for 10 s and was killed"
    for mark in SANITIZER_MARKS:
        if mark in log:
            return f"the sanitizer reported in {server.log_path}:\n{server.log_tail(80)}"
    return None


@pytest.fixture(scope="session")
def envhub(envhub_bin, run_id, run_label, request):
    """The shared server (default limits): .url, .db_path, .pid, .log_path. With
    ENVHUB_TEST_CLUSTER=N (make api-cluster) it runs in cluster mode with N nodes
    (`envhub node` processes on this engine, a warm pool of 1 each): the same tests
    then pass through the nodes."""
    nodes = int(os.environ.get("ENVHUB_TEST_CLUSTER") or 0)
    flags = []
    if nodes:
        key = os.path.join(tempfile.mkdtemp(prefix="envhub-api-key-"), "node.key")
        with open(key, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        flags = ["--cluster", "swarm", "--node-key-file", key]
    server = helpers.EnvhubServer(envhub_bin, run_id, flags)
    _tmpdirs.append(server.tmpdir)
    agents = []
    try:
        server.start()
        for i in range(nodes):
            agents.append(helpers.start_node(envhub_bin, f"api{run_id[:6]}-{i + 1}", server, key))
        if nodes:
            helpers.wait_nodes_ready(server, nodes)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield server
    if nodes and server.alive():
        done = sum(n["jobs_done"] for n in helpers.wait_nodes_ready(server, 0))
        if done == 0:
            _late_problems.append("cluster mode: the nodes ran no job at all")
        print(f"\ncluster mode: the {nodes} nodes ran {done} jobs")
    for agent in agents:
        helpers.stop_process(agent)
    if nodes:
        shutil.rmtree(os.path.dirname(key), ignore_errors=True)
    problem = _stop(server)
    if problem:
        if request.session.shouldfail or request.session.shouldstop:
            _late_problems.append(problem)  # torn down at session end: raising would crash pytest
        else:
            pytest.fail(problem, pytrace=False)  # an error at the teardown of the last test


@pytest.fixture
def envhub_factory(envhub_bin, run_id, run_label):
    """start(*flags, env=None, db_path=None) -> a server of its own, stopped at the end of
    the test; db_path: serve the catalog of an earlier server (a restart); scheme="https"
    and verify=CA file for a server started with --tls-cert."""
    servers = []

    def start(*flags, env=None, db_path=None, scheme="http", verify=None):
        server = helpers.EnvhubServer(envhub_bin, run_id, flags, env=env, db_path=db_path,
                                      scheme=scheme, verify=verify)
        _tmpdirs.append(server.tmpdir)
        servers.append(server)
        try:
            return server.start()
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)

    yield start
    problems = [p for p in (_stop(s) for s in servers) if p]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def envhub_module_factory(envhub_bin, run_id, run_label, request):
    """Like envhub_factory, but its servers live until the end of the test module (one
    server per scenario). start(*flags, env=None, db_path=None, before_start=None,
    scheme="http", verify=None): before_start(server) runs before the process starts, e.g.
    to make API keys in server.db_path with the key CLI."""
    servers = []

    def start(*flags, env=None, db_path=None, before_start=None, scheme="http", verify=None):
        server = helpers.EnvhubServer(envhub_bin, run_id, flags, env=env, db_path=db_path,
                                      scheme=scheme, verify=verify)
        _tmpdirs.append(server.tmpdir)
        servers.append(server)
        if before_start:
            before_start(server)
        try:
            return server.start()
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)

    yield start
    problems = [p for p in (_stop(s) for s in servers) if p]
    if problems:
        if request.session.shouldfail or request.session.shouldstop:
            _late_problems.extend(problems)
        else:
            pytest.fail("\n".join(problems), pytrace=False)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long build (deselect with -m \"not slow\")")


# The setup script of the environment the tests share: one Debian package, so that a job
# can `import requests` only there (the default image has no requests).
BASIC_SCRIPT = """#!/bin/bash
# envhub API tests: python3-requests from Debian
apt-get update
apt-get install -y --no-install-recommends python3-requests
rm -rf /var/lib/apt/lists/*
"""


@pytest.fixture(scope="session")
def basic_env(envhub, run_id):
    """One environment built once for the whole run on the shared server: a dict with
    `name`, `created` (the POST answer), `seen` (the statuses polled while it built)
    and `env` (the ready environment)."""
    name = f"basic-{run_id}"
    created = helpers.create_env(envhub, name, BASIC_SCRIPT, description="API tests: requests")
    seen = [created["status"]]
    deadline = time.monotonic() + helpers.BUILD_WITHIN
    while time.monotonic() < deadline:
        status = helpers.get_env(envhub, name)["status"]
        if seen[-1] != status:
            seen.append(status)
        if status != "building":
            break
        time.sleep(0.5)
    env = helpers.wait_env(envhub, name, within=5)
    return {"name": name, "created": created, "seen": seen, "env": env}


# An environment with matplotlib (Debian's, as environments/data-science.sh has it), for the
# pictures a job shows (test_display.py): built once for the run, only by the tests that ask.
PLOT_SCRIPT = """#!/bin/bash
# envhub API tests: python3-requests and python3-matplotlib from Debian
apt-get update
apt-get install -y --no-install-recommends python3-requests python3-matplotlib
rm -rf /var/lib/apt/lists/*
"""


@pytest.fixture(scope="session")
def plot_env(envhub, run_id):
    """The name of a ready environment with matplotlib on the shared server."""
    name = f"plot-{run_id}"
    helpers.create_env(envhub, name, PLOT_SCRIPT, description="API tests: matplotlib")
    env = helpers.wait_env(envhub, name)
    assert env["status"] == "ready", helpers.log_tail(envhub, name)
    return name


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Late problems fail the run; temp dirs (catalog + log) go when everything passed."""
    if _late_problems:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        for problem in _late_problems:
            if tr:
                tr.write_line("")
                tr.write_sep("!", "envhub at shutdown")
                tr.write_line(problem)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        exitstatus = session.exitstatus
    if exitstatus == 0:
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
    elif _tmpdirs:
        print("\nenvhub logs and catalogs kept in: " + " ".join(_tmpdirs))

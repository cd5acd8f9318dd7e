"""Images through a registry (ENVHUB_REGISTRY): every environment version is pushed
after its build and recorded by digest; the registry serves it by that digest; deleting
the environment removes it from the registry; a registry that does not answer fails the
build, saying so, and leaves no image behind.

The registry is Debian's docker-registry, started by this module on a loopback port of
its own with its storage in a temporary folder (deletes enabled), stopped at the end."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import requests

from helpers import (create_env, delete_env, docker_api, execute, free_port, get_build,
                     get_env, image_exists, log_tail, wait_build, wait_env)

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])


class Registry:
    def __init__(self, port, proc, folder):
        self.port, self.proc, self.folder = port, proc, folder
        self.addr = f"127.0.0.1:{port}"
        self.url = f"http://{self.addr}"

    def manifest(self, repo, reference):
        return requests.get(f"{self.url}/v2/{repo}/manifests/{reference}",
                            headers={"Accept": MANIFEST_TYPES}, timeout=10)


@pytest.fixture(scope="module")
def registry():
    binary = shutil.which("docker-registry")
    if not binary:
        pytest.fail("docker-registry is not installed (make test-deps installs it)")
    folder = tempfile.mkdtemp(prefix="envhub-registry-")
    port = free_port()
    config = os.path.join(folder, "config.yml")
    with open(config, "w") as f:
        f.write("version: 0.1\n"
                "log:\n  level: warn\n"
                f"storage:\n  filesystem:\n    rootdirectory: {folder}/data\n"
                "  delete:\n    enabled: true\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    log = open(os.path.join(folder, "registry.log"), "w")
    proc = subprocess.Popen([binary, "serve", config], stdout=log, stderr=subprocess.STDOUT)
    reg = Registry(port, proc, folder)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{reg.url}/v2/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, \
                f"the registry did not start: {open(log.name).read()[-2000:]}"
            time.sleep(0.2)
        yield reg
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pushing(envhub_module_factory, registry):
    return envhub_module_factory("--registry", registry.addr, "--retire-grace", "1")


def split_registry_image(ref, registry):
    m = re.fullmatch(re.escape(registry.addr) + r"/(.+)@(sha256:[0-9a-f]{64})", ref or "")
    assert m, f"registry_image {ref!r} is not {registry.addr}/<repo>@sha256:<digest>"
    return m.group(1), m.group(2)


def test_a_version_is_pushed_recorded_by_digest_and_removed_with_its_environment(
        pushing, registry, run_id):
    name = f"reg-{run_id}"
    create_env(pushing, name, f"# {run_id}\necho pushed > /opt/envhub-registry-test\n")
    env = wait_env(pushing, name)
    repo, digest = split_registry_image(env["registry_image"], registry)
    assert repo == env["docker_image"].rsplit(":", 1)[0], (repo, env["docker_image"])
    build = get_build(pushing, name, 1)
    assert build["registry_image"] == env["registry_image"], build
    tail = log_tail(pushing, name)
    assert f"envhub: pushed as {env['registry_image']}" in tail, tail

    # the registry serves that manifest by its digest, and the tag names the same one
    r = registry.manifest(repo, digest)
    assert r.status_code == 200, r.text[:500]
    assert r.headers.get("Docker-Content-Digest") == digest, r.headers
    tagged = registry.manifest(repo, env["docker_image"].rsplit(":", 1)[1])
    assert tagged.status_code == 200 and tagged.headers.get("Docker-Content-Digest") == digest
    # the registry tag was only the push's: the local image keeps the version's own tag
    assert not image_exists(f"{registry.addr}/{env['docker_image']}")
    assert image_exists(env["docker_image"])

    # an engine pulls it by digest (what a node does before running the version)
    ref = env["registry_image"]
    status, body = docker_api(
        "POST", "/v1.41/images/create?fromImage=" + urllib.parse.quote(ref, safe=""), timeout=120)
    assert status == 200 and "error" not in str(body)[:2000], (status, str(body)[:2000])
    status, pulled = docker_api("GET", f"/v1.41/images/{urllib.parse.quote(ref, safe='')}/json")
    assert status == 200 and pulled["Id"] == env["image_id"], (status, pulled)
    docker_api("DELETE", f"/v1.41/images/{urllib.parse.quote(ref, safe='')}")

    res = execute(pushing, "print(open('/opt/envhub-registry-test').read().strip())",
                  environment=name)
    assert res["stdout"] == "pushed\n", res

    delete_env(pushing, name)
    gone = registry.manifest(repo, digest)
    assert gone.status_code == 404, (gone.status_code, gone.text[:300])


def test_retiring_removes_the_versions_from_the_registry_and_reinstating_pushes_again(
        pushing, registry, run_id):
    name = f"reg-retire-{run_id}"
    create_env(pushing, name, f"# {run_id} retire\necho r > /opt/r\n")
    repo, digest = split_registry_image(wait_env(pushing, name)["registry_image"], registry)
    assert registry.manifest(repo, digest).status_code == 200
    r = requests.post(f"{pushing.url}/environments/{name}/lifecycle", json={"state": "retired"},
                      timeout=60)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while get_env(pushing, name)["images_removed_at"] is None and time.monotonic() < deadline:
        time.sleep(0.3)
    assert get_env(pushing, name)["images_removed_at"], get_env(pushing, name)
    assert registry.manifest(repo, digest).status_code == 404
    r = requests.post(f"{pushing.url}/environments/{name}/lifecycle", json={"state": "active"},
                      timeout=60)
    assert r.status_code == 200, r.text
    wait_build(pushing, name, 2)
    env = get_env(pushing, name)
    assert env["version"] == 2, env
    repo2, digest2 = split_registry_image(env["registry_image"], registry)
    assert repo2 == repo and registry.manifest(repo, digest2).status_code == 200
    delete_env(pushing, name)
    assert registry.manifest(repo, digest2).status_code == 404


def test_a_registry_that_hangs_does_not_hold_a_deletion(pushing, registry, run_id):
    """The registry frozen (SIGSTOP: connections are accepted, nothing answers): deleting
    the environment still ends within the bound, and the log names the manifest envhub
    could not remove."""
    name = f"reg-hang-{run_id}"
    create_env(pushing, name, f"# {run_id} hang\necho h > /opt/h\n")
    repo, digest = split_registry_image(wait_env(pushing, name)["registry_image"], registry)
    registry.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        delete_env(pushing, name)
        took = time.monotonic() - t0
    finally:
        registry.proc.send_signal(signal.SIGCONT)
    assert took < 20, f"the deletion waited {took:.1f} s for a registry that hangs"
    r = requests.get(f"{pushing.url}/environments/{name}", timeout=30)
    assert r.status_code == 404, r.text
    # (the frozen registry may still carry out the delete it had received once it resumes)
    assert f"cannot remove {registry.addr}/{repo}@{digest} from its registry" in \
        pushing.log_text(), "no log line names the manifest left behind"


def test_a_registry_that_does_not_answer_fails_the_build_and_leaves_no_image(
        envhub_module_factory, run_id):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    server = envhub_module_factory("--registry", dead)
    name = f"noreg-{run_id}"
    create_env(server, name, f"# {run_id} unreachable registry\necho x > /opt/x\n")
    env = wait_env(server, name, until=("failed",))
    assert f"registry {dead} (ENVHUB_REGISTRY)" in env["error"], env["error"]
    assert env["registry_image"] is None
    assert not image_exists(env["docker_image"])
    assert not image_exists(f"{dead}/{env['docker_image']}")
    tail = log_tail(server, name)
    assert f"envhub: pushing {dead}/" in tail, tail


@pytest.mark.parametrize("value", ["http://127.0.0.1:5000", "127.0.0.1", "127.0.0.1:0",
                                   "127.0.0.1:5000/path", "host:99999", ":5000"])
def test_a_registry_setting_that_is_not_host_port_stops_the_server_at_start(envhub_bin, value):
    r = subprocess.run([envhub_bin, "serve", "--registry", value, "--db", ":memory:",
                        "--listen", f"127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "ENVHUB_REGISTRY" in r.stderr and "host:port" in r.stderr, r.stderr

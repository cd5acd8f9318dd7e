"""The sandbox holds: identity and privileges, no network, timeout, memory, processes,
inodes, output flood; and no container outlives its job."""

import json
import threading
import time

import requests

from helpers import (OUTPUT_LIMIT, catalog_row, describe_containers, docker_api, execute, is_sanitizer_build,
                     make_volume_image,
                     labelled_containers, pool_state, short, unb64)

TIMEOUT_SLACK_S = 3.0  # container start + kill + removal on top of the job's timeout


HOSTNAME_FIRST = "import socket\nprint(socket.gethostname(), flush=True)\n"


def assert_no_container_left(server, run_label, served=(), within=5.0):
    """No container of `server` outlives its job: none of the containers that served
    the jobs (`served`: their hostnames, which are container id prefixes) is left, none
    is left stopped, and what still runs is no more than its warm pool's target."""
    instance = server.instance_id()
    target = int(pool_state(server)[1] or 0)
    deadline = time.monotonic() + within
    while True:
        mine = [c for c in labelled_containers(run_label)
                if c.get("Labels", {}).get("envhub.instance") == instance]
        left = [c for c in mine if c.get("State") != "running" or
                any(h and c["Id"].startswith(h) for h in served)]
        idle = [c for c in mine if c not in left]
        if len(idle) > target:
            left += idle
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    assert not left, (f"containers left with {run_label} (warm pool target {target}, served by the jobs "
                      f"{list(served)}): {describe_containers(left)}")


def test_job_runs_as_uid_1000_without_capabilities_on_a_read_only_root(envhub):
    code = r'''
import json, os
status = dict(line.rstrip("\n").split(":\t", 1) for line in open("/proc/self/status") if ":\t" in line)
def can_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return True
    except OSError as e:
        return "%s: %s" % (e.__class__.__name__, e.errno)
print(json.dumps({
    "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
    "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(),
    "no_new_privs": status.get("NoNewPrivs", "").strip(),
    "root": can_write("/x"), "usr": can_write("/usr/x"),
    "tmp": can_write("/tmp/probe"), "workspace": can_write("/workspace/probe.txt"),
    "cwd": os.getcwd(),
}))
'''
    res = execute(envhub, code, timeout=10)
    assert res["success"] is True, short(res)
    got = json.loads(res["stdout"])
    assert got["uid"] == 1000 and got["euid"] == 1000, got
    assert got["cap_eff"] == "0000000000000000", got
    assert got["cap_prm"] == "0000000000000000", got
    assert got["no_new_privs"] == "1", got
    assert got["root"] is not True, "the job wrote to /"
    assert got["usr"] is not True, "the job wrote to /usr"
    assert got["tmp"] is True, f"/tmp not writable: {got['tmp']}"
    assert got["workspace"] is True, f"/workspace not writable: {got['workspace']}"
    assert "probe.txt" in res["files"]


def test_job_has_no_network(envhub):
    # 10.255.255.1 is never reachable: without an interface nothing can leave anyway
    code = r'''
import json, socket, time
out = {"ifaces": [name for _, name in socket.if_nameindex()]}
for kind, label in ((socket.SOCK_DGRAM, "udp"), (socket.SOCK_STREAM, "tcp")):
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(5)
    t0 = time.monotonic()
    try:
        s.connect(("10.255.255.1", 80))
        if kind == socket.SOCK_DGRAM:
            s.send(b"x")
        out[label] = "connected"
    except socket.timeout:
        out[label] = "timeout"
    except OSError as e:
        out[label] = "OSError %s" % e.errno
    out[label + "_s"] = time.monotonic() - t0
    s.close()
print(json.dumps(out))
'''
    res = execute(envhub, code, timeout=20)
    assert res["success"] is True, short(res)
    got = json.loads(res["stdout"])
    assert set(got["ifaces"]) <= {"lo"}, f"network interfaces in the sandbox: {got['ifaces']}"
    for label in ("udp", "tcp"):
        assert got[label].startswith("OSError"), f"{label} connect: {got}"
        assert got[label + "_s"] < 1.0, f"{label} connect did not fail immediately: {got}"


def test_timeout_is_honoured_and_the_container_removed(envhub, run_label):
    t0 = time.monotonic()
    res = execute(envhub, HOSTNAME_FIRST + "while True:\n    pass\n", timeout=2, http_timeout=30)
    elapsed = time.monotonic() - t0
    assert res["success"] is False
    assert res["status"] == "timeout"
    assert res["error"] == "代码执行超时(2秒)"
    assert 1.9 <= elapsed < 2 + TIMEOUT_SLACK_S, f"answered after {elapsed:.2f} s"
    row = catalog_row(envhub.db_path, res["id"])
    assert row["status"] == "timeout" and row["timeout_s"] == 2, row
    assert_no_container_left(envhub, run_label, served=[res["stdout"].strip()])


def test_600_mb_allocation_ends_as_oom(envhub, run_label):
    res = execute(envhub, HOSTNAME_FIRST + "b = b'x' * (600 * 1024 * 1024)\nprint(len(b))\n", timeout=60)
    assert res["success"] is False, short(res)
    assert res["status"] == "oom", short(res)
    assert res["error"], short(res)
    hostname = res["stdout"].strip()
    assert hostname and "\n" not in hostname, f"only the hostname line should be out: {short(res)}"
    assert catalog_row(envhub.db_path, res["id"])["status"] == "oom"
    assert_no_container_left(envhub, run_label, served=[hostname])


def test_job_killing_itself_with_sigkill_is_failed_not_oom(envhub):
    res = execute(envhub, "import os, signal\nprint('bye', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n",
                  timeout=10)
    assert res["success"] is False, short(res)
    assert res["status"] == "failed", short(res)
    assert res["exit_code"] != 0
    assert catalog_row(envhub.db_path, res["id"])["status"] == "failed"

def test_fork_bomb_is_contained_and_the_server_still_answers(envhub, run_label):
    code = HOSTNAME_FIRST + "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    t0 = time.monotonic()
    res = execute(envhub, code, timeout=5, http_timeout=60)
    elapsed = time.monotonic() - t0
    assert res["success"] is False, short(res)
    assert res["status"] in ("timeout", "failed", "oom"), short(res)
    assert elapsed < 5 + 15, f"the fork bomb held the answer for {elapsed:.1f} s"
    h = requests.get(f"{envhub.url}/health", timeout=10)
    assert h.status_code == 200, h.text
    after = execute(envhub, 'print("Hello, World!")', timeout=10)
    assert after["success"] is True and after["stdout"] == "Hello, World!\n", short(after)
    assert_no_container_left(envhub, run_label, served=[res["stdout"].split("\n")[0].strip()])


def test_inode_flood_is_stopped_by_the_inode_limit(envhub):
    code = r'''
import os
os.makedirs("flood")
n = 0
try:
    while n < 500000:
        open("flood/f%d" % n, "w").close()
        n += 1
    print("NO LIMIT", n)
except OSError as e:
    print("STOPPED", n, e.errno)
for name in os.listdir("flood"):
    os.unlink(os.path.join("flood", name))
'''
    res = execute(envhub, code, timeout=60, http_timeout=120)
    assert res["stdout"].startswith("STOPPED"), short(res)
    assert res["stdout"].split()[2] == "28", f"expected ENOSPC: {res['stdout']}"
    assert res["success"] is True, short(res)
    assert requests.get(f"{envhub.url}/health", timeout=10).status_code == 200


def test_200_mb_of_stdout_is_truncated_and_server_memory_stays_bounded(envhub_factory, envhub_bin, run_label):
    env = None
    if is_sanitizer_build(envhub_bin):  # freed buffers must be reused, not quarantined
        env = {"ASAN_OPTIONS": "quarantine_size_mb=8:thread_local_quarantine_size_kb=64"}
    server = envhub_factory(env=env)
    warm = execute(server, "print('warm-up')", timeout=10)
    assert warm["success"] is True, short(warm)
    hwm_before = server.status_kb("VmHWM")
    code = ("import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(200):\n    sys.stdout.write(chunk)\n"
            "sys.stdout.flush()\nsys.stderr.write('wrote 200 MB')\n")
    t0 = time.monotonic()
    res = execute(server, code, timeout=120, http_timeout=180)
    elapsed = time.monotonic() - t0
    hwm_after = server.status_kb("VmHWM")
    assert res["stdout_truncated"] is True, short(res)
    n = len(res["stdout"].encode())
    assert OUTPUT_LIMIT // 2 <= n <= OUTPUT_LIMIT, f"stdout kept {n} bytes, limit {OUTPUT_LIMIT}"
    assert set(res["stdout"]) == {"x"}
    grew_mb = (hwm_after - hwm_before) / 1024
    assert grew_mb < 64, f"server VmHWM grew by {grew_mb:.0f} MB for 200 MB of output"
    row = catalog_row(server.db_path, res["id"])
    assert row["stdout_truncated"] == 1 and len(row["stdout"].encode()) <= OUTPUT_LIMIT
    print(f"200 MB flood answered in {elapsed:.1f} s, VmHWM +{grew_mb:.1f} MB, status {res['status']}, "
          f"stderr {res['stderr'][-200:]!r}")


def test_dev_shm_is_capped(envhub):
    code = r'''
n = 0
try:
    with open("/dev/shm/fill", "wb") as f:
        while n < 256:
            f.write(b"\0" * (1 << 20))
            f.flush()
            n += 1
    print("WROTE", n)
except OSError as e:
    print("STOPPED", n, e.errno)
'''
    res = execute(envhub, code, timeout=30)
    assert res["stdout"].startswith("STOPPED"), f"/dev/shm took 256 MB: {short(res)}"
    assert int(res["stdout"].split()[1]) <= 64, res["stdout"]


def test_limits_follow_the_memory_and_pids_flags(envhub_factory):
    server = envhub_factory("--memory-limit", "256m", "--pids-limit", "64")
    code = r'''
import os
def first(*paths):
    for p in paths:
        if os.path.exists(p):
            return open(p).read().strip()
    return "?"
print(first("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"))
print(first("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"))
'''
    res = execute(server, code, timeout=10)
    assert res["success"] is True, short(res)
    mem, pids = res["stdout"].split()
    assert mem == str(256 * 1024 * 1024), res["stdout"]
    assert pids == "64", res["stdout"]


def test_sandbox_container_is_locked_down_in_its_engine_config(envhub, run_label):
    result = {}
    job = threading.Thread(target=lambda: result.update(
        res=execute(envhub, "import time\ntime.sleep(3)\nprint('done')", timeout=20)))
    job.start()
    try:
        deadline = time.monotonic() + 10
        containers = []
        while not containers and time.monotonic() < deadline:
            containers = [c for c in labelled_containers(run_label) if c.get("State") == "running"]
            time.sleep(0.1)
        assert containers, "no running container with the run label during the job"
        status, info = docker_api("GET", f"/v1.41/containers/{containers[0]['Id']}/json")
        assert status == 200, info
    finally:
        job.join(60)
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert "ALL" in [c.upper() for c in host.get("CapDrop") or []], host.get("CapDrop")
    assert any("no-new-privileges" in s for s in host.get("SecurityOpt") or []), host.get("SecurityOpt")
    assert host["LogConfig"]["Type"] == "none", host["LogConfig"]
    assert host["Memory"] == 512 * 1024 * 1024, host["Memory"]
    assert host["PidsLimit"] == 128, host["PidsLimit"]
    assert 0 < host["ShmSize"] <= 64 * 1024 * 1024, host["ShmSize"]
    assert info["Config"]["User"].split(":")[0] in ("1000", "sandbox"), info["Config"]["User"]
    assert info["Config"]["Labels"].get("envhub.managed") == "1", info["Config"]["Labels"]
    assert info["Config"].get("NetworkDisabled") is True or host.get("NetworkMode") == "none", \
        (info["Config"].get("NetworkDisabled"), host.get("NetworkMode"))
    assert result["res"]["stdout"] == "done\n", short(result["res"])


def test_huge_sparse_output_file_is_skipped_and_answered_promptly(envhub_factory):
    server = envhub_factory()
    code = r'''
with open("sparse.bin", "wb") as f:
    f.truncate(100 << 30)
with open("big.bin", "wb") as f:
    f.write(b"\1" * (11 << 20))
open("ok.txt", "w").write("fine\n")
print("made")
'''
    t0 = time.monotonic()
    res = execute(server, code, timeout=30, http_timeout=90)
    elapsed = time.monotonic() - t0
    assert res["success"] is True, short(res)
    assert elapsed < 20, f"answered after {elapsed:.1f} s"
    assert "sparse.bin" not in res["files"] and "big.bin" not in res["files"], sorted(res["files"])
    assert unb64(res["files"]["ok.txt"]) == b"fine\n"
    skipped = json.dumps(res["files_skipped"])
    assert "sparse.bin" in skipped and "big.bin" in skipped, res["files_skipped"]
    assert server.status_kb("VmHWM") < 256 * 1024, "the server read the sparse file into memory"


def test_stderr_over_the_output_limit_is_truncated(envhub):
    code = "import sys\nfor _ in range(3):\n    sys.stderr.write('e' * (1 << 20))\nprint('out ok')\n"
    res = execute(envhub, code, timeout=30)
    assert res["stderr_truncated"] is True, short(res)
    assert res["stdout_truncated"] is False
    assert res["stdout"] == "out ok\n"
    assert 0 < len(res["stderr"].encode()) <= OUTPUT_LIMIT


def test_execution_time_measures_the_run(envhub):
    res = execute(envhub, "import time\ntime.sleep(1)", timeout=10)
    assert res["success"] is True, short(res)
    assert 1.0 <= res["execution_time"] < 10, res["execution_time"]


def test_no_container_left_behind(envhub, run_label):
    assert_no_container_left(envhub, run_label)


def test_images_that_declare_a_volume_hold_no_sandbox(envhub, envhub_factory, run_label, run_id):
    """A VOLUME would be a writable directory on the host's disk past the read-only root:
    a base image declaring one is refused when the build is asked for, and a default image
    declaring one runs no job (nor warms a pool), each with a clear error naming the path."""
    ref = make_volume_image(run_label, f"envhub-test-volume-{run_id}:1", "/scratch")
    r = requests.post(f"{envhub.url}/environments",
                      json={"name": f"vol-{run_id}", "setup_script": "true\n",
                            "base_image": ref}, timeout=30)
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert detail.startswith("base_image:") and "VOLUME /scratch" in detail, detail
    assert requests.get(f"{envhub.url}/environments/vol-{run_id}", timeout=10).status_code == 404

    server = envhub_factory(env={"DOCKER_IMAGE": ref, "ENVHUB_POOL_SIZE": "0"})
    before = {c["Id"] for c in labelled_containers(run_label)}
    r = requests.post(f"{server.url}/execute", json={"code": "print(1)"}, timeout=60)
    assert r.status_code == 503, r.text
    assert "VOLUME /scratch" in r.json()["detail"], r.text
    made = [c for c in labelled_containers(run_label) if c["Id"] not in before
            and c.get("Image") == ref]
    assert not made, describe_containers(made)

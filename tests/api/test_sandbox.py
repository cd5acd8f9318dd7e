"""The sandbox holds: identity and privileges, no network, timeout, memory, processes,
inodes, output flood; and no container outlives its job."""

import json
import time

import requests

from helpers import (OUTPUT_LIMIT, catalog_row, describe_containers, execute, is_sanitizer_build, short,
                     wait_no_container_left)

TIMEOUT_SLACK_S = 3.0  # container start + kill + removal on top of the job's timeout


def assert_no_container_left(run_label, within=5.0):
    left = wait_no_container_left(run_label, within)
    assert not left, f"containers left with {run_label}: {describe_containers(left)}"


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
    res = execute(envhub, "print('spinning', flush=True)\nwhile True:\n    pass\n", timeout=2, http_timeout=30)
    elapsed = time.monotonic() - t0
    assert res["success"] is False
    assert res["status"] == "timeout"
    assert res["error"] == "代码执行超时(2秒)"
    assert 1.9 <= elapsed < 2 + TIMEOUT_SLACK_S, f"answered after {elapsed:.2f} s"
    row = catalog_row(envhub.db_path, res["id"])
    assert row["status"] == "timeout" and row["timeout_s"] == 2, row
    assert_no_container_left(run_label)


def test_600_mb_allocation_ends_as_oom(envhub, run_label):
    res = execute(envhub, "b = b'x' * (600 * 1024 * 1024)\nprint(len(b))\n", timeout=60)
    assert res["success"] is False, short(res)
    assert res["status"] == "oom", short(res)
    assert res["error"], short(res)
    assert res["stdout"] == ""
    assert catalog_row(envhub.db_path, res["id"])["status"] == "oom"
    assert_no_container_left(run_label)


def test_fork_bomb_is_contained_and_the_server_still_answers(envhub, run_label):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
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
    assert_no_container_left(run_label)


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
    code = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(200):\n    sys.stdout.write(chunk)\nsys.stdout.flush()\n"
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
    print(f"200 MB flood answered in {elapsed:.1f} s, VmHWM +{grew_mb:.1f} MB")


def test_no_container_left_behind(envhub, run_label):
    assert_no_container_left(run_label)

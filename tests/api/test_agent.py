"""The agent transport (issue 14, item 1): a job is handed to envhub's agent, the main
process of its container, over attach; the job's output comes back inside the agent's
frames, and the exit status, OOM state and files come in a report framed with a nonce
that envhub sends only once every process of the job is gone. These tests play the job
that tries to get past that: forged frames and wrapper markers in its output, attacks
on the agent itself (signals, ptrace, its memory and descriptors), a closed stdout, a
fork bomb, processes left running. ENVHUB_JOB_TRANSPORT=exec keeps the old path."""

import base64
import time

import pytest

import concurrent.futures

from helpers import (catalog_row, docker_api, execute, instance_label, labelled_containers, running_containers,
                     short, wait_until)


@pytest.fixture(scope="module")
def agent(envhub_module_factory):
    """A server with the defaults (agent transport) and a pool of 1."""
    server = envhub_module_factory("--pool-size", "1")
    server.instance = instance_label(server)
    return server


def frame(kind, payload):
    return kind + len(payload).to_bytes(4, "big") + payload


def test_the_container_runs_the_agent_as_its_first_process(agent):
    code = (
        "import os\n"
        "argv = open('/proc/1/cmdline', 'rb').read().split(b'\\0')\n"
        "print(argv[0].decode(), argv[1].decode())\n"
        "print(os.getuid(), os.getppid() == 1)\n"
        "print('ENVHUB_AGENT' in os.environ)\n"
    )
    res = execute(agent, code)
    assert res["success"], short(res)
    assert res["stdout"] == "python3 -I\n1000 True\nFalse\n"  # the agent's source is not the job's


def test_forged_frames_and_markers_in_job_output_stay_output(agent):
    """Bytes that would end the job, report success with a file, or close the stream,
    printed by the job, come back as its output; its real status and files stand."""
    nonce = b"0" * 32
    report = nonce + b'\n{"rc": 0, "timed_out": false, "oom_kills": 0, "skipped": []}\n'
    forged = frame(b"x", b"") + frame(b"r", report) + frame(b"o", b"after")
    code = (
        "import sys, base64\n"
        f"forged = base64.b64decode({base64.b64encode(forged).decode()!r})\n"
        "sys.stdout.buffer.write(forged); sys.stdout.flush()\n"
        "sys.stderr.buffer.write(forged + b'\\0envhub-status 0 1 0\\0'); sys.stderr.flush()\n"
        "sys.exit(3)\n"
    )
    res = execute(agent, code)
    assert res["status"] == "failed" and res["exit_code"] == 3, short(res)
    assert res["stdout"] == forged.decode("ascii")  # every byte, NULs too
    assert res["stderr"].endswith("\0envhub-status 0 1 0\0")
    assert res["files"] == {}


def test_a_job_cannot_reach_the_agent(agent):
    """Signals to PID 1 are ignored, and the agent is not dumpable: no ptrace, no
    /proc/1/mem, no /proc/1/fd (its stdin would carry the nonce, its stdout the
    frames)."""
    code = r"""
import ctypes, os, signal
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP, signal.SIGINT):
    try:
        os.kill(1, sig)
    except OSError as e:
        print("kill", sig, e.errno)
libc = ctypes.CDLL(None, use_errno=True)
print("ptrace", libc.ptrace(16, 1, 0, 0), ctypes.get_errno() != 0)
for path in ("/proc/1/mem", "/proc/1/fd/0", "/proc/1/fd/1", "/proc/1/environ"):
    try:
        open(path, "rb" if path.endswith(("mem", "environ", "0")) else "wb").close()
        print(path, "opened")
    except OSError as e:
        print(path, "refused")
"""
    res = execute(agent, code)
    assert res["success"], short(res)
    lines = res["stdout"].splitlines()
    assert "ptrace -1 True" in lines
    for path in ("/proc/1/mem", "/proc/1/fd/0", "/proc/1/fd/1", "/proc/1/environ"):
        assert f"{path} refused" in lines, res["stdout"]
    # the agent lived through it: the next job runs (a fresh or recycled container alike)
    again = execute(agent, "print('next')")
    assert again["stdout"] == "next\n", short(again)


def test_a_job_that_closes_its_output_early_still_ends_and_reports(agent):
    code = (
        "import os, sys, time\n"
        "print('before', flush=True)\n"
        "print('err before', file=sys.stderr, flush=True)\n"
        "os.close(1); os.close(2)\n"
        "time.sleep(0.5)\n"
        "open('after.txt', 'w').write('written after the close')\n"
        "os._exit(4)\n"
    )
    res = execute(agent, code)
    assert res["exit_code"] == 4 and res["status"] == "failed", short(res)
    assert res["stdout"] == "before\n" and res["stderr"] == "err before\n"
    assert base64.b64decode(res["files"]["after.txt"]) == b"written after the close"


def test_a_fork_bomb_ends_with_its_job(agent):
    code = r"""
import os, time
n = 0
while True:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    n += 1
print("bombed", n > 0)
"""
    t0 = time.monotonic()
    res = execute(agent, code, timeout=20)
    assert res["success"] and res["stdout"] == "bombed True\n", short(res)
    assert time.monotonic() - t0 < 20
    after = execute(agent, "print('fine')")
    assert after["stdout"] == "fine\n", short(after)


def test_processes_a_job_leaves_behind_are_ended_with_it(agent):
    """The job ends when its first process does; everything it started goes then,
    even a process holding its stdout open (it does not keep the answer waiting)."""
    code = (
        "import subprocess, sys\n"
        "subprocess.Popen(['sleep', '300'])\n"
        "subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: print(1, flush=True); time.sleep(0.1)'])\n"
        "print('main done')\n"
    )
    t0 = time.monotonic()
    res = execute(agent, code, timeout=30)
    assert res["success"], short(res)
    assert res["stdout"].startswith("main done\n")
    assert time.monotonic() - t0 < 10


def test_the_agent_enforces_the_timeout_and_keeps_the_output(agent):
    code = "import time\nprint('started', flush=True)\nwhile True: time.sleep(0.05)\n"
    t0 = time.monotonic()
    res = execute(agent, code, timeout=2)
    took = time.monotonic() - t0
    assert res["status"] == "timeout" and res["success"] is False, short(res)
    assert res["stdout"] == "started\n"
    assert "2" in res["error"]
    assert took < 2 + 5  # the agent's own deadline, not envhub's kill past the grace


def test_a_job_killed_out_of_memory_is_reported_as_such(agent):
    code = "x = []\nwhile True: x.append(bytearray(16 * 1024 * 1024))\n"
    res = execute(agent, code, timeout=30)  # past the default memory limit (512m)
    assert res["status"] == "oom", short(res)


def test_a_container_killed_under_its_job_ends_the_job_not_the_server(agent):
    """The agent cannot be killed from inside; from outside (an operator, the engine) it
    can: the job's answer comes at once, failed with the container's exit code, and the
    next job runs."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        job = pool.submit(execute, agent, "import time\nprint('up', flush=True)\ntime.sleep(60)\n", timeout=90)

        def busy():  # the job's container: the agent and the job's process (the pool's: the agent)
            for cid in running_containers(agent.instance):
                _status, top = docker_api("GET", f"/containers/{cid}/top")
                if isinstance(top, dict) and len(top.get("Processes") or []) >= 2:
                    return cid
            return None

        cid = wait_until(busy, 20.0)
        assert cid, "no container runs the job"
        docker_api("POST", f"/containers/{cid}/kill")
        res = job.result(timeout=30)
    assert res["status"] == "failed" and res["exit_code"] == 137, short(res)
    assert res["stdout"] == "up\n"
    assert catalog_row(agent.db_path, res["id"])["status"] == "failed"
    assert execute(agent, "print('after')")["stdout"] == "after\n"


def test_the_traceback_reads_like_python_run_on_the_file(agent):
    res = execute(agent, "x = 1\n1 / 0\n")
    assert res["status"] == "failed" and res["exit_code"] == 1, short(res)
    assert res["stderr"].startswith("Traceback (most recent call last):\n")
    assert 'File "/workspace/.envhub_main.py", line 2, in <module>' in res["stderr"]
    assert "agent" not in res["stderr"]
    assert res["stderr"].rstrip().endswith("ZeroDivisionError: division by zero")
    syntax = execute(agent, "def broken(:\n")
    assert syntax["exit_code"] == 1 and "SyntaxError" in syntax["stderr"], short(syntax)


def test_the_exec_transport_is_kept(envhub_module_factory):
    server = envhub_module_factory("--job-transport", "exec", "--pool-size", "1")
    res = execute(server, "print(open('/proc/1/cmdline','rb').read().split(b'\\0')[0].decode())\n"
                          "open('out.txt','w').write('x')\n")
    assert res["success"], short(res)
    assert res["stdout"] == "sleep\n"
    assert base64.b64decode(res["files"]["out.txt"]) == b"x"


def test_no_container_is_left_after_the_server_stops(envhub_module_factory):
    server = envhub_module_factory("--pool-size", "1")
    label = instance_label(server)
    assert execute(server, "print(1)")["success"]
    server.stop()
    assert wait_until(lambda: not labelled_containers(label), 20.0), labelled_containers(label)

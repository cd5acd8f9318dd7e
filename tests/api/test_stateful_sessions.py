"""Sessions that keep their state (issue 14, item 3): by agent, a session's calls run in one
interpreter the container's agent keeps, like a notebook kernel: variables, imports and
open files persist; the final expression's repr comes back as `result` (capped); an
exception, exit() or an interrupted timeout keep the interpreter; one that does not stop
when interrupted, or dies, is replaced and the answer says so; POST /sessions/{id}/reset
starts a new one; background processes end with their call unless the session was opened
with keep_processes. By exec each call is a process of its own (stateful false)."""

import threading

import pytest
import requests

from helpers import short
from test_sessions import call, close, open_session

LOST = ("the session's interpreter ended in this call ({why}); its variables are gone and "
        "the next call starts a new interpreter")


@pytest.fixture(scope="module")
def kernel_server(envhub_module_factory):
    return envhub_module_factory("--pool-size", "0")


@pytest.fixture
def sid(kernel_server):
    s = open_session(kernel_server, {"idle_timeout": 600})
    assert s["stateful"] is True and s["keep_processes"] is False, s
    yield s["id"]
    close(kernel_server, s["id"])


def ok(res, stdout=None, result=None):
    assert res["success"] and res["status"] == "succeeded", short(res)
    assert res["interpreter_lost"] is False, short(res)
    if stdout is not None:
        assert res["stdout"] == stdout, short(res)
    assert res["result"] == result, short(res)
    return res


def test_variables_imports_and_open_files_persist_and_the_last_expression_is_the_result(
        kernel_server, sid):
    s = kernel_server
    # the last statement is an expression: its value (write's count) is the result
    ok(call(s, sid, "import json\nx = 41\nlog = open('log.txt', 'w')\nlog.write('one\\n')"),
       result="4")
    ok(call(s, sid, "x += 1\nlog.write('two\\n')\nlog.flush()\nprint(json.dumps({'x': x}))\nx"),
       stdout='{"x": 42}\n', result="42")
    ok(call(s, sid, "open('log.txt').read()"), result="'one\\ntwo\\n'")
    ok(call(s, sid, "def f(n):\n    return [n] * 2\nf(x)"), result="[42, 42]")
    ok(call(s, sid, "f(1)\nNone"), result=None)  # a None value is no result
    ok(call(s, sid, "y = f(2)"), result=None)  # no final expression
    ok(call(s, sid, "'é' + chr(0) + 'z'"), result="'é\\x00z'")


def test_an_exception_exit_or_syntax_error_keeps_the_interpreter(kernel_server, sid):
    s = kernel_server
    ok(call(s, sid, "state = [1]"))
    res = call(s, sid, "state.append(2)\nraise ValueError('boom')")
    assert res["status"] == "failed" and res["exit_code"] == 1 and not res["interpreter_lost"], short(res)
    assert res["stderr"].startswith("Traceback (most recent call last):\n  File \"/workspace/"), short(res)
    assert res["stderr"].endswith("ValueError: boom\n"), short(res)
    res = call(s, sid, "import sys\nstate.append(3)\nsys.exit(3)")
    assert res["status"] == "failed" and res["exit_code"] == 3 and not res["interpreter_lost"], short(res)
    res = call(s, sid, "def broken(:\n")
    assert res["status"] == "failed" and "SyntaxError" in res["stderr"], short(res)
    ok(call(s, sid, "state"), result="[1, 2, 3]")


def test_a_timeout_interrupts_the_call_and_keeps_the_variables(kernel_server, sid):
    s = kernel_server
    ok(call(s, sid, "kept = 'yes'\nimport time"))
    res = call(s, sid, "n = 0\nwhile True:\n    n += 1\n    time.sleep(0.01)", timeout=2)
    assert res["status"] == "timeout" and res["interpreter_lost"] is False, short(res)
    assert res["stderr"].rstrip().endswith("KeyboardInterrupt"), short(res)
    assert res["result"] is None and not res.get("warning"), short(res)
    res = ok(call(s, sid, "(kept, n > 10)"), result="('yes', True)")


def test_an_interpreter_that_does_not_stop_or_dies_is_replaced_and_the_answer_says_so(
        kernel_server, sid):
    s = kernel_server
    ok(call(s, sid, "v = 1"))
    res = call(s, sid, "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                       "while True:\n    time.sleep(0.1)", timeout=1)
    assert res["status"] == "timeout" and res["interpreter_lost"] is True, short(res)
    assert res["warning"] == LOST.format(why="it did not stop when interrupted at the timeout"), short(res)
    res = call(s, sid, "v")
    assert res["status"] == "failed" and "NameError: name 'v' is not defined" in res["stderr"], short(res)
    ok(call(s, sid, "w = 2"))
    res = call(s, sid, "import os\nprint('bye', flush=True)\nos._exit(7)")
    assert res["status"] == "failed" and res["exit_code"] == 7 and res["interpreter_lost"], short(res)
    assert res["stdout"] == "bye\n", short(res)
    assert res["warning"] == LOST.format(why="the process exited"), short(res)
    res = call(s, sid, "'w' in globals()")
    ok(res, result="False")
    info = requests.get(f"{s.url}/sessions/{sid}", timeout=30).json()
    assert info["calls"] == 6, info


def test_code_that_breaks_the_interpreters_pipe_to_the_agent_loses_only_its_interpreter(
        kernel_server, sid):
    """The interpreter's end-of-call line is on a pipe the call's code can reach: garbage
    there, or the pipe closed, ends that interpreter, never the session or the agent."""
    s = kernel_server
    attacks = (
        # a line that is not the interpreter's to every descriptor that takes one
        "import os, time\nfor fd in range(3, 256):\n    try:\n        os.write(fd, b'not json\\n')\n"
        "    except OSError:\n        pass\ntime.sleep(0.5)\n",
        # every descriptor past stderr closed
        "import os\nos.closerange(3, 256)\n",
        # a line without an end past the agent's bound
        "import os\nfor fd in range(3, 256):\n    try:\n"
        "        for _ in range(32):\n            os.write(fd, b'x' * 65536)\n    except OSError:\n"
        "        pass\n",
    )
    for attack in attacks:
        ok(call(s, sid, "secret = 1"))
        res = call(s, sid, attack, timeout=10)
        assert res["interpreter_lost"] is True, short(res)
        ok(call(s, sid, "'secret' in globals()"), result="False")
        ok(call(s, sid, "print('still here')"), stdout="still here\n")


def test_reset_starts_a_new_interpreter_and_keeps_the_files(kernel_server, sid):
    s = kernel_server
    ok(call(s, sid, "z = 5\nopen('keep.txt', 'w').write('kept')"), result="4")
    r = requests.post(f"{s.url}/sessions/{sid}/reset", timeout=60)
    assert r.status_code == 200 and r.json()["message"] == f"session '{sid}': a new interpreter", r.text
    res = call(s, sid, "z")
    assert res["status"] == "failed" and "NameError" in res["stderr"], short(res)
    ok(call(s, sid, "open('keep.txt').read()"), result="'kept'")
    r = requests.post(f"{s.url}/sessions/se_000000000000000000000000/reset", timeout=60)
    assert r.status_code == 404 and "detail" in r.json(), r.text


def test_a_long_result_is_cut_and_says_so(kernel_server, sid):
    res = call(kernel_server, sid, "'a' * 20000")
    assert res["success"], short(res)
    assert res["result"] == "'" + "a" * 16383 + "... (20002 characters; the first 16384 shown)", \
        res["result"][-80:]


def count_processes():
    return "import os\nlen([p for p in os.listdir('/proc') if p.isdigit()])"


def test_background_processes_end_with_their_call_unless_kept(kernel_server, sid):
    s = kernel_server
    ok(call(s, sid, "import subprocess\nsubprocess.Popen(['sleep', '300'])\nNone"))
    # the agent and the interpreter, nothing else
    ok(call(s, sid, count_processes()), result="2")
    kept = open_session(s, {"keep_processes": True})
    try:
        assert kept["keep_processes"] is True, kept
        ok(call(s, kept["id"], "import subprocess\np = subprocess.Popen(['sleep', '300'])\nNone"))
        ok(call(s, kept["id"], count_processes()), result="3")
        ok(call(s, kept["id"], "p.poll() is None"), result="True")
    finally:
        close(s, kept["id"])


def test_concurrent_sessions_keep_their_own_state(kernel_server):
    s = kernel_server
    sids = [open_session(s, {})["id"] for _ in range(3)]
    errors = []

    def work(i, sid):
        try:
            ok(call(s, sid, f"total = {i * 1000}"))
            for k in range(1, 16):
                res = call(s, sid, "total += 1\ntotal")
                if res.get("result") != str(i * 1000 + k):
                    errors.append((i, k, short(res)))
        except AssertionError as e:
            errors.append((i, str(e)))

    try:
        threads = [threading.Thread(target=work, args=(i, sid)) for i, sid in enumerate(sids)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
    finally:
        for sid in sids:
            close(s, sid)


def test_by_exec_each_call_is_a_process_of_its_own(envhub_module_factory):
    s = envhub_module_factory("--pool-size", "0", "--job-transport", "exec")
    info = open_session(s, {})
    try:
        assert info["stateful"] is False, info
        assert call(s, info["id"], "x = 1\nprint(x)")["stdout"] == "1\n"
        res = call(s, info["id"], "print(x)")
        assert res["status"] == "failed" and "NameError" in res["stderr"], short(res)
        assert res["result"] is None and res["interpreter_lost"] is False, short(res)
        r = requests.post(f"{s.url}/sessions/{info['id']}/reset", timeout=60)
        assert r.status_code == 200, r.text
    finally:
        close(s, info["id"])


def test_keep_processes_must_be_a_boolean(kernel_server):
    r = requests.post(f"{kernel_server.url}/sessions", json={"keep_processes": "yes"}, timeout=30)
    assert r.status_code == 422 and r.json()["detail"] == "keep_processes: must be true or false", r.text

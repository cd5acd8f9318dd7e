"""POST /execute: the SimplePySandbox response for ordinary jobs."""

import json
import threading

import requests

from helpers import (EXTRA_FIELDS, MAX_CODE_BYTES, b64, catalog_row, execute, post_execute, short)


def test_hello_world_answers_the_exact_compatible_response(envhub):
    r = post_execute(envhub, {"code": 'print("Hello, World!")', "timeout": 30})
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith("application/json")
    res = r.json()
    assert res["success"] is True, short(res)
    assert res["stdout"] == "Hello, World!\n"
    assert res["stderr"] == ""
    assert res["files"] == {}
    assert res["error"] is None
    assert isinstance(res["execution_time"], float) and res["execution_time"] > 0
    # envhub's extras
    assert not EXTRA_FIELDS - set(res), f"missing extras {sorted(EXTRA_FIELDS - set(res))}"
    assert isinstance(res["id"], str) and res["id"].startswith("ex_")
    assert res["status"] == "succeeded"
    assert res["exit_code"] == 0
    assert res["stdout_truncated"] is False and res["stderr_truncated"] is False
    assert res["files_skipped"] == []


def test_timeout_defaults_to_30_seconds(envhub):
    res = execute(envhub, "print(1)")
    assert res["success"] is True, short(res)
    row = catalog_row(envhub.db_path, res["id"])
    assert row is not None and row["timeout_s"] == 30


def test_stdout_and_stderr_are_kept_apart(envhub):
    code = (
        "import sys\n"
        "for i in range(50):\n"
        "    print(f'out {i}', flush=True)\n"
        "    print(f'err {i}', file=sys.stderr, flush=True)\n"
    )
    res = execute(envhub, code, timeout=10)
    assert res["success"] is True, short(res)
    assert res["stdout"] == "".join(f"out {i}\n" for i in range(50))
    assert res["stderr"] == "".join(f"err {i}\n" for i in range(50))


def test_exception_fails_with_the_traceback_in_stderr(envhub):
    res = execute(envhub, "def f():\n    raise ValueError('boom')\nf()\n", timeout=10)
    assert res["success"] is False
    assert res["status"] == "failed"
    assert res["exit_code"] == 1
    assert res["error"] == "代码执行失败，退出码: 1"
    assert "Traceback (most recent call last)" in res["stderr"]
    assert "ValueError: boom" in res["stderr"]
    assert res["stdout"] == ""


def test_syntax_error_fails_with_200_and_the_message_in_stderr(envhub):
    res = execute(envhub, "print('unclosed'\n", timeout=10)
    assert res["success"] is False and res["status"] == "failed", short(res)
    assert "SyntaxError" in res["stderr"]


def test_sys_exit_3_reports_exit_code_3(envhub):
    res = execute(envhub, "import sys\nprint('before')\nsys.exit(3)\n", timeout=10)
    assert res["success"] is False
    assert res["error"] == "代码执行失败，退出码: 3"
    assert res["exit_code"] == 3
    assert res["status"] == "failed"
    assert res["stdout"] == "before\n"


def test_unicode_output_round_trips(envhub):
    res = execute(envhub, "import sys\nprint('你好, wörld ✓')\nprint('错误', file=sys.stderr)\n", timeout=10)
    assert res["success"] is True, short(res)
    assert res["stdout"] == "你好, wörld ✓\n"
    assert res["stderr"] == "错误\n"


def test_invalid_utf8_output_still_gives_a_json_answer(envhub):
    code = "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe\\x80 bad\\n')\nsys.stdout.flush()\nprint('ok')\n"
    res = execute(envhub, code, timeout=10)
    assert res["success"] is True, short(res)
    assert res["stdout"].endswith("ok\n")
    assert "bad" in res["stdout"]


def test_job_stdin_is_empty_and_does_not_hang(envhub):
    # the inputs travel on the exec's stdin as a tar stream: none of it may reach the job
    code = "import sys\ndata = sys.stdin.buffer.read()\nprint(len(data))\n"
    res = execute(envhub, code, timeout=10, files={"in.txt": b64("some input\n")})
    assert res["success"] is True, short(res)
    assert res["stdout"] == "0\n"


def test_code_of_exactly_50000_bytes_is_accepted(envhub):
    head = "print('long')\n"
    code = head + "#" * (MAX_CODE_BYTES - len(head) - 1) + "\n"
    assert len(code.encode()) == MAX_CODE_BYTES
    res = execute(envhub, code, timeout=10)
    assert res["success"] is True, short(res)
    assert res["stdout"] == "long\n"


def test_timeouts_1_and_300_are_accepted(envhub):
    for t in (1, 300):
        res = execute(envhub, "print('t')", timeout=t, http_timeout=60)
        assert res["success"] is True, short(res)
        assert catalog_row(envhub.db_path, res["id"])["timeout_s"] == t


def test_unknown_request_fields_are_ignored(envhub):
    res = execute(envhub, "print('x')", timeout=10, language="python", extra={"a": 1})
    assert res["success"] is True and res["stdout"] == "x\n", short(res)


def test_json_with_charset_parameter_is_accepted(envhub):
    r = requests.post(f"{envhub.url}/execute", data=json.dumps({"code": "print(7)"}).encode(),
                      headers={"Content-Type": "application/json; charset=utf-8"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "7\n"


def test_12_simultaneous_requests_are_all_answered_correctly(envhub):
    n = 12
    results = [None] * n
    barrier = threading.Barrier(n)

    def worker(i):
        barrier.wait()
        try:
            r = post_execute(envhub, {"code": f"import time\ntime.sleep(0.5)\nprint({i})", "timeout": 30},
                             http_timeout=120)
            results[i] = (r.status_code, r.json() if r.status_code == 200 else r.text)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = ("exception", repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    ids = set()
    for i, got in enumerate(results):
        assert got is not None, f"request {i} never came back"
        status, res = got
        assert status == 200, f"request {i}: {status} {res}"
        assert res["success"] is True, f"request {i}: {short(res)}"
        assert res["stdout"] == f"{i}\n", f"request {i} got another job's output: {short(res)}"
        ids.add(res["id"])
    assert len(ids) == n, "execution ids are not unique"
    for ex_id in ids:
        assert catalog_row(envhub.db_path, ex_id)["status"] == "succeeded"

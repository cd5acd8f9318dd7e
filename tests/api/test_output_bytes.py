"""Output bytes exactly as written (issue 11): NUL and every other control byte of a job's
stdout and stderr come back as JSON escapes from POST /execute, a session call, GET
/executions/{id}, the live output events and the command line, are stored byte for byte in
the catalog, and the audit chain still verifies; only bytes that are not UTF-8 become
U+FFFD, one for each."""

import json
import os
import subprocess
import tempfile

import requests

import helpers
from helpers import catalog_row, execute, post_execute, short
from test_async import read_events, stream_text, submit, wait_status

CONTROL_CODE = 'import sys; sys.stdout.write("a\\x00b\\x01\\x1b[0m"); sys.stderr.write("e\\x00")'
CONTROL_OUT = "a\x00b\x01\x1b[0m"
CONTROL_ERR = "e\x00"
FINAL = ("succeeded", "failed", "timeout", "oom", "error", "interrupted")


def detail(server, eid):
    r = requests.get(f"{server.url}/executions/{eid}", timeout=30)
    assert r.status_code == 200, r.text[:500]
    return r.json()


def verify_ok(server):
    r = requests.get(f"{server.url}/audit/verify", timeout=120)
    assert r.status_code == 200, r.text[:500]
    doc = r.json()
    assert doc["ok"] is True, doc


def test_nul_and_control_bytes_come_back_exactly(envhub):
    r = post_execute(envhub, {"code": CONTROL_CODE, "timeout": 30})
    assert r.status_code == 200, r.text
    # JSON escapes on the wire, never a raw NUL nor U+FFFD
    assert b"\x00" not in r.content and "\\ufffd" not in r.text.lower(), r.text
    assert '"a\\u0000b\\u0001\\u001b[0m"' in r.text.lower(), r.text
    res = r.json()
    assert res["success"] is True, short(res)
    assert res["stdout"] == CONTROL_OUT and res["stderr"] == CONTROL_ERR, short(res)

    d = detail(envhub, res["id"])
    assert d["stdout"] == CONTROL_OUT and d["stderr"] == CONTROL_ERR, d
    # the catalog holds every byte, as text
    row = catalog_row(envhub.db_path, res["id"])
    assert row["stdout"] == CONTROL_OUT and row["stderr"] == CONTROL_ERR, row
    # the chain covers them all and still holds
    verify_ok(envhub)


def test_exports_list_the_execution_with_its_link(envhub):
    """The exports carry a list item's columns (no output): the execution is there with
    the chain link that hashes its output bytes."""
    res = execute(envhub, CONTROL_CODE, timeout=30)
    assert res["stdout"] == CONTROL_OUT, short(res)
    d = detail(envhub, res["id"])
    params = {"code_sha256": d["code_sha256"]}
    r = requests.get(f"{envhub.url}/executions/export", params=dict(params, format="jsonl"), timeout=60)
    assert r.status_code == 200, r.text[:500]
    rows = {row["id"]: row for row in map(json.loads, r.text.splitlines())}
    assert rows[res["id"]]["chain_hash"] == d["chain_hash"], rows[res["id"]]
    assert "stdout" not in rows[res["id"]]
    r = requests.get(f"{envhub.url}/executions/export", params=dict(params, format="csv"), timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert f"{res['id']}," in r.text and d["chain_hash"] in r.text
    verify_ok(envhub)


def test_every_control_byte_survives(envhub):
    code = "import sys; sys.stdout.buffer.write(bytes(range(32)) + b'\\x7f'); sys.stderr.buffer.write(b'\\x00' * 3)"
    res = execute(envhub, code, timeout=30)
    assert res["success"] is True, short(res)
    assert res["stdout"] == "".join(map(chr, range(32))) + "\x7f", short(res)
    assert res["stderr"] == "\x00\x00\x00", short(res)
    assert detail(envhub, res["id"])["stdout"] == res["stdout"]


def test_invalid_utf8_is_repaired_byte_by_byte(envhub):
    res = execute(envhub, 'import sys; sys.stdout.buffer.write(b"a\\xffb")', timeout=30)
    assert res["stdout"] == "a\ufffdb", short(res)
    # NUL beside a bad byte stays; a cut sequence is one U+FFFD per byte; good text is kept
    code = ("import sys\n"
            "sys.stdout.buffer.write(b'\\x00\\xff\\x00|\\xe2\\x82|\\xc3\\xa9\\xe2\\x82\\xac\\xf0\\x9f\\x98\\x80')\n"
            "sys.stderr.buffer.write(b'\\xed\\xa0\\x80\\x00')\n")
    res = execute(envhub, code, timeout=30)
    assert res["stdout"] == "\x00\ufffd\x00|\ufffd\ufffd|\u00e9\u20ac\U0001F600", short(res)
    assert res["stderr"] == "\ufffd\ufffd\ufffd\x00", short(res)
    d = detail(envhub, res["id"])
    assert d["stdout"] == res["stdout"] and d["stderr"] == res["stderr"]
    verify_ok(envhub)


def test_a_capped_stderr_never_shows_the_status_report(envhub_factory):
    """The wrapper's report ("\\0envhub-status ...\\0") follows the job's stderr: when the
    cap lets part of it in, that part is cut too, and only the job's own bytes count as
    truncated."""
    server = envhub_factory("--output-limit", "1k")
    for n in (1000, 1010, 1020, 1024, 1030):
        res = execute(server, f"import sys; sys.stderr.write('x' * {n})", timeout=30)
        assert res["success"] is True, short(res)
        assert res["stderr"] == "x" * min(n, 1024), (n, res["stderr"][-40:])
        assert res["stderr_truncated"] is (n > 1024), (n, short(res))
        assert detail(server, res["id"])["stderr"] == res["stderr"]
    verify_ok(server)


def test_a_session_call_keeps_the_bytes(envhub):
    r = requests.post(f"{envhub.url}/sessions", json={}, timeout=60)
    assert r.status_code == 201, r.text[:500]
    sid = r.json()["id"]
    try:
        r = requests.post(f"{envhub.url}/sessions/{sid}/execute", json={"code": CONTROL_CODE}, timeout=90)
        assert r.status_code == 200, r.text[:1000]
        res = r.json()
        assert res["stdout"] == CONTROL_OUT and res["stderr"] == CONTROL_ERR, short(res)
        d = detail(envhub, res["id"])
        assert d["stdout"] == CONTROL_OUT and d["stderr"] == CONTROL_ERR, d
    finally:
        requests.delete(f"{envhub.url}/sessions/{sid}", timeout=60)


# a character written in two halves, NUL and escape codes, while a follower reads
LIVE_CODE = ("import sys, time\n"
             "o = sys.stdout.buffer\n"
             "time.sleep(1)\n"
             "o.write(b'start\\x00\\x1b[1m'); o.flush(); time.sleep(0.4)\n"
             "o.write(b'\\xe2\\x82'); o.flush(); time.sleep(0.4)\n"
             "o.write(b'\\xac end\\x00'); o.flush(); time.sleep(0.4)\n"
             "sys.stderr.write('e\\x00'); sys.stderr.flush()\n")
LIVE_OUT = "start\x00\x1b[1m\u20ac end\x00"


def test_async_result_and_live_events_carry_the_bytes(envhub):
    eid = submit(envhub, {"code": LIVE_CODE, "timeout": 30})["id"]
    _h, events, _c = read_events(envhub, eid)  # follows from queued to the end
    assert events and events[-1][1] == "end", events
    assert stream_text(events, "stdout") == LIVE_OUT, events
    assert stream_text(events, "stderr") == "e\x00", events
    assert all("\\ufffd" not in d.lower() for _t, _e, d in events), events
    x = wait_status(envhub, eid, FINAL)
    assert x["status"] == "succeeded", short(x)
    d = detail(envhub, eid)
    assert d["stdout"] == LIVE_OUT and d["stderr"] == "e\x00", d
    # a finished job's stored output as events: the same bytes
    _h, events, _c = read_events(envhub, eid, within=20, query="")
    assert stream_text(events, "stdout") == LIVE_OUT and stream_text(events, "stderr") == "e\x00", events
    verify_ok(envhub)


def test_the_command_line_prints_the_bytes(envhub_bin, envhub):
    env = dict(helpers.server_env(), ENVHUB_URL=envhub.url)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "job.py")
        with open(path, "w") as f:
            f.write(CONTROL_CODE)
        r = subprocess.run([envhub_bin, "run", path], capture_output=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == CONTROL_OUT.encode() and r.stderr == CONTROL_ERR.encode(), r
    res = execute(envhub, CONTROL_CODE, timeout=30)
    r = subprocess.run([envhub_bin, "history", "show", res["id"]], capture_output=True, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert b"---- stdout ----\n" + CONTROL_OUT.encode() + b"\n---- stderr ----\n" + \
        CONTROL_ERR.encode() + b"\n" in r.stdout, r.stdout

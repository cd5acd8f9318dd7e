"""Sessions (issue 7): one container kept for a conversation; calls share /workspace,
one call at a time; files up and down; a per-call timeout kills only that call; an idle
reaper closes sessions past their idle timeout and removes the container; a limit on open
sessions per caller; every call is an execution row with the session's id."""

import hashlib
import re
import threading
import time

import pytest
import requests

from helpers import (DEFAULT_IMAGE, WHOAMI_CODE, b64, catalog_row, connect_ro, container_exists, describe_containers,
                     instance_label, labelled_containers, parse_iso, running_containers, served_by,
                     short, unb64, wait_until, whoami)
from test_validation import assert_detail

SESSION_FIELDS = {"id", "principal", "environment", "environment_version", "image", "created_at",
                  "last_activity", "idle_timeout", "calls", "busy"}
REAPER_INTERVAL = 1


@pytest.fixture(scope="module")
def ses(envhub_module_factory):
    """A server whose idle reaper checks every second."""
    server = envhub_module_factory("--reaper-interval", str(REAPER_INTERVAL))
    server.instance = instance_label(server)
    return server


def open_session(server, body=None, expect=201):
    r = requests.post(f"{server.url}/sessions", json=body if body is not None else {}, timeout=60)
    assert r.status_code == expect, f"POST /sessions {body} answered {r.status_code}: {r.text[:1000]}"
    return r.json()


def call(server, sid, code, timeout=None, http_timeout=None, **extra):
    """POST /sessions/{sid}/execute; asserts 200; returns the answer."""
    body = {"code": code}
    if timeout is not None:
        body["timeout"] = timeout
    body.update(extra)
    r = requests.post(f"{server.url}/sessions/{sid}/execute", json=body,
                      timeout=http_timeout or (timeout or 30) + 60)
    assert r.status_code == 200, f"session call answered {r.status_code}: {r.text[:2000]}"
    return r.json()


def close(server, sid):
    return requests.delete(f"{server.url}/sessions/{sid}", timeout=60)


def session_row(server, sid):
    conn = connect_ro(server.db_path)
    try:
        row = conn.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
        return dict(row) if row else None
    finally:
        conn.close()


def container_of(server, sid):
    """The full id of the container a session's calls run in (from a call)."""
    res = call(server, sid, WHOAMI_CODE, timeout=20)
    assert res["success"], short(res)
    me = whoami(res["stdout"])
    cid = served_by(me, running_containers(server.instance))
    assert cid, f"the session's container {me} is not among the server's running containers"
    return cid


@pytest.fixture
def session(ses):
    """An open session on `ses`, closed at the end of the test."""
    s = open_session(ses, {"idle_timeout": 600})
    yield s
    close(ses, s["id"])


# ---------------------------------------------------------------- open, list, get

def test_open_answers_201_with_the_session(ses):
    s = open_session(ses, {"idle_timeout": 120})
    try:
        assert set(s) >= SESSION_FIELDS, f"missing {sorted(SESSION_FIELDS - set(s))}: {s}"
        assert re.fullmatch(r"se_[0-9a-f]{24}", s["id"]), s["id"]
        assert s["principal"] == "127.0.0.1", s  # open mode: the client address
        assert s["environment"] is None and s["environment_version"] == 0, s
        assert s["image"] == DEFAULT_IMAGE, s
        assert s["idle_timeout"] == 120 and s["calls"] == 0 and s["busy"] is False, s
        parse_iso(s["created_at"])
        parse_iso(s["last_activity"])

        r = requests.get(f"{ses.url}/sessions/{s['id']}", timeout=30)
        assert r.status_code == 200 and r.json()["id"] == s["id"], r.text
        r = requests.get(f"{ses.url}/sessions", timeout=30)
        assert r.status_code == 200, r.text
        listing = r.json()
        assert listing["total"] == len(listing["sessions"]) and s["id"] in [x["id"] for x in listing["sessions"]], listing

        row = session_row(ses, s["id"])
        assert row and row["principal"] == "127.0.0.1" and row["environment"] is None, row
        assert row["image"] == DEFAULT_IMAGE and row["idle_timeout_s"] == 120, row
        assert row["closed_at"] is None and row["close_reason"] is None, row
    finally:
        close(ses, s["id"])


def test_idle_timeout_defaults_to_3600_seconds(ses):
    s = open_session(ses)
    try:
        assert s["idle_timeout"] == 3600, s
    finally:
        close(ses, s["id"])


@pytest.mark.parametrize("body, status", [
    ({"idle_timeout": 0}, 422), ({"idle_timeout": "10"}, 422), ({"environment": 5}, 422),
    ({"environment": "no-such-environment"}, 404), ({"idle_timeout": 10 ** 7}, 400),
], ids=["idle_0", "idle_string", "env_number", "env_unknown", "idle_over_max"])
def test_bad_open_requests_are_refused(ses, body, status):
    before = len(requests.get(f"{ses.url}/sessions", timeout=30).json()["sessions"])
    r = requests.post(f"{ses.url}/sessions", json=body, timeout=30)
    assert_detail(r, status, None)
    assert len(requests.get(f"{ses.url}/sessions", timeout=30).json()["sessions"]) == before


def test_unknown_sessions_are_404(ses):
    sid = "se_" + "0" * 24
    for method, path, kw in (("GET", f"/sessions/{sid}", {}),
                             ("DELETE", f"/sessions/{sid}", {}),
                             ("POST", f"/sessions/{sid}/execute", {"json": {"code": "print(1)"}}),
                             ("PUT", f"/sessions/{sid}/files/a.txt", {"data": b"x"}),
                             ("GET", f"/sessions/{sid}/files/a.txt", {})):
        r = requests.request(method, ses.url + path, timeout=30, **kw)
        assert_detail(r, 404, None)


# ---------------------------------------------------------------- calls share the workspace

def test_state_persists_across_calls(ses, session):
    sid = session["id"]
    first = call(ses, sid, "import socket\nopen('state.txt', 'w').write('from call 1')\n"
                           "open('/tmp/t.txt', 'w').write('tmp 1')\nprint(socket.gethostname())\n", timeout=20)
    assert first["success"] is True and first["session_id"] == sid, short(first)
    assert set(first) >= {"success", "stdout", "stderr", "execution_time", "files", "error", "id", "status",
                          "exit_code"}, sorted(first)
    assert unb64(first["files"]["state.txt"]) == b"from call 1", short(first)

    second = call(ses, sid, "import socket, os\nprint(open('state.txt').read())\nprint(open('/tmp/t.txt').read())\n"
                            "open('two.txt', 'w').write('2')\nprint(socket.gethostname())\n", timeout=20,
                  files={"in.txt": b64("input of call 2")})
    assert second["success"] is True, short(second)
    lines = second["stdout"].splitlines()
    assert lines[:2] == ["from call 1", "tmp 1"], short(second)
    assert lines[2] == first["stdout"].strip(), "the calls of one session ran in different containers"
    # the workspace comes back whole: what earlier calls wrote, this call's input and output
    assert {"state.txt", "two.txt", "in.txt"} <= set(second["files"]), sorted(second["files"])
    third = call(ses, sid, "print(open('in.txt').read())", timeout=20)
    assert third["stdout"] == "input of call 2\n", short(third)

    info = requests.get(f"{ses.url}/sessions/{sid}", timeout=30).json()
    assert info["calls"] == 3 and info["busy"] is False, info
    # every call is an execution tied to the session
    for res in (first, second, third):
        row = catalog_row(ses.db_path, res["id"])
        assert row and row["session_id"] == sid and row["status"] == "succeeded", row


def test_a_call_that_fails_keeps_the_session(ses, session):
    sid = session["id"]
    call(ses, sid, "open('keep.txt', 'w').write('k')", timeout=20)
    res = call(ses, sid, "raise SystemExit(4)", timeout=20)
    assert res["success"] is False and res["exit_code"] == 4 and res["status"] == "failed", short(res)
    res = call(ses, sid, "print(open('keep.txt').read())", timeout=20)
    assert res["stdout"] == "k\n", short(res)


def test_environment_in_a_call_is_400(ses, session):
    r = requests.post(f"{ses.url}/sessions/{session['id']}/execute",
                      json={"code": "print(1)", "environment": "anything"}, timeout=30)
    assert_detail(r, 400, None)


# ---------------------------------------------------------------- files up and down

def test_files_go_up_and_down(ses, session):
    sid = session["id"]
    blob = bytes(range(256)) * 40 + b"\x00end"
    r = requests.put(f"{ses.url}/sessions/{sid}/files/data/in/blob.bin", data=blob,
                     headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"path": "data/in/blob.bin", "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    # any content type
    r = requests.put(f"{ses.url}/sessions/{sid}/files/notes.txt", data="ünïcode\n".encode(),
                     headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=30)
    assert r.status_code == 200 and r.json()["size"] == len("ünïcode\n".encode()), r.text

    res = call(ses, sid, "import hashlib\nd = open('data/in/blob.bin', 'rb').read()\n"
                         "print(len(d), hashlib.sha256(d).hexdigest())\nprint(open('notes.txt').read(), end='')\n"
                         "import os\nos.makedirs('out/deep', exist_ok=True)\n"
                         "open('out/deep/result.bin', 'wb').write(d[::-1])\n", timeout=20)
    assert res["success"], short(res)
    assert res["stdout"] == f"{len(blob)} {hashlib.sha256(blob).hexdigest()}\nünïcode\n", short(res)

    r = requests.get(f"{ses.url}/sessions/{sid}/files/out/deep/result.bin", timeout=30)
    assert r.status_code == 200, r.text
    assert r.content == blob[::-1]
    r = requests.get(f"{ses.url}/sessions/{sid}/files/data/in/blob.bin", timeout=30)
    assert r.status_code == 200 and r.content == blob
    r = requests.get(f"{ses.url}/sessions/{sid}/files/missing.txt", timeout=30)
    assert_detail(r, 404, None)
    # replacing a file
    r = requests.put(f"{ses.url}/sessions/{sid}/files/notes.txt", data=b"v2", timeout=30)
    assert r.status_code == 200, r.text
    assert requests.get(f"{ses.url}/sessions/{sid}/files/notes.txt", timeout=30).content == b"v2"


# ---------------------------------------------------------------- timeouts, one call at a time

def test_a_timeout_kills_only_that_call_and_the_session_goes_on(ses, session):
    sid = session["id"]
    cid = container_of(ses, sid)
    call(ses, sid, "open('before.txt', 'w').write('b')", timeout=20)
    t0 = time.monotonic()
    res = call(ses, sid, "import time\nprint('started', flush=True)\ntime.sleep(30)\n", timeout=2)
    took = time.monotonic() - t0
    assert res["success"] is False and res["status"] == "timeout", short(res)
    assert res["error"] == "代码执行超时(2秒)", short(res)
    assert took < 15, f"a 2 s timeout took {took:.1f} s to answer"
    row = catalog_row(ses.db_path, res["id"])
    assert row["status"] == "timeout" and row["session_id"] == sid, row
    # the session and its container live on, with their files
    res = call(ses, sid, "print(open('before.txt').read())\n" + WHOAMI_CODE, timeout=20)
    assert res["success"] is True and res["stdout"].startswith("b\n"), short(res)
    assert served_by(whoami(res["stdout"]), [cid]), "the session moved to another container after a timeout"
    assert requests.get(f"{ses.url}/sessions/{sid}", timeout=30).json()["busy"] is False


def test_one_call_at_a_time(ses, session):
    sid = session["id"]
    first = {}

    def long_call():
        first["res"] = call(ses, sid, "import time\ntime.sleep(3)\nprint('long')", timeout=20)

    t = threading.Thread(target=long_call)
    t.start()
    try:
        busy = wait_until(lambda: requests.get(f"{ses.url}/sessions/{sid}", timeout=30).json()["busy"], 10)
        assert busy, "the session never showed busy during a call"
        r = requests.post(f"{ses.url}/sessions/{sid}/execute", json={"code": "print('second')"}, timeout=30)
        assert_detail(r, 409, None)
    finally:
        t.join(60)
    assert first["res"]["stdout"] == "long\n", short(first["res"])
    res = call(ses, sid, "print('after')", timeout=20)
    assert res["stdout"] == "after\n", short(res)


# ---------------------------------------------------------------- close, reap, limits

def test_delete_closes_the_session_and_removes_its_container(ses):
    s = open_session(ses, {"idle_timeout": 600})
    sid = s["id"]
    cid = container_of(ses, sid)
    r = close(ses, sid)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"message"}, r.json()
    assert_detail(requests.get(f"{ses.url}/sessions/{sid}", timeout=30), 404, None)
    assert_detail(requests.post(f"{ses.url}/sessions/{sid}/execute", json={"code": "print(1)"}, timeout=30),
                  404, None)
    assert_detail(close(ses, sid), 404, None)
    assert sid not in [x["id"] for x in requests.get(f"{ses.url}/sessions", timeout=30).json()["sessions"]]
    gone = wait_until(lambda: not container_exists(cid), 15, poll=0.2)
    assert gone, f"the container {cid[:12]} of a deleted session remains"
    row = session_row(ses, sid)
    assert row["closed_at"] is not None and row["close_reason"] == "deleted", row


def test_an_idle_session_is_reaped_and_its_container_removed(ses):
    idle = 3
    s = open_session(ses, {"idle_timeout": idle})
    sid = s["id"]
    cid = container_of(ses, sid)
    t_last = time.monotonic()  # the end of the last call
    reaped = wait_until(lambda: requests.get(f"{ses.url}/sessions/{sid}", timeout=30).status_code == 404,
                        idle + REAPER_INTERVAL + 8, poll=0.25)
    waited = time.monotonic() - t_last
    assert reaped, f"a session idle for {waited:.1f} s (idle_timeout {idle} s) was not reaped"
    assert waited >= idle - 0.5, f"the session was reaped after {waited:.1f} s, before its idle timeout of {idle} s"
    gone = wait_until(lambda: not container_exists(cid), 15, poll=0.2)
    assert gone, f"the container {cid[:12]} of a reaped session remains"
    row = session_row(ses, sid)
    assert row["closed_at"] is not None and row["close_reason"] == "idle", row


def test_activity_keeps_a_session_from_the_reaper(ses):
    """Calls within the idle timeout, and a call running longer than it, are activity."""
    idle = 2
    s = open_session(ses, {"idle_timeout": idle})
    sid = s["id"]
    try:
        for i in range(3):  # calls 0.8 s apart for 3 s: never idle for 2 s
            res = call(ses, sid, f"print({i})", timeout=20)
            assert res["stdout"] == f"{i}\n", short(res)
            time.sleep(0.8)
        res = call(ses, sid, "import time\ntime.sleep(3.5)\nprint('long')", timeout=20)
        assert res["success"] and res["stdout"] == "long\n", short(res)
        r = requests.get(f"{ses.url}/sessions/{sid}", timeout=30)
        assert r.status_code == 200, f"the session was reaped while it was active: {r.text}"
        res = call(ses, sid, "print('still here')", timeout=20)
        assert res["stdout"] == "still here\n", short(res)
    finally:
        close(ses, sid)


def test_open_sessions_per_caller_are_limited(envhub_module_factory):
    server = envhub_module_factory("--sessions-per-principal", "2", "--pool-size", "0")
    ids = [open_session(server)["id"] for _ in range(2)]
    r = requests.post(f"{server.url}/sessions", json={}, timeout=30)
    assert_detail(r, 429, None)
    assert "2" in r.json()["detail"], r.json()
    assert requests.get(f"{server.url}/sessions", timeout=30).json()["total"] == 2
    assert close(server, ids[0]).status_code == 200
    ids[0] = open_session(server)["id"]  # room again
    for sid in ids:
        assert close(server, sid).status_code == 200


def test_sessions_are_closed_and_their_containers_removed_on_shutdown(envhub_factory):
    server = envhub_factory("--pool-size", "0")
    server.instance = instance_label(server)
    sid = open_session(server)["id"]
    container_of(server, sid)
    status, killed = server.stop()
    assert not killed and status == 0, f"envhub exited {status} (killed: {killed})"
    left = wait_until(lambda: not labelled_containers(server.instance), 3, poll=0.2)
    assert left, f"the session's container remains: {describe_containers(labelled_containers(server.instance))}"
    row = session_row(server, sid)
    assert row["closed_at"] is not None and row["close_reason"] == "envhub stopped", row

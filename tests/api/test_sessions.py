"""Sessions (issue 7): one container kept for a conversation; calls share /workspace,
one call at a time; files up and down; a per-call timeout kills only that call; an idle
reaper closes sessions past their idle timeout and removes the container; a limit on open
sessions per caller; every call is an execution row with the session's id.
Issue 13: the limit holds under concurrent opens; an open session holds one of its key's
concurrent executions (max_concurrent) until it ends; an ended session leaves nothing
running."""

import hashlib
import re
import threading
import time

import pytest
import requests

from helpers import (DEFAULT_IMAGE, WHOAMI_CODE, b64, bearer, catalog_row, connect_ro, container_exists,
                     create_key, describe_containers, docker_api, instance_label, labelled_containers,
                     parse_iso, running_containers, served_by, short, unb64, wait_until, whoami)
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


# ---------------------------------------------------------------- quotas (issue 13)

def _post(server, path, secret, body=None, timeout=60):
    return requests.post(f"{server.url}{path}", json=body if body is not None else {}, headers=bearer(secret),
                         timeout=timeout)


def _close_all(server, secret):
    """Closes every session the key sees; asserts each close."""
    r = requests.get(f"{server.url}/sessions", headers=bearer(secret), timeout=30)
    assert r.status_code == 200, r.text
    for s in r.json()["sessions"]:
        rc = requests.delete(f"{server.url}/sessions/{s['id']}", headers=bearer(secret), timeout=60)
        assert rc.status_code == 200, f"closing {s['id']}: {rc.status_code} {rc.text}"


def _race(n, fn):
    """Runs fn(i) for i in range(n) on n threads released at once; the answers in order."""
    out = [None] * n
    go = threading.Barrier(n)

    def run(i):
        go.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # a transport error is an answer to look at too
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return out


@pytest.fixture(scope="module")
def quota(envhub_module_factory, envhub_bin):
    """A server with keys: `many` (a runner whose concurrency is not the limit: 50), `three`
    (max_concurrent 3), `one` (max_concurrent 1), `busy` (for the quota race); sessions per
    principal 5; no warm pool, so that every open makes its container (the slow part)."""
    keys = {}

    def make_keys(server):
        keys["many"] = create_key(envhub_bin, server.db_path, "many", "runner", max_concurrent=50,
                                  max_per_minute=0)
        keys["three"] = create_key(envhub_bin, server.db_path, "three", "runner", max_concurrent=3,
                                   max_per_minute=0)
        keys["one"] = create_key(envhub_bin, server.db_path, "one", "runner", max_concurrent=1,
                                 max_per_minute=0)
        keys["other"] = create_key(envhub_bin, server.db_path, "other", "runner", max_concurrent=50,
                                   max_per_minute=0)

    server = envhub_module_factory("--sessions-per-principal", "5", "--pool-size", "0",
                                   before_start=make_keys)
    server.keys = keys
    server.instance = instance_label(server)
    return server


def test_concurrent_opens_never_pass_the_session_limit(quota):
    """20 opens at once by one key whose limit is 5 sessions: exactly 5 open; the others are
    429 naming ENVHUB_SESSIONS_PER_PRINCIPAL, and their containers were never made."""
    k = quota.keys["many"]
    before = {c["Id"] for c in labelled_containers(quota.instance)}
    try:
        answers = _race(20, lambda i: _post(quota, "/sessions", k, {"idle_timeout": 600}))
        errors = [a for a in answers if isinstance(a, Exception)]
        assert not errors, f"requests failed: {errors[:3]}"
        opened = [a for a in answers if a.status_code == 201]
        refused = [a for a in answers if a.status_code != 201]
        assert len(opened) == 5, (f"20 opens at once with a limit of 5 opened {len(opened)}: "
                                  f"{sorted(a.status_code for a in answers)}")
        for r in refused:
            assert_detail(r, 429, ["ENVHUB_SESSIONS_PER_PRINCIPAL"])
        listed = requests.get(f"{quota.url}/sessions", headers=bearer(k), timeout=30).json()
        assert listed["total"] == 5, listed
        # a session's container each, no more: a refused open made none
        made = {c["Id"] for c in labelled_containers(quota.instance)} - before
        assert len(made) == 5, f"{len(made)} containers made for 5 sessions: {describe_containers(made)}"
        # closing gives the slot back
        sid = opened[0].json()["id"]
        assert requests.delete(f"{quota.url}/sessions/{sid}", headers=bearer(k), timeout=60).status_code == 200
        again = _post(quota, "/sessions", k, {"idle_timeout": 600})
        assert again.status_code == 201, f"no room after a close: {again.status_code} {again.text}"
    finally:
        _close_all(quota, k)


def test_sessions_and_executions_together_stay_within_max_concurrent(quota):
    """Key `three` (max_concurrent 3) races 6 session opens and 6 executions of 4 s: all are
    admitted within a second, so at most 3 may be, sessions and executions together; the
    others are 429 naming the quota. While its 3 slots are taken, nothing more starts."""
    k = quota.keys["three"]

    def one(i):
        if i % 2:
            return ("session", _post(quota, "/sessions", k, {"idle_timeout": 600}))
        return ("execute", _post(quota, "/execute", k, {"code": "import time\ntime.sleep(4)\nprint('ran')",
                                                        "timeout": 30}))

    try:
        answers = _race(12, one)
        errors = [a for a in answers if isinstance(a, Exception)]
        assert not errors, f"requests failed: {errors[:3]}"
        ok = [(what, r) for what, r in answers if r.status_code in (200, 201)]
        refused = [(what, r) for what, r in answers if r.status_code not in (200, 201)]
        summary = sorted((what, r.status_code) for what, r in answers)
        assert len(ok) <= 3, f"key with max_concurrent 3 got {len(ok)} sessions and executions at once: {summary}"
        assert len(ok) == 3, f"key with max_concurrent 3 got only {len(ok)} of 12 admitted: {summary}"
        for what, r in refused:
            detail = assert_detail(r, 429, ["max_concurrent"])
            assert "quota" in detail, detail
        sessions = [r.json()["id"] for what, r in ok if what == "session"]
        # the executions are over now; the sessions still hold their slots
        held = len(sessions)
        for _ in range(3 - held):
            r = _post(quota, "/sessions", k, {"idle_timeout": 600})
            assert r.status_code == 201, f"a free slot was refused: {r.status_code} {r.text}"
            sessions.append(r.json()["id"])
        assert_detail(_post(quota, "/execute", k, {"code": "print(1)"}), 429, ["max_concurrent"])
        assert_detail(_post(quota, "/sessions", k, {}), 429, ["max_concurrent"])
        # closing a session gives its slot back
        assert requests.delete(f"{quota.url}/sessions/{sessions[0]}", headers=bearer(k),
                               timeout=60).status_code == 200
        r = _post(quota, "/execute", k, {"code": "print('room')"})
        assert r.status_code == 200 and r.json()["stdout"] == "room\n", f"{r.status_code} {r.text[:500]}"
    finally:
        _close_all(quota, k)


def test_a_sessions_calls_run_within_the_slot_its_open_took(quota):
    """Key `one` (max_concurrent 1): its open session takes the one slot; calls in it run,
    an /execute beside it is 429; once it is closed, /execute runs."""
    k = quota.keys["one"]
    try:
        r = _post(quota, "/sessions", k, {"idle_timeout": 600})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        c = _post(quota, f"/sessions/{sid}/execute", k, {"code": "print('in session')"})
        assert c.status_code == 200 and c.json()["stdout"] == "in session\n", f"{c.status_code} {c.text[:500]}"
        assert_detail(_post(quota, "/execute", k, {"code": "print(1)"}), 429, ["max_concurrent"])
        assert_detail(_post(quota, "/sessions", k, {}), 429, ["max_concurrent"])
        assert requests.delete(f"{quota.url}/sessions/{sid}", headers=bearer(k), timeout=60).status_code == 200
        r = _post(quota, "/execute", k, {"code": "print('free')"})
        assert r.status_code == 200 and r.json()["stdout"] == "free\n", f"{r.status_code} {r.text[:500]}"
    finally:
        _close_all(quota, k)


def test_a_reaped_session_gives_its_slot_back(envhub_module_factory, envhub_bin):
    keys = {}

    def make_keys(server):
        keys["one"] = create_key(envhub_bin, server.db_path, "one", "runner", max_concurrent=1,
                                 max_per_minute=0)

    server = envhub_module_factory("--reaper-interval", "1", "--pool-size", "0", before_start=make_keys)
    k = keys["one"]
    r = _post(server, "/sessions", k, {"idle_timeout": 1})
    assert r.status_code == 201, r.text
    assert_detail(_post(server, "/execute", k, {"code": "print(1)"}), 429, ["max_concurrent"])
    reaped = wait_until(lambda: requests.get(f"{server.url}/sessions", headers=bearer(k),
                                             timeout=30).json()["total"] == 0, 15, poll=0.25)
    assert reaped, "the idle session was not reaped"
    # the slot comes back once its container is killed, just after it left the list
    r = wait_until(lambda: (lambda a: a if a.status_code != 429 else None)(
        _post(server, "/execute", k, {"code": "print('free')"})), 5, poll=0.2)
    assert r and r.status_code == 200, "the reaped session still holds the key's slot"


# ---------------------------------------------------------------- what a session leaves (issue 13)

BACKGROUND = """
import subprocess
p = subprocess.Popen(['sh', '-c', 'while :; do sleep 1; done'], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(p.pid)
"""


def _processes(cid):
    """The engine's view of the processes in container `cid`: a list, or None when it
    runs no more (gone, or stopped)."""
    status, doc = docker_api("GET", f"/v1.41/containers/{cid}/json")
    if status == 404 or not doc["State"]["Running"]:
        return None
    status, doc = docker_api("GET", f"/v1.41/containers/{cid}/top")
    if status != 200:
        return None
    return doc.get("Processes") or []


def _start_background(server, sid):
    """A background loop in session `sid` (opened with keep_processes: else the loop ends
    with its call); returns its container, with the loop running."""
    cid = container_of(server, sid)
    res = call(server, sid, BACKGROUND, timeout=20)
    assert res["success"], short(res)
    procs = _processes(cid)
    assert procs and any("while" in " ".join(p) for p in procs), f"the background loop does not run: {procs}"
    return cid


def test_closing_a_session_ends_its_processes_before_the_answer(ses):
    """A session's call leaves a background loop; when DELETE answers, the loop and its
    container run no more (the close kills the container; its removal comes later). Three
    sessions, each checked the moment its close is answered."""
    sids = [open_session(ses, {"idle_timeout": 600, "keep_processes": True})["id"] for _ in range(3)]
    try:
        cids = [_start_background(ses, sid) for sid in sids]
        for sid, cid in zip(sids, cids):
            assert close(ses, sid).status_code == 200
            left = _processes(cid)
            assert not left, f"processes of the closed session {sid} still run in {cid[:12]}: {left}"
    finally:
        for sid in sids:
            close(ses, sid)


def test_a_reaped_session_leaves_no_process_running(ses):
    s = open_session(ses, {"idle_timeout": 2, "keep_processes": True})
    sid = s["id"]
    cid = _start_background(ses, sid)
    assert wait_until(lambda: requests.get(f"{ses.url}/sessions/{sid}", timeout=30).status_code == 404,
                      2 + REAPER_INTERVAL + 8, poll=0.1), "the idle session was not reaped"
    # the 404 comes once the reaper unlinked it; the kill follows at once
    wait_until(lambda: not _processes(cid), 3, poll=0.1)
    left = _processes(cid)
    assert not left, f"processes of the reaped session still run in {cid[:12]}: {left}"

"""Asynchronous and batch submissions (issue 7): POST /executions answers 202 queued and
the job moves queued -> running -> final; cancel of queued and running jobs; batches of up
to 20; result callbacks to a listener on 127.0.0.1 with retries; live output as
server-sent events.

Callback URLs naming host names the server must refuse are sent only in batches that
cannot be submitted (an invalid job follows), so a server that wrongly accepted one would
still send no traffic off this host."""

import http.client
import http.server
import json
import re
import threading
import time

import pytest
import requests

from helpers import (WHOAMI_CODE, catalog_row, count_rows, get_metrics, instance_label, parse_iso, post_execute,
                     running_containers, served_by, short, wait_until, whoami)
from test_validation import assert_detail

FINAL = ("succeeded", "failed", "timeout", "oom", "error", "interrupted")
CALLBACK_FIELDS = {"id", "status", "success", "exit_code", "stdout", "stderr", "execution_time", "error",
                   "finished_at", "files", "environment"}


@pytest.fixture(scope="module")
def aserver(envhub_module_factory):
    """A server with the default limits (10 jobs at once); callbacks may go to the test's
    listeners on loopback (listed, as ENVHUB_CALLBACK_HOSTS lists nothing by default)."""
    server = envhub_module_factory("--callback-hosts", "127.0.0.1,localhost")
    server.instance = instance_label(server)
    return server


@pytest.fixture(scope="module")
def narrow(envhub_module_factory):
    """A server that runs one job at a time: the next ones wait (queued)."""
    server = envhub_module_factory("--concurrent-limit", "1")
    server.instance = instance_label(server)
    return server


def submit(server, body, expect=202):
    r = requests.post(f"{server.url}/executions", json=body, timeout=30)
    assert r.status_code == expect, f"POST /executions answered {r.status_code}: {r.text[:1000]}"
    return r.json()


def execution(server, eid):
    """GET /executions/{id} (the catalog row when the route answers 404/405)."""
    r = requests.get(f"{server.url}/executions/{eid}", timeout=30)
    if r.status_code == 200:
        return r.json()
    assert r.status_code in (404, 405), f"GET /executions/{eid} answered {r.status_code}: {r.text[:500]}"
    row = catalog_row(server.db_path, eid)
    assert row, f"no execution {eid} in the catalog"
    return row


def status_of(server, eid):
    return execution(server, eid)["status"]


def wait_status(server, eid, statuses, within=60.0, poll=0.05):
    """Polls until the execution's status is one of `statuses`; returns the execution."""
    last = {}

    def check():
        last["x"] = execution(server, eid)
        return last["x"]["status"] in statuses

    assert wait_until(check, within, poll), \
        f"{eid} did not reach {statuses} within {within:.0f} s: {short(last.get('x') or {})}"
    return last["x"]


def cancel(server, eid):
    return requests.post(f"{server.url}/executions/{eid}/cancel", timeout=30)


def assert_cancelled(server, eid, before_it_ran):
    x = wait_status(server, eid, FINAL, within=20)
    assert x["status"] == "interrupted", f"a cancelled job ended {x['status']}: {short(x)}"
    assert (x.get("error") or "").startswith("cancelled by"), f"error of a cancelled job: {x.get('error')!r}"
    if before_it_ran:
        row = catalog_row(server.db_path, eid)
        assert row["started_at"] is None and row["stdout"] == "", f"a job cancelled in the queue ran: {row}"
    return x


SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)\nprint('not cancelled')\n"


# ---------------------------------------------------------------- lifecycle

def test_submit_answers_202_queued_and_the_job_runs_to_its_end(aserver):
    r = requests.post(f"{aserver.url}/executions",
                      json={"code": "import time\ntime.sleep(1.5)\nprint('async done')", "timeout": 20}, timeout=30)
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"id", "status"} and body["status"] == "queued", body
    assert re.fullmatch(r"ex_[0-9a-f]{24}", body["id"]), body
    row = catalog_row(aserver.db_path, body["id"])
    assert row and row["status"] in ("queued", "running"), f"the 202 answer came before the row: {row}"
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = status_of(aserver, body["id"])
        if not seen or seen[-1] != s:
            seen.append(s)
        if s in FINAL:
            break
        time.sleep(0.05)
    assert seen[-1] == "succeeded", seen
    order = ["queued", "running", "succeeded"]
    assert [s for s in order if s in seen] == seen, f"statuses out of order: {seen}"
    assert "running" in seen, f"the job was never seen running: {seen}"
    x = execution(aserver, body["id"])
    assert x["stdout"] == "async done\n" and x["exit_code"] == 0, short(x)


def test_a_job_waits_queued_while_the_slot_is_taken(narrow):
    a = submit(narrow, {"code": "import time\ntime.sleep(3)\nprint('a')", "timeout": 20})["id"]
    wait_status(narrow, a, ("running",))
    b = submit(narrow, {"code": "print('b')", "timeout": 20})["id"]
    time.sleep(0.5)
    assert status_of(narrow, b) == "queued", "a job behind a full slot should show queued"
    assert status_of(narrow, a) == "running"
    xb = wait_status(narrow, b, FINAL, within=30)
    xa = execution(narrow, a)
    assert xa["status"] == "succeeded" and xb["status"] == "succeeded", (short(xa), short(xb))
    assert xb["stdout"] == "b\n"
    ra, rb = catalog_row(narrow.db_path, a), catalog_row(narrow.db_path, b)
    assert rb["started_at"] >= ra["finished_at"] - 50, "with one slot, b started before a ended"


# ---------------------------------------------------------------- cancel

def test_cancel_a_running_job(aserver):
    eid = submit(aserver, {"code": WHOAMI_CODE + SLEEPER, "timeout": 120})["id"]
    wait_status(aserver, eid, ("running",))
    time.sleep(1.0)  # well into its sleep
    t0 = time.monotonic()
    r = cancel(aserver, eid)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": eid, "status": "cancelling"}, r.json()
    x = assert_cancelled(aserver, eid, before_it_ran=False)
    assert time.monotonic() - t0 < 15
    assert "not cancelled" not in x.get("stdout", ""), short(x)
    assert_detail(cancel(aserver, eid), 409, None)
    if "hostname" in x.get("stdout", ""):  # the output before the cancel is kept: its container goes
        me = whoami(x["stdout"].replace("started\n", ""))
        gone = wait_until(lambda: not served_by(me, running_containers(aserver.instance)), 15, poll=0.2)
        assert gone, f"the container of a cancelled job still runs: {me}"


def test_cancel_right_when_the_job_starts(envhub_module_factory):
    """The row says running from the moment the job holds a slot, before its container
    exists (no warm pool here): a cancel then must still stop it."""
    server = envhub_module_factory("--pool-size", "0")
    eid = submit(server, {"code": SLEEPER, "timeout": 120})["id"]
    wait_status(server, eid, ("running",), poll=0.005)
    r = cancel(server, eid)
    assert r.status_code == 200, (f"cancel of a job whose row says running answered {r.status_code}: {r.text}; "
                                  f"the row now: {short(execution(server, eid))}")
    assert_cancelled(server, eid, before_it_ran=False)


def test_cancel_a_queued_job(narrow):
    a = submit(narrow, {"code": SLEEPER, "timeout": 120})["id"]
    wait_status(narrow, a, ("running",))
    b = submit(narrow, {"code": "print('b ran')", "timeout": 20})["id"]
    try:
        time.sleep(0.3)
        assert status_of(narrow, b) == "queued"
        r = cancel(narrow, b)
        assert r.status_code == 200, r.text
        assert r.json() == {"id": b, "status": "cancelling"}, r.json()
        assert_cancelled(narrow, b, before_it_ran=True)
        assert status_of(narrow, a) == "running", "cancelling the queued job touched the running one"
        assert_detail(cancel(narrow, b), 409, None)
    finally:
        cancel(narrow, a)
    assert_cancelled(narrow, a, before_it_ran=False)


def test_cancel_a_job_queued_behind_a_synchronous_one(narrow):
    """The slot is held by a POST /execute: the submitted job is queued and cancellable."""
    held = {}
    t = threading.Thread(target=lambda: held.update(
        r=post_execute(narrow, {"code": "import time\ntime.sleep(4)\nprint('sync')", "timeout": 20})))
    t.start()
    b = None
    try:
        assert wait_until(lambda: get_metrics(narrow).value("envhub_jobs_running") == 1, 10), "the sync job never ran"
        b = submit(narrow, {"code": "print('b ran')", "timeout": 20})["id"]
        time.sleep(0.5)
        assert status_of(narrow, b) == "queued"
        r = cancel(narrow, b)
        assert r.status_code == 200, (f"cancel of a queued job (waiting for the slot a synchronous job holds) "
                                      f"answered {r.status_code}: {r.text}; its row: {short(execution(narrow, b))}")
        assert_cancelled(narrow, b, before_it_ran=True)
    finally:
        t.join(60)
        if b:
            wait_status(narrow, b, FINAL, within=30)
    assert held["r"].status_code == 200 and held["r"].json()["stdout"] == "sync\n", held["r"].text[:500]


def test_cancel_of_unknown_and_ended_jobs(aserver):
    assert_detail(cancel(aserver, "ex_" + "0" * 24), 404, None)
    eid = submit(aserver, {"code": "print(1)", "timeout": 20})["id"]
    wait_status(aserver, eid, FINAL)
    assert_detail(cancel(aserver, eid), 409, None)
    assert status_of(aserver, eid) == "succeeded"


# ---------------------------------------------------------------- batches

def test_a_batch_of_20_runs_every_job(aserver):
    jobs = [{"code": f"print({i} * {i})", "timeout": 30} for i in range(20)]
    r = requests.post(f"{aserver.url}/executions/batch", json={"jobs": jobs}, timeout=60)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body.get("status") == "queued" and len(body["ids"]) == 20 and len(set(body["ids"])) == 20, body
    for i, eid in enumerate(body["ids"]):
        x = wait_status(aserver, eid, FINAL, within=120)
        assert x["status"] == "succeeded" and x["stdout"] == f"{i * i}\n", f"job {i}: {short(x)}"


@pytest.mark.parametrize("jobs, status", [
    ([{"code": "print(1)"}] * 21, 400),
    ([{"code": "print(1)"}] * 7 + [{"timeout": 5}] + [{"code": "print(1)"}] * 2, None),
    ([{"code": "print(1)"}, {"code": "print(2)", "timeout": 0}], None),
    ([{"code": "print(1)"}, "print(2)"], None),
    ([{"code": "print(1)"}, {"code": "print(2)", "environment": "no-such-environment"}], None),
    ([], None),
], ids=["21_jobs", "one_without_code", "one_bad_timeout", "one_not_an_object", "one_unknown_env", "empty"])
def test_an_invalid_batch_submits_nothing(aserver, jobs, status):
    rows = count_rows(aserver.db_path)
    r = requests.post(f"{aserver.url}/executions/batch", json={"jobs": jobs}, timeout=30)
    if status:
        assert_detail(r, status, None)
    else:
        assert 400 <= r.status_code < 500, f"an invalid batch answered {r.status_code}: {r.text[:500]}"
    time.sleep(0.2)
    assert count_rows(aserver.db_path) == rows, f"an invalid batch ({r.status_code}) submitted jobs"


# ---------------------------------------------------------------- callbacks

class Listener:
    """An HTTP listener on 127.0.0.1 that records POSTs and answers them with `statuses`
    in turn (the last one repeats), each with the `headers` given; on `port` (0: any free
    one)."""

    def __init__(self, statuses=(200,), headers=None, port=0):
        self.statuses = list(statuses)
        self.headers = dict(headers or {})
        self.posts = []  # (monotonic time, path, headers, body bytes)
        self.lock = threading.Lock()
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with listener.lock:
                    n = len(listener.posts)
                    listener.posts.append((time.monotonic(), self.path, dict(self.headers), body))
                    status = listener.statuses[min(n, len(listener.statuses) - 1)]
                self.send_response(status)
                for k, v in listener.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/done", host="127.0.0.1"):
        return f"http://{host}:{self.port}{path}"

    def wait(self, n, within):
        wait_until(lambda: len(self.posts) >= n, within, poll=0.05)
        return list(self.posts)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def listener():
    made = []

    def make(statuses=(200,), headers=None):
        made.append(Listener(statuses, headers))
        return made[-1]

    yield make
    for lst in made:
        lst.close()


def test_the_callback_gets_the_result(aserver, listener):
    lst = listener()
    code = "import sys\nopen('out.txt', 'w').write('result')\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\n"
    eid = submit(aserver, {"code": code, "timeout": 20, "callback_url": lst.url("/done?run=1")})["id"]
    posts = lst.wait(1, 20)
    assert posts, f"no callback within 20 s; the job: {short(execution(aserver, eid))}"
    _t, path, headers, raw = posts[0]
    assert path == "/done?run=1", path
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    doc = json.loads(raw)
    assert set(doc) >= CALLBACK_FIELDS, f"the callback lacks {sorted(CALLBACK_FIELDS - set(doc))}: {doc}"
    assert doc["id"] == eid and doc["status"] == "succeeded" and doc["success"] is True, doc
    assert doc["exit_code"] == 0 and doc["error"] is None and doc["environment"] is None, doc
    assert doc["stdout"] == "to stdout\n" and doc["stderr"] == "to stderr\n", doc
    assert isinstance(doc["execution_time"], (int, float)) and doc["execution_time"] > 0, doc
    parse_iso(doc["finished_at"])
    assert "out.txt" in json.dumps(doc["files"]), f"the callback's files do not name out.txt: {doc['files']}"
    time.sleep(1.5)
    assert len(lst.posts) == 1, f"a callback answered 200 was sent again: {len(lst.posts)} POSTs"


def test_callbacks_of_a_failed_job_and_to_localhost(aserver, listener):
    lst = listener()
    r = requests.post(f"{aserver.url}/executions/batch", timeout=30, json={"jobs": [
        {"code": "raise SystemExit(2)", "timeout": 20, "callback_url": lst.url("/fail")},
        {"code": "print('lh')", "timeout": 20, "callback_url": lst.url("/localhost", host="localhost")},
    ]})
    assert r.status_code == 202, r.text
    ids = r.json()["ids"]
    posts = lst.wait(2, 20)
    got = {p[1]: json.loads(p[3]) for p in posts}
    assert set(got) == {"/fail", "/localhost"}, f"callbacks received: {sorted(got)}"
    assert got["/fail"]["id"] == ids[0] and got["/fail"]["status"] == "failed", got["/fail"]
    assert got["/fail"]["success"] is False and got["/fail"]["exit_code"] == 2, got["/fail"]
    assert got["/localhost"]["id"] == ids[1] and got["/localhost"]["stdout"] == "lh\n", got["/localhost"]


def test_a_callback_answered_500_is_tried_3_times_with_backoff(aserver, listener):
    failing, second_ok = listener([500]), listener([500, 200])
    a = submit(aserver, {"code": "print('a')", "timeout": 20, "callback_url": failing.url()})["id"]
    b = submit(aserver, {"code": "print('b')", "timeout": 20, "callback_url": second_ok.url()})["id"]
    posts = failing.wait(3, 20)
    assert len(posts) == 3, f"{len(posts)} tries of a callback answered 500 (expected 3): job {short(execution(aserver, a))}"
    gaps = [posts[1][0] - posts[0][0], posts[2][0] - posts[1][0]]
    assert 0.7 <= gaps[0] <= 3.0 and 1.5 <= gaps[1] <= 5.0 and gaps[1] > gaps[0], \
        f"backoff between tries: {[round(g, 2) for g in gaps]} s (expected about 1 s then 2 s)"
    assert all(json.loads(p[3])["id"] == a for p in posts)
    time.sleep(4.2)  # a 4th try would come 4 s after the 3rd
    assert len(failing.posts) == 3, f"a callback was tried {len(failing.posts)} times (at most 3)"
    assert len(second_ok.posts) == 2, f"a callback that succeeded on try 2 was sent {len(second_ok.posts)} times"
    assert json.loads(second_ok.posts[1][3])["id"] == b


def test_callback_urls_off_loopback_are_refused(aserver):
    rows = count_rows(aserver.db_path)
    for url in ("http://192.0.2.1/done", "http://192.0.2.1:8080/x", "https://127.0.0.1/x", "ftp://127.0.0.1/x",
                "127.0.0.1:9/x", ""):
        r = requests.post(f"{aserver.url}/executions", json={"code": "print(1)", "callback_url": url}, timeout=30)
        assert_detail(r, 400, None)
        # in a batch (with an invalid second job: nothing can run): refused for the callback
        r = requests.post(f"{aserver.url}/executions/batch", timeout=30,
                          json={"jobs": [{"code": "print(1)", "callback_url": url}, {"timeout": 5}]})
        detail = assert_detail(r, r.status_code, None)
        assert r.status_code == 400 and "callback_url" in detail, (url, r.status_code, detail)
    assert count_rows(aserver.db_path) == rows


def test_callbacks_go_nowhere_by_default(envhub_factory, listener):
    """ENVHUB_CALLBACK_HOSTS lists nothing: not even loopback is reached."""
    server = envhub_factory()
    lst = listener()
    r = requests.post(f"{server.url}/executions", json={"code": "print(1)", "callback_url": lst.url()},
                      timeout=30)
    detail = assert_detail(r, 400, None)
    assert "ENVHUB_CALLBACK_HOSTS" in detail and "none by default" in detail, detail
    assert count_rows(server.db_path) == 0
    time.sleep(0.5)
    assert lst.posts == []


INJECTIONS = [
    "{base}/a HTTP/1.1\r\nX-Injected: yes\r\nContent-Length: 0\r\n\r\nDELETE /smuggled HTTP/1.1\r\nHost: x",
    "{base}/a\nX-Injected: yes",
    "{base}/a%0d%0aX-Injected:%20yes%0d%0a%0d%0aDELETE%20/smuggled",
    "{base}/a%0AX",
    "{base}/a b",
    "{base}/caf\u00e9",
    "http://user:pw@127.0.0.1:{port}/a",
    "http://evil.example@127.0.0.1:{port}/a",
    "http://[::1]:{port}/a",
    "http://127.0.0.1:{port}/a#frag",
]


@pytest.mark.parametrize("template", INJECTIONS)
def test_a_callback_url_cannot_become_a_request_of_its_own(aserver, listener, template):
    """CR/LF raw or percent-encoded, spaces, raw non-ASCII, a user before the host, an IPv6
    literal not listed, a fragment: refused at submission, nothing reaches the listener."""
    lst = listener()
    url = template.format(base=f"http://127.0.0.1:{lst.port}", port=lst.port)
    rows = count_rows(aserver.db_path)
    r = requests.post(f"{aserver.url}/executions", json={"code": "print(1)", "callback_url": url}, timeout=30)
    detail = assert_detail(r, 400, None)
    assert detail.startswith("callback_url:"), detail
    assert "\r" not in detail and "\n" not in detail
    assert count_rows(aserver.db_path) == rows
    time.sleep(0.3)
    assert lst.posts == [], f"the listener got {lst.posts}"


def test_a_redirected_callback_is_not_followed(aserver, listener):
    """The receiver answers 302 to another listed listener: envhub counts it a failure
    (and retries the same URL), never posts where the redirect points."""
    elsewhere = listener()
    redirecting = listener((302,), headers={"Location": elsewhere.url("/stolen")})
    r = requests.post(f"{aserver.url}/executions", timeout=30,
                      json={"code": "print(1)", "timeout": 20, "callback_url": redirecting.url("/hook")})
    assert r.status_code == 202, r.text
    posts = redirecting.wait(3, 40)
    assert [p[1] for p in posts] == ["/hook"] * 3, posts
    time.sleep(1)
    assert elsewhere.posts == [], f"the redirect was followed: {elsewhere.posts}"


@pytest.mark.parametrize("host", ["127.evil.example", "127.0.0.1.evil.example", "localhost.evil.example"])
def test_a_host_name_that_only_looks_like_loopback_is_refused(aserver, host):
    """Sent in a batch whose second job is invalid, so nothing is ever submitted: the
    detail tells whether the callback was refused (it comes first) or passed."""
    rows = count_rows(aserver.db_path)
    r = requests.post(f"{aserver.url}/executions/batch", timeout=30, json={"jobs": [
        {"code": "print(1)", "callback_url": f"http://{host}/cb"}, {"timeout": 5}]})
    assert count_rows(aserver.db_path) == rows
    detail = assert_detail(r, r.status_code, None)
    assert r.status_code == 400 and "callback_url" in detail, \
        (f"callback_url http://{host}/cb (a DNS name anyone can point anywhere) passed the loopback check: "
         f"the batch was refused only for its second job: {r.status_code} {detail!r}")


# ---------------------------------------------------------------- live output

def read_events(server, eid, within=60.0, query="follow=1"):
    """GET /executions/{id}/output?...; returns (headers, [(monotonic time, event, data)],
    comments [(time, text)]) read as they arrive."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=within)
    conn.request("GET", f"/executions/{eid}/output?{query}")
    resp = conn.getresponse()
    assert resp.status == 200, f"GET output answered {resp.status}: {resp.read()[:500]!r}"
    headers = dict(resp.getheaders())
    events, comments, event, data = [], [], None, []
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            line = resp.readline()
            if not line:
                break
            line = line.decode("utf-8").rstrip("\n").rstrip("\r")
            if line.startswith(":"):
                comments.append((time.monotonic(), line))
            elif line.startswith("event:"):
                event = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].lstrip(" "))
            elif line == "":
                if event is not None or data:
                    events.append((time.monotonic(), event, "\n".join(data)))
                event, data = None, []
    finally:
        conn.close()
    return headers, events, comments


def stream_text(events, kind):
    return "".join(json.loads(d) for _t, e, d in events if e == kind)


TICKER = ("import sys, time\n"
          "for i in range(8):\n"
          "    print(f'tick {i}', flush=True)\n"
          "    if i == 3:\n"
          "        print('half way', file=sys.stderr, flush=True)\n"
          "    time.sleep(0.5)\n"
          "sys.stderr.write('no newline at the end')\n")


def check_ticker_events(events):
    assert events and events[-1][1] == "end", f"the stream did not end with an end event: {events[-3:]}"
    end = json.loads(events[-1][2])
    assert end == {"status": "succeeded", "exit_code": 0}, end
    assert stream_text(events, "stdout") == "".join(f"tick {i}\n" for i in range(8)), events
    assert stream_text(events, "stderr") == "half way\nno newline at the end", events
    assert {e for _t, e, _d in events} <= {"stdout", "stderr", "end"}, events
    for _t, _e, d in events:
        assert "envhub-status" not in d and "\\u0000" not in d, f"the wrapper's report leaked into the output: {d!r}"


def test_live_output_arrives_while_the_job_runs(aserver):
    eid = submit(aserver, {"code": TICKER, "timeout": 30})["id"]
    wait_status(aserver, eid, ("running",) + FINAL, poll=0.02)
    time.sleep(0.3)
    headers, events, _c = read_events(aserver, eid)
    assert headers.get("Content-Type", "").startswith("text/event-stream"), headers
    check_ticker_events(events)
    first = next(t for t, e, _d in events if e == "stdout")
    assert events[-1][0] - first >= 1.5, \
        f"the first stdout event came only {events[-1][0] - first:.2f} s before the end (the job prints for 4 s)"
    x = execution(aserver, eid)
    assert x["stdout"] == stream_text(events, "stdout") and x["stderr"] == "half way\nno newline at the end", short(x)


def test_a_finished_jobs_output_comes_whole(aserver):
    eid = submit(aserver, {"code": "import sys\nprint('out')\nsys.stderr.write('err')", "timeout": 20})["id"]
    wait_status(aserver, eid, FINAL)
    for query in ("follow=1", ""):
        _h, events, _c = read_events(aserver, eid, within=20, query=query)
        assert stream_text(events, "stdout") == "out\n" and stream_text(events, "stderr") == "err", (query, events)
        assert events[-1][1] == "end" and json.loads(events[-1][2]) == {"status": "succeeded", "exit_code": 0}


def test_following_a_queued_job_streams_it_once_it_runs(narrow):
    a = submit(narrow, {"code": "import time\ntime.sleep(2)", "timeout": 20})["id"]
    wait_status(narrow, a, ("running",))
    b = submit(narrow, {"code": TICKER, "timeout": 30})["id"]
    assert status_of(narrow, b) == "queued"
    _h, events, _c = read_events(narrow, b)
    assert events and events[-1][1] == "end", events
    end = json.loads(events[-1][2])
    assert end.get("status") in FINAL, (f"following a queued job ended at once with {end} and no output: the "
                                        f"stream should wait for the job to run; events {events}")
    check_ticker_events(events)


QUIET_S = 17  # the server sends a keepalive comment after 15 s without output


@pytest.fixture(scope="module", autouse=True)
def quiet_follower(aserver):
    """A job quiet for QUIET_S s and a follower of its output, started with the module so
    that its wait overlaps the other tests; the last test looks at what it read."""
    got = {}
    submitted = threading.Event()

    def follow():
        try:
            eid = submit(aserver, {"code": f"import time\ntime.sleep({QUIET_S})\nprint('late')", "timeout": 60})["id"]
            submitted.set()
            wait_status(aserver, eid, ("running",) + FINAL, poll=0.02)
            time.sleep(0.3)
            got["id"] = eid
            got["headers"], got["events"], got["comments"] = read_events(aserver, eid, within=QUIET_S + 30)
        except BaseException as e:  # noqa: BLE001 - shown by the test
            got["error"] = repr(e)
            submitted.set()

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    submitted.wait(30)  # its row exists before the tests count rows
    yield {"thread": t, "got": got}
    t.join(QUIET_S + 40)


def test_a_quiet_job_gets_keepalive_comments(quiet_follower):
    quiet_follower["thread"].join(QUIET_S + 40)
    got = quiet_follower["got"]
    assert "error" not in got, got.get("error")
    comments, events = got["comments"], got["events"]
    assert any(c.strip() == ": keepalive" for _t, c in comments), \
        f"no keepalive comment in {QUIET_S} s of silence: comments {comments}, events {events}"
    assert stream_text(events, "stdout") == "late\n" and events[-1][1] == "end", events

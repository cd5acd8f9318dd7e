"""Hostile clients: no request can crash, hang or impersonate envhub.

Every class of hostile input against every route: JSON nested, widened or
garbled past its bounds; bodies trickled or never sent; connections hoarded;
bodies that would fill memory; unknown Host names (DNS rebinding) and foreign
Origins; malformed HTTP. Each case asserts a 4xx (or a correct answer) and that
/health still answers at once afterwards, from a client of its own."""

import http.client
import json
import os
import socket
import threading
import time

import pytest
import requests

from helpers import bearer, count_rows, create_key

LISTED = "http://app.example.test"
DEADLINE_S = 3
PER_CLIENT = 12

# Every route of the server (web/server.c), its parameters filled.
ROUTES = [
    ("POST", "/execute"),
    ("POST", "/execute-with-environment"),
    ("GET", "/health"),
    ("POST", "/environments"),
    ("GET", "/environments"),
    ("GET", "/environments/nope"),
    ("DELETE", "/environments/nope"),
    ("POST", "/environments/nope/rebuild"),
    ("GET", "/environments/nope/builds"),
    ("GET", "/environments/nope/builds/1"),
    ("GET", "/environments/nope/builds/1/log"),
    ("GET", "/environments/nope/logs"),
    ("GET", "/environments/nope/packages"),
    ("GET", "/environments/nope/diff"),
    ("POST", "/environments/nope/lifecycle"),
    ("GET", "/packages"),
    ("GET", "/drift"),
    ("POST", "/keys"),
    ("GET", "/keys"),
    ("DELETE", "/keys/nope"),
    ("GET", "/events"),
    ("GET", "/executions"),
    ("GET", "/executions/export"),
    ("GET", "/executions/stats"),
    ("GET", "/executions/ex_nope"),
    ("GET", "/audit/verify"),
    ("GET", "/me"),
    ("GET", "/metrics"),
    ("POST", "/executions"),
    ("POST", "/executions/batch"),
    ("POST", "/executions/ex_nope/cancel"),
    ("GET", "/executions/ex_nope/output"),
    ("POST", "/sessions"),
    ("GET", "/sessions"),
    ("GET", "/sessions/nope"),
    ("DELETE", "/sessions/nope"),
    ("POST", "/sessions/nope/execute"),
    ("PUT", "/sessions/nope/files/a.txt"),
    ("GET", "/sessions/nope/files/a.txt"),
    ("GET", "/"),
    ("GET", "/ui/app.js"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    ("GET", "/templates"),
]
# Routes that parse a JSON object body before anything else can refuse them.
JSON_ROUTES = [
    ("POST", "/execute"),
    ("POST", "/execute-with-environment"),
    ("POST", "/environments"),
    ("POST", "/environments/nope/rebuild"),
    ("POST", "/environments/nope/lifecycle"),
    ("POST", "/keys"),
    ("POST", "/executions"),
    ("POST", "/executions/batch"),
    ("POST", "/sessions"),
    ("POST", "/sessions/nope/execute"),
]
# GET on these streams until the thing they follow ends: not for a body test.
STREAMS = {"/events", "/environments/nope/logs", "/executions/ex_nope/output"}


def route_id(route):
    return f"{route[0]} {route[1]}"


@pytest.fixture(scope="module")
def hostile(envhub_module_factory):
    """Open mode (every request is admin, so that handlers are reached) with small bounds."""
    return envhub_module_factory(
        "--request-deadline", str(DEADLINE_S), "--request-timeout", "2000",
        "--max-connections-per-client", str(PER_CLIENT), "--max-body", "1m", "--body-memory", "2m",
        "--cors-origins", LISTED, "--allowed-hosts", "envhub.test")


def healthy(server, source="127.0.0.3"):
    """GET /health on a new connection from an address of its own answers 200 at once."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5,
                                      source_address=(source, 0))
    try:
        conn.request("GET", "/health")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, body[:300]
        assert json.loads(body)["status"] == "healthy"
    finally:
        conn.close()
    assert server.alive(), "the server process is gone"


def raw(server, data, within=10.0, source=None, read=True):
    """Sends `data` on a new connection and reads until the server closes it or `within`
    passes: (status or None, headers dict, body bytes, closed_by_server)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=within,
                                    source_address=(source, 0) if source else None)
    try:
        sock.sendall(data)
        if not read:
            return sock
        buf, closed = b"", False
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
            if response_complete(buf):
                # the answer is whole: does the server end the connection after it?
                sock.settimeout(1.0)
        return (*parse_response(buf), closed)
    finally:
        if read:
            sock.close()


def response_complete(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    _, headers = parse_head(head)
    return len(body) >= int(headers.get("content-length", "0") or 0)


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    return status, headers


def parse_response(buf):
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head:
        return None, {}, b""
    status, headers = parse_head(head)
    if status == 100:  # an interim answer: the real one follows
        return parse_response(body)
    return status, headers, body


def request_bytes(server, method, path, body=b"", headers=None, content_length=None):
    h = {"Host": f"127.0.0.1:{server.port}", "Content-Type": "application/json"}
    h.update(headers or {})
    h["Content-Length"] = str(len(body) if content_length is None else content_length)
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return head.encode() + body


def deep(depth, prefix=b'{"code":"print(1)","x":', suffix=b"}"):
    return prefix + b"[" * depth + b"]" * depth + suffix


# ---------------------------------------------------------------- JSON past its bounds

@pytest.mark.parametrize("route", JSON_ROUTES, ids=route_id)
@pytest.mark.parametrize("depth", [65, 1000, 200000])
def test_deep_json_is_422_naming_the_field_and_the_limit(hostile, route, depth):
    before = count_rows(hostile.db_path)
    r = requests.request(route[0], hostile.url + route[1], data=deep(depth),
                         headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 422, r.text[:300]
    detail = r.json()["detail"]
    assert detail.startswith("x:") and "64 levels" in detail, detail
    assert count_rows(hostile.db_path) == before
    healthy(hostile)


@pytest.mark.parametrize("route", [r for r in ROUTES if r[1] not in STREAMS], ids=route_id)
def test_any_route_given_deep_json_answers_4xx_or_its_answer(hostile, route):
    """Routes that take no JSON body must not choke on one either."""
    r = requests.request(route[0], hostile.url + route[1], data=deep(100000),
                         headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code < 500, f"{route_id(route)}: {r.status_code} {r.text[:300]}"
    healthy(hostile)


@pytest.mark.parametrize("body,limit", [
    (b'{"code":"x","files":{' + b",".join(b'"f%d":""' % i for i in range(10001)) + b"}}",
     "more keys than the limit of 10000"),
    (b'{"code":"x","jobs":[' + b",".join(b"0" for _ in range(1001)) + b"]}",
     "more elements than the limit of 1000"),
    (b'{"' + b"k" * 5000 + b'":1}', "a key longer than the limit of 4096"),
    (b'{"code":"x","a":[' + b",".join(b"[" + b"0," * 998 + b"0]" for _ in range(120)) + b"]}",
     "more values in all than the limit of 100000"),
], ids=["keys", "elements", "key-length", "values"])
@pytest.mark.parametrize("route", [("POST", "/execute"), ("POST", "/environments"),
                                   ("POST", "/executions/batch"), ("POST", "/keys")], ids=route_id)
def test_wide_json_is_422_naming_the_limit(hostile, route, body, limit):
    r = requests.request(route[0], hostile.url + route[1], data=body,
                         headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 422, r.text[:300]
    assert limit in r.json()["detail"], r.json()["detail"]
    healthy(hostile)


GARBAGE = {
    "random": os.urandom(65536),
    "brackets-to-the-limit": b"[" * (1024 * 1024),
    "braces": b"{" * 500000,
    "quote-then-nothing": b'{"code":"' + b"a" * 500000,
    "nul-bytes": b'{"code":"print(1)\x00","x":"\x00"}',
    "invalid-utf8": b'{"code":"print(\xff\xfe)"}',
    "escaped-nul-key": b'{"code":"print(1)","files":{"a\\u0000b":"Zg=="}}',
    "truncated": b'{"code":"print(1)","files":{"a":',
    "lone-surrogate": b'{"code":"print(\\ud800)"}',
    "huge-number": b'{"code":"x","timeout":' + b"9" * 100000 + b"}",
    "not-an-object": b"[1,2,3]",
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
@pytest.mark.parametrize("route", JSON_ROUTES, ids=route_id)
def test_garbled_bodies_are_4xx(hostile, route, name):
    before = count_rows(hostile.db_path)
    r = requests.request(route[0], hostile.url + route[1], data=GARBAGE[name],
                         headers={"Content-Type": "application/json"}, timeout=30)
    assert 400 <= r.status_code < 500, f"{r.status_code} {r.text[:300]}"
    assert isinstance(r.json()["detail"], str)
    assert count_rows(hostile.db_path) == before
    healthy(hostile)


# ---------------------------------------------------------------- slow and absent bodies

def test_a_trickled_body_is_cut_at_the_deadline_while_others_are_served(hostile):
    """1 byte every 0.3 s of a 100000-byte body: the per-read timeout alone would let it
    live for days; the request deadline ends it with a 408."""
    socks = [raw(hostile, request_bytes(hostile, "POST", "/execute", content_length=100000),
                 read=False) for _ in range(3)]
    t0 = time.monotonic()
    answers = [None] * len(socks)
    while time.monotonic() - t0 < DEADLINE_S + 15 and None in answers:
        for i, s in enumerate(socks):
            if answers[i] is not None:
                continue
            try:
                s.sendall(b" ")
            except OSError:
                pass
            s.settimeout(0.1)
            try:
                data = s.recv(65536)
                answers[i] = data
            except socket.timeout:
                pass
            except OSError:
                answers[i] = b""
        healthy(hostile)  # the others are served meanwhile
        time.sleep(0.2)
    elapsed = time.monotonic() - t0
    for s in socks:
        s.close()
    assert None not in answers, f"still reading trickled bodies after {elapsed:.0f} s"
    for a in answers:
        status, _headers, body = parse_response(a)
        assert status == 408, a[:300]
        assert "ENVHUB_REQUEST_DEADLINE" in json.loads(body)["detail"]


def test_trickled_headers_are_cut(hostile):
    sock = socket.create_connection(("127.0.0.1", hostile.port), timeout=1)
    t0 = time.monotonic()
    closed = False
    try:
        for ch in request_bytes(hostile, "GET", "/health")[:-2] * 4:
            try:
                sock.sendall(bytes([ch]))
                sock.settimeout(0.3)
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
            if time.monotonic() - t0 > DEADLINE_S + 15:
                break
    finally:
        sock.close()
    assert closed, "a client trickling its headers kept its connection"
    healthy(hostile)


@pytest.mark.parametrize("route", [("GET", "/health"), ("POST", "/execute"),
                                   ("GET", "/environments"), ("DELETE", "/keys/nope"),
                                   ("POST", "/nowhere")], ids=route_id)
def test_an_answer_before_the_body_closes_the_connection_instead_of_draining(hostile, route):
    """Headers announcing 100 MB, no body: the answer comes at once and the connection
    ends after it (413 for routes with a body limit, the route's answer otherwise)."""
    status, headers, body, closed = raw(
        hostile, request_bytes(hostile, route[0], route[1], content_length=100 * 1024 * 1024),
        within=8)
    assert status is not None and status < 500, body[:300]
    assert headers.get("connection", "").lower() == "close", headers
    assert closed, "the server kept the connection to drain 100 MB that never come"
    healthy(hostile)


@pytest.mark.parametrize("route", [("GET", "/openapi.json"), ("GET", "/ui/app.js"),
                                   ("DELETE", "/keys/nope")], ids=route_id)
def test_a_body_the_route_does_not_read_does_not_cost_the_client_its_answer(hostile, route):
    """The whole body sent, then the answer read: closing with the body unread must not
    reset the connection before the client has the answer (a reset drops it)."""
    body = deep(100000)
    for attempt in range(20):
        status, headers, answer, closed = raw(
            hostile, request_bytes(hostile, route[0], route[1], body=body), within=8)
        assert status is not None and status < 500, (attempt, answer[:300])
        assert len(answer) == int(headers["content-length"]), \
            f"attempt {attempt}: {len(answer)} of {headers['content-length']} bytes arrived"
        assert headers.get("connection", "").lower() == "close" and closed
    healthy(hostile)


def test_expect_100_continue_gets_its_go_ahead_only_when_accepted(hostile):
    sock = socket.create_connection(("127.0.0.1", hostile.port), timeout=5)
    try:
        body = json.dumps({"code": "print(42)"}).encode()
        sock.sendall(request_bytes(hostile, "POST", "/execute", headers={"Expect": "100-continue"},
                                   content_length=len(body)))
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first[:200]
        sock.sendall(body)
        data = b""
        while not response_complete(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        status, _headers, answer = parse_response(data)
        assert status == 200 and json.loads(answer)["stdout"] == "42\n"
    finally:
        sock.close()
    # refused from its headers: no go-ahead, only the refusal
    status, _h, body, _closed = raw(hostile, request_bytes(
        hostile, "POST", "/execute", headers={"Expect": "100-continue"}, content_length=5 << 20))
    assert status == 413, body[:200]


# ---------------------------------------------------------------- connections per client

def test_connections_past_the_client_limit_are_refused_at_once(hostile):
    # an address of its own: a connection another test (or the start-up's health check)
    # left from 127.0.0.1, still counted until the server sees it close, would take a place
    me = "127.0.0.5"
    idle = [socket.create_connection(("127.0.0.1", hostile.port), timeout=5,
                                     source_address=(me, 0))
            for _ in range(PER_CLIENT)]
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        status, headers, body, closed = raw(hostile, b"", within=5, source=me)
        assert status == 429, body[:300]
        assert time.monotonic() - t0 < 4, "the refusal waited"
        assert headers.get("retry-after") == "1"
        assert "ENVHUB_MAX_CONNECTIONS_PER_CLIENT" in json.loads(body)["detail"]
        assert closed
        # another client is served meanwhile
        healthy(hostile, source="127.0.0.4")
    finally:
        for s in idle:
            s.close()
    # and this one again once it let go
    deadline = time.monotonic() + 5
    while True:
        try:
            healthy(hostile, source=me)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_many_clients_at_their_limit_at_once_leave_the_server_answering(hostile):
    """Eight addresses open their limit and some more, all at once, from threads."""
    held, lock = [], threading.Lock()
    refused = []

    def hoard(addr):
        for _ in range(PER_CLIENT + 3):
            try:
                s = socket.create_connection(("127.0.0.1", hostile.port), timeout=5,
                                             source_address=(addr, 0))
            except OSError:
                continue
            with lock:
                held.append((addr, s))

    threads = [threading.Thread(target=hoard, args=(f"127.0.1.{i}",)) for i in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        time.sleep(0.5)
        for addr, s in held:
            s.settimeout(0.2)
            try:
                data = s.recv(4096)
                if data.startswith(b"HTTP/1.1 429"):
                    refused.append(addr)
            except socket.timeout:
                pass
        assert len(refused) == 8 * 3, f"{len(refused)} refused, expected 24"
        healthy(hostile)
    finally:
        for _, s in held:
            s.close()


# ---------------------------------------------------------------- body memory

def test_bodies_past_the_memory_budget_are_refused_503_and_later_accepted(hostile):
    """2 MB of body memory: two 900 KB bodies in flight hold most of it; a third is
    refused at once (503, Retry-After) without being read, then accepted once they end."""
    holders = []
    try:
        for _ in range(2):
            s = raw(hostile, request_bytes(hostile, "POST", "/execute", content_length=900 * 1024)
                    + b'{"code":"print(1)", "pad":"', read=False)
            holders.append(s)
        time.sleep(0.5)
        status, headers, body, closed = raw(
            hostile, request_bytes(hostile, "POST", "/execute", content_length=400 * 1024), within=5)
        assert status == 503, body[:300]
        assert headers.get("retry-after") == "1"
        assert "ENVHUB_BODY_MEMORY" in json.loads(body)["detail"]
        assert closed
    finally:
        for s in holders:
            s.close()
    pad = "x" * (400 * 1024)
    deadline = time.monotonic() + 10
    while True:
        r = requests.post(f"{hostile.url}/execute", json={"code": "print(7)", "pad": pad}, timeout=60)
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.json()["stdout"] == "7\n", r.text[:300]


# ---------------------------------------------------------------- Host and Origin

@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_an_unknown_host_is_refused_before_routing(hostile, route):
    before = count_rows(hostile.db_path)
    status, _h, body, _closed = raw(hostile, request_bytes(
        hostile, route[0], route[1], body=b'{"code":"print(1)"}',
        headers={"Host": f"attacker.example:{hostile.port}",
                 "Origin": f"http://attacker.example:{hostile.port}"}))
    assert status == 400, body[:300]
    assert "Host" in json.loads(body)["detail"]
    assert count_rows(hostile.db_path) == before


def test_dns_rebinding_cannot_pass_the_origin_check(hostile):
    """The rebound page's origin is not the server's own, whatever Host it sends."""
    r = requests.get(f"{hostile.url}/executions", timeout=10,
                     headers={"Origin": f"http://attacker.example:{hostile.port}"})
    assert r.status_code == 403, r.text
    r = requests.get(f"{hostile.url}/health", timeout=10, headers={"Host": "envhub.test"})
    assert r.status_code == 200, r.text
    r = requests.get(f"{hostile.url}/health", timeout=10,
                     headers={"Host": "envhub.test", "Origin": "https://envhub.test"})
    assert r.status_code == 200, r.text
    # HTTP/1.1 requires a Host; HTTP/1.0 may leave it out
    status, _h, _b, _c = raw(hostile, b"GET /health HTTP/1.1\r\n\r\n")
    assert status == 400
    status, _h, _b, _c = raw(hostile, b"GET /health HTTP/1.0\r\n\r\n")
    assert status == 200


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_a_foreign_origin_is_refused_without_cors_headers(hostile, route):
    before = count_rows(hostile.db_path)
    r = requests.request(route[0], hostile.url + route[1], data=b'{"code":"print(1)"}',
                         headers={"Content-Type": "application/json", "Origin": "http://evil.example"},
                         timeout=10)
    assert r.status_code == 403, r.text[:300]
    assert "Access-Control-Allow-Origin" not in r.headers
    assert count_rows(hostile.db_path) == before
    pre = requests.options(hostile.url + route[1], timeout=10, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": route[0]})
    assert pre.status_code == 403 and "Access-Control-Allow-Origin" not in pre.headers


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_a_listed_origin_gets_its_preflight_and_grants(hostile, route):
    pre = requests.options(hostile.url + route[1], timeout=10, headers={
        "Origin": LISTED, "Access-Control-Request-Method": route[0],
        "Access-Control-Request-Headers": "content-type, authorization"})
    assert pre.status_code == 204, pre.text
    assert pre.headers["Access-Control-Allow-Origin"] == LISTED
    assert route[0] in pre.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in pre.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "authorization"} <= allowed
    assert int(pre.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in pre.headers["Vary"]
    if route[1] in STREAMS or route[0] != "GET":
        return
    r = requests.get(hostile.url + route[1], headers={"Origin": LISTED}, timeout=10)
    assert r.headers.get("Access-Control-Allow-Origin") == LISTED, dict(r.headers)
    assert "Origin" in r.headers.get("Vary", "")


def test_a_listed_origin_runs_code_and_reads_errors(hostile):
    r = requests.post(f"{hostile.url}/execute", json={"code": "print(5)"}, timeout=60,
                      headers={"Origin": LISTED})
    assert r.status_code == 200 and r.json()["stdout"] == "5\n"
    assert r.headers["Access-Control-Allow-Origin"] == LISTED
    r = requests.post(f"{hostile.url}/execute", json={"code": ""}, timeout=60,
                      headers={"Origin": LISTED})
    assert r.status_code == 400 and r.headers["Access-Control-Allow-Origin"] == LISTED


# ---------------------------------------------------------------- malformed HTTP

MALFORMED = {
    "garbage-line": b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
    "no-version": b"GET /health\r\n\r\n",
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "huge-header": b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: " + b"a" * 40000 + b"\r\n\r\n",
    "many-headers": b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(2000))
    + b"\r\n",
    "negative-length": b"POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: -5\r\n\r\n",
    "letters-length": b"POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 12abc\r\n\r\n",
    "bad-chunks": b"POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "huge-chunk": b"POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n{}\r\n0\r\n\r\n",
    "path-traversal": b"GET /ui/../../../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "encoded-nul-path": b"GET /environments/a%00b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_http_is_refused_and_nothing_hangs(hostile, name):
    data = MALFORMED[name].replace(b"Host: 127.0.0.1", f"Host: 127.0.0.1:{hostile.port}".encode())
    status, _headers, body, _closed = raw(hostile, data, within=DEADLINE_S + 10)
    assert status is None or 400 <= status < 500, f"{status} {body[:300]}"
    if name == "path-traversal":
        assert b"root:" not in body
    healthy(hostile)


# ---------------------------------------------------------------- keys: decided from the headers

@pytest.fixture(scope="module")
def keyed(envhub_module_factory, envhub_bin):
    keys = {}

    def make_keys(server):
        keys["runner"] = create_key(envhub_bin, server.db_path, "runner", "runner",
                                    max_concurrent=1)

    server = envhub_module_factory("--request-deadline", str(DEADLINE_S),
                                   before_start=make_keys)
    server.keys = keys
    return server


def test_no_key_is_refused_from_the_headers_and_the_connection_ends(keyed):
    status, headers, body, closed = raw(keyed, request_bytes(
        keyed, "POST", "/execute", content_length=50 * 1024 * 1024), within=8)
    assert status == 401, body[:300]
    assert headers.get("connection", "").lower() == "close" and closed
    healthy(keyed)


def test_the_quota_is_decided_before_any_body_byte(keyed):
    runner = bearer(keyed.keys["runner"])
    r = requests.post(f"{keyed.url}/executions", json={"code": "import time; time.sleep(6)"},
                      headers=runner, timeout=30)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    try:
        status, headers, body, closed = raw(keyed, request_bytes(
            keyed, "POST", "/execute", headers=runner, content_length=50 * 1024 * 1024), within=8)
        assert status == 429, body[:300]
        assert "quota" in json.loads(body)["detail"] and headers.get("retry-after")
        assert closed
    finally:
        requests.post(f"{keyed.url}/executions/{job}/cancel", headers=runner, timeout=30)
    healthy(keyed)

"""Request hygiene: only JSON posts, no foreign origins, bodies bounded before they are
read, a bounded queue, clients that stall mid-request dropped after the request timeout."""

import json
import socket
import threading
import time

import pytest
import requests

from helpers import b64, count_rows, execute, post_execute, short
from test_validation import assert_detail

BODY = json.dumps({"code": "print(1)"}).encode()


@pytest.mark.parametrize("content_type", [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    None,
], ids=["text_plain", "text_plain_charset", "form_urlencoded", "multipart", "no_content_type"])
def test_post_without_json_content_type_is_415(envhub, content_type):
    before = count_rows(envhub.db_path)
    headers = {"Content-Type": content_type} if content_type else {}
    r = requests.post(f"{envhub.url}/execute", data=BODY, headers=headers, timeout=30)
    assert_detail(r, 415, None)
    assert count_rows(envhub.db_path) == before, "a refused request wrote an execution row"


def test_real_form_post_is_415(envhub):
    before = count_rows(envhub.db_path)
    r = requests.post(f"{envhub.url}/execute", data={"code": "print(1)"}, timeout=30)
    assert_detail(r, 415, None)
    assert count_rows(envhub.db_path) == before


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example"])
def test_foreign_origin_is_403(envhub, origin):
    before = count_rows(envhub.db_path)
    r = requests.post(f"{envhub.url}/execute", data=BODY,
                      headers={"Content-Type": "application/json", "Origin": origin}, timeout=30)
    assert_detail(r, 403, None)
    assert count_rows(envhub.db_path) == before, "a foreign origin's request wrote an execution row"


def test_same_origin_post_is_accepted(envhub):
    r = requests.post(f"{envhub.url}/execute", data=BODY,
                      headers={"Content-Type": "application/json", "Origin": envhub.url}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "1\n"


def test_no_cors_allowance_for_foreign_origins(envhub):
    r = requests.get(f"{envhub.url}/health", headers={"Origin": "http://evil.example"}, timeout=10)
    assert r.headers.get("Access-Control-Allow-Origin") in (None, ""), dict(r.headers)
    pre = requests.options(f"{envhub.url}/execute", timeout=10, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert pre.headers.get("Access-Control-Allow-Origin") in (None, ""), dict(pre.headers)


def _raw_response(sock, within):
    """Reads one HTTP/1.x response from `sock`: (status, headers dict, body bytes)."""
    sock.settimeout(within)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def test_body_over_max_body_is_refused_413_from_its_content_length(envhub_factory):
    server = envhub_factory("--max-body", "1m")
    size = 2 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # the headers alone: the answer must come without the body being read
        sock.sendall((f"POST /execute HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode())
        try:
            status, _headers, body = _raw_response(sock, within=10)
        except socket.timeout:
            pytest.fail("no answer within 10 s: the server waits for the 2 MB body instead of refusing it")
    assert status == 413, body[:300]
    assert isinstance(json.loads(body)["detail"], str)
    assert count_rows(server.db_path) == 0


def test_body_under_max_body_is_accepted(envhub_factory):
    server = envhub_factory("--max-body", "1m")
    size = 600 * 1024
    body = {"code": "print(len(open('in.bin', 'rb').read()))", "files": {"in.bin": b64(b"\2" * size)}}
    assert len(json.dumps(body)) < 1024 * 1024
    res = execute(server, **body, timeout=20)
    assert res["success"] is True and res["stdout"] == f"{size}\n", short(res)


def test_full_queue_answers_429(envhub_factory):
    server = envhub_factory("--concurrent-limit", "1", "--queue-limit", "1")
    results = []
    lock = threading.Lock()

    def worker():
        t0 = time.monotonic()
        r = post_execute(server, {"code": "import time\ntime.sleep(3)\nprint('slept')", "timeout": 30},
                         http_timeout=60)
        with lock:
            results.append((r.status_code, r, time.monotonic() - t0))

    threads = []
    for _ in range(3):  # the first runs, the second waits, the third finds the queue full
        t = threading.Thread(target=worker)
        t.start()
        threads.append(t)
        time.sleep(0.3)
    for t in threads:
        t.join(90)
    statuses = sorted(s for s, _, _ in results)
    assert statuses == [200, 200, 429], [(s, r.text[:200]) for s, r, _ in results]
    for status, r, elapsed in results:
        if status == 429:
            assert_detail(r, 429, None)
            assert elapsed < 2, f"the 429 took {elapsed:.1f} s"
        else:
            assert r.json()["success"] is True and r.json()["stdout"] == "slept\n", r.text[:500]
    # the queue drains: a later job runs
    res = execute(server, "print('after')", timeout=10)
    assert res["stdout"] == "after\n", short(res)


def _wait_disconnect(sock, within):
    """Reads `sock` until the server closes it: (seconds waited, bytes the server sent), or
    (None, bytes) when it is still open after `within` seconds."""
    t0 = time.monotonic()
    data = b""
    while True:
        left = within - (time.monotonic() - t0)
        if left <= 0:
            return None, data
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return None, data
        except OSError:  # reset by the server: dropped too
            return time.monotonic() - t0, data
        if not chunk:
            return time.monotonic() - t0, data
        data += chunk


def test_client_stalling_in_its_headers_is_dropped_after_the_request_timeout(envhub_factory):
    """Clients that send part of their request headers and then stall are disconnected
    within --request-timeout (not served, not kept), while other clients are answered at
    once meanwhile."""
    timeout_s = 1.0
    server = envhub_factory("--request-timeout", str(int(timeout_s * 1000)))
    partial = (f"GET /environments HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
               f"User-Agent: envhub-stall-test\r\nX-Half: only-a-par").encode()
    stalled = []
    try:
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(partial)
            stalled.append((sock, time.monotonic()))
        # while they stall, the server answers others without waiting for them
        slow = []
        for i in range(5):
            t0 = time.monotonic()
            r = requests.get(f"{server.url}/health", timeout=10)
            took = time.monotonic() - t0
            if r.status_code != 200 or took > 0.5:
                slow.append(f"request {i + 1}: {r.status_code} in {took:.2f} s")
        assert not slow, "other clients waited for the stalled ones:\n" + "\n".join(slow)
        r = requests.post(f"{server.url}/execute", json={"code": "print('meanwhile')"}, timeout=60)
        assert r.status_code == 200 and r.json()["stdout"] == "meanwhile\n", r.text[:300]
        limit = timeout_s + 2.0  # the timeout plus scheduling slack
        for i, (sock, sent_at) in enumerate(stalled):
            waited, data = _wait_disconnect(sock, within=max(0.1, limit - (time.monotonic() - sent_at)))
            total = time.monotonic() - sent_at
            assert waited is not None, (f"stalled client {i + 1} still connected {total:.1f} s after its "
                                        f"partial headers (--request-timeout {timeout_s:.0f} s)")
            assert total >= timeout_s * 0.5, f"stalled client {i + 1} was dropped after {total:.2f} s only"
            status = data.split(b" ", 2)[1:2]
            assert not status or not status[0].startswith(b"2"), (
                f"a request with unfinished headers was served: {data[:200]!r}")
    finally:
        for sock, _ in stalled:
            sock.close()
    # and the server still serves afterwards
    r = requests.get(f"{server.url}/health", timeout=10)
    assert r.status_code == 200, r.text[:300]

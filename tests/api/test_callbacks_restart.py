"""Result callbacks across stops and restarts (issue 13, item 10): a callback not yet
delivered is kept in the catalog and delivered by the next start, once; one given up
after its last try is dropped, logged and counted on /metrics; a stop while many
asynchronous jobs with callbacks run and finish frees nothing still in use (run it with
the sanitizer build: ENVHUB_BIN=.../build-san/envhub), leaves no row queued or running
and no container.

    cd tests/api && ENVHUB_BIN=/abs/build-san/envhub /usr/bin/python3 -m pytest -q -x \\
        -p no:cacheprovider test_callbacks_restart.py"""

import json
import socket
import time

import requests

from conftest import SANITIZER_MARKS
from helpers import (connect_ro, get_metrics, instance_label, wait_no_container_left, wait_until,
                     describe_containers)
from test_async import FINAL, Listener, submit, wait_status

HOSTS = ("--callback-hosts", "127.0.0.1")


def PortListener(port, statuses=(200,)):  # noqa: N802 - reads as the class it makes
    """A Listener on a port chosen beforehand (the one a callback_url already names)."""
    return Listener(statuses, port=port)


def silent_socket():
    """A socket that listens and never accepts: a connection completes (the kernel's
    backlog), the request is sent, and no answer ever comes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def refused_port():
    """A port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pending_callbacks(db_path):
    """{execution_id: tries} of the callbacks the catalog keeps."""
    conn = connect_ro(db_path)
    try:
        return {r["execution_id"]: r["tries"] for r in conn.execute("SELECT execution_id, tries FROM callbacks")}
    finally:
        conn.close()


def statuses(db_path):
    conn = connect_ro(db_path)
    try:
        return {r["id"]: r["status"] for r in conn.execute("SELECT id, status FROM executions")}
    finally:
        conn.close()


def stop_cleanly(server, within=15.0):
    """SIGTERM (by PID): the server exits 0 within `within` s, with no sanitizer report."""
    t0 = time.monotonic()
    status, killed = server.stop(grace=within)
    took = time.monotonic() - t0
    log = server.log_text()
    assert not killed, f"envhub ignored SIGTERM for {within} s:\n{server.log_tail(40)}"
    assert status == 0, f"envhub exited {status}:\n{server.log_tail(60)}"
    for mark in SANITIZER_MARKS:
        assert mark not in log, f"the sanitizer reported:\n{server.log_tail(120)}"
    return took, log


def posts_by_id(lst):
    got = {}
    for _t, path, _headers, body in lst.posts:
        doc = json.loads(body)
        got.setdefault(doc["id"], []).append((path, doc))
    return got


def test_pending_callbacks_survive_a_restart_and_arrive_once(envhub_factory):
    """The receiver takes connections but never answers: the tries are cut by the stop
    (not counted), the callbacks stay in the catalog, and the next start delivers each
    one once, with its job's result, to the receiver now answering on the same port."""
    silent = silent_socket()
    port = silent.getsockname()[1]
    first = envhub_factory(*HOSTS)
    ids = [submit(first, {"code": f"print('result {i}')", "timeout": 20,
                          "callback_url": f"http://127.0.0.1:{port}/done?n={i}"})["id"] for i in range(3)]
    for eid in ids:
        wait_status(first, eid, FINAL, within=60)
    kept = wait_until(lambda: pending_callbacks(first.db_path), 5)
    assert set(kept) == set(ids), f"callbacks kept in the catalog: {kept}, submitted {ids}"
    time.sleep(0.5)  # the delivery thread is waiting for the silent receiver's answer

    took, log = stop_cleanly(first)
    assert took < 8, f"the stop waited {took:.1f} s for a receiver that never answers"
    assert "3 result callbacks pending, kept for the next start" in log, first.log_tail(30)
    kept = pending_callbacks(first.db_path)
    assert set(kept) == set(ids) and all(t == 0 for t in kept.values()), \
        f"after the stop the catalog keeps {kept} (expected each of {ids}, no try counted)"

    silent.close()
    lst = PortListener(port)
    try:
        second = envhub_factory(*HOSTS, db_path=first.db_path)
        lst.wait(3, within=20)
        time.sleep(1.5)  # a second delivery of any of them would come by now
        got = posts_by_id(lst)
        assert set(got) == set(ids), f"callbacks after the restart: {sorted(got)}, expected {ids}"
        for i, eid in enumerate(ids):
            assert len(got[eid]) == 1, f"the callback of {eid} came {len(got[eid])} times"
            path, doc = got[eid][0]
            assert path == f"/done?n={i}", (eid, path)
            assert doc["status"] == "succeeded" and doc["stdout"] == f"result {i}\n", doc
        assert pending_callbacks(second.db_path) == {}, "delivered callbacks are still kept"
        assert "3 result callbacks pending from the last run" in second.log_text(), second.log_tail(30)
        m = get_metrics(second)
        assert m.value("envhub_callbacks_delivered_total") == 3
        assert m.value("envhub_callbacks_pending") == 0
    finally:
        lst.close()


def test_a_callback_given_up_is_dropped_logged_and_counted(envhub_factory):
    """Refused 3 times (1 s, then 2 s apart): given up, its row gone from the catalog,
    a warning naming the execution, envhub_callbacks_given_up_total 1; a restart sends
    nothing more."""
    port = refused_port()
    first = envhub_factory(*HOSTS)
    eid = submit(first, {"code": "print(1)", "timeout": 20,
                         "callback_url": f"http://127.0.0.1:{port}/hook"})["id"]
    wait_status(first, eid, FINAL, within=60)
    line = f"callback of {eid} given up after 3 tries"
    assert wait_until(lambda: line in first.log_text(), 15), first.log_tail(30)
    assert pending_callbacks(first.db_path) == {}
    m = get_metrics(first)
    assert m.value("envhub_callbacks_given_up_total") == 1, m.series("envhub_callbacks_given_up_total")
    assert m.value("envhub_callbacks_delivered_total") == 0
    assert m.value("envhub_callbacks_pending") == 0
    stop_cleanly(first)

    lst = PortListener(port)
    try:
        second = envhub_factory(*HOSTS, db_path=first.db_path)
        time.sleep(1.5)
        assert lst.posts == [], f"a callback given up was sent after the restart: {lst.posts}"
        assert get_metrics(second).value("envhub_callbacks_pending") == 0
    finally:
        lst.close()


SLEEPY = "import time\ntime.sleep({s})\nprint('job {i}')"


def test_stop_while_jobs_with_callbacks_finish_is_clean(envhub_factory):
    """40 asynchronous jobs with callbacks, 10 at a time, finishing at different times;
    SIGTERM while callbacks are being delivered: the server exits 0 with no sanitizer
    report, leaves no container; the next start finds no row queued or running (cut-off
    jobs are interrupted) and delivers every callback still pending."""
    lst = Listener()
    try:
        server = envhub_factory(*HOSTS, "--concurrent-limit", "10")
        label = instance_label(server)
        ids = []
        for batch in range(2):
            jobs = [{"code": SLEEPY.format(s=(i % 7) * 0.3, i=batch * 20 + i), "timeout": 60,
                     "callback_url": lst.url(f"/cb/{batch * 20 + i}")} for i in range(20)]
            r = requests.post(f"{server.url}/executions/batch", json={"jobs": jobs}, timeout=30)
            assert r.status_code == 202, r.text
            ids += r.json()["ids"]
        # some callbacks delivered, some jobs still to finish
        assert lst.wait(5, within=90), f"no callback within 90 s:\n{server.log_tail(30)}"
        before = statuses(server.db_path)
        stop_cleanly(server, within=30)
        left = wait_no_container_left(label, within=10)
        assert not left, f"containers left by the stop: {describe_containers(left)}"

        after_stop = statuses(server.db_path)
        cut = [i for i in ids if after_stop[i] in ("queued", "running")]
        assert not cut, f"rows left queued/running by a clean stop: {[(i, after_stop[i]) for i in cut]}"
        assert any(before[i] in ("queued", "running") for i in ids), \
            "every job had ended before the stop: the test did not stop anything in flight"

        second = envhub_factory(*HOSTS, db_path=server.db_path)
        final = statuses(second.db_path)
        assert all(final[i] in FINAL for i in ids), {i: final[i] for i in ids if final[i] not in FINAL}
        assert wait_until(lambda: not pending_callbacks(second.db_path), 30), \
            f"callbacks still pending after the restart: {pending_callbacks(second.db_path)}"
        got = posts_by_id(lst)
        missing = [i for i in ids if i not in got]
        assert not missing, f"callbacks never delivered: {missing}"
        # at most once more: a delivery cut by the stop after the receiver read it is sent again
        assert all(len(v) <= 2 for v in got.values()), {k: len(v) for k, v in got.items() if len(v) > 2}
        for eid, posts in got.items():
            assert posts[-1][1]["status"] == final[eid], (eid, posts[-1][1]["status"], final[eid])
        stop_cleanly(second)
    finally:
        lst.close()

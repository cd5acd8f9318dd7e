"""GET /metrics (issue 7): Prometheus text that parses, and counters that move with
executions, HTTP requests, sessions, queues, builds and warm pools."""

import math
import threading

import pytest
import requests

from helpers import (DEFAULT_IMAGE, create_env, execute, get_metrics, post_execute, short, wait_env, wait_until)

FAMILIES = {
    "envhub_http_requests_total": "counter",
    "envhub_executions_total": "counter",
    "envhub_execution_duration_seconds": "histogram",
    "envhub_jobs_running": "gauge",
    "envhub_queue_depth": "gauge",
    "envhub_async_queue_depth": "gauge",
    "envhub_queue_wait_seconds": "summary",
    "envhub_sessions_open": "gauge",
    "envhub_engine_errors_total": "counter",
    "envhub_pool_ready": "gauge",
    "envhub_pool_target": "gauge",
    "envhub_pool_hits_total": "counter",
    "envhub_pool_misses_total": "counter",
    "envhub_pool_floor": "gauge",
    "envhub_pool_starting": "gauge",
    "envhub_pool_demand_per_second": "gauge",
    "envhub_pool_refill_seconds": "summary",
    "envhub_containers_live": "gauge",
    "envhub_containers_removal_backlog": "gauge",
    "envhub_containers_removal_backlog_max": "gauge",
    "envhub_removal_backlog_wait_seconds": "summary",
    "envhub_builds_total": "counter",
    "envhub_build_duration_seconds": "summary",
}
DEFAULT_POOL = {"environment": "", "image": DEFAULT_IMAGE}


@pytest.fixture(scope="module")
def mserver(envhub_module_factory):
    """One job at a time, so that a second one waits in the queue."""
    return envhub_module_factory("--concurrent-limit", "1")


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[:-len(suffix)] in types:
            return name[:-len(suffix)]
    return name


# ---------------------------------------------------------------- the format

def test_metrics_is_prometheus_text_that_parses(mserver):
    execute(mserver, "print(1)", timeout=20)  # something in every family with labels
    r = requests.get(f"{mserver.url}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    m = get_metrics(mserver)
    assert not m.bad, f"lines that are not `name{{labels}} value`: {m.bad[:10]}"
    for family, kind in FAMILIES.items():
        assert m.types.get(family) == kind, f"# TYPE {family}: {m.types.get(family)!r}, expected {kind}"
        assert m.helps.get(family), f"no # HELP for {family}"
    for name, labels in m.order:
        family = family_of(name, m.types)
        assert family in m.types, f"sample {name} has no # TYPE"
        value = m.get(name, **labels)
        assert not math.isnan(value), (name, labels)
        if m.types[family] in ("counter", "histogram", "summary"):
            assert value >= 0, (name, labels, value)
        if m.types[family] == "counter":
            assert name.endswith("_total"), f"counter {name} does not end in _total"
    # the HELP/TYPE lines come before their samples
    lines = m.text.splitlines()
    for family in FAMILIES:
        t = next(i for i, line in enumerate(lines) if line.startswith(f"# TYPE {family} "))
        first = next((i for i, line in enumerate(lines) if not line.startswith("#")
                      and family_of(line.split("{")[0].split(" ")[0], m.types) == family), None)
        assert first is None or first > t, f"{family}: a sample comes before its # TYPE"


def test_histogram_buckets_are_cumulative_and_end_at_the_count(mserver):
    for t in (1, 0.3):
        execute(mserver, f"import time\ntime.sleep({t})", timeout=20)
    m = get_metrics(mserver)
    buckets = {}
    for labels, value in m.series("envhub_execution_duration_seconds_bucket"):
        env = labels["environment"]
        le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
        buckets.setdefault(env, []).append((le, value))
    assert "" in buckets, "no duration histogram of the default image"
    for env, bs in buckets.items():
        bs.sort()
        values = [v for _le, v in bs]
        assert values == sorted(values), f"buckets of {env!r} are not cumulative: {bs}"
        assert bs[-1][0] == math.inf, f"no +Inf bucket for {env!r}: {bs}"
        count = m.get("envhub_execution_duration_seconds_count", environment=env)
        assert bs[-1][1] == count, f"+Inf bucket {bs[-1][1]} != _count {count} for {env!r}"
        assert m.get("envhub_execution_duration_seconds_sum", environment=env) >= 0
    le1 = dict(buckets[""])
    assert le1[math.inf] - le1[0.5] >= 1, f"a 1 s job is not above the 0.5 s bucket: {buckets['']}"


# ---------------------------------------------------------------- counters move

def test_an_execution_moves_its_counters(mserver):
    before = get_metrics(mserver)
    res = execute(mserver, "print('counted')", timeout=20)
    assert res["success"], short(res)
    after = get_metrics(mserver)

    def delta(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("envhub_executions_total", environment="", status="succeeded") == 1
    assert delta("envhub_http_requests_total", method="POST", route="/execute", status="200") == 1
    assert delta("envhub_execution_duration_seconds_count", environment="") == 1
    d_sum = delta("envhub_execution_duration_seconds_sum", environment="")
    assert abs(d_sum - res["execution_time"]) < 0.01, f"duration sum moved {d_sum}, the job ran {res['execution_time']}"
    for labels, value in after.series("envhub_execution_duration_seconds_bucket"):
        if labels["environment"] != "":
            continue
        le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
        moved = value - before.value("envhub_execution_duration_seconds_bucket", **labels)
        assert moved == (1 if le >= res["execution_time"] else 0), (labels, moved, res["execution_time"])
    assert delta("envhub_http_requests_total", method="GET", route="/metrics", status="200") == 1


def test_failed_and_timed_out_executions_are_counted_by_status(mserver):
    before = get_metrics(mserver)
    assert execute(mserver, "raise SystemExit(1)", timeout=20)["status"] == "failed"
    assert execute(mserver, "import time\ntime.sleep(10)", timeout=1)["status"] == "timeout"
    after = get_metrics(mserver)
    for status in ("failed", "timeout"):
        d = after.value("envhub_executions_total", environment="", status=status) - \
            before.value("envhub_executions_total", environment="", status=status)
        assert d == 1, f"envhub_executions_total{{status={status!r}}} moved by {d}"
    assert after.value("envhub_executions_total", environment="", status="succeeded") == \
        before.value("envhub_executions_total", environment="", status="succeeded")


def test_http_requests_are_counted_by_route_and_status(mserver):
    before = get_metrics(mserver)
    requests.get(f"{mserver.url}/health", timeout=10)
    requests.get(f"{mserver.url}/environments/no-such-env", timeout=10)
    requests.post(f"{mserver.url}/execute", data=b"{not json", headers={"Content-Type": "application/json"}, timeout=10)
    after = get_metrics(mserver)
    for labels in ({"method": "GET", "route": "/health", "status": "200"},
                   {"method": "GET", "route": "/environments/{}", "status": "404"},
                   {"method": "POST", "route": "/execute", "status": "422"}):
        d = after.value("envhub_http_requests_total", **labels) - before.value("envhub_http_requests_total", **labels)
        assert d == 1, f"envhub_http_requests_total{labels} moved by {d}: {after.series('envhub_http_requests_total')}"


def test_a_request_refused_before_its_handler_counts_under_its_route(mserver):
    """A 415 (not JSON) answered to POST /execute is a request of the /execute route."""
    before = get_metrics(mserver)
    r = requests.post(f"{mserver.url}/execute", data=b'{"code": "print(1)"}', headers={"Content-Type": "text/plain"},
                      timeout=10)
    assert r.status_code == 415, r.text
    after = get_metrics(mserver)
    labels = {"method": "POST", "route": "/execute", "status": "415"}
    d = after.value("envhub_http_requests_total", **labels) - before.value("envhub_http_requests_total", **labels)
    moved = [(lab, v - before.value("envhub_http_requests_total", **lab))
             for lab, v in after.series("envhub_http_requests_total")
             if v != before.value("envhub_http_requests_total", **lab) and lab.get("route") != "/metrics"]
    assert d == 1, f"a 415 to POST /execute is not counted as {labels}; what moved: {moved}"


def test_sessions_open_follows_sessions(mserver):
    base = get_metrics(mserver).value("envhub_sessions_open")
    r = requests.post(f"{mserver.url}/sessions", json={"idle_timeout": 300}, timeout=60)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        assert get_metrics(mserver).value("envhub_sessions_open") == base + 1
        before = get_metrics(mserver)
        r = requests.post(f"{mserver.url}/sessions/{sid}/execute", json={"code": "print(1)"}, timeout=60)
        assert r.status_code == 200, r.text
        after = get_metrics(mserver)
        d = after.value("envhub_executions_total", environment="", status="succeeded") - \
            before.value("envhub_executions_total", environment="", status="succeeded")
        assert d == 1, f"a session call moved envhub_executions_total by {d}"
    finally:
        assert requests.delete(f"{mserver.url}/sessions/{sid}", timeout=60).status_code == 200
    assert get_metrics(mserver).value("envhub_sessions_open") == base


def test_queue_depth_and_wait_move_while_jobs_wait(mserver):
    before = get_metrics(mserver)
    results = {}

    def run(key, code):
        results[key] = post_execute(mserver, {"code": code, "timeout": 20})

    first = threading.Thread(target=run, args=("first", "import time\ntime.sleep(3)\nprint('first')"))
    first.start()
    assert wait_until(lambda: get_metrics(mserver).value("envhub_jobs_running") == 1, 10), "the first job never ran"
    second = threading.Thread(target=run, args=("second", "print('second')"))
    second.start()
    try:
        queued = wait_until(lambda: get_metrics(mserver).value("envhub_queue_depth") == 1, 5)
        assert queued, f"a job waiting for the only slot: envhub_queue_depth {get_metrics(mserver).value('envhub_queue_depth')}"
        # submitted jobs wait in the asynchronous queue once the workers are busy
        ids = [requests.post(f"{mserver.url}/executions", json={"code": "print('a')"}, timeout=30).json()["id"]
               for _ in range(3)]
        assert wait_until(lambda: get_metrics(mserver).value("envhub_async_queue_depth") >= 1, 5), \
            "three submitted jobs behind a busy slot: envhub_async_queue_depth stayed 0"
    finally:
        first.join(60)
        second.join(60)
    assert results["second"].json()["stdout"] == "second\n", results["second"].text
    assert wait_until(lambda: all(
        requests.get(f"{mserver.url}/executions/{i}", timeout=10).json()["status"] == "succeeded" for i in ids), 30)
    after = get_metrics(mserver)
    for gauge in ("envhub_queue_depth", "envhub_async_queue_depth", "envhub_jobs_running"):
        assert after.value(gauge) == 0, f"{gauge} is {after.value(gauge)} with nothing running"
    waited = after.value("envhub_queue_wait_seconds_count") - before.value("envhub_queue_wait_seconds_count")
    wait_sum = after.value("envhub_queue_wait_seconds_sum") - before.value("envhub_queue_wait_seconds_sum")
    assert waited == 5, f"envhub_queue_wait_seconds_count moved by {waited} for 5 jobs"
    assert wait_sum >= 1.0, f"the second job waited about 2-3 s for the slot: envhub_queue_wait_seconds_sum moved {wait_sum}"


def test_warm_pool_metrics(mserver):
    assert wait_until(lambda: get_metrics(mserver).get("envhub_pool_ready", **DEFAULT_POOL) == 2, 30), \
        f"the default pool did not fill: {get_metrics(mserver).series('envhub_pool_ready')}"
    before = get_metrics(mserver)
    assert before.get("envhub_pool_target", **DEFAULT_POOL) == 2
    execute(mserver, "print(1)", timeout=20)
    after = get_metrics(mserver)
    hits = after.value("envhub_pool_hits_total", **DEFAULT_POOL) - before.value("envhub_pool_hits_total", **DEFAULT_POOL)
    misses = after.value("envhub_pool_misses_total", **DEFAULT_POOL) - before.value("envhub_pool_misses_total", **DEFAULT_POOL)
    assert (hits, misses) == (1, 0), f"a job on a full pool: hits +{hits}, misses +{misses}"
    assert wait_until(lambda: get_metrics(mserver).get("envhub_pool_ready", **DEFAULT_POOL) == 2, 30), \
        "the pool did not refill"


def test_builds_and_environment_executions_are_counted(mserver, run_id):
    before = get_metrics(mserver)
    ok, bad = f"metrics-ok-{run_id}", f"metrics-bad-{run_id}"
    create_env(mserver, ok, "#!/bin/bash\necho ok > /etc/envhub-metrics\n")
    create_env(mserver, bad, "#!/bin/bash\necho failing on purpose\nexit 3\n")
    try:
        assert wait_until(lambda: get_metrics(mserver).value("envhub_builds_running") >= 1
                          or get_metrics(mserver).value("envhub_builds_total", status="ready")
                          > before.value("envhub_builds_total", status="ready"), 30)
        wait_env(mserver, ok)
        wait_env(mserver, bad, until=("failed",))
        after = get_metrics(mserver)
        for status, want in (("ready", 1), ("failed", 1), ("cancelled", 0)):
            d = after.value("envhub_builds_total", status=status) - before.value("envhub_builds_total", status=status)
            assert d == want, f"envhub_builds_total{{status={status!r}}} moved by {d}, expected {want}"
        assert after.value("envhub_build_duration_seconds_count") - before.value("envhub_build_duration_seconds_count") == 2
        assert after.value("envhub_build_duration_seconds_sum") > before.value("envhub_build_duration_seconds_sum")
        assert after.value("envhub_builds_running") == 0 and after.value("envhub_builds_queued") == 0

        res = execute(mserver, "print(open('/etc/envhub-metrics').read())", timeout=20, environment=ok)
        assert res["success"], short(res)
        m = get_metrics(mserver)
        assert m.value("envhub_executions_total", environment=ok, status="succeeded") == 1, \
            m.series("envhub_executions_total")
        assert m.get("envhub_execution_duration_seconds_count", environment=ok) == 1
    finally:
        for name in (ok, bad):
            requests.delete(f"{mserver.url}/environments/{name}", timeout=60)


def test_engine_errors_are_exposed(mserver):
    m = get_metrics(mserver)
    v = m.get("envhub_engine_errors_total")
    assert v is not None and v >= 0, m.series("envhub_engine_errors_total")

"""The execution history for auditors, against the real server: every filter of
GET /executions alone and combined (the catalog file, read apart, is the oracle),
keyset pages that visit each row once while executions arrive, the export of 10,000
rows equal to the pages, statistics, the detail of one execution, 400s naming the
parameter, and the audit chain: an edited stdout, a deleted row and two swapped rows
are each named by GET /audit/verify and `envhub audit verify --db`; a prune keeps a
checkpoint that verify starts from, and tampering after it still shows.

The 10,000 rows are seeded through the catalog API by tests/bench/seed_history
(build/bench/seed_history, built by `make api`), writing into the served catalog
like one more writer; a few real executions go through POST /execute."""

import calendar
import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import requests

import helpers
from helpers import seed, seed_bin_path

SEED_ROWS = 10000
SEED_DAYS = 30


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def stop_clean(server):
    """Stop a server of this module; fail if it needed killing or a sanitizer spoke."""
    _status, killed = server.stop()
    log = server.log_text()
    assert not killed, f"envhub (pid {server.pid}) ignored SIGTERM: {server.log_tail()}"
    for mark in SANITIZER_MARKS:
        assert mark not in log, f"the sanitizer reported in {server.log_path}:\n{server.log_tail(80)}"
    shutil.rmtree(server.tmpdir, ignore_errors=True)


def iso_of(ms_value):
    t = time.gmtime(ms_value / 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms_value % 1000:03d}Z"


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def seed_bin(envhub_bin):
    return seed_bin_path(envhub_bin)


@pytest.fixture(scope="module")
def hist(envhub_bin, run_id, run_label, seed_bin):
    """A server of its own whose catalog holds 10,000 seeded executions and a few real ones."""
    server = helpers.EnvhubServer(envhub_bin, run_id)
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        seed(seed_bin, server.db_path, SEED_ROWS, "--days", str(SEED_DAYS), "--seed", "4242")
        server.real = [
            helpers.execute(server, "print('history real one')", timeout=20,
                            files={"in.txt": helpers.b64("abc")}),
            helpers.execute(server, "open('out.csv','w').write('a,b\\n')\nraise SystemExit(3)",
                            timeout=20),
        ]
    except BaseException:
        server.stop()  # a failed set-up leaves no server running
        raise
    yield server
    stop_clean(server)


def oracle(db_path, where="1", args=()):
    """Ids in the catalog matching `where`, newest first (the API's order)."""
    conn = helpers.connect_ro(db_path)
    try:
        return [r[0] for r in conn.execute(
            f"SELECT id FROM executions WHERE {where} ORDER BY seq DESC", args)]
    finally:
        conn.close()


def walk(server, params=None, limit=500, pause=0.0):
    """Every item of GET /executions with `params`, following next_cursor."""
    items, cursor, pages = [], None, 0
    while True:
        p = dict(params or {}, limit=limit)
        if cursor:
            p["cursor"] = cursor
        r = requests.get(f"{server.url}/executions", params=p, timeout=30)
        assert r.status_code == 200, f"GET /executions {p} answered {r.status_code}: {r.text[:500]}"
        doc = r.json()
        assert set(doc) == {"items", "next_cursor"}, doc.keys()
        items += doc["items"]
        pages += 1
        cursor = doc["next_cursor"]
        if not cursor:
            return items
        assert pages < 10000, "the cursor chain does not end"
        if pause:
            time.sleep(pause)


def ids(items):
    return [it["id"] for it in items]


# ---------------------------------------------------------------- filters

def sample(db_path):
    """Values that exist in the seeded catalog, for the filters."""
    conn = helpers.connect_ro(db_path)
    try:
        env, version = conn.execute(
            "SELECT environment, environment_version FROM executions WHERE environment ="
            " 'machine-learning' LIMIT 1").fetchone()
        code = conn.execute("SELECT code_sha256 FROM executions WHERE id LIKE 'ex_%'"
                            " ORDER BY seq LIMIT 1 OFFSET 777").fetchone()[0]
        lo, hi = conn.execute("SELECT min(recorded_at), max(recorded_at) FROM executions").fetchone()
        return {"env": env, "version": version, "code": code, "lo": lo, "hi": hi}
    finally:
        conn.close()


def test_each_filter_alone_matches_the_catalog(hist):
    s = sample(hist.db_path)
    since = s["lo"] + (s["hi"] - s["lo"]) // 2
    until = s["lo"] + (s["hi"] - s["lo"]) // 3
    cases = [
        ({}, "1", ()),
        ({"environment": s["env"]}, "environment = ?", (s["env"],)),
        ({"environment": s["env"], "environment_version": s["version"]},
         "environment = ? AND environment_version = ?", (s["env"], s["version"])),
        ({"status": "failed"}, "status = 'failed'", ()),
        ({"principal": "user03"}, "principal = 'user03'", ()),
        ({"since": iso_of(since)}, "recorded_at >= ?", (since,)),
        ({"until": iso_of(until)}, "recorded_at < ?", (until,)),
        ({"code_sha256": s["code"]}, "code_sha256 = ?", (s["code"],)),
        ({"q": "requests.get"}, "instr(code, 'requests.get') > 0", ()),
    ]
    for params, where, args in cases:
        want = oracle(hist.db_path, where, args)
        got = ids(walk(hist, params))
        assert got == want, f"{params}: {len(got)} rows, the catalog has {len(want)}"
        assert want or params == {}, f"{params} selects nothing: a weak test"
    # the default page is 50, newest first
    r = requests.get(f"{hist.url}/executions", timeout=30).json()
    assert ids(r["items"]) == oracle(hist.db_path)[:50]


def test_filters_combined_match_the_catalog(hist):
    s = sample(hist.db_path)
    week = s["hi"] - 7 * 86400000
    cases = [
        ({"environment": "data-science", "status": "failed", "since": iso_of(week)},
         "environment = 'data-science' AND status = 'failed' AND recorded_at >= ?", (week,)),
        ({"principal": "user01", "status": "succeeded"},
         "principal = 'user01' AND status = 'succeeded'", ()),
        ({"environment": s["env"], "environment_version": s["version"], "status": "succeeded",
          "until": iso_of(week)},
         "environment = ? AND environment_version = ? AND status = 'succeeded' AND recorded_at < ?",
         (s["env"], s["version"], week)),
        ({"q": "read_csv", "environment": "etl-jobs", "status": "failed"},
         "instr(code, 'read_csv') > 0 AND environment = 'etl-jobs' AND status = 'failed'", ()),
        ({"since": iso_of(week), "until": iso_of(week + 86400000), "principal": "user00"},
         "recorded_at >= ? AND recorded_at < ? AND principal = 'user00'", (week, week + 86400000)),
        ({"q": "json requests.get", "since": iso_of(week)},
         "instr(code, 'json') > 0 AND instr(code, 'requests.get') > 0 AND recorded_at >= ?",
         (week,)),
    ]
    for params, where, args in cases:
        want = oracle(hist.db_path, where, args)
        got = ids(walk(hist, params, limit=97))
        assert got == want, f"{params}: {len(got)} rows, the catalog has {len(want)}"
        assert want, f"{params} selects nothing: a weak test"
    # a date alone is midnight UTC; an offset is honoured
    day = time.strftime("%Y-%m-%d", time.gmtime(week / 1000))
    midnight = calendar.timegm(time.strptime(day, "%Y-%m-%d")) * 1000
    want = oracle(hist.db_path, "recorded_at >= ?", (midnight,))
    assert ids(walk(hist, {"since": day})) == want
    assert ids(walk(hist, {"since": day + "T02:00:00+02:00"})) == want
    # runs with nothing to show answer an empty page
    r = requests.get(f"{hist.url}/executions", params={"environment": "nowhere"}, timeout=30)
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}


def test_pages_visit_every_row_once_while_executions_arrive(hist):
    before = set(oracle(hist.db_path))
    ran, stop, errors = [], threading.Event(), []

    def run():
        while not stop.is_set():
            try:
                ran.append(helpers.execute(hist, "print('arriving')", timeout=20)["id"])
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                return

    t = threading.Thread(target=run)
    t.start()
    try:
        while len(ran) < 1 and t.is_alive():  # rows are arriving before the walk starts
            time.sleep(0.05)
        seen = ids(walk(hist, limit=100, pause=0.02))
    finally:
        stop.set()
        t.join(timeout=120)
    assert not errors, errors
    arrived_during = [x for x in ran if x not in before]
    assert len(arrived_during) >= 2, f"only {len(arrived_during)} executions arrived meanwhile"
    dupes = {x for x in seen if seen.count(x) > 1}
    assert not dupes, f"visited twice: {sorted(dupes)[:5]}"
    missing = before - set(seen)
    assert not missing, f"{len(missing)} rows never visited, e.g. {sorted(missing)[:3]}"


# ---------------------------------------------------------------- export, detail, stats

def csv_value(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):  # the recorded limits: compact JSON with sorted keys, as stored
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    return str(v)


def test_export_of_10000_rows_equals_the_query(hist):
    items = walk(hist)
    assert len(items) >= SEED_ROWS
    for fmt in ("jsonl", "csv"):
        r = requests.get(f"{hist.url}/executions/export", params={"format": fmt}, stream=True,
                         timeout=120)
        assert r.status_code == 200, r.text[:500]
        assert r.headers.get("Transfer-Encoding") == "chunked", r.headers
        body = r.content.decode()
        if fmt == "jsonl":
            assert r.headers["Content-Type"].startswith("application/x-ndjson")
            rows = [json.loads(line) for line in body.splitlines()]
            assert rows[:len(items)] == items
            # rows the server ran meanwhile come first; none is missing or repeated
            assert len(rows) == len(items)
        else:
            assert r.headers["Content-Type"].startswith("text/csv")
            table = list(csv.reader(io.StringIO(body)))
            header, rows = table[0], table[1:]
            assert header == list(items[0].keys())
            assert len(rows) == len(items)
            for row, it in zip(rows, items):
                assert row == [csv_value(it[k]) for k in header], (row, it)
    # the same filters as the pages
    params = {"status": "failed", "environment": "data-science"}
    want = walk(hist, params)
    r = requests.get(f"{hist.url}/executions/export", params=dict(params, format="jsonl"),
                     timeout=60)
    assert [json.loads(line) for line in r.text.splitlines()] == want
    r = requests.get(f"{hist.url}/executions/export", params=dict(params, format="csv", limit=7),
                     timeout=60)
    assert [row[0] for row in list(csv.reader(io.StringIO(r.text)))[1:]] == ids(want)[:7]


def test_detail_has_code_output_timings_and_files(hist):
    real, failed = hist.real
    r = requests.get(f"{hist.url}/executions/{real['id']}", timeout=30)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["code"] == "print('history real one')"
    assert d["stdout"] == "history real one\n" and d["stderr"] == ""
    assert d["status"] == "succeeded" and d["exit_code"] == 0
    assert d["environment"] is None and d["image"] == helpers.DEFAULT_IMAGE
    assert d["client_addr"].startswith("127.0.0.1") and d["principal"]
    assert d["queued_at"] and d["started_at"] and d["finished_at"] and d["duration_ms"] >= 0
    assert d["code_sha256"] == helpers.sha256_hex("print('history real one')")
    assert d["chain_seq"] > SEED_ROWS and re.fullmatch(r"[0-9a-f]{64}", d["chain_hash"])
    assert {"direction": "in", "path": "in.txt", "size": 3,
            "sha256": helpers.sha256_hex("abc")} in d["files"]
    d = requests.get(f"{hist.url}/executions/{failed['id']}", timeout=30).json()
    assert d["status"] == "failed" and d["exit_code"] == 3
    assert {"direction": "out", "path": "out.csv", "size": 4,
            "sha256": helpers.sha256_hex("a,b\n")} in d["files"]
    r = requests.get(f"{hist.url}/executions/ex_000000000000000000000000", timeout=30)
    assert r.status_code == 404 and "ex_000000000000000000000000" in r.json()["detail"]


def nearest_rank(values, pct):
    if not values:
        return None
    values = sorted(values)
    rank = max(1, -(-pct * len(values) // 100))
    return values[rank - 1]


def test_stats_count_and_time_each_group(hist):
    conn = helpers.connect_ro(hist.db_path)
    try:
        rows = conn.execute("SELECT status, environment, recorded_at, duration_ms FROM executions"
                            ).fetchall()
    finally:
        conn.close()
    r = requests.get(f"{hist.url}/executions/stats", params={"group": "status"}, timeout=60)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["group"] == "status" and doc["total"]["count"] == len(rows)
    for g in doc["groups"]:
        durations = [d for s, _e, _t, d in rows if s == g["key"] and d is not None]
        assert g["count"] == sum(1 for s, *_ in rows if s == g["key"])
        assert g["total_duration_ms"] == sum(durations)
        assert g["p50_duration_ms"] == nearest_rank(durations, 50)
        assert g["p95_duration_ms"] == nearest_rank(durations, 95)
    s = sample(hist.db_path)
    since = s["hi"] - 5 * 86400000
    r = requests.get(f"{hist.url}/executions/stats",
                     params={"group": "day", "since": iso_of(since), "environment": "data-science"},
                     timeout=60)
    doc = r.json()
    want = {}
    for _s, env, t, _d in rows:
        if env == "data-science" and t >= since:
            day = time.strftime("%Y-%m-%d", time.gmtime(t / 1000))
            want[day] = want.get(day, 0) + 1
    assert {g["key"]: g["count"] for g in doc["groups"]} == want
    assert [g["key"] for g in doc["groups"]] == sorted(want)
    doc = requests.get(f"{hist.url}/executions/stats", params={"group": "environment"},
                       timeout=60).json()
    keys = [g["key"] for g in doc["groups"]]
    assert keys[0] is None and "data-science" in keys  # the default image first


def test_malformed_filters_are_400_naming_the_parameter(hist):
    cases = [
        ("/executions", {"status": "bogus"}, "status"),
        ("/executions", {"since": "yesterday"}, "since"),
        ("/executions", {"until": "2026-13-01"}, "until"),
        ("/executions", {"since": "2026-11-02", "until": "2026-11-01"}, "until"),
        ("/executions", {"environment_version": "x", "environment": "a"}, "environment_version"),
        ("/executions", {"environment_version": "2"}, "environment_version"),
        ("/executions", {"limit": "0"}, "limit"),
        ("/executions", {"limit": "501"}, "limit"),
        ("/executions", {"limit": "ten"}, "limit"),
        ("/executions", {"cursor": "not-a-cursor"}, "cursor"),
        ("/executions", {"code_sha256": "abc"}, "code_sha256"),
        ("/executions", {"q": "!!! ???"}, "q"),
        ("/executions", {"stauts": "failed"}, "stauts"),
        ("/executions?status=failed&status=succeeded", None, "status"),
        ("/executions/export", {"format": "xml"}, "format"),
        ("/executions/export", {"cursor": "x"}, "cursor"),
        ("/executions/stats", {"group": "week"}, "group"),
        ("/executions/stats", {"status": "nope"}, "status"),
        ("/audit/verify", {"deep": "1"}, "deep"),
    ]
    for path, params, name in cases:
        r = requests.get(f"{hist.url}{path}", params=params, timeout=30)
        assert r.status_code == 400, f"{path} {params}: {r.status_code} {r.text[:300]}"
        assert name in r.json()["detail"], f"{path} {params}: {r.json()['detail']}"


# ---------------------------------------------------------------- the audit chain

@pytest.fixture(scope="module")
def pristine(envhub_bin, run_id, run_label, seed_bin):
    """A stopped catalog with 300 seeded and 2 real executions whose chain holds."""
    server = helpers.EnvhubServer(envhub_bin, run_id)
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    seed(seed_bin, server.db_path, 300, "--days", "10", "--seed", "77")
    helpers.execute(server, "print('chained')", timeout=20, files={"a.txt": helpers.b64("x")})
    helpers.execute(server, "import sys; print('bad'); sys.exit(2)", timeout=20)
    r = requests.get(f"{server.url}/audit/verify", timeout=60)
    assert r.status_code == 200 and r.json()["ok"] and r.json()["count"] == 302, r.text
    _status, killed = server.stop()
    assert not killed and not any(m in server.log_text() for m in SANITIZER_MARKS), server.log_tail()
    yield server.db_path
    shutil.rmtree(server.tmpdir, ignore_errors=True)


@pytest.fixture
def copy(pristine):
    """A copy of the pristine catalog to tamper with."""
    d = tempfile.mkdtemp(prefix="envhub-tamper-")
    path = os.path.join(d, "envhub.db")
    for suffix in ("", "-wal"):
        if os.path.exists(pristine + suffix):
            shutil.copy(pristine + suffix, path + suffix)
    yield path
    shutil.rmtree(d, ignore_errors=True)


def sqlite_cli(db_path, sql):
    """The sqlite3 command line, as someone with the file would use it."""
    r = subprocess.run(["sqlite3", db_path, sql], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"sqlite3 {sql!r}: {r.stderr}"
    return r.stdout


def link(db_path, chain_seq):
    return sqlite_cli(db_path, f"SELECT id FROM executions WHERE chain_seq = {chain_seq}").strip()


def offline_verify(envhub_bin, db_path, *extra):
    return subprocess.run([envhub_bin, "audit", "verify", "--db", db_path, *extra],
                          capture_output=True, text=True, timeout=120, env=helpers.server_env())


def api_verify(envhub_bin, run_id, db_path):
    """GET /audit/verify from a server on `db_path`."""
    server = helpers.EnvhubServer(envhub_bin, run_id, ["--db", db_path])
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        r = requests.get(f"{server.url}/audit/verify", timeout=120)
        assert r.status_code == 200, r.text
        return r.json()
    finally:
        stop_clean(server)


def assert_broken_at(envhub_bin, run_id, db_path, bad_id):
    r = offline_verify(envhub_bin, db_path)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert bad_id in r.stdout and "BROKEN" in r.stdout, r.stdout
    doc = json.loads(offline_verify(envhub_bin, db_path, "--format", "json").stdout)
    assert doc["ok"] is False and doc["first_bad_id"] == bad_id, doc
    doc = api_verify(envhub_bin, run_id, db_path)
    assert doc["ok"] is False and doc["first_bad_id"] == bad_id, doc
    return doc


def test_an_intact_catalog_verifies_offline_and_through_the_api(envhub_bin, run_id, copy):
    r = offline_verify(envhub_bin, copy)
    assert r.returncode == 0 and "intact: 302 executions" in r.stdout, r.stdout + r.stderr
    doc = api_verify(envhub_bin, run_id, copy)
    assert doc["ok"] is True and doc["count"] == 302 and doc["head_seq"] == 302, doc
    assert re.fullmatch(r"[0-9a-f]{64}", doc["head"]) and doc["checkpoint"] is None


def test_an_edited_stdout_is_found_with_its_id(envhub_bin, run_id, copy):
    victim = link(copy, 150)
    sqlite_cli(copy, f"UPDATE executions SET stdout = stdout || 'forged' WHERE id = '{victim}'")
    doc = assert_broken_at(envhub_bin, run_id, copy, victim)
    assert doc["first_bad_seq"] == 150


def test_a_deleted_row_is_found_at_the_row_after_it(envhub_bin, run_id, copy):
    victim, after = link(copy, 120), link(copy, 121)
    sqlite_cli(copy, f"DELETE FROM executions WHERE id = '{victim}'")
    doc = assert_broken_at(envhub_bin, run_id, copy, after)
    assert "missing" in doc["reason"]


def test_two_swapped_rows_are_found(envhub_bin, run_id, copy):
    first, second = link(copy, 100), link(copy, 200)
    # the rows trade places in the chain, each keeping its own hash
    sqlite_cli(copy, "UPDATE executions SET chain_seq = -chain_seq WHERE chain_seq IN (100, 200);"
                     " UPDATE executions SET chain_seq = 200 WHERE chain_seq = -100;"
                     " UPDATE executions SET chain_seq = 100 WHERE chain_seq = -200;")
    assert link(copy, 100) == second
    assert_broken_at(envhub_bin, run_id, copy, second)


def test_prune_keeps_a_checkpoint_verify_starts_from_and_tampering_after_shows(
        envhub_bin, run_id, copy):
    cut = sqlite_cli(copy, "SELECT finished_at FROM executions WHERE chain_seq = 101").strip()
    before = iso_of(int(cut))
    env = dict(helpers.server_env(), ENVHUB_DB=copy)
    r = subprocess.run([envhub_bin, "history", "prune", "--before", before], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pruned 100 executions" in r.stdout and "link 100" in r.stdout, r.stdout
    assert sqlite_cli(copy, "SELECT count(*) FROM executions").strip() == "202"
    r = offline_verify(envhub_bin, copy)
    assert r.returncode == 0 and "intact: 202 executions" in r.stdout, r.stdout + r.stderr
    assert "checkpoint: link 100" in r.stdout, r.stdout
    doc = api_verify(envhub_bin, run_id, copy)
    assert doc["ok"] and doc["count"] == 202 and doc["checkpoint"]["chain_seq"] == 100, doc
    assert doc["checkpoint"]["pruned"] == 100

    victim = link(copy, 250)
    sqlite_cli(copy, f"UPDATE executions SET exit_code = coalesce(exit_code, 0) + 1"
                     f" WHERE id = '{victim}'")
    assert_broken_at(envhub_bin, run_id, copy, victim)


# ---------------------------------------------------------------- the command line

def test_the_command_line_reads_through_the_api(envhub_bin, hist):
    env = dict(helpers.server_env(), ENVHUB_URL=hist.url)

    def cli(*args):
        return subprocess.run([envhub_bin, *args], capture_output=True, text=True, timeout=120,
                              env=env)

    want = oracle(hist.db_path, "environment = 'data-science' AND status = 'failed'")
    r = cli("history", "--env", "data-science", "--status", "failed", "--limit", "7")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ID") and [ln.split()[0] for ln in lines[1:]] == want[:7]
    r = cli("history", "--env", "data-science", "--status", "failed", "--limit", "0",
            "--format", "json")
    assert [json.loads(ln)["id"] for ln in r.stdout.splitlines()] == want
    r = cli("history", "--env", "data-science", "--status", "failed", "--limit", "3",
            "--format", "csv")
    assert [row[0] for row in list(csv.reader(io.StringIO(r.stdout)))[1:]] == want[:3]
    r = cli("history", "show", want[0])
    assert r.returncode == 0 and want[0] in r.stdout and "---- code ----" in r.stdout
    r = cli("history", "show", "ex_nope")
    assert r.returncode == 1 and "not found" in r.stderr
    r = cli("audit", "verify")
    assert r.returncode == 0 and "intact" in r.stdout, r.stdout + r.stderr
    r = cli("history", "--status", "bogus")
    assert r.returncode == 1 and "status" in r.stderr

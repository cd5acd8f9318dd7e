"""Storage that one key cannot exhaust (issue 13, item 4): a key over its daily
ENVHUB_OUTPUT_BUDGET is refused before anything runs or is recorded while another key
still runs; ENVHUB_RETENTION_DAYS drops old stdout and stderr at start-up and then
periodically, keeping their sha256 so that `envhub audit verify` still passes (and still
finds a forged digest); /metrics has the catalog's size and free disk; /health warns
when the free disk is under ENVHUB_MIN_FREE_DISK.

Old executions are seeded through the catalog API by tests/bench/seed_history
(build/bench/seed_history), chained like real ones."""

import os
import re
import sqlite3
import subprocess
import time

import pytest
import requests

import helpers
from helpers import bearer, create_key, get_metrics, seed, seed_bin_path, wait_until

DAY_MS = 86400000


def iso_days_ago(days):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - days * 86400))


def query(db_path, sql, *args):
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def audit_verify(envhub_bin, *args, env=None):
    e = helpers.server_env()
    e.update(env or {})
    return subprocess.run([envhub_bin, "audit", "verify", *args], capture_output=True, text=True,
                          timeout=120, env=e)


# ---------------------------------------------------------------- the output budget

def test_a_key_over_its_output_budget_is_refused_and_another_key_still_runs(envhub_factory, envhub_bin):
    server = envhub_factory(env={"ENVHUB_OUTPUT_BUDGET": "4k"})
    alice = bearer(create_key(envhub_bin, server.db_path, "alice", "runner"))
    bob = bearer(create_key(envhub_bin, server.db_path, "bob", "runner"))
    loud = {"code": "print('x' * 5000)", "timeout": 20}

    # under the budget when it starts: it runs, and its 5001 bytes are stored
    r = requests.post(f"{server.url}/execute", json=loud, headers=alice, timeout=80)
    assert r.status_code == 200 and r.json()["success"], r.text[:500]
    rows = helpers.count_rows(server.db_path)

    for path, body in (("/execute", loud), ("/executions", loud),
                       ("/execute-with-environment", dict(loud, environment="nope"))):
        r = requests.post(f"{server.url}{path}", json=body, headers=alice, timeout=30)
        assert r.status_code == 429, f"{path}: {r.status_code} {r.text[:300]}"
        detail = r.json()["detail"]
        assert "ENVHUB_OUTPUT_BUDGET" in detail and "'alice'" in detail, detail
        assert "5001" in detail and "4096" in detail, detail
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 86400, r.headers
    # the refusals recorded nothing and ran nothing
    assert helpers.count_rows(server.db_path) == rows

    # another key is not held back by alice's output
    r = requests.post(f"{server.url}/execute", json={"code": "print('hi')", "timeout": 20},
                      headers=bob, timeout=80)
    assert r.status_code == 200 and r.json()["stdout"] == "hi\n", r.text[:500]
    day = int(time.time() * 1000) // DAY_MS
    usage = dict(query(server.db_path, "SELECT principal, bytes FROM output_usage WHERE day = ?", day))
    assert usage == {"alice": 5001, "bob": 3}, usage


def test_a_budget_of_zero_is_no_limit(envhub_factory):
    server = envhub_factory(env={"ENVHUB_OUTPUT_BUDGET": "0"})
    for _ in range(2):
        res = helpers.execute(server, "print('y' * 3000)", timeout=20)
        assert res["success"], res


# ---------------------------------------------------------------- retention

@pytest.fixture(scope="module")
def seed_bin(envhub_bin):
    return seed_bin_path(envhub_bin)


def pruned_counts(db_path):
    (held, pruned, digests), = query(
        db_path,
        "SELECT sum(stdout <> '' OR stderr <> ''), sum(output_pruned_at IS NOT NULL),"
        " sum(stdout_sha256 IS NOT NULL AND stderr_sha256 IS NOT NULL) FROM executions")
    return held or 0, pruned or 0, digests or 0


def test_retention_drops_old_output_keeps_hashes_and_audit_verify_passes(envhub_factory, envhub_bin,
                                                                        seed_bin, tmp_path):
    db = str(tmp_path / "envhub.db")
    # 120 executions spread over the 20 days before 30 days ago
    seed(seed_bin, db, 120, "--days", "20", "--end", iso_days_ago(30), "--seed", "13")
    held_before, _, _ = pruned_counts(db)
    assert held_before > 100

    server = envhub_factory(db_path=db, env={"ENVHUB_RETENTION_DAYS": "7",
                                             "ENVHUB_REAPER_INTERVAL": "1"})
    # at start-up: every old row with output loses it, keeps its digests
    assert wait_until(lambda: pruned_counts(db)[1] == held_before, within=20), pruned_counts(db)
    held, pruned, digests = pruned_counts(db)
    assert held == 0 and digests == pruned == held_before
    assert helpers.wait_log_line(server, "retention: dropped the output of", within=5)

    # periodically: rows that grow old while it runs (seeded, still old) go too
    seed(seed_bin, db, 40, "--days", "5", "--end", iso_days_ago(9), "--seed", "14")
    assert wait_until(lambda: pruned_counts(db)[0] == 0, within=20), pruned_counts(db)

    # a fresh execution keeps its output
    res = helpers.execute(server, "print('fresh')", timeout=20)
    assert res["stdout"] == "fresh\n"

    # the history shows a pruned row as pruned, with what was kept of it
    (pid, size), = query(db, "SELECT id, stdout_size FROM executions WHERE output_pruned_at IS NOT NULL"
                             " AND stdout_size > 0 ORDER BY seq LIMIT 1")
    doc = requests.get(f"{server.url}/executions/{pid}", timeout=30).json()
    assert doc["output_pruned"] is True and doc["output_pruned_at"], doc
    assert doc["stdout"] == "" and doc["stdout_size"] == size
    assert re.fullmatch(r"[0-9a-f]{64}", doc["stdout_sha256"]), doc
    fresh = requests.get(f"{server.url}/executions", params={"q": "fresh"}, timeout=30).json()["items"]
    doc = requests.get(f"{server.url}/executions/{fresh[0]['id']}", timeout=30).json()
    assert doc["output_pruned"] is False and doc["output_pruned_at"] is None
    assert doc["stdout"] == "fresh\n" and doc["stdout_size"] == 6
    assert doc["stdout_sha256"] == helpers.sha256_hex(b"fresh\n")
    show = subprocess.run([envhub_bin, "history", "show", pid], capture_output=True, text=True,
                          timeout=30, env=dict(helpers.server_env(), ENVHUB_URL=server.url))
    assert show.returncode == 0 and "output pruned at" in show.stdout, show.stdout + show.stderr

    # the chain verifies: through the server and offline on the file
    r = audit_verify(envhub_bin, env={"ENVHUB_URL": server.url})
    assert r.returncode == 0 and "intact" in r.stdout, r.stdout + r.stderr
    r = requests.get(f"{server.url}/audit/verify", timeout=60).json()
    assert r["ok"] and r["count"] == 161, r
    server.stop()
    r = audit_verify(envhub_bin, "--db", db)
    assert r.returncode == 0, r.stdout + r.stderr

    # a forged digest of a pruned row is still found
    conn = sqlite3.connect(db)
    conn.execute("UPDATE executions SET stdout_sha256 = ? WHERE id = ?", ("0" * 64, pid))
    conn.commit()
    conn.close()
    r = audit_verify(envhub_bin, "--db", db)
    assert r.returncode == 1 and pid in r.stdout + r.stderr, r.stdout + r.stderr


def test_retention_off_by_default_keeps_output(envhub_factory, seed_bin, tmp_path):
    db = str(tmp_path / "envhub.db")
    seed(seed_bin, db, 30, "--days", "5", "--end", iso_days_ago(400), "--seed", "15")
    held_before, _, _ = pruned_counts(db)
    server = envhub_factory(db_path=db, env={"ENVHUB_REAPER_INTERVAL": "1"})
    time.sleep(2.5)
    assert pruned_counts(db) == (held_before, 0, 0)
    assert server.alive()


# ---------------------------------------------------------------- /metrics and /health

def test_metrics_has_the_catalog_size_and_free_disk(envhub):
    helpers.execute(envhub, "print('size')", timeout=20)
    m = get_metrics(envhub)
    assert m.types.get("envhub_catalog_size_bytes") == "gauge"
    assert m.types.get("envhub_catalog_disk_free_bytes") == "gauge"
    assert m.types.get("envhub_catalog_disk_size_bytes") == "gauge"
    db = m.get("envhub_catalog_size_bytes", file="db")
    wal = m.get("envhub_catalog_size_bytes", file="wal")
    assert db == os.path.getsize(envhub.db_path)
    assert wal >= 0 and db + wal > 4096
    st = os.statvfs(os.path.dirname(envhub.db_path))
    free = st.f_bavail * st.f_frsize
    assert abs(m.get("envhub_catalog_disk_free_bytes") - free) < max(free * 0.05, 256 << 20)
    assert m.get("envhub_catalog_disk_size_bytes") == st.f_blocks * st.f_frsize


def test_health_warns_when_free_disk_is_under_the_setting(envhub_factory):
    server = envhub_factory(env={"ENVHUB_MIN_FREE_DISK": "1000000g"})  # more than this disk has
    r = requests.get(f"{server.url}/health", timeout=30)
    doc = r.json()
    # still the seed's shape, still healthy: a warning is not an outage
    assert r.status_code == 200 and doc["status"] == "healthy" and doc["timestamp"], doc
    (w,) = doc["warnings"]
    assert w["code"] == "low_disk" and "ENVHUB_MIN_FREE_DISK" in w["detail"], w
    assert w["min_free_bytes"] == 1000000 << 30 and 0 <= w["free_bytes"] < w["min_free_bytes"], w


def test_health_has_no_warning_with_room_to_spare(envhub_factory):
    server = envhub_factory(env={"ENVHUB_MIN_FREE_DISK": "1k"})
    doc = requests.get(f"{server.url}/health", timeout=30).json()
    assert doc["status"] == "healthy" and doc["warnings"] == [], doc

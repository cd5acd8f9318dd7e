"""History reads beside the writer, with a time budget: a search or statistics over more
rows than ENVHUB_QUERY_BUDGET_MS lets them read are stopped with a 422 whose detail names
the budget and the setting and asks for a narrower filter, while /health and narrow
queries go on answering; with no budget (0) the same search completes.

The 60,000 rows are written into the catalog file with Python's sqlite3 before the server
starts (one INSERT ... SELECT, the code indexed in bulk, as catalog_history_seed does), far
faster than the seeder; they carry placeholder chain links (these tests do not verify the
chain), so that start-up recovery has nothing to chain."""

import os
import sqlite3
import subprocess
import threading

import pytest
import requests

ROWS = 60000
T0 = 1764547200000  # 2025-12-01T00:00:00Z

# Every row's code holds "import"; no row ran in "nowhere": a search for both reads the
# index entry of every row before it can answer "none".
WALK_ALL = {"q": "import", "environment": "nowhere"}


def bulk_catalog(envhub_bin, db_path, rows=ROWS):
    r = subprocess.run([envhub_bin, "migrate", "--db", db_path], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, f"envhub migrate: {r.stdout}{r.stderr}"
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        with conn:
            conn.execute(
                """WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
                   INSERT INTO executions (id, environment, image, principal, code, code_sha256,
                       timeout_s, status, exit_code, queued_at, started_at, finished_at,
                       duration_ms, recorded_at, stdout, chain_seq, chain_hash)
                   SELECT printf('ex_budget%015d', i), 'data-science',
                       'envhub-env/data-science:v1', 'user' || (i % 7),
                       'import pandas as pd' || char(10) || 'print(' || i || ')',
                       printf('%064x', i), 30, 'succeeded', 0, ? + i * 1000, ? + i * 1000,
                       ? + i * 1000 + 40, 40, ? + i * 1000, 'ok', i, printf('%064d', 0)
                   FROM k""", (rows, T0, T0, T0, T0))
            conn.execute("INSERT INTO executions_fts (rowid, code) SELECT seq, code FROM executions")
            conn.execute("UPDATE history_head SET chain_seq = ?, chain_hash = printf('%064d', 0)",
                         (rows,))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def tight(envhub_module_factory, envhub_bin):
    """A server whose history queries may run 5 ms."""
    return envhub_module_factory(env={"ENVHUB_QUERY_BUDGET_MS": "5"},
                                 before_start=lambda s: bulk_catalog(envhub_bin, s.db_path))


def assert_budget_422(r, ms):
    assert r.status_code == 422, f"{r.status_code}: {r.text[:300]}"
    detail = r.json()["detail"]
    assert f"{ms} ms" in detail and "ENVHUB_QUERY_BUDGET_MS" in detail, detail
    assert "narrow the filter" in detail, detail


def test_a_search_over_the_budget_is_422_naming_the_setting(tight):
    r = requests.get(f"{tight.url}/executions", params=WALK_ALL, timeout=60)
    assert_budget_422(r, 5)


def test_statistics_over_the_budget_are_422_too(tight):
    r = requests.get(f"{tight.url}/executions/stats", params={"group": "day"}, timeout=60)
    assert_budget_422(r, 5)


def test_narrow_queries_fit_in_the_budget(tight):
    r = requests.get(f"{tight.url}/executions", params={"principal": "user3", "limit": 5},
                     timeout=30)
    assert r.status_code == 200, r.text[:300]
    items = r.json()["items"]
    assert len(items) == 5 and all(it["principal"] == "user3" for it in items)
    r = requests.get(f"{tight.url}/executions/{items[0]['id']}", timeout=30)
    assert r.status_code == 200 and r.json()["code"].startswith("import pandas"), r.text[:300]
    # the newest rows matching a word come first: a search that stops early fits
    r = requests.get(f"{tight.url}/executions", params={"q": "pandas", "limit": 3}, timeout=30)
    assert r.status_code == 200 and len(r.json()["items"]) == 3, r.text[:300]


def test_health_answers_while_clients_loop_stopped_searches(tight):
    stop = threading.Event()
    answers, problems = [], []

    def searcher():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    answers.append(s.get(f"{tight.url}/executions", params=WALK_ALL,
                                         timeout=60).status_code)
                except requests.RequestException as e:
                    problems.append(repr(e))
                    return

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        health = []
        with requests.Session() as s:
            while len(health) < 50 or len(answers) < 20:
                health.append(s.get(f"{tight.url}/health", timeout=30).status_code)
                if problems or len(health) > 5000:
                    break
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not problems, problems[:3]
    assert set(health) == {200}, sorted(set(health))
    # 422 over the budget; 429 when every read connection was taken for the whole budget
    assert answers and set(answers) <= {422, 429}, sorted(set(answers))
    assert 422 in answers


def test_without_a_budget_the_same_search_completes(envhub_factory, envhub_bin, tmp_path):
    db = str(tmp_path / "nobudget.db")
    bulk_catalog(envhub_bin, db, rows=20000)
    server = envhub_factory(env={"ENVHUB_QUERY_BUDGET_MS": "0"}, db_path=db)
    r = requests.get(f"{server.url}/executions", params=WALK_ALL, timeout=120)
    assert r.status_code == 200, r.text[:300]
    assert r.json() == {"items": [], "next_cursor": None}


def test_the_budget_is_a_setting(envhub_bin):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVHUB_")}
    env["ENVHUB_QUERY_BUDGET_MS"] = "-1"
    r = subprocess.run([envhub_bin, "config"], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode != 0 and "ENVHUB_QUERY_BUDGET_MS" in r.stderr, r.stderr

"""Every execution is one catalog row, complete before its response was received."""

from helpers import DEFAULT_IMAGE, catalog_row, count_rows, execute, sha256_hex, short

JOBS = [
    # (code, timeout, status, exit_code, stdout)
    ("print('row ok')", 10, "succeeded", 0, "row ok\n"),
    ("import sys\nprint('row bad')\nsys.exit(3)", 10, "failed", 3, "row bad\n"),
    ("raise RuntimeError('row exc')", 10, "failed", 1, ""),
]


def test_each_execution_is_one_complete_row_before_its_response(envhub):
    for code, timeout, status, exit_code, stdout in JOBS:
        before = count_rows(envhub.db_path)
        res = execute(envhub, code, timeout=timeout)
        # read at once: the row must already be final
        row = catalog_row(envhub.db_path, res["id"])
        assert count_rows(envhub.db_path) == before + 1, "not exactly one row for one execution"
        assert row is not None, f"no row for {res['id']}"
        assert row["status"] == status == res["status"], (row["status"], short(res))
        assert row["exit_code"] == exit_code == res["exit_code"]
        assert row["code"] == code
        assert row["code_sha256"] == sha256_hex(code)
        assert row["timeout_s"] == timeout
        assert row["environment"] is None
        assert row["image"] == DEFAULT_IMAGE
        assert row["stdout"] == stdout == res["stdout"]
        assert row["stderr"] == res["stderr"]
        assert row["stdout_truncated"] == 0 and row["stderr_truncated"] == 0
        assert row["client_addr"].startswith("127.0.0.1"), row["client_addr"]
        assert row["queued_at"] and row["started_at"] and row["finished_at"], row
        assert row["queued_at"] <= row["started_at"] <= row["finished_at"], row
        assert row["duration_ms"] is not None and row["duration_ms"] >= 0


def test_execution_ids_are_unique_rows(envhub):
    ids = [execute(envhub, f"print({i})", timeout=10)["id"] for i in range(3)]
    assert len(set(ids)) == 3
    for ex_id in ids:
        assert catalog_row(envhub.db_path, ex_id)["status"] == "succeeded"

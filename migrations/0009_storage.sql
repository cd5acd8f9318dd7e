-- 0009_storage: storage that one key cannot exhaust. Retention drops the
-- stdout and stderr of old executions but keeps what the audit chain needs
-- of them (their sha256) and their sizes; a per-principal, per-UTC-day count
-- of the output bytes stored backs ENVHUB_OUTPUT_BUDGET. Times are
-- milliseconds since the epoch.

-- Set together when retention empties a row's stdout and stderr
-- (catalog/storage.c): the sha256 and size in bytes of each as it was
-- stored. The chain serialisation takes stdout_sha256 and stderr_sha256 from
-- here when they are set, so a pruned row verifies as before (chain.c); NULL
-- on every row that still holds its output.
ALTER TABLE executions ADD COLUMN output_pruned_at INTEGER;
ALTER TABLE executions ADD COLUMN stdout_sha256 TEXT;
ALTER TABLE executions ADD COLUMN stderr_sha256 TEXT;
ALTER TABLE executions ADD COLUMN stdout_size INTEGER;
ALTER TABLE executions ADD COLUMN stderr_size INTEGER;

-- Output bytes (stdout + stderr as stored) each principal's executions
-- stored per UTC day (day = finished_at / 86400000), added in the
-- transaction that finishes an execution. Rows of past days are kept for
-- operators' eyes only; the budget reads today's.
CREATE TABLE output_usage (
    principal TEXT NOT NULL,
    day       INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    PRIMARY KEY (principal, day)
) STRICT, WITHOUT ROWID;

-- What was stored today and yesterday before this migration counts too
-- (read through the recorded_at index, not the whole table).
INSERT INTO output_usage (principal, day, bytes)
SELECT principal, finished_at / 86400000,
       sum(length(CAST(stdout AS BLOB)) + length(CAST(stderr AS BLOB)))
  FROM executions
 WHERE recorded_at >= (CAST(strftime('%s', 'now') AS INTEGER) / 86400 - 1) * 86400000
   AND finished_at IS NOT NULL
 GROUP BY principal, finished_at / 86400000;

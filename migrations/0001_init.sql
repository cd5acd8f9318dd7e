-- 0001_init: the catalog's identity and the execution history.
-- Times are milliseconds since the epoch (UTC).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE executions (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order
    id                  TEXT NOT NULL UNIQUE,               -- public id, "ex_" + hex
    environment         TEXT,                               -- NULL: the default image
    environment_version INTEGER NOT NULL DEFAULT 0,
    image               TEXT NOT NULL,
    image_id            TEXT,
    principal           TEXT NOT NULL DEFAULT '',
    client_addr         TEXT NOT NULL DEFAULT '',
    code                TEXT NOT NULL,
    code_sha256         TEXT NOT NULL,
    timeout_s           INTEGER NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed',
                                                        'timeout', 'oom', 'error', 'interrupted')),
    exit_code           INTEGER,
    error               TEXT,
    queued_at           INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    duration_ms         INTEGER,
    stdout              TEXT NOT NULL DEFAULT '',
    stdout_truncated    INTEGER NOT NULL DEFAULT 0,
    stderr              TEXT NOT NULL DEFAULT '',
    stderr_truncated    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX executions_status ON executions (status) WHERE status IN ('queued', 'running');

CREATE TABLE execution_files (
    execution_seq INTEGER NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
    direction     TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    path          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    PRIMARY KEY (execution_seq, direction, path)
) STRICT;

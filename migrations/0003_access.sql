-- 0003_access: API keys with roles and quotas, and the record of changes
-- (who created, rebuilt or deleted an environment, who made or revoked a key).
-- Times are milliseconds since the epoch.

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,                 -- the public part of the secret
    name           TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'curator', 'runner', 'auditor')),
    secret_sha256  TEXT NOT NULL,                    -- hex sha256 of the whole secret
    created_at     INTEGER NOT NULL,
    created_by     TEXT NOT NULL DEFAULT '',
    revoked_at     INTEGER,
    revoked_by     TEXT,
    max_concurrent INTEGER,                          -- NULL: the role's default
    max_per_minute INTEGER
) STRICT;

CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    principal TEXT NOT NULL,
    action    TEXT NOT NULL,   -- environment.create, environment.rebuild, environment.delete, key.create, key.revoke
    subject   TEXT NOT NULL,   -- the environment's or key's name
    detail    TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX events_subject ON events (subject, seq);

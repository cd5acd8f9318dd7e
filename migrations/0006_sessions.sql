-- 0006_sessions: sessions keep one sandbox container for a conversation;
-- every call is an execution tied to its session.

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,               -- "se_" + hex
    principal      TEXT NOT NULL,
    environment    TEXT,                           -- NULL: the default image
    image          TEXT NOT NULL,
    idle_timeout_s INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    closed_at      INTEGER,
    close_reason   TEXT
) STRICT;

CREATE INDEX sessions_open ON sessions (principal) WHERE closed_at IS NULL;

ALTER TABLE executions ADD COLUMN session_id TEXT;
CREATE INDEX executions_session ON executions (session_id, seq) WHERE session_id IS NOT NULL;

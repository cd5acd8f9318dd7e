-- 0010_callbacks: the result callbacks still to deliver (callback_url of
-- POST /executions), kept in the catalog so that a stop loses none: a
-- restarted server delivers them. A row goes once its callback is delivered
-- or given up, and with its execution. Times are milliseconds since the epoch.

CREATE TABLE callbacks (
    execution_id TEXT PRIMARY KEY REFERENCES executions (id) ON DELETE CASCADE,
    url          TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    tries        INTEGER NOT NULL DEFAULT 0,  -- deliveries that failed so far
    next_at      INTEGER NOT NULL DEFAULT 0,  -- not tried again before
    last_error   TEXT                         -- why the last try failed
) STRICT;

CREATE INDEX callbacks_next ON callbacks (next_at);

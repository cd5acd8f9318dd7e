-- 0002_environments: curated environments, their versioned builds, build
-- logs and package inventories. Times are milliseconds since the epoch.

CREATE TABLE environments (
    name           TEXT NOT NULL PRIMARY KEY,
    description    TEXT NOT NULL DEFAULT '',
    base_image     TEXT NOT NULL,
    setup_script   TEXT NOT NULL,
    python_version TEXT NOT NULL DEFAULT '3.11',
    status         TEXT NOT NULL CHECK (status IN ('building', 'ready', 'failed')),
    version        INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0), -- in service; 0: none yet
    image          TEXT,                         -- docker_image of that version
    image_id       TEXT,
    definition     TEXT,                         -- sha256 of that version's definition
    error          TEXT,                         -- the last failed build's error, if any
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    last_used      INTEGER,
    created_by     TEXT NOT NULL DEFAULT ''
) STRICT;

-- Names differ by more than case: image tags are lower case.
CREATE UNIQUE INDEX environments_name_nocase ON environments (name COLLATE NOCASE);

CREATE TABLE builds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    environment    TEXT NOT NULL REFERENCES environments (name) ON DELETE CASCADE,
    version        INTEGER NOT NULL CHECK (version >= 1),
    status         TEXT NOT NULL CHECK (status IN ('queued', 'building', 'ready', 'failed',
                                                   'cancelled')),
    base_image     TEXT NOT NULL,
    setup_script   TEXT NOT NULL,
    python_version TEXT NOT NULL,
    definition     TEXT NOT NULL,
    image          TEXT NOT NULL,               -- the tag this version gets
    image_id       TEXT,
    base_image_id  TEXT,
    python_found   TEXT,                        -- what the verification run reported
    cache_hit      INTEGER NOT NULL DEFAULT 0,
    error          TEXT,
    queued_at      INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    created_by     TEXT NOT NULL DEFAULT '',
    UNIQUE (environment, version)
) STRICT;

CREATE INDEX builds_status ON builds (status) WHERE status IN ('queued', 'building');
CREATE INDEX builds_definition ON builds (definition) WHERE status = 'ready';

CREATE TABLE build_logs (
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    line     TEXT NOT NULL,
    PRIMARY KEY (build_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE packages (
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    manager  TEXT NOT NULL CHECK (manager IN ('pip', 'dpkg')),
    name     TEXT NOT NULL,
    version  TEXT NOT NULL,
    PRIMARY KEY (build_id, manager, name)
) STRICT, WITHOUT ROWID;

CREATE INDEX packages_name ON packages (name, manager);

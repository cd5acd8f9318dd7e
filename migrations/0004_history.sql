-- 0004_history: the execution history for auditors: a monotonic time for
-- range filters, text search over the code, indexes for the query API, and
-- the tamper-evident chain (catalog/history.c writes chain_seq and
-- chain_hash when a row becomes final; README "History and audit" documents
-- the canonical serialisation). Times are milliseconds since the epoch.

-- recorded_at: when the execution entered the history (started_at, or
-- queued_at for a row recorded queued), raised where needed so that it never
-- decreases in seq order; since/until select on it, so a time range is a seq
-- range.
ALTER TABLE executions ADD COLUMN recorded_at INTEGER;
-- chain_seq: 1, 2, ... in the order rows became final (NULL while queued or
-- running); chain_hash: hex sha256(previous chain_hash || canonical row).
ALTER TABLE executions ADD COLUMN chain_seq INTEGER;
ALTER TABLE executions ADD COLUMN chain_hash TEXT;

UPDATE executions SET recorded_at = w.r
  FROM (SELECT seq AS s, max(coalesce(started_at, queued_at))
               OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS r
          FROM executions) AS w
 WHERE w.s = executions.seq;

-- Every index below ends with seq (explicitly or as the rowid), so an
-- equality filter reads its rows newest first without sorting; the trailing
-- status, duration_ms and recorded_at columns let statistics read the index
-- alone.
CREATE INDEX executions_recorded ON executions (recorded_at, seq, environment, status, duration_ms);
CREATE INDEX executions_env ON executions (environment, seq, status, duration_ms, recorded_at);
CREATE INDEX executions_env_version ON executions (environment, environment_version, seq, status,
                                                   duration_ms, recorded_at);
CREATE INDEX executions_env_status ON executions (environment, status, seq, duration_ms,
                                                  recorded_at);
CREATE INDEX executions_by_status ON executions (status, seq, environment, duration_ms,
                                                 recorded_at);
CREATE INDEX executions_principal ON executions (principal, seq, status, environment, duration_ms,
                                                 recorded_at);
CREATE INDEX executions_principal_status ON executions (principal, status, seq, environment,
                                                        duration_ms, recorded_at);
CREATE INDEX executions_code ON executions (code_sha256, seq, environment, status, duration_ms,
                                            recorded_at);
CREATE UNIQUE INDEX executions_chain ON executions (chain_seq);
-- A list item's columns in seq order: pages and exports without another
-- filter read this index alone, a tenth of the rows' bytes (code and output
-- stay in the table), in the order they are sent.
CREATE INDEX executions_items ON executions (seq, id, environment, environment_version, image,
                                             image_id, principal, client_addr, code_sha256,
                                             timeout_s, status, exit_code, error, queued_at,
                                             started_at, finished_at, recorded_at, duration_ms,
                                             stdout_truncated, stderr_truncated, chain_seq,
                                             chain_hash);

-- A row inserted with recorded_at already set comes from
-- catalog_history_seed, which computes it and indexes its batch's code in
-- bulk (FTS5 flushes its pending terms at every statement: a per-row
-- trigger costs more than the row); every other insert goes through both
-- triggers.
CREATE TRIGGER executions_recorded_at AFTER INSERT ON executions WHEN NEW.recorded_at IS NULL
BEGIN
    UPDATE executions
       SET recorded_at = max(coalesce(NEW.started_at, NEW.queued_at),
                             coalesce((SELECT max(recorded_at) FROM executions), 0))
     WHERE seq = NEW.seq;
END;

-- Words of the code (unicode61: letters and digits; '_' and '.' separate),
-- kept in step with executions by triggers; the text itself stays in
-- executions (external content).
CREATE VIRTUAL TABLE executions_fts USING fts5(code, content='executions', content_rowid='seq');
INSERT INTO executions_fts (executions_fts) VALUES ('rebuild');

CREATE TRIGGER executions_fts_insert AFTER INSERT ON executions WHEN NEW.recorded_at IS NULL
BEGIN
    INSERT INTO executions_fts (rowid, code) VALUES (NEW.seq, NEW.code);
END;
CREATE TRIGGER executions_fts_delete AFTER DELETE ON executions
BEGIN
    INSERT INTO executions_fts (executions_fts, rowid, code) VALUES ('delete', OLD.seq, OLD.code);
END;
CREATE TRIGGER executions_fts_update AFTER UPDATE OF seq, code ON executions
BEGIN
    INSERT INTO executions_fts (executions_fts, rowid, code) VALUES ('delete', OLD.seq, OLD.code);
    INSERT INTO executions_fts (rowid, code) VALUES (NEW.seq, NEW.code);
END;

-- The newest link of the chain: verify checks that the chain reaches it, so
-- removing the last rows shows. One row.
CREATE TABLE history_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    chain_seq  INTEGER NOT NULL,
    chain_hash TEXT NOT NULL
) STRICT;
INSERT INTO history_head (id, chain_seq, chain_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Retention: `envhub history prune` deletes the oldest links and records
-- where it cut; verify starts from the newest checkpoint.
CREATE TABLE history_checkpoints (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    before     INTEGER NOT NULL,   -- executions finished before this time were pruned
    chain_seq  INTEGER NOT NULL,   -- the last link pruned
    chain_hash TEXT NOT NULL,      -- its hash: the previous hash of the first link kept
    pruned     INTEGER NOT NULL    -- executions deleted by this prune so far
) STRICT;

-- 0011_display: pictures a job showed (matplotlib figures, the answer's
-- `display` list) are recorded in the file manifest beside its input and
-- output files, with their own direction 'display' (name, size in bytes,
-- sha256 of the PNG). The CHECK on direction cannot be altered in place: the
-- table is rebuilt with the same columns, key and rows (the migration runs
-- with foreign keys off and checks them after, catalog/migrate.c).

CREATE TABLE execution_files_new (
    execution_seq INTEGER NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
    direction     TEXT NOT NULL CHECK (direction IN ('in', 'out', 'display')),
    path          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    PRIMARY KEY (execution_seq, direction, path)
) STRICT;

INSERT INTO execution_files_new (execution_seq, direction, path, size, sha256)
SELECT execution_seq, direction, path, size, sha256 FROM execution_files;

DROP TABLE execution_files;
ALTER TABLE execution_files_new RENAME TO execution_files;

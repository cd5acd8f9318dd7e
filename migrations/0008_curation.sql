-- 0008_curation: acceptance checks, lifecycle states, base-image drift and
-- the deprecation warning of executions; a package-name index for inventory
-- queries. Times are milliseconds since the epoch.

-- The acceptance check of a version (python); NULL: the default import check.
ALTER TABLE builds ADD COLUMN test_script TEXT;
-- The environment keeps the test_script of the version in service (or the one
-- asked for while none is ready), as it does the setup script.
ALTER TABLE environments ADD COLUMN test_script TEXT;

-- Lifecycle: active -> deprecated (runnable, executions carry `warning`) ->
-- retired (not runnable; images removed after ENVHUB_RETIRE_GRACE).
ALTER TABLE environments ADD COLUMN lifecycle TEXT NOT NULL DEFAULT 'active'
    CHECK (lifecycle IN ('active', 'deprecated', 'retired'));
ALTER TABLE environments ADD COLUMN replacement TEXT;        -- the environment to use instead
ALTER TABLE environments ADD COLUMN lifecycle_at INTEGER;    -- when the state last changed
ALTER TABLE environments ADD COLUMN lifecycle_by TEXT;
ALTER TABLE environments ADD COLUMN warning TEXT;            -- what executions carry; NULL when active
ALTER TABLE environments ADD COLUMN images_removed_at INTEGER; -- retired and its images removed

-- Drift: what the base image reference resolved to at the last check (NULL
-- with drift_checked_at set: the reference is not in the engine).
ALTER TABLE environments ADD COLUMN drift_checked_at INTEGER;
ALTER TABLE environments ADD COLUMN drift_image_id TEXT;

-- The warning an execution got (its environment was deprecated or retired
-- when it was recorded); set by the trigger below, not part of the audit chain.
ALTER TABLE executions ADD COLUMN warning TEXT;

CREATE TRIGGER executions_warning AFTER INSERT ON executions
WHEN NEW.environment IS NOT NULL AND NEW.warning IS NULL
     AND EXISTS (SELECT 1 FROM environments WHERE name = NEW.environment AND warning IS NOT NULL)
BEGIN
    UPDATE executions SET warning = (SELECT warning FROM environments WHERE name = NEW.environment)
     WHERE seq = NEW.seq;
END;

-- GET /packages?name=: names compared as pip does (case, '_' and '.' as '-').
CREATE INDEX packages_name_norm ON packages (lower(replace(replace(name, '_', '-'), '.', '-')),
                                             manager);

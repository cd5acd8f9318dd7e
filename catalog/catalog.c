/* catalog/catalog.c - envhub's SQLite catalog: opening, the instance id and
 * the execution history.
 *
 * One sqlite3 connection per struct catalog, opened without SQLite's own
 * mutex: every public function holds cat->lock for as long as it touches the
 * connection, and every statement is prepared, stepped and finalized inside
 * that one call, so no statement outlives the lock. Writes that span rows run
 * in one BEGIN IMMEDIATE transaction. Values are bound with sqlite3_bind_*(),
 * never written into SQL text. */
#include "catalog/catalog.h"

#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

#include "catalog/catalog_internal.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define CATALOG_BUSY_TIMEOUT_MS 5000
#define INSTANCE_ID_BYTES 8 /* 16 hex characters */
#define SHA256_HEX_MAX 64

static const char *const status_names[] = {
    [EXEC_QUEUED] = "queued", [EXEC_RUNNING] = "running",         [EXEC_SUCCEEDED] = "succeeded",
    [EXEC_FAILED] = "failed", [EXEC_TIMEOUT] = "timeout",         [EXEC_OOM] = "oom",
    [EXEC_ERROR] = "error",   [EXEC_INTERRUPTED] = "interrupted",
};

static const char *const direction_names[] = {[FILE_IN] = "in", [FILE_OUT] = "out"};

/* ---- small helpers ---- */

static void column_hex(sqlite3_stmt *st, int col, char out[SHA256_HEX_MAX + 1])
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;

    if (n > SHA256_HEX_MAX)
        n = SHA256_HEX_MAX;
    if (n)
        memcpy(out, t, n);
    out[n] = '\0';
}

static bool status_valid(enum exec_status s)
{
    return (unsigned)s < ARRAY_SIZE(status_names);
}

/* ---- status names ---- */

const char *exec_status_name(enum exec_status s)
{
    return status_valid(s) ? status_names[s] : "unknown";
}

int exec_status_parse(const char *name)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(status_names); i++) {
        if (strcmp(name, status_names[i]) == 0)
            return (int)i;
    }
    return -1;
}

void execution_record_release(struct execution_record *rec)
{
    if (!rec)
        return;
    free(rec->id);
    free(rec->environment);
    free(rec->image);
    free(rec->image_id);
    free(rec->principal);
    free(rec->session_id);
    free(rec->limits);
    free(rec->warning);
    free(rec->client_addr);
    free(rec->code);
    free(rec->error);
    free(rec->stdout_text);
    free(rec->stderr_text);
    for (size_t i = 0; i < rec->n_files; i++)
        free(rec->files[i].path);
    free(rec->files);
    memset(rec, 0, sizeof(*rec));
}

/* ---- open and close ---- */

static bool path_is_memory(const char *path)
{
    /* "" is a private temporary database: no WAL for it either. */
    return path[0] == '\0' || strcmp(path, ":memory:") == 0;
}

static int catalog_configure(struct catalog *cat, const char *path, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc;

    sqlite3_extended_result_codes(cat->db, 1);
    rc = sqlite3_busy_timeout(cat->db, CATALOG_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_UNAVAILABLE, err, "cannot open catalog '%s'",
                                  path);

    if (!path_is_memory(path)) {
        /* The pragma answers with the mode in effect; it stays "delete" where
         * WAL cannot work, and synchronous=NORMAL is only safe with WAL. */
        rc = sqlite3_prepare_v2(cat->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            return catalog_sqlite_err(cat->db, rc, ERR_UNAVAILABLE, err, "cannot open catalog '%s'",
                                      path);
        const unsigned char *mode = sqlite3_column_text(st, 0);
        if (!mode || strcmp((const char *)mode, "wal") != 0)
            return err_set(err, ERR_UNAVAILABLE,
                           "cannot open catalog '%s': cannot use WAL journal mode (got '%s')", path,
                           mode ? (const char *)mode : "");
    }

    rc = sqlite3_exec(cat->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL", NULL, NULL,
                      NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_UNAVAILABLE, err, "cannot open catalog '%s'",
                                  path);
    return 0;
}

/* meta('instance_id') is made once; a concurrent first start of two
 * processes still ends with one id, the one that was inserted first. */
static int catalog_load_instance_id(struct catalog *cat, const char *path, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *ins = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *sel = NULL;
    char fresh[2 * INSTANCE_ID_BYTES + 1];
    struct binder b;
    int rc;

    id_random_hex(fresh, INSTANCE_ID_BYTES);
    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', ?)", -1,
                            &ins, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(ins);
        bind_text(&b, fresh);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(ins);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot open catalog '%s': cannot store the instance id", path);

    rc = sqlite3_prepare_v2(cat->db, "SELECT value FROM meta WHERE key = 'instance_id'", -1, &sel,
                            NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(sel);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot open catalog '%s': cannot read the instance id", path);
    cat->instance_id = column_strdup(sel, 0);
    if (!cat->instance_id || !cat->instance_id[0])
        return err_set(err, ERR_INTERNAL, "cannot open catalog '%s': its instance id is empty",
                       path);
    return 0;
}

int catalog_open(const char *path, struct catalog **ret, struct err *err)
{
    _cleanup_(catalog_closep) struct catalog *cat = NULL;
    int rc;

    cat = xcalloc(1, sizeof(*cat));
    rc = pthread_mutex_init(&cat->lock, NULL);
    if (rc != 0)
        return err_errno(err, ERR_INTERNAL, rc, "cannot open catalog '%s': mutex", path);
    cat->lock_ready = true;

    /* NOMUTEX: cat->lock serialises every use of the connection. */
    rc = sqlite3_open_v2(path, &cat->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_UNAVAILABLE, err, "cannot open catalog '%s'",
                                  path);
    if (catalog_configure(cat, path, err) < 0)
        return -1;
    if (catalog_migrate_db(cat->db, migrations_embedded, err) < 0)
        return err_prefix(err, "cannot open catalog '%s'", path);
    if (catalog_load_instance_id(cat, path, err) < 0)
        return -1;

    *ret = steal_ptr(cat);
    return 0;
}

void catalog_close(struct catalog *cat)
{
    if (!cat)
        return;
    /* Every statement is finalized by the call that made it, so close
     * cannot find one left open (and answer SQLITE_BUSY). */
    sqlite3_close(cat->db);
    if (cat->lock_ready)
        pthread_mutex_destroy(&cat->lock);
    free(cat->instance_id);
    free(cat);
}

int catalog_schema_version(struct catalog *cat, int *ret, struct err *err)
{
    CATALOG_LOCK(cat);
    return catalog_migrate_version(cat->db, ret, err);
}

const char *catalog_instance_id(const struct catalog *cat)
{
    return cat->instance_id; /* set once in catalog_open, never changed: no lock */
}

/* ---- executions ---- */

#define EXEC_COLUMNS                                                                               \
    "id, environment, environment_version, image, image_id, principal, client_addr, code,"         \
    " code_sha256, timeout_s, status, exit_code, error, queued_at, started_at, finished_at,"       \
    " duration_ms, stdout, stdout_truncated, stderr, stderr_truncated"

/* Column numbers of EXEC_COLUMNS, then seq in SELECTs. */
enum {
    COL_ID,
    COL_ENVIRONMENT,
    COL_ENVIRONMENT_VERSION,
    COL_IMAGE,
    COL_IMAGE_ID,
    COL_PRINCIPAL,
    COL_CLIENT_ADDR,
    COL_CODE,
    COL_CODE_SHA256,
    COL_TIMEOUT_S,
    COL_STATUS,
    COL_EXIT_CODE,
    COL_ERROR,
    COL_QUEUED_AT,
    COL_STARTED_AT,
    COL_FINISHED_AT,
    COL_DURATION_MS,
    COL_STDOUT,
    COL_STDOUT_TRUNCATED,
    COL_STDERR,
    COL_STDERR_TRUNCATED,
    COL_SEQ,
};

static int execution_seq(struct catalog *cat, const char *id, int64_t *ret, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc = sqlite3_prepare_v2(cat->db, "SELECT seq FROM executions WHERE id = ?", -1, &st, NULL);

    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_text(&b, id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "execution '%s' not found", id);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot look up execution '%s'", id);
    *ret = sqlite3_column_int64(st, 0);
    return 0;
}

/* Insert the entries of @rec->files going @dir under execution @seq. */
static int files_insert(struct catalog *cat, int64_t seq, const struct execution_record *rec,
                        enum file_direction dir, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO execution_files (execution_seq, direction, path, size,"
                            " sha256) VALUES (?, ?, ?, ?, ?)",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot record the files of execution '%s'", rec->id);
    for (size_t i = 0; i < rec->n_files; i++) {
        const struct file_entry *f = &rec->files[i];
        struct binder b = binder_of(st);

        if (f->direction != dir)
            continue;
        sqlite3_reset(st);
        bind_int64(&b, seq);
        bind_text(&b, direction_names[dir]);
        bind_text(&b, f->path);
        bind_int64(&b, f->size);
        bind_text_n(&b, f->sha256, strnlen(f->sha256, SHA256_HEX_MAX));
        rc = b.rc;
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                      "cannot record file '%s' of execution '%s'",
                                      f->path ? f->path : "(null)", rec->id);
    }
    return 0;
}

/* The body of catalog_execution_insert's transaction. */
static int execution_insert_tx(struct catalog *cat, const struct execution_record *rec,
                               struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO executions (" EXEC_COLUMNS ", session_id, limits) VALUES"
                            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                            " ?)",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_text(&b, rec->id);
        bind_text(&b, rec->environment);
        bind_int64(&b, rec->environment_version);
        bind_text(&b, rec->image);
        bind_text(&b, rec->image_id);
        bind_text(&b, rec->principal ? rec->principal : "");
        bind_text(&b, rec->client_addr ? rec->client_addr : "");
        bind_text(&b, rec->code);
        bind_text_n(&b, rec->code_sha256, strnlen(rec->code_sha256, SHA256_HEX_MAX));
        bind_int64(&b, rec->timeout_s);
        bind_text(&b, status_names[rec->status]);
        bind_int64_or_null(&b, rec->exit_code, rec->exit_code == -1);
        bind_text(&b, rec->error);
        bind_int64(&b, rec->queued_at);
        bind_int64_or_null(&b, rec->started_at, rec->started_at == 0);
        bind_int64_or_null(&b, rec->finished_at, rec->finished_at == 0);
        bind_int64_or_null(&b, rec->duration_ms, rec->duration_ms == -1);
        bind_output(&b, rec->stdout_text, rec->stdout_len);
        bind_int64(&b, rec->stdout_truncated);
        bind_output(&b, rec->stderr_text, rec->stderr_len);
        bind_int64(&b, rec->stderr_truncated);
        bind_text(&b, rec->session_id);
        bind_text(&b, rec->limits);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot insert execution '%s'",
                                  rec->id);
    int64_t seq = sqlite3_last_insert_rowid(cat->db);
    if (files_insert(cat, seq, rec, FILE_IN, err) < 0)
        return -1;
    return history_chain_tx(cat, seq, err); /* a row inserted final joins the audit chain */
}

int catalog_execution_insert(struct catalog *cat, const struct execution_record *rec,
                             struct err *err)
{
    if (!rec->id)
        return err_set(err, ERR_INVALID, "cannot insert an execution without an id");
    if (!status_valid(rec->status))
        return err_set(err, ERR_INVALID, "cannot insert execution '%s': invalid status %d", rec->id,
                       (int)rec->status);

    CATALOG_LOCK(cat);
    if (tx_begin(cat, err) < 0)
        return -1;
    if (execution_insert_tx(cat, rec, err) < 0) {
        tx_rollback(cat); /* after err took SQLite's message */
        return -1;
    }
    return tx_commit(cat, err);
}

int catalog_execution_start(struct catalog *cat, const char *id, int64_t started_at,
                            struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *check = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE executions SET status = 'running', started_at = ?"
                            " WHERE id = ? AND status IN ('queued', 'running')",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64_or_null(&b, started_at, started_at == 0);
        bind_text(&b, id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot start execution '%s'", id);
    if (sqlite3_changes(cat->db) > 0)
        return 0;

    /* Nothing changed: say whether the id is unknown or already finished. */
    rc =
        sqlite3_prepare_v2(cat->db, "SELECT status FROM executions WHERE id = ?", -1, &check, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(check);
        bind_text(&b, id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(check);
    if (rc == SQLITE_ROW)
        return err_set(err, ERR_CONFLICT, "cannot start execution '%s': it is %s already", id,
                       (const char *)sqlite3_column_text(check, 0));
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "execution '%s' not found", id);
    return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot start execution '%s'", id);
}

/* The body of catalog_execution_finish's transaction. */
static int execution_finish_tx(struct catalog *cat, const struct execution_record *rec,
                               struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *upd = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *del = NULL;
    struct binder b;
    int64_t seq = 0;
    int rc;

    if (execution_seq(cat, rec->id, &seq, err) < 0)
        return -1;

    /* A start time or image id already stored is kept when @rec lacks one. */
    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE executions SET status = ?, exit_code = ?, error = ?,"
                            " started_at = coalesce(?, started_at), finished_at = ?,"
                            " duration_ms = ?, stdout = ?, stdout_truncated = ?, stderr = ?,"
                            " stderr_truncated = ?, image_id = coalesce(?, image_id)"
                            " WHERE seq = ?",
                            -1, &upd, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(upd);
        bind_text(&b, status_names[rec->status]);
        bind_int64_or_null(&b, rec->exit_code, rec->exit_code == -1);
        bind_text(&b, rec->error);
        bind_int64_or_null(&b, rec->started_at, rec->started_at == 0);
        bind_int64_or_null(&b, rec->finished_at, rec->finished_at == 0);
        bind_int64_or_null(&b, rec->duration_ms, rec->duration_ms == -1);
        bind_output(&b, rec->stdout_text, rec->stdout_len);
        bind_int64(&b, rec->stdout_truncated);
        bind_output(&b, rec->stderr_text, rec->stderr_len);
        bind_int64(&b, rec->stderr_truncated);
        bind_text(&b, rec->image_id);
        bind_int64(&b, seq);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(upd);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot finish execution '%s'",
                                  rec->id);

    /* The outcome replaces any recorded before, output manifest included. */
    rc = sqlite3_prepare_v2(cat->db,
                            "DELETE FROM execution_files WHERE execution_seq = ? AND"
                            " direction = 'out'",
                            -1, &del, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(del);
        bind_int64(&b, seq);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(del);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot finish execution '%s'",
                                  rec->id);
    if (files_insert(cat, seq, rec, FILE_OUT, err) < 0)
        return -1;
    return history_chain_tx(cat, seq, err); /* the final row joins the audit chain */
}

int catalog_execution_finish(struct catalog *cat, const struct execution_record *rec,
                             struct err *err)
{
    if (!rec->id)
        return err_set(err, ERR_INVALID, "cannot finish an execution without an id");
    if (!status_valid(rec->status))
        return err_set(err, ERR_INVALID, "cannot finish execution '%s': invalid status %d", rec->id,
                       (int)rec->status);

    CATALOG_LOCK(cat);
    if (tx_begin(cat, err) < 0)
        return -1;
    if (execution_finish_tx(cat, rec, err) < 0) {
        tx_rollback(cat); /* after err took SQLite's message */
        return -1;
    }
    return tx_commit(cat, err);
}

static int execution_from_row(sqlite3_stmt *st, struct execution_record *rec, struct err *err)
{
    const char *status = (const char *)sqlite3_column_text(st, COL_STATUS);
    int s = exec_status_parse(status);

    rec->id = column_strdup(st, COL_ID);
    if (s < 0)
        return err_set(err, ERR_INTERNAL, "execution '%s' has an unknown status '%s'",
                       rec->id ? rec->id : "", status ? status : "");
    rec->environment = column_strdup(st, COL_ENVIRONMENT);
    rec->environment_version = sqlite3_column_int64(st, COL_ENVIRONMENT_VERSION);
    rec->image = column_strdup(st, COL_IMAGE);
    rec->image_id = column_strdup(st, COL_IMAGE_ID);
    rec->principal = column_strdup(st, COL_PRINCIPAL);
    rec->client_addr = column_strdup(st, COL_CLIENT_ADDR);
    rec->code = column_strdup(st, COL_CODE);
    column_hex(st, COL_CODE_SHA256, rec->code_sha256);
    rec->timeout_s = sqlite3_column_int64(st, COL_TIMEOUT_S);
    rec->status = (enum exec_status)s;
    rec->exit_code = sqlite3_column_type(st, COL_EXIT_CODE) == SQLITE_NULL
                         ? -1
                         : sqlite3_column_int(st, COL_EXIT_CODE);
    rec->error = column_strdup(st, COL_ERROR);
    rec->queued_at = sqlite3_column_int64(st, COL_QUEUED_AT);
    rec->started_at = sqlite3_column_int64(st, COL_STARTED_AT);   /* NULL reads 0 */
    rec->finished_at = sqlite3_column_int64(st, COL_FINISHED_AT); /* NULL reads 0 */
    rec->duration_ms = sqlite3_column_type(st, COL_DURATION_MS) == SQLITE_NULL
                           ? -1
                           : sqlite3_column_int64(st, COL_DURATION_MS);
    rec->stdout_text = column_bytesdup(st, COL_STDOUT, &rec->stdout_len);
    rec->stdout_truncated = sqlite3_column_int(st, COL_STDOUT_TRUNCATED) != 0;
    rec->stderr_text = column_bytesdup(st, COL_STDERR, &rec->stderr_len);
    rec->stderr_truncated = sqlite3_column_int(st, COL_STDERR_TRUNCATED) != 0;
    return 0;
}

static int files_load(struct catalog *cat, int64_t seq, struct execution_record *rec,
                      struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    size_t cap = 0;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "SELECT direction, path, size, sha256 FROM execution_files"
                            " WHERE execution_seq = ? ORDER BY direction, path",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, seq);
        rc = b.rc;
    }
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if (rec->n_files == cap) {
            cap = cap ? 2 * cap : 8;
            rec->files = xrealloc(rec->files, cap * sizeof(*rec->files));
        }
        struct file_entry *f = &rec->files[rec->n_files++];
        const char *dir = (const char *)sqlite3_column_text(st, 0);
        f->direction = dir && strcmp(dir, "out") == 0 ? FILE_OUT : FILE_IN;
        f->path = column_strdup(st, 1);
        f->size = sqlite3_column_int64(st, 2);
        column_hex(st, 3, f->sha256);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot read the files of execution '%s'", rec->id);
    return 0;
}

/* The body of catalog_execution_get's read transaction; fills *rec. */
static int execution_get_tx(struct catalog *cat, const char *id, struct execution_record *rec,
                            struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db, "SELECT " EXEC_COLUMNS ", seq FROM executions WHERE id = ?",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_text(&b, id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "execution '%s' not found", id);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read execution '%s'", id);
    if (execution_from_row(st, rec, err) < 0)
        return -1;
    return files_load(cat, sqlite3_column_int64(st, COL_SEQ), rec, err);
}

int catalog_execution_get(struct catalog *cat, const char *id, struct execution_record *ret,
                          struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(execution_record_release) struct execution_record rec = {0};
    int rc, r;

    /* One read transaction: the row and its files come from one snapshot. */
    rc = sqlite3_exec(cat->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read execution '%s'", id);
    r = execution_get_tx(cat, id, &rec, err);
    tx_rollback(cat); /* nothing was written: this only ends the read */
    if (r < 0)
        return -1;

    *ret = rec;
    memset(&rec, 0, sizeof(rec)); /* the caller owns the strings now */
    return 0;
}

int catalog_recover_executions(struct catalog *cat, int64_t now, int *ret_count, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    /* The interrupted rows join the audit chain in the same transaction. */
    if (tx_begin(cat, err) < 0)
        return -1;
    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE executions SET status = 'interrupted', finished_at = ?,"
                            " error = coalesce(error, ?)"
                            " WHERE status IN ('queued', 'running')",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, now);
        bind_text(&b, "interrupted: envhub stopped before the execution finished");
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                           "cannot mark unfinished executions interrupted");
        tx_rollback(cat);
        return -1;
    }
    int count = sqlite3_changes(cat->db);
    if (history_chain_pending_tx(cat, NULL, err) < 0) {
        tx_rollback(cat);
        return -1;
    }
    if (tx_commit(cat, err) < 0)
        return -1;
    *ret_count = count;
    return 0;
}

int catalog_execution_count(struct catalog *cat, int64_t *ret, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db, "SELECT count(*) FROM executions", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot count executions");
    *ret = sqlite3_column_int64(st, 0);
    return 0;
}

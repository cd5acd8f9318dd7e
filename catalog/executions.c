/* catalog/executions.c - an execution row's life (migrations/0001_init.sql,
 * 0004_history.sql): inserted queued or running (or already final) with its
 * input file manifest, started, finished with its outcome, output and output
 * manifest, read back; at start-up, the rows a stop cut off are marked
 * interrupted. Also the bulk insert of final rows for benchmarks and tests.
 *
 * The invariant: a row that becomes final joins the audit chain (chain.c) in
 * the same transaction, so no final row is ever outside the chain, and a row
 * sealed in it is never changed (ERR_CONFLICT). */
#include "catalog/catalog.h"

#include <sqlite3.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog_internal.h"
#include "core/cleanup.h"
#include "core/xalloc.h"

#include "core/banned.h"

static const char *const status_names[] = {
    [EXEC_QUEUED] = "queued", [EXEC_RUNNING] = "running",         [EXEC_SUCCEEDED] = "succeeded",
    [EXEC_FAILED] = "failed", [EXEC_TIMEOUT] = "timeout",         [EXEC_OOM] = "oom",
    [EXEC_ERROR] = "error",   [EXEC_INTERRUPTED] = "interrupted",
};

static const char *const direction_names[] = {
    [FILE_IN] = "in", [FILE_OUT] = "out", [FILE_DISPLAY] = "display"};

const char *file_direction_name(enum file_direction d)
{
    return (unsigned)d < ARRAY_SIZE(direction_names) ? direction_names[d] : "in";
}

static enum file_direction direction_parse(const char *name)
{
    for (size_t i = 0; name && i < ARRAY_SIZE(direction_names); i++)
        if (strcmp(name, direction_names[i]) == 0)
            return (enum file_direction)i;
    return FILE_IN;
}

/* ---- status names and records ---- */

static bool status_valid(enum exec_status s)
{
    return (unsigned)s < ARRAY_SIZE(status_names);
}

const char *exec_status_name(enum exec_status s)
{
    return name_of(status_names, ARRAY_SIZE(status_names), (unsigned)s);
}

int exec_status_parse(const char *name)
{
    return name_index(status_names, ARRAY_SIZE(status_names), name);
}

bool exec_status_is_final(const char *status)
{
    return status && strcmp(status, "queued") != 0 && strcmp(status, "running") != 0;
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
    free(rec->node);
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

/* ---- the row's columns ---- */

#define EXEC_COLUMNS                                                                               \
    "id, environment, environment_version, image, image_id, principal, client_addr, code,"         \
    " code_sha256, timeout_s, status, exit_code, error, queued_at, started_at, finished_at,"       \
    " duration_ms, stdout, stdout_truncated, stderr, stderr_truncated, node"

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
    COL_NODE,
    COL_SEQ,
};

/* Bind @rec as the values of EXEC_COLUMNS, in order; its status is valid. */
static void execution_bind(struct binder *b, const struct execution_record *rec)
{
    bind_text(b, rec->id);
    bind_text(b, rec->environment);
    bind_int64(b, rec->environment_version);
    bind_text(b, rec->image);
    bind_text(b, rec->image_id);
    bind_text(b, rec->principal ? rec->principal : "");
    bind_text(b, rec->client_addr ? rec->client_addr : "");
    bind_text(b, rec->code);
    bind_hex(b, rec->code_sha256);
    bind_int64(b, rec->timeout_s);
    bind_text(b, status_names[rec->status]);
    bind_int64_or_null(b, rec->exit_code, rec->exit_code == -1);
    bind_text(b, rec->error);
    bind_int64(b, rec->queued_at);
    bind_int64_or_null(b, rec->started_at, rec->started_at == 0);
    bind_int64_or_null(b, rec->finished_at, rec->finished_at == 0);
    bind_int64_or_null(b, rec->duration_ms, rec->duration_ms == -1);
    bind_output(b, rec->stdout_text, rec->stdout_len);
    bind_int64(b, rec->stdout_truncated);
    bind_output(b, rec->stderr_text, rec->stderr_len);
    bind_int64(b, rec->stderr_truncated);
    bind_text(b, rec->node);
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
    rec->node = column_strdup(st, COL_NODE);
    return 0;
}

int execution_select_by_id(sqlite3 *db, const char *sql, const char *id, sqlite3_stmt **ret,
                           struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "execution '%s' not found", id);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read execution '%s'", id);
    *ret = steal_ptr(st);
    return 0;
}

static int execution_seq(struct catalog *cat, const char *id, int64_t *ret, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;

    if (execution_select_by_id(cat->db, "SELECT seq FROM executions WHERE id = ?", id, &st, err) <
        0)
        return -1;
    *ret = sqlite3_column_int64(st, 0);
    return 0;
}

/* ---- file manifests ---- */

#define FILES_INSERT_SQL                                                                           \
    "INSERT INTO execution_files (execution_seq, direction, path, size, sha256)"                   \
    " VALUES (?, ?, ?, ?, ?)"

/* Insert @f under execution @seq (@id in messages) with @st (FILES_INSERT_SQL). */
static int file_insert(sqlite3 *db, sqlite3_stmt *st, int64_t seq, const char *id,
                       const struct file_entry *f, struct err *err)
{
    struct binder b = binder_of(st);
    int rc;

    sqlite3_reset(st);
    bind_int64(&b, seq);
    bind_text(&b, file_direction_name(f->direction));
    bind_text(&b, f->path);
    bind_int64(&b, f->size);
    bind_hex(&b, f->sha256);
    rc = b.rc;
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot record file '%s' of execution '%s'",
                                  f->path ? f->path : "(null)", id);
    return 0;
}

/* Insert the entries of @rec->files going @dir under execution @seq. */
static int files_insert(struct catalog *cat, int64_t seq, const struct execution_record *rec,
                        enum file_direction dir, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db, FILES_INSERT_SQL, -1, &st, NULL);

    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot record the files of execution '%s'", rec->id);
    for (size_t i = 0; i < rec->n_files; i++) {
        if (rec->files[i].direction == dir &&
            file_insert(cat->db, st, seq, rec->id, &rec->files[i], err) < 0)
            return -1;
    }
    return 0;
}

int execution_files_load(sqlite3 *db, int64_t seq, struct execution_record *rec, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc;

    rc = sqlite3_prepare_v2(db, CANON_FILES_SQL, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 1, seq);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        rec->files = array_grow(rec->files, rec->n_files, &cap, sizeof(*rec->files));
        struct file_entry *f = &rec->files[rec->n_files++];
        const char *dir = (const char *)sqlite3_column_text(st, 0);
        f->direction = direction_parse(dir);
        f->path = column_strdup(st, 1);
        f->size = sqlite3_column_int64(st, 2);
        column_hex(st, 3, f->sha256);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the files of execution '%s'",
                                  rec->id ? rec->id : "");
    return 0;
}

/* ---- insert, start, finish ---- */

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
                            " ?, ?)",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        execution_bind(&b, rec);
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

/* Check @rec, then run @body (the insert or the finish, @verb in messages)
 * in one write transaction. */
static int
execution_write(struct catalog *cat, const struct execution_record *rec, const char *verb,
                int (*body)(struct catalog *, const struct execution_record *, struct err *),
                struct err *err)
{
    if (!rec->id)
        return err_set(err, ERR_INVALID, "cannot %s an execution without an id", verb);
    if (!status_valid(rec->status))
        return err_set(err, ERR_INVALID, "cannot %s execution '%s': invalid status %d", verb,
                       rec->id, (int)rec->status);

    CATALOG_LOCK(cat);
    CATALOG_TX(tx);
    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 || body(cat, rec, err) < 0)
        return -1;
    return catalog_tx_commit(&tx, err);
}

int catalog_execution_insert(struct catalog *cat, const struct execution_record *rec,
                             struct err *err)
{
    return execution_write(cat, rec, "insert", execution_insert_tx, err);
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
                            " stderr_truncated = ?, image_id = coalesce(?, image_id),"
                            " node = coalesce(?, node),"
                            " output_pruned_at = NULL, stdout_sha256 = NULL,"
                            " stderr_sha256 = NULL, stdout_size = NULL, stderr_size = NULL"
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
        bind_text(&b, rec->node);
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
                            " direction IN ('out', 'display')",
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
    if (files_insert(cat, seq, rec, FILE_OUT, err) < 0 ||
        files_insert(cat, seq, rec, FILE_DISPLAY, err) < 0 ||
        output_usage_add_tx(cat, seq, err) < 0)
        return -1;
    return history_chain_tx(cat, seq, err); /* the final row joins the audit chain */
}

int catalog_execution_finish(struct catalog *cat, const struct execution_record *rec,
                             struct err *err)
{
    int64_t pause_ms = CATALOG_FINISH_PAUSE_MS;

    /* A row left running would stay so until the next start: a catalog
     * busy past the busy timeout (another process writing) is tried again,
     * a bounded number of times, with cat->lock let go in between. */
    for (int try = 1;; try++) {
        struct err local = ERR_INIT;
        if (execution_write(cat, rec, "finish", execution_finish_tx, &local) == 0)
            return 0;
        if (local.code != ERR_UNAVAILABLE) {
            err_copy(err, &local);
            return -1;
        }
        if (try == CATALOG_FINISH_TRIES)
            return err_set(err, ERR_UNAVAILABLE,
                           "cannot finish execution '%s' (tried %d times): %s", rec->id, try,
                           local.msg);
        struct timespec ts = {.tv_sec = pause_ms / 1000, .tv_nsec = (pause_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        pause_ms *= 2;
    }
}

/* ---- reading ---- */

/* The body of catalog_execution_get's read transaction; fills *rec. */
static int execution_get_tx(struct catalog *cat, const char *id, struct execution_record *rec,
                            struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;

    if (execution_select_by_id(cat->db, "SELECT " EXEC_COLUMNS ", seq FROM executions WHERE id = ?",
                               id, &st, err) < 0 ||
        execution_from_row(st, rec, err) < 0)
        return -1;
    return execution_files_load(cat->db, sqlite3_column_int64(st, COL_SEQ), rec, err);
}

int catalog_execution_get(struct catalog *cat, const char *id, struct execution_record *ret,
                          struct err *err)
{
    CATALOG_LOCK(cat);
    CATALOG_TX(tx);
    _cleanup_(execution_record_release) struct execution_record rec = {0};

    /* One read transaction: the row and its files come from one snapshot. */
    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_READ, err) < 0)
        return err_prefix(err, "cannot read execution '%s'", id);
    if (execution_get_tx(cat, id, &rec, err) < 0)
        return -1;
    *ret = rec;
    memset(&rec, 0, sizeof(rec)); /* the caller owns the strings now */
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

/* ---- start-up recovery ---- */

/* The body of catalog_recover_executions' transaction. */
static int recover_tx(struct catalog *cat, int64_t now, int *ret_count, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

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
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot mark unfinished executions interrupted");
    *ret_count = sqlite3_changes(cat->db);
    /* the interrupted rows join the audit chain in the same transaction */
    return history_chain_pending_tx(cat, NULL, err);
}

int catalog_recover_executions(struct catalog *cat, int64_t now, int *ret_count, struct err *err)
{
    CATALOG_LOCK(cat);
    CATALOG_TX(tx);
    int count = 0;

    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
        recover_tx(cat, now, &count, err) < 0 || catalog_tx_commit(&tx, err) < 0)
        return -1;
    *ret_count = count;
    return 0;
}

/* ---- seeding ---- */

/* recorded_at as the insert trigger computes it (0004_history.sql): the
 * seed sets it itself, which also tells the triggers to leave the row (and
 * its words) to the seed. */
static int seed_one(struct catalog *cat, sqlite3_stmt *ins, sqlite3_stmt *files,
                    struct history_chain *chain, const struct execution_record *rec,
                    int64_t *recorded_at, struct err *err)
{
    struct binder b = binder_of(ins);
    int64_t at = rec->started_at ? rec->started_at : rec->queued_at;
    int rc;

    if (!status_valid(rec->status) || rec->status == EXEC_QUEUED || rec->status == EXEC_RUNNING ||
        !rec->id)
        return err_set(err, ERR_INVALID, "cannot seed execution '%s': it is not final",
                       rec->id ? rec->id : "");
    sqlite3_reset(ins);
    execution_bind(&b, rec);
    if (at > *recorded_at)
        *recorded_at = at;
    bind_int64(&b, *recorded_at);
    rc = b.rc;
    if (rc == SQLITE_OK)
        rc = sqlite3_step(ins);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot seed execution '%s'", rec->id);
    int64_t seq = sqlite3_last_insert_rowid(cat->db);
    for (size_t i = 0; i < rec->n_files; i++)
        if (file_insert(cat->db, files, seq, rec->id, &rec->files[i], err) < 0)
            return -1;
    return history_chain_add(chain, seq, err);
}

/* The body of catalog_history_seed's transaction. */
static int seed_tx(struct catalog *cat, const struct execution_record *recs, size_t n,
                   struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *ins = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *files = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *last = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *words = NULL;
    _cleanup_(history_chain_freep) struct history_chain *chain = history_chain_new(cat->db);
    int64_t recorded_at = 0, first_seq = 0;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO executions (" EXEC_COLUMNS ", recorded_at) VALUES"
                            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                            " ?)",
                            -1, &ins, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(cat->db, FILES_INSERT_SQL, -1, &files, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(cat->db,
                                "SELECT coalesce(max(recorded_at), 0),"
                                " coalesce((SELECT seq FROM sqlite_sequence"
                                " WHERE name = 'executions'), 0) FROM executions",
                                -1, &last, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(last)) == SQLITE_ROW) {
        recorded_at = sqlite3_column_int64(last, 0);
        first_seq = sqlite3_column_int64(last, 1) + 1;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot seed executions");
    for (size_t i = 0; i < n; i++)
        if (seed_one(cat, ins, files, chain, &recs[i], &recorded_at, err) < 0)
            return -1;

    /* the batch's words in one statement (see seed_one) */
    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO executions_fts (rowid, code) SELECT seq, code"
                            " FROM executions WHERE seq >= ?",
                            -1, &words, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(words, 1, first_seq);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(words);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot index the code of seeded executions");
    return 0;
}

int catalog_history_seed(struct catalog *cat, const struct execution_record *recs, size_t n,
                         struct err *err)
{
    CATALOG_LOCK(cat);
    CATALOG_TX(tx);

    /* a batch rewrites its pages several times (row, indexes, chain): a
     * page cache that holds them all writes each page once */
    sqlite3_exec(cat->db, "PRAGMA cache_size = -262144", NULL, NULL, NULL);
    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 || seed_tx(cat, recs, n, err) < 0)
        return -1;
    return catalog_tx_commit(&tx, err);
}

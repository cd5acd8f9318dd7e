/* catalog/history.c - the execution history for auditors: filters, keyset
 * pages newest first, one execution in full (both on the pool of read-only
 * connections, catalog_read_begin), and the export of every match in batches
 * on a read-only connection of its own; each query within the time budget.
 *
 * The filter is one SQL statement built from the filter's shape (history_sql),
 * never from its values, which are bound; statistics (stats.c) use the same
 * builder. A time range is turned into a seq range (recorded_at never
 * decreases with seq), and the text search goes through executions_fts, so
 * that no query the API can issue scans the executions table (the query plan
 * test of tests/unit/test_catalog_history.c holds it to that). */
#include "catalog/catalog.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog_internal.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

/* ---- items ---- */

void history_item_release(struct history_item *it)
{
    if (!it)
        return;
    execution_record_release(&it->rec);
    memset(it, 0, sizeof(*it));
}

void history_items_free(struct history_item *items, size_t n)
{
    ARRAY_FREE(items, n, history_item_release);
}

/* ---- the query SQL ---- */

/* Parameters by number, so that each statement binds what it uses. */
enum {
    P_TEXT = 1,
    P_ENVIRONMENT,
    P_VERSION,
    P_STATUS,
    P_PRINCIPAL,
    P_CODE,
    P_SINCE,
    P_UNTIL,
    P_CURSOR,
    P_LIMIT,
    P_NODE,
};

#define ITEM_COLUMNS                                                                               \
    "executions.seq, executions.id, executions.environment, executions.environment_version,"       \
    " executions.image, executions.image_id, executions.principal, executions.client_addr,"        \
    " executions.code_sha256, executions.timeout_s, executions.status, executions.exit_code,"      \
    " executions.error, executions.queued_at, executions.started_at, executions.finished_at,"      \
    " executions.recorded_at, executions.duration_ms, executions.stdout_truncated,"                \
    " executions.stderr_truncated, executions.chain_seq, executions.chain_hash,"                   \
    " executions.session_id, executions.limits, executions.warning, executions.node"

enum {
    IC_SEQ,
    IC_ID,
    IC_ENVIRONMENT,
    IC_ENVIRONMENT_VERSION,
    IC_IMAGE,
    IC_IMAGE_ID,
    IC_PRINCIPAL,
    IC_CLIENT_ADDR,
    IC_CODE_SHA256,
    IC_TIMEOUT_S,
    IC_STATUS,
    IC_EXIT_CODE,
    IC_ERROR,
    IC_QUEUED_AT,
    IC_STARTED_AT,
    IC_FINISHED_AT,
    IC_RECORDED_AT,
    IC_DURATION_MS,
    IC_STDOUT_TRUNCATED,
    IC_STDERR_TRUNCATED,
    IC_CHAIN_SEQ,
    IC_CHAIN_HASH,
    IC_SESSION_ID,
    IC_LIMITS,
    IC_WARNING,
    IC_NODE,
    IC_CODE, /* catalog_history_get only */
    IC_STDOUT,
    IC_STDERR,
    IC_OUTPUT_PRUNED_AT,
    IC_STDOUT_SHA256,
    IC_STDERR_SHA256,
    IC_STDOUT_SIZE,
    IC_STDERR_SIZE,
};

/* A time range is a seq range: recorded_at never decreases with seq, so
 * the rows at or after @since are those from the first such row on. The
 * subqueries run once, on executions_recorded. */
void history_sql(const struct history_filter *f, int group, enum history_sql_kind kind,
                 struct buf *out)
{
    const bool text = f->text != NULL;
    const char *seqcol = text ? "executions_fts.rowid" : "executions.seq";

    buf_reset(out);
    buf_puts(out, "SELECT ");
    if (kind == HISTORY_SQL_PAGE) {
        buf_puts(out, ITEM_COLUMNS);
    } else {
        buf_puts(out, group == HISTORY_GROUP_ENVIRONMENT ? "executions.environment"
                      : group == HISTORY_GROUP_STATUS    ? "executions.status"
                                                         : "executions.recorded_at");
        buf_puts(out, ", executions.duration_ms");
    }
    if (text)
        buf_puts(out, " FROM executions_fts CROSS JOIN executions"
                      " ON executions.seq = executions_fts.rowid WHERE executions_fts MATCH ?1");
    else if (kind == HISTORY_SQL_STATS && !f->environment && f->status < 0 && !f->principal &&
             !f->code_sha256)
        /* the narrowest index that holds every column statistics read, in
         * day order (the planner picks a wider one) */
        buf_puts(out, " FROM executions INDEXED BY executions_recorded WHERE 1");
    else
        buf_puts(out, " FROM executions WHERE 1");
    if (text) {
        /* Words come in seq order from the FTS index; the other filters are
         * checked first on a filter index (an entry of a few bytes) rather
         * than on the row: common words with rare filters skip many rows. */
        const char *idx = f->code_sha256   ? "executions_code"
                          : f->environment ? (f->environment_version > 0 ? "executions_env_version"
                                              : f->status >= 0           ? "executions_env_status"
                                                                         : "executions_env")
                          : f->principal   ? (f->status >= 0 ? "executions_principal_status"
                                                             : "executions_principal")
                          : f->status >= 0 ? "executions_by_status"
                                           : NULL;
        if (idx) {
            /* only what the index holds: the rest is checked on the row */
            bool principal_idx = strstr(idx, "principal") != NULL;
            buf_puts(out, " AND EXISTS (SELECT 1 FROM executions AS probe INDEXED BY ");
            buf_puts(out, idx);
            buf_puts(out, " WHERE probe.seq = executions_fts.rowid");
            if (f->environment)
                buf_puts(out, " AND probe.environment = ?2");
            if (f->environment_version > 0 && strcmp(idx, "executions_env_version") == 0)
                buf_puts(out, " AND probe.environment_version = ?3");
            if (f->status >= 0)
                buf_puts(out, " AND probe.status = ?4");
            if (f->principal && principal_idx)
                buf_puts(out, " AND probe.principal = ?5");
            if (f->code_sha256 && strcmp(idx, "executions_code") == 0)
                buf_puts(out, " AND probe.code_sha256 = ?6");
            buf_puts(out, ")");
        }
    }
    if (f->environment)
        buf_puts(out, " AND executions.environment = ?2");
    if (f->environment_version > 0)
        buf_puts(out, " AND executions.environment_version = ?3");
    if (f->status >= 0)
        buf_puts(out, " AND executions.status = ?4");
    if (f->principal)
        buf_puts(out, " AND executions.principal = ?5");
    if (f->code_sha256)
        buf_puts(out, " AND executions.code_sha256 = ?6");
    if (f->node)
        buf_puts(out, " AND executions.node = ?11");
    if (f->has_since) {
        buf_puts(out, " AND ");
        buf_puts(out, seqcol);
        buf_puts(out, " >= (SELECT seq FROM executions WHERE recorded_at >= ?7"
                      " ORDER BY recorded_at, seq LIMIT 1)");
        /* the same rows; lets statistics without other filters read
         * executions_recorded alone */
        if (kind == HISTORY_SQL_STATS)
            buf_puts(out, " AND executions.recorded_at >= ?7");
    }
    if (f->has_until) {
        buf_puts(out, " AND ");
        buf_puts(out, seqcol);
        buf_puts(out, " <= (SELECT seq FROM executions WHERE recorded_at < ?8"
                      " ORDER BY recorded_at DESC, seq DESC LIMIT 1)");
        if (kind == HISTORY_SQL_STATS)
            buf_puts(out, " AND executions.recorded_at < ?8");
    }
    if (kind == HISTORY_SQL_PAGE) {
        /* the first page too: below the highest seq there can be */
        buf_puts(out, " AND ");
        buf_puts(out, seqcol);
        buf_puts(out, " < ?9");
        buf_puts(out, " ORDER BY ");
        buf_puts(out, seqcol);
        buf_puts(out, " DESC LIMIT ?10");
    }
}

/* "w1" "w2" ...: each word a quoted FTS5 string (its tokens a phrase),
 * all required; the caller frees it. NULL when @text has no word. */
static char *fts_query(const char *text)
{
    struct buf q = BUF_INIT(BUF_UNLIMITED);
    const char *p = text;

    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        if (q.len)
            buf_put(&q, " ", 1);
        buf_put(&q, "\"", 1);
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            if (*p == '"')
                buf_put(&q, "\"", 1);
            buf_put(&q, p, 1);
            p++;
        }
        buf_put(&q, "\"", 1);
    }
    if (!q.len) {
        buf_release(&q);
        return NULL;
    }
    return buf_detach(&q, NULL);
}

int history_filter_check(const struct history_filter *f, struct err *err)
{
    if (f->environment_version > 0 && !f->environment)
        return err_set(err, ERR_INVALID, "environment_version: needs environment");
    if (f->status > (int)EXEC_INTERRUPTED)
        return err_set(err, ERR_INVALID, "status: unknown status %d", f->status);
    return 0;
}

int history_query_prepare(sqlite3 *db, const struct history_filter *f, int64_t before_seq,
                          int64_t limit, int group, enum history_sql_kind kind, sqlite3_stmt **ret,
                          struct err *err)
{
    _cleanup_(buf_release) struct buf sql = BUF_INIT(BUF_UNLIMITED);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_free_ char *match = NULL;
    int rc;

    if (f->text && !(match = fts_query(f->text)))
        match = xstrdup("\"\""); /* no word: matches nothing */
    history_sql(f, group, kind, &sql);
    rc = sqlite3_prepare_v2(db, buf_str(&sql), -1, &st, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot query the history");
    int n = sqlite3_bind_parameter_count(st);
    /* TRANSIENT: the match text is freed before the statement */
    if (rc == SQLITE_OK && f->text && P_TEXT <= n)
        rc = sqlite3_bind_text(st, P_TEXT, match, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK && f->environment && P_ENVIRONMENT <= n)
        rc = sqlite3_bind_text(st, P_ENVIRONMENT, f->environment, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK && f->environment_version > 0 && P_VERSION <= n)
        rc = sqlite3_bind_int64(st, P_VERSION, f->environment_version);
    if (rc == SQLITE_OK && f->status >= 0 && P_STATUS <= n)
        rc = sqlite3_bind_text(st, P_STATUS, exec_status_name((enum exec_status)f->status), -1,
                               SQLITE_STATIC);
    if (rc == SQLITE_OK && f->principal && P_PRINCIPAL <= n)
        rc = sqlite3_bind_text(st, P_PRINCIPAL, f->principal, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK && f->code_sha256 && P_CODE <= n)
        rc = sqlite3_bind_text(st, P_CODE, f->code_sha256, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK && f->node && P_NODE <= n)
        rc = sqlite3_bind_text(st, P_NODE, f->node, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK && f->has_since && P_SINCE <= n)
        rc = sqlite3_bind_int64(st, P_SINCE, f->since);
    if (rc == SQLITE_OK && f->has_until && P_UNTIL <= n)
        rc = sqlite3_bind_int64(st, P_UNTIL, f->until);
    if (rc == SQLITE_OK && kind == HISTORY_SQL_PAGE && P_CURSOR <= n)
        rc = sqlite3_bind_int64(st, P_CURSOR, before_seq > 0 ? before_seq : INT64_MAX);
    if (rc == SQLITE_OK && kind == HISTORY_SQL_PAGE && P_LIMIT <= n)
        rc = sqlite3_bind_int64(st, P_LIMIT, limit);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot query the history");
    *ret = steal_ptr(st);
    return 0;
}

static int item_from_row(sqlite3_stmt *st, struct history_item *it, struct err *err)
{
    struct execution_record *rec = &it->rec;
    const char *status = (const char *)sqlite3_column_text(st, IC_STATUS);
    int s = exec_status_parse(status);

    it->seq = sqlite3_column_int64(st, IC_SEQ);
    rec->id = column_strdup(st, IC_ID);
    if (s < 0)
        return err_set(err, ERR_INTERNAL, "execution '%s' has an unknown status '%s'",
                       rec->id ? rec->id : "", status ? status : "");
    rec->status = (enum exec_status)s;
    rec->environment = column_strdup(st, IC_ENVIRONMENT);
    rec->environment_version = sqlite3_column_int64(st, IC_ENVIRONMENT_VERSION);
    rec->image = column_strdup(st, IC_IMAGE);
    rec->image_id = column_strdup(st, IC_IMAGE_ID);
    rec->principal = column_strdup(st, IC_PRINCIPAL);
    rec->node = column_strdup(st, IC_NODE);
    rec->client_addr = column_strdup(st, IC_CLIENT_ADDR);
    column_hex(st, IC_CODE_SHA256, rec->code_sha256);
    rec->timeout_s = sqlite3_column_int64(st, IC_TIMEOUT_S);
    rec->exit_code = sqlite3_column_type(st, IC_EXIT_CODE) == SQLITE_NULL
                         ? -1
                         : sqlite3_column_int(st, IC_EXIT_CODE);
    rec->error = column_strdup(st, IC_ERROR);
    rec->queued_at = sqlite3_column_int64(st, IC_QUEUED_AT);
    rec->started_at = sqlite3_column_int64(st, IC_STARTED_AT);
    rec->finished_at = sqlite3_column_int64(st, IC_FINISHED_AT);
    it->recorded_at = sqlite3_column_int64(st, IC_RECORDED_AT);
    rec->duration_ms = sqlite3_column_type(st, IC_DURATION_MS) == SQLITE_NULL
                           ? -1
                           : sqlite3_column_int64(st, IC_DURATION_MS);
    rec->stdout_truncated = sqlite3_column_int(st, IC_STDOUT_TRUNCATED) != 0;
    rec->stderr_truncated = sqlite3_column_int(st, IC_STDERR_TRUNCATED) != 0;
    it->chain_seq = sqlite3_column_int64(st, IC_CHAIN_SEQ);
    column_hex(st, IC_CHAIN_HASH, it->chain_hash);
    rec->session_id = column_strdup(st, IC_SESSION_ID);
    rec->limits = column_strdup(st, IC_LIMITS);
    rec->warning = column_strdup(st, IC_WARNING);
    return 0;
}

/* One page (or export batch) on @db; the caller holds what @db needs. */
static int list_on(sqlite3 *db, const struct history_filter *f, int64_t before_seq, size_t limit,
                   struct history_item **ret, size_t *ret_n, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct history_item *items = NULL;
    size_t n = 0, cap = 0;
    int rc;

    if (history_query_prepare(db, f, before_seq, (int64_t)limit, 0, HISTORY_SQL_PAGE, &st, err) < 0)
        return -1;
    for (;;) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        ALLOC_GROW(items, n + 1, cap);
        memset(&items[n], 0, sizeof(items[n]));
        if (item_from_row(st, &items[n], err) < 0) {
            history_items_free(items, n + 1);
            return -1;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        history_items_free(items, n);
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot query the history");
    }
    *ret = items;
    *ret_n = n;
    return 0;
}

int catalog_history_list(struct catalog *cat, const struct history_filter *f, int64_t before_seq,
                         size_t limit, struct history_item **ret, size_t *ret_n, struct err *err)
{
    if (history_filter_check(f, err) < 0)
        return -1;
    if (limit == 0) {
        *ret = NULL;
        *ret_n = 0;
        return 0;
    }
    CATALOG_READ(rd);
    if (catalog_read_begin(cat, &rd, CATALOG_READ_POOLED, err) < 0 ||
        list_on(rd.db, f, before_seq, limit, ret, ret_n, err) < 0)
        return catalog_read_fail(&rd, err);
    return 0;
}

static int history_get_tx(sqlite3 *db, const char *id, struct history_item *it, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct execution_record *rec = &it->rec;

    if (execution_select_by_id(db,
                               "SELECT " ITEM_COLUMNS ", executions.code, executions.stdout,"
                               " executions.stderr, executions.output_pruned_at,"
                               " executions.stdout_sha256, executions.stderr_sha256,"
                               " executions.stdout_size, executions.stderr_size"
                               " FROM executions WHERE id = ?",
                               id, &st, err) < 0 ||
        item_from_row(st, it, err) < 0)
        return -1;
    rec->code = column_strdup(st, IC_CODE);
    rec->stdout_text = column_bytesdup(st, IC_STDOUT, &rec->stdout_len);
    rec->stderr_text = column_bytesdup(st, IC_STDERR, &rec->stderr_len);
    /* kept by retention when it dropped the output; computed while it is held */
    rec->output_pruned_at = sqlite3_column_int64(st, IC_OUTPUT_PRUNED_AT); /* NULL reads 0 */
    if (rec->output_pruned_at) {
        column_hex(st, IC_STDOUT_SHA256, rec->stdout_sha256);
        column_hex(st, IC_STDERR_SHA256, rec->stderr_sha256);
        rec->stdout_size = sqlite3_column_int64(st, IC_STDOUT_SIZE);
        rec->stderr_size = sqlite3_column_int64(st, IC_STDERR_SIZE);
    } else {
        sha256_hex(rec->stdout_text ? rec->stdout_text : "", rec->stdout_len, rec->stdout_sha256);
        sha256_hex(rec->stderr_text ? rec->stderr_text : "", rec->stderr_len, rec->stderr_sha256);
        rec->stdout_size = (int64_t)rec->stdout_len;
        rec->stderr_size = (int64_t)rec->stderr_len;
    }
    return execution_files_load(db, it->seq, rec, err);
}

int catalog_history_get(struct catalog *cat, const char *id, struct history_item *ret,
                        struct err *err)
{
    CATALOG_READ(rd);
    CATALOG_TX(tx);
    _cleanup_(history_item_release) struct history_item it = {0};

    if (catalog_read_begin(cat, &rd, CATALOG_READ_POOLED, err) < 0)
        return -1;
    /* One read transaction: the row and its files come from one snapshot. */
    if (catalog_tx_begin(&tx, rd.db, CATALOG_TX_READ, err) < 0)
        return err_prefix(err, "cannot read execution '%s'", id);
    if (history_get_tx(rd.db, id, &it, err) < 0)
        return catalog_read_fail(&rd, err);
    *ret = it;
    memset(&it, 0, sizeof(it)); /* the caller owns the strings now */
    return 0;
}

/* ---- export ---- */

struct history_export {
    struct catalog *cat;
    struct catalog_read rd; /* begun at open (a file), or for each batch (in memory) */
    struct history_filter f;
    char *strings[5 + 1];
    int64_t before_seq;
    bool done;
};

static const char *keep(struct history_export *x, int i, const char *s)
{
    x->strings[i] = s ? xstrdup(s) : NULL;
    return x->strings[i];
}

int catalog_history_export_open(struct catalog *cat, const struct history_filter *f,
                                struct history_export **ret, struct err *err)
{
    if (history_filter_check(f, err) < 0)
        return -1;
    struct history_export *x = xcalloc(1, sizeof(*x));

    x->cat = cat;
    /* a file's connection now, so that a failure comes before the answer */
    if (cat->path && catalog_read_begin(cat, &x->rd, CATALOG_READ_OWN, err) < 0) {
        catalog_read_end(&x->rd);
        free(x);
        return -1;
    }
    x->f = *f;
    x->f.environment = keep(x, 0, f->environment);
    x->f.principal = keep(x, 1, f->principal);
    x->f.node = keep(x, 5, f->node);
    x->f.code_sha256 = keep(x, 2, f->code_sha256);
    x->f.text = keep(x, 3, f->text);
    *ret = x;
    return 0;
}

int catalog_history_export_next(struct history_export *x, size_t max, struct history_item **ret,
                                size_t *ret_n, struct err *err)
{
    int r;

    *ret = NULL;
    *ret_n = 0;
    if (x->done || max == 0)
        return 0;
    /* each batch is a read with a budget of its own; the connection is the
     * export's alone (not one of the pool's places, which a slow client
     * would hold for minutes), or in memory cat->db under the lock */
    if (!x->rd.db && catalog_read_begin(x->cat, &x->rd, CATALOG_READ_OWN, err) < 0)
        return -1;
    catalog_read_arm(&x->rd);
    r = list_on(x->rd.db, &x->f, x->before_seq, max, ret, ret_n, err);
    if (r < 0)
        catalog_read_fail(&x->rd, err);
    if (x->rd.locked)
        catalog_read_end(&x->rd); /* the shared connection: not between batches */
    if (r < 0)
        return -1;
    if (*ret_n < max)
        x->done = true;
    if (*ret_n > 0)
        x->before_seq = (*ret)[*ret_n - 1].seq;
    return 0;
}

void catalog_history_export_close(struct history_export *x)
{
    if (!x)
        return;
    catalog_read_end(&x->rd);
    for (size_t i = 0; i < ARRAY_SIZE(x->strings); i++)
        free(x->strings[i]);
    free(x);
}

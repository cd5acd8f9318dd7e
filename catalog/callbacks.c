/* catalog/callbacks.c - the result callbacks still to deliver.
 *
 * A callback is kept from its submission until it is delivered or given up,
 * so that a stop loses none: a restarted server finds the pending ones here.
 * It is due once its execution is final (not queued, not running) and its
 * next_at has come; the row goes with its execution (ON DELETE CASCADE). */
#include <string.h>

#include "catalog/catalog.h"
#include "catalog/catalog_internal.h"
#include "core/cleanup.h"

#include "core/banned.h"

void callback_records_free(struct callback_record *c, size_t n)
{
    for (size_t i = 0; c && i < n; i++) {
        free(c[i].execution_id);
        free(c[i].url);
    }
    free(c);
}

int catalog_callback_add(struct catalog *cat, const char *execution_id, const char *url, int64_t at,
                         struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    /* the execution must exist: say so rather than fail on the foreign key */
    int rc = sqlite3_prepare_v2(cat->db,
                                "INSERT INTO callbacks (execution_id, url, created_at)"
                                " SELECT id, ?, ? FROM executions WHERE id = ?",
                                -1, &st, NULL);
    struct binder b = binder_of(st);
    if (rc == SQLITE_OK) {
        bind_text(&b, url);
        bind_int64(&b, at);
        bind_text(&b, execution_id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot keep the callback of execution '%s'", execution_id);
    if (sqlite3_changes(cat->db) == 0)
        return err_set(err, ERR_NOT_FOUND,
                       "cannot keep the callback of execution '%s': no such execution",
                       execution_id);
    return 0;
}

#define CALLBACKS_FINAL                                                                            \
    " FROM callbacks c JOIN executions e ON e.id = c.execution_id"                                 \
    " WHERE e.status NOT IN ('queued', 'running')"

/* The body of catalog_callbacks_due's read transaction. */
static int callbacks_due_tx(struct catalog *cat, int64_t now, size_t max,
                            struct callback_record **v, size_t *n, size_t *cap, int64_t *ret_next,
                            struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *due = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *next = NULL;
    int rc = sqlite3_prepare_v2(
        cat->db,
        "SELECT c.execution_id, c.url, c.created_at, c.tries, c.next_at" CALLBACKS_FINAL
        " AND c.next_at <= ?"
        " ORDER BY c.next_at, c.created_at LIMIT ?",
        -1, &due, NULL);
    struct binder b = binder_of(due);
    if (rc == SQLITE_OK) {
        bind_int64(&b, now);
        bind_int64(&b, (int64_t)max);
        rc = b.rc;
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(due)) == SQLITE_ROW) {
        *v = array_grow(*v, *n, cap, sizeof(**v));
        struct callback_record *c = &(*v)[(*n)++];
        c->execution_id = column_strdup(due, 0);
        c->url = column_strdup(due, 1);
        c->created_at = sqlite3_column_int64(due, 2);
        c->tries = sqlite3_column_int64(due, 3);
        c->next_at = sqlite3_column_int64(due, 4);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read the pending callbacks");

    rc = sqlite3_prepare_v2(cat->db, "SELECT min(c.next_at)" CALLBACKS_FINAL " AND c.next_at > ?",
                            -1, &next, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(next, 1, now);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(next);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read the pending callbacks");
    *ret_next = sqlite3_column_int64(next, 0); /* NULL (none) reads 0 */
    return 0;
}

int catalog_callbacks_due(struct catalog *cat, int64_t now, size_t max,
                          struct callback_record **ret, size_t *ret_n, int64_t *ret_next,
                          struct err *err)
{
    CATALOG_LOCK(cat);
    CATALOG_TX(tx);
    struct callback_record *v = NULL;
    size_t n = 0, cap = 0;
    int64_t next = 0;

    /* one snapshot: what is due and when the next one is */
    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_READ, err) < 0 ||
        callbacks_due_tx(cat, now, max, &v, &n, &cap, &next, err) < 0) {
        callback_records_free(v, n);
        return -1;
    }
    *ret = v;
    *ret_n = n;
    *ret_next = next;
    return 0;
}

int catalog_callback_failed(struct catalog *cat, const char *execution_id, int64_t next_at,
                            const char *error, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db,
                                "UPDATE callbacks SET tries = tries + 1, next_at = ?,"
                                " last_error = ? WHERE execution_id = ?",
                                -1, &st, NULL);
    struct binder b = binder_of(st);
    if (rc == SQLITE_OK) {
        bind_int64(&b, next_at);
        bind_text(&b, error);
        bind_text(&b, execution_id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot record a failed callback of execution '%s'",
                                  execution_id);
    if (sqlite3_changes(cat->db) == 0)
        return err_set(err, ERR_NOT_FOUND, "execution '%s' has no pending callback", execution_id);
    return 0;
}

int catalog_callback_remove(struct catalog *cat, const char *execution_id, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(cat->db, "DELETE FROM callbacks WHERE execution_id = ?", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, execution_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot remove the callback of execution '%s'", execution_id);
    return 0;
}

int catalog_callback_count(struct catalog *cat, int64_t *ret, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db, "SELECT count(*) FROM callbacks", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot count the pending callbacks");
    *ret = sqlite3_column_int64(st, 0);
    return 0;
}

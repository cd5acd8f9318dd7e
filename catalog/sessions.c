/* catalog/sessions.c - the record of sessions: who opened one, on which
 * image, when it closed and why. Their calls are executions with session_id. */
#include <string.h>

#include "catalog/catalog.h"
#include "catalog/catalog_internal.h"
#include "core/cleanup.h"

#include "core/banned.h"

int catalog_session_insert(struct catalog *cat, const struct session_record *s, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db,
                                "INSERT INTO sessions (id, principal, environment, image,"
                                " idle_timeout_s, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                                -1, &st, NULL);
    struct binder b = binder_of(st);
    if (rc == SQLITE_OK) {
        bind_text(&b, s->id);
        bind_text(&b, s->principal ? s->principal : "");
        bind_text(&b, s->environment);
        bind_text(&b, s->image);
        bind_int64(&b, s->idle_timeout_s);
        bind_int64(&b, s->created_at);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot record session '%s'", s->id);
    return 0;
}

/* Close session @id, or every open session when @id is NULL; *ret_count
 * (optional) says how many closed. */
static int sessions_close(struct catalog *cat, const char *id, int64_t at, const char *reason,
                          int *ret_count, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db,
                                id ? "UPDATE sessions SET closed_at = ?, close_reason = ?"
                                     " WHERE id = ? AND closed_at IS NULL"
                                   : "UPDATE sessions SET closed_at = ?, close_reason = ?"
                                     " WHERE closed_at IS NULL",
                                -1, &st, NULL);
    struct binder b = binder_of(st);
    if (rc == SQLITE_OK) {
        bind_int64(&b, at);
        bind_text(&b, reason);
        if (id)
            bind_text(&b, id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        if (id)
            return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot close session '%s'", id);
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot close the open sessions");
    }
    if (ret_count)
        *ret_count = sqlite3_changes(cat->db);
    return 0;
}

int catalog_session_close(struct catalog *cat, const char *id, int64_t at, const char *reason,
                          struct err *err)
{
    if (!id)
        return 0; /* no session has no id: nothing to close */
    return sessions_close(cat, id, at, reason, NULL, err);
}

int catalog_sessions_close_all(struct catalog *cat, int64_t at, const char *reason, int *ret_count,
                               struct err *err)
{
    return sessions_close(cat, NULL, at, reason, ret_count, err);
}

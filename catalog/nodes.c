/* catalog/nodes.c - cluster mode's drained nodes (migrations/0014_node_drain.sql):
 * a drain is kept across restarts of the server. */
#include <string.h>

#include "catalog/catalog.h"
#include "catalog/catalog_internal.h"
#include "core/cleanup.h"
#include "core/xalloc.h"

#include "core/banned.h"

int catalog_node_drain_set(struct catalog *cat, const char *name, bool drained, const char *by,
                           int64_t at, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db,
                                drained ? "INSERT INTO node_drains (name, drained_by, drained_at)"
                                          " VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING"
                                        : "DELETE FROM node_drains WHERE name = ?",
                                -1, &st, NULL);
    struct binder b = binder_of(st);
    if (rc == SQLITE_OK) {
        bind_text(&b, name);
        if (drained) {
            bind_text(&b, by ? by : "");
            bind_int64(&b, at);
        }
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot record the drain of node '%s'",
                                  name);
    return 0;
}

int catalog_node_drains(struct catalog *cat, char ***ret, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    char **names = NULL;
    int rc =
        sqlite3_prepare_v2(cat->db, "SELECT name FROM node_drains ORDER BY name", -1, &st, NULL);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            strv_push(&names, column_strdup(st, 0));
    if (rc != SQLITE_DONE) {
        strv_free(names);
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read the drained nodes");
    }
    *ret = names;
    return 0;
}

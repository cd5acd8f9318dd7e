/* catalog/migrate.c - the schema migration runner.
 *
 * Migrations are numbered SQL files (migrations/NNNN_name.sql) compiled into
 * the binary. The invariant: schema_migrations holds exactly the versions
 * whose SQL has been applied, because each migration and the row recording it
 * commit in the same transaction, and a migration is not allowed to end that
 * transaction itself (an authorizer denies BEGIN, COMMIT and ROLLBACK). */
#include "catalog/catalog_internal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define MIGRATION_DIGITS 4

struct migration {
    int version;
    const char *name; /* inside path; name_len bytes, not NUL-terminated */
    int name_len;
    const char *path;
    const char *sql;
};

struct auth_ctx {
    bool denied_transaction;
};

/* "dir/0007_add_things.sql" -> version 7, name "add_things". */
static int migration_parse(const struct embedded_file *f, struct migration *ret, struct err *err)
{
    const char *base = strrchr(f->path, '/');
    size_t len, name_len;
    int version = 0;

    base = base ? base + 1 : f->path;
    len = strlen(base);
    if (len <= MIGRATION_DIGITS + 1 + strlen(".sql") || base[MIGRATION_DIGITS] != '_' ||
        strcmp(base + len - strlen(".sql"), ".sql") != 0)
        goto malformed;
    for (int i = 0; i < MIGRATION_DIGITS; i++) {
        if (base[i] < '0' || base[i] > '9')
            goto malformed;
        version = version * 10 + (base[i] - '0');
    }
    name_len = len - MIGRATION_DIGITS - 1 - strlen(".sql");
    for (size_t i = 0; i < name_len; i++) {
        char c = base[MIGRATION_DIGITS + 1 + i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            goto malformed;
    }
    if (version == 0)
        return err_set(err, ERR_INTERNAL, "migration '%s': numbers start at 0001", f->path);
    if (!f->data || strlen((const char *)f->data) != f->len)
        return err_set(err, ERR_INTERNAL, "migration '%s' is not text (it holds a NUL byte)",
                       f->path);

    ret->version = version;
    ret->name = base + MIGRATION_DIGITS + 1;
    ret->name_len = (int)name_len;
    ret->path = f->path;
    ret->sql = (const char *)f->data;
    return 0;

malformed:
    return err_set(err, ERR_INTERNAL,
                   "migration file name '%s' is not NNNN_name.sql (name: a-z, 0-9, _)", f->path);
}

/* Parse and check the whole list before anything touches the database. */
static int migrations_load(const struct embedded_file *files, struct migration **ret, size_t *ret_n,
                           struct err *err)
{
    _cleanup_free_ struct migration *list = NULL;
    size_t n = 0;

    while (files[n].path)
        n++;
    list = xcalloc(n ? n : 1, sizeof(*list));
    for (size_t i = 0; i < n; i++) {
        if (migration_parse(&files[i], &list[i], err) < 0)
            return -1;
        if (i == 0)
            continue;
        if (list[i].version == list[i - 1].version)
            return err_set(err, ERR_INTERNAL, "migrations '%s' and '%s' share number %04d",
                           list[i - 1].path, list[i].path, list[i].version);
        if (list[i].version < list[i - 1].version)
            return err_set(err, ERR_INTERNAL, "migration '%s' comes after '%s': out of order",
                           list[i].path, list[i - 1].path);
    }
    *ret = steal_ptr(list);
    *ret_n = n;
    return 0;
}

/* Run one statement that returns a single integer (or nothing: 0); @what
 * names the step in an error. */
static int query_int(sqlite3 *db, const char *sql, const char *what, int *ret, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot %s", what);
    *ret = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    return 0;
}

int catalog_migrate_version(sqlite3 *db, int *ret, struct err *err)
{
    int exists = 0, version = 0;

    if (query_int(db,
                  "SELECT count(*) FROM sqlite_master"
                  " WHERE type = 'table' AND name = 'schema_migrations'",
                  "read the schema version", &exists, err) < 0)
        return -1;
    if (!exists) {
        *ret = 0;
        return 0;
    }
    if (query_int(db, "SELECT coalesce(max(version), 0) FROM schema_migrations",
                  "read the schema version", &version, err) < 0)
        return -1;
    *ret = version;
    return 0;
}

/* Installed while a migration's own SQL runs: the runner owns the transaction. */
static int deny_transactions(void *data, int action, const char *a1, const char *a2, const char *a3,
                             const char *a4)
{
    struct auth_ctx *ctx = data;

    (void)a1, (void)a2, (void)a3, (void)a4;
    if (action == SQLITE_TRANSACTION) {
        ctx->denied_transaction = true;
        return SQLITE_DENY;
    }
    return SQLITE_OK;
}

static int migration_applied(sqlite3 *db, const struct migration *m, bool *ret, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(db, "SELECT 1 FROM schema_migrations WHERE version = ?", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 1, m->version);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot apply migration '%s'", m->path);
    *ret = rc == SQLITE_ROW;
    return 0;
}

static int migration_check_foreign_keys(sqlite3 *db, const struct migration *m, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *table = sqlite3_column_text(st, 0);
        return err_set(err, ERR_INTERNAL,
                       "cannot apply migration '%s': it leaves a foreign key violation in '%s'",
                       m->path, table ? (const char *)table : "?");
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot apply migration '%s'", m->path);
    return 0;
}

static int migration_record(sqlite3 *db, const struct migration *m, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", -1, &st,
        NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 1, m->version);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, m->name, m->name_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, time_now_ms());
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot record migration '%s'", m->path);
    return 0;
}

/* The body of one migration's transaction; the caller commits or rolls back. */
static int migration_run(sqlite3 *db, const struct migration *m, bool *ret_skipped, struct err *err)
{
    struct auth_ctx auth = {.denied_transaction = false};
    bool applied = false;
    int rc;

    /* Checked again inside the write transaction: another process may have
     * applied it since we looked. */
    if (migration_applied(db, m, &applied, err) < 0)
        return -1;
    if (applied) {
        *ret_skipped = true;
        return 0;
    }
    *ret_skipped = false;

    sqlite3_set_authorizer(db, deny_transactions, &auth);
    rc = sqlite3_exec(db, m->sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        if (auth.denied_transaction)
            err_set(err, ERR_INTERNAL,
                    "cannot apply migration '%s': it must not begin, commit or roll back a "
                    "transaction (the runner does)",
                    m->path);
        else
            catalog_sqlite_err(db, rc, ERR_OK, err, "cannot apply migration '%s'", m->path);
    }
    sqlite3_set_authorizer(db, NULL, NULL);
    if (rc != SQLITE_OK)
        return -1;

    if (migration_check_foreign_keys(db, m, err) < 0)
        return -1;
    return migration_record(db, m, err);
}

static int migration_apply(sqlite3 *db, const struct migration *m, struct err *err)
{
    CATALOG_TX(tx);
    bool skipped = false;

    if (catalog_tx_begin(&tx, db, CATALOG_TX_WRITE, err) < 0)
        return err_prefix(err, "cannot apply migration '%s'", m->path);
    if (migration_run(db, m, &skipped, err) < 0)
        return -1; /* err names the migration; rolled back on the way out */
    if (catalog_tx_commit(&tx, err) < 0)
        return err_prefix(err, "cannot apply migration '%s'", m->path);
    return 0;
}

static int migrations_apply(sqlite3 *db, const struct migration *list, size_t n, struct err *err)
{
    int current = 0;

    if (catalog_migrate_version(db, &current, err) < 0)
        return -1;
    if (n > 0 && current > list[n - 1].version)
        return err_set(err, ERR_UNAVAILABLE,
                       "the catalog is at schema version %d, newer than this build's %d", current,
                       list[n - 1].version);
    for (size_t i = 0; i < n; i++) {
        if (migration_apply(db, &list[i], err) < 0)
            return -1;
    }
    return 0;
}

int catalog_migrate_db(sqlite3 *db, const struct embedded_file *files, struct err *err)
{
    _cleanup_free_ struct migration *list = NULL;
    size_t n = 0;
    int rc, r, foreign_keys = 0;

    if (migrations_load(files, &list, &n, err) < 0)
        return -1;
    if (!sqlite3_get_autocommit(db))
        return err_set(err, ERR_INTERNAL, "cannot migrate inside an open transaction");

    rc = sqlite3_exec(db,
                      "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      " version INTEGER PRIMARY KEY,"
                      " name TEXT NOT NULL,"
                      " applied_at INTEGER NOT NULL) STRICT",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot create schema_migrations");

    /* SQLite's way to rebuild a table (create, copy, drop, rename) needs
     * foreign keys off, or the DROP would cascade; the pragma is a no-op
     * inside a transaction, so it is switched here, around all of them. */
    if (query_int(db, "PRAGMA foreign_keys", "read the foreign keys setting", &foreign_keys, err) <
        0)
        return -1;
    if (foreign_keys) {
        rc = sqlite3_exec(db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot turn foreign keys off");
    }
    r = migrations_apply(db, list, n, err);
    if (foreign_keys) {
        rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
        if (rc != SQLITE_OK && r == 0)
            return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot turn foreign keys back on");
    }
    return r;
}

/* catalog/keys.c - API keys (only the sha256 of a secret is stored) and the
 * events that say who changed environments and keys. An event is written by
 * the call that makes its change, in that change's transaction
 * (catalog_event_insert_tx): a change is never stored without its event, nor
 * an event without its change. */
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "catalog/catalog_internal.h"
#include "core/cleanup.h"
#include "core/xalloc.h"

#include "core/banned.h"

static const char *const role_names[] = {"admin", "curator", "runner", "auditor"};

const char *role_name(enum role r)
{
    return name_of(role_names, ARRAY_SIZE(role_names), (unsigned)r);
}

int role_parse(const char *name)
{
    return name_index(role_names, ARRAY_SIZE(role_names), name);
}

void key_record_release(struct key_record *k)
{
    if (!k)
        return;
    free(k->id);
    free(k->name);
    free(k->secret_sha256);
    free(k->created_by);
    free(k->revoked_by);
    memset(k, 0, sizeof(*k));
}

void key_records_free(struct key_record *k, size_t n)
{
    ARRAY_FREE(k, n, key_record_release);
}

void event_records_free(struct event_record *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].principal);
        free(e[i].action);
        free(e[i].subject);
        free(e[i].detail);
    }
    free(e);
}

#define KEY_COLUMNS                                                                                \
    "id, name, role, secret_sha256, created_at, created_by, revoked_at, revoked_by, "              \
    "max_concurrent, max_per_minute"

static void key_from_row(sqlite3_stmt *st, struct key_record *k)
{
    k->id = column_strdup(st, 0);
    k->name = column_strdup(st, 1);
    int r = role_parse((const char *)sqlite3_column_text(st, 2));
    k->role = r < 0 ? ROLE_RUNNER : (enum role)r;
    k->secret_sha256 = column_strdup(st, 3);
    k->created_at = sqlite3_column_int64(st, 4);
    k->created_by = column_strdup(st, 5);
    k->revoked_at = sqlite3_column_type(st, 6) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 6);
    k->revoked_by = column_strdup(st, 7);
    k->max_concurrent =
        sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 8);
    k->max_per_minute =
        sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 9);
}

int catalog_event_insert_tx(struct catalog *cat, int64_t at, const char *principal,
                            const char *action, const char *subject, const char *detail,
                            struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db,
                                "INSERT INTO events (at, principal, action, subject, detail) "
                                "VALUES (?, ?, ?, ?, ?)",
                                -1, &st, NULL);
    struct binder b = binder_of(st);
    if (rc == SQLITE_OK) {
        bind_int64(&b, at);
        bind_text(&b, principal ? principal : "");
        bind_text(&b, action);
        bind_text(&b, subject);
        bind_text(&b, detail ? detail : "");
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(cat->db);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot record event '%s' of '%s'",
                                  action, subject);
    return 0;
}

int catalog_event_list(struct catalog *cat, const char *subject, size_t limit,
                       struct event_record **ret, size_t *ret_n, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db,
                                subject ? "SELECT seq, at, principal, action, subject, detail FROM "
                                          "events WHERE subject = ? ORDER BY seq DESC LIMIT ?"
                                        : "SELECT seq, at, principal, action, subject, detail FROM "
                                          "events ORDER BY seq DESC LIMIT ?",
                                -1, &st, NULL);
    struct binder b = binder_of(st);
    struct event_record *ev = NULL;
    size_t n = 0, cap = 0;

    if (rc == SQLITE_OK) {
        if (subject)
            bind_text(&b, subject);
        bind_int64(&b, (int64_t)limit);
        rc = b.rc;
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        ALLOC_GROW(ev, n + 1, cap);
        ev[n].seq = sqlite3_column_int64(st, 0);
        ev[n].at = sqlite3_column_int64(st, 1);
        ev[n].principal = column_strdup(st, 2);
        ev[n].action = column_strdup(st, 3);
        ev[n].subject = column_strdup(st, 4);
        ev[n].detail = column_strdup(st, 5);
        n++;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        event_records_free(ev, n);
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot list events");
    }
    *ret = ev;
    *ret_n = n;
    return 0;
}

/* The body of catalog_key_create's transaction. */
static int key_create_tx(struct catalog *cat, const struct key_record *key, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO api_keys (id, name, role, secret_sha256, created_at, "
                            "created_by, max_concurrent, max_per_minute) VALUES (?, ?, ?, ?, ?, "
                            "?, ?, ?)",
                            -1, &st, NULL);
    struct binder b = binder_of(st);
    if (rc == SQLITE_OK) {
        bind_text(&b, key->id);
        bind_text(&b, key->name);
        bind_text(&b, role_name(key->role));
        bind_text(&b, key->secret_sha256);
        bind_int64(&b, key->created_at);
        bind_text(&b, key->created_by ? key->created_by : "");
        bind_int64_or_null(&b, key->max_concurrent, key->max_concurrent < 0);
        bind_int64_or_null(&b, key->max_per_minute, key->max_per_minute < 0);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(cat->db);
    if (rc != SQLITE_OK) {
        catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot store key '%s'", key->name);
        if (err->code == ERR_CONFLICT)
            err_set(err, ERR_CONFLICT, "a key named '%s' exists", key->name);
        return -1;
    }
    return catalog_event_insert_tx(cat, key->created_at, key->created_by, "key.create", key->name,
                                   role_name(key->role), err);
}

int catalog_key_create(struct catalog *cat, const struct key_record *key, struct err *err)
{
    CATALOG_LOCK(cat);
    CATALOG_TX(tx);

    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
        key_create_tx(cat, key, err) < 0)
        return -1;
    return catalog_tx_commit(&tx, err);
}

int catalog_key_get(struct catalog *cat, const char *id, struct key_record *ret, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db, "SELECT " KEY_COLUMNS " FROM api_keys WHERE id = ?", -1,
                                &st, NULL);
    struct binder b = binder_of(st);

    if (rc == SQLITE_OK) {
        bind_text(&b, id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "no key with id '%s'", id);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read key '%s'", id);
    memset(ret, 0, sizeof(*ret));
    key_from_row(st, ret);
    return 0;
}

int catalog_key_list(struct catalog *cat, struct key_record **ret, size_t *ret_n, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db, "SELECT " KEY_COLUMNS " FROM api_keys ORDER BY name", -1,
                                &st, NULL);
    struct key_record *keys = NULL;
    size_t n = 0, cap = 0;

    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        ALLOC_GROW(keys, n + 1, cap);
        memset(&keys[n], 0, sizeof(keys[n]));
        key_from_row(st, &keys[n++]);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        key_records_free(keys, n);
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot list keys");
    }
    *ret = keys;
    *ret_n = n;
    return 0;
}

/* The body of catalog_key_revoke's transaction. */
static int key_revoke_tx(struct catalog *cat, const char *name, int64_t at, const char *by,
                         struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *check = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(cat->db, "SELECT revoked_at FROM api_keys WHERE name = ?", -1, &check,
                            NULL);
    struct binder cb = binder_of(check);
    if (rc == SQLITE_OK) {
        bind_text(&cb, name);
        rc = cb.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(check);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "no key named '%s'", name);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read key '%s'", name);
    if (sqlite3_column_type(check, 0) != SQLITE_NULL)
        return err_set(err, ERR_CONFLICT, "key '%s' is revoked already", name);
    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE name = ?", -1,
                            &st, NULL);
    struct binder b = binder_of(st);
    if (rc == SQLITE_OK) {
        bind_int64(&b, at);
        bind_text(&b, by ? by : "");
        bind_text(&b, name);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(cat->db);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot revoke key '%s'", name);
    return catalog_event_insert_tx(cat, at, by, "key.revoke", name, "", err);
}

int catalog_key_revoke(struct catalog *cat, const char *name, int64_t at, const char *by,
                       struct err *err)
{
    CATALOG_LOCK(cat);
    CATALOG_TX(tx);

    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
        key_revoke_tx(cat, name, at, by, err) < 0)
        return -1;
    return catalog_tx_commit(&tx, err);
}

static int count_keys(struct catalog *cat, const char *sql, int64_t *ret, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot count keys");
    *ret = sqlite3_column_int64(st, 0);
    return 0;
}

int catalog_key_count_active(struct catalog *cat, int64_t *ret, struct err *err)
{
    return count_keys(cat, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL", ret, err);
}

int catalog_key_count_all(struct catalog *cat, int64_t *ret, struct err *err)
{
    return count_keys(cat, "SELECT count(*) FROM api_keys", ret, err);
}

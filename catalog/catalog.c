/* catalog/catalog.c - envhub's SQLite catalog: the connection and what every
 * part of the catalog uses on it.
 *
 * One sqlite3 connection per struct catalog, opened without SQLite's own
 * mutex: every public function holds cat->lock for as long as it touches the
 * connection, and every statement is prepared, stepped and finalized inside
 * that one call, so no statement outlives the lock. Statements that must
 * agree run in one transaction, begun and ended only here (catalog_tx_*).
 * Values are bound with sqlite3_bind_*(), never written into SQL text.
 * The history's reads run on a pool of read-only connections, each statement
 * with a time budget (catalog_read_begin); other long reads open read-only
 * connections of their own (catalog_reader_open). */
#include "catalog/catalog.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog_internal.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define INSTANCE_ID_BYTES 8 /* 16 hex characters */

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
    rc = pthread_mutex_init(&cat->readers.lock, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&cat->readers.freed, NULL)) != 0)
        pthread_mutex_destroy(&cat->readers.lock);
    if (rc != 0)
        return err_errno(err, ERR_INTERNAL, rc, "cannot open catalog '%s': mutex", path);
    cat->readers.ready = true;
    long half = sysconf(_SC_NPROCESSORS_ONLN) / 2;
    cat->readers.max = half < CATALOG_READERS_MIN   ? CATALOG_READERS_MIN
                       : half > CATALOG_READERS_MAX ? CATALOG_READERS_MAX
                                                    : (size_t)half;

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

    if (!path_is_memory(path)) {
        const char *file = sqlite3_db_filename(cat->db, "main");
        cat->path = xstrdup(file && file[0] ? file : path);
    }

    *ret = steal_ptr(cat);
    return 0;
}

void catalog_close(struct catalog *cat)
{
    if (!cat)
        return;
    /* Every statement is finalized by the call that made it, so close
     * cannot find one left open (and answer SQLITE_BUSY); every read has
     * ended, so the idle connections are all there are. */
    for (size_t i = 0; i < cat->readers.n_idle; i++)
        sqlite3_close(cat->readers.idle[i]);
    if (cat->readers.ready) {
        pthread_cond_destroy(&cat->readers.freed);
        pthread_mutex_destroy(&cat->readers.lock);
    }
    sqlite3_close(cat->db);
    if (cat->lock_ready)
        pthread_mutex_destroy(&cat->lock);
    free(cat->path);
    free(cat->instance_id);
    free(cat);
}

void catalog_set_query_budget(struct catalog *cat, int64_t ms)
{
    pthread_mutex_lock(&cat->readers.lock);
    cat->readers.budget_ms = ms > 0 ? ms : 0;
    pthread_mutex_unlock(&cat->readers.lock);
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

/* ---- SQLite errors ---- */

int catalog_sqlite_err(sqlite3 *db, int rc, enum err_code code, struct err *err, const char *fmt,
                       ...)
{
    char what[ERR_MSG_MAX];
    va_list ap;

    if (code == ERR_OK) {
        int primary = rc & 0xff;
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            code = ERR_CONFLICT;
        else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
            code = ERR_UNAVAILABLE;
        else
            code = ERR_INTERNAL;
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return err_set(err, code, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* ---- transactions ---- */

int catalog_tx_begin(struct catalog_tx *tx, sqlite3 *db, enum catalog_tx_kind kind, struct err *err)
{
    int rc;

    /* a transaction already open is the catalog's bug: SQLite would refuse
     * the BEGIN, and a ROLLBACK on our way out would end the outer one */
    if (tx->db || !sqlite3_get_autocommit(db))
        return err_set(err, ERR_INTERNAL,
                       "cannot begin a catalog transaction: one is open already on this "
                       "connection (transactions do not nest)");
    rc = sqlite3_exec(db, kind == CATALOG_TX_WRITE ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot begin a catalog transaction");
    tx->db = db;
    return 0;
}

void catalog_tx_end(struct catalog_tx *tx)
{
    /* Some errors (SQLITE_FULL, SQLITE_IOERR, ...) have rolled back already. */
    if (tx->db && !sqlite3_get_autocommit(tx->db))
        sqlite3_exec(tx->db, "ROLLBACK", NULL, NULL, NULL);
    tx->db = NULL;
}

int catalog_tx_commit(struct catalog_tx *tx, struct err *err)
{
    int rc = sqlite3_exec(tx->db, "COMMIT", NULL, NULL, NULL);

    if (rc != SQLITE_OK) {
        catalog_sqlite_err(tx->db, rc, ERR_OK, err, "cannot commit a catalog transaction");
        catalog_tx_end(tx);
        return -1;
    }
    tx->db = NULL;
    return 0;
}

/* ---- read-only connections ---- */

char *catalog_file(struct catalog *cat)
{
    return cat->path ? xstrdup(cat->path) : NULL; /* set once in catalog_open */
}

/* "file:" URI of @path with "?immutable=1": '%', '?' and '#' escaped. */
static char *immutable_uri(const char *path)
{
    struct buf uri = BUF_INIT(BUF_UNLIMITED);

    buf_puts(&uri, "file:");
    for (const char *p = path; *p; p++) {
        if (*p == '%' || *p == '?' || *p == '#')
            buf_putf(&uri, "%%%02X", (unsigned char)*p);
        else
            buf_put(&uri, p, 1);
    }
    buf_puts(&uri, "?immutable=1");
    return buf_detach(&uri, NULL);
}

int catalog_reader_open(const char *path, bool immutable_fallback, sqlite3 **ret, struct err *err)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, CATALOG_BUSY_TIMEOUT_MS);
        /* opening is lazy: the first read says whether the file is usable */
        rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK && immutable_fallback) {
        _cleanup_free_ char *uri = immutable_uri(path);
        sqlite3_close(db);
        db = NULL;
        rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
                             NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        catalog_sqlite_err(db, rc, ERR_UNAVAILABLE, err, "cannot open catalog '%s' for reading",
                           path);
        sqlite3_close(db);
        return -1;
    }
    *ret = db;
    return 0;
}

/* ---- the history's reads ---- */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int read_progress(void *arg)
{
    struct catalog_read *rd = arg;

    if (mono_us() < rd->deadline_us)
        return 0;
    rd->expired = true;
    return 1; /* the statement fails with SQLITE_INTERRUPT */
}

void catalog_read_arm(struct catalog_read *rd)
{
    rd->expired = false;
    if (!rd->db || rd->budget_ms <= 0)
        return;
    rd->deadline_us = mono_us() + rd->budget_ms * 1000;
    sqlite3_progress_handler(rd->db, CATALOG_PROGRESS_OPS, read_progress, rd);
}

/* Take a place (waiting until the budget is spent) and an idle connection
 * if there is one; a new connection is opened by the caller, unlocked. */
static int read_place_take(struct catalog *cat, struct catalog_read *rd, sqlite3 **ret_idle,
                           struct err *err)
{
    int64_t wait_ms = rd->budget_ms > 0 ? rd->budget_ms : CATALOG_BUSY_TIMEOUT_MS;
    struct timespec until = time_deadline_in(wait_ms);
    size_t max;
    int rc = 0;

    pthread_mutex_lock(&cat->readers.lock);
    while (cat->readers.busy >= cat->readers.max && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&cat->readers.freed, &cat->readers.lock, &until);
    max = cat->readers.max;
    bool got = cat->readers.busy < max;
    if (got) {
        cat->readers.busy++;
        *ret_idle = cat->readers.n_idle ? cat->readers.idle[--cat->readers.n_idle] : NULL;
    }
    pthread_mutex_unlock(&cat->readers.lock);
    if (!got)
        return err_set(err, ERR_BUSY,
                       "the history is busy: its %zu read connection(s) stayed in use for the %lld "
                       "ms this query could wait; retry",
                       max, (long long)wait_ms);
    rd->placed = true;
    return 0;
}

int catalog_read_begin(struct catalog *cat, struct catalog_read *rd, enum catalog_read_kind kind,
                       struct err *err)
{
    sqlite3 *db = NULL;

    rd->cat = cat;
    rd->expired = false;
    pthread_mutex_lock(&cat->readers.lock);
    rd->budget_ms = cat->readers.budget_ms;
    pthread_mutex_unlock(&cat->readers.lock);

    if (!cat->path) {
        catalog_lock(cat);
        rd->locked = true;
        rd->db = cat->db;
    } else {
        if (kind == CATALOG_READ_POOLED && read_place_take(cat, rd, &db, err) < 0)
            return -1;
        if (!db && catalog_reader_open(cat->path, false, &db, err) < 0)
            return -1; /* the place is let go by catalog_read_end */
        rd->db = db;
    }
    catalog_read_arm(rd);
    return 0;
}

int catalog_read_fail(struct catalog_read *rd, struct err *err)
{
    if (rd->expired)
        return err_set(err, ERR_UNPROCESSABLE,
                       "the history query took longer than %lld ms (ENVHUB_QUERY_BUDGET_MS) and "
                       "was stopped: narrow the filter (a shorter since/until range, environment, "
                       "status, principal, or rarer words in q)",
                       (long long)rd->budget_ms);
    return -1;
}

void catalog_read_end(struct catalog_read *rd)
{
    struct catalog *cat = rd->cat;
    sqlite3 *db = rd->db;

    if (!cat)
        return;
    if (db) {
        sqlite3_progress_handler(db, 0, NULL, NULL);
        /* nothing may outlive the read: a statement or transaction left
         * open is the catalog's bug, and the connection is not reused */
        if (!rd->locked && (sqlite3_next_stmt(db, NULL) || !sqlite3_get_autocommit(db))) {
            sqlite3_close_v2(db);
            db = NULL;
        }
    }
    if (rd->locked) {
        pthread_mutex_unlock(&cat->lock);
    } else if (rd->placed) {
        pthread_mutex_lock(&cat->readers.lock);
        if (db && cat->readers.n_idle < CATALOG_READERS_MAX) {
            cat->readers.idle[cat->readers.n_idle++] = db;
            db = NULL;
        }
        cat->readers.busy--;
        pthread_cond_signal(&cat->readers.freed);
        pthread_mutex_unlock(&cat->readers.lock);
        sqlite3_close(db);
    } else {
        sqlite3_close(db);
    }
    memset(rd, 0, sizeof(*rd));
}

/* catalog/catalog_internal.h - shared by the catalog's .c files (catalog.c,
 * environments.c, migrate.c) and its own unit tests; nobody else includes it.
 * SQLite types may appear here, never in catalog.h. */
#ifndef ENVHUB_CATALOG_INTERNAL_H
#define ENVHUB_CATALOG_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/xalloc.h"

/* One sqlite3 connection, opened without SQLite's own mutex: every public
 * function holds lock for as long as it touches db (CATALOG_LOCK), and every
 * statement is prepared, stepped and finalized inside that one call. */
struct catalog {
    pthread_mutex_t lock;
    bool lock_ready;
    sqlite3 *db;
    char *instance_id;
};

/* The migrations compiled into the binary from migrations/NNNN_name.sql
 * (build/gen/migrations_embedded.c, made by core/embed.sh), in file name
 * order, ended by an entry whose path is NULL. */
extern const struct embedded_file migrations_embedded[];

/* Apply the pending migrations of @files (ended by a NULL path) to @db.
 *
 * Each file's basename must read NNNN_name.sql (four digits, not 0000; the
 * name of lower-case letters, digits and '_'), and the numbers must increase
 * strictly: a malformed name, a duplicate or an out-of-order number is
 * refused (ERR_INTERNAL) before anything is applied. A database that records
 * a version above the last of @files belongs to a newer build and is refused
 * (ERR_UNAVAILABLE).
 *
 * schema_migrations(version, name, applied_at) is created if missing. Each
 * migration not yet recorded there runs in its own BEGIN IMMEDIATE
 * transaction, which also records it; on failure that transaction is rolled
 * back, the migrations before it stay applied and err names the migration
 * with SQLite's message (ERR_INTERNAL; ERR_UNAVAILABLE when the database is
 * busy or locked). A migration may not begin, commit or roll back a
 * transaction itself. Foreign key enforcement is off while a migration runs
 * (so that tables can be rebuilt) and restored afterwards; a migration that
 * leaves a foreign key violation fails.
 *
 * @db must not be inside a transaction. Not thread-safe: the caller owns @db. */
int catalog_migrate_db(sqlite3 *db, const struct embedded_file *files, struct err *err);

/* The highest version recorded in schema_migrations; 0 when the table is
 * missing or empty. */
int catalog_migrate_version(sqlite3 *db, int *ret, struct err *err);

/* Fill err with "<fmt...>: <SQLite's message for @db>" (sqlite3_errstr(@rc)
 * when @db is NULL) and return -1. @code ERR_OK translates @rc:
 * SQLITE_CONSTRAINT_UNIQUE and _PRIMARYKEY are ERR_CONFLICT, SQLITE_BUSY and
 * SQLITE_LOCKED (any extended form) ERR_UNAVAILABLE, everything else
 * ERR_INTERNAL; any other @code is used as given. Call it before anything
 * else runs on @db (a ROLLBACK replaces the message). */
int catalog_sqlite_err(sqlite3 *db, int rc, enum err_code code, struct err *err, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));

/* ---- helpers for the catalog's .c files ---- */

static inline void stmt_finalizep(sqlite3_stmt **st)
{
    sqlite3_finalize(*st); /* NULL is a no-op */
}

static inline struct catalog *catalog_lock(struct catalog *cat)
{
    pthread_mutex_lock(&cat->lock);
    return cat;
}

static inline void catalog_unlockp(struct catalog **cat)
{
    if (*cat)
        pthread_mutex_unlock(&(*cat)->lock);
}

/* Hold cat->lock until the end of the enclosing block. Declare it before any
 * _cleanup_ statement so those are finalized while the lock is still held. */
#define CATALOG_LOCK(cat)                                                                          \
    _cleanup_(catalog_unlockp) __attribute__((unused)) struct catalog *catalog_locked_ =           \
        catalog_lock(cat)

/* Binds parameters 1, 2, 3, ... in call order and keeps the first failure,
 * so a statement's binds read as one list checked once. */
struct binder {
    sqlite3_stmt *st;
    int n;
    int rc;
};

static inline struct binder binder_of(sqlite3_stmt *st)
{
    return (struct binder){.st = st, .n = 0, .rc = SQLITE_OK};
}

/* NULL binds SQL NULL; the text must outlive the step (SQLITE_STATIC). */
static inline void bind_text(struct binder *b, const char *s)
{
    if (b->rc != SQLITE_OK)
        return;
    b->n++;
    b->rc =
        s ? sqlite3_bind_text(b->st, b->n, s, -1, SQLITE_STATIC) : sqlite3_bind_null(b->st, b->n);
}

static inline void bind_text_n(struct binder *b, const char *s, size_t len)
{
    if (b->rc != SQLITE_OK)
        return;
    b->n++;
    b->rc = sqlite3_bind_text(b->st, b->n, s, (int)len, SQLITE_STATIC);
}

/* A job's output (struct execution_record's stdout_text and stdout_len):
 * bound with its length, so that NUL and what follows it are stored; NULL
 * is "", a length of 0 means strlen(). */
static inline void bind_output(struct binder *b, const char *s, size_t len)
{
    if (!s)
        bind_text_n(b, "", 0);
    else
        bind_text_n(b, s, len ? len : strlen(s));
}

static inline void bind_int64(struct binder *b, int64_t v)
{
    if (b->rc != SQLITE_OK)
        return;
    b->n++;
    b->rc = sqlite3_bind_int64(b->st, b->n, v);
}

static inline void bind_int64_or_null(struct binder *b, int64_t v, bool null)
{
    if (b->rc != SQLITE_OK)
        return;
    b->n++;
    b->rc = null ? sqlite3_bind_null(b->st, b->n) : sqlite3_bind_int64(b->st, b->n, v);
}

/* Column text is borrowed until the next step: copy it. NULL stays NULL. */
static inline char *column_strdup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? xstrdup((const char *)t) : NULL;
}

/* The same for text that may hold NUL (a job's output): all
 * sqlite3_column_bytes() of it, NUL-terminated after *ret_len bytes. */
static inline char *column_bytesdup(sqlite3_stmt *st, int col, size_t *ret_len)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    char *s = NULL;

    if (t) {
        s = xmalloc(n + 1);
        memcpy(s, t, n);
        s[n] = '\0';
    }
    *ret_len = n;
    return s;
}

static inline int tx_begin(struct catalog *cat, struct err *err)
{
    int rc = sqlite3_exec(cat->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot begin a catalog transaction");
    return 0;
}

static inline void tx_rollback(struct catalog *cat)
{
    /* Some errors (SQLITE_FULL, SQLITE_IOERR, ...) have rolled back already. */
    if (!sqlite3_get_autocommit(cat->db))
        sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
}

static inline int tx_commit(struct catalog *cat, struct err *err)
{
    int rc = sqlite3_exec(cat->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot commit a catalog transaction");
        tx_rollback(cat);
        return -1;
    }
    return 0;
}

/* ---- history (catalog/history.c) ---- */

struct buf;
struct history_filter;

/* Inside the write transaction that made execution @seq final (or changed
 * it): join it to the audit chain (chain_seq = head + 1), or recompute its
 * link in place when it is the head already. Nothing when it is not final
 * and not chained. ERR_CONFLICT when it is chained but not the head (or no
 * longer final): sealed rows do not change. */
int history_chain_tx(struct catalog *cat, int64_t seq, struct err *err);
/* Inside a write transaction: chain every final execution not yet in the
 * chain, in seq order (those start-up recovery just interrupted, and those
 * finished before migration 0004). *ret_n (optional) says how many. */
int history_chain_pending_tx(struct catalog *cat, int *ret_n, struct err *err);

/* For the unit tests. The canonical serialisation of execution @seq of @db
 * as it would be hashed at chain position @chain_seq, appended to @out. */
int history_canonical(sqlite3 *db, int64_t seq, int64_t chain_seq, struct buf *out,
                      struct err *err);
/* The SQL the query API issues for @f: HISTORY_SQL_PAGE (a page or an
 * export batch, below a cursor) or HISTORY_SQL_STATS (grouped by @group),
 * written to @out. */
enum history_sql_kind { HISTORY_SQL_PAGE, HISTORY_SQL_STATS };
void history_sql(const struct history_filter *f, int group, enum history_sql_kind kind,
                 struct buf *out);
/* The other statements of history.c that read or delete many rows
 * (verify, prune), NULL-terminated, for the query plan test. */
extern const char *const history_fixed_sql[];

#endif

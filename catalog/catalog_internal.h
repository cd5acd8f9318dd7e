/* catalog/catalog_internal.h - shared by the catalog's .c files and its own
 * unit tests; nobody else includes it. SQLite types may appear here, never in
 * catalog.h.
 *
 *     catalog.c       the connection: open, close, instance id; SQLite errors,
 *                     transactions, read-only connections: the history's
 *                     pool with its time budget, and those of their own
 *     migrate.c       the migration runner
 *     executions.c    an execution row's life: insert, start, finish, get,
 *                     recovery, count, the file manifests; the bulk seed
 *     chain.c         the audit chain: canonical serialisation, links
 *     history.c       the auditors' queries: filters, pages, export
 *     stats.c         statistics over a filter
 *     verify.c        verification of the chain, retention (prune)
 *     environments.c  environments, builds, build logs, package inventories
 *     packages.c      which environments carry a package
 *     keys.c          API keys and change events
 *     sessions.c      the record of sessions
 *     storage.c       output budget counts, retention of old output, disk usage
 *     callbacks.c     the result callbacks still to deliver */
#ifndef ENVHUB_CATALOG_INTERNAL_H
#define ENVHUB_CATALOG_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "catalog/catalog.h"
#include "core/cleanup.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/xalloc.h"

struct buf;

#define CATALOG_BUSY_TIMEOUT_MS 5000
/* catalog_execution_finish: tries while the catalog is busy past the busy
 * timeout, and the pause after the first (it doubles after each). */
#define CATALOG_FINISH_TRIES 4
#define CATALOG_FINISH_PAUSE_MS 250
#define SHA256_HEX_MAX 64

/* History reads at once: half the CPUs (the other half stays for jobs, writes
 * and everything else), within these. */
#define CATALOG_READERS_MIN 1
#define CATALOG_READERS_MAX 8
#define CATALOG_PROGRESS_OPS 1000 /* VM instructions between two looks at the clock */

/* One sqlite3 connection, opened without SQLite's own mutex: every public
 * function holds lock for as long as it touches db (CATALOG_LOCK), and every
 * statement is prepared, stepped and finalized inside that one call.
 *
 * Beside it, the history's reads (catalog_read_begin) run on read-only
 * connections: at most readers_max in use at once, the idle ones kept for
 * the next read. readers.lock guards the readers fields and budget_ms; it
 * is a leaf, never held across SQLite calls or with lock. */
struct catalog {
    pthread_mutex_t lock;
    bool lock_ready;
    sqlite3 *db;
    char *instance_id;
    char *path; /* the file (NULL in memory), for the read connections */
    struct {
        pthread_mutex_t lock;
        pthread_cond_t freed; /* a place became free */
        bool ready;
        sqlite3 *idle[CATALOG_READERS_MAX];
        size_t n_idle;
        size_t busy; /* places taken */
        size_t max;
        int64_t budget_ms; /* 0: none */
    } readers;
};

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
 * _cleanup_ statement (and before CATALOG_TX) so those are finalized while
 * the lock is still held. */
#define CATALOG_LOCK(cat)                                                                          \
    _cleanup_(catalog_unlockp) __attribute__((unused)) struct catalog *catalog_locked_ =           \
        catalog_lock(cat)

/* ---- SQLite errors (catalog.c) ---- */

/* Fill err with "<fmt...>: <SQLite's message for @db>" (sqlite3_errstr(@rc)
 * when @db is NULL) and return -1. @code ERR_OK translates @rc:
 * SQLITE_CONSTRAINT_UNIQUE and _PRIMARYKEY are ERR_CONFLICT, SQLITE_BUSY and
 * SQLITE_LOCKED (any extended form) ERR_UNAVAILABLE, everything else
 * ERR_INTERNAL; any other @code is used as given. Call it before anything
 * else runs on @db (a ROLLBACK replaces the message). */
int catalog_sqlite_err(sqlite3 *db, int rc, enum err_code code, struct err *err, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));

/* ---- transactions (catalog.c) ----
 *
 * Statements that must agree run in one transaction, begun and ended only
 * through these three calls (no BEGIN, COMMIT or ROLLBACK elsewhere):
 *
 *     CATALOG_LOCK(cat);
 *     CATALOG_TX(tx);
 *     if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
 *         thing_change_tx(cat, ..., err) < 0)
 *         return -1;                          (rolled back on the way out)
 *     return catalog_tx_commit(&tx, err);
 *
 * - CATALOG_TX_WRITE is BEGIN IMMEDIATE: the write lock is taken first, so a
 *   change that reads before it writes cannot fail half-way because another
 *   connection (a second envhub process, the sqlite3 shell) writes. Waiting
 *   for that writer is the busy timeout's (CATALOG_BUSY_TIMEOUT_MS); past it
 *   begin fails with ERR_UNAVAILABLE (SQLITE_BUSY) and nothing has changed.
 * - CATALOG_TX_READ is BEGIN (deferred): several SELECTs see one snapshot
 *   (WAL: writers go on). It has nothing to commit: it ends by rollback.
 * - Leaving the scope of CATALOG_TX without a commit rolls back, unless SQLite
 *   has already (SQLITE_FULL, SQLITE_IOERR, ...). The rollback runs after the
 *   error path filled err, as catalog_sqlite_err needs.
 * - A commit that fails (SQLITE_BUSY, SQLITE_FULL, ...) rolls back and fills
 *   err ("cannot commit a catalog transaction: ..."; BUSY is ERR_UNAVAILABLE).
 * - No nesting: begin on a connection already inside a transaction is
 *   refused (ERR_INTERNAL) and leaves that transaction alone. Functions that
 *   run inside their caller's transaction end in _tx and never begin one.
 * - Only CATALOG_LOCK's holder uses cat->db; a read-only connection of a
 *   thread's own (catalog_reader_open) needs no lock. */
enum catalog_tx_kind { CATALOG_TX_READ, CATALOG_TX_WRITE };

struct catalog_tx {
    sqlite3 *db; /* NULL: not begun, or ended */
};

/* Begin a transaction on @db into @tx (declared with CATALOG_TX). */
int catalog_tx_begin(struct catalog_tx *tx, sqlite3 *db, enum catalog_tx_kind kind,
                     struct err *err);
/* Commit; on failure roll back and fill err. @tx is ended either way. */
int catalog_tx_commit(struct catalog_tx *tx, struct err *err);
/* Roll back unless committed; for _cleanup_. */
void catalog_tx_end(struct catalog_tx *tx);

#define CATALOG_TX(name) _cleanup_(catalog_tx_end) struct catalog_tx name = {.db = NULL}

/* ---- read-only connections of their own (catalog.c) ----
 *
 * Reads that may visit many rows (the history's lists, searches, export and
 * statistics through catalog_read_begin below; verify) run on them, so that
 * they never hold cat->lock: WAL lets them read while the server writes.
 * Only a catalog in memory has no file to open twice; there they use the
 * shared connection under the lock. */

/* The file of @cat, or NULL for a catalog in memory. The caller frees it. */
char *catalog_file(struct catalog *cat);
/* A read-only connection to @path; the caller closes it (catalog_db_closep).
 * With @immutable_fallback, a file that cannot be opened for shared reading
 * (a copy in a read-only folder, without its -shm) is opened as immutable.
 * ERR_UNAVAILABLE when it cannot be opened or read. */
int catalog_reader_open(const char *path, bool immutable_fallback, sqlite3 **ret, struct err *err);

static inline void catalog_db_closep(sqlite3 **db)
{
    sqlite3_close(*db); /* NULL is a no-op */
}

/* ---- the history's reads: pooled read-only connections with a time budget
 * (catalog.c) ----
 *
 *     CATALOG_READ(rd);
 *     if (catalog_read_begin(cat, &rd, CATALOG_READ_POOLED, err) < 0)
 *         return -1;
 *     if (query_on(rd.db, ..., err) < 0)
 *         return catalog_read_fail(&rd, err);
 *     return 0;                               (rd.db goes back to the pool)
 *
 * - rd.db is a read-only connection no other thread uses until the read
 *   ends. Each statement starts its own snapshot (the connection holds no
 *   transaction between reads), so it sees every write committed before it.
 *   WAL: the writer on cat->db goes on meanwhile, and cat->lock is not held.
 * - CATALOG_READ_POOLED takes one of readers.max places, waiting for one
 *   for as long as the budget (or CATALOG_BUSY_TIMEOUT_MS without one), then
 *   ERR_BUSY. CATALOG_READ_OWN (an export, which keeps its connection for
 *   as long as its client reads) opens a connection of its own, outside the
 *   places, closed at the end.
 * - The budget (catalog_set_query_budget) starts once the connection is
 *   there and is checked every CATALOG_PROGRESS_OPS VM instructions by
 *   SQLite's progress handler:
 *   past it the statement fails with SQLITE_INTERRUPT, and
 *   catalog_read_fail() turns that into ERR_UNPROCESSABLE, telling the caller
 *   to narrow the filter. catalog_read_arm() starts a new budget (an export's
 *   next batch).
 * - A catalog in memory has no file to open twice: rd.db is cat->db, under
 *   cat->lock until the read ends, with the same budget. */
enum catalog_read_kind { CATALOG_READ_POOLED, CATALOG_READ_OWN };

struct catalog_read {
    struct catalog *cat;
    sqlite3 *db;  /* NULL: not begun, or ended */
    bool locked;  /* in memory: db is cat->db and cat->lock is held */
    bool placed;  /* holds one of the readers' places */
    bool expired; /* the progress handler stopped a statement */
    int64_t budget_ms;
    int64_t deadline_us; /* CLOCK_MONOTONIC */
};

int catalog_read_begin(struct catalog *cat, struct catalog_read *rd, enum catalog_read_kind kind,
                       struct err *err);
/* Start the budget again from now. */
void catalog_read_arm(struct catalog_read *rd);
/* After a failure on rd->db: when the budget stopped it, replace err with
 * the budget's error (ERR_UNPROCESSABLE). Returns -1. */
int catalog_read_fail(struct catalog_read *rd, struct err *err);
/* End the read: the connection back to the pool (or closed), the place and
 * the lock let go. For _cleanup_; a read not begun is fine. */
void catalog_read_end(struct catalog_read *rd);

#define CATALOG_READ(name) _cleanup_(catalog_read_end) struct catalog_read name = {.db = NULL}

/* ---- migrations (migrate.c) ---- */

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
 * migration not yet recorded there runs in its own write transaction
 * (CATALOG_TX_WRITE), which also records it; on failure that transaction is
 * rolled back, the migrations before it stay applied and err names the
 * migration with SQLite's message (ERR_INTERNAL; ERR_UNAVAILABLE when the
 * database is busy or locked). A migration may not begin, commit or roll back
 * a transaction itself. Foreign key enforcement is off while a migration runs
 * (so that tables can be rebuilt) and restored afterwards; a migration that
 * leaves a foreign key violation fails.
 *
 * @db must not be inside a transaction. Not thread-safe: the caller owns @db. */
int catalog_migrate_db(sqlite3 *db, const struct embedded_file *files, struct err *err);

/* The highest version recorded in schema_migrations; 0 when the table is
 * missing or empty. */
int catalog_migrate_version(sqlite3 *db, int *ret, struct err *err);

/* ---- statements ---- */

static inline void stmt_finalizep(sqlite3_stmt **st)
{
    sqlite3_finalize(*st); /* NULL is a no-op */
}

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

/* A sha256 kept in a char[65]: at most its 64 characters. */
static inline void bind_hex(struct binder *b, const char *hex)
{
    bind_text_n(b, hex, strnlen(hex, SHA256_HEX_MAX));
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

/* A sha256 column into a char[65]: at most 64 characters, "" for NULL. */
static inline void column_hex(sqlite3_stmt *st, int col, char out[SHA256_HEX_MAX + 1])
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;

    if (n > SHA256_HEX_MAX)
        n = SHA256_HEX_MAX;
    if (n)
        memcpy(out, t, n);
    out[n] = '\0';
}

/* ---- names of enum values, as stored ---- */

/* @names[@v] of a table of @n names; "unknown" out of range. */
static inline const char *name_of(const char *const *names, size_t n, unsigned v)
{
    return v < n ? names[v] : "unknown";
}

/* The index of @name in a table of @n names; -1 when it is not there (or NULL). */
static inline int name_index(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

/* ---- arrays ---- */

/* Make room for one more element of @size in *v (holding @n of *cap). */
static inline void *array_grow(void *v, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return v;
    *cap = *cap ? 2 * *cap : 16;
    return xrealloc(v, *cap * size);
}

/* Append a zeroed element to the array @a points to (a struct with members
 * v, n and cap) and return it; @a is evaluated more than once. */
#define ARRAY_PUSH(a)                                                                              \
    __extension__({                                                                                \
        (a)->v = array_grow((a)->v, (a)->n, &(a)->cap, sizeof(*(a)->v));                           \
        memset(&(a)->v[(a)->n], 0, sizeof(*(a)->v));                                               \
        &(a)->v[(a)->n++];                                                                         \
    })

/* Release each of the @n elements of array @v with @release (which takes a
 * pointer to one), then free @v; NULL is fine. */
#define ARRAY_FREE(v, n, release)                                                                  \
    do {                                                                                           \
        for (size_t i_ = 0; (v) && i_ < (n); i_++)                                                 \
            release(&(v)[i_]);                                                                     \
        free(v);                                                                                   \
    } while (0)

/* ---- executions (executions.c) ---- */

/* Neither queued nor running: the status of a row in the audit chain. */
bool exec_status_is_final(const char *status);
/* Prepare @sql, a SELECT of one execution "WHERE id = ?", bind @id and step
 * to its row (*ret, which the caller finalizes). ERR_NOT_FOUND ("execution
 * '@id' not found") when there is none. */
int execution_select_by_id(sqlite3 *db, const char *sql, const char *id, sqlite3_stmt **ret,
                           struct err *err);
/* Inside a transaction (or under the lock): fill @rec->files with the file
 * manifest of execution @seq, by direction, then path. */
int execution_files_load(sqlite3 *db, int64_t seq, struct execution_record *rec, struct err *err);

/* ---- storage (storage.c) ---- */

/* Inside the transaction that finishes execution @seq: add the bytes of its
 * stored stdout and stderr to its principal's output_usage of the UTC day it
 * finished. */
int output_usage_add_tx(struct catalog *cat, int64_t seq, struct err *err);
/* The statements of the budget and of retention, NULL-terminated, for the
 * query plan test. */
extern const char *const catalog_storage_sql[];

/* ---- change events (keys.c) ---- */

/* Inside the transaction of the change it records: one row of events. */
int catalog_event_insert_tx(struct catalog *cat, int64_t at, const char *principal,
                            const char *action, const char *subject, const char *detail,
                            struct err *err);

/* ---- the audit chain (chain.c) ---- */

#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"

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

/* history_chain_tx for many rows of one transaction, its statements prepared
 * once: new, add each row (in the order they become final), free. */
struct history_chain;
struct history_chain *history_chain_new(sqlite3 *db);
int history_chain_add(struct history_chain *c, int64_t seq, struct err *err);
void history_chain_free(struct history_chain *c); /* NULL is fine */
static inline void history_chain_freep(struct history_chain **c)
{
    history_chain_free(*c);
}

/* The columns a link is computed from, in this order (canon_row reads them
 * by these numbers). */
#define CANON_COLUMNS                                                                              \
    "chain_seq, seq, id, environment, environment_version, image, image_id, principal,"            \
    " client_addr, code, timeout_s, status, exit_code, error, queued_at, started_at,"              \
    " finished_at, recorded_at, duration_ms, stdout, stdout_truncated, stderr,"                    \
    " stderr_truncated, session_id, limits, code_sha256, chain_hash, stdout_sha256,"               \
    " stderr_sha256"

enum {
    CC_CHAIN_SEQ,
    CC_SEQ,
    CC_ID,
    CC_ENVIRONMENT,
    CC_ENVIRONMENT_VERSION,
    CC_IMAGE,
    CC_IMAGE_ID,
    CC_PRINCIPAL,
    CC_CLIENT_ADDR,
    CC_CODE,
    CC_TIMEOUT_S,
    CC_STATUS,
    CC_EXIT_CODE,
    CC_ERROR,
    CC_QUEUED_AT,
    CC_STARTED_AT,
    CC_FINISHED_AT,
    CC_RECORDED_AT,
    CC_DURATION_MS,
    CC_STDOUT,
    CC_STDOUT_TRUNCATED,
    CC_STDERR,
    CC_STDERR_TRUNCATED,
    CC_SESSION_ID,
    CC_LIMITS,
    CC_CODE_SHA256,
    CC_CHAIN_HASH,
    CC_STDOUT_SHA256, /* set when retention dropped the output: its digest */
    CC_STDERR_SHA256,
};

/* One execution's files, in the order the serialisation lists them. */
#define CANON_FILES_SQL                                                                            \
    "SELECT direction, path, size, sha256 FROM execution_files WHERE execution_seq = ?"            \
    " ORDER BY direction, path"
/* The files of a range of executions, for canon_files.merge. */
#define MERGE_FILES_SQL                                                                            \
    "SELECT direction, path, size, sha256, execution_seq FROM execution_files"                     \
    " WHERE execution_seq BETWEEN ?1 AND ?2 ORDER BY execution_seq, direction, path"

/* Where canon_row finds an execution's files: @lookup (CANON_FILES_SQL)
 * one execution at a time, or, when @merge is set, a cursor over the files
 * of a range of executions in (execution_seq, direction, path) order
 * (MERGE_FILES_SQL), read alongside rows that come in nearly the same order:
 * a row behind the cursor falls back to the lookup. */
struct canon_files {
    sqlite3_stmt *lookup;
    sqlite3_stmt *merge;
    int merge_rc;   /* of its last step: SQLITE_ROW while it holds a file */
    int64_t merged; /* the highest execution the cursor has served */
};

/* Append to @out: @prev_hex (the previous link's hash, 64 characters), then
 * the canonical serialisation of the current row of @row (CANON_COLUMNS) at
 * chain position @chain_seq, with its files from @files. @fbuf is scratch.
 * The code's sha256 is left in @code_hex. The hash of @out is the link. */
int canon_row(sqlite3 *db, sqlite3_stmt *row, struct canon_files *files, int64_t chain_seq,
              const char *prev_hex, struct buf *out, struct buf *fbuf, char code_hex[65],
              struct err *err);

/* For the unit tests. The canonical serialisation of execution @seq of @db
 * as it would be hashed at chain position @chain_seq, appended to @out. */
int history_canonical(sqlite3 *db, int64_t seq, int64_t chain_seq, struct buf *out,
                      struct err *err);

/* ---- the history query (history.c) ---- */

/* ERR_INVALID when @f is not consistent (a version without environment, an
 * unknown status). */
int history_filter_check(const struct history_filter *f, struct err *err);

/* The SQL the query API issues for @f: HISTORY_SQL_PAGE (a page or an
 * export batch, below a cursor) or HISTORY_SQL_STATS (grouped by @group),
 * written to @out. */
enum history_sql_kind { HISTORY_SQL_PAGE, HISTORY_SQL_STATS };
void history_sql(const struct history_filter *f, int group, enum history_sql_kind kind,
                 struct buf *out);
/* Prepare history_sql(@f...) on @db and bind @f, @before_seq and @limit
 * (pages only) into *ret, which the caller finalizes. */
int history_query_prepare(sqlite3 *db, const struct history_filter *f, int64_t before_seq,
                          int64_t limit, int group, enum history_sql_kind kind, sqlite3_stmt **ret,
                          struct err *err);

/* The other statements that read or delete many rows, NULL-terminated, for
 * the query plan test: the chain's (chain.c) and verify's and prune's
 * (verify.c). */
extern const char *const history_chain_sql[];
extern const char *const history_verify_sql[];

#endif

/* catalog/verify.c - verification of the audit chain and retention.
 *
 * Verify walks the links from the newest checkpoint (or the genesis) to the
 * head, recomputing each from its row (canon_row, chain.c), in batches on
 * read-only connections of their own with up to two threads; a broken chain
 * is a result (the first link that does not hold, and why), not an error.
 * Prune deletes the oldest links in transactions of a batch each, after
 * verifying what it deletes, and records the cut as a checkpoint so that
 * verify can start after it: a prune never launders a broken chain. */
#include "catalog/catalog.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog_internal.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define HISTORY_VERIFY_BATCH 4096 /* links per verify batch */
#define HISTORY_VERIFY_THREADS 2
#define HISTORY_PRUNE_BATCH 10000 /* rows per prune transaction */
#define HISTORY_SCHEMA_MIN 9      /* session_id (0006), limits (0007), pruned digests (0009) */

/* ---- verification ---- */

#define VERIFY_ROWS_SQL                                                                            \
    "SELECT " CANON_COLUMNS " FROM executions WHERE chain_seq >= ?1 AND chain_seq <= ?2"           \
    " ORDER BY chain_seq"
#define VERIFY_PREV_SQL                                                                            \
    "SELECT chain_seq, chain_hash FROM executions WHERE chain_seq < ?1 AND chain_seq > ?2"         \
    " ORDER BY chain_seq DESC LIMIT 1"
#define VERIFY_SPAN_SQL                                                                            \
    "SELECT min(seq), max(seq) FROM executions WHERE chain_seq BETWEEN ?1 AND ?2"
#define VERIFY_BEYOND_SQL                                                                          \
    "SELECT id, chain_seq FROM executions WHERE chain_seq > ? ORDER BY chain_seq LIMIT 1"
#define VERIFY_UNCHAINED_SQL                                                                       \
    "SELECT id FROM executions WHERE chain_seq IS NULL AND status NOT IN ('queued', 'running')"    \
    " ORDER BY seq LIMIT 1"
#define CHECKPOINT_SQL                                                                             \
    "SELECT chain_seq, chain_hash, before, created_at, pruned FROM history_checkpoints"            \
    " ORDER BY chain_seq DESC, id DESC LIMIT 1"
#define PRUNE_CUT_SQL                                                                              \
    "SELECT chain_seq FROM executions WHERE chain_seq > ?1 AND (finished_at IS NULL"               \
    " OR finished_at >= ?2) ORDER BY chain_seq LIMIT 1"
#define PRUNE_DELETE_SQL "DELETE FROM executions WHERE chain_seq > ?1 AND chain_seq <= ?2"

const char *const history_verify_sql[] = {
    VERIFY_ROWS_SQL,      VERIFY_PREV_SQL, VERIFY_SPAN_SQL, MERGE_FILES_SQL,  VERIFY_BEYOND_SQL,
    VERIFY_UNCHAINED_SQL, CHECKPOINT_SQL,  PRUNE_CUT_SQL,   PRUNE_DELETE_SQL, NULL,
};

/* The first failure found in a range of links. */
struct verify_bad {
    int64_t seq; /* INT64_MAX: none */
    char id[64];
    char reason[200];
};

/* What a whole walk shares between its threads. */
struct verify_walk {
    pthread_mutex_t lock;
    const char *path;   /* each thread opens it read-only; NULL: shared_db alone */
    sqlite3 *shared_db; /* a catalog in memory: cat->db, its lock held by the caller */
    int64_t from, to;   /* links to check */
    int64_t cp_seq;     /* the checkpoint (0 and the genesis hash: none) */
    char cp_hash[65];
    int64_t next; /* the next batch's first link */
    int64_t checked;
    struct verify_bad bad;
    bool failed; /* a read failed: err says why */
    struct err err;
};

static void bad_set(struct verify_bad *bad, int64_t seq, const unsigned char *id, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

static void bad_set(struct verify_bad *bad, int64_t seq, const unsigned char *id, const char *fmt,
                    ...)
{
    va_list ap;
    bad->seq = seq;
    snprintf(bad->id, sizeof(bad->id), "%s", id ? (const char *)id : "");
    va_start(ap, fmt);
    vsnprintf(bad->reason, sizeof(bad->reason), fmt, ap);
    va_end(ap);
}

/* A row whose output retention dropped holds "" and the stored digests;
 * text put back in its place must be the text that was dropped. The name
 * of the first stream that differs, or NULL. */
static const char *pruned_text_differs(sqlite3_stmt *row)
{
    static const struct {
        const char *name;
        int text, stored;
    } streams[] = {{"stdout", CC_STDOUT, CC_STDOUT_SHA256},
                   {"stderr", CC_STDERR, CC_STDERR_SHA256}};

    for (size_t i = 0; i < ARRAY_SIZE(streams); i++) {
        char stored[65], hex[65];
        int n = sqlite3_column_bytes(row, streams[i].text);
        if (sqlite3_column_type(row, streams[i].stored) == SQLITE_NULL || n == 0)
            continue;
        column_hex(row, streams[i].stored, stored);
        sha256_hex(sqlite3_column_blob(row, streams[i].text), (size_t)n, hex);
        if (strcmp(stored, hex) != 0)
            return streams[i].name;
    }
    return NULL;
}

/* Check links [a, b] on @db: each row's chain_seq follows the previous,
 * its code matches code_sha256, and sha256(previous hash || canonical row)
 * is its chain_hash. The previous of @a is the newest link before it (or
 * the checkpoint). Stops at the first failure (*bad). *ret_last_seq and
 * ret_last_hash: the last link seen. */
static int verify_range(sqlite3 *db, int64_t a, int64_t b, int64_t cp_seq, const char *cp_hash,
                        struct verify_bad *bad, int64_t *ret_checked, int64_t *ret_last_seq,
                        char ret_last_hash[65], struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *prev_st = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *rows = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *files = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *span = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *merge = NULL;
    _cleanup_(buf_release) struct buf ser = BUF_INIT(BUF_UNLIMITED);
    _cleanup_(buf_release) struct buf fbuf = BUF_INIT(BUF_UNLIMITED);
    struct canon_files src = {0};
    char prev[65], hash[65], code_hex[65];
    int64_t prev_seq = cp_seq, checked = 0;
    int rc;

    memcpy(prev, cp_hash, 65);
    bad->seq = INT64_MAX;
    rc = sqlite3_prepare_v2(db, VERIFY_PREV_SQL, -1, &prev_st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, VERIFY_ROWS_SQL, -1, &rows, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, CANON_FILES_SQL, -1, &files, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(prev_st, 1, a);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(prev_st, 2, cp_seq);
    if (rc == SQLITE_OK && a > cp_seq + 1) {
        rc = sqlite3_step(prev_st);
        if (rc == SQLITE_ROW) {
            prev_seq = sqlite3_column_int64(prev_st, 0);
            column_hex(prev_st, 1, prev);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(rows, 1, a);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(rows, 2, b);
    src.lookup = files;
    /* links follow insertion closely: the range's files in one ordered
     * read, unless the range spreads over far more rows than it holds */
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, VERIFY_SPAN_SQL, -1, &span, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(span, 1, a);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(span, 2, b);
    if (rc == SQLITE_OK && (rc = sqlite3_step(span)) == SQLITE_ROW) {
        int64_t lo = sqlite3_column_int64(span, 0), hi = sqlite3_column_int64(span, 1);
        rc = SQLITE_OK;
        if (sqlite3_column_type(span, 0) != SQLITE_NULL && hi - lo <= 4 * (b - a + 1)) {
            rc = sqlite3_prepare_v2(db, MERGE_FILES_SQL, -1, &merge, NULL);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(merge, 1, lo);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(merge, 2, hi);
            if (rc == SQLITE_OK) {
                src.merge = merge;
                src.merged = lo - 1;
                src.merge_rc = sqlite3_step(merge);
                if (src.merge_rc != SQLITE_ROW && src.merge_rc != SQLITE_DONE)
                    rc = src.merge_rc;
            }
        }
    }
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(rows);
        if (rc != SQLITE_ROW)
            break;
        int64_t cs = sqlite3_column_int64(rows, CC_CHAIN_SEQ);
        const unsigned char *id = sqlite3_column_text(rows, CC_ID);
        if (cs != prev_seq + 1) {
            if (cs <= prev_seq)
                bad_set(bad, cs, id, "link %lld appears twice", (long long)cs);
            else
                bad_set(bad, cs, id,
                        "link %lld follows link %lld: %lld execution%s missing or moved before it",
                        (long long)cs, (long long)prev_seq, (long long)(cs - prev_seq - 1),
                        cs - prev_seq - 1 == 1 ? " is" : "s are");
            break;
        }
        buf_reset(&ser);
        if (canon_row(db, rows, &src, cs, prev, &ser, &fbuf, code_hex, err) < 0)
            return -1;
        char stored_code[65];
        column_hex(rows, CC_CODE_SHA256, stored_code);
        if (strcmp(stored_code, code_hex) != 0) {
            bad_set(bad, cs, id, "its code does not match its code_sha256");
            break;
        }
        const char *dropped = pruned_text_differs(rows);
        if (dropped) {
            bad_set(bad, cs, id, "its %s does not match the %s_sha256 kept when it was pruned",
                    dropped, dropped);
            break;
        }
        sha256_hex(ser.data, ser.len, hash);
        column_hex(rows, CC_CHAIN_HASH, prev);
        if (strcmp(hash, prev) != 0) {
            bad_set(bad, cs, id,
                    "its chain hash does not match its fields and the link before it (edited, "
                    "or rows around it were removed or reordered)");
            break;
        }
        prev_seq = cs;
        checked++;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the audit chain");
    *ret_checked = checked;
    *ret_last_seq = prev_seq;
    memcpy(ret_last_hash, prev, 65);
    return 0;
}

/* One batch of a walk, in one read transaction (or under cat->lock). */
static int verify_batch(struct verify_walk *w, sqlite3 *db, int64_t a, int64_t b,
                        struct verify_bad *bad, int64_t *ret_checked, int64_t *ret_last_seq,
                        char ret_last_hash[65], struct err *err)
{
    CATALOG_TX(tx);

    if (catalog_tx_begin(&tx, db, CATALOG_TX_READ, err) < 0)
        return err_prefix(err, "cannot read the audit chain");
    return verify_range(db, a, b, w->cp_seq, w->cp_hash, bad, ret_checked, ret_last_seq,
                        ret_last_hash, err);
}

static void *verify_worker(void *arg)
{
    struct verify_walk *w = arg;
    _cleanup_(catalog_db_closep) sqlite3 *own = NULL;
    struct err err = ERR_INIT;
    sqlite3 *db = w->shared_db;

    if (w->path) {
        if (catalog_reader_open(w->path, true, &own, &err) < 0)
            goto failed;
        db = own;
    }
    for (;;) {
        struct verify_bad bad;
        int64_t a, b, checked = 0, last_seq;
        char last_hash[65];
        int r;

        pthread_mutex_lock(&w->lock);
        a = w->next;
        if (a > w->to || a >= w->bad.seq || w->failed) {
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        b = a + HISTORY_VERIFY_BATCH - 1 < w->to ? a + HISTORY_VERIFY_BATCH - 1 : w->to;
        w->next = b + 1;
        pthread_mutex_unlock(&w->lock);

        r = verify_batch(w, db, a, b, &bad, &checked, &last_seq, last_hash, &err);
        if (r < 0)
            goto failed;
        /* the last batch must end on the head: links gone from the end have
         * no row after them to show the gap */
        if (bad.seq == INT64_MAX && b == w->to && last_seq != w->to)
            bad_set(&bad, last_seq + 1, NULL,
                    "links %lld to %lld are missing: the newest executions were removed",
                    (long long)(last_seq + 1), (long long)w->to);
        pthread_mutex_lock(&w->lock);
        w->checked += checked;
        if (bad.seq < w->bad.seq)
            w->bad = bad;
        pthread_mutex_unlock(&w->lock);
    }

failed:
    pthread_mutex_lock(&w->lock);
    if (!w->failed) {
        w->failed = true;
        err_copy(&w->err, &err);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* The head, checkpoint and the checks that need one snapshot: rows beyond
 * the head, final rows outside the chain. */
static int verify_start(sqlite3 *db, struct history_verify *v, struct verify_bad *extra,
                        struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *head = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *cp = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *beyond = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *unchained = NULL;
    int rc;

    extra->seq = INT64_MAX;
    rc = sqlite3_prepare_v2(db, "SELECT chain_seq, chain_hash FROM history_head WHERE id = 1", -1,
                            &head, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(head);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_INVALID, "the catalog has no audit chain head");
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the audit chain");
    v->head_seq = sqlite3_column_int64(head, 0);
    column_hex(head, 1, v->head_hash);

    rc = sqlite3_prepare_v2(db, CHECKPOINT_SQL, -1, &cp, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(cp);
    if (rc == SQLITE_ROW) {
        v->has_checkpoint = true;
        v->checkpoint_seq = sqlite3_column_int64(cp, 0);
        column_hex(cp, 1, v->checkpoint_hash);
        v->checkpoint_before = sqlite3_column_int64(cp, 2);
        v->checkpoint_at = sqlite3_column_int64(cp, 3);
        v->checkpoint_pruned = sqlite3_column_int64(cp, 4);
        rc = SQLITE_DONE;
    } else {
        memcpy(v->checkpoint_hash, GENESIS_HASH, 65);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the audit checkpoints");

    rc = sqlite3_prepare_v2(db, VERIFY_BEYOND_SQL, -1, &beyond, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(beyond, 1, v->head_seq);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(beyond);
    if (rc == SQLITE_ROW) {
        bad_set(extra, sqlite3_column_int64(beyond, 1), sqlite3_column_text(beyond, 0),
                "link %lld is beyond the head of the chain (%lld)",
                (long long)sqlite3_column_int64(beyond, 1), (long long)v->head_seq);
        return 0;
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the audit chain");

    rc = sqlite3_prepare_v2(db, VERIFY_UNCHAINED_SQL, -1, &unchained, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(unchained);
    if (rc == SQLITE_ROW) {
        bad_set(extra, 0, sqlite3_column_text(unchained, 0),
                "it is final but not in the chain (start the server once to chain executions "
                "recorded before the chain existed)");
        return 0;
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the audit chain");
    return 0;
}

/* verify_start in a read transaction of its own. */
static int verify_head(sqlite3 *db, struct history_verify *v, struct verify_bad *extra,
                       struct err *err)
{
    CATALOG_TX(tx);

    if (catalog_tx_begin(&tx, db, CATALOG_TX_READ, err) < 0)
        return err_prefix(err, "cannot read the audit chain");
    return verify_start(db, v, extra, err);
}

/* Verify on @db (the start), with worker connections on @path, or on @db
 * alone when @path is NULL (the caller holds what @db needs). */
static int verify_on(sqlite3 *db, const char *path, struct history_verify *ret, struct err *err)
{
    struct history_verify v = {0};
    struct verify_bad extra;
    struct verify_walk w = {.path = path, .shared_db = path ? NULL : db, .bad = {.seq = INT64_MAX}};
    int rc;

    if (verify_head(db, &v, &extra, err) < 0)
        return -1;

    w.cp_seq = v.has_checkpoint ? v.checkpoint_seq : 0;
    memcpy(w.cp_hash, v.checkpoint_hash, 65);
    w.from = w.cp_seq + 1;
    w.to = v.head_seq;
    w.next = w.from;
    if (w.to < w.cp_seq) {
        bad_set(&w.bad, 0, NULL, "the head (link %lld) is before the checkpoint (link %lld)",
                (long long)w.to, (long long)w.cp_seq);
    } else if (w.to == w.cp_seq) {
        if (strcmp(v.head_hash, w.cp_hash) != 0)
            bad_set(&w.bad, 0, NULL, "the head hash differs from the checkpoint's at link %lld",
                    (long long)w.to);
    } else {
        int threads = 1;
        if (path && w.to - w.from + 1 > HISTORY_VERIFY_BATCH) {
            long cpus = sysconf(_SC_NPROCESSORS_ONLN);
            threads = cpus > 1 ? HISTORY_VERIFY_THREADS : 1;
        }
        pthread_t tids[HISTORY_VERIFY_THREADS];
        int started = 0;
        pthread_mutex_init(&w.lock, NULL);
        for (int i = 1; i < threads; i++)
            if (pthread_create(&tids[started], NULL, verify_worker, &w) == 0)
                started++;
        verify_worker(&w);
        for (int i = 0; i < started; i++)
            pthread_join(tids[i], NULL);
        pthread_mutex_destroy(&w.lock);
        if (w.failed) {
            err_copy(err, &w.err);
            return -1;
        }
        /* the last link must be the head itself */
        if (w.bad.seq == INT64_MAX) {
            _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
            rc = sqlite3_prepare_v2(db, "SELECT chain_hash, id FROM executions WHERE chain_seq = ?",
                                    -1, &st, NULL);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 1, w.to);
            if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) {
                char h[65];
                column_hex(st, 0, h);
                if (strcmp(h, v.head_hash) != 0)
                    bad_set(&w.bad, w.to, sqlite3_column_text(st, 1),
                            "its chain hash differs from the head's");
            } else if (rc != SQLITE_DONE) {
                return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the audit chain");
            }
        }
    }
    v.count = w.checked;
    if (w.bad.seq == INT64_MAX && extra.seq != INT64_MAX)
        w.bad = extra;
    v.ok = w.bad.seq == INT64_MAX;
    if (!v.ok) {
        snprintf(v.first_bad_id, sizeof(v.first_bad_id), "%s", w.bad.id);
        v.first_bad_seq = w.bad.seq;
        snprintf(v.reason, sizeof(v.reason), "%s", w.bad.reason);
    }
    *ret = v;
    return 0;
}

int catalog_history_verify(struct catalog *cat, struct history_verify *ret, struct err *err)
{
    _cleanup_free_ char *path = catalog_file(cat);
    _cleanup_(catalog_db_closep) sqlite3 *db = NULL;

    if (path) {
        if (catalog_reader_open(path, false, &db, err) < 0)
            return -1;
        return verify_on(db, path, ret, err);
    }
    CATALOG_LOCK(cat);
    return verify_on(cat->db, NULL, ret, err);
}

int catalog_history_verify_file(const char *path, struct history_verify *ret, struct err *err)
{
    _cleanup_(catalog_db_closep) sqlite3 *db = NULL;
    int version = 0;

    if (access(path, R_OK) < 0)
        return err_errno(err, ERR_UNAVAILABLE, errno, "cannot open catalog '%s'", path);
    if (catalog_reader_open(path, true, &db, err) < 0)
        return -1;
    if (catalog_migrate_version(db, &version, err) < 0)
        return err_prefix(err, "cannot read catalog '%s'", path);
    if (version < 4)
        return err_set(err, ERR_INVALID,
                       "catalog '%s' has no audit chain: its schema is at version %d (the chain "
                       "came with 4; `envhub migrate` upgrades it)",
                       path, version);
    if (version < HISTORY_SCHEMA_MIN) /* the serialisation reads columns of later migrations */
        return err_set(err, ERR_INVALID,
                       "catalog '%s' is at schema version %d, older than this envhub reads (%d): "
                       "`envhub migrate` a copy of it first",
                       path, version, HISTORY_SCHEMA_MIN);
    if (verify_on(db, path, ret, err) < 0)
        return err_prefix(err, "catalog '%s'", path);
    return 0;
}

/* ---- retention ---- */

/* One prune transaction: up to HISTORY_PRUNE_BATCH links after the
 * checkpoint whose executions all finished before @before. *ret_done when
 * nothing is left to cut. */
static int prune_batch(struct catalog *cat, int64_t before, int64_t now, int64_t *checkpoint_id,
                       struct history_prune *res, bool *ret_done, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct history_verify v = {0};
    struct verify_bad extra, bad;
    int64_t cp_seq, cut, end, checked = 0, last_seq;
    char last_hash[65];
    struct binder b;
    int rc;

    if (verify_start(cat->db, &v, &extra, err) < 0)
        return -1;
    cp_seq = v.has_checkpoint ? v.checkpoint_seq : 0;

    rc = sqlite3_prepare_v2(cat->db, PRUNE_CUT_SQL, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, cp_seq);
        bind_int64(&b, before);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        cut = sqlite3_column_int64(st, 0) - 1;
    else if (rc == SQLITE_DONE)
        cut = v.head_seq;
    else
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot find where to prune");
    sqlite3_finalize(st);
    st = NULL;

    end = cut < cp_seq + HISTORY_PRUNE_BATCH ? cut : cp_seq + HISTORY_PRUNE_BATCH;
    if (end <= cp_seq) {
        *ret_done = true;
        return 0;
    }
    /* what is deleted must hold up: a prune never launders a broken chain */
    if (verify_range(cat->db, cp_seq + 1, end, cp_seq, v.checkpoint_hash, &bad, &checked, &last_seq,
                     last_hash, err) < 0)
        return -1;
    if (bad.seq != INT64_MAX)
        return err_set(err, ERR_CONFLICT,
                       "the audit chain is broken at execution '%s' (link %lld: %s); prune "
                       "deletes nothing until `envhub audit verify` passes",
                       bad.id, (long long)bad.seq, bad.reason);
    if (last_seq != end)
        return err_set(err, ERR_CONFLICT,
                       "the audit chain is broken: link %lld is missing; prune deletes nothing "
                       "until `envhub audit verify` passes",
                       (long long)(last_seq + 1));

    rc = sqlite3_prepare_v2(cat->db, PRUNE_DELETE_SQL, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, cp_seq);
        bind_int64(&b, end);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot delete pruned executions");
    int64_t deleted = sqlite3_changes(cat->db);
    sqlite3_finalize(st);
    st = NULL;

    res->pruned += deleted;
    res->checkpoint_seq = end;
    memcpy(res->checkpoint_hash, last_hash, 65);
    if (*checkpoint_id == 0)
        rc = sqlite3_prepare_v2(cat->db,
                                "INSERT INTO history_checkpoints (created_at, before, chain_seq,"
                                " chain_hash, pruned) VALUES (?, ?, ?, ?, ?)",
                                -1, &st, NULL);
    else
        rc = sqlite3_prepare_v2(cat->db,
                                "UPDATE history_checkpoints SET created_at = ?, before = ?,"
                                " chain_seq = ?, chain_hash = ?, pruned = ? WHERE id = ?",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, now);
        bind_int64(&b, before);
        bind_int64(&b, end);
        bind_text(&b, res->checkpoint_hash);
        bind_int64(&b, res->pruned);
        if (*checkpoint_id)
            bind_int64(&b, *checkpoint_id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot record the prune checkpoint");
    if (*checkpoint_id == 0)
        *checkpoint_id = sqlite3_last_insert_rowid(cat->db);
    *ret_done = end == cut;
    return 0;
}

int catalog_history_prune(struct catalog *cat, int64_t before, int64_t now,
                          struct history_prune *ret, struct err *err)
{
    struct history_prune res = {0};
    int64_t checkpoint_id = 0;
    bool done = false;

    while (!done) {
        CATALOG_LOCK(cat);
        CATALOG_TX(tx);
        if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
            prune_batch(cat, before, now, &checkpoint_id, &res, &done, err) < 0 ||
            catalog_tx_commit(&tx, err) < 0)
            return -1;
    }
    if (res.pruned == 0) { /* nothing cut: report the checkpoint in place */
        CATALOG_LOCK(cat);
        _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(cat->db, CHECKPOINT_SQL, -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            res.checkpoint_seq = sqlite3_column_int64(st, 0);
            column_hex(st, 1, res.checkpoint_hash);
        } else if (rc == SQLITE_DONE) {
            memcpy(res.checkpoint_hash, GENESIS_HASH, 65);
        } else {
            return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read the checkpoints");
        }
    }
    *ret = res;
    return 0;
}

/* catalog/history.c - the execution history for auditors: filtered keyset
 * pages, export batches, statistics, and the tamper-evident chain with its
 * retention checkpoints (migrations/0004_history.sql).
 *
 * The chain: every execution that becomes final gets, in the transaction
 * that makes it final, chain_seq = head + 1 and chain_hash = hex sha256(the
 * previous link's chain_hash as 64 hex characters || the canonical
 * serialisation of the row at that position); history_head keeps the newest
 * link. The serialisation is built from the stored row alone (canon_row), by
 * the same code when a link is made and when it is verified, and README.md
 * ("History and audit") spells it out.
 *
 * Reads that may visit many rows (export, statistics, verify) run on
 * read-only connections of their own, so that they never hold cat->lock for
 * long: WAL lets them read while the server writes. Only a catalog in memory
 * has no file to open twice; there they use the shared connection under the
 * lock. */
#include "catalog/catalog.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog_internal.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define HISTORY_BUSY_TIMEOUT_MS 5000
#define HISTORY_VERIFY_BATCH 4096 /* links per verify batch */
#define HISTORY_VERIFY_THREADS 2
#define HISTORY_PRUNE_BATCH 10000 /* rows per prune transaction */
#define HISTORY_CANON_VERSION "envhub-chain-v1\n"
#define HISTORY_SCHEMA_MIN 7 /* session_id (0006) and limits (0007) are audited */
#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define DAY_MS 86400000LL
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- small helpers ---- */

static inline __attribute__((always_inline)) void put(struct buf *b, const void *p, size_t n)
{
    /* the verifier writes ~100 small pieces per row: copy while there is room */
    if (b->len + n < b->cap) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    if (buf_append(b, p, n) < 0) /* the buffers here have no limit: only OOM, which aborts */
        abort();
}

static inline void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Decimal without printf: the verifier writes a few dozen numbers per row. */
static inline void put_int(struct buf *b, int64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    put(b, tmp + i, sizeof(tmp) - i);
}

static void copy_hex(char out[65], const unsigned char *t, int n)
{
    size_t len = t && n > 0 ? (size_t)n : 0;
    if (len > 64)
        len = 64;
    if (len)
        memcpy(out, t, len);
    out[len] = '\0';
}

static void column_hex64(sqlite3_stmt *st, int col, char out[65])
{
    const unsigned char *t = sqlite3_column_text(st, col);
    copy_hex(out, t, t ? sqlite3_column_bytes(st, col) : 0);
}

static bool status_is_final(const char *status)
{
    return status && strcmp(status, "queued") != 0 && strcmp(status, "running") != 0;
}

void history_item_release(struct history_item *it)
{
    if (!it)
        return;
    execution_record_release(&it->rec);
    memset(it, 0, sizeof(*it));
}

void history_items_free(struct history_item *items, size_t n)
{
    if (!items)
        return;
    for (size_t i = 0; i < n; i++)
        history_item_release(&items[i]);
    free(items);
}

void history_stats_free(struct history_stat *stats, size_t n)
{
    if (!stats)
        return;
    for (size_t i = 0; i < n; i++)
        free(stats[i].key);
    free(stats);
}

/* ---- the canonical serialisation ---- */

/* The columns canon_row reads, in this order. */
#define CANON_COLUMNS                                                                              \
    "chain_seq, seq, id, environment, environment_version, image, image_id, principal,"            \
    " client_addr, code, timeout_s, status, exit_code, error, queued_at, started_at,"              \
    " finished_at, recorded_at, duration_ms, stdout, stdout_truncated, stderr,"                    \
    " stderr_truncated, session_id, limits, code_sha256, chain_hash"

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
};

/* The audited fields after the header and chain_seq, in order. A digest
 * field is written as the sha256 of the column's bytes. */
static const struct canon_field {
    const char *name;
    int col;
    bool digest;
} canon_fields[] = {
    {"seq", CC_SEQ, false},
    {"id", CC_ID, false},
    {"environment", CC_ENVIRONMENT, false},
    {"environment_version", CC_ENVIRONMENT_VERSION, false},
    {"image", CC_IMAGE, false},
    {"image_id", CC_IMAGE_ID, false},
    {"principal", CC_PRINCIPAL, false},
    {"client_addr", CC_CLIENT_ADDR, false},
    {"code_sha256", CC_CODE, true},
    {"timeout_s", CC_TIMEOUT_S, false},
    {"status", CC_STATUS, false},
    {"exit_code", CC_EXIT_CODE, false},
    {"error", CC_ERROR, false},
    {"queued_at", CC_QUEUED_AT, false},
    {"started_at", CC_STARTED_AT, false},
    {"finished_at", CC_FINISHED_AT, false},
    {"recorded_at", CC_RECORDED_AT, false},
    {"duration_ms", CC_DURATION_MS, false},
    {"stdout_sha256", CC_STDOUT, true},
    {"stdout_truncated", CC_STDOUT_TRUNCATED, false},
    {"stderr_sha256", CC_STDERR, true},
    {"stderr_truncated", CC_STDERR_TRUNCATED, false},
    {"session_id", CC_SESSION_ID, false},
    {"limits", CC_LIMITS, false},
};

#define CANON_FILES_SQL                                                                            \
    "SELECT direction, path, size, sha256 FROM execution_files WHERE execution_seq = ?"            \
    " ORDER BY direction, path"

static const char *const canon_file_fields[] = {"file.direction", "file.path", "file.size",
                                                "file.sha256"};

/* name "=" value "\n", the value written by its stored type: "null",
 * "i" decimal, "s" byte-length ":" bytes (TEXT), "r" %.17g (REAL), "b"
 * byte-length ":" bytes (BLOB). */
static void canon_value(struct buf *out, const char *name, sqlite3_stmt *st, int col)
{
    puts_(out, name);
    put(out, "=", 1);
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_NULL:
        puts_(out, "null");
        break;
    case SQLITE_INTEGER:
        put(out, "i", 1);
        put_int(out, sqlite3_column_int64(st, col));
        break;
    case SQLITE_FLOAT: {
        char tmp[40];
        int n = snprintf(tmp, sizeof(tmp), "r%.17g", sqlite3_column_double(st, col));
        put(out, tmp, (size_t)n);
        break;
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, col);
        int n = sqlite3_column_bytes(st, col);
        put(out, "b", 1);
        put_int(out, n);
        put(out, ":", 1);
        put(out, p, (size_t)n);
        break;
    }
    default: { /* SQLITE_TEXT */
        const unsigned char *t = sqlite3_column_text(st, col);
        int n = sqlite3_column_bytes(st, col);
        put(out, "s", 1);
        put_int(out, n);
        put(out, ":", 1);
        put(out, t, (size_t)n);
        break;
    }
    }
    put(out, "\n", 1);
}

/* name "=" ("null" | "s64:" hex sha256 of the column's bytes) "\n". The
 * digest is also left in @hex ("" for NULL). */
static void canon_digest(struct buf *out, const char *name, sqlite3_stmt *st, int col, char hex[65])
{
    puts_(out, name);
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        puts_(out, "=null\n");
        hex[0] = '\0';
        return;
    }
    const void *p = sqlite3_column_blob(st, col); /* the bytes, whatever the type */
    int n = sqlite3_column_bytes(st, col);
    if (n == 0) /* most stderr: its digest is known */
        memcpy(hex, EMPTY_SHA256, 65);
    else
        sha256_hex(p, (size_t)n, hex);
    puts_(out, "=s64:");
    put(out, hex, 64);
    put(out, "\n", 1);
}

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

#define MERGE_FILES_SQL                                                                            \
    "SELECT direction, path, size, sha256, execution_seq FROM execution_files"                     \
    " WHERE execution_seq BETWEEN ?1 AND ?2 ORDER BY execution_seq, direction, path"

/* The files of execution @seq as canonical lines into @fbuf; *ret_n. */
static int canon_files(sqlite3 *db, struct canon_files *src, int64_t seq, struct buf *fbuf,
                       int64_t *ret_n, struct err *err)
{
    sqlite3_stmt *st = src->lookup;
    int rc;

    *ret_n = 0;
    if (src->merge && seq > src->merged) {
        while (src->merge_rc == SQLITE_ROW && sqlite3_column_int64(src->merge, 4) < seq)
            src->merge_rc = sqlite3_step(src->merge);
        while (src->merge_rc == SQLITE_ROW && sqlite3_column_int64(src->merge, 4) == seq) {
            for (int c = 0; c < 4; c++)
                canon_value(fbuf, canon_file_fields[c], src->merge, c);
            (*ret_n)++;
            src->merge_rc = sqlite3_step(src->merge);
        }
        src->merged = seq;
        if (src->merge_rc == SQLITE_ROW || src->merge_rc == SQLITE_DONE)
            return 0;
        return catalog_sqlite_err(db, src->merge_rc, ERR_OK, err,
                                  "cannot read the files of execution %lld", (long long)seq);
    }
    sqlite3_reset(st);
    rc = sqlite3_bind_int64(st, 1, seq);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        for (int c = 0; c < 4; c++)
            canon_value(fbuf, canon_file_fields[c], st, c);
        (*ret_n)++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the files of execution %lld",
                                  (long long)seq);
    return 0;
}

/* Append to @out: @prev_hex (the previous link's hash, 64 characters), then
 * the canonical serialisation of the current row of @row (CANON_COLUMNS) at
 * chain position @chain_seq, with its files from @files. @fbuf is scratch.
 * The code's sha256 is left in @code_hex. */
static int canon_row(sqlite3 *db, sqlite3_stmt *row, struct canon_files *files, int64_t chain_seq,
                     const char *prev_hex, struct buf *out, struct buf *fbuf, char code_hex[65],
                     struct err *err)
{
    char hex[65] = "";
    int64_t n_files = 0;

    put(out, prev_hex, strlen(prev_hex));
    puts_(out, HISTORY_CANON_VERSION);
    puts_(out, "chain_seq=i");
    put_int(out, chain_seq);
    put(out, "\n", 1);
    for (size_t i = 0; i < ARRAY_SIZE(canon_fields); i++) {
        const struct canon_field *f = &canon_fields[i];
        if (f->digest)
            canon_digest(out, f->name, row, f->col, f->col == CC_CODE ? code_hex : hex);
        else
            canon_value(out, f->name, row, f->col);
    }

    buf_reset(fbuf);
    if (canon_files(db, files, sqlite3_column_int64(row, CC_SEQ), fbuf, &n_files, err) < 0)
        return -1;
    puts_(out, "files=i");
    put_int(out, n_files);
    put(out, "\n", 1);
    put(out, fbuf->data ? fbuf->data : "", fbuf->len);
    return 0;
}

int history_canonical(sqlite3 *db, int64_t seq, int64_t chain_seq, struct buf *out, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *row = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *files = NULL;
    _cleanup_(buf_release) struct buf ser = BUF_INIT(BUF_UNLIMITED);
    _cleanup_(buf_release) struct buf fbuf = BUF_INIT(BUF_UNLIMITED);
    char code_hex[65];
    int rc;

    rc = sqlite3_prepare_v2(db, "SELECT " CANON_COLUMNS " FROM executions WHERE seq = ?", -1, &row,
                            NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, CANON_FILES_SQL, -1, &files, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(row, 1, seq);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(row);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "execution %lld not found", (long long)seq);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read execution %lld",
                                  (long long)seq);
    struct canon_files src = {.lookup = files};
    if (canon_row(db, row, &src, chain_seq, "", &ser, &fbuf, code_hex, err) < 0)
        return -1;
    put(out, ser.data, ser.len);
    return 0;
}

/* ---- making links ---- */

/* Statements for chaining rows inside one write transaction, prepared on
 * first use and finalized together. */
struct chain_ctx {
    sqlite3 *db;
    sqlite3_stmt *row, *files, *head_get, *head_set, *link_set, *link_hash, *checkpoint;
    struct buf ser, fbuf;
};

#define CHAIN_CTX_INIT(d)                                                                          \
    {                                                                                              \
        .db = (d), .ser = BUF_INIT(BUF_UNLIMITED), .fbuf = BUF_INIT(BUF_UNLIMITED)                 \
    }

static void chain_ctx_release(struct chain_ctx *c)
{
    sqlite3_finalize(c->row);
    sqlite3_finalize(c->files);
    sqlite3_finalize(c->head_get);
    sqlite3_finalize(c->head_set);
    sqlite3_finalize(c->link_set);
    sqlite3_finalize(c->link_hash);
    sqlite3_finalize(c->checkpoint);
    buf_release(&c->ser);
    buf_release(&c->fbuf);
}

static int prepare_once(sqlite3 *db, sqlite3_stmt **st, const char *sql, struct err *err)
{
    int rc;
    if (*st) {
        sqlite3_reset(*st);
        sqlite3_clear_bindings(*st);
        return 0;
    }
    rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot prepare '%.60s'", sql);
    return 0;
}

static int head_read(struct chain_ctx *c, int64_t *ret_seq, char ret_hash[65], struct err *err)
{
    int rc;
    if (prepare_once(c->db, &c->head_get,
                     "SELECT chain_seq, chain_hash FROM history_head WHERE id = 1", err) < 0)
        return -1;
    rc = sqlite3_step(c->head_get);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(c->db, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, ERR_INTERNAL, err,
                                  "cannot read the head of the audit chain");
    *ret_seq = sqlite3_column_int64(c->head_get, 0);
    column_hex64(c->head_get, 1, ret_hash);
    sqlite3_reset(c->head_get);
    return 0;
}

/* The hash of link @pos - 1, the previous of a link recomputed in place: the
 * row's, or the checkpoint's where a prune cut there, or the genesis. */
static int link_prev_hash(struct chain_ctx *c, int64_t pos, char ret[65], struct err *err)
{
    int rc;
    if (pos <= 1) {
        memcpy(ret, GENESIS_HASH, 65);
        return 0;
    }
    if (prepare_once(c->db, &c->link_hash, "SELECT chain_hash FROM executions WHERE chain_seq = ?",
                     err) < 0)
        return -1;
    rc = sqlite3_bind_int64(c->link_hash, 1, pos - 1);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(c->link_hash);
    if (rc == SQLITE_ROW) {
        column_hex64(c->link_hash, 0, ret);
        sqlite3_reset(c->link_hash);
        return 0;
    }
    sqlite3_reset(c->link_hash);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(c->db, rc, ERR_OK, err, "cannot read link %lld of the chain",
                                  (long long)(pos - 1));
    if (prepare_once(c->db, &c->checkpoint,
                     "SELECT chain_hash FROM history_checkpoints WHERE chain_seq = ?"
                     " ORDER BY id DESC LIMIT 1",
                     err) < 0)
        return -1;
    rc = sqlite3_bind_int64(c->checkpoint, 1, pos - 1);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(c->checkpoint);
    if (rc == SQLITE_ROW) {
        column_hex64(c->checkpoint, 0, ret);
        sqlite3_reset(c->checkpoint);
        return 0;
    }
    sqlite3_reset(c->checkpoint);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(c->db, rc, ERR_OK, err, "cannot read the chain's checkpoints");
    return err_set(err, ERR_CONFLICT, "link %lld of the audit chain is missing",
                   (long long)(pos - 1));
}

/* Chain execution @seq (see history_chain_tx). */
static int chain_row(struct chain_ctx *c, int64_t seq, struct err *err)
{
    char head_hash[65], prev[65], hash[65], code_hex[65];
    int64_t head_seq = 0, pos, linked;
    int rc;

    if (prepare_once(c->db, &c->row, "SELECT " CANON_COLUMNS " FROM executions WHERE seq = ?",
                     err) < 0 ||
        prepare_once(c->db, &c->files, CANON_FILES_SQL, err) < 0)
        return -1;
    rc = sqlite3_bind_int64(c->row, 1, seq);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(c->row);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "execution %lld not found", (long long)seq);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(c->db, rc, ERR_OK, err, "cannot read execution %lld",
                                  (long long)seq);

    const char *status = (const char *)sqlite3_column_text(c->row, CC_STATUS);
    linked = sqlite3_column_int64(c->row, CC_CHAIN_SEQ); /* NULL reads 0 */
    _cleanup_free_ char *id = column_strdup(c->row, CC_ID);
    if (!status_is_final(status)) {
        sqlite3_reset(c->row);
        if (linked == 0)
            return 0; /* not final yet: it joins when it is */
        return err_set(err, ERR_CONFLICT,
                       "execution '%s' is sealed in the audit chain (link %lld): it cannot go back "
                       "to %s",
                       id ? id : "", (long long)linked, status ? status : "");
    }
    if (head_read(c, &head_seq, head_hash, err) < 0) {
        sqlite3_reset(c->row);
        return -1;
    }
    if (linked == 0) {
        pos = head_seq + 1;
        memcpy(prev, head_hash, 65);
    } else if (linked == head_seq) {
        pos = linked; /* still the newest link: recomputed in place */
        if (link_prev_hash(c, pos, prev, err) < 0) {
            sqlite3_reset(c->row);
            return -1;
        }
    } else {
        sqlite3_reset(c->row);
        return err_set(err, ERR_CONFLICT,
                       "execution '%s' is sealed in the audit chain (link %lld of %lld): it can no "
                       "longer change",
                       id ? id : "", (long long)linked, (long long)head_seq);
    }

    buf_reset(&c->ser);
    struct canon_files src = {.lookup = c->files};
    if (canon_row(c->db, c->row, &src, pos, prev, &c->ser, &c->fbuf, code_hex, err) < 0) {
        sqlite3_reset(c->row);
        return -1;
    }
    sqlite3_reset(c->row);
    sha256_hex(c->ser.data, c->ser.len, hash);

    if (prepare_once(c->db, &c->link_set,
                     "UPDATE executions SET chain_seq = ?, chain_hash = ? WHERE seq = ?",
                     err) < 0 ||
        prepare_once(c->db, &c->head_set,
                     "UPDATE history_head SET chain_seq = ?, chain_hash = ? WHERE id = 1", err) < 0)
        return -1;
    struct binder b = binder_of(c->link_set);
    bind_int64(&b, pos);
    bind_text(&b, hash);
    bind_int64(&b, seq);
    rc = b.rc;
    if (rc == SQLITE_OK)
        rc = sqlite3_step(c->link_set);
    sqlite3_reset(c->link_set);
    if (rc == SQLITE_DONE) {
        b = binder_of(c->head_set);
        bind_int64(&b, pos);
        bind_text(&b, hash);
        rc = b.rc;
        if (rc == SQLITE_OK)
            rc = sqlite3_step(c->head_set);
        sqlite3_reset(c->head_set);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(c->db, rc, ERR_OK, err,
                                  "cannot add execution '%s' to the audit chain", id ? id : "");
    return 0;
}

int history_chain_tx(struct catalog *cat, int64_t seq, struct err *err)
{
    struct chain_ctx c = CHAIN_CTX_INIT(cat->db);
    int r = chain_row(&c, seq, err);
    chain_ctx_release(&c);
    return r;
}

int history_chain_pending_tx(struct catalog *cat, int *ret_n, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_free_ int64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "SELECT seq FROM executions WHERE chain_seq IS NULL"
                            " AND status NOT IN ('queued', 'running') ORDER BY seq",
                            -1, &st, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            seqs = xrealloc(seqs, cap * sizeof(*seqs));
        }
        seqs[n++] = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot list the executions missing from the audit chain");
    struct chain_ctx c = CHAIN_CTX_INIT(cat->db);
    for (size_t i = 0; i < n; i++) {
        if (chain_row(&c, seqs[i], err) < 0) {
            chain_ctx_release(&c);
            return -1;
        }
    }
    chain_ctx_release(&c);
    if (ret_n)
        *ret_n = (int)n;
    return 0;
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
};

#define ITEM_COLUMNS                                                                               \
    "executions.seq, executions.id, executions.environment, executions.environment_version,"       \
    " executions.image, executions.image_id, executions.principal, executions.client_addr,"        \
    " executions.code_sha256, executions.timeout_s, executions.status, executions.exit_code,"      \
    " executions.error, executions.queued_at, executions.started_at, executions.finished_at,"      \
    " executions.recorded_at, executions.duration_ms, executions.stdout_truncated,"                \
    " executions.stderr_truncated, executions.chain_seq, executions.chain_hash,"                   \
    " executions.session_id, executions.limits, executions.warning"

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
    IC_CODE, /* catalog_history_get only */
    IC_STDOUT,
    IC_STDERR,
};

static void sqlf(struct buf *out, const char *s)
{
    puts_(out, s);
}

/* A time range is a seq range: recorded_at never decreases with seq, so
 * the rows at or after @since are those from the first such row on. The
 * subqueries run once, on executions_recorded. */
void history_sql(const struct history_filter *f, int group, enum history_sql_kind kind,
                 struct buf *out)
{
    const bool text = f->text != NULL;
    const char *seqcol = text ? "executions_fts.rowid" : "executions.seq";

    buf_reset(out);
    sqlf(out, "SELECT ");
    if (kind == HISTORY_SQL_PAGE) {
        sqlf(out, ITEM_COLUMNS);
    } else {
        sqlf(out, group == HISTORY_GROUP_ENVIRONMENT ? "executions.environment"
                  : group == HISTORY_GROUP_STATUS    ? "executions.status"
                                                     : "executions.recorded_at");
        sqlf(out, ", executions.duration_ms");
    }
    if (text)
        sqlf(out, " FROM executions_fts CROSS JOIN executions"
                  " ON executions.seq = executions_fts.rowid WHERE executions_fts MATCH ?1");
    else if (kind == HISTORY_SQL_STATS && !f->environment && f->status < 0 && !f->principal &&
             !f->code_sha256)
        /* the narrowest index that holds every column statistics read, in
         * day order (the planner picks a wider one) */
        sqlf(out, " FROM executions INDEXED BY executions_recorded WHERE 1");
    else
        sqlf(out, " FROM executions WHERE 1");
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
            sqlf(out, " AND EXISTS (SELECT 1 FROM executions AS probe INDEXED BY ");
            sqlf(out, idx);
            sqlf(out, " WHERE probe.seq = executions_fts.rowid");
            if (f->environment)
                sqlf(out, " AND probe.environment = ?2");
            if (f->environment_version > 0 && strcmp(idx, "executions_env_version") == 0)
                sqlf(out, " AND probe.environment_version = ?3");
            if (f->status >= 0)
                sqlf(out, " AND probe.status = ?4");
            if (f->principal && principal_idx)
                sqlf(out, " AND probe.principal = ?5");
            if (f->code_sha256 && strcmp(idx, "executions_code") == 0)
                sqlf(out, " AND probe.code_sha256 = ?6");
            sqlf(out, ")");
        }
    }
    if (f->environment)
        sqlf(out, " AND executions.environment = ?2");
    if (f->environment_version > 0)
        sqlf(out, " AND executions.environment_version = ?3");
    if (f->status >= 0)
        sqlf(out, " AND executions.status = ?4");
    if (f->principal)
        sqlf(out, " AND executions.principal = ?5");
    if (f->code_sha256)
        sqlf(out, " AND executions.code_sha256 = ?6");
    if (f->has_since) {
        puts_(out, " AND ");
        puts_(out, seqcol);
        sqlf(out, " >= (SELECT seq FROM executions WHERE recorded_at >= ?7"
                  " ORDER BY recorded_at, seq LIMIT 1)");
        /* the same rows; lets statistics without other filters read
         * executions_recorded alone */
        if (kind == HISTORY_SQL_STATS)
            sqlf(out, " AND executions.recorded_at >= ?7");
    }
    if (f->has_until) {
        puts_(out, " AND ");
        puts_(out, seqcol);
        sqlf(out, " <= (SELECT seq FROM executions WHERE recorded_at < ?8"
                  " ORDER BY recorded_at DESC, seq DESC LIMIT 1)");
        if (kind == HISTORY_SQL_STATS)
            sqlf(out, " AND executions.recorded_at < ?8");
    }
    if (kind == HISTORY_SQL_PAGE) {
        /* the first page too: below the highest seq there can be */
        puts_(out, " AND ");
        puts_(out, seqcol);
        sqlf(out, " < ?9");
        puts_(out, " ORDER BY ");
        puts_(out, seqcol);
        sqlf(out, " DESC LIMIT ?10");
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
            put(&q, " ", 1);
        put(&q, "\"", 1);
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            if (*p == '"')
                put(&q, "\"", 1);
            put(&q, p, 1);
            p++;
        }
        put(&q, "\"", 1);
    }
    if (!q.len) {
        buf_release(&q);
        return NULL;
    }
    return buf_detach(&q, NULL);
}

static int filter_check(const struct history_filter *f, struct err *err)
{
    if (f->environment_version > 0 && !f->environment)
        return err_set(err, ERR_INVALID, "environment_version: needs environment");
    if (f->status > (int)EXEC_INTERRUPTED)
        return err_set(err, ERR_INVALID, "status: unknown status %d", f->status);
    return 0;
}

/* Prepare history_sql(@f...) on @db and bind @f, @before_seq and @limit. */
static int query_prepare(sqlite3 *db, const struct history_filter *f, int64_t before_seq,
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
    rec->client_addr = column_strdup(st, IC_CLIENT_ADDR);
    column_hex64(st, IC_CODE_SHA256, rec->code_sha256);
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
    column_hex64(st, IC_CHAIN_HASH, it->chain_hash);
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

    if (query_prepare(db, f, before_seq, (int64_t)limit, 0, HISTORY_SQL_PAGE, &st, err) < 0)
        return -1;
    for (;;) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if (n == cap) {
            cap = cap ? 2 * cap : (limit < 64 ? limit : 64);
            items = xrealloc(items, cap * sizeof(*items));
        }
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
    if (filter_check(f, err) < 0)
        return -1;
    if (limit == 0) {
        *ret = NULL;
        *ret_n = 0;
        return 0;
    }
    CATALOG_LOCK(cat);
    return list_on(cat->db, f, before_seq, limit, ret, ret_n, err);
}

static int history_get_tx(struct catalog *cat, const char *id, struct history_item *it,
                          struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *files = NULL;
    struct execution_record *rec = &it->rec;
    size_t cap = 0;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "SELECT " ITEM_COLUMNS ", executions.code, executions.stdout,"
                            " executions.stderr FROM executions WHERE id = ?",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "execution '%s' not found", id);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read execution '%s'", id);
    if (item_from_row(st, it, err) < 0)
        return -1;
    rec->code = column_strdup(st, IC_CODE);
    rec->stdout_text = column_bytesdup(st, IC_STDOUT, &rec->stdout_len);
    rec->stderr_text = column_bytesdup(st, IC_STDERR, &rec->stderr_len);

    rc = sqlite3_prepare_v2(cat->db, CANON_FILES_SQL, -1, &files, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(files, 1, it->seq);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(files);
        if (rc != SQLITE_ROW)
            break;
        if (rec->n_files == cap) {
            cap = cap ? 2 * cap : 8;
            rec->files = xrealloc(rec->files, cap * sizeof(*rec->files));
        }
        struct file_entry *fe = &rec->files[rec->n_files++];
        const char *dir = (const char *)sqlite3_column_text(files, 0);
        fe->direction = dir && strcmp(dir, "out") == 0 ? FILE_OUT : FILE_IN;
        fe->path = column_strdup(files, 1);
        fe->size = sqlite3_column_int64(files, 2);
        column_hex64(files, 3, fe->sha256);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot read the files of execution '%s'", id);
    return 0;
}

int catalog_history_get(struct catalog *cat, const char *id, struct history_item *ret,
                        struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(history_item_release) struct history_item it = {0};
    int rc, r;

    rc = sqlite3_exec(cat->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read execution '%s'", id);
    r = history_get_tx(cat, id, &it, err);
    tx_rollback(cat); /* a read: this only ends it */
    if (r < 0)
        return -1;
    *ret = it;
    memset(&it, 0, sizeof(it));
    return 0;
}

/* ---- reading on connections of their own ---- */

static void db_closep(sqlite3 **db)
{
    sqlite3_close(*db); /* NULL is a no-op */
}

/* A read-only connection to @path. With @immutable_fallback, a file that
 * cannot be opened for shared reading (a copy in a read-only folder, without
 * its -shm) is opened as immutable. */
static int reader_open(const char *path, bool immutable_fallback, sqlite3 **ret, struct err *err)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, HISTORY_BUSY_TIMEOUT_MS);
        /* opening is lazy: the first read says whether the file is usable */
        rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK && immutable_fallback) {
        _cleanup_(buf_release) struct buf uri = BUF_INIT(BUF_UNLIMITED);
        sqlite3_close(db);
        db = NULL;
        puts_(&uri, "file:");
        for (const char *p = path; *p; p++) {
            if (*p == '%' || *p == '?' || *p == '#') {
                char tmp[4];
                snprintf(tmp, sizeof(tmp), "%%%02X", (unsigned char)*p);
                puts_(&uri, tmp);
            } else {
                put(&uri, p, 1);
            }
        }
        puts_(&uri, "?immutable=1");
        rc = sqlite3_open_v2(buf_str(&uri), &db,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL);
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

/* The file of @cat, or NULL for a catalog in memory. The caller frees it. */
static char *catalog_file(struct catalog *cat)
{
    CATALOG_LOCK(cat);
    const char *f = sqlite3_db_filename(cat->db, "main");
    return f && f[0] ? xstrdup(f) : NULL;
}

struct history_export {
    struct catalog *cat;
    sqlite3 *db; /* NULL: cat->db under the lock */
    struct history_filter f;
    char *strings[5];
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
    if (filter_check(f, err) < 0)
        return -1;
    _cleanup_free_ char *path = catalog_file(cat);
    struct history_export *x = xcalloc(1, sizeof(*x));

    x->cat = cat;
    if (path && reader_open(path, false, &x->db, err) < 0) {
        free(x);
        return -1;
    }
    x->f = *f;
    x->f.environment = keep(x, 0, f->environment);
    x->f.principal = keep(x, 1, f->principal);
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
    if (x->db) {
        r = list_on(x->db, &x->f, x->before_seq, max, ret, ret_n, err);
    } else {
        CATALOG_LOCK(x->cat);
        r = list_on(x->cat->db, &x->f, x->before_seq, max, ret, ret_n, err);
    }
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
    sqlite3_close(x->db);
    for (size_t i = 0; i < ARRAY_SIZE(x->strings); i++)
        free(x->strings[i]);
    free(x);
}

/* ---- statistics ---- */

struct stat_acc {
    char *key;
    int64_t count, total;
    int64_t *d; /* durations */
    size_t n, cap;
};

static void stat_accs_free(struct stat_acc *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++) {
        free(a[i].key);
        free(a[i].d);
    }
    free(a);
}

static void stat_add(struct stat_acc *a, sqlite3_stmt *st)
{
    a->count++;
    if (sqlite3_column_type(st, 1) == SQLITE_NULL)
        return;
    int64_t d = sqlite3_column_int64(st, 1);
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->d = xrealloc(a->d, a->cap * sizeof(*a->d));
    }
    a->d[a->n++] = d;
    a->total += d;
}

static void swap64(int64_t *a, int64_t *b)
{
    int64_t t = *a;
    *a = *b;
    *b = t;
}

static int64_t median3(int64_t a, int64_t b, int64_t c)
{
    if (a > b)
        swap64(&a, &b);
    if (b > c)
        b = c;
    return a > b ? a : b;
}

/* The k-th smallest of v[0..n) (0-based), reordering v: quickselect with a
 * three-way partition (durations repeat a lot). */
static int64_t select_kth(int64_t *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* k is in [lo, hi) */
    while (hi - lo > 1) {
        int64_t pivot = median3(v[lo], v[lo + (hi - lo) / 2], v[hi - 1]);
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            if (v[i] < pivot)
                swap64(&v[lt++], &v[i++]);
            else if (v[i] > pivot)
                swap64(&v[i], &v[--gt]);
            else
                i++;
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return pivot;
    }
    return v[lo];
}

/* Nearest rank: the ceil(p * n)-th smallest. */
static int64_t percentile(int64_t *v, size_t n, int pct)
{
    if (n == 0)
        return -1;
    size_t rank = ((size_t)pct * n + 99) / 100;
    if (rank < 1)
        rank = 1;
    return select_kth(v, n, rank - 1);
}

static void stat_finish(struct stat_acc *a, struct history_stat *out)
{
    out->key = steal_ptr(a->key);
    out->count = a->count;
    out->timed = (int64_t)a->n;
    out->total_ms = a->total;
    out->p50_ms = percentile(a->d, a->n, 50);
    out->p95_ms = percentile(a->d, a->n, 95);
}

static int key_cmp(const void *pa, const void *pb)
{
    const struct stat_acc *a = pa, *b = pb;
    if (!a->key || !b->key)
        return (a->key != NULL) - (b->key != NULL);
    return strcmp(a->key, b->key);
}

static void day_key(int64_t ms, char out[16])
{
    time_t t = (time_t)((ms >= 0 ? ms : ms - DAY_MS + 1) / DAY_MS * (DAY_MS / 1000));
    struct tm tm = {0};
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

/* Days seen so far -> their group: open addressing on the day number
 * (rows of a filter index come in no day order). */
struct day_map {
    int64_t *days;
    size_t *groups;
    size_t cap, n; /* cap a power of two, 0 when empty */
};

static void day_map_release(struct day_map *m)
{
    free(m->days);
    free(m->groups);
}

static size_t *day_map_slot(struct day_map *m, int64_t day, bool *ret_new)
{
    if (2 * (m->n + 1) > m->cap) {
        struct day_map grown = {.cap = m->cap ? 2 * m->cap : 64};
        grown.days = xmalloc(grown.cap * sizeof(*grown.days));
        grown.groups = xmalloc(grown.cap * sizeof(*grown.groups));
        for (size_t i = 0; i < grown.cap; i++)
            grown.days[i] = INT64_MIN;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->days[i] == INT64_MIN)
                continue;
            bool fresh;
            *day_map_slot(&grown, m->days[i], &fresh) = m->groups[i];
        }
        day_map_release(m);
        *m = grown;
    }
    size_t i = (size_t)((uint64_t)day * 0x9E3779B97F4A7C15ULL) & (m->cap - 1);
    while (m->days[i] != INT64_MIN && m->days[i] != day)
        i = (i + 1) & (m->cap - 1);
    *ret_new = m->days[i] == INT64_MIN;
    if (*ret_new) {
        m->days[i] = day;
        m->n++;
    }
    return &m->groups[i];
}

static size_t stat_group_new(struct stat_acc **accs, size_t *n, size_t *cap, const char *key)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *accs = xrealloc(*accs, *cap * sizeof(**accs));
    }
    memset(&(*accs)[*n], 0, sizeof((*accs)[*n]));
    (*accs)[*n].key = key ? xstrdup(key) : NULL;
    return (*n)++;
}

static int stats_on(sqlite3 *db, const struct history_filter *f, enum history_group group,
                    struct history_stat **ret, size_t *ret_n, struct history_stat *ret_all,
                    struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct stat_acc *accs = NULL, all = {0};
    struct day_map days = {0};
    size_t n = 0, cap = 0;
    int rc;

    if (query_prepare(db, f, 0, 0, (int)group, HISTORY_SQL_STATS, &st, err) < 0)
        return -1;
    for (;;) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        size_t i;
        if (group == HISTORY_GROUP_DAY) {
            int64_t ms = sqlite3_column_int64(st, 0);
            bool fresh;
            size_t *slot = day_map_slot(&days, (ms >= 0 ? ms : ms - DAY_MS + 1) / DAY_MS, &fresh);
            if (fresh) {
                char day[16];
                day_key(ms, day);
                *slot = stat_group_new(&accs, &n, &cap, day);
            }
            i = *slot;
        } else { /* a handful of environments or statuses */
            const char *key = (const char *)sqlite3_column_text(st, 0);
            for (i = 0; i < n; i++)
                if ((!key && !accs[i].key) || (key && accs[i].key && strcmp(key, accs[i].key) == 0))
                    break;
            if (i == n)
                i = stat_group_new(&accs, &n, &cap, key);
        }
        stat_add(&accs[i], st);
        stat_add(&all, st);
    }
    day_map_release(&days);
    if (rc != SQLITE_DONE) {
        stat_accs_free(accs, n);
        free(all.d);
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot compute history statistics");
    }
    if (n)
        qsort(accs, n, sizeof(*accs), key_cmp);
    struct history_stat *out = n ? xcalloc(n, sizeof(*out)) : NULL;
    for (size_t i = 0; i < n; i++)
        stat_finish(&accs[i], &out[i]);
    stat_finish(&all, ret_all);
    stat_accs_free(accs, n);
    free(all.d);
    *ret = out;
    *ret_n = n;
    return 0;
}

int catalog_history_stats(struct catalog *cat, const struct history_filter *f,
                          enum history_group group, struct history_stat **ret, size_t *ret_n,
                          struct history_stat *ret_all, struct err *err)
{
    _cleanup_free_ char *path = NULL;
    _cleanup_(db_closep) sqlite3 *db = NULL;

    if (filter_check(f, err) < 0)
        return -1;
    if ((unsigned)group > HISTORY_GROUP_DAY)
        return err_set(err, ERR_INVALID, "group: unknown grouping %d", (int)group);
    memset(ret_all, 0, sizeof(*ret_all));
    path = catalog_file(cat);
    if (path) {
        if (reader_open(path, false, &db, err) < 0)
            return -1;
        return stats_on(db, f, group, ret, ret_n, ret_all, err);
    }
    CATALOG_LOCK(cat);
    return stats_on(cat->db, f, group, ret, ret_n, ret_all, err);
}

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

const char *const history_fixed_sql[] = {
    VERIFY_ROWS_SQL,
    VERIFY_PREV_SQL,
    VERIFY_SPAN_SQL,
    MERGE_FILES_SQL,
    VERIFY_BEYOND_SQL,
    VERIFY_UNCHAINED_SQL,
    CHECKPOINT_SQL,
    PRUNE_CUT_SQL,
    PRUNE_DELETE_SQL,
    "SELECT " CANON_COLUMNS " FROM executions WHERE seq = ?",
    CANON_FILES_SQL,
    "SELECT chain_hash FROM executions WHERE chain_seq = ?",
    "SELECT seq FROM executions WHERE chain_seq IS NULL AND status NOT IN ('queued', 'running')"
    " ORDER BY seq",
    NULL,
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
            column_hex64(prev_st, 1, prev);
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
        column_hex64(rows, CC_CODE_SHA256, stored_code);
        if (strcmp(stored_code, code_hex) != 0) {
            bad_set(bad, cs, id, "its code does not match its code_sha256");
            break;
        }
        sha256_hex(ser.data, ser.len, hash);
        column_hex64(rows, CC_CHAIN_HASH, prev);
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
    int r, rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the audit chain");
    r = verify_range(db, a, b, w->cp_seq, w->cp_hash, bad, ret_checked, ret_last_seq, ret_last_hash,
                     err);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

static void *verify_worker(void *arg)
{
    struct verify_walk *w = arg;
    _cleanup_(db_closep) sqlite3 *own = NULL;
    struct err err = ERR_INIT;
    sqlite3 *db = w->shared_db;

    if (w->path) {
        if (reader_open(w->path, true, &own, &err) < 0)
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
    column_hex64(head, 1, v->head_hash);

    rc = sqlite3_prepare_v2(db, CHECKPOINT_SQL, -1, &cp, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(cp);
    if (rc == SQLITE_ROW) {
        v->has_checkpoint = true;
        v->checkpoint_seq = sqlite3_column_int64(cp, 0);
        column_hex64(cp, 1, v->checkpoint_hash);
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

/* Verify on @db (the start), with worker connections on @path, or on @db
 * alone when @path is NULL (the caller holds what @db needs). */
static int verify_on(sqlite3 *db, const char *path, struct history_verify *ret, struct err *err)
{
    struct history_verify v = {0};
    struct verify_bad extra;
    struct verify_walk w = {.path = path, .shared_db = path ? NULL : db, .bad = {.seq = INT64_MAX}};
    int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), r;

    if (rc != SQLITE_OK)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the audit chain");
    r = verify_start(db, &v, &extra, err);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    if (r < 0)
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
                column_hex64(st, 0, h);
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
    _cleanup_(db_closep) sqlite3 *db = NULL;

    if (path) {
        if (reader_open(path, false, &db, err) < 0)
            return -1;
        return verify_on(db, path, ret, err);
    }
    CATALOG_LOCK(cat);
    return verify_on(cat->db, NULL, ret, err);
}

int catalog_history_verify_file(const char *path, struct history_verify *ret, struct err *err)
{
    _cleanup_(db_closep) sqlite3 *db = NULL;
    int version = 0;

    if (access(path, R_OK) < 0)
        return err_errno(err, ERR_UNAVAILABLE, errno, "cannot open catalog '%s'", path);
    if (reader_open(path, true, &db, err) < 0)
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
        if (tx_begin(cat, err) < 0)
            return -1;
        if (prune_batch(cat, before, now, &checkpoint_id, &res, &done, err) < 0) {
            tx_rollback(cat);
            return -1;
        }
        if (tx_commit(cat, err) < 0)
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
            column_hex64(st, 1, res.checkpoint_hash);
        } else if (rc == SQLITE_DONE) {
            memcpy(res.checkpoint_hash, GENESIS_HASH, 65);
        } else {
            return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read the checkpoints");
        }
    }
    *ret = res;
    return 0;
}

/* ---- seeding ---- */

/* recorded_at as the insert trigger computes it (0004_history.sql): the
 * seed sets it itself, which also tells the triggers to leave the row (and
 * its words) to the seed. */
static int seed_one(struct catalog *cat, sqlite3_stmt *ins, sqlite3_stmt *files,
                    struct chain_ctx *c, const struct execution_record *rec, int64_t *recorded_at,
                    struct err *err)
{
    struct binder b = binder_of(ins);
    int64_t at = rec->started_at ? rec->started_at : rec->queued_at;
    int rc;

    if ((unsigned)rec->status > EXEC_INTERRUPTED || rec->status == EXEC_QUEUED ||
        rec->status == EXEC_RUNNING || !rec->id)
        return err_set(err, ERR_INVALID, "cannot seed execution '%s': it is not final",
                       rec->id ? rec->id : "");
    sqlite3_reset(ins);
    bind_text(&b, rec->id);
    bind_text(&b, rec->environment);
    bind_int64(&b, rec->environment_version);
    bind_text(&b, rec->image);
    bind_text(&b, rec->image_id);
    bind_text(&b, rec->principal ? rec->principal : "");
    bind_text(&b, rec->client_addr ? rec->client_addr : "");
    bind_text(&b, rec->code);
    bind_text_n(&b, rec->code_sha256, strnlen(rec->code_sha256, 64));
    bind_int64(&b, rec->timeout_s);
    bind_text(&b, exec_status_name(rec->status));
    bind_int64_or_null(&b, rec->exit_code, rec->exit_code == -1);
    bind_text(&b, rec->error);
    bind_int64(&b, rec->queued_at);
    bind_int64_or_null(&b, rec->started_at, rec->started_at == 0);
    bind_int64_or_null(&b, rec->finished_at, rec->finished_at == 0);
    bind_int64_or_null(&b, rec->duration_ms, rec->duration_ms == -1);
    bind_output(&b, rec->stdout_text, rec->stdout_len);
    bind_int64(&b, rec->stdout_truncated);
    bind_output(&b, rec->stderr_text, rec->stderr_len);
    bind_int64(&b, rec->stderr_truncated);
    if (at > *recorded_at)
        *recorded_at = at;
    bind_int64(&b, *recorded_at);
    rc = b.rc;
    if (rc == SQLITE_OK)
        rc = sqlite3_step(ins);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot seed execution '%s'", rec->id);
    int64_t seq = sqlite3_last_insert_rowid(cat->db);
    for (size_t i = 0; i < rec->n_files; i++) {
        const struct file_entry *f = &rec->files[i];
        b = binder_of(files);
        sqlite3_reset(files);
        bind_int64(&b, seq);
        bind_text(&b, f->direction == FILE_OUT ? "out" : "in");
        bind_text(&b, f->path);
        bind_int64(&b, f->size);
        bind_text_n(&b, f->sha256, strnlen(f->sha256, 64));
        rc = b.rc;
        if (rc == SQLITE_OK)
            rc = sqlite3_step(files);
        if (rc != SQLITE_DONE)
            return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                      "cannot seed file '%s' of execution '%s'",
                                      f->path ? f->path : "", rec->id);
    }
    return chain_row(c, seq, err);
}

int catalog_history_seed(struct catalog *cat, const struct execution_record *recs, size_t n,
                         struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *ins = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *files = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct chain_ctx c = CHAIN_CTX_INIT(cat->db);
    int64_t recorded_at = 0, first_seq = 0;
    int rc;

    /* a batch rewrites its pages several times (row, indexes, chain): a
     * page cache that holds them all writes each page once */
    sqlite3_exec(cat->db, "PRAGMA cache_size = -262144", NULL, NULL, NULL);
    if (tx_begin(cat, err) < 0)
        return -1;
    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO executions (id, environment, environment_version, image,"
                            " image_id, principal, client_addr, code, code_sha256, timeout_s,"
                            " status, exit_code, error, queued_at, started_at, finished_at,"
                            " duration_ms, stdout, stdout_truncated, stderr, stderr_truncated,"
                            " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                            " ?, ?, ?, ?, ?, ?)",
                            -1, &ins, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(cat->db,
                                "INSERT INTO execution_files (execution_seq, direction, path, size,"
                                " sha256) VALUES (?, ?, ?, ?, ?)",
                                -1, &files, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(cat->db,
                                "SELECT coalesce(max(recorded_at), 0),"
                                " coalesce((SELECT seq FROM sqlite_sequence"
                                " WHERE name = 'executions'), 0) FROM executions",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        recorded_at = sqlite3_column_int64(st, 0);
        first_seq = sqlite3_column_int64(st, 1) + 1;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_OK) {
        catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot seed executions");
        tx_rollback(cat);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (seed_one(cat, ins, files, &c, &recs[i], &recorded_at, err) < 0) {
            chain_ctx_release(&c);
            tx_rollback(cat);
            return -1;
        }
    }
    chain_ctx_release(&c);
    /* the batch's words in one statement (see seed_one) */
    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO executions_fts (rowid, code) SELECT seq, code"
                            " FROM executions WHERE seq >= ?",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 1, first_seq);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot index the code of seeded executions");
        tx_rollback(cat);
        return -1;
    }
    return tx_commit(cat, err);
}

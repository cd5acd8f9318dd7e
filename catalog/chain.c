/* catalog/chain.c - the tamper-evident audit chain of executions
 * (migrations/0004_history.sql): the canonical serialisation of a row and the
 * links made from it.
 *
 * Every execution that becomes final gets, in the transaction that makes it
 * final, chain_seq = head + 1 and chain_hash = hex sha256(the previous link's
 * chain_hash as 64 hex characters || the canonical serialisation of the row at
 * that position); history_head keeps the newest link. The serialisation is
 * built from the stored row alone (canon_row), by the same code when a link
 * is made and when verify.c checks it, and docs/history.md
 * spells it out. A link is recomputed in place only while it is the head. */
#include "catalog/catalog.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog_internal.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define HISTORY_CANON_VERSION "envhub-chain-v1\n"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define CHAIN_ROW_SQL "SELECT " CANON_COLUMNS " FROM executions WHERE seq = ?"

/* ---- writing the serialisation ---- */

static inline void put_str(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* ---- the canonical serialisation ---- */

/* The audited fields after the header and chain_seq, in order. A digest
 * field is written as the sha256 of the column's bytes (canon_digest: or
 * the digest retention kept of it). */
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

static const char *const canon_file_fields[] = {"file.direction", "file.path", "file.size",
                                                "file.sha256"};

/* name "=" value "\n", the value written by its stored type: "null",
 * "i" decimal, "s" byte-length ":" bytes (TEXT), "r" %.17g (REAL), "b"
 * byte-length ":" bytes (BLOB). */
static void canon_value(struct buf *out, const char *name, sqlite3_stmt *st, int col)
{
    put_str(out, name);
    buf_put(out, "=", 1);
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_NULL:
        put_str(out, "null");
        break;
    case SQLITE_INTEGER:
        buf_put(out, "i", 1);
        buf_put_int(out, sqlite3_column_int64(st, col));
        break;
    case SQLITE_FLOAT: {
        char tmp[40];
        int n = snprintf(tmp, sizeof(tmp), "r%.17g", sqlite3_column_double(st, col));
        buf_put(out, tmp, (size_t)n);
        break;
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, col);
        int n = sqlite3_column_bytes(st, col);
        buf_put(out, "b", 1);
        buf_put_int(out, n);
        buf_put(out, ":", 1);
        buf_put(out, p, (size_t)n);
        break;
    }
    default: { /* SQLITE_TEXT */
        const unsigned char *t = sqlite3_column_text(st, col);
        int n = sqlite3_column_bytes(st, col);
        buf_put(out, "s", 1);
        buf_put_int(out, n);
        buf_put(out, ":", 1);
        buf_put(out, t, (size_t)n);
        break;
    }
    }
    buf_put(out, "\n", 1);
}

/* name "=" ("null" | "s64:" hex sha256 of the column's bytes) "\n". The
 * digest is also left in @hex ("" for NULL). Where retention dropped stdout
 * or stderr (migration 0009), the digest it kept in stdout_sha256 or
 * stderr_sha256 is written as it is stored ("s", its length, ":", its
 * bytes), so that an edit of it shows. */
static void canon_digest(struct buf *out, const char *name, sqlite3_stmt *st, int col, char hex[65])
{
    int stored = col == CC_STDOUT ? CC_STDOUT_SHA256 : col == CC_STDERR ? CC_STDERR_SHA256 : 0;

    if (stored && sqlite3_column_type(st, stored) != SQLITE_NULL) {
        canon_value(out, name, st, stored);
        column_hex(st, stored, hex);
        return;
    }
    put_str(out, name);
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        put_str(out, "=null\n");
        hex[0] = '\0';
        return;
    }
    const void *p = sqlite3_column_blob(st, col); /* the bytes, whatever the type */
    int n = sqlite3_column_bytes(st, col);
    if (n == 0) /* most stderr: its digest is known */
        memcpy(hex, EMPTY_SHA256, 65);
    else
        sha256_hex(p, (size_t)n, hex);
    put_str(out, "=s64:");
    buf_put(out, hex, 64);
    buf_put(out, "\n", 1);
}

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

int canon_row(sqlite3 *db, sqlite3_stmt *row, struct canon_files *files, int64_t chain_seq,
              const char *prev_hex, struct buf *out, struct buf *fbuf, char code_hex[65],
              struct err *err)
{
    char hex[65] = "";
    int64_t n_files = 0;

    buf_put(out, prev_hex, strlen(prev_hex));
    put_str(out, HISTORY_CANON_VERSION);
    put_str(out, "chain_seq=i");
    buf_put_int(out, chain_seq);
    buf_put(out, "\n", 1);
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
    put_str(out, "files=i");
    buf_put_int(out, n_files);
    buf_put(out, "\n", 1);
    buf_put(out, fbuf->data ? fbuf->data : "", fbuf->len);
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

    rc = sqlite3_prepare_v2(db, CHAIN_ROW_SQL, -1, &row, NULL);
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
    buf_put(out, ser.data, ser.len);
    return 0;
}

/* ---- making links ---- */

#define CHAIN_LINK_HASH_SQL "SELECT chain_hash FROM executions WHERE chain_seq = ?"
#define CHAIN_PENDING_SQL                                                                          \
    "SELECT seq FROM executions WHERE chain_seq IS NULL AND status NOT IN ('queued', 'running')"   \
    " ORDER BY seq"

const char *const history_chain_sql[] = {
    CHAIN_ROW_SQL, CANON_FILES_SQL, CHAIN_LINK_HASH_SQL, CHAIN_PENDING_SQL, NULL,
};

/* Statements for chaining rows inside one write transaction, prepared on
 * first use and finalized together. */
struct history_chain {
    sqlite3 *db;
    sqlite3_stmt *row, *files, *head_get, *head_set, *link_set, *link_hash, *checkpoint;
    struct buf ser, fbuf;
};

struct history_chain *history_chain_new(sqlite3 *db)
{
    struct history_chain *c = xcalloc(1, sizeof(*c));

    c->db = db;
    c->ser = (struct buf)BUF_INIT(BUF_UNLIMITED);
    c->fbuf = (struct buf)BUF_INIT(BUF_UNLIMITED);
    return c;
}

void history_chain_free(struct history_chain *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->row);
    sqlite3_finalize(c->files);
    sqlite3_finalize(c->head_get);
    sqlite3_finalize(c->head_set);
    sqlite3_finalize(c->link_set);
    sqlite3_finalize(c->link_hash);
    sqlite3_finalize(c->checkpoint);
    buf_release(&c->ser);
    buf_release(&c->fbuf);
    free(c);
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

static int head_read(struct history_chain *c, int64_t *ret_seq, char ret_hash[65], struct err *err)
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
    column_hex(c->head_get, 1, ret_hash);
    sqlite3_reset(c->head_get);
    return 0;
}

/* The hash of link @pos - 1, the previous of a link recomputed in place: the
 * row's, or the checkpoint's where a prune cut there, or the genesis. */
static int link_prev_hash(struct history_chain *c, int64_t pos, char ret[65], struct err *err)
{
    int rc;
    if (pos <= 1) {
        memcpy(ret, GENESIS_HASH, 65);
        return 0;
    }
    if (prepare_once(c->db, &c->link_hash, CHAIN_LINK_HASH_SQL, err) < 0)
        return -1;
    rc = sqlite3_bind_int64(c->link_hash, 1, pos - 1);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(c->link_hash);
    if (rc == SQLITE_ROW) {
        column_hex(c->link_hash, 0, ret);
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
        column_hex(c->checkpoint, 0, ret);
        sqlite3_reset(c->checkpoint);
        return 0;
    }
    sqlite3_reset(c->checkpoint);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(c->db, rc, ERR_OK, err, "cannot read the chain's checkpoints");
    return err_set(err, ERR_CONFLICT, "link %lld of the audit chain is missing",
                   (long long)(pos - 1));
}

int history_chain_add(struct history_chain *c, int64_t seq, struct err *err)
{
    char head_hash[65], prev[65], hash[65], code_hex[65];
    int64_t head_seq = 0, pos, linked;
    int rc;

    if (prepare_once(c->db, &c->row, CHAIN_ROW_SQL, err) < 0 ||
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
    if (!exec_status_is_final(status)) {
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
    _cleanup_(history_chain_freep) struct history_chain *c = history_chain_new(cat->db);
    return history_chain_add(c, seq, err);
}

int history_chain_pending_tx(struct catalog *cat, int *ret_n, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_(history_chain_freep) struct history_chain *c = NULL;
    _cleanup_free_ int64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    int rc;

    rc = sqlite3_prepare_v2(cat->db, CHAIN_PENDING_SQL, -1, &st, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        seqs = array_grow(seqs, n, &cap, sizeof(*seqs));
        seqs[n++] = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot list the executions missing from the audit chain");
    c = history_chain_new(cat->db);
    for (size_t i = 0; i < n; i++)
        if (history_chain_add(c, seqs[i], err) < 0)
            return -1;
    if (ret_n)
        *ret_n = (int)n;
    return 0;
}

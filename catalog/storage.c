/* catalog/storage.c - what the catalog stores and where (migrations/0009_storage.sql):
 * the output bytes each principal stored per UTC day (ENVHUB_OUTPUT_BUDGET),
 * retention of old output (ENVHUB_RETENTION_DAYS), and the size of the
 * catalog's files and the free space beside them.
 *
 * The invariant of retention: a pruned row keeps the sha256 of the stdout
 * and stderr it dropped, and the audit chain (chain.c) takes those digests
 * from the stored columns instead of the emptied texts, so every link
 * computes as it did. Rows are pruned in seq order behind a watermark
 * (meta 'retention_seq'); recorded_at never decreases with seq, so the rows
 * older than a cut are a prefix, and a pass reads only rows it has not seen. */
#include "catalog/catalog.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "catalog/catalog_internal.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define DAY_MS 86400000LL
#define PRUNE_MAX_BYTES (64LL * 1024 * 1024) /* output hashed per pass, at most */
#define WATERMARK_KEY "retention_seq"

#define USAGE_GET_SQL "SELECT bytes FROM output_usage WHERE principal = ? AND day = ?"
#define PRUNE_ROWS_SQL                                                                             \
    "SELECT seq, recorded_at, status, output_pruned_at, stdout, stderr FROM executions"            \
    " WHERE seq > ? ORDER BY seq LIMIT ?"

const char *const catalog_storage_sql[] = {USAGE_GET_SQL, PRUNE_ROWS_SQL, NULL};

/* ---- the output budget ---- */

int64_t catalog_utc_day(int64_t ms)
{
    return ms >= 0 ? ms / DAY_MS : -((-ms + DAY_MS - 1) / DAY_MS);
}

int output_usage_add_tx(struct catalog *cat, int64_t seq, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc;

    /* The bytes as stored (NUL included), on the day the row finished. */
    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO output_usage (principal, day, bytes)"
                            " SELECT principal, coalesce(finished_at, queued_at) / 86400000,"
                            " length(CAST(stdout AS BLOB)) + length(CAST(stderr AS BLOB))"
                            " FROM executions WHERE seq = ?"
                            " ON CONFLICT (principal, day) DO UPDATE SET bytes = bytes + "
                            "excluded.bytes",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 1, seq);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot count the output of execution %lld", (long long)seq);
    return 0;
}

int catalog_output_usage(struct catalog *cat, const char *principal, int64_t day, int64_t *ret,
                         struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc = sqlite3_prepare_v2(cat->db, USAGE_GET_SQL, -1, &st, NULL);

    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_text(&b, principal ? principal : "");
        bind_int64(&b, day);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read the output stored by '%s'",
                                  principal);
    *ret = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    return 0;
}

/* ---- retention ---- */

/* One row to prune: the digests and sizes of what it drops. */
struct prune_row {
    int64_t seq;
    char out_hex[65], err_hex[65];
    int64_t out_size, err_size;
};

static int watermark_get(sqlite3 *db, int64_t *ret, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = '" WATERMARK_KEY "'", -1,
                                &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read the retention watermark");
    *ret = 0;
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *ret = v ? strtoll(v, NULL, 10) : 0;
    }
    return 0;
}

static int watermark_set(sqlite3 *db, int64_t seq, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    char v[24];
    int rc;

    snprintf(v, sizeof(v), "%" PRId64, seq);
    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO meta (key, value) VALUES ('" WATERMARK_KEY "', ?)"
                            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, v, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot record the retention watermark");
    return 0;
}

static void digest_of(sqlite3_stmt *st, int col, char hex[65], int64_t *ret_size)
{
    const void *p = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);

    sha256_hex(p ? p : "", (size_t)n, hex);
    *ret_size = n;
}

/* Inside the write transaction: choose the rows of one pass (*rows), and
 * *ret_last, the seq the watermark may move to. *ret_more when the pass
 * stopped at its bounds rather than at the cut. */
static int prune_select(sqlite3 *db, int64_t from, int64_t before, size_t max_rows,
                        struct prune_row **rows, size_t *n, int64_t *ret_last, bool *ret_more,
                        struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    size_t cap = 0, seen = 0;
    int64_t hashed = 0, last = from;
    bool more = false;
    int rc = sqlite3_prepare_v2(db, PRUNE_ROWS_SQL, -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 1, from);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (int64_t)max_rows);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        seen++;
        int64_t seq = sqlite3_column_int64(st, 0);
        const char *status = (const char *)sqlite3_column_text(st, 2);
        /* the cut, or a row still running: the next pass starts here */
        if (sqlite3_column_type(st, 1) == SQLITE_NULL || sqlite3_column_int64(st, 1) >= before ||
            !exec_status_is_final(status)) {
            rc = SQLITE_DONE;
            seen = 0;
            break;
        }
        int64_t bytes = sqlite3_column_bytes(st, 4) + sqlite3_column_bytes(st, 5);
        if (sqlite3_column_type(st, 3) == SQLITE_NULL && bytes > 0) {
            if (*n > 0 && hashed + bytes > PRUNE_MAX_BYTES) {
                more = true;
                rc = SQLITE_DONE;
                break;
            }
            *rows = array_grow(*rows, *n, &cap, sizeof(**rows));
            struct prune_row *r = &(*rows)[(*n)++];
            r->seq = seq;
            digest_of(st, 4, r->out_hex, &r->out_size);
            digest_of(st, 5, r->err_hex, &r->err_size);
            hashed += bytes;
        }
        last = seq;
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot read executions to prune");
    if (seen == max_rows)
        more = true;
    *ret_last = last;
    *ret_more = more;
    return 0;
}

static int prune_apply(sqlite3 *db, const struct prune_row *rows, size_t n, int64_t now,
                       struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "UPDATE executions SET stdout = '', stderr = '',"
                                " stdout_sha256 = ?, stderr_sha256 = ?, stdout_size = ?,"
                                " stderr_size = ?, output_pruned_at = ? WHERE seq = ?",
                                -1, &st, NULL);

    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        struct binder b = binder_of(st);
        bind_hex(&b, rows[i].out_hex);
        bind_hex(&b, rows[i].err_hex);
        bind_int64(&b, rows[i].out_size);
        bind_int64(&b, rows[i].err_size);
        bind_int64(&b, now);
        bind_int64(&b, rows[i].seq);
        rc = b.rc;
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
        sqlite3_reset(st);
    }
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot prune the output of executions");
    return 0;
}

int catalog_output_prune(struct catalog *cat, int64_t before, int64_t now, size_t max_rows,
                         struct output_prune *ret, struct err *err)
{
    CATALOG_LOCK(cat);
    CATALOG_TX(tx);
    _cleanup_free_ struct prune_row *rows = NULL;
    struct output_prune res = {0};
    size_t n = 0;
    int64_t from = 0, last = 0;

    if (max_rows == 0)
        max_rows = 1;
    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
        watermark_get(cat->db, &from, err) < 0 ||
        prune_select(cat->db, from, before, max_rows, &rows, &n, &last, &res.more, err) < 0 ||
        prune_apply(cat->db, rows, n, now, err) < 0)
        return -1;
    if (last != from && watermark_set(cat->db, last, err) < 0)
        return -1;
    if (catalog_tx_commit(&tx, err) < 0)
        return -1;
    res.rows = (int64_t)n;
    for (size_t i = 0; i < n; i++)
        res.bytes += rows[i].out_size + rows[i].err_size;
    *ret = res;
    return 0;
}

/* ---- disk ---- */

/* Bytes of @path; 0 when it does not exist. */
static int file_bytes(const char *path, int64_t *ret, struct err *err)
{
    struct stat sb;

    if (stat(path, &sb) == 0) {
        *ret = (int64_t)sb.st_size;
        return 0;
    }
    if (errno == ENOENT) {
        *ret = 0;
        return 0;
    }
    return err_errno(err, ERR_INTERNAL, errno, "cannot stat '%s'", path);
}

int catalog_disk_usage(struct catalog *cat, struct catalog_disk *ret, struct err *err)
{
    _cleanup_free_ char *path = catalog_file(cat);
    _cleanup_free_ char *wal = NULL;
    _cleanup_free_ char *dir = NULL;
    struct catalog_disk d = {0};
    struct statvfs vfs;

    if (!path) { /* in memory: nothing on disk */
        *ret = d;
        return 0;
    }
    wal = xasprintf("%s-wal", path);
    if (file_bytes(path, &d.db_bytes, err) < 0 || file_bytes(wal, &d.wal_bytes, err) < 0)
        return -1;
    const char *slash = strrchr(path, '/');
    dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    if (statvfs(dir, &vfs) < 0)
        return err_errno(err, ERR_INTERNAL, errno, "cannot read the free space of '%s'", dir);
    d.on_disk = true;
    d.free_bytes = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
    d.total_bytes = (int64_t)vfs.f_blocks * (int64_t)vfs.f_frsize;
    *ret = d;
    return 0;
}

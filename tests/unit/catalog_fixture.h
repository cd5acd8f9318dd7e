/* tests/unit/catalog_fixture.h - what the catalog's unit tests share: a
 * catalog on a fresh file in /tmp per test (cmocka setup and teardown), a raw
 * second connection to look at the file behind the catalog's back, the
 * embedded migrations, and a file manifest entry for execution records.
 *
 * Header-only (static functions), as each tests/unit/test_*.c is built
 * alone: include it after <cmocka.h> and the catalog headers. */
#ifndef ENVHUB_TESTS_CATALOG_FIXTURE_H
#define ENVHUB_TESTS_CATALOG_FIXTURE_H

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "catalog/catalog.h"
#include "catalog/catalog_internal.h"
#include "core/util.h"
#include "core/xalloc.h"

struct catalog_fixture {
    char path[64];
    struct catalog *cat; /* NULL until opened */
};

/* cmocka setup: a fresh empty file in /tmp, not opened; *state is the fixture. */
static inline int catalog_fixture_file(void **state)
{
    struct catalog_fixture *fx = xcalloc(1, sizeof(*fx));
    int fd;

    snprintf(fx->path, sizeof(fx->path), "/tmp/envhub-test-catalog-XXXXXX");
    fd = mkstemp(fx->path);
    if (fd < 0) {
        free(fx);
        return -1;
    }
    close(fd);
    *state = fx;
    return 0;
}

/* cmocka setup: the same file, opened and migrated (fx->cat). */
static inline int catalog_fixture_open(void **state)
{
    struct err err = ERR_INIT;
    struct catalog_fixture *fx;

    if (catalog_fixture_file(state) < 0)
        return -1;
    fx = *state;
    if (catalog_open(fx->path, &fx->cat, &err) < 0) {
        fprintf(stderr, "catalog_open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* cmocka teardown: close the catalog, remove the file with its -wal and -shm. */
static inline int catalog_fixture_close(void **state)
{
    struct catalog_fixture *fx = *state;
    char side[sizeof(fx->path) + 8];

    catalog_close(fx->cat);
    unlink(fx->path);
    snprintf(side, sizeof(side), "%s-wal", fx->path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", fx->path);
    unlink(side);
    free(fx);
    return 0;
}

/* A cmocka test on a fresh catalog, or on a fresh empty file (fx->cat NULL). */
#define CATALOG_TEST(f)                                                                            \
    cmocka_unit_test_setup_teardown(f, catalog_fixture_open, catalog_fixture_close)
#define CATALOG_FILE_TEST(f)                                                                       \
    cmocka_unit_test_setup_teardown(f, catalog_fixture_file, catalog_fixture_close)

/* Close the catalog and open the file again (migrations run again). */
static inline void catalog_fixture_reopen(struct catalog_fixture *fx)
{
    struct err err = ERR_INIT;

    catalog_close(fx->cat);
    fx->cat = NULL;
    assert_int_equal(catalog_open(fx->path, &fx->cat, &err), 0);
}

/* ---- a raw second connection, as the sqlite3 shell would be: no foreign keys ---- */

static inline sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of the first row of @sql, which must have one. */
static inline int64_t raw_db_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The same as text; the caller frees it. */
static inline char *raw_db_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    char *v;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

static inline void raw_db_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK)
        fprintf(stderr, "raw_exec: %s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

/* raw_db_int and raw_db_exec on a connection of their own to @path. */
static inline int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);
    int64_t v = raw_db_int(db, sql);

    sqlite3_close(db);
    return v;
}

static inline void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);

    raw_db_exec(db, sql);
    sqlite3_close(db);
}

/* ---- the migrations compiled in ---- */

static inline size_t embedded_count(void)
{
    size_t n = 0;

    while (migrations_embedded[n].path)
        n++;
    return n;
}

/* The number in the last embedded file's name: the schema version to expect. */
static inline int embedded_last_version(void)
{
    size_t n = embedded_count();
    const char *base;

    assert_true(n > 0);
    base = strrchr(migrations_embedded[n - 1].path, '/');
    base = base ? base + 1 : migrations_embedded[n - 1].path;
    return (int)strtol(base, NULL, 10);
}

/* Migrate the file at @path as an older build would have: with the embedded
 * migrations before the first whose name holds @stop (NULL: all but the
 * last). Returns a raw connection to it, for rows of that time; the caller
 * closes it. */
static inline sqlite3 *raw_open_migrated_before(const char *path, const char *stop)
{
    size_t n = 0, total = embedded_count();
    struct embedded_file *old;
    struct err err = ERR_INIT;
    sqlite3 *db = raw_open(path);

    assert_true(total > 0);
    if (stop) {
        while (n < total && !strstr(migrations_embedded[n].path, stop))
            n++;
    } else {
        n = total - 1;
    }
    old = xcalloc(n + 1, sizeof(*old)); /* ended by a NULL path */
    memcpy(old, migrations_embedded, n * sizeof(*old));
    if (catalog_migrate_db(db, old, &err) < 0)
        fail_msg("catalog_migrate_db: %s", err.msg);
    free(old);
    return db;
}

/* ---- execution records ---- */

/* Add a manifest entry to @rec; its sha256 is the path's. */
static inline void record_add_file(struct execution_record *rec, enum file_direction dir,
                                   const char *path, int64_t size)
{
    struct file_entry *f;

    rec->files = xrealloc(rec->files, (rec->n_files + 1) * sizeof(*rec->files));
    f = &rec->files[rec->n_files++];
    memset(f, 0, sizeof(*f));
    f->direction = dir;
    f->path = xstrdup(path);
    f->size = size;
    sha256_hex(path, strlen(path), f->sha256);
}

/* Seed executions @from .. @from+@n-1, each filled by @make, in one batch
 * (catalog_history_seed: finished and chained). */
static inline void catalog_fixture_seed(struct catalog *cat, int from, int n,
                                        void (*make)(struct execution_record *rec, int i))
{
    struct execution_record *recs = xcalloc((size_t)n + 1, sizeof(*recs));
    struct err err = ERR_INIT;

    for (int i = 0; i < n; i++)
        make(&recs[i], from + i);
    if (catalog_history_seed(cat, recs, (size_t)n, &err) < 0)
        fail_msg("seed: %s", err.msg);
    for (int i = 0; i < n; i++)
        execution_record_release(&recs[i]);
    free(recs);
}

#endif

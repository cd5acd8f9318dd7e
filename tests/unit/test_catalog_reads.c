/* tests/unit/test_catalog_reads.c - the history's reads (catalog/catalog.c,
 * catalog_read_begin): pooled read-only connections beside the writer, and
 * the time budget that stops a query past it with an error telling the
 * caller to narrow the filter. Real SQLite files in /tmp, and ":memory:". */
#include <pthread.h>
#include <time.h>

#include "tests/unit/catalog_fixture.h"

#include "core/buf.h"

#define T0 1700000000000LL
#define BIG_ROWS 20000

/* Final execution number @i: a small row whose code holds the word "import". */
static void row_make(struct execution_record *r, int i)
{
    r->id = xasprintf("ex_reads%016d", i);
    r->image = xstrdup("envhub/python:bookworm");
    r->principal = xasprintf("user%d", i % 4);
    r->code = xasprintf("import os\nprint(%d)\n", i);
    sha256_hex(r->code, strlen(r->code), r->code_sha256);
    r->timeout_s = 30;
    r->status = EXEC_SUCCEEDED;
    r->queued_at = T0 + (int64_t)i * 1000;
    r->started_at = r->queued_at + 1;
    r->duration_ms = 5;
    r->finished_at = r->started_at + 6;
    r->stdout_text = xstrdup("ok\n");
    r->stderr_text = xstrdup("");
}

/* @n final executions from number @from on, in one transaction. */
static void seed_rows(struct catalog *cat, int from, int n)
{
    catalog_fixture_seed(cat, from, n, row_make);
}

/* @n more rows the fast way (one INSERT ... SELECT on the catalog's own
 * connection, code indexed in bulk as catalog_history_seed does), for the
 * queries that must run long; once per catalog. Not chained, which no query
 * here looks at. */
static void bulk_rows(struct catalog *cat, int n)
{
    char sql[1024];

    snprintf(sql, sizeof(sql),
             "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < %d),"
             " base(t) AS (SELECT coalesce(max(recorded_at), %lld) FROM executions)"
             " INSERT INTO executions (id, image, principal, code, code_sha256, timeout_s, status,"
             " queued_at, started_at, finished_at, duration_ms, recorded_at)"
             " SELECT printf('ex_bulk%%017d', i), 'envhub/python:bookworm', 'user' || (i %% 4),"
             " 'import os' || char(10) || 'print(' || i || ')', printf('%%064d', i), 30,"
             " 'succeeded', t + i, t + i, t + i + 5, 5, t + i FROM k, base;"
             " INSERT INTO executions_fts (rowid, code) SELECT seq, code FROM executions"
             " WHERE id LIKE 'ex_bulk%%'",
             n, T0);
    raw_db_exec(cat->db, sql);
}

/* Every row has the word, none the status: the search walks all of them. */
static struct history_filter walk_everything(void)
{
    return (struct history_filter){.status = EXEC_OOM, .text = "import"};
}

static size_t list_n(struct catalog *cat, const struct history_filter *f)
{
    struct history_item *items = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;

    if (catalog_history_list(cat, f, 0, 500, &items, &n, &err) < 0)
        fail_msg("list: %s", err.msg);
    history_items_free(items, n);
    return n;
}

static void assert_budget_error(const struct err *err, const char *ms)
{
    assert_int_equal(err->code, ERR_UNPROCESSABLE);
    assert_non_null(strstr(err->msg, "ENVHUB_QUERY_BUDGET_MS"));
    assert_non_null(strstr(err->msg, ms));
    assert_non_null(strstr(err->msg, "narrow the filter"));
}

static void a_search_over_its_budget_is_stopped_with_a_clear_error(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_filter f = walk_everything();
    struct history_item *items = NULL;
    struct history_stat *stats = NULL, all;
    size_t n = 0;
    struct err err = ERR_INIT;

    bulk_rows(fx->cat, BIG_ROWS);
    assert_int_equal(list_n(fx->cat, &f), 0); /* no budget (the default): it completes */

    catalog_set_query_budget(fx->cat, 1);
    assert_int_equal(catalog_history_list(fx->cat, &f, 0, 50, &items, &n, &err), -1);
    assert_budget_error(&err, "1 ms");
    assert_null(items);

    /* statistics over every row: the same budget */
    struct history_filter any = {.status = -1};
    err_clear(&err);
    assert_int_equal(
        catalog_history_stats(fx->cat, &any, HISTORY_GROUP_DAY, &stats, &n, &all, &err), -1);
    assert_budget_error(&err, "1 ms");

    /* a narrow query fits in it, on the same pooled connections */
    struct history_filter one = {.status = -1, .principal = "user1"};
    assert_int_equal(catalog_history_list(fx->cat, &one, 0, 5, &items, &n, &err), 0);
    assert_int_equal(n, 5);
    history_items_free(items, n);

    /* the handler left with the read: no budget again, the same search completes */
    catalog_set_query_budget(fx->cat, 0);
    assert_int_equal(list_n(fx->cat, &f), 0);
}

static void an_export_batch_over_its_budget_fails_the_export(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_filter f = walk_everything();
    struct history_export *x = NULL;
    struct history_item *items = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;

    bulk_rows(fx->cat, BIG_ROWS);
    catalog_set_query_budget(fx->cat, 1);
    assert_int_equal(catalog_history_export_open(fx->cat, &f, &x, &err), 0);
    assert_int_equal(catalog_history_export_next(x, 1000, &items, &n, &err), -1);
    assert_budget_error(&err, "1 ms");
    catalog_history_export_close(x);
}

/* ---- a read in progress does not hold up the writer ---- */

struct reader {
    struct catalog *cat;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool reading; /* a row read, its snapshot held */
    bool finish;  /* the writer is done: end the read */
    int rows;     /* rows the read saw in all */
    int rc;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    struct history_filter f = {.status = -1};
    struct err err = ERR_INIT;
    sqlite3_stmt *st = NULL;
    struct catalog_read rd = {.db = NULL};

    r->rc = catalog_read_begin(r->cat, &rd, CATALOG_READ_POOLED, &err);
    if (r->rc == 0)
        r->rc = history_query_prepare(rd.db, &f, 0, 1000, 0, HISTORY_SQL_PAGE, &st, &err);
    int step = r->rc == 0 ? sqlite3_step(st) : SQLITE_ERROR;
    r->rows = step == SQLITE_ROW;

    pthread_mutex_lock(&r->lock);
    r->reading = true;
    pthread_cond_broadcast(&r->changed);
    while (!r->finish)
        pthread_cond_wait(&r->changed, &r->lock);
    pthread_mutex_unlock(&r->lock);

    while (step == SQLITE_ROW && (step = sqlite3_step(st)) == SQLITE_ROW)
        r->rows++;
    if (step != SQLITE_DONE)
        r->rc = -1;
    sqlite3_finalize(st);
    catalog_read_end(&rd);
    return NULL;
}

struct writer {
    struct catalog *cat;
    pthread_mutex_t *lock;
    pthread_cond_t *changed;
    bool done;
    int version;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct err err = ERR_INIT;

    seed_rows(w->cat, 1000, 3);
    if (catalog_schema_version(w->cat, &w->version, &err) < 0) /* what /health asks */
        w->version = -1;
    pthread_mutex_lock(w->lock);
    w->done = true;
    pthread_cond_broadcast(w->changed);
    pthread_mutex_unlock(w->lock);
    return NULL;
}

static void a_write_completes_while_a_read_is_in_progress(void **state)
{
    struct catalog_fixture *fx = *state;
    struct reader r = {.cat = fx->cat};
    struct writer w = {.cat = fx->cat, .lock = &r.lock, .changed = &r.changed};
    struct history_filter any = {.status = -1};
    pthread_t rt, wt;

    seed_rows(fx->cat, 0, 10);
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.changed, NULL);
    assert_int_equal(pthread_create(&rt, NULL, reader_main, &r), 0);
    pthread_mutex_lock(&r.lock);
    while (!r.reading)
        pthread_cond_wait(&r.changed, &r.lock);
    pthread_mutex_unlock(&r.lock);

    /* The reader holds its statement open. The writer must finish anyway;
     * a guard of a minute turns a writer stuck behind the read into a
     * failure instead of a hang (it is no measure of speed). */
    assert_int_equal(pthread_create(&wt, NULL, writer_main, &w), 0);
    struct timespec until = time_deadline_in(60000);
    int rc = 0;
    pthread_mutex_lock(&r.lock);
    while (!w.done && rc == 0)
        rc = pthread_cond_timedwait(&r.changed, &r.lock, &until);
    bool done = w.done;
    r.finish = true; /* let the reader go either way, so that the test ends */
    pthread_cond_broadcast(&r.changed);
    pthread_mutex_unlock(&r.lock);
    pthread_join(rt, NULL);
    pthread_join(wt, NULL);
    pthread_cond_destroy(&r.changed);
    pthread_mutex_destroy(&r.lock);

    assert_true(done);
    assert_int_equal(w.version, embedded_last_version());
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.rows, 10);                /* its snapshot: from before the write */
    assert_int_equal(list_n(fx->cat, &any), 13); /* the next read sees the write */
}

static void a_pooled_connection_sees_each_new_write(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_filter any = {.status = -1};
    struct history_item it;
    struct err err = ERR_INIT;

    for (int i = 0; i < 5; i++) {
        seed_rows(fx->cat, i, 1);
        assert_int_equal(list_n(fx->cat, &any), (size_t)i + 1);
        char id[32];
        snprintf(id, sizeof(id), "ex_reads%016d", i);
        assert_int_equal(catalog_history_get(fx->cat, id, &it, &err), 0);
        char *code = xasprintf("import os\nprint(%d)\n", i);
        assert_string_equal(it.rec.code, code);
        free(code);
        history_item_release(&it);
    }
    /* one connection served them all, and waits for the next read */
    assert_int_equal(fx->cat->readers.n_idle, 1);
    assert_int_equal(fx->cat->readers.busy, 0);
}

static void when_every_place_is_taken_a_read_waits_then_is_busy(void **state)
{
    struct catalog_fixture *fx = *state;
    struct catalog_read held[CATALOG_READERS_MAX];
    struct catalog_read rd = {.db = NULL};
    struct err err = ERR_INIT;
    size_t max = fx->cat->readers.max;

    assert_true(max >= CATALOG_READERS_MIN && max <= CATALOG_READERS_MAX);
    catalog_set_query_budget(fx->cat, 50);
    for (size_t i = 0; i < max; i++) {
        memset(&held[i], 0, sizeof(held[i]));
        assert_int_equal(catalog_read_begin(fx->cat, &held[i], CATALOG_READ_POOLED, &err), 0);
    }
    assert_int_equal(catalog_read_begin(fx->cat, &rd, CATALOG_READ_POOLED, &err), -1);
    assert_int_equal(err.code, ERR_BUSY);
    assert_non_null(strstr(err.msg, "retry"));
    catalog_read_end(&rd);

    /* an export's connection is its own: not one of the places */
    assert_int_equal(catalog_read_begin(fx->cat, &rd, CATALOG_READ_OWN, &err), 0);
    catalog_read_end(&rd);

    catalog_read_end(&held[0]);
    assert_int_equal(catalog_read_begin(fx->cat, &rd, CATALOG_READ_POOLED, &err), 0);
    catalog_read_end(&rd);
    for (size_t i = 1; i < max; i++)
        catalog_read_end(&held[i]);
    assert_int_equal(fx->cat->readers.busy, 0);
    assert_int_equal(fx->cat->readers.n_idle, max);
}

/* ---- a catalog in memory: the shared connection, the same budget ---- */

static void reads_of_a_catalog_in_memory_use_its_connection_with_the_budget(void **state)
{
    struct catalog *cat = NULL;
    struct history_filter f = walk_everything(), any = {.status = -1};
    struct history_export *x = NULL;
    struct history_item *items = NULL;
    struct history_stat *stats = NULL, all;
    size_t n = 0;
    struct err err = ERR_INIT;

    (void)state;
    assert_int_equal(catalog_open(":memory:", &cat, &err), 0);
    seed_rows(cat, 0, 30);
    assert_int_equal(list_n(cat, &any), 30);
    assert_int_equal(catalog_history_stats(cat, &any, HISTORY_GROUP_STATUS, &stats, &n, &all, &err),
                     0);
    assert_int_equal(all.count, 30);
    history_stats_free(stats, n);
    assert_int_equal(catalog_history_export_open(cat, &any, &x, &err), 0);
    assert_int_equal(catalog_history_export_next(x, 100, &items, &n, &err), 0);
    assert_int_equal(n, 30);
    history_items_free(items, n);
    /* between batches the export holds nothing: a write goes on */
    seed_rows(cat, 100, 1);
    catalog_history_export_close(x);

    bulk_rows(cat, BIG_ROWS);
    catalog_set_query_budget(cat, 1);
    assert_int_equal(catalog_history_list(cat, &f, 0, 50, &items, &n, &err), -1);
    assert_budget_error(&err, "1 ms");
    /* the lock was let go and the handler removed: writes and reads go on */
    catalog_set_query_budget(cat, 0);
    seed_rows(cat, 50000, 1);
    assert_int_equal(list_n(cat, &f), 0);
    catalog_close(cat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CATALOG_TEST(a_search_over_its_budget_is_stopped_with_a_clear_error),
        CATALOG_TEST(an_export_batch_over_its_budget_fails_the_export),
        CATALOG_TEST(a_write_completes_while_a_read_is_in_progress),
        CATALOG_TEST(a_pooled_connection_sees_each_new_write),
        CATALOG_TEST(when_every_place_is_taken_a_read_waits_then_is_busy),
        cmocka_unit_test(reads_of_a_catalog_in_memory_use_its_connection_with_the_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_catalog_callbacks.c - what keeps results from being lost
 * across trouble and restarts: the pending result callbacks
 * (catalog/callbacks.c), and catalog_execution_finish against a catalog
 * another connection holds the write lock of (it tries again; past its tries
 * ERR_UNAVAILABLE, and the row is left for startup recovery, which records
 * it interrupted). Real SQLite files in /tmp. */
#include <pthread.h>
#include <time.h>

#include "core/cleanup.h"
#include "tests/unit/catalog_fixture.h"

#include "core/banned.h"

/* The catalog's busy timeout in these tests: short, so that a try ends fast
 * (the pauses between tries stay as they are). */
#define TEST_BUSY_MS 50

static void insert_running(struct catalog *cat, const char *id)
{
    static const char code[] = "print('hello')\n";
    struct execution_record rec = {0};
    struct err err = ERR_INIT;

    rec.id = xstrdup(id);
    rec.image = xstrdup("envhub/python:bookworm");
    rec.principal = xstrdup("alice");
    rec.client_addr = xstrdup("127.0.0.1");
    rec.code = xstrdup(code);
    sha256_hex(code, strlen(code), rec.code_sha256);
    rec.timeout_s = 30;
    rec.status = EXEC_RUNNING;
    rec.exit_code = -1;
    rec.queued_at = 1700000000000;
    rec.started_at = 1700000000005;
    rec.duration_ms = -1;
    assert_int_equal(catalog_execution_insert(cat, &rec, &err), 0);
    execution_record_release(&rec);
}

/* The outcome of @id as a worker would record it: succeeded, one output file. */
static void outcome_init(struct execution_record *rec, const char *id)
{
    static const char code[] = "print('hello')\n";

    memset(rec, 0, sizeof(*rec));
    rec->id = xstrdup(id);
    rec->image = xstrdup("envhub/python:bookworm");
    rec->principal = xstrdup("alice");
    rec->client_addr = xstrdup("127.0.0.1");
    rec->code = xstrdup(code);
    sha256_hex(code, strlen(code), rec->code_sha256);
    rec->timeout_s = 30;
    rec->status = EXEC_SUCCEEDED;
    rec->exit_code = 0;
    rec->queued_at = 1700000000000;
    rec->started_at = 1700000000005;
    rec->finished_at = 1700000000050;
    rec->duration_ms = 45;
    rec->stdout_text = xstrdup("hello\n");
    rec->stdout_len = 6;
    rec->stderr_text = xstrdup("");
    record_add_file(rec, FILE_OUT, "out.txt", 3);
}

static char *status_text(const char *path, const char *id)
{
    sqlite3 *db = raw_open(path);
    char sql[128];

    snprintf(sql, sizeof(sql), "SELECT status FROM executions WHERE id = '%s'", id);
    char *s = raw_db_text(db, sql);
    sqlite3_close(db);
    return s;
}

static int64_t elapsed_ms(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* ---- a second connection holding the write lock ---- */

struct holder {
    const char *path;
    int hold_ms;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool holding;
};

static void *hold_write_lock(void *arg)
{
    struct holder *h = arg;
    sqlite3 *db = raw_open(h->path);
    struct timespec ts = {.tv_sec = h->hold_ms / 1000, .tv_nsec = (h->hold_ms % 1000) * 1000000L};

    raw_db_exec(db, "BEGIN IMMEDIATE");
    pthread_mutex_lock(&h->lock);
    h->holding = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
    nanosleep(&ts, NULL);
    raw_db_exec(db, "COMMIT");
    sqlite3_close(db);
    return NULL;
}

/* Start a thread that holds the write lock of @h->path for @h->hold_ms;
 * returns once it holds it. */
static pthread_t holder_start(struct holder *h)
{
    pthread_t t;

    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    h->holding = false;
    assert_int_equal(pthread_create(&t, NULL, hold_write_lock, h), 0);
    pthread_mutex_lock(&h->lock);
    while (!h->holding)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
    return t;
}

static void holder_join(struct holder *h, pthread_t t)
{
    pthread_join(t, NULL);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
}

static void finish_waits_out_a_write_lock_held_for_a_while(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec;
    struct err err = ERR_INIT;
    struct timespec t0;

    insert_running(fx->cat, "ex_busy");
    sqlite3_busy_timeout(fx->cat->db, TEST_BUSY_MS);
    /* longer than one try (busy timeout) and the first pause together */
    struct holder h = {.path = fx->path, .hold_ms = TEST_BUSY_MS + CATALOG_FINISH_PAUSE_MS + 150};
    pthread_t t = holder_start(&h);
    clock_gettime(CLOCK_MONOTONIC, &t0);

    outcome_init(&rec, "ex_busy");
    int rc = catalog_execution_finish(fx->cat, &rec, &err);
    if (rc < 0)
        fail_msg("catalog_execution_finish: %s", err.msg);
    /* it did wait for the lock: more than one try */
    assert_true(elapsed_ms(&t0) >= h.hold_ms - 20);
    holder_join(&h, t);
    execution_record_release(&rec);

    _cleanup_free_ char *s = status_text(fx->path, "ex_busy");
    assert_string_equal(s, "succeeded");
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM execution_files f JOIN executions e"
                                       " ON e.seq = f.execution_seq WHERE e.id = 'ex_busy'"
                                       " AND f.direction = 'out'"),
                     1);
}

static void finish_past_every_try_is_unavailable_and_recovery_ends_the_row(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec, got;
    struct err err = ERR_INIT;
    int n = -1;
    int64_t all_tries_ms = 0;

    for (int i = 0, pause = CATALOG_FINISH_PAUSE_MS; i < CATALOG_FINISH_TRIES; i++, pause *= 2)
        all_tries_ms += TEST_BUSY_MS + (i + 1 < CATALOG_FINISH_TRIES ? pause : 0);
    insert_running(fx->cat, "ex_stuck");
    sqlite3_busy_timeout(fx->cat->db, TEST_BUSY_MS);
    struct holder h = {.path = fx->path, .hold_ms = (int)all_tries_ms + 1000};
    pthread_t t = holder_start(&h);

    outcome_init(&rec, "ex_stuck");
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), -1);
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "ex_stuck"));
    assert_non_null(strstr(err.msg, "tried 4 times"));
    execution_record_release(&rec);
    holder_join(&h, t);

    /* the row is as it was: running, nothing of the outcome half-written */
    assert_int_equal(catalog_execution_get(fx->cat, "ex_stuck", &got, &err), 0);
    assert_int_equal(got.status, EXEC_RUNNING);
    assert_int_equal(got.finished_at, 0);
    assert_int_equal(got.n_files, 0);
    execution_record_release(&got);

    /* the next start records it interrupted (executor_open does this first) */
    catalog_fixture_reopen(fx);
    assert_int_equal(catalog_recover_executions(fx->cat, 1800000000000, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(catalog_execution_get(fx->cat, "ex_stuck", &got, &err), 0);
    assert_int_equal(got.status, EXEC_INTERRUPTED);
    assert_int_equal(got.finished_at, 1800000000000);
    assert_non_null(got.error);
    execution_record_release(&got);
}

static void finish_does_not_retry_other_errors(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec;
    struct err err = ERR_INIT;
    struct timespec t0;

    insert_running(fx->cat, "ex_dup");
    outcome_init(&rec, "ex_dup");
    record_add_file(&rec, FILE_OUT, "out.txt", 3); /* the same path twice */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_null(strstr(err.msg, "tried"));
    assert_true(elapsed_ms(&t0) < CATALOG_FINISH_PAUSE_MS);
    execution_record_release(&rec);
}

/* ---- pending callbacks ---- */

static void a_callback_is_due_once_its_execution_is_final(void **state)
{
    struct catalog_fixture *fx = *state;
    struct callback_record *due = NULL;
    struct execution_record rec;
    struct err err = ERR_INIT;
    size_t n = 99;
    int64_t next = -1, count = -1;

    insert_running(fx->cat, "ex_cb");
    assert_int_equal(catalog_callback_add(fx->cat, "ex_cb", "http://127.0.0.1:9/done", 1000, &err),
                     0);
    assert_int_equal(catalog_callback_count(fx->cat, &count, &err), 0);
    assert_int_equal(count, 1);

    /* running: not due, and no next time either (its end wakes the thread) */
    assert_int_equal(catalog_callbacks_due(fx->cat, 2000, 16, &due, &n, &next, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(next, 0);
    callback_records_free(due, n);

    outcome_init(&rec, "ex_cb");
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), 0);
    execution_record_release(&rec);
    assert_int_equal(catalog_callbacks_due(fx->cat, 2000, 16, &due, &n, &next, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(due[0].execution_id, "ex_cb");
    assert_string_equal(due[0].url, "http://127.0.0.1:9/done");
    assert_int_equal(due[0].created_at, 1000);
    assert_int_equal(due[0].tries, 0);
    callback_records_free(due, n);

    /* a failed try: not due before its next time, which is reported */
    assert_int_equal(catalog_callback_failed(fx->cat, "ex_cb", 5000, "refused", &err), 0);
    assert_int_equal(catalog_callbacks_due(fx->cat, 2000, 16, &due, &n, &next, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(next, 5000);
    callback_records_free(due, n);

    /* kept across a restart, with its tries */
    catalog_fixture_reopen(fx);
    assert_int_equal(catalog_callbacks_due(fx->cat, 5000, 16, &due, &n, &next, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(due[0].tries, 1);
    callback_records_free(due, n);

    assert_int_equal(catalog_callback_remove(fx->cat, "ex_cb", &err), 0);
    assert_int_equal(catalog_callback_count(fx->cat, &count, &err), 0);
    assert_int_equal(count, 0);
    /* removing one that is gone is fine; failing one is not */
    assert_int_equal(catalog_callback_remove(fx->cat, "ex_cb", &err), 0);
    assert_int_equal(catalog_callback_failed(fx->cat, "ex_cb", 6000, "x", &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
}

static void a_callback_needs_its_execution_and_is_kept_once(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;

    assert_int_equal(catalog_callback_add(fx->cat, "ex_none", "http://127.0.0.1:9/", 1, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "ex_none"));

    insert_running(fx->cat, "ex_twice");
    err_clear(&err);
    assert_int_equal(catalog_callback_add(fx->cat, "ex_twice", "http://127.0.0.1:9/", 1, &err), 0);
    assert_int_equal(catalog_callback_add(fx->cat, "ex_twice", "http://127.0.0.1:9/", 1, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
}

static void due_callbacks_come_earliest_first_and_at_most_max(void **state)
{
    struct catalog_fixture *fx = *state;
    struct callback_record *due = NULL;
    struct err err = ERR_INIT;
    size_t n = 0;
    int64_t next = 0;
    const char *ids[] = {"ex_a", "ex_b", "ex_c"};

    for (size_t i = 0; i < 3; i++) {
        struct execution_record rec;
        insert_running(fx->cat, ids[i]);
        assert_int_equal(
            catalog_callback_add(fx->cat, ids[i], "http://127.0.0.1:9/", 100 - (int64_t)i, &err),
            0);
        outcome_init(&rec, ids[i]);
        assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), 0);
        execution_record_release(&rec);
    }
    assert_int_equal(catalog_callbacks_due(fx->cat, 200, 2, &due, &n, &next, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(due[0].execution_id, "ex_c"); /* made first */
    assert_string_equal(due[1].execution_id, "ex_b");
    callback_records_free(due, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CATALOG_TEST(finish_waits_out_a_write_lock_held_for_a_while),
        CATALOG_TEST(finish_past_every_try_is_unavailable_and_recovery_ends_the_row),
        CATALOG_TEST(finish_does_not_retry_other_errors),
        CATALOG_TEST(a_callback_is_due_once_its_execution_is_final),
        CATALOG_TEST(a_callback_needs_its_execution_and_is_kept_once),
        CATALOG_TEST(due_callbacks_come_earliest_first_and_at_most_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

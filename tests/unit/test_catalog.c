/* tests/unit/test_catalog.c - the public catalog API on real SQLite files in
 * /tmp (and ":memory:"): opening, migrating, the instance id, executions
 * with their file manifests (catalog/executions.c); and the connection's
 * plumbing (catalog/catalog.c): SQLite errors and the transaction helper. */
#include <pthread.h>

#include "tests/unit/catalog_fixture.h"

#include "core/banned.h"

/* A queued execution as the executor would insert it: no environment, no
 * image id, no outcome yet. */
static void record_init(struct execution_record *rec, const char *id)
{
    static const char code[] = "print('hello')\n";

    memset(rec, 0, sizeof(*rec));
    rec->id = xstrdup(id);
    rec->environment = NULL;
    rec->environment_version = 0;
    rec->image = xstrdup("envhub/python:bookworm");
    rec->image_id = NULL;
    rec->principal = xstrdup("alice");
    rec->client_addr = xstrdup("127.0.0.1");
    rec->code = xstrdup(code);
    sha256_hex(code, strlen(code), rec->code_sha256);
    rec->timeout_s = 30;
    rec->status = EXEC_QUEUED;
    rec->exit_code = -1;
    rec->error = NULL;
    rec->queued_at = 1700000000000;
    rec->started_at = 0;
    rec->finished_at = 0;
    rec->duration_ms = -1;
    rec->stdout_text = NULL;
    rec->stderr_text = NULL;
}

static void insert_with_status(struct catalog *cat, const char *id, enum exec_status status)
{
    struct execution_record rec;
    struct err err = ERR_INIT;

    record_init(&rec, id);
    rec.status = status;
    if (status != EXEC_QUEUED)
        rec.started_at = rec.queued_at + 5;
    if (status != EXEC_QUEUED && status != EXEC_RUNNING) {
        rec.finished_at = rec.queued_at + 50;
        rec.exit_code = status == EXEC_SUCCEEDED ? 0 : 1;
        rec.duration_ms = 45;
    }
    assert_int_equal(catalog_execution_insert(cat, &rec, &err), 0);
    execution_record_release(&rec);
}

static enum exec_status status_of(struct catalog *cat, const char *id)
{
    struct execution_record rec;
    struct err err = ERR_INIT;
    enum exec_status s;

    assert_int_equal(catalog_execution_get(cat, id, &rec, &err), 0);
    s = rec.status;
    execution_record_release(&rec);
    return s;
}

/* ---- opening and migrating ---- */

static void open_applies_every_migration_to_a_new_file(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    int version = -1;

    assert_int_equal(catalog_open(fx->path, &fx->cat, &err), 0);
    assert_int_equal(catalog_schema_version(fx->cat, &version, &err), 0);
    assert_int_equal(version, embedded_last_version());

    sqlite3 *db = raw_open(fx->path);
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM schema_migrations"),
                     (int64_t)embedded_count());
    sqlite3_close(db);
}

static void reopen_applies_nothing_and_keeps_the_version(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    int version = -1;
    sqlite3 *db;

    db = raw_open(fx->path);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE schema_migrations SET applied_at = 42", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    catalog_fixture_reopen(fx);
    catalog_fixture_reopen(fx);
    assert_int_equal(catalog_schema_version(fx->cat, &version, &err), 0);
    assert_int_equal(version, embedded_last_version());
    db = raw_open(fx->path);
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM schema_migrations"),
                     (int64_t)embedded_count());
    assert_int_equal(raw_db_int(db, "SELECT max(applied_at) FROM schema_migrations"), 42);
    sqlite3_close(db);
}

static void open_upgrades_a_file_left_one_migration_behind(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    int version = -1;

    sqlite3_close(raw_open_migrated_before(fx->path, NULL));

    assert_int_equal(catalog_open(fx->path, &fx->cat, &err), 0);
    assert_int_equal(catalog_schema_version(fx->cat, &version, &err), 0);
    assert_int_equal(version, embedded_last_version());
}

static void open_refuses_a_file_from_a_newer_build(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    sqlite3 *db;

    db = raw_open(fx->path);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES (9999, 'future', 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    catalog_close(fx->cat);
    fx->cat = NULL;

    assert_int_equal(catalog_open(fx->path, &fx->cat, &err), -1);
    assert_null(fx->cat);
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "schema version 9999, newer than this build's"));
}

static void file_catalog_is_in_wal_mode(void **state)
{
    struct catalog_fixture *fx = *state;
    char *mode;
    sqlite3 *db;

    db = raw_open(fx->path);
    mode = raw_db_text(db, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    free(mode);
    sqlite3_close(db);
}

static void open_in_a_missing_directory_is_unavailable(void **state)
{
    struct catalog *cat = NULL;
    struct err err = ERR_INIT;

    (void)state;
    assert_int_equal(catalog_open("/nonexistent-envhub-dir/x.db", &cat, &err), -1);
    assert_null(cat);
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    assert_string_equal(err.msg,
                        "cannot open catalog '/nonexistent-envhub-dir/x.db': unable to open "
                        "database file");
}

static void open_of_a_file_that_is_not_a_database_is_unavailable(void **state)
{
    struct catalog_fixture *fx = *state;
    struct catalog *cat = NULL;
    struct err err = ERR_INIT;
    char junk[4096];
    FILE *f;

    memset(junk, 'x', sizeof(junk));
    f = fopen(fx->path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
    fclose(f);

    assert_int_equal(catalog_open(fx->path, &cat, &err), -1);
    assert_null(cat);
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "cannot open catalog '/tmp/envhub-test-catalog-"));
    assert_non_null(strstr(err.msg, "file is not a database"));
}

static void memory_catalog_opens_and_migrates(void **state)
{
    struct catalog *cat = NULL;
    struct err err = ERR_INIT;
    int version = -1;
    int64_t n = -1;

    (void)state;
    assert_int_equal(catalog_open(":memory:", &cat, &err), 0);
    assert_int_equal(catalog_schema_version(cat, &version, &err), 0);
    assert_int_equal(version, embedded_last_version());
    assert_int_equal(catalog_execution_count(cat, &n, &err), 0);
    assert_int_equal(n, 0);
    catalog_close(cat);
    catalog_close(NULL); /* NULL is fine */
}

/* ---- instance id ---- */

static void instance_id_is_16_hex_and_stable_across_reopen(void **state)
{
    struct catalog_fixture *fx = *state;
    const char *id = catalog_instance_id(fx->cat);
    char *first;

    assert_non_null(id);
    assert_int_equal(strlen(id), 16);
    assert_int_equal(strspn(id, "0123456789abcdef"), 16);
    first = xstrdup(id);

    catalog_fixture_reopen(fx);
    assert_string_equal(catalog_instance_id(fx->cat), first);
    free(first);
}

static void instance_ids_differ_between_catalogs(void **state)
{
    struct catalog *a = NULL, *b = NULL;
    struct err err = ERR_INIT;

    (void)state;
    assert_int_equal(catalog_open(":memory:", &a, &err), 0);
    assert_int_equal(catalog_open(":memory:", &b, &err), 0);
    assert_string_not_equal(catalog_instance_id(a), catalog_instance_id(b));
    catalog_close(a);
    catalog_close(b);
}

/* ---- executions ---- */

static void execution_round_trip_keeps_fields_nulls_and_files(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec, got;
    struct err err = ERR_INIT;

    record_init(&rec, "ex_000000000000000000000001");
    record_add_file(&rec, FILE_IN, "data/b.csv", 20);
    record_add_file(&rec, FILE_IN, "a.txt", 10);
    record_add_file(&rec, FILE_OUT, "ignored-by-insert.txt", 1);
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), 0);

    /* queued: every "not yet" field reads back as its convention */
    assert_int_equal(catalog_execution_get(fx->cat, rec.id, &got, &err), 0);
    assert_string_equal(got.id, rec.id);
    assert_null(got.environment);
    assert_int_equal(got.environment_version, 0);
    assert_string_equal(got.image, "envhub/python:bookworm");
    assert_null(got.image_id);
    assert_string_equal(got.principal, "alice");
    assert_string_equal(got.client_addr, "127.0.0.1");
    assert_string_equal(got.code, rec.code);
    assert_string_equal(got.code_sha256, rec.code_sha256);
    assert_int_equal(got.timeout_s, 30);
    assert_int_equal(got.status, EXEC_QUEUED);
    assert_int_equal(got.exit_code, -1);
    assert_null(got.error);
    assert_int_equal(got.queued_at, 1700000000000);
    assert_int_equal(got.started_at, 0);
    assert_int_equal(got.finished_at, 0);
    assert_int_equal(got.duration_ms, -1);
    assert_string_equal(got.stdout_text, "");
    assert_string_equal(got.stderr_text, "");
    assert_false(got.stdout_truncated);
    assert_false(got.stderr_truncated);
    assert_int_equal(got.n_files, 2); /* only FILE_IN on insert, ordered by path */
    assert_int_equal(got.files[0].direction, FILE_IN);
    assert_string_equal(got.files[0].path, "a.txt");
    assert_int_equal(got.files[0].size, 10);
    assert_string_equal(got.files[0].sha256, rec.files[1].sha256);
    assert_string_equal(got.files[1].path, "data/b.csv");
    execution_record_release(&got);

    sqlite3 *db = raw_open(fx->path);
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM executions WHERE exit_code IS NULL AND"
                                    " started_at IS NULL AND finished_at IS NULL AND duration_ms IS"
                                    " NULL AND image_id IS NULL AND error IS NULL AND environment"
                                    " IS NULL"),
                     1);
    sqlite3_close(db);

    /* running */
    assert_int_equal(catalog_execution_start(fx->cat, rec.id, 1700000000100, &err), 0);
    assert_int_equal(catalog_execution_get(fx->cat, rec.id, &got, &err), 0);
    assert_int_equal(got.status, EXEC_RUNNING);
    assert_int_equal(got.started_at, 1700000000100);
    assert_int_equal(got.finished_at, 0);
    execution_record_release(&got);

    /* finished, with output files; started_at 0 keeps the stored start */
    rec.status = EXEC_SUCCEEDED;
    rec.exit_code = 0;
    rec.finished_at = 1700000000900;
    rec.duration_ms = 750;
    rec.stdout_text = xstrdup("hello\n");
    rec.stderr_text = xstrdup("warning: x\n");
    rec.stdout_truncated = true;
    rec.image_id = xstrdup("sha256:0123abcd");
    record_add_file(&rec, FILE_OUT, "out/z.png", 300);
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), 0);

    assert_int_equal(catalog_execution_get(fx->cat, rec.id, &got, &err), 0);
    assert_int_equal(got.status, EXEC_SUCCEEDED);
    assert_int_equal(got.exit_code, 0);
    assert_null(got.error);
    assert_int_equal(got.started_at, 1700000000100);
    assert_int_equal(got.finished_at, 1700000000900);
    assert_int_equal(got.duration_ms, 750);
    assert_string_equal(got.stdout_text, "hello\n");
    assert_string_equal(got.stderr_text, "warning: x\n");
    assert_true(got.stdout_truncated);
    assert_false(got.stderr_truncated);
    assert_string_equal(got.image_id, "sha256:0123abcd");
    assert_int_equal(got.n_files, 4); /* in by path, then out by path */
    assert_int_equal(got.files[0].direction, FILE_IN);
    assert_string_equal(got.files[0].path, "a.txt");
    assert_int_equal(got.files[1].direction, FILE_IN);
    assert_string_equal(got.files[1].path, "data/b.csv");
    assert_int_equal(got.files[2].direction, FILE_OUT);
    assert_string_equal(got.files[2].path, "ignored-by-insert.txt");
    assert_int_equal(got.files[3].direction, FILE_OUT);
    assert_string_equal(got.files[3].path, "out/z.png");
    assert_int_equal(got.files[3].size, 300);
    assert_string_equal(got.files[3].sha256, rec.files[3].sha256);
    execution_record_release(&got);

    /* it survives a restart */
    catalog_fixture_reopen(fx);
    assert_int_equal(catalog_execution_get(fx->cat, rec.id, &got, &err), 0);
    assert_int_equal(got.n_files, 4);
    assert_string_equal(got.stdout_text, "hello\n");
    execution_record_release(&got);
    execution_record_release(&rec);
}

static void execution_with_environment_and_error_round_trips(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec, got;
    struct err err = ERR_INIT;

    record_init(&rec, "ex_00000000000000000000env1");
    rec.environment = xstrdup("data-science");
    rec.environment_version = 3;
    rec.status = EXEC_RUNNING;
    rec.started_at = 1700000000050;
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), 0);

    rec.status = EXEC_ERROR;
    rec.error = xstrdup("cannot create the sandbox: no space left");
    rec.finished_at = 1700000000070;
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), 0);

    assert_int_equal(catalog_execution_get(fx->cat, rec.id, &got, &err), 0);
    assert_string_equal(got.environment, "data-science");
    assert_int_equal(got.environment_version, 3);
    assert_int_equal(got.status, EXEC_ERROR);
    assert_string_equal(got.error, "cannot create the sandbox: no space left");
    assert_int_equal(got.exit_code, -1);
    assert_int_equal(got.duration_ms, -1);
    assert_int_equal(got.started_at, 1700000000050);
    assert_int_equal(got.n_files, 0);
    assert_null(got.files);
    execution_record_release(&got);
    execution_record_release(&rec);
}

static void duplicate_execution_id_is_a_conflict_and_changes_nothing(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec, got;
    struct err err = ERR_INIT;
    int64_t n = -1;

    record_init(&rec, "ex_dup");
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), 0);

    free(rec.principal);
    rec.principal = xstrdup("mallory");
    record_add_file(&rec, FILE_IN, "sneaky.txt", 1);
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_non_null(strstr(err.msg, "cannot insert execution 'ex_dup'"));
    assert_non_null(strstr(err.msg, "UNIQUE constraint failed: executions.id"));

    assert_int_equal(catalog_execution_count(fx->cat, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(catalog_execution_get(fx->cat, "ex_dup", &got, &err), 0);
    assert_string_equal(got.principal, "alice");
    assert_int_equal(got.n_files, 0);
    execution_record_release(&got);
    execution_record_release(&rec);
}

static void duplicate_input_path_rolls_the_whole_insert_back(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec;
    struct err err = ERR_INIT;
    int64_t n = -1;

    record_init(&rec, "ex_twice_the_same_file");
    record_add_file(&rec, FILE_IN, "a.txt", 1);
    record_add_file(&rec, FILE_IN, "a.txt", 2);
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_non_null(strstr(err.msg, "cannot record file 'a.txt' of execution"));
    assert_int_equal(catalog_execution_count(fx->cat, &n, &err), 0);
    assert_int_equal(n, 0);
    execution_record_release(&rec);
}

static void failed_finish_leaves_the_execution_as_it_was(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec, got;
    struct err err = ERR_INIT;

    insert_with_status(fx->cat, "ex_finish_fails", EXEC_RUNNING);
    record_init(&rec, "ex_finish_fails");
    rec.status = EXEC_SUCCEEDED;
    rec.exit_code = 0;
    rec.finished_at = rec.queued_at + 10;
    record_add_file(&rec, FILE_OUT, "same.txt", 1);
    record_add_file(&rec, FILE_OUT, "same.txt", 1);
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);

    assert_int_equal(catalog_execution_get(fx->cat, rec.id, &got, &err), 0);
    assert_int_equal(got.status, EXEC_RUNNING);
    assert_int_equal(got.finished_at, 0);
    assert_int_equal(got.n_files, 0);
    execution_record_release(&got);
    execution_record_release(&rec);
}

static void finishing_twice_replaces_the_output_manifest(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec, got;
    struct err err = ERR_INIT;

    insert_with_status(fx->cat, "ex_twice", EXEC_RUNNING);
    record_init(&rec, "ex_twice");
    rec.status = EXEC_FAILED;
    rec.exit_code = 1;
    record_add_file(&rec, FILE_OUT, "first.txt", 1);
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), 0);
    free(rec.files[0].path);
    rec.files[0].path = xstrdup("second.txt");
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), 0);

    assert_int_equal(catalog_execution_get(fx->cat, rec.id, &got, &err), 0);
    assert_int_equal(got.n_files, 1);
    assert_string_equal(got.files[0].path, "second.txt");
    execution_record_release(&got);
    execution_record_release(&rec);
}

static void get_of_an_unknown_execution_is_not_found(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record got;
    struct err err = ERR_INIT;

    memset(&got, 0x5a, sizeof(got));
    assert_int_equal(catalog_execution_get(fx->cat, "ex_nope", &got, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_string_equal(err.msg, "execution 'ex_nope' not found");
    assert_int_equal(((unsigned char *)&got)[0], 0x5a); /* untouched */
}

static void start_and_finish_of_an_unknown_execution_are_not_found(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec;
    struct err err = ERR_INIT;

    assert_int_equal(catalog_execution_start(fx->cat, "ex_nope", 5, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_string_equal(err.msg, "execution 'ex_nope' not found");

    err_clear(&err);
    record_init(&rec, "ex_nope");
    rec.status = EXEC_SUCCEEDED;
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    execution_record_release(&rec);
}

static void start_of_a_finished_execution_is_a_conflict(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;

    insert_with_status(fx->cat, "ex_done", EXEC_SUCCEEDED);
    assert_int_equal(catalog_execution_start(fx->cat, "ex_done", 5, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_string_equal(err.msg, "cannot start execution 'ex_done': it is succeeded already");
    assert_int_equal(status_of(fx->cat, "ex_done"), EXEC_SUCCEEDED);
}

static void insert_with_an_invalid_status_is_refused(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec;
    struct err err = ERR_INIT;

    record_init(&rec, "ex_bad_status");
    rec.status = (enum exec_status)42;
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    execution_record_release(&rec);
}

static void recover_marks_queued_and_running_interrupted_and_keeps_finished(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record got;
    struct err err = ERR_INIT;
    int n = -1;

    insert_with_status(fx->cat, "ex_q", EXEC_QUEUED);
    insert_with_status(fx->cat, "ex_r", EXEC_RUNNING);
    insert_with_status(fx->cat, "ex_s", EXEC_SUCCEEDED);
    insert_with_status(fx->cat, "ex_f", EXEC_FAILED);
    insert_with_status(fx->cat, "ex_t", EXEC_TIMEOUT);

    catalog_fixture_reopen(fx); /* what a restart does */
    assert_int_equal(catalog_recover_executions(fx->cat, 1800000000000, &n, &err), 0);
    assert_int_equal(n, 2);

    assert_int_equal(catalog_execution_get(fx->cat, "ex_r", &got, &err), 0);
    assert_int_equal(got.status, EXEC_INTERRUPTED);
    assert_int_equal(got.finished_at, 1800000000000);
    assert_int_equal(got.started_at, 1700000000005);
    assert_non_null(got.error);
    execution_record_release(&got);
    assert_int_equal(status_of(fx->cat, "ex_q"), EXEC_INTERRUPTED);

    assert_int_equal(catalog_execution_get(fx->cat, "ex_s", &got, &err), 0);
    assert_int_equal(got.status, EXEC_SUCCEEDED);
    assert_int_equal(got.finished_at, 1700000000050);
    assert_null(got.error);
    execution_record_release(&got);
    assert_int_equal(status_of(fx->cat, "ex_f"), EXEC_FAILED);
    assert_int_equal(status_of(fx->cat, "ex_t"), EXEC_TIMEOUT);

    assert_int_equal(catalog_recover_executions(fx->cat, 1800000000001, &n, &err), 0);
    assert_int_equal(n, 0);
}

static void execution_count_counts_every_status(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    int64_t n = -1;

    assert_int_equal(catalog_execution_count(fx->cat, &n, &err), 0);
    assert_int_equal(n, 0);
    for (int s = EXEC_QUEUED; s <= EXEC_INTERRUPTED; s++) {
        char id[32];
        snprintf(id, sizeof(id), "ex_count_%d", s);
        insert_with_status(fx->cat, id, (enum exec_status)s);
    }
    assert_int_equal(catalog_execution_count(fx->cat, &n, &err), 0);
    assert_int_equal(n, EXEC_INTERRUPTED + 1);
}

struct inserter {
    struct catalog *cat;
    int thread;
    int failures;
};

#define THREADS 4
#define PER_THREAD 25

static void *insert_many(void *arg)
{
    struct inserter *in = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        struct execution_record rec;
        struct err err = ERR_INIT;
        char id[32];

        snprintf(id, sizeof(id), "ex_t%d_%d", in->thread, i);
        record_init(&rec, id);
        record_add_file(&rec, FILE_IN, "in.txt", i);
        if (catalog_execution_insert(in->cat, &rec, &err) < 0 ||
            catalog_execution_start(in->cat, id, 1, &err) < 0)
            in->failures++;
        execution_record_release(&rec);
    }
    return NULL;
}

static void threads_share_one_catalog(void **state)
{
    struct catalog_fixture *fx = *state;
    struct inserter in[THREADS];
    pthread_t th[THREADS];
    struct err err = ERR_INIT;
    int64_t n = -1;

    for (int i = 0; i < THREADS; i++) {
        in[i] = (struct inserter){.cat = fx->cat, .thread = i, .failures = 0};
        assert_int_equal(pthread_create(&th[i], NULL, insert_many, &in[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(in[i].failures, 0);
    }
    assert_int_equal(catalog_execution_count(fx->cat, &n, &err), 0);
    assert_int_equal(n, THREADS * PER_THREAD);
}

/* ---- the connection: SQLite errors and transactions ---- */

static void sqlite_errors_translate_to_err_codes(void **state)
{
    static const struct {
        int rc;
        enum err_code code;
    } cases[] = {
        {SQLITE_CONSTRAINT_UNIQUE, ERR_CONFLICT},
        {SQLITE_CONSTRAINT_PRIMARYKEY, ERR_CONFLICT},
        {SQLITE_CONSTRAINT_NOTNULL, ERR_INTERNAL},
        {SQLITE_CONSTRAINT_CHECK, ERR_INTERNAL},
        {SQLITE_BUSY, ERR_UNAVAILABLE},
        {SQLITE_BUSY_SNAPSHOT, ERR_UNAVAILABLE},
        {SQLITE_LOCKED, ERR_UNAVAILABLE},
        {SQLITE_LOCKED_SHAREDCACHE, ERR_UNAVAILABLE},
        {SQLITE_ERROR, ERR_INTERNAL},
        {SQLITE_CORRUPT, ERR_INTERNAL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct err err = ERR_INIT;
        assert_int_equal(catalog_sqlite_err(NULL, cases[i].rc, ERR_OK, &err, "cannot %s", "x"), -1);
        assert_int_equal(err.code, cases[i].code);
    }

    struct err err = ERR_INIT;
    catalog_sqlite_err(NULL, SQLITE_BUSY, ERR_OK, &err, "cannot open catalog '%s'", "a.db");
    assert_string_equal(err.msg, "cannot open catalog 'a.db': database is locked");
    catalog_sqlite_err(NULL, SQLITE_CONSTRAINT_UNIQUE, ERR_UNAVAILABLE, &err, "x");
    assert_int_equal(err.code, ERR_UNAVAILABLE); /* an explicit code wins */
}

/* A database in memory with one table, for the transaction helper. */
static sqlite3 *tx_db(void)
{
    sqlite3 *db = raw_open(":memory:");

    raw_db_exec(db, "CREATE TABLE t (x INTEGER)");
    return db;
}

static void a_transaction_left_without_a_commit_rolls_back(void **state)
{
    sqlite3 *db = tx_db();
    struct err err = ERR_INIT;

    (void)state;
    {
        CATALOG_TX(tx);
        assert_int_equal(catalog_tx_begin(&tx, db, CATALOG_TX_WRITE, &err), 0);
        raw_db_exec(db, "INSERT INTO t VALUES (1)");
        assert_int_equal(sqlite3_get_autocommit(db), 0);
    }
    assert_int_equal(sqlite3_get_autocommit(db), 1);
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM t"), 0);
    {
        CATALOG_TX(tx);
        assert_int_equal(catalog_tx_begin(&tx, db, CATALOG_TX_WRITE, &err), 0);
        raw_db_exec(db, "INSERT INTO t VALUES (2)");
        assert_int_equal(catalog_tx_commit(&tx, &err), 0);
    } /* ending a committed transaction does nothing */
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM t"), 1);
    assert_int_equal(err.code, ERR_OK);
    sqlite3_close(db);
}

static void transactions_do_not_nest(void **state)
{
    sqlite3 *db = tx_db();
    struct err err = ERR_INIT;

    (void)state;
    CATALOG_TX(outer);
    assert_int_equal(catalog_tx_begin(&outer, db, CATALOG_TX_WRITE, &err), 0);
    raw_db_exec(db, "INSERT INTO t VALUES (1)");
    {
        CATALOG_TX(inner);
        assert_int_equal(catalog_tx_begin(&inner, db, CATALOG_TX_READ, &err), -1);
        assert_int_equal(err.code, ERR_INTERNAL);
        assert_non_null(strstr(err.msg, "transactions do not nest"));
    } /* the refused one ends nothing: the outer one goes on */
    assert_int_equal(sqlite3_get_autocommit(db), 0);
    assert_int_equal(catalog_tx_begin(&outer, db, CATALOG_TX_WRITE, &err), -1); /* nor twice */
    assert_int_equal(catalog_tx_commit(&outer, &err), 0);
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM t"), 1);
    sqlite3_close(db);
}

static void a_failed_commit_rolls_back_and_says_why(void **state)
{
    sqlite3 *db = raw_open(":memory:");
    struct err err = ERR_INIT;

    (void)state;
    raw_db_exec(db, "PRAGMA foreign_keys = ON; CREATE TABLE p (id INTEGER PRIMARY KEY);"
                    " CREATE TABLE c (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)");
    {
        CATALOG_TX(tx);
        assert_int_equal(catalog_tx_begin(&tx, db, CATALOG_TX_WRITE, &err), 0);
        raw_db_exec(db, "INSERT INTO c VALUES (7)"); /* checked at the commit */
        assert_int_equal(catalog_tx_commit(&tx, &err), -1);
    }
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_string_equal(err.msg,
                        "cannot commit a catalog transaction: FOREIGN KEY constraint failed");
    assert_int_equal(sqlite3_get_autocommit(db), 1);
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM c"), 0);
    sqlite3_close(db);
}

static void a_write_transaction_waits_for_another_writer_then_is_unavailable(void **state)
{
    struct catalog_fixture *fx = *state;
    sqlite3 *writer = raw_open(fx->path), *db = raw_open(fx->path);
    struct err err = ERR_INIT;

    raw_db_exec(writer, "PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)");
    raw_db_exec(writer, "BEGIN IMMEDIATE; INSERT INTO t VALUES (1)");
    sqlite3_busy_timeout(db, 20);
    {
        CATALOG_TX(tx);
        assert_int_equal(catalog_tx_begin(&tx, db, CATALOG_TX_WRITE, &err), -1);
        assert_int_equal(err.code, ERR_UNAVAILABLE);
        assert_string_equal(err.msg, "cannot begin a catalog transaction: database is locked");
        assert_int_equal(sqlite3_get_autocommit(db), 1);
    }
    {
        CATALOG_TX(tx); /* a reader goes on beside the writer (WAL) */
        assert_int_equal(catalog_tx_begin(&tx, db, CATALOG_TX_READ, &err), 0);
        assert_int_equal(raw_db_int(db, "SELECT count(*) FROM t"), 0);
    }
    raw_db_exec(writer, "COMMIT");
    {
        CATALOG_TX(tx);
        assert_int_equal(catalog_tx_begin(&tx, db, CATALOG_TX_WRITE, &err), 0);
        raw_db_exec(db, "INSERT INTO t VALUES (2)");
        assert_int_equal(catalog_tx_commit(&tx, &err), 0);
    }
    assert_int_equal(raw_db_int(writer, "SELECT count(*) FROM t"), 2);
    sqlite3_close(writer);
    sqlite3_close(db);
}

/* ---- plain functions ---- */

static void status_names_round_trip(void **state)
{
    static const char *const names[] = {"queued",  "running", "succeeded", "failed",
                                        "timeout", "oom",     "error",     "interrupted"};

    (void)state;
    for (int s = EXEC_QUEUED; s <= EXEC_INTERRUPTED; s++) {
        assert_string_equal(exec_status_name((enum exec_status)s), names[s]);
        assert_int_equal(exec_status_parse(names[s]), s);
    }
    assert_int_equal(exec_status_parse("Queued"), -1);
    assert_int_equal(exec_status_parse(""), -1);
    assert_int_equal(exec_status_parse(NULL), -1);
    assert_string_equal(exec_status_name((enum exec_status)99), "unknown");
}

/* Pictures the code showed are a manifest direction of their own
 * (migration 0011): recorded with the outcome, replaced with it, read back
 * first (direction order), and covered by the audit chain. */
static void execution_pictures_are_recorded_as_display(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec, got;
    struct history_verify v;
    struct err err = ERR_INIT;

    assert_string_equal(file_direction_name(FILE_DISPLAY), "display");
    record_init(&rec, "ex_00000000000000000000d151");
    record_add_file(&rec, FILE_IN, "in.csv", 5);
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), 0);
    rec.status = EXEC_FAILED;
    rec.exit_code = 1;
    rec.finished_at = 1700000000900;
    record_add_file(&rec, FILE_DISPLAY, "figure-1.png", 100);
    record_add_file(&rec, FILE_OUT, "figure-1.png", 7); /* the same name, another direction */
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), 0);
    /* a second outcome replaces the first, pictures included */
    rec.status = EXEC_SUCCEEDED;
    rec.exit_code = 0;
    record_add_file(&rec, FILE_DISPLAY, "figure-2.png", 200);
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), 0);

    assert_int_equal(catalog_execution_get(fx->cat, rec.id, &got, &err), 0);
    assert_int_equal(got.n_files, 4);
    assert_int_equal(got.files[0].direction, FILE_DISPLAY);
    assert_string_equal(got.files[0].path, "figure-1.png");
    assert_int_equal(got.files[0].size, 100);
    assert_int_equal(got.files[1].direction, FILE_DISPLAY);
    assert_string_equal(got.files[1].path, "figure-2.png");
    assert_int_equal(got.files[2].direction, FILE_IN);
    assert_int_equal(got.files[3].direction, FILE_OUT);
    assert_int_equal(got.files[3].size, 7);
    execution_record_release(&got);
    assert_int_equal(catalog_history_verify(fx->cat, &v, &err), 0);
    assert_true(v.ok);
    execution_record_release(&rec);
}

static void record_release_frees_everything_and_zeroes(void **state)
{
    static const struct execution_record zero;
    struct execution_record rec;

    (void)state;
    record_init(&rec, "ex_release");
    rec.environment = xstrdup("e");
    rec.image_id = xstrdup("sha256:x");
    rec.error = xstrdup("boom");
    rec.stdout_text = xstrdup("o");
    rec.stderr_text = xstrdup("e");
    record_add_file(&rec, FILE_IN, "a", 1);
    record_add_file(&rec, FILE_OUT, "b", 2);
    execution_record_release(&rec); /* valgrind checks the freeing */
    assert_memory_equal(&rec, &zero, sizeof(rec));
    execution_record_release(&rec); /* twice is fine */
    execution_record_release(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CATALOG_FILE_TEST(open_applies_every_migration_to_a_new_file),
        CATALOG_TEST(reopen_applies_nothing_and_keeps_the_version),
        CATALOG_FILE_TEST(open_upgrades_a_file_left_one_migration_behind),
        CATALOG_TEST(open_refuses_a_file_from_a_newer_build),
        CATALOG_TEST(file_catalog_is_in_wal_mode),
        cmocka_unit_test(open_in_a_missing_directory_is_unavailable),
        CATALOG_FILE_TEST(open_of_a_file_that_is_not_a_database_is_unavailable),
        cmocka_unit_test(memory_catalog_opens_and_migrates),
        CATALOG_TEST(instance_id_is_16_hex_and_stable_across_reopen),
        cmocka_unit_test(instance_ids_differ_between_catalogs),
        CATALOG_TEST(execution_round_trip_keeps_fields_nulls_and_files),
        CATALOG_TEST(execution_pictures_are_recorded_as_display),
        CATALOG_TEST(execution_with_environment_and_error_round_trips),
        CATALOG_TEST(duplicate_execution_id_is_a_conflict_and_changes_nothing),
        CATALOG_TEST(duplicate_input_path_rolls_the_whole_insert_back),
        CATALOG_TEST(failed_finish_leaves_the_execution_as_it_was),
        CATALOG_TEST(finishing_twice_replaces_the_output_manifest),
        CATALOG_TEST(get_of_an_unknown_execution_is_not_found),
        CATALOG_TEST(start_and_finish_of_an_unknown_execution_are_not_found),
        CATALOG_TEST(start_of_a_finished_execution_is_a_conflict),
        CATALOG_TEST(insert_with_an_invalid_status_is_refused),
        CATALOG_TEST(recover_marks_queued_and_running_interrupted_and_keeps_finished),
        CATALOG_TEST(execution_count_counts_every_status),
        CATALOG_TEST(threads_share_one_catalog),
        cmocka_unit_test(sqlite_errors_translate_to_err_codes),
        cmocka_unit_test(a_transaction_left_without_a_commit_rolls_back),
        cmocka_unit_test(transactions_do_not_nest),
        cmocka_unit_test(a_failed_commit_rolls_back_and_says_why),
        CATALOG_FILE_TEST(a_write_transaction_waits_for_another_writer_then_is_unavailable),
        cmocka_unit_test(status_names_round_trip),
        cmocka_unit_test(record_release_frees_everything_and_zeroes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

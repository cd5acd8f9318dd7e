/* tests/unit/test_curation.c - the unified line diff of setup scripts
 * (builder/diff.c); and the catalog side of curation (lifecycle and its
 * events, the executions' warning trigger, run counts and their query plan,
 * package queries) on real SQLite files in /tmp. The version orderings and
 * the filter of GET /packages are tests/unit/test_version.c's. */
#include "builder/builder.h"
#include "core/buf.h"
#include "tests/unit/catalog_fixture.h"

#include "core/banned.h"

#define DAY_MS 86400000LL
#define NOW 1800000000000LL

/* ---- the line diff ---- */

static void diff_is(const char *a, const char *b, const char *want)
{
    char *d = builder_unified_diff(a, b, "x/v1/setup.sh", "x/v2/setup.sh", 3);
    if (strcmp(d, want) != 0)
        fail_msg("diff:\n%s\nwant:\n%s", d, want);
    free(d);
}

static void diff_of_equal_texts_is_empty(void **state)
{
    (void)state;
    diff_is("", "", "");
    diff_is("a\nb\n", "a\nb\n", "");
}

static void diff_shows_one_changed_line_with_context(void **state)
{
    (void)state;
    diff_is("1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\nFIVE\n6\n7\n8\n",
            "--- x/v1/setup.sh\n+++ x/v2/setup.sh\n"
            "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n");
    /* at the start and the end of the text */
    diff_is("a\nb\n", "new\na\nb\n",
            "--- x/v1/setup.sh\n+++ x/v2/setup.sh\n@@ -1,2 +1,3 @@\n+new\n a\n b\n");
    diff_is("a\nb\nc\n", "a\nb\n",
            "--- x/v1/setup.sh\n+++ x/v2/setup.sh\n@@ -1,3 +1,2 @@\n a\n b\n-c\n");
    /* from nothing, to nothing */
    diff_is("", "x\ny\n", "--- x/v1/setup.sh\n+++ x/v2/setup.sh\n@@ -0,0 +1,2 @@\n+x\n+y\n");
    diff_is("x\n", "", "--- x/v1/setup.sh\n+++ x/v2/setup.sh\n@@ -1 +0,0 @@\n-x\n");
}

static void diff_aligns_by_longest_common_subsequence(void **state)
{
    (void)state;
    diff_is("apt-get update\napt-get install -y python3-numpy\nrm -rf /var/lib/apt/lists/*\n",
            "apt-get update\napt-get install -y python3-numpy python3-six\necho done\n"
            "rm -rf /var/lib/apt/lists/*\n",
            "--- x/v1/setup.sh\n+++ x/v2/setup.sh\n@@ -1,3 +1,4 @@\n apt-get update\n"
            "-apt-get install -y python3-numpy\n+apt-get install -y python3-numpy python3-six\n"
            "+echo done\n rm -rf /var/lib/apt/lists/*\n");
    /* a line moved: one delete and one insert around the common part */
    diff_is("a\nb\nc\nd\n", "b\nc\nd\na\n",
            "--- x/v1/setup.sh\n+++ x/v2/setup.sh\n@@ -1,4 +1,4 @@\n-a\n b\n c\n d\n+a\n");
}

static void diff_joins_close_changes_and_splits_far_ones(void **state)
{
    (void)state;
    /* 6 equal lines between two changes: one hunk (<= 2 * 3) */
    diff_is("1\n2\n3\n4\n5\n6\n7\n8\n", "X\n2\n3\n4\n5\n6\n7\nY\n",
            "--- x/v1/setup.sh\n+++ x/v2/setup.sh\n@@ -1,8 +1,8 @@\n-1\n+X\n 2\n 3\n 4\n 5\n"
            " 6\n 7\n-8\n+Y\n");
    /* 7 equal lines between: two hunks */
    diff_is("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "X\n2\n3\n4\n5\n6\n7\n8\nY\n",
            "--- x/v1/setup.sh\n+++ x/v2/setup.sh\n@@ -1,4 +1,4 @@\n-1\n+X\n 2\n 3\n 4\n"
            "@@ -6,4 +6,4 @@\n 6\n 7\n 8\n-9\n+Y\n");
}

static void diff_marks_a_missing_final_newline(void **state)
{
    (void)state;
    diff_is("a\nb", "a\nb\n",
            "--- x/v1/setup.sh\n+++ x/v2/setup.sh\n@@ -1,2 +1,2 @@\n a\n-b\n"
            "\\ No newline at end of file\n+b\n");
}

static void diff_of_huge_texts_replaces_the_middle_whole(void **state)
{
    (void)state;
    struct buf a = BUF_INIT(BUF_UNLIMITED), b = BUF_INIT(BUF_UNLIMITED);
    assert_int_equal(buf_appends(&a, "head\n"), 0);
    assert_int_equal(buf_appends(&b, "head\n"), 0);
    for (int i = 0; i < 3000; i++) {
        assert_int_equal(buf_appendf(&a, "a%d\n", i), 0);
        assert_int_equal(buf_appendf(&b, "b%d\n", i), 0);
    }
    assert_int_equal(buf_appends(&a, "tail\n"), 0);
    assert_int_equal(buf_appends(&b, "tail\n"), 0);
    char *d = builder_unified_diff(buf_str(&a), buf_str(&b), "A", "B", 3);
    assert_non_null(strstr(d, "--- A\n+++ B\n@@ -1,3002 +1,3002 @@\n head\n-a0\n"));
    assert_non_null(strstr(d, "\n-a2999\n+b0\n"));
    assert_non_null(strstr(d, "\n+b2999\n tail\n"));
    free(d);
    buf_release(&a);
    buf_release(&b);
}

/* ---- the catalog ---- */

/* Create @name with build 1 (test script @test) and put it in service with @pkgs. */
static int64_t ready_env(struct catalog *cat, const char *name, const char *test,
                         const struct package_entry *pkgs, size_t n)
{
    struct err err = ERR_INIT;
    struct env_record env = {
        .name = (char *)name,
        .base_image = (char *)"envhub/python:bookworm",
        .setup_script = (char *)"echo hi\n",
        .python_version = (char *)"3.11",
        .created_at = NOW - 200 * DAY_MS,
        .test_script = (char *)test,
    };
    struct build_record b = {
        .environment = (char *)name,
        .base_image = env.base_image,
        .setup_script = env.setup_script,
        .python_version = env.python_version,
        .definition = (char *)"def",
        .image = (char *)"envhub-env/x:v1",
        .queued_at = env.created_at,
        .test_script = (char *)test,
    };
    assert_int_equal(catalog_env_create(cat, &env, &b, &err), 0);
    struct build_record done = {
        .id = b.id,
        .image_id = (char *)"sha256:img",
        .base_image_id = (char *)"sha256:base",
        .finished_at = env.created_at + 1000,
    };
    assert_int_equal(catalog_build_succeed(cat, &done, pkgs, n, &err), 0);
    return b.id;
}

static char *insert_execution(struct catalog *cat, const char *environment, int64_t at)
{
    static int counter;
    struct err err = ERR_INIT;
    struct execution_record rec = {
        .environment = (char *)environment,
        .environment_version = environment ? 1 : 0,
        .image = (char *)"img",
        .code = (char *)"print(1)",
        .timeout_s = 30,
        .status = EXEC_QUEUED,
        .exit_code = -1,
        .duration_ms = -1,
        .queued_at = at,
    };
    rec.id = xasprintf("ex_cur%018d", ++counter);
    sha256_hex(rec.code, strlen(rec.code), rec.code_sha256);
    assert_int_equal(catalog_execution_insert(cat, &rec, &err), 0);
    return rec.id;
}

static char *execution_warning(struct catalog *cat, const char *id)
{
    sqlite3_stmt *st = NULL;
    char *w = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(cat->db, "SELECT warning FROM executions WHERE id = ?", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        w = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return w;
}

/* The newest event of @subject as "action by principal: detail", or "none". */
static char *last_event(struct catalog *cat, const char *subject)
{
    struct event_record *ev = NULL;
    struct err err = ERR_INIT;
    size_t n = 0;

    assert_int_equal(catalog_event_list(cat, subject, 1, &ev, &n, &err), 0);
    char *s = n ? xasprintf("%s by %s: %s", ev[0].action, ev[0].principal, ev[0].detail)
                : xstrdup("none");
    event_records_free(ev, n);
    return s;
}

static void lifecycle_is_stored_and_executions_carry_the_warning(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    struct env_record env = {0};

    ready_env(fx->cat, "old", "import sys\n", NULL, 0);
    ready_env(fx->cat, "new", NULL, NULL, 0);
    assert_int_equal(catalog_env_get(fx->cat, "old", &env, &err), 0);
    assert_int_equal(env.lifecycle, ENV_ACTIVE);
    assert_string_equal(env.test_script, "import sys\n");
    assert_string_equal(env.base_image_id, "sha256:base");
    assert_null(env.warning);
    env_record_release(&env);

    char *before = insert_execution(fx->cat, "old", NOW);
    assert_int_equal(catalog_env_set_lifecycle(fx->cat, "old", ENV_DEPRECATED, "new",
                                               "environment 'old' is deprecated; use 'new'",
                                               NOW + 5, "carol", &err),
                     0);
    char *after = insert_execution(fx->cat, "old", NOW + 10);
    char *other = insert_execution(fx->cat, "new", NOW + 11);
    char *plain = insert_execution(fx->cat, NULL, NOW + 12);
    char *w = execution_warning(fx->cat, after);
    assert_string_equal(w, "environment 'old' is deprecated; use 'new'");
    free(w);
    assert_null(execution_warning(fx->cat, before));
    assert_null(execution_warning(fx->cat, other));
    assert_null(execution_warning(fx->cat, plain));

    assert_int_equal(catalog_env_get(fx->cat, "old", &env, &err), 0);
    assert_int_equal(env.lifecycle, ENV_DEPRECATED);
    assert_string_equal(env.replacement, "new");
    assert_string_equal(env.lifecycle_by, "carol");
    assert_int_equal(env.lifecycle_at, NOW + 5);
    env_record_release(&env);
    char *ev = last_event(fx->cat, "old"); /* written with the change */
    assert_string_equal(ev, "environment.deprecate by carol: replacement new");
    free(ev);

    assert_int_equal(
        catalog_env_set_lifecycle(fx->cat, "nope", ENV_RETIRED, NULL, NULL, NOW, "carol", &err),
        -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    ev = last_event(fx->cat, "nope");
    assert_string_equal(ev, "none");
    free(ev);
    free(before);
    free(after);
    free(other);
    free(plain);
}

static void a_new_version_in_service_clears_images_removed(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    struct env_record env = {0};

    ready_env(fx->cat, "gone", NULL, NULL, 0);
    assert_int_equal(catalog_env_set_lifecycle(fx->cat, "gone", ENV_RETIRED, NULL, "retired", NOW,
                                               "carol", &err),
                     0);
    assert_int_equal(catalog_env_mark_images_removed(fx->cat, "gone", NOW + 1, &err), 0);
    assert_int_equal(catalog_env_get(fx->cat, "gone", &env, &err), 0);
    assert_int_equal(env.images_removed_at, NOW + 1);
    env_record_release(&env);

    char *ev = last_event(fx->cat, "gone");
    assert_string_equal(ev, "environment.retire by carol: ");
    free(ev);
    assert_int_equal(
        catalog_env_set_lifecycle(fx->cat, "gone", ENV_ACTIVE, NULL, NULL, NOW + 2, "carol", &err),
        0);
    struct build_record b = {
        .environment = (char *)"gone",
        .base_image = (char *)"envhub/python:bookworm",
        .setup_script = (char *)"echo hi\n",
        .python_version = (char *)"3.11",
        .definition = (char *)"def",
        .image = (char *)"envhub-env/x:v2",
        .queued_at = NOW + 3,
        .test_script = (char *)"", /* "" is none */
    };
    /* the rebuild of a reinstated environment: the reinstate's event covers it */
    assert_int_equal(catalog_env_queue_build(fx->cat, &b, false, &err), 0);
    ev = last_event(fx->cat, "gone");
    assert_string_equal(ev, "environment.reinstate by carol: ");
    free(ev);
    struct build_record done = {
        .id = b.id, .image_id = (char *)"sha256:img2", .finished_at = NOW + 4};
    assert_int_equal(catalog_build_succeed(fx->cat, &done, NULL, 0, &err), 0);
    assert_int_equal(catalog_env_get(fx->cat, "gone", &env, &err), 0);
    assert_int_equal(env.version, 2);
    assert_int_equal(env.images_removed_at, 0);
    assert_null(env.test_script);
    assert_null(env.warning);
    env_record_release(&env);

    assert_int_equal(catalog_env_set_drift(fx->cat, "gone", NOW + 9, "sha256:newbase", &err), 0);
    assert_int_equal(catalog_env_get(fx->cat, "gone", &env, &err), 0);
    assert_int_equal(env.drift_checked_at, NOW + 9);
    assert_string_equal(env.drift_image_id, "sha256:newbase");
    env_record_release(&env);
}

static void runs_count_the_last_7_30_and_90_days(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    int64_t runs[3];
    static const int days_ago[] = {120, 60, 20, 10, 3, 1};

    ready_env(fx->cat, "used", NULL, NULL, 0);
    ready_env(fx->cat, "other", NULL, NULL, 0);
    for (size_t i = 0; i < sizeof(days_ago) / sizeof(days_ago[0]); i++) {
        free(insert_execution(fx->cat, "used", NOW - days_ago[i] * DAY_MS));
        free(insert_execution(fx->cat, "other", NOW - days_ago[i] * DAY_MS + 1));
    }
    free(insert_execution(fx->cat, NULL, NOW - DAY_MS));
    assert_int_equal(catalog_env_runs(fx->cat, "used", NOW, runs, &err), 0);
    assert_int_equal(runs[0], 2); /* 3 and 1 days ago */
    assert_int_equal(runs[1], 4); /* and 20, 10 */
    assert_int_equal(runs[2], 5); /* and 60 */
    assert_int_equal(catalog_env_runs(fx->cat, "unused", NOW, runs, &err), 0);
    assert_int_equal(runs[0] + runs[1] + runs[2], 0);
    /* nothing recent at all */
    assert_int_equal(catalog_env_runs(fx->cat, "used", NOW + 1000 * DAY_MS, runs, &err), 0);
    assert_int_equal(runs[2], 0);
}

/* The run counts read indexes only: a seek in executions_recorded, a range
 * of executions_env. */
static void runs_query_plans_use_the_indexes(void **state)
{
    struct catalog_fixture *fx = *state;
    static const char *const sql[] = {
        "SELECT seq FROM executions WHERE recorded_at >= 1 ORDER BY recorded_at, seq LIMIT 1",
        "SELECT count(*), coalesce(sum(seq >= 5), 0), coalesce(sum(seq >= 3), 0)"
        " FROM executions WHERE environment = 'x' AND seq >= 1",
        "SELECT b.environment FROM packages p JOIN builds b ON b.id = p.build_id"
        " JOIN environments e ON e.name = b.environment"
        " WHERE lower(replace(replace(p.name, '_', '-'), '.', '-')) = 'numpy'"
        " AND ('pip' IS NULL OR p.manager = 'pip') AND b.status = 'ready'",
    };
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        sqlite3_stmt *st = NULL;
        char *q = xasprintf("EXPLAIN QUERY PLAN %s", sql[i]);
        assert_int_equal(sqlite3_prepare_v2(fx->cat->db, q, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *detail = (const char *)sqlite3_column_text(st, 3);
            if ((strncmp(detail, "SCAN ", 5) == 0 && !strstr(detail, "INDEX")) ||
                strstr(detail, "TEMP B-TREE"))
                fail_msg("%s\n  reads without an index: %s", sql[i], detail);
        }
        sqlite3_finalize(st);
        free(q);
    }
}

static void packages_are_found_by_name_as_pip_compares_them(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    struct package_hit *hits = NULL;
    size_t n = 0;
    const struct package_entry a[] = {
        {(char *)"dpkg", (char *)"python3-numpy", (char *)"1:1.24.2-1"},
        {(char *)"pip", (char *)"NumPy", (char *)"1.24.2"},
        {(char *)"pip", (char *)"zope.interface", (char *)"5.5"},
    };
    const struct package_entry b[] = {{(char *)"pip", (char *)"numpy", (char *)"1.26.4"}};

    ready_env(fx->cat, "alpha", NULL, a, 3);
    ready_env(fx->cat, "beta", NULL, b, 1);
    ready_env(fx->cat, "gamma", NULL, NULL, 0);
    assert_int_equal(catalog_packages_find(fx->cat, "numpy", NULL, &hits, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(hits[0].environment, "alpha");
    assert_string_equal(hits[0].name, "NumPy");
    assert_string_equal(hits[0].version, "1.24.2");
    assert_int_equal(hits[0].environment_version, 1);
    assert_true(hits[0].in_service);
    assert_string_equal(hits[1].environment, "beta");
    package_hits_free(hits, n);

    assert_int_equal(catalog_packages_find(fx->cat, "Zope_Interface", "pip", &hits, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(hits[0].name, "zope.interface");
    package_hits_free(hits, n);

    assert_int_equal(catalog_packages_find(fx->cat, "python3-numpy", "dpkg", &hits, &n, &err), 0);
    assert_int_equal(n, 1);
    package_hits_free(hits, n);
    assert_int_equal(catalog_packages_find(fx->cat, "python3-numpy", "pip", &hits, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(hits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(diff_of_equal_texts_is_empty),
        cmocka_unit_test(diff_shows_one_changed_line_with_context),
        cmocka_unit_test(diff_aligns_by_longest_common_subsequence),
        cmocka_unit_test(diff_joins_close_changes_and_splits_far_ones),
        cmocka_unit_test(diff_marks_a_missing_final_newline),
        cmocka_unit_test(diff_of_huge_texts_replaces_the_middle_whole),
        CATALOG_TEST(lifecycle_is_stored_and_executions_carry_the_warning),
        CATALOG_TEST(a_new_version_in_service_clears_images_removed),
        CATALOG_TEST(runs_count_the_last_7_30_and_90_days),
        CATALOG_TEST(runs_query_plans_use_the_indexes),
        CATALOG_TEST(packages_are_found_by_name_as_pip_compares_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

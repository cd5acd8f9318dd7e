/* tests/unit/test_curation.c - the pure parts of curation: PEP 440 and dpkg
 * version orderings, the version filter of GET /packages, the unified line
 * diff of setup scripts; and the catalog side (lifecycle, the executions'
 * warning trigger, run counts and their query plan, package queries) on
 * real SQLite files in /tmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "builder/builder.h"
#include "catalog/catalog.h"
#include "catalog/catalog_internal.h"
#include "core/buf.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define DAY_MS 86400000LL
#define NOW 1800000000000LL

/* ---- PEP 440 ---- */

static int pep(const char *a, const char *b)
{
    int c = 99;
    if (version_pep440_compare(a, b, &c) < 0)
        fail_msg("'%s' or '%s' did not parse", a, b);
    return c;
}

static void pep440_orders_the_specification_example(void **state)
{
    (void)state;
    /* PEP 440's own ordering example, then a few more */
    static const char *const v[] = {
        "1.0.dev456",    "1.0a1",
        "1.0a2.dev456",  "1.0a12.dev456",
        "1.0a12",        "1.0b1.dev456",
        "1.0b2",         "1.0b2.post345.dev456",
        "1.0b2.post345", "1.0rc1.dev456",
        "1.0rc1",        "1.0",
        "1.0+abc.5",     "1.0+abc.7",
        "1.0+5",         "1.0.post456.dev34",
        "1.0.post456",   "1.0.15",
        "1.1.dev1",      "1.2",
        "1.10",          "2",
        "2.0.1",         "1!0.1",
    };
    size_t n = sizeof(v) / sizeof(v[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int c = pep(v[i], v[j]);
            int want = i < j ? -1 : i > j ? 1 : 0;
            if (c != want)
                fail_msg("compare('%s', '%s') = %d, want %d", v[i], v[j], c, want);
        }
}

static void pep440_normalises_the_usual_spellings(void **state)
{
    (void)state;
    static const char *const same[][2] = {
        {"1.0", "1.0.0"},           {"1.0-RC1", "1.0rc1"},
        {"1.0alpha1", "1.0a1"},     {"1.0.beta.2", "1.0b2"},
        {"1.0c1", "1.0rc1"},        {"1.0pre1", "1.0rc1"},
        {"1.0preview1", "1.0rc1"},  {"v1.0", "1.0"},
        {"1.0-1", "1.0.post1"},     {"1.0-post1", "1.0.post1"},
        {"1.0rev1", "1.0.post1"},   {"1.0r1", "1.0.post1"},
        {"1.0.DEV1", "1.0.dev1"},   {"1.0a", "1.0a0"},
        {"1.0.post", "1.0.post0"},  {"1.0+AbC", "1.0+abc"},
        {"1.0+a-b_c", "1.0+a.b.c"}, {" 1.0 ", "1.0"},
        {"0!1.0", "1.0"},           {"1.0+007", "1.0+7"},
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        if (pep(same[i][0], same[i][1]) != 0)
            fail_msg("'%s' should equal '%s'", same[i][0], same[i][1]);
    assert_true(pep("1.0+abc", "1.0+5") < 0); /* a number after any text */
    assert_true(pep("1.0+1.a", "1.0+1") > 0); /* a longer local after its prefix */
}

static void pep440_refuses_what_is_not_a_version(void **state)
{
    (void)state;
    static const char *const bad[] = {"",
                                      "abc",
                                      "1.0-",
                                      "1..0",
                                      "1.0+",
                                      "1.0+a..b",
                                      "1.0 beta",
                                      "1.0-custom",
                                      "x1.0",
                                      "1.0.*",
                                      "1234567890123456789"};
    int c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (version_pep440_compare(bad[i], "1.0", &c) != -1)
            fail_msg("'%s' parsed as a PEP 440 version", bad[i]);
}

/* ---- dpkg ---- */

static void dpkg_orders_like_dpkg(void **state)
{
    (void)state;
    static const char *const v[] = {
        "0.9",        "1.0~rc1", "1.0~rc1-1", "1.0",   "1.0-1",    "1.0-1+b1",      "1.0-2", "1.0a",
        "1.0+dfsg-1", "1.0.1",   "1.24.2-1",  "1.100", "2.28.1-1", "2.28.1+dfsg-1", "1:0.1",
    };
    size_t n = sizeof(v) / sizeof(v[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int c = version_dpkg_compare(v[i], v[j]);
            int want = i < j ? -1 : i > j ? 1 : 0;
            if (c != want)
                fail_msg("dpkg compare('%s', '%s') = %d, want %d", v[i], v[j], c, want);
        }
    assert_int_equal(version_dpkg_compare("1.01", "1.1"), 0); /* leading zeros */
    assert_int_equal(version_dpkg_compare("0:1.0", "1.0"), 0);
    assert_true(version_dpkg_compare("1.0~~", "1.0~") < 0);
}

/* ---- the filter ---- */

static bool spec_matches(const char *spec, const char *manager, const char *version)
{
    struct version_spec s;
    struct err err = ERR_INIT;
    if (version_spec_parse(spec, &s, &err) < 0)
        fail_msg("'%s' did not parse: %s", spec, err.msg);
    return version_spec_match(&s, manager, version);
}

static void spec_filters_pip_versions(void **state)
{
    (void)state;
    assert_true(spec_matches("<2", "pip", "1.24.2"));
    assert_false(spec_matches("<2", "pip", "2.0.0"));
    assert_false(spec_matches("<2", "pip", "2.0"));
    assert_true(spec_matches("<=2", "pip", "2.0rc1")); /* ordered before 2 */
    assert_false(spec_matches("<2", "pip", "2.0rc1")); /* but <V takes no pre-release of V */
    assert_false(spec_matches("<2", "pip", "2.0.dev1"));
    assert_true(spec_matches("<2rc2", "pip", "2.0rc1"));
    assert_true(spec_matches("<2", "pip", "1.9rc1"));
    assert_false(spec_matches(">1.0", "pip", "1.0.post1")); /* >V takes no post-release of V */
    assert_false(spec_matches(">1.0", "pip", "1.0+local"));
    assert_true(spec_matches(">=1.0", "pip", "1.0.post1"));
    assert_true(spec_matches(">1.0.post1", "pip", "1.0.post2"));
    assert_true(spec_matches("<=2", "pip", "2.0"));
    assert_true(spec_matches(">1.24", "pip", "1.24.2"));
    assert_false(spec_matches(">=1.25", "pip", "1.24.2"));
    assert_true(spec_matches("==1.24.2", "pip", "1.24.2"));
    assert_true(spec_matches("1.24.2", "pip", "1.24.2")); /* a bare version is == */
    assert_true(spec_matches("==1.24.2.0", "pip", "1.24.2"));
    assert_true(spec_matches("!=1.24.3", "pip", "1.24.2"));
    assert_true(spec_matches(">=1.20, <2", "pip", "1.24.2"));
    assert_false(spec_matches(">=1.20,<1.24", "pip", "1.24.2"));
    assert_true(spec_matches("==1.24.*", "pip", "1.24.2"));
    assert_true(spec_matches("==1.24.*", "pip", "1.24"));
    assert_false(spec_matches("==1.24.*", "pip", "1.25.0"));
    assert_true(spec_matches("!=1.24.*", "pip", "1.25.0"));
    assert_true(spec_matches("~=1.24.0", "pip", "1.24.9"));
    assert_false(spec_matches("~=1.24.0", "pip", "1.25.0"));
    assert_false(spec_matches("~=1.24.3", "pip", "1.24.2"));
    /* not PEP 440: the same text only */
    assert_true(spec_matches("==2.0-custom", "pip", "2.0-custom"));
    assert_false(spec_matches("<3", "pip", "2.0-custom"));
    assert_true(spec_matches("!=2.0", "pip", "2.0-custom"));
}

static void spec_filters_dpkg_versions_by_dpkg_order(void **state)
{
    (void)state;
    assert_true(spec_matches("<2", "dpkg", "1.24.2-1"));
    assert_true(spec_matches(">=1.24.2-1", "dpkg", "1.24.2-1+b1"));
    assert_true(spec_matches("<1.0", "dpkg", "1.0~rc1-1"));
    assert_false(spec_matches("<2", "dpkg", "1:1.24.2-1")); /* an epoch outranks */
    assert_true(spec_matches("==1.24.*", "dpkg", "1:1.24.2-1"));
    assert_false(spec_matches("==1.2.*", "dpkg", "1.24.2-1"));
}

/* A prefix with an epoch compares the epoch, then the upstream after it; it
 * matched nothing before (found by tests/fuzz/fuzz_version_spec.c). */
static void spec_dpkg_prefix_with_an_epoch(void **state)
{
    (void)state;
    assert_true(spec_matches("==1:2.*", "dpkg", "1:2.36-9"));
    assert_true(spec_matches("==1:2.*", "dpkg", "1:2"));
    assert_false(spec_matches("==1:2.*", "dpkg", "2.36-9"));
    assert_false(spec_matches("==1:2.*", "dpkg", "2:2.36-9"));
    assert_true(spec_matches("==0:2.*", "dpkg", "2.36-9"));
    assert_true(spec_matches("!=1:2.*", "dpkg", "2.36-9"));
    assert_false(spec_matches("!=1:2.*", "dpkg", "1:2.1"));
}

static void spec_refuses_malformed_filters(void **state)
{
    (void)state;
    static const char *const bad[] = {"",
                                      "<",
                                      "==",
                                      "===1.0",
                                      "==1.*.2",
                                      ">=1.*",
                                      "1 2",
                                      "<2,",
                                      "~=1",
                                      "a;b",
                                      "<2,<3,<4,<5,<6,<7,<8,<9,<10"};
    struct version_spec s;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct err err = ERR_INIT;
        if (version_spec_parse(bad[i], &s, &err) != -1)
            fail_msg("'%s' parsed as a filter", bad[i]);
        assert_int_equal(err.code, ERR_INVALID);
        assert_non_null(strstr(err.msg, "version"));
    }
}

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

struct fixture {
    char path[64];
    struct catalog *cat;
};

static int setup_catalog(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof(*fx));
    struct err err = ERR_INIT;
    snprintf(fx->path, sizeof(fx->path), "/tmp/envhub-test-curation-XXXXXX");
    int fd = mkstemp(fx->path);
    if (fd < 0)
        return -1;
    close(fd);
    if (catalog_open(fx->path, &fx->cat, &err) < 0) {
        fprintf(stderr, "catalog_open: %s\n", err.msg);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown_catalog(void **state)
{
    struct fixture *fx = *state;
    char side[96];
    catalog_close(fx->cat);
    unlink(fx->path);
    snprintf(side, sizeof(side), "%s-wal", fx->path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", fx->path);
    unlink(side);
    free(fx);
    return 0;
}

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

static void lifecycle_is_stored_and_executions_carry_the_warning(void **state)
{
    struct fixture *fx = *state;
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

    assert_int_equal(
        catalog_env_set_lifecycle(fx->cat, "nope", ENV_RETIRED, NULL, NULL, NOW, "carol", &err),
        -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    free(before);
    free(after);
    free(other);
    free(plain);
}

static void a_new_version_in_service_clears_images_removed(void **state)
{
    struct fixture *fx = *state;
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
    assert_int_equal(catalog_env_queue_build(fx->cat, &b, &err), 0);
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
    struct fixture *fx = *state;
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
    struct fixture *fx = *state;
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
    struct fixture *fx = *state;
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
        cmocka_unit_test(pep440_orders_the_specification_example),
        cmocka_unit_test(pep440_normalises_the_usual_spellings),
        cmocka_unit_test(pep440_refuses_what_is_not_a_version),
        cmocka_unit_test(dpkg_orders_like_dpkg),
        cmocka_unit_test(spec_filters_pip_versions),
        cmocka_unit_test(spec_filters_dpkg_versions_by_dpkg_order),
        cmocka_unit_test(spec_dpkg_prefix_with_an_epoch),
        cmocka_unit_test(spec_refuses_malformed_filters),
        cmocka_unit_test(diff_of_equal_texts_is_empty),
        cmocka_unit_test(diff_shows_one_changed_line_with_context),
        cmocka_unit_test(diff_aligns_by_longest_common_subsequence),
        cmocka_unit_test(diff_joins_close_changes_and_splits_far_ones),
        cmocka_unit_test(diff_marks_a_missing_final_newline),
        cmocka_unit_test(diff_of_huge_texts_replaces_the_middle_whole),
        cmocka_unit_test_setup_teardown(lifecycle_is_stored_and_executions_carry_the_warning,
                                        setup_catalog, teardown_catalog),
        cmocka_unit_test_setup_teardown(a_new_version_in_service_clears_images_removed,
                                        setup_catalog, teardown_catalog),
        cmocka_unit_test_setup_teardown(runs_count_the_last_7_30_and_90_days, setup_catalog,
                                        teardown_catalog),
        cmocka_unit_test_setup_teardown(runs_query_plans_use_the_indexes, setup_catalog,
                                        teardown_catalog),
        cmocka_unit_test_setup_teardown(packages_are_found_by_name_as_pip_compares_them,
                                        setup_catalog, teardown_catalog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

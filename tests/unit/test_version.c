/* tests/unit/test_version.c - core/version.c: PEP 440 and dpkg version
 * orderings, and the version filter of GET /packages. Pure functions: no
 * catalog, no files. tests/fuzz/fuzz_version_spec.c checks the properties
 * (orders are total and consistent, "==V" matches V) over random input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/version.h"

#include "core/banned.h"

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

/* ---- what a failure leaves ---- */

static void failures_leave_the_results_alone(void **state)
{
    struct version_spec s = {.n = 99};
    struct err err = ERR_INIT;
    int c = 42;

    (void)state;
    assert_int_equal(version_pep440_compare("1.0", "not a version", &c), -1);
    assert_int_equal(c, 42);
    assert_int_equal(version_spec_parse(">=1.0,===2", &s, &err), -1);
    assert_int_equal(s.n, 99);
    assert_string_equal(err.msg, "version: '===' is not supported; use '=='");
}

static void tilde_equal_is_two_clauses(void **state)
{
    struct version_spec s;
    struct err err = ERR_INIT;

    (void)state;
    assert_int_equal(version_spec_parse("~=1.4.5", &s, &err), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.clauses[0].op, ">=");
    assert_string_equal(s.clauses[0].version, "1.4.5");
    assert_false(s.clauses[0].prefix);
    assert_string_equal(s.clauses[1].op, "==");
    assert_string_equal(s.clauses[1].version, "1.4");
    assert_true(s.clauses[1].prefix);
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
        cmocka_unit_test(failures_leave_the_results_alone),
        cmocka_unit_test(tilde_equal_is_two_clauses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

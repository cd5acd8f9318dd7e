/* tests/unit/test_policy.c - executor_policy_parse (executor/policy.c): an
 * environment's policy against the server's maxima, and its canonical form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/err.h"
#include "executor/executor.h"

#include "core/banned.h"

static int setup_config(void **state)
{
    static struct config cfg;
    char name[] = "test_policy";
    char *argv[] = {name, NULL};
    int argc = 1;
    struct err err = ERR_INIT;

    if (config_load(&cfg, &argc, argv, &err) < 0)
        fail_msg("config: %s", err.msg);
    *state = &cfg;
    return 0;
}

static int teardown_config(void **state)
{
    config_release(*state);
    return 0;
}

static void canonical_form_parses_to_the_same_policy(void **state)
{
    struct config *cfg = *state;
    struct exec_limits a, b;
    char *canon = NULL, *again = NULL;
    struct err err = ERR_INIT;

    assert_int_equal(executor_policy_parse(cfg, "{\"pids\": 64, \"cpu\": 0.5, \"timeout_max\": 10}",
                                           &a, &canon, &err),
                     0);
    assert_string_equal(canon, "{\"cpu\":0.5,\"pids\":64,\"timeout_max\":10}");
    assert_int_equal(a.pids, 64);
    assert_int_equal(a.cpu_millis, 500);
    assert_true(a.timeout_default <= 10);
    assert_int_equal(executor_policy_parse(cfg, canon, &b, &again, &err), 0);
    assert_string_equal(canon, again);
    assert_true(executor_limits_equal(&a, &b));
    free(canon);
    free(again);
}

/* The shape check's message was formatted into itself and came out empty
 * (found by tests/fuzz/fuzz_policy.c). */
static void too_deep_a_policy_says_why(void **state)
{
    struct config *cfg = *state;
    struct exec_limits l;
    struct err err = ERR_INIT;

    assert_int_equal(executor_policy_parse(cfg, "{\"a\": [[[[1]]]]}", &l, NULL, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_non_null(strstr(err.msg, "a: nesting deeper than the limit of 4 levels"));
}

static void an_unknown_field_is_named_on_one_line(void **state)
{
    struct config *cfg = *state;
    struct exec_limits l;
    struct err err = ERR_INIT;

    assert_int_equal(executor_policy_parse(cfg, "{\"a\\nb\": 1}", &l, NULL, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_non_null(strstr(err.msg, "policy.a b: unknown field"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canonical_form_parses_to_the_same_policy),
        cmocka_unit_test(too_deep_a_policy_says_why),
        cmocka_unit_test(an_unknown_field_is_named_on_one_line),
    };
    return cmocka_run_group_tests(tests, setup_config, teardown_config);
}

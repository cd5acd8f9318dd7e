/* tests/unit/test_json_shape.c - json_shape_check (core/json_shape.h): the
 * bounds on nesting, keys, elements, strings and values, decided without
 * recursion, and text within them passed on untouched to the parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/err.h"
#include "core/json_shape.h"
#include "core/xalloc.h"

#include "core/banned.h"

static const struct json_shape_bounds small = {
    .max_depth = 8,
    .max_members = 4,
    .max_items = 5,
    .max_key = 10,
    .max_string = 20,
    .max_values = 30,
};

static int check(const char *text, const struct json_shape_bounds *b, struct err *err)
{
    return json_shape_check(text, strlen(text), b, "body", err);
}

static void refused(const char *text, const struct json_shape_bounds *b, const char *needle)
{
    struct err err = ERR_INIT;
    if (check(text, b, &err) != -1)
        fail_msg("accepted: %s", text);
    assert_int_equal(err.code, ERR_UNPROCESSABLE);
    if (!strstr(err.msg, needle))
        fail_msg("'%s' does not say '%s'", err.msg, needle);
}

static char *nested(size_t depth, char open, char close)
{
    char *s = xmalloc(2 * depth + 1);
    memset(s, open, depth);
    memset(s + depth, close, depth);
    s[2 * depth] = '\0';
    return s;
}

static void depth_at_the_limit_passes_and_one_more_is_refused(void **state)
{
    (void)state;
    struct err err = ERR_INIT;
    char *ok = nested(8, '[', ']'), *deep = nested(9, '[', ']');
    assert_int_equal(check(ok, &small, &err), 0);
    refused(deep, &small, "nesting deeper than the limit of 8 levels");
    free(ok);
    free(deep);
}

static void the_default_depth_is_64_whatever_the_bounds_ask(void **state)
{
    (void)state;
    struct json_shape_bounds b = small;
    b.max_depth = 100000; /* more than the scan's stack: capped */
    b.max_values = 1000000;
    struct err err = ERR_INIT;
    char *ok = nested(64, '[', ']'), *deep = nested(65, '[', ']');
    assert_int_equal(check(ok, &b, &err), 0);
    refused(deep, &b, "limit of 64 levels");
    free(ok);
    free(deep);
}

/* The crash of the issue: {"code":..., "x": 1000 brackets}. The scan is flat,
 * so a megabyte of brackets costs it nothing either. */
static void a_megabyte_of_brackets_is_refused_naming_the_field(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *deep = nested(n / 2, '[', ']');
    char *body = xasprintf("{\"code\":\"print(1)\",\"x\":%s}", deep);
    struct json_shape_bounds b = small;
    b.max_depth = 64;
    b.max_values = 1000;
    refused(body, &b, "x: nesting deeper than the limit of 64 levels");
    free(body);
    free(deep);
}

static void brackets_inside_strings_do_not_count(void **state)
{
    (void)state;
    struct err err = ERR_INIT;
    struct json_shape_bounds b = small;
    b.max_string = 1000;
    char *inner = nested(100, '[', ']');
    char *text = xasprintf("{\"a\":\"%s\\\"{{{\"}", inner);
    assert_int_equal(check(text, &b, &err), 0);
    free(text);
    free(inner);
}

static void an_escaped_quote_does_not_end_a_string(void **state)
{
    (void)state;
    struct err err = ERR_INIT;
    /* if \" ended the string, the [[[[[[[[[ after it would be nesting */
    assert_int_equal(check("[\"a\\\"[[[[[[[[[[\"]", &small, &err), 0);
    /* an escaped backslash does end before the quote */
    refused("[\"a\\\\\",[[[[[[[[[1]]]]]]]]]]", &small, "nesting");
}

static void keys_per_object_are_bounded(void **state)
{
    (void)state;
    struct err err = ERR_INIT;
    assert_int_equal(check("{\"a\":1,\"b\":[1,2],\"c\":{},\"d\":null}", &small, &err), 0);
    refused("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}", &small, "more keys than the limit of 4");
    /* nested objects have their own count */
    assert_int_equal(
        check("{\"a\":{\"a\":1,\"b\":2,\"c\":3},\"b\":{\"a\":1,\"b\":2}}", &small, &err), 0);
}

static void elements_per_array_are_bounded(void **state)
{
    (void)state;
    struct err err = ERR_INIT;
    assert_int_equal(check("[1, \"two\", [3], {\"4\":4}, true]", &small, &err), 0);
    refused("[1,2,3,4,5,6]", &small, "more elements than the limit of 5");
    assert_int_equal(check("[]", &small, &err), 0);
    assert_int_equal(check("[ ]", &small, &err), 0);
}

static void strings_and_keys_are_bounded_as_written(void **state)
{
    (void)state;
    struct err err = ERR_INIT;
    assert_int_equal(check("{\"0123456789\":\"01234567890123456789\"}", &small, &err), 0);
    refused("{\"0123456789x\":1}", &small, "a key longer than the limit of 10 bytes");
    refused("{\"a\":\"01234567890123456789x\"}", &small, "a string longer than the limit of 20");
    /* escapes count as written: 4 \u escapes are 24 bytes */
    refused("[\"\\u0041\\u0041\\u0041\\u0041\"]", &small, "string longer");
    /* a string in an array is a value, not a key */
    refused("[\"0123456789012345678901\"]", &small, "a string longer");
}

static void values_in_all_are_bounded(void **state)
{
    (void)state;
    struct err err = ERR_INIT;
    struct json_shape_bounds b = small;
    b.max_items = 1000;
    b.max_values = 10;
    /* the top value + 9 elements */
    assert_int_equal(check("[1,2,3,4,5,6,7,8,9]", &b, &err), 0);
    refused("[1,2,3,4,5,6,7,8,9,10]", &b, "more values in all than the limit of 10");
    /* spread over several arrays, they add up */
    refused("[[1,2,3],[4,5,6],[7,8]]", &b, "more values");
}

static void the_message_names_the_top_level_field(void **state)
{
    (void)state;
    refused("{\"code\":\"x\",\"files\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}}", &small,
            "files: an object with more keys");
    /* at the top level itself: the name given by the caller */
    refused("[1,2,3,4,5,6]", &small, "body: an array");
    /* a key with unprintable bytes is shown with '?' */
    refused("{\"a\\n\":[[[[[[[[[]]]]]]]]]}", &small, "a\\n: nesting");
}

static void text_within_bounds_parses_as_before(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{}",
        "[]",
        "0",
        "\"s\"",
        "{\"code\":\"print(1)\",\"timeout\":30,\"files\":{\"a.txt\":\"aGk=\"}}",
        "[true,false,null,-1.5e3,\"\\\"\\\\\"]",
    };
    struct json_shape_bounds b = small;
    b.max_values = 100;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct err err = ERR_INIT;
        assert_int_equal(check(good[i], &b, &err), 0);
        json_error_t jerr;
        json_t *doc = json_loads(good[i], JSON_DECODE_ANY, &jerr);
        assert_non_null(doc);
        json_decref(doc);
    }
}

static void malformed_text_is_left_to_the_parser(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "]", "}}}", "{\"a\"", "[1,,2]", "\"unterminated", "\\"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct err err = ERR_INIT;
        assert_int_equal(check(bad[i], &small, &err), 0);
    }
}

/* jansson's own limit is 2048 levels; our civetweb threads crashed near 1000.
 * Everything within the default bounds parses without recursing deeply. */
static void jansson_parses_what_the_default_bounds_let_through(void **state)
{
    (void)state;
    struct json_shape_bounds b = JSON_SHAPE_ENGINE;
    char *ok = nested(64, '{', '}');
    struct err err = ERR_INIT;
    /* {{...}} is not JSON (keys missing), but the scan only bounds shape */
    assert_int_equal(check(ok, &b, &err), 0);
    free(ok);
    char *arrays = nested(64, '[', ']');
    assert_int_equal(check(arrays, &b, &err), 0);
    json_error_t jerr;
    json_t *doc = json_loads(arrays, 0, &jerr);
    assert_non_null(doc);
    json_decref(doc);
    free(arrays);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(depth_at_the_limit_passes_and_one_more_is_refused),
        cmocka_unit_test(the_default_depth_is_64_whatever_the_bounds_ask),
        cmocka_unit_test(a_megabyte_of_brackets_is_refused_naming_the_field),
        cmocka_unit_test(brackets_inside_strings_do_not_count),
        cmocka_unit_test(an_escaped_quote_does_not_end_a_string),
        cmocka_unit_test(keys_per_object_are_bounded),
        cmocka_unit_test(elements_per_array_are_bounded),
        cmocka_unit_test(strings_and_keys_are_bounded_as_written),
        cmocka_unit_test(values_in_all_are_bounded),
        cmocka_unit_test(the_message_names_the_top_level_field),
        cmocka_unit_test(text_within_bounds_parses_as_before),
        cmocka_unit_test(malformed_text_is_left_to_the_parser),
        cmocka_unit_test(jansson_parses_what_the_default_bounds_let_through),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_request.c - web_parse_execute (web/request.c), the
 * validation of POST /execute bodies as the SimplePySandbox contract has it
 * (/work/shared/COMPAT.md): shape and types are 422 (ERR_UNPROCESSABLE),
 * content is 400 (ERR_INVALID), and every message names its field and limit.
 * Small limits keep the oversize cases small. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"
#include "web/web_internal.h"

#include "core/banned.h"

static const struct request_limits lim = {
    .max_code_length = 100,
    .max_file_size = 16,
    .max_files = 3,
    .default_timeout = 30,
    .max_timeout = 300,
    .shape =
        {
            .max_depth = JSON_SHAPE_DEPTH_MAX,
            .max_members = 10000,
            .max_items = 1000,
            .max_key = 4096,
            .max_string = 4096,
            .max_values = 100000,
        },
};

/* Parse @body expecting success; the caller releases *r. */
static void parse_ok(const char *body, bool env_required, struct execute_request *r)
{
    struct err err = ERR_INIT;

    err_set(&err, ERR_BUSY, "sentinel");
    memset(r, 0, sizeof(*r));
    if (web_parse_execute(body, strlen(body), &lim, env_required, r, &err) != 0)
        fail_msg("refused %s: %s", body, err.msg);
    /* success leaves err alone */
    assert_int_equal(err.code, ERR_BUSY);
    assert_string_equal(err.msg, "sentinel");
}

/* Parse @body (len bytes) expecting failure with @code and a message that
 * contains every word given (NULL-terminated list). */
static void parse_fails_len(const char *body, size_t len, bool env_required, enum err_code code,
                            ...)
{
    struct execute_request r;
    struct err err = ERR_INIT;
    va_list ap;
    const char *word;

    memset(&r, 0, sizeof(r));
    if (web_parse_execute(body, len, &lim, env_required, &r, &err) != -1) {
        execute_request_release(&r);
        fail_msg("accepted %.*s", (int)(len > 200 ? 200 : len), body);
    }
    /* nothing handed out on failure */
    assert_null(r.code);
    assert_null(r.files);
    assert_null(r.environment);
    if (err.code != code)
        fail_msg("%.*s: code %s, expected %s (%s)", (int)(len > 200 ? 200 : len), body,
                 err_code_name(err.code), err_code_name(code), err.msg);
    assert_null(strchr(err.msg, '\n')); /* one line, whatever the input held */
    va_start(ap, code);
    while ((word = va_arg(ap, const char *)) != NULL)
        if (!strstr(err.msg, word)) {
            va_end(ap);
            fail_msg("message '%s' does not contain '%s'", err.msg, word);
        }
    va_end(ap);
}

#define parse_fails(body, env_required, code, ...)                                                 \
    parse_fails_len((body), strlen(body), (env_required), (code), __VA_ARGS__)

/* {"code": "print(1)", "files": {name: b64}} built with jansson, so names
 * and contents can hold anything; the caller frees the result. */
static char *body_with_file(const char *name, const char *b64)
{
    json_t *doc = json_pack("{s:s, s:{s:s}}", "code", "print(1)", "files", name, b64);
    assert_non_null(doc);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_non_null(s);
    return s;
}

static void valid_minimal_body_gets_the_default_timeout(void **state)
{
    struct execute_request r;
    (void)state;

    parse_ok("{\"code\": \"print(1)\"}", false, &r);
    assert_string_equal(r.code, "print(1)");
    assert_int_equal(r.code_len, 8);
    assert_int_equal(r.timeout_s, 30);
    assert_null(r.files);
    assert_int_equal(r.n_files, 0);
    assert_null(r.environment);
    execute_request_release(&r);
    assert_null(r.code);
    execute_request_release(&r); /* twice is fine */
    execute_request_release(NULL);
}

static void valid_full_body(void **state)
{
    struct execute_request r;
    (void)state;

    parse_ok("{\"code\": \"print('\\u6570\\u636e')\", \"timeout\": 60, "
             "\"files\": {\"in/data.txt\": \"Zm9vYmFy\", \"empty\": \"\"}, "
             "\"environment\": \"py311\", \"extra\": [1, 2]}",
             true, &r);
    assert_string_equal(r.code, "print('\xe6\x95\xb0\xe6\x8d\xae')");
    assert_int_equal(r.code_len, strlen(r.code));
    assert_int_equal(r.timeout_s, 60);
    assert_string_equal(r.environment, "py311");
    assert_int_equal(r.n_files, 2);
    for (size_t i = 0; i < r.n_files; i++) {
        if (strcmp(r.files[i].path, "in/data.txt") == 0) {
            assert_int_equal(r.files[i].len, 6);
            assert_memory_equal(r.files[i].data, "foobar", 6);
        } else {
            assert_string_equal(r.files[i].path, "empty");
            assert_int_equal(r.files[i].len, 0);
            assert_non_null(r.files[i].data);
        }
    }
    execute_request_release(&r);
}

static void nulls_count_as_absent(void **state)
{
    struct execute_request r;
    (void)state;

    parse_ok("{\"code\": \"x=1\", \"timeout\": null, \"files\": null, \"environment\": null}",
             false, &r);
    assert_int_equal(r.timeout_s, 30);
    assert_int_equal(r.n_files, 0);
    assert_null(r.environment);
    execute_request_release(&r);
}

static void invalid_json_is_422(void **state)
{
    static const char *const bad[] = {
        "",
        "{",
        "{\"code\": ",
        "{\"code\": \"x\",}",
        "{code: \"x\"}",
        "{\"code\": 'x'}",
        "{\"code\": \"x\"} trailing",
        "\xff\xfe{}",
        "{\"code\": \"\xff\"}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_fails(bad[i], false, ERR_UNPROCESSABLE, "JSON", NULL);
}

static void a_body_that_is_not_an_object_is_422(void **state)
{
    static const char *const bad[] = {"[]",  "[{\"code\": \"x\"}]", "\"code\"", "42", "null",
                                      "true"};
    (void)state;

    /* jansson refuses scalars at the top as invalid JSON; either way 422 on "body" */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_fails(bad[i], false, ERR_UNPROCESSABLE, "body", NULL);
    parse_fails("[]", false, ERR_UNPROCESSABLE, "body", "object", NULL);
}

static void missing_code_is_422(void **state)
{
    (void)state;
    parse_fails("{}", false, ERR_UNPROCESSABLE, "code", "required", NULL);
    parse_fails("{\"timeout\": 5, \"files\": {}}", false, ERR_UNPROCESSABLE, "code", NULL);
    parse_fails("{\"Code\": \"x\"}", false, ERR_UNPROCESSABLE, "code", NULL);
}

static void code_of_the_wrong_type_is_422(void **state)
{
    static const char *const bad[] = {
        "{\"code\": 42}", "{\"code\": null}", "{\"code\": []}",
        "{\"code\": {}}", "{\"code\": true}", "{\"code\": [\"print(1)\"]}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_fails(bad[i], false, ERR_UNPROCESSABLE, "code", NULL);
}

static void timeout_of_the_wrong_type_is_422(void **state)
{
    static const char *const bad[] = {
        "{\"code\": \"x\", \"timeout\": \"30\"}", "{\"code\": \"x\", \"timeout\": 30.5}",
        "{\"code\": \"x\", \"timeout\": [30]}",   "{\"code\": \"x\", \"timeout\": {}}",
        "{\"code\": \"x\", \"timeout\": true}",   "{\"code\": \"x\", \"timeout\": 1e300}",
        "{\"code\": \"x\", \"timeout\": 0.999}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_fails(bad[i], false, ERR_UNPROCESSABLE, "timeout", NULL);
}

static void timeout_as_an_integral_real_is_accepted(void **state)
{
    struct execute_request r;
    (void)state;

    parse_ok("{\"code\": \"x\", \"timeout\": 30.0}", false, &r);
    assert_int_equal(r.timeout_s, 30);
    execute_request_release(&r);
    parse_ok("{\"code\": \"x\", \"timeout\": 3e2}", false, &r);
    assert_int_equal(r.timeout_s, 300);
    execute_request_release(&r);
}

static void timeout_bounds_are_1_to_300(void **state)
{
    struct execute_request r;
    (void)state;

    parse_ok("{\"code\": \"x\", \"timeout\": 1}", false, &r);
    assert_int_equal(r.timeout_s, 1);
    execute_request_release(&r);
    parse_ok("{\"code\": \"x\", \"timeout\": 300}", false, &r);
    assert_int_equal(r.timeout_s, 300);
    execute_request_release(&r);

    parse_fails("{\"code\": \"x\", \"timeout\": 0}", false, ERR_UNPROCESSABLE, "timeout", "1",
                "300", NULL);
    parse_fails("{\"code\": \"x\", \"timeout\": 301}", false, ERR_UNPROCESSABLE, "timeout", "1",
                "300", NULL);
    parse_fails("{\"code\": \"x\", \"timeout\": -1}", false, ERR_UNPROCESSABLE, "timeout", NULL);
    parse_fails("{\"code\": \"x\", \"timeout\": 0.0}", false, ERR_UNPROCESSABLE, "timeout", NULL);
    parse_fails("{\"code\": \"x\", \"timeout\": 9223372036854775807}", false, ERR_UNPROCESSABLE,
                "timeout", NULL);
}

static void files_not_an_object_is_422(void **state)
{
    static const char *const bad[] = {
        "{\"code\": \"x\", \"files\": []}",
        "{\"code\": \"x\", \"files\": [{\"a\": \"Zg==\"}]}",
        "{\"code\": \"x\", \"files\": \"Zg==\"}",
        "{\"code\": \"x\", \"files\": 5}",
        "{\"code\": \"x\", \"files\": true}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_fails(bad[i], false, ERR_UNPROCESSABLE, "files", NULL);
}

static void a_file_value_that_is_not_a_string_is_422(void **state)
{
    (void)state;
    parse_fails("{\"code\": \"x\", \"files\": {\"a.txt\": 5}}", false, ERR_UNPROCESSABLE, "files",
                "a.txt", NULL);
    parse_fails("{\"code\": \"x\", \"files\": {\"ok\": \"Zg==\", \"b.bin\": null}}", false,
                ERR_UNPROCESSABLE, "files", "b.bin", NULL);
    parse_fails("{\"code\": \"x\", \"files\": {\"c\": {\"data\": \"Zg==\"}}}", false,
                ERR_UNPROCESSABLE, "files", NULL);
    /* types are checked before content: a bad name next to a bad type is 422 */
    parse_fails("{\"code\": \"x\", \"files\": {\"../x\": \"Zg==\", \"c\": []}}", false,
                ERR_UNPROCESSABLE, "files", NULL);
}

static void environment_not_a_string_is_422(void **state)
{
    (void)state;
    parse_fails("{\"code\": \"x\", \"environment\": 5}", false, ERR_UNPROCESSABLE, "environment",
                NULL);
    parse_fails("{\"code\": \"x\", \"environment\": [\"py\"]}", true, ERR_UNPROCESSABLE,
                "environment", NULL);
    parse_fails("{\"code\": \"x\", \"environment\": {}}", false, ERR_UNPROCESSABLE, "environment",
                NULL);
}

static void environment_required_but_missing_is_422(void **state)
{
    struct execute_request r;
    (void)state;

    parse_fails("{\"code\": \"x\"}", true, ERR_UNPROCESSABLE, "environment", NULL);
    parse_fails("{\"code\": \"x\", \"environment\": null}", true, ERR_UNPROCESSABLE, "environment",
                NULL);
    parse_ok("{\"code\": \"x\", \"environment\": \"data-science\"}", true, &r);
    assert_string_equal(r.environment, "data-science");
    execute_request_release(&r);
}

static void empty_environment_is_400(void **state)
{
    (void)state;
    parse_fails("{\"code\": \"x\", \"environment\": \"\"}", false, ERR_INVALID, "environment",
                NULL);
}

static void empty_or_whitespace_code_is_400(void **state)
{
    static const char *const bad[] = {
        "{\"code\": \"\"}",
        "{\"code\": \" \"}",
        "{\"code\": \"\\n\\t  \\r\\n\"}",
        "{\"code\": \"\\f\\u000b\"}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_fails(bad[i], false, ERR_INVALID, "code", NULL);
}

/* Shape before content: a 422 problem wins over a 400 one. */
static void type_errors_come_before_content_errors(void **state)
{
    (void)state;
    parse_fails("{\"code\": \"\", \"timeout\": \"x\"}", false, ERR_UNPROCESSABLE, "timeout", NULL);
    parse_fails("{\"code\": \"\", \"files\": []}", false, ERR_UNPROCESSABLE, "files", NULL);
    parse_fails("{\"code\": \"\", \"environment\": 1}", false, ERR_UNPROCESSABLE, "environment",
                NULL);
    parse_fails("{\"code\": \" \"}", true, ERR_UNPROCESSABLE, "environment", NULL);
}

static void code_over_max_code_length_is_400(void **state)
{
    char code[200];
    struct buf body = BUF_INIT(BUF_UNLIMITED);
    struct execute_request r;
    (void)state;

    memset(code, 'x', sizeof(code));
    assert_int_equal(buf_appendf(&body, "{\"code\": \"%.*s\"}", 100, code), 0);
    parse_ok(buf_str(&body), false, &r); /* exactly the limit */
    assert_int_equal(r.code_len, 100);
    execute_request_release(&r);

    buf_reset(&body);
    assert_int_equal(buf_appendf(&body, "{\"code\": \"%.*s\"}", 101, code), 0);
    parse_fails(buf_str(&body), false, ERR_INVALID, "code", "MAX_CODE_LENGTH", "100", NULL);
    buf_release(&body);
}

static void file_with_invalid_base64_is_400_naming_the_file(void **state)
{
    static const char *const bad[] = {"!!!!",     "Zg",   "Zg=",  "Zm9v!",
                                      "Zg==Zg==", "Zm9-", "Z===", "\xc3\xa9\xc3\xa9"};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *body = body_with_file("data.txt", bad[i]);
        parse_fails(body, false, ERR_INVALID, "files", "'data.txt'", "base64", NULL);
        free(body);
    }
}

static void base64_with_line_breaks_is_accepted(void **state)
{
    struct execute_request r;
    char *body = body_with_file("wrapped.txt", "Zm9v\nYmFy\r\nYg==\n");
    (void)state;

    parse_ok(body, false, &r);
    assert_int_equal(r.n_files, 1);
    assert_string_equal(r.files[0].path, "wrapped.txt");
    assert_int_equal(r.files[0].len, 7);
    assert_memory_equal(r.files[0].data, "foobarb", 7);
    execute_request_release(&r);
    free(body);
}

static void file_over_max_file_size_is_400(void **state)
{
    struct execute_request r;
    unsigned char raw[2000];
    (void)state;

    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)i;
    /* 16 bytes decoded: exactly the limit */
    char *b64 = base64_encode(raw, 16, NULL);
    char *body = body_with_file("exact.bin", b64);
    parse_ok(body, false, &r);
    assert_int_equal(r.files[0].len, 16);
    assert_memory_equal(r.files[0].data, raw, 16);
    execute_request_release(&r);
    free(body);
    free(b64);

    /* 17 bytes: one over, found while decoding */
    b64 = base64_encode(raw, 17, NULL);
    body = body_with_file("over.bin", b64);
    parse_fails(body, false, ERR_INVALID, "files", "'over.bin'", "MAX_FILE_SIZE", "16", NULL);
    free(body);
    free(b64);

    /* far over: refused before decoding */
    b64 = base64_encode(raw, sizeof(raw), NULL);
    body = body_with_file("big.bin", b64);
    parse_fails(body, false, ERR_INVALID, "files", "'big.bin'", "MAX_FILE_SIZE", NULL);
    free(body);
    free(b64);
}

static void unsafe_file_names_are_400(void **state)
{
    char longname[257];
    (void)state;

    memset(longname, 'n', 256);
    longname[256] = '\0';
    const char *const bad[] = {"../x", "/etc/x", "",  "a\nb", longname, "a/../b", "a//b",
                               "./a",  "a/",     ".", "..",   "a\x7f",  "\x1b[2J"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *body = body_with_file(bad[i], "Zg==");
        parse_fails(body, false, ERR_INVALID, "files", "unsafe", NULL);
        free(body);
    }

    /* 255 bytes is still a name */
    struct execute_request r;
    longname[255] = '\0';
    char *body = body_with_file(longname, "Zg==");
    parse_ok(body, false, &r);
    assert_int_equal(strlen(r.files[0].path), 255);
    execute_request_release(&r);
    free(body);
}

static void a_nul_in_a_file_name_is_400(void **state)
{
    (void)state;
    parse_fails("{\"code\": \"x\", \"files\": {\"a\\u0000b\": \"Zg==\"}}", false, ERR_INVALID,
                "files", "NUL", NULL);
}

static void the_code_file_name_is_reserved(void **state)
{
    char *body = body_with_file(EXEC_CODE_NAME, "Zg==");
    (void)state;

    parse_fails(body, false, ERR_INVALID, "files", EXEC_CODE_NAME, "reserved", NULL);
    free(body);
    /* only that exact name: a folder of that name or a longer name is fine */
    struct execute_request r;
    body = body_with_file("sub/" EXEC_CODE_NAME, "Zg==");
    parse_ok(body, false, &r);
    execute_request_release(&r);
    free(body);
}

static void too_many_files_is_400(void **state)
{
    struct execute_request r;
    (void)state;

    parse_ok("{\"code\": \"x\", \"files\": {\"a\": \"\", \"b\": \"\", \"c\": \"\"}}", false, &r);
    assert_int_equal(r.n_files, 3);
    execute_request_release(&r);
    parse_fails(
        "{\"code\": \"x\", \"files\": {\"a\": \"\", \"b\": \"\", \"c\": \"\", \"d\": \"\"}}", false,
        ERR_INVALID, "files", "ENVHUB_MAX_FILES", "3", NULL);
}

/* A failure after some files were decoded frees them (valgrind checks). */
static void a_bad_file_after_good_ones_frees_everything(void **state)
{
    (void)state;
    parse_fails("{\"code\": \"x\", \"files\": {\"a\": \"Zm9v\", \"b\": \"YmFy\", \"c\": \"!!\"}}",
                false, ERR_INVALID, "'c'", NULL);
    parse_fails("{\"code\": \"x\", \"files\": {\"a\": \"Zm9v\", \"../b\": \"YmFy\"}}", false,
                ERR_INVALID, "../b", NULL);
}

static void the_length_is_respected(void **state)
{
    struct execute_request r;
    struct err err = ERR_INIT;
    const char *body = "{\"code\": \"print(1)\"}{\"garbage\"";
    (void)state;

    memset(&r, 0, sizeof(r));
    assert_int_equal(web_parse_execute(body, 20, &lim, false, &r, &err), 0);
    assert_string_equal(r.code, "print(1)");
    execute_request_release(&r);
    parse_fails_len(body, strlen(body), false, ERR_UNPROCESSABLE, "JSON", NULL);
}

/* 1000 nested arrays in an extra field took the server down; the shape
 * check now refuses deep nesting before jansson recurses, wherever it is. */
static char *deep_body(const char *prefix, size_t depth, const char *suffix)
{
    struct buf b = BUF_INIT(BUF_UNLIMITED);
    int rc = buf_appends(&b, prefix);
    for (size_t i = 0; i < depth; i++)
        rc |= buf_appends(&b, "[");
    for (size_t i = 0; i < depth; i++)
        rc |= buf_appends(&b, "]");
    rc |= buf_appends(&b, suffix);
    assert_int_equal(rc, 0);
    return buf_detach(&b, NULL);
}

static void deep_nesting_anywhere_is_422_naming_the_field_and_the_limit(void **state)
{
    (void)state;
    for (size_t depth = 100; depth <= 100000; depth *= 10) {
        char *body = deep_body("{\"code\":\"print(1)\",\"x\":", depth, "}");
        parse_fails(body, false, ERR_UNPROCESSABLE, "x:", "64 levels", NULL);
        free(body);
        body = deep_body("{\"code\":\"print(1)\",\"files\":{\"a\":", depth, "}}");
        parse_fails(body, false, ERR_UNPROCESSABLE, "files:", "64 levels", NULL);
        free(body);
        body = deep_body("", depth, "");
        parse_fails(body, false, ERR_UNPROCESSABLE, "body:", "64 levels", NULL);
        free(body);
    }
    /* 63 levels under the object are fine (the object itself is the 64th) */
    char *body = deep_body("{\"code\":\"print(1)\",\"x\":", 63, "}");
    struct execute_request r;
    parse_ok(body, false, &r);
    execute_request_release(&r);
    free(body);
}

static void json_object_refuses_deep_large_and_non_objects(void **state)
{
    (void)state;
    json_t *doc = NULL;
    struct err err = ERR_INIT;
    char *body = deep_body("{\"policy\":", 5000, "}");
    assert_int_equal(web_json_object(body, strlen(body), 0, &lim.shape, NULL, &doc, &err), -1);
    assert_int_equal(err.code, ERR_UNPROCESSABLE);
    assert_non_null(strstr(err.msg, "policy: nesting deeper than the limit of 64 levels"));
    assert_null(doc);
    free(body);
    err_clear(&err);
    assert_int_equal(web_json_object("[1]", 3, 0, &lim.shape, "{name, role}", &doc, &err), -1);
    assert_string_equal(err.msg, "body: must be a JSON object {name, role}");
    err_clear(&err);
    assert_int_equal(web_json_object("{\"a\":", 5, 0, &lim.shape, NULL, &doc, &err), -1);
    assert_non_null(strstr(err.msg, "invalid JSON at line 1"));
    /* an empty body is an empty object */
    assert_int_equal(web_json_object("", 0, 0, &lim.shape, NULL, &doc, &err), 0);
    assert_true(json_is_object(doc) && json_object_size(doc) == 0);
    json_decref(doc);
}

/* A bare CR in a build log line (an acceptance check's output) ended the
 * SSE field, and what followed could read as "event: end". */
static void sse_data_splits_every_line_break_into_fields(void **state)
{
    (void)state;
    static const struct {
        const char *text, *event;
    } cases[] = {
        {"plain", "data: plain\n\n"},
        {"", "data: \n\n"},
        {"a\revent: end\rdata: {}", "data: a\ndata: event: end\ndata: data: {}\n\n"},
        {"a\r\nb\nc\rd", "data: a\ndata: b\ndata: c\ndata: d\n\n"},
        {"end\n", "data: end\ndata: \n\n"},
        {"\r\r", "data: \ndata: \ndata: \n\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b = BUF_INIT(BUF_UNLIMITED);
        web_sse_data(&b, cases[i].text);
        assert_string_equal(buf_str(&b), cases[i].event);
        /* no line of the event starts anything but a data field */
        for (const char *l = buf_str(&b); *l; l = strchr(l, '\n') + 1)
            assert_true(*l == '\n' || strncmp(l, "data: ", 6) == 0);
        assert_null(strchr(buf_str(&b), '\r'));
        buf_release(&b);
    }
}

/* The modules say what an error is about; the answer words it as
 * SimplePySandbox does, a context prefix kept in front. */
static void compat_texts_word_what_an_error_is_about(void **state)
{
    (void)state;
    struct err err = ERR_INIT;
    char out[512];
    err_about(&err, ERR_NOT_FOUND, ERR_ABOUT_ENV_MISSING, "ml", NULL);
    assert_string_equal(err.msg, "environment 'ml' does not exist");
    web_compat_detail(&err, out, sizeof(out));
    assert_string_equal(out, "环境 'ml' 不存在");
    err_prefix(&err, "jobs[1]");
    web_compat_detail(&err, out, sizeof(out));
    assert_string_equal(out, "jobs[1]: 环境 'ml' 不存在");
    err_about(&err, ERR_CONFLICT, ERR_ABOUT_ENV_EXISTS, "ml", NULL);
    web_compat_detail(&err, out, sizeof(out));
    assert_string_equal(out, "环境 'ml' 已存在");
    err_about(&err, ERR_INVALID, ERR_ABOUT_ENV_NOT_READY, "ml", "building");
    web_compat_detail(&err, out, sizeof(out));
    assert_string_equal(out, "环境 'ml' 状态为 building，无法使用");
    /* any other error is its own message; err_set forgets what it was about */
    err_set(&err, ERR_INVALID, "code: must not be empty");
    assert_int_equal(err.about, ERR_ABOUT_NONE);
    web_compat_detail(&err, out, sizeof(out));
    assert_string_equal(out, "code: must not be empty");
    char *deleted = web_compat_deleted("ml");
    assert_string_equal(deleted, "环境 'ml' 已删除");
    free(deleted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_minimal_body_gets_the_default_timeout),
        cmocka_unit_test(valid_full_body),
        cmocka_unit_test(nulls_count_as_absent),
        cmocka_unit_test(invalid_json_is_422),
        cmocka_unit_test(a_body_that_is_not_an_object_is_422),
        cmocka_unit_test(missing_code_is_422),
        cmocka_unit_test(code_of_the_wrong_type_is_422),
        cmocka_unit_test(timeout_of_the_wrong_type_is_422),
        cmocka_unit_test(timeout_as_an_integral_real_is_accepted),
        cmocka_unit_test(timeout_bounds_are_1_to_300),
        cmocka_unit_test(files_not_an_object_is_422),
        cmocka_unit_test(a_file_value_that_is_not_a_string_is_422),
        cmocka_unit_test(environment_not_a_string_is_422),
        cmocka_unit_test(environment_required_but_missing_is_422),
        cmocka_unit_test(empty_environment_is_400),
        cmocka_unit_test(empty_or_whitespace_code_is_400),
        cmocka_unit_test(type_errors_come_before_content_errors),
        cmocka_unit_test(code_over_max_code_length_is_400),
        cmocka_unit_test(file_with_invalid_base64_is_400_naming_the_file),
        cmocka_unit_test(base64_with_line_breaks_is_accepted),
        cmocka_unit_test(file_over_max_file_size_is_400),
        cmocka_unit_test(unsafe_file_names_are_400),
        cmocka_unit_test(a_nul_in_a_file_name_is_400),
        cmocka_unit_test(the_code_file_name_is_reserved),
        cmocka_unit_test(too_many_files_is_400),
        cmocka_unit_test(a_bad_file_after_good_ones_frees_everything),
        cmocka_unit_test(the_length_is_respected),
        cmocka_unit_test(deep_nesting_anywhere_is_422_naming_the_field_and_the_limit),
        cmocka_unit_test(json_object_refuses_deep_large_and_non_objects),
        cmocka_unit_test(sse_data_splits_every_line_break_into_fields),
        cmocka_unit_test(compat_texts_word_what_an_error_is_about),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

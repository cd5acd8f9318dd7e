/* tests/unit/test_query.c - the pure URL parsers of web/: the query strings
 * of the history (web_history_query_parse, api_executions.c), its page
 * cursors, and the callback_url check of submissions (web_callback_check,
 * api_async.c). */
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

#include "core/config.h"
#include "core/err.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define LIST (QP_FILTERS | QP_PAGE)

/* Parse @query for GET /executions expecting failure; the message holds @word. */
static void query_fails(const char *query, unsigned allowed, const char *word)
{
    struct history_query q;
    struct err err = ERR_INIT;

    if (web_history_query_parse(query, allowed, NULL, &q, &err) == 0)
        fail_msg("accepted '%s'", query);
    history_query_release(&q);
    assert_int_equal(err.code, ERR_INVALID);
    if (!strstr(err.msg, word))
        fail_msg("'%s': message '%s' lacks '%s'", query, err.msg, word);
}

static void query_reads_every_filter(void **state)
{
    struct history_query q;
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(web_history_query_parse(
                         "environment=data%2Dscience&environment_version=2&status=failed&"
                         "principal=ci&since=2026-01-01&until=2026-02-01T00:00:00Z&code_sha256="
                         "ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789&"
                         "q=numpy+array&cursor=c2VxOjEyMw&limit=10",
                         LIST, NULL, &q, &err),
                     0);
    assert_string_equal(q.f.environment, "data-science");
    assert_int_equal(q.f.environment_version, 2);
    assert_int_equal(q.f.status, exec_status_parse("failed"));
    assert_string_equal(q.f.principal, "ci");
    assert_true(q.f.has_since && q.f.has_until && q.f.since < q.f.until);
    assert_string_equal(q.f.code_sha256,
                        "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    assert_string_equal(q.f.text, "numpy array");
    assert_int_equal(q.before_seq, 123);
    assert_int_equal(q.limit, 10);
    history_query_release(&q);
}

static void query_own_principal_wins(void **state)
{
    struct history_query q;
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(web_history_query_parse("user=someone-else", LIST, "me", &q, &err), 0);
    assert_string_equal(q.f.principal, "me");
    history_query_release(&q);
    assert_int_equal(web_history_query_parse(NULL, 0, NULL, &q, &err), 0);
    assert_int_equal(q.n_values, 0);
    assert_int_equal(q.f.status, -1);
    history_query_release(&q);
}

static void query_refuses_what_the_endpoint_does_not_take(void **state)
{
    (void)state;
    query_fails("colour=blue", LIST, "unknown parameter 'colour'");
    query_fails("status=failed&status=error", LIST, "status: given more than once");
    query_fails("user=a&principal=b", LIST, "principal: given more than once");
    query_fails("limit=501", LIST, "limit");
    query_fails("cursor=c2VxOjE", QP_FILTERS | QP_GROUP, "unknown parameter 'cursor'");
    query_fails("limit=1", 0, "this endpoint takes none");
    query_fails("environment_version=3", LIST, "needs environment");
    query_fails("since=2026-02-01&until=2026-01-01", LIST, "until: must be after since");
    query_fails("q=a%00b", LIST, "without NUL bytes");
    query_fails("cursor=seq", LIST, "cursor");
    /* a decoded line break is quoted on the same line */
    query_fails("a%0Ab=1", LIST, "unknown parameter 'a b'");
}

static void cursor_round_trips(void **state)
{
    static const int64_t seqs[] = {1, 9, 123, 1000000, INT64_MAX};
    int64_t back;
    (void)state;

    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        char *c = web_cursor_encode(seqs[i]);
        assert_null(strpbrk(c, "+/="));
        assert_int_equal(web_cursor_decode(c, &back), 0);
        assert_int_equal(back, seqs[i]);
        free(c);
    }
    assert_int_equal(web_cursor_decode("", &back), -1);
    assert_int_equal(web_cursor_decode("c2VxOjA", &back), -1); /* seq:0 */
    assert_int_equal(web_cursor_decode("bm9wZQ", &back), -1);  /* nope */
}

static void callback_check_allows_listed_hosts_only(void **state)
{
    char hosts[] = "localhost, 127.0.0.1,10.1.2.3,::1";
    struct config cfg = {.callback_hosts = hosts};
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(web_callback_check(&cfg, "http://localhost/x", &err), 0);
    assert_int_equal(web_callback_check(&cfg, "http://127.0.0.1:9/x", &err), 0);
    assert_int_equal(web_callback_check(&cfg, "http://10.1.2.3/x", &err), 0);
    assert_int_equal(web_callback_check(&cfg, "http://[::1]:9/x", &err), 0);
    assert_int_equal(web_callback_check(&cfg, "http://127.9.9.9:9/x", &err), -1);
    assert_non_null(strstr(err.msg, "host '127.9.9.9' is not listed in ENVHUB_CALLBACK_HOSTS"));
    assert_int_equal(web_callback_check(&cfg, "http://evil.example/x", &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_non_null(strstr(err.msg, "host 'evil.example' is not listed"));
    /* the grammar is url_parse's (tests/unit/test_url.c) */
    assert_int_equal(web_callback_check(&cfg, "http://localhost/x\r\nA: b", &err), -1);
    assert_non_null(strstr(err.msg, "callback_url: 'http://localhost/x  A: b' holds a space"));
    assert_int_equal(web_callback_check(&cfg, "https://localhost/x", &err), -1);
    assert_non_null(strstr(err.msg, "must be http://"));
}

/* A listed name that resolves to a loopback or private address goes there
 * only when that address is listed too. */
static void callback_check_refuses_a_name_resolving_inside(void **state)
{
    char hosts[] = "localhost";
    struct config cfg = {.callback_hosts = hosts};
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(web_callback_check(&cfg, "http://localhost/x", &err), -1);
    assert_non_null(strstr(err.msg, "a loopback or private address; list"));
    char none[] = "";
    cfg.callback_hosts = none;
    assert_int_equal(web_callback_check(&cfg, "http://127.0.0.1/x", &err), -1);
    assert_non_null(strstr(err.msg, "none by default"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(query_reads_every_filter),
        cmocka_unit_test(query_own_principal_wins),
        cmocka_unit_test(query_refuses_what_the_endpoint_does_not_take),
        cmocka_unit_test(cursor_round_trips),
        cmocka_unit_test(callback_check_allows_listed_hosts_only),
        cmocka_unit_test(callback_check_refuses_a_name_resolving_inside),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_query.c - the pure URL parsers of web/: the query strings
 * of the history (web_history_query_parse, api_executions.c), its page
 * cursors, and the callback_url of submissions (web_callback_url_parse and
 * web_callback_check, api_async.c). */
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

static void callback_url_gives_host_port_and_path(void **state)
{
    char host[256];
    int port = 0;
    const char *path = NULL;
    (void)state;

    assert_int_equal(
        web_callback_url_parse("http://localhost:8080/hook?a=b", host, sizeof(host), &port, &path),
        0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 8080);
    assert_string_equal(path, "/hook?a=b");
    assert_int_equal(web_callback_url_parse("http://127.0.0.1", host, sizeof(host), &port, &path),
                     0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 80);
    assert_string_equal(path, "/");
}

/* The path went into the request line and the host into the Host header as
 * they were: a CR LF there wrote headers of the URL's choosing (found by
 * tests/fuzz/fuzz_callback_url.c). */
static void callback_url_refuses_what_a_request_line_cannot_carry(void **state)
{
    static const char *const bad[] = {
        "http://localhost/x\r\nX-Injected: 1",
        "http://localhost/a b HTTP/1.0",
        "http://localhost\r\nX: y/x",
        "http://user@localhost/x",
        "http://localhost/\xc3\xa9",
        "http://localhost/x\ty",
        "https://localhost/x",
        "http://:80/x",
        "http://localhost:0/x",
        "http://localhost:65536/x",
        "http://[::1]:80/x",
    };
    char host[256];
    int port;
    const char *path;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (web_callback_url_parse(bad[i], host, sizeof(host), &port, &path) == 0)
            fail_msg("accepted '%s'", bad[i]);
}

static void callback_check_allows_loopback_and_listed_hosts(void **state)
{
    char hosts[] = "hooks.example.com,10.1.2.3";
    struct config cfg = {.callback_hosts = hosts};
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(web_callback_check(&cfg, "http://localhost/x", &err), 0);
    assert_int_equal(web_callback_check(&cfg, "http://127.9.9.9:9/x", &err), 0);
    assert_int_equal(web_callback_check(&cfg, "http://hooks.example.com/x", &err), 0);
    assert_int_equal(web_callback_check(&cfg, "http://10.1.2.3/x", &err), 0);
    assert_int_equal(web_callback_check(&cfg, "http://evil.example/x", &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_non_null(strstr(err.msg, "host 'evil.example' is not allowed"));
    assert_int_equal(web_callback_check(&cfg, "http://localhost/x\r\nA: b", &err), -1);
    assert_non_null(strstr(err.msg, "callback_url: 'http://localhost/x  A: b' must be"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(query_reads_every_filter),
        cmocka_unit_test(query_own_principal_wins),
        cmocka_unit_test(query_refuses_what_the_endpoint_does_not_take),
        cmocka_unit_test(cursor_round_trips),
        cmocka_unit_test(callback_url_gives_host_port_and_path),
        cmocka_unit_test(callback_url_refuses_what_a_request_line_cannot_carry),
        cmocka_unit_test(callback_check_allows_loopback_and_listed_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_url.c - url_parse (core/url.h): the one strict grammar of
 * the URLs envhub sends requests to. Whatever it accepts can be written into
 * a request line and a Host header as it is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/url.h"

#include "core/banned.h"

static void parses(const char *text, bool tls, const char *host, int port, const char *target)
{
    struct url u;
    struct err err = ERR_INIT;
    if (url_parse(text, "callback_url", &u, &err) != 0)
        fail_msg("refused %s: %s", text, err.msg);
    assert_int_equal(u.tls, tls);
    assert_string_equal(u.host, host);
    assert_int_equal(u.port, port);
    assert_string_equal(u.target, target);
}

static void refused(const char *text, const char *why)
{
    struct url u;
    struct err err = ERR_INIT;
    if (url_parse(text, "callback_url", &u, &err) != -1)
        fail_msg("accepted %s", text);
    assert_int_equal(err.code, ERR_INVALID);
    assert_null(strchr(err.msg, '\n'));
    assert_null(strchr(err.msg, '\r'));
    if (!strstr(err.msg, why))
        fail_msg("'%s' does not say '%s'", err.msg, why);
    assert_true(strncmp(err.msg, "callback_url: ", 14) == 0);
}

static void plain_urls_parse_into_their_parts(void **state)
{
    (void)state;
    parses("http://127.0.0.1:9000/hook", false, "127.0.0.1", 9000, "/hook");
    parses("http://Hooks.Example.COM/a/b?x=1&y=%20z", false, "hooks.example.com", 80,
           "/a/b?x=1&y=%20z");
    parses("https://hooks.example.com", true, "hooks.example.com", 443, "/");
    parses("http://localhost:8080?only=query", false, "localhost", 8080, "/?only=query");
    parses("HTTP://a-b.c/~user/p;x=1,y@z:w", false, "a-b.c", 80, "/~user/p;x=1,y@z:w");
    parses("http://[::1]:9000/v6", false, "::1", 9000, "/v6");
    /* '@' after the host belongs to the path */
    parses("http://127.0.0.1/@x", false, "127.0.0.1", 80, "/@x");
}

/* The attack of the issue: a request line of the attacker's own. */
static void line_breaks_raw_or_encoded_are_refused(void **state)
{
    (void)state;
    refused("http://127.0.0.1:9/a HTTP/1.1\r\nX-Injected: yes\r\n\r\nDELETE /smuggled HTTP/1.1",
            "space, a control character");
    refused("http://127.0.0.1:9/a\r\nX: y", "control character");
    refused("http://127.0.0.1:9/a\nX: y", "control character");
    refused("http://127.0.0.1:9/a%0d%0aX-Injected:%20yes", "encodes a control character");
    refused("http://127.0.0.1:9/a%0AX", "encodes a control character");
    refused("http://127.0.0.1:9/a%00", "encodes a control character");
    refused("http://127.0.0.1:9/a%7f", "encodes a control character");
    refused("http://127.0.0.1:9/a b", "space");
    refused("http://127.0.0.1:9/caf\xc3\xa9", "not ASCII");
    refused("http://127.0.0.1:9/a\x7f", "control character");
}

static void hosts_users_and_ports_are_checked(void **state)
{
    (void)state;
    refused("http://user:pw@127.0.0.1/", "names a user");
    refused("http://evil.example@127.0.0.1/", "names a user");
    refused("http://[fe80::1%25eth0]/", "IPv6 address that is not one"); /* no zones */
    refused("http:///path", "no valid host");
    refused("http://-bad.example/", "no valid host");
    refused("http://bad-.example/", "no valid host");
    refused("http://a..b/", "no valid host");
    refused("http://a_b.example/", "no valid host");
    refused("http://[::1/", "unterminated IPv6");
    refused("http://[not:v6]/", "IPv6 address that is not one");
    refused("http://[::1]x/", "after its IPv6 address");
    refused("http://127.0.0.1:/", "port");
    refused("http://127.0.0.1:0/", "port");
    refused("http://127.0.0.1:65536/", "port");
    refused("http://127.0.0.1:80a/", "port");
    refused("ftp://127.0.0.1/", "must start with http");
    refused("127.0.0.1:80/", "must start with http");
    refused("http://127.0.0.1/a#frag", "fragment");
    refused("http://127.0.0.1/a%2", "two hex digits");
    refused("http://127.0.0.1/a%zz", "two hex digits");
    refused("http://127.0.0.1/a[b]", "must be percent-encoded");
    refused("http://127.0.0.1/a\"b", "must be percent-encoded");
}

static void long_urls_are_refused(void **state)
{
    (void)state;
    char text[URL_MAX + 32];
    int n = snprintf(text, sizeof(text), "http://127.0.0.1/");
    memset(text + n, 'a', sizeof(text) - (size_t)n - 1);
    text[sizeof(text) - 1] = '\0';
    refused(text, "longer than 2048 bytes");
}

static void the_authority_is_what_a_host_header_needs(void **state)
{
    (void)state;
    struct url u;
    struct err err = ERR_INIT;
    char out[300];
    assert_int_equal(url_parse("http://[::1]/", "x", &u, &err), 0);
    url_authority(&u, out, sizeof(out));
    assert_string_equal(out, "[::1]:80");
    assert_int_equal(url_parse("https://Example.org:8443/p", "x", &u, &err), 0);
    url_authority(&u, out, sizeof(out));
    assert_string_equal(out, "example.org:8443");
}

static void internal_addresses_are_known_as_such(void **state)
{
    (void)state;
    static const char *const internal[] = {
        "127.0.0.1",
        "127.255.0.9",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "not-an-address",
        "",
    };
    static const char *const external[] = {"8.8.8.8",        "172.32.0.1", "172.15.255.255",
                                           "100.128.0.1",    "192.0.2.1",  "2001:db8::1",
                                           "::ffff:8.8.8.8", "169.253.1.1"};
    for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++)
        if (!url_address_internal(internal[i]))
            fail_msg("%s is internal", internal[i]);
    for (size_t i = 0; i < sizeof(external) / sizeof(external[0]); i++)
        if (url_address_internal(external[i]))
            fail_msg("%s is not internal", external[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_urls_parse_into_their_parts),
        cmocka_unit_test(line_breaks_raw_or_encoded_are_refused),
        cmocka_unit_test(hosts_users_and_ports_are_checked),
        cmocka_unit_test(long_urls_are_refused),
        cmocka_unit_test(the_authority_is_what_a_host_header_needs),
        cmocka_unit_test(internal_addresses_are_known_as_such),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

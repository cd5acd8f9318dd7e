/* tests/fuzz/fuzz_callback_url.c - url_parse (core/url.c), the one grammar of
 * the URLs envhub sends requests to, and web_callback_check (web/api_async.c)
 * on top of it: the callback_url of an asynchronous submission, whose parts
 * go into the request line and the Host header of the POST that delivers
 * the result.
 *
 * Input: the URL (up to its first NUL). Properties: a URL that parses gives
 * a non-empty lower-case host of name characters (or a valid IPv6 address),
 * a port from 1 to 65535 and a target that starts with '/' and holds only
 * printable ASCII without spaces and no escape of a control character, so
 * the delivery can never write a second header line; the authority is the
 * host and port; parsing is stable (the parts rebuilt into a URL parse to
 * the same parts); a URL the check accepts parses, is http and names a
 * listed host; a refusal is ERR_INVALID with a one-line message. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>

#include "core/config.h"
#include "core/url.h"
#include "core/xalloc.h"
#include "web/web_internal.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

static bool host_char(char c)
{
    return islower((unsigned char)c) || isdigit((unsigned char)c) || c == '.' || c == '-';
}

static int hexv(char c)
{
    return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* addresses only: a listed name would be looked up in the DNS */
    char allowed_hosts[] = "10.1.2.3,127.0.0.1,192.0.2.7";
    struct config cfg = {.callback_hosts = allowed_hosts};
    char *text = xstrndup((const char *)data, size);
    struct url u;
    struct err err = ERR_INIT;

    if (url_parse(text, "callback_url", &u, &err) == 0) {
        size_t hl = strlen(u.host);
        FUZZ_CHECK(hl > 0 && hl < sizeof(u.host));
        if (u.ipv6) {
            struct in6_addr a6;
            FUZZ_CHECK(inet_pton(AF_INET6, u.host, &a6) == 1);
        } else {
            for (size_t i = 0; i < hl; i++)
                FUZZ_CHECK(host_char(u.host[i]));
        }
        FUZZ_CHECK(u.port >= 1 && u.port <= 65535);
        FUZZ_CHECK(u.target[0] == '/');
        for (const char *p = u.target; *p; p++) {
            FUZZ_CHECK(*p > 0x20 && *p < 0x7f && *p != '#');
            if (*p == '%') {
                FUZZ_CHECK(isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]));
                int v = hexv(p[1]) * 16 + hexv(p[2]);
                FUZZ_CHECK(v >= 0x20 && v != 0x7f);
            }
        }
        char authority[300], again_text[URL_MAX + 400];
        url_authority(&u, authority, sizeof(authority));
        FUZZ_CHECK(!strchr(authority, '\r') && !strchr(authority, '\n'));
        snprintf(again_text, sizeof(again_text), "%s://%s%s", u.tls ? "https" : "http", authority,
                 u.target);
        struct url again;
        struct err err2 = ERR_INIT;
        if (strlen(again_text) <= URL_MAX) {
            FUZZ_CHECK(url_parse(again_text, "callback_url", &again, &err2) == 0);
            FUZZ_CHECK(again.tls == u.tls && again.ipv6 == u.ipv6 && again.port == u.port &&
                       strcmp(again.host, u.host) == 0 && strcmp(again.target, u.target) == 0);
        }
    } else {
        FUZZ_CHECK(err.code == ERR_INVALID);
        fuzz_check_err(&err);
    }

    err_clear(&err);
    if (web_callback_check(&cfg, text, &err) == 0) {
        FUZZ_CHECK(url_parse(text, "callback_url", &u, &err) == 0 && !u.tls);
        FUZZ_CHECK(strcmp(u.host, "10.1.2.3") == 0 || strcmp(u.host, "127.0.0.1") == 0 ||
                   strcmp(u.host, "192.0.2.7") == 0);
    } else {
        FUZZ_CHECK(err.code == ERR_INVALID);
        fuzz_check_err(&err);
    }
    free(text);
    return 0;
}

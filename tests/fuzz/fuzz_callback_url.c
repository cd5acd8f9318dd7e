/* tests/fuzz/fuzz_callback_url.c - web_callback_url_parse and
 * web_callback_check (web/api_async.c): the callback_url of an asynchronous
 * submission, whose host, port and path go into the request line and the
 * Host header of the POST that delivers the result.
 *
 * Input: the URL (up to its first NUL). Properties: a URL that parses gives
 * a non-empty host of name characters only, a port from 1 to 65535 and a
 * path that starts with '/' and holds nothing a request line cannot carry
 * (no space, control byte or non-ASCII byte), so the delivery can never
 * write a second header line; the host is never longer than the buffer; a
 * URL the check accepts parses and names an allowed host; a refusal is
 * ERR_INVALID with a one-line message. */
#include <ctype.h>

#include "core/config.h"
#include "core/xalloc.h"
#include "web/web_internal.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char allowed_hosts[] = "hooks.example.com,10.1.2.3";
    struct config cfg = {.callback_hosts = allowed_hosts};
    char *url = xstrndup((const char *)data, size);
    char host[64];
    int port = -1;
    const char *path = NULL;
    struct err err = ERR_INIT;

    memset(host, 'x', sizeof(host));
    bool parsed = web_callback_url_parse(url, host, sizeof(host), &port, &path) == 0;
    if (parsed) {
        size_t hl = strnlen(host, sizeof(host));
        FUZZ_CHECK(hl > 0 && hl < sizeof(host));
        for (size_t i = 0; i < hl; i++)
            FUZZ_CHECK(host_char(host[i]));
        FUZZ_CHECK(port >= 1 && port <= 65535);
        FUZZ_CHECK(path != NULL && path[0] == '/');
        for (const char *p = path; *p; p++)
            FUZZ_CHECK(*p > 0x20 && *p < 0x7f);
        FUZZ_CHECK(strncmp(url, "http://", 7) == 0);
    }

    if (web_callback_check(&cfg, url, &err) == 0) {
        char big[256];
        FUZZ_CHECK(web_callback_url_parse(url, big, sizeof(big), &port, &path) == 0);
        FUZZ_CHECK(strcmp(big, "localhost") == 0 || strncmp(big, "127.", 4) == 0 ||
                   strcmp(big, "hooks.example.com") == 0 || strcmp(big, "10.1.2.3") == 0);
    } else {
        FUZZ_CHECK(err.code == ERR_INVALID);
        fuzz_check_err(&err);
    }
    free(url);
    return 0;
}

/* tests/fuzz/fuzz_history_query.c - web_history_query_parse and the page
 * cursors (web/api_executions.c): the query strings of GET /executions,
 * /executions/export, /executions/stats and /audit/verify.
 *
 * Input: one byte of choices (bits 0-3: the parameters the endpoint takes,
 * QP_*; bit 4: the caller may only see its own executions), then the query
 * string (up to its first NUL). Its first 8 bytes are also a seq for the
 * cursor round trip. Properties: a query that parses gives a limit within
 * its range, a status that exists, a version only with an environment, since
 * before until, lower-case sha256, search text with something to search
 * for, and the caller's own principal when it is limited to it; its cursor
 * (if any) is one web_cursor_encode makes for the same seq; any seq >= 1
 * encodes to URL-safe text that decodes to it. A failure is ERR_INVALID with
 * a one-line message. Released either way. */
#include <ctype.h>

#include "core/xalloc.h"
#include "web/web_internal.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

static void cursor_round_trip(int64_t seq)
{
    int64_t back = 0;
    char *c = web_cursor_encode(seq);

    for (const char *p = c; *p; p++)
        FUZZ_CHECK(isalnum((unsigned char)*p) || *p == '-' || *p == '_');
    FUZZ_CHECK(web_cursor_decode(c, &back) == 0 && back == seq);
    free(c);
}

static void check_query(const struct history_query *q, unsigned allowed, const char *own)
{
    const struct history_filter *f = &q->f;

    FUZZ_CHECK(q->n_values <= sizeof(q->values) / sizeof(q->values[0]));
    FUZZ_CHECK(q->limit >= 0);
    if (q->limit)
        FUZZ_CHECK((allowed & (QP_PAGE | QP_FORMAT)) && (!(allowed & QP_PAGE) || q->limit <= 500));
    FUZZ_CHECK(f->status == -1 || exec_status_parse(exec_status_name(f->status)) == f->status);
    FUZZ_CHECK(f->environment_version >= 0);
    FUZZ_CHECK(f->environment_version == 0 || f->environment != NULL);
    FUZZ_CHECK(!f->environment || (f->environment[0] && strlen(f->environment) <= 255));
    FUZZ_CHECK(!(f->has_since && f->has_until) || f->since < f->until);
    if (f->code_sha256) {
        FUZZ_CHECK(strlen(f->code_sha256) == 64);
        for (const char *p = f->code_sha256; *p; p++)
            FUZZ_CHECK(isdigit((unsigned char)*p) || (*p >= 'a' && *p <= 'f'));
    }
    if (f->text)
        FUZZ_CHECK(strlen(f->text) <= 256);
    if (own)
        FUZZ_CHECK(f->principal == own);
    else
        FUZZ_CHECK(!f->principal || (f->principal[0] && strlen(f->principal) <= 255));
    FUZZ_CHECK(q->before_seq >= 0);
    if (q->before_seq)
        cursor_round_trip(q->before_seq);
    if (allowed == 0)
        FUZZ_CHECK(q->n_values == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t choice = fuzz_take_byte(&data, &size);
    unsigned allowed = choice & 0x0f;
    const char *own = (choice & 0x10) ? "own-principal" : NULL;
    char *query = xstrndup((const char *)data, size);
    struct history_query q;
    struct err err = ERR_INIT;
    int64_t seq;

    if (web_history_query_parse(query, allowed, own, &q, &err) == 0) {
        FUZZ_CHECK(err.code == ERR_OK);
        check_query(&q, allowed, own);
    } else {
        FUZZ_CHECK(err.code == ERR_INVALID);
        fuzz_check_err(&err);
    }
    history_query_release(&q);

    /* the query string as a cursor, and its first bytes as a seq */
    if (web_cursor_decode(query, &seq) == 0) {
        FUZZ_CHECK(seq >= 1);
        cursor_round_trip(seq);
    }
    if (size >= sizeof(seq)) {
        memcpy(&seq, data, sizeof(seq));
        if (seq >= 1)
            cursor_round_trip(seq);
    }
    free(query);
    return 0;
}

/* tests/fuzz/fuzz_time_iso.c - time_parse_iso and time_format_iso
 * (core/util.c): the since/until filters of the history and every time the
 * API answers.
 *
 * Input: RFC 3339 text (parsed up to its first NUL); its first 8 bytes are
 * also read as a time in milliseconds. Properties: formatting any time gives
 * "...Z" within TIME_ISO_MAX; a time of years 0000 to 9999 formats to text
 * that parses back to it; and what parses formats to a canonical text that
 * parses to the same time (the round trip). */
#include <ctype.h>

#include "core/util.h"
#include "core/xalloc.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

/* Format @ms; true when the text has a four-digit year (time_parse_iso's). */
static bool format_checked(int64_t ms, char out[TIME_ISO_MAX])
{
    memset(out, 'x', TIME_ISO_MAX);
    time_format_iso(ms, out);
    size_t n = strnlen(out, TIME_ISO_MAX);
    FUZZ_CHECK(n < TIME_ISO_MAX && n >= 24 && out[n - 1] == 'Z' && out[n - 5] == '.');
    FUZZ_CHECK(out[n - 14] == 'T' && out[n - 17] == '-' && out[n - 20] == '-');
    return n == 24 && isdigit((unsigned char)out[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[TIME_ISO_MAX];
    int64_t ms = 0, back = 0;

    if (size >= sizeof(ms)) {
        memcpy(&ms, data, sizeof(ms));
        if (format_checked(ms, text)) {
            FUZZ_CHECK(time_parse_iso(text, &back) == 0);
            FUZZ_CHECK(back == ms);
        }
    }

    char *s = xstrndup((const char *)data, size);
    if (time_parse_iso(s, &ms) == 0 && format_checked(ms, text)) {
        FUZZ_CHECK(time_parse_iso(text, &back) == 0);
        FUZZ_CHECK(back == ms);
    }
    free(s);
    return 0;
}

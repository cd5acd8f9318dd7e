/* tests/fuzz/fuzz_utf8.c - utf8_valid and utf8_sanitize (core/util.c), which
 * repair the catalog's strings and client names before they become JSON.
 *
 * Properties: sanitize's output is always valid and NUL-free, as long as
 * the input at most three times over, the input itself when that was valid,
 * and unchanged by a second pass; and utf8_valid agrees with jansson's own
 * check (json_stringn) on text without NUL bytes. utf8_repair (job output)
 * keeps NUL: its output is valid by utf8_valid_with_nul, jansson takes it
 * whole (with its length), and only invalid bytes changed; a valid text with
 * NUL is handed back as it was. utf8_incomplete_tail never exceeds 3 bytes,
 * and the text without that tail is no less valid. */
#include <jansson.h>

#include "core/util.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    bool valid = utf8_valid(p, size);
    size_t n, n2;
    char *clean = utf8_sanitize(p, size, &n);

    FUZZ_CHECK(clean != NULL && clean[n] == '\0' && strlen(clean) == n);
    FUZZ_CHECK(n <= 3 * size && n >= size);
    FUZZ_CHECK(utf8_valid(clean, n));
    if (valid)
        FUZZ_CHECK(n == size && memcmp(clean, p, size) == 0);
    else
        FUZZ_CHECK(n != size || memcmp(clean, p, size) != 0);
    char *again = utf8_sanitize(clean, n, &n2);
    FUZZ_CHECK(n2 == n && memcmp(again, clean, n) == 0);
    free(again);
    free(clean);

    size_t r;
    char *repaired = utf8_repair(p, size, &r);
    FUZZ_CHECK(repaired != NULL && repaired[r] == '\0' && r >= size && r <= 3 * size);
    FUZZ_CHECK(utf8_valid_with_nul(repaired, r));
    if (utf8_valid_with_nul(p, size))
        FUZZ_CHECK(r == size && memcmp(repaired, p, size) == 0);
    json_t *js = json_stringn(repaired, r);
    FUZZ_CHECK(js != NULL && json_string_length(js) == r);
    json_decref(js);
    free(repaired);
    size_t tail = utf8_incomplete_tail(p, size);
    FUZZ_CHECK(tail <= 3 && tail <= size);
    if (utf8_valid_with_nul(p, size))
        FUZZ_CHECK(tail == 0);

    /* a second opinion: jansson refuses invalid UTF-8 in strings */
    if (!memchr(p, '\0', size)) {
        json_t *s = json_stringn(p, size);
        FUZZ_CHECK((s != NULL) == valid);
        json_decref(s);
    }
    return 0;
}

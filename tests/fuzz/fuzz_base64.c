/* tests/fuzz/fuzz_base64.c - base64_decode and base64_encode (core/util.c),
 * which decode the files of every /execute request.
 *
 * Input: one byte choosing the output limit, then the text. Properties:
 * decoding either succeeds within the limit or fails leaving the buffer as it
 * was (a prefix already in it kept); what decodes has 3/4 of the text's
 * length less the padding, and encodes back to text of the same length that
 * decodes to the same bytes; and any bytes encode to text that decodes to
 * them (the round trip). */
#include "core/buf.h"
#include "core/util.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

static void round_trip(const void *bytes, size_t len)
{
    size_t enc_len;
    char *enc = base64_encode(bytes, len, &enc_len);
    struct buf back = BUF_INIT(BUF_UNLIMITED);
    bool too_large = true;

    FUZZ_CHECK(enc_len == 4 * ((len + 2) / 3) && strlen(enc) == enc_len);
    FUZZ_CHECK(base64_decode(enc, enc_len, &back, &too_large) == 0 && !too_large);
    FUZZ_CHECK(back.len == len && (len == 0 || memcmp(back.data, bytes, len) == 0));
    buf_release(&back);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char prefix[] = "kept";
    uint8_t choice = fuzz_take_byte(&data, &size);
    const char *text = (const char *)data;
    /* a limit that decoding may pass: none, or a few bytes past the prefix */
    size_t limit = choice == 0xff ? BUF_UNLIMITED : sizeof(prefix) - 1 + choice % 64;
    struct buf out = BUF_INIT(limit);
    bool too_large = false;

    FUZZ_CHECK(buf_append(&out, prefix, sizeof(prefix) - 1) == 0);
    int r = base64_decode(text, size, &out, &too_large);
    if (r == 0) {
        size_t got = out.len - (sizeof(prefix) - 1);
        size_t pad =
            size >= 1 && text[size - 1] == '=' ? (size >= 2 && text[size - 2] == '=' ? 2 : 1) : 0;
        FUZZ_CHECK(!too_large && size % 4 == 0);
        FUZZ_CHECK(got == size / 4 * 3 - pad && out.len <= limit);
        FUZZ_CHECK(out.data[out.len] == '\0');
        /* the text may set bits the padding drops: its canonical form has
         * the same length and the same bytes */
        size_t enc_len;
        char *enc = base64_encode(out.data + sizeof(prefix) - 1, got, &enc_len);
        FUZZ_CHECK(enc_len == size);
        free(enc);
        round_trip(out.data + sizeof(prefix) - 1, got);
    } else {
        FUZZ_CHECK(r == -1);
        /* a failure leaves the buffer as it was */
        FUZZ_CHECK(out.len == sizeof(prefix) - 1 && memcmp(out.data, prefix, out.len) == 0);
        FUZZ_CHECK(out.data[out.len] == '\0');
        if (too_large)
            FUZZ_CHECK(size / 4 * 3 + sizeof(prefix) - 1 > limit);
    }
    buf_release(&out);
    round_trip(data, size);
    return 0;
}

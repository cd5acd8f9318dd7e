/* tests/unit/test_util.c - the pure helpers of core/: time formatting and
 * parsing, random ids, sha256, base64, UTF-8 checks and repair, client path
 * names, size and integer parsing (core/util.h), the bounded buffer
 * (core/buf.h) and struct err (core/err.h). */
#include <errno.h>
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

#include "core/banned.h"

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD in UTF-8 */

/* ---- time ---- */

static void time_deadline_in_is_normalised_and_ahead_by_ms(void **state)
{
    (void)state;
    for (int64_t ms = 0; ms <= 2500; ms += 250) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        struct timespec d = time_deadline_in(ms);
        assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000);
        int64_t ahead =
            (int64_t)(d.tv_sec - now.tv_sec) * 1000 + (d.tv_nsec - now.tv_nsec) / 1000000;
        assert_true(ahead >= ms - 1 && ahead <= ms + 50);
    }
    struct timespec past = time_deadline_in(-5000); /* never in the past */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    assert_true(past.tv_sec >= now.tv_sec - 1);
}

static void time_format_iso_gives_utc_with_millis_and_zone(void **state)
{
    char out[TIME_ISO_MAX];
    (void)state;

    time_format_iso(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    time_format_iso(1795459095361LL, out);
    assert_string_equal(out, "2026-11-23T18:38:15.361Z");
    time_format_iso(951868799999LL, out);
    assert_string_equal(out, "2000-02-29T23:59:59.999Z");
    time_format_iso(2147483648000LL, out); /* past 2038 */
    assert_string_equal(out, "2038-01-19T03:14:08.000Z");
}

/* Milliseconds before the epoch: C division truncates towards zero, so the
 * seconds and the millisecond part must be floored, not truncated. */
static void time_format_iso_handles_times_before_the_epoch(void **state)
{
    char out[TIME_ISO_MAX];
    (void)state;

    time_format_iso(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    time_format_iso(-1500, out);
    assert_string_equal(out, "1969-12-31T23:59:58.500Z");
}

/* Found by tests/fuzz/fuzz_time_iso.c: INT64_MIN overflowed (UBSan), and
 * years before 1000 lost their leading zeros, which time_parse_iso refuses. */
static void time_format_iso_handles_extremes_and_early_years(void **state)
{
    char out[TIME_ISO_MAX];
    int64_t back = 0;
    (void)state;

    time_format_iso(INT64_MIN, out);
    assert_string_equal(out, "-292275055-05-16T16:47:04.192Z");
    time_format_iso(INT64_MAX, out);
    assert_string_equal(out, "292278994-08-17T07:12:55.807Z");
    assert_int_equal(time_parse_iso("0999-03-04T05:06:07.089Z", &back), 0);
    time_format_iso(back, out);
    assert_string_equal(out, "0999-03-04T05:06:07.089Z");
}

static void time_parse_iso_reads_zones_offsets_and_fractions(void **state)
{
    int64_t ms = 0;
    (void)state;

    assert_int_equal(time_parse_iso("2026-11-23T18:38:15.361Z", &ms), 0);
    assert_int_equal(ms, 1795459095361LL);
    assert_int_equal(time_parse_iso("2026-11-23t18:38:15.361z", &ms), 0);
    assert_int_equal(ms, 1795459095361LL);
    assert_int_equal(time_parse_iso("2026-11-23 18:38:15.361Z", &ms), 0);
    assert_int_equal(ms, 1795459095361LL);

    /* offsets: the same instant three ways */
    assert_int_equal(time_parse_iso("2026-11-01T08:00:00Z", &ms), 0);
    assert_int_equal(ms, 1793520000000LL);
    assert_int_equal(time_parse_iso("2026-11-01T10:00:00+02:00", &ms), 0);
    assert_int_equal(ms, 1793520000000LL);
    assert_int_equal(time_parse_iso("2026-11-01T02:30:00-05:30", &ms), 0);
    assert_int_equal(ms, 1793520000000LL);
    assert_int_equal(time_parse_iso("2026-11-01T08:00:00+00:00", &ms), 0);
    assert_int_equal(ms, 1793520000000LL);

    /* fractions: padded to milliseconds, extra digits dropped */
    assert_int_equal(time_parse_iso("2026-11-01T08:00:00.5Z", &ms), 0);
    assert_int_equal(ms, 1793520000500LL);
    assert_int_equal(time_parse_iso("2026-11-01T08:00:00.05Z", &ms), 0);
    assert_int_equal(ms, 1793520000050LL);
    assert_int_equal(time_parse_iso("2026-11-01T08:00:00.123456789Z", &ms), 0);
    assert_int_equal(ms, 1793520000123LL);

    /* seconds are optional */
    assert_int_equal(time_parse_iso("2026-11-01T08:00Z", &ms), 0);
    assert_int_equal(ms, 1793520000000LL);
}

static void time_parse_iso_reads_a_date_alone_as_utc_midnight(void **state)
{
    int64_t ms = 0;
    (void)state;

    assert_int_equal(time_parse_iso("2026-11-01", &ms), 0);
    assert_int_equal(ms, 1793491200000LL);
    assert_int_equal(time_parse_iso("1970-01-01", &ms), 0);
    assert_int_equal(ms, 0);
}

static void time_parse_iso_round_trips_time_format_iso(void **state)
{
    static const int64_t samples[] = {
        0, 1, 999, 1000, 1795459095361LL, 951868799999LL, 4102444800000LL};
    char out[TIME_ISO_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        int64_t ms = -1;
        time_format_iso(samples[i], out);
        assert_int_equal(time_parse_iso(out, &ms), 0);
        assert_int_equal(ms, samples[i]);
    }
}

static void time_parse_iso_rejects_malformed_text(void **state)
{
    static const char *const bad[] = {
        "",
        "2026",
        "2026-11",
        "26-11-01",
        "20261101",
        "2026/11/01",
        "2026-1-01",
        "2026-11-1",
        "2026-00-01",
        "2026-13-01",
        "2026-11-00",
        "2026-11-32",
        "2026-11-01T",
        "2026-11-01T10",
        "2026-11-01T10:00:00", /* no zone: ambiguous */
        "2026-11-01T10:00",    /* no zone */
        "2026-11-01T24:00:00Z",
        "2026-11-01T10:60:00Z",
        "2026-11-01T10:00:61Z",
        "2026-11-01T10:00:00.Z", /* a dot without digits */
        "2026-11-01T10:00:00+2:00",
        "2026-11-01T10:00:00+0200",
        "2026-11-01T10:00:00+02",
        "2026-11-01T10:00:00+24:00",
        "2026-11-01T10:00:00+02:60",
        "2026-11-01T10:00:00ZZ",
        "2026-11-01T10:00:00Z ",
        " 2026-11-01",
        "2026-11-01 ",
        "2026-11-01Z",
        "2026-11-01X10:00:00Z",
        "abcd-ef-gh",
        "2026-11-01T1a:00:00Z",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 12345;
        if (time_parse_iso(bad[i], &ms) != -1)
            fail_msg("time_parse_iso accepted '%s'", bad[i]);
        assert_int_equal(ms, 12345); /* untouched on failure */
    }
}

/* timegm() normalises impossible dates (Feb 30 -> Mar 2); the parser must
 * refuse them instead of answering another day. */
static void time_parse_iso_rejects_days_past_the_end_of_the_month(void **state)
{
    static const char *const bad[] = {"2026-02-29", "2026-02-30", "2026-04-31",
                                      "2026-02-29T10:00:00Z", "2100-02-29"};
    int64_t ms = 0;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (time_parse_iso(bad[i], &ms) != -1)
            fail_msg("time_parse_iso accepted the impossible date '%s'", bad[i]);
    assert_int_equal(time_parse_iso("2024-02-29", &ms), 0); /* a leap year */
    assert_int_equal(time_parse_iso("2000-02-29", &ms), 0);
}

static void time_clocks_move_forward(void **state)
{
    (void)state;
    int64_t a = time_mono_ms(), b = time_mono_ms();
    assert_true(b >= a);
    assert_true(time_now_ms() > 1700000000000LL);
}

/* ---- ids and hashes ---- */

static bool all_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void id_random_hex_gives_2n_lower_hex_characters(void **state)
{
    char a[2 * 16 + 1], b[2 * 16 + 1], big[2 * 64 + 1], none[1] = {'x'};
    (void)state;

    id_random_hex(a, 16);
    id_random_hex(b, 16);
    assert_int_equal(strlen(a), 32);
    assert_true(all_lower_hex(a, 32));
    assert_string_not_equal(a, b);

    id_random_hex(big, 64);
    assert_int_equal(strlen(big), 128);
    assert_true(all_lower_hex(big, 128));

    id_random_hex(none, 0);
    assert_string_equal(none, "");
}

static void sha256_hex_matches_known_vectors(void **state)
{
    char out[SHA256_HEX_LEN + 1];
    unsigned char raw[32];
    const char *abc = "abc";
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    (void)state;

    sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex(abc, 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex(two_blocks, strlen(two_blocks), out);
    assert_string_equal(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    char *million = xmalloc(1000000);
    memset(million, 'a', 1000000);
    sha256_hex(million, 1000000, out);
    free(million);
    assert_string_equal(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    sha256_raw(abc, 3, raw);
    assert_int_equal(raw[0], 0xba);
    assert_int_equal(raw[31], 0xad);
}

/* ---- base64 ---- */

struct b64_vector {
    const char *plain, *encoded;
};

static const struct b64_vector rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void base64_encode_matches_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        size_t len = 99;
        char *s = base64_encode(rfc4648[i].plain, strlen(rfc4648[i].plain), &len);
        assert_string_equal(s, rfc4648[i].encoded);
        assert_int_equal(len, strlen(rfc4648[i].encoded));
        free(s);
    }
    char *s = base64_encode("\xff\xfe\xfd", 3, NULL); /* ret_len may be NULL */
    assert_string_equal(s, "//79");
    free(s);
}

static void base64_decode_matches_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        struct buf out = BUF_INIT(BUF_UNLIMITED);
        bool too_large = true;
        const char *enc = rfc4648[i].encoded;
        assert_int_equal(base64_decode(enc, strlen(enc), &out, &too_large), 0);
        assert_false(too_large);
        assert_int_equal(out.len, strlen(rfc4648[i].plain));
        assert_string_equal(buf_str(&out), rfc4648[i].plain);
        buf_release(&out);
    }
}

static void base64_round_trips_every_byte_and_length(void **state)
{
    unsigned char data[600];
    (void)state;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof(data); len += (len < 10 ? 1 : 37)) {
        size_t elen;
        char *enc = base64_encode(data, len, &elen);
        struct buf out = BUF_INIT(BUF_UNLIMITED);
        assert_int_equal(elen % 4, 0);
        assert_int_equal(base64_decode(enc, elen, &out, NULL), 0);
        assert_int_equal(out.len, len);
        if (len)
            assert_memory_equal(out.data, data, len);
        free(enc);
        buf_release(&out);
    }
}

static void base64_decode_appends_after_existing_content(void **state)
{
    struct buf out = BUF_INIT(100);
    (void)state;

    assert_int_equal(buf_appends(&out, "head:"), 0);
    assert_int_equal(base64_decode("Zm9vYmFy", 8, &out, NULL), 0);
    assert_string_equal(buf_str(&out), "head:foobar");
    buf_release(&out);
}

static void base64_decode_rejects_bad_padding_and_characters(void **state)
{
    static const char *const bad[] = {
        "Zg",                             /* padding required */
        "Zg=",                            /* length not a multiple of 4 */
        "Zm9",                            /* same */
        "Z===",                           /* at most two padding characters */
        "====",       "=Zg=", "Zg==Zg==", /* data after padding */
        "Zg=a",                           /* data after padding in the same quad */
        "Zm9v Zg==",                      /* whitespace is not allowed here */
        "Zm9v\nZg==", "Zm9-",             /* url-safe alphabet is not standard */
        "Zm9_",       "Zm9*", "Zm\x80v",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf out = BUF_INIT(BUF_UNLIMITED);
        bool too_large = true;
        assert_int_equal(buf_append(&out, "keep", 4), 0);
        if (base64_decode(bad[i], strlen(bad[i]), &out, &too_large) != -1)
            fail_msg("base64_decode accepted '%s'", bad[i]);
        assert_false(too_large);
        /* the buffer is as it was, even when some quads decoded first */
        assert_int_equal(out.len, 4);
        assert_string_equal(buf_str(&out), "keep");
        buf_release(&out);
    }
}

static void base64_decode_rejects_a_nul_inside_the_input(void **state)
{
    struct buf out = BUF_INIT(BUF_UNLIMITED);
    (void)state;

    assert_int_equal(base64_decode("Zm\0v", 4, &out, NULL), -1);
    assert_int_equal(out.len, 0);
    buf_release(&out);
}

static void base64_decode_over_the_limit_says_too_large_and_keeps_the_buffer(void **state)
{
    struct buf out = BUF_INIT(8);
    bool too_large = false;
    (void)state;

    assert_int_equal(buf_appends(&out, "ab"), 0);
    /* "foobar" fits (2 + 6 = 8), "foobarX" would not */
    assert_int_equal(base64_decode("Zm9vYmFy", 8, &out, &too_large), 0);
    assert_false(too_large);
    assert_string_equal(buf_str(&out), "abfoobar");

    buf_reset(&out);
    assert_int_equal(buf_appends(&out, "ab"), 0);
    assert_int_equal(base64_decode("Zm9vYmFyWA==", 12, &out, &too_large), -1);
    assert_true(too_large);
    assert_int_equal(out.len, 2);
    assert_string_equal(buf_str(&out), "ab");

    /* invalid and too large: invalid is not too large */
    too_large = true;
    assert_int_equal(base64_decode("!!!!", 4, &out, &too_large), -1);
    assert_false(too_large);

    /* ret_too_large may be NULL */
    assert_int_equal(base64_decode("Zm9vYmFyWA==", 12, &out, NULL), -1);
    assert_string_equal(buf_str(&out), "ab");
    buf_release(&out);
}

/* ---- UTF-8 ---- */

static void utf8_valid_accepts_well_formed_text(void **state)
{
    static const char *const good[] = {
        "",
        "plain ascii ~\x7f",
        "\xc3\xa9",                                         /* U+00E9 */
        "\xdf\xbf",                                         /* U+07FF */
        "\xe0\xa0\x80",                                     /* U+0800, the smallest 3-byte */
        "\xe2\x82\xac",                                     /* U+20AC */
        "\xed\x9f\xbf",                                     /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",                                     /* U+E000, just above them */
        "\xef\xbf\xbf",                                     /* U+FFFF */
        "\xf0\x90\x80\x80",                                 /* U+10000, the smallest 4-byte */
        "\xf0\x9f\x98\x80",                                 /* U+1F600 */
        "\xf4\x8f\xbf\xbf",                                 /* U+10FFFF, the largest */
        "\xe4\xbb\xa3\xe7\xa0\x81\xe6\x89\xa7\xe8\xa1\x8c", /* 代码执行 */
    };
    (void)state;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!utf8_valid(good[i], strlen(good[i])))
            fail_msg("utf8_valid refused good input #%zu", i);
}

static const char *const bad_utf8[] = {
    "\x80", /* lone continuation */
    "\xbf",
    "\xc0\xaf",         /* overlong '/' */
    "\xc1\xbf",         /* overlong */
    "\xe0\x80\xaf",     /* overlong 3-byte '/' */
    "\xe0\x9f\xbf",     /* overlong U+07FF */
    "\xf0\x80\x80\xaf", /* overlong 4-byte '/' */
    "\xf0\x8f\xbf\xbf", /* overlong U+FFFF */
    "\xed\xa0\x80",     /* U+D800, a surrogate */
    "\xed\xbf\xbf",     /* U+DFFF */
    "\xf4\x90\x80\x80", /* U+110000, past the end of Unicode */
    "\xf5\x80\x80\x80",
    "\xf8\x88\x80\x80\x80", /* 5-byte form */
    "\xfe",
    "\xff",
    "\xc3", /* truncated at the end */
    "\xe2\x82",
    "\xf0\x9f\x98",
    "\xe2\x82"
    "A", /* continuation missing in the middle */
    "\xc3"
    "A",
};

static void utf8_valid_rejects_overlong_surrogates_and_truncated(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++)
        if (utf8_valid(bad_utf8[i], strlen(bad_utf8[i])))
            fail_msg("utf8_valid accepted bad input #%zu", i);
    /* a valid sequence cut by the length given */
    assert_false(utf8_valid("\xe2\x82\xac", 2));
    assert_true(utf8_valid("\xe2\x82\xac", 3));
}

static void utf8_valid_rejects_nul(void **state)
{
    (void)state;
    assert_false(utf8_valid("a\0b", 3));
    assert_false(utf8_valid("\0", 1));
    assert_true(utf8_valid("a\0b", 1));
}

static void utf8_sanitize_keeps_valid_text_unchanged(void **state)
{
    const char *s = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\n";
    size_t len = 0;
    (void)state;

    char *out = utf8_sanitize(s, strlen(s), &len);
    assert_string_equal(out, s);
    assert_int_equal(len, strlen(s));
    free(out);

    out = utf8_sanitize("", 0, &len);
    assert_string_equal(out, "");
    assert_int_equal(len, 0);
    free(out);
}

static void utf8_sanitize_replaces_single_bad_bytes_and_nul(void **state)
{
    size_t len = 0;
    char *out;
    (void)state;

    out = utf8_sanitize("a\xff"
                        "b",
                        3, &len);
    assert_string_equal(out, "a" REPLACEMENT "b");
    assert_int_equal(len, 5);
    free(out);

    out = utf8_sanitize("a\0b", 3, &len);
    assert_string_equal(out, "a" REPLACEMENT "b");
    assert_int_equal(len, 5);
    assert_int_equal(strlen(out), len); /* no NUL inside the result */
    free(out);

    out = utf8_sanitize("\xed\xa0\x80", 3, NULL); /* surrogate; ret_len may be NULL */
    assert_true(utf8_valid(out, strlen(out)));
    assert_null(strstr(out, "\xed\xa0"));
    free(out);
}

/* Every bad input becomes valid UTF-8 of U+FFFD, and the ASCII after a bad or
 * truncated sequence is never swallowed. */
static void utf8_sanitize_output_is_always_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        size_t in_len = strlen(bad_utf8[i]), len = 0;
        char *out = utf8_sanitize(bad_utf8[i], in_len, &len);
        assert_int_equal(strlen(out), len);
        if (!utf8_valid(out, len))
            fail_msg("utf8_sanitize left invalid UTF-8 for input #%zu", i);
        assert_non_null(strstr(out, REPLACEMENT));
        if (bad_utf8[i][in_len - 1] == 'A') {
            assert_true(len >= 4);
            assert_int_equal(out[len - 1], 'A');
            /* the rest is replacement characters only */
            for (size_t k = 0; k + 1 < len; k += 3)
                assert_memory_equal(out + k, REPLACEMENT, 3);
        } else {
            assert_int_equal(len % 3, 0);
            for (size_t k = 0; k < len; k += 3)
                assert_memory_equal(out + k, REPLACEMENT, 3);
        }
        free(out);
    }
}

/* A job's output: NUL and every other control byte are kept as written. */
static void utf8_repair_keeps_nul_and_control_bytes(void **state)
{
    static const char in[] = "a\0b\x01\x1b[0m\x7f\t\n\0";
    size_t n = sizeof(in) - 1, len = 0;
    char all[32];
    (void)state;

    assert_true(utf8_valid_with_nul(in, n));
    assert_false(utf8_valid(in, n));
    char *out = utf8_repair(in, n, &len);
    assert_int_equal(len, n);
    assert_memory_equal(out, in, n);
    assert_int_equal(out[len], '\0');
    free(out);

    for (int c = 0; c < 32; c++) /* every control byte, alone */
        all[c] = (char)c;
    assert_true(utf8_valid_with_nul(all, sizeof(all)));
    out = utf8_repair(all, sizeof(all), &len);
    assert_int_equal(len, sizeof(all));
    assert_memory_equal(out, all, sizeof(all));
    free(out);

    out = utf8_repair("", 0, &len);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);
}

/* Only bytes that are not UTF-8 change: each becomes U+FFFD, NUL beside them stays. */
static void utf8_repair_replaces_each_invalid_byte_only(void **state)
{
    size_t len = 0;
    char *out;
    (void)state;

    assert_false(utf8_valid_with_nul("a\xff"
                                     "b",
                                     3));
    out = utf8_repair("a\xff"
                      "b",
                      3, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "a" REPLACEMENT "b", 5);
    free(out);

    out = utf8_repair("\0\xc3\0\xe2\x82\xac\xed\xa0\x80", 9, &len);
    static const char want[] =
        "\0" REPLACEMENT "\0\xe2\x82\xac" REPLACEMENT REPLACEMENT REPLACEMENT;
    assert_int_equal(len, sizeof(want) - 1);
    assert_memory_equal(out, want, len);
    assert_true(utf8_valid_with_nul(out, len));
    free(out);

    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        size_t in_len = strlen(bad_utf8[i]);
        out = utf8_repair(bad_utf8[i], in_len, &len);
        if (!utf8_valid_with_nul(out, len) || !utf8_valid(out, len))
            fail_msg("utf8_repair left invalid UTF-8 for input #%zu", i);
        free(out);
    }
}

static void utf8_incomplete_tail_holds_back_only_a_cut_character(void **state)
{
    (void)state;
    assert_int_equal(utf8_incomplete_tail("", 0), 0);
    assert_int_equal(utf8_incomplete_tail("abc", 3), 0);
    assert_int_equal(utf8_incomplete_tail("a\0", 2), 0);
    /* cut after 1, 2 and 3 bytes of a 2-, 3- and 4-byte character */
    assert_int_equal(utf8_incomplete_tail("a\xc3", 2), 1);
    assert_int_equal(utf8_incomplete_tail("a\xe2", 2), 1);
    assert_int_equal(utf8_incomplete_tail("a\xe2\x82", 3), 2);
    assert_int_equal(utf8_incomplete_tail("\xf0\x9f", 2), 2);
    assert_int_equal(utf8_incomplete_tail("a\xf0\x9f\x98", 4), 3);
    /* whole characters */
    assert_int_equal(utf8_incomplete_tail("\xc3\xa9", 2), 0);
    assert_int_equal(utf8_incomplete_tail("\xe2\x82\xac", 3), 0);
    assert_int_equal(utf8_incomplete_tail("\xf0\x9f\x98\x80", 4), 0);
    /* never the start of a character: nothing to wait for */
    assert_int_equal(utf8_incomplete_tail("a\xff", 2), 0);
    assert_int_equal(utf8_incomplete_tail("a\xc0", 2), 0);
    assert_int_equal(utf8_incomplete_tail("a\x80", 2), 0);
    assert_int_equal(utf8_incomplete_tail("\x80\x80\x80", 3), 0);
    assert_int_equal(utf8_incomplete_tail("\xe0\x80", 2), 0);     /* overlong */
    assert_int_equal(utf8_incomplete_tail("\xed\xa0", 2), 0);     /* a surrogate */
    assert_int_equal(utf8_incomplete_tail("\xf4\x90\x80", 3), 0); /* past U+10FFFF */
    assert_int_equal(utf8_incomplete_tail("\xf0\x8f", 2), 0);     /* overlong */
    /* the edges of those ranges are fine */
    assert_int_equal(utf8_incomplete_tail("\xe0\xa0", 2), 2);
    assert_int_equal(utf8_incomplete_tail("\xed\x9f", 2), 2);
    assert_int_equal(utf8_incomplete_tail("\xf4\x8f\xbf", 3), 3);
}

/* ---- client path names ---- */

struct path_case {
    const char *p;
    size_t len;
    bool ok;
    const char *why; /* a word the reason contains */
};

#define PATH_OK(s)                                                                                 \
    {                                                                                              \
        (s), sizeof(s) - 1, true, NULL                                                             \
    }
#define PATH_BAD(s, w)                                                                             \
    {                                                                                              \
        (s), sizeof(s) - 1, false, (w)                                                             \
    }

static void path_is_safe_relative_table(void **state)
{
    static const struct path_case cases[] = {
        PATH_OK("a"),
        PATH_OK("a/b"),
        PATH_OK(".hidden"),
        PATH_OK("a/.hidden/b"),
        PATH_OK("..."),
        PATH_OK("a..b"),
        PATH_OK("..a"),
        PATH_OK("out/sub/result.txt"),
        PATH_OK("\xe6\x95\xb0\xe6\x8d\xae.csv"), /* 数据.csv */
        PATH_OK("name with spaces"),
        PATH_BAD("../x", "'..'"),
        PATH_BAD("..", "'..'"),
        PATH_BAD("a/..", "'..'"),
        PATH_BAD("a/../b", "'..'"),
        PATH_BAD("/etc/x", "absolute"),
        PATH_BAD("/", "absolute"),
        PATH_BAD("", "empty"),
        PATH_BAD("a//b", "empty"),
        PATH_BAD("a/", "empty"),
        PATH_BAD(".", "'.'"),
        PATH_BAD("./a", "'.'"),
        PATH_BAD("a/./b", "'.'"),
        PATH_BAD("a/.", "'.'"),
        PATH_BAD("a\0b", "NUL"),
        PATH_BAD("a\0", "NUL"),
        PATH_BAD("a\nb", "control"),
        PATH_BAD("a\rb", "control"),
        PATH_BAD("a\tb", "control"),
        PATH_BAD("\x1b[31m", "control"),
        PATH_BAD("a\x1f", "control"),
        PATH_BAD("a\x7f"
                 "b",
                 "control"),
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = "untouched";
        bool ok = path_is_safe_relative(cases[i].p, cases[i].len, &why);
        if (ok != cases[i].ok)
            fail_msg("case #%zu: expected %s, got %s (%s)", i, cases[i].ok ? "safe" : "unsafe",
                     ok ? "safe" : "unsafe", why);
        if (ok) {
            assert_string_equal(why, "untouched");
        } else if (!strstr(why, cases[i].why)) {
            fail_msg("case #%zu: reason '%s' does not mention %s", i, why, cases[i].why);
        }
    }
}

static void path_is_safe_relative_allows_255_bytes_not_256(void **state)
{
    char name[300];
    const char *why = NULL;
    (void)state;

    memset(name, 'a', sizeof(name));
    assert_true(path_is_safe_relative(name, 255, &why));
    assert_false(path_is_safe_relative(name, 256, &why));
    assert_non_null(strstr(why, "255"));
    name[100] = '/';
    assert_true(path_is_safe_relative(name, PATH_NAME_MAX, NULL));
    assert_false(path_is_safe_relative(name, PATH_NAME_MAX + 1, NULL));
}

static void path_is_safe_relative_reads_only_len_bytes(void **state)
{
    (void)state;
    /* what follows len does not matter: "a/../b" cut after "a" is fine */
    assert_true(path_is_safe_relative("a/../b", 1, NULL));
    assert_false(path_is_safe_relative("a/../b", 2, NULL)); /* "a/" */
    assert_false(path_is_safe_relative("abc", 0, NULL));
}

/* ---- numbers ---- */

static void parse_size_reads_suffixes_and_fractions(void **state)
{
    static const struct {
        const char *s;
        int64_t v;
    } good[] = {
        {"512m", 536870912LL},
        {"1g", 1073741824LL},
        {"64k", 65536},
        {"10485760", 10485760},
        {"1.5m", 1572864},
        {"512M", 536870912LL},
        {"1G", 1073741824LL},
        {"64K", 65536},
        {"0", 0},
        {"1mb", 1048576},
        {"1MB", 1048576},
        {"1mib", 1048576},
        {"1MiB", 1048576},
        {"100b", 100},
        {"0.5k", 512},
        {".5k", 512},
        {"1024g", 1099511627776LL},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t v = -7;
        if (parse_size(good[i].s, &v) != 0)
            fail_msg("parse_size refused '%s'", good[i].s);
        if (v != good[i].v)
            fail_msg("parse_size('%s') = %lld, expected %lld", good[i].s, (long long)v,
                     (long long)good[i].v);
    }
}

static void parse_size_rejects_malformed_and_negative(void **state)
{
    static const char *const bad[] = {
        "",    "m",      "k1",  "-1",    "-1m",         "+1m", " 1m", "1m ", "1 m", "1x",   "1mm",
        "1km", "1.5.5m", "abc", "1e400", "9999999999g", "nan", "inf", ".",   "1ib", "1mbb", "1kib2",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = -7;
        if (parse_size(bad[i], &v) != -1)
            fail_msg("parse_size accepted '%s' as %lld", bad[i], (long long)v);
        assert_int_equal(v, -7);
    }
    int64_t v = -7;
    assert_int_equal(parse_size(NULL, &v), -1);
}

/* The header promises -1 for malformed sizes; strtod() underneath also reads
 * hexadecimal floats and exponents, and the suffix loop lets "bb" and "bi"
 * through. Docker's own size syntax (go-units) refuses all of these. */
static void parse_size_rejects_hex_exponents_and_doubled_suffixes(void **state)
{
    static const char *const bad[] = {"0x10", "0x1p20", "1e3", "1bb", "1bi"};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = -7;
        if (parse_size(bad[i], &v) != -1)
            fail_msg("parse_size accepted '%s' as %lld", bad[i], (long long)v);
    }
}

static void parse_int_checks_the_range(void **state)
{
    int64_t v = 0;
    (void)state;

    assert_int_equal(parse_int("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(parse_int("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(parse_int("-5", -10, 10, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(parse_int("9223372036854775807", INT64_MIN, INT64_MAX, &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(parse_int("-9223372036854775808", INT64_MIN, INT64_MAX, &v), 0);
    assert_true(v == INT64_MIN);

    v = 42;
    assert_int_equal(parse_int("11", 0, 10, &v), -1);
    assert_int_equal(parse_int("-1", 0, 10, &v), -1);
    assert_int_equal(parse_int("0", 1, 300, &v), -1);
    assert_int_equal(parse_int("301", 1, 300, &v), -1);
    assert_int_equal(v, 42); /* untouched on failure */
}

static void parse_int_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        " 5",
        "5 ",
        "5x",
        "x5",
        "0x10",
        "1.0",
        "1e3",
        "--5",
        "- 5",
        "5\n",
        "\t5",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 42;
        if (parse_int(bad[i], INT64_MIN, INT64_MAX, &v) != -1)
            fail_msg("parse_int accepted '%s'", bad[i]);
        assert_int_equal(v, 42);
    }
    int64_t v = 42;
    assert_int_equal(parse_int(NULL, 0, 10, &v), -1);
}

/* ---- struct buf ---- */

static void buf_append_within_the_limit_keeps_a_nul_terminated_copy(void **state)
{
    struct buf b = BUF_INIT(10);
    (void)state;

    assert_string_equal(buf_str(&b), ""); /* never NULL, even before any append */
    assert_int_equal(buf_append(&b, "hello", 5), 0);
    assert_int_equal(buf_append(&b, "world", 5), 0); /* exactly the limit */
    assert_int_equal(b.len, 10);
    assert_string_equal(buf_str(&b), "helloworld");
    assert_int_equal(b.data[b.len], '\0');
    buf_release(&b);
}

static void buf_append_over_the_limit_leaves_the_buffer_unchanged(void **state)
{
    struct buf b = BUF_INIT(10);
    (void)state;

    assert_int_equal(buf_append(&b, "0123456789A", 11), -1);
    assert_null(b.data); /* nothing allocated for a refused first append */
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");

    assert_int_equal(buf_append(&b, "hello", 5), 0);
    char *before = b.data;
    size_t cap = b.cap;
    assert_int_equal(buf_append(&b, "world!", 6), -1);
    assert_int_equal(b.len, 5);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.data, before);
    assert_string_equal(buf_str(&b), "hello");
    assert_int_equal(buf_appends(&b, "worlds"), -1);
    assert_string_equal(buf_str(&b), "hello");
    /* a size that would overflow len + n */
    assert_int_equal(buf_append(&b, "x", (size_t)-1), -1);
    assert_string_equal(buf_str(&b), "hello");
    buf_release(&b);
}

static void buf_append_keeps_binary_bytes_including_nul(void **state)
{
    struct buf b = BUF_INIT(BUF_UNLIMITED);
    (void)state;

    assert_int_equal(buf_append(&b, "a\0b", 3), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 4);
    assert_int_equal(buf_append(&b, NULL, 0), 0); /* nothing to add is fine */
    assert_int_equal(b.len, 3);
    buf_release(&b);
}

static void buf_append_grows_across_many_appends(void **state)
{
    struct buf b = BUF_INIT(BUF_UNLIMITED);
    char chunk[97];
    (void)state;

    for (int i = 0; i < 2000; i++) {
        memset(chunk, 'a' + i % 26, sizeof(chunk));
        assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
    }
    assert_int_equal(b.len, 2000 * sizeof(chunk));
    assert_true(b.cap > b.len);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(b.data[(size_t)i * sizeof(chunk) + 50], 'a' + i % 26);
    assert_int_equal(b.data[b.len], '\0');
    buf_release(&b);
}

static void buf_appendf_formats_within_the_limit_and_refuses_over_it(void **state)
{
    struct buf b = BUF_INIT(16);
    (void)state;

    assert_int_equal(buf_appendf(&b, "%s=%d", "n", 42), 0);
    assert_string_equal(buf_str(&b), "n=42");
    assert_int_equal(buf_appendf(&b, ";%08x", 0xbeefu), 0);
    assert_string_equal(buf_str(&b), "n=42;0000beef");
    assert_int_equal(b.len, 13);
    assert_int_equal(buf_appendf(&b, "%s", "toolong"), -1);
    assert_int_equal(b.len, 13);
    assert_string_equal(buf_str(&b), "n=42;0000beef");
    assert_int_equal(buf_appendf(&b, "%s", "abc"), 0); /* exactly 16 */
    assert_string_equal(buf_str(&b), "n=42;0000beefabc");
    assert_int_equal(buf_appendf(&b, "%s", ""), 0);
    assert_int_equal(buf_appendf(&b, "x"), -1);
    assert_int_equal(b.len, 16);
    buf_release(&b);
}

static void buf_append_upto_takes_what_fits(void **state)
{
    struct buf b = BUF_INIT(8);
    (void)state;

    assert_int_equal(buf_append_upto(&b, "abcdef", 6), 6);
    assert_int_equal(buf_append_upto(&b, "ghijkl", 6), 2);
    assert_string_equal(buf_str(&b), "abcdefgh");
    assert_int_equal(buf_append_upto(&b, "mnop", 4), 0);
    assert_string_equal(buf_str(&b), "abcdefgh");
    assert_int_equal(b.len, 8);
    buf_release(&b);

    struct buf z = BUF_INIT(0);
    assert_int_equal(buf_append_upto(&z, "abc", 3), 0);
    assert_string_equal(buf_str(&z), "");
    buf_release(&z);
}

static void buf_detach_hands_over_the_bytes_and_empties_the_buffer(void **state)
{
    struct buf b = BUF_INIT(100);
    size_t len = 0;
    (void)state;

    assert_int_equal(buf_appends(&b, "payload"), 0);
    char *p = buf_detach(&b, &len);
    assert_string_equal(p, "payload");
    assert_int_equal(len, 7);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.limit, 100);
    assert_string_equal(buf_str(&b), "");
    free(p);

    /* never NULL, even from a buffer that never held anything */
    p = buf_detach(&b, NULL);
    assert_non_null(p);
    assert_string_equal(p, "");
    free(p);

    /* usable again afterwards */
    assert_int_equal(buf_appends(&b, "again"), 0);
    assert_string_equal(buf_str(&b), "again");
    buf_release(&b);
}

static void buf_reset_empties_but_keeps_the_memory(void **state)
{
    struct buf b = BUF_INIT(100);
    (void)state;

    buf_reset(&b); /* on an empty buffer too */
    assert_string_equal(buf_str(&b), "");
    assert_int_equal(buf_appends(&b, "something"), 0);
    char *data = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_int_equal(buf_appends(&b, "x"), 0);
    assert_string_equal(buf_str(&b), "x");
    buf_release(&b);
}

static void buf_release_returns_to_init_with_the_same_limit(void **state)
{
    struct buf b = BUF_INIT(5);
    (void)state;

    assert_int_equal(buf_appends(&b, "abc"), 0);
    buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.limit, 5);
    buf_release(&b); /* twice is fine */
    assert_int_equal(buf_appends(&b, "abcdef"), -1);
}

/* ---- struct err ---- */

/* struct err with guard bytes after it, to see a write past msg. */
struct guarded_err {
    struct err err;
    unsigned char guard[64];
};

static void guard_init(struct guarded_err *g)
{
    memset(g, 0, sizeof(*g));
    memset(g->guard, 0xa5, sizeof(g->guard));
}

static void guard_check(const struct guarded_err *g)
{
    for (size_t i = 0; i < sizeof(g->guard); i++)
        assert_int_equal(g->guard[i], 0xa5);
    assert_true(memchr(g->err.msg, '\0', sizeof(g->err.msg)) != NULL);
}

static char *long_text(size_t n, char c)
{
    char *s = xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void err_set_fills_code_and_message_and_returns_minus_one(void **state)
{
    struct err err = ERR_INIT;
    (void)state;

    err.sys_errno = 5;
    assert_int_equal(err_set(&err, ERR_NOT_FOUND, "environment '%s' not found", "py"), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_int_equal(err.sys_errno, 0);
    assert_string_equal(err.msg, "environment 'py' not found");
    assert_int_equal(err_set(NULL, ERR_INVALID, "nobody reads this"), -1);
}

static void err_set_truncates_long_messages_without_overflow(void **state)
{
    struct guarded_err g;
    char *big = long_text(1000, 'x');
    (void)state;

    guard_init(&g);
    assert_int_equal(err_set(&g.err, ERR_INVALID, "%s", big), -1);
    assert_int_equal(strlen(g.err.msg), ERR_MSG_MAX - 1);
    guard_check(&g);
    free(big);
}

static void err_errno_appends_strerror_and_keeps_errno(void **state)
{
    struct err err = ERR_INIT;
    char expected[ERR_MSG_MAX];
    (void)state;

    assert_int_equal(err_errno(&err, ERR_INTERNAL, ENOENT, "cannot open '%s'", "x.db"), -1);
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_int_equal(err.sys_errno, ENOENT);
    snprintf(expected, sizeof(expected), "cannot open 'x.db': %s", strerror(ENOENT));
    assert_string_equal(err.msg, expected);
    assert_int_equal(err_errno(NULL, ERR_INTERNAL, EIO, "x"), -1);
}

static void err_errno_truncates_without_overflow(void **state)
{
    struct guarded_err g;
    (void)state;

    /* long enough that ": strerror" has no room, nearly full, and exactly full */
    static const size_t lens[] = {1000, ERR_MSG_MAX - 1, ERR_MSG_MAX - 2, ERR_MSG_MAX - 3,
                                  ERR_MSG_MAX - 10};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        char *big = long_text(lens[i], 'y');
        guard_init(&g);
        assert_int_equal(err_errno(&g.err, ERR_INTERNAL, EACCES, "%s", big), -1);
        assert_int_equal(g.err.sys_errno, EACCES);
        size_t n = strlen(g.err.msg);
        assert_true(n <= ERR_MSG_MAX - 1);
        if (lens[i] < ERR_MSG_MAX - 1)
            assert_int_equal(n, ERR_MSG_MAX - 1); /* filled up with the suffix */
        assert_int_equal(memcmp(g.err.msg, big, lens[i] < n ? lens[i] : n), 0);
        guard_check(&g);
        free(big);
    }
}

static void err_prefix_adds_context_and_keeps_the_code(void **state)
{
    struct err err = ERR_INIT;
    (void)state;

    err_set(&err, ERR_CONFLICT, "name taken");
    assert_int_equal(err_prefix(&err, "creating '%s'", "py311"), -1);
    assert_string_equal(err.msg, "creating 'py311': name taken");
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_int_equal(err_prefix(&err, "api"), -1);
    assert_string_equal(err.msg, "api: creating 'py311': name taken");

    /* a prefix on an error nobody set is our bug: internal */
    struct err blank = ERR_INIT;
    assert_int_equal(err_prefix(&blank, "context"), -1);
    assert_int_equal(blank.code, ERR_INTERNAL);
    assert_string_equal(blank.msg, "context: ");
    assert_int_equal(err_prefix(NULL, "x"), -1);
}

static void err_prefix_truncates_without_overflow(void **state)
{
    struct guarded_err g;
    char *big = long_text(600, 'p');
    (void)state;

    /* a long old message: the prefix stays, the tail of the old one goes */
    guard_init(&g);
    err_set(&g.err, ERR_ENGINE, "%s", big);
    assert_int_equal(err_prefix(&g.err, "ctx"), -1);
    assert_int_equal(strlen(g.err.msg), ERR_MSG_MAX - 1);
    assert_memory_equal(g.err.msg, "ctx: ppp", 8);
    assert_int_equal(g.err.code, ERR_ENGINE);
    guard_check(&g);

    /* a long prefix: it alone fills the message */
    guard_init(&g);
    err_set(&g.err, ERR_ENGINE, "old");
    assert_int_equal(err_prefix(&g.err, "%s", big), -1);
    assert_int_equal(strlen(g.err.msg), ERR_MSG_MAX - 1);
    assert_null(strstr(g.err.msg, "old"));
    guard_check(&g);

    /* prefix many times over */
    guard_init(&g);
    err_set(&g.err, ERR_ENGINE, "root cause");
    for (int i = 0; i < 100; i++)
        err_prefix(&g.err, "layer %d", i);
    assert_int_equal(strlen(g.err.msg), ERR_MSG_MAX - 1);
    assert_memory_equal(g.err.msg, "layer 99: layer 98: ", 20);
    guard_check(&g);
    free(big);
}

/* A client's key with a line break, quoted in a message, made it two lines
 * (found by the tests/fuzz/ harnesses of policies, /execute bodies and
 * history queries); 5xx messages are logged. */
static void err_messages_are_one_line_whatever_they_quote(void **state)
{
    struct err err = ERR_INIT;
    (void)state;

    err_set(&err, ERR_INVALID, "policy.%s: unknown field", "a\nb\r\tc\x01\x7f");
    assert_string_equal(err.msg, "policy.a b  c??: unknown field");
    err_errno(&err, ERR_INTERNAL, ENOENT, "cannot open '%s'", "x\ny");
    assert_string_equal(err.msg, "cannot open 'x y': No such file or directory");
    err_set(&err, ERR_ENGINE, "engine says: %s", "ok");
    err_prefix(&err, "building '%s'", "p\nq");
    assert_string_equal(err.msg, "building 'p q': engine says: ok");
}

static void err_copy_and_clear(void **state)
{
    struct err a = ERR_INIT, b = ERR_INIT;
    (void)state;

    err_errno(&a, ERR_UNAVAILABLE, EPIPE, "socket");
    err_copy(&b, &a);
    assert_int_equal(b.code, ERR_UNAVAILABLE);
    assert_int_equal(b.sys_errno, EPIPE);
    assert_string_equal(b.msg, a.msg);
    err_copy(NULL, &a);
    err_copy(&b, NULL);
    assert_int_equal(b.code, ERR_UNAVAILABLE);

    err_clear(&b);
    assert_int_equal(b.code, ERR_OK);
    assert_int_equal(b.sys_errno, 0);
    assert_string_equal(b.msg, "");
    err_clear(NULL);
}

static void err_code_name_is_distinct_for_every_code(void **state)
{
    (void)state;
    for (int c = ERR_OK; c <= ERR_INTERNAL; c++) {
        const char *name = err_code_name((enum err_code)c);
        assert_non_null(name);
        assert_string_not_equal(name, "unknown");
        for (int d = ERR_OK; d < c; d++)
            assert_string_not_equal(name, err_code_name((enum err_code)d));
    }
    assert_string_equal(err_code_name(ERR_OK), "ok");
    assert_string_equal(err_code_name(ERR_NOT_FOUND), "not_found");
    assert_string_equal(err_code_name((enum err_code)999), "unknown");
}

static void utf8_escape_shows_every_byte_and_keeps_names_apart(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain.txt", 9, "plain.txt"},
        {"\xe6\x95\xb0.csv", 7, "\xe6\x95\xb0.csv"},
        {"caf\xe9", 4, "caf\\xe9"},
        {"a\\xe9", 5, "a\\\\xe9"}, /* a name spelling an escape stays apart from caf\xe9 */
        {"a\nb\x7f", 4, "a\\x0ab\\x7f"},
        {"a\0b", 3, "a\\x00b"},
        {"\xed\xa0\x80", 3, "\\xed\\xa0\\x80"}, /* a surrogate is not UTF-8 */
        {"\xf0\x9f\x98", 3, "\\xf0\\x9f\\x98"}, /* cut short */
        {"", 0, ""},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = utf8_escape(cases[i].in, cases[i].len);
        if (strcmp(out, cases[i].out) != 0)
            fail_msg("case %zu: '%s', expected '%s'", i, out, cases[i].out);
        assert_true(utf8_valid(out, strlen(out)));
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(time_format_iso_gives_utc_with_millis_and_zone),
        cmocka_unit_test(time_format_iso_handles_times_before_the_epoch),
        cmocka_unit_test(time_format_iso_handles_extremes_and_early_years),
        cmocka_unit_test(time_parse_iso_reads_zones_offsets_and_fractions),
        cmocka_unit_test(time_parse_iso_reads_a_date_alone_as_utc_midnight),
        cmocka_unit_test(time_parse_iso_round_trips_time_format_iso),
        cmocka_unit_test(time_parse_iso_rejects_malformed_text),
        cmocka_unit_test(time_parse_iso_rejects_days_past_the_end_of_the_month),
        cmocka_unit_test(time_clocks_move_forward),
        cmocka_unit_test(id_random_hex_gives_2n_lower_hex_characters),
        cmocka_unit_test(sha256_hex_matches_known_vectors),
        cmocka_unit_test(base64_encode_matches_rfc4648_vectors),
        cmocka_unit_test(base64_decode_matches_rfc4648_vectors),
        cmocka_unit_test(base64_round_trips_every_byte_and_length),
        cmocka_unit_test(base64_decode_appends_after_existing_content),
        cmocka_unit_test(base64_decode_rejects_bad_padding_and_characters),
        cmocka_unit_test(base64_decode_rejects_a_nul_inside_the_input),
        cmocka_unit_test(base64_decode_over_the_limit_says_too_large_and_keeps_the_buffer),
        cmocka_unit_test(utf8_valid_accepts_well_formed_text),
        cmocka_unit_test(utf8_valid_rejects_overlong_surrogates_and_truncated),
        cmocka_unit_test(utf8_valid_rejects_nul),
        cmocka_unit_test(utf8_sanitize_keeps_valid_text_unchanged),
        cmocka_unit_test(utf8_escape_shows_every_byte_and_keeps_names_apart),
        cmocka_unit_test(utf8_sanitize_replaces_single_bad_bytes_and_nul),
        cmocka_unit_test(utf8_sanitize_output_is_always_valid),
        cmocka_unit_test(utf8_repair_keeps_nul_and_control_bytes),
        cmocka_unit_test(utf8_repair_replaces_each_invalid_byte_only),
        cmocka_unit_test(utf8_incomplete_tail_holds_back_only_a_cut_character),
        cmocka_unit_test(path_is_safe_relative_table),
        cmocka_unit_test(path_is_safe_relative_allows_255_bytes_not_256),
        cmocka_unit_test(path_is_safe_relative_reads_only_len_bytes),
        cmocka_unit_test(parse_size_reads_suffixes_and_fractions),
        cmocka_unit_test(parse_size_rejects_malformed_and_negative),
        cmocka_unit_test(parse_size_rejects_hex_exponents_and_doubled_suffixes),
        cmocka_unit_test(parse_int_checks_the_range),
        cmocka_unit_test(parse_int_rejects_malformed),
        cmocka_unit_test(buf_append_within_the_limit_keeps_a_nul_terminated_copy),
        cmocka_unit_test(buf_append_over_the_limit_leaves_the_buffer_unchanged),
        cmocka_unit_test(buf_append_keeps_binary_bytes_including_nul),
        cmocka_unit_test(buf_append_grows_across_many_appends),
        cmocka_unit_test(buf_appendf_formats_within_the_limit_and_refuses_over_it),
        cmocka_unit_test(buf_append_upto_takes_what_fits),
        cmocka_unit_test(buf_detach_hands_over_the_bytes_and_empties_the_buffer),
        cmocka_unit_test(buf_reset_empties_but_keeps_the_memory),
        cmocka_unit_test(buf_release_returns_to_init_with_the_same_limit),
        cmocka_unit_test(err_set_fills_code_and_message_and_returns_minus_one),
        cmocka_unit_test(err_set_truncates_long_messages_without_overflow),
        cmocka_unit_test(err_errno_appends_strerror_and_keeps_errno),
        cmocka_unit_test(err_errno_truncates_without_overflow),
        cmocka_unit_test(err_prefix_adds_context_and_keeps_the_code),
        cmocka_unit_test(err_prefix_truncates_without_overflow),
        cmocka_unit_test(err_messages_are_one_line_whatever_they_quote),
        cmocka_unit_test(err_copy_and_clear),
        cmocka_unit_test(err_code_name_is_distinct_for_every_code),
        cmocka_unit_test(time_deadline_in_is_normalised_and_ahead_by_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

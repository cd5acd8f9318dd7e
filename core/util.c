/* core/util.c - time, ids, hashing, base64, UTF-8 repair, path and number parsing. */
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/xalloc.h"

#include "core/banned.h"

int64_t time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec time_deadline_in(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ms < 0)
        ms = 0;
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

int64_t time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void time_format_iso(int64_t ms, char out[TIME_ISO_MAX])
{
    /* floor, not truncation: -1 ms is 23:59:59.999 of the day before (from
     * the quotient: ms - frac would overflow at INT64_MIN) */
    int64_t whole = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        whole--;
    }
    time_t secs = (time_t)whole;
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) /* any int64 ms is a year an int holds: never */
        memset(&tm, 0, sizeof(tm));
    /* four digits at least, as time_parse_iso reads them back (strftime's %Y
     * writes the year 999 as "999") */
    char text[96]; /* what an int tm could print; the years of int64 ms fit TIME_ISO_MAX */
    snprintf(text, sizeof(text), "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ",
             (long long)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, (int)frac);
    size_t n = strnlen(text, TIME_ISO_MAX - 1);
    memcpy(out, text, n);
    out[n] = '\0';
}

static int parse_digits(const char **s, int n, int *ret)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *ret = v;
    return 0;
}

int time_parse_iso(const char *s, int64_t *ret_ms)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;

    if (parse_digits(&s, 4, &y) < 0 || *s++ != '-' || parse_digits(&s, 2, &mo) < 0 || *s++ != '-' ||
        parse_digits(&s, 2, &d) < 0)
        return -1;
    if (*s == 'T' || *s == 't' || *s == ' ') {
        s++;
        if (parse_digits(&s, 2, &h) < 0 || *s++ != ':' || parse_digits(&s, 2, &mi) < 0)
            return -1;
        if (*s == ':') {
            s++;
            if (parse_digits(&s, 2, &sec) < 0)
                return -1;
            if (*s == '.') {
                s++;
                int digits = 0;
                while (isdigit((unsigned char)*s)) {
                    if (digits < 3)
                        ms = ms * 10 + (*s - '0');
                    digits++;
                    s++;
                }
                if (digits == 0)
                    return -1;
                for (; digits < 3; digits++)
                    ms *= 10;
            }
        }
        if (*s == 'Z' || *s == 'z') {
            s++;
        } else if (*s == '+' || *s == '-') {
            int sign = *s++ == '-' ? -1 : 1, oh, om;
            if (parse_digits(&s, 2, &oh) < 0 || *s++ != ':' || parse_digits(&s, 2, &om) < 0)
                return -1;
            if (oh > 23 || om > 59)
                return -1;
            off = sign * (oh * 60 + om);
        } else {
            return -1; /* a time without a zone is ambiguous */
        }
    }
    if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    struct tm check;
    /* timegm rolls 2026-02-30 over into March: refuse days the month lacks */
    if (!gmtime_r(&t, &check) || check.tm_mday != d || check.tm_mon != mo - 1)
        return -1;
    *ret_ms = ((int64_t)t - (int64_t)off * 60) * 1000 + ms;
    return 0;
}

void id_random_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];

    if (nbytes > sizeof(raw))
        nbytes = sizeof(raw);
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = getrandom(raw + got, nbytes - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            abort(); /* the kernel's random source cannot fail on Linux >= 3.17 */
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
}

/* With EVP_sha256(), OpenSSL 3 looks the implementation up again at every
 * digest (a lock and a search: more than the hashing of a kilobyte); the
 * audit chain hashes millions of rows. Fetched once, kept for the process. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void sha256_raw(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    pthread_once(&sha256_once, sha256_fetch);
    if (!EVP_Digest(data, len, out, &n, sha256_md ? sha256_md : EVP_sha256(), NULL))
        abort();
}

void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];

    sha256_raw(data, len, md);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[SHA256_HEX_LEN] = '\0';
}

char *base64_encode(const void *data, size_t len, size_t *ret_len)
{
    size_t out_len = 4 * ((len + 2) / 3);
    char *out = xmalloc(out_len + 1);
    const unsigned char *in = data;
    size_t done = 0, o = 0;

    /* EVP_EncodeBlock takes an int length: feed it in chunks of whole triples. */
    while (done < len) {
        size_t chunk = len - done;
        if (chunk > (size_t)3 * 1024 * 1024)
            chunk = (size_t)3 * 1024 * 1024;
        o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, in + done, (int)chunk);
        done += chunk;
    }
    out[o] = '\0';
    if (ret_len)
        *ret_len = o;
    return out;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int base64_decode(const char *in, size_t len, struct buf *out, bool *ret_too_large)
{
    size_t start = out->len;

    if (ret_too_large)
        *ret_too_large = false;
    if (len % 4 != 0)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad) /* data after padding */
                goto bad;
            v[k] = b64_value(c);
            if (v[k] < 0)
                goto bad;
        }
        unsigned char bytes[3] = {
            (unsigned char)(v[0] << 2 | v[1] >> 4),
            (unsigned char)((v[1] & 15) << 4 | v[2] >> 2),
            (unsigned char)((v[2] & 3) << 6 | v[3]),
        };
        if (buf_append(out, bytes, (size_t)(3 - pad)) < 0) {
            if (ret_too_large)
                *ret_too_large = true;
            goto bad;
        }
    }
    return 0;
bad:
    buf_truncate(out, start);
    return -1;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is invalid;
 * NUL is a valid one-byte sequence here (utf8_seq_len refuses it). */
static size_t utf8_seq_len_nul(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned int cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* The same, with NUL refused: for strings that end at their first NUL. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    return p[0] == 0 ? 0 : utf8_seq_len_nul(p, n);
}

static bool valid(const char *p, size_t n, bool keep_nul)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        size_t l = keep_nul ? utf8_seq_len_nul(s + i, n - i) : utf8_seq_len(s + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

bool utf8_valid(const char *p, size_t n)
{
    return valid(p, n, false);
}

bool utf8_valid_with_nul(const char *p, size_t n)
{
    return valid(p, n, true);
}

static char *repair(const char *p, size_t n, bool keep_nul, size_t *ret_len)
{
    const unsigned char *s = (const unsigned char *)p;
    char *out = xmalloc(n * 3 + 1); /* each bad byte becomes 3 bytes at most */
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        size_t l = keep_nul ? utf8_seq_len_nul(s + i, n - i) : utf8_seq_len(s + i, n - i);
        if (l) {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    if (ret_len)
        *ret_len = o;
    return out;
}

char *utf8_sanitize(const char *p, size_t n, size_t *ret_len)
{
    return repair(p, n, false, ret_len);
}

char *utf8_escape(const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)p;
    char *out = xmalloc(n * 4 + 1); /* each byte becomes 4 bytes at most */
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq_len(s + i, n - i);
        if (l && s[i] == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else if (l > 1 || (l == 1 && s[i] >= 0x20 && s[i] != 0x7f)) {
            memcpy(out + o, s + i, l);
            o += l;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[s[i] >> 4];
            out[o++] = hex[s[i] & 0xf];
            l = 1;
        }
        i += l;
    }
    out[o] = '\0';
    return out;
}

char *utf8_repair(const char *p, size_t n, size_t *ret_len)
{
    return repair(p, n, true, ret_len);
}

size_t utf8_incomplete_tail(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;

    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = s[n - k];
        if ((c & 0xc0) == 0x80)
            continue; /* a continuation byte: its lead byte is further back */
        size_t need = c >= 0xc2 && c <= 0xdf   ? 2
                      : c >= 0xe0 && c <= 0xef ? 3
                      : c >= 0xf0 && c <= 0xf4 ? 4
                                               : 0;
        if (need <= k) /* ASCII, a byte that never starts a sequence, or a whole one */
            return 0;
        if (k >= 2) {
            /* the second byte's range excludes overlongs, surrogates and > U+10FFFF */
            unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
            unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
            if (s[n - k + 1] < lo || s[n - k + 1] > hi)
                return 0;
        }
        return k;
    }
    return 0;
}

bool path_is_safe_relative(const char *p, size_t len, const char **ret_why)
{
    const char *why = NULL;

    if (len == 0)
        why = "is empty";
    else if (len > PATH_NAME_MAX)
        why = "is longer than 255 bytes";
    else if (p[0] == '/')
        why = "is absolute";
    else {
        size_t start = 0;
        for (size_t i = 0; i <= len && !why; i++) {
            if (i < len && (unsigned char)p[i] < 0x20)
                why = p[i] == '\0' ? "contains a NUL byte" : "contains a control character";
            else if (i < len && p[i] == 0x7f)
                why = "contains a control character";
            else if (i == len || p[i] == '/') {
                size_t cl = i - start;
                if (cl == 0)
                    why = "has an empty path component";
                else if (cl == 1 && p[start] == '.')
                    why = "has a '.' component";
                else if (cl == 2 && p[start] == '.' && p[start + 1] == '.')
                    why = "has a '..' component";
                start = i + 1;
            }
        }
    }
    if (why && ret_why)
        *ret_why = why;
    return why == NULL;
}

int parse_int(const char *s, int64_t min, int64_t max, int64_t *ret)
{
    char *end;
    long long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *ret = v;
    return 0;
}

int parse_size(const char *s, int64_t *ret)
{
    double v = 0, scale = 1;
    int64_t mult = 1;
    bool digits = false;

    /* decimal digits with an optional fraction; strtod would take hex and exponents */
    if (!s)
        return -1;
    for (; isdigit((unsigned char)*s); s++, digits = true)
        v = v * 10 + (*s - '0');
    if (*s == '.')
        for (s++; isdigit((unsigned char)*s); s++, digits = true)
            v += (*s - '0') * (scale /= 10);
    if (!digits)
        return -1;
    switch (tolower((unsigned char)*s)) {
    case '\0':
        break;
    case 'b':
        s++;
        break;
    case 'k':
        mult = 1024;
        s++;
        break;
    case 'm':
        mult = 1024 * 1024;
        s++;
        break;
    case 'g':
        mult = 1024LL * 1024 * 1024;
        s++;
        break;
    default:
        return -1;
    }
    /* "512m", "512mb", "512mib"; nothing after a plain "b" */
    if (mult > 1) {
        if (tolower((unsigned char)s[0]) == 'i' && tolower((unsigned char)s[1]) == 'b')
            s += 2;
        else if (tolower((unsigned char)s[0]) == 'b')
            s++;
    }
    if (*s || v * (double)mult > 9.0e18)
        return -1;
    *ret = (int64_t)(v * (double)mult);
    return 0;
}

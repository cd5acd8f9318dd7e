/* core/util.h - small pure helpers shared by every module: time, ids,
 * sha256 and base64 (OpenSSL libcrypto), UTF-8 repair and path checks.
 * All functions are thread-safe. */
#ifndef ENVHUB_UTIL_H
#define ENVHUB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"

/* Wall clock and monotonic clock in milliseconds. */
int64_t time_now_ms(void);
int64_t time_mono_ms(void);
/* The CLOCK_REALTIME instant @ms from now, for pthread_cond_timedwait(). */
struct timespec time_deadline_in(int64_t ms);
#define TIME_ISO_MAX 32
/* Milliseconds since the epoch -> "2026-11-23T18:38:15.361Z" (UTC, always with its zone). */
void time_format_iso(int64_t ms, char out[TIME_ISO_MAX]);
/* RFC 3339 ("2026-11-01", "2026-11-01T10:00:00Z", "...+02:00", fractions) -> ms; -1 if malformed.
 */
int time_parse_iso(const char *s, int64_t *ret_ms);

/* n random bytes from the kernel as 2n lower-case hex characters plus NUL. */
void id_random_hex(char *out, size_t nbytes);

#define SHA256_HEX_LEN 64
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);
/* Raw 32-byte digest. */
void sha256_raw(const void *data, size_t len, unsigned char out[32]);

/* Standard base64 with padding; the caller frees the NUL-terminated result. */
char *base64_encode(const void *data, size_t len, size_t *ret_len);
/* Strict decode (standard alphabet, padding required, no whitespace) appended
 * to out; -1 when the input is not valid base64 or out's limit is passed
 * (*ret_too_large tells which). */
int base64_decode(const char *in, size_t len, struct buf *out, bool *ret_too_large);

/* Copy of p[0..n) with every invalid UTF-8 sequence and NUL replaced by U+FFFD;
 * the caller frees the NUL-terminated result. For strings that must hold no
 * NUL: names, messages, catalog fields. */
char *utf8_sanitize(const char *p, size_t n, size_t *ret_len);
/* Copy of p[0..n) fit to show: well-formed UTF-8 other than control
 * characters stays as it is, a backslash becomes two, and every other byte
 * (NUL, a control character, a byte that is not UTF-8) becomes \xNN, so
 * that different names stay different. For names from untrusted places
 * (a sandbox's file names, an image's volumes) in messages and JSON. The
 * caller frees the NUL-terminated result. */
char *utf8_escape(const char *p, size_t n);
/* Well-formed UTF-8 without NUL (what utf8_sanitize makes). */
bool utf8_valid(const char *p, size_t n);

/* A job's output is kept byte for byte: NUL and the other control characters
 * are valid there, only bytes that are not UTF-8 are repaired. */
/* Well-formed UTF-8, NUL allowed. */
bool utf8_valid_with_nul(const char *p, size_t n);
/* Copy of p[0..n) with each byte that is not part of a well-formed UTF-8
 * sequence replaced by U+FFFD; NUL is kept, so the result (NUL-terminated
 * after *ret_len bytes) must be used with its length. The caller frees it. */
char *utf8_repair(const char *p, size_t n, size_t *ret_len);
/* How many bytes at the end of p[0..n) (0..3) start a well-formed multi-byte
 * sequence that the end cuts: a stream split into chunks holds them back
 * until the next chunk, so that a character split in two stays whole. */
size_t utf8_incomplete_tail(const char *p, size_t n);

#define PATH_NAME_MAX 255
/* A file name a client may give: relative, '/'-separated, no empty, '.' or
 * '..' component, no NUL or control character, at most PATH_NAME_MAX bytes.
 * On false, *ret_why says what is wrong (a static string). */
bool path_is_safe_relative(const char *p, size_t len, const char **ret_why);

/* "512m", "64k", "1g", "1048576" -> bytes; -1 when malformed or negative. */
int parse_size(const char *s, int64_t *ret);
/* Decimal integer in [min, max]; -1 when malformed or out of range. */
int parse_int(const char *s, int64_t min, int64_t max, int64_t *ret);

#endif

/* core/buf.h - growable bytes with a hard limit.
 *
 * buf_str() is never NULL and always NUL-terminated. An append that would
 * pass `limit` returns -1 and leaves the buffer as it was; the caller reports
 * ERR_TOO_LARGE naming its limit. Not thread-safe: one owner at a time. */
#ifndef ENVHUB_BUF_H
#define ENVHUB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data;
    size_t len, cap, limit;
};

#define BUF_INIT(max)                                                                              \
    {                                                                                              \
        .data = NULL, .len = 0, .cap = 0, .limit = (max)                                           \
    }
#define BUF_UNLIMITED ((size_t)-1)

int buf_append(struct buf *b, const void *p, size_t n) __attribute__((warn_unused_result));
int buf_appends(struct buf *b, const char *s) __attribute__((warn_unused_result));
int buf_appendf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), warn_unused_result));
int buf_vappendf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0), warn_unused_result));
/* Append at most what still fits under the limit; returns the bytes taken. */
size_t buf_append_upto(struct buf *b, const void *p, size_t n);
/* For buffers whose only limit is memory (BUF_UNLIMITED): append, which
 * cannot fail (out of memory aborts, as xmalloc does; passing a limit is a
 * bug and aborts too). Inline while the buffer has room: writers of many
 * small pieces (exports, the audit chain) pay a copy and no call. */
void buf_put_grow(struct buf *b, const void *p, size_t n);
static inline void buf_put(struct buf *b, const void *p, size_t n)
{
    if (b->len + n < b->cap) {
        __builtin_memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    buf_put_grow(b, p, n);
}
/* A decimal integer, without printf. */
void buf_put_int(struct buf *b, int64_t v);
void buf_puts(struct buf *b, const char *s);
void buf_putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vputf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Keep the first @len bytes (len <= b->len). */
void buf_truncate(struct buf *b, size_t len);
const char *buf_str(const struct buf *b);
/* The caller frees the result (never NULL); b is empty again. */
char *buf_detach(struct buf *b, size_t *ret_len);
void buf_reset(struct buf *b);   /* len = 0, memory kept */
void buf_release(struct buf *b); /* free; back to BUF_INIT with the same limit */

#endif

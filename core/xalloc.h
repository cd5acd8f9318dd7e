/* core/xalloc.h - allocation that cannot fail: out of memory prints and aborts.
 * Running out of memory is not an error path in envhub; every limit a client
 * controls is enforced before allocating. */
#ifndef ENVHUB_XALLOC_H
#define ENVHUB_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t nmemb, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
void *xmemdup(const void *p, size_t n) __attribute__((malloc, returns_nonnull));
/* printf into a new string; the caller frees it. */
char *xasprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), malloc, returns_nonnull));
char *xvasprintf(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0), malloc, returns_nonnull));

/* Make room for @n elements in the array @x whose capacity is @alloc
 * (elements), growing it by half again at least: ALLOC_GROW(v, len + 1, cap)
 * before v[len++] = x. */
#define ALLOC_GROW(x, n, alloc)                                                                    \
    do {                                                                                           \
        if ((size_t)(n) > (size_t)(alloc)) {                                                       \
            size_t alloc_ = (size_t)(alloc) < 8 ? 16 : (size_t)(alloc) / 2 * 3;                    \
            (alloc) = alloc_ < (size_t)(n) ? (size_t)(n) : alloc_;                                 \
            (x) = xrealloc((x), (size_t)(alloc) * sizeof(*(x)));                                   \
        }                                                                                          \
    } while (0)

/* Free a NULL-terminated array of strings and the array itself; NULL is fine. */
void strv_free(char **v);
/* Append @s (taking it) to the NULL-terminated array *v (NULL is empty). */
void strv_push(char ***v, char *s);
/* "a, b,,c" -> {"a", "b", "c", NULL}: split at @sep, spaces around items
 * trimmed, empty items dropped; never NULL. The caller strv_free()s it. */
char **strv_split(const char *s, char sep);
/* Number of strings in a NULL-terminated array (NULL is empty). */
size_t strv_length(char *const *v);
static inline void strv_freep(char ***v)
{
    strv_free(*v);
}

#endif

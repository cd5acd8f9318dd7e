/* core/cleanup.h - scope-bound cleanup for locals.
 *
 *     _cleanup_free_ char *s = xstrdup("x");     freed when s goes out of scope
 *     return steal_ptr(s);                        ownership leaves, NULL stays behind
 *
 * Every destructor used with _cleanup_ takes a pointer to the variable and
 * accepts a NULL value. */
#ifndef ENVHUB_CLEANUP_H
#define ENVHUB_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

static inline void freep(void *p)
{
    free(*(void **)p);
}

static inline void closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}

/* Take a value out of a _cleanup_ variable: returns it, leaves NULL behind. */
#define steal_ptr(p)                                                                               \
    __extension__({                                                                                \
        __typeof__(p) tmp_ = (p);                                                                  \
        (p) = NULL;                                                                                \
        tmp_;                                                                                      \
    })

/* The same for file descriptors: returns it, leaves -1 behind. */
#define steal_fd(fd)                                                                               \
    __extension__({                                                                                \
        int tmp_ = (fd);                                                                           \
        (fd) = -1;                                                                                 \
        tmp_;                                                                                      \
    })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif

/* core/err.c - filling struct err; messages are truncated, never overflowed. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/banned.h"

/* A message is one line whatever it quotes (a client's key, an engine's
 * answer): it may be logged. Line breaks and tabs become spaces, any other
 * control byte '?'. */
static void one_line(char *msg)
{
    for (unsigned char *p = (unsigned char *)msg; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
        else if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

int err_set(struct err *err, enum err_code code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return -1;
    err->code = code;
    err->sys_errno = 0;
    err->about = ERR_ABOUT_NONE;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    one_line(err->msg);
    return -1;
}

/* Copy s after dst[*n], truncating at cap - 1; dst stays NUL-terminated. */
static void append_bounded(char *dst, size_t cap, size_t *n, const char *s)
{
    size_t len = strlen(s);
    if (*n + 1 >= cap)
        return;
    if (len > cap - 1 - *n)
        len = cap - 1 - *n;
    memcpy(dst + *n, s, len);
    *n += len;
    dst[*n] = '\0';
}

int err_errno(struct err *err, enum err_code code, int errnum, const char *fmt, ...)
{
    va_list ap;
    size_t len;

    if (!err)
        return -1;
    err->code = code;
    err->sys_errno = errnum;
    err->about = ERR_ABOUT_NONE;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    len = strlen(err->msg);
    append_bounded(err->msg, sizeof(err->msg), &len, ": ");
    append_bounded(err->msg, sizeof(err->msg), &len, strerror(errnum));
    one_line(err->msg);
    return -1;
}

int err_prefix(struct err *err, const char *fmt, ...)
{
    char prefix[ERR_MSG_MAX];
    char old[ERR_MSG_MAX];
    va_list ap;

    if (!err)
        return -1;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    size_t n = 0;
    err->msg[0] = '\0';
    append_bounded(err->msg, sizeof(err->msg), &n, prefix);
    append_bounded(err->msg, sizeof(err->msg), &n, ": ");
    append_bounded(err->msg, sizeof(err->msg), &n, old);
    one_line(err->msg);
    if (err->code == ERR_OK)
        err->code = ERR_INTERNAL;
    return -1;
}

int err_about(struct err *err, enum err_code code, enum err_about about, const char *name,
              const char *state)
{
    if (!err)
        return -1;
    switch (about) {
    case ERR_ABOUT_ENV_MISSING:
        err_set(err, code, "environment '%s' does not exist", name);
        break;
    case ERR_ABOUT_ENV_EXISTS:
        err_set(err, code, "environment '%s' exists already", name);
        break;
    case ERR_ABOUT_ENV_NOT_READY:
        err_set(err, code, "environment '%s' is %s: nothing can run in it", name,
                state ? state : "not ready");
        break;
    case ERR_ABOUT_NONE:
        err_set(err, code, "%s", name);
        return -1;
    }
    err->about = about;
    snprintf(err->about_name, sizeof(err->about_name), "%s", name);
    snprintf(err->about_state, sizeof(err->about_state), "%s", state ? state : "");
    return -1;
}

void err_copy(struct err *dst, const struct err *src)
{
    if (dst && src)
        memcpy(dst, src, sizeof(*dst));
}

void err_clear(struct err *err)
{
    if (!err)
        return;
    err->code = ERR_OK;
    err->sys_errno = 0;
    err->about = ERR_ABOUT_NONE;
    err->msg[0] = '\0';
}

const char *err_code_name(enum err_code code)
{
    switch (code) {
    case ERR_OK:
        return "ok";
    case ERR_INVALID:
        return "invalid";
    case ERR_UNPROCESSABLE:
        return "unprocessable";
    case ERR_NOT_FOUND:
        return "not_found";
    case ERR_CONFLICT:
        return "conflict";
    case ERR_TOO_LARGE:
        return "too_large";
    case ERR_BUSY:
        return "busy";
    case ERR_TIMEOUT:
        return "timeout";
    case ERR_ENGINE:
        return "engine";
    case ERR_UNAVAILABLE:
        return "unavailable";
    case ERR_FORBIDDEN:
        return "forbidden";
    case ERR_UNSUPPORTED:
        return "unsupported";
    case ERR_GONE:
        return "gone";
    case ERR_CANCELLED:
        return "cancelled";
    case ERR_SLOW:
        return "slow";
    case ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}

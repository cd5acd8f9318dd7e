/* core/err.h - errors that explain themselves.
 *
 * Functions return 0 on success and -1 on failure; on failure they fill the
 * caller's struct err once (code + message), on success they leave it alone.
 * The message is a fixed array so error paths allocate nothing. It says what
 * failed first, quotes the subject, is lower case, with no final period:
 *     cannot open catalog 'envhub.db': database is locked
 * It is always one line: control bytes in what it quotes are replaced (line
 * breaks and tabs by spaces, others by '?'), so that it can be logged as is.
 * Only web/ turns an error code into an HTTP status (web_status_for_err). */
#ifndef ENVHUB_ERR_H
#define ENVHUB_ERR_H

#include <stddef.h>

enum err_code {
    ERR_OK = 0,
    ERR_INVALID,       /* 400: the request is wrong */
    ERR_UNPROCESSABLE, /* 422: the request is malformed (types, JSON, ranges), or a history
                        * query asks more than its time budget allows */
    ERR_NOT_FOUND,     /* 404 */
    ERR_CONFLICT,      /* 409 (or 400 where the seed's contract says so) */
    ERR_TOO_LARGE,     /* 413 */
    ERR_BUSY,          /* 429 */
    ERR_TIMEOUT,       /* 504 for a call; a job's own timeout is not an error */
    ERR_ENGINE,        /* 502: the Docker engine failed or refused */
    ERR_UNAVAILABLE,   /* 503 */
    ERR_FORBIDDEN,     /* 403 */
    ERR_UNSUPPORTED,   /* 415 */
    ERR_GONE,          /* 410 */
    ERR_CANCELLED,     /* the work was cancelled on purpose (shutdown, delete) */
    ERR_SLOW,          /* 408: the client did not send its request in time */
    ERR_INTERNAL,      /* 500: our bug or the machine's; logged in full */
};

#define ERR_MSG_MAX 256

/* Errors a client contract words in its own text (SimplePySandbox's are in
 * web/compat.c): the module that fails says which, and about what. */
enum err_about {
    ERR_ABOUT_NONE = 0,
    ERR_ABOUT_ENV_MISSING,   /* the environment @name does not exist */
    ERR_ABOUT_ENV_EXISTS,    /* the environment @name exists already */
    ERR_ABOUT_ENV_NOT_READY, /* the environment @name is @state, nothing can run in it */
};

struct err {
    enum err_code code;
    int sys_errno;
    enum err_about about;
    char about_name[64];
    char about_state[16];
    char msg[ERR_MSG_MAX];
};

#define ERR_INIT                                                                                   \
    {                                                                                              \
        .code = ERR_OK, .sys_errno = 0, .about = ERR_ABOUT_NONE, .msg = ""                         \
    }

/* Each returns -1, so a caller can `return err_set(...)`. */
int err_set(struct err *err, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As err_set, with ": strerror(errnum)" appended and sys_errno kept. */
int err_errno(struct err *err, enum err_code code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* As err_set with an English message, marking the error as @about the
 * environment @name (in @state for ERR_ABOUT_ENV_NOT_READY, else NULL), for
 * the web layer to word as its clients' contract does. */
int err_about(struct err *err, enum err_code code, enum err_about about, const char *name,
              const char *state);
/* Prefix context to the message already there: "ctx: old message". */
int err_prefix(struct err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copy one error into another (for errors crossing threads). */
void err_copy(struct err *dst, const struct err *src);
/* Back to ERR_INIT. */
void err_clear(struct err *err);

/* A short stable name for a code ("invalid", "not_found", ...). */
const char *err_code_name(enum err_code code);

#endif

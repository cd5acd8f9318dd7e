/* cli/client.h - the command line's HTTP client of a running envhub server
 * (civetweb's client API), for the cli/ sources only. The server is
 * ENVHUB_URL (default: http:// + ENVHUB_LISTEN); ENVHUB_KEY, when set, goes
 * with every request as a bearer token. One request per connection. */
#ifndef ENVHUB_CLI_CLIENT_H
#define ENVHUB_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"

#define CLIENT_MAX_ANSWER (512 * 1024 * 1024) /* bytes of an answer read whole */

struct mg_connection;

struct client {
    char host[256];      /* to connect to */
    char authority[300]; /* for the Host header */
    int port;
    const char *key;     /* ENVHUB_KEY, borrowed from the environment; NULL: none */
    const char *headers; /* more header lines, each ending CRLF (borrowed); NULL: none */
    bool library;        /* civetweb's library was initialised: client_release() ends it */
};

/* An answer read whole. */
struct answer {
    int status;
    struct buf body;
};
void answer_release(struct answer *a);

/* The server at ENVHUB_URL, or http:// + cfg->listen when it is unset or
 * empty. ERR_INVALID names the variable and what is wrong with the URL (the
 * grammar of core/url.h; https is refused: the client speaks plain HTTP).
 * client_release() it in any case. */
int client_init(struct client *c, const struct config *cfg, struct err *err);
void client_release(struct client *c);

/* Send a request (@body: JSON text or NULL) and read the answer's head; the
 * body is left to the caller (mg_read). *ret_conn belongs to the caller:
 * mg_close_connection(). ERR_UNAVAILABLE when the server cannot be reached
 * or does not answer within @timeout_ms. */
int client_open(const struct client *c, const char *method, const char *path, const char *body,
                const char *accept, int timeout_ms, struct mg_connection **ret_conn,
                int *ret_status, struct err *err);
/* The whole answer in *ret (up to CLIENT_MAX_ANSWER, else ERR_TOO_LARGE);
 * answer_release() it in any case. */
int client_call(const struct client *c, const char *method, const char *path, const char *body,
                int timeout_ms, struct answer *ret, struct err *err);
/* The answer as JSON (NUL allowed in strings: print those by length). On an
 * error status prints its detail ("envhub: WHAT: DETAIL (HTTP n)") and
 * returns NULL; also NULL, said, when the answer is not JSON. The caller
 * json_decref()s the result. */
json_t *answer_json(const struct answer *a, const char *what);

/* @s percent-encoded for a path segment or a query value; the caller frees. */
char *client_escape(const char *s);

#endif

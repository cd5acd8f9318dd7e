/* cli/client.c - the command line's HTTP client (see client.h): civetweb's
 * client API, one connection per request, "Connection: close". */
#include "cli/client.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/url.h"
#include "core/xalloc.h"

#include "core/banned.h"

void answer_release(struct answer *a)
{
    buf_release(&a->body);
}

int client_init(struct client *c, const struct config *cfg, struct err *err)
{
    const char *url = getenv("ENVHUB_URL");
    const char *what = "ENVHUB_URL";
    _cleanup_free_ char *fallback = xasprintf("http://%s", cfg->listen);
    struct url u;

    *c = (struct client){0};
    if (!url || !*url) {
        url = fallback;
        what = "ENVHUB_LISTEN (the server's address while ENVHUB_URL is unset)";
    }
    if (url_parse(url, what, &u, err) < 0)
        return -1;
    if (u.tls)
        return err_set(err, ERR_INVALID,
                       "%s: '%.100s' must start with http:// (the command line speaks plain HTTP)",
                       what, url);
    /* the path of the URL, if any, is not used: the API is at the root */
    snprintf(c->host, sizeof(c->host), "%s", u.host);
    url_authority(&u, c->authority, sizeof(c->authority));
    c->port = u.port;
    c->key = getenv("ENVHUB_KEY");
    mg_init_library(0);
    c->library = true;
    return 0;
}

void client_release(struct client *c)
{
    if (c && c->library) {
        mg_exit_library();
        c->library = false;
    }
}

int client_open(const struct client *c, const char *method, const char *path, const char *body,
                const char *accept, int timeout_ms, struct mg_connection **ret_conn,
                int *ret_status, struct err *err)
{
    char ebuf[256] = "";
    struct mg_connection *conn = mg_connect_client(c->host, c->port, 0, ebuf, sizeof(ebuf));
    size_t len = body ? strlen(body) : 0;

    if (!conn)
        return err_set(err, ERR_UNAVAILABLE,
                       "cannot reach envhub at http://%s: %s (is `make run` serving?)",
                       c->authority, ebuf[0] ? ebuf : "connection refused");
    _cleanup_free_ char *auth =
        c->key && *c->key ? xasprintf("Authorization: Bearer %s\r\n", c->key) : xstrdup("");
    mg_printf(conn,
              "%s %s HTTP/1.1\r\nHost: %s\r\nAccept: %s\r\n%s%s%s"
              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
              method, path, c->authority, accept, auth, c->headers ? c->headers : "",
              body ? "Content-Type: application/json\r\n" : "", len);
    if (len)
        mg_write(conn, body, len);
    if (mg_get_response(conn, ebuf, sizeof(ebuf), timeout_ms) < 0) {
        mg_close_connection(conn);
        return err_set(err, ERR_UNAVAILABLE, "no answer from envhub to %s %s: %s", method, path,
                       ebuf);
    }
    *ret_status = mg_get_response_info(conn)->status_code;
    *ret_conn = conn;
    return 0;
}

int client_call(const struct client *c, const char *method, const char *path, const char *body,
                int timeout_ms, struct answer *ret, struct err *err)
{
    struct mg_connection *conn = NULL;
    char chunk[16384];
    int n;

    ret->body = (struct buf)BUF_INIT(CLIENT_MAX_ANSWER);
    if (client_open(c, method, path, body, "application/json", timeout_ms, &conn, &ret->status,
                    err) < 0)
        return -1;
    while ((n = mg_read(conn, chunk, sizeof(chunk))) > 0)
        if (buf_append(&ret->body, chunk, (size_t)n) < 0) {
            mg_close_connection(conn);
            return err_set(err, ERR_TOO_LARGE, "the answer to %s %s is too large", method, path);
        }
    mg_close_connection(conn);
    return 0;
}

json_t *answer_json(const struct answer *a, const char *what)
{
    json_error_t jerr;
    json_t *doc = json_loadb(buf_str(&a->body), a->body.len, JSON_ALLOW_NUL, &jerr);
    if (a->status >= 400) {
        const char *detail = doc ? json_string_value(json_object_get(doc, "detail")) : NULL;
        fprintf(stderr, "envhub: %s: %s (HTTP %d)\n", what, detail ? detail : buf_str(&a->body),
                a->status);
        json_decref(doc);
        return NULL;
    }
    if (!doc)
        fprintf(stderr, "envhub: %s: the answer is not JSON: %s\n", what, jerr.text);
    return doc;
}

char *client_escape(const char *s)
{
    size_t size = 3 * strlen(s) + 1;
    char *out = xcalloc(size, 1);
    if (mg_url_encode(s, out, size) < 0) {
        free(out);
        return xstrdup(s);
    }
    return out;
}

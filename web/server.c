/* web/server.c - civetweb set-up, request hygiene, routing and replies.
 *
 * Every request passes the same gate before its handler: an X-Request-Id,
 * the Origin check (browsers on other sites may not drive a loopback
 * envhub), JSON-only bodies on POST/PUT/PATCH, and the body size limit taken
 * from Content-Length before anything is read. civetweb's own file serving,
 * directory listing and CORS defaults are off. */
#include <civetweb.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "builder/builder.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define WEB_MAX_HEADERS_SIZE "16384"
#define WEB_REQUEST_TIMEOUT_MS "660000" /* longer than the longest job */

#define WEB_STATUS_SLOTS 8 /* counted statuses per route, the rest in "other" */

struct route_count {
    int status;
    uint64_t n;
};

struct web {
    struct web_deps deps;
    struct mg_context *ctx;
    struct auth *auth;
    struct callbacks *callbacks;
    struct web_hosts hosts;
    struct guard *guard;
    char *tls_joined; /* the private key+certificate file we made, removed at stop */
    pthread_mutex_t count_lock;
    struct route_count counts[64][WEB_STATUS_SLOTS]; /* by route index; [63]: no route */
};

int web_status_for_err(enum err_code code)
{
    switch (code) {
    case ERR_OK:
        return 200;
    case ERR_INVALID:
        return 400;
    case ERR_UNPROCESSABLE:
        return 422;
    case ERR_NOT_FOUND:
        return 404;
    case ERR_CONFLICT:
        return 409;
    case ERR_TOO_LARGE:
        return 413;
    case ERR_BUSY:
        return 429;
    case ERR_TIMEOUT:
        return 504;
    case ERR_ENGINE:
        return 502;
    case ERR_UNAVAILABLE:
        return 503;
    case ERR_FORBIDDEN:
        return 403;
    case ERR_UNSUPPORTED:
        return 415;
    case ERR_GONE:
        return 410;
    case ERR_CANCELLED:
        return 409;
    case ERR_SLOW:
        return 408;
    case ERR_INTERNAL:
        return 500;
    }
    return 500;
}

static const char *status_text(int status)
{
    const char *t = mg_get_response_code_text(NULL, status);
    return t ? t : "";
}

/* How long a connection that ends with its body unread takes what still
 * arrives, so that its close is not a reset (web_guard_linger). */
#define WEB_LINGER_MS 2000

/* ---- replies ---- */

void web_reply_head(struct web_request *rq, int status, const char *content_type, int64_t length,
                    const char *headers)
{
    char length_line[48] = "", cors[600] = "";
    /* a body left unread is not waited for: the connection ends with this
     * answer (web_guard_linger() after it) */
    bool close = length == WEB_STREAM || (rq->has_body && !rq->body_read);

    rq->status = status;
    if (!headers)
        headers = "";
    if (length >= 0)
        snprintf(length_line, sizeof(length_line), "Content-Length: %lld\r\n", (long long)length);
    if (rq->cors_origin)
        snprintf(cors, sizeof(cors),
                 "Access-Control-Allow-Origin: %.400s\r\nVary: Origin\r\n"
                 "Access-Control-Expose-Headers: X-Request-Id, Retry-After\r\n",
                 rq->cors_origin);
    if (close)
        mg_disable_connection_keep_alive(rq->conn);
    mg_printf(rq->conn,
              "HTTP/1.1 %d %s\r\n"
              "Content-Type: %s\r\n"
              "%s"
              "X-Request-Id: %s\r\n"
              "%s"
              "X-Content-Type-Options: nosniff\r\n"
              "%s%s%s"
              "\r\n",
              status, status_text(status), content_type, length_line, rq->request_id,
              strcasestr(headers, "Cache-Control:") ? "" : "Cache-Control: no-store\r\n", cors,
              close ? "Connection: close\r\n" : "", headers);
}

void web_sse_data(struct buf *out, const char *text)
{
    do {
        size_t n = strcspn(text, "\r\n");
        buf_puts(out, "data: ");
        buf_put(out, text, n);
        buf_puts(out, "\n");
        text += n;
        if (text[0] == '\r' && text[1] == '\n')
            text += 2;
        else if (text[0])
            text++;
        else
            break;
    } while (1);
    buf_puts(out, "\n");
}

static void send_bytes(struct web_request *rq, int status, const char *content_type,
                       const char *extra_headers, const char *body, size_t len)
{
    web_reply_head(rq, status, content_type, (int64_t)len,
                   extra_headers ? extra_headers : rq->extra_headers);
    if (len && strcmp(rq->method, "HEAD") != 0)
        mg_write(rq->conn, body, len);
}

void web_reply_bytes(struct web_request *rq, int status, const char *content_type, const void *data,
                     size_t len)
{
    send_bytes(rq, status, content_type, NULL, data, len);
}

json_t *web_json_str(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (!j) { /* not UTF-8: shown repaired rather than dropped */
        _cleanup_free_ char *clean = utf8_sanitize(s, strlen(s), NULL);
        j = json_string(clean);
    }
    return j ? j : json_null();
}

json_t *web_json_time(int64_t ms)
{
    char iso[TIME_ISO_MAX];
    if (ms <= 0)
        return json_null();
    time_format_iso(ms, iso);
    return json_string(iso);
}

void web_reply_json(struct web_request *rq, int status, json_t *doc)
{
    /* sized first, then written once: a large answer (1 MB of output) is
     * held twice at most (the document, then its text), never regrown */
    const size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(9);
    size_t n = doc ? json_dumpb(doc, NULL, 0, flags) : 0;
    char *text = n ? xmalloc(n + 1) : NULL;
    if (text && json_dumpb(doc, text, n, flags) == n) {
        text[n] = '\0';
    } else {
        free(text);
        text = NULL;
    }
    json_decref(doc);
    if (!text) {
        static const char fallback[] = "{\"detail\":\"internal error\"}";
        log_error("web: cannot serialise the answer to %s %s", rq->method, rq->path);
        send_bytes(rq, 500, "application/json", NULL, fallback, sizeof(fallback) - 1);
        return;
    }
    send_bytes(rq, status, "application/json", NULL, text, n);
    free(text);
}

static void reply_detail_status(struct web_request *rq, int status, const char *extra_headers,
                                const char *detail)
{
    json_t *doc = json_pack("{s:s}", "detail", detail);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    send_bytes(rq, status, "application/json", extra_headers, text, strlen(text));
    free(text);
}

void web_reply_detail(struct web_request *rq, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    _cleanup_free_ char *clean = utf8_sanitize(msg, strlen(msg), NULL);
    reply_detail_status(rq, status, NULL, clean);
}

void web_reply_err(struct web_request *rq, const struct err *err)
{
    int status = web_status_for_err(err->code);
    if (err->code == ERR_INTERNAL) {
        log_error("web: request_id=%s %s %s: %s", rq->request_id, rq->method, rq->path, err->msg);
        reply_detail_status(rq, 500, NULL, "internal error");
        return;
    }
    if (status >= 500)
        log_warn("web: request_id=%s %s %s: %s", rq->request_id, rq->method, rq->path, err->msg);
    char detail[ERR_MSG_MAX + 128];
    web_compat_detail(err, detail, sizeof(detail));
    _cleanup_free_ char *clean = utf8_sanitize(detail, strlen(detail), NULL);
    char retry[40];
    snprintf(retry, sizeof(retry), "Retry-After: %d\r\n",
             rq->retry_after > 0 ? rq->retry_after : 1);
    bool retry_later = err->code == ERR_BUSY || (err->code == ERR_UNAVAILABLE && rq->retry_after);
    reply_detail_status(rq, status, retry_later ? retry : NULL, clean);
}

/* Take @n more bytes of the body memory budget for @rq. */
static int body_take(struct web_request *rq, size_t n, struct err *err)
{
    size_t held = 0;
    if (!web_guard_body_take(rq->web->guard, n, &held)) {
        rq->retry_after = 1;
        return err_set(err, ERR_UNAVAILABLE,
                       "body: %zu bytes cannot be held now: requests in progress hold %zu of the "
                       "%lld bytes of ENVHUB_BODY_MEMORY; retry",
                       n, held, (long long)rq->deps->cfg->body_memory);
    }
    rq->body_reserved += n;
    return 0;
}

static int body_late(struct web_request *rq, size_t got, struct err *err)
{
    return err_set(err, ERR_SLOW,
                   "body: not received within ENVHUB_REQUEST_DEADLINE (%lld s); %zu bytes "
                   "arrived",
                   (long long)rq->deps->cfg->request_deadline, got);
}

static int read_body(struct web_request *rq, int64_t deadline, int64_t max, const char *limit_name,
                     char **ret, size_t *ret_len, struct err *err)
{
    const struct mg_request_info *ri = mg_get_request_info(rq->conn);

    if (ri->content_length >= 0) {
        /* the size is known: take it from the budget, read into place */
        size_t want = (size_t)ri->content_length, got = 0;
        if (body_take(rq, want, err) < 0)
            return -1;
        _cleanup_free_ char *body = xmalloc(want + 1);
        while (got < want) {
            int n = time_mono_ms() >= deadline ? 0 : mg_read(rq->conn, body + got, want - got);
            if (n <= 0 && time_mono_ms() >= deadline)
                return body_late(rq, got, err);
            if (n <= 0)
                return err_set(err, ERR_INVALID,
                               "body: the connection ended after %zu of %zu bytes", got, want);
            got += (size_t)n;
        }
        body[want] = '\0';
        *ret_len = want;
        *ret = steal_ptr(body);
        return 0;
    }
    /* chunked: taken from the budget as it grows */
    _cleanup_(buf_release) struct buf body = BUF_INIT((size_t)max);
    char chunk[8192]; /* civetweb's worker threads have small stacks */
    for (;;) {
        int n = time_mono_ms() >= deadline ? -1 : mg_read(rq->conn, chunk, sizeof(chunk));
        if (time_mono_ms() >= deadline)
            return body_late(rq, body.len, err);
        if (n < 0)
            return err_set(err, ERR_INVALID, "body: the connection failed while reading it");
        if (n == 0)
            break;
        if (body.len + (size_t)n > rq->body_reserved &&
            body_take(rq, body.len + (size_t)n - rq->body_reserved + 65536, err) < 0)
            return -1;
        if (buf_append(&body, chunk, (size_t)n) < 0)
            return err_set(err, ERR_TOO_LARGE, "body: over the limit of %lld bytes (%s)",
                           (long long)max, limit_name);
    }
    *ret = buf_detach(&body, ret_len);
    return 0;
}

int web_read_body(struct web_request *rq, char **ret, size_t *ret_len, struct err *err)
{
    return web_read_body_upto(rq, rq->deps->cfg->max_body, "ENVHUB_MAX_BODY", ret, ret_len, err);
}

int web_read_body_upto(struct web_request *rq, int64_t max, const char *limit_name, char **ret,
                       size_t *ret_len, struct err *err)
{
    const struct mg_request_info *ri = mg_get_request_info(rq->conn);
    int64_t deadline = web_guard_deadline(rq->web->guard, rq->wc);

    if (ri->content_length > max)
        return err_set(err, ERR_TOO_LARGE, "body: %lld bytes is over the limit of %lld bytes (%s)",
                       ri->content_length, (long long)max, limit_name);
    if (!rq->has_body) {
        rq->body_read = true;
        *ret = xstrdup("");
        *ret_len = 0;
        return 0;
    }
    /* everything is checked: a client that waits for it may send the body now */
    const char *expect = mg_get_header(rq->conn, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0)
        mg_printf(rq->conn, "HTTP/1.1 100 Continue\r\n\r\n");
    struct watch *w = web_guard_watch(rq->web->guard, rq->conn, deadline);
    int rc = read_body(rq, deadline, max, limit_name, ret, ret_len, err);
    web_guard_unwatch(rq->web->guard, w);
    if (rc == 0)
        rq->body_read = true;
    return rc;
}

json_t *web_read_object(struct web_request *rq, size_t flags, const char *shape, struct err *err)
{
    struct request_limits lim;
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    json_t *doc = NULL;

    web_request_limits(rq->deps->cfg, &lim);
    if (web_read_body(rq, &body, &len, err) < 0 ||
        web_json_object(body, len, flags, &lim.shape, shape, &doc, err) < 0)
        return NULL;
    return doc;
}

/* ---- the gate ---- */

static bool method_has_body(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

/* JSON only where a browser could send a "simple" cross-site request (a form
 * POST); PUT bodies are raw files, and a cross-origin PUT is always
 * preflighted, which envhub answers with no CORS grant. */
static bool method_needs_json(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PATCH") == 0;
}

/* Returns true when the request may go on to its handler. */
static bool gate(struct web_request *rq)
{
    const struct mg_request_info *ri = mg_get_request_info(rq->conn);
    const struct web_hosts *hosts = &rq->web->hosts;
    const char *host = mg_get_header(rq->conn, "Host");
    const char *origin = mg_get_header(rq->conn, "Origin");

    /* a Host the server does not know is a DNS-rebound page or a
     * misdirected request: nothing of it is served (HTTP/1.0 may omit it) */
    if ((host || strcmp(ri->http_version, "1.0") != 0) && !web_hosts_host_ok(hosts, host)) {
        web_reply_detail(rq, 400,
                         "Host: '%.100s' is not a name of this server (it answers to localhost, "
                         "127.0.0.1, [::1], its listen address and ENVHUB_ALLOWED_HOSTS)",
                         host ? host : "(none)");
        return false;
    }
    if (origin) {
        enum web_origin kind = web_hosts_origin(hosts, origin);
        if (kind == WEB_ORIGIN_FOREIGN) {
            web_reply_detail(rq, 403,
                             "origin '%.200s' is not allowed to call envhub (set "
                             "ENVHUB_CORS_ORIGINS to allow it)",
                             origin);
            return false;
        }
        if (kind == WEB_ORIGIN_LISTED)
            rq->cors_origin = origin;
    }
    if (method_has_body(rq->method)) {
        const char *ct = mg_get_header(rq->conn, "Content-Type");
        size_t n = ct ? strcspn(ct, "; ") : 0;
        bool has_body = ri->content_length > 0 || mg_get_header(rq->conn, "Transfer-Encoding");
        if (has_body && method_needs_json(rq->method) &&
            (!ct || n != strlen("application/json") ||
             strncasecmp(ct, "application/json", n) != 0)) {
            web_reply_detail(rq, 415,
                             "Content-Type: '%.100s' is not accepted; send application/json",
                             ct ? ct : "(none)");
            return false;
        }
        if (ri->content_length > rq->deps->cfg->max_body) {
            web_reply_detail(rq, 413,
                             "body: %lld bytes is over the limit of %lld bytes (ENVHUB_MAX_BODY)",
                             ri->content_length, (long long)rq->deps->cfg->max_body);
            return false;
        }
    }
    return true;
}

/* ---- routing ---- */

struct route {
    const char *method;
    const char *pattern; /* "/environments/{}": {} matches one segment */
    enum perm perm;
    void (*handler)(struct web_request *rq);
    bool starts_jobs; /* counts against the caller's quota: checked before the body is read */
};

static const struct route routes[] = {
    {"POST", "/execute", PERM_RUN, api_execute, true},
    {"POST", "/execute-with-environment", PERM_RUN, api_execute_with_environment, true},
    {"GET", "/health", PERM_PUBLIC, api_health, false},
    {"POST", "/environments", PERM_ENV_WRITE, api_env_create, false},
    {"GET", "/environments", PERM_ENV_READ, api_env_list, false},
    {"GET", "/environments/{}", PERM_ENV_READ, api_env_get, false},
    {"DELETE", "/environments/{}", PERM_ENV_WRITE, api_env_delete, false},
    {"POST", "/environments/{}/rebuild", PERM_ENV_WRITE, api_env_rebuild, false},
    {"GET", "/environments/{}/builds", PERM_ENV_READ, api_env_builds, false},
    {"GET", "/environments/{}/builds/{}", PERM_ENV_READ, api_build_get, false},
    {"GET", "/environments/{}/builds/{}/log", PERM_ENV_READ, api_build_log, false},
    {"GET", "/environments/{}/logs", PERM_ENV_READ, api_env_log, false},
    {"GET", "/environments/{}/packages", PERM_ENV_READ, api_env_packages, false},
    {"GET", "/environments/{}/diff", PERM_ENV_READ, api_env_diff, false},
    {"POST", "/environments/{}/lifecycle", PERM_ENV_WRITE, api_env_lifecycle, false},
    {"GET", "/packages", PERM_ENV_READ, api_packages, false},
    {"GET", "/drift", PERM_ENV_READ, api_drift, false},
    {"POST", "/keys", PERM_KEYS, api_keys_create, false},
    {"GET", "/keys", PERM_KEYS, api_keys_list, false},
    {"DELETE", "/keys/{}", PERM_KEYS, api_keys_revoke, false},
    {"GET", "/events", PERM_AUDIT, api_events, false},
    {"GET", "/executions", PERM_HISTORY, api_executions_list, false},
    {"GET", "/executions/export", PERM_AUDIT, api_executions_export,
     false}, /* before /executions/{} */
    {"GET", "/executions/stats", PERM_AUDIT, api_executions_stats, false},
    {"GET", "/executions/{}", PERM_HISTORY, api_executions_get, false},
    {"GET", "/audit/verify", PERM_AUDIT, api_audit_verify, false},
    {"GET", "/me", PERM_ENV_READ, api_me, false},
    {"GET", "/metrics", PERM_AUDIT, api_metrics, false},
    {"POST", "/executions", PERM_RUN, api_submit, true},
    {"POST", "/executions/batch", PERM_RUN, api_submit_batch, true},
    {"POST", "/executions/{}/cancel", PERM_RUN, api_cancel, false},
    {"GET", "/executions/{}/output", PERM_HISTORY, api_output, false},
    {"POST", "/sessions", PERM_RUN, api_session_open, true}, /* holds a concurrent one */
    {"GET", "/sessions", PERM_RUN, api_session_list, false},
    {"GET", "/sessions/{}", PERM_RUN, api_session_get, false},
    {"DELETE", "/sessions/{}", PERM_RUN, api_session_close, false},
    {"POST", "/sessions/{}/execute", PERM_RUN, api_session_execute, true},
    {"POST", "/sessions/{}/reset", PERM_RUN, api_session_reset, false},
    {"PUT", "/sessions/{}/files/{*}", PERM_RUN, api_session_put_file, false},
    {"GET", "/sessions/{}/files/{*}", PERM_RUN, api_session_get_file, false},
    {"GET", "/", PERM_PUBLIC, api_ui_index, false},
    {"GET", "/ui/{}", PERM_PUBLIC, api_ui_asset, false},
    {"GET", "/docs", PERM_PUBLIC, api_ui_docs, false},
    {"GET", "/redoc", PERM_PUBLIC, api_ui_redoc, false},
    {"GET", "/openapi.json", PERM_PUBLIC, api_openapi, false},
    {"GET", "/templates", PERM_ENV_READ, api_templates, false},
    {"POST", "/cluster/nodes/{}/heartbeat", PERM_NODE, api_node_heartbeat, false},
    {"POST", "/cluster/nodes/{}/lease", PERM_NODE, api_node_lease, false},
    {"POST", "/cluster/nodes/{}/results/{}", PERM_NODE, api_node_result, false},
    {"POST", "/cluster/nodes/{}/giveback/{}", PERM_NODE, api_node_giveback, false},
    {"POST", "/cluster/nodes/{}/output/{}", PERM_NODE, api_node_output, false},
    {"GET", "/cluster/nodes", PERM_KEYS, api_cluster_nodes, false},
    {"POST", "/cluster/nodes/{}/drain", PERM_KEYS, api_cluster_drain, false},
    {"POST", "/cluster/nodes/{}/resume", PERM_KEYS, api_cluster_resume, false},
};

#define WEB_MAX_PARAMS 4

/* Does @path match @pattern ({} matches one non-empty segment)? */
static bool route_match(const char *pattern, const char *path)
{
    size_t n_params = 0;

    while (*pattern && *path) {
        if (strncmp(pattern, "{*}", 3) == 0) /* the rest of the path, one or more segments */
            return ++n_params <= WEB_MAX_PARAMS;
        if (pattern[0] == '{' && pattern[1] == '}') {
            size_t seg = strcspn(path, "/");
            if (seg == 0 || ++n_params > WEB_MAX_PARAMS)
                return false;
            pattern += 2;
            path += seg;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return !*pattern && !*path;
}

/* Copies of the {} segments of a matching @path (freed by the caller). */
static void route_capture(const char *pattern, const char *path, char **storage, size_t *n)
{
    *n = 0;
    while (*pattern && *path) {
        if (strncmp(pattern, "{*}", 3) == 0) {
            storage[(*n)++] = xstrdup(path);
            return;
        }
        if (pattern[0] == '{' && pattern[1] == '}') {
            size_t seg = strcspn(path, "/");
            storage[(*n)++] = xstrndup(path, seg);
            pattern += 2;
            path += seg;
            continue;
        }
        pattern++;
        path++;
    }
}

static void count_request(struct web *w, size_t route, int status)
{
    pthread_mutex_lock(&w->count_lock);
    struct route_count *slots = w->counts[route];
    for (size_t i = 0; i < WEB_STATUS_SLOTS; i++)
        if (slots[i].status == status || slots[i].status == 0 || i == WEB_STATUS_SLOTS - 1) {
            if (slots[i].status == 0)
                slots[i].status = status;
            else if (slots[i].status != status)
                slots[i].status = -1; /* the last slot: every other status */
            slots[i].n++;
            break;
        }
    pthread_mutex_unlock(&w->count_lock);
}

void api_metrics(struct web_request *rq)
{
    struct web *w = rq->web;
    _cleanup_(buf_release) struct buf out = BUF_INIT(BUF_UNLIMITED);
    buf_puts(&out, "# HELP envhub_http_requests_total HTTP requests answered, by route and "
                   "status.\n# TYPE envhub_http_requests_total counter\n");
    pthread_mutex_lock(&w->count_lock);
    for (size_t r = 0; r < ARRAY_SIZE(w->counts); r++)
        for (size_t i = 0; i < WEB_STATUS_SLOTS && w->counts[r][i].status; i++) {
            const struct route *rt = r < ARRAY_SIZE(routes) ? &routes[r] : NULL;
            char status[16];
            if (w->counts[r][i].status < 0)
                snprintf(status, sizeof(status), "other");
            else
                snprintf(status, sizeof(status), "%d", w->counts[r][i].status);
            buf_putf(&out,
                     "envhub_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} "
                     "%llu\n",
                     rt ? rt->method : "", rt ? rt->pattern : "(none)", status,
                     (unsigned long long)w->counts[r][i].n);
        }
    pthread_mutex_unlock(&w->count_lock);
    web_metrics_render(&out, rq->deps->executor, rq->deps->builder, rq->deps->catalog);
    web_callbacks_metrics(w->callbacks, &out);
    web_cluster_metrics(&out, rq->deps->cluster);
    send_bytes(rq, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, out.data, out.len);
}

/* The methods @path answers to, for Allow and CORS preflights ("" when none). */
static void path_methods(const char *path, char *out, size_t n)
{
    out[0] = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        if (!route_match(routes[i].pattern, path) || strstr(out, routes[i].method))
            continue;
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%s%s", len ? ", " : "", routes[i].method,
                 strcmp(routes[i].method, "GET") == 0 ? ", HEAD" : "");
    }
}

/* OPTIONS: a CORS preflight from a listed origin gets its grant; any other
 * (the gate refused foreign origins already) learns the path's methods. */
static void options(struct web_request *rq)
{
    char methods[128], headers[512];

    path_methods(rq->path, methods, sizeof(methods));
    if (!methods[0]) {
        web_reply_detail(rq, 404, "not found: %s", rq->path);
        return;
    }
    if (rq->cors_origin && mg_get_header(rq->conn, "Access-Control-Request-Method"))
        snprintf(headers, sizeof(headers),
                 "Access-Control-Allow-Methods: %s, OPTIONS\r\n"
                 "Access-Control-Allow-Headers: Content-Type, Authorization\r\n"
                 "Access-Control-Max-Age: 600\r\n",
                 methods);
    else
        snprintf(headers, sizeof(headers), "Allow: %s, OPTIONS\r\n", methods);
    web_reply_head(rq, 204, "text/plain", WEB_NO_BODY, headers);
}

static int handle(struct mg_connection *conn, void *cbdata)
{
    struct web *w = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct web_request rq = {
        .conn = conn,
        .deps = &w->deps,
        .method = ri->request_method,
        .path = ri->local_uri ? ri->local_uri : "/",
        .query = ri->query_string,
        .client_addr = ri->remote_addr,
        .principal = ri->remote_addr,
        .auth = w->auth,
        .callbacks = w->callbacks,
        .web = w,
        .key_max_concurrent = -1,
        .key_max_per_minute = -1,
        .wc = web_guard_conn(conn),
        .has_body = ri->content_length > 0 ||
                    (ri->content_length < 0 && mg_get_header(conn, "Transfer-Encoding")),
    };
    char *params[WEB_MAX_PARAMS] = {0};
    size_t n_params = 0;
    int64_t t0 = time_mono_ms();
    bool path_known = false;
    size_t route_index = ARRAY_SIZE(w->counts) - 1;
    struct err err = ERR_INIT;

    if (!rq.wc) { /* every served connection has its state (guard.c) */
        mg_disable_connection_keep_alive(conn);
        return 500;
    }
    id_random_hex(rq.request_id, 8);
    /* The route first, so that refusals at the gate count under it too. */
    const struct route *found = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        if (!route_match(routes[i].pattern, rq.path))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, rq.method) == 0 ||
            (strcmp(rq.method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
            found = &routes[i];
            route_index = i;
            break;
        }
    }
    if (!gate(&rq)) {
        /* refused: the gate answered */
    } else if (strcmp(rq.method, "OPTIONS") == 0) {
        options(&rq);
    } else if (found) {
        route_capture(found->pattern, rq.path, params, &n_params);
        for (size_t i = 0; i < n_params; i++)
            rq.params[i] = params[i];
        rq.n_params = n_params;
        /* a session's calls run in the container its open counted already */
        rq.quota_in_session = found->handler == api_session_execute;
        /* role and quota are decided from the headers, before any body byte */
        if (!web_authorize(w->auth, &rq, found->perm)) {
            /* refused: answered */
        } else if (found->starts_jobs && (web_budget_check(w->auth, &rq, time_now_ms(), &err) < 0 ||
                                          web_quota_check(w->auth, &rq, &err) < 0)) {
            web_reply_err(&rq, &err);
        } else {
            found->handler(&rq);
        }
    } else if (path_known) {
        web_reply_detail(&rq, 405, "method %s is not allowed on %s", rq.method, rq.path);
    } else {
        web_reply_detail(&rq, 404, "not found: %s", rq.path);
    }
    if (rq.has_body && !rq.body_read)
        web_guard_linger(w->guard, conn, WEB_LINGER_MS, w->deps.cfg->max_body);
    for (size_t i = 0; i < n_params; i++)
        free(params[i]);
    web_guard_body_give(w->guard, rq.body_reserved);
    web_guard_request_done(rq.wc);
    count_request(w, route_index, rq.status);
    log_info("web: request id=%s method=%s path=%s status=%d ms=%lld client=%s principal=%s",
             rq.request_id, rq.method, rq.path, rq.status, (long long)(time_mono_ms() - t0),
             rq.client_addr, rq.principal);
    return rq.status ? rq.status : 500;
}

static int on_connection_open(const struct mg_connection *conn, void **conn_data)
{
    struct web *w = mg_get_user_context_data(conn);
    *conn_data = NULL;
    web_guard_connection_open(w->guard, conn);
    *conn_data = web_guard_conn(conn);
    return 0;
}

static void on_connection_close(const struct mg_connection *conn)
{
    struct web *w = mg_get_user_context_data(conn);
    web_guard_connection_close(w->guard, conn);
}

/* Errors civetweb answers itself (a malformed request line, headers over the
 * limit, an unknown HTTP version) get the API's shape: a request id, a JSON
 * detail, and a log line. */
static int civetweb_error(struct mg_connection *conn, int status, const char *msg)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char id[17];
    id_random_hex(id, 8);
    /* civetweb says "Malformed message" for headers past max_request_size too */
    const char *detail =
        msg && strcmp(msg, "Malformed message") == 0
            ? "malformed request, or request headers larger than " WEB_MAX_HEADERS_SIZE " bytes"
        : msg && *msg ? msg
                      : "malformed request";
    json_t *doc = json_pack("{s:s}", "detail", detail);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
              "X-Request-Id: %s\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
              "Connection: close\r\n\r\n%s",
              status, status_text(status), text ? strlen(text) : 0, id, text ? text : "");
    log_info("web: request id=%s method=%s path=%s status=%d client=%s (refused by the HTTP layer: "
             "%s)",
             id, ri && ri->request_method ? ri->request_method : "-",
             ri && ri->local_uri ? ri->local_uri : "-", status, ri ? ri->remote_addr : "-",
             msg ? msg : "");
    free(text);
    return 0;
}

static int log_civetweb(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("web: civetweb: %s", message);
    return 1;
}

/* civetweb wants the key and the certificate in one PEM file: when they come
 * apart, join them in a private file that lives as long as the server. */
static char *tls_pem(const struct config *cfg, struct err *err)
{
    if (!cfg->tls_key[0])
        return xstrdup(cfg->tls_cert);
    _cleanup_free_ char *dir = xstrdup("/tmp/envhub-tls-XXXXXX");
    if (!mkdtemp(dir)) {
        err_errno(err, ERR_INTERNAL, errno, "cannot make a private folder for the TLS key");
        return NULL;
    }
    char *path = xasprintf("%s/server.pem", dir);
    _cleanup_close_ int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    const char *parts[] = {cfg->tls_key, cfg->tls_cert};
    for (size_t i = 0; out >= 0 && i < 2; i++) {
        _cleanup_close_ int in = open(parts[i], O_RDONLY | O_CLOEXEC);
        char chunk[4096];
        ssize_t n;
        if (in < 0) {
            err_errno(err, ERR_INVALID, errno, "cannot read '%s'", parts[i]);
            free(path);
            return NULL;
        }
        while ((n = read(in, chunk, sizeof(chunk))) > 0)
            if (write(out, chunk, (size_t)n) != n)
                break;
    }
    if (out < 0) {
        err_errno(err, ERR_INTERNAL, errno, "cannot write '%s'", path);
        free(path);
        return NULL;
    }
    return path;
}

static void remove_joined_pem(char *path)
{
    if (!path)
        return;
    unlink(path);
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = '\0';
        rmdir(path);
    }
    free(path);
}

/* Before civetweb loads OpenSSL: where libssl lacks SSL_get_peer_certificate
 * (OpenSSL 3), load the shim made beside the binary (web/tls_compat.c). */
static int tls_compat_load(struct err *err)
{
    void *ssl = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    bool missing = ssl && !dlsym(ssl, "SSL_get_peer_certificate");
    if (ssl)
        dlclose(ssl);
    if (!missing)
        return 0;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return err_errno(err, ERR_INTERNAL, errno, "cannot find the envhub binary");
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    *slash = '\0';
    _cleanup_free_ char *shim = xasprintf("%s/libenvhub-tls.so", exe);
    if (!dlopen(shim, RTLD_NOW | RTLD_GLOBAL))
        return err_set(err, ERR_UNAVAILABLE,
                       "HTTPS needs '%s' beside the binary (make builds it): %s", shim, dlerror());
    return 0;
}

int web_start(const struct web_deps *deps, struct web **ret, struct err *err)
{
    struct web *w = xcalloc(1, sizeof(*w));
    struct mg_callbacks callbacks = {0};
    const struct config *cfg = deps->cfg;
    int64_t threads = cfg->server_threads;
    char threads_s[32], timeout_s[32];
    bool tls = cfg->tls_cert[0] != '\0';
    _cleanup_free_ char *listen = xasprintf("%s%s", cfg->listen, tls ? "s" : "");
    _cleanup_free_ char *pem = NULL;

    if (tls && (tls_compat_load(err) < 0 || !(pem = tls_pem(cfg, err)))) {
        free(w);
        return -1;
    }
    if (web_hosts_init(&w->hosts, cfg->listen, tls, cfg->allowed_hosts, cfg->cors_origins, err) <
        0) {
        free(w);
        return -1;
    }
    if (web_auth_open(cfg, deps->catalog, &w->auth, err) < 0) {
        web_hosts_release(&w->hosts);
        free(w);
        return -1;
    }
    w->guard = web_guard_new(cfg);
    if (threads <= 0)
        threads = cfg->concurrent_limit + cfg->queue_limit + 8 * cfg->max_connections_per_client;
    snprintf(threads_s, sizeof(threads_s), "%lld", (long long)threads);
    /* civetweb's request timeout bounds each read and write, and the whole
     * of a request's headers: never more than the request deadline */
    int64_t timeout_ms = cfg->request_timeout_ms;
    if (timeout_ms > cfg->request_deadline * 1000)
        timeout_ms = cfg->request_deadline * 1000;
    snprintf(timeout_s, sizeof(timeout_s), "%lld", (long long)timeout_ms);
    const char *options[] = {
        "listening_ports",
        listen,
        "num_threads",
        threads_s,
        "request_timeout_ms",
        timeout_s,
        "max_request_size",
        WEB_MAX_HEADERS_SIZE,
        "enable_keep_alive",
        "yes",
        "keep_alive_timeout_ms",
        "6000", /* past the 5 s clients expect (uvicorn's) */
        "tcp_nodelay",
        "1", /* small JSON answers go out at once */
        "enable_directory_listing",
        "no",
        "access_control_allow_origin",
        "",
        "decode_url",
        "yes",
        tls ? "ssl_certificate" : NULL,
        pem,
        tls ? "ssl_protocol_version" : NULL,
        "4", /* TLS 1.2 and newer */
        NULL,
        NULL,
    };

    w->deps = *deps;
    pthread_mutex_init(&w->count_lock, NULL);
    if (web_callbacks_start(&w->deps, w->auth, &w->callbacks, err) < 0) {
        web_auth_close(w->auth);
        web_guard_free(w->guard);
        web_hosts_release(&w->hosts);
        free(w);
        return -1;
    }
    web_sessions_attach(deps->executor, w->auth);
    if (tls && cfg->tls_key[0])
        w->tls_joined = xstrdup(pem);
    callbacks.log_message = log_civetweb;
    callbacks.http_error = civetweb_error;
    callbacks.init_connection = on_connection_open;
    callbacks.connection_close = on_connection_close;
    mg_init_library(tls ? MG_FEATURES_TLS : 0);
    w->ctx = mg_start(&callbacks, w, options);
    if (!w->ctx) {
        web_sessions_detach(deps->executor);
        web_callbacks_stop(w->callbacks);
        web_auth_close(w->auth);
        web_guard_free(w->guard);
        web_hosts_release(&w->hosts);
        remove_joined_pem(w->tls_joined);
        free(w);
        mg_exit_library();
        return err_set(err, ERR_UNAVAILABLE,
                       "cannot listen on '%s'%s: the address is in use or not valid%s", cfg->listen,
                       tls ? " with TLS" : "",
                       tls ? ", or the certificate cannot be loaded (see the log above)" : "");
    }
    mg_set_request_handler(w->ctx, "/", handle, w);
    web_guard_door_open(w->guard);
    *ret = w;
    return 0;
}

void web_stop(struct web *w)
{
    if (!w)
        return;
    mg_stop(w->ctx);
    web_guard_door_close();
    mg_exit_library();
    /* sessions closed from now on (executor_shutdown) hold no quota here */
    web_sessions_detach(w->deps.executor);
    web_callbacks_stop(w->callbacks);
    web_auth_close(w->auth);
    web_guard_free(w->guard);
    web_hosts_release(&w->hosts);
    remove_joined_pem(w->tls_joined);
    free(w);
}

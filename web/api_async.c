/* web/api_async.c - asynchronous and batch submissions, cancellation, live
 * output, and result callbacks.
 *
 * POST /executions answers 202 with the id at once; the job runs later.
 * A callback_url (loopback, or a host in ENVHUB_CALLBACK_HOSTS) receives the
 * final result as a JSON POST, tried 3 times with backoff by one delivery
 * thread. GET /executions/{id}/output?follow=1 streams a running job's
 * stdout and stderr as server-sent events until it ends. */
#include <arpa/inet.h>
#include <civetweb.h>
#include <ctype.h>
#include <netdb.h>
#include <strings.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/url.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define BATCH_MAX 20
#define CALLBACK_TRIES 3
#define CALLBACK_TIMEOUT_MS 10000
#define OUTPUT_KEEPALIVE_MS 15000

struct callback {
    char id[32];
    char *url;
    bool ready; /* the job is done: deliver */
    int tries;
    int64_t due; /* time_mono_ms of the next try */
    struct callback *next;
};

struct callbacks {
    const struct web_deps *deps;
    struct auth *auth;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct callback *list;
    bool stop;
    pthread_t thread;
    bool started;
};

/* ---- callback URLs ---- */

static bool listed(const struct config *cfg, const char *host)
{
    _cleanup_(strv_freep) char **hosts = strv_split(cfg->callback_hosts, ',');
    for (char **h = hosts; *h; h++)
        if (strcasecmp(*h, host) == 0)
            return true;
    return false;
}

int web_callback_target(const struct config *cfg, const struct url *u, char *ret_ip, size_t n,
                        struct err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char ip[INET6_ADDRSTRLEN] = "";

    if (!listed(cfg, u->host))
        return err_set(
            err, ERR_INVALID,
            "callback_url: host '%s' is not listed in ENVHUB_CALLBACK_HOSTS (callbacks go "
            "only to the hosts an administrator lists; none by default)",
            u->host);
    /* the address is checked here and the delivery connects to this very
     * address (each try resolves and checks anew): a name whose answer
     * changes between the check and the connection cannot move the callback */
    int rc = getaddrinfo(u->host, NULL, &hints, &res);
    if (rc != 0)
        return err_set(err, ERR_INVALID, "callback_url: cannot resolve '%s': %s", u->host,
                       gai_strerror(rc));
    /* the first address it may go to; an internal one only when listed */
    char refused[INET6_ADDRSTRLEN] = "";
    for (struct addrinfo *ai = res; ai && !ip[0]; ai = ai->ai_next) {
        char cand[INET6_ADDRSTRLEN];
        if (ai->ai_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, cand, sizeof(cand));
        else if (ai->ai_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, cand,
                      sizeof(cand));
        else
            continue;
        if (!url_address_internal(cand) || listed(cfg, cand))
            snprintf(ip, sizeof(ip), "%s", cand);
        else if (!refused[0])
            snprintf(refused, sizeof(refused), "%s", cand);
    }
    freeaddrinfo(res);
    if (!ip[0] && refused[0])
        return err_set(err, ERR_INVALID,
                       "callback_url: '%s' is %s, a loopback or private address; list %s in "
                       "ENVHUB_CALLBACK_HOSTS to allow it",
                       u->host, refused, refused);
    if (!ip[0])
        return err_set(err, ERR_INVALID, "callback_url: '%s' has no IP address", u->host);
    snprintf(ret_ip, n, "%s", ip);
    return 0;
}

int web_callback_check(const struct config *cfg, const char *url, struct err *err)
{
    struct url u;
    char ip[INET6_ADDRSTRLEN];

    if (url_parse(url, "callback_url", &u, err) < 0)
        return -1;
    if (u.tls)
        return err_set(err, ERR_INVALID,
                       "callback_url: must be http:// (results are posted "
                       "in the clear to a receiver on a trusted network)");
    return web_callback_target(cfg, &u, ip, sizeof(ip), err);
}

/* The name the submission code knows it by. */
static int check_callback(const struct config *cfg, const char *url, struct err *err)
{
    return web_callback_check(cfg, url, err);
}

/* ---- delivery ---- */

/* The final result of @id as a callback's body. */
static char *result_body(struct catalog *cat, const char *id)
{
    _cleanup_(execution_record_release) struct execution_record rec = {0};
    struct err err = ERR_INIT;

    if (catalog_execution_get(cat, id, &rec, &err) < 0)
        return NULL;
    json_t *files = json_array();
    for (size_t i = 0; i < rec.n_files; i++)
        if (rec.files[i].direction == FILE_OUT)
            json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "path", rec.files[i].path,
                                                   "size", (json_int_t)rec.files[i].size, "sha256",
                                                   rec.files[i].sha256));
    json_t *doc =
        json_pack("{s:s, s:s, s:b, s:o, s:o, s:o, s:f, s:o, s:o, s:o, s:o}", "id", rec.id, "status",
                  exec_status_name(rec.status), "success", rec.status == EXEC_SUCCEEDED,
                  "exit_code", rec.exit_code >= 0 ? json_integer(rec.exit_code) : json_null(),
                  "stdout", web_json_output(rec.stdout_text, rec.stdout_len), "stderr",
                  web_json_output(rec.stderr_text, rec.stderr_len), "execution_time",
                  rec.duration_ms >= 0 ? (double)rec.duration_ms / 1000 : 0.0, "error",
                  rec.error ? json_string(rec.error) : json_null(), "finished_at",
                  web_json_time(rec.finished_at), "files", files, "environment",
                  rec.environment ? json_string(rec.environment) : json_null());
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static int deliver(const struct config *cfg, const char *url, const char *body, struct err *err)
{
    char authority[300], ebuf[256] = "";
    struct url u;

    /* the request line and Host header are written from the parsed parts
     * only: url_parse let nothing through that could end a line */
    char ip[INET6_ADDRSTRLEN];
    if (url_parse(url, "callback_url", &u, err) < 0 ||
        web_callback_target(cfg, &u, ip, sizeof(ip), err) < 0)
        return -1;
    url_authority(&u, authority, sizeof(authority));
    struct mg_connection *conn = mg_connect_client(ip, u.port, 0, ebuf, sizeof(ebuf));
    if (!conn)
        return err_set(err, ERR_UNAVAILABLE, "cannot connect: %s", ebuf);
    mg_printf(conn,
              "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
              "User-Agent: envhub\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
              u.target, authority, strlen(body));
    mg_write(conn, body, strlen(body));
    int rc = mg_get_response(conn, ebuf, sizeof(ebuf), CALLBACK_TIMEOUT_MS);
    int status = rc >= 0 ? mg_get_response_info(conn)->status_code : 0;
    mg_close_connection(conn);
    if (rc < 0)
        return err_set(err, ERR_UNAVAILABLE, "no answer: %s", ebuf);
    if (status < 200 || status >= 300)
        return err_set(err, ERR_UNAVAILABLE, "the receiver answered %d", status);
    return 0;
}

static void *callbacks_main(void *arg)
{
    struct callbacks *cb = arg;

    pthread_mutex_lock(&cb->lock);
    while (!cb->stop) {
        int64_t now = time_mono_ms(), next = now + 60000;
        struct callback *due = NULL;
        for (struct callback *c = cb->list; c && !due; c = c->next)
            if (c->ready && c->due <= now)
                due = c;
        for (struct callback *c = cb->list; c; c = c->next)
            if (c->ready && c->due > now && c->due < next)
                next = c->due;
        if (!due) {
            int64_t wait = next - now;
            struct timespec ts = time_deadline_in(wait);
            pthread_cond_timedwait(&cb->wake, &cb->lock, &ts);
            continue;
        }
        due->tries++;
        _cleanup_free_ char *url = xstrdup(due->url);
        char id[32];
        snprintf(id, sizeof(id), "%s", due->id);
        pthread_mutex_unlock(&cb->lock);

        struct err err = ERR_INIT;
        _cleanup_free_ char *body = result_body(cb->deps->catalog, id);
        int rc = body ? deliver(cb->deps->cfg, url, body, &err)
                      : err_set(&err, ERR_NOT_FOUND, "no result");

        pthread_mutex_lock(&cb->lock);
        if (rc == 0 || due->tries >= CALLBACK_TRIES) {
            if (rc == 0)
                log_info("web: callback of %s delivered after %d tries", id, due->tries);
            else
                log_warn("web: callback of %s given up after %d tries: %s", id, due->tries,
                         err.msg);
            for (struct callback **p = &cb->list; *p; p = &(*p)->next)
                if (*p == due) {
                    *p = due->next;
                    break;
                }
            free(due->url);
            free(due);
        } else {
            /* backoff: 1 s, then 2 s */
            due->due = time_mono_ms() + (1000LL << (due->tries - 1));
            log_info("web: callback of %s failed (try %d), retrying: %s", id, due->tries, err.msg);
        }
    }
    pthread_mutex_unlock(&cb->lock);
    return NULL;
}

static void on_done(void *ctx, const char *id)
{
    struct callbacks *cb = ctx;
    web_quota_release(cb->auth, id);
    pthread_mutex_lock(&cb->lock);
    for (struct callback *c = cb->list; c; c = c->next)
        if (strcmp(c->id, id) == 0) {
            c->ready = true;
            c->due = time_mono_ms();
            pthread_cond_signal(&cb->wake);
        }
    pthread_mutex_unlock(&cb->lock);
}

int web_callbacks_start(const struct web_deps *deps, struct auth *auth, struct callbacks **ret,
                        struct err *err)
{
    struct callbacks *cb = xcalloc(1, sizeof(*cb));
    cb->deps = deps;
    cb->auth = auth;
    pthread_mutex_init(&cb->lock, NULL);
    pthread_cond_init(&cb->wake, NULL);
    if (pthread_create(&cb->thread, NULL, callbacks_main, cb) != 0) {
        free(cb);
        return err_set(err, ERR_INTERNAL, "cannot start the callback thread");
    }
    cb->started = true;
    executor_set_done_hook(deps->executor, on_done, cb);
    *ret = cb;
    return 0;
}

void web_callbacks_stop(struct callbacks *cb)
{
    if (!cb)
        return;
    executor_set_done_hook(cb->deps->executor, NULL, NULL);
    pthread_mutex_lock(&cb->lock);
    cb->stop = true;
    pthread_cond_signal(&cb->wake);
    pthread_mutex_unlock(&cb->lock);
    if (cb->started)
        pthread_join(cb->thread, NULL);
    while (cb->list) {
        struct callback *c = cb->list;
        cb->list = c->next;
        if (c->ready)
            log_warn("web: callback of %s not delivered: envhub stopped", c->id);
        free(c->url);
        free(c);
    }
    pthread_cond_destroy(&cb->wake);
    pthread_mutex_destroy(&cb->lock);
    free(cb);
}

static void callback_add(struct callbacks *cb, const char *id, const char *url)
{
    struct callback *c = xcalloc(1, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->url = xstrdup(url);
    pthread_mutex_lock(&cb->lock);
    c->next = cb->list;
    cb->list = c;
    pthread_mutex_unlock(&cb->lock);
}

/* ---- submissions ---- */

/* Parse one job of a submission (an object with the /execute fields and an
 * optional callback_url). */
static int parse_job(struct web_request *rq, json_t *obj, struct execute_request *req,
                     char **ret_callback, struct err *err)
{
    const struct config *cfg = rq->deps->cfg;
    struct request_limits lim;
    json_t *cb = json_object_get(obj, "callback_url");
    *ret_callback = NULL;
    if (cb && !json_is_null(cb)) {
        if (!json_is_string(cb))
            return err_set(err, ERR_UNPROCESSABLE, "callback_url: must be a string");
        if (check_callback(cfg, json_string_value(cb), err) < 0)
            return -1;
    }
    web_request_limits(cfg, &lim);
    if (web_parse_execute_doc(obj, &lim, false, req, err) < 0)
        return -1;
    if (cb && json_is_string(cb))
        *ret_callback = xstrdup(json_string_value(cb));
    return 0;
}

static struct job_request job_of(struct web_request *rq, const struct execute_request *req)
{
    return (struct job_request){
        .code = req->code,
        .code_len = req->code_len,
        .timeout_s = req->timeout_s,
        .timeout_given = req->timeout_given,
        .overrides = &req->overrides,
        .files = req->files,
        .n_files = req->n_files,
        .environment = req->environment,
        .principal = rq->principal,
        .client_addr = rq->client_addr,
    };
}

/* Submit @n parsed jobs, all or none. Each counts against the key's quota
 * like a synchronous run: per minute, and at once from queued to ended. */
static int submit(struct web_request *rq, const struct execute_request *reqs,
                  char *const *callbacks, size_t n, char (*ids)[32], struct err *err)
{
    struct job_request jobs[BATCH_MAX] = {0};
    bool held[BATCH_MAX] = {0};
    size_t entered = 0;
    int rc = -1;

    for (size_t i = 0; i < n; i++)
        jobs[i] = job_of(rq, &reqs[i]);
    for (; entered < n; entered++) {
        if (web_quota_enter(rq->auth, rq, err) < 0) {
            if (n > 1)
                err_prefix(err, "jobs[%zu]", entered);
            goto out;
        }
        held[entered] = rq->quota_held;
        rq->quota_held = false;
    }
    if (executor_submit_batch(rq->deps->executor, jobs, n, ids, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        rq->quota_held = held[i];
        web_quota_hold(rq->auth, rq, ids[i]);
        held[i] = false;
        if (callbacks[i])
            callback_add(rq->callbacks, ids[i], callbacks[i]);
        /* it may have ended before the callback and the hold were known */
        _cleanup_(execution_record_release) struct execution_record rec = {0};
        struct err gerr = ERR_INIT;
        if (catalog_execution_get(rq->deps->catalog, ids[i], &rec, &gerr) == 0 &&
            rec.status != EXEC_QUEUED && rec.status != EXEC_RUNNING)
            on_done(rq->callbacks, ids[i]);
    }
    rc = 0;
out:
    for (size_t i = 0; i < entered; i++)
        if (held[i]) {
            rq->quota_held = true;
            web_quota_leave(rq->auth, rq, false);
        }
    return rc;
}

void api_submit(struct web_request *rq)
{
    struct err err = ERR_INIT;
    _cleanup_(execute_request_release) struct execute_request req = {0};
    _cleanup_free_ char *callback = NULL;
    char id[32];
    json_auto_t *doc = web_read_object(rq, 0, NULL, &err);

    if (!doc || parse_job(rq, doc, &req, &callback, &err) < 0 ||
        submit(rq, &req, &callback, 1, (char(*)[32])id, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    web_reply_json(rq, 202, json_pack("{s:s, s:s}", "id", id, "status", "queued"));
}

void api_submit_batch(struct web_request *rq)
{
    struct err err = ERR_INIT;
    json_auto_t *doc = web_read_object(rq, 0, NULL, &err);
    struct execute_request reqs[BATCH_MAX];
    char *callbacks[BATCH_MAX] = {0};
    size_t n = 0;

    if (!doc) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *jobs = json_object_get(doc, "jobs");
    if (!json_is_array(jobs) || json_array_size(jobs) == 0) {
        web_reply_detail(rq, 422, "jobs: must be a non-empty array of /execute bodies");
        return;
    }
    if (json_array_size(jobs) > BATCH_MAX) {
        web_reply_detail(rq, 400, "jobs: %zu jobs; a batch holds at most %d", json_array_size(jobs),
                         BATCH_MAX);
        return;
    }
    /* all or nothing: every job is valid before any is submitted */
    for (; n < json_array_size(jobs); n++) {
        json_t *j = json_array_get(jobs, n);
        memset(&reqs[n], 0, sizeof(reqs[n]));
        if (!json_is_object(j)) {
            err_set(&err, ERR_UNPROCESSABLE, "jobs[%zu]: must be an object", n);
            break;
        }
        if (parse_job(rq, j, &reqs[n], &callbacks[n], &err) < 0) {
            err_prefix(&err, "jobs[%zu]", n);
            break;
        }
    }
    if (n == json_array_size(jobs)) {
        char ids[BATCH_MAX][32];
        if (submit(rq, reqs, callbacks, n, ids, &err) == 0) {
            json_t *list = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append_new(list, json_string(ids[i]));
            web_reply_json(rq, 202, json_pack("{s:o, s:s}", "ids", list, "status", "queued"));
        } else {
            web_reply_err(rq, &err);
        }
    } else {
        web_reply_err(rq, &err);
    }
    for (size_t i = 0; i < n && i < BATCH_MAX; i++) {
        execute_request_release(&reqs[i]);
        free(callbacks[i]);
    }
    if (n < BATCH_MAX && n < json_array_size(jobs)) {
        execute_request_release(&reqs[n]);
        free(callbacks[n]);
    }
}

/* Runners and curators may act on their own executions only. */
static bool owns(struct web_request *rq, const char *id)
{
    _cleanup_(execution_record_release) struct execution_record rec = {0};
    struct err err = ERR_INIT;

    if (catalog_execution_get(rq->deps->catalog, id, &rec, &err) < 0) {
        web_reply_detail(rq, 404, "execution '%s' does not exist", id);
        return false;
    }
    if ((rq->role == ROLE_RUNNER || rq->role == ROLE_CURATOR) && !rq->open_mode &&
        strcmp(rec.principal, rq->principal) != 0) {
        web_reply_detail(rq, 404, "execution '%s' does not exist", id);
        return false;
    }
    return true;
}

void api_cancel(struct web_request *rq)
{
    struct err err = ERR_INIT;

    if (!owns(rq, rq->params[0]))
        return;
    if (executor_cancel(rq->deps->executor, rq->params[0], rq->principal, &err) < 0) {
        if (err.code == ERR_NOT_FOUND)
            web_reply_detail(rq, 409, "execution '%s' has already ended", rq->params[0]);
        else
            web_reply_err(rq, &err);
        return;
    }
    web_reply_json(rq, 200, json_pack("{s:s, s:s}", "id", rq->params[0], "status", "cancelling"));
}

struct sse {
    struct web_request *rq;
    bool failed;
    /* per stream (stdout, stderr): the first bytes of a character that the
     * last chunk cut, held back until the next chunk completes it */
    char tail[2][4];
    size_t tail_len[2];
};

/* One event of @len bytes of @stream as a JSON string on one line: NUL and
 * control bytes as \u escapes, bytes that are not UTF-8 as U+FFFD, as the
 * stored output has them. */
static int send_event(struct sse *s, enum engine_stream stream, const char *data, size_t len)
{
    size_t n = 0;
    _cleanup_free_ char *clean = utf8_repair(data, len, &n);
    json_t *str = json_stringn(clean, n);
    _cleanup_free_ char *enc = json_dumps(str, JSON_ENCODE_ANY);
    json_decref(str);
    _cleanup_free_ char *ev =
        xasprintf("event: %s\ndata: %s\n\n", stream == ENGINE_STDERR ? "stderr" : "stdout",
                  enc ? enc : "\"\"");
    if (mg_write(s->rq->conn, ev, strlen(ev)) <= 0) {
        s->failed = true;
        return -1;
    }
    return 0;
}

static int send_chunk(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct sse *s = ctx;
    if (stream == ENGINE_STDIN) {
        static const char keep[] = ": keepalive\n\n";
        return mg_write(s->rq->conn, keep, sizeof(keep) - 1) > 0 ? 0 : -1;
    }
    /* the engine's frames follow the job's writes, which may split a
     * character: without the hold-back both halves would read U+FFFD */
    int k = stream == ENGINE_STDERR;
    size_t held = s->tail_len[k], total = held + len;
    _cleanup_free_ char *joined = xmalloc(total + 1);
    memcpy(joined, s->tail[k], held);
    if (len)
        memcpy(joined + held, data, len);
    size_t keep = utf8_incomplete_tail(joined, total);
    memcpy(s->tail[k], joined + total - keep, keep);
    s->tail_len[k] = keep;
    return total > keep ? send_event(s, stream, joined, total - keep) : 0;
}

/* At the end: what a stream still holds back was cut for good (repaired). */
static void send_tails(struct sse *s)
{
    for (int k = 0; k < 2 && !s->failed; k++) {
        if (s->tail_len[k])
            send_event(s, k ? ENGINE_STDERR : ENGINE_STDOUT, s->tail[k], s->tail_len[k]);
        s->tail_len[k] = 0;
    }
}

void api_output(struct web_request *rq)
{
    _cleanup_(execution_record_release) struct execution_record rec = {0};
    struct err err = ERR_INIT;

    if (!owns(rq, rq->params[0]))
        return;
    web_reply_head(rq, 200, "text/event-stream; charset=utf-8", WEB_STREAM,
                   "X-Accel-Buffering: no\r\n");
    struct sse s = {.rq = rq};
    /* a finished job has no live output: its stored output stands in */
    if (executor_follow(rq->deps->executor, rq->params[0], send_chunk, &s, OUTPUT_KEEPALIVE_MS,
                        &err) < 0) {
        if (catalog_execution_get(rq->deps->catalog, rq->params[0], &rec, &err) == 0) {
            if (rec.stdout_len)
                send_chunk(&s, ENGINE_STDOUT, rec.stdout_text, rec.stdout_len);
            if (rec.stderr_len)
                send_chunk(&s, ENGINE_STDERR, rec.stderr_text, rec.stderr_len);
        }
    }
    send_tails(&s);
    if (s.failed)
        return;
    execution_record_release(&rec);
    if (catalog_execution_get(rq->deps->catalog, rq->params[0], &rec, &err) == 0) {
        json_t *end = json_pack("{s:s, s:o}", "status", exec_status_name(rec.status), "exit_code",
                                rec.exit_code >= 0 ? json_integer(rec.exit_code) : json_null());
        _cleanup_free_ char *data = json_dumps(end, JSON_COMPACT);
        json_decref(end);
        _cleanup_free_ char *ev = xasprintf("event: end\ndata: %s\n\n", data);
        mg_write(rq->conn, ev, strlen(ev));
    }
}

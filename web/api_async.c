/* web/api_async.c - asynchronous and batch submissions, cancellation, live
 * output, and result callbacks.
 *
 * POST /executions answers 202 with the id at once; the job runs later.
 * A callback_url (a host in ENVHUB_CALLBACK_HOSTS) receives the final result
 * as a JSON POST, tried 3 times with backoff by one delivery thread. Each
 * callback is kept in the catalog from its submission until it is delivered
 * or given up (catalog/callbacks.c), so a stop loses none: the next start
 * delivers what is pending. The thread learns from the catalog what is due;
 * the executor's done hook only wakes it. GET /executions/{id}/output?follow=1
 * streams a running job's stdout and stderr as server-sent events until it
 * ends. */
#include <arpa/inet.h>
#include <civetweb.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/url.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define BATCH_MAX 20
#define CALLBACK_TRIES 3
#define CALLBACK_TIMEOUT_MS 10000 /* one try: connect, send, the answer's status line */
#define CALLBACK_BATCH 16         /* due callbacks read from the catalog at once */
#define CALLBACK_IDLE_MS 60000    /* the catalog is looked at again at least this often */
#define CALLBACK_TROUBLE_MS 1000  /* after the catalog failed */
#define CALLBACK_ANSWER_MAX 4096  /* bytes of the answer read for its status line */
#define OUTPUT_KEEPALIVE_MS 15000

struct callbacks {
    const struct web_deps *deps;
    struct auth *auth;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool woken; /* a job ended or a callback was added since the thread last looked */
    bool stop;
    int stop_pipe[2]; /* readable once stopping: a delivery in progress gives up at once */
    pthread_t thread;
    bool started;
    uint64_t delivered, given_up; /* since this start, for /metrics (under lock) */
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
    json_t *files = json_array(), *display = json_array();
    for (size_t i = 0; i < rec.n_files; i++)
        if (rec.files[i].direction != FILE_IN)
            json_array_append_new(
                rec.files[i].direction == FILE_OUT ? files : display,
                json_pack("{s:s, s:I, s:s}", rec.files[i].direction == FILE_OUT ? "path" : "name",
                          rec.files[i].path, "size", (json_int_t)rec.files[i].size, "sha256",
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
    if (doc)
        json_object_set_new(doc, "display", display); /* what was shown: no pictures */
    else
        json_decref(display);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

/* Wait until @fd is ready for @events: ERR_CANCELLED when @stop_fd becomes
 * readable first (stopping), ERR_UNAVAILABLE past @deadline (time_mono_ms). */
static int wait_ready(int fd, short events, int stop_fd, int64_t deadline, const char *doing,
                      struct err *err)
{
    for (;;) {
        int64_t left = deadline - time_mono_ms();
        if (left <= 0)
            return err_set(err, ERR_UNAVAILABLE, "no answer within %d s (%s)",
                           CALLBACK_TIMEOUT_MS / 1000, doing);
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = stop_fd, .events = POLLIN}};
        int r = poll(p, 2, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return err_errno(err, ERR_UNAVAILABLE, errno, "cannot wait for the receiver");
        if (p[1].revents)
            return err_set(err, ERR_CANCELLED, "envhub is stopping");
        if (p[0].revents)
            return 0;
    }
}

static bool io_again(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* One HTTP request (@head, then @body) to @ip port @port; *ret_status: the
 * status of the answer. The socket is non-blocking and every wait watches
 * @stop_fd, so a stop never waits for a slow receiver. */
static int http_post(const char *ip, int port, const char *head, const char *body, int stop_fd,
                     int *ret_status, struct err *err)
{
    int64_t deadline = time_mono_ms() + CALLBACK_TIMEOUT_MS;
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM},
                    *ai = NULL;
    char service[8];

    snprintf(service, sizeof(service), "%d", port);
    int rc = getaddrinfo(ip, service, &hints, &ai);
    if (rc != 0)
        return err_set(err, ERR_INVALID, "cannot use address '%s': %s", ip, gai_strerror(rc));
    _cleanup_close_ int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    rc = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
    int connect_errno = errno;
    freeaddrinfo(ai);
    if (fd < 0 || (rc < 0 && connect_errno != EINPROGRESS))
        return err_errno(err, ERR_UNAVAILABLE, connect_errno, "cannot connect");
    if (rc < 0) {
        int so_error = 0;
        socklen_t len = sizeof(so_error);
        if (wait_ready(fd, POLLOUT, stop_fd, deadline, "connecting", err) < 0)
            return -1;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
            so_error = errno;
        if (so_error)
            return err_errno(err, ERR_UNAVAILABLE, so_error, "cannot connect");
    }

    const char *parts[2] = {head, body};
    for (int k = 0; k < 2; k++) {
        size_t len = strlen(parts[k]), off = 0;
        while (off < len) {
            ssize_t w = send(fd, parts[k] + off, len - off, MSG_NOSIGNAL);
            if (w > 0) {
                off += (size_t)w;
            } else if (w < 0 && io_again()) {
                if (wait_ready(fd, POLLOUT, stop_fd, deadline, "sending", err) < 0)
                    return -1;
            } else {
                return err_errno(err, ERR_UNAVAILABLE, errno, "cannot send the result");
            }
        }
    }

    /* the status line is all that counts */
    char answer[CALLBACK_ANSWER_MAX] = "";
    size_t got = 0;
    while (got < sizeof(answer) - 1 && !memchr(answer, '\n', got)) {
        ssize_t r = recv(fd, answer + got, sizeof(answer) - 1 - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            break;
        } else if (io_again()) {
            if (wait_ready(fd, POLLIN, stop_fd, deadline, "waiting for the answer", err) < 0)
                return -1;
        } else {
            return err_errno(err, ERR_UNAVAILABLE, errno, "cannot read the answer");
        }
    }
    answer[got] = '\0';
    /* "HTTP/1.x NNN ..." */
    if (got < 12 || strncmp(answer, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)answer[7]) ||
        answer[8] != ' ' || !isdigit((unsigned char)answer[9]) ||
        !isdigit((unsigned char)answer[10]) || !isdigit((unsigned char)answer[11]))
        return err_set(err, ERR_UNAVAILABLE, "the receiver's answer is not HTTP");
    *ret_status = (answer[9] - '0') * 100 + (answer[10] - '0') * 10 + (answer[11] - '0');
    return 0;
}

static int deliver(struct callbacks *cb, const char *url, const char *body, struct err *err)
{
    char authority[300], ip[INET6_ADDRSTRLEN];
    struct url u;
    int status = 0;

    /* the request line and Host header are written from the parsed parts
     * only: url_parse let nothing through that could end a line. The host
     * is checked again: the list may have changed since the submission (a
     * restart with other settings) */
    if (url_parse(url, "callback_url", &u, err) < 0 ||
        web_callback_target(cb->deps->cfg, &u, ip, sizeof(ip), err) < 0)
        return -1;
    url_authority(&u, authority, sizeof(authority));
    _cleanup_free_ char *head =
        xasprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                  "User-Agent: envhub\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                  u.target, authority, strlen(body));
    if (http_post(ip, u.port, head, body, cb->stop_pipe[0], &status, err) < 0)
        return -1;
    if (status < 200 || status >= 300)
        return err_set(err, ERR_UNAVAILABLE, "the receiver answered %d", status);
    return 0;
}

static bool callbacks_stopping(struct callbacks *cb)
{
    pthread_mutex_lock(&cb->lock);
    bool stop = cb->stop;
    pthread_mutex_unlock(&cb->lock);
    return stop;
}

/* One try of @c; its row follows: gone when delivered or given up, else its
 * next try set (backoff: 1 s, then 2 s). A try cut by the stop is not
 * counted: the callback stays pending for the next start. -1 when the
 * catalog could not record the outcome. */
static int try_one(struct callbacks *cb, const struct callback_record *c)
{
    struct catalog *cat = cb->deps->catalog;
    struct err err = ERR_INIT, cerr = ERR_INIT;
    int64_t tries = c->tries + 1;

    _cleanup_free_ char *body = result_body(cat, c->execution_id);
    int rc = body
                 ? deliver(cb, c->url, body, &err)
                 : err_set(&err, ERR_NOT_FOUND, "the result of %s cannot be read", c->execution_id);
    if (rc < 0 && err.code == ERR_CANCELLED)
        return 0;
    if (rc == 0 || tries >= CALLBACK_TRIES) {
        if (rc == 0)
            log_info("web: callback of %s delivered after %lld tries", c->execution_id,
                     (long long)tries);
        else
            log_warn("web: callback of %s given up after %lld tries: %s", c->execution_id,
                     (long long)tries, err.msg);
        pthread_mutex_lock(&cb->lock);
        if (rc == 0)
            cb->delivered++;
        else
            cb->given_up++;
        pthread_mutex_unlock(&cb->lock);
        if (catalog_callback_remove(cat, c->execution_id, &cerr) < 0) {
            log_warn("web: cannot remove the callback of %s (it may be sent again): %s",
                     c->execution_id, cerr.msg);
            return -1;
        }
        return 0;
    }
    log_info("web: callback of %s failed (try %lld), retrying: %s", c->execution_id,
             (long long)tries, err.msg);
    if (catalog_callback_failed(cat, c->execution_id, time_now_ms() + (1000LL << (tries - 1)),
                                err.msg, &cerr) < 0) {
        log_warn("web: cannot record the failed callback of %s: %s", c->execution_id, cerr.msg);
        return -1;
    }
    return 0;
}

static void *callbacks_main(void *arg)
{
    struct callbacks *cb = arg;

    for (;;) {
        pthread_mutex_lock(&cb->lock);
        cb->woken = false; /* a wake from now on makes the thread look again */
        bool stop = cb->stop;
        pthread_mutex_unlock(&cb->lock);
        if (stop)
            break;

        struct callback_record *due = NULL;
        size_t n = 0;
        int64_t next = 0, wait_ms = CALLBACK_IDLE_MS;
        struct err err = ERR_INIT;
        if (catalog_callbacks_due(cb->deps->catalog, time_now_ms(), CALLBACK_BATCH, &due, &n, &next,
                                  &err) < 0) {
            log_warn("web: cannot read the pending callbacks, trying again: %s", err.msg);
            wait_ms = CALLBACK_TROUBLE_MS;
        } else {
            bool trouble = false;
            for (size_t i = 0; i < n && !callbacks_stopping(cb); i++)
                trouble |= try_one(cb, &due[i]) < 0;
            callback_records_free(due, n);
            if (n > 0 && !trouble)
                continue; /* what was tried has its next time now: look again */
            if (trouble)
                wait_ms = CALLBACK_TROUBLE_MS;
            else if (next > 0)
                wait_ms = next - time_now_ms();
            if (wait_ms > CALLBACK_IDLE_MS)
                wait_ms = CALLBACK_IDLE_MS;
        }
        pthread_mutex_lock(&cb->lock);
        if (!cb->woken && !cb->stop && wait_ms > 0) {
            struct timespec ts = time_deadline_in(wait_ms);
            pthread_cond_timedwait(&cb->wake, &cb->lock, &ts);
        }
        pthread_mutex_unlock(&cb->lock);
    }
    return NULL;
}

static void callbacks_wake(struct callbacks *cb)
{
    pthread_mutex_lock(&cb->lock);
    cb->woken = true;
    pthread_cond_signal(&cb->wake);
    pthread_mutex_unlock(&cb->lock);
}

/* The executor's done hook: the job's quota is free, and its callback (if
 * any) is due. */
static void on_done(void *ctx, const char *id)
{
    struct callbacks *cb = ctx;
    web_quota_release(cb->auth, id);
    callbacks_wake(cb);
}

static void callbacks_free(struct callbacks *cb)
{
    for (int k = 0; k < 2; k++)
        if (cb->stop_pipe[k] >= 0)
            close(cb->stop_pipe[k]);
    pthread_cond_destroy(&cb->wake);
    pthread_mutex_destroy(&cb->lock);
    free(cb);
}

int web_callbacks_start(const struct web_deps *deps, struct auth *auth, struct callbacks **ret,
                        struct err *err)
{
    struct callbacks *cb = xcalloc(1, sizeof(*cb));
    struct err cerr = ERR_INIT;
    int64_t pending = 0;

    cb->deps = deps;
    cb->auth = auth;
    cb->stop_pipe[0] = cb->stop_pipe[1] = -1;
    pthread_mutex_init(&cb->lock, NULL);
    pthread_cond_init(&cb->wake, NULL);
    if (pipe2(cb->stop_pipe, O_CLOEXEC) < 0) {
        err_errno(err, ERR_INTERNAL, errno, "cannot make the callback thread's stop pipe");
        callbacks_free(cb);
        return -1;
    }
    if (catalog_callback_count(deps->catalog, &pending, &cerr) == 0 && pending > 0)
        log_info("web: %lld result callbacks pending from the last run", (long long)pending);
    if (pthread_create(&cb->thread, NULL, callbacks_main, cb) != 0) {
        callbacks_free(cb);
        return err_set(err, ERR_INTERNAL, "cannot start the callback thread");
    }
    cb->started = true;
    executor_set_done_hook(deps->executor, on_done, cb);
    *ret = cb;
    return 0;
}

void web_callbacks_stop(struct callbacks *cb)
{
    struct err err = ERR_INIT;
    int64_t pending = 0;

    if (!cb)
        return;
    /* returns once no call of on_done is left: nothing of the executor's
     * touches cb (or the quotas of cb->auth) after this */
    executor_set_done_hook(cb->deps->executor, NULL, NULL);
    pthread_mutex_lock(&cb->lock);
    cb->stop = true;
    pthread_cond_signal(&cb->wake);
    pthread_mutex_unlock(&cb->lock);
    if (write(cb->stop_pipe[1], "x", 1) < 0)
        log_warn("web: cannot wake the callback thread's delivery, ignoring: %s", strerror(errno));
    if (cb->started)
        pthread_join(cb->thread, NULL);
    if (catalog_callback_count(cb->deps->catalog, &pending, &err) == 0 && pending > 0)
        log_info("web: %lld result callbacks pending, kept for the next start", (long long)pending);
    callbacks_free(cb);
}

void web_callbacks_metrics(struct callbacks *cb, struct buf *out)
{
    struct err err = ERR_INIT;
    int64_t pending = 0;

    pthread_mutex_lock(&cb->lock);
    uint64_t delivered = cb->delivered, given_up = cb->given_up;
    pthread_mutex_unlock(&cb->lock);
    buf_puts(out, "# HELP envhub_callbacks_delivered_total Result callbacks delivered since the "
                  "start.\n# TYPE envhub_callbacks_delivered_total counter\n");
    buf_putf(out, "envhub_callbacks_delivered_total %llu\n", (unsigned long long)delivered);
    buf_puts(out, "# HELP envhub_callbacks_given_up_total Result callbacks given up (and dropped) "
                  "after their last try since the start.\n"
                  "# TYPE envhub_callbacks_given_up_total counter\n");
    buf_putf(out, "envhub_callbacks_given_up_total %llu\n", (unsigned long long)given_up);
    /* a catalog that cannot answer leaves the gauge out rather than lie */
    if (catalog_callback_count(cb->deps->catalog, &pending, &err) == 0) {
        buf_puts(out, "# HELP envhub_callbacks_pending Result callbacks kept in the catalog, "
                      "waiting for their job's end or their next try.\n"
                      "# TYPE envhub_callbacks_pending gauge\n");
        buf_putf(out, "envhub_callbacks_pending %lld\n", (long long)pending);
    }
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

/* Keep the callbacks of the @n jobs just queued as @ids in the catalog, and
 * wake the delivery thread (a job may have ended already). A job must not
 * run without the callback its client counts on: when one cannot be kept,
 * every job of the submission is cancelled (its row ends interrupted) and
 * err says why. */
static int keep_callbacks(struct web_request *rq, char *const *callbacks, size_t n, char (*ids)[32],
                          struct err *err)
{
    bool any = false;

    for (size_t i = 0; i < n; i++) {
        if (!callbacks[i])
            continue;
        if (catalog_callback_add(rq->deps->catalog, ids[i], callbacks[i], time_now_ms(), err) < 0) {
            for (size_t j = 0; j < n; j++) {
                struct err cerr = ERR_INIT;
                if (executor_cancel(rq->deps->executor, ids[j], rq->principal, &cerr) < 0 &&
                    cerr.code != ERR_NOT_FOUND)
                    log_warn("web: cannot cancel %s, whose callback was not kept: %s", ids[j],
                             cerr.msg);
            }
            if (n > 1)
                err_prefix(err, "jobs[%zu]", i);
            return err_prefix(err, "callback_url not kept, the submission is cancelled");
        }
        any = true;
    }
    if (any)
        callbacks_wake(rq->callbacks);
    return 0;
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
    }
    rc = keep_callbacks(rq, callbacks, n, ids, err);
    for (size_t i = 0; i < n; i++) {
        /* it may have ended before its hold was known */
        _cleanup_(execution_record_release) struct execution_record rec = {0};
        struct err gerr = ERR_INIT;
        if (catalog_execution_get(rq->deps->catalog, ids[i], &rec, &gerr) == 0 &&
            rec.status != EXEC_QUEUED && rec.status != EXEC_RUNNING)
            on_done(rq->callbacks, ids[i]);
    }
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

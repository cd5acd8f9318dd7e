/* engine/engine.c - the Docker Engine API over its unix socket.
 *
 * Every call makes its own curl easy handle, so one struct engine serves all
 * threads without a lock; connections are shared through a curl share handle
 * (locked) so consecutive calls reuse an open socket. Exec and attach use a
 * hijacked connection: CURLOPT_CONNECT_ONLY, a hand-written upgrade request,
 * then raw curl_easy_send/recv of stdin and of the multiplexed output
 * stream. */
#include "engine/engine.h"
#include "engine/engine_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define ENGINE_EXEC_WATCH_MS 2000          /* see engine_exec() */
#define ENGINE_MAX_BODY (16 * 1024 * 1024) /* any JSON answer we read whole */
#define ENGINE_CALL_TIMEOUT_MS 120000      /* plain calls; streams have their own */
#define ENGINE_EXEC_CHUNK 65536

struct engine {
    char *socket_path;
    char *host; /* as configured, for messages */
    char version[16];
    CURLSH *share;
    pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ctx)
{
    struct engine *e = ctx;
    (void)h;
    (void)access;
    pthread_mutex_lock(&e->share_lock[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
    struct engine *e = ctx;
    (void)h;
    pthread_mutex_unlock(&e->share_lock[data]);
}

static void curl_cleanup(CURL **h)
{
    if (*h)
        curl_easy_cleanup(*h);
}

static void slist_free(struct curl_slist **l)
{
    curl_slist_free_all(*l);
}

static size_t write_to_buf(char *data, size_t size, size_t n, void *ctx)
{
    struct buf *b = ctx;
    if (buf_append(b, data, size * n) < 0)
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    return size * n;
}

/* Map an HTTP status from the engine and its body to our error. */
static int engine_http_error(long status, const struct buf *body, const char *what, struct err *err)
{
    _cleanup_free_ char *msg = engine_parse_error_message(body->data ? body->data : "", body->len);
    enum err_code code = status == 404 ? ERR_NOT_FOUND : status == 409 ? ERR_CONFLICT : ERR_ENGINE;
    return err_set(err, code, "%s: %s (engine status %ld)", what, msg, status);
}

static CURL *engine_handle(struct engine *e, const char *url, long timeout_ms)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, e->socket_path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SHARE, e->share);
    if (timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    return h;
}

struct request {
    const char *method;   /* "GET", "POST", "DELETE" */
    const char *path;     /* after the version prefix, e.g. "/containers/create" */
    bool unversioned;     /* /version and /_ping before negotiation */
    const char *body;     /* JSON, or NULL */
    const void *body_bin; /* or bytes (a tar), with body_bin_len */
    size_t body_bin_len;
    int body_fd; /* streamed body from a file, or -1 */
    const char *content_type;
    const char *header; /* one more header line ("Name: value"), or NULL */
    long timeout_ms;
    /* streamed answer: called for each piece; NULL: collected into resp */
    size_t (*on_data)(char *data, size_t size, size_t n, void *ctx);
    void *on_data_ctx;
    bool (*cancelled)(void *ctx); /* polled during the transfer; may be NULL */
    void *cancel_ctx;
};

static int xferinfo_cancel(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                           curl_off_t ulnow)
{
    const struct request *rq = ctx;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return rq->cancelled(rq->cancel_ctx) ? 1 : 0;
}

static size_t read_from_fd(char *data, size_t size, size_t n, void *ctx)
{
    int fd = *(int *)ctx;
    ssize_t r;
    do
        r = read(fd, data, size * n);
    while (r < 0 && errno == EINTR);
    return r < 0 ? CURL_READFUNC_ABORT : (size_t)r;
}

/* One HTTP exchange. *ret_status gets the HTTP status; resp collects the
 * body (when on_data is NULL). Fails only when the engine could not be reached
 * or the answer could not be read. */
static int engine_call(struct engine *e, const struct request *rq, long *ret_status,
                       struct buf *resp, struct err *err)
{
    _cleanup_free_ char *url = xasprintf("http://localhost%s%s%s", rq->unversioned ? "" : "/v",
                                         rq->unversioned ? "" : e->version, rq->path);
    _cleanup_(curl_cleanup) CURL *h = engine_handle(e, url, rq->timeout_ms);
    _cleanup_(slist_free) struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    int fd = rq->body_fd;
    CURLcode rc;

    if (!h)
        return err_set(err, ERR_INTERNAL, "cannot create a curl handle");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (strcmp(rq->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        if (rq->body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(rq->body));
        } else if (rq->body_bin) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body_bin);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_bin_len);
        } else if (fd >= 0) {
            struct stat st;
            curl_easy_setopt(h, CURLOPT_READFUNCTION, read_from_fd);
            curl_easy_setopt(h, CURLOPT_READDATA, &fd);
            if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
        } else {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        }
    } else if (strcmp(rq->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    if (rq->content_type) {
        _cleanup_free_ char *ct = xasprintf("Content-Type: %s", rq->content_type);
        headers = curl_slist_append(headers, ct);
    }
    if (rq->header)
        headers = curl_slist_append(headers, rq->header);
    /* no "Expect: 100-continue" round trip on large bodies */
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (rq->on_data) {
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rq->on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, rq->on_data_ctx);
    } else {
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_to_buf);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    }

    if (rq->cancelled) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cancel);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)rq);
    }

    rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        if (rc == CURLE_ABORTED_BY_CALLBACK ||
            (rc == CURLE_WRITE_ERROR && rq->cancelled && rq->cancelled(rq->cancel_ctx)))
            return err_set(err, ERR_CANCELLED, "%s %s was cancelled", rq->method, rq->path);
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
            return err_set(err, ERR_UNAVAILABLE, "cannot reach the Docker engine at '%s': %s",
                           e->host, why);
        if (rc == CURLE_OPERATION_TIMEDOUT)
            return err_set(err, ERR_TIMEOUT, "the Docker engine did not answer %s %s in time: %s",
                           rq->method, rq->path, why);
        if (rc == CURLE_WRITE_ERROR && !rq->on_data)
            return err_set(err, ERR_ENGINE, "answer to %s %s is larger than %d bytes", rq->method,
                           rq->path, ENGINE_MAX_BODY);
        return err_set(err, ERR_ENGINE, "%s %s failed: %s", rq->method, rq->path, why);
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, ret_status);
    return 0;
}

/* A call whose answer is read whole; status >= 400 becomes an error that
 * carries the engine's message. *ret_body (optional) belongs to the caller. */
static int engine_simple(struct engine *e, const char *method, const char *path, const char *body,
                         const char *what, long *ret_status, char **ret_body, struct err *err)
{
    _cleanup_(buf_release) struct buf resp = BUF_INIT(ENGINE_MAX_BODY);
    struct request rq = {
        .method = method,
        .path = path,
        .body = body,
        .body_fd = -1,
        .content_type = body ? "application/json" : NULL,
        .timeout_ms = ENGINE_CALL_TIMEOUT_MS,
    };
    long status = 0;

    if (engine_call(e, &rq, &status, &resp, err) < 0)
        return err_prefix(err, "%s", what);
    if (ret_status)
        *ret_status = status;
    if (status >= 400)
        return engine_http_error(status, &resp, what, err);
    if (ret_body)
        *ret_body = buf_detach(&resp, NULL);
    return 0;
}

int engine_open(const char *host, struct engine **ret, struct err *err)
{
    struct engine *e;
    _cleanup_(buf_release) struct buf resp = BUF_INIT(ENGINE_MAX_BODY);
    struct request rq = {.method = "GET",
                         .path = "/version",
                         .unversioned = true,
                         .body_fd = -1,
                         .timeout_ms = 10000};
    long status = 0;
    json_error_t jerr;

    if (strncmp(host, "unix://", 7) != 0 || host[7] == '\0')
        return err_set(err, ERR_INVALID, "engine address '%s' must be unix:///path/to/socket",
                       host);
    pthread_once(&curl_once, curl_init_once);
    e = xcalloc(1, sizeof(*e));
    e->socket_path = xstrdup(host + 7);
    e->host = xstrdup(host);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&e->share_lock[i], NULL);
    e->share = curl_share_init();
    if (!e->share) {
        engine_close(e);
        return err_set(err, ERR_INTERNAL, "cannot create a curl share handle");
    }
    curl_share_setopt(e->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(e->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(e->share, CURLSHOPT_USERDATA, e);
    curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);

    if (engine_call(e, &rq, &status, &resp, err) < 0) {
        engine_close(e);
        return -1;
    }
    if (status != 200) {
        engine_http_error(status, &resp, "cannot read the engine's version", err);
        engine_close(e);
        return -1;
    }
    json_auto_t *doc = engine_json_load(buf_str(&resp), resp.len, &jerr);
    const char *api = doc ? json_string_value(json_object_get(doc, "ApiVersion")) : NULL;
    if (!api) {
        engine_close(e);
        return err_set(err, ERR_ENGINE, "the engine at '%s' did not say its API version", host);
    }
    if (engine_version_compare(api, ENGINE_API_MIN) < 0) {
        engine_close(e);
        return err_set(err, ERR_ENGINE,
                       "the engine at '%s' speaks API %s; envhub needs at least %s (Docker 20.10)",
                       host, api, ENGINE_API_MIN);
    }
    snprintf(e->version, sizeof(e->version), "%s",
             engine_version_compare(api, ENGINE_API_MAX) > 0 ? ENGINE_API_MAX : api);
    *ret = e;
    return 0;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    if (e->share)
        curl_share_cleanup(e->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&e->share_lock[i]);
    free(e->socket_path);
    free(e->host);
    free(e);
}

const char *engine_api_version(const struct engine *e)
{
    return e->version;
}

int engine_ping(struct engine *e, struct err *err)
{
    return engine_simple(e, "GET", "/_ping", NULL, "cannot ping the engine", NULL, NULL, err);
}

/* ---- containers ---- */

static json_t *strv_to_json(const char *const *v)
{
    json_t *a = json_array();
    for (; v && *v; v++)
        json_array_append_new(a, json_string(*v));
    return a;
}

static json_t *container_spec_json(const struct engine_container_spec *s)
{
    json_t *doc = json_object(), *hc = json_object(), *labels = json_object();

    json_object_set_new(doc, "Image", json_string(s->image));
    if (s->entrypoint)
        json_object_set_new(doc, "Entrypoint", strv_to_json(s->entrypoint));
    if (s->cmd)
        json_object_set_new(doc, "Cmd", strv_to_json(s->cmd));
    if (s->env)
        json_object_set_new(doc, "Env", strv_to_json(s->env));
    if (s->user)
        json_object_set_new(doc, "User", json_string(s->user));
    if (s->working_dir)
        json_object_set_new(doc, "WorkingDir", json_string(s->working_dir));
    for (size_t i = 0; i < s->n_labels; i++)
        json_object_set_new(labels, s->labels[i].key, json_string(s->labels[i].value));
    json_object_set_new(doc, "Labels", labels);
    json_object_set_new(doc, "AttachStdin", json_boolean(s->open_stdin));
    json_object_set_new(doc, "AttachStdout", json_boolean(s->open_stdin));
    json_object_set_new(doc, "AttachStderr", json_boolean(s->open_stdin));
    json_object_set_new(doc, "Tty", json_false());
    json_object_set_new(doc, "OpenStdin", json_boolean(s->open_stdin));
    if (s->network_disabled)
        json_object_set_new(doc, "NetworkDisabled", json_true());

    if (s->memory_bytes > 0) {
        json_object_set_new(hc, "Memory", json_integer(s->memory_bytes));
        json_object_set_new(hc, "MemorySwap", json_integer(s->memory_bytes));
    }
    if (s->nano_cpus > 0)
        json_object_set_new(hc, "NanoCpus", json_integer(s->nano_cpus));
    if (s->pids_limit > 0)
        json_object_set_new(hc, "PidsLimit", json_integer(s->pids_limit));
    if (s->shm_size > 0)
        json_object_set_new(hc, "ShmSize", json_integer(s->shm_size));
    if (s->network_mode)
        json_object_set_new(hc, "NetworkMode", json_string(s->network_mode));
    json_object_set_new(hc, "ReadonlyRootfs", json_boolean(s->read_only_rootfs));
    if (s->runtime)
        json_object_set_new(hc, "Runtime", json_string(s->runtime));
    if (s->cap_drop_all)
        json_object_set_new(hc, "CapDrop", json_pack("[s]", "ALL"));
    if (s->no_new_privileges)
        json_object_set_new(hc, "SecurityOpt", json_pack("[s]", "no-new-privileges"));
    if (s->log_driver_none)
        json_object_set_new(hc, "LogConfig", json_pack("{s:s, s:{}}", "Type", "none", "Config"));
    if (s->n_tmpfs) {
        json_t *t = json_object();
        for (size_t i = 0; i < s->n_tmpfs; i++)
            json_object_set_new(t, s->tmpfs[i].path, json_string(s->tmpfs[i].options));
        json_object_set_new(hc, "Tmpfs", t);
    }
    json_object_set_new(hc, "AutoRemove", json_boolean(s->auto_remove));
    json_object_set_new(doc, "HostConfig", hc);
    return doc;
}

int engine_container_create(struct engine *e, const struct engine_container_spec *spec,
                            char **ret_id, struct err *err)
{
    json_auto_t *doc = container_spec_json(spec);
    _cleanup_free_ char *body = json_dumps(doc, JSON_COMPACT);
    _cleanup_free_ char *answer = NULL;
    json_error_t jerr;

    if (!body)
        return err_set(err, ERR_INTERNAL, "cannot serialise the container spec");
    if (engine_simple(e, "POST", "/containers/create", body, "cannot create container", NULL,
                      &answer, err) < 0) {
        if (err->code == ERR_NOT_FOUND)
            return err_set(err, ERR_NOT_FOUND, "image '%s' is not in the engine", spec->image);
        return -1;
    }
    json_auto_t *res = engine_json_load(answer, strlen(answer), &jerr);
    const char *id = res ? json_string_value(json_object_get(res, "Id")) : NULL;
    if (!id)
        return err_set(err, ERR_ENGINE, "container create answer has no Id");
    *ret_id = xstrdup(id);
    return 0;
}

int engine_container_start(struct engine *e, const char *id, struct err *err)
{
    _cleanup_free_ char *path = xasprintf("/containers/%s/start", id);
    _cleanup_free_ char *what = xasprintf("cannot start container '%.12s'", id);
    return engine_simple(e, "POST", path, NULL, what, NULL, NULL, err);
}

int engine_container_kill(struct engine *e, const char *id, struct err *err)
{
    _cleanup_free_ char *path = xasprintf("/containers/%s/kill?signal=KILL", id);
    _cleanup_free_ char *what = xasprintf("cannot kill container '%.12s'", id);
    struct err local = ERR_INIT;

    if (engine_simple(e, "POST", path, NULL, what, NULL, NULL, &local) < 0) {
        /* 409: not running, which is what we wanted */
        if (local.code == ERR_CONFLICT)
            return 0;
        err_copy(err, &local);
        return -1;
    }
    return 0;
}

int engine_container_remove(struct engine *e, const char *id, struct err *err)
{
    _cleanup_free_ char *path = xasprintf("/containers/%s?force=1&v=1", id);
    _cleanup_free_ char *what = xasprintf("cannot remove container '%.12s'", id);
    struct err local = ERR_INIT;

    if (engine_simple(e, "DELETE", path, NULL, what, NULL, NULL, &local) < 0) {
        if (local.code == ERR_NOT_FOUND)
            return 0;
        /* 409 "removal already in progress" also ends with it gone */
        if (local.code == ERR_CONFLICT && strstr(local.msg, "already in progress"))
            return 0;
        err_copy(err, &local);
        return -1;
    }
    return 0;
}

int engine_container_inspect(struct engine *e, const char *id, struct engine_container_state *ret,
                             struct err *err)
{
    _cleanup_free_ char *path = xasprintf("/containers/%s/json", id);
    _cleanup_free_ char *what = xasprintf("cannot inspect container '%.12s'", id);
    _cleanup_free_ char *answer = NULL;

    if (engine_simple(e, "GET", path, NULL, what, NULL, &answer, err) < 0)
        return -1;
    return engine_parse_container_state(answer, ret, err);
}

int engine_container_list(struct engine *e, const char *key, const char *value, char ***ret_ids,
                          struct err *err)
{
    _cleanup_free_ char *label = value ? xasprintf("%s=%s", key, value) : xstrdup(key);
    json_auto_t *filters = json_pack("{s:[s]}", "label", label);
    _cleanup_free_ char *filters_s = json_dumps(filters, JSON_COMPACT);
    char *escaped = curl_easy_escape(NULL, filters_s, 0);
    _cleanup_free_ char *path = xasprintf("/containers/json?all=1&filters=%s", escaped);
    _cleanup_free_ char *answer = NULL;
    json_error_t jerr;

    curl_free(escaped);
    if (engine_simple(e, "GET", path, NULL, "cannot list containers", NULL, &answer, err) < 0)
        return -1;
    json_auto_t *doc = engine_json_load(answer, strlen(answer), &jerr);
    if (!json_is_array(doc))
        return err_set(err, ERR_ENGINE, "container list answer is not an array");
    size_t n = json_array_size(doc);
    char **ids = xcalloc(n + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(doc, i), "Id"));
        if (id)
            ids[k++] = xstrdup(id);
    }
    *ret_ids = ids;
    return 0;
}

/* ---- exec ---- */

static int exec_create(struct engine *e, const char *id, const struct engine_exec_spec *spec,
                       char **ret_exec_id, struct err *err)
{
    json_auto_t *doc = json_object();
    json_object_set_new(doc, "AttachStdin", json_boolean(spec->stdin_data != NULL));
    json_object_set_new(doc, "AttachStdout", json_true());
    json_object_set_new(doc, "AttachStderr", json_true());
    json_object_set_new(doc, "Tty", json_false());
    json_object_set_new(doc, "Cmd", strv_to_json(spec->cmd));
    if (spec->env)
        json_object_set_new(doc, "Env", strv_to_json(spec->env));
    if (spec->user)
        json_object_set_new(doc, "User", json_string(spec->user));
    if (spec->working_dir)
        json_object_set_new(doc, "WorkingDir", json_string(spec->working_dir));
    _cleanup_free_ char *body = json_dumps(doc, JSON_COMPACT);
    _cleanup_free_ char *path = xasprintf("/containers/%s/exec", id);
    _cleanup_free_ char *what = xasprintf("cannot create exec in container '%.12s'", id);
    _cleanup_free_ char *answer = NULL;
    json_error_t jerr;

    if (engine_simple(e, "POST", path, body, what, NULL, &answer, err) < 0)
        return -1;
    json_auto_t *res = engine_json_load(answer, strlen(answer), &jerr);
    const char *exec_id = res ? json_string_value(json_object_get(res, "Id")) : NULL;
    if (!exec_id)
        return err_set(err, ERR_ENGINE, "exec create answer has no Id");
    *ret_exec_id = xstrdup(exec_id);
    return 0;
}

/* Wait until the socket is ready for @events or the deadline passes:
 * 1 ready, 0 deadline, -1 error. */
static int wait_socket(curl_socket_t fd, short events, int64_t deadline_ms, short *ret_revents)
{
    for (;;) {
        int timeout = -1;
        if (deadline_ms > 0) {
            int64_t left = deadline_ms - time_mono_ms();
            if (left <= 0)
                return 0;
            timeout = left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        *ret_revents = p.revents;
        return 1;
    }
}

static int send_all(CURL *h, curl_socket_t fd, const char *data, size_t len, int64_t deadline_ms,
                    struct err *err)
{
    while (len > 0) {
        size_t sent = 0;
        CURLcode rc = curl_easy_send(h, data, len, &sent);
        if (rc == CURLE_AGAIN) {
            short rev;
            int w = wait_socket(fd, POLLOUT, deadline_ms, &rev);
            if (w <= 0)
                return err_set(err, w == 0 ? ERR_TIMEOUT : ERR_ENGINE,
                               "cannot send to the engine in time");
            continue;
        }
        if (rc != CURLE_OK)
            return err_set(err, ERR_ENGINE, "cannot send to the engine: %s",
                           curl_easy_strerror(rc));
        data += sent;
        len -= sent;
    }
    return 0;
}

/* Read the HTTP answer head of the hijack request; bytes after it (already
 * part of the stream) are left in *rest. */
static int read_upgrade_head(CURL *h, curl_socket_t fd, int64_t deadline_ms, struct buf *head,
                             size_t *ret_head_len, struct err *err)
{
    char chunk[4096];
    for (;;) {
        char *end = head->data ? strstr(head->data, "\r\n\r\n") : NULL;
        if (end) {
            *ret_head_len = (size_t)(end - head->data) + 4;
            return 0;
        }
        size_t got = 0;
        CURLcode rc = curl_easy_recv(h, chunk, sizeof(chunk), &got);
        if (rc == CURLE_AGAIN) {
            short rev;
            int w = wait_socket(fd, POLLIN, deadline_ms, &rev);
            if (w <= 0)
                return err_set(err, w == 0 ? ERR_TIMEOUT : ERR_ENGINE,
                               "the engine did not answer in time");
            continue;
        }
        if (rc != CURLE_OK || got == 0)
            return err_set(err, ERR_ENGINE, "the engine closed the connection early");
        if (buf_append(head, chunk, got) < 0)
            return err_set(err, ERR_ENGINE, "the engine's answer head is too large");
    }
}

static int exec_inspect(struct engine *e, const char *exec_id, bool *ret_running, int *ret_code,
                        struct err *err)
{
    _cleanup_free_ char *path = xasprintf("/exec/%s/json", exec_id);
    _cleanup_free_ char *answer = NULL;
    json_error_t jerr;

    if (engine_simple(e, "GET", path, NULL, "cannot inspect exec", NULL, &answer, err) < 0)
        return -1;
    json_auto_t *doc = engine_json_load(answer, strlen(answer), &jerr);
    if (!doc)
        return err_set(err, ERR_ENGINE, "cannot parse exec inspect answer: %s", jerr.text);
    *ret_running = json_is_true(json_object_get(doc, "Running"));
    json_t *code = json_object_get(doc, "ExitCode");
    *ret_code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
    return 0;
}

/* A hijacked connection: the raw socket after the engine's 101 answer. */
struct engine_conn {
    struct engine *engine;
    char *container_id; /* looked at while the stream is quiet */
    CURL *h;
    curl_socket_t fd;
    struct engine_demux demux;
    struct buf early; /* stream bytes that came with the answer head */
    char *chunk;      /* ENGINE_EXEC_CHUNK; on the heap: civetweb's threads have small stacks */
};

static void conn_free(struct engine_conn *c)
{
    if (!c)
        return;
    curl_cleanup(&c->h);
    buf_release(&c->early);
    free(c->container_id);
    free(c->chunk);
    free(c);
}

/* Send @request (an HTTP/1.1 request asking to upgrade) on a connection of
 * its own and read the answer head. 0 with *ret (the stream's first bytes
 * kept in early), -1 with ERR_TIMEOUT when the deadline passed, else the
 * engine's error. */
static int hijack(struct engine *e, const char *id, const char *request, const char *what,
                  int64_t deadline_ms, struct engine_conn **ret, struct err *err)
{
    struct engine_conn *c = xcalloc(1, sizeof(*c));
    _cleanup_(buf_release) struct buf head = BUF_INIT(65536);
    size_t head_len = 0;
    int status = 0;

    c->engine = e;
    c->container_id = xstrdup(id);
    c->chunk = xmalloc(ENGINE_EXEC_CHUNK);
    c->early = (struct buf)BUF_INIT(BUF_UNLIMITED);
    engine_demux_init(&c->demux);
    c->h = engine_handle(e, "http://localhost/", 0);
    if (!c->h) {
        conn_free(c);
        return err_set(err, ERR_INTERNAL, "cannot create a curl handle");
    }
    /* a hijacked socket must not be shared: it ends as a raw stream */
    curl_easy_setopt(c->h, CURLOPT_SHARE, NULL);
    curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L);
    CURLcode rc = curl_easy_perform(c->h);
    if (rc != CURLE_OK) {
        conn_free(c);
        return err_set(err, ERR_UNAVAILABLE, "cannot reach the Docker engine at '%s': %s", e->host,
                       curl_easy_strerror(rc));
    }
    if (curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &c->fd) != CURLE_OK ||
        c->fd == CURL_SOCKET_BAD) {
        conn_free(c);
        return err_set(err, ERR_ENGINE, "no socket for the %s connection", what);
    }
    if (send_all(c->h, c->fd, request, strlen(request), deadline_ms, err) < 0 ||
        read_upgrade_head(c->h, c->fd, deadline_ms, &head, &head_len, err) < 0) {
        conn_free(c);
        return -1;
    }
    if (sscanf(buf_str(&head), "HTTP/1.%*d %d", &status) != 1) {
        conn_free(c);
        return err_set(err, ERR_ENGINE, "malformed answer to %s", what);
    }
    if (status != 101 && status != 200) {
        struct buf b = {.data = head.data + head_len, .len = head.len - head_len};
        _cleanup_free_ char *msg = xasprintf("cannot %s", what);
        conn_free(c);
        return engine_http_error(status, &b, msg, err);
    }
    buf_put(&c->early, head.data + head_len, head.len - head_len);
    *ret = c;
    return 0;
}

/* The output callback of a read, which may ask for a pause (1). */
struct pump_tap {
    engine_output_fn fn;
    void *ctx;
    bool pause;
};

static int pump_output(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct pump_tap *t = ctx;
    int r = t->fn(t->ctx, stream, data, len);
    if (r > 0)
        t->pause = true;
    return r < 0 ? -1 : 0;
}

/* Feed received bytes to the demultiplexer: 0, or 1 when the read is over
 * (*ret says why), -1 when the stream is malformed. */
static int pump_feed(struct engine_conn *c, const char *data, size_t len, struct pump_tap *tap,
                     struct engine_read_result *ret, struct err *err)
{
    const char *why = NULL;

    if (engine_demux_feed(&c->demux, data, len, pump_output, tap, &why) < 0) {
        if (why)
            return err_set(err, ERR_ENGINE, "%s", why);
        ret->stopped = true;
        return 1;
    }
    if (tap->pause) {
        ret->paused = true;
        return 1;
    }
    return 0;
}

/* Move the stream: @in (when not NULL) to the process's stdin, then its end
 * when @close_input; the output to @tap until the stream ends, the tap
 * pauses or stops it, or the deadline passes. While the output is quiet the
 * container is looked at every ENGINE_EXEC_WATCH_MS: when it has stopped,
 * the read ends there (under gVisor a container killed out of memory leaves
 * the stream open). */
static int pump(struct engine_conn *c, const char *in, size_t in_left, bool close_input,
                struct pump_tap *tap, int64_t deadline_ms, struct engine_read_result *ret,
                struct err *err)
{
    bool in_closed = in == NULL || (in_left == 0 && !close_input);

    memset(ret, 0, sizeof(*ret));
    ret->exit_code = -1;
    if (c->early.len) {
        int r = pump_feed(c, c->early.data, c->early.len, tap, ret, err);
        buf_truncate(&c->early, 0);
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
    for (;;) {
        short rev = 0;
        short events = POLLIN | (in_closed ? 0 : POLLOUT);
        int64_t slice = time_mono_ms() + ENGINE_EXEC_WATCH_MS;
        bool last = deadline_ms > 0 && deadline_ms <= slice;
        int w = wait_socket(c->fd, events, last ? deadline_ms : slice, &rev);
        if (w == 0 && last) {
            ret->timed_out = true;
            return 0;
        }
        if (w == 0) { /* quiet: is its container still there? */
            struct engine_container_state st;
            struct err ierr = ERR_INIT;
            if (engine_container_inspect(c->engine, c->container_id, &st, &ierr) == 0 &&
                !st.running) {
                ret->container_stopped = true;
                ret->exit_code = st.exit_code;
                return 0;
            }
            continue;
        }
        if (w < 0)
            return err_errno(err, ERR_ENGINE, errno, "cannot wait on the container's stream");
        if (!in_closed && (rev & POLLOUT)) {
            size_t sent = 0;
            size_t n = in_left < ENGINE_EXEC_CHUNK ? in_left : ENGINE_EXEC_CHUNK;
            if (n > 0) {
                CURLcode rc = curl_easy_send(c->h, in, n, &sent);
                if (rc != CURLE_OK && rc != CURLE_AGAIN) {
                    /* the process closed its stdin early: stop feeding it */
                    in_left = 0;
                    sent = 0;
                }
                in += sent;
                in_left -= sent;
            }
            if (in_left == 0) {
                /* end of input: the engine closes the process's stdin */
                if (close_input)
                    shutdown(c->fd, SHUT_WR);
                in_closed = true;
            }
        }
        if (rev & (POLLIN | POLLHUP | POLLERR)) {
            size_t got = 0;
            CURLcode rc = curl_easy_recv(c->h, c->chunk, ENGINE_EXEC_CHUNK, &got);
            if (rc == CURLE_AGAIN)
                continue;
            if (rc != CURLE_OK || got == 0) {
                ret->ended = true;
                return 0;
            }
            int r = pump_feed(c, c->chunk, got, tap, ret, err);
            if (r != 0)
                return r < 0 ? -1 : 0;
        }
    }
}

int engine_exec(struct engine *e, const char *id, const struct engine_exec_spec *spec,
                struct engine_exec_result *ret, struct err *err)
{
    _cleanup_free_ char *exec_id = NULL;
    struct engine_conn *c = NULL;
    struct engine_read_result rr;
    struct pump_tap tap = {.fn = spec->output, .ctx = spec->output_ctx};

    memset(ret, 0, sizeof(*ret));
    ret->exit_code = -1;
    if (exec_create(e, id, spec, &exec_id, err) < 0)
        return -1;

    const char *start_body = "{\"Detach\":false,\"Tty\":false}";
    _cleanup_free_ char *request = xasprintf(
        "POST /v%s/exec/%s/start HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: %zu\r\n\r\n%s",
        e->version, exec_id, strlen(start_body), start_body);
    if (hijack(e, id, request, "start exec", spec->deadline_ms, &c, err) < 0) {
        if (err->code == ERR_TIMEOUT) {
            ret->timed_out = true;
            return 0;
        }
        return -1;
    }
    int rc = pump(c, spec->stdin_data, spec->stdin_len, true, &tap, spec->deadline_ms, &rr, err);
    conn_free(c);
    if (rc < 0)
        return -1;
    ret->timed_out = rr.timed_out;
    ret->stopped = rr.stopped;
    ret->container_stopped = rr.container_stopped;
    if (!rr.ended) {
        ret->exit_code = rr.exit_code;
        return 0;
    }

    /* The stream can end a moment before the engine marks the exec done. */
    for (int tries = 0; tries < 200; tries++) {
        bool running = false;
        int code = -1;
        if (exec_inspect(e, exec_id, &running, &code, err) < 0)
            return -1;
        if (!running) {
            ret->exit_code = code;
            return 0;
        }
        if (spec->deadline_ms > 0 && time_mono_ms() >= spec->deadline_ms) {
            ret->timed_out = true;
            return 0;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return err_set(err, ERR_ENGINE, "exec '%.12s' still runs after its output ended", exec_id);
}

/* ---- attach ---- */

int engine_attach(struct engine *e, const char *id, int64_t deadline_ms, struct engine_conn **ret,
                  struct err *err)
{
    _cleanup_free_ char *request =
        xasprintf("POST /v%s/containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                  "Host: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                  "Content-Length: 0\r\n\r\n",
                  e->version, id);
    return hijack(e, id, request, "attach to the container", deadline_ms, ret, err);
}

int engine_conn_send(struct engine_conn *c, const void *data, size_t len, int64_t deadline_ms,
                     struct err *err)
{
    return send_all(c->h, c->fd, data, len, deadline_ms, err);
}

int engine_conn_read(struct engine_conn *c, engine_output_fn fn, void *ctx, int64_t deadline_ms,
                     struct engine_read_result *ret, struct err *err)
{
    struct pump_tap tap = {.fn = fn, .ctx = ctx};
    return pump(c, NULL, 0, false, &tap, deadline_ms, ret, err);
}

void engine_conn_close(struct engine_conn *c)
{
    conn_free(c);
}

/* ---- images ---- */

int engine_image_inspect(struct engine *e, const char *ref, struct engine_image_info *ret,
                         struct err *err)
{
    _cleanup_free_ char *path = xasprintf("/images/%s/json", ref);
    _cleanup_free_ char *what = xasprintf("cannot inspect image '%s'", ref);
    _cleanup_free_ char *answer = NULL;

    if (engine_simple(e, "GET", path, NULL, what, NULL, &answer, err) < 0)
        return -1;
    return engine_parse_image_info(answer, ret, err);
}

/* Progress answers (import, build, pull) are JSON lines; an {"error": ...}
 * line means failure even under status 200. */
static size_t progress_data(char *data, size_t size, size_t n, void *ctx)
{
    struct engine_progress *p = ctx;
    if (engine_progress_feed(p, data, size * n) < 0)
        return 0; /* cancelled: curl aborts the transfer */
    return size * n;
}

/* Split "repo:tag" (a ':' after the last '/'), "latest" when no tag; and
 * "repo@sha256:..." into the repository and the digest, which the API
 * takes as the tag. */
static void split_ref(const char *ref, char **ret_repo, char **ret_tag)
{
    const char *at = strchr(ref, '@');
    if (at) {
        *ret_repo = xstrndup(ref, (size_t)(at - ref));
        *ret_tag = xstrdup(at + 1);
        return;
    }
    const char *colon = strrchr(ref, ':');
    const char *slash = strrchr(ref, '/');
    if (colon && (!slash || colon > slash)) {
        *ret_repo = xstrndup(ref, (size_t)(colon - ref));
        *ret_tag = xstrdup(colon + 1);
    } else {
        *ret_repo = xstrdup(ref);
        *ret_tag = xstrdup("latest");
    }
}

int engine_image_import(struct engine *e, int fd, const char *ref, const char *const *changes,
                        struct err *err)
{
    _cleanup_(buf_release) struct buf path = BUF_INIT(BUF_UNLIMITED);
    _cleanup_free_ char *repo = NULL, *tag = NULL;
    struct engine_progress prog;
    long status = 0;

    split_ref(ref, &repo, &tag);
    char *r = curl_easy_escape(NULL, repo, 0), *t = curl_easy_escape(NULL, tag, 0);
    buf_putf(&path, "/images/create?fromSrc=-&repo=%s&tag=%s", r, t);
    curl_free(r);
    curl_free(t);
    for (const char *const *c = changes; c && *c; c++) {
        char *ec = curl_easy_escape(NULL, *c, 0);
        buf_putf(&path, "&changes=%s", ec);
        curl_free(ec);
    }

    engine_progress_init(&prog, NULL, NULL);
    struct request rq = {
        .method = "POST",
        .path = buf_str(&path),
        .body_fd = fd,
        .content_type = "application/x-tar",
        .on_data = progress_data,
        .on_data_ctx = &prog,
    };
    int rc = engine_call(e, &rq, &status, NULL, err);
    engine_progress_finish(&prog);
    engine_progress_release(&prog);
    if (rc < 0)
        return err_prefix(err, "cannot import image '%s'", ref);
    if (status >= 400 || prog.error[0])
        return err_set(err, ERR_ENGINE, "cannot import image '%s': %s", ref,
                       prog.error[0] ? prog.error : "the engine refused it");
    return 0;
}

int engine_image_remove(struct engine *e, const char *ref, bool force, struct err *err)
{
    char *escaped = curl_easy_escape(NULL, ref, 0);
    _cleanup_free_ char *path = xasprintf("/images/%s?force=%d", escaped, force ? 1 : 0);
    _cleanup_free_ char *what = xasprintf("cannot remove image '%s'", ref);
    struct err local = ERR_INIT;

    curl_free(escaped);
    if (engine_simple(e, "DELETE", path, NULL, what, NULL, NULL, &local) < 0) {
        if (local.code == ERR_NOT_FOUND)
            return 0;
        err_copy(err, &local);
        return -1;
    }
    return 0;
}

/* ---- builds, pulls, tags ---- */

struct build_watch {
    struct engine_progress progress;
    const struct engine_build_spec *spec;
};

static bool build_cancelled(void *ctx)
{
    struct build_watch *w = ctx;
    return w->progress.cancelled || (w->spec->cancelled && w->spec->cancelled(w->spec->ctx));
}

int engine_image_build(struct engine *e, const struct engine_build_spec *spec, char **ret_image_id,
                       struct err *err)
{
    _cleanup_(buf_release) struct buf path = BUF_INIT(BUF_UNLIMITED);
    json_auto_t *labels = json_object();
    struct build_watch w = {.spec = spec};
    long status = 0;

    for (size_t i = 0; i < spec->n_labels; i++)
        json_object_set_new(labels, spec->labels[i].key, json_string(spec->labels[i].value));
    _cleanup_free_ char *labels_s = json_dumps(labels, JSON_COMPACT);
    char *t = curl_easy_escape(NULL, spec->tag, 0);
    char *l = curl_easy_escape(NULL, labels_s, 0);
    buf_putf(&path, "/build?t=%s&labels=%s&rm=1&forcerm=1&pull=0", t, l);
    curl_free(t);
    curl_free(l);
    if (spec->memory_bytes > 0)
        buf_putf(&path, "&memory=%lld&memswap=%lld", (long long)spec->memory_bytes,
                 (long long)spec->memory_bytes);
    if (spec->nano_cpus > 0)
        buf_putf(&path, "&cpuperiod=100000&cpuquota=%lld", (long long)(spec->nano_cpus / 10000));
    if (spec->cgroup_parent) {
        char *c = curl_easy_escape(NULL, spec->cgroup_parent, 0);
        buf_putf(&path, "&cgroupparent=%s", c);
        curl_free(c);
    }

    long timeout_ms = 0;
    if (spec->deadline_ms > 0) {
        int64_t left = spec->deadline_ms - time_mono_ms();
        timeout_ms = left > 1 ? (long)left : 1;
    }
    engine_progress_init(&w.progress, spec->on_line, spec->ctx);
    struct request rq = {
        .method = "POST",
        .path = buf_str(&path),
        .body_bin = spec->context,
        .body_bin_len = spec->context_len,
        .body_fd = -1,
        .content_type = "application/x-tar",
        .timeout_ms = timeout_ms,
        .on_data = progress_data,
        .on_data_ctx = &w.progress,
        .cancelled = build_cancelled,
        .cancel_ctx = &w,
    };
    int rc = engine_call(e, &rq, &status, NULL, err);
    engine_progress_finish(&w.progress);
    engine_progress_release(&w.progress);
    if (rc < 0) {
        if (err->code == ERR_TIMEOUT)
            return err_set(err, ERR_TIMEOUT, "the build of '%s' passed its time limit", spec->tag);
        if (err->code == ERR_CANCELLED)
            return err_set(err, ERR_CANCELLED, "the build of '%s' was cancelled", spec->tag);
        return err_prefix(err, "cannot build '%s'", spec->tag);
    }
    if (status >= 400 || w.progress.error[0])
        return err_set(err, ERR_INVALID, "%s",
                       w.progress.error[0] ? w.progress.error : "the engine refused the build");
    if (w.progress.image_id[0]) {
        *ret_image_id = xstrdup(w.progress.image_id);
        return 0;
    }
    /* no aux record: ask for the tag instead */
    struct engine_image_info info = {0};
    if (engine_image_inspect(e, spec->tag, &info, err) < 0)
        return err_prefix(err, "the build of '%s' ended without an image", spec->tag);
    *ret_image_id = steal_ptr(info.id);
    engine_image_info_release(&info);
    return 0;
}

/* A pull or a push of @ref (POST /images/create or /images/{repo}/push),
 * the progress stream to on_line; the digest a push reports in *ret_digest
 * (NULL: not wanted). */
static int image_transfer(struct engine *e, const char *ref, bool push, engine_line_fn on_line,
                          void *ctx, char **ret_digest, struct err *err)
{
    _cleanup_free_ char *repo = NULL, *tag = NULL;
    struct engine_progress prog;
    long status = 0;
    const char *verb = push ? "push" : "pull";

    split_ref(ref, &repo, &tag);
    char *r = curl_easy_escape(NULL, repo, 0), *t = curl_easy_escape(NULL, tag, 0);
    _cleanup_free_ char *path = push ? xasprintf("/images/%s/push?tag=%s", r, t)
                                     : xasprintf("/images/create?fromImage=%s&tag=%s", r, t);
    curl_free(r);
    curl_free(t);
    engine_progress_init(&prog, on_line, ctx);
    struct request rq = {
        .method = "POST",
        .path = path,
        .body_fd = -1,
        /* no credentials: base64 of "{}" (the engine refuses a push without the header) */
        .header = push ? "X-Registry-Auth: e30=" : NULL,
        .timeout_ms = 30 * 60 * 1000,
        .on_data = progress_data,
        .on_data_ctx = &prog,
    };
    _cleanup_(buf_release) struct buf unused = BUF_INIT(ENGINE_MAX_BODY);
    int rc = engine_call(e, &rq, &status, &unused, err);
    engine_progress_finish(&prog);
    engine_progress_release(&prog);
    if (rc < 0)
        return err_prefix(err, "cannot %s image '%s'", verb, ref);
    if (status >= 400 || prog.error[0])
        return err_set(err, status == 404 ? ERR_NOT_FOUND : ERR_ENGINE, "cannot %s image '%s': %s",
                       verb, ref, prog.error[0] ? prog.error : "the engine refused it");
    if (ret_digest) {
        if (!prog.digest[0])
            return err_set(err, ERR_ENGINE, "cannot %s image '%s': the engine named no digest",
                           verb, ref);
        *ret_digest = xstrdup(prog.digest);
    }
    return 0;
}

int engine_image_pull(struct engine *e, const char *ref, engine_line_fn on_line, void *ctx,
                      struct err *err)
{
    return image_transfer(e, ref, false, on_line, ctx, NULL, err);
}

int engine_image_push(struct engine *e, const char *ref, engine_line_fn on_line, void *ctx,
                      char **ret_digest, struct err *err)
{
    return image_transfer(e, ref, true, on_line, ctx, ret_digest, err);
}

int engine_image_tag(struct engine *e, const char *source, const char *ref, struct err *err)
{
    _cleanup_free_ char *repo = NULL, *tag = NULL;

    split_ref(ref, &repo, &tag);
    char *s = curl_easy_escape(NULL, source, 0);
    char *r = curl_easy_escape(NULL, repo, 0), *t = curl_easy_escape(NULL, tag, 0);
    _cleanup_free_ char *path = xasprintf("/images/%s/tag?repo=%s&tag=%s", s, r, t);
    _cleanup_free_ char *what = xasprintf("cannot tag image '%s' as '%s'", source, ref);
    curl_free(s);
    curl_free(r);
    curl_free(t);
    return engine_simple(e, "POST", path, NULL, what, NULL, NULL, err);
}

int engine_info(struct engine *e, struct engine_info *ret, struct err *err)
{
    _cleanup_free_ char *answer = NULL;
    json_error_t jerr;

    if (engine_simple(e, "GET", "/info", NULL, "cannot read the engine's info", NULL, &answer,
                      err) < 0)
        return -1;
    json_auto_t *doc = engine_json_load(answer, strlen(answer), &jerr);
    if (!doc)
        return err_set(err, ERR_ENGINE, "cannot parse the engine's info: %s", jerr.text);
    const char *driver = json_string_value(json_object_get(doc, "CgroupDriver"));
    const char *version = json_string_value(json_object_get(doc, "CgroupVersion"));
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->cgroup_driver, sizeof(ret->cgroup_driver), "%s", driver ? driver : "");
    snprintf(ret->cgroup_version, sizeof(ret->cgroup_version), "%s", version ? version : "1");
    return 0;
}

/* ---- the registry ---- */

int engine_registry_delete(const char *registry, const char *repo, const char *digest,
                           struct err *err)
{
    if (!engine_digest_valid(digest))
        return err_set(err, ERR_INVALID, "registry: '%.100s' is not a digest", digest);
    _cleanup_free_ char *url = xasprintf("http://%s/v2/%s/manifests/%s", registry, repo, digest);
    _cleanup_(curl_cleanup) CURL *h = curl_easy_init();
    _cleanup_(buf_release) struct buf resp = BUF_INIT(64 * 1024);
    char errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;

    if (!h)
        return err_set(err, ERR_INTERNAL, "cannot create a curl handle");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* called while an environment is deleted: a registry that hangs must not hold it */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_to_buf);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        return err_set(err, ERR_UNAVAILABLE, "registry %s: cannot delete %s@%s: %s", registry, repo,
                       digest, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status == 202 || status == 404)
        return 0;
    return err_set(err, ERR_ENGINE, "registry %s: deleting %s@%s answered HTTP %ld%s%.200s",
                   registry, repo, digest, status, resp.len ? ": " : "", buf_str(&resp));
}

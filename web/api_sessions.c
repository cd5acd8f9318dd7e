/* web/api_sessions.c - sessions over HTTP: open, run calls that share a
 * workspace, move files in and out, close. A caller sees its own sessions;
 * an administrator sees all. An open session holds one of its key's
 * concurrent executions (max_concurrent) from its admission until it ends,
 * however it ends: the executor's session hook gives it back. Its calls
 * count against the key's executions per minute only. */
#include <civetweb.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

static json_t *session_json(const struct session_info *s)
{
    return json_pack(
        "{s:s, s:s, s:o, s:I, s:s, s:o, s:o, s:I, s:I, s:b, s:b, s:b}", "id", s->id, "principal",
        s->principal, "environment", s->environment ? json_string(s->environment) : json_null(),
        "environment_version", (json_int_t)s->environment_version, "image", s->image, "created_at",
        web_json_time(s->created_at), "last_activity", web_json_time(s->last_activity),
        "idle_timeout", (json_int_t)s->idle_timeout_s, "calls", (json_int_t)s->calls, "busy",
        s->busy, "stateful", s->stateful, "keep_processes", s->keep_processes);
}

/* Administrators may use every session; anyone else only their own. */
static const char *scope(const struct web_request *rq)
{
    return rq->role == ROLE_ADMIN ? NULL : rq->principal;
}

/* executor_session_admit_fn: the session @id enters its key's quota (the
 * executor has reserved its slot among the caller's sessions) and holds it
 * until on_session_end() gives it back. */
static int admit(void *ctx, const char *id, struct err *err)
{
    struct web_request *rq = ctx;

    if (web_quota_enter(rq->auth, rq, err) < 0)
        return err_prefix(err, "cannot open a session");
    web_quota_hold(rq->auth, rq, id);
    return 0;
}

/* The executor's session hook: session @id ended, its processes are gone. */
static void on_session_end(void *ctx, const char *id)
{
    web_quota_release(ctx, id);
}

void web_sessions_attach(struct executor *x, struct auth *a)
{
    executor_set_session_hook(x, on_session_end, a);
}

void web_sessions_detach(struct executor *x)
{
    executor_set_session_hook(x, NULL, NULL);
}

void api_session_open(struct web_request *rq)
{
    _cleanup_(session_info_release) struct session_info info = {0};
    struct err err = ERR_INIT;
    const char *env = NULL;
    int64_t idle = 0;
    json_auto_t *doc =
        web_read_object(rq, 0, "{environment?, idle_timeout?, keep_processes?}", &err);

    if (!doc) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *e = json_object_get(doc, "environment"), *t = json_object_get(doc, "idle_timeout");
    if (e && !json_is_null(e) && !json_is_string(e)) {
        web_reply_detail(rq, 422, "environment: must be a string");
        return;
    }
    env = json_string_value(e);
    if (t && !json_is_null(t)) {
        if (!json_is_integer(t) || json_integer_value(t) < 1) {
            web_reply_detail(rq, 422, "idle_timeout: must be a positive integer (seconds)");
            return;
        }
        idle = json_integer_value(t);
    }
    json_t *k = json_object_get(doc, "keep_processes");
    if (k && !json_is_null(k) && !json_is_boolean(k)) {
        web_reply_detail(rq, 422, "keep_processes: must be true or false");
        return;
    }
    if (executor_session_open(rq->deps->executor, env, idle, json_is_true(k), rq->principal, admit,
                              rq, &info, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    web_reply_json(rq, 201, session_json(&info));
}

void api_session_list(struct web_request *rq)
{
    struct session_info *list = NULL;
    size_t n = 0;

    executor_session_list(rq->deps->executor, scope(rq), &list, &n);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, session_json(&list[i]));
    session_infos_free(list, n);
    web_reply_json(rq, 200, json_pack("{s:o, s:I}", "sessions", a, "total", (json_int_t)n));
}

void api_session_get(struct web_request *rq)
{
    _cleanup_(session_info_release) struct session_info info = {0};
    struct err err = ERR_INIT;

    if (executor_session_get(rq->deps->executor, rq->params[0], scope(rq), &info, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    web_reply_json(rq, 200, session_json(&info));
}

void api_session_close(struct web_request *rq)
{
    struct err err = ERR_INIT;

    if (executor_session_close(rq->deps->executor, rq->params[0], scope(rq), &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    _cleanup_free_ char *msg = xasprintf("session '%s' closed", rq->params[0]);
    web_reply_json(rq, 200, json_pack("{s:s}", "message", msg));
}

void api_session_execute(struct web_request *rq)
{
    struct request_limits lim;
    _cleanup_(execute_request_release) struct execute_request req = {0};
    _cleanup_(job_result_release) struct job_result res = {0};
    _cleanup_free_ char *body = NULL;
    struct err err = ERR_INIT;
    size_t len = 0;

    web_request_limits(rq->deps->cfg, &lim);
    if (web_read_body(rq, &body, &len, &err) < 0 ||
        web_parse_execute(body, len, &lim, false, &req, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    if (req.environment) {
        web_reply_detail(rq, 400,
                         "environment: a session runs in the environment it was opened "
                         "with; leave the field out");
        return;
    }
    struct job_request job = {
        .code = req.code,
        .code_len = req.code_len,
        .timeout_s = req.timeout_s,
        .timeout_given = req.timeout_given,
        .overrides = &req.overrides,
        .files = req.files,
        .n_files = req.n_files,
        .principal = rq->principal,
        .client_addr = rq->client_addr,
    };
    /* the session holds its key's concurrency already: the call counts
     * against the minute alone (rq->quota_in_session, set by the router) */
    if (web_quota_enter(rq->auth, rq, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    int rc =
        executor_session_execute(rq->deps->executor, rq->params[0], scope(rq), &job, &res, &err);
    web_quota_leave(rq->auth, rq, rc == 0 || err.code == ERR_ENGINE);
    if (rc < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *doc = web_result_json(&res);
    json_object_set_new(doc, "session_id", json_string(rq->params[0]));
    /* the final expression's value (stateful sessions) and whether the
     * interpreter survived the call */
    json_object_set_new(doc, "result", res.result ? json_string(res.result) : json_null());
    json_object_set_new(doc, "interpreter_lost", json_boolean(res.interpreter_lost));
    web_reply_json(rq, 200, doc);
}

void api_session_reset(struct web_request *rq)
{
    struct err err = ERR_INIT;

    if (executor_session_reset(rq->deps->executor, rq->params[0], scope(rq), &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    _cleanup_free_ char *msg = xasprintf("session '%s': a new interpreter", rq->params[0]);
    web_reply_json(rq, 200, json_pack("{s:s}", "message", msg));
}

void api_session_put_file(struct web_request *rq)
{
    _cleanup_free_ char *body = NULL;
    struct err err = ERR_INIT;
    size_t len = 0;
    char sha[SHA256_HEX_LEN + 1];

    if (web_read_body(rq, &body, &len, &err) < 0 ||
        executor_session_put_file(rq->deps->executor, rq->params[0], scope(rq), rq->params[1], body,
                                  len, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    sha256_hex(body, len, sha);
    web_reply_json(rq, 200,
                   json_pack("{s:s, s:I, s:s}", "path", rq->params[1], "size", (json_int_t)len,
                             "sha256", sha));
}

void api_session_get_file(struct web_request *rq)
{
    struct job_file f = {0};
    struct err err = ERR_INIT;

    if (executor_session_get_file(rq->deps->executor, rq->params[0], scope(rq), rq->params[1], &f,
                                  &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    web_reply_bytes(rq, 200, "application/octet-stream", f.data, f.len);
    free(f.path);
    free(f.data);
}

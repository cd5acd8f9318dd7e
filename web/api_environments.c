/* web/api_environments.c - environments, their builds, logs and packages.
 * The create/list/get/delete part is SimplePySandbox's contract (COMPAT.md):
 * 200 on create with status building, {"environments", "total"}, the seed's
 * messages; rebuilds, build history, live logs (server-sent events) and
 * package inventories are envhub's own. */
#include <civetweb.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder/builder.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "sandbox/sandbox.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define SSE_KEEPALIVE_MS 15000
#define LOG_BATCH 500

static json_t *build_json(const struct build_record *b)
{
    json_error_t jerr;
    json_t *policy = json_loads(b->policy ? b->policy : "{}", 0, &jerr);
    json_t *doc = json_pack(
        "{s:I, s:s, s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:b, s:o, s:o, s:o, "
        "s:o, s:s, s:I}",
        "id", (json_int_t)b->id, "environment", b->environment, "version", (json_int_t)b->version,
        "status", build_status_name(b->status), "base_image", b->base_image, "python_version",
        b->python_version, "docker_image", b->image, "image_id", web_json_str(b->image_id),
        "base_image_id", web_json_str(b->base_image_id), "python_found",
        web_json_str(b->python_found), "cache_hit", b->cache_hit, "error", web_json_str(b->error),
        "queued_at", web_json_time(b->queued_at), "started_at", web_json_time(b->started_at),
        "finished_at", web_json_time(b->finished_at), "definition", b->definition, "log_lines",
        (json_int_t)b->log_lines);
    json_object_set_new(doc, "policy", policy ? policy : json_object());
    json_object_set_new(doc, "test_script", web_json_str(b->test_script));
    json_object_set_new(doc, "registry_image", web_json_str(b->registry_image));
    /* the log itself: GET it (or follow it with ?follow=1) */
    _cleanup_free_ char *log =
        xasprintf("/environments/%s/builds/%lld/log", b->environment, (long long)b->version);
    json_object_set_new(doc, "log_url", json_string(log));
    return doc;
}

/* A string member: absent or null -> @def; another type -> 422 naming it. */
static int get_string(json_t *doc, const char *field, bool required, const char **ret,
                      struct err *err)
{
    json_t *v = json_object_get(doc, field);
    if (!v || json_is_null(v)) {
        if (required)
            return err_set(err, ERR_UNPROCESSABLE, "%s: field required", field);
        *ret = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return err_set(err, ERR_UNPROCESSABLE, "%s: must be a string", field);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return err_set(err, ERR_INVALID, "%s: must not contain NUL bytes", field);
    *ret = json_string_value(v);
    return 0;
}

/* The optional "policy" member, checked and made canonical (NULL when absent). */
static int get_policy(struct web_request *rq, json_t *doc, char **ret, struct err *err)
{
    json_t *p = json_object_get(doc, "policy");
    *ret = NULL;
    if (!p || json_is_null(p))
        return 0;
    if (!json_is_object(p))
        return err_set(err, ERR_UNPROCESSABLE, "policy: must be an object");
    _cleanup_free_ char *text = json_dumps(p, JSON_COMPACT);
    return sandbox_policy_parse(rq->deps->cfg, text, NULL, ret, err);
}

void api_env_create(struct web_request *rq)
{
    struct err err = ERR_INIT;
    json_auto_t *doc = web_read_object(rq, JSON_ALLOW_NUL, NULL, &err);
    struct env_definition def = {.created_by = rq->principal};
    _cleanup_(env_record_release) struct env_record env = {0};
    _cleanup_free_ char *policy = NULL;

    if (!doc || get_string(doc, "name", true, &def.name, &err) < 0 ||
        get_string(doc, "setup_script", true, &def.setup_script, &err) < 0 ||
        get_string(doc, "description", false, &def.description, &err) < 0 ||
        get_string(doc, "base_image", false, &def.base_image, &err) < 0 ||
        get_string(doc, "python_version", false, &def.python_version, &err) < 0 ||
        get_string(doc, "test_script", false, &def.test_script, &err) < 0 ||
        get_policy(rq, doc, &policy, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    def.policy = policy;
    if (def.description && strlen(def.description) > 4096) {
        web_reply_detail(rq, 400, "description: over the limit of 4096 characters");
        return;
    }
    if (builder_create(rq->deps->builder, &def, &env, &err) < 0) {
        /* the seed answers a duplicate name with 400 */
        if (err.code == ERR_CONFLICT)
            err.code = ERR_INVALID;
        web_reply_err(rq, &err);
        return;
    }
    web_reply_json(rq, 200, web_env_json(&env));
}

void api_env_list(struct web_request *rq)
{
    struct env_record *envs = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;

    if (catalog_env_list(rq->deps->catalog, &envs, &n, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *item = web_env_json(&envs[i]);
        web_env_runs_json(rq, envs[i].name, item);
        json_array_append_new(list, item);
    }
    env_records_free(envs, n);
    web_reply_json(rq, 200, json_pack("{s:o, s:I}", "environments", list, "total", (json_int_t)n));
}

/* Fill *env for the {name} of the path, or answer 404 with the seed's message. */
static bool load_env(struct web_request *rq, struct env_record *env)
{
    struct err err = ERR_INIT;
    if (catalog_env_get(rq->deps->catalog, rq->params[0], env, &err) < 0) {
        if (err.code == ERR_NOT_FOUND)
            err_about(&err, ERR_NOT_FOUND, ERR_ABOUT_ENV_MISSING, rq->params[0], NULL);
        web_reply_err(rq, &err);
        return false;
    }
    return true;
}

void api_env_get(struct web_request *rq)
{
    _cleanup_(env_record_release) struct env_record env = {0};
    if (!load_env(rq, &env))
        return;
    /* drift: the base image reference resolved now (one engine call) */
    if (env.version > 0 && env.lifecycle != ENV_RETIRED) {
        struct drift_report *r = NULL;
        size_t n = 0;
        struct err err = ERR_INIT;
        if (builder_drift_check(rq->deps->builder, env.name, &r, &n, &err) == 0) {
            env_record_release(&env);
            drift_reports_free(r, n);
            if (!load_env(rq, &env))
                return;
        }
    }
    json_t *doc = web_env_json(&env);
    web_env_runs_json(rq, env.name, doc);
    web_reply_json(rq, 200, doc);
}

void api_env_delete(struct web_request *rq)
{
    struct err err = ERR_INIT;
    /* the catalog records the environment.delete event with the change */
    if (builder_delete(rq->deps->builder, rq->params[0], rq->principal, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    _cleanup_free_ char *msg = web_compat_deleted(rq->params[0]);
    web_reply_json(rq, 200, json_pack("{s:s}", "message", msg));
}

void api_env_rebuild(struct web_request *rq)
{
    struct err err = ERR_INIT;
    const char *script = NULL, *base = NULL, *test_script = NULL;
    _cleanup_free_ char *policy = NULL;
    _cleanup_(build_record_release) struct build_record build = {0};
    json_auto_t *doc = NULL;
    const struct mg_request_info *ri = mg_get_request_info(rq->conn);

    /* the body is optional: an empty POST (or one without Content-Length)
     * rebuilds the same definition */
    if (ri->content_length > 0 || mg_get_header(rq->conn, "Transfer-Encoding")) {
        doc = web_read_object(rq, JSON_ALLOW_NUL, NULL, &err);
        if (!doc || get_string(doc, "setup_script", false, &script, &err) < 0 ||
            get_string(doc, "base_image", false, &base, &err) < 0 ||
            get_string(doc, "test_script", false, &test_script, &err) < 0 ||
            get_policy(rq, doc, &policy, &err) < 0) {
            web_reply_err(rq, &err);
            return;
        }
    }
    if (builder_rebuild(rq->deps->builder, rq->params[0], script, base, policy, test_script,
                        rq->principal, &build, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    web_reply_json(rq, 202, build_json(&build));
}

void api_env_builds(struct web_request *rq)
{
    _cleanup_(env_record_release) struct env_record env = {0};
    struct build_record *builds = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;

    if (!load_env(rq, &env))
        return;
    if (catalog_build_list(rq->deps->catalog, env.name, &builds, &n, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, build_json(&builds[i]));
    build_records_free(builds, n);
    web_reply_json(rq, 200, json_pack("{s:o, s:I}", "builds", list, "total", (json_int_t)n));
}

/* The build named by the path: {version} of {name}, or the newest when the
 * path has no version. Answers 404 itself. */
static bool load_build(struct web_request *rq, bool has_version, struct build_record *ret)
{
    _cleanup_(env_record_release) struct env_record env = {0};
    struct err err = ERR_INIT;
    int64_t version;

    if (!load_env(rq, &env))
        return false;
    if (has_version) {
        if (parse_int(rq->params[1], 1, INT64_MAX, &version) < 0) {
            web_reply_detail(rq, 400, "version: '%.30s' is not a version number", rq->params[1]);
            return false;
        }
    } else {
        version = env.latest_version;
    }
    if (catalog_build_get(rq->deps->catalog, env.name, version, ret, &err) < 0) {
        if (err.code == ERR_NOT_FOUND)
            web_reply_detail(rq, 404, "environment '%s' has no build %lld", env.name,
                             (long long)version);
        else
            web_reply_err(rq, &err);
        return false;
    }
    return true;
}

void api_build_get(struct web_request *rq)
{
    _cleanup_(build_record_release) struct build_record build = {0};
    if (load_build(rq, true, &build))
        web_reply_json(rq, 200, build_json(&build));
}

static bool query_flag(struct web_request *rq, const char *name)
{
    char value[16];
    if (!rq->query)
        return false;
    int n = mg_get_var(rq->query, strlen(rq->query), name, value, sizeof(value));
    return n >= 0 && strcmp(value, "0") != 0 && strcmp(value, "false") != 0;
}

static bool sse_send(struct web_request *rq, const char *text)
{
    return mg_write(rq->conn, text, strlen(text)) > 0;
}

/* ?follow=1: server-sent events, one per line (id = line number, so a
 * reconnecting client resumes with Last-Event-ID), then an "end" event with
 * the build's final status. */
static void follow_log(struct web_request *rq, const struct build_record *build)
{
    struct err err = ERR_INIT;
    int64_t after = 0;
    const char *last = mg_get_header(rq->conn, "Last-Event-ID");
    if (last && parse_int(last, 0, INT64_MAX, &after) < 0)
        after = 0;

    web_reply_head(rq, 200, "text/event-stream; charset=utf-8", WEB_STREAM,
                   "X-Accel-Buffering: no\r\n");
    for (;;) {
        struct log_line *lines = NULL;
        size_t n = 0;
        if (catalog_build_log_read(rq->deps->catalog, build->id, after, LOG_BATCH, &lines, &n,
                                   &err) < 0) {
            log_warn("web: build log of %lld: %s", (long long)build->id, err.msg);
            return;
        }
        bool ok = true;
        for (size_t i = 0; i < n && ok; i++) {
            _cleanup_(buf_release) struct buf ev = BUF_INIT(BUF_UNLIMITED);
            buf_putf(&ev, "id: %lld\n", (long long)lines[i].seq);
            web_sse_data(&ev, lines[i].line);
            ok = sse_send(rq, buf_str(&ev));
            after = lines[i].seq;
        }
        log_lines_free(lines, n);
        if (!ok)
            return; /* the client went away */
        if (n == LOG_BATCH)
            continue;
        _cleanup_(build_record_release) struct build_record now = {0};
        if (catalog_build_get_by_id(rq->deps->catalog, build->id, &now, &err) < 0) {
            sse_send(rq, "event: end\ndata: {\"status\":\"deleted\"}\n\n");
            return;
        }
        if (now.status != BUILD_QUEUED && now.status != BUILD_BUILDING) {
            /* lines written just before the end are read once more above */
            struct log_line *rest = NULL;
            size_t m = 0;
            if (catalog_build_log_read(rq->deps->catalog, build->id, after, 1, &rest, &m, &err) ==
                    0 &&
                m > 0) {
                log_lines_free(rest, m);
                continue;
            }
            json_t *end =
                json_pack("{s:s, s:I, s:o}", "status", build_status_name(now.status), "version",
                          (json_int_t)now.version, "error", web_json_str(now.error));
            _cleanup_free_ char *data = json_dumps(end, JSON_COMPACT);
            json_decref(end);
            _cleanup_free_ char *ev = xasprintf("event: end\ndata: %s\n\n", data);
            sse_send(rq, ev);
            return;
        }
        /* a comment line now and then tells a dead client from a quiet build */
        if (!builder_wait(rq->deps->builder, build->id, after, time_mono_ms() + SSE_KEEPALIVE_MS) &&
            !sse_send(rq, ": keepalive\n\n"))
            return;
    }
}

static void send_log(struct web_request *rq, bool has_version)
{
    _cleanup_(build_record_release) struct build_record build = {0};
    _cleanup_(buf_release) struct buf text = BUF_INIT(BUF_UNLIMITED);
    struct err err = ERR_INIT;
    int64_t after = 0;

    if (!load_build(rq, has_version, &build))
        return;
    if (query_flag(rq, "follow")) {
        follow_log(rq, &build);
        return;
    }
    for (;;) {
        struct log_line *lines = NULL;
        size_t n = 0;
        if (catalog_build_log_read(rq->deps->catalog, build.id, after, LOG_BATCH, &lines, &n,
                                   &err) < 0) {
            web_reply_err(rq, &err);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            buf_putf(&text, "%s\n", lines[i].line);
            after = lines[i].seq;
        }
        log_lines_free(lines, n);
        if (n < LOG_BATCH)
            break;
    }
    char status[64];
    snprintf(status, sizeof(status), "X-Envhub-Build-Status: %s\r\n",
             build_status_name(build.status));
    web_reply_head(rq, 200, "text/plain; charset=utf-8", (int64_t)text.len, status);
    if (strcmp(rq->method, "HEAD") != 0)
        mg_write(rq->conn, buf_str(&text), text.len);
}

void api_build_log(struct web_request *rq)
{
    send_log(rq, true);
}

void api_env_log(struct web_request *rq)
{
    send_log(rq, false);
}

void api_env_packages(struct web_request *rq)
{
    _cleanup_(env_record_release) struct env_record env = {0};
    _cleanup_(build_record_release) struct build_record build = {0};
    struct package_entry *pkgs = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;
    char vbuf[24];
    int64_t version;

    if (!load_env(rq, &env))
        return;
    version = env.version;
    if (rq->query && mg_get_var(rq->query, strlen(rq->query), "version", vbuf, sizeof(vbuf)) >= 0 &&
        parse_int(vbuf, 1, INT64_MAX, &version) < 0) {
        web_reply_detail(rq, 400, "version: '%s' is not a version number", vbuf);
        return;
    }
    if (version == 0) {
        web_reply_detail(rq, 404, "environment '%s' has no ready version yet", env.name);
        return;
    }
    if (catalog_build_get(rq->deps->catalog, env.name, version, &build, &err) < 0 ||
        catalog_build_packages(rq->deps->catalog, build.id, &pkgs, &n, &err) < 0) {
        if (err.code == ERR_NOT_FOUND)
            web_reply_detail(rq, 404, "environment '%s' has no build %lld", env.name,
                             (long long)version);
        else
            web_reply_err(rq, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "manager", pkgs[i].manager, "name",
                                              pkgs[i].name, "version", pkgs[i].version));
    package_entries_free(pkgs, n);
    web_reply_json(rq, 200,
                   json_pack("{s:s, s:I, s:o, s:I}", "environment", env.name, "version",
                             (json_int_t)version, "packages", list, "total", (json_int_t)n));
}

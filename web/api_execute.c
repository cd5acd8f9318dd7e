/* web/api_execute.c - POST /execute and /execute-with-environment: the
 * SimplePySandbox contract (COMPAT.md) on top of the executor. A job that
 * ran answers 200 whatever its outcome; only requests that could not run get
 * an error status. */
#include <jansson.h>
#include <stdlib.h>

#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

json_t *web_result_json(const struct job_result *r)
{
    json_t *files = json_object();
    json_t *skipped = json_array();

    for (size_t i = 0; i < r->n_files; i++) {
        size_t n;
        char *b64 = base64_encode(r->files[i].data, r->files[i].len, &n);
        json_object_set_new(files, r->files[i].path, json_stringn_nocheck(b64, n));
        free(b64);
    }
    for (char **p = r->files_skipped; p && *p; p++)
        json_array_append_new(skipped, json_string(*p));
    /* pictures the code showed, in their order: never among files */
    json_t *display = json_array();
    for (size_t i = 0; i < r->n_display; i++) {
        size_t n;
        char *b64 = base64_encode(r->display[i].data, r->display[i].len, &n);
        json_array_append_new(display, json_pack("{s:s, s:s, s:s%, s:I}", "name",
                                                 r->display[i].path, "mime", "image/png", "data",
                                                 b64, n, "size", (json_int_t)r->display[i].len));
        free(b64);
    }
    json_t *doc =
        json_pack("{s:b, s:s%, s:s%, s:f, s:o, s:s?, s:s, s:s, s:i, s:b, s:b, s:o}", "success",
                  r->status == EXEC_SUCCEEDED, "stdout", r->stdout_text, r->stdout_len, "stderr",
                  r->stderr_text, r->stderr_len, "execution_time", r->execution_time, "files",
                  files, "error", r->error, "id", r->id, "status", exec_status_name(r->status),
                  "exit_code", r->exit_code, "stdout_truncated", r->stdout_truncated,
                  "stderr_truncated", r->stderr_truncated, "files_skipped", skipped);
    /* the environment is deprecated (curation): present only then */
    if (doc && r->warning)
        json_object_set_new(doc, "warning", json_string(r->warning));
    if (doc)
        json_object_set_new(doc, "display", display);
    else
        json_decref(display);
    return doc;
}

static void execute(struct web_request *rq, bool environment_required)
{
    struct request_limits lim;
    _cleanup_(execute_request_release) struct execute_request req = {0};
    _cleanup_(job_result_release) struct job_result res = {0};
    _cleanup_free_ char *body = NULL;
    struct err err = ERR_INIT;
    size_t len = 0;

    web_request_limits(rq->deps->cfg, &lim);
    if (web_read_body(rq, &body, &len, &err) < 0 ||
        web_parse_execute(body, len, &lim, environment_required, &req, &err) < 0) {
        web_reply_err(rq, &err);
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
        .environment = req.environment,
        .principal = rq->principal,
        .client_addr = rq->client_addr,
    };
    if (web_quota_enter(rq->auth, rq, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    int rc = executor_run(rq->deps->executor, &job, &res, &err);
    /* a refusal (unknown environment, a limit) started nothing */
    web_quota_leave(rq->auth, rq, rc == 0 || err.code == ERR_ENGINE);
    if (rc < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *doc = web_result_json(&res);
    job_result_release(&res); /* the document holds its own copy of the output */
    web_reply_json(rq, 200, doc);
}

void api_execute(struct web_request *rq)
{
    execute(rq, false);
}

void api_execute_with_environment(struct web_request *rq)
{
    execute(rq, true);
}

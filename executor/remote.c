/* executor/remote.c - a job as it travels between the server and a node in
 * cluster mode: its spec (what the node runs: image, limits, timeout, the
 * input tar) and its result (what came of it), as JSON text.
 *
 * The result comes from another machine: the server reads it as it reads
 * what comes out of a sandbox. Its shape is bounded before jansson sees it,
 * and every field is checked against the limits the job ran with: stdout
 * and stderr within output_limit, files within the counts and sizes of the
 * configuration with safe relative names, pictures PNG, the status one of
 * the known ones. A result that breaks a rule is refused whole (ERR_ENGINE
 * naming the field). Pure functions: no engine, no catalog, no locks. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/cleanup.h"
#include "core/json_shape.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

#define REMOTE_TEXT_MAX 65536 /* bytes of an error, a skipped-file line, an image id */

/* ---- writing ---- */

static json_t *b64(const char *data, size_t len)
{
    size_t n = 0;
    _cleanup_free_ char *s = base64_encode(data ? data : "", data ? len : 0, &n);
    return json_stringn(s, n);
}

static json_t *strv_json(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static char *dump(json_t *doc, size_t *ret_len)
{
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!s)
        s = xstrdup("{}"); /* out of memory in jansson: an empty spec the node refuses */
    *ret_len = strlen(s);
    return s;
}

static json_t *limits_json(const struct sandbox_limits *l)
{
    json_t *preload = json_array();
    for (size_t i = 0; i < l->n_preload; i++)
        json_array_append_new(preload, json_string(l->preload[i]));
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:b,s:I,s:I,s:o}", "timeout_default",
                     (json_int_t)l->timeout_default, "timeout_max", (json_int_t)l->timeout_max,
                     "memory", (json_int_t)l->memory, "cpu_millis", (json_int_t)l->cpu_millis,
                     "pids", (json_int_t)l->pids, "output_limit", (json_int_t)l->output_limit,
                     "workspace_size", (json_int_t)l->workspace_size, "network", l->network,
                     "gvisor", l->gvisor, "pool_size", (json_int_t)l->pool_size, "recycle",
                     (json_int_t)l->recycle, "preload", preload);
}

char *exec_remote_spec(const struct prepared_job *pj, size_t *ret_len)
{
    const struct execution_record *rec = &pj->rec;
    json_t *doc = json_pack(
        "{s:s,s:s,s:I,s:s,s:I,s:b,s:o,s:o}", "id", rec->id, "image",
        pj->node_image ? pj->node_image : rec->image, "timeout_s", (json_int_t)rec->timeout_s,
        "principal", rec->principal ? rec->principal : "", "environment_version",
        (json_int_t)rec->environment_version, "pool_ok", pj->pool_ok, "limits",
        limits_json(&pj->limits), "input_tar", b64(pj->input_tar.data, pj->input_tar.len));
    if (pj->follow)
        json_object_set_new(doc, "live", json_true());
    return dump(doc, ret_len);
}

static json_t *files_json(const struct job_file *f, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:s,s:o}", "path", f[i].path, "data", b64(f[i].data, f[i].len)));
    return a;
}

char *exec_remote_result_text(const struct job_result *res, const struct job_outcome *out,
                              size_t *ret_len)
{
    json_t *doc = json_pack(
        "{s:s,s:i,s:o,s:b,s:o,s:b,s:f,s:o,s:o,s:o,s:b,s:b,s:b,s:b}", "status",
        exec_status_name(res->status), "exit_code", res->exit_code, "stdout",
        b64(res->stdout_text, res->stdout_len), "stdout_truncated", res->stdout_truncated, "stderr",
        b64(res->stderr_text, res->stderr_len), "stderr_truncated", res->stderr_truncated,
        "execution_time", res->execution_time, "files", files_json(res->files, res->n_files),
        "display", files_json(res->display, res->n_display), "files_skipped",
        strv_json(res->files_skipped), "interpreter_lost", res->interpreter_lost, "engine_failed",
        out->engine_failed, "unclean", out->unclean, "reported", out->reported);
    if (res->error)
        json_object_set_new(doc, "error", json_string(res->error));
    if (out->image_id)
        json_object_set_new(doc, "image_id", json_string(out->image_id));
    if (out->preload_errors)
        json_object_set_new(doc, "preload_errors", strv_json(out->preload_errors));
    if (out->engine_failed)
        json_object_set_new(doc, "engine_error", json_string(out->engine_err.msg));
    return dump(doc, ret_len);
}

/* ---- reading ---- */

/* Bounds of a spec or a result's JSON text: flat, a few fields, long strings. */
static const struct json_shape_bounds remote_shape = {
    .max_depth = 4,
    .max_members = 32,
    .max_items = TAR_SKIPPED_MAX + 2,
    .max_key = 64,
    .max_string = (size_t)1 << 31,
    .max_values = 20000,
};

static int parse(const char *text, size_t len, const char *what, json_t **ret, struct err *err)
{
    json_error_t jerr;
    if (json_shape_check(text, len, &remote_shape, what, err) < 0)
        return -1;
    *ret = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!*ret || !json_is_object(*ret)) {
        json_decref(*ret);
        *ret = NULL;
        return err_set(err, ERR_ENGINE, "%s: not a JSON object (%s)", what, jerr.text);
    }
    return 0;
}

static int get_int(const json_t *doc, const char *key, int64_t min, int64_t max, int64_t *ret,
                   const char *what, struct err *err)
{
    const json_t *v = json_object_get(doc, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return err_set(err, ERR_ENGINE, "%s: %s must be an integer from %lld to %lld", what, key,
                       (long long)min, (long long)max);
    *ret = json_integer_value(v);
    return 0;
}

static bool get_bool(const json_t *doc, const char *key)
{
    return json_is_true(json_object_get(doc, key));
}

/* A string field of at most @max bytes (NUL allowed where @nul); NULL when
 * absent and @optional. */
static int get_str(const json_t *doc, const char *key, size_t max, bool optional, char **ret,
                   const char *what, struct err *err)
{
    const json_t *v = json_object_get(doc, key);
    *ret = NULL;
    if (!v && optional)
        return 0;
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return err_set(err, ERR_ENGINE, "%s: %s must be a string of at most %zu bytes", what, key,
                       max);
    *ret = xstrdup(json_string_value(v));
    return 0;
}

/* Base64 field @key decoded into *ret (NUL-terminated), at most @max bytes. */
static int get_b64(const json_t *doc, const char *key, size_t max, char **ret, size_t *ret_len,
                   const char *what, struct err *err)
{
    const json_t *v = json_object_get(doc, key);
    bool too_large = false;
    if (!json_is_string(v))
        return err_set(err, ERR_ENGINE, "%s: %s must be a base64 string", what, key);
    struct buf b = BUF_INIT(max + 1);
    if (base64_decode(json_string_value(v), json_string_length(v), &b, &too_large) < 0 ||
        b.len > max) {
        buf_release(&b);
        return err_set(err, ERR_ENGINE, "%s: %s %s", what, key,
                       too_large || b.len > max ? "is larger than its limit" : "is not base64");
    }
    *ret = buf_detach(&b, ret_len);
    return 0;
}

static int get_strv(const json_t *doc, const char *key, size_t max_items, char ***ret,
                    const char *what, struct err *err)
{
    const json_t *a = json_object_get(doc, key);
    *ret = NULL;
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > max_items)
        return err_set(err, ERR_ENGINE, "%s: %s must be an array of at most %zu strings", what, key,
                       max_items);
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) > REMOTE_TEXT_MAX ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            strv_free(steal_ptr(*ret));
            return err_set(err, ERR_ENGINE, "%s: %s[%zu] must be a string of at most %d bytes",
                           what, key, i, REMOTE_TEXT_MAX);
        }
        strv_push(ret, xstrdup(json_string_value(v)));
    }
    return 0;
}

static int get_limits(const json_t *doc, struct sandbox_limits *l, struct err *err)
{
    const char *what = "limits";
    const json_t *o = json_object_get(doc, "limits");
    if (!json_is_object(o))
        return err_set(err, ERR_ENGINE, "%s: must be an object", what);
    memset(l, 0, sizeof(*l));
    if (get_int(o, "timeout_default", 1, INT32_MAX, &l->timeout_default, what, err) < 0 ||
        get_int(o, "timeout_max", 1, INT32_MAX, &l->timeout_max, what, err) < 0 ||
        get_int(o, "memory", 1, INT64_MAX, &l->memory, what, err) < 0 ||
        get_int(o, "cpu_millis", 1, INT32_MAX, &l->cpu_millis, what, err) < 0 ||
        get_int(o, "pids", 1, INT32_MAX, &l->pids, what, err) < 0 ||
        get_int(o, "output_limit", 1, INT32_MAX, &l->output_limit, what, err) < 0 ||
        get_int(o, "workspace_size", 1, INT64_MAX, &l->workspace_size, what, err) < 0 ||
        get_int(o, "pool_size", 0, INT32_MAX, &l->pool_size, what, err) < 0 ||
        get_int(o, "recycle", 0, INT32_MAX, &l->recycle, what, err) < 0)
        return -1;
    l->network = get_bool(o, "network");
    l->gvisor = get_bool(o, "gvisor");
    const json_t *p = json_object_get(o, "preload");
    if (p && !json_is_array(p))
        return err_set(err, ERR_ENGINE, "%s: preload must be an array", what);
    size_t i;
    const json_t *v;
    json_array_foreach(p, i, v)
    {
        if (i >= SANDBOX_PRELOAD_MAX || !json_is_string(v) ||
            json_string_length(v) > SANDBOX_PRELOAD_NAME_MAX)
            return err_set(err, ERR_ENGINE, "%s: preload[%zu] is not a module name", what, i);
        snprintf(l->preload[i], sizeof(l->preload[i]), "%s", json_string_value(v));
        l->n_preload = i + 1;
    }
    return 0;
}

int exec_remote_spec_parse(const char *text, size_t len, struct prepared_job *pj, struct err *err)
{
    const char *what = "job spec";
    _cleanup_(json_decrefp) json_t *doc = NULL;
    int64_t version = 0;

    memset(pj, 0, sizeof(*pj));
    if (parse(text, len, what, &doc, err) < 0)
        return -1;
    struct execution_record *rec = &pj->rec;
    rec->exit_code = -1;
    if (get_str(doc, "id", 64, false, &rec->id, what, err) < 0 ||
        get_str(doc, "image", 1024, false, &rec->image, what, err) < 0 ||
        get_str(doc, "principal", 256, false, &rec->principal, what, err) < 0 ||
        get_int(doc, "timeout_s", 1, INT32_MAX, &rec->timeout_s, what, err) < 0 ||
        get_int(doc, "environment_version", 0, INT64_MAX, &version, what, err) < 0 ||
        (get_limits(doc, &pj->limits, err) < 0 && err_prefix(err, "%s", what)))
        return -1;
    rec->environment_version = version;
    pj->pool_ok = get_bool(doc, "pool_ok");
    pj->follow = get_bool(doc, "live");
    const json_t *tar = json_object_get(doc, "input_tar");
    bool too_large = false;
    pj->input_tar = (struct buf)BUF_INIT((size_t)pj->limits.workspace_size);
    if (!json_is_string(tar) || base64_decode(json_string_value(tar), json_string_length(tar),
                                              &pj->input_tar, &too_large) < 0)
        return err_set(err, ERR_ENGINE, "%s: input_tar %s", what,
                       too_large ? "is larger than the workspace" : "must be base64");
    return 0;
}

/* Files (or pictures, @display) of a result within the limits. */
static int get_files(const json_t *doc, const char *key, const struct tar_out_limits *lim,
                     bool display, struct job_file **ret, size_t *ret_n, size_t *total,
                     struct err *err)
{
    const char *what = "node result";
    const json_t *a = json_object_get(doc, key);
    size_t max_n = display ? lim->max_display : lim->max_files;
    *ret = NULL;
    *ret_n = 0;
    if (!json_is_array(a) || json_array_size(a) > max_n)
        return err_set(err, ERR_ENGINE, "%s: %s must be an array of at most %zu files", what, key,
                       max_n);
    size_t n = json_array_size(a);
    struct job_file *files = xcalloc(n ? n : 1, sizeof(*files));
    for (size_t i = 0; i < n; i++) {
        const json_t *f = json_array_get(a, i);
        const char *why = NULL;
        if (!json_is_object(f) || get_str(f, "path", 4096, false, &files[i].path, what, err) < 0 ||
            get_b64(f, "data", lim->max_file_size, &files[i].data, &files[i].len, what, err) < 0) {
            job_files_free(files, i + 1);
            return err->code ? err_prefix(err, "%s[%zu]", key, i)
                             : err_set(err, ERR_ENGINE, "%s: %s[%zu] is not a file", what, key, i);
        }
        *total += files[i].len;
        bool name_ok = display ? strchr(files[i].path, '/') == NULL && files[i].path[0] &&
                                     files[i].len >= 8 &&
                                     memcmp(files[i].data, "\x89PNG\r\n\x1a\n", 8) == 0
                               : path_is_safe_relative(files[i].path, strlen(files[i].path), &why);
        if (!name_ok || !utf8_valid(files[i].path, strlen(files[i].path)) ||
            *total > lim->max_total) {
            job_files_free(files, i + 1);
            return err_set(err, ERR_ENGINE, "%s: %s[%zu] %s", what, key, i,
                           *total > lim->max_total ? "passes the output files' total size"
                           : display               ? "is not a PNG picture with a plain name"
                                                   : "has an unsafe path");
        }
    }
    *ret = files;
    *ret_n = n;
    return 0;
}

int exec_remote_result_parse(const struct tar_out_limits *lim, int64_t output_limit,
                             const char *text, size_t len, struct job_result *res,
                             struct job_outcome *out, struct err *err)
{
    const char *what = "node result";
    _cleanup_(json_decrefp) json_t *doc = NULL;
    int64_t exit_code = 0;
    size_t total = 0;

    if (parse(text, len, what, &doc, err) < 0)
        return -1;
    const char *status = json_string_value(json_object_get(doc, "status"));
    int st = status ? exec_status_parse(status) : -1;
    if (st < EXEC_SUCCEEDED)
        return err_set(err, ERR_ENGINE, "%s: status must be a final status", what);
    const json_t *t = json_object_get(doc, "execution_time");
    if (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 1e9)
        return err_set(err, ERR_ENGINE, "%s: execution_time must be a number of seconds", what);
    if (get_int(doc, "exit_code", -1, 255, &exit_code, what, err) < 0)
        return -1;
    struct job_result r = {.status = (enum exec_status)st, .exit_code = (int)exit_code};
    snprintf(r.id, sizeof(r.id), "%s", res->id);
    r.execution_time = json_number_value(t);
    char *image_id = NULL;
    char **preload = NULL;
    if (get_b64(doc, "stdout", (size_t)output_limit, &r.stdout_text, &r.stdout_len, what, err) <
            0 ||
        get_b64(doc, "stderr", (size_t)output_limit, &r.stderr_text, &r.stderr_len, what, err) <
            0 ||
        get_files(doc, "files", lim, false, &r.files, &r.n_files, &total, err) < 0 ||
        get_files(doc, "display", lim, true, &r.display, &r.n_display, &total, err) < 0 ||
        get_strv(doc, "files_skipped", TAR_SKIPPED_MAX + 1, &r.files_skipped, what, err) < 0 ||
        get_str(doc, "error", REMOTE_TEXT_MAX, true, &r.error, what, err) < 0 ||
        get_str(doc, "image_id", 200, true, &image_id, what, err) < 0 ||
        get_strv(doc, "preload_errors", SANDBOX_PRELOAD_MAX, &preload, what, err) < 0) {
        job_result_release(&r);
        free(image_id);
        return -1;
    }
    /* stdout and stderr are stored as text: valid UTF-8, NUL kept */
    if (!utf8_valid_with_nul(r.stdout_text, r.stdout_len) ||
        !utf8_valid_with_nul(r.stderr_text, r.stderr_len)) {
        job_result_release(&r);
        free(image_id);
        strv_free(preload);
        return err_set(err, ERR_ENGINE, "%s: stdout and stderr must be UTF-8", what);
    }
    r.stdout_truncated = get_bool(doc, "stdout_truncated");
    r.stderr_truncated = get_bool(doc, "stderr_truncated");
    r.interpreter_lost = get_bool(doc, "interpreter_lost");
    out->engine_failed = get_bool(doc, "engine_failed");
    out->unclean = get_bool(doc, "unclean");
    out->reported = get_bool(doc, "reported");
    out->image_id = image_id;
    out->preload_errors = preload;
    if (out->engine_failed) {
        const char *m = json_string_value(json_object_get(doc, "engine_error"));
        err_set(&out->engine_err, ERR_ENGINE, "%.200s", m ? m : "the node's engine failed");
    }
    job_result_release(res);
    *res = r;
    return 0;
}

/* ---- the pools a node keeps ---- */

#define POOLS_MAX 256

char *exec_remote_pools_text(const struct exec_pool_target *t, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:s,s:s?,s:I,s:I,s:o}", "image", t[i].image, "environment",
                         t[i].environment, "size", (json_int_t)t[i].want, "recycle",
                         (json_int_t)t[i].recycle, "limits", limits_json(&t[i].limits)));
    size_t len;
    return dump(a, &len);
}

int exec_remote_pools_parse(const char *text, size_t len, struct exec_pool_target **ret,
                            size_t *ret_n, struct err *err)
{
    const char *what = "pools";
    json_error_t jerr;
    *ret = NULL;
    *ret_n = 0;
    if (json_shape_check(text, len, &remote_shape, what, err) < 0)
        return -1;
    _cleanup_(json_decrefp) json_t *a = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_array(a) || json_array_size(a) > POOLS_MAX)
        return err_set(err, ERR_ENGINE, "%s: must be an array of at most %d pools", what,
                       POOLS_MAX);
    size_t n = json_array_size(a);
    struct exec_pool_target *t = xcalloc(n ? n : 1, sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(a, i);
        if (!json_is_object(o) || get_str(o, "image", 1024, false, &t[i].image, what, err) < 0 ||
            get_str(o, "environment", 256, true, &t[i].environment, what, err) < 0 ||
            get_int(o, "size", 1, 1000, &t[i].want, what, err) < 0 ||
            get_int(o, "recycle", 0, INT32_MAX, &t[i].recycle, what, err) < 0 ||
            get_limits(o, &t[i].limits, err) < 0) {
            if (!err->code)
                err_set(err, ERR_ENGINE, "%s[%zu]: not an object", what, i);
            exec_pool_targets_free(t, i + 1);
            return -1;
        }
    }
    *ret = t;
    *ret_n = n;
    return 0;
}

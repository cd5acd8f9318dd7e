/* web/request.c - validation of request bodies, pure functions (no I/O) so
 * that unit tests and the fuzzer feed them directly. The order of checks
 * follows SimplePySandbox: shape and types first (422), then content (400). */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/json_shape.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

void execute_request_release(struct execute_request *r)
{
    if (!r)
        return;
    free(r->code);
    job_files_free(r->files, r->n_files);
    free(r->environment);
    memset(r, 0, sizeof(*r));
}

static bool all_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            return false;
    return true;
}

/* Integer seconds; an integral JSON real (30.0) is accepted as pydantic does. */
static int json_to_int(const json_t *v, int64_t *ret)
{
    if (json_is_integer(v)) {
        *ret = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && d > -1e15 && d < 1e15) {
            *ret = (int64_t)d;
            return 0;
        }
    }
    return -1;
}

/* base64 as Python's b64decode accepts it from clients: whitespace (line
 * breaks of wrapped output) is skipped, any other character outside the
 * alphabet is an error. */
static int decode_file(const char *name, const char *b64, size_t len, int64_t max_size,
                       struct buf *out, struct err *err)
{
    _cleanup_free_ char *compact = xmalloc(len + 1);
    size_t n = 0;
    bool too_large = false;

    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)b64[i]))
            compact[n++] = b64[i];
    compact[n] = '\0';
    if (n / 4 * 3 > (size_t)max_size + 2) /* too large even before decoding */
        return err_set(err, ERR_INVALID,
                       "files: '%s' is larger than the file size limit (MAX_FILE_SIZE %lld bytes)",
                       name, (long long)max_size);
    out->limit = (size_t)max_size;
    if (base64_decode(compact, n, out, &too_large) < 0) {
        if (too_large)
            return err_set(err, ERR_INVALID,
                           "files: '%s' is larger than the file size limit "
                           "(MAX_FILE_SIZE %lld bytes)",
                           name, (long long)max_size);
        return err_set(err, ERR_INVALID, "files: '%s' is not valid base64", name);
    }
    return 0;
}

static int parse_files(const json_t *files, const struct request_limits *lim,
                       struct execute_request *r, struct err *err)
{
    const char *name;
    json_t *value;
    size_t count = json_object_size(files);

    /* types first: every value must be a string (422) */
    json_object_foreach((json_t *)files, name, value)
    {
        if (!json_is_string(value))
            return err_set(err, ERR_UNPROCESSABLE,
                           "files: the value of '%s' must be a string "
                           "(base64)",
                           name);
    }
    if ((int64_t)count > lim->max_files)
        return err_set(err, ERR_INVALID, "files: %zu files; the limit is ENVHUB_MAX_FILES %lld",
                       count, (long long)lim->max_files);
    r->files = xcalloc(count + 1, sizeof(*r->files));
    json_object_foreach((json_t *)files, name, value)
    {
        size_t name_len = strlen(name); /* jansson keys cannot hold NUL unless allowed */
        const char *why = NULL;
        if (!path_is_safe_relative(name, name_len, &why)) {
            _cleanup_free_ char *shown = utf8_sanitize(name, name_len > 80 ? 80 : name_len, NULL);
            for (char *p = shown; *p; p++)
                if ((unsigned char)*p < 0x20)
                    *p = '?';
            return err_set(err, ERR_INVALID,
                           "files: the name '%s%s' is unsafe: it %s (names are relative paths "
                           "of at most %d bytes, without '.', '..' or empty components)",
                           shown, name_len > 80 ? "..." : "", why, PATH_NAME_MAX);
        }
        if (strcmp(name, EXEC_CODE_NAME) == 0)
            return err_set(err, ERR_INVALID, "files: the name '%s' is reserved for the code", name);
        if (strncmp(name, EXEC_PRIVATE_DIR, strlen(EXEC_PRIVATE_DIR)) == 0 &&
            (name[strlen(EXEC_PRIVATE_DIR)] == '\0' || name[strlen(EXEC_PRIVATE_DIR)] == '/'))
            return err_set(err, ERR_INVALID,
                           "files: the name '%.80s' is reserved: the folder '" EXEC_PRIVATE_DIR
                           "' holds envhub's display backend and pictures",
                           name);
        struct buf data = BUF_INIT(0);
        if (decode_file(name, json_string_value(value), json_string_length(value),
                        lim->max_file_size, &data, err) < 0) {
            buf_release(&data);
            return -1;
        }
        struct job_file *f = &r->files[r->n_files++];
        f->path = xstrdup(name);
        f->data = buf_detach(&data, &f->len);
    }
    return 0;
}

/* "limits": {memory, cpu, pids, output_limit}, each optional and positive;
 * the executor checks them against the environment's policy. */
static int parse_limits(json_t *limits, struct sandbox_overrides *o, struct err *err)
{
    static const char *const names[] = {"memory", "pids", "output_limit"};
    int64_t *slots[] = {&o->memory, &o->pids, &o->output_limit};
    const char *key;
    json_t *v;

    if (!json_is_object(limits))
        return err_set(err, ERR_UNPROCESSABLE,
                       "limits: must be an object {memory, cpu, pids, output_limit}");
    json_object_foreach(limits, key, v)
    {
        bool known = strcmp(key, "cpu") == 0;
        for (size_t i = 0; i < 3; i++)
            known |= strcmp(key, names[i]) == 0;
        if (!known)
            return err_set(err, ERR_UNPROCESSABLE,
                           "limits.%.40s: unknown (memory, cpu, pids, output_limit)", key);
    }
    for (size_t i = 0; i < 3; i++) {
        v = json_object_get(limits, names[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
            return err_set(err, ERR_UNPROCESSABLE, "limits.%s: must be a positive integer",
                           names[i]);
        *slots[i] = json_integer_value(v);
    }
    v = json_object_get(limits, "cpu");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0.01) || json_number_value(v) > 1024)
            return err_set(err, ERR_UNPROCESSABLE, "limits.cpu: must be a number of CPUs");
        o->cpu_millis = (int64_t)(json_number_value(v) * 1000 + 0.5);
    }
    return 0;
}

void web_request_limits(const struct config *cfg, struct request_limits *ret)
{
    /* the longest string a valid request holds: a file in base64 wrapped in
     * lines (4/3 of it, plus line breaks), or code or a script written
     * entirely in \u escapes (6 bytes a character) */
    int64_t longest = cfg->max_file_size / 2 * 3 + 4096;
    if (6 * cfg->max_code_length > longest)
        longest = 6 * cfg->max_code_length;
    if (6 * cfg->max_script_length > longest)
        longest = 6 * cfg->max_script_length;
    *ret = (struct request_limits){
        .max_code_length = cfg->max_code_length,
        .max_file_size = cfg->max_file_size,
        .max_files = cfg->max_files,
        .default_timeout = cfg->default_timeout,
        .max_timeout = cfg->max_timeout,
        .shape =
            {
                .max_depth = JSON_SHAPE_DEPTH_MAX,
                .max_members = 10000, /* ENVHUB_MAX_FILES can reach it */
                .max_items = 1000,
                .max_key = 4096,
                .max_string = (size_t)longest,
                .max_values = 100000,
            },
    };
}

int web_json_object(const char *body, size_t len, size_t flags, const struct json_shape_bounds *b,
                    const char *shape, json_t **ret, struct err *err)
{
    json_error_t jerr;

    if (len == 0) {
        *ret = json_object();
        return 0;
    }
    if (json_shape_check(body, len, b, "body", err) < 0)
        return -1;
    json_t *doc = json_loadb(body, len, flags, &jerr);
    if (!doc)
        return err_set(err, ERR_UNPROCESSABLE, "body: invalid JSON at line %d column %d: %s",
                       jerr.line, jerr.column, jerr.text);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return err_set(err, ERR_UNPROCESSABLE, "body: must be a JSON object%s%s", shape ? " " : "",
                       shape ? shape : "");
    }
    *ret = doc;
    return 0;
}

int web_parse_execute(const char *body, size_t len, const struct request_limits *lim,
                      bool environment_required, struct execute_request *ret, struct err *err)
{
    json_error_t jerr;

    if (json_shape_check(body, len, &lim->shape, "body", err) < 0)
        return -1;
    json_auto_t *doc = json_loadb(body, len, 0, &jerr);
    /* jansson cannot hold a NUL in an object key; the only keys that matter
     * are file names, and a NUL there is an unsafe name (400), not bad JSON */
    if (!doc && strstr(jerr.text, "NUL byte in object key"))
        return err_set(err, ERR_INVALID,
                       "files: a file name contains a NUL byte (names are relative paths "
                       "without control characters)");
    if (!doc)
        return err_set(err, ERR_UNPROCESSABLE, "body: invalid JSON at line %d column %d: %s",
                       jerr.line, jerr.column, jerr.text);
    return web_parse_execute_doc(doc, lim, environment_required, ret, err);
}

int web_parse_execute_doc(const json_t *doc, const struct request_limits *lim,
                          bool environment_required, struct execute_request *ret, struct err *err)
{
    struct execute_request r = {0};
    json_t *code, *timeout, *files, *env;

    if (!json_is_object(doc))
        return err_set(err, ERR_UNPROCESSABLE, "body: must be a JSON object");

    code = json_object_get(doc, "code");
    timeout = json_object_get(doc, "timeout");
    files = json_object_get(doc, "files");
    env = json_object_get(doc, "environment");

    if (!code)
        return err_set(err, ERR_UNPROCESSABLE, "code: field required");
    if (!json_is_string(code))
        return err_set(err, ERR_UNPROCESSABLE, "code: must be a string");
    r.timeout_s = lim->default_timeout;
    if (timeout && !json_is_null(timeout)) {
        r.timeout_given = true;
        if (json_to_int(timeout, &r.timeout_s) < 0)
            return err_set(err, ERR_UNPROCESSABLE, "timeout: must be an integer (seconds)");
        if (r.timeout_s < 1 || r.timeout_s > lim->max_timeout)
            return err_set(err, ERR_UNPROCESSABLE,
                           "timeout: %lld is out of range; it must be from 1 to %lld seconds",
                           (long long)r.timeout_s, (long long)lim->max_timeout);
    }
    json_t *limits = json_object_get(doc, "limits");
    if (limits && !json_is_null(limits) && parse_limits(limits, &r.overrides, err) < 0)
        return -1;
    if (files && !json_is_null(files) && !json_is_object(files))
        return err_set(err, ERR_UNPROCESSABLE,
                       "files: must be an object mapping file names to base64 content");
    if (env && !json_is_null(env) && !json_is_string(env))
        return err_set(err, ERR_UNPROCESSABLE, "environment: must be a string");
    if (environment_required && (!env || json_is_null(env)))
        return err_set(err, ERR_UNPROCESSABLE, "environment: field required");

    const char *c = json_string_value(code);
    size_t clen = json_string_length(code);
    if (clen == 0 || all_space(c, clen))
        return err_set(err, ERR_INVALID, "code: must not be empty");
    if ((int64_t)clen > lim->max_code_length)
        return err_set(err, ERR_INVALID,
                       "code: %zu bytes is over the limit of %lld bytes (MAX_CODE_LENGTH)", clen,
                       (long long)lim->max_code_length);
    if (env && json_is_string(env) && json_string_length(env) == 0)
        return err_set(err, ERR_INVALID, "environment: must not be empty");

    if (files && json_is_object(files) && parse_files(files, lim, &r, err) < 0) {
        execute_request_release(&r);
        return -1;
    }
    r.code = xmemdup(c, clen + 1);
    r.code_len = clen;
    if (env && json_is_string(env))
        r.environment = xstrdup(json_string_value(env));
    *ret = r;
    return 0;
}

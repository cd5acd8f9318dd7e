/* cli/run.c - `envhub run`: one job through a running server's POST
 * /execute; prints the job's stdout and stderr as they were (NUL included),
 * writes its output files, and exits with its exit code (124: timeout). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_internal.h"
#include "cli/client.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define RUN_TIMEOUT_MAX 86400 /* seconds --timeout may ask (the server bounds it further) */
#define RUN_ANSWER_SLACK 120  /* seconds the answer may take beyond the job's timeout */

/* Every --file as {basename: base64}; 0, or the exit status. */
static int add_files(const struct cli_parsed *p, json_t *files)
{
    struct err err = ERR_INIT;

    for (size_t i = 0; i < p->n_values; i++) {
        if (strcmp(p->values[i].opt->name, "file") != 0)
            continue;
        const char *path = p->values[i].value;
        _cleanup_(buf_release) struct buf data = BUF_INIT(CLI_MAX_FILE);
        if (cli_read_file(path, &data, &err) < 0)
            return cli_fail(&err);
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        size_t n;
        _cleanup_free_ char *b64 = base64_encode(data.data ? data.data : "", data.len, &n);
        json_object_set_new(files, base, json_stringn(b64, n));
    }
    return 0;
}

/* The job's output files under @out_dir, each checked to stay inside it. */
static void write_outputs(json_t *doc, const char *out_dir)
{
    const char *path;
    json_t *v;
    json_object_foreach(json_object_get(doc, "files"), path, v)
    {
        const char *why = NULL;
        _cleanup_(buf_release) struct buf data = BUF_INIT(BUF_UNLIMITED);
        if (!path_is_safe_relative(path, strlen(path), &why) ||
            base64_decode(json_string_value(v), json_string_length(v), &data, NULL) < 0) {
            fprintf(stderr, "envhub: skipping output file '%s'\n", path);
            continue;
        }
        _cleanup_free_ char *full = xasprintf("%s/%s", out_dir, path);
        for (char *p = full + strlen(out_dir) + 1; (p = strchr(p, '/')); p++) {
            *p = '\0';
            mkdir(full, 0755);
            *p = '/';
        }
        FILE *f = fopen(full, "wb");
        if (!f || fwrite(buf_str(&data), 1, data.len, f) != data.len)
            fprintf(stderr, "envhub: cannot write '%s': %s\n", full, strerror(errno));
        if (f)
            fclose(f);
    }
}

static int cmd_run(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};
    const struct cli_parsed *p = ctx->p;
    const char *code_path = p->args[0], *env = cli_value(p, "env");
    const char *out_dir = cli_value(p, "out");
    int64_t timeout = ctx->cfg->default_timeout;
    json_auto_t *files = json_object();
    int rc;

    if (cli_given(p, "timeout") &&
        parse_int(cli_value(p, "timeout"), 1, RUN_TIMEOUT_MAX, &timeout) < 0)
        return cli_usage_error(ctx->path, "--timeout '%s' must be a number of seconds from 1 to %d",
                               cli_value(p, "timeout"), RUN_TIMEOUT_MAX);
    if ((rc = add_files(p, files)) != 0)
        return rc;
    _cleanup_(buf_release) struct buf code = BUF_INIT(CLI_MAX_FILE);
    if (cli_read_file(code_path, &code, &err) < 0)
        return cli_fail(&err);
    json_auto_t *body = json_pack("{s:s%, s:I, s:O}", "code", code.data ? code.data : "", code.len,
                                  "timeout", (json_int_t)timeout, "files", files);
    if (!body) {
        fprintf(stderr, "envhub: '%s' is not valid UTF-8\n", code_path);
        return CLI_EXIT_FAILED;
    }
    if (env)
        json_object_set_new(body, "environment", json_string(env));
    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    if (client_call(&c, "POST", "/execute", text, (int)(timeout + RUN_ANSWER_SLACK) * 1000, &a,
                    &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot run the code");
    if (!doc)
        return CLI_EXIT_FAILED;
    json_t *out = json_object_get(doc, "stdout");
    json_t *errs = json_object_get(doc, "stderr");
    const char *error = json_string_value(json_object_get(doc, "error"));
    const char *status = json_string_value(json_object_get(doc, "status"));
    const char *warning = json_string_value(json_object_get(doc, "warning"));
    /* the bytes the job wrote, NUL included */
    fwrite(json_string_value(out) ? json_string_value(out) : "", 1, json_string_length(out),
           stdout);
    fwrite(json_string_value(errs) ? json_string_value(errs) : "", 1, json_string_length(errs),
           stderr);
    if (warning)
        fprintf(stderr, "envhub: warning: %s\n", warning);
    if (out_dir)
        write_outputs(doc, out_dir);
    if (error)
        fprintf(stderr, "envhub: %s (%s)\n", error, status ? status : "?");
    json_int_t code_rc = json_integer_value(json_object_get(doc, "exit_code"));
    if (status && strcmp(status, "timeout") == 0)
        return 124;
    if (code_rc >= 0 && code_rc < 256)
        return (int)code_rc;
    return CLI_EXIT_FAILED;
}

static const struct cli_option run_options[] = {
    {"env", 0, "NAME", "the environment to run in (default: the server's DOCKER_IMAGE)", false},
    {"file", 0, "PATH", "an input file, put in the job's working directory by its base name", true},
    {"out", 0, "DIR", "write the job's output files under DIR", false},
    {"timeout", 0, "SECONDS", "seconds the job may run (default: SANDBOX_TIMEOUT, 30)", false},
    {NULL, 0, NULL, NULL, false},
};

const struct cli_command cli_cmd_run = {
    .name = "run",
    .args = "CODE_FILE|-",
    .summary = "run Python code (a file, or - for stdin); exits with its exit code (124: timeout)",
    .options = run_options,
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .notes = "environment: ENVHUB_URL, the server (default http:// + ENVHUB_LISTEN); ENVHUB_KEY, "
             "an API key sent as a bearer token\n",
    .run = cmd_run,
};

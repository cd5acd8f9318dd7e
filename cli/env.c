/* cli/env.c - `envhub env ...` and `envhub packages`: the curators' command
 * line, which speaks to a running server's API (cli/client.h), like the
 * seed's manage_environments.py. Exit status: 0 on success, 1 when the
 * server refused or the build failed, 2 for usage errors. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "cli/cli_internal.h"
#include "cli/client.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

/* Print a build's log as it is written; returns the final status ("ready", ...). */
static char *follow_log(const struct client *c, const char *name, struct err *err)
{
    _cleanup_free_ char *ename = client_escape(name);
    _cleanup_free_ char *path = xasprintf("/environments/%s/logs?follow=1", ename);
    struct mg_connection *conn = NULL;
    _cleanup_(buf_release) struct buf line = BUF_INIT(1024 * 1024);
    char chunk[1];
    char *final = NULL;
    bool in_end = false;
    int status = 0, n;

    if (client_open(c, "GET", path, NULL, "text/event-stream", 30000, &conn, &status, err) < 0)
        return NULL;
    if (status != 200) {
        mg_close_connection(conn);
        err_set(err, status == 404 ? ERR_NOT_FOUND : ERR_INVALID,
                "cannot follow the log of '%s' (HTTP %d)", name, status);
        return NULL;
    }
    /* a byte at a time: civetweb's mg_read() waits until it has all it was
     * asked for, and a live log must show each line as it comes */
    while (!final && (n = mg_read(conn, chunk, 1)) > 0) {
        for (int i = 0; i < n && !final; i++) {
            if (chunk[i] != '\n') {
                (void)buf_append_upto(&line, &chunk[i], 1);
                continue;
            }
            const char *l = buf_str(&line);
            if (strncmp(l, "event: end", 10) == 0) {
                in_end = true;
            } else if (strncmp(l, "data: ", 6) == 0 && in_end) {
                json_error_t jerr;
                json_auto_t *doc = json_loads(l + 6, 0, &jerr);
                const char *st = doc ? json_string_value(json_object_get(doc, "status")) : NULL;
                final = xstrdup(st ? st : "unknown");
            } else if (strncmp(l, "data: ", 6) == 0) {
                printf("%s\n", l + 6);
                fflush(stdout);
            }
            buf_reset(&line);
        }
    }
    mg_close_connection(conn);
    if (!final)
        err_set(err, ERR_UNAVAILABLE, "the log stream of '%s' ended early", name);
    return final;
}

static int env_wait_and_report(const struct client *c, const char *name)
{
    struct err err = ERR_INIT;
    _cleanup_free_ char *final = follow_log(c, name, &err);
    if (!final)
        return cli_fail(&err);
    printf("envhub: '%s' build %s\n", name, final);
    return strcmp(final, "ready") == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

/* ---- env list ---- */

static void print_env_row(json_t *env)
{
    const char *last = json_string_value(json_object_get(env, "last_used"));
    const char *lifecycle = json_string_value(json_object_get(env, "lifecycle"));
    json_t *runs = json_object_get(json_object_get(env, "runs"), "30d");
    printf("%-24s %-9s %4lld  %-10s %7lld  %-28s %-24s %s\n",
           json_string_value(json_object_get(env, "name")),
           json_string_value(json_object_get(env, "status")),
           (long long)json_integer_value(json_object_get(env, "version")),
           lifecycle ? lifecycle : "-", (long long)json_integer_value(runs),
           json_string_value(json_object_get(env, "base_image")), last ? last : "-",
           json_string_value(json_object_get(env, "description")));
}

static int env_list(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};

    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    if (client_call(&c, "GET", "/environments", NULL, 30000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot list environments");
    if (!doc)
        return CLI_EXIT_FAILED;
    printf("%-24s %-9s %4s  %-10s %7s  %-28s %-24s %s\n", "NAME", "STATUS", "VER", "LIFECYCLE",
           "RUNS30D", "BASE IMAGE", "LAST USED", "DESCRIPTION");
    size_t i;
    json_t *env;
    json_array_foreach(json_object_get(doc, "environments"), i, env) print_env_row(env);
    return CLI_EXIT_OK;
}

/* ---- env create / rebuild ---- */

/* The text of file @path as a JSON string into @body[@key]; 0, or the exit status. */
static int set_file_text(json_t *body, const char *key, const char *path)
{
    struct err err = ERR_INIT;
    _cleanup_(buf_release) struct buf text = BUF_INIT(CLI_MAX_FILE);

    if (cli_read_file(path, &text, &err) < 0)
        return cli_fail(&err);
    json_t *s = json_stringn(buf_str(&text), text.len);
    if (!s) {
        fprintf(stderr, "envhub: '%s' is not valid UTF-8\n", path);
        return CLI_EXIT_FAILED;
    }
    json_object_set_new(body, key, s);
    return 0;
}

static int env_create_or_rebuild(const struct cli_ctx *ctx, bool create)
{
    struct err err = ERR_INIT;
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};
    const struct cli_parsed *p = ctx->p;
    const char *name = p->args[0];
    const char *script_path = p->n_args > 1 ? p->args[1] : NULL;
    const char *test_path = cli_value(p, "test"), *policy_text = cli_value(p, "policy");
    _cleanup_free_ char *ename = client_escape(name);
    json_auto_t *policy = NULL;
    json_auto_t *body = json_object();
    int rc;

    if (test_path && cli_given(p, "no-test"))
        return cli_usage_error(ctx->path, "--test and --no-test exclude each other");
    if (policy_text) {
        json_error_t jerr;
        policy = json_loads(policy_text, 0, &jerr);
        if (!json_is_object(policy))
            return cli_usage_error(ctx->path, "--policy: %s%s",
                                   policy ? "must be a JSON object like "
                                            "'{\"memory\": 536870912}', not "
                                          : "not valid JSON: ",
                                   policy ? policy_text : jerr.text);
    }
    if (script_path && (rc = set_file_text(body, "setup_script", script_path)) != 0)
        return rc;
    if (test_path && (rc = set_file_text(body, "test_script", test_path)) != 0)
        return rc;
    if (cli_given(p, "no-test"))
        json_object_set_new(body, "test_script", json_string(""));
    if (create)
        json_object_set_new(body, "name", json_string(name));
    if (cli_given(p, "base"))
        json_object_set_new(body, "base_image", json_string(cli_value(p, "base")));
    if (cli_given(p, "description"))
        json_object_set_new(body, "description", json_string(cli_value(p, "description")));
    if (cli_given(p, "python"))
        json_object_set_new(body, "python_version", json_string(cli_value(p, "python")));
    if (policy)
        json_object_set(body, "policy", policy);
    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    _cleanup_free_ char *path =
        create ? xstrdup("/environments") : xasprintf("/environments/%s/rebuild", ename);
    if (client_call(&c, "POST", path, text, 60000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, create ? "cannot create the environment"
                                              : "cannot rebuild the environment");
    if (!doc)
        return CLI_EXIT_FAILED;
    if (create)
        printf("envhub: '%s' created, building %s\n", name,
               json_string_value(json_object_get(doc, "docker_image")));
    else
        printf("envhub: '%s' version %lld queued\n", name,
               (long long)json_integer_value(json_object_get(doc, "version")));
    return cli_given(p, "wait") ? env_wait_and_report(&c, name) : CLI_EXIT_OK;
}

static int env_create(const struct cli_ctx *ctx)
{
    return env_create_or_rebuild(ctx, true);
}

static int env_rebuild(const struct cli_ctx *ctx)
{
    return env_create_or_rebuild(ctx, false);
}

/* ---- env show / logs / rm ---- */

/* GET or DELETE /environments/NAME[suffix]: prints JSON, a message or text. */
static int env_simple(const struct cli_ctx *ctx, const char *method, const char *suffix,
                      const char *what)
{
    struct err err = ERR_INIT;
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};
    _cleanup_free_ char *ename = client_escape(ctx->p->args[0]);
    _cleanup_free_ char *path = xasprintf("/environments/%s%s", ename, suffix);

    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    if (client_call(&c, method, path, NULL, 120000, &a, &err) < 0)
        return cli_fail(&err);
    if (a.status < 400 && strcmp(suffix, "/logs") == 0) {
        fwrite(buf_str(&a.body), 1, a.body.len, stdout);
        return CLI_EXIT_OK;
    }
    json_auto_t *doc = answer_json(&a, what);
    if (!doc)
        return CLI_EXIT_FAILED;
    const char *msg = json_string_value(json_object_get(doc, "message"));
    if (msg) {
        printf("%s\n", msg);
    } else {
        json_dumpf(doc, stdout, JSON_INDENT(2));
        printf("\n");
    }
    return CLI_EXIT_OK;
}

static int env_show(const struct cli_ctx *ctx)
{
    return env_simple(ctx, "GET", "", "cannot show the environment");
}

static int env_logs(const struct cli_ctx *ctx)
{
    if (cli_given(ctx->p, "follow")) {
        _cleanup_(client_release) struct client c = {0};
        if (cli_client(ctx, &c) < 0)
            return CLI_EXIT_USAGE;
        return env_wait_and_report(&c, ctx->p->args[0]);
    }
    return env_simple(ctx, "GET", "/logs", "cannot read the log");
}

static int env_rm(const struct cli_ctx *ctx)
{
    return env_simple(ctx, "DELETE", "", "cannot delete the environment");
}

/* ---- curation: lifecycle, diff, drift, package queries ---- */

static int env_lifecycle(const struct cli_ctx *ctx, const char *state)
{
    struct err err = ERR_INIT;
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};
    const char *name = ctx->p->args[0];
    const char *replacement = cli_value(ctx->p, "replacement");
    _cleanup_free_ char *ename = client_escape(name);

    json_auto_t *body = json_pack("{s:s}", "state", state);
    if (replacement)
        json_object_set_new(body, "replacement", json_string(replacement));
    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    _cleanup_free_ char *path = xasprintf("/environments/%s/lifecycle", ename);
    if (client_call(&c, "POST", path, text, 60000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot change the lifecycle");
    if (!doc)
        return CLI_EXIT_FAILED;
    const char *warning = json_string_value(json_object_get(doc, "warning"));
    json_t *rebuild = json_object_get(doc, "rebuild");
    if (strcmp(state, "deprecated") == 0)
        printf("envhub: '%s' is deprecated; its executions carry: %s\n", name, warning);
    else if (strcmp(state, "retired") == 0)
        printf("envhub: '%s' is retired: it runs nothing (410: %s); its images are removed after "
               "the grace period (ENVHUB_RETIRE_GRACE), its history stays\n",
               name, warning);
    else if (json_is_integer(rebuild))
        printf("envhub: '%s' is active again; its images had been removed: version %lld is "
               "being built (envhub env logs %s -f)\n",
               name, (long long)json_integer_value(rebuild), name);
    else
        printf("envhub: '%s' is active again\n", name);
    return CLI_EXIT_OK;
}

static int env_deprecate(const struct cli_ctx *ctx)
{
    return env_lifecycle(ctx, "deprecated");
}

static int env_retire(const struct cli_ctx *ctx)
{
    return env_lifecycle(ctx, "retired");
}

static int env_reinstate(const struct cli_ctx *ctx)
{
    return env_lifecycle(ctx, "active");
}

static void print_packages(const char *sign, json_t *list)
{
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        const char *from = json_string_value(json_object_get(p, "from"));
        if (from)
            printf("  %s %-4s %-40s %s -> %s\n", sign,
                   json_string_value(json_object_get(p, "manager")),
                   json_string_value(json_object_get(p, "name")), from,
                   json_string_value(json_object_get(p, "to")));
        else
            printf("  %s %-4s %-40s %s\n", sign, json_string_value(json_object_get(p, "manager")),
                   json_string_value(json_object_get(p, "name")),
                   json_string_value(json_object_get(p, "version")));
    }
}

static int env_diff(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};
    const char *name = ctx->p->args[0];
    const char *from = ctx->p->n_args > 1 ? ctx->p->args[1] : NULL;
    const char *to = ctx->p->n_args > 2 ? ctx->p->args[2] : NULL;
    _cleanup_free_ char *ename = client_escape(name);
    int64_t v;

    for (size_t i = 1; i < ctx->p->n_args; i++)
        if (parse_int(ctx->p->args[i], 1, INT64_MAX, &v) < 0)
            return cli_usage_error(ctx->path, "'%s' is not a version number", ctx->p->args[i]);
    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    _cleanup_free_ char *path =
        xasprintf("/environments/%s/diff%s%s%s%s", ename, from ? "?from=" : "", from ? from : "",
                  to ? "&to=" : "", to ? to : "");
    if (client_call(&c, "GET", path, NULL, 60000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot diff the versions");
    if (!doc)
        return CLI_EXIT_FAILED;
    json_t *pk = json_object_get(doc, "packages");
    printf("'%s' version %lld -> %lld\n", name,
           (long long)json_integer_value(json_object_get(doc, "from")),
           (long long)json_integer_value(json_object_get(doc, "to")));
    printf("packages: %zu added, %zu removed, %zu changed, %lld unchanged\n",
           json_array_size(json_object_get(pk, "added")),
           json_array_size(json_object_get(pk, "removed")),
           json_array_size(json_object_get(pk, "changed")),
           (long long)json_integer_value(json_object_get(pk, "unchanged")));
    print_packages("+", json_object_get(pk, "added"));
    print_packages("-", json_object_get(pk, "removed"));
    print_packages("~", json_object_get(pk, "changed"));
    json_t *base = json_object_get(doc, "base_image");
    if (json_is_true(json_object_get(base, "changed")))
        printf("base image: %s -> %s\n", json_string_value(json_object_get(base, "from")),
               json_string_value(json_object_get(base, "to")));
    json_t *pol = json_object_get(doc, "policy");
    if (json_is_true(json_object_get(pol, "changed"))) {
        _cleanup_free_ char *pf = json_dumps(json_object_get(pol, "from"), JSON_COMPACT);
        _cleanup_free_ char *pt = json_dumps(json_object_get(pol, "to"), JSON_COMPACT);
        printf("policy: %s -> %s\n", pf, pt);
    }
    static const char *const texts[][2] = {{"setup_script", "setup script"},
                                           {"test_script", "test script"}};
    for (size_t i = 0; i < 2; i++) {
        json_t *t = json_object_get(doc, texts[i][0]);
        if (json_is_true(json_object_get(t, "changed")))
            printf("%s:\n%s", texts[i][1], json_string_value(json_object_get(t, "diff")));
        else
            printf("%s: unchanged\n", texts[i][1]);
    }
    return CLI_EXIT_OK;
}

static int env_check(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};
    _cleanup_free_ char *path = NULL;

    if (ctx->p->n_args == 1) {
        _cleanup_free_ char *q = client_escape(ctx->p->args[0]);
        path = xasprintf("/drift?environment=%s", q);
    } else {
        path = xstrdup("/drift");
    }
    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    if (client_call(&c, "GET", path, NULL, 120000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot check for drift");
    if (!doc)
        return CLI_EXIT_FAILED;
    size_t i;
    json_t *r;
    printf("%-24s %4s  %-36s %-9s %s\n", "NAME", "VER", "BASE IMAGE", "DRIFT", "BUILT ON -> NOW");
    json_array_foreach(json_object_get(doc, "environments"), i, r)
    {
        json_t *d = json_object_get(r, "drifted");
        const char *built = json_string_value(json_object_get(r, "built_on"));
        const char *now = json_string_value(json_object_get(r, "resolves_to"));
        printf("%-24s %4lld  %-36s %-9s %.19s -> %.19s\n",
               json_string_value(json_object_get(r, "environment")),
               (long long)json_integer_value(json_object_get(r, "version")),
               json_string_value(json_object_get(r, "base_image")),
               json_is_true(d)    ? "DRIFTED"
               : json_is_false(d) ? "ok"
                                  : "unknown",
               built ? built : "-", now ? now : "(not in the engine)");
    }
    int64_t drifted = json_integer_value(json_object_get(doc, "drifted"));
    json_array_foreach(json_object_get(doc, "environments"), i, r)
    {
        if (!json_is_true(json_object_get(r, "drifted")))
            continue;
        const char *n = json_string_value(json_object_get(r, "environment"));
        printf("rebuild '%s' onto the new base image: envhub env rebuild %s   (or POST "
               "/environments/%s/rebuild)\n",
               n, n, n);
    }
    printf("envhub: %lld checked, %lld drifted\n",
           (long long)json_integer_value(json_object_get(doc, "checked")), (long long)drifted);
    return drifted ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

static int cmd_packages(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};
    const char *name = ctx->p->args[0], *spec = cli_value(ctx->p, "version");
    const char *manager = cli_value(ctx->p, "manager");

    _cleanup_free_ char *qn = client_escape(name);
    _cleanup_free_ char *qs = spec ? client_escape(spec) : NULL;
    _cleanup_free_ char *qm = manager ? client_escape(manager) : NULL;
    _cleanup_free_ char *path = xasprintf("/packages?name=%s%s%s%s%s%s", qn, qs ? "&version=" : "",
                                          qs ? qs : "", qm ? "&manager=" : "", qm ? qm : "",
                                          cli_given(ctx->p, "current") ? "&current=1" : "");
    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    if (client_call(&c, "GET", path, NULL, 60000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot query the packages");
    if (!doc)
        return CLI_EXIT_FAILED;
    json_t *matches = json_object_get(doc, "matches");
    if (json_array_size(matches) == 0) {
        fprintf(stderr, "envhub: no environment version carries %s%s%s\n", name, spec ? " " : "",
                spec ? spec : "");
        return CLI_EXIT_OK;
    }
    printf("%-24s %4s  %-7s %-10s %-4s %-30s %s\n", "ENVIRONMENT", "VER", "SERVING", "LIFECYCLE",
           "MGR", "PACKAGE", "VERSION");
    size_t i;
    json_t *m;
    json_array_foreach(matches, i, m)
    {
        printf("%-24s %4lld  %-7s %-10s %-4s %-30s %s\n",
               json_string_value(json_object_get(m, "environment")),
               (long long)json_integer_value(json_object_get(m, "environment_version")),
               json_is_true(json_object_get(m, "in_service")) ? "yes" : "no",
               json_string_value(json_object_get(m, "lifecycle")),
               json_string_value(json_object_get(m, "manager")),
               json_string_value(json_object_get(m, "package")),
               json_string_value(json_object_get(m, "version")));
    }
    return CLI_EXIT_OK;
}

/* ---- the table ---- */

#define CLIENT_NOTES                                                                               \
    "environment: ENVHUB_URL, the server (default http:// + ENVHUB_LISTEN); ENVHUB_KEY, an API "   \
    "key sent as a bearer token\n"

#define POLICY_HELP "the version's policy, a JSON object (see below)"
#define POLICY_NOTES                                                                               \
    "--policy JSON: each field is optional (the server's setting applies) and bounded by the "     \
    "server's maxima, e.g.\n"                                                                      \
    "  '{\"timeout_default\": 30, \"timeout_max\": 120, \"memory\": 1073741824, \"cpu\": 1.5,\n"   \
    "    \"pids\": 256, \"output_limit\": 2097152, \"workspace_size\": 268435456,\n"               \
    "    \"network\": \"none\", \"pool_size\": 2, \"recycle\": 1}'\n\n"

static const struct cli_option create_options[] = {
    {"base", 0, "IMAGE", "the base image (default: the server's DOCKER_IMAGE)", false},
    {"description", 0, "TEXT", "what the environment is for", false},
    {"python", 0, "VERSION", "the Python version it is meant for (informative)", false},
    {"test", 0, "TEST.py", "an acceptance check run before the version serves", false},
    {"policy", 0, "JSON", POLICY_HELP, false},
    {"wait", 0, NULL, "follow the build log; exit 0 when ready, 1 when the build failed", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_option rebuild_options[] = {
    {"base", 0, "IMAGE", "a new base image (default: the current one)", false},
    {"test", 0, "TEST.py", "a new acceptance check run before the version serves", false},
    {"no-test", 0, NULL, "drop the acceptance check", false},
    {"policy", 0, "JSON", POLICY_HELP "; '{}' returns to the server's settings", false},
    {"wait", 0, NULL, "follow the build log; exit 0 when ready, 1 when the build failed", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_option logs_options[] = {
    {"follow", 'f', NULL, "follow the newest build until it ends; exit 0 when ready", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_option lifecycle_options[] = {
    {"replacement", 0, "OTHER", "the environment to use instead, named in the warning", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_command env_create_cmd = {
    .name = "create",
    .args = "NAME SCRIPT",
    .summary = "create an environment from a setup script (a file, or - for stdin) and build it",
    .options = create_options,
    .min_args = 2,
    .max_args = 2,
    .reads = "listen",
    .notes = POLICY_NOTES CLIENT_NOTES,
    .run = env_create,
};

static const struct cli_command env_list_cmd = {
    .name = "list",
    .summary = "list the environments: status, version, lifecycle, runs in 30 days",
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .run = env_list,
};

static const struct cli_command env_show_cmd = {
    .name = "show",
    .args = "NAME",
    .summary = "print an environment as JSON",
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .run = env_show,
};

static const struct cli_command env_logs_cmd = {
    .name = "logs",
    .args = "NAME",
    .summary = "print the log of the newest build",
    .options = logs_options,
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .run = env_logs,
};

static const struct cli_command env_rebuild_cmd = {
    .name = "rebuild",
    .args = "NAME [SCRIPT]",
    .summary = "build version N+1 (a new script, or the same); version N serves until it is ready",
    .options = rebuild_options,
    .min_args = 1,
    .max_args = 2,
    .reads = "listen",
    .notes = "without --policy a rebuild keeps the current policy\n" POLICY_NOTES CLIENT_NOTES,
    .run = env_rebuild,
};

static const struct cli_command env_rm_cmd = {
    .name = "rm",
    .args = "NAME",
    .summary = "delete an environment and its images",
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .run = env_rm,
};

static const struct cli_command env_diff_cmd = {
    .name = "diff",
    .args = "NAME [FROM [TO]]",
    .summary = "packages added, removed, changed and the script diff between two versions",
    .min_args = 1,
    .max_args = 3,
    .reads = "listen",
    .notes = "FROM and TO are version numbers; by default the version in service against the one "
             "before\n\n" CLIENT_NOTES,
    .run = env_diff,
};

static const struct cli_command env_check_cmd = {
    .name = "check",
    .args = "[NAME]",
    .summary = "base images that drifted (exit 1), with the rebuild to run",
    .max_args = 1,
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .run = env_check,
};

static const struct cli_command env_deprecate_cmd = {
    .name = "deprecate",
    .args = "NAME",
    .summary = "keep it running, with a warning on every execution",
    .options = lifecycle_options,
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .run = env_deprecate,
};

static const struct cli_command env_retire_cmd = {
    .name = "retire",
    .args = "NAME",
    .summary = "stop running it (410); its images go after ENVHUB_RETIRE_GRACE",
    .options = lifecycle_options,
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .run = env_retire,
};

static const struct cli_command env_reinstate_cmd = {
    .name = "reinstate",
    .args = "NAME",
    .summary = "make it active again (rebuilt if its images were removed)",
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .run = env_reinstate,
};

static const struct cli_command *const env_subs[] = {
    &env_create_cmd,    &env_list_cmd,   &env_show_cmd,      &env_logs_cmd,
    &env_rebuild_cmd,   &env_rm_cmd,     &env_diff_cmd,      &env_check_cmd,
    &env_deprecate_cmd, &env_retire_cmd, &env_reinstate_cmd, NULL,
};

const struct cli_command cli_cmd_env = {
    .name = "env",
    .summary = "curate the environments of a running server",
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .subs = env_subs,
};

static const struct cli_option packages_options[] = {
    {"version", 0, "SPEC",
     "only versions matching SPEC: ==V, !=V, <V, <=V, >V, >=V, ~=V, "
     "comma-separated (\"<2\", \">=1.20,<2\")",
     false},
    {"manager", 0, "MGR", "only packages of pip or dpkg", false},
    {"current", 0, NULL, "only the versions in service", false},
    {NULL, 0, NULL, NULL, false},
};

const struct cli_command cli_cmd_packages = {
    .name = "packages",
    .args = "NAME",
    .summary = "environments and versions carrying a package",
    .options = packages_options,
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .run = cmd_packages,
};

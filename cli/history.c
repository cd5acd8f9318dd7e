/* cli/history.c - `envhub history ...` and `envhub audit verify`: the
 * auditors' command line. Reads go through the server's API (cli/client.h);
 * `audit verify --db PATH` checks a catalog file read-only instead (an
 * auditor's copy, no server needed) and `history prune` works on the catalog
 * file (--db / ENVHUB_DB) directly.
 *
 * Exit status: 0 on success (verify: the chain is intact), 1 when verify
 * finds it broken or the server refused, 2 for usage errors and when the
 * check could not be made. */
#include <civetweb.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "cli/cli_internal.h"
#include "cli/client.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web.h"

#include "core/banned.h"

#define HISTORY_PAGE 500
#define HISTORY_TIMEOUT_MS 60000
#define VERIFY_TIMEOUT_MS 3600000 /* a long history takes a while */

/* ---- filters as query parameters ---- */

/* The options that filter executions, and the query parameter of each. */
static const struct {
    const char *option;
    const char *param;
} filters[] = {
    {"env", "environment"},
    {"env-version", "environment_version"},
    {"status", "status"},
    {"principal", "principal"},
    {"since", "since"},
    {"until", "until"},
    {"code-sha256", "code_sha256"},
    {"q", "q"},
};

/* The filters given, as an encoded query string ("" for none). */
static void filter_query(const struct cli_parsed *p, struct buf *q)
{
    for (size_t i = 0; i < p->n_values; i++)
        for (size_t k = 0; k < ARRAY_SIZE(filters); k++)
            if (strcmp(p->values[i].opt->name, filters[k].option) == 0) {
                _cleanup_free_ char *enc = client_escape(p->values[i].value);
                buf_putf(q, "%s%s=%s", q->len ? "&" : "", filters[k].param, enc);
            }
}

/* --format's value, checked against @allowed ("table json csv"); NULL (said) when not one. */
static const char *format_of(const struct cli_ctx *ctx, const char *def, const char *allowed)
{
    const char *f = cli_value(ctx->p, "format");
    if (!f)
        return def;
    size_t len = strlen(f);
    for (const char *a = allowed; *a; a += strcspn(a, " ")) {
        a += strspn(a, " ");
        if (len && strncmp(a, f, len) == 0 && (a[len] == ' ' || a[len] == '\0'))
            return f;
    }
    cli_usage_error(ctx->path, "--format '%s' must be one of: %s", f, allowed);
    return NULL;
}

/* ---- envhub history ---- */

static const char *jget(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static void print_row(json_t *it)
{
    char env[80], dur[24], exitc[12];
    json_t *v = json_object_get(it, "environment");
    if (json_is_string(v))
        snprintf(env, sizeof(env), "%s:v%lld", json_string_value(v),
                 (long long)json_integer_value(json_object_get(it, "environment_version")));
    else
        snprintf(env, sizeof(env), "(default)");
    v = json_object_get(it, "duration_ms");
    if (json_is_integer(v))
        snprintf(dur, sizeof(dur), "%.3fs", (double)json_integer_value(v) / 1000);
    else
        snprintf(dur, sizeof(dur), "-");
    v = json_object_get(it, "exit_code");
    if (json_is_integer(v))
        snprintf(exitc, sizeof(exitc), "%lld", (long long)json_integer_value(v));
    else
        snprintf(exitc, sizeof(exitc), "-");
    printf("%-27s %-24s %-28s %-11s %4s %10s  %s\n", jget(it, "id"), jget(it, "recorded_at"), env,
           jget(it, "status"), exitc, dur, jget(it, "principal"));
}

static int history_list(const struct client *c, const struct buf *query, int64_t limit, bool table)
{
    struct err err = ERR_INIT;
    int64_t shown = 0;
    _cleanup_free_ char *cursor = NULL;

    if (table)
        printf("%-27s %-24s %-28s %-11s %4s %10s  %s\n", "ID", "RECORDED", "ENVIRONMENT", "STATUS",
               "EXIT", "DURATION", "PRINCIPAL");
    for (;;) {
        _cleanup_(answer_release) struct answer a = {0};
        int64_t want = limit == 0 || limit - shown > HISTORY_PAGE ? HISTORY_PAGE : limit - shown;
        _cleanup_free_ char *path =
            xasprintf("/executions?%s%slimit=%lld%s%s", buf_str(query), query->len ? "&" : "",
                      (long long)want, cursor ? "&cursor=" : "", cursor ? cursor : "");
        if (client_call(c, "GET", path, NULL, HISTORY_TIMEOUT_MS, &a, &err) < 0) {
            cli_fail(&err);
            return CLI_EXIT_USAGE;
        }
        json_auto_t *doc = answer_json(&a, "cannot list executions");
        if (!doc)
            return CLI_EXIT_FAILED;
        json_t *items = json_object_get(doc, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            json_t *it = json_array_get(items, i);
            if (table) {
                print_row(it);
            } else {
                json_dumpf(it, stdout, JSON_COMPACT);
                putchar('\n');
            }
            shown++;
        }
        const char *next = json_string_value(json_object_get(doc, "next_cursor"));
        if (!next || (limit && shown >= limit))
            break;
        free(cursor);
        cursor = xstrdup(next);
    }
    return CLI_EXIT_OK;
}

/* CSV comes from the export, streamed to stdout as it arrives. */
static int history_csv(const struct client *c, const struct buf *query, int64_t limit)
{
    struct err err = ERR_INIT;
    struct mg_connection *conn = NULL;
    int status = 0, n;
    char chunk[16384];
    _cleanup_free_ char *path = NULL;

    if (limit)
        path = xasprintf("/executions/export?format=csv&limit=%lld%s%s", (long long)limit,
                         query->len ? "&" : "", buf_str(query));
    else
        path =
            xasprintf("/executions/export?format=csv%s%s", query->len ? "&" : "", buf_str(query));
    if (client_open(c, "GET", path, NULL, "text/csv", HISTORY_TIMEOUT_MS, &conn, &status, &err) <
        0) {
        cli_fail(&err);
        return CLI_EXIT_USAGE;
    }
    if (status != 200) {
        struct answer a = {.status = status, .body = BUF_INIT(1024 * 1024)};
        while ((n = mg_read(conn, chunk, sizeof(chunk))) > 0)
            (void)buf_append_upto(&a.body, chunk, (size_t)n);
        mg_close_connection(conn);
        json_decref(answer_json(&a, "cannot export executions"));
        answer_release(&a);
        return CLI_EXIT_FAILED;
    }
    while ((n = mg_read(conn, chunk, sizeof(chunk))) > 0)
        fwrite(chunk, 1, (size_t)n, stdout);
    mg_close_connection(conn);
    return CLI_EXIT_OK;
}

static int cmd_history(const struct cli_ctx *ctx)
{
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(buf_release) struct buf query = BUF_INIT(BUF_UNLIMITED);
    const char *format = format_of(ctx, "table", "table json csv");
    int64_t limit = 50;

    if (!format)
        return CLI_EXIT_USAGE;
    if (cli_given(ctx->p, "limit") &&
        parse_int(cli_value(ctx->p, "limit"), 0, INT64_MAX, &limit) < 0)
        return cli_usage_error(ctx->path, "--limit '%s' must be 0 (all) or more",
                               cli_value(ctx->p, "limit"));
    filter_query(ctx->p, &query);
    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    if (strcmp(format, "csv") == 0)
        return history_csv(&c, &query, limit);
    return history_list(&c, &query, limit, strcmp(format, "table") == 0);
}

/* A string member as its bytes: a job's output may hold NUL. */
static void put_text(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v))
        fwrite(json_string_value(v), 1, json_string_length(v), stdout);
}

static int history_show(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};
    const char *format = format_of(ctx, "text", "text json");

    if (!format)
        return CLI_EXIT_USAGE;
    _cleanup_free_ char *enc = client_escape(ctx->p->args[0]);
    _cleanup_free_ char *path = xasprintf("/executions/%s", enc);
    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    if (client_call(&c, "GET", path, NULL, HISTORY_TIMEOUT_MS, &a, &err) < 0) {
        cli_fail(&err);
        return CLI_EXIT_USAGE;
    }
    json_auto_t *doc = answer_json(&a, "cannot show the execution");
    if (!doc)
        return CLI_EXIT_FAILED;
    if (strcmp(format, "json") == 0) {
        json_dumpf(doc, stdout, JSON_INDENT(2));
        putchar('\n');
        return CLI_EXIT_OK;
    }
    static const char *const fields[] = {"id",          "status",      "exit_code",
                                         "error",       "environment", "environment_version",
                                         "image",       "image_id",    "principal",
                                         "client_addr", "queued_at",   "started_at",
                                         "finished_at", "duration_ms", "timeout_s",
                                         "code_sha256", "chain_seq",   "chain_hash"};
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        json_t *v = json_object_get(doc, fields[i]);
        _cleanup_free_ char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY);
        printf("%-20s %s\n", fields[i],
               json_is_string(v) ? json_string_value(v)
               : text            ? text
                                 : "null");
    }
    printf("files\n");
    json_t *files = json_object_get(doc, "files");
    for (size_t i = 0; i < json_array_size(files); i++) {
        json_t *f = json_array_get(files, i);
        printf("  %-3s %-40s %10lld  %s\n", jget(f, "direction"), jget(f, "path"),
               (long long)json_integer_value(json_object_get(f, "size")), jget(f, "sha256"));
    }
    printf("---- code ----\n%s", jget(doc, "code"));
    if (json_is_true(json_object_get(doc, "output_pruned"))) {
        /* retention dropped the texts: say so, with what was kept of them */
        printf("\n---- output pruned at %s (ENVHUB_RETENTION_DAYS) ----\n",
               jget(doc, "output_pruned_at"));
        printf("stdout %lld bytes, sha256 %s%s\nstderr %lld bytes, sha256 %s%s\n",
               (long long)json_integer_value(json_object_get(doc, "stdout_size")),
               jget(doc, "stdout_sha256"),
               json_is_true(json_object_get(doc, "stdout_truncated")) ? " (truncated)" : "",
               (long long)json_integer_value(json_object_get(doc, "stderr_size")),
               jget(doc, "stderr_sha256"),
               json_is_true(json_object_get(doc, "stderr_truncated")) ? " (truncated)" : "");
        return CLI_EXIT_OK;
    }
    printf("\n---- stdout%s ----\n",
           json_is_true(json_object_get(doc, "stdout_truncated")) ? " (truncated)" : "");
    put_text(doc, "stdout");
    printf("\n---- stderr%s ----\n",
           json_is_true(json_object_get(doc, "stderr_truncated")) ? " (truncated)" : "");
    put_text(doc, "stderr");
    putchar('\n');
    return CLI_EXIT_OK;
}

static int history_stats(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};
    _cleanup_(buf_release) struct buf query = BUF_INIT(BUF_UNLIMITED);
    const char *format = format_of(ctx, "table", "table json");
    const char *group = cli_value(ctx->p, "group");

    if (!format)
        return CLI_EXIT_USAGE;
    filter_query(ctx->p, &query);
    _cleanup_free_ char *eg = client_escape(group ? group : "day");
    _cleanup_free_ char *path =
        xasprintf("/executions/stats?group=%s%s%s", eg, query.len ? "&" : "", buf_str(&query));
    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    if (client_call(&c, "GET", path, NULL, HISTORY_TIMEOUT_MS, &a, &err) < 0) {
        cli_fail(&err);
        return CLI_EXIT_USAGE;
    }
    json_auto_t *doc = answer_json(&a, "cannot compute statistics");
    if (!doc)
        return CLI_EXIT_FAILED;
    if (strcmp(format, "json") == 0) {
        json_dumpf(doc, stdout, JSON_INDENT(2));
        putchar('\n');
        return CLI_EXIT_OK;
    }
    printf("%-24s %10s %14s %10s %10s\n", jget(doc, "group"), "COUNT", "TOTAL s", "P50 ms",
           "P95 ms");
    json_t *groups = json_object_get(doc, "groups");
    for (size_t i = 0; i < json_array_size(groups); i++) {
        json_t *g = json_array_get(groups, i);
        json_t *k = json_object_get(g, "key");
        printf("%-24s %10lld %14.1f %10lld %10lld\n",
               json_is_string(k) ? json_string_value(k) : "(none)",
               (long long)json_integer_value(json_object_get(g, "count")),
               (double)json_integer_value(json_object_get(g, "total_duration_ms")) / 1000,
               (long long)json_integer_value(json_object_get(g, "p50_duration_ms")),
               (long long)json_integer_value(json_object_get(g, "p95_duration_ms")));
    }
    return CLI_EXIT_OK;
}

static int history_prune(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(catalog_closep) struct catalog *cat = NULL;
    const char *before_text = cli_value(ctx->p, "before");
    struct history_prune res;
    int64_t before = -1;

    if (!before_text)
        return cli_usage_error(ctx->path, "--before DATE is needed");
    if (time_parse_iso(before_text, &before) < 0)
        return cli_usage_error(ctx->path, "--before '%s' is not an RFC 3339 date or time",
                               before_text);
    if (catalog_open(ctx->cfg->db_path, &cat, &err) < 0 ||
        catalog_history_prune(cat, before, time_now_ms(), &res, &err) < 0)
        return cli_fail(&err);
    char iso[TIME_ISO_MAX];
    time_format_iso(before, iso);
    printf("pruned %lld executions finished before %s from '%s'\n", (long long)res.pruned, iso,
           ctx->cfg->db_path);
    printf("checkpoint: link %lld, chain hash %s\n", (long long)res.checkpoint_seq,
           res.checkpoint_hash);
    return CLI_EXIT_OK;
}

/* ---- envhub audit verify ---- */

static int verify_report(json_t *doc, bool json)
{
    bool ok = json_is_true(json_object_get(doc, "ok"));
    if (json) {
        json_dumpf(doc, stdout, JSON_INDENT(2));
        putchar('\n');
        return ok ? CLI_EXIT_OK : CLI_EXIT_FAILED;
    }
    json_t *cp = json_object_get(doc, "checkpoint");
    if (ok) {
        printf("audit chain intact: %lld executions checked, head link %lld %s\n",
               (long long)json_integer_value(json_object_get(doc, "count")),
               (long long)json_integer_value(json_object_get(doc, "head_seq")), jget(doc, "head"));
    } else {
        json_t *id = json_object_get(doc, "first_bad_id");
        printf("audit chain BROKEN at %s%s (link %lld): %s\n",
               json_is_string(id) ? "execution " : "",
               json_is_string(id) ? json_string_value(id) : "the end of the chain",
               (long long)json_integer_value(json_object_get(doc, "first_bad_seq")),
               jget(doc, "reason"));
    }
    if (json_is_object(cp))
        printf("checkpoint: link %lld %s (pruned %lld executions finished before %s)\n",
               (long long)json_integer_value(json_object_get(cp, "chain_seq")),
               jget(cp, "chain_hash"), (long long)json_integer_value(json_object_get(cp, "pruned")),
               jget(cp, "before"));
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

static int audit_verify(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    const char *format = format_of(ctx, "text", "text json");

    if (!format)
        return CLI_EXIT_USAGE;
    bool json = strcmp(format, "json") == 0;
    if (ctx->db_given) {
        struct history_verify v;
        if (catalog_history_verify_file(ctx->cfg->db_path, &v, &err) < 0) {
            cli_fail(&err);
            return CLI_EXIT_USAGE;
        }
        /* the same document GET /audit/verify answers */
        _cleanup_free_ char *text = web_verify_text(&v);
        json_error_t jerr;
        json_auto_t *doc = text ? json_loads(text, 0, &jerr) : NULL;
        if (!doc) {
            fprintf(stderr, "envhub: cannot report the check of '%s'\n", ctx->cfg->db_path);
            return CLI_EXIT_USAGE;
        }
        return verify_report(doc, json);
    }
    _cleanup_(client_release) struct client c = {0};
    _cleanup_(answer_release) struct answer a = {0};
    if (cli_client(ctx, &c) < 0)
        return CLI_EXIT_USAGE;
    if (client_call(&c, "GET", "/audit/verify", NULL, VERIFY_TIMEOUT_MS, &a, &err) < 0) {
        cli_fail(&err);
        return CLI_EXIT_USAGE;
    }
    json_auto_t *doc = answer_json(&a, "cannot verify the audit chain");
    if (!doc)
        return CLI_EXIT_USAGE;
    return verify_report(doc, json);
}

/* ---- the table ---- */

#define CLIENT_NOTES                                                                               \
    "environment: ENVHUB_URL, the server (default http:// + ENVHUB_LISTEN); ENVHUB_KEY, an API "   \
    "key sent as a bearer token\n"
#define DATE_NOTES "DATE: RFC 3339, a day (2026-11-01) or a time (2026-11-01T10:00:00Z)\n"

#define FILTER_OPTIONS                                                                             \
    {"env", 0, "NAME", "only executions in this environment", false},                              \
        {"env-version", 0, "N", "only those of this version of --env", false},                     \
        {"status", 0, "STATUS",                                                                    \
         "only this status: queued, running, succeeded, failed, timeout, "                         \
         "oom, error, interrupted",                                                                \
         false},                                                                                   \
        {"principal", 0, "WHO", "only those of this caller (a key's name, or an address)", false}, \
        {"since", 0, "DATE", "only those recorded at or after DATE", false},                       \
        {"until", 0, "DATE", "only those recorded before DATE", false},                            \
        {"code-sha256", 0, "HEX", "only those that ran exactly this code", false},                 \
    {                                                                                              \
        "q", 0, "WORDS", "only those whose code or output holds these words", false                \
    }

static const struct cli_option history_options[] = {
    FILTER_OPTIONS,
    {"limit", 0, "N", "show at most N (default 50; 0: all)", false},
    {"format", 0, "FMT", "table (default), json (one object a line) or csv (the export)", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_option show_options[] = {
    {"format", 0, "FMT", "text (default) or json (the API's answer)", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_option stats_options[] = {
    {"group", 0, "BY", "environment, status or day (default)", false},
    FILTER_OPTIONS,
    {"format", 0, "FMT", "table (default) or json", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_option prune_options[] = {
    {"before", 0, "DATE", "delete the executions finished before DATE (required)", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_command history_show_cmd = {
    .name = "show",
    .args = "ID",
    .summary = "one execution: its fields, files, code, stdout and stderr",
    .options = show_options,
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .notes = CLIENT_NOTES,
    .run = history_show,
};

static const struct cli_command history_stats_cmd = {
    .name = "stats",
    .summary = "counts and durations (total, p50, p95) per group",
    .options = stats_options,
    .reads = "listen",
    .notes = DATE_NOTES "\n" CLIENT_NOTES,
    .run = history_stats,
};

static const struct cli_command history_prune_cmd = {
    .name = "prune",
    .summary = "delete old executions from the catalog file, keeping a checkpoint of the audit "
               "chain",
    .options = prune_options,
    .reads = "db",
    .notes = DATE_NOTES,
    .run = history_prune,
};

static const struct cli_command *const history_subs[] = {
    &history_show_cmd,
    &history_stats_cmd,
    &history_prune_cmd,
    NULL,
};

const struct cli_command cli_cmd_history = {
    .name = "history",
    .summary = "list the executions the server recorded (newest first), or a subcommand",
    .options = history_options,
    .reads = "listen",
    .notes = DATE_NOTES "\n" CLIENT_NOTES,
    .run = cmd_history,
    .subs = history_subs,
};

static const struct cli_option verify_options[] = {
    {"format", 0, "FMT", "text (default) or json", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_command audit_verify_cmd = {
    .name = "verify",
    .summary = "check the audit chain of the executions (exit 0 intact, 1 broken, 2 not checked)",
    .options = verify_options,
    .reads = "db listen",
    .notes = "with --db (before or after the command) the catalog file is checked read-only, "
             "without a server;\n"
             "otherwise the server checks its own.\n\n" CLIENT_NOTES,
    .run = audit_verify,
};

static const struct cli_command *const audit_subs[] = {&audit_verify_cmd, NULL};

const struct cli_command cli_cmd_audit = {
    .name = "audit",
    .summary = "verify the audit chain, through the server or on a catalog file",
    .subs = audit_subs,
};

/* web/cli_history.c - `envhub history ...` and `envhub audit verify`: the
 * auditors' command line. Reads go through the server's API (the client of
 * web/cli.c, ENVHUB_URL and ENVHUB_KEY); `audit verify --db PATH` opens a
 * catalog file read-only instead (an auditor's copy, no server needed) and
 * `history prune` works on the catalog file (--db / ENVHUB_DB) directly.
 *
 * Exit status: 0 on success (verify: the chain is intact), 1 when verify
 * finds it broken or the server refused, 2 for usage errors and when the
 * check could not be made. */
#include <civetweb.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define CLI_PAGE 500
#define CLI_TIMEOUT_MS 60000
#define CLI_VERIFY_TIMEOUT_MS 3600000 /* a long history takes a while */

static const char history_usage[] =
    "usage: envhub history [--env NAME] [--env-version N] [--status S] [--principal P]\n"
    "                      [--since DATE] [--until DATE] [--code-sha256 HEX] [--q WORDS]\n"
    "                      [--limit N (default 50, 0: all)] [--format table|json|csv]\n"
    "       envhub history show ID [--format json]\n"
    "       envhub history stats [--group environment|status|day] [filters]\n"
    "       envhub history prune --before DATE [--db PATH]\n"
    "       envhub audit verify [--db PATH] [--format json]\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "envhub: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", history_usage);
    return 2;
}

/* ---- filters as query parameters ---- */

struct filter_flag {
    const char *flag;  /* on the command line */
    const char *param; /* in the query */
};

static const struct filter_flag filter_flags[] = {
    {"--env", "environment"},
    {"--env-version", "environment_version"},
    {"--status", "status"},
    {"--principal", "principal"},
    {"--since", "since"},
    {"--until", "until"},
    {"--code-sha256", "code_sha256"},
    {"--q", "q"},
};

static void query_add(struct buf *q, const char *name, const char *value)
{
    size_t cap = 3 * strlen(value) + 1;
    _cleanup_free_ char *enc = xmalloc(cap);
    if (mg_url_encode(value, enc, cap) < 0)
        enc[0] = '\0';
    if (buf_appendf(q, "%s%s=%s", q->len ? "&" : "", name, enc) < 0)
        abort();
}

/* Options shared by the listing commands. */
struct list_opts {
    struct buf query; /* the filters, encoded */
    int64_t limit;
    const char *format;
    const char *group;
};

/* Parse filters and options; returns 0, or the exit status of a usage error. */
static int parse_list_opts(int argc, char **argv, struct list_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->query = (struct buf)BUF_INIT(BUF_UNLIMITED);
    o->limit = 50;
    o->format = "table";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool matched = false;
        if (i + 1 >= argc)
            return usage_error("unexpected '%s' (options take a value)", a);
        for (size_t k = 0; k < ARRAY_SIZE(filter_flags) && !matched; k++)
            if (strcmp(a, filter_flags[k].flag) == 0) {
                query_add(&o->query, filter_flags[k].param, argv[++i]);
                matched = true;
            }
        if (matched)
            continue;
        if (strcmp(a, "--limit") == 0) {
            if (parse_int(argv[++i], 0, INT64_MAX, &o->limit) < 0)
                return usage_error("--limit '%s' must be 0 (all) or more", argv[i]);
        } else if (strcmp(a, "--format") == 0) {
            o->format = argv[++i];
            if (strcmp(o->format, "table") != 0 && strcmp(o->format, "json") != 0 &&
                strcmp(o->format, "csv") != 0)
                return usage_error("--format '%s' must be table, json or csv", o->format);
        } else if (strcmp(a, "--group") == 0) {
            o->group = argv[++i];
        } else {
            return usage_error("unexpected '%s'", a);
        }
    }
    return 0;
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

static int history_list(const struct client *c, struct list_opts *o)
{
    struct err err = ERR_INIT;
    int64_t shown = 0;
    _cleanup_free_ char *cursor = NULL;
    bool table = strcmp(o->format, "table") == 0;

    if (table)
        printf("%-27s %-24s %-28s %-11s %4s %10s  %s\n", "ID", "RECORDED", "ENVIRONMENT", "STATUS",
               "EXIT", "DURATION", "PRINCIPAL");
    for (;;) {
        _cleanup_(answer_release) struct answer a = {0};
        int64_t want = o->limit == 0 || o->limit - shown > CLI_PAGE ? CLI_PAGE : o->limit - shown;
        _cleanup_free_ char *path =
            xasprintf("/executions?%s%slimit=%lld%s%s", buf_str(&o->query), o->query.len ? "&" : "",
                      (long long)want, cursor ? "&cursor=" : "", cursor ? cursor : "");
        if (client_call(c, "GET", path, NULL, CLI_TIMEOUT_MS, &a, &err) < 0) {
            fprintf(stderr, "envhub: %s\n", err.msg);
            return 2;
        }
        json_auto_t *doc = answer_json(&a, "cannot list executions");
        if (!doc)
            return 1;
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
        if (!next || (o->limit && shown >= o->limit))
            break;
        free(cursor);
        cursor = xstrdup(next);
    }
    return 0;
}

/* CSV comes from the export, streamed to stdout as it arrives. */
static int history_csv(const struct client *c, struct list_opts *o)
{
    struct err err = ERR_INIT;
    struct mg_connection *conn = NULL;
    int status = 0, n;
    char chunk[16384];
    _cleanup_free_ char *path = NULL;

    if (o->limit)
        path = xasprintf("/executions/export?format=csv&limit=%lld%s%s", (long long)o->limit,
                         o->query.len ? "&" : "", buf_str(&o->query));
    else
        path = xasprintf("/executions/export?format=csv%s%s", o->query.len ? "&" : "",
                         buf_str(&o->query));
    if (client_open(c, "GET", path, NULL, "text/csv", CLI_TIMEOUT_MS, &conn, &status, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 2;
    }
    if (status != 200) {
        struct answer a = {.status = status, .body = BUF_INIT(1024 * 1024)};
        while ((n = mg_read(conn, chunk, sizeof(chunk))) > 0)
            (void)buf_append_upto(&a.body, chunk, (size_t)n);
        mg_close_connection(conn);
        json_decref(answer_json(&a, "cannot export executions"));
        answer_release(&a);
        return 1;
    }
    while ((n = mg_read(conn, chunk, sizeof(chunk))) > 0)
        fwrite(chunk, 1, (size_t)n, stdout);
    mg_close_connection(conn);
    return 0;
}

/* A string member as its bytes: a job's output may hold NUL. */
static void put_text(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v))
        fwrite(json_string_value(v), 1, json_string_length(v), stdout);
}

static int history_show(const struct client *c, int argc, char **argv)
{
    struct err err = ERR_INIT;
    _cleanup_(answer_release) struct answer a = {0};
    bool json = argc == 3 && strcmp(argv[1], "--format") == 0 && strcmp(argv[2], "json") == 0;

    if (argc != 1 && !json)
        return usage_error("history show takes an ID");
    char enc[256];
    if (mg_url_encode(argv[0], enc, sizeof(enc)) < 0)
        return usage_error("the id '%s' is too long", argv[0]);
    _cleanup_free_ char *path = xasprintf("/executions/%s", enc);
    if (client_call(c, "GET", path, NULL, CLI_TIMEOUT_MS, &a, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 2;
    }
    json_auto_t *doc = answer_json(&a, "cannot show the execution");
    if (!doc)
        return 1;
    if (json) {
        json_dumpf(doc, stdout, JSON_INDENT(2));
        putchar('\n');
        return 0;
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
    printf("\n---- stdout%s ----\n",
           json_is_true(json_object_get(doc, "stdout_truncated")) ? " (truncated)" : "");
    put_text(doc, "stdout");
    printf("\n---- stderr%s ----\n",
           json_is_true(json_object_get(doc, "stderr_truncated")) ? " (truncated)" : "");
    put_text(doc, "stderr");
    putchar('\n');
    return 0;
}

static int history_stats(const struct client *c, struct list_opts *o)
{
    struct err err = ERR_INIT;
    _cleanup_(answer_release) struct answer a = {0};
    _cleanup_free_ char *path =
        xasprintf("/executions/stats?group=%s%s%s", o->group ? o->group : "day",
                  o->query.len ? "&" : "", buf_str(&o->query));

    if (client_call(c, "GET", path, NULL, CLI_TIMEOUT_MS, &a, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 2;
    }
    json_auto_t *doc = answer_json(&a, "cannot compute statistics");
    if (!doc)
        return 1;
    if (strcmp(o->format, "json") == 0) {
        json_dumpf(doc, stdout, JSON_INDENT(2));
        putchar('\n');
        return 0;
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
    return 0;
}

static int history_prune(const struct config *cfg, int argc, char **argv)
{
    struct err err = ERR_INIT;
    _cleanup_(catalog_closep) struct catalog *cat = NULL;
    struct history_prune res;
    int64_t before = -1;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--before") == 0 && i + 1 < argc) {
            if (time_parse_iso(argv[++i], &before) < 0)
                return usage_error("--before '%s' is not an RFC 3339 date or time", argv[i]);
        } else {
            return usage_error("unexpected '%s'", argv[i]);
        }
    }
    if (before < 0)
        return usage_error("history prune needs --before DATE");
    if (catalog_open(cfg->db_path, &cat, &err) < 0 ||
        catalog_history_prune(cat, before, time_now_ms(), &res, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 1;
    }
    char iso[TIME_ISO_MAX];
    time_format_iso(before, iso);
    printf("pruned %lld executions finished before %s from '%s'\n", (long long)res.pruned, iso,
           cfg->db_path);
    printf("checkpoint: link %lld, chain hash %s\n", (long long)res.checkpoint_seq,
           res.checkpoint_hash);
    return 0;
}

/* ---- envhub audit verify ---- */

static int verify_report(json_t *doc, bool json)
{
    bool ok = json_is_true(json_object_get(doc, "ok"));
    if (json) {
        json_dumpf(doc, stdout, JSON_INDENT(2));
        putchar('\n');
        return ok ? 0 : 1;
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
    return ok ? 0 : 1;
}

static int audit_main(const struct config *cfg, const struct client *c, int argc, char **argv,
                      bool db_given)
{
    bool json = false;

    if (argc < 1 || strcmp(argv[0], "verify") != 0)
        return usage_error("unknown audit command '%s'", argc ? argv[0] : "");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--format") == 0 && i + 1 < argc &&
            (strcmp(argv[i + 1], "json") == 0 || strcmp(argv[i + 1], "text") == 0))
            json = strcmp(argv[++i], "json") == 0;
        else
            return usage_error("unexpected '%s'", argv[i]);
    }
    struct err err = ERR_INIT;
    if (db_given) {
        struct history_verify v;
        if (catalog_history_verify_file(cfg->db_path, &v, &err) < 0) {
            fprintf(stderr, "envhub: %s\n", err.msg);
            return 2;
        }
        json_auto_t *doc = web_verify_json(&v);
        return verify_report(doc, json);
    }
    _cleanup_(answer_release) struct answer a = {0};
    if (client_call(c, "GET", "/audit/verify", NULL, CLI_VERIFY_TIMEOUT_MS, &a, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 2;
    }
    json_auto_t *doc = answer_json(&a, "cannot verify the audit chain");
    if (!doc)
        return 2;
    return verify_report(doc, json);
}

int web_history_cli_main(const struct config *cfg, int argc, char **argv, bool db_given)
{
    struct client c;
    struct err err = ERR_INIT;
    int rc;

    if (argc >= 2 && strcmp(argv[0], "history") == 0 && strcmp(argv[1], "prune") == 0)
        return history_prune(cfg, argc - 2, argv + 2);
    if (client_init(&c, cfg, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 2;
    }
    mg_init_library(0);
    if (strcmp(argv[0], "audit") == 0) {
        rc = audit_main(cfg, &c, argc - 1, argv + 1, db_given);
    } else if (argc >= 2 && strcmp(argv[1], "show") == 0) {
        rc = argc >= 3 ? history_show(&c, argc - 2, argv + 2)
                       : usage_error("history show needs an ID");
    } else {
        struct list_opts o;
        bool stats = argc >= 2 && strcmp(argv[1], "stats") == 0;
        int skip = stats ? 2 : 1;
        rc = parse_list_opts(argc - skip, argv + skip, &o);
        if (rc == 0 && o.group && !stats)
            rc = usage_error("--group is for `history stats`");
        if (rc == 0)
            rc = stats                          ? history_stats(&c, &o)
                 : strcmp(o.format, "csv") == 0 ? history_csv(&c, &o)
                                                : history_list(&c, &o);
        buf_release(&o.query);
    }
    mg_exit_library();
    return rc;
}

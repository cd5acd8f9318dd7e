/* web/cli.c - the envhub command line client: `envhub env ...` and
 * `envhub run ...` speak to a running server's API over HTTP (civetweb's
 * client), like the seed's manage_environments.py. The server at ENVHUB_URL
 * (default: http:// + ENVHUB_LISTEN); ENVHUB_KEY, when set, is sent as a
 * bearer token. Exit status: 0 on success, 1 when the server refused or the
 * build failed, 2 for usage errors; `run` exits with the job's exit code. */
#include <civetweb.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define CLI_MAX_ANSWER (512 * 1024 * 1024)
#define CLI_MAX_FILE (64 * 1024 * 1024)

/* struct client and struct answer: web_internal.h (cli_history.c shares them). */

void answer_release(struct answer *a)
{
    buf_release(&a->body);
}

static int cli_fail(const struct err *err)
{
    fprintf(stderr, "envhub: %s\n", err->msg);
    return 1;
}

int client_init(struct client *c, const struct config *cfg, struct err *err)
{
    const char *url = getenv("ENVHUB_URL");
    _cleanup_free_ char *fallback = xasprintf("http://%s", cfg->listen);
    if (!url || !*url)
        url = fallback;
    if (strncmp(url, "http://", 7) != 0)
        return err_set(err, ERR_INVALID, "ENVHUB_URL '%s' must start with http://", url);
    const char *hp = url + 7;
    const char *colon = strrchr(hp, ':');
    size_t hlen = colon ? (size_t)(colon - hp) : strcspn(hp, "/");
    if (hlen == 0 || hlen >= sizeof(c->host))
        return err_set(err, ERR_INVALID, "ENVHUB_URL '%s' has no host", url);
    memcpy(c->host, hp, hlen);
    c->host[hlen] = '\0';
    int64_t port = 80;
    if (colon) {
        _cleanup_free_ char *p = xstrndup(colon + 1, strcspn(colon + 1, "/"));
        if (parse_int(p, 1, 65535, &port) < 0)
            return err_set(err, ERR_INVALID, "ENVHUB_URL '%s' has a bad port", url);
    }
    c->port = (int)port;
    c->key = getenv("ENVHUB_KEY");
    return 0;
}

/* Send a request; the answer's head is read, the body is left to the caller
 * (mg_read). *ret_conn belongs to the caller: mg_close_connection(). */
int client_open(const struct client *c, const char *method, const char *path, const char *body,
                const char *accept, int timeout_ms, struct mg_connection **ret_conn,
                int *ret_status, struct err *err)
{
    char ebuf[256] = "";
    struct mg_connection *conn = mg_connect_client(c->host, c->port, 0, ebuf, sizeof(ebuf));
    size_t len = body ? strlen(body) : 0;

    if (!conn)
        return err_set(err, ERR_UNAVAILABLE,
                       "cannot reach envhub at http://%s:%d: %s (is `make run` serving?)", c->host,
                       c->port, ebuf[0] ? ebuf : "connection refused");
    _cleanup_free_ char *auth =
        c->key && *c->key ? xasprintf("Authorization: Bearer %s\r\n", c->key) : xstrdup("");
    mg_printf(conn,
              "%s %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: %s\r\n%s%s"
              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
              method, path, c->host, c->port, accept, auth,
              body ? "Content-Type: application/json\r\n" : "", len);
    if (len)
        mg_write(conn, body, len);
    if (mg_get_response(conn, ebuf, sizeof(ebuf), timeout_ms) < 0) {
        mg_close_connection(conn);
        return err_set(err, ERR_UNAVAILABLE, "no answer from envhub to %s %s: %s", method, path,
                       ebuf);
    }
    *ret_status = mg_get_response_info(conn)->status_code;
    *ret_conn = conn;
    return 0;
}

int client_call(const struct client *c, const char *method, const char *path, const char *body,
                int timeout_ms, struct answer *ret, struct err *err)
{
    struct mg_connection *conn = NULL;
    char chunk[16384];
    int n;

    ret->body = (struct buf)BUF_INIT(CLI_MAX_ANSWER);
    if (client_open(c, method, path, body, "application/json", timeout_ms, &conn, &ret->status,
                    err) < 0)
        return -1;
    while ((n = mg_read(conn, chunk, sizeof(chunk))) > 0)
        if (buf_append(&ret->body, chunk, (size_t)n) < 0) {
            mg_close_connection(conn);
            return err_set(err, ERR_TOO_LARGE, "the answer to %s %s is too large", method, path);
        }
    mg_close_connection(conn);
    return 0;
}

/* The answer as JSON; on an error status prints its detail and returns NULL.
 * Strings may hold NUL (\u0000 in a job's output): print those by length. */
json_t *answer_json(const struct answer *a, const char *what)
{
    json_error_t jerr;
    json_t *doc = json_loadb(buf_str(&a->body), a->body.len, JSON_ALLOW_NUL, &jerr);
    if (a->status >= 400) {
        const char *detail = doc ? json_string_value(json_object_get(doc, "detail")) : NULL;
        fprintf(stderr, "envhub: %s: %s (HTTP %d)\n", what, detail ? detail : buf_str(&a->body),
                a->status);
        json_decref(doc);
        return NULL;
    }
    if (!doc)
        fprintf(stderr, "envhub: %s: the answer is not JSON: %s\n", what, jerr.text);
    return doc;
}

static int read_file(const char *path, struct buf *out, struct err *err)
{
    _cleanup_close_ int fd =
        strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
    char chunk[16384];
    ssize_t n;

    if (fd < 0)
        return err_errno(err, ERR_INVALID, errno, "cannot open '%s'", path);
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_errno(err, ERR_INVALID, errno, "cannot read '%s'", path);
        }
        if (buf_append(out, chunk, (size_t)n) < 0)
            return err_set(err, ERR_TOO_LARGE, "'%s' is larger than %zu bytes", path, out->limit);
    }
    return 0;
}

static char *escape_path(const char *s)
{
    char out[512];
    if (mg_url_encode(s, out, sizeof(out)) < 0)
        return xstrdup(s);
    return xstrdup(out);
}

/* Print a build's log as it is written; returns the final status ("ready", ...). */
static char *follow_log(const struct client *c, const char *name, struct err *err)
{
    _cleanup_free_ char *ename = escape_path(name);
    _cleanup_free_ char *path = xasprintf("/environments/%s/logs?follow=1", ename);
    struct mg_connection *conn = NULL;
    struct buf line = BUF_INIT(1024 * 1024);
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
    buf_release(&line);
    if (!final)
        err_set(err, ERR_UNAVAILABLE, "the log stream of '%s' ended early", name);
    return final;
}

static int env_wait_and_report(const struct client *c, const char *name)
{
    struct err err = ERR_INIT;
    _cleanup_free_ char *final = follow_log(c, name, &err);
    if (!final) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 1;
    }
    printf("envhub: '%s' build %s\n", name, final);
    return strcmp(final, "ready") == 0 ? 0 : 1;
}

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

static int env_list(const struct client *c)
{
    struct err err = ERR_INIT;
    _cleanup_(answer_release) struct answer a = {0};

    if (client_call(c, "GET", "/environments", NULL, 30000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot list environments");
    if (!doc)
        return 1;
    printf("%-24s %-9s %4s  %-10s %7s  %-28s %-24s %s\n", "NAME", "STATUS", "VER", "LIFECYCLE",
           "RUNS30D", "BASE IMAGE", "LAST USED", "DESCRIPTION");
    size_t i;
    json_t *env;
    json_array_foreach(json_object_get(doc, "environments"), i, env) print_env_row(env);
    return 0;
}

static void env_create_usage(FILE *f, bool create)
{
    if (create)
        fprintf(f, "usage: envhub env create NAME SCRIPT [--base IMAGE] [--description TEXT] "
                   "[--python VERSION] [--test TEST.py] [--policy JSON] [--wait]\n");
    else
        fprintf(f, "usage: envhub env rebuild NAME [SCRIPT] [--base IMAGE] [--test TEST.py | "
                   "--no-test] [--policy JSON] [--wait]\n");
    fprintf(f,
            "  --policy JSON  the version's policy, a JSON object; each field is optional (the "
            "server's setting applies)\n"
            "                 and bounded by the server's maxima, e.g.\n"
            "                 '{\"timeout_default\": 30, \"timeout_max\": 120, \"memory\": "
            "1073741824, \"cpu\": 1.5,\n"
            "                   \"pids\": 256, \"output_limit\": 2097152, "
            "\"workspace_size\": 268435456,\n"
            "                   \"network\": \"none\", \"pool_size\": 2, \"recycle\": "
            "1}'\n%s",
            create ? ""
                   : "                 without --policy a rebuild keeps the current policy; "
                     "'{}' returns to the server's settings\n");
}

static int env_create_or_rebuild(const struct client *c, bool create, const char *name, int argc,
                                 char **argv)
{
    struct err err = ERR_INIT;
    _cleanup_(answer_release) struct answer a = {0};
    _cleanup_free_ char *ename = escape_path(name);
    const char *script_path = NULL, *base = NULL, *desc = NULL, *py = NULL, *test_path = NULL;
    json_auto_t *policy = NULL;
    bool wait = false, no_test = false;

    for (int i = -1; i < argc; i++) {
        const char *arg = i < 0 ? name : argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            env_create_usage(stdout, create);
            return 0;
        }
    }
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--policy") == 0) {
            json_error_t jerr;
            if (i + 1 == argc) {
                fprintf(stderr, "envhub env %s: --policy: a JSON object must follow\n",
                        create ? "create" : "rebuild");
                return 2;
            }
            json_decref(policy);
            policy = json_loads(argv[++i], 0, &jerr);
            if (!json_is_object(policy)) {
                fprintf(stderr, "envhub env %s: --policy: %s%s\n", create ? "create" : "rebuild",
                        policy ? "must be a JSON object like '{\"memory\": 536870912}', not "
                               : "not valid JSON: ",
                        policy ? argv[i] : jerr.text);
                return 2;
            }
        } else if (strcmp(argv[i], "--wait") == 0)
            wait = true;
        else if (strcmp(argv[i], "--base") == 0 && i + 1 < argc)
            base = argv[++i];
        else if (strcmp(argv[i], "--description") == 0 && i + 1 < argc)
            desc = argv[++i];
        else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc)
            py = argv[++i];
        else if (strcmp(argv[i], "--test") == 0 && i + 1 < argc)
            test_path = argv[++i];
        else if (strcmp(argv[i], "--no-test") == 0)
            no_test = true;
        else if ((argv[i][0] != '-' || strcmp(argv[i], "-") == 0) && !script_path)
            script_path = argv[i];
        else {
            fprintf(stderr, "envhub env %s: unexpected '%s'\n", create ? "create" : "rebuild",
                    argv[i]);
            env_create_usage(stderr, create);
            return 2;
        }
    }
    if (create && !script_path) {
        env_create_usage(stderr, create);
        return 2;
    }
    json_auto_t *body = json_object();
    if (script_path) {
        _cleanup_(buf_release) struct buf script = BUF_INIT(CLI_MAX_FILE);
        if (read_file(script_path, &script, &err) < 0)
            return cli_fail(&err);
        json_t *s = json_stringn(buf_str(&script), script.len);
        if (!s) {
            fprintf(stderr, "envhub: '%s' is not valid UTF-8\n", script_path);
            return 1;
        }
        json_object_set_new(body, "setup_script", s);
    }
    if (test_path) {
        _cleanup_(buf_release) struct buf test = BUF_INIT(CLI_MAX_FILE);
        if (read_file(test_path, &test, &err) < 0)
            return cli_fail(&err);
        json_t *t = json_stringn(buf_str(&test), test.len);
        if (!t) {
            fprintf(stderr, "envhub: '%s' is not valid UTF-8\n", test_path);
            return 1;
        }
        json_object_set_new(body, "test_script", t);
    } else if (no_test) {
        json_object_set_new(body, "test_script", json_string(""));
    }
    if (create)
        json_object_set_new(body, "name", json_string(name));
    if (base)
        json_object_set_new(body, "base_image", json_string(base));
    if (desc && create)
        json_object_set_new(body, "description", json_string(desc));
    if (py && create)
        json_object_set_new(body, "python_version", json_string(py));
    if (policy)
        json_object_set(body, "policy", policy);
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    _cleanup_free_ char *path =
        create ? xstrdup("/environments") : xasprintf("/environments/%s/rebuild", ename);
    if (client_call(c, "POST", path, text, 60000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, create ? "cannot create the environment"
                                              : "cannot rebuild the environment");
    if (!doc)
        return 1;
    if (create)
        printf("envhub: '%s' created, building %s\n", name,
               json_string_value(json_object_get(doc, "docker_image")));
    else
        printf("envhub: '%s' version %lld queued\n", name,
               (long long)json_integer_value(json_object_get(doc, "version")));
    return wait ? env_wait_and_report(c, name) : 0;
}

/* GET or DELETE /environments/NAME[suffix]: prints JSON, a message or text. */
static int env_simple(const struct client *c, const char *method, const char *name,
                      const char *suffix, const char *what)
{
    struct err err = ERR_INIT;
    _cleanup_(answer_release) struct answer a = {0};
    _cleanup_free_ char *ename = escape_path(name);
    _cleanup_free_ char *path = xasprintf("/environments/%s%s", ename, suffix);

    if (client_call(c, method, path, NULL, 120000, &a, &err) < 0)
        return cli_fail(&err);
    if (a.status < 400 && strcmp(suffix, "/logs") == 0) {
        fwrite(buf_str(&a.body), 1, a.body.len, stdout);
        return 0;
    }
    json_auto_t *doc = answer_json(&a, what);
    if (!doc)
        return 1;
    const char *msg = json_string_value(json_object_get(doc, "message"));
    if (msg)
        printf("%s\n", msg);
    else {
        json_dumpf(doc, stdout, JSON_INDENT(2));
        printf("\n");
    }
    return 0;
}

/* ---- curation: lifecycle, diff, drift, package queries ---- */

static char *escape_query(const char *s)
{
    size_t size = 3 * strlen(s) + 1;
    char *out = xcalloc(size, 1);
    if (mg_url_encode(s, out, size) < 0) {
        free(out);
        return xstrdup(s);
    }
    return out;
}

static int env_lifecycle(const struct client *c, const char *sub, const char *name, int argc,
                         char **argv)
{
    struct err err = ERR_INIT;
    _cleanup_(answer_release) struct answer a = {0};
    _cleanup_free_ char *ename = escape_path(name);
    const char *replacement = NULL;
    const char *state = strcmp(sub, "deprecate") == 0 ? "deprecated"
                        : strcmp(sub, "retire") == 0  ? "retired"
                                                      : "active";

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--replacement") == 0 && i + 1 < argc && strcmp(state, "active") != 0)
            replacement = argv[++i];
        else {
            fprintf(stderr, "usage: envhub env %s NAME%s\n", sub,
                    strcmp(state, "active") != 0 ? " [--replacement OTHER]" : "");
            return 2;
        }
    }
    json_auto_t *body = json_pack("{s:s}", "state", state);
    if (replacement)
        json_object_set_new(body, "replacement", json_string(replacement));
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    _cleanup_free_ char *path = xasprintf("/environments/%s/lifecycle", ename);
    if (client_call(c, "POST", path, text, 60000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot change the lifecycle");
    if (!doc)
        return 1;
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
    return 0;
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

static int env_diff(const struct client *c, const char *name, int argc, char **argv)
{
    struct err err = ERR_INIT;
    _cleanup_(answer_release) struct answer a = {0};
    _cleanup_free_ char *ename = escape_path(name);
    const char *from = NULL, *to = NULL;
    int64_t v;

    for (int i = 0; i < argc; i++) {
        if (parse_int(argv[i], 1, INT64_MAX, &v) < 0 || (from && to)) {
            fprintf(stderr, "usage: envhub env diff NAME [FROM [TO]]   (version numbers; by "
                            "default the version in service against the one before)\n");
            return 2;
        }
        if (!from)
            from = argv[i];
        else
            to = argv[i];
    }
    _cleanup_free_ char *path =
        xasprintf("/environments/%s/diff%s%s%s%s", ename, from ? "?from=" : "", from ? from : "",
                  to ? "&to=" : "", to ? to : "");
    if (client_call(c, "GET", path, NULL, 60000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot diff the versions");
    if (!doc)
        return 1;
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
    return 0;
}

static int env_check(const struct client *c, int argc, char **argv)
{
    struct err err = ERR_INIT;
    _cleanup_(answer_release) struct answer a = {0};
    _cleanup_free_ char *path = NULL;

    if (argc > 1) {
        fprintf(stderr, "usage: envhub env check [NAME]\n");
        return 2;
    }
    if (argc == 1) {
        _cleanup_free_ char *q = escape_query(argv[0]);
        path = xasprintf("/drift?environment=%s", q);
    } else {
        path = xstrdup("/drift");
    }
    if (client_call(c, "GET", path, NULL, 120000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot check for drift");
    if (!doc)
        return 1;
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
    return drifted ? 1 : 0;
}

static int cmd_packages(const struct client *c, int argc, char **argv)
{
    struct err err = ERR_INIT;
    _cleanup_(answer_release) struct answer a = {0};
    const char *name = NULL, *spec = NULL, *manager = NULL;
    bool current = false, bad = false;

    for (int i = 0; i < argc && !bad; i++) {
        if (strcmp(argv[i], "--version") == 0 && i + 1 < argc)
            spec = argv[++i];
        else if (strcmp(argv[i], "--manager") == 0 && i + 1 < argc)
            manager = argv[++i];
        else if (strcmp(argv[i], "--current") == 0)
            current = true;
        else if (!name && argv[i][0] != '-')
            name = argv[i];
        else
            bad = true;
    }
    if (!name || bad) {
        fprintf(stderr, "usage: envhub packages NAME [--version SPEC] [--manager pip|dpkg] "
                        "[--current]\n  SPEC: ==V, !=V, <V, <=V, >V, >=V, ~=V, comma-separated "
                        "(\"<2\", \">=1.20,<2\")\n");
        return 2;
    }
    _cleanup_free_ char *qn = escape_query(name);
    _cleanup_free_ char *qs = spec ? escape_query(spec) : NULL;
    _cleanup_free_ char *qm = manager ? escape_query(manager) : NULL;
    _cleanup_free_ char *path =
        xasprintf("/packages?name=%s%s%s%s%s%s", qn, qs ? "&version=" : "", qs ? qs : "",
                  qm ? "&manager=" : "", qm ? qm : "", current ? "&current=1" : "");
    if (client_call(c, "GET", path, NULL, 60000, &a, &err) < 0)
        return cli_fail(&err);
    json_auto_t *doc = answer_json(&a, "cannot query the packages");
    if (!doc)
        return 1;
    json_t *matches = json_object_get(doc, "matches");
    if (json_array_size(matches) == 0) {
        fprintf(stderr, "envhub: no environment version carries %s%s%s\n", name, spec ? " " : "",
                spec ? spec : "");
        return 0;
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
    return 0;
}

static int cmd_env(const struct client *c, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "usage: envhub env create|list|show|logs|rebuild|rm|diff|check|"
                        "deprecate|retire|reinstate ...\n");
        return 2;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "list") == 0)
        return env_list(c);
    if (strcmp(sub, "check") == 0)
        return env_check(c, argc - 1, argv + 1);
    if (argc < 2) {
        if (strcmp(sub, "create") == 0 || strcmp(sub, "rebuild") == 0)
            env_create_usage(stderr, strcmp(sub, "create") == 0);
        else
            fprintf(stderr, "usage: envhub env %s NAME ...\n", sub);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(sub, "create") == 0 || strcmp(sub, "rebuild") == 0)
        return env_create_or_rebuild(c, strcmp(sub, "create") == 0, name, argc - 2, argv + 2);
    if (strcmp(sub, "show") == 0)
        return env_simple(c, "GET", name, "", "cannot show the environment");
    if (strcmp(sub, "logs") == 0) {
        if (argc > 2 && (strcmp(argv[2], "-f") == 0 || strcmp(argv[2], "--follow") == 0))
            return env_wait_and_report(c, name);
        return env_simple(c, "GET", name, "/logs", "cannot read the log");
    }
    if (strcmp(sub, "rm") == 0)
        return env_simple(c, "DELETE", name, "", "cannot delete the environment");
    if (strcmp(sub, "diff") == 0)
        return env_diff(c, name, argc - 2, argv + 2);
    if (strcmp(sub, "deprecate") == 0 || strcmp(sub, "retire") == 0 ||
        strcmp(sub, "reinstate") == 0)
        return env_lifecycle(c, sub, name, argc - 2, argv + 2);
    fprintf(stderr, "envhub env: unknown subcommand '%s'\n", sub);
    return 2;
}

static int cmd_run(const struct client *c, const struct config *cfg, int argc, char **argv)
{
    struct err err = ERR_INIT;
    _cleanup_(answer_release) struct answer a = {0};
    const char *env = NULL, *code_path = NULL, *out_dir = NULL;
    json_auto_t *files = json_object();
    int rc = 1;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--env") == 0 && i + 1 < argc)
            env = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_dir = argv[++i];
        else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
            const char *path = argv[++i];
            struct buf data = BUF_INIT(CLI_MAX_FILE);
            if (read_file(path, &data, &err) < 0) {
                buf_release(&data);
                fprintf(stderr, "envhub: %s\n", err.msg);
                return 1;
            }
            const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
            size_t n;
            char *b64 = base64_encode(data.data ? data.data : "", data.len, &n);
            json_object_set_new(files, base, json_stringn(b64, n));
            free(b64);
            buf_release(&data);
        } else if (!code_path && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
            code_path = argv[i];
        else {
            fprintf(stderr, "envhub run: unexpected '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!code_path) {
        fprintf(stderr, "usage: envhub run [--env NAME] [--file PATH]... [--out DIR] "
                        "[--timeout SECONDS] CODE_FILE|-\n");
        return 2;
    }
    struct buf code = BUF_INIT(CLI_MAX_FILE);
    if (read_file(code_path, &code, &err) < 0) {
        buf_release(&code);
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 1;
    }
    json_auto_t *body = json_pack("{s:s%, s:I, s:O}", "code", code.data ? code.data : "", code.len,
                                  "timeout", (json_int_t)cfg->default_timeout, "files", files);
    buf_release(&code);
    if (!body) {
        fprintf(stderr, "envhub: '%s' is not valid UTF-8\n", code_path);
        return 1;
    }
    if (env)
        json_object_set_new(body, "environment", json_string(env));
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    if (client_call(c, "POST", "/execute", text, (int)(cfg->default_timeout + 120) * 1000, &a,
                    &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 1;
    }
    json_auto_t *doc = answer_json(&a, "cannot run the code");
    if (!doc)
        return 1;
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
    if (out_dir) {
        const char *path;
        json_t *v;
        json_object_foreach(json_object_get(doc, "files"), path, v)
        {
            const char *why = NULL;
            struct buf data = BUF_INIT(BUF_UNLIMITED);
            if (!path_is_safe_relative(path, strlen(path), &why) ||
                base64_decode(json_string_value(v), json_string_length(v), &data, NULL) < 0) {
                fprintf(stderr, "envhub: skipping output file '%s'\n", path);
                buf_release(&data);
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
            buf_release(&data);
        }
    }
    if (error)
        fprintf(stderr, "envhub: %s (%s)\n", error, status ? status : "?");
    json_int_t code_rc = json_integer_value(json_object_get(doc, "exit_code"));
    if (status && strcmp(status, "timeout") == 0)
        rc = 124;
    else if (code_rc >= 0 && code_rc < 256)
        rc = (int)code_rc;
    else
        rc = 1;
    return rc;
}

int web_cli_main(const struct config *cfg, int argc, char **argv)
{
    struct client c;
    struct err err = ERR_INIT;

    if (client_init(&c, cfg, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 2;
    }
    mg_init_library(0);
    int rc;
    if (strcmp(argv[0], "env") == 0)
        rc = cmd_env(&c, argc - 1, argv + 1);
    else if (strcmp(argv[0], "run") == 0)
        rc = cmd_run(&c, cfg, argc - 1, argv + 1);
    else if (strcmp(argv[0], "packages") == 0)
        rc = cmd_packages(&c, argc - 1, argv + 1);
    else {
        fprintf(stderr, "envhub: unknown client command '%s'\n", argv[0]);
        rc = 2;
    }
    mg_exit_library();
    return rc;
}

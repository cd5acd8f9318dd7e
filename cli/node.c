/* cli/node.c - `envhub node` (a node of a cluster: beside one engine, it
 * runs the jobs the server leases to it) and `envhub cluster
 * status|drain|resume|token` (the admins' view, through the server).
 *
 * A node talks to its own engine (DOCKER_HOST) and to the server
 * (ENVHUB_URL) only. Three kinds of threads: the heartbeat (every second:
 * what it runs, what it keeps warm; the answer names jobs to kill and
 * whether it is drained), the lease loop (asks for a job while a slot is
 * free) and one thread per job (runs it through the executor's node mode,
 * sends the result back, a few times if the server does not answer).
 * SIGINT or SIGTERM: no new leases, running jobs are killed and reported
 * interrupted, then it stops. */
#include <civetweb.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "cli/client.h"
#include "cluster/cluster.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "engine/engine.h"
#include "executor/executor.h"

#include "core/banned.h"

#define NODE_HEARTBEAT_MS 1000
#define NODE_LEASE_WAIT_MS 4000
#define NODE_RESULT_TRIES 5
#define NODE_STOP_WAIT_MS 30000 /* for the last results at a stop */

struct node {
    const struct config *cfg;
    struct client client;
    char name[CLUSTER_NAME_MAX + 1];
    char boot[33];
    char token[CLUSTER_TOKEN_LEN + 1];
    char *headers;
    char *engine_desc;
    struct executor *x;
    int64_t slots;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a job ended, or stop */
    int64_t in_flight;      /* leased and not yet reported */
    struct engine *engine;
    bool engine_down;  /* it does not answer: no leases; when it answers again, a new start */
    atomic_bool again; /* start again once stopped (the engine came back, its containers gone) */
    char **ids;        /* their ids, for the heartbeat */
    bool drained;
};

static void node_sleep(struct node *n, int64_t ms)
{
    struct timespec until = time_deadline_in(ms);
    pthread_mutex_lock(&n->lock);
    if (!atomic_load(&n->stop))
        pthread_cond_timedwait(&n->changed, &n->lock, &until);
    pthread_mutex_unlock(&n->lock);
}

/* POST @path with @body; the answer in @ret. */
static int node_call(struct node *n, const char *path, const char *body, int timeout_ms,
                     struct answer *ret, struct err *err)
{
    return client_call(&n->client, "POST", path, body, timeout_ms, ret, err);
}

static json_t *strv_json(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* ---- heartbeat ---- */

/* Its engine: down, no leases (the heartbeat says why, the server ends what
 * this node ran); back, the node starts again, fresh (its executor's warm
 * containers and running jobs went with the engine). */
static void engine_watch(struct node *n, struct err *ping)
{
    bool ok = engine_ping(n->engine, ping) == 0;
    pthread_mutex_lock(&n->lock);
    bool was_down = n->engine_down;
    n->engine_down = !ok;
    pthread_cond_broadcast(&n->changed);
    pthread_mutex_unlock(&n->lock);
    if (!ok && !was_down)
        log_warn("node: the engine does not answer (%s): no new jobs until it does", ping->msg);
    if (ok && was_down) {
        log_warn("node: the engine answers again; starting again (its containers are gone)");
        atomic_store(&n->again, true);
        kill(getpid(), SIGTERM);
    }
}

static void heartbeat_once(struct node *n, const char *path, bool *was_up)
{
    struct err err = ERR_INIT, ping = ERR_INIT;
    struct answer a = {0};
    engine_watch(n, &ping);
    pthread_mutex_lock(&n->lock);
    _cleanup_(strv_freep) char **running = NULL;
    for (size_t i = 0; n->ids && n->ids[i]; i++)
        strv_push(&running, xstrdup(n->ids[i]));
    pthread_mutex_unlock(&n->lock);
    _cleanup_(strv_freep) char **warm = executor_node_warm(n->x);
    _cleanup_(strv_freep) char **pulling = executor_node_pulls(n->x);
    _cleanup_(strv_freep) char **pools = executor_node_pool_lines(n->x);
    _cleanup_(strv_freep) char **images = executor_node_images(n->x);
    json_t *doc = json_pack("{s:I,s:s,s:o,s:o,s:o}", "slots", (json_int_t)n->slots, "engine",
                            n->engine_desc, "running", strv_json(running), "warm", strv_json(warm),
                            "pulling", strv_json(pulling));
    json_object_set_new(doc, "pools", strv_json(pools));
    json_object_set_new(doc, "images", strv_json(images));
    if (ping.code != ERR_OK)
        json_object_set_new(doc, "engine_error", json_string(ping.msg));
    _cleanup_free_ char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (node_call(n, path, body, 5000, &a, &err) < 0 || a.status != 200) {
        if (*was_up)
            log_warn("node: heartbeat to the server failed: %s",
                     err.msg[0] ? err.msg : buf_str(&a.body));
        *was_up = false;
        answer_release(&a);
        return;
    }
    if (!*was_up)
        log_info("node: '%s' reports to the server (boot %s, %lld slots)", n->name, n->boot,
                 (long long)n->slots);
    *was_up = true;
    json_t *reply = json_loadb(buf_str(&a.body), a.body.len, 0, NULL);
    answer_release(&a);
    if (!reply)
        return;
    bool drained = json_is_true(json_object_get(reply, "drained"));
    pthread_mutex_lock(&n->lock);
    if (n->drained != drained)
        log_info("node: %s", drained ? "drained: no new jobs" : "resumed: taking jobs");
    n->drained = drained;
    pthread_cond_broadcast(&n->changed);
    pthread_mutex_unlock(&n->lock);
    json_t *in_service = json_object_get(reply, "images");
    if (json_is_array(in_service)) {
        _cleanup_(strv_freep) char **keep = NULL;
        size_t k;
        json_t *im;
        json_array_foreach(in_service, k, im) if (json_is_string(im))
            strv_push(&keep, xstrdup(json_string_value(im)));
        executor_node_prune(n->x, keep);
    }
    json_t *wanted = json_object_get(reply, "pools");
    if (json_is_array(wanted)) {
        _cleanup_free_ char *text = json_dumps(wanted, JSON_COMPACT);
        if (text)
            executor_node_set_pools(n->x, text);
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(reply, "cancel"), i, v)
    {
        const char *id = json_string_value(v);
        struct err cerr = ERR_INIT;
        if (id && executor_cancel(n->x, id, "the server", &cerr) == 0)
            log_info("node: killed '%s' at the server's word", id);
    }
    json_decref(reply);
}

static void *heartbeat_main(void *arg)
{
    struct node *n = arg;
    _cleanup_free_ char *path = xasprintf("/cluster/nodes/%s/heartbeat", n->name);
    bool up = true; /* the first failure is said */
    while (!atomic_load(&n->stop)) {
        heartbeat_once(n, path, &up);
        node_sleep(n, NODE_HEARTBEAT_MS);
    }
    return NULL;
}

/* ---- jobs ---- */

struct node_job {
    struct node *n;
    char *id;
    char *spec;
    size_t len;
};

static void job_done(struct node *n, const char *id)
{
    pthread_mutex_lock(&n->lock);
    n->in_flight--;
    size_t k = 0;
    bool removed = false;
    for (size_t i = 0; n->ids && n->ids[i]; i++) {
        if (!removed && strcmp(n->ids[i], id) == 0) {
            free(n->ids[i]);
            removed = true;
            continue;
        }
        n->ids[k++] = n->ids[i];
    }
    if (n->ids)
        n->ids[k] = NULL;
    pthread_cond_broadcast(&n->changed);
    pthread_mutex_unlock(&n->lock);
}

/* A followed job's output on its way to the server: gathered, and sent when
 * RELAY_MS passed since the last send, past RELAY_MAX bytes, on a change of
 * stream, and at the end. A send that fails is dropped (the result carries
 * the whole output anyway). */
#define RELAY_MS 250
#define RELAY_MAX (256 * 1024)
struct relay {
    struct node *n;
    const char *id;
    struct buf pending;
    enum engine_stream stream;
    int64_t last_ms;
};

static void relay_flush(struct relay *r)
{
    if (!r->pending.len)
        return;
    size_t b64_len = 0;
    _cleanup_free_ char *b64 = base64_encode(r->pending.data, r->pending.len, &b64_len);
    json_t *doc = json_pack("{s:s,s:s%}", "stream",
                            r->stream == ENGINE_STDERR ? "stderr" : "stdout", "data", b64, b64_len);
    _cleanup_free_ char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    _cleanup_free_ char *path = xasprintf("/cluster/nodes/%s/output/%s", r->n->name, r->id);
    struct answer a = {0};
    struct err err = ERR_INIT;
    if (body)
        (void)node_call(r->n, path, body, 10000, &a, &err);
    answer_release(&a);
    buf_reset(&r->pending);
    r->last_ms = time_mono_ms();
}

static int relay_output(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct relay *r = ctx;
    if (r->pending.len && stream != r->stream)
        relay_flush(r);
    r->stream = stream;
    buf_put(&r->pending, data, len);
    if (r->pending.len >= RELAY_MAX || time_mono_ms() - r->last_ms >= RELAY_MS)
        relay_flush(r);
    return 0;
}

static void *job_main(void *arg)
{
    struct node_job *j = arg;
    struct node *n = j->n;
    struct err err = ERR_INIT;
    _cleanup_free_ char *result = NULL;
    size_t len = 0;
    struct relay relay = {.n = n, .id = j->id, .pending = BUF_INIT(BUF_UNLIMITED)};

    bool unrun = false;
    int rc =
        executor_node_run(n->x, j->spec, j->len, relay_output, &relay, &result, &len, &unrun, &err);
    relay_flush(&relay); /* the rest, before the result ends the job */
    buf_release(&relay.pending);
    if (rc < 0) {
        log_warn("node: job '%s' did not run: %s", j->id, err.msg); /* cannot happen */
    } else if (unrun) {
        _cleanup_free_ char *path = xasprintf("/cluster/nodes/%s/giveback/%s", n->name, j->id);
        struct answer a = {0};
        log_warn("node: '%s' gets no container here (the engine does not answer): giving it "
                 "back",
                 j->id);
        if (node_call(n, path, "{}", 10000, &a, &err) < 0 || a.status != 200)
            log_warn("node: the server did not take '%s' back: %s", j->id,
                     err.msg[0] ? err.msg : buf_str(&a.body));
        answer_release(&a);
    } else {
        _cleanup_free_ char *path = xasprintf("/cluster/nodes/%s/results/%s", n->name, j->id);
        for (int t = 0; t < NODE_RESULT_TRIES; t++) {
            struct answer a = {0};
            err_clear(&err);
            int sent = node_call(n, path, result, 60000, &a, &err);
            int status = a.status;
            if (sent == 0 && status != 200)
                log_warn("node: the server refused the result of '%s': %.300s (HTTP %d)", j->id,
                         buf_str(&a.body), status);
            answer_release(&a);
            if (sent == 0)
                break; /* answered: recorded, or refused for good (409) */
            log_warn("node: cannot send the result of '%s' (try %d of %d): %s", j->id, t + 1,
                     NODE_RESULT_TRIES, err.msg);
            sleep(1);
        }
    }
    job_done(n, j->id);
    free(j->id);
    free(j->spec);
    free(j);
    return NULL;
}

/* Job @id (from the lease's answer) starts: it counts against the slots
 * and the heartbeat lists it until its result is sent. */
static void start_job(struct node *n, char *spec, size_t len)
{
    json_t *doc = json_loadb(spec, len, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "id"));
    struct node_job *j = xcalloc(1, sizeof(*j));
    j->n = n;
    j->id = xstrdup(id && cluster_node_name_ok(id) ? id : "unreadable");
    pthread_mutex_lock(&n->lock);
    n->in_flight++;
    strv_push(&n->ids, xstrdup(j->id));
    pthread_mutex_unlock(&n->lock);
    j->spec = spec;
    j->len = len;
    json_decref(doc);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, job_main, j) != 0) {
        log_warn("node: cannot start a thread for '%s'; it runs here", j->id);
        job_main(j);
    }
    pthread_attr_destroy(&attr);
}

static void *lease_main(void *arg)
{
    struct node *n = arg;
    _cleanup_free_ char *path = xasprintf("/cluster/nodes/%s/lease", n->name);
    _cleanup_free_ char *body = xasprintf("{\"wait_ms\":%d}", NODE_LEASE_WAIT_MS);

    while (!atomic_load(&n->stop)) {
        pthread_mutex_lock(&n->lock);
        while (!atomic_load(&n->stop) &&
               (n->in_flight >= n->slots || n->drained || n->engine_down)) {
            struct timespec until = time_deadline_in(NODE_HEARTBEAT_MS);
            pthread_cond_timedwait(&n->changed, &n->lock, &until);
        }
        pthread_mutex_unlock(&n->lock);
        if (atomic_load(&n->stop))
            break;
        struct answer a = {0};
        struct err err = ERR_INIT;
        if (node_call(n, path, body, NODE_LEASE_WAIT_MS + 10000, &a, &err) < 0 ||
            (a.status != 200 && a.status != 204)) {
            /* not registered yet (409 until the first heartbeat), or no server */
            answer_release(&a);
            node_sleep(n, 500);
            continue;
        }
        if (a.status == 200) {
            size_t len = 0;
            char *spec = buf_detach(&a.body, &len);
            start_job(n, spec, len);
        }
        answer_release(&a);
    }
    return NULL;
}

/* ---- the command ---- */

/* The same command line again, in this process: a fresh node (new boot id,
 * executor, pools), as a supervisor would restart it. Returns only when
 * that fails. */
static void start_again(void)
{
    char buf[65536];
    char *argv[256];
    size_t argc = 0;
    FILE *f = fopen("/proc/self/cmdline", "re");
    size_t len = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = '\0';
    for (size_t i = 0; i < len && argc < ARRAY_SIZE(argv) - 1; i += strlen(buf + i) + 1)
        argv[argc++] = buf + i;
    argv[argc] = NULL;
    if (argc == 0)
        return;
    log_info("node: starting again");
    execv("/proc/self/exe", argv);
    log_error("node: cannot start again: %s", strerror(errno));
}

static int node_token(const struct cli_ctx *ctx, const char *name, char out[CLUSTER_TOKEN_LEN + 1])
{
    struct err err = ERR_INIT;
    const char *file = cli_value(ctx->p, "token-file");
    if (file) {
        _cleanup_(buf_release) struct buf b = BUF_INIT(4096);
        if (cli_read_file(file, &b, &err) < 0)
            return cli_fail(&err);
        size_t len = b.len;
        while (len &&
               (b.data[len - 1] == '\n' || b.data[len - 1] == '\r' || b.data[len - 1] == ' '))
            len--;
        if (len != CLUSTER_TOKEN_LEN) {
            fprintf(stderr,
                    "envhub: --token-file '%s' must hold a node token (%d hex digits: "
                    "envhub cluster token NAME)\n",
                    file, CLUSTER_TOKEN_LEN);
            return CLI_EXIT_USAGE;
        }
        memcpy(out, b.data, CLUSTER_TOKEN_LEN);
        out[CLUSTER_TOKEN_LEN] = '\0';
        return 0;
    }
    if (!ctx->cfg->node_key_file[0]) {
        fprintf(stderr, "envhub: a node needs its token: --token-file FILE (envhub cluster token "
                        "NAME), or ENVHUB_NODE_KEY_FILE (the cluster's key)\n");
        return CLI_EXIT_USAGE;
    }
    _cleanup_free_ char *key = NULL;
    size_t key_len = 0;
    if (cluster_key_read(ctx->cfg->node_key_file, &key, &key_len, &err) < 0)
        return cli_fail(&err);
    cluster_node_token(key, key_len, name, out);
    return 0;
}

static int cmd_node(const struct cli_ctx *ctx)
{
    const struct config *cfg = ctx->cfg;
    struct err err = ERR_INIT;
    struct engine *e = NULL;
    struct node n = {.cfg = cfg,
                     .slots = cfg->concurrent_limit < CLUSTER_REPORT_MAX ? cfg->concurrent_limit
                                                                         : CLUSTER_REPORT_MAX};
    pthread_t hb, lease;
    bool hb_started = false, lease_started = false;
    sigset_t stop_signals;
    int sig = 0, rc = CLI_EXIT_FAILED;

    const char *name = cli_value(ctx->p, "name");
    char host[CLUSTER_NAME_MAX + 1] = "";
    if (!name || !*name) {
        name = getenv("ENVHUB_NODE_NAME");
        if (!name || !*name) {
            gethostname(host, sizeof(host) - 1);
            name = host;
        }
    }
    if (!cluster_node_name_ok(name))
        return cli_usage_error(ctx->path,
                               "node name '%.80s' must be 1 to %d letters, digits, '.', '_' or '-' "
                               "(starting with a letter or digit)",
                               name, CLUSTER_NAME_MAX);
    snprintf(n.name, sizeof(n.name), "%s", name);
    if ((rc = node_token(ctx, n.name, n.token)) != 0)
        return rc;
    rc = CLI_EXIT_FAILED;
    id_random_hex(n.boot, 16);

    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&n.lock, NULL);
    pthread_cond_init(&n.changed, NULL);
    atomic_init(&n.stop, false);

    if (cli_client(ctx, &n.client) < 0) {
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    n.client.key = n.token;
    n.headers = xasprintf("X-Envhub-Boot: %s\r\n", n.boot);
    n.client.headers = n.headers;
    if (engine_open(cfg->docker_host, &e, &err) < 0) {
        fprintf(stderr, "envhub: %s\nenvhub: is dockerd running beside this node?\n", err.msg);
        goto out;
    }
    n.engine = e;
    n.engine_desc = xasprintf("%s (API %s)", cfg->docker_host, engine_api_version(e));
    if (executor_open_node(cfg, e, n.name, &n.x, &err) < 0) {
        cli_fail(&err);
        goto out;
    }
    if (pthread_create(&hb, NULL, heartbeat_main, &n) != 0 || !(hb_started = true) ||
        pthread_create(&lease, NULL, lease_main, &n) != 0) {
        fprintf(stderr, "envhub: cannot start the node's threads\n");
        goto out;
    }
    lease_started = true;
    log_info("node: '%s' (boot %s) on %s, %lld slots, reporting to http://%s", n.name, n.boot,
             n.engine_desc, (long long)n.slots, n.client.authority);
    sigwait(&stop_signals, &sig);
    log_info("node: %s received, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = CLI_EXIT_OK;
out:
    atomic_store(&n.stop, true);
    pthread_mutex_lock(&n.lock);
    pthread_cond_broadcast(&n.changed);
    pthread_mutex_unlock(&n.lock);
    if (n.x)
        executor_shutdown(n.x); /* running jobs end interrupted; their results go out */
    if (lease_started)
        pthread_join(lease, NULL);
    /* the job threads report and end (bounded by their tries) */
    int64_t give_up = time_mono_ms() + NODE_STOP_WAIT_MS;
    pthread_mutex_lock(&n.lock);
    while (n.in_flight > 0 && time_mono_ms() < give_up) {
        struct timespec until = time_deadline_in(1000);
        pthread_cond_timedwait(&n.changed, &n.lock, &until);
    }
    int64_t left = n.in_flight;
    pthread_mutex_unlock(&n.lock);
    if (left > 0) {
        /* their threads still use the executor: leave it to the exit */
        log_warn("node: %lld results not sent within %d s; stopping without them (the server "
                 "ends those jobs when it gives this node up)",
                 (long long)left, NODE_STOP_WAIT_MS / 1000);
        return rc;
    }
    if (hb_started)
        pthread_join(hb, NULL);
    executor_close(n.x);
    engine_close(e);
    client_release(&n.client);
    free(n.headers);
    free(n.engine_desc);
    strv_free(n.ids);
    pthread_cond_destroy(&n.changed);
    pthread_mutex_destroy(&n.lock);
    if (atomic_load(&n.again))
        start_again();
    return rc;
}

static const struct cli_option node_options[] = {
    {"name", 0, "NAME", "the node's name (default: ENVHUB_NODE_NAME, else the host name)", false},
    {"token-file", 0, "FILE",
     "file with this node's token (envhub cluster token NAME); default: made from "
     "ENVHUB_NODE_KEY_FILE",
     false},
    {NULL, 0, NULL, NULL, false},
};

const struct cli_command cli_cmd_node = {
    .name = "node",
    .summary = "run the jobs a cluster's server (ENVHUB_URL) leases to this node, on DOCKER_HOST's "
               "engine, until SIGINT or SIGTERM",
    .options = node_options,
    .reads = "docker-host concurrent-limit pool-size node-key-file listen",
    .notes = "CONCURRENT_LIMIT is the node's slots; ENVHUB_POOL_SIZE its warm containers of the "
             "default image. The server must run with ENVHUB_CLUSTER=swarm and the same node key.",
    .run = cmd_node,
};

/* ---- envhub cluster ---- */

static int cluster_status(const struct cli_ctx *ctx)
{
    struct client c;
    struct err err = ERR_INIT;
    struct answer a = {0};
    if (cli_client(ctx, &c) < 0) {
        client_release(&c);
        return CLI_EXIT_USAGE;
    }
    int rc = client_call(&c, "GET", "/cluster/nodes", NULL, 10000, &a, &err);
    client_release(&c);
    if (rc < 0) {
        answer_release(&a);
        return cli_fail(&err);
    }
    json_t *doc = answer_json(&a, "cluster status");
    answer_release(&a);
    if (!doc)
        return CLI_EXIT_FAILED;
    if (cli_given(ctx->p, "json")) {
        char *s = json_dumps(doc, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(doc);
        return CLI_EXIT_OK;
    }
    if (strcmp(json_string_value(json_object_get(doc, "mode")), "swarm") != 0) {
        printf("cluster mode is off: jobs run on the server's own engine (ENVHUB_CLUSTER is "
               "empty)\n");
        json_decref(doc);
        return CLI_EXIT_OK;
    }
    printf("%-20s %-8s %5s %7s %6s %8s %5s  %s\n", "NODE", "STATE", "SLOTS", "RUNNING", "LEASED",
           "DONE", "LOST", "WARM IMAGES");
    size_t i;
    json_t *nd;
    json_array_foreach(json_object_get(doc, "nodes"), i, nd)
    {
        printf("%-20s %-8s %5lld %7lld %6lld %8lld %5lld  ",
               json_string_value(json_object_get(nd, "name")),
               json_string_value(json_object_get(nd, "state")),
               (long long)json_integer_value(json_object_get(nd, "slots")),
               (long long)json_integer_value(json_object_get(nd, "running")),
               (long long)json_integer_value(json_object_get(nd, "leased")),
               (long long)json_integer_value(json_object_get(nd, "jobs_done")),
               (long long)json_integer_value(json_object_get(nd, "jobs_lost")));
        size_t k;
        json_t *w;
        json_array_foreach(json_object_get(nd, "warm"), k, w)
            printf("%s%s", k ? ", " : "", json_string_value(w));
        printf("\n");
        json_array_foreach(json_object_get(nd, "pools"), k, w)
            printf("%-20s   pool %s\n", "", json_string_value(w));
        json_array_foreach(json_object_get(nd, "images"), k, w)
            printf("%-20s   version %s\n", "", json_string_value(w));
        const char *why = json_string_value(json_object_get(nd, "engine_error"));
        if (why)
            printf("%-20s   engine: %s\n", "", why);
    }
    printf("queued %lld, leased %lld, placed %lld, requeued %lld, interrupted %lld\n",
           (long long)json_integer_value(json_object_get(doc, "queued")),
           (long long)json_integer_value(json_object_get(doc, "leased")),
           (long long)json_integer_value(json_object_get(doc, "placed")),
           (long long)json_integer_value(json_object_get(doc, "requeued")),
           (long long)json_integer_value(json_object_get(doc, "interrupted")));
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int cluster_drain_call(const struct cli_ctx *ctx, const char *what)
{
    struct client c;
    struct err err = ERR_INIT;
    struct answer a = {0};
    const char *name = ctx->p->args[0];
    if (!cluster_node_name_ok(name))
        return cli_usage_error(ctx->path, "'%.80s' is not a node name", name);
    if (cli_client(ctx, &c) < 0) {
        client_release(&c);
        return CLI_EXIT_USAGE;
    }
    _cleanup_free_ char *path = xasprintf("/cluster/nodes/%s/%s", name, what);
    int rc = client_call(&c, "POST", path, "{}", 10000, &a, &err);
    client_release(&c);
    if (rc < 0) {
        answer_release(&a);
        return cli_fail(&err);
    }
    json_t *doc = answer_json(&a, what);
    answer_release(&a);
    if (!doc)
        return CLI_EXIT_FAILED;
    json_decref(doc);
    printf("node %s %s\n", name,
           strcmp(what, "drain") == 0 ? "drained: it finishes its jobs and takes no new ones"
                                      : "resumed: it takes new jobs");
    return CLI_EXIT_OK;
}

static int cluster_drain_cmd(const struct cli_ctx *ctx)
{
    return cluster_drain_call(ctx, "drain");
}

static int cluster_resume_cmd(const struct cli_ctx *ctx)
{
    return cluster_drain_call(ctx, "resume");
}

static int cluster_token_cmd(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    const char *name = ctx->p->args[0];
    char token[CLUSTER_TOKEN_LEN + 1];
    _cleanup_free_ char *key = NULL;
    size_t key_len = 0;

    if (!cluster_node_name_ok(name))
        return cli_usage_error(ctx->path, "'%.80s' is not a node name", name);
    if (!ctx->cfg->node_key_file[0])
        return cli_usage_error(ctx->path, "ENVHUB_NODE_KEY_FILE (--node-key-file) is needed");
    if (cluster_key_read(ctx->cfg->node_key_file, &key, &key_len, &err) < 0)
        return cli_fail(&err);
    cluster_node_token(key, key_len, name, token);
    printf("%s\n", token);
    return CLI_EXIT_OK;
}

static const struct cli_option status_options[] = {
    {"json", 0, NULL, "the server's answer as JSON", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_command cluster_status_cmd = {
    .name = "status",
    .summary = "the nodes: state, slots, running and leased jobs, warm images",
    .options = status_options,
    .reads = "listen",
    .run = cluster_status,
};
static const struct cli_command cluster_drain_sub = {
    .name = "drain",
    .args = "NODE",
    .summary = "the node finishes its jobs and takes no new ones",
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .run = cluster_drain_cmd,
};
static const struct cli_command cluster_resume_sub = {
    .name = "resume",
    .args = "NODE",
    .summary = "the node takes new jobs again",
    .min_args = 1,
    .max_args = 1,
    .reads = "listen",
    .run = cluster_resume_cmd,
};
static const struct cli_command cluster_token_sub = {
    .name = "token",
    .args = "NODE",
    .summary = "print node NODE's token, made from ENVHUB_NODE_KEY_FILE (no server needed)",
    .min_args = 1,
    .max_args = 1,
    .reads = "node-key-file",
    .run = cluster_token_cmd,
};
static const struct cli_command *const cluster_subs[] = {
    &cluster_status_cmd, &cluster_drain_sub, &cluster_resume_sub, &cluster_token_sub, NULL};

const struct cli_command cli_cmd_cluster = {
    .name = "cluster",
    .summary = "the cluster's nodes, through the server (admin key)",
    .reads = "listen",
    .subs = cluster_subs,
};

/* web/api_cluster.c - cluster mode over HTTP: the nodes' own calls (a
 * heartbeat, a lease poll, a job's result; each with the node's token, see
 * web_authorize) and the admins' view of the nodes (status, drain,
 * resume, /metrics). Every field a node sends is bounded here before the
 * cluster sees it; a job's result is read within its own limit and checked
 * by the executor (executor/remote.c). */
#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define NODE_BOOT_MAX 64
#define NODE_TEXT_MAX 1024 /* bytes of an image name, a pull's line, the engine's name */
#define NODE_SLOTS_MAX CLUSTER_REPORT_MAX /* it lists what it runs */
#define NODE_WAIT_MAX_MS 60000

/* The boot id a node's call carries (X-Envhub-Boot): hex or letters, bounded. */
static const char *boot_of(struct web_request *rq)
{
    const char *b = mg_get_header(rq->conn, "X-Envhub-Boot");
    size_t n = b ? strlen(b) : 0;
    if (n == 0 || n > NODE_BOOT_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= '0' && b[i] <= '9') || (b[i] >= 'a' && b[i] <= 'z') ||
              (b[i] >= 'A' && b[i] <= 'Z') || b[i] == '-'))
            return NULL;
    return b;
}

static bool need_boot(struct web_request *rq, const char **ret)
{
    *ret = boot_of(rq);
    if (!*ret)
        web_reply_detail(rq, 400,
                         "X-Envhub-Boot: a node's calls carry its boot id (1 to %d letters, "
                         "digits or '-')",
                         NODE_BOOT_MAX);
    return *ret != NULL;
}

/* A list of strings of a heartbeat: at most CLUSTER_REPORT_MAX of at most
 * NODE_TEXT_MAX bytes. */
static int report_list(const json_t *doc, const char *key, char ***ret, struct err *err)
{
    const json_t *a = json_object_get(doc, key);
    *ret = NULL;
    if (!a)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > CLUSTER_REPORT_MAX)
        return err_set(err, ERR_UNPROCESSABLE, "%s: must be an array of at most %d strings", key,
                       CLUSTER_REPORT_MAX);
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > NODE_TEXT_MAX ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            strv_free(steal_ptr(*ret));
            return err_set(err, ERR_UNPROCESSABLE, "%s[%zu]: must be a string of 1 to %d bytes",
                           key, i, NODE_TEXT_MAX);
        }
        strv_push(ret, xstrdup(json_string_value(v)));
    }
    return 0;
}

/* The warm pools this node keeps: its share of each environment's
 * pool_size, by its place among the nodes that take jobs (sorted by name);
 * none while it is drained. */
static json_t *node_pools(struct web_request *rq)
{
    struct cluster_node_info *nodes = NULL;
    size_t n = 0, count = 0, index = 0;
    bool found = false;

    cluster_nodes(rq->deps->cluster, &nodes, &n, NULL);
    for (size_t i = 0; i < n; i++) {
        if (!nodes[i].up || nodes[i].drained)
            continue;
        if (strcmp(nodes[i].name, rq->params[0]) == 0) {
            index = count;
            found = true;
        }
        count++;
    }
    cluster_node_infos_free(nodes, n);
    if (!found)
        return json_array();
    _cleanup_free_ char *text = executor_cluster_pools(rq->deps->executor, index, count);
    json_t *pools = json_loads(text, 0, NULL);
    return pools ? pools : json_array();
}

void api_node_heartbeat(struct web_request *rq)
{
    struct err err = ERR_INIT;
    const char *boot;
    _cleanup_(strv_freep) char **running = NULL;
    _cleanup_(strv_freep) char **warm = NULL;
    _cleanup_(strv_freep) char **pulling = NULL;
    _cleanup_(strv_freep) char **pools = NULL;
    _cleanup_(strv_freep) char **images = NULL;
    struct cluster_reply reply = {0};

    if (!need_boot(rq, &boot))
        return;
    _cleanup_(json_decrefp) json_t *doc = web_read_object(
        rq, 0, "{slots, engine, engine_error, running, warm, pulling, pools, images}", &err);
    if (!doc) {
        web_reply_err(rq, &err);
        return;
    }
    const json_t *slots = json_object_get(doc, "slots");
    const json_t *engine = json_object_get(doc, "engine");
    const json_t *engine_error = json_object_get(doc, "engine_error");
    if (!json_is_integer(slots) || json_integer_value(slots) < 0 ||
        json_integer_value(slots) > NODE_SLOTS_MAX) {
        web_reply_detail(rq, 422, "slots: must be an integer from 0 to %d", NODE_SLOTS_MAX);
        return;
    }
    if (engine && (!json_is_string(engine) || json_string_length(engine) > NODE_TEXT_MAX)) {
        web_reply_detail(rq, 422, "engine: must be a string of at most %d bytes", NODE_TEXT_MAX);
        return;
    }
    if (engine_error &&
        (!json_is_string(engine_error) || json_string_length(engine_error) > NODE_TEXT_MAX)) {
        web_reply_detail(rq, 422, "engine_error: must be a string of at most %d bytes",
                         NODE_TEXT_MAX);
        return;
    }
    if (report_list(doc, "running", &running, &err) < 0 ||
        report_list(doc, "warm", &warm, &err) < 0 ||
        report_list(doc, "pulling", &pulling, &err) < 0 ||
        report_list(doc, "pools", &pools, &err) < 0 ||
        report_list(doc, "images", &images, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    struct cluster_report r = {
        .name = rq->params[0],
        .boot = boot,
        .slots = json_integer_value(slots),
        .running = running,
        .warm = warm,
        .pulling = pulling,
        .pools = pools,
        .images = images,
        .engine = json_string_value(engine),
        .engine_error = json_string_value(engine_error),
    };
    if (cluster_heartbeat(rq->deps->cluster, &r, &reply, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *cancel = json_array();
    for (size_t i = 0; reply.cancel && reply.cancel[i]; i++)
        json_array_append_new(cancel, json_string(reply.cancel[i]));
    bool drained = reply.drained;
    cluster_reply_release(&reply);
    json_t *answer = json_pack("{s:b,s:o,s:I}", "drained", drained, "cancel", cancel,
                               "node_timeout_ms", (json_int_t)rq->deps->cfg->node_timeout * 1000);
    json_object_set_new(answer, "pools", node_pools(rq));
    /* the versions in service: the node removes what else it pulled; nothing said when
     * the catalog cannot say, so that a failure removes nothing */
    char **keep = NULL;
    if (executor_cluster_images(rq->deps->executor, &keep) == 0) {
        json_t *in_service = json_array();
        for (size_t i = 0; keep && keep[i]; i++)
            json_array_append_new(in_service, json_string(keep[i]));
        json_object_set_new(answer, "images", in_service);
    }
    strv_free(keep);
    web_reply_json(rq, 200, answer);
}

void api_node_lease(struct web_request *rq)
{
    struct err err = ERR_INIT;
    const char *boot;
    _cleanup_free_ char *id = NULL;
    _cleanup_free_ char *spec = NULL;
    size_t len = 0;

    if (!need_boot(rq, &boot))
        return;
    _cleanup_(json_decrefp) json_t *doc = web_read_object(rq, 0, "{wait_ms}", &err);
    if (!doc) {
        web_reply_err(rq, &err);
        return;
    }
    const json_t *wait = json_object_get(doc, "wait_ms");
    if (wait && (!json_is_integer(wait) || json_integer_value(wait) < 0 ||
                 json_integer_value(wait) > NODE_WAIT_MAX_MS)) {
        web_reply_detail(rq, 422, "wait_ms: must be an integer from 0 to %d", NODE_WAIT_MAX_MS);
        return;
    }
    if (cluster_lease(rq->deps->cluster, rq->params[0], boot, wait ? json_integer_value(wait) : 0,
                      &id, &spec, &len, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    if (!id) {
        web_reply_head(rq, 204, "application/json", WEB_NO_BODY, NULL);
        return;
    }
    web_reply_head(rq, 200, "application/json", (int64_t)len, NULL);
    if (mg_write(rq->conn, spec, len) != (int)len) {
        /* the node did not get it: another node will */
        log_warn("cluster: node '%s' did not take the lease on '%s' (the answer failed); "
                 "back to the queue",
                 rq->params[0], id);
        cluster_unlease(rq->deps->cluster, rq->params[0], id);
    }
}

/* The largest result a node may send: stdout and stderr at the largest
 * output cap, every output file and picture, in base64, and room for the
 * rest. */
static int64_t result_max(const struct config *cfg)
{
    int64_t raw = 2 * cfg->max_output_limit + cfg->output_files_limit;
    return raw / 3 * 4 + 4 * 1024 * 1024;
}

void api_node_result(struct web_request *rq)
{
    struct err err = ERR_INIT;
    const char *boot;
    char *body = NULL;
    size_t len = 0;

    if (!need_boot(rq, &boot))
        return;
    if (web_read_body_upto(rq, result_max(rq->deps->cfg), "a result's limit", &body, &len, &err) <
        0) {
        web_reply_err(rq, &err);
        return;
    }
    if (cluster_complete(rq->deps->cluster, rq->params[0], boot, rq->params[1], body, len, &err) <
        0) {
        web_reply_err(rq, &err);
        return;
    }
    web_reply_json(rq, 200, json_pack("{s:b}", "recorded", 1));
}

#define NODE_OUTPUT_MAX (1024 * 1024) /* bytes of output one relay carries */

void api_node_output(struct web_request *rq)
{
    struct err err = ERR_INIT;
    const char *boot;

    if (!need_boot(rq, &boot))
        return;
    _cleanup_(json_decrefp) json_t *doc = web_read_object(rq, 0, "{stream, data}", &err);
    if (!doc) {
        web_reply_err(rq, &err);
        return;
    }
    const char *stream = json_string_value(json_object_get(doc, "stream"));
    const json_t *data = json_object_get(doc, "data");
    if (!stream || (strcmp(stream, "stdout") != 0 && strcmp(stream, "stderr") != 0)) {
        web_reply_detail(rq, 422, "stream: must be stdout or stderr");
        return;
    }
    _cleanup_(buf_release) struct buf bytes = BUF_INIT(NODE_OUTPUT_MAX);
    bool too_large = false;
    if (!json_is_string(data) ||
        base64_decode(json_string_value(data), json_string_length(data), &bytes, &too_large) < 0) {
        web_reply_detail(rq, too_large ? 413 : 422,
                         too_large ? "data: more than %d bytes of output at once"
                                   : "data: must be base64 (at most %d bytes)",
                         NODE_OUTPUT_MAX);
        return;
    }
    if (!cluster_holds(rq->deps->cluster, rq->params[0], boot, rq->params[1])) {
        web_reply_detail(rq, 409, "node '%s' holds no lease on execution '%s'", rq->params[0],
                         rq->params[1]);
        return;
    }
    if (executor_remote_output(rq->deps->executor, rq->params[1], strcmp(stream, "stderr") == 0,
                               bytes.data ? bytes.data : "", bytes.len, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    web_reply_head(rq, 204, "application/json", WEB_NO_BODY, NULL);
}

void api_node_giveback(struct web_request *rq)
{
    struct err err = ERR_INIT;
    const char *boot;

    if (!need_boot(rq, &boot))
        return;
    if (cluster_giveback(rq->deps->cluster, rq->params[0], boot, rq->params[1], &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    web_reply_json(rq, 200, json_pack("{s:b}", "requeued", 1));
}

/* ---- the admins' view ---- */

static json_t *strv_array(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, web_json_str(v[i]));
    return a;
}

void api_cluster_nodes(struct web_request *rq)
{
    struct cluster *c = rq->deps->cluster;
    struct cluster_node_info *nodes = NULL;
    size_t n = 0;
    struct cluster_stats st = {0};

    if (!c) {
        web_reply_json(rq, 200, json_pack("{s:s,s:[]}", "mode", "single", "nodes"));
        return;
    }
    cluster_nodes(c, &nodes, &n, &st);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct cluster_node_info *x = &nodes[i];
        json_array_append_new(
            list,
            json_pack("{s:s,s:s,s:o,s:b,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:o}", "name", x->name,
                      "state",
                      !x->up            ? "lost"
                      : x->engine_error ? "engine_down"
                      : x->drained      ? "drained"
                                        : "ready",
                      "engine", web_json_str(x->engine), "drained", x->drained, "slots",
                      (json_int_t)x->slots, "running", (json_int_t)x->running, "leased",
                      (json_int_t)x->leased, "jobs_done", (json_int_t)x->jobs_done, "jobs_lost",
                      (json_int_t)x->jobs_lost, "first_seen", web_json_time(x->first_seen_ms),
                      "last_seen", web_json_time(x->last_seen_ms), "warm", strv_array(x->warm),
                      "pulling", strv_array(x->pulling), "boot", web_json_str(x->boot)));
        json_t *item = json_array_get(list, json_array_size(list) - 1);
        json_object_set_new(item, "engine_error", web_json_str(x->engine_error));
        json_object_set_new(item, "pools", strv_array(x->pools));
        json_object_set_new(item, "images", strv_array(x->images));
    }
    cluster_node_infos_free(nodes, n);
    web_reply_json(rq, 200,
                   json_pack("{s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I}", "mode", "swarm", "nodes", list,
                             "queued", (json_int_t)st.queued, "leased", (json_int_t)st.leased,
                             "placed", (json_int_t)st.placed, "requeued", (json_int_t)st.requeued,
                             "interrupted", (json_int_t)st.interrupted, "node_timeout_s",
                             (json_int_t)rq->deps->cfg->node_timeout));
}

static void drain(struct web_request *rq, bool drained)
{
    struct err err = ERR_INIT;
    if (!rq->deps->cluster) {
        web_reply_detail(rq, 409, "cluster mode is off (ENVHUB_CLUSTER is empty): no nodes");
        return;
    }
    if (cluster_drain(rq->deps->cluster, rq->params[0], drained, &err) < 0 ||
        catalog_node_drain_set(rq->deps->catalog, rq->params[0], drained, rq->principal,
                               time_now_ms(), &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    log_info("cluster: %s %s node '%s'", rq->principal, drained ? "drained" : "resumed",
             rq->params[0]);
    web_reply_json(rq, 200, json_pack("{s:s,s:b}", "name", rq->params[0], "drained", drained));
}

void api_cluster_drain(struct web_request *rq)
{
    drain(rq, true);
}

void api_cluster_resume(struct web_request *rq)
{
    drain(rq, false);
}

void web_cluster_metrics(struct buf *out, struct cluster *c)
{
    struct cluster_node_info *nodes = NULL;
    size_t n = 0;
    struct cluster_stats st = {0};

    if (!c)
        return;
    cluster_nodes(c, &nodes, &n, &st);
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"envhub_cluster_node_up", "gauge", "1 while the node answers, 0 once it is lost."},
        {"envhub_cluster_node_drained", "gauge", "1 while the node is drained."},
        {"envhub_cluster_node_slots", "gauge", "Jobs the node runs at once."},
        {"envhub_cluster_node_running", "gauge", "Jobs the node reports running."},
        {"envhub_cluster_node_leased", "gauge", "Jobs leased to the node."},
        {"envhub_cluster_node_pulls", "gauge", "Image pulls under way on the node."},
        {"envhub_cluster_node_jobs_total", "counter", "Jobs the node sent a result for."},
        {"envhub_cluster_node_jobs_lost_total", "counter",
         "Jobs that ended interrupted because the node was lost or restarted."},
    };
    for (size_t k = 0; k < ARRAY_SIZE(m); k++) {
        buf_putf(out, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name, m[k].type);
        for (size_t i = 0; i < n; i++) {
            const struct cluster_node_info *x = &nodes[i];
            int64_t v = k == 0   ? x->up
                        : k == 1 ? x->drained
                        : k == 2 ? x->slots
                        : k == 3 ? x->running
                        : k == 4 ? x->leased
                        : k == 5 ? (int64_t)strv_length(x->pulling)
                        : k == 6 ? (int64_t)x->jobs_done
                                 : (int64_t)x->jobs_lost;
            buf_putf(out, "%s{node=\"%s\"} %lld\n", m[k].name, x->name, (long long)v);
        }
    }
    buf_putf(out,
             "# HELP envhub_cluster_queued Jobs waiting for a node.\n"
             "# TYPE envhub_cluster_queued gauge\nenvhub_cluster_queued %lld\n"
             "# HELP envhub_cluster_placed_total Leases given to nodes.\n"
             "# TYPE envhub_cluster_placed_total counter\nenvhub_cluster_placed_total %llu\n"
             "# HELP envhub_cluster_requeued_total Leases back in the queue unstarted (node "
             "lost or restarted, answer failed).\n"
             "# TYPE envhub_cluster_requeued_total counter\nenvhub_cluster_requeued_total %llu\n"
             "# HELP envhub_cluster_interrupted_total Jobs interrupted by a lost or restarted "
             "node.\n"
             "# TYPE envhub_cluster_interrupted_total counter\n"
             "envhub_cluster_interrupted_total %llu\n",
             (long long)st.queued, (unsigned long long)st.placed, (unsigned long long)st.requeued,
             (unsigned long long)st.interrupted);
    cluster_node_infos_free(nodes, n);
}

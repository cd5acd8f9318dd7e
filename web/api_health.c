/* web/api_health.c - GET /health: the seed's {"status", "timestamp"} plus
 * whether the engine and the catalog answer; 503 "degraded" when one does not;
 * "warnings" lists what needs an operator while the service still works
 * (little free disk beside the catalog, modules of a policy.preload that
 * warm containers could not import). */
#include <jansson.h>
#include <stdio.h>

#include "cluster/cluster.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

/* Little free disk beside the catalog. */
static void disk_warnings(struct web_request *rq, json_t *list)
{
    struct catalog_disk d;
    struct err err = ERR_INIT;
    int64_t min_free = rq->deps->cfg->min_free_disk;

    if (min_free <= 0)
        return;
    if (catalog_disk_usage(rq->deps->catalog, &d, &err) < 0) {
        json_array_append_new(list,
                              json_pack("{s:s, s:s}", "code", "disk_unknown", "detail", err.msg));
        return;
    }
    if (d.on_disk && d.free_bytes < min_free) {
        char detail[256];
        snprintf(detail, sizeof(detail),
                 "the catalog's file system has %lld bytes free, less than ENVHUB_MIN_FREE_DISK "
                 "(%lld bytes); the catalog holds %lld bytes (database and log)",
                 (long long)d.free_bytes, (long long)min_free,
                 (long long)(d.db_bytes + d.wal_bytes));
        json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:I}", "code", "low_disk", "detail",
                                              detail, "free_bytes", (json_int_t)d.free_bytes,
                                              "min_free_bytes", (json_int_t)min_free));
        log_warn("web: health: %s", detail);
    }
}

/* Environments whose warm containers could not import a module of their
 * policy.preload (the last report of their containers). */
static void preload_warnings(struct web_request *rq, json_t *list)
{
    struct executor_preload_failure *f;
    size_t n;
    char at[TIME_ISO_MAX];

    executor_preload_failures(rq->deps->executor, &f, &n);
    for (size_t i = 0; i < n; i++) {
        time_format_iso(f[i].at_ms, at);
        _cleanup_free_ char *detail = xasprintf(
            "containers of %s%s%s version %lld could not import modules of policy.preload (jobs "
            "run without them): %s",
            *f[i].environment ? "environment '" : "the default image", f[i].environment,
            *f[i].environment ? "'" : "", (long long)f[i].version, f[i].detail);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "code",
                                              "preload_failed", "detail", detail, "environment",
                                              f[i].environment, "version", (json_int_t)f[i].version,
                                              "modules", f[i].detail, "reported_at", at));
    }
    executor_preload_failures_free(f, n);
}

/* Cluster mode: how many nodes answer, what waits for one, and the image
 * pulls under way on each ("NODE: IMAGE: progress"). */
static json_t *cluster_health(struct cluster *c)
{
    struct cluster_node_info *nodes = NULL;
    size_t n = 0, up = 0;
    struct cluster_stats st;
    json_t *pulls = json_array();

    cluster_nodes(c, &nodes, &n, &st);
    for (size_t i = 0; i < n; i++) {
        up += nodes[i].up;
        for (size_t k = 0; nodes[i].pulling && nodes[i].pulling[k]; k++) {
            _cleanup_free_ char *line = xasprintf("%s: %s", nodes[i].name, nodes[i].pulling[k]);
            json_array_append_new(pulls, web_json_str(line));
        }
    }
    cluster_node_infos_free(nodes, n);
    return json_pack("{s:I, s:I, s:I, s:I, s:o}", "nodes", (json_int_t)n, "nodes_up",
                     (json_int_t)up, "queued", (json_int_t)st.queued, "leased",
                     (json_int_t)st.leased, "pulling", pulls);
}

/* Conditions an operator should act on before they fail requests; they do
 * not make the service degraded: each a {"code", "detail"}. */
static json_t *warnings(struct web_request *rq)
{
    json_t *list = json_array();
    disk_warnings(rq, list);
    preload_warnings(rq, list);
    return list;
}

void api_health(struct web_request *rq)
{
    struct err engine_err = ERR_INIT, catalog_err = ERR_INIT;
    char now[TIME_ISO_MAX];
    int version = 0;
    struct executor_stats stats;

    bool engine_ok = engine_ping(rq->deps->engine, &engine_err) == 0;
    bool catalog_ok = catalog_schema_version(rq->deps->catalog, &version, &catalog_err) == 0;
    executor_stats(rq->deps->executor, &stats);
    time_format_iso(time_now_ms(), now);

    json_t *doc =
        json_pack("{s:s, s:s, s:{s:b, s:s, s:s?}, s:{s:b, s:i, s:s?}, s:{s:I, s:I}}", "status",
                  engine_ok && catalog_ok ? "healthy" : "degraded", "timestamp", now, "engine",
                  "ok", engine_ok, "api_version", engine_api_version(rq->deps->engine), "error",
                  engine_ok ? NULL : engine_err.msg, "catalog", "ok", catalog_ok, "schema_version",
                  version, "error", catalog_ok ? NULL : catalog_err.msg, "jobs", "running",
                  (json_int_t)stats.running, "waiting", (json_int_t)stats.waiting);
    json_object_set_new(doc, "warnings", warnings(rq));
    if (rq->deps->cluster)
        json_object_set_new(doc, "cluster", cluster_health(rq->deps->cluster));
    web_reply_json(rq, engine_ok && catalog_ok ? 200 : 503, doc);
}

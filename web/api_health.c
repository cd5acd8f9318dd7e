/* web/api_health.c - GET /health: the seed's {"status", "timestamp"} plus
 * whether the engine and the catalog answer; 503 "degraded" when one does not;
 * "warnings" lists what needs an operator while the service still works
 * (little free disk beside the catalog, modules of a policy.preload that
 * warm containers could not import). */
#include <jansson.h>
#include <stdio.h>

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
    web_reply_json(rq, engine_ok && catalog_ok ? 200 : 503, doc);
}

/* web/api_health.c - GET /health: the seed's {"status", "timestamp"} plus
 * whether the engine and the catalog answer; 503 "degraded" when one does not. */
#include <jansson.h>

#include "core/util.h"
#include "web/web_internal.h"

#include "core/banned.h"

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
    web_reply_json(rq, engine_ok && catalog_ok ? 200 : 503, doc);
}

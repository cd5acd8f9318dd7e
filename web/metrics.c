/* web/metrics.c - GET /metrics in Prometheus text: the executor's and the
 * builder's numbers, which they hand over as plain structs, rendered here
 * (the HTTP counters are rendered by server.c, which owns them). */
#include <stdio.h>
#include <string.h>

#include "builder/builder.h"
#include "core/buf.h"
#include "core/log.h"
#include "executor/executor.h"
#include "web/web_internal.h"

#include "core/banned.h"

void web_metrics_label(struct buf *out, const char *v)
{
    for (const char *p = v; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (esc)
            buf_puts(out, esc);
        else
            buf_put(out, p, 1);
    }
}

static void help(struct buf *out, const char *name, const char *type, const char *text)
{
    buf_putf(out, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* "NAME{environment=\"ENV\"", left open for more labels. */
static void env_sample(struct buf *out, const char *name, const char *env)
{
    buf_putf(out, "%s{environment=\"", name);
    web_metrics_label(out, env);
}

static void executions(struct buf *out, const struct executor_metrics *m)
{
    help(out, "envhub_executions_total", "counter",
         "Executions finished, by environment and status.");
    for (size_t i = 0; i < m->n_envs; i++)
        for (int s = 0; s <= EXEC_INTERRUPTED; s++) {
            if (!m->envs[i].by_status[s])
                continue;
            env_sample(out, "envhub_executions_total", m->envs[i].environment);
            buf_putf(out, "\",status=\"%s\"} %llu\n", exec_status_name((enum exec_status)s),
                     (unsigned long long)m->envs[i].by_status[s]);
        }
    help(out, "envhub_execution_duration_seconds", "histogram", "Time user code ran.");
    for (size_t i = 0; i < m->n_envs; i++) {
        const struct executor_env_counts *e = &m->envs[i];
        for (size_t b = 0; b < EXECUTOR_DURATION_BUCKETS; b++) {
            env_sample(out, "envhub_execution_duration_seconds_bucket", e->environment);
            buf_putf(out, "\",le=\"%g\"} %llu\n", executor_duration_buckets[b],
                     (unsigned long long)e->duration_buckets[b]);
        }
        env_sample(out, "envhub_execution_duration_seconds_bucket", e->environment);
        buf_putf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)e->duration_count);
        env_sample(out, "envhub_execution_duration_seconds_sum", e->environment);
        buf_putf(out, "\"} %.3f\n", e->duration_sum);
        env_sample(out, "envhub_execution_duration_seconds_count", e->environment);
        buf_putf(out, "\"} %llu\n", (unsigned long long)e->duration_count);
    }
}

static void gauges(struct buf *out, const struct executor_metrics *m)
{
    help(out, "envhub_jobs_running", "gauge", "Jobs holding a slot now.");
    buf_putf(out, "envhub_jobs_running %lld\n", (long long)m->running);
    help(out, "envhub_queue_depth", "gauge", "Jobs waiting for a slot now.");
    buf_putf(out, "envhub_queue_depth %lld\n", (long long)m->waiting);
    help(out, "envhub_async_queue_depth", "gauge", "Submitted jobs waiting for a worker.");
    buf_putf(out, "envhub_async_queue_depth %lld\n", (long long)m->async_queued);
    help(out, "envhub_queue_wait_seconds", "summary", "Time jobs waited for a slot.");
    buf_putf(out, "envhub_queue_wait_seconds_sum %.3f\nenvhub_queue_wait_seconds_count %llu\n",
             m->wait_seconds, (unsigned long long)m->waited);
    help(out, "envhub_sessions_open", "gauge", "Sessions open now.");
    buf_putf(out, "envhub_sessions_open %lld\n", (long long)m->sessions_open);
    help(out, "envhub_engine_errors_total", "counter",
         "Docker engine calls that failed jobs or pools.");
    buf_putf(out, "envhub_engine_errors_total %llu\n", (unsigned long long)m->engine_errors);
}

/* "NAME{environment=\"ENV\",image=\"IMAGE\"} " of pool @p. */
static void pool_sample(struct buf *out, const char *name, const struct executor_pool_stat *p)
{
    env_sample(out, name, p->environment ? p->environment : "");
    buf_puts(out, "\",image=\"");
    web_metrics_label(out, p->image);
    buf_puts(out, "\"} ");
}

static void pools(struct buf *out, const struct executor_metrics *m)
{
    static const char *const metric[][3] = {
        {"envhub_pool_ready", "gauge", "Warm containers ready now."},
        {"envhub_pool_target", "gauge",
         "Warm containers the pool keeps now: its floor, or more while recent demand outruns "
         "its refills (at most ENVHUB_MAX_POOL_SIZE)."},
        {"envhub_pool_floor", "gauge",
         "The configured pool size: the target never falls below it."},
        {"envhub_pool_starting", "gauge", "Warm containers being made and started now."},
        {"envhub_pool_hits_total", "counter", "Jobs that got a warm container."},
        {"envhub_pool_misses_total", "counter", "Jobs that had to make their container."},
        {"envhub_pool_burst_returns_total", "counter",
         "Used containers given back to their key because the pool had no fresh one ready "
         "(ENVHUB_POOL_BURST_RECYCLE)."},
    };
    for (size_t k = 0; k < sizeof(metric) / sizeof(metric[0]); k++) {
        help(out, metric[k][0], metric[k][1], metric[k][2]);
        for (size_t i = 0; i < m->n_pools; i++) {
            const struct executor_pool_stat *p = &m->pools[i];
            unsigned long long v = k == 0   ? (unsigned long long)p->ready
                                   : k == 1 ? (unsigned long long)p->want
                                   : k == 2 ? (unsigned long long)p->floor
                                   : k == 3 ? (unsigned long long)p->starting
                                   : k == 4 ? (unsigned long long)p->hits
                                   : k == 5 ? (unsigned long long)p->misses
                                            : (unsigned long long)p->burst_returns;
            pool_sample(out, metric[k][0], p);
            buf_putf(out, "%llu\n", v);
        }
    }
    help(out, "envhub_pool_demand_per_second", "gauge",
         "Recent takes of the pool's containers per second (exponentially weighted, 30 s).");
    for (size_t i = 0; i < m->n_pools; i++) {
        pool_sample(out, "envhub_pool_demand_per_second", &m->pools[i]);
        buf_putf(out, "%.3f\n", m->pools[i].rate);
    }
    help(out, "envhub_pool_refill_seconds", "summary",
         "Time to make and start a warm container (quantile 0.5: the moving average the target "
         "uses).");
    for (size_t i = 0; i < m->n_pools; i++) {
        const struct executor_pool_stat *p = &m->pools[i];
        env_sample(out, "envhub_pool_refill_seconds", p->environment ? p->environment : "");
        buf_puts(out, "\",image=\"");
        web_metrics_label(out, p->image);
        buf_putf(out, "\",quantile=\"0.5\"} %.3f\n", p->refill_seconds);
        pool_sample(out, "envhub_pool_refill_seconds_sum", p);
        buf_putf(out, "%.3f\n", p->refill_sum);
        pool_sample(out, "envhub_pool_refill_seconds_count", p);
        buf_putf(out, "%llu\n", (unsigned long long)p->refills);
    }
}

static void containers(struct buf *out, const struct executor_metrics *m)
{
    help(out, "envhub_containers_live", "gauge",
         "Sandbox containers alive now: in use, ready or starting in pools, and waiting for "
         "removal.");
    buf_putf(out, "envhub_containers_live %lld\n", (long long)m->containers_live);
    help(out, "envhub_containers_removal_backlog", "gauge",
         "Containers jobs, sessions and pools are done with, not removed yet.");
    buf_putf(out, "envhub_containers_removal_backlog %lld\n", (long long)m->removal_backlog);
    help(out, "envhub_containers_removal_backlog_max", "gauge",
         "ENVHUB_MAX_REMOVAL_BACKLOG: at this backlog new jobs wait before taking a container.");
    buf_putf(out, "envhub_containers_removal_backlog_max %lld\n",
             (long long)m->removal_backlog_max);
    help(out, "envhub_removal_backlog_wait_seconds", "summary",
         "Time jobs waited for the removal backlog to fall below its bound.");
    buf_putf(out,
             "envhub_removal_backlog_wait_seconds_sum %.3f\n"
             "envhub_removal_backlog_wait_seconds_count %llu\n",
             m->backlog_wait_seconds, (unsigned long long)m->backlog_waits);
}

static void builds(struct buf *out, const struct builder_metrics *m)
{
    help(out, "envhub_builds_total", "counter", "Environment builds ended, by status.");
    for (int st = BUILD_READY; st <= BUILD_CANCELLED; st++)
        buf_putf(out, "envhub_builds_total{status=\"%s\"} %llu\n",
                 build_status_name((enum build_status)st), (unsigned long long)m->finished[st]);
    help(out, "envhub_build_duration_seconds", "summary", "Time from start to end of builds.");
    buf_putf(out,
             "envhub_build_duration_seconds_sum %.3f\nenvhub_build_duration_seconds_count %llu\n",
             m->seconds_sum, (unsigned long long)m->seconds_count);
    help(out, "envhub_builds_running", "gauge", "Builds running now.");
    buf_putf(out, "envhub_builds_running %zu\n", m->running);
    help(out, "envhub_builds_queued", "gauge", "Builds waiting for a worker.");
    buf_putf(out, "envhub_builds_queued %zu\n", m->queued);
}

/* The catalog's files and the room left beside them; nothing for a catalog
 * in memory, and a warning in the log (not a failed scrape) when they
 * cannot be read. */
static void storage(struct buf *out, struct catalog *cat)
{
    struct catalog_disk d;
    struct err err = ERR_INIT;

    if (catalog_disk_usage(cat, &d, &err) < 0) {
        log_warn("web: metrics: cannot read the catalog's disk usage, ignoring: %s", err.msg);
        return;
    }
    if (!d.on_disk)
        return;
    help(out, "envhub_catalog_size_bytes", "gauge",
         "Bytes of the catalog's files: the database and its write-ahead log.");
    buf_putf(out, "envhub_catalog_size_bytes{file=\"db\"} %lld\n", (long long)d.db_bytes);
    buf_putf(out, "envhub_catalog_size_bytes{file=\"wal\"} %lld\n", (long long)d.wal_bytes);
    help(out, "envhub_catalog_disk_free_bytes", "gauge",
         "Free bytes (for unprivileged writers) of the catalog's file system.");
    buf_putf(out, "envhub_catalog_disk_free_bytes %lld\n", (long long)d.free_bytes);
    help(out, "envhub_catalog_disk_size_bytes", "gauge", "Size of the catalog's file system.");
    buf_putf(out, "envhub_catalog_disk_size_bytes %lld\n", (long long)d.total_bytes);
}

void web_metrics_render(struct buf *out, struct executor *x, struct builder *b, struct catalog *cat)
{
    struct executor_metrics xm;
    struct builder_metrics bm;

    executor_metrics(x, &xm);
    builder_metrics(b, &bm);
    executions(out, &xm);
    gauges(out, &xm);
    pools(out, &xm);
    containers(out, &xm);
    builds(out, &bm);
    storage(out, cat);
    executor_metrics_release(&xm);
}

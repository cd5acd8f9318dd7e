/* executor/executor.c - the service: opens the executor's layers in order,
 * shuts them down and closes them from the top down, and answers for all of
 * them (stats, /metrics). See executor_internal.h for the layers, their
 * locks and the lock order. Calls every other file of the executor. */
#include "executor/executor.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

/* An executor of @cfg on @e, every layer initialised, none started; its
 * containers carry envhub.instance=@instance. */
static struct executor *executor_new(const struct config *cfg, struct engine *e,
                                     struct catalog *cat, char *instance, struct err *err)
{
    struct executor *x = xcalloc(1, sizeof(*x));

    x->cfg = cfg;
    x->engine = e;
    x->catalog = cat;
    x->instance = instance;
    atomic_init(&x->stopping, false);
    exec_stats_init(x);
    exec_containers_init(x);
    exec_live_init(x);
    exec_pool_init(x);
    exec_runs_init(x);
    exec_sessions_init(x);
    exec_async_init(x);
    if (sandbox_labels_parse(cfg->labels, x->instance, &x->labels, err) < 0) {
        executor_close(x);
        return NULL;
    }
    return x;
}

int executor_open(const struct config *cfg, struct engine *e, struct catalog *cat,
                  struct executor **ret, struct err *err)
{
    int interrupted = 0;
    struct executor *x = executor_new(cfg, e, cat, xstrdup(catalog_instance_id(cat)), err);

    if (!x)
        return -1;
    if (exec_containers_start(x, err) < 0) /* what a previous run left behind goes first */
        goto fail;
    if (catalog_recover_executions(cat, time_now_ms(), &interrupted, err) < 0) {
        err_prefix(err, "cannot recover unfinished executions");
        goto fail;
    }
    if (interrupted)
        log_info("executor: marked %d executions cut off by the last stop as interrupted",
                 interrupted);
    if (exec_pool_start(x, err) < 0 || exec_sessions_start(x, err) < 0 ||
        exec_async_start(x, err) < 0)
        goto fail;
    *ret = x;
    return 0;
fail:
    executor_close(x);
    return -1;
}

int executor_open_node(const struct config *cfg, struct engine *e, const char *node,
                       struct executor **ret, struct err *err)
{
    struct executor *x = executor_new(cfg, e, NULL, xasprintf("node-%s", node), err);

    if (!x)
        return -1;
    if (exec_containers_start(x, err) < 0 || exec_pool_start(x, err) < 0) {
        executor_close(x);
        return -1;
    }
    *ret = x;
    return 0;
}

void executor_use_cluster(struct executor *x, struct cluster *c)
{
    x->cluster = c;
}

void executor_shutdown(struct executor *x)
{
    if (atomic_exchange(&x->stopping, true))
        return;
    /* each subsystem's waiters, under its own lock (see executor_internal.h) */
    exec_runs_wake(x);
    exec_containers_wake(x);
    exec_pool_wake(x);
    exec_sessions_wake(x);
    exec_async_wake(x);
    exec_live_wake(x);
    /* killing ends each running job's exec stream; the job records itself interrupted */
    exec_containers_kill_active(x);
}

void executor_close(struct executor *x)
{
    if (!x)
        return;
    executor_shutdown(x);
    exec_async_stop(x);      /* queued jobs are recorded interrupted */
    exec_pool_stop(x);       /* pooled containers go to removal */
    exec_sessions_stop(x);   /* and sessions' containers */
    exec_containers_stop(x); /* removals done */
    exec_async_fini(x);
    exec_sessions_fini(x);
    exec_runs_fini(x);
    exec_pool_fini(x);
    exec_live_fini(x);
    exec_containers_fini(x);
    exec_stats_fini(x);
    sandbox_labels_free(x->labels);
    free(x->instance);
    free(x);
}

void executor_stats(struct executor *x, struct executor_stats *ret)
{
    uint64_t wait_ms, waited;
    exec_runs_stats(x, ret, &wait_ms, &waited);
}

void executor_metrics(struct executor *x, struct executor_metrics *ret)
{
    struct executor_stats runs;
    uint64_t wait_ms, waited;

    memset(ret, 0, sizeof(*ret));
    exec_runs_stats(x, &runs, &wait_ms, &waited);
    ret->running = runs.running;
    ret->waiting = runs.waiting;
    ret->wait_seconds = (double)wait_ms / 1000;
    ret->waited = waited;
    ret->async_queued = exec_async_queued(x);
    ret->sessions_open = exec_sessions_count(x);
    ret->engine_errors = exec_engine_errors(x);
    exec_counters_snapshot(x, &ret->envs, &ret->n_envs);
    executor_pool_stats(x, &ret->pools, &ret->n_pools);
    /* two locks, one after the other: a container moving between them
     * meanwhile may be counted twice or not at all */
    struct exec_container_counts cc;
    exec_containers_counts(x, &cc);
    ret->containers_live = cc.active + cc.backlog + exec_pool_live(x);
    ret->removal_backlog = cc.backlog;
    ret->removal_backlog_max = x->cfg->max_removal_backlog;
    ret->backlog_waits = cc.backlog_waits;
    ret->backlog_wait_seconds = (double)cc.backlog_wait_ms / 1000;
}

void executor_metrics_release(struct executor_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_envs; i++)
        free(m->envs[i].environment);
    free(m->envs);
    executor_pool_stats_free(m->pools, m->n_pools);
    memset(m, 0, sizeof(*m));
}

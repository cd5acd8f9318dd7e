/* executor/runs.c - runs: one job's life, from its request to its row.
 *
 * A job is prepared (environment, limits, inputs, row), takes a slot (at most
 * CONCURRENT_LIMIT run at once; up to ENVHUB_QUEUE_LIMIT more wait, beyond
 * that ERR_BUSY; an asynchronous job always waits), room in the removal
 * backlog (containers.c: ENVHUB_MAX_REMOVAL_BACKLOG), a container (a warm one
 * from its pool, else a fresh one; in recycling mode a used one only when
 * its last job was of the same principal and environment version), runs
 * (job.c), gives the container back, and records its outcome. While it
 * runs it is in the registry, where a cancel finds it. A job's row is final
 * before exec_job_execute() returns. runs.lock guards the slots, the wait
 * totals and the registry. In cluster mode the container part happens on
 * a node instead (run_remote: the cluster places the job, remote.c carries
 * it); a node runs the jobs it leases through executor_node_run(), the same
 * steps without the catalog. Calls job.c, pool.c, containers.c, live.c,
 * shared.c, tar.c, remote.c and the cluster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

/* The least a job waits for the removal backlog before it gives up. */
#define BACKLOG_WAIT_MIN_MS 30000

void exec_runs_init(struct executor *x)
{
    pthread_mutex_init(&x->runs.lock, NULL);
    pthread_cond_init(&x->runs.slot_freed, NULL);
}

void exec_runs_wake(struct executor *x)
{
    pthread_mutex_lock(&x->runs.lock);
    pthread_cond_broadcast(&x->runs.slot_freed);
    pthread_mutex_unlock(&x->runs.lock);
}

void exec_runs_fini(struct executor *x)
{
    pthread_cond_destroy(&x->runs.slot_freed);
    pthread_mutex_destroy(&x->runs.lock);
}

void exec_runs_stats(struct executor *x, struct executor_stats *ret, uint64_t *ret_wait_ms,
                     uint64_t *ret_waited)
{
    pthread_mutex_lock(&x->runs.lock);
    ret->running = x->runs.running;
    ret->waiting = x->runs.waiting;
    *ret_wait_ms = x->runs.wait_ms_total;
    *ret_waited = x->runs.waited_jobs;
    pthread_mutex_unlock(&x->runs.lock);
}

/* ---- the registry ---- */

void exec_runs_register(struct executor *x, struct prepared_job *pj)
{
    pthread_mutex_lock(&x->runs.lock);
    pj->run_next = x->runs.registry;
    x->runs.registry = pj;
    pthread_mutex_unlock(&x->runs.lock);
}

void exec_runs_unregister(struct executor *x, struct prepared_job *pj)
{
    pthread_mutex_lock(&x->runs.lock);
    for (struct prepared_job **p = &x->runs.registry; *p; p = &(*p)->run_next)
        if (*p == pj) {
            *p = pj->run_next;
            break;
        }
    pj->run_next = NULL;
    pthread_mutex_unlock(&x->runs.lock);
}

int exec_runs_cancel(struct executor *x, const char *id, const char *by, struct err *err)
{
    _cleanup_free_ char *kill_id = NULL;
    bool marked = false, remote = false;

    pthread_mutex_lock(&x->runs.lock);
    for (struct prepared_job *pj = x->runs.registry; pj; pj = pj->run_next) {
        if (strcmp(pj->rec.id, id) != 0)
            continue;
        if (pj->remote) {
            /* on a node: the cluster tells it (or takes it off its queue) */
            free(pj->cancelled_by);
            pj->cancelled_by = xstrdup(by ? by : "?");
            remote = true;
        } else if (pj->cid) {
            /* running in its container: killing it ends the run, which records the cancel */
            free(pj->cancelled_by);
            pj->cancelled_by = xstrdup(by ? by : "");
            kill_id = xstrdup(pj->cid);
        } else if (pj->recorded) {
            /* an asynchronous job waiting for a slot, or its container being
             * made: it stops at its next step */
            if (!pj->cancelled_by)
                pj->cancelled_by = xstrdup(by ? by : "?");
            pthread_cond_broadcast(&x->runs.slot_freed);
            marked = true;
        }
        break;
    }
    pthread_mutex_unlock(&x->runs.lock);
    if (marked)
        return 0;
    if (remote) {
        /* not found there: it ended meanwhile, and records the cancel or its end */
        if (cluster_cancel(x->cluster, id, by ? by : "?", err) < 0 && err->code != ERR_NOT_FOUND)
            return -1;
        err_clear(err);
        return 0;
    }
    if (kill_id) {
        if (engine_container_kill(x->engine, kill_id, err) < 0)
            return err_prefix(err, "cannot cancel execution '%s'", id);
        return 0;
    }
    return err_set(err, ERR_NOT_FOUND, "execution '%s' is not queued or running", id);
}

/* ---- slots ---- */

/* A slot to run in, waiting in the queue if need be. An asynchronous job
 * (its row recorded at submission; its own queue is bounded) always waits,
 * and gives up with ERR_CANCELLED when cancelled meanwhile. */
static int slot_acquire(struct executor *x, const struct prepared_job *pj, struct err *err)
{
    const struct config *cfg = x->cfg;
    int64_t t_wait = time_mono_ms();

    pthread_mutex_lock(&x->runs.lock);
    if (exec_stopping(x)) {
        pthread_mutex_unlock(&x->runs.lock);
        return err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
    }
    if (x->runs.running >= cfg->concurrent_limit) {
        if (x->runs.waiting >= cfg->queue_limit && !pj->recorded) {
            int64_t running = x->runs.running, waiting = x->runs.waiting;
            pthread_mutex_unlock(&x->runs.lock);
            return err_set(err, ERR_BUSY,
                           "the run queue is full (%lld running, %lld waiting, "
                           "CONCURRENT_LIMIT %lld, ENVHUB_QUEUE_LIMIT %lld); retry later",
                           (long long)running, (long long)waiting, (long long)cfg->concurrent_limit,
                           (long long)cfg->queue_limit);
        }
        x->runs.waiting++;
        while (x->runs.running >= cfg->concurrent_limit && !exec_stopping(x) && !pj->cancelled_by)
            pthread_cond_wait(&x->runs.slot_freed, &x->runs.lock);
        x->runs.waiting--;
        if (exec_stopping(x)) {
            pthread_mutex_unlock(&x->runs.lock);
            return err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
        }
    }
    if (pj->cancelled_by) {
        pthread_cond_signal(&x->runs.slot_freed); /* the wake-up may have been for another */
        err_set(err, ERR_CANCELLED, "cancelled by %s before it ran", pj->cancelled_by);
        pthread_mutex_unlock(&x->runs.lock);
        return -1;
    }
    x->runs.running++;
    x->runs.wait_ms_total += (uint64_t)(time_mono_ms() - t_wait);
    x->runs.waited_jobs++;
    pthread_mutex_unlock(&x->runs.lock);
    return 0;
}

static void slot_release(struct executor *x)
{
    pthread_mutex_lock(&x->runs.lock);
    x->runs.running--;
    pthread_cond_signal(&x->runs.slot_freed);
    pthread_mutex_unlock(&x->runs.lock);
}

/* ---- preparing ---- */

int exec_job_prepare(struct executor *x, const struct job_request *req, struct prepared_job *pj,
                     struct err *err)
{
    _cleanup_(exec_env_release) struct exec_env env = {0};

    memset(pj, 0, sizeof(*pj));
    if (exec_env_resolve(x, req->environment, &env, err) < 0)
        return -1;
    if (sandbox_limits_lower(&env.limits, req->overrides, &pj->limits, err) < 0)
        return -1;
    pj->pool_ok = sandbox_limits_equal(&env.limits, &pj->limits);
    /* lowered limits: a container of its own, which imports only what the
     * job does (a preload could not fit in less memory) */
    if (!pj->pool_ok)
        pj->limits.n_preload = 0;
    int64_t timeout = req->timeout_given ? req->timeout_s : pj->limits.timeout_default;
    if (timeout > pj->limits.timeout_max)
        return err_set(err, ERR_INVALID,
                       "timeout: %lld s is over %s's maximum of %lld s (policy.timeout_max)",
                       (long long)timeout, req->environment ? req->environment : "the default",
                       (long long)pj->limits.timeout_max);
    pj->input_tar = (struct buf)BUF_INIT((size_t)pj->limits.workspace_size);
    if (exec_tar_inputs(req->code, req->code_len, req->files, req->n_files, &pj->input_tar, err) <
        0) {
        buf_release(&pj->input_tar);
        if (err->code == ERR_TOO_LARGE)
            return err_set(err, ERR_TOO_LARGE,
                           "files: the input files and code are larger than the workspace "
                           "(%lld bytes)",
                           (long long)pj->limits.workspace_size);
        return -1;
    }
    struct execution_record *rec = &pj->rec;
    exec_record_init(rec, req, timeout, &pj->limits);
    rec->image = xstrdup(env.image);
    if (env.name) {
        rec->environment = xstrdup(env.name);
        rec->environment_version = env.rec.version;
        rec->image_id = env.rec.image_id ? xstrdup(env.rec.image_id) : NULL;
    } else {
        rec->image_id = exec_default_image_id(x);
    }
    /* deprecated: the result says so (the row by trigger) */
    pj->warning = steal_ptr(env.rec.warning);
    if (env.name && env.rec.registry_image)
        pj->node_image = xstrdup(env.rec.registry_image);
    return 0;
}

void exec_job_release(struct prepared_job *pj)
{
    execution_record_release(&pj->rec);
    free(pj->node);
    free(pj->node_image);
    buf_release(&pj->input_tar);
    free(pj->warning);
    free(pj->cid);
    free(pj->cancelled_by);
}

/* ---- executing, step by step ---- */

/* Where a job is between the steps of exec_job_execute(). */
struct run_state {
    struct job_result res;
    struct job_outcome out;
    char *cid;    /* its container, while it has one */
    int64_t uses; /* jobs that container served before */
    bool warm;    /* it came from the pool */
    struct live_tap tap;
    engine_output_fn relay; /* a node: the output goes to the server as it comes */
    void *relay_ctx;
};

/* The result of a job that did not get to run in its container. */
static void result_unrun(struct job_result *res, enum exec_status status, char *error)
{
    res->status = status;
    res->error = error;
    res->stdout_text = xstrdup("");
    res->stderr_text = xstrdup("");
}

static void result_reset(struct job_result *res, const char *id)
{
    job_result_release(res);
    snprintf(res->id, sizeof(res->id), "%s", id);
    res->exit_code = -1;
}

/* Step 1: a slot, room in the removal backlog, and the row says running.
 * The backlog wait comes after the slot, just before the container, so that
 * the jobs holding a container never outnumber the slots; it is part of the
 * job's queue time (queued_at to started_at), at most its timeout and at
 * least BACKLOG_WAIT_MIN_MS. */
static int run_begin(struct executor *x, struct prepared_job *pj, struct err *err)
{
    struct execution_record *rec = &pj->rec;
    struct err touch_err = ERR_INIT;

    if (slot_acquire(x, pj, err) < 0)
        return -1;
    int64_t backlog_ms = rec->timeout_s * 1000;
    if (backlog_ms < BACKLOG_WAIT_MIN_MS)
        backlog_ms = BACKLOG_WAIT_MIN_MS;
    if (exec_containers_backlog_wait(x, backlog_ms, err) < 0) {
        slot_release(x);
        return err_prefix(err, "no container for the job");
    }
    rec->status = EXEC_RUNNING;
    rec->started_at = time_now_ms();
    if (rec->environment &&
        catalog_env_touch(x->catalog, rec->environment, rec->started_at, &touch_err) < 0)
        log_warn("executor: cannot update last_used of '%s', ignoring: %s", rec->environment,
                 touch_err.msg);
    if ((pj->recorded ? catalog_execution_start(x->catalog, rec->id, rec->started_at, err)
                      : catalog_execution_insert(x->catalog, rec, err)) < 0) {
        slot_release(x);
        return err_prefix(err, "cannot record execution");
    }
    return 0;
}

/* Step 2: a container in use for the job, warm or fresh, in st->cid; false
 * with st->res filled when there is none (the engine refused, cancelled,
 * shutting down). */
static bool container_get(struct executor *x, struct prepared_job *pj, struct run_state *st)
{
    if (!st->cid) {
        st->warm = false;
        st->uses = 0;
        if (exec_container_create(x, pj->rec.image, &pj->limits, false, &st->cid,
                                  &st->out.engine_err) < 0) {
            st->out.engine_failed = true;
            result_unrun(&st->res, exec_stopping(x) ? EXEC_INTERRUPTED : EXEC_ERROR,
                         xasprintf("envhub could not run the job: %s", st->out.engine_err.msg));
            return false;
        }
    }
    exec_container_activate(x, st->cid);
    pthread_mutex_lock(&x->runs.lock);
    pj->cid = xstrdup(st->cid);
    _cleanup_free_ char *cancelled_by = pj->cancelled_by ? xstrdup(pj->cancelled_by) : NULL;
    pthread_mutex_unlock(&x->runs.lock);
    if (!cancelled_by && !exec_stopping(x))
        return true;
    /* cancelled while its container was being made, or shutting down */
    result_unrun(&st->res, EXEC_INTERRUPTED,
                 cancelled_by ? xasprintf("cancelled by %s before it ran", cancelled_by)
                              : xstrdup("the job was interrupted: envhub is shutting down"));
    pthread_mutex_lock(&x->runs.lock);
    free(steal_ptr(pj->cid));
    pthread_mutex_unlock(&x->runs.lock);
    exec_container_release(x, st->cid);
    free(steal_ptr(st->cid));
    return false;
}

/* Step 3: the code runs in the container; live output to followers. */
static void container_run(struct executor *x, struct prepared_job *pj, struct run_state *st)
{
    struct job_io io = {
        .input_tar = &pj->input_tar,
        .timeout_s = pj->rec.timeout_s,
        .output_limit = pj->limits.output_limit,
        .memory = pj->limits.memory,
        .started = st->warm,
        .recycled = st->warm && st->uses > 0,
        .live = st->relay      ? st->relay
                : st->tap.live ? exec_live_append
                               : NULL,
        .live_ctx = st->relay ? st->relay_ctx : (void *)&st->tap,
    };
    exec_job_run(x, st->cid, &io, &st->res, &st->out);
}

/* Step 4: the container leaves the registry and goes back (pool, removal);
 * a cancel while it ran is the job's outcome. */
static void container_done(struct executor *x, struct prepared_job *pj, struct run_state *st)
{
    pthread_mutex_lock(&x->runs.lock);
    _cleanup_free_ char *cancelled_by = steal_ptr(pj->cancelled_by);
    free(steal_ptr(pj->cid));
    pthread_mutex_unlock(&x->runs.lock);
    if (cancelled_by && !st->out.unclean) {
        st->res.status = EXEC_INTERRUPTED;
        free(st->res.error);
        st->res.error = xasprintf("cancelled by %s while it ran", cancelled_by);
        st->out.container_usable = false;
    }
    exec_pool_return(x, pj->rec.image, st->cid, st->uses + 1, pj->rec.principal,
                     pj->rec.environment_version,
                     st->out.container_usable && pj->pool_ok && !st->out.unclean, st->warm);
    free(steal_ptr(st->cid));
}

/* The answer says which modules of policy.preload its container could not
 * import (the job ran without them), after the deprecation warning if any. */
static void preload_warning(struct job_result *res, char *const *errors)
{
    _cleanup_free_ char *old = steal_ptr(res->warning);
    size_t n = strv_length(errors);
    res->warning = xasprintf("%s%spolicy.preload: this job's container could not import %.200s%s; "
                             "the code ran without %s",
                             old ? old : "", old ? "; " : "", errors[0],
                             n > 1 ? " (and more: see /health)" : "", n > 1 ? "them" : "it");
}

/* Step 5: the row is final (then followers see the end); the answer. */
static int run_end(struct executor *x, struct prepared_job *pj, struct run_state *st,
                   struct job_result *ret, struct err *err)
{
    struct execution_record *rec = &pj->rec;

    if (st->out.engine_failed)
        exec_count_engine_error(x);
    if (st->out.reported)
        exec_note_preload(x, rec->environment, rec->environment_version, st->out.preload_errors);
    _cleanup_(strv_freep) char **preload_errors = steal_ptr(st->out.preload_errors);
    if (st->out.image_id) {
        free(rec->image_id);
        rec->image_id = steal_ptr(st->out.image_id);
    }
    int recorded_rc = exec_record_finish(x, rec, &st->res, err);
    if (st->tap.live)
        exec_live_close(x, st->tap.live);
    if (recorded_rc < 0) {
        job_result_release(&st->res);
        return err_prefix(err, "cannot record the result of execution '%s'", rec->id);
    }
    if (st->res.status == EXEC_ERROR) {
        /* the row says what happened; the caller answers with the engine's error */
        err_copy(err, &st->out.engine_err);
        if (err->code == ERR_OK)
            err_set(err, ERR_ENGINE, "%s", st->res.error);
        job_result_release(&st->res);
        return -1;
    }
    st->res.warning = pj->warning ? xstrdup(pj->warning) : NULL;
    if (preload_errors)
        preload_warning(&st->res, preload_errors);
    *ret = st->res;
    return 0;
}

/* Steps 2 to 4: a container (warm or fresh), the run, the container back;
 * a recycled container that could not be cleaned gives way to a fresh one. */
static void run_in_container(struct executor *x, struct prepared_job *pj, struct run_state *st)
{
    if (pj->pool_ok)
        st->cid = exec_pool_take(x, pj->rec.image, &pj->limits, pj->rec.principal,
                                 pj->rec.environment_version, &st->uses, true);
    st->warm = st->cid != NULL;
    while (container_get(x, pj, st)) {
        container_run(x, pj, st);
        bool unclean = st->out.unclean;
        if (unclean)
            /* a recycled container kept something of its last job: nothing
             * ran; a fresh container runs the job */
            log_warn("executor: %s (container '%.12s'); removing it", st->res.error, st->cid);
        container_done(x, pj, st);
        if (!unclean)
            break;
        result_reset(&st->res, pj->rec.id);
        strv_free(steal_ptr(st->out.preload_errors));
    }
}

/* Steps 2 to 4 in cluster mode: on the node the cluster places it on. A
 * node lost or restarted while the job ran ends it interrupted, naming the
 * node; with no node up it does not run (ERR_UNAVAILABLE). */
static void run_remote(struct executor *x, struct prepared_job *pj, struct run_state *st)
{
    const struct config *cfg = x->cfg;
    struct cluster_outcome co = {0};
    struct err e = ERR_INIT;
    size_t len = 0;

    pthread_mutex_lock(&x->runs.lock);
    pj->remote = true;
    _cleanup_free_ char *early = pj->cancelled_by ? xstrdup(pj->cancelled_by) : NULL;
    pthread_mutex_unlock(&x->runs.lock);
    int rc = -1;
    if (early)
        err_set(&e, ERR_CANCELLED, "cancelled by %s before it ran", early);
    else {
        pj->follow = st->tap.live != NULL;
        char *spec = exec_remote_spec(pj, &len);
        rc = cluster_run(x->cluster, pj->rec.id, pj->node_image ? pj->node_image : pj->rec.image,
                         spec, len, &co, &e);
    }
    pthread_mutex_lock(&x->runs.lock);
    pj->remote = false;
    _cleanup_free_ char *cancelled_by = steal_ptr(pj->cancelled_by);
    pthread_mutex_unlock(&x->runs.lock);
    free(pj->node);
    pj->node = steal_ptr(co.node);
    if (rc == 0) {
        struct tar_out_limits lim = {.max_file_size = (size_t)cfg->max_file_size,
                                     .max_total = (size_t)cfg->output_files_limit,
                                     .max_files = (size_t)cfg->max_output_files,
                                     .max_display = (size_t)cfg->max_display};
        if (exec_remote_result_parse(&lim, pj->limits.output_limit, co.result, co.result_len,
                                     &st->res, &st->out, &e) < 0) {
            log_warn("executor: node '%s' sent a result for '%s' that envhub refuses: %s", pj->node,
                     pj->rec.id, e.msg);
            err_prefix(&e, "node '%s' sent a result envhub refuses", pj->node);
            result_unrun(&st->res, EXEC_ERROR, xstrdup(e.msg));
            st->out.engine_failed = true;
            err_copy(&st->out.engine_err, &e);
        } else if (cancelled_by && st->res.status != EXEC_SUCCEEDED) {
            st->res.status = EXEC_INTERRUPTED;
            free(st->res.error);
            st->res.error = xasprintf("cancelled by %s while it ran", cancelled_by);
        }
    } else if (e.code == ERR_CANCELLED) {
        result_unrun(&st->res, EXEC_INTERRUPTED, xstrdup(e.msg));
    } else if (pj->node) {
        result_unrun(&st->res, EXEC_INTERRUPTED, xasprintf("the job was interrupted: %s", e.msg));
    } else {
        st->out.engine_failed = true;
        err_copy(&st->out.engine_err, &e);
        result_unrun(&st->res, exec_stopping(x) ? EXEC_INTERRUPTED : EXEC_ERROR,
                     xasprintf("envhub could not run the job: %s", e.msg));
    }
    cluster_outcome_release(&co);
}

int exec_job_execute(struct executor *x, struct prepared_job *pj, struct job_result *ret,
                     struct err *err)
{
    struct run_state st = {.tap = {.x = x}};

    result_reset(&st.res, pj->rec.id);
    if (run_begin(x, pj, err) < 0)
        return -1;
    /* an asynchronous job's live output, closed once the row is final; a
     * synchronous job's caller gets it all in the answer */
    st.tap.live = steal_ptr(pj->live);
    if (x->cluster)
        run_remote(x, pj, &st);
    else
        run_in_container(x, pj, &st);
    slot_release(x);
    if (pj->node)
        pj->rec.node = xstrdup(pj->node);
    return run_end(x, pj, &st, ret, err);
}

struct pull_tap {
    struct executor *x;
    const char *image;
};

static int on_pull_line(void *ctx, const char *line)
{
    struct pull_tap *t = ctx;
    exec_note_pull(t->x, t->image, line);
    return 0;
}

/* A node has @image, or pulls it (its registry reference, by digest);
 * /health and /metrics of the server see the pull through the heartbeat. */
static int node_image(struct executor *x, const char *image, struct err *err)
{
    struct engine_image_info info = {0};
    if (engine_image_inspect(x->engine, image, &info, err) == 0) {
        engine_image_info_release(&info);
        return 0;
    }
    if (err->code != ERR_NOT_FOUND)
        return -1;
    err_clear(err);
    int64_t t0 = time_mono_ms();
    struct pull_tap tap = {x, image};
    exec_note_pull(x, image, "starting");
    log_info("executor: pulling %s for a job", image);
    int rc = engine_image_pull(x->engine, image, on_pull_line, &tap, err);
    exec_note_pull(x, image, NULL);
    if (rc < 0)
        return err_prefix(err, "image '%s' is not on this node and cannot be pulled", image);
    pthread_mutex_lock(&x->stats.lock);
    bool known = false;
    for (size_t i = 0; x->stats.pulled && x->stats.pulled[i] && !known; i++)
        known = strcmp(x->stats.pulled[i], image) == 0;
    if (!known)
        strv_push(&x->stats.pulled, xstrdup(image));
    pthread_mutex_unlock(&x->stats.lock);
    log_info("executor: pulled %s in %.1f s", image, (double)(time_mono_ms() - t0) / 1000.0);
    return 0;
}

int executor_node_run(struct executor *x, const char *spec, size_t len, engine_output_fn live,
                      void *live_ctx, char **ret_result, size_t *ret_len, bool *ret_unrun,
                      struct err *err)
{
    struct prepared_job pj;
    struct run_state st = {.tap = {.x = x}};
    struct err jerr = ERR_INIT;

    (void)err;
    *ret_unrun = false;
    if (exec_remote_spec_parse(spec, len, &pj, &jerr) < 0) {
        /* the server hears why, rather than waiting for a result */
        result_unrun(&st.res, EXEC_ERROR, xasprintf("the node cannot run it: %s", jerr.msg));
        st.out.engine_failed = true;
        err_copy(&st.out.engine_err, &jerr);
    } else {
        pj.recorded = true; /* it waits for a slot rather than being refused; cancels find it */
        if (pj.follow && live) {
            st.relay = live;
            st.relay_ctx = live_ctx;
        }
        result_reset(&st.res, pj.rec.id);
        exec_runs_register(x, &pj);
        int rc = node_image(x, pj.rec.image, &jerr);
        if (rc == 0 && (rc = slot_acquire(x, &pj, &jerr)) == 0) {
            int64_t backlog_ms = pj.rec.timeout_s * 1000;
            rc = exec_containers_backlog_wait(
                x, backlog_ms < BACKLOG_WAIT_MIN_MS ? BACKLOG_WAIT_MIN_MS : backlog_ms, &jerr);
            if (rc == 0)
                run_in_container(x, &pj, &st);
            slot_release(x);
        }
        if (rc < 0) /* cancelled before it ran, the node stopping, no room */
            result_unrun(&st.res,
                         jerr.code == ERR_CANCELLED || exec_stopping(x) ? EXEC_INTERRUPTED
                                                                        : EXEC_ERROR,
                         xasprintf("the job did not run on the node: %s", jerr.msg));
        exec_runs_unregister(x, &pj);
        struct err ping = ERR_INIT;
        if (rc < 0 && jerr.code != ERR_CANCELLED && !exec_stopping(x) &&
            engine_ping(x->engine, &ping) < 0) {
            *ret_unrun = true; /* no container: another node may run it */
        } else if (st.res.status != EXEC_SUCCEEDED && st.res.status != EXEC_INTERRUPTED &&
                   engine_ping(x->engine, &ping) < 0) {
            /* not the job's doing: the node lost its engine (killed, stopped), which took
             * the job's container with it */
            free(st.res.error);
            st.res.status = EXEC_INTERRUPTED;
            st.res.exit_code = -1;
            st.res.error = xasprintf("the job was interrupted: node '%s' lost its engine while "
                                     "the job ran (%.150s)",
                                     x->instance + strlen("node-"), ping.msg);
        }
    }
    if (st.out.engine_failed)
        exec_count_engine_error(x);
    *ret_result = exec_remote_result_text(&st.res, &st.out, ret_len);
    job_result_release(&st.res);
    free(st.out.image_id);
    strv_free(st.out.preload_errors);
    exec_job_release(&pj);
    return 0;
}

int executor_run(struct executor *x, const struct job_request *req, struct job_result *ret,
                 struct err *err)
{
    struct prepared_job pj;

    if (exec_job_prepare(x, req, &pj, err) < 0)
        return -1;
    exec_runs_register(x, &pj);
    int rc = exec_job_execute(x, &pj, ret, err);
    exec_runs_unregister(x, &pj);
    exec_job_release(&pj);
    return rc;
}

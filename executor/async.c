/* executor/async.c - asynchronous submissions and cancellation.
 *
 * A submitted job is recorded as queued at once and waits in a FIFO for one
 * of the async workers, which run it exactly as a synchronous job (runs.c:
 * slot, container, row). Cancelling a queued job takes it out of the queue;
 * cancelling one a worker took goes to the registry of runs (runs.c), which
 * kills its container or stops it at its next step; either way the row ends
 * `interrupted` with "cancelled by ...". async.lock guards the queue and the
 * done hook; a worker registers the job it takes (runs.lock, taken inside
 * async.lock) before the job leaves the queue, so that a cancel finds it in
 * one or the other. Calls runs.c, live.c, shared.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

struct async_job {
    struct prepared_job pj;
    struct async_job *next;
};

static void async_job_free(struct async_job *j)
{
    if (!j)
        return;
    exec_job_release(&j->pj);
    free(j);
}

/* The hook is called without async.lock (it takes its owner's locks), but
 * counted, so that executor_set_done_hook() can wait until no call of the
 * old hook is left: its owner may free what ctx points to after that. */
static void notify_done(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->async.lock);
    void (*fn)(void *, const char *) = x->async.on_done;
    void *ctx = x->async.on_done_ctx;
    if (fn)
        x->async.hook_calls++;
    pthread_mutex_unlock(&x->async.lock);
    if (!fn)
        return;
    fn(ctx, id);
    pthread_mutex_lock(&x->async.lock);
    if (--x->async.hook_calls == 0)
        pthread_cond_broadcast(&x->async.hook_idle);
    pthread_mutex_unlock(&x->async.lock);
}

/* Record a job that never ran as interrupted with @why; its followers and
 * the done hook hear of it. */
static void finish_unrun(struct executor *x, struct prepared_job *pj, const char *why)
{
    struct err err = ERR_INIT;
    struct execution_record *rec = &pj->rec;
    rec->status = EXEC_INTERRUPTED;
    free(rec->error);
    rec->error = xstrdup(why);
    rec->finished_at = time_now_ms();
    rec->stdout_text = xstrdup("");
    rec->stderr_text = xstrdup("");
    exec_count(x, rec->environment, EXEC_INTERRUPTED, -1);
    if (catalog_execution_finish(x->catalog, rec, &err) < 0)
        log_warn("executor: cannot record the end of %s: %s", rec->id, err.msg);
    if (pj->live) {
        exec_live_close(x, pj->live);
        pj->live = NULL;
    }
    notify_done(x, rec->id);
}

/* ---- submissions ---- */

int executor_submit_batch(struct executor *x, const struct job_request *reqs, size_t n,
                          char (*ret_ids)[32], struct err *err)
{
    struct async_job **jobs = xcalloc(n ? n : 1, sizeof(*jobs));
    size_t ready = 0, recorded = 0;
    int rc = -1;

    /* every job resolved (environment, policy, files) before any is queued */
    for (; ready < n; ready++) {
        jobs[ready] = xcalloc(1, sizeof(**jobs));
        if (exec_job_prepare(x, &reqs[ready], &jobs[ready]->pj, err) < 0) {
            if (n > 1)
                err_prefix(err, "jobs[%zu]", ready);
            free(jobs[ready]);
            jobs[ready] = NULL;
            goto out;
        }
        jobs[ready]->pj.recorded = true;
    }
    pthread_mutex_lock(&x->async.lock);
    bool full = x->async.queued + (int64_t)n > x->cfg->async_queue_limit;
    pthread_mutex_unlock(&x->async.lock);
    if (exec_stopping(x)) {
        err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
        goto out;
    }
    if (full) {
        err_set(err, ERR_BUSY,
                "the asynchronous queue is full (ENVHUB_ASYNC_QUEUE_LIMIT %lld); retry later",
                (long long)x->cfg->async_queue_limit);
        goto out;
    }
    for (; recorded < n; recorded++)
        if (catalog_execution_insert(x->catalog, &jobs[recorded]->pj.rec, err) < 0) {
            err_prefix(err, "cannot record execution");
            goto out;
        }
    /* followers may come before a worker takes the job */
    for (size_t i = 0; i < n; i++)
        jobs[i]->pj.live = exec_live_open(x, jobs[i]->pj.rec.id);
    pthread_mutex_lock(&x->async.lock);
    for (size_t i = 0; i < n; i++) {
        struct async_job *j = jobs[i];
        snprintf(ret_ids[i], 32, "%s", j->pj.rec.id);
        if (x->async.tail)
            x->async.tail->next = j;
        else
            x->async.head = j;
        x->async.tail = j;
        x->async.queued++;
        jobs[i] = NULL;
    }
    pthread_cond_broadcast(&x->async.ready);
    pthread_mutex_unlock(&x->async.lock);
    rc = 0;
out:
    for (size_t i = 0; i < ready; i++) {
        if (!jobs[i])
            continue;
        if (i < recorded) /* recorded, then the batch failed: the row must not stay queued */
            finish_unrun(x, &jobs[i]->pj, "not run: the rest of its batch could not be queued");
        async_job_free(jobs[i]);
    }
    free(jobs);
    return rc;
}

/* ---- the workers ---- */

/* Run @j to its end (it is in the registry); its row is final after. */
static void run_one(struct executor *x, struct async_job *j)
{
    struct job_result res = {0};
    struct err err = ERR_INIT;

    if (exec_job_execute(x, &j->pj, &res, &err) < 0) {
        if (j->pj.rec.status == EXEC_QUEUED) {
            /* it never started (cancelled while it waited, or shutting down):
             * the row must not stay queued */
            finish_unrun(x, &j->pj, err.msg);
        } else {
            log_warn("executor: asynchronous job %s: %s", j->pj.rec.id, err.msg);
            notify_done(x, j->pj.rec.id);
        }
    } else {
        notify_done(x, j->pj.rec.id);
    }
    job_result_release(&res);
    exec_runs_unregister(x, &j->pj);
    if (j->pj.live)
        exec_live_close(x, j->pj.live);
    async_job_free(j);
}

static void *async_main(void *arg)
{
    struct executor *x = arg;

    pthread_mutex_lock(&x->async.lock);
    for (;;) {
        while (!x->async.head && !exec_stopping(x))
            pthread_cond_wait(&x->async.ready, &x->async.lock);
        if (exec_stopping(x))
            break;
        struct async_job *j = x->async.head;
        exec_runs_register(x, &j->pj); /* async.lock -> runs.lock */
        x->async.head = j->next;
        if (!x->async.head)
            x->async.tail = NULL;
        x->async.queued--;
        j->next = NULL;
        pthread_mutex_unlock(&x->async.lock);
        run_one(x, j);
        pthread_mutex_lock(&x->async.lock);
    }
    pthread_mutex_unlock(&x->async.lock);
    return NULL;
}

int executor_cancel(struct executor *x, const char *id, const char *by, struct err *err)
{
    struct async_job *found = NULL;

    pthread_mutex_lock(&x->async.lock);
    for (struct async_job **p = &x->async.head; *p; p = &(*p)->next)
        if (strcmp((*p)->pj.rec.id, id) == 0) {
            found = *p;
            *p = found->next;
            if (x->async.tail == found) {
                x->async.tail = NULL;
                for (struct async_job *t = x->async.head; t; t = t->next)
                    x->async.tail = t;
            }
            x->async.queued--;
            break;
        }
    pthread_mutex_unlock(&x->async.lock);
    if (!found) /* taken by a worker, or a synchronous job: in the registry if it runs */
        return exec_runs_cancel(x, id, by, err);

    _cleanup_free_ char *why = xasprintf("cancelled by %s before it ran", by ? by : "?");
    finish_unrun(x, &found->pj, why);
    async_job_free(found);
    return 0;
}

void executor_set_done_hook(struct executor *x, void (*fn)(void *ctx, const char *id), void *ctx)
{
    pthread_mutex_lock(&x->async.lock);
    x->async.on_done = fn;
    x->async.on_done_ctx = ctx;
    /* calls of the hook replaced may still run: wait for them */
    while (x->async.hook_calls > 0)
        pthread_cond_wait(&x->async.hook_idle, &x->async.lock);
    pthread_mutex_unlock(&x->async.lock);
}

int64_t exec_async_queued(struct executor *x)
{
    pthread_mutex_lock(&x->async.lock);
    int64_t n = x->async.queued;
    pthread_mutex_unlock(&x->async.lock);
    return n;
}

void exec_async_init(struct executor *x)
{
    pthread_mutex_init(&x->async.lock, NULL);
    pthread_cond_init(&x->async.ready, NULL);
    pthread_cond_init(&x->async.hook_idle, NULL);
}

int exec_async_start(struct executor *x, struct err *err)
{
    int64_t n = x->cfg->concurrent_limit;
    x->async.threads = xcalloc((size_t)n, sizeof(pthread_t));
    for (int64_t i = 0; i < n; i++) {
        if (pthread_create(&x->async.threads[i], NULL, async_main, x) != 0)
            return err_set(err, ERR_INTERNAL, "cannot start asynchronous worker %lld",
                           (long long)i);
        x->async.n_threads++;
    }
    return 0;
}

void exec_async_wake(struct executor *x)
{
    pthread_mutex_lock(&x->async.lock);
    pthread_cond_broadcast(&x->async.ready);
    pthread_mutex_unlock(&x->async.lock);
}

void exec_async_stop(struct executor *x)
{
    exec_async_wake(x);
    for (size_t i = 0; i < x->async.n_threads; i++)
        pthread_join(x->async.threads[i], NULL);
    free(x->async.threads);
    x->async.threads = NULL;
    x->async.n_threads = 0;
    /* what never ran is recorded as interrupted */
    pthread_mutex_lock(&x->async.lock);
    while (x->async.head) {
        struct async_job *j = x->async.head;
        x->async.head = j->next;
        pthread_mutex_unlock(&x->async.lock);
        finish_unrun(x, &j->pj, "envhub stopped before it ran");
        async_job_free(j);
        pthread_mutex_lock(&x->async.lock);
    }
    x->async.tail = NULL;
    x->async.queued = 0;
    pthread_mutex_unlock(&x->async.lock);
}

void exec_async_fini(struct executor *x)
{
    pthread_cond_destroy(&x->async.hook_idle);
    pthread_cond_destroy(&x->async.ready);
    pthread_mutex_destroy(&x->async.lock);
}

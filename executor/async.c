/* executor/async.c - asynchronous submissions, cancellation and live output.
 *
 * A submitted job is recorded as queued at once and waits in a FIFO for one
 * of the async workers, which run it exactly as a synchronous job (slot,
 * container, row). While any job runs, its output is also kept in a live
 * buffer that followers read as it grows. Cancelling a queued job takes it
 * out of the queue; cancelling a running one kills its container; either way
 * the row ends `interrupted` with "cancelled by ...". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

#define LIVE_MAX (4 * 1024 * 1024) /* bytes of live output kept per job */

struct live_chunk {
    enum engine_stream stream;
    size_t offset, len; /* in data */
};

struct live {
    char id[32];
    struct buf data;
    struct live_chunk *chunks;
    size_t n_chunks, cap_chunks;
    bool done, truncated;
    int refs; /* the job and each follower */
    struct live *next;
};

struct async_job {
    struct prepared_job pj;
    struct async_job *next;
};

static struct live *live_find_locked(struct executor *x, const char *id)
{
    for (struct live *l = x->lives; l; l = l->next)
        if (strcmp(l->id, id) == 0)
            return l;
    return NULL;
}

static void live_unref_locked(struct executor *x, struct live *l)
{
    if (--l->refs > 0)
        return;
    for (struct live **p = &x->lives; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    buf_release(&l->data);
    free(l->chunks);
    free(l);
}

static struct live *exec_live_open_locked(struct executor *x, const char *id)
{
    struct live *l = xcalloc(1, sizeof(*l));
    snprintf(l->id, sizeof(l->id), "%s", id);
    l->data = (struct buf)BUF_INIT(LIVE_MAX);
    l->refs = 1;
    l->next = x->lives;
    x->lives = l;
    return l;
}

struct live *exec_live_open(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->lock);
    struct live *l = exec_live_open_locked(x, id);
    pthread_mutex_unlock(&x->lock);
    return l;
}

int exec_live_append(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct live_tap *t = ctx;
    struct executor *x = t->x;
    struct live *l = t->live;

    pthread_mutex_lock(&x->lock);
    size_t offset = l->data.len;
    size_t took = buf_append_upto(&l->data, data, len);
    if (took < len)
        l->truncated = true;
    if (took) {
        if (l->n_chunks == l->cap_chunks) {
            l->cap_chunks = l->cap_chunks ? 2 * l->cap_chunks : 64;
            l->chunks = xrealloc(l->chunks, l->cap_chunks * sizeof(*l->chunks));
        }
        l->chunks[l->n_chunks++] = (struct live_chunk){stream, offset, took};
        pthread_cond_broadcast(&x->live_cond);
    }
    pthread_mutex_unlock(&x->lock);
    return 0;
}

void exec_live_close(struct executor *x, struct live *l)
{
    pthread_mutex_lock(&x->lock);
    l->done = true;
    pthread_cond_broadcast(&x->live_cond);
    live_unref_locked(x, l);
    pthread_mutex_unlock(&x->lock);
}

int executor_follow(struct executor *x, const char *id, executor_chunk_fn fn, void *ctx,
                    int64_t keepalive_ms, struct err *err)
{
    size_t next = 0;

    pthread_mutex_lock(&x->lock);
    struct live *l = live_find_locked(x, id);
    if (!l) {
        pthread_mutex_unlock(&x->lock);
        return err_set(err, ERR_NOT_FOUND, "execution '%s' is not running now", id);
    }
    l->refs++;
    for (;;) {
        while (next < l->n_chunks) {
            struct live_chunk c = l->chunks[next++];
            _cleanup_free_ char *copy = xmemdup(l->data.data + c.offset, c.len);
            pthread_mutex_unlock(&x->lock);
            int rc = fn(ctx, c.stream, copy, c.len);
            pthread_mutex_lock(&x->lock);
            if (rc < 0)
                goto out;
        }
        if (l->done || x->stopping)
            break;
        struct timespec ts = time_deadline_in(keepalive_ms);
        size_t before = l->n_chunks;
        pthread_cond_timedwait(&x->live_cond, &x->lock, &ts);
        if (l->n_chunks == before && !l->done && !x->stopping) {
            /* quiet for a while: a keepalive tells a dead follower from a quiet job */
            pthread_mutex_unlock(&x->lock);
            int rc = fn(ctx, ENGINE_STDIN, NULL, 0);
            pthread_mutex_lock(&x->lock);
            if (rc < 0)
                goto out;
        }
    }
out:
    live_unref_locked(x, l);
    pthread_mutex_unlock(&x->lock);
    return 0;
}

/* ---- submissions ---- */

static void finish_unrun(struct executor *x, struct prepared_job *pj, const char *why);

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
    }
    pthread_mutex_lock(&x->lock);
    bool full = x->async_queued + (int64_t)n > x->cfg->async_queue_limit;
    bool stopping = x->stopping;
    pthread_mutex_unlock(&x->lock);
    if (stopping) {
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
    pthread_mutex_lock(&x->lock);
    for (size_t i = 0; i < n; i++) {
        struct async_job *j = jobs[i];
        snprintf(ret_ids[i], 32, "%s", j->pj.rec.id);
        j->pj.live = exec_live_open_locked(x, j->pj.rec.id); /* followers may come early */
        if (x->async_tail)
            x->async_tail->next = j;
        else
            x->async_head = j;
        x->async_tail = j;
        x->async_queued++;
        jobs[i] = NULL;
    }
    pthread_cond_broadcast(&x->async_ready);
    pthread_mutex_unlock(&x->lock);
    rc = 0;
out:
    for (size_t i = 0; i < ready; i++) {
        if (!jobs[i])
            continue;
        if (i < recorded) /* recorded, then the batch failed: the row must not stay queued */
            finish_unrun(x, &jobs[i]->pj, "not run: the rest of its batch could not be queued");
        exec_job_release(&jobs[i]->pj);
        free(jobs[i]);
    }
    free(jobs);
    return rc;
}

int executor_submit(struct executor *x, const struct job_request *req, char ret_id[32],
                    struct err *err)
{
    return executor_submit_batch(x, req, 1, (char(*)[32])ret_id, err);
}

static void notify_done(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->lock);
    void (*fn)(void *, const char *) = x->on_done;
    void *ctx = x->on_done_ctx;
    pthread_mutex_unlock(&x->lock);
    if (fn)
        fn(ctx, id);
}

/* Record a job that never ran as interrupted with @why. */
static void finish_unrun(struct executor *x, struct prepared_job *pj, const char *why)
{
    struct err err = ERR_INIT;
    struct execution_record *rec = &pj->rec;
    rec->status = EXEC_INTERRUPTED;
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

static void taken_remove_locked(struct executor *x, struct async_job *j)
{
    for (struct async_job **p = &x->async_taken; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
}

static void *async_main(void *arg)
{
    struct executor *x = arg;

    pthread_mutex_lock(&x->lock);
    for (;;) {
        while (!x->async_head && !x->stopping)
            pthread_cond_wait(&x->async_ready, &x->lock);
        if (x->stopping)
            break;
        struct async_job *j = x->async_head;
        x->async_head = j->next;
        if (!x->async_head)
            x->async_tail = NULL;
        x->async_queued--;
        j->next = x->async_taken;
        x->async_taken = j;
        pthread_mutex_unlock(&x->lock);

        struct job_result res = {0};
        struct err err = ERR_INIT;
        if (exec_job_execute(x, &j->pj, true, &res, &err) < 0) {
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
        pthread_mutex_lock(&x->lock);
        taken_remove_locked(x, j);
        pthread_mutex_unlock(&x->lock);
        if (j->pj.live)
            exec_live_close(x, j->pj.live);
        exec_job_release(&j->pj);
        free(j);
        pthread_mutex_lock(&x->lock);
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

int executor_cancel(struct executor *x, const char *id, const char *by, struct err *err)
{
    struct async_job *found = NULL;
    _cleanup_free_ char *kill_id = NULL;

    pthread_mutex_lock(&x->lock);
    for (struct async_job **p = &x->async_head; *p; p = &(*p)->next)
        if (strcmp((*p)->pj.rec.id, id) == 0) {
            found = *p;
            *p = found->next;
            if (x->async_tail == found) {
                x->async_tail = NULL;
                for (struct async_job *t = x->async_head; t; t = t->next)
                    x->async_tail = t;
            }
            x->async_queued--;
            break;
        }
    if (!found)
        for (struct container_ref *c = x->active; c; c = c->next)
            if (c->exec_id && strcmp(c->exec_id, id) == 0) {
                free(c->cancelled_by);
                c->cancelled_by = xstrdup(by ? by : "");
                kill_id = xstrdup(c->id);
                break;
            }
    bool taken = false;
    if (!found && !kill_id)
        for (struct async_job *j = x->async_taken; j; j = j->next)
            if (strcmp(j->pj.rec.id, id) == 0) {
                /* waiting for a slot, or its container is being made: it stops
                 * at the next step (set once, read without the lock after) */
                if (!j->pj.cancelled_by)
                    j->pj.cancelled_by = xstrdup(by ? by : "?");
                pthread_cond_broadcast(&x->slot_freed);
                taken = true;
                break;
            }
    pthread_mutex_unlock(&x->lock);
    if (taken)
        return 0;

    if (found) {
        _cleanup_free_ char *why = xasprintf("cancelled by %s before it ran", by ? by : "?");
        finish_unrun(x, &found->pj, why);
        exec_job_release(&found->pj);
        free(found);
        return 0;
    }
    if (kill_id) {
        /* the job sees its exec end and records the cancellation */
        if (engine_container_kill(x->engine, kill_id, err) < 0)
            return err_prefix(err, "cannot cancel execution '%s'", id);
        return 0;
    }
    return err_set(err, ERR_NOT_FOUND, "execution '%s' is not queued or running", id);
}

void executor_set_done_hook(struct executor *x, void (*fn)(void *ctx, const char *id), void *ctx)
{
    pthread_mutex_lock(&x->lock);
    x->on_done = fn;
    x->on_done_ctx = ctx;
    pthread_mutex_unlock(&x->lock);
}

int exec_async_start(struct executor *x, struct err *err)
{
    int64_t n = x->cfg->concurrent_limit;
    x->async_threads = xcalloc((size_t)n, sizeof(pthread_t));
    for (int64_t i = 0; i < n; i++) {
        if (pthread_create(&x->async_threads[i], NULL, async_main, x) != 0)
            return err_set(err, ERR_INTERNAL, "cannot start asynchronous worker %lld",
                           (long long)i);
        x->n_async_threads++;
    }
    return 0;
}

void exec_async_stop(struct executor *x)
{
    pthread_mutex_lock(&x->lock);
    pthread_cond_broadcast(&x->async_ready);
    pthread_mutex_unlock(&x->lock);
    for (size_t i = 0; i < x->n_async_threads; i++)
        pthread_join(x->async_threads[i], NULL);
    free(x->async_threads);
    x->async_threads = NULL;
    x->n_async_threads = 0;
    /* what never ran is recorded as interrupted */
    pthread_mutex_lock(&x->lock);
    while (x->async_head) {
        struct async_job *j = x->async_head;
        x->async_head = j->next;
        pthread_mutex_unlock(&x->lock);
        finish_unrun(x, &j->pj, "envhub stopped before it ran");
        exec_job_release(&j->pj);
        free(j);
        pthread_mutex_lock(&x->lock);
    }
    x->async_tail = NULL;
    x->async_queued = 0;
    pthread_mutex_unlock(&x->lock);
}

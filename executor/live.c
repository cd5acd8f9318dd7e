/* executor/live.c - live output: while a job runs, its output is also kept
 * in a live buffer that followers (executor_follow) read as it grows. An
 * asynchronous job's buffer opens at its submission, so followers may come
 * before it starts. Calls shared.c only; the run feeds it through a tap
 * (exec_live_append, an engine_output_fn). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cleanup.h"
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

void exec_live_init(struct executor *x)
{
    pthread_mutex_init(&x->live.lock, NULL);
    pthread_cond_init(&x->live.grew, NULL);
}

void exec_live_wake(struct executor *x)
{
    pthread_mutex_lock(&x->live.lock);
    pthread_cond_broadcast(&x->live.grew);
    pthread_mutex_unlock(&x->live.lock);
}

static void live_free(struct live *l)
{
    buf_release(&l->data);
    free(l->chunks);
    free(l);
}

void exec_live_fini(struct executor *x)
{
    while (x->live.list) { /* none, once every job and follower is done */
        struct live *l = x->live.list;
        x->live.list = l->next;
        live_free(l);
    }
    pthread_cond_destroy(&x->live.grew);
    pthread_mutex_destroy(&x->live.lock);
}

static struct live *find_locked(struct executor *x, const char *id)
{
    for (struct live *l = x->live.list; l; l = l->next)
        if (strcmp(l->id, id) == 0)
            return l;
    return NULL;
}

static void unref_locked(struct executor *x, struct live *l)
{
    if (--l->refs > 0)
        return;
    for (struct live **p = &x->live.list; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    live_free(l);
}

struct live *exec_live_open(struct executor *x, const char *id)
{
    struct live *l = xcalloc(1, sizeof(*l));
    snprintf(l->id, sizeof(l->id), "%s", id);
    l->data = (struct buf)BUF_INIT(LIVE_MAX);
    l->refs = 1;
    pthread_mutex_lock(&x->live.lock);
    l->next = x->live.list;
    x->live.list = l;
    pthread_mutex_unlock(&x->live.lock);
    return l;
}

static void append_locked(struct executor *x, struct live *l, enum engine_stream stream,
                          const char *data, size_t len)
{
    size_t offset = l->data.len;
    size_t took = buf_append_upto(&l->data, data, len);
    if (took < len)
        l->truncated = true;
    if (took) {
        ALLOC_GROW(l->chunks, l->n_chunks + 1, l->cap_chunks);
        l->chunks[l->n_chunks++] = (struct live_chunk){stream, offset, took};
        pthread_cond_broadcast(&x->live.grew);
    }
}

int exec_live_append(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct live_tap *t = ctx;
    struct executor *x = t->x;

    pthread_mutex_lock(&x->live.lock);
    append_locked(x, t->live, stream, data, len);
    pthread_mutex_unlock(&x->live.lock);
    return 0;
}

int executor_remote_output(struct executor *x, const char *id, bool is_stderr, const char *data,
                           size_t len, struct err *err)
{
    pthread_mutex_lock(&x->live.lock);
    struct live *l = find_locked(x, id);
    if (!l || l->done) {
        pthread_mutex_unlock(&x->live.lock);
        return err_set(err, ERR_NOT_FOUND, "execution '%s' has no live output to add to", id);
    }
    append_locked(x, l, is_stderr ? ENGINE_STDERR : ENGINE_STDOUT, data, len);
    pthread_mutex_unlock(&x->live.lock);
    return 0;
}

void exec_live_close(struct executor *x, struct live *l)
{
    pthread_mutex_lock(&x->live.lock);
    l->done = true;
    pthread_cond_broadcast(&x->live.grew);
    unref_locked(x, l);
    pthread_mutex_unlock(&x->live.lock);
}

int executor_follow(struct executor *x, const char *id, executor_chunk_fn fn, void *ctx,
                    int64_t keepalive_ms, struct err *err)
{
    size_t next = 0;

    pthread_mutex_lock(&x->live.lock);
    struct live *l = find_locked(x, id);
    if (!l) {
        pthread_mutex_unlock(&x->live.lock);
        return err_set(err, ERR_NOT_FOUND, "execution '%s' is not running now", id);
    }
    l->refs++;
    for (;;) {
        while (next < l->n_chunks) {
            struct live_chunk c = l->chunks[next++];
            _cleanup_free_ char *copy = xmemdup(l->data.data + c.offset, c.len);
            pthread_mutex_unlock(&x->live.lock);
            int rc = fn(ctx, c.stream, copy, c.len);
            pthread_mutex_lock(&x->live.lock);
            if (rc < 0)
                goto out;
        }
        if (l->done || exec_stopping(x))
            break;
        struct timespec ts = time_deadline_in(keepalive_ms);
        size_t before = l->n_chunks;
        pthread_cond_timedwait(&x->live.grew, &x->live.lock, &ts);
        if (l->n_chunks == before && !l->done && !exec_stopping(x)) {
            /* quiet for a while: a keepalive tells a dead follower from a quiet job */
            pthread_mutex_unlock(&x->live.lock);
            int rc = fn(ctx, ENGINE_STDIN, NULL, 0);
            pthread_mutex_lock(&x->live.lock);
            if (rc < 0)
                goto out;
        }
    }
out:
    unref_locked(x, l);
    pthread_mutex_unlock(&x->live.lock);
    return 0;
}

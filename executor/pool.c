/* executor/pool.c - warm pools: started sandbox containers waiting for jobs.
 *
 * Each image in service may have a pool: ENVHUB_POOL_SIZE containers for the
 * default image, the environment's policy pool_size for an environment's
 * current image. A job takes a ready container (a hit) or makes one (a miss);
 * the pool thread starts a replacement. A container serves one job, unless
 * the environment's policy turns on recycling (recycle N > 1): then it goes
 * back to its pool after a job, and its next job's wrapper first kills every
 * process of uid 1000 and empties /workspace, /tmp and /dev/shm (a container
 * that cannot be cleaned goes away and the job gets a fresh one). Targets are
 * read again when environments change (executor_pool_refresh): a new version
 * gets its pool, the old version's drains. Invariant: a container is in at
 * most one of active, ready and removals. */
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

#define POOL_RETRY_MS 2000 /* after a failure to start a container */

static struct pool *pool_find(struct executor *x, const char *image)
{
    for (struct pool *p = x->pools; p; p = p->next)
        if (strcmp(p->image, image) == 0)
            return p;
    return NULL;
}

static struct container_ref *ref_new(const char *id, const char *image, int64_t uses)
{
    struct container_ref *c = xcalloc(1, sizeof(*c));
    c->id = xstrdup(id);
    c->image = xstrdup(image);
    c->uses = uses;
    return c;
}

/* Under the lock: to the removal thread. */
static void to_removal_locked(struct executor *x, struct container_ref *c)
{
    c->next = x->removals;
    x->removals = c;
    pthread_cond_signal(&x->removal_ready);
}

char *exec_pool_take(struct executor *x, const char *image, const struct exec_limits *l,
                     int64_t *ret_uses, bool returns)
{
    char *id = NULL;

    pthread_mutex_lock(&x->lock);
    struct pool *p = pool_find(x, image);
    if (p && !executor_limits_equal(&p->limits, l))
        p = NULL; /* made for other limits (a policy changed): not for this job */
    /* a session gets a container that never served a job (recycled ones are
     * cleaned by their next job's wrapper, which a session does not run) */
    struct container_ref **at = p ? &p->ready : NULL;
    while (at && *at && !returns && (*at)->uses > 0)
        at = &(*at)->next;
    if (at && *at) {
        struct container_ref *c = *at;
        *at = c->next;
        p->n_ready--;
        p->hits++;
        *ret_uses = c->uses;
        id = steal_ptr(c->id);
        exec_ref_free(c);
        if (returns && p->recycle > 1)
            p->n_out++;                     /* it comes back: no replacement unless it does not */
        pthread_cond_signal(&x->pool_wake); /* start its replacement */
    } else if (p && p->want > 0) {
        p->misses++;
    }
    pthread_mutex_unlock(&x->lock);
    return id;
}

/* Under the lock: containers of @p ready, starting, or serving a job they come back from. */
static int64_t circulation(const struct pool *p)
{
    return p->n_ready + p->starting + p->n_out;
}

void exec_pool_return(struct executor *x, const char *image, const char *cid, int64_t uses,
                      bool usable, bool from_pool)
{
    struct container_ref *c = ref_new(cid, image, uses);

    pthread_mutex_lock(&x->lock);
    for (struct container_ref **a = &x->active; *a; a = &(*a)->next)
        if (strcmp((*a)->id, cid) == 0) {
            struct container_ref *gone = *a;
            *a = gone->next;
            exec_ref_free(gone);
            break;
        }
    struct pool *p = pool_find(x, image);
    if (p && from_pool && p->n_out > 0)
        p->n_out--;
    if (usable && p && p->wanted && p->recycle > 1 && uses < p->recycle && !x->stopping &&
        circulation(p) < p->want) {
        /* back to the pool as it is: its next job's wrapper cleans it first */
        c->next = p->ready;
        p->ready = c;
        p->n_ready++;
    } else {
        to_removal_locked(x, c);
        if (p && from_pool)
            pthread_cond_signal(&x->pool_wake); /* its replacement, if the pool is short */
    }
    pthread_mutex_unlock(&x->lock);
}

/* ---- targets ---- */

struct target {
    char *image;
    char *environment;
    int64_t want, recycle;
    struct exec_limits limits;
};

/* What the pools should hold: the default image and each ready environment's image. */
static size_t read_targets(struct executor *x, struct target **ret)
{
    struct env_record *envs = NULL;
    size_t n = 0, k = 0;
    struct err err = ERR_INIT;
    struct target *t;

    if (catalog_env_list(x->catalog, &envs, &n, &err) < 0) {
        log_warn("executor: cannot read the environments for the warm pools: %s", err.msg);
        n = 0;
    }
    t = xcalloc(n + 1, sizeof(*t));
    t[k] = (struct target){
        xstrdup(x->cfg->default_image), NULL, x->cfg->pool_size, x->cfg->pool_recycle, {0}};
    executor_limits_default(x->cfg, &t[k++].limits);
    for (size_t i = 0; i < n; i++) {
        struct exec_limits l;
        if (envs[i].version == 0 || !envs[i].image || envs[i].lifecycle == ENV_RETIRED ||
            executor_policy_parse(x->cfg, envs[i].policy, &l, NULL, &err) < 0)
            continue;
        t[k++] = (struct target){xstrdup(envs[i].image), xstrdup(envs[i].name), l.pool_size,
                                 l.recycle, l};
    }
    env_records_free(envs, n);
    *ret = t;
    return k;
}

/* Under the lock: make the pools follow the targets; drained ones go to removal. */
static void apply_targets(struct executor *x, struct target *t, size_t n)
{
    for (struct pool *p = x->pools; p; p = p->next)
        p->wanted = false;
    for (size_t i = 0; i < n; i++) {
        struct pool *p = pool_find(x, t[i].image);
        if (!p) {
            p = xcalloc(1, sizeof(*p));
            p->image = steal_ptr(t[i].image);
            p->next = x->pools;
            x->pools = p;
        }
        free(p->environment);
        p->environment = steal_ptr(t[i].environment);
        if (!executor_limits_equal(&p->limits, &t[i].limits)) {
            /* a new policy: the containers made for the old one go */
            while (p->ready) {
                struct container_ref *c = p->ready;
                p->ready = c->next;
                p->n_ready--;
                to_removal_locked(x, c);
            }
        }
        p->limits = t[i].limits;
        p->want = t[i].want;
        p->recycle = t[i].recycle < 1 ? 1 : t[i].recycle;
        p->wanted = true;
    }
    for (struct pool *p = x->pools; p; p = p->next) {
        if (!p->wanted)
            p->want = 0;
        while (p->n_ready > p->want && p->ready) {
            struct container_ref *c = p->ready;
            p->ready = c->next;
            p->n_ready--;
            to_removal_locked(x, c);
        }
    }
}

/* ---- the pool thread ---- */

static char *start_container(struct executor *x, const char *image, const struct exec_limits *l,
                             struct err *err)
{
    struct sandbox sb;
    char *id = NULL;

    exec_sandbox_spec(x, image, l, &sb);
    if (engine_container_create(x->engine, &sb.spec, &id, err) < 0)
        return NULL;
    if (engine_container_start(x->engine, id, err) < 0) {
        struct err rerr = ERR_INIT;
        engine_container_remove(x->engine, id, &rerr);
        free(id);
        return NULL;
    }
    return id;
}

static void refresh_default_image_id(struct executor *x)
{
    struct engine_image_info info = {0};
    struct err err = ERR_INIT;

    if (engine_image_inspect(x->engine, x->cfg->default_image, &info, &err) < 0) {
        log_warn("executor: default image '%s': %s", x->cfg->default_image, err.msg);
        return;
    }
    pthread_mutex_lock(&x->lock);
    free(x->default_image_id);
    x->default_image_id = steal_ptr(info.id);
    pthread_mutex_unlock(&x->lock);
    engine_image_info_release(&info);
}

static void *pool_main(void *arg)
{
    struct executor *x = arg;

    pthread_mutex_lock(&x->lock);
    while (!x->stopping) {
        if (x->pool_refresh) {
            x->pool_refresh = false;
            pthread_mutex_unlock(&x->lock);
            refresh_default_image_id(x);
            struct target *t = NULL;
            size_t n = read_targets(x, &t);
            pthread_mutex_lock(&x->lock);
            apply_targets(x, t, n);
            for (size_t i = 0; i < n; i++) {
                free(t[i].image);
                free(t[i].environment);
            }
            free(t);
            continue;
        }
        struct pool *need = NULL;
        for (struct pool *p = x->pools; p && !need; p = p->next)
            if (p->wanted && circulation(p) < p->want)
                need = p;
        if (!need) {
            pthread_cond_wait(&x->pool_wake, &x->lock);
            continue;
        }
        need->starting++;
        _cleanup_free_ char *image = xstrdup(need->image);
        struct exec_limits limits = need->limits;
        pthread_mutex_unlock(&x->lock);

        struct err err = ERR_INIT;
        _cleanup_free_ char *id = start_container(x, image, &limits, &err);

        pthread_mutex_lock(&x->lock);
        struct pool *p = pool_find(x, image);
        if (p)
            p->starting--;
        if (!id) {
            x->engine_errors++;
            log_warn("executor: cannot start a warm container of '%s', retrying in %d s: %s", image,
                     POOL_RETRY_MS / 1000, err.msg);
            struct timespec ts = time_deadline_in(POOL_RETRY_MS);
            pthread_cond_timedwait(&x->pool_wake, &x->lock, &ts);
            continue;
        }
        struct container_ref *c = ref_new(id, image, 0);
        if (p && p->wanted && !x->stopping && circulation(p) < p->want &&
            executor_limits_equal(&p->limits, &limits)) {
            c->next = p->ready;
            p->ready = c;
            p->n_ready++;
        } else {
            to_removal_locked(x, c);
        }
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

void executor_pool_refresh(struct executor *x)
{
    pthread_mutex_lock(&x->lock);
    x->pool_refresh = true;
    pthread_cond_signal(&x->pool_wake);
    pthread_mutex_unlock(&x->lock);
}

int exec_pool_start(struct executor *x, struct err *err)
{
    x->pool_refresh = true;
    if (pthread_create(&x->pool_thread, NULL, pool_main, x) != 0)
        return err_set(err, ERR_INTERNAL, "cannot start the warm pool thread");
    x->pool_started = true;
    return 0;
}

void exec_pool_stop(struct executor *x)
{
    pthread_mutex_lock(&x->lock);
    pthread_cond_broadcast(&x->pool_wake);
    pthread_mutex_unlock(&x->lock);
    if (x->pool_started) {
        pthread_join(x->pool_thread, NULL);
        x->pool_started = false;
    }
    pthread_mutex_lock(&x->lock);
    for (struct pool *p = x->pools; p; p = p->next)
        while (p->ready) {
            struct container_ref *c = p->ready;
            p->ready = c->next;
            p->n_ready--;
            to_removal_locked(x, c);
        }
    pthread_mutex_unlock(&x->lock);
}

void exec_pools_free(struct executor *x)
{
    while (x->pools) {
        struct pool *p = x->pools;
        x->pools = p->next;
        free(p->image);
        free(p->environment);
        free(p);
    }
}

void executor_pool_stats(struct executor *x, struct executor_pool_stat **ret, size_t *ret_n)
{
    size_t n = 0;
    pthread_mutex_lock(&x->lock);
    for (struct pool *p = x->pools; p; p = p->next)
        n++;
    struct executor_pool_stat *s = xcalloc(n + 1, sizeof(*s));
    size_t i = 0;
    for (struct pool *p = x->pools; p; p = p->next, i++) {
        s[i].image = xstrdup(p->image);
        s[i].environment = xstrdup(p->environment ? p->environment : "");
        s[i].want = p->want;
        s[i].ready = p->n_ready;
        s[i].hits = p->hits;
        s[i].misses = p->misses;
    }
    pthread_mutex_unlock(&x->lock);
    *ret = s;
    *ret_n = n;
}

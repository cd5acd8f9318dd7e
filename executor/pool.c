/* executor/pool.c - warm pools: started sandbox containers waiting for jobs.
 *
 * Each image in service may have a pool: ENVHUB_POOL_SIZE containers for the
 * default image, the environment's policy pool_size for an environment's
 * current image. That size is the pool's floor: its target follows demand,
 * ceil(recent takes per second x the time a container takes to make), up to
 * ENVHUB_MAX_POOL_SIZE, and falls back to the floor as the takes fade (the
 * excess ready containers go once the pool has been idle a minute). A job takes a ready container
 * (a hit) or makes one (a miss); the pool fillers (EXEC_POOL_FILLERS threads) start replacements. A
 * container serves one job, unless recycling is on (ENVHUB_POOL_RECYCLE, a policy's recycle N > 1):
 * then it goes back to its pool after a job, bound to that job's principal and environment version:
 * it serves nobody else (a job of another caller takes a fresh container; when the pool holds none,
 * one of the bound ones goes so that a fresh one replaces it). Its next job's wrapper first kills
 * every process but the container's first, removes the SysV IPC objects and POSIX message queues,
 * empties /workspace, /tmp and /dev/shm, and checks that it did (a container it cannot verify clean
 * goes away and the job gets a fresh one, see wrapper.sh). Under runsc nothing is recycled: gVisor
 * shows neither /proc/sysvipc nor /dev/mqueue, so no clean-up could be verified. Sessions only take
 * containers that never served a job. Bursts: a pool that does not recycle
 * still gives a used container back to its key (the same binding) when, at
 * the job's end, the pool has no fresh container ready for a next job:
 * arrivals outrun container creation (a client that sends its next job as
 * soon as the last one answered), and the key's next job would otherwise
 * wait for a container to be made. Such a container serves at most
 * ENVHUB_POOL_BURST_RECYCLE jobs, cleaned before each like any recycled
 * one; once fresh ones are ready again, used ones go as before, and one its
 * key does not take within POOL_BURST_IDLE_MS goes too (the burst is over).
 * Targets are read again when environments change
 * (executor_pool_refresh): a new version gets its pool, the old version's drains. Invariant: a
 * container is in at most one of active (containers.c), ready and removals (containers.c).
 * pool.lock guards the pools; it is never held while calling containers.c:
 * what leaves a pool is collected and handed over after. Calls
 * containers.c and shared.c. */
#include <math.h>
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

#define POOL_RETRY_MS 2000      /* after a failure to start a container */
#define POOL_RETARGET_MS 5000   /* how often a pool above its floor looks at its demand again */
#define POOL_BURST_IDLE_MS 3000 /* a container kept in a burst goes when its key sends nothing */
#define POOL_TRIM_IDLE_MS                                                                          \
    60000 /* ready containers past the target go after this long without a take */

/* One image's warm pool. */
struct pool {
    char *image;
    struct sandbox_limits limits; /* its containers are made with these */
    char *environment;            /* NULL: the default image */
    int64_t floor;                /* the configured size: the target never falls below it */
    int64_t want;                 /* ready containers to keep now (the target) */
    struct pool_demand demand;
    int64_t recycle;  /* jobs one container may serve; 1: a fresh one each time */
    int64_t starting; /* being created now */
    int64_t n_out;    /* recycling: taken by jobs that bring them back */
    int64_t n_ready;
    struct container_ref *ready;
    uint64_t hits, misses;
    uint64_t burst_returns; /* used containers kept for their key in a burst */
    bool wanted;            /* still in the targets after the last refresh */
    struct pool *next;
};

/* ---- demand (pure) ---- */

void exec_demand_take(struct pool_demand *d, int64_t now_ms)
{
    d->rate = exec_demand_rate(d, now_ms) + 1000.0 / POOL_RATE_WINDOW_MS;
    d->at_ms = now_ms;
}

double exec_demand_rate(const struct pool_demand *d, int64_t now_ms)
{
    if (d->at_ms == 0 || d->rate <= 0)
        return 0;
    int64_t age = now_ms > d->at_ms ? now_ms - d->at_ms : 0;
    return d->rate * exp(-(double)age / POOL_RATE_WINDOW_MS);
}

void exec_demand_refill(struct pool_demand *d, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    d->refill_s = d->refills == 0
                      ? seconds
                      : POOL_REFILL_WEIGHT * seconds + (1 - POOL_REFILL_WEIGHT) * d->refill_s;
    d->refill_sum += seconds;
    d->refills++;
}

int64_t exec_pool_target(int64_t floor, int64_t ceiling, double rate, double refill_s)
{
    if (floor <= 0)
        return 0;
    if (ceiling < floor)
        ceiling = floor;
    double need = rate * refill_s;
    if (!(need > (double)floor)) /* also NaN */
        return floor;
    if (need >= (double)ceiling)
        return ceiling;
    /* a hair of slack so that 2.0000001 from rounding stays 2 */
    return (int64_t)ceil(need - 1e-9);
}

static struct pool *pool_find(struct executor *x, const char *image)
{
    for (struct pool *p = x->pool.list; p; p = p->next)
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

/* May ready container @c serve a job of @principal in @env_version? One
 * that never served a job serves anyone; a recycled one only the principal
 * and the environment version of its last job. */
static bool serves(const struct container_ref *c, const char *principal, int64_t env_version)
{
    if (c->uses == 0)
        return true;
    return c->principal && principal && strcmp(c->principal, principal) == 0 &&
           c->env_version == env_version;
}

/* Under pool.lock: the place in @p's ready list of the container for a
 * job of @principal in @env_version (@returns) or a session (never a
 * recycled one); one of its own recycled containers first, else a fresh
 * one; NULL when there is none. */
static struct container_ref **pick_locked(struct pool *p, const char *principal,
                                          int64_t env_version, bool returns)
{
    struct container_ref **fresh = NULL;
    for (struct container_ref **at = &p->ready; *at; at = &(*at)->next) {
        if ((*at)->uses == 0) {
            if (!fresh)
                fresh = at;
        } else if (returns && serves(*at, principal, env_version)) {
            return at;
        }
    }
    return fresh;
}

/* Under pool.lock: a recycled container of @p bound to someone else, onto
 * *gone (a pool filler makes a fresh one in its place); false when none. */
static bool evict_bound_locked(struct pool *p, struct container_ref **gone)
{
    struct container_ref **last = NULL;
    for (struct container_ref **at = &p->ready; *at; at = &(*at)->next)
        if ((*at)->uses > 0)
            last = at; /* the list is newest first: the one idle the longest */
    if (!last)
        return false;
    struct container_ref *c = *last;
    *last = c->next;
    p->n_ready--;
    c->next = *gone;
    *gone = c;
    return true;
}

/* Under pool.lock: the first ready container of @p onto *gone. */
static void drop_ready_locked(struct pool *p, struct container_ref **gone)
{
    struct container_ref *c = p->ready;
    p->ready = c->next;
    p->n_ready--;
    c->next = *gone;
    *gone = c;
}

/* The most ready containers @p may hold while demand lasts. */
static int64_t ceiling(const struct executor *x, const struct pool *p)
{
    return p->floor > x->cfg->max_pool_size ? p->floor : x->cfg->max_pool_size;
}

/* Under pool.lock: @p's target from its demand as of @now_ms. */
static void retarget_locked(struct executor *x, struct pool *p, int64_t now_ms)
{
    if (!p->wanted) {
        p->want = 0;
        return;
    }
    p->want = exec_pool_target(p->floor, x->cfg->max_pool_size,
                               exec_demand_rate(&p->demand, now_ms), p->demand.refill_s);
}

/* Under pool.lock: the ready containers of @p past what it may keep onto
 * *gone. A pool no longer wanted keeps none. Past a target that fell with
 * demand, they go only once the pool has had no take for POOL_TRIM_IDLE_MS
 * (a lull between bursts costs no removal, and a take consumes them
 * first); until then only those past the ceiling go. */
static bool trim_locked(struct executor *x, struct pool *p, int64_t now_ms,
                        struct container_ref **gone)
{
    /* containers kept in a burst that is over */
    bool bursting = false;
    for (struct container_ref **at = &p->ready; *at;) {
        struct container_ref *c = *at;
        if (c->burst_until && now_ms >= c->burst_until) {
            *at = c->next;
            p->n_ready--;
            c->next = *gone;
            *gone = c;
            continue;
        }
        bursting |= c->burst_until != 0;
        at = &c->next;
    }
    int64_t keep = p->want;
    if (p->wanted && p->demand.at_ms != 0 && now_ms - p->demand.at_ms < POOL_TRIM_IDLE_MS)
        keep = ceiling(x, p);
    while (p->n_ready > keep && p->ready)
        drop_ready_locked(p, gone);
    return bursting;
}

/* Without pool.lock: each of @gone to removal. */
static void remove_all(struct executor *x, struct container_ref *gone)
{
    while (gone) {
        struct container_ref *c = gone;
        gone = c->next;
        exec_container_remove_later(x, c->id);
        exec_ref_free(c);
    }
}

char *exec_pool_take(struct executor *x, const char *image, const struct sandbox_limits *l,
                     const char *principal, int64_t env_version, int64_t *ret_uses, bool returns)
{
    struct container_ref *gone = NULL;
    char *id = NULL;

    pthread_mutex_lock(&x->pool.lock);
    struct pool *p = pool_find(x, image);
    if (p && !sandbox_limits_equal(&p->limits, l))
        p = NULL; /* made for other limits (a policy changed): not for this job */
    /* a session gets a container that never served a job (recycled ones are
     * cleaned by their next job's wrapper, which a session does not run) */
    struct container_ref **at = p ? pick_locked(p, principal, env_version, returns) : NULL;
    if (p) {
        /* hit or miss, a take is demand: the target may grow, and the fillers start sooner */
        exec_demand_take(&p->demand, time_mono_ms());
        retarget_locked(x, p, p->demand.at_ms);
    }
    if (p && !at && evict_bound_locked(p, &gone))
        pthread_cond_signal(&x->pool.wake); /* a fresh one for whoever comes next */
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
        pthread_cond_signal(&x->pool.wake); /* start its replacement */
    } else if (p && p->want > 0) {
        p->misses++;
    }
    pthread_mutex_unlock(&x->pool.lock);
    remove_all(x, gone);
    return id;
}

/* Under pool.lock: ready containers of @p that never served a job. */
static int64_t fresh_ready_locked(const struct pool *p)
{
    int64_t n = 0;
    for (const struct container_ref *c = p->ready; c; c = c->next)
        n += c->uses == 0;
    return n;
}

/* Under pool.lock: the jobs a container of @p may serve now: its recycle
 * setting, or in a burst (no fresh container ready) ENVHUB_POOL_BURST_RECYCLE. */
static int64_t reuse_limit_locked(struct executor *x, const struct pool *p, bool *ret_burst)
{
    *ret_burst = false;
    if (p->recycle > 1 || x->cfg->pool_burst_recycle <= 1 || p->want <= 0 ||
        fresh_ready_locked(p) > 0)
        return p->recycle;
    *ret_burst = true;
    return x->cfg->pool_burst_recycle;
}

/* Under pool.lock: containers of @p ready, starting, or serving a job they come back from. */
static int64_t circulation(const struct pool *p)
{
    return p->n_ready + p->starting + p->n_out;
}

void exec_pool_return(struct executor *x, const char *image, const char *cid, int64_t uses,
                      const char *principal, int64_t env_version, bool usable, bool from_pool)
{
    struct container_ref *c = ref_new(cid, image, uses);
    bool kept = false;

    c->principal = principal ? xstrdup(principal) : NULL;
    c->env_version = env_version;
    exec_container_deactivate(x, cid);
    pthread_mutex_lock(&x->pool.lock);
    struct pool *p = pool_find(x, image);
    if (p && from_pool && p->n_out > 0)
        p->n_out--;
    bool burst = false;
    int64_t limit = p ? reuse_limit_locked(x, p, &burst) : 1;
    /* a recycling pool keeps to its target; a burst, to the ceiling a pool
     * may hold while demand lasts (ENVHUB_MAX_POOL_SIZE, as trim_locked):
     * the fillers are making fresh ones up to the target meanwhile */
    bool room = p && (burst ? p->n_ready + p->starting < ceiling(x, p) : circulation(p) < p->want);
    if (usable && principal && p && p->wanted && limit > 1 && !p->limits.gvisor && uses < limit &&
        !exec_stopping(x) && room) {
        /* back to the pool as it is, for @principal alone: its next job's
         * wrapper cleans it first */
        c->next = p->ready;
        p->ready = c;
        p->n_ready++;
        p->burst_returns += burst;
        c->burst_until = burst ? time_mono_ms() + POOL_BURST_IDLE_MS : 0;
        if (burst)
            pthread_cond_signal(&x->pool.wake); /* a filler watches its deadline */
        kept = true;
    } else if (p && from_pool) {
        pthread_cond_signal(&x->pool.wake); /* its replacement, if the pool is short */
    }
    pthread_mutex_unlock(&x->pool.lock);
    if (!kept)
        remove_all(x, c);
}

/* ---- targets ---- */

#define target exec_pool_target

/* What the pools should hold: the default image and each ready environment's image. */
static size_t read_targets(struct executor *x, struct target **ret)
{
    struct env_record *envs = NULL;
    size_t n = 0, k = 0;
    struct err err = ERR_INIT;
    struct target *t;

    if (x->cluster) { /* jobs run on the nodes: no pool here (sessions make their own) */
        *ret = xcalloc(1, sizeof(**ret));
        return 0;
    }
    if (!x->catalog) { /* a node: its default pool and the server's share for it */
        pthread_mutex_lock(&x->pool.lock);
        t = xcalloc(x->pool.n_node_targets + 1, sizeof(*t));
        t[k] = (struct target){
            xstrdup(x->cfg->default_image), NULL, x->cfg->pool_size, x->cfg->pool_recycle, {0}};
        sandbox_limits_default(x->cfg, &t[k++].limits);
        for (size_t i = 0; i < x->pool.n_node_targets; i++) {
            const struct target *o = &x->pool.node_targets[i];
            t[k++] =
                (struct target){xstrdup(o->image), o->environment ? xstrdup(o->environment) : NULL,
                                o->want, o->recycle, o->limits};
        }
        pthread_mutex_unlock(&x->pool.lock);
        *ret = t;
        return k;
    }
    if (catalog_env_list(x->catalog, &envs, &n, &err) < 0) {
        log_warn("executor: cannot read the environments for the warm pools: %s", err.msg);
        n = 0;
    }
    t = xcalloc(n + 1, sizeof(*t));
    t[k] = (struct target){
        xstrdup(x->cfg->default_image), NULL, x->cfg->pool_size, x->cfg->pool_recycle, {0}};
    sandbox_limits_default(x->cfg, &t[k++].limits);
    for (size_t i = 0; i < n; i++) {
        struct sandbox_limits l;
        if (envs[i].version == 0 || !envs[i].image || envs[i].lifecycle == ENV_RETIRED ||
            sandbox_policy_parse(x->cfg, envs[i].policy, &l, NULL, &err) < 0)
            continue;
        t[k++] = (struct target){xstrdup(envs[i].image), xstrdup(envs[i].name), l.pool_size,
                                 l.recycle, l};
    }
    env_records_free(envs, n);
    *ret = t;
    return k;
}

/* Under pool.lock: make the pools follow the targets; what drains goes onto *gone. */
static void apply_targets(struct executor *x, struct target *t, size_t n,
                          struct container_ref **gone)
{
    for (struct pool *p = x->pool.list; p; p = p->next)
        p->wanted = false;
    for (size_t i = 0; i < n; i++) {
        struct pool *p = pool_find(x, t[i].image);
        if (!p) {
            p = xcalloc(1, sizeof(*p));
            p->image = steal_ptr(t[i].image);
            p->next = x->pool.list;
            x->pool.list = p;
        }
        free(p->environment);
        p->environment = steal_ptr(t[i].environment);
        if (!sandbox_limits_equal(&p->limits, &t[i].limits)) {
            /* a new policy: the containers made for the old one go */
            while (p->ready)
                drop_ready_locked(p, gone);
        }
        p->limits = t[i].limits;
        p->floor = t[i].want;
        p->recycle = t[i].recycle < 1 ? 1 : t[i].recycle;
        p->wanted = true;
    }
    int64_t now = time_mono_ms();
    for (struct pool *p = x->pool.list; p; p = p->next) {
        retarget_locked(x, p, now);
        trim_locked(x, p, now, gone);
    }
}

/* ---- the pool fillers ---- */

static void refresh_default_image_id(struct executor *x)
{
    struct engine_image_info info = {0};
    struct err err = ERR_INIT;

    if (engine_image_inspect(x->engine, x->cfg->default_image, &info, &err) < 0) {
        log_warn("executor: default image '%s': %s", x->cfg->default_image, err.msg);
        return;
    }
    exec_set_default_image_id(x, info.id);
    engine_image_info_release(&info);
}

/* Without pool.lock: read the targets again and apply them. */
static void refresh(struct executor *x)
{
    struct container_ref *gone = NULL;
    struct target *t = NULL;

    refresh_default_image_id(x);
    size_t n = read_targets(x, &t);
    pthread_mutex_lock(&x->pool.lock);
    apply_targets(x, t, n, &gone);
    pthread_mutex_unlock(&x->pool.lock);
    remove_all(x, gone);
    for (size_t i = 0; i < n; i++) {
        free(t[i].image);
        free(t[i].environment);
    }
    free(t);
}

/* Without pool.lock: start a container for the pool of @image made with
 * @limits, and put it there if it is still wanted. */
static void fill(struct executor *x, const char *image, const struct sandbox_limits *limits)
{
    struct err err = ERR_INIT;
    _cleanup_free_ char *id = NULL;
    int64_t t0 = time_mono_ms();

    int rc = exec_container_create(x, image, limits, true, &id, &err);
    int64_t took_ms = time_mono_ms() - t0;
    if (rc < 0)
        exec_count_engine_error(x);
    pthread_mutex_lock(&x->pool.lock);
    struct pool *p = pool_find(x, image);
    if (p)
        p->starting--;
    if (p && rc == 0) {
        exec_demand_refill(&p->demand, (double)took_ms / 1000);
        retarget_locked(x, p, time_mono_ms());
    }
    if (rc < 0) {
        log_warn("executor: cannot start a warm container of '%s', retrying in %d s: %s", image,
                 POOL_RETRY_MS / 1000, err.msg);
        struct timespec ts = time_deadline_in(POOL_RETRY_MS);
        if (!exec_stopping(x))
            pthread_cond_timedwait(&x->pool.wake, &x->pool.lock, &ts);
        pthread_mutex_unlock(&x->pool.lock);
        return;
    }
    struct container_ref *c = ref_new(id, image, 0);
    if (p && p->wanted && !exec_stopping(x) && circulation(p) < p->want &&
        sandbox_limits_equal(&p->limits, limits)) {
        c->next = p->ready;
        p->ready = c;
        p->n_ready++;
        c = NULL;
    }
    pthread_mutex_unlock(&x->pool.lock);
    remove_all(x, c);
}

/* Under pool.lock: every pool's target as of now; what is ready past it
 * goes onto *gone (trim_locked). True when some pool is above its floor or
 * holds more than its target (its target falls as its takes fade, its
 * excess goes once idle: look again later). */
static bool retarget_all_locked(struct executor *x, struct container_ref **gone)
{
    int64_t now = time_mono_ms();
    bool above = false;
    for (struct pool *p = x->pool.list; p; p = p->next) {
        retarget_locked(x, p, now);
        if (trim_locked(x, p, now, gone) || p->want > p->floor || p->n_ready > p->want)
            above = true; /* look again later */
    }
    return above;
}

static void *pool_main(void *arg)
{
    struct executor *x = arg;

    pthread_mutex_lock(&x->pool.lock);
    while (!exec_stopping(x)) {
        if (x->pool.refresh && !x->pool.refreshing) {
            /* one filler reads the targets at a time, so that an older read
             * never lands after a newer one */
            x->pool.refresh = false;
            x->pool.refreshing = true;
            pthread_mutex_unlock(&x->pool.lock);
            refresh(x);
            pthread_mutex_lock(&x->pool.lock);
            x->pool.refreshing = false;
            pthread_cond_broadcast(&x->pool.wake);
            continue;
        }
        struct container_ref *gone = NULL;
        bool above = retarget_all_locked(x, &gone);
        if (gone) {
            pthread_mutex_unlock(&x->pool.lock);
            remove_all(x, gone);
            pthread_mutex_lock(&x->pool.lock);
            continue;
        }
        struct pool *need = NULL;
        for (struct pool *p = x->pool.list; p && !need; p = p->next)
            if (p->wanted && circulation(p) < p->want)
                need = p;
        if (!need) {
            if (above) {
                struct timespec ts = time_deadline_in(POOL_RETARGET_MS);
                pthread_cond_timedwait(&x->pool.wake, &x->pool.lock, &ts);
            } else {
                pthread_cond_wait(&x->pool.wake, &x->pool.lock);
            }
            continue;
        }
        need->starting++;
        _cleanup_free_ char *image = xstrdup(need->image);
        struct sandbox_limits limits = need->limits;
        pthread_mutex_unlock(&x->pool.lock);
        fill(x, image, &limits);
        pthread_mutex_lock(&x->pool.lock);
    }
    pthread_mutex_unlock(&x->pool.lock);
    return NULL;
}

void exec_pool_targets_free(struct exec_pool_target *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++) {
        free(t[i].image);
        free(t[i].environment);
    }
    free(t);
}

char *executor_cluster_pools(struct executor *x, size_t index, size_t count)
{
    struct env_record *envs = NULL;
    size_t n = 0, k = 0;
    struct err err = ERR_INIT;

    if (count == 0 || index >= count || catalog_env_list(x->catalog, &envs, &n, &err) < 0)
        return xstrdup("[]");
    struct target *t = xcalloc(n + 1, sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        struct sandbox_limits l;
        if (envs[i].version == 0 || !envs[i].image || envs[i].lifecycle == ENV_RETIRED ||
            sandbox_policy_parse(x->cfg, envs[i].policy, &l, NULL, &err) < 0 || l.pool_size <= 0)
            continue;
        /* the pool's size shared out: node i of count gets its part */
        int64_t share =
            l.pool_size / (int64_t)count + ((int64_t)index < l.pool_size % (int64_t)count);
        if (share <= 0)
            continue;
        t[k++] = (struct target){
            xstrdup(envs[i].registry_image ? envs[i].registry_image : envs[i].image),
            xstrdup(envs[i].name), share, l.recycle, l};
    }
    env_records_free(envs, n);
    char *text = exec_remote_pools_text(t, k);
    exec_pool_targets_free(t, k);
    return text;
}

int executor_cluster_images(struct executor *x, char ***ret)
{
    struct env_record *envs = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;
    char **keep = NULL;

    *ret = NULL;
    if (catalog_env_list(x->catalog, &envs, &n, &err) < 0) {
        log_warn("executor: cannot list the environments for the nodes: %s", err.msg);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (envs[i].version > 0 && envs[i].registry_image && envs[i].lifecycle != ENV_RETIRED)
            strv_push(&keep, xstrdup(envs[i].registry_image));
    env_records_free(envs, n);
    *ret = keep;
    return 0;
}

void executor_node_set_pools(struct executor *x, const char *text)
{
    struct exec_pool_target *t = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;

    pthread_mutex_lock(&x->pool.lock);
    bool same = x->pool.node_targets_text && strcmp(x->pool.node_targets_text, text) == 0;
    pthread_mutex_unlock(&x->pool.lock);
    if (same)
        return;
    if (exec_remote_pools_parse(text, strlen(text), &t, &n, &err) < 0) {
        log_warn("executor: the server's pools for this node are refused: %s", err.msg);
        return;
    }
    pthread_mutex_lock(&x->pool.lock);
    exec_pool_targets_free(x->pool.node_targets, x->pool.n_node_targets);
    x->pool.node_targets = t;
    x->pool.n_node_targets = n;
    free(x->pool.node_targets_text);
    x->pool.node_targets_text = xstrdup(text);
    x->pool.refresh = true;
    pthread_cond_signal(&x->pool.wake);
    pthread_mutex_unlock(&x->pool.lock);
}

void executor_pool_refresh(struct executor *x)
{
    pthread_mutex_lock(&x->pool.lock);
    x->pool.refresh = true;
    pthread_cond_signal(&x->pool.wake);
    pthread_mutex_unlock(&x->pool.lock);
}

void exec_pool_init(struct executor *x)
{
    pthread_mutex_init(&x->pool.lock, NULL);
    pthread_cond_init(&x->pool.wake, NULL);
}

int exec_pool_start(struct executor *x, struct err *err)
{
    x->pool.refresh = true;
    for (size_t i = 0; i < EXEC_POOL_FILLERS; i++) {
        if (pthread_create(&x->pool.threads[i], NULL, pool_main, x) != 0)
            return err_set(err, ERR_INTERNAL, "cannot start the warm pool threads");
        x->pool.n_threads++;
    }
    return 0;
}

int64_t exec_pool_live(struct executor *x)
{
    int64_t n = 0;
    pthread_mutex_lock(&x->pool.lock);
    for (struct pool *p = x->pool.list; p; p = p->next)
        n += p->n_ready + p->starting;
    pthread_mutex_unlock(&x->pool.lock);
    return n;
}

char **executor_node_pool_lines(struct executor *x)
{
    char **lines = NULL;
    pthread_mutex_lock(&x->pool.lock);
    for (struct pool *p = x->pool.list; p; p = p->next)
        if (p->want > 0 || p->n_ready > 0)
            strv_push(&lines, xasprintf("%s: %lld ready of %lld", p->image, (long long)p->n_ready,
                                        (long long)p->want));
    pthread_mutex_unlock(&x->pool.lock);
    return lines;
}

char **executor_node_warm(struct executor *x)
{
    char **images = NULL;
    pthread_mutex_lock(&x->pool.lock);
    for (struct pool *p = x->pool.list; p; p = p->next)
        if (p->n_ready > 0)
            strv_push(&images, xstrdup(p->image));
    pthread_mutex_unlock(&x->pool.lock);
    return images;
}

void exec_pool_wake(struct executor *x)
{
    pthread_mutex_lock(&x->pool.lock);
    pthread_cond_broadcast(&x->pool.wake);
    pthread_mutex_unlock(&x->pool.lock);
}

void exec_pool_stop(struct executor *x)
{
    struct container_ref *gone = NULL;

    exec_pool_wake(x);
    for (size_t i = 0; i < x->pool.n_threads; i++)
        pthread_join(x->pool.threads[i], NULL);
    x->pool.n_threads = 0;
    pthread_mutex_lock(&x->pool.lock);
    for (struct pool *p = x->pool.list; p; p = p->next)
        while (p->ready)
            drop_ready_locked(p, &gone);
    pthread_mutex_unlock(&x->pool.lock);
    remove_all(x, gone);
}

void exec_pool_fini(struct executor *x)
{
    exec_pool_targets_free(x->pool.node_targets, x->pool.n_node_targets);
    free(x->pool.node_targets_text);
    while (x->pool.list) {
        struct pool *p = x->pool.list;
        x->pool.list = p->next;
        while (p->ready) {
            struct container_ref *c = p->ready;
            p->ready = c->next;
            exec_ref_free(c);
        }
        free(p->image);
        free(p->environment);
        free(p);
    }
    pthread_cond_destroy(&x->pool.wake);
    pthread_mutex_destroy(&x->pool.lock);
}

void executor_pool_stats(struct executor *x, struct executor_pool_stat **ret, size_t *ret_n)
{
    size_t n = 0;
    int64_t now = time_mono_ms();
    pthread_mutex_lock(&x->pool.lock);
    for (struct pool *p = x->pool.list; p; p = p->next)
        n++;
    struct executor_pool_stat *s = xcalloc(n + 1, sizeof(*s));
    size_t i = 0;
    for (struct pool *p = x->pool.list; p; p = p->next, i++) {
        s[i].image = xstrdup(p->image);
        s[i].environment = xstrdup(p->environment ? p->environment : "");
        s[i].want = p->want;
        s[i].floor = p->floor;
        s[i].ready = p->n_ready;
        s[i].starting = p->starting;
        s[i].hits = p->hits;
        s[i].misses = p->misses;
        s[i].burst_returns = p->burst_returns;
        s[i].rate = exec_demand_rate(&p->demand, now);
        s[i].refill_seconds = p->demand.refill_s;
        s[i].refill_sum = p->demand.refill_sum;
        s[i].refills = p->demand.refills;
    }
    pthread_mutex_unlock(&x->pool.lock);
    *ret = s;
    *ret_n = n;
}

void executor_pool_stats_free(struct executor_pool_stat *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i].image);
        free(s[i].environment);
    }
    free(s);
}

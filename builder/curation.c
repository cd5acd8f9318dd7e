/* builder/curation.c - what curators do besides building: lifecycle states
 * (deprecated, retired, reinstated), the removal of a retired environment's
 * images after its grace period, and base-image drift (the reference a
 * version was built FROM now resolves to another image). One maintenance
 * thread sleeps until the next retired environment is due or the next
 * periodic drift check (ENVHUB_DRIFT_INTERVAL), whichever comes first, and
 * is woken by every lifecycle change and by shutdown. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "builder/builder.h"
#include "builder/builder_internal.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define MAINT_RETRY_MS 60000 /* a removal that failed is tried again after this */

static void maintenance_poke(struct builder *b)
{
    pthread_mutex_lock(&b->lock);
    b->maint_poke = true;
    pthread_cond_broadcast(&b->maint_wake);
    pthread_mutex_unlock(&b->lock);
}

/* ---- lifecycle ---- */

static char *lifecycle_warning(const char *name, enum env_lifecycle state, const char *replacement)
{
    if (state == ENV_ACTIVE)
        return NULL;
    const char *what = state == ENV_DEPRECATED ? "deprecated" : "retired";
    if (replacement)
        return xasprintf("environment '%s' is %s; use '%s' instead", name, what, replacement);
    return xasprintf("environment '%s' is %s", name, what);
}

int builder_set_lifecycle(struct builder *b, const char *name, enum env_lifecycle state,
                          const char *replacement, const char *by, struct env_record *ret,
                          int64_t *ret_rebuild, struct err *err)
{
    _cleanup_(env_record_release) struct env_record env = {0};
    _cleanup_(env_record_release) struct env_record repl = {0};
    _cleanup_free_ char *warning = NULL;

    if (ret_rebuild)
        *ret_rebuild = 0;
    if (catalog_env_get(b->catalog, name, &env, err) < 0) {
        if (err->code == ERR_NOT_FOUND)
            return err_about(err, ERR_NOT_FOUND, ERR_ABOUT_ENV_MISSING, name, NULL);
        return -1;
    }
    if (state == ENV_ACTIVE)
        replacement = NULL;
    if (replacement && *replacement == '\0')
        replacement = NULL;
    if (replacement) {
        if (strcmp(replacement, name) == 0)
            return err_set(err, ERR_INVALID, "replacement: an environment cannot replace itself");
        if (catalog_env_get(b->catalog, replacement, &repl, err) < 0) {
            if (err->code == ERR_NOT_FOUND)
                return err_set(err, ERR_INVALID, "replacement: environment '%.60s' does not exist",
                               replacement);
            return -1;
        }
        if (repl.lifecycle == ENV_RETIRED)
            return err_set(err, ERR_INVALID, "replacement: environment '%s' is retired itself",
                           replacement);
    }
    warning = lifecycle_warning(name, state, replacement);
    if (catalog_env_set_lifecycle(b->catalog, name, state, replacement, warning, time_now_ms(), by,
                                  err) < 0)
        return -1;
    log_info("builder: environment '%s' is now %s%s%s (by %s)", name, env_lifecycle_name(state),
             replacement ? ", replaced by " : "", replacement ? replacement : "", by ? by : "");

    /* reinstated after its images went: the same definition, built again */
    if (state == ENV_ACTIVE && env.images_removed_at && env.version > 0) {
        _cleanup_(build_record_release) struct build_record build = {0};
        struct err rerr = ERR_INIT;
        /* the reinstate's event covers this rebuild: none of its own */
        if (builder_queue_rebuild(b, name, NULL, NULL, NULL, NULL, by, false, &build, &rerr) < 0) {
            if (rerr.code != ERR_CONFLICT) /* a build already queued brings an image back too */
                log_warn("builder: cannot rebuild reinstated '%s': %s", name, rerr.msg);
        } else if (ret_rebuild) {
            *ret_rebuild = build.version;
        }
    }
    builder_notify_listener(b); /* a retired environment keeps no warm pool */
    maintenance_poke(b);
    return catalog_env_get(b->catalog, name, ret, err);
}

/* Remove every image of retired @env; 0 when all are gone. */
static int remove_retired_images(struct builder *b, const struct env_record *env)
{
    struct build_record *builds = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;
    int failed = 0;

    if (catalog_build_list(b->catalog, env->name, &builds, &n, &err) < 0) {
        log_warn("builder: cannot list the builds of retired '%s': %s", env->name, err.msg);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (builds[i].status != BUILD_READY)
            continue;
        if (engine_image_remove(b->engine, builds[i].image, true, &err) < 0) {
            log_warn("builder: cannot remove image '%s' of retired '%s': %s", builds[i].image,
                     env->name, err.msg);
            failed = -1;
        }
        builder_image_orphaned(b, &builds[i]); /* a session's container may hold it */
        builder_registry_forget(&builds[i]);
    }
    build_records_free(builds, n);
    if (failed)
        return -1;
    if (catalog_env_mark_images_removed(b->catalog, env->name, time_now_ms(), &err) < 0) {
        log_warn("builder: cannot record the images of '%s' as removed: %s", env->name, err.msg);
        return -1;
    }
    log_info("builder: retired '%s': its images are removed (the grace period of %lld s is over)",
             env->name, (long long)b->cfg->retire_grace);
    return 0;
}

/* Remove the images of retired environments whose grace period is over;
 * returns when the next one is due (INT64_MAX: none). */
static int64_t sweep_retired(struct builder *b, int64_t now)
{
    struct env_record *envs = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;
    int64_t next = INT64_MAX;
    bool removed = false;

    if (catalog_env_list(b->catalog, &envs, &n, &err) < 0) {
        log_warn("builder: cannot read the environments for the retirement sweep: %s", err.msg);
        return now + MAINT_RETRY_MS;
    }
    for (size_t i = 0; i < n; i++) {
        if (envs[i].lifecycle != ENV_RETIRED || envs[i].images_removed_at)
            continue;
        int64_t due = envs[i].lifecycle_at + b->cfg->retire_grace * 1000;
        if (due > now) {
            next = due < next ? due : next;
            continue;
        }
        if (remove_retired_images(b, &envs[i]) < 0)
            next = now + MAINT_RETRY_MS < next ? now + MAINT_RETRY_MS : next;
        else
            removed = true;
    }
    env_records_free(envs, n);
    if (removed)
        builder_notify_listener(b);
    return next;
}

/* ---- images left by a container that used them ---- */

#define PENDING_RETRY_MS 1000
#define PENDING_GIVE_UP_MS (24 * 3600 * 1000LL)

void builder_image_orphaned(struct builder *b, const struct build_record *build)
{
    struct engine_image_info info = {0};
    struct err err = ERR_INIT;

    if (!build->image_id || build->status != BUILD_READY ||
        engine_image_inspect(b->engine, build->image_id, &info, &err) < 0)
        return; /* gone already */
    engine_image_info_release(&info);
    /* another environment's version reuses it (same definition): it stays */
    _cleanup_(build_record_release) struct build_record other = {0};
    if (build->definition &&
        catalog_build_find_ready_by_definition(b->catalog, build->definition, &other, &err) == 0 &&
        other.image_id && strcmp(other.image_id, build->image_id) == 0 &&
        strcmp(other.environment, build->environment) != 0)
        return;
    pthread_mutex_lock(&b->lock);
    bool known = false;
    for (struct pending_image *p = b->pending; p && !known; p = p->next)
        known = strcmp(p->id, build->image_id) == 0;
    if (!known) {
        struct pending_image *p = xcalloc(1, sizeof(*p));
        p->id = xstrdup(build->image_id);
        p->since = time_now_ms();
        p->next = b->pending;
        b->pending = p;
    }
    b->maint_poke = true;
    pthread_cond_broadcast(&b->maint_wake);
    pthread_mutex_unlock(&b->lock);
    if (!known)
        log_info("builder: image %.19s is still used by a container; it is removed once it is not",
                 build->image_id);
}

/* Try each pending image once; returns when to try again (INT64_MAX: none left). */
static int64_t sweep_pending(struct builder *b, int64_t now)
{
    pthread_mutex_lock(&b->lock);
    struct pending_image *list = b->pending;
    b->pending = NULL;
    pthread_mutex_unlock(&b->lock);

    struct pending_image *keep = NULL;
    while (list) {
        struct pending_image *p = list;
        list = p->next;
        struct err err = ERR_INIT;
        bool done = engine_image_remove(b->engine, p->id, false, &err) == 0;
        if (!done && now - p->since > PENDING_GIVE_UP_MS) {
            log_warn("builder: giving up on removing image %.19s: %s", p->id, err.msg);
            done = true;
        }
        if (done) {
            free(p->id);
            free(p);
        } else {
            p->next = keep;
            keep = p;
        }
    }
    pthread_mutex_lock(&b->lock);
    /* put back what is left, after what arrived meanwhile */
    struct pending_image **tail = &b->pending;
    while (*tail)
        tail = &(*tail)->next;
    *tail = keep;
    bool left = b->pending != NULL;
    pthread_mutex_unlock(&b->lock);
    return left ? now + PENDING_RETRY_MS : INT64_MAX;
}

/* ---- drift ---- */

void drift_reports_free(struct drift_report *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++) {
        free(r[i].environment);
        free(r[i].base_image);
        free(r[i].built_on);
        free(r[i].resolves_to);
    }
    free(r);
}

/* Check one environment; false when it has nothing to check (no version in
 * service, retired). */
static bool drift_one(struct builder *b, const struct env_record *env, int64_t now,
                      struct drift_report *r)
{
    struct engine_image_info info = {0};
    struct err err = ERR_INIT;

    if (env->version == 0 || env->lifecycle == ENV_RETIRED)
        return false;
    memset(r, 0, sizeof(*r));
    r->environment = xstrdup(env->name);
    r->version = env->version;
    r->base_image = xstrdup(env->base_image);
    r->built_on = env->base_image_id ? xstrdup(env->base_image_id) : NULL;
    r->checked_at = now;
    if (engine_image_inspect(b->engine, env->base_image, &info, &err) == 0) {
        r->resolves_to = steal_ptr(info.id);
    } else if (err.code != ERR_NOT_FOUND) {
        log_warn("builder: drift check of '%s': cannot inspect '%s': %s", env->name,
                 env->base_image, err.msg);
        engine_image_info_release(&info);
        r->drifted = -1;
        return true; /* reported, not recorded: the engine did not answer */
    }
    engine_image_info_release(&info);
    r->drifted = !r->resolves_to || !r->built_on ? -1 : strcmp(r->resolves_to, r->built_on) != 0;
    struct err serr = ERR_INIT;
    if (catalog_env_set_drift(b->catalog, env->name, now, r->resolves_to, &serr) < 0)
        log_warn("builder: cannot record the drift check of '%s': %s", env->name, serr.msg);
    return true;
}

int builder_drift_check(struct builder *b, const char *name, struct drift_report **ret,
                        size_t *ret_n, struct err *err)
{
    struct env_record *envs = NULL;
    size_t n = 0;
    int64_t now = time_now_ms();

    if (name) {
        envs = xcalloc(1, sizeof(*envs));
        if (catalog_env_get(b->catalog, name, &envs[0], err) < 0) {
            free(envs);
            if (err->code == ERR_NOT_FOUND)
                return err_about(err, ERR_NOT_FOUND, ERR_ABOUT_ENV_MISSING, name, NULL);
            return -1;
        }
        n = 1;
    } else if (catalog_env_list(b->catalog, &envs, &n, err) < 0) {
        return -1;
    }
    struct drift_report *r = xcalloc(n + 1, sizeof(*r));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (drift_one(b, &envs[i], now, &r[k]))
            k++;
    env_records_free(envs, n);
    *ret = r;
    *ret_n = k;
    return 0;
}

/* The periodic check: logs each drifted environment with the rebuild that
 * would take it onto the base image its reference names now. */
static void drift_periodic(struct builder *b)
{
    struct drift_report *r = NULL;
    size_t n = 0, drifted = 0;
    struct err err = ERR_INIT;

    if (builder_drift_check(b, NULL, &r, &n, &err) < 0) {
        log_warn("builder: the periodic drift check failed: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (r[i].drifted != 1)
            continue;
        drifted++;
        log_warn("builder: drift: '%s' version %lld was built on %s, but '%s' is now %s; rebuild "
                 "it: POST /environments/%s/rebuild (envhub env rebuild %s)",
                 r[i].environment, (long long)r[i].version, r[i].built_on, r[i].base_image,
                 r[i].resolves_to, r[i].environment, r[i].environment);
    }
    log_debug("builder: drift check: %zu environments checked, %zu drifted", n, drifted);
    drift_reports_free(r, n);
}

/* ---- the maintenance thread ---- */

static void *maintenance_main(void *arg)
{
    struct builder *b = arg;
    int64_t interval_ms = b->cfg->drift_interval * 1000;
    int64_t next_drift = interval_ms > 0 ? time_now_ms() + interval_ms : INT64_MAX;

    for (;;) {
        pthread_mutex_lock(&b->lock);
        bool stop = b->stopping;
        b->maint_poke = false;
        pthread_mutex_unlock(&b->lock);
        if (stop)
            break;

        int64_t now = time_now_ms();
        int64_t next = sweep_retired(b, now);
        int64_t next_pending = sweep_pending(b, now);
        if (next_pending < next)
            next = next_pending;
        if (now >= next_drift) {
            drift_periodic(b);
            next_drift = time_now_ms() + interval_ms;
        }
        if (next_drift < next)
            next = next_drift;

        pthread_mutex_lock(&b->lock);
        while (!b->stopping && !b->maint_poke) {
            int64_t left = next == INT64_MAX ? 3600000 : next - time_now_ms();
            if (left <= 0)
                break;
            struct timespec ts = time_deadline_in(left);
            if (pthread_cond_timedwait(&b->maint_wake, &b->lock, &ts) == ETIMEDOUT &&
                next == INT64_MAX)
                break;
        }
        pthread_mutex_unlock(&b->lock);
    }
    return NULL;
}

int builder_maintenance_start(struct builder *b, struct err *err)
{
    if (pthread_create(&b->maint_thread, NULL, maintenance_main, b) != 0)
        return err_set(err, ERR_INTERNAL, "cannot start the builder's maintenance thread");
    b->maint_started = true;
    return 0;
}

void builder_maintenance_stop(struct builder *b)
{
    if (!b->maint_started)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    pthread_cond_broadcast(&b->maint_wake);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->maint_thread, NULL);
    b->maint_started = false;
    while (b->pending) {
        struct pending_image *p = b->pending;
        b->pending = p->next;
        free(p->id);
        free(p);
    }
}

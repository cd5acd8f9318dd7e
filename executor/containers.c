/* executor/containers.c - the sandbox containers of jobs and sessions: their
 * creation (the spec is sandbox/'s), the list of those in use, the removal
 * workers and their backlog, the kill at shutdown, and what a previous run
 * left behind.
 *
 * Invariants: every container this executor creates carries the labels
 * envhub.managed=1 and envhub.instance=<catalog instance id>; it is in
 * `active` while a job or a session uses it, and handed to the removal
 * workers when they are done with it, on every path (a warm one waits in its
 * pool, pool.c, in between). The backlog (removals waiting plus those in
 * progress) is bounded for jobs: a job waits for it to fall below
 * ENVHUB_MAX_REMOVAL_BACKLOG before it takes or makes a container, so that
 * finished containers cannot pile up faster than the engine removes them.
 * A restart removes what a crash left behind. Calls shared.c only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

static void list_push(struct container_ref **list, const char *id)
{
    struct container_ref *c = xcalloc(1, sizeof(*c));
    c->id = xstrdup(id);
    c->next = *list;
    *list = c;
}

/* Unlink @id from @list; the caller owns what it returns (NULL: not there). */
static struct container_ref *list_take(struct container_ref **list, const char *id)
{
    for (struct container_ref **p = list; *p; p = &(*p)->next)
        if (strcmp((*p)->id, id) == 0) {
            struct container_ref *c = *p;
            *p = c->next;
            c->next = NULL;
            return c;
        }
    return NULL;
}

void exec_containers_init(struct executor *x)
{
    pthread_mutex_init(&x->containers.lock, NULL);
    pthread_cond_init(&x->containers.removal_ready, NULL);
    pthread_cond_init(&x->containers.backlog_freed, NULL);
}

void exec_container_activate(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->containers.lock);
    list_push(&x->containers.active, id);
    x->containers.n_active++;
    pthread_mutex_unlock(&x->containers.lock);
}

/* Under containers.lock: @id out of active (NULL when it was not there). */
static struct container_ref *active_take_locked(struct executor *x, const char *id)
{
    struct container_ref *c = list_take(&x->containers.active, id);
    if (c)
        x->containers.n_active--;
    return c;
}

void exec_container_deactivate(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->containers.lock);
    struct container_ref *c = active_take_locked(x, id);
    pthread_mutex_unlock(&x->containers.lock);
    exec_ref_free(c);
}

/* Under containers.lock: @c onto removals, for a worker. */
static void removal_push_locked(struct executor *x, struct container_ref *c)
{
    c->next = x->containers.removals;
    x->containers.removals = c;
    x->containers.n_removals++;
    pthread_cond_signal(&x->containers.removal_ready);
}

static struct container_ref *ref_of(const char *id)
{
    struct container_ref *c = xcalloc(1, sizeof(*c));
    c->id = xstrdup(id);
    return c;
}

void exec_container_remove_later(struct executor *x, const char *id)
{
    struct container_ref *c = ref_of(id);
    pthread_mutex_lock(&x->containers.lock);
    removal_push_locked(x, c);
    pthread_mutex_unlock(&x->containers.lock);
}

void exec_container_release(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->containers.lock);
    struct container_ref *c = active_take_locked(x, id);
    removal_push_locked(x, c ? c : ref_of(id));
    pthread_mutex_unlock(&x->containers.lock);
}

int exec_containers_backlog_wait(struct executor *x, int64_t max_ms, struct err *err)
{
    const int64_t limit = x->cfg->max_removal_backlog;
    int64_t t0 = time_mono_ms();
    struct timespec until = time_deadline_in(max_ms);
    bool waited = false;
    int rc = 0;

    pthread_mutex_lock(&x->containers.lock);
    while (x->containers.n_removals + x->containers.removing >= limit && !exec_stopping(x)) {
        waited = true;
        if (pthread_cond_timedwait(&x->containers.backlog_freed, &x->containers.lock, &until) ==
                ETIMEDOUT &&
            x->containers.n_removals + x->containers.removing >= limit) {
            rc = err_set(err, ERR_UNAVAILABLE,
                         "%lld containers still wait for removal after %lld ms "
                         "(ENVHUB_MAX_REMOVAL_BACKLOG %lld); the engine removes them too slowly",
                         (long long)(x->containers.n_removals + x->containers.removing),
                         (long long)max_ms, (long long)limit);
            break;
        }
    }
    if (rc == 0 && exec_stopping(x))
        rc = err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
    if (waited) {
        x->containers.backlog_waits++;
        x->containers.backlog_wait_ms += (uint64_t)(time_mono_ms() - t0);
    }
    pthread_mutex_unlock(&x->containers.lock);
    return rc;
}

void exec_containers_wake(struct executor *x)
{
    pthread_mutex_lock(&x->containers.lock);
    pthread_cond_broadcast(&x->containers.backlog_freed);
    pthread_mutex_unlock(&x->containers.lock);
}

void exec_containers_counts(struct executor *x, struct exec_container_counts *ret)
{
    pthread_mutex_lock(&x->containers.lock);
    ret->active = x->containers.n_active;
    ret->backlog = x->containers.n_removals + x->containers.removing;
    ret->backlog_waits = x->containers.backlog_waits;
    ret->backlog_wait_ms = x->containers.backlog_wait_ms;
    pthread_mutex_unlock(&x->containers.lock);
}

int exec_container_create(struct executor *x, const char *image, const struct sandbox_limits *l,
                          bool start, char **ret_id, struct err *err)
{
    struct sandbox_spec sb;
    struct engine_image_info info = {0};
    char *id = NULL;

    /* every sandbox container passes here: none is made of an image that
     * declares a VOLUME (the builder refuses such bases; this also covers the
     * default image and images built before it did) */
    if (engine_image_inspect(x->engine, image, &info, err) < 0)
        return -1;
    int refused = sandbox_image_check(image, &info, err);
    engine_image_info_release(&info);
    if (refused < 0) {
        err->code = ERR_UNAVAILABLE; /* the operator's to fix, not the caller's */
        return -1;
    }
    sandbox_spec_fill(x->cfg, image, l, x->labels, SANDBOX_JOB, &sb);
    /* the agent transport: envhub's agent is the container's main process,
     * its stdin open for attach; -I: nothing the job writes (the workspace,
     * PYTHON* variables) can change what the agent imports. Its source
     * comes in a variable it takes out of its environment before any job. */
    const char *agent_entry[] = {"python3", NULL};
    /* then the modules of policy.preload, which it imports before any job */
    const char *agent_cmd[4 + SANDBOX_PRELOAD_MAX + 1] = {
        "-I", "-c", "import os; exec(os.environ.pop('ENVHUB_AGENT'))", "envhub-agent"};
    for (size_t i = 0; i < l->n_preload && i < SANDBOX_PRELOAD_MAX; i++)
        agent_cmd[4 + i] = l->preload[i];
    _cleanup_free_ char *agent_var = xasprintf("ENVHUB_AGENT=%s", exec_agent_script());
    const char *agent_env[SANDBOX_ENV_MAX + 2] = {0};
    if (strcmp(x->cfg->job_transport, "agent") == 0) {
        size_t n = 0;
        for (; sb.spec.env && sb.spec.env[n] && n < SANDBOX_ENV_MAX; n++)
            agent_env[n] = sb.spec.env[n];
        agent_env[n] = agent_var;
        sb.spec.entrypoint = agent_entry;
        sb.spec.cmd = agent_cmd;
        sb.spec.env = agent_env;
        sb.spec.open_stdin = true;
    }
    if (engine_container_create(x->engine, &sb.spec, &id, err) < 0)
        return -1;
    if (start && engine_container_start(x->engine, id, err) < 0) {
        struct err rerr = ERR_INIT;
        if (engine_container_remove(x->engine, id, &rerr) < 0)
            log_warn("executor: cannot remove container '%.12s', ignoring: %s", id, rerr.msg);
        free(id);
        return -1;
    }
    *ret_id = id;
    return 0;
}

void exec_containers_kill_active(struct executor *x)
{
    struct container_ref *kill_list = NULL;

    pthread_mutex_lock(&x->containers.lock);
    for (struct container_ref *c = x->containers.active; c; c = c->next)
        list_push(&kill_list, c->id);
    pthread_mutex_unlock(&x->containers.lock);

    /* Killing ends each running job's exec stream; the job records itself interrupted. */
    while (kill_list) {
        struct container_ref *c = kill_list;
        struct err err = ERR_INIT;
        kill_list = c->next;
        if (engine_container_kill(x->engine, c->id, &err) < 0)
            log_warn("executor: cannot kill container '%.12s', ignoring: %s", c->id, err.msg);
        exec_ref_free(c);
    }
}

static void *removal_main(void *arg)
{
    struct executor *x = arg;

    pthread_mutex_lock(&x->containers.lock);
    for (;;) {
        while (!x->containers.removals && !x->containers.removal_stop)
            pthread_cond_wait(&x->containers.removal_ready, &x->containers.lock);
        if (!x->containers.removals && x->containers.removal_stop)
            break;
        struct container_ref *c = x->containers.removals;
        x->containers.removals = c->next;
        x->containers.n_removals--;
        x->containers.removing++; /* still alive, still in the backlog */
        pthread_mutex_unlock(&x->containers.lock);

        /* force=1: the engine kills a container still running, then removes it */
        struct err err = ERR_INIT;
        if (engine_container_remove(x->engine, c->id, &err) < 0)
            log_warn("executor: cannot remove container '%.12s', ignoring: %s", c->id, err.msg);
        exec_ref_free(c);
        pthread_mutex_lock(&x->containers.lock);
        x->containers.removing--;
        pthread_cond_broadcast(&x->containers.backlog_freed);
    }
    pthread_mutex_unlock(&x->containers.lock);
    return NULL;
}

/* Remove what a previous run of this catalog left behind. */
static void reap_leftovers(struct executor *x)
{
    char **ids = NULL;
    struct err err = ERR_INIT;
    int removed = 0;

    if (engine_container_list(x->engine, "envhub.instance", x->instance, &ids, &err) < 0) {
        log_warn("executor: cannot list leftover containers, ignoring: %s", err.msg);
        return;
    }
    for (char **p = ids; p && *p; p++) {
        if (engine_container_remove(x->engine, *p, &err) < 0)
            log_warn("executor: cannot remove leftover container '%.12s', ignoring: %s", *p,
                     err.msg);
        else
            removed++;
    }
    if (removed)
        log_info("executor: removed %d containers left by a previous run", removed);
    strv_free(ids);
}

int exec_containers_start(struct executor *x, struct err *err)
{
    reap_leftovers(x);
    for (size_t i = 0; i < EXEC_REMOVAL_WORKERS; i++) {
        if (pthread_create(&x->containers.removal_threads[i], NULL, removal_main, x) != 0)
            return err_set(err, ERR_INTERNAL, "cannot start the container removal threads");
        x->containers.n_removal_threads++;
    }
    return 0;
}

void exec_containers_stop(struct executor *x)
{
    pthread_mutex_lock(&x->containers.lock);
    x->containers.removal_stop = true;
    pthread_cond_broadcast(&x->containers.removal_ready);
    pthread_mutex_unlock(&x->containers.lock);
    /* each worker leaves once the list is empty: everything handed over is removed */
    for (size_t i = 0; i < x->containers.n_removal_threads; i++)
        pthread_join(x->containers.removal_threads[i], NULL);
    x->containers.n_removal_threads = 0;
}

void exec_containers_fini(struct executor *x)
{
    /* what is still in use or still to remove is a leftover for the next start */
    struct container_ref *lists[] = {x->containers.active, x->containers.removals};
    for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
        while (lists[i]) {
            struct container_ref *c = lists[i];
            lists[i] = c->next;
            exec_ref_free(c);
        }
    x->containers.active = x->containers.removals = NULL;
    pthread_cond_destroy(&x->containers.backlog_freed);
    pthread_cond_destroy(&x->containers.removal_ready);
    pthread_mutex_destroy(&x->containers.lock);
}

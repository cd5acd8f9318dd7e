/* executor/containers.c - the sandbox containers of jobs and sessions: their
 * creation (the spec is sandbox/'s), the list of those in use, the removal
 * thread, the kill at shutdown, and what a previous run left behind.
 *
 * Invariants: every container this executor creates carries the labels
 * envhub.managed=1 and envhub.instance=<catalog instance id>; it is in
 * `active` while a job or a session uses it, and handed to the removal
 * thread when they are done with it, on every path (a warm one waits in its
 * pool, pool.c, in between). A restart removes what a crash left behind.
 * Calls shared.c only. */
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
}

void exec_container_activate(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->containers.lock);
    list_push(&x->containers.active, id);
    pthread_mutex_unlock(&x->containers.lock);
}

void exec_container_deactivate(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->containers.lock);
    struct container_ref *c = list_take(&x->containers.active, id);
    pthread_mutex_unlock(&x->containers.lock);
    exec_ref_free(c);
}

void exec_container_remove_later(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->containers.lock);
    list_push(&x->containers.removals, id);
    pthread_cond_signal(&x->containers.removal_ready);
    pthread_mutex_unlock(&x->containers.lock);
}

void exec_container_release(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->containers.lock);
    struct container_ref *c = list_take(&x->containers.active, id);
    if (!c) {
        c = xcalloc(1, sizeof(*c));
        c->id = xstrdup(id);
    }
    c->next = x->containers.removals;
    x->containers.removals = c;
    pthread_cond_signal(&x->containers.removal_ready);
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
        pthread_mutex_unlock(&x->containers.lock);

        struct err err = ERR_INIT;
        if (engine_container_remove(x->engine, c->id, &err) < 0)
            log_warn("executor: cannot remove container '%.12s', ignoring: %s", c->id, err.msg);
        exec_ref_free(c);
        pthread_mutex_lock(&x->containers.lock);
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

    if (engine_container_list(x->engine, "envhub.instance", catalog_instance_id(x->catalog), &ids,
                              &err) < 0) {
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
    if (pthread_create(&x->containers.removal_thread, NULL, removal_main, x) != 0)
        return err_set(err, ERR_INTERNAL, "cannot start the container removal thread");
    x->containers.removal_started = true;
    return 0;
}

void exec_containers_stop(struct executor *x)
{
    if (!x->containers.removal_started)
        return;
    pthread_mutex_lock(&x->containers.lock);
    x->containers.removal_stop = true;
    pthread_cond_signal(&x->containers.removal_ready);
    pthread_mutex_unlock(&x->containers.lock);
    pthread_join(x->containers.removal_thread, NULL);
    x->containers.removal_started = false;
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
    pthread_cond_destroy(&x->containers.removal_ready);
    pthread_mutex_destroy(&x->containers.lock);
}

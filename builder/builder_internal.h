/* builder/builder_internal.h - the builder's state, shared by its .c files
 * (builder.c: the queue, builds and acceptance checks; curation.c: lifecycle,
 * drift and the maintenance thread); nobody else includes it. */
#ifndef ENVHUB_BUILDER_INTERNAL_H
#define ENVHUB_BUILDER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "builder/builder.h"
#include "sandbox/sandbox.h"

struct queued {
    int64_t build_id;
    struct queued *next;
};

struct active {
    int64_t build_id;
    char *environment;
    bool cancel;
    struct active *next;
};

/* The pip packages of a base image ("name==version" lines), listed once per
 * image id for the import check. */
struct base_pip {
    char *image_id;
    char *freeze; /* `pip list --format=freeze` output, "" when none */
    struct base_pip *next;
};

/* An image whose tags are gone (its environment deleted or retired) but that
 * a container still used then: removed by id once nothing uses it. */
struct pending_image {
    char *id;
    int64_t since; /* ms */
    struct pending_image *next;
};

enum cgroup_mode { CGROUP_NONE = 0, CGROUP_V1, CGROUP_V2 };

struct builder {
    const struct config *cfg;
    struct engine *engine;
    struct catalog *catalog;

    struct sandbox_labels *image_labels;     /* on built images */
    struct sandbox_labels *container_labels; /* on verification and acceptance containers */
    enum cgroup_mode cgroups;

    pthread_mutex_t lock;    /* guards everything below */
    pthread_cond_t work;     /* the queue got a build, or stop */
    pthread_cond_t progress; /* a log line or a build's end */
    int64_t generation;      /* counts progress events */
    struct queued *head, *tail;
    struct active *active;
    bool stopping;
    pthread_t *workers;
    size_t n_workers;
    void (*listener)(void *ctx);
    void *listener_ctx;
    uint64_t finished[BUILD_CANCELLED + 1]; /* builds ended, by status */
    double seconds_sum;
    uint64_t seconds_count;

    /* curation */
    struct base_pip *base_pips;
    pthread_cond_t maint_wake; /* a lifecycle change, or stop */
    bool maint_poke;
    struct pending_image *pending;
    pthread_t maint_thread;
    bool maint_started;
};

/* builder.c: tell the listener (the warm pools) that versions in service changed. */
void builder_notify_listener(struct builder *b);
/* builder.c: builder_rebuild, recording its environment.rebuild event only
 * with @event (false: a rebuild the server queues as part of another change
 * that has its own event, as a reinstate's). */
int builder_queue_rebuild(struct builder *b, const char *name, const char *setup_script,
                          const char *base_image, const char *policy, const char *test_script,
                          const char *created_by, bool event, struct build_record *ret,
                          struct err *err);

/* curation.c: the maintenance thread (retired images after their grace
 * period, the periodic drift check). */
int builder_maintenance_start(struct builder *b, struct err *err);
/* Wakes and joins it; after builder_shutdown(). Frees the pending images. */
void builder_maintenance_stop(struct builder *b);
/* The tags of @build's image were removed: when the image is still there (a
 * job's or a session's container used it) and no other ready build shares it,
 * the maintenance thread removes it by id once nothing uses it. */
void builder_image_orphaned(struct builder *b, const struct build_record *build);
/* Remove @build's image from ENVHUB_REGISTRY when it was pushed (its
 * registry_image); failures are logged. */
void builder_registry_forget(const struct build_record *build);

#endif

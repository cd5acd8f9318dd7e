/* cluster/cluster.h - the server's side of cluster mode (ENVHUB_CLUSTER):
 * the nodes that report to it, the one queue of jobs waiting for a node, the
 * leases nodes hold on jobs, and node drain and resume.
 *
 * A node is a process `envhub node` beside a Docker engine. It proves who it
 * is with its token (cluster_node_token: an HMAC of its name under the
 * cluster's node key), reports itself every second (a heartbeat: its boot
 * id, slots, the jobs it runs, the images it keeps warm), asks for work with
 * a long poll (a lease), runs what it gets on its own engine and sends the
 * result back. The server keeps the catalog; this module only carries jobs
 * as opaque text (executor/remote.c writes and reads them).
 *
 * Leases. A job given to a node is leased to that node's boot. It is started
 * once a heartbeat of that boot lists it (or its result came). A node that
 * is not heard from for node_timeout_ms is lost: the jobs it had started end
 * interrupted with the node named; those it never confirmed go back to the
 * front of the queue, for another node. A node that comes back with another
 * boot id was restarted, and one whose engine stopped answering (it says
 * so in its heartbeat) cannot run what it holds: their leases end the same
 * way, and the node takes nothing until its engine answers again. A result for a
 * lease the node no longer holds is refused (ERR_CONFLICT): nothing is
 * recorded twice.
 *
 * Placement. A job goes to a node that asks for work, is up, not drained,
 * and has a free slot; among those, one that keeps a warm container of the
 * job's image first, then the least loaded (leases / slots), then the one
 * that got a job last (its last job's container, given back, is warm: a
 * burst of one client's jobs stays where its container is). With none asking, the job waits in the
 * queue and the next node to ask takes the oldest. cluster_pick() is that choice, pure.
 *
 * One struct cluster serves all threads (one lock). */
#ifndef ENVHUB_CLUSTER_H
#define ENVHUB_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct cluster;

/* Node names: 1 to CLUSTER_NAME_MAX of [A-Za-z0-9._-], starting with a
 * letter or digit (Swarm node ids and host names fit). */
#define CLUSTER_NAME_MAX 63
bool cluster_node_name_ok(const char *name);
/* The token of node @name: hex HMAC-SHA256 under @key of "envhub-node:" +
 * @name. Pure. */
#define CLUSTER_TOKEN_LEN 64
void cluster_node_token(const char *key, size_t key_len, const char *name,
                        char ret[CLUSTER_TOKEN_LEN + 1]);
/* The node key in file @path (surrounding white space dropped; at least 16
 * bytes, at most 4096): ERR_INVALID naming the file. *ret is the caller's. */
int cluster_key_read(const char *path, char **ret, size_t *ret_len, struct err *err);
/* Jobs a heartbeat may list as running; images it may list as warm. */
#define CLUSTER_REPORT_MAX 256

/* @key (copied): the node key; @node_timeout_ms: silence after which a node
 * is lost. */
int cluster_open(const char *key, size_t key_len, int64_t node_timeout_ms, struct cluster **ret,
                 struct err *err);
/* Jobs waiting for a node or on one end (ERR_UNAVAILABLE); lease polls
 * return empty. Safe to call twice. */
void cluster_shutdown(struct cluster *c);
void cluster_close(struct cluster *c); /* after shutdown and the last caller; NULL is fine */

/* Is @token node @name's (constant time)? */
bool cluster_token_ok(struct cluster *c, const char *name, const char *token);

/* ---- the server's jobs ---- */

struct cluster_outcome {
    char *node;   /* where it was leased (NULL: it never left the queue) */
    char *result; /* the node's result text (0 returned) */
    size_t result_len;
};
void cluster_outcome_release(struct cluster_outcome *o);

/* Place job @id (@image: what it runs; @spec, stolen: what the node gets)
 * and wait for its end. 0 with ret->result: the node's result. -1: ERR_UNAVAILABLE
 * (no node is up, or shutting down: ret->node says whether it ran
 * somewhere), ERR_CANCELLED (cluster_cancel; ret->node as well), ERR_GONE
 * (its node was lost or restarted while it ran: ret->node names it). */
int cluster_run(struct cluster *c, const char *id, const char *image, char *spec, size_t spec_len,
                struct cluster_outcome *ret, struct err *err);
/* Cancel job @id by @by: a queued one ends ERR_CANCELLED at once; a leased
 * one is named to its node at its next heartbeat (which kills it; its
 * result comes back as usual). ERR_NOT_FOUND when it is neither. */
int cluster_cancel(struct cluster *c, const char *id, const char *by, struct err *err);

/* ---- the node's side ---- */

/* What a node says of itself. */
struct cluster_report {
    const char *name, *boot;  /* boot: random per start of `envhub node` */
    int64_t slots;            /* jobs it runs at once */
    char **running;           /* ids of the jobs it runs (NULL-terminated or NULL) */
    char **warm;              /* images it has a warm container of */
    char **pulling;           /* "IMAGE: progress" lines of pulls under way */
    char **pools;             /* "IMAGE: N ready of M" of its warm pools */
    char **images;            /* versions it pulled and keeps (registry references) */
    const char *engine;       /* its engine's name and version, for the status */
    const char *engine_error; /* its engine does not answer: why (NULL: it answers) */
};
/* What the server tells it back. */
struct cluster_reply {
    bool drained;
    char **cancel; /* ids to kill: cancelled, or no longer leased to it (strv) */
};
void cluster_reply_release(struct cluster_reply *r);

/* A heartbeat: the node is up (registered at its first). */
int cluster_heartbeat(struct cluster *c, const struct cluster_report *r, struct cluster_reply *ret,
                      struct err *err);
/* A lease poll of node @name, boot @boot: waits up to @wait_ms (at most half
 * the node timeout) for a job. 0 with *ret_id and *ret_spec (the caller's)
 * set, or NULL when none came. ERR_CONFLICT when the node is not registered
 * with that boot (it must send a heartbeat first) or polls twice at once. */
int cluster_lease(struct cluster *c, const char *name, const char *boot, int64_t wait_ms,
                  char **ret_id, char **ret_spec, size_t *ret_spec_len, struct err *err);
/* A lease could not be handed over (the answer failed): the job goes back
 * to the front of the queue. */
void cluster_unlease(struct cluster *c, const char *name, const char *id);
/* The result (stolen) of job @id from node @name, boot @boot. ERR_CONFLICT
 * when the node does not hold its lease (lost, restarted, cancelled and
 * ended, or never). */
int cluster_complete(struct cluster *c, const char *name, const char *boot, const char *id,
                     char *result, size_t len, struct err *err);

/* Does node @name, boot @boot, hold the lease on job @id? */
bool cluster_holds(struct cluster *c, const char *name, const char *boot, const char *id);
/* Node @name, boot @boot, gives job @id back unrun (its engine went before
 * the job got a container): it goes to the front of the queue, for another
 * node. ERR_CONFLICT when the node does not hold its lease. */
int cluster_giveback(struct cluster *c, const char *name, const char *boot, const char *id,
                     struct err *err);

/* ---- operation ---- */

struct cluster_node_info {
    char *name, *boot, *engine;
    char *engine_error; /* its engine does not answer (the node says why); NULL: it does */
    bool up, drained;
    int64_t slots, running, leased;
    uint64_t jobs_done, jobs_lost;
    int64_t first_seen_ms, last_seen_ms; /* wall clock */
    char **warm, **pulling, **pools, **images;
};
void cluster_node_infos_free(struct cluster_node_info *n, size_t count);
struct cluster_stats {
    int64_t queued, leased;
    uint64_t placed, requeued, interrupted;
};
/* Every node ever heard from since the start, by name. */
void cluster_nodes(struct cluster *c, struct cluster_node_info **ret, size_t *ret_n,
                   struct cluster_stats *ret_stats);
/* Drain (@drained true: it finishes its jobs and takes no new ones) or
 * resume node @name. ERR_NOT_FOUND when it never reported. */
int cluster_drain(struct cluster *c, const char *name, bool drained, struct err *err);
/* At start: node @name was drained before (the catalog says so); it is
 * drained when it reports. */
void cluster_drain_known(struct cluster *c, const char *name);

/* ---- placement (pure) ---- */

struct cluster_candidate {
    bool asking, up, drained;
    int64_t slots, leased;
    bool warm;             /* keeps a warm container of the job's image */
    int64_t last_given_ms; /* monotonic */
};
/* The index of the node the job goes to, or -1 when none can take it now. */
int cluster_pick(const struct cluster_candidate *c, size_t n);

#endif

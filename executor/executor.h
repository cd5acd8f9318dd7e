/* executor/executor.h - one job, one result: runs Python code in a fresh,
 * locked-down sandbox container and records it in the catalog.
 *
 * Each job gets its own container (read-only root, tmpfs /workspace and /tmp
 * with size and inode limits, a small /dev/shm, uid 1000, no capabilities,
 * no-new-privileges, pids/memory/CPU limits, no network, log driver none).
 * Inputs and code go in as a tar on the stdin of `tar -x`, the code runs
 * through exec, outputs come back as a tar read with libarchive: only regular
 * files within the caps. The container is removed after every job.
 *
 * At most `concurrent_limit` jobs run at once; up to `queue_limit` more wait
 * for a slot; beyond that executor_run() fails with ERR_BUSY.
 *
 * One struct executor serves all threads. */
#ifndef ENVHUB_EXECUTOR_H
#define ENVHUB_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "engine/engine.h"
#include "sandbox/sandbox.h"

struct executor;

/* Start the executor: removes containers a previous run of this catalog left
 * behind and marks its unfinished executions interrupted. @cfg, @e and @cat
 * are borrowed and must outlive the executor. */
int executor_open(const struct config *cfg, struct engine *e, struct catalog *cat,
                  struct executor **ret, struct err *err);
/* Stop taking jobs: waiting jobs fail with ERR_UNAVAILABLE, running jobs are
 * killed and recorded as interrupted. Returns at once; safe to call twice. */
void executor_shutdown(struct executor *x);
/* Shut down if not yet, wait for container removals, free. NULL is fine. */
void executor_close(struct executor *x);

/* Where the code goes inside the workspace: no input file may take that
 * name, and it is never returned as an output. */
#define EXEC_CODE_NAME ".envhub_main.py"
/* envhub's own folder in the workspace: its matplotlib backend and the
 * pictures a job shows (EXEC_DISPLAY_DIR). No input file may be in it, and
 * nothing in it is returned as an output file. */
#define EXEC_PRIVATE_DIR ".envhub"
#define EXEC_DISPLAY_DIR EXEC_PRIVATE_DIR "/display"

/* A file going in or coming out; path relative to the workspace. */
struct job_file {
    char *path;
    char *data;
    size_t len;
};
void job_files_free(struct job_file *files, size_t n);

struct job_request {
    const char *code;
    size_t code_len;
    int64_t timeout_s;  /* already validated against the server's limits */
    bool timeout_given; /* false: the environment's default timeout applies */
    const struct sandbox_overrides *overrides; /* may be NULL */
    const struct job_file *files;              /* validated: safe names, sizes */
    size_t n_files;
    const char *environment; /* NULL: the default image */
    const char *principal;
    const char *client_addr;
};

struct job_result {
    char id[32];
    enum exec_status status;
    int exit_code;     /* -1 when the code did not finish */
    char *stdout_text; /* valid UTF-8, capped; may hold NUL: use stdout_len */
    size_t stdout_len;
    bool stdout_truncated;
    char *stderr_text;
    size_t stderr_len;
    bool stderr_truncated;
    double execution_time;  /* seconds the code ran */
    struct job_file *files; /* output files */
    size_t n_files;
    /* Pictures the code showed (matplotlib figures), PNG, by name
     * ("figure-1.png"), in the order of their numbers; never among files. */
    struct job_file *display;
    size_t n_display;
    char **files_skipped; /* "path: reason", NULL-terminated; may be NULL */
    char *error;          /* NULL on success, else the seed's message */
    char *warning;        /* the environment is deprecated: says so; else NULL */
    /* a session's call in its interpreter (agent transport): the repr of
     * the final expression's value (capped at EXEC_RESULT_MAX characters),
     * NULL when there was none; interpreter_lost: the interpreter died in
     * this call (its variables are gone; the next call starts a new one) */
    char *result;
    bool interpreter_lost;
};
/* Characters of a session call's `result` kept (the rest cut, said so). */
#define EXEC_RESULT_MAX 16384
void job_result_release(struct job_result *r);

/* Run one job to its end. Returns 0 when the job ran, whatever its outcome
 * (see ret->status); -1 when it could not run: ERR_BUSY (queue full),
 * ERR_NOT_FOUND (unknown environment, image missing), ERR_GONE (environment
 * retired), ERR_INVALID (environment
 * not ready), ERR_UNAVAILABLE (shutting down, engine down), ERR_ENGINE. A job
 * that got as far as the catalog has its row in every case. */
int executor_run(struct executor *x, const struct job_request *req, struct job_result *ret,
                 struct err *err);

struct executor_stats {
    int64_t running, waiting;
};
void executor_stats(struct executor *x, struct executor_stats *ret);

/* ---- sessions: one container kept for a conversation ---- */

struct session_info {
    char id[32]; /* "se_" + 24 hex characters */
    char *principal;
    char *environment; /* NULL: the default image */
    int64_t environment_version;
    char *image;
    int64_t created_at;    /* ms since the epoch */
    int64_t last_activity; /* ms since the epoch */
    int64_t idle_timeout_s;
    int64_t calls;
    bool busy;
    bool stateful;       /* its calls share one interpreter (agent transport) */
    bool keep_processes; /* processes a call starts outlive it */
};
void session_info_release(struct session_info *i);
void session_infos_free(struct session_info *i, size_t n);

/* The caller's admission of a session (web: the key's concurrency quota):
 * called with the new session's id once its per-principal slot is reserved
 * and before its container is made; a failure (its err) is the open's. */
typedef int (*executor_session_admit_fn)(void *ctx, const char *id, struct err *err);

/* Open a session for @principal in @environment (NULL: the default image);
 * @idle_timeout_s 0 means the default. The slot counts against
 * ENVHUB_SESSIONS_PER_PRINCIPAL from its reservation, before the container
 * is made, and is given back on every failure. @admit (may be NULL) then
 * admits it; once it did, the session hook hears of the session's end
 * exactly once, whether the open fails after that or the session closes.
 * ERR_NOT_FOUND / ERR_INVALID for the environment (the seed's messages),
 * ERR_BUSY over the per-principal limit, @admit's error, ERR_ENGINE,
 * ERR_UNAVAILABLE (shutting down). */
int executor_session_open(struct executor *x, const char *environment, int64_t idle_timeout_s,
                          bool keep_processes, const char *principal,
                          executor_session_admit_fn admit, void *admit_ctx,
                          struct session_info *ret, struct err *err);
/* @fn is called (from the thread that ends it, with no executor lock held)
 * with the id of each admitted session when it ends: its open failed after
 * the admission, it was closed, reaped, broken, or envhub stopped. Every
 * process of the session is gone by then (its container is killed). Returns
 * once no call of the hook it replaces is in progress: with @fn NULL, the
 * old hook's ctx may be freed then. Not from within the hook. */
void executor_set_session_hook(struct executor *x, void (*fn)(void *ctx, const char *id),
                               void *ctx);
/* The calls below take @principal NULL for "any" (admins), else only that
 * principal's sessions exist for them (ERR_NOT_FOUND otherwise). A session
 * runs one call at a time (ERR_CONFLICT while busy). */
/* Run code in the session's workspace; a timeout ends the call, not the session. */
int executor_session_execute(struct executor *x, const char *id, const char *principal,
                             const struct job_request *req, struct job_result *ret,
                             struct err *err);
/* Start the session's interpreter afresh (its variables gone, its
 * processes killed, its files kept); a no-op for a session that is not
 * stateful (each call is a fresh process there). */
int executor_session_reset(struct executor *x, const char *id, const char *principal,
                           struct err *err);
/* Write @path (safe relative) in the session's workspace. */
int executor_session_put_file(struct executor *x, const char *id, const char *principal,
                              const char *path, const void *data, size_t len, struct err *err);
/* Read regular file @path of the session's workspace; *ret's fields belong to the caller. */
int executor_session_get_file(struct executor *x, const char *id, const char *principal,
                              const char *path, struct job_file *ret, struct err *err);
int executor_session_close(struct executor *x, const char *id, const char *principal,
                           struct err *err);
int executor_session_get(struct executor *x, const char *id, const char *principal,
                         struct session_info *ret, struct err *err);
/* Open sessions of @principal (NULL: all). */
int executor_session_list(struct executor *x, const char *principal, struct session_info **ret,
                          size_t *ret_n);

/* ---- asynchronous jobs, cancellation, live output ---- */

/* Validate and record @n jobs as queued, all or none, and run them later:
 * every job is resolved (its environment, policy and files) before any is
 * recorded; a failure names the job ("jobs[i]: ..."). ret_ids[i] is job i's
 * execution id. ERR_BUSY when ENVHUB_ASYNC_QUEUE_LIMIT jobs wait. */
int executor_submit_batch(struct executor *x, const struct job_request *reqs, size_t n,
                          char (*ret_ids)[32], struct err *err);
/* Cancel execution @id, queued or running (its row ends interrupted, "cancelled
 * by @by"). ERR_NOT_FOUND when it is neither. */
int executor_cancel(struct executor *x, const char *id, const char *by, struct err *err);
/* @fn is called (from an executor thread, with no executor lock held) when an
 * asynchronous job has its final row. Returns once no call of the hook it
 * replaces is in progress: with @fn NULL, the old hook's ctx may be freed
 * then. Not from within the hook. */
void executor_set_done_hook(struct executor *x, void (*fn)(void *ctx, const char *id), void *ctx);

/* Output chunk of a running job: stream ENGINE_STDOUT or ENGINE_STDERR, or
 * ENGINE_STDIN with no data as a keepalive after a quiet spell. -1 stops. */
typedef int (*executor_chunk_fn)(void *ctx, enum engine_stream stream, const char *data,
                                 size_t len);
/* Stream execution @id's output from its start until it ends; ERR_NOT_FOUND
 * when it is not running. Blocks the caller; never polls. */
int executor_follow(struct executor *x, const char *id, executor_chunk_fn fn, void *ctx,
                    int64_t keepalive_ms, struct err *err);

/* An environment whose warm containers could not import a module of its
 * policy.preload (the last report of its containers said so). */
struct executor_preload_failure {
    char *environment; /* "" for the default image */
    int64_t version;
    char *detail; /* "MODULE: why; ..." */
    int64_t at_ms;
};
/* A snapshot; the caller frees with executor_preload_failures_free. */
void executor_preload_failures(struct executor *x, struct executor_preload_failure **ret,
                               size_t *ret_n);
void executor_preload_failures_free(struct executor_preload_failure *f, size_t n);

struct executor_pool_stat {
    char *image, *environment; /* environment "" for the default image */
    int64_t want;              /* the target now: floor <= want <= ENVHUB_MAX_POOL_SIZE */
    int64_t floor;             /* the configured size */
    int64_t ready, starting;
    uint64_t hits, misses;
    uint64_t burst_returns; /* used containers kept for their key in a burst */
    double rate;            /* takes per second, recent (exponentially weighted) */
    double refill_seconds;  /* moving average of the time to make and start one */
    double refill_sum;      /* seconds, all refills */
    uint64_t refills;
};
/* A snapshot of every pool; the caller frees with executor_pool_stats_free. */
void executor_pool_stats(struct executor *x, struct executor_pool_stat **ret, size_t *ret_n);
void executor_pool_stats_free(struct executor_pool_stat *s, size_t n);

/* What /metrics shows of the executor, as plain numbers (web renders them). */
#define EXECUTOR_DURATION_BUCKETS 12
/* Upper bounds (seconds) of the run-time histogram's buckets. */
extern const double executor_duration_buckets[EXECUTOR_DURATION_BUCKETS];
struct executor_env_counts {
    char *environment; /* "" for the default image */
    uint64_t by_status[EXEC_INTERRUPTED + 1];
    uint64_t duration_buckets[EXECUTOR_DURATION_BUCKETS]; /* cumulative counts, like "le" */
    double duration_sum;
    uint64_t duration_count;
};
struct executor_metrics {
    int64_t running, waiting, async_queued, sessions_open;
    double wait_seconds; /* time jobs waited for a slot, in all */
    uint64_t waited;     /* jobs that took a slot */
    uint64_t engine_errors;
    struct executor_env_counts *envs;
    size_t n_envs;
    struct executor_pool_stat *pools;
    size_t n_pools;
    int64_t containers_live;     /* in use + ready or starting in pools + removal backlog */
    int64_t removal_backlog;     /* waiting for removal or being removed */
    int64_t removal_backlog_max; /* ENVHUB_MAX_REMOVAL_BACKLOG */
    uint64_t backlog_waits;      /* jobs that waited for the backlog to fall */
    double backlog_wait_seconds; /* and how long, in all */
};
/* A snapshot; release it with executor_metrics_release. */
void executor_metrics(struct executor *x, struct executor_metrics *ret);
void executor_metrics_release(struct executor_metrics *m);

/* Read the warm pools' targets again (an environment changed version, was
 * created or deleted): new versions get their pool, old ones drain. */
void executor_pool_refresh(struct executor *x);

/* ---- cluster mode ---- */

struct cluster;
/* The server's side: from now on jobs run on the cluster's nodes (@c,
 * borrowed, must outlive the executor; call before serving). Sessions and
 * builds stay on this server's engine. */
void executor_use_cluster(struct executor *x, struct cluster *c);

/* A node's side (`envhub node`): an executor without a catalog, for the
 * jobs node @node leases; its containers carry envhub.instance=node-NAME
 * (those a previous run left are removed at open), its pool is the default
 * image's (ENVHUB_POOL_SIZE). Only executor_node_run, executor_cancel,
 * executor_node_warm, executor_stats, executor_shutdown and executor_close
 * apply to it. */
int executor_open_node(const struct config *cfg, struct engine *e, const char *node,
                       struct executor **ret, struct err *err);
/* Run the job of @spec (exec_remote_spec's text) to its end: 0 with its
 * result text in *ret_result (the caller frees), whatever came of it: a
 * spec it cannot read, or a job the node's stop cut off, is a result too
 * (status error or interrupted, with the reason). *ret_unrun: the job got
 * no container because the engine does not answer: give it back
 * (another node runs it) rather than send the result. @live (may be NULL)
 * gets the job's output as it comes when the spec asks for it (someone may
 * follow the job on the server: executor_remote_output). */
int executor_node_run(struct executor *x, const char *spec, size_t len, engine_output_fn live,
                      void *live_ctx, char **ret_result, size_t *ret_len, bool *ret_unrun,
                      struct err *err);
/* The server's side: the warm pools node @index of @count ready nodes
 * (sorted by name) keeps: each environment's policy.pool_size shared out
 * among the nodes (JSON text for the heartbeat's answer; the caller frees). */
char *executor_cluster_pools(struct executor *x, size_t index, size_t count);
/* A node's side: keep the pools of @text (executor_cluster_pools); a text
 * like the last one changes nothing. */
void executor_node_set_pools(struct executor *x, const char *text);
/* The server's side: the registry references of every version in service
 * (ready, not retired), which nodes keep (strv in *ret; the caller frees);
 * -1 when the catalog cannot say. */
int executor_cluster_images(struct executor *x, char ***ret);
/* A node's side: remove the images it pulled that are not in @keep (a
 * deleted, retired or replaced version's); one still used stays for the
 * next call. */
void executor_node_prune(struct executor *x, char *const *keep);
/* The server's side: live output of job @id that its node relays (while
 * someone may follow it: an asynchronous job); ERR_NOT_FOUND when the job
 * has no live output (a synchronous one, or ended). */
int executor_remote_output(struct executor *x, const char *id, bool is_stderr, const char *data,
                           size_t len, struct err *err);
/* Pulls under way: "IMAGE: latest progress line" (strv; the caller frees). */
char **executor_node_pulls(struct executor *x);
/* Its pools: "IMAGE: N ready of M" (strv; the caller frees). */
char **executor_node_pool_lines(struct executor *x);
/* The images it pulled and keeps (strv; the caller frees). */
char **executor_node_images(struct executor *x);
/* Images with a warm container ready (strv; the caller frees). */
char **executor_node_warm(struct executor *x);

#endif

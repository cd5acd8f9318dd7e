/* executor/executor_internal.h - the executor's layers, shared by its .c
 * files and its unit tests; nobody else includes it.
 *
 * Layers. A file calls only the files below it (an arrow is "calls"); a
 * lower layer that must tell an upper one something gets a callback (the
 * live output tap, the done hook). The graph is a DAG:
 *
 *   executor.c     the service: executor_open/shutdown/close, stats, /metrics
 *     |  \
 *     |   async.c  asynchronous submissions: their queue, workers, cancel
 *     |    |
 *     |   runs.c   runs: slots and the run queue, the registry of running
 *     |    |       jobs, one job's life (prepare; execute: slot, container,
 *     |    |       run, row)
 *     |  session.c sessions and the idle reaper (beside runs.c: neither calls
 *     |    |       the other)
 *     |   job.c    one run of code in a started container: the wrapper
 *     |    |       (wrapper.sh, compiled in), capture, status marker, files
 *     |   pool.c   warm pools and their thread
 *     |    |
 *   containers.c   containers in use, their creation (sandbox/), the removal
 *     |            thread, kill at shutdown, leftovers of a previous run
 *   live.c         live output of running jobs, and its followers
 *     |
 *   shared.c       shared state: config, engine, catalog, labels, the
 *                  stopping flag, counters, the environment lookup, the
 *                  execution row
 *   tar.c          the tar streams in and out (pure)
 *
 *   executor.c -> async.c, runs.c, session.c, pool.c, containers.c, live.c, shared.c
 *   async.c    -> runs.c, live.c, shared.c
 *   runs.c     -> job.c, pool.c, containers.c, live.c, shared.c, tar.c
 *   session.c  -> job.c, pool.c, containers.c, shared.c, tar.c
 *   job.c      -> shared.c, tar.c
 *   pool.c     -> containers.c, shared.c
 *   containers.c, live.c -> shared.c
 *
 * Locks. Each subsystem has its own mutex and condition variables:
 *
 *   lock             guards                                      conditions
 *   stats.lock       counters, engine_errors, default_image_id  -
 *   containers.lock  active, removals and their counts, the      removal_ready,
 *                    backlog waits, removal_stop                 backlog_freed
 *   live.lock        every live buffer and the list of them      grew
 *   pool.lock        the pools, their ready containers, their    wake
 *                    demand and refill estimates, refresh
 *   runs.lock        running, waiting, wait totals; the registry slot_freed
 *                    of running jobs (their cid, cancelled_by)
 *   sessions.lock    the sessions, those being opened (their     reaper_wake,
 *                    slot reserved); each one's busy, calls,     hook_idle
 *                    last activity; the end hook and the calls
 *                    of it in progress
 *   async.lock       the queue, queued, the done hook and the    ready,
 *                    calls of it in progress                     hook_idle
 *
 * Lock order: async.lock -> runs.lock (a worker registers the job it takes
 * before the job leaves the queue, so that a cancel finds it in one or the
 * other). No other lock is ever held with another one: a layer lets go of
 * its own before it calls another layer, and no lock is held across an
 * engine or catalog call. The caller's functions (a session's admit
 * function, the session hook, the done hook) are called with no executor
 * lock held: they take their owner's locks (web: auth.lock). `stopping` is
 * an atomic flag: set once by executor_shutdown(), which then takes each
 * subsystem's lock to wake its waiters, so a waiter that saw it false under
 * its lock cannot miss it. */
#ifndef ENVHUB_EXECUTOR_INTERNAL_H
#define ENVHUB_EXECUTOR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "core/buf.h"
#include "core/embed.h"
#include "core/err.h"
#include "engine/engine.h"
#include "executor/executor.h"
#include "sandbox/sandbox.h"

/* A container and what it is for. */
struct container_ref {
    char *id;
    char *image;
    int64_t uses;        /* jobs it has served (recycling mode) */
    char *principal;     /* recycling: who its last job was for (it serves nobody else) */
    int64_t env_version; /* recycling: the environment version of its last job */
    int64_t burst_until; /* kept for its key in a burst: goes unless taken by then (mono ms) */
    struct container_ref *next;
};
void exec_ref_free(struct container_ref *c); /* and its strings; NULL is fine */

/* Per-environment counters for /metrics. */
struct exec_counter {
    char *environment; /* "" for the default image */
    uint64_t by_status[EXEC_INTERRUPTED + 1];
    uint64_t duration_buckets[EXECUTOR_DURATION_BUCKETS];
    double duration_sum;
    uint64_t duration_count;
    /* the last agent report of this environment: modules it could not preload */
    char *preload_error; /* "MODULE: why; ..." or NULL */
    int64_t preload_version;
    int64_t preload_at_ms;
    struct exec_counter *next;
};

/* Threads removing the containers jobs, sessions and pools are done with. */
#define EXEC_REMOVAL_WORKERS 3
/* Threads starting warm containers for the pools. */
#define EXEC_POOL_FILLERS 2

struct pool;
struct session;
struct live;
struct async_job;
struct prepared_job;

struct executor {
    /* set at open, read-only after */
    const struct config *cfg;
    struct engine *engine;
    struct catalog *catalog;
    struct sandbox_labels *labels; /* on every container it makes */
    char *instance;                /* envhub.instance of its containers: the catalog's id, or
                                    * "node-NAME" for a node (executor_open_node) */
    struct cluster *cluster;       /* cluster mode: jobs go to nodes (executor_use_cluster) */
    atomic_bool stopping;

    struct {
        pthread_mutex_t lock;
        struct exec_counter *counters;
        uint64_t engine_errors;
        char *default_image_id; /* refreshed by a pool filler */
        char **pulling;         /* a node's pulls under way: "IMAGE: progress" (strv) */
        char **pulled;          /* images a node pulled itself (it removes them once out of
                                 * service: executor_node_prune) */
    } stats;

    struct {
        pthread_mutex_t lock;
        pthread_cond_t removal_ready;   /* something to remove, or stop */
        pthread_cond_t backlog_freed;   /* a removal ended, or shutdown */
        struct container_ref *active;   /* in use by a job or a session */
        struct container_ref *removals; /* to remove */
        int64_t n_active;
        int64_t n_removals;       /* in removals */
        int64_t removing;         /* taken off removals, being removed now */
        uint64_t backlog_waits;   /* jobs that waited for the backlog */
        uint64_t backlog_wait_ms; /* and how long, in all */
        bool removal_stop;
        pthread_t removal_threads[EXEC_REMOVAL_WORKERS];
        size_t n_removal_threads;
    } containers;

    struct {
        pthread_mutex_t lock;
        pthread_cond_t grew; /* a chunk, an end, or stop */
        struct live *list;
    } live;

    struct {
        pthread_mutex_t lock;
        pthread_cond_t wake;
        struct pool *list;
        bool refresh; /* read the targets again */
        /* a node: the server's pools for it (executor_node_set_pools) */
        struct exec_pool_target *node_targets;
        size_t n_node_targets;
        char *node_targets_text;
        bool refreshing; /* a filler is reading them (one at a time) */
        pthread_t threads[EXEC_POOL_FILLERS];
        size_t n_threads;
    } pool;

    struct {
        pthread_mutex_t lock;
        pthread_cond_t slot_freed;
        int64_t running, waiting;
        uint64_t wait_ms_total, waited_jobs;
        struct prepared_job *registry; /* jobs between their start and their end */
    } runs;

    struct {
        pthread_mutex_t lock;
        pthread_cond_t reaper_wake;
        struct session *list;
        struct session *opening; /* their slot reserved, their container being made */
        pthread_t reaper_thread;
        bool reaper_started;
        void (*on_end)(void *ctx, const char *id); /* executor_set_session_hook */
        void *on_end_ctx;
        int64_t hook_calls;       /* calls of on_end in progress (made without the lock) */
        pthread_cond_t hook_idle; /* hook_calls fell to 0 */
    } sessions;

    struct {
        pthread_mutex_t lock;
        pthread_cond_t ready;
        struct async_job *head, *tail;
        int64_t queued;
        pthread_t *threads;
        size_t n_threads;
        void (*on_done)(void *ctx, const char *id);
        void *on_done_ctx;
        int64_t hook_calls;       /* calls of on_done in progress (made without the lock) */
        pthread_cond_t hook_idle; /* hook_calls fell to 0 */
    } async;
};

/* Each subsystem: _init (locks, conditions; cannot fail) before anything
 * else, _start (threads) in layer order, _stop (join, drain) from the top
 * down after executor_shutdown(), _fini (free, destroy) last. */

/* ---- shared.c: the bottom layer ---- */

void exec_stats_init(struct executor *x);
void exec_stats_fini(struct executor *x);
bool exec_stopping(struct executor *x);
/* A job of @environment (NULL: the default image) ended with @status after
 * @seconds of running (< 0: it did not run). */
void exec_count(struct executor *x, const char *environment, enum exec_status status,
                double seconds);
void exec_count_engine_error(struct executor *x);
/* A container of @environment (NULL: the default image) version @version
 * reported the modules it could not preload (@errors, "MODULE: why" strv;
 * NULL or empty: it preloaded them all): /health shows the last report. */
void exec_note_preload(struct executor *x, const char *environment, int64_t version,
                       char *const *errors);
/* A node pulls @image: @line is its latest progress; NULL: the pull ended. */
void exec_note_pull(struct executor *x, const char *image, const char *line);
/* The default image's id as last seen (a copy, or NULL). */
char *exec_default_image_id(struct executor *x);
void exec_set_default_image_id(struct executor *x, const char *id);
/* A copy of the per-environment counters (freed by executor_metrics_release). */
void exec_counters_snapshot(struct executor *x, struct executor_env_counts **ret, size_t *ret_n);
uint64_t exec_engine_errors(struct executor *x);

/* An environment resolved for a job or a session. */
struct exec_env {
    const char *name;             /* the name asked for (borrowed); NULL: the default image */
    const char *image;            /* what to run (borrowed from rec or the config) */
    struct sandbox_limits limits; /* its policy's, else the server's defaults */
    struct env_record rec;        /* as the catalog has it; zero for the default image */
};
/* Resolve @name (NULL: the default image): ERR_NOT_FOUND about a missing
 * environment (ERR_ABOUT_ENV_MISSING), ERR_GONE (retired, with its notice),
 * ERR_INVALID about one with no version ready (ERR_ABOUT_ENV_NOT_READY);
 * ERR_INVALID when its policy is one this server refuses.
 * exec_env_release() it. */
int exec_env_resolve(struct executor *x, const char *name, struct exec_env *ret, struct err *err);
void exec_env_release(struct exec_env *env);

/* A run's row, status queued: a new id, who, the code and its sha256, the
 * timeout, the limits it runs with, the input manifest. The caller fills
 * where it runs (environment, image, session). */
void exec_record_init(struct execution_record *rec, const struct job_request *req,
                      int64_t timeout_s, const struct sandbox_limits *l);
/* Add @files to the row's manifest with their size and sha256. */
void exec_manifest_add(struct execution_record *rec, enum file_direction dir,
                       const struct job_file *files, size_t n);
/* The outcome @res into the row (status, exit code, error, end, duration,
 * output files) and the counters; writes it. The row borrows @res's output
 * for the write only. A busy catalog is tried again (catalog_execution_finish);
 * an output manifest it refuses is left out, and the row's error says so,
 * rather than leave the row running. */
int exec_record_finish(struct executor *x, struct execution_record *rec,
                       const struct job_result *res, struct err *err);
/* engine_output_fn: stdout into the struct buf @ctx, stopping at its limit. */
int exec_collect_stdout(void *ctx, enum engine_stream stream, const char *data, size_t len);

/* ---- containers.c ---- */

void exec_containers_init(struct executor *x);
/* Remove what a previous run of this catalog left behind; start the removal workers. */
int exec_containers_start(struct executor *x, struct err *err);
/* Remove what is left to remove, join the removal workers. */
void exec_containers_stop(struct executor *x);
void exec_containers_fini(struct executor *x);
/* Kill every container in use (shutdown): their runs end and record themselves. */
void exec_containers_kill_active(struct executor *x);
/* A sandbox container of @image for jobs and sessions (sandbox_spec_fill,
 * SANDBOX_JOB) with limits @l, started when @start; *ret_id is the caller's.
 * A container that does not start is removed. */
int exec_container_create(struct executor *x, const char *image, const struct sandbox_limits *l,
                          bool start, char **ret_id, struct err *err);
/* In use / no longer in use (then the caller says where it goes). */
void exec_container_activate(struct executor *x, const char *id);
void exec_container_deactivate(struct executor *x, const char *id);
/* To the removal workers; nobody waits for it. */
void exec_container_remove_later(struct executor *x, const char *id);
/* No longer in use, and to the removal workers. */
void exec_container_release(struct executor *x, const char *id);
/* Backpressure: wait until fewer than ENVHUB_MAX_REMOVAL_BACKLOG containers
 * wait for removal (or are being removed), at most @max_ms. ERR_UNAVAILABLE
 * when shutting down or when the backlog stayed full that long. Called by a
 * job holding its slot, before it takes or makes its container. */
int exec_containers_backlog_wait(struct executor *x, int64_t max_ms, struct err *err);
/* Shutdown: backlog waiters give up. */
void exec_containers_wake(struct executor *x);
struct exec_container_counts {
    int64_t active;  /* in use by jobs and sessions */
    int64_t backlog; /* waiting for removal or being removed */
    uint64_t backlog_waits, backlog_wait_ms;
};
void exec_containers_counts(struct executor *x, struct exec_container_counts *ret);

/* ---- live.c ---- */

void exec_live_init(struct executor *x);
void exec_live_wake(struct executor *x); /* shutdown: followers end */
void exec_live_fini(struct executor *x);
/* A live output buffer for execution @id, followed by executor_follow(). */
struct live *exec_live_open(struct executor *x, const char *id);
struct live_tap {
    struct executor *x;
    struct live *live;
};
/* engine_output_fn appending to a live_tap's buffer. */
int exec_live_append(void *ctx, enum engine_stream stream, const char *data, size_t len);
/* The job is over: followers get the end. */
void exec_live_close(struct executor *x, struct live *l);

/* ---- pool.c ---- */

/* Demand of one pool: how fast jobs take its containers and how long one
 * takes to make. Pure functions below, under pool.lock in pool.c. */
struct pool_demand {
    double rate;     /* takes per second, as of at_ms */
    int64_t at_ms;   /* monotonic ms of the last take (0: none yet) */
    double refill_s; /* moving average of create + start (0: none measured) */
    double refill_sum;
    uint64_t refills;
};
/* Time constant of the rate estimate: a take counts 1/tau and fades as e^(-age/tau). */
#define POOL_RATE_WINDOW_MS 30000
/* Weight of the newest refill time in its moving average. */
#define POOL_REFILL_WEIGHT 0.2
/* A take at @now_ms (monotonic, never earlier than the last). */
void exec_demand_take(struct pool_demand *d, int64_t now_ms);
/* The rate at @now_ms: takes per second, exponentially weighted. */
double exec_demand_rate(const struct pool_demand *d, int64_t now_ms);
/* A container made for the pool in @seconds. */
void exec_demand_refill(struct pool_demand *d, double seconds);
/* The pool's target: enough ready containers for the takes expected while
 * one is made (ceil(rate x refill time)), never below @floor (the configured
 * size) nor above @ceiling (ENVHUB_MAX_POOL_SIZE, or the floor when that is
 * larger); 0 when the floor is 0 (the pool is off). */
int64_t exec_pool_target(int64_t floor, int64_t ceiling, double rate, double refill_s);

/* What a pool should hold. */
struct exec_pool_target {
    char *image;
    char *environment; /* NULL: the default image */
    int64_t want, recycle;
    struct sandbox_limits limits;
};
void exec_pool_targets_free(struct exec_pool_target *t, size_t n);

void exec_pool_init(struct executor *x);
/* Ready and starting containers of every pool. */
int64_t exec_pool_live(struct executor *x);
int exec_pool_start(struct executor *x, struct err *err);
void exec_pool_wake(struct executor *x);
/* Join the pool fillers and hand every pooled container to removal. */
void exec_pool_stop(struct executor *x);
void exec_pool_fini(struct executor *x);
/* A started container of @image made with limits @l, or NULL (a miss); the
 * caller activates it (containers.c). *ret_uses: jobs it served. @returns:
 * the caller hands it back with exec_pool_return(..., from_pool true) (a
 * job; a session keeps it and only ever gets one that served no job). A
 * recycled container serves only jobs of the @principal and
 * @env_version of its last job; when only other callers' recycled
 * containers are ready, one of them goes, so that the pool makes a fresh
 * one. */
char *exec_pool_take(struct executor *x, const char *image, const struct sandbox_limits *l,
                     const char *principal, int64_t env_version, int64_t *ret_uses, bool returns);
/* After a job of @principal in @env_version: no longer in use; a container
 * that may serve again goes back to its pool (in recycling mode, while the
 * pool's circulation is short of its target, not under runsc; its next
 * job's wrapper cleans it first and checks that it did); anything else to
 * removal. */
void exec_pool_return(struct executor *x, const char *image, const char *cid, int64_t uses,
                      const char *principal, int64_t env_version, bool usable, bool from_pool);

/* ---- job.c: one run of code in a container ---- */

struct job_io {
    const struct buf *input_tar;
    int64_t timeout_s;
    int64_t output_limit; /* bytes kept of stdout and of stderr */
    int64_t memory;       /* for the out-of-memory message */
    bool session;         /* timeout inside the container; the container survives it */
    bool started;         /* the container runs already (pool, session) */
    bool recycled;        /* it served a job before: clean it first (recycling) */
    /* a session's call by agent: in the session's interpreter, whose
     * background processes outlive the call when keep_processes; reset:
     * no code, the interpreter and every process end */
    bool kernel, keep_processes, reset;
    /* live output, besides the capture (may be NULL) */
    engine_output_fn live;
    void *live_ctx;
};

struct job_outcome {
    bool container_usable; /* it may serve again (recycling, sessions) */
    bool engine_failed;
    bool unclean; /* recycled and could not be cleaned: nothing ran */
    struct err engine_err;
    char *image_id;        /* when learnt from the container */
    char **preload_errors; /* the agent's report: "MODULE: why" (strv), NULL when none */
    bool reported;         /* the agent's report came (preload_errors is its say) */
};

/* What a run captures of a job's output: the first output_limit bytes of
 * each stream, and live followers fed. The exec transport also keeps the
 * tail of stderr (the wrapper's report) and holds back from followers what
 * may be it; the agent's frames need none of that (raw). */
#define EXEC_JOB_TAIL 96
struct capture {
    struct buf out, err;
    bool out_truncated, err_truncated;
    bool raw;         /* no report in stderr (agent transport) */
    size_t err_total; /* bytes of stderr received, kept or not */
    char tail[EXEC_JOB_TAIL];
    size_t tail_len;
    engine_output_fn live;
    void *live_ctx;
    char pend[EXEC_JOB_TAIL]; /* stderr held back from live followers: maybe the report */
    size_t pend_len;
};
int exec_capture_output(void *ctx, enum engine_stream stream, const char *data, size_t len);
/* The captured bytes as text (repaired when not UTF-8; NUL kept). */
char *exec_output_text(struct buf *b, size_t *ret_len);
/* The status and error of a job that passed its timeout, or that ended. */
void exec_result_timeout(struct job_result *res, int64_t timeout_s);
void exec_result_exit(struct job_result *res, int exit_code, bool oom, int64_t memory);
/* Shutting down turns anything but a success into an interruption (the
 * container is not used again): true when it did. */
bool exec_result_interrupted(struct executor *x, struct job_result *res, struct job_outcome *out);
/* The engine failed (out->engine_err says how): status error, or
 * interrupted when shutting down. */
void exec_result_engine_failed(struct executor *x, struct job_result *res, struct job_outcome *out);
/* A recycled container could not be cleaned, nothing ran: @why (any bytes,
 * from inside the container) escaped into the error. */
void exec_result_unclean(struct job_result *res, struct job_outcome *out, const char *why,
                         size_t len);
/* The captured output into @res (stdout, stderr, truncation); the
 * capture's buffers are released. */
void exec_capture_finish(struct capture *c, struct job_result *res);
/* "NAME: larger than the file size limit" onto @skipped for workspace path
 * @path ("./x" or "./" EXEC_DISPLAY_DIR "/NAME", @len bytes, any bytes). */
void exec_skip_large(char ***skipped, const char *path, size_t len, size_t max_file_size);

/* Run the code of @io in container @cid: fills @res (status, outputs, files,
 * error, execution_time) and @out. Never fails: an engine failure is status
 * error with the reason. */
void exec_job_run(struct executor *x, const char *cid, const struct job_io *io,
                  struct job_result *res, struct job_outcome *out);

/* The wrapper (executor/wrapper.sh, compiled in by core/embed.sh), run as
 * `sh -c WRAPPER envhub-wrapper RECYCLED TIMEOUT DISPLAY` with the input tar
 * on its stdin; and the matplotlib backend (executor/display.py) that the
 * input tar carries to EXEC_DISPLAY_MODULE. */
extern const struct embedded_file executor_embedded[];
const char *exec_wrapper_script(void);
const char *exec_display_module(size_t *ret_len);
#define EXEC_DISPLAY_MODULE EXEC_PRIVATE_DIR "/envhub_display.py"

/* The wrapper's report ending stderr: "\0envhub-status RC FILES OOM\0".
 * Returns true when @tail ends with one; ret->len is its length. Pure. */
struct status_marker {
    int rc;
    bool files;
    int64_t oom_kills;
    size_t len;
};
bool exec_parse_marker(const char *tail, size_t tail_len, struct status_marker *ret);
/* Does the end of a job's stderr say the recycling clean-up failed
 * ("\0envhub-unclean\0")? Pure. */
bool exec_parse_unclean(const char *tail, size_t tail_len);

/* ---- agent.c, agent_proto.c: the agent transport ---- */

/* The agent (executor/agent.py, the third embedded file): the argv of a
 * container that runs it as its main process. */
const char *exec_agent_script(void);
/* One job through the agent of container @cid (see agent.py for the
 * conversation); same contract as exec_job_run(), which calls it. */
void exec_agent_run(struct executor *x, const char *cid, const struct job_io *io,
                    struct job_result *res, struct job_outcome *out);

/* The agent's stdout, decoded (pure): frames of one type byte and a 4-byte
 * big-endian length. The job's bytes ('o', 'e') go to @output as they come;
 * the agent's own frames set the flags; 'u' and 'r' payloads are gathered
 * in msg. Bounds: AGENT_DATA_MAX per data frame, AGENT_TEXT_MAX for 'u',
 * report_max for 'r'. Nothing may follow 'u' or 'r'; after 'x' only 'r'. */
#define AGENT_DATA_MAX (1024 * 1024)
#define AGENT_TEXT_MAX 4096
#define AGENT_NONCE_LEN 32 /* hex digits */
struct agent_decoder {
    size_t report_max;
    engine_output_fn output;
    void *output_ctx;
    unsigned char head[5];
    size_t head_len;
    char kind;     /* of the frame being read; 0 between frames */
    uint32_t left; /* its bytes still to come */
    struct buf msg;
    bool exited, unclean, reported;
};
void agent_decoder_init(struct agent_decoder *d, size_t report_max, engine_output_fn output,
                        void *output_ctx);
void agent_decoder_release(struct agent_decoder *d);
/* 0, or -1 with *ret_why when the stream breaks the protocol. */
int agent_decode(struct agent_decoder *d, const char *data, size_t len, const char **ret_why);

/* The report of an 'r' frame, checked against the nonce sent (pure). */
struct agent_report {
    int rc; /* the job's exit status (128 + signal); -1: it did not end (timeout) */
    bool timed_out;
    int64_t oom_kills;
    char **skipped;        /* "NAME: larger than ..." (strv) */
    char **preload_errors; /* "MODULE: why" (strv) */
    bool truncated;        /* the tar was cut at the collect cap */
    char *result;          /* a session call's result (kernel), or NULL */
    bool interpreter_died; /* a session call's interpreter died in it */
    const char *tar;       /* into the payload */
    size_t tar_len;
};
/* 0, or -1 with @err (ERR_ENGINE) saying what is wrong with it. */
int agent_report_parse(const char *payload, size_t len, const char *nonce, size_t max_file_size,
                       struct agent_report *ret, struct err *err);
void agent_report_release(struct agent_report *r);

/* ---- runs.c: one job's life ---- */

struct prepared_job {
    struct execution_record rec; /* the row, filled as the job goes */
    struct buf input_tar;
    struct sandbox_limits limits; /* the environment's, lowered by the request */
    bool pool_ok;                 /* the environment's own limits: a warm container fits */
    char *warning;                /* the environment's deprecation notice, for the result */
    char *node;                   /* cluster mode: the node it was leased to */
    char *node_image;             /* cluster mode: what a node runs (the registry's digest
                                   * reference when the version was pushed); NULL: rec.image */
    struct live *live;            /* opened at submission for asynchronous jobs */
    bool recorded;                /* its row was inserted when it was queued (asynchronous) */
    /* in the registry, under runs.lock */
    char *cid;          /* its container, while it runs in one */
    bool remote;        /* handed to the cluster: a cancel goes there */
    bool follow;        /* its live output is followed: a node relays it as it comes */
    char *cancelled_by; /* set by a cancel */
    struct prepared_job *run_next;
};
/* Resolve the environment (404/400 with the seed's messages), pack code and
 * files, fill the row (status queued). exec_job_release() it. */
int exec_job_prepare(struct executor *x, const struct job_request *req, struct prepared_job *pj,
                     struct err *err);
/* Slot, container (warm or fresh), run, outcome recorded. Between
 * exec_runs_register() and exec_runs_unregister(). */
int exec_job_execute(struct executor *x, struct prepared_job *pj, struct job_result *ret,
                     struct err *err);
void exec_job_release(struct prepared_job *pj);

void exec_runs_init(struct executor *x);
void exec_runs_wake(struct executor *x); /* shutdown: slot waiters give up */
void exec_runs_fini(struct executor *x);
/* Into / out of the registry of running jobs, where cancels find them. */
void exec_runs_register(struct executor *x, struct prepared_job *pj);
void exec_runs_unregister(struct executor *x, struct prepared_job *pj);
/* Cancel registered job @id: its container is killed (it records the cancel
 * itself), or, an asynchronous one not yet in a container, it stops at its
 * next step. ERR_NOT_FOUND when no such job runs; ERR_ENGINE. */
int exec_runs_cancel(struct executor *x, const char *id, const char *by, struct err *err);
void exec_runs_stats(struct executor *x, struct executor_stats *ret, uint64_t *ret_wait_ms,
                     uint64_t *ret_waited);

/* ---- session.c ---- */

void exec_sessions_init(struct executor *x);
/* Close the sessions the last stop cut off; start the reaper. */
int exec_sessions_start(struct executor *x, struct err *err);
void exec_sessions_wake(struct executor *x);
/* Join the reaper; every session closes. */
void exec_sessions_stop(struct executor *x);
void exec_sessions_fini(struct executor *x);
int64_t exec_sessions_count(struct executor *x);

/* ---- async.c ---- */

void exec_async_init(struct executor *x);
int exec_async_start(struct executor *x, struct err *err);
void exec_async_wake(struct executor *x);
/* Join the workers; queued jobs are recorded as interrupted. */
void exec_async_stop(struct executor *x);
void exec_async_fini(struct executor *x);
int64_t exec_async_queued(struct executor *x);

/* ---- tar.c ---- */

/* Write a tar holding @code at EXEC_CODE_NAME and each input file at its
 * path (regular files, mode 0644, owner 1000) into @out. ERR_TOO_LARGE when
 * out's limit is passed. */
int exec_tar_inputs(const char *code, size_t code_len, const struct job_file *files, size_t n,
                    struct buf *out, struct err *err);

struct tar_out_limits {
    size_t max_file_size; /* larger files are skipped */
    size_t max_total;     /* files past this total are skipped */
    size_t max_files;     /* files past this count are skipped */
    size_t max_display;   /* pictures past this count are skipped */
};

/* Entries of files_skipped one workspace tar may add; the rest are counted
 * in one last entry. */
#define TAR_SKIPPED_MAX 1000

/* Read the workspace tar in data[0..len): only regular files with safe
 * UTF-8 relative names within the limits are returned (the code file,
 * anything under EXEC_PRIVATE_DIR, symlinks, hard links, devices, FIFOs and
 * folders never are). @truncated says the
 * stream was cut at the cap: an entry that ends early is skipped, never
 * returned in part. A name given twice keeps its first file. Files left
 * out are appended to *skipped as "path: reason", the path escaped
 * (utf8_escape), at most TAR_SKIPPED_MAX of them (a NULL-terminated array,
 * grown with xrealloc). */
int exec_tar_outputs(const char *data, size_t len, bool truncated,
                     const struct tar_out_limits *limits, struct job_file **ret_files,
                     size_t *ret_n, char ***skipped, struct err *err);

/* exec_tar_outputs() for the collect step's tar, whose entries are "./PATH"
 * (the workspace) and "./" EXEC_DISPLAY_DIR "/NAME" (the pictures):
 * pictures go to *ret_display instead of the files, sorted by name with
 * numbers compared as numbers (figure-2.png before figure-10.png), if they
 * are PNG (the signature), have a safe UTF-8 name ending ".png" directly in
 * the folder, and fit the file size limit, max_display and, with the files
 * before them, max_total. Those left out are on *skipped as "display NAME:
 * reason". Anything else under EXEC_PRIVATE_DIR is left out silently, as
 * by exec_tar_outputs() (it is envhub's, not the job's). */
int exec_tar_collected(const char *data, size_t len, bool truncated,
                       const struct tar_out_limits *limits, struct job_file **ret_files,
                       size_t *ret_n, struct job_file **ret_display, size_t *ret_n_display,
                       char ***skipped, struct err *err);

/* ---- remote.c: a job between the server and a node (pure) ---- */

/* The pools a node keeps for the server: a JSON array of {image,
 * environment, size, recycle, limits}; the caller frees. */
char *exec_remote_pools_text(const struct exec_pool_target *t, size_t n);
/* A node reads them (at most SANDBOX_POOLS_MAX); ERR_ENGINE naming what is wrong. */
int exec_remote_pools_parse(const char *text, size_t len, struct exec_pool_target **ret,
                            size_t *ret_n, struct err *err);

/* The spec of @pj for a node (JSON text); the caller frees. */
char *exec_remote_spec(const struct prepared_job *pj, size_t *ret_len);
/* A node reads a spec into @pj (zeroed first; exec_job_release() it in any
 * case): ERR_ENGINE naming the field that is wrong. */
int exec_remote_spec_parse(const char *text, size_t len, struct prepared_job *pj, struct err *err);
/* A node writes what came of a job (JSON text); the caller frees. */
char *exec_remote_result_text(const struct job_result *res, const struct job_outcome *out,
                              size_t *ret_len);
/* The server reads a node's result into @res (its id kept, the rest
 * replaced) and @out, within @lim and @output_limit (bytes of stdout and of
 * stderr); ERR_ENGINE naming the field when the result breaks a rule (then
 * @res and @out are as they were). */
int exec_remote_result_parse(const struct tar_out_limits *lim, int64_t output_limit,
                             const char *text, size_t len, struct job_result *res,
                             struct job_outcome *out, struct err *err);

#endif

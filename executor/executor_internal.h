/* executor/executor_internal.h - the executor's pure parts, shared by its .c
 * files and its unit tests; nobody else includes it. */
#ifndef ENVHUB_EXECUTOR_INTERNAL_H
#define ENVHUB_EXECUTOR_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "engine/engine.h"
#include "executor/executor.h"

#define EXEC_USER "1000:1000"
#define EXEC_MAX_LABELS 16
#define EXEC_SHM_SIZE (4 * 1024 * 1024)

/* A container and what it is for. */
struct container_ref {
    char *id;
    char *image;
    int64_t uses;       /* jobs it has served (recycling mode) */
    char *exec_id;      /* the execution running in it, while in `active` */
    char *cancelled_by; /* set by executor_cancel before it kills the container */
    struct container_ref *next;
};

/* One image's warm pool (pool.c). */
struct pool {
    char *image;
    struct exec_limits limits; /* its containers are made with these */
    char *environment;         /* NULL: the default image */
    int64_t want;              /* ready containers to keep */
    int64_t recycle;           /* jobs one container may serve; 1: a fresh one each time */
    int64_t starting;          /* being created now */
    int64_t n_out;             /* recycling: taken by jobs that bring them back */
    int64_t n_ready;
    struct container_ref *ready;
    uint64_t hits, misses;
    bool wanted; /* still in the targets after the last refresh */
    struct pool *next;
};

/* Per-environment counters for /metrics (metrics are read under the lock). */
struct exec_counter {
    char *environment; /* "" for the default image */
    uint64_t by_status[EXEC_INTERRUPTED + 1];
    uint64_t duration_buckets[12]; /* see EXEC_BUCKETS in executor.c */
    double duration_sum;
    uint64_t duration_count;
    struct exec_counter *next;
};

struct session;
struct live;
struct async_job;

struct executor {
    const struct config *cfg;
    struct engine *engine;
    struct catalog *catalog;

    struct engine_label labels[EXEC_MAX_LABELS];
    size_t n_labels;
    char *label_storage;    /* the extra labels' text, split in place */
    char *default_image_id; /* cached; refreshed with the pool */

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t slot_freed;
    int64_t running, waiting;
    uint64_t wait_ms_total, waited_jobs;
    bool stopping;
    struct container_ref *active; /* containers of running jobs */

    pthread_cond_t removal_ready;
    struct container_ref *removals; /* containers to remove */
    bool removal_stop;
    pthread_t removal_thread;
    bool removal_started;

    /* warm pool (pool.c) */
    struct pool *pools;
    bool pool_refresh; /* read the targets again */
    pthread_cond_t pool_wake;
    pthread_t pool_thread;
    bool pool_started;

    /* sessions (session.c) */
    struct session *sessions;
    pthread_cond_t reaper_wake;
    pthread_t reaper_thread;
    bool reaper_started;

    /* asynchronous jobs and live output (async.c) */
    struct async_job *async_head, *async_tail;
    struct async_job *async_taken; /* taken by a worker, until they end */
    int64_t async_queued;
    pthread_cond_t async_ready;
    pthread_t *async_threads;
    size_t n_async_threads;
    struct live *lives;
    pthread_cond_t live_cond;
    void (*on_done)(void *ctx, const char *id);
    void *on_done_ctx;

    struct exec_counter *counters;
    uint64_t engine_errors;
};

/* ---- executor.c ---- */

/* Free a container_ref and its strings; NULL is fine. */
void exec_ref_free(struct container_ref *c);
/* Hand a container to the removal thread; nobody waits for it. */
void exec_container_release(struct executor *x, const char *id);
bool exec_stopping(struct executor *x);
void exec_count(struct executor *x, const char *environment, enum exec_status status,
                double seconds);
/* Add @files to the row's manifest with their size and sha256. */
void exec_manifest_add(struct execution_record *rec, enum file_direction dir,
                       const struct job_file *files, size_t n);
/* engine_output_fn: stdout into the struct buf @ctx, stopping at its limit. */
int exec_collect_stdout(void *ctx, enum engine_stream stream, const char *data, size_t len);
/* A sandbox container's spec with the storage its pointers need. */
struct sandbox {
    struct engine_container_spec spec;
    struct engine_tmpfs tmpfs[2];
    char workspace_opts[192], tmp_opts[160];
};
/* Fill @sb for a sandbox container of @image with limits @l. */
void exec_sandbox_spec(struct executor *x, const char *image, const struct exec_limits *l,
                       struct sandbox *sb);

/* ---- job.c: one run in a container ---- */
struct job_io;

struct job_io {
    const struct buf *input_tar;
    int64_t timeout_s;
    int64_t output_limit; /* bytes kept of stdout and of stderr */
    int64_t memory;       /* for the out-of-memory message */
    bool session;         /* timeout inside the container; the container survives it */
    bool started;         /* the container runs already (pool, session) */
    bool recycled;        /* it served a job before: clean it first (recycling) */
    /* live output, besides the capture (may be NULL) */
    engine_output_fn live;
    void *live_ctx;
};

struct job_outcome {
    bool container_usable; /* it may serve again (recycling, sessions) */
    bool engine_failed;
    bool unclean; /* recycled and could not be cleaned: nothing ran */
    struct err engine_err;
    char *image_id; /* when learnt from the container */
};

/* Run the code of @io in container @cid: fills @res (status, outputs, files,
 * error, execution_time) and @out. Never fails: an engine failure is status
 * error with the reason. */
void job_run(struct executor *x, const char *cid, const struct job_io *io, struct job_result *res,
             struct job_outcome *out);
/* Is the end of a job's stderr the recycling clean-up's failure report? */
bool exec_parse_unclean(const char *tail, size_t tail_len);

/* The wrapper's report ending stderr: "\0envhub-status RC FILES OOM\0".
 * Returns true when @tail ends with one; ret->len is its length. Pure. */
struct status_marker {
    int rc;
    bool files;
    int64_t oom_kills;
    size_t len;
};
bool exec_parse_marker(const char *tail, size_t tail_len, struct status_marker *ret);

/* ---- executor.c: a job's life ---- */

struct prepared_job {
    struct execution_record rec; /* the row, filled as the job goes */
    struct buf input_tar;
    struct exec_limits limits; /* the environment's, lowered by the request */
    bool pool_ok;              /* the environment's own limits: a warm container fits */
    char *warning;             /* the environment's deprecation notice, for the result */
    struct live *live;         /* opened at submission for asynchronous jobs */
    char *cancelled_by;        /* under the lock: cancelled before its container ran */
};
/* Resolve the environment (404/400 with the seed's messages), pack code and
 * files, fill the row (status queued). exec_job_release() it. */
int exec_job_prepare(struct executor *x, const struct job_request *req, struct prepared_job *pj,
                     struct err *err);
/* Slot, container (warm or fresh), run, outcome recorded. @recorded: the
 * row was inserted when the job was queued. */
int exec_job_execute(struct executor *x, struct prepared_job *pj, bool recorded,
                     struct job_result *ret, struct err *err);
void exec_job_release(struct prepared_job *pj);

/* ---- pool.c ---- */

int exec_pool_start(struct executor *x, struct err *err);
/* Stop the pool thread and hand every pooled container to removal. */
void exec_pool_stop(struct executor *x);
/* A started container of @image made with limits @l, or NULL (a miss).
 * *ret_uses: jobs it served. @returns: the caller hands it back with
 * exec_pool_return(..., from_pool true) (a job; a session keeps it). */
char *exec_pool_take(struct executor *x, const char *image, const struct exec_limits *l,
                     int64_t *ret_uses, bool returns);
/* After a job: a container that may serve again goes to the clean-up and back
 * to its pool (in recycling mode, while the pool's circulation is short of
 * its target); anything else to removal. */
void exec_pool_return(struct executor *x, const char *image, const char *cid, int64_t uses,
                      bool usable, bool from_pool);

void exec_pools_free(struct executor *x);

/* ---- async.c ---- */

int exec_async_start(struct executor *x, struct err *err);
/* Join the workers; queued jobs are recorded as interrupted. */
void exec_async_stop(struct executor *x);
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

/* ---- session.c ---- */

int exec_sessions_start(struct executor *x, struct err *err);
struct session *exec_session_next(struct session *s);
void exec_sessions_stop(struct executor *x);

/* Where the code goes inside the workspace; never returned as an output. */
#define EXEC_CODE_NAME ".envhub_main.py"

/* Write a tar holding @code at EXEC_CODE_NAME and each input file at its
 * path (regular files, mode 0644, owner 1000) into @out. ERR_TOO_LARGE when
 * out's limit is passed. */
int exec_tar_inputs(const char *code, size_t code_len, const struct job_file *files, size_t n,
                    struct buf *out, struct err *err);

struct tar_out_limits {
    size_t max_file_size; /* larger files are skipped */
    size_t max_total;     /* files past this total are skipped */
};

/* Read the workspace tar in data[0..len): only regular files with safe
 * relative names within the limits are returned (the code file, symlinks,
 * hard links, devices, FIFOs and folders never are). @truncated says the
 * stream was cut at the cap: an entry that ends early is skipped, never
 * returned in part. A name given twice keeps its first file. Files left
 * out are appended to *skipped as "path: reason" (a NULL-terminated array,
 * grown with xrealloc). */
int exec_tar_outputs(const char *data, size_t len, bool truncated,
                     const struct tar_out_limits *limits, struct job_file **ret_files,
                     size_t *ret_n, char ***skipped, struct err *err);

#endif

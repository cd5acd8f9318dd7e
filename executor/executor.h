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
#include "core/config.h"
#include "core/err.h"
#include "engine/engine.h"

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
    int64_t timeout_s;            /* already validated against the limits */
    const struct job_file *files; /* validated: safe names, sizes */
    size_t n_files;
    const char *environment;      /* NULL: the default image */
    const char *principal;
    const char *client_addr;
};

struct job_result {
    char id[32];
    enum exec_status status;
    int exit_code;               /* -1 when the code did not finish */
    char *stdout_text;           /* valid UTF-8, capped */
    size_t stdout_len;
    bool stdout_truncated;
    char *stderr_text;
    size_t stderr_len;
    bool stderr_truncated;
    double execution_time;       /* seconds the code ran */
    struct job_file *files;      /* output files */
    size_t n_files;
    char **files_skipped;        /* "path: reason", NULL-terminated; may be NULL */
    char *error;                 /* NULL on success, else the seed's message */
};
void job_result_release(struct job_result *r);

/* Run one job to its end. Returns 0 when the job ran, whatever its outcome
 * (see ret->status); -1 when it could not run: ERR_BUSY (queue full),
 * ERR_NOT_FOUND (unknown environment, image missing), ERR_INVALID (environment
 * not ready), ERR_UNAVAILABLE (shutting down, engine down), ERR_ENGINE. A job
 * that got as far as the catalog has its row in every case. */
int executor_run(struct executor *x, const struct job_request *req, struct job_result *ret,
                 struct err *err);

struct executor_stats {
    int64_t running, waiting;
};
void executor_stats(struct executor *x, struct executor_stats *ret);

#endif

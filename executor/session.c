/* executor/session.c - sessions: one sandbox container kept for a
 * conversation, its /workspace shared by the calls, one call at a time.
 *
 * By agent (ENVHUB_JOB_TRANSPORT=agent) a session is stateful: its calls
 * run in one interpreter the container's agent keeps (executor/agent.py),
 * so variables and imports persist, a call's final expression comes back
 * as its result, and reset starts a new interpreter. By exec each call is
 * a process of its own. Either way a call's timeout is enforced inside the
 * container (the agent interrupts the call, then kills the interpreter;
 * timeout(1) kills the call's process), so the session survives it. The reaper thread closes
 * sessions idle longer than their idle timeout: it sleeps until the next one
 * is due, and never longer than ENVHUB_REAPER_INTERVAL seconds. Idle means no
 * call in progress and none finished within the timeout.
 *
 * Opening: the slot among the principal's ENVHUB_SESSIONS_PER_PRINCIPAL is
 * reserved under sessions.lock (the session waits in `opening`, where it
 * counts) before anything slow happens, then the caller admits it (web: the
 * key's concurrency), then its container is made and its row written; any
 * failure gives the slot back. Invariants: a session's container is in use
 * (containers.c) while the session is open; when it ends, on every path
 * (delete, idle, shutdown, a call that broke it, an open that failed after
 * the admission), the container is killed, so that nothing it started
 * survives, even in the background, then goes to removal, and the session
 * hook hears of the end exactly once. sessions.lock guards both lists and
 * each session's busy flag, calls and last activity; a session's other
 * fields are set at its open and only read after. Calls job.c, pool.c,
 * containers.c, shared.c, tar.c. The reaper also applies
 * ENVHUB_RETENTION_DAYS (old output dropped, its digests kept:
 * catalog_output_prune) at start and then every ENVHUB_REAPER_INTERVAL,
 * without the sessions lock. */
#include <pthread.h>
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

#define SESSION_FILE_MAX_TAR_SLACK (1024 * 1024)

struct session {
    char id[32];
    char *principal;
    char *environment; /* NULL: the default image */
    int64_t environment_version;
    char *image;
    char *image_id;
    char *container_id;
    struct sandbox_limits limits;
    int64_t created_at;    /* wall clock, ms */
    int64_t last_activity; /* monotonic, ms */
    int64_t last_activity_wall;
    int64_t idle_timeout_s;
    int64_t calls;
    bool busy;
    bool stateful;       /* its calls share the agent's interpreter */
    bool keep_processes; /* a call's background processes outlive it */
    bool admitted;       /* the hook hears of its end */
    struct session *next;
};

static void session_free(struct session *s)
{
    if (!s)
        return;
    free(s->principal);
    free(s->environment);
    free(s->image);
    free(s->image_id);
    free(s->container_id);
    free(s);
}

void session_info_release(struct session_info *i)
{
    if (!i)
        return;
    free(i->principal);
    free(i->environment);
    free(i->image);
    memset(i, 0, sizeof(*i));
}

void session_infos_free(struct session_info *i, size_t n)
{
    for (size_t k = 0; i && k < n; k++)
        session_info_release(&i[k]);
    free(i);
}

static void info_of(const struct session *s, struct session_info *ret)
{
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->id, sizeof(ret->id), "%s", s->id);
    ret->principal = xstrdup(s->principal);
    ret->environment = s->environment ? xstrdup(s->environment) : NULL;
    ret->environment_version = s->environment_version;
    ret->image = xstrdup(s->image);
    ret->created_at = s->created_at;
    ret->last_activity = s->last_activity_wall;
    ret->idle_timeout_s = s->idle_timeout_s;
    ret->calls = s->calls;
    ret->busy = s->busy;
    ret->stateful = s->stateful;
    ret->keep_processes = s->keep_processes;
}

/* Under the lock: the session @id that @principal may use (NULL: any). */
static struct session *find_locked(struct executor *x, const char *id, const char *principal,
                                   struct err *err)
{
    for (struct session *s = x->sessions.list; s; s = s->next)
        if (strcmp(s->id, id) == 0) {
            if (principal && strcmp(s->principal, principal) != 0)
                break; /* someone else's: as if it did not exist */
            return s;
        }
    err_set(err, ERR_NOT_FOUND, "session '%s' does not exist (closed, reaped or never opened)", id);
    return NULL;
}

/* Under sessions.lock: unlink @s from the list at @head. */
static void unlink_from(struct session **head, struct session *s)
{
    for (struct session **p = head; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    s->next = NULL;
}

/* Under sessions.lock: unlink open session @s (the caller then ends it). */
static void unlink_locked(struct executor *x, struct session *s)
{
    unlink_from(&x->sessions.list, s);
}

static void record_close(struct executor *x, const char *id, const char *reason)
{
    struct err err = ERR_INIT;
    if (catalog_session_close(x->catalog, id, time_now_ms(), reason, &err) < 0)
        log_warn("executor: cannot record the close of session '%s', ignoring: %s", id, err.msg);
}

/* The hook is called without sessions.lock (it takes its owner's locks), but
 * counted, so that executor_set_session_hook() can wait until no call of the
 * old hook is left. */
static void notify_end(struct executor *x, const struct session *s)
{
    if (!s->admitted)
        return;
    pthread_mutex_lock(&x->sessions.lock);
    void (*fn)(void *, const char *) = x->sessions.on_end;
    void *ctx = x->sessions.on_end_ctx;
    if (fn)
        x->sessions.hook_calls++;
    pthread_mutex_unlock(&x->sessions.lock);
    if (!fn)
        return;
    fn(ctx, s->id);
    pthread_mutex_lock(&x->sessions.lock);
    if (--x->sessions.hook_calls == 0)
        pthread_cond_broadcast(&x->sessions.hook_idle);
    pthread_mutex_unlock(&x->sessions.lock);
}

void executor_set_session_hook(struct executor *x, void (*fn)(void *ctx, const char *id), void *ctx)
{
    pthread_mutex_lock(&x->sessions.lock);
    x->sessions.on_end = fn;
    x->sessions.on_end_ctx = ctx;
    while (x->sessions.hook_calls > 0)
        pthread_cond_wait(&x->sessions.hook_idle, &x->sessions.lock);
    pthread_mutex_unlock(&x->sessions.lock);
}

/* @s, unlinked, ends: its container is killed (every process the session
 * started dies with it, background ones too) and goes to removal, its row
 * says why (when it has one: @recorded), the hook hears of it. */
static void session_end(struct executor *x, struct session *s, const char *why, bool recorded)
{
    if (s->container_id) {
        struct err err = ERR_INIT;
        /* the removal workers remove it later: its processes must not run until then */
        if (engine_container_kill(x->engine, s->container_id, &err) < 0)
            log_warn("executor: cannot kill the container '%.12s' of session %s, removing it "
                     "anyway: %s",
                     s->container_id, s->id, err.msg);
        exec_container_release(x, s->container_id);
    }
    if (recorded)
        record_close(x, s->id, why);
    notify_end(x, s);
    session_free(s);
}

/* Reserve a slot for @s among its principal's sessions: it waits in
 * `opening`, where it counts, until it opens or fails. */
static int slot_reserve(struct executor *x, struct session *s, struct err *err)
{
    int64_t open = 0;

    pthread_mutex_lock(&x->sessions.lock);
    if (exec_stopping(x)) {
        pthread_mutex_unlock(&x->sessions.lock);
        return err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
    }
    struct session *lists[] = {x->sessions.list, x->sessions.opening};
    for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
        for (struct session *o = lists[i]; o; o = o->next)
            open += strcmp(o->principal, s->principal) == 0;
    if (open >= x->cfg->sessions_per_principal) {
        pthread_mutex_unlock(&x->sessions.lock);
        return err_set(err, ERR_BUSY,
                       "sessions: '%s' has %lld sessions open or opening, the limit of %lld "
                       "(ENVHUB_SESSIONS_PER_PRINCIPAL); close one first",
                       s->principal, (long long)open, (long long)x->cfg->sessions_per_principal);
    }
    s->next = x->sessions.opening;
    x->sessions.opening = s;
    pthread_mutex_unlock(&x->sessions.lock);
    return 0;
}

/* @s, reserved, did not open: its slot goes back, and what it had. */
static void open_failed(struct executor *x, struct session *s)
{
    pthread_mutex_lock(&x->sessions.lock);
    unlink_from(&x->sessions.opening, s);
    pthread_mutex_unlock(&x->sessions.lock);
    session_end(x, s, NULL, false);
}

int executor_session_open(struct executor *x, const char *environment, int64_t idle_timeout_s,
                          bool keep_processes, const char *principal,
                          executor_session_admit_fn admit, void *admit_ctx,
                          struct session_info *ret, struct err *err)
{
    _cleanup_(exec_env_release) struct exec_env env = {0};
    char hex[25];

    if (idle_timeout_s <= 0)
        idle_timeout_s = x->cfg->session_idle_timeout;
    if (idle_timeout_s > x->cfg->session_max_idle_timeout)
        return err_set(err, ERR_INVALID,
                       "idle_timeout: %lld s is over the limit of %lld s "
                       "(ENVHUB_SESSION_MAX_IDLE_TIMEOUT)",
                       (long long)idle_timeout_s, (long long)x->cfg->session_max_idle_timeout);
    if (exec_env_resolve(x, environment, &env, err) < 0)
        return -1;

    struct session *s = xcalloc(1, sizeof(*s));
    id_random_hex(hex, 12);
    snprintf(s->id, sizeof(s->id), "se_%s", hex);
    s->principal = xstrdup(principal);
    s->environment = environment ? xstrdup(environment) : NULL;
    s->environment_version = env.rec.version;
    s->image = xstrdup(env.image);
    s->image_id = env.rec.image_id ? xstrdup(env.rec.image_id) : NULL;
    s->idle_timeout_s = idle_timeout_s;
    s->limits = env.limits;
    s->stateful = strcmp(x->cfg->job_transport, "agent") == 0;
    s->keep_processes = keep_processes;
    if (slot_reserve(x, s, err) < 0) {
        session_free(s);
        return -1;
    }
    if (admit && admit(admit_ctx, s->id, err) < 0) {
        open_failed(x, s);
        return -1;
    }
    s->admitted = admit != NULL;

    /* a warm container that never served a job if the pool has one, else a fresh one */
    int64_t uses = 0;
    s->container_id =
        exec_pool_take(x, env.image, &env.limits, principal, env.rec.version, &uses, false);
    if (!s->container_id &&
        exec_container_create(x, env.image, &env.limits, true, &s->container_id, err) < 0) {
        open_failed(x, s);
        return err_prefix(err, "cannot open a session");
    }
    exec_container_activate(x, s->container_id);
    s->created_at = time_now_ms();
    s->last_activity = time_mono_ms();
    s->last_activity_wall = s->created_at;
    struct session_record rec = {.id = s->id,
                                 .principal = s->principal,
                                 .environment = s->environment,
                                 .image = s->image,
                                 .idle_timeout_s = idle_timeout_s,
                                 .created_at = s->created_at};
    if (catalog_session_insert(x->catalog, &rec, err) < 0) {
        open_failed(x, s);
        return -1;
    }

    pthread_mutex_lock(&x->sessions.lock);
    unlink_from(&x->sessions.opening, s);
    bool stopping = exec_stopping(x);
    if (!stopping) {
        s->next = x->sessions.list;
        x->sessions.list = s;
        info_of(s, ret);
        pthread_cond_signal(&x->sessions.reaper_wake); /* the next expiry may be sooner */
    }
    pthread_mutex_unlock(&x->sessions.lock);
    if (stopping) {
        /* executor_shutdown() came meanwhile: the stop would not see it */
        session_end(x, s, "envhub stopped", true);
        return err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
    }
    log_info("executor: session %s opened by '%s' on %s", ret->id, principal, env.image);
    return 0;
}

/* Take the session for one operation: busy, one at a time. */
static struct session *session_acquire(struct executor *x, const char *id, const char *principal,
                                       struct err *err)
{
    pthread_mutex_lock(&x->sessions.lock);
    struct session *s = find_locked(x, id, principal, err);
    if (s && s->busy) {
        err_set(err, ERR_CONFLICT, "session '%s' is running a call; one call at a time", id);
        s = NULL;
    }
    if (s) {
        s->busy = true;
        s->last_activity = time_mono_ms();
        s->last_activity_wall = time_now_ms();
    }
    pthread_mutex_unlock(&x->sessions.lock);
    return s;
}

static void session_release(struct executor *x, struct session *s, bool broken, const char *why)
{
    pthread_mutex_lock(&x->sessions.lock);
    s->busy = false;
    s->last_activity = time_mono_ms();
    s->last_activity_wall = time_now_ms();
    if (broken)
        unlink_locked(x, s);
    pthread_cond_signal(&x->sessions.reaper_wake);
    pthread_mutex_unlock(&x->sessions.lock);
    if (broken) {
        log_warn("executor: session %s closed: %s", s->id, why);
        session_end(x, s, why, true);
    }
}

/* The row of a call in session @s, status running. */
static void call_record(const struct session *s, const struct job_request *req, int64_t timeout,
                        struct execution_record *rec)
{
    exec_record_init(rec, req, timeout, &s->limits);
    rec->session_id = xstrdup(s->id);
    rec->environment = s->environment ? xstrdup(s->environment) : NULL;
    rec->environment_version = s->environment_version;
    rec->image = xstrdup(s->image);
    rec->image_id = s->image_id ? xstrdup(s->image_id) : NULL;
    rec->started_at = rec->queued_at;
    rec->status = EXEC_RUNNING;
}

int executor_session_execute(struct executor *x, const char *id, const char *principal,
                             const struct job_request *req, struct job_result *ret, struct err *err)
{
    _cleanup_(execution_record_release) struct execution_record rec = {0};
    _cleanup_(buf_release) struct buf input_tar = BUF_INIT(0);
    struct job_result res = {0};
    struct job_outcome out = {0};
    struct session *s = session_acquire(x, id, principal, err);

    if (!s)
        return -1;
    _cleanup_free_ char *env_name = s->environment ? xstrdup(s->environment) : NULL;
    int64_t timeout = req->timeout_given ? req->timeout_s : s->limits.timeout_default;
    if (timeout > s->limits.timeout_max) {
        session_release(x, s, false, NULL);
        return err_set(err, ERR_INVALID,
                       "timeout: %lld s is over the environment's maximum of %lld s "
                       "(policy.timeout_max)",
                       (long long)timeout, (long long)s->limits.timeout_max);
    }
    input_tar = (struct buf)BUF_INIT((size_t)s->limits.workspace_size);
    if (exec_tar_inputs(req->code, req->code_len, req->files, req->n_files, &input_tar, err) < 0) {
        session_release(x, s, false, NULL);
        return -1;
    }
    call_record(s, req, timeout, &rec);
    if (catalog_execution_insert(x->catalog, &rec, err) < 0) {
        session_release(x, s, false, NULL);
        return err_prefix(err, "cannot record execution");
    }

    snprintf(res.id, sizeof(res.id), "%s", rec.id);
    struct job_io io = {
        .input_tar = &input_tar,
        .timeout_s = timeout,
        .output_limit = s->limits.output_limit,
        .memory = s->limits.memory,
        .session = true,
        .started = true,
        .kernel = s->stateful,
        .keep_processes = s->keep_processes,
    };
    exec_job_run(x, s->container_id, &io, &res, &out);
    if (out.reported)
        exec_note_preload(x, s->environment, s->environment_version, out.preload_errors);
    strv_free(steal_ptr(out.preload_errors));
    pthread_mutex_lock(&x->sessions.lock);
    s->calls++;
    pthread_mutex_unlock(&x->sessions.lock);
    bool broken = !out.container_usable && res.status != EXEC_FAILED &&
                  res.status != EXEC_SUCCEEDED && res.status != EXEC_OOM;
    session_release(x, s, broken || out.engine_failed, "its container stopped answering");

    if (exec_record_finish(x, &rec, &res, err) < 0) {
        job_result_release(&res);
        return err_prefix(err, "cannot record the result of a session call");
    }
    if (res.status == EXEC_ERROR) {
        err_copy(err, &out.engine_err);
        job_result_release(&res);
        return -1;
    }
    if (env_name) {
        /* deprecated meanwhile (curation): the answer says so, as the row does */
        _cleanup_(env_record_release) struct env_record env = {0};
        struct err gerr = ERR_INIT;
        if (catalog_env_get(x->catalog, env_name, &env, &gerr) == 0 && env.warning)
            res.warning = steal_ptr(env.warning);
    }
    if (res.interpreter_lost) {
        _cleanup_free_ char *deprecated = steal_ptr(res.warning);
        res.warning = xasprintf(
            "%s%sthe session's interpreter ended in this call (%s); its variables are gone and "
            "the next call starts a new interpreter",
            deprecated ? deprecated : "", deprecated ? "; " : "",
            res.status == EXEC_TIMEOUT ? "it did not stop when interrupted at the timeout"
            : res.status == EXEC_OOM   ? "out of memory"
                                       : "the process exited");
    }
    *ret = res;
    return 0;
}

int executor_session_reset(struct executor *x, const char *id, const char *principal,
                           struct err *err)
{
    _cleanup_(buf_release) struct buf input_tar = BUF_INIT(0);
    _cleanup_(job_result_release) struct job_result res = {0};
    struct job_outcome out = {0};
    struct session *s = session_acquire(x, id, principal, err);

    if (!s)
        return -1;
    if (!s->stateful) {
        session_release(x, s, false, NULL);
        return 0;
    }
    snprintf(res.id, sizeof(res.id), "%s", s->id);
    struct job_io io = {
        .input_tar = &input_tar,
        .timeout_s = 10,
        .output_limit = 4096,
        .memory = s->limits.memory,
        .session = true,
        .started = true,
        .kernel = true,
        .reset = true,
    };
    exec_job_run(x, s->container_id, &io, &res, &out);
    strv_free(steal_ptr(out.preload_errors));
    bool broken = res.status != EXEC_SUCCEEDED || out.engine_failed;
    session_release(x, s, broken, "its container stopped answering");
    if (broken) {
        if (out.engine_failed) {
            err_copy(err, &out.engine_err);
            return -1;
        }
        return err_set(err, ERR_ENGINE, "session '%s': the interpreter could not be reset: %s", id,
                       res.error ? res.error : exec_status_name(res.status));
    }
    log_info("executor: session %s: interpreter reset", id);
    return 0;
}

int executor_session_put_file(struct executor *x, const char *id, const char *principal,
                              const char *path, const void *data, size_t len, struct err *err)
{
    static const char script[] = "mkdir -p -- \"$(dirname -- \"$1\")\" && cat > \"$1\"";
    const char *cmd[] = {"/bin/sh", "-c", script, "sh", path, NULL};
    struct engine_exec_result res = {0};
    const char *why = NULL;

    if (!path_is_safe_relative(path, strlen(path), &why))
        return err_set(err, ERR_INVALID, "path: '%.100s' is unsafe: it %s", path, why);
    if ((int64_t)len > x->cfg->max_file_size)
        return err_set(err, ERR_TOO_LARGE,
                       "file: %zu bytes is over the limit of %lld bytes (MAX_FILE_SIZE)", len,
                       (long long)x->cfg->max_file_size);
    struct session *s = session_acquire(x, id, principal, err);
    if (!s)
        return -1;
    struct engine_exec_spec spec = {
        .cmd = cmd,
        .user = SANDBOX_USER,
        .working_dir = x->cfg->work_dir,
        .stdin_data = len ? data : "",
        .stdin_len = len,
        .deadline_ms = time_mono_ms() + 60000,
    };
    int rc = engine_exec(x->engine, s->container_id, &spec, &res, err);
    session_release(x, s, rc < 0, "its container stopped answering");
    if (rc < 0)
        return -1;
    if (res.timed_out || res.exit_code != 0)
        return err_set(err, ERR_INVALID,
                       "path: cannot write '%.100s' in the workspace (a folder in the way, or "
                       "the workspace is full)",
                       path);
    return 0;
}

int executor_session_get_file(struct executor *x, const char *id, const char *principal,
                              const char *path, struct job_file *ret, struct err *err)
{
    const char *cmd[] = {"tar", "-c", "-f", "-", "--", path, NULL};
    struct buf tar = BUF_INIT((size_t)x->cfg->max_file_size + SESSION_FILE_MAX_TAR_SLACK);
    struct engine_exec_result res = {0};
    const char *why = NULL;
    struct job_file *files = NULL;
    char **skipped = NULL;
    size_t n = 0;

    if (!path_is_safe_relative(path, strlen(path), &why))
        return err_set(err, ERR_INVALID, "path: '%.100s' is unsafe: it %s", path, why);
    struct session *s = session_acquire(x, id, principal, err);
    if (!s)
        return -1;
    struct engine_exec_spec spec = {
        .cmd = cmd,
        .user = SANDBOX_USER,
        .working_dir = x->cfg->work_dir,
        .output = exec_collect_stdout,
        .output_ctx = &tar,
        .deadline_ms = time_mono_ms() + 60000,
    };
    int rc = engine_exec(x->engine, s->container_id, &spec, &res, err);
    session_release(x, s, rc < 0, "its container stopped answering");
    if (rc < 0) {
        buf_release(&tar);
        return -1;
    }
    struct tar_out_limits limits = {.max_file_size = (size_t)x->cfg->max_file_size,
                                    .max_total = (size_t)x->cfg->max_file_size,
                                    .max_files = 1};
    exec_tar_outputs(tar.data, tar.len, res.stopped, &limits, &files, &n, &skipped, err);
    buf_release(&tar);
    int found = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(files[i].path, path) == 0)
            found = (int)i;
    if (found < 0) {
        bool exists_but_skipped = skipped && skipped[0];
        job_files_free(files, n);
        strv_free(skipped);
        if (exists_but_skipped)
            return err_set(err, ERR_INVALID,
                           "path: '%.100s' is not a regular file within MAX_FILE_SIZE", path);
        return err_set(err, ERR_NOT_FOUND, "path: '%.100s' is not in the session's workspace",
                       path);
    }
    *ret = files[found];
    files[found] = files[n - 1];
    job_files_free(files, n - 1);
    strv_free(skipped);
    return 0;
}

int executor_session_close(struct executor *x, const char *id, const char *principal,
                           struct err *err)
{
    pthread_mutex_lock(&x->sessions.lock);
    struct session *s = find_locked(x, id, principal, err);
    if (s && s->busy) {
        /* its call ends when the container goes: kill it, the call records that */
        err_set(err, ERR_CONFLICT, "session '%s' is running a call; retry when it ends", id);
        s = NULL;
    }
    if (s)
        unlink_locked(x, s);
    pthread_mutex_unlock(&x->sessions.lock);
    if (!s)
        return -1;
    log_info("executor: session %s closed by request", s->id);
    session_end(x, s, "deleted", true);
    return 0;
}

int executor_session_get(struct executor *x, const char *id, const char *principal,
                         struct session_info *ret, struct err *err)
{
    pthread_mutex_lock(&x->sessions.lock);
    struct session *s = find_locked(x, id, principal, err);
    if (s)
        info_of(s, ret);
    pthread_mutex_unlock(&x->sessions.lock);
    return s ? 0 : -1;
}

int executor_session_list(struct executor *x, const char *principal, struct session_info **ret,
                          size_t *ret_n)
{
    size_t n = 0;
    pthread_mutex_lock(&x->sessions.lock);
    for (struct session *s = x->sessions.list; s; s = s->next)
        n += !principal || strcmp(s->principal, principal) == 0;
    struct session_info *list = xcalloc(n + 1, sizeof(*list));
    size_t k = 0;
    for (struct session *s = x->sessions.list; s; s = s->next)
        if (!principal || strcmp(s->principal, principal) == 0)
            info_of(s, &list[k++]);
    pthread_mutex_unlock(&x->sessions.lock);
    *ret = list;
    *ret_n = n;
    return 0;
}

/* ---- the reaper ---- */

/* ---- retention ---- */

#define RETENTION_PASS_ROWS 1000 /* rows per transaction: the catalog lock is held that long */

/* Drop the output of executions older than ENVHUB_RETENTION_DAYS, in
 * bounded passes (one transaction each, the catalog free for requests
 * between them), until none is left or the executor stops. Called by the
 * reaper without the sessions lock. */
static void retention_sweep(struct executor *x)
{
    struct output_prune total = {0};
    int64_t now = time_now_ms();
    int64_t before = now - x->cfg->retention_days * 86400000LL;
    struct err err = ERR_INIT;

    for (;;) {
        struct output_prune p;
        if (catalog_output_prune(x->catalog, before, now, RETENTION_PASS_ROWS, &p, &err) < 0) {
            log_warn("executor: retention: cannot drop old output, retrying later: %s", err.msg);
            break;
        }
        total.rows += p.rows;
        total.bytes += p.bytes;
        if (!p.more || exec_stopping(x))
            break;
    }
    if (total.rows)
        log_info("executor: retention: dropped the output of %lld executions older than %lld "
                 "days (%lld bytes); their sha256 stay in the audit chain",
                 (long long)total.rows, (long long)x->cfg->retention_days, (long long)total.bytes);
}

static void *reaper_main(void *arg)
{
    struct executor *x = arg;
    const int64_t interval_ms = x->cfg->reaper_interval * 1000;
    int64_t next_retention = x->cfg->retention_days > 0 ? time_mono_ms() : INT64_MAX;

    pthread_mutex_lock(&x->sessions.lock);
    while (!exec_stopping(x)) {
        int64_t now = time_mono_ms(), next = now + interval_ms;
        if (now >= next_retention) { /* at start, then every reaper interval */
            pthread_mutex_unlock(&x->sessions.lock);
            retention_sweep(x);
            pthread_mutex_lock(&x->sessions.lock);
            next_retention = time_mono_ms() + interval_ms;
            continue;
        }
        struct session *expired = NULL;
        for (struct session *s = x->sessions.list; s;) {
            struct session *following = s->next;
            int64_t due = s->last_activity + s->idle_timeout_s * 1000;
            if (!s->busy && due <= now) {
                unlink_locked(x, s);
                s->next = expired;
                expired = s;
            } else if (!s->busy && due < next) {
                next = due;
            }
            s = following;
        }
        if (expired) {
            pthread_mutex_unlock(&x->sessions.lock);
            while (expired) {
                struct session *s = expired;
                expired = s->next;
                log_info("executor: session %s reaped after %lld s idle", s->id,
                         (long long)s->idle_timeout_s);
                session_end(x, s, "idle", true);
            }
            pthread_mutex_lock(&x->sessions.lock);
            continue;
        }
        struct timespec ts = time_deadline_in(next - now);
        pthread_cond_timedwait(&x->sessions.reaper_wake, &x->sessions.lock, &ts);
    }
    pthread_mutex_unlock(&x->sessions.lock);
    return NULL;
}

void exec_sessions_init(struct executor *x)
{
    pthread_mutex_init(&x->sessions.lock, NULL);
    pthread_cond_init(&x->sessions.reaper_wake, NULL);
    pthread_cond_init(&x->sessions.hook_idle, NULL);
}

int exec_sessions_start(struct executor *x, struct err *err)
{
    int closed = 0;
    if (catalog_sessions_close_all(x->catalog, time_now_ms(), "envhub restarted", &closed, err) < 0)
        return -1;
    if (closed)
        log_info("executor: %d sessions cut off by the last stop are closed", closed);
    if (pthread_create(&x->sessions.reaper_thread, NULL, reaper_main, x) != 0)
        return err_set(err, ERR_INTERNAL, "cannot start the session reaper");
    x->sessions.reaper_started = true;
    return 0;
}

void exec_sessions_wake(struct executor *x)
{
    pthread_mutex_lock(&x->sessions.lock);
    pthread_cond_broadcast(&x->sessions.reaper_wake);
    pthread_mutex_unlock(&x->sessions.lock);
}

void exec_sessions_stop(struct executor *x)
{
    exec_sessions_wake(x);
    if (x->sessions.reaper_started) {
        pthread_join(x->sessions.reaper_thread, NULL);
        x->sessions.reaper_started = false;
    }
    pthread_mutex_lock(&x->sessions.lock);
    while (x->sessions.list) {
        struct session *s = x->sessions.list;
        unlink_locked(x, s);
        pthread_mutex_unlock(&x->sessions.lock);
        session_end(x, s, "envhub stopped", true);
        pthread_mutex_lock(&x->sessions.lock);
    }
    pthread_mutex_unlock(&x->sessions.lock);
}

void exec_sessions_fini(struct executor *x)
{
    pthread_cond_destroy(&x->sessions.hook_idle);
    pthread_cond_destroy(&x->sessions.reaper_wake);
    pthread_mutex_destroy(&x->sessions.lock);
}

int64_t exec_sessions_count(struct executor *x)
{
    int64_t n = 0;
    pthread_mutex_lock(&x->sessions.lock);
    for (struct session *s = x->sessions.list; s; s = s->next)
        n++;
    pthread_mutex_unlock(&x->sessions.lock);
    return n;
}

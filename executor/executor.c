/* executor/executor.c - jobs in sandbox containers.
 *
 * Invariants: every container this executor creates carries the labels
 * envhub.managed=1 and envhub.instance=<catalog instance id>, is registered
 * in `active` while a job uses it, and is handed to the removal thread when
 * the job ends, on every path. A restart removes what a crash left behind
 * (executor_open). A job's catalog row is final before executor_run returns. */
#include "executor/executor.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

/* ---- results ---- */

void job_files_free(struct job_file *files, size_t n)
{
    for (size_t i = 0; files && i < n; i++) {
        free(files[i].path);
        free(files[i].data);
    }
    free(files);
}

void job_result_release(struct job_result *r)
{
    if (!r)
        return;
    free(r->stdout_text);
    free(r->stderr_text);
    job_files_free(r->files, r->n_files);
    strv_free(r->files_skipped);
    free(r->error);
    free(r->warning);
    memset(r, 0, sizeof(*r));
}

/* ---- container bookkeeping ---- */

static void list_push(struct container_ref **list, const char *id)
{
    struct container_ref *c = xcalloc(1, sizeof(*c));
    c->id = xstrdup(id);
    c->next = *list;
    *list = c;
}

void exec_ref_free(struct container_ref *c)
{
    if (!c)
        return;
    free(c->id);
    free(c->image);
    free(c->exec_id);
    free(c->cancelled_by);
    free(c);
}

static void list_remove(struct container_ref **list, const char *id)
{
    for (struct container_ref **p = list; *p; p = &(*p)->next)
        if (strcmp((*p)->id, id) == 0) {
            struct container_ref *c = *p;
            *p = c->next;
            exec_ref_free(c);
            return;
        }
}

void exec_container_release(struct executor *x, const char *id)
{
    pthread_mutex_lock(&x->lock);
    list_remove(&x->active, id);
    list_push(&x->removals, id);
    pthread_cond_signal(&x->removal_ready);
    pthread_mutex_unlock(&x->lock);
}

static void *removal_main(void *arg)
{
    struct executor *x = arg;

    pthread_mutex_lock(&x->lock);
    for (;;) {
        while (!x->removals && !x->removal_stop)
            pthread_cond_wait(&x->removal_ready, &x->lock);
        if (!x->removals && x->removal_stop)
            break;
        struct container_ref *c = x->removals;
        x->removals = c->next;
        pthread_mutex_unlock(&x->lock);

        struct err err = ERR_INIT;
        if (engine_container_remove(x->engine, c->id, &err) < 0)
            log_warn("executor: cannot remove container '%.12s', ignoring: %s", c->id, err.msg);
        exec_ref_free(c);
        pthread_mutex_lock(&x->lock);
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

/* ---- slots ---- */

/* A slot to run in, waiting in the queue if need be. An asynchronous job
 * (@queued: it waited in the asynchronous queue, bounded on its own) always
 * waits, and gives up with ERR_CANCELLED when cancelled meanwhile. */
static int slot_acquire(struct executor *x, const struct prepared_job *pj, bool queued,
                        struct err *err)
{
    pthread_mutex_lock(&x->lock);
    if (x->stopping) {
        pthread_mutex_unlock(&x->lock);
        return err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
    }
    if (x->running >= x->cfg->concurrent_limit) {
        if (x->waiting >= x->cfg->queue_limit && !queued) {
            int64_t running = x->running, waiting = x->waiting;
            pthread_mutex_unlock(&x->lock);
            return err_set(err, ERR_BUSY,
                           "the run queue is full (%lld running, %lld waiting, "
                           "CONCURRENT_LIMIT %lld, ENVHUB_QUEUE_LIMIT %lld); retry later",
                           (long long)running, (long long)waiting,
                           (long long)x->cfg->concurrent_limit, (long long)x->cfg->queue_limit);
        }
        x->waiting++;
        while (x->running >= x->cfg->concurrent_limit && !x->stopping && !pj->cancelled_by)
            pthread_cond_wait(&x->slot_freed, &x->lock);
        x->waiting--;
        if (x->stopping) {
            pthread_mutex_unlock(&x->lock);
            return err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
        }
    }
    if (pj->cancelled_by) {
        pthread_cond_signal(&x->slot_freed); /* the wake-up may have been for another */
        err_set(err, ERR_CANCELLED, "cancelled by %s before it ran", pj->cancelled_by);
        pthread_mutex_unlock(&x->lock);
        return -1;
    }
    x->running++;
    pthread_mutex_unlock(&x->lock);
    return 0;
}

static void slot_release(struct executor *x)
{
    pthread_mutex_lock(&x->lock);
    x->running--;
    pthread_cond_signal(&x->slot_freed);
    pthread_mutex_unlock(&x->lock);
}

bool exec_stopping(struct executor *x)
{
    pthread_mutex_lock(&x->lock);
    bool s = x->stopping;
    pthread_mutex_unlock(&x->lock);
    return s;
}

void executor_stats(struct executor *x, struct executor_stats *ret)
{
    pthread_mutex_lock(&x->lock);
    ret->running = x->running;
    ret->waiting = x->waiting;
    pthread_mutex_unlock(&x->lock);
}

int exec_collect_stdout(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct buf *b = ctx;
    if (stream != ENGINE_STDOUT)
        return 0;
    /* stop reading at the cap, whatever the stream claims */
    return buf_append_upto(b, data, len) < len ? -1 : 0;
}

/* ---- the sandbox ---- */

void exec_sandbox_spec(struct executor *x, const char *image, const struct exec_limits *l,
                       struct sandbox *sb)
{
    static const char *const entrypoint[] = {"sleep", NULL};
    static const char *const cmd[] = {"infinity", NULL};
    static const char *const env[] = {"HOME=/tmp", "LANG=C.UTF-8", NULL};
    const struct config *cfg = x->cfg;
    struct engine_container_spec *s = &sb->spec;

    memset(sb, 0, sizeof(*sb));
    snprintf(sb->workspace_opts, sizeof(sb->workspace_opts),
             "rw,nosuid,nodev,size=%lld,nr_inodes=%lld,uid=1000,gid=1000,mode=0755",
             (long long)l->workspace_size, (long long)cfg->tmpfs_inodes);
    snprintf(sb->tmp_opts, sizeof(sb->tmp_opts),
             "rw,nosuid,nodev,size=%lld,nr_inodes=%lld,mode=1777", (long long)cfg->tmp_size,
             (long long)cfg->tmpfs_inodes);
    sb->tmpfs[0] = (struct engine_tmpfs){cfg->work_dir, sb->workspace_opts};
    sb->tmpfs[1] = (struct engine_tmpfs){"/tmp", sb->tmp_opts};
    s->image = image;
    s->entrypoint = entrypoint;
    s->cmd = cmd;
    s->env = env;
    s->user = EXEC_USER;
    s->working_dir = cfg->work_dir;
    s->labels = x->labels;
    s->n_labels = x->n_labels;
    s->tmpfs = sb->tmpfs;
    s->n_tmpfs = 2;
    s->memory_bytes = l->memory;
    s->nano_cpus = l->cpu_millis * 1000000;
    s->pids_limit = l->pids;
    s->shm_size = EXEC_SHM_SIZE;
    s->network_mode = l->network ? "bridge" : "none";
    /* no network stack at all: also halves the container's start */
    s->network_disabled = !l->network;
    s->read_only_rootfs = true;
    s->cap_drop_all = true;
    s->no_new_privileges = true;
    s->log_driver_none = true;
}

/* ---- metrics ---- */

static const double buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

void exec_count(struct executor *x, const char *environment, enum exec_status status,
                double seconds)
{
    const char *env = environment ? environment : "";
    pthread_mutex_lock(&x->lock);
    struct exec_counter *c = x->counters;
    while (c && strcmp(c->environment, env) != 0)
        c = c->next;
    if (!c) {
        c = xcalloc(1, sizeof(*c));
        c->environment = xstrdup(env);
        c->next = x->counters;
        x->counters = c;
    }
    if ((unsigned)status <= EXEC_INTERRUPTED)
        c->by_status[status]++;
    if (seconds >= 0) {
        for (size_t i = 0; i < ARRAY_SIZE(buckets); i++)
            if (seconds <= buckets[i])
                c->duration_buckets[i]++;
        c->duration_sum += seconds;
        c->duration_count++;
    }
    pthread_mutex_unlock(&x->lock);
}

void exec_manifest_add(struct execution_record *rec, enum file_direction dir,
                       const struct job_file *files, size_t n)
{
    rec->files = xrealloc(rec->files, (rec->n_files + n + 1) * sizeof(*rec->files));
    for (size_t i = 0; i < n; i++) {
        struct file_entry *f = &rec->files[rec->n_files++];
        f->direction = dir;
        f->path = xstrdup(files[i].path);
        f->size = (int64_t)files[i].len;
        sha256_hex(files[i].data, files[i].len, f->sha256);
    }
}

/* Resolve the environment, pack the inputs, fill the execution row. */
int exec_job_prepare(struct executor *x, const struct job_request *req, struct prepared_job *pj,
                     struct err *err)
{
    _cleanup_(env_record_release) struct env_record env = {0};
    const char *image = x->cfg->default_image;
    char hex[25];

    memset(pj, 0, sizeof(*pj));
    executor_limits_default(x->cfg, &pj->limits);
    if (req->environment) {
        /* the version in service now; a rebuild switching meanwhile keeps this image */
        if (catalog_env_get(x->catalog, req->environment, &env, err) < 0) {
            if (err->code == ERR_NOT_FOUND)
                return err_set(err, ERR_NOT_FOUND, "环境 '%s' 不存在", req->environment);
            return -1;
        }
        /* curation: a retired environment runs nothing; a deprecated one warns */
        if (env.lifecycle == ENV_RETIRED)
            return err_set(err, ERR_GONE, "%s", env.warning ? env.warning : "retired");
        if (env.version == 0 || !env.image)
            return err_set(err, ERR_INVALID, "环境 '%s' 状态为 %s，无法使用", req->environment,
                           env_status_name(env.status));
        image = env.image;
        if (executor_policy_parse(x->cfg, env.policy, &pj->limits, NULL, err) < 0)
            return err_prefix(err, "environment '%s' has a policy this server refuses",
                              req->environment);
    }
    struct exec_limits env_limits = pj->limits;
    if (executor_limits_lower(&env_limits, req->overrides, &pj->limits, err) < 0)
        return -1;
    pj->pool_ok = executor_limits_equal(&env_limits, &pj->limits);
    int64_t timeout = req->timeout_given ? req->timeout_s : pj->limits.timeout_default;
    if (timeout > pj->limits.timeout_max)
        return err_set(err, ERR_INVALID,
                       "timeout: %lld s is over %s's maximum of %lld s (policy.timeout_max)",
                       (long long)timeout, req->environment ? req->environment : "the default",
                       (long long)pj->limits.timeout_max);
    pj->input_tar = (struct buf)BUF_INIT((size_t)pj->limits.workspace_size);
    if (exec_tar_inputs(req->code, req->code_len, req->files, req->n_files, &pj->input_tar, err) <
        0) {
        buf_release(&pj->input_tar);
        if (err->code == ERR_TOO_LARGE)
            return err_set(err, ERR_TOO_LARGE,
                           "files: the input files and code are larger than the workspace "
                           "(%lld bytes)",
                           (long long)pj->limits.workspace_size);
        return -1;
    }
    struct execution_record *rec = &pj->rec;
    id_random_hex(hex, 12);
    rec->id = xasprintf("ex_%s", hex);
    rec->image = xstrdup(image);
    if (req->environment) {
        rec->environment = xstrdup(req->environment);
        rec->environment_version = env.version;
        rec->image_id = env.image_id ? xstrdup(env.image_id) : NULL;
    } else {
        pthread_mutex_lock(&x->lock);
        rec->image_id = x->default_image_id ? xstrdup(x->default_image_id) : NULL;
        pthread_mutex_unlock(&x->lock);
    }
    rec->principal = xstrdup(req->principal ? req->principal : "");
    rec->client_addr = xstrdup(req->client_addr ? req->client_addr : "");
    rec->code = xstrndup(req->code, req->code_len);
    sha256_hex(req->code, req->code_len, rec->code_sha256);
    rec->timeout_s = timeout;
    rec->limits = executor_limits_json(&pj->limits, timeout);
    rec->exit_code = -1;
    rec->duration_ms = -1;
    rec->queued_at = time_now_ms();
    rec->status = EXEC_QUEUED;
    exec_manifest_add(rec, FILE_IN, req->files, req->n_files);
    pj->warning = steal_ptr(env.warning); /* deprecated: the result says so (the row by trigger) */
    return 0;
}

void exec_job_release(struct prepared_job *pj)
{
    execution_record_release(&pj->rec);
    buf_release(&pj->input_tar);
    free(pj->warning);
    free(pj->cancelled_by);
}

/* A created (not started) sandbox container for @pj in *ret_cid; false with
 * @res filled as the job's error when the engine refuses. */
static bool fresh_container(struct executor *x, struct prepared_job *pj, char **ret_cid,
                            struct job_result *res, struct job_outcome *out)
{
    struct sandbox sb;

    exec_sandbox_spec(x, pj->rec.image, &pj->limits, &sb);
    if (engine_container_create(x->engine, &sb.spec, ret_cid, &out->engine_err) == 0)
        return true;
    out->engine_failed = true;
    res->status = exec_stopping(x) ? EXEC_INTERRUPTED : EXEC_ERROR;
    res->error = xasprintf("envhub could not run the job: %s", out->engine_err.msg);
    res->stdout_text = xstrdup("");
    res->stderr_text = xstrdup("");
    return false;
}

/* Run a prepared job to its end: a slot, a container (warm or fresh), the
 * run, the row. @recorded: the row exists already (queued). */
int exec_job_execute(struct executor *x, struct prepared_job *pj, bool recorded,
                     struct job_result *ret, struct err *err)
{
    struct execution_record *rec = &pj->rec;
    struct job_result res = {0};
    struct job_outcome out = {0};
    _cleanup_free_ char *cid = NULL;
    struct live *live = NULL; /* an asynchronous job's, while it runs */
    int64_t uses = 0, t_wait = time_mono_ms();

    snprintf(res.id, sizeof(res.id), "%s", rec->id);
    res.exit_code = -1;
    if (slot_acquire(x, pj, recorded, err) < 0)
        return -1;
    pthread_mutex_lock(&x->lock);
    x->wait_ms_total += (uint64_t)(time_mono_ms() - t_wait);
    x->waited_jobs++;
    pthread_mutex_unlock(&x->lock);
    rec->status = EXEC_RUNNING;
    rec->started_at = time_now_ms();
    struct err touch_err = ERR_INIT;
    if (rec->environment &&
        catalog_env_touch(x->catalog, rec->environment, rec->started_at, &touch_err) < 0)
        log_warn("executor: cannot update last_used of '%s', ignoring: %s", rec->environment,
                 touch_err.msg);
    if ((recorded ? catalog_execution_start(x->catalog, rec->id, rec->started_at, err)
                  : catalog_execution_insert(x->catalog, rec, err)) < 0) {
        slot_release(x);
        return err_prefix(err, "cannot record execution");
    }

    cid = pj->pool_ok ? exec_pool_take(x, rec->image, &pj->limits, &uses, true) : NULL;
    bool warm = cid != NULL;
    for (;;) {
        if (!cid && !fresh_container(x, pj, &cid, &res, &out))
            break;
        pthread_mutex_lock(&x->lock);
        list_push(&x->active, cid);
        x->active->exec_id = xstrdup(rec->id);
        bool stopping = x->stopping;
        if (pj->cancelled_by) /* cancelled while its container was being made */
            x->active->cancelled_by = xstrdup(pj->cancelled_by);
        bool cancelled = pj->cancelled_by != NULL;
        pthread_mutex_unlock(&x->lock);
        if (cancelled || stopping) {
            res.status = EXEC_INTERRUPTED;
            res.error = cancelled ? xasprintf("cancelled by %s before it ran", pj->cancelled_by)
                                  : xstrdup("the job was interrupted: envhub is shutting down");
            res.stdout_text = xstrdup("");
            res.stderr_text = xstrdup("");
            exec_container_release(x, cid);
            break;
        }
        /* live output for asynchronous jobs (their followers); a synchronous
         * job's caller gets it all in the answer */
        struct live_tap tap = {x, live ? live : pj->live};
        pj->live = NULL;
        struct job_io io = {
            .input_tar = &pj->input_tar,
            .timeout_s = rec->timeout_s,
            .output_limit = pj->limits.output_limit,
            .memory = pj->limits.memory,
            .started = warm,
            .recycled = warm && uses > 0,
            .live = tap.live ? exec_live_append : NULL,
            .live_ctx = &tap,
        };
        job_run(x, cid, &io, &res, &out);
        live = tap.live; /* closed once the row is final: followers then read it */
        if (out.unclean) {
            /* a recycled container kept something of its last job: nothing
             * ran; a fresh container runs the job */
            log_warn("executor: recycled container '%.12s' could not be cleaned; removing it", cid);
            exec_pool_return(x, rec->image, cid, uses + 1, false, warm);
            free(steal_ptr(cid));
            job_result_release(&res);
            snprintf(res.id, sizeof(res.id), "%s", rec->id);
            res.exit_code = -1;
            warm = false;
            uses = 0;
            continue;
        }
        _cleanup_free_ char *cancelled_by = NULL;
        pthread_mutex_lock(&x->lock);
        for (struct container_ref *c = x->active; c; c = c->next)
            if (strcmp(c->id, cid) == 0)
                cancelled_by = steal_ptr(c->cancelled_by);
        pthread_mutex_unlock(&x->lock);
        if (cancelled_by) {
            res.status = EXEC_INTERRUPTED;
            free(res.error);
            res.error = xasprintf("cancelled by %s while it ran", cancelled_by);
            out.container_usable = false;
        }
        exec_pool_return(x, rec->image, cid, uses + 1, out.container_usable && pj->pool_ok, warm);
        break;
    }
    slot_release(x);
    if (out.engine_failed) {
        pthread_mutex_lock(&x->lock);
        x->engine_errors++;
        pthread_mutex_unlock(&x->lock);
    }

    rec->status = res.status;
    rec->exit_code = res.exit_code;
    rec->error = res.error ? xstrdup(res.error) : NULL;
    rec->finished_at = time_now_ms();
    rec->duration_ms = res.status == EXEC_ERROR ? -1 : (int64_t)(res.execution_time * 1000);
    if (out.image_id) {
        free(rec->image_id);
        rec->image_id = steal_ptr(out.image_id);
    }
    /* the row borrows the result's output (no copy of a large output), until it is written */
    rec->stdout_text = res.stdout_text;
    rec->stdout_len = res.stdout_len;
    rec->stderr_text = res.stderr_text;
    rec->stderr_len = res.stderr_len;
    rec->stdout_truncated = res.stdout_truncated;
    rec->stderr_truncated = res.stderr_truncated;
    exec_manifest_add(rec, FILE_OUT, res.files, res.n_files);
    exec_count(x, rec->environment, res.status, res.status == EXEC_ERROR ? -1 : res.execution_time);
    int recorded_rc = catalog_execution_finish(x->catalog, rec, err);
    rec->stdout_text = rec->stderr_text = NULL;
    rec->stdout_len = rec->stderr_len = 0;
    if (live)
        exec_live_close(x, live);
    if (recorded_rc < 0) {
        job_result_release(&res);
        return err_prefix(err, "cannot record the result of execution '%s'", rec->id);
    }
    if (res.status == EXEC_ERROR) {
        /* the row says what happened; the caller answers with the engine's error */
        err_copy(err, &out.engine_err);
        if (err->code == ERR_OK)
            err_set(err, ERR_ENGINE, "%s", res.error);
        job_result_release(&res);
        return -1;
    }
    res.warning = pj->warning ? xstrdup(pj->warning) : NULL;
    *ret = res;
    return 0;
}

int executor_run(struct executor *x, const struct job_request *req, struct job_result *ret,
                 struct err *err)
{
    struct prepared_job pj;

    if (exec_job_prepare(x, req, &pj, err) < 0)
        return -1;
    int rc = exec_job_execute(x, &pj, false, ret, err);
    exec_job_release(&pj);
    return rc;
}

/* ---- open / close ---- */

static int parse_labels(struct executor *x, struct err *err)
{
    x->labels[x->n_labels++] = (struct engine_label){"envhub.managed", "1"};
    x->labels[x->n_labels++] =
        (struct engine_label){"envhub.instance", catalog_instance_id(x->catalog)};
    x->label_storage = xstrdup(x->cfg->labels);
    char *save = NULL;
    for (char *tok = strtok_r(x->label_storage, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok)
            return err_set(err, ERR_INVALID, "ENVHUB_LABELS entry '%s' must be key=value", tok);
        if (x->n_labels >= EXEC_MAX_LABELS)
            return err_set(err, ERR_INVALID, "ENVHUB_LABELS has more than %d labels",
                           EXEC_MAX_LABELS - 2);
        *eq = '\0';
        if (strncmp(tok, "envhub.managed", 14) == 0 || strncmp(tok, "envhub.instance", 15) == 0)
            return err_set(err, ERR_INVALID, "ENVHUB_LABELS may not set '%s'", tok);
        x->labels[x->n_labels++] = (struct engine_label){tok, eq + 1};
    }
    return 0;
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

int executor_open(const struct config *cfg, struct engine *e, struct catalog *cat,
                  struct executor **ret, struct err *err)
{
    struct executor *x = xcalloc(1, sizeof(*x));
    int interrupted = 0;

    x->cfg = cfg;
    x->engine = e;
    x->catalog = cat;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->slot_freed, NULL);
    pthread_cond_init(&x->removal_ready, NULL);
    if (parse_labels(x, err) < 0) {
        executor_close(x);
        return -1;
    }
    pthread_cond_init(&x->pool_wake, NULL);
    pthread_cond_init(&x->reaper_wake, NULL);
    pthread_cond_init(&x->async_ready, NULL);
    pthread_cond_init(&x->live_cond, NULL);

    reap_leftovers(x);
    if (catalog_recover_executions(cat, time_now_ms(), &interrupted, err) < 0) {
        executor_close(x);
        return err_prefix(err, "cannot recover unfinished executions");
    }
    if (interrupted)
        log_info("executor: marked %d executions cut off by the last stop as interrupted",
                 interrupted);
    if (pthread_create(&x->removal_thread, NULL, removal_main, x) != 0) {
        executor_close(x);
        return err_set(err, ERR_INTERNAL, "cannot start the container removal thread");
    }
    x->removal_started = true;
    if (exec_pool_start(x, err) < 0 || exec_sessions_start(x, err) < 0 ||
        exec_async_start(x, err) < 0) {
        executor_close(x);
        return -1;
    }
    *ret = x;
    return 0;
}

void executor_shutdown(struct executor *x)
{
    struct container_ref *kill_list = NULL;

    pthread_mutex_lock(&x->lock);
    if (x->stopping) {
        pthread_mutex_unlock(&x->lock);
        return;
    }
    x->stopping = true;
    pthread_cond_broadcast(&x->slot_freed);
    pthread_cond_broadcast(&x->pool_wake);
    pthread_cond_broadcast(&x->reaper_wake);
    pthread_cond_broadcast(&x->async_ready);
    pthread_cond_broadcast(&x->live_cond);
    for (struct container_ref *c = x->active; c; c = c->next)
        list_push(&kill_list, c->id);
    pthread_mutex_unlock(&x->lock);

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

void executor_close(struct executor *x)
{
    if (!x)
        return;
    executor_shutdown(x);
    exec_async_stop(x);    /* queued jobs are recorded interrupted */
    exec_pool_stop(x);     /* pooled containers go to the removal thread */
    exec_sessions_stop(x); /* and sessions' containers */
    if (x->removal_started) {
        pthread_mutex_lock(&x->lock);
        x->removal_stop = true;
        pthread_cond_signal(&x->removal_ready);
        pthread_mutex_unlock(&x->lock);
        pthread_join(x->removal_thread, NULL);
    }
    while (x->active) {
        struct container_ref *c = x->active;
        x->active = c->next;
        exec_ref_free(c);
    }
    exec_pools_free(x);
    while (x->counters) {
        struct exec_counter *c = x->counters;
        x->counters = c->next;
        free(c->environment);
        free(c);
    }
    pthread_cond_destroy(&x->async_ready);
    pthread_cond_destroy(&x->live_cond);
    pthread_cond_destroy(&x->pool_wake);
    pthread_cond_destroy(&x->reaper_wake);
    pthread_cond_destroy(&x->removal_ready);
    pthread_cond_destroy(&x->slot_freed);
    pthread_mutex_destroy(&x->lock);
    free(x->label_storage);
    free(x->default_image_id);
    free(x);
}

void executor_pool_stats_free(struct executor_pool_stat *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i].image);
        free(s[i].environment);
    }
    free(s);
}

/* ---- /metrics ---- */

/* A Prometheus label value: backslash, quote and newline escaped. */
static int label_escape(struct buf *out, const char *v)
{
    int fail = 0;
    for (const char *p = v; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        fail |= esc ? buf_appends(out, esc) : buf_append(out, p, 1);
    }
    return fail;
}

int executor_metrics(struct executor *x, struct buf *out)
{
    int fail = 0;

    pthread_mutex_lock(&x->lock);
    fail |= buf_appends(out, "# HELP envhub_executions_total Executions finished, by environment "
                             "and status.\n# TYPE envhub_executions_total counter\n");
    for (struct exec_counter *c = x->counters; c; c = c->next)
        for (int s = 0; s <= EXEC_INTERRUPTED; s++) {
            if (!c->by_status[s])
                continue;
            fail |= buf_appends(out, "envhub_executions_total{environment=\"");
            fail |= label_escape(out, c->environment);
            fail |=
                buf_appendf(out, "\",status=\"%s\"} %llu\n", exec_status_name((enum exec_status)s),
                            (unsigned long long)c->by_status[s]);
        }
    fail |= buf_appends(out, "# HELP envhub_execution_duration_seconds Time user code ran.\n"
                             "# TYPE envhub_execution_duration_seconds histogram\n");
    for (struct exec_counter *c = x->counters; c; c = c->next) {
        for (size_t i = 0; i < ARRAY_SIZE(buckets); i++) {
            fail |= buf_appends(out, "envhub_execution_duration_seconds_bucket{environment=\"");
            fail |= label_escape(out, c->environment);
            fail |= buf_appendf(out, "\",le=\"%g\"} %llu\n", buckets[i],
                                (unsigned long long)c->duration_buckets[i]);
        }
        fail |= buf_appends(out, "envhub_execution_duration_seconds_bucket{environment=\"");
        fail |= label_escape(out, c->environment);
        fail |= buf_appendf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)c->duration_count);
        fail |= buf_appends(out, "envhub_execution_duration_seconds_sum{environment=\"");
        fail |= label_escape(out, c->environment);
        fail |= buf_appendf(out, "\"} %.3f\n", c->duration_sum);
        fail |= buf_appends(out, "envhub_execution_duration_seconds_count{environment=\"");
        fail |= label_escape(out, c->environment);
        fail |= buf_appendf(out, "\"} %llu\n", (unsigned long long)c->duration_count);
    }
    int64_t sessions = 0;
    for (struct session *s = x->sessions; s; s = exec_session_next(s))
        sessions++;
    fail |= buf_appendf(
        out,
        "# HELP envhub_jobs_running Jobs holding a slot now.\n# TYPE envhub_jobs_running gauge\n"
        "envhub_jobs_running %lld\n"
        "# HELP envhub_queue_depth Jobs waiting for a slot now.\n# TYPE envhub_queue_depth gauge\n"
        "envhub_queue_depth %lld\n"
        "# HELP envhub_async_queue_depth Submitted jobs waiting for a worker.\n"
        "# TYPE envhub_async_queue_depth gauge\nenvhub_async_queue_depth %lld\n"
        "# HELP envhub_queue_wait_seconds Time jobs waited for a slot.\n"
        "# TYPE envhub_queue_wait_seconds summary\n"
        "envhub_queue_wait_seconds_sum %.3f\nenvhub_queue_wait_seconds_count %llu\n"
        "# HELP envhub_sessions_open Sessions open now.\n# TYPE envhub_sessions_open gauge\n"
        "envhub_sessions_open %lld\n"
        "# HELP envhub_engine_errors_total Docker engine calls that failed jobs or pools.\n"
        "# TYPE envhub_engine_errors_total counter\nenvhub_engine_errors_total %llu\n",
        (long long)x->running, (long long)x->waiting, (long long)x->async_queued,
        (double)x->wait_ms_total / 1000, (unsigned long long)x->waited_jobs, (long long)sessions,
        (unsigned long long)x->engine_errors);
    static const char *const pool_metrics[][3] = {
        {"envhub_pool_ready", "gauge", "Warm containers ready now."},
        {"envhub_pool_target", "gauge", "Warm containers the pool keeps."},
        {"envhub_pool_hits_total", "counter", "Jobs that got a warm container."},
        {"envhub_pool_misses_total", "counter", "Jobs that had to make their container."},
    };
    for (size_t m = 0; m < ARRAY_SIZE(pool_metrics); m++) {
        fail |= buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", pool_metrics[m][0],
                            pool_metrics[m][2], pool_metrics[m][0], pool_metrics[m][1]);
        for (struct pool *p = x->pools; p; p = p->next) {
            unsigned long long v = m == 0   ? (unsigned long long)p->n_ready
                                   : m == 1 ? (unsigned long long)p->want
                                   : m == 2 ? (unsigned long long)p->hits
                                            : (unsigned long long)p->misses;
            fail |= buf_appendf(out, "%s{environment=\"", pool_metrics[m][0]);
            fail |= label_escape(out, p->environment ? p->environment : "");
            fail |= buf_appends(out, "\",image=\"");
            fail |= label_escape(out, p->image);
            fail |= buf_appendf(out, "\"} %llu\n", v);
        }
    }
    pthread_mutex_unlock(&x->lock);
    return fail ? -1 : 0;
}

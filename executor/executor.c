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

#define EXEC_SHM_SIZE (4 * 1024 * 1024)
#define EXEC_SKIPPED_MAX 65536
#define EXEC_USER "1000:1000"
#define MAX_LABELS 16

struct container_ref {
    char *id;
    struct container_ref *next;
};

struct executor {
    const struct config *cfg;
    struct engine *engine;
    struct catalog *catalog;

    struct engine_label labels[MAX_LABELS];
    size_t n_labels;
    char *label_storage; /* the extra labels' text, split in place */
    struct engine_tmpfs tmpfs[2];
    char *tmpfs_opts[2];

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t slot_freed;
    int64_t running, waiting;
    bool stopping;
    struct container_ref *active;  /* containers of running jobs */

    pthread_cond_t removal_ready;
    struct container_ref *removals; /* containers to remove */
    bool removal_stop;
    pthread_t removal_thread;
    bool removal_started;
};

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
    memset(r, 0, sizeof(*r));
}

/* ---- container bookkeeping ---- */

static void list_push(struct container_ref **list, const char *id)
{
    struct container_ref *c = xmalloc(sizeof(*c));
    c->id = xstrdup(id);
    c->next = *list;
    *list = c;
}

static void list_remove(struct container_ref **list, const char *id)
{
    for (struct container_ref **p = list; *p; p = &(*p)->next)
        if (strcmp((*p)->id, id) == 0) {
            struct container_ref *c = *p;
            *p = c->next;
            free(c->id);
            free(c);
            return;
        }
}

/* Hand a container to the removal thread; the job does not wait for it. */
static void container_release(struct executor *x, const char *id)
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
        free(c->id);
        free(c);
        pthread_mutex_lock(&x->lock);
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

/* ---- slots ---- */

static int slot_acquire(struct executor *x, struct err *err)
{
    pthread_mutex_lock(&x->lock);
    if (x->stopping) {
        pthread_mutex_unlock(&x->lock);
        return err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
    }
    if (x->running >= x->cfg->concurrent_limit) {
        if (x->waiting >= x->cfg->queue_limit) {
            int64_t running = x->running, waiting = x->waiting;
            pthread_mutex_unlock(&x->lock);
            return err_set(err, ERR_BUSY,
                           "the run queue is full (%lld running, %lld waiting, "
                           "CONCURRENT_LIMIT %lld, ENVHUB_QUEUE_LIMIT %lld); retry later",
                           (long long)running, (long long)waiting,
                           (long long)x->cfg->concurrent_limit, (long long)x->cfg->queue_limit);
        }
        x->waiting++;
        while (x->running >= x->cfg->concurrent_limit && !x->stopping)
            pthread_cond_wait(&x->slot_freed, &x->lock);
        x->waiting--;
        if (x->stopping) {
            pthread_mutex_unlock(&x->lock);
            return err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
        }
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

static bool executor_stopping(struct executor *x)
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

/* ---- output capture ---- */

struct capture {
    struct buf out, err;
    bool out_truncated, err_truncated;
};

static int capture_output(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct capture *c = ctx;
    bool is_err = stream == ENGINE_STDERR;
    struct buf *b = is_err ? &c->err : &c->out;

    /* keep the first bytes up to the cap, drain the rest so the job is not blocked */
    if (buf_append_upto(b, data, len) < len) {
        if (is_err)
            c->err_truncated = true;
        else
            c->out_truncated = true;
    }
    return 0;
}

struct collect {
    struct buf tar, skipped;
    bool truncated;
};

static int collect_output(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct collect *c = ctx;

    if (stream == ENGINE_STDERR) {
        (void)buf_append_upto(&c->skipped, data, len);
        return 0;
    }
    if (buf_append_upto(&c->tar, data, len) < len) {
        /* whatever sizes the headers claim, never read past the cap */
        c->truncated = true;
        return -1;
    }
    return 0;
}

/* The collect script's reports on stderr, each ended by NUL: "envhub-oom N"
 * (the memory cgroup's OOM kills) and "envhub-skip SIZE PATH" (files over the
 * size limit). Returns N. */
static int64_t parse_skipped(const struct buf *b, size_t max_file_size, char ***skipped)
{
    const char *p = buf_str(b), *end = p + b->len;
    static const char tag[] = "envhub-skip ";
    static const char oom_tag[] = "envhub-oom ";
    int64_t oom_kills = 0;

    while (p < end) {
        size_t len = strnlen(p, (size_t)(end - p));
        if (len > sizeof(tag) - 1 && strncmp(p, tag, sizeof(tag) - 1) == 0) {
            const char *rest = p + sizeof(tag) - 1;
            const char *space = memchr(rest, ' ', len - (sizeof(tag) - 1));
            if (space) {
                _cleanup_free_ char *path = xstrndup(space + 1, (size_t)(p + len - space - 1));
                _cleanup_free_ char *clean = utf8_sanitize(path, strlen(path), NULL);
                strv_push(skipped, xasprintf("%s: larger than the file size limit (%zu bytes)",
                                             clean, max_file_size));
            }
        } else if (len > sizeof(oom_tag) - 1 && strncmp(p, oom_tag, sizeof(oom_tag) - 1) == 0) {
            _cleanup_free_ char *num = xstrndup(p + sizeof(oom_tag) - 1, len - sizeof(oom_tag) + 1);
            if (parse_int(num, 0, INT64_MAX, &oom_kills) < 0)
                oom_kills = 0;
        }
        p += len + 1;
    }
    return oom_kills;
}

/* ---- one job ---- */

static void build_spec(struct executor *x, const char *image, struct engine_container_spec *s)
{
    static const char *const entrypoint[] = {"sleep", NULL};
    static const char *const cmd[] = {"infinity", NULL};
    static const char *const env[] = {"HOME=/tmp", "LANG=C.UTF-8", NULL};
    bool no_network = strcmp(x->cfg->network_mode, "none") == 0;

    memset(s, 0, sizeof(*s));
    s->image = image;
    s->entrypoint = entrypoint;
    s->cmd = cmd;
    s->env = env;
    s->user = EXEC_USER;
    s->working_dir = x->cfg->work_dir;
    s->labels = x->labels;
    s->n_labels = x->n_labels;
    s->tmpfs = x->tmpfs;
    s->n_tmpfs = 2;
    s->memory_bytes = x->cfg->memory_limit;
    s->nano_cpus = x->cfg->cpu_millis * 1000000;
    s->pids_limit = x->cfg->pids_limit;
    s->shm_size = EXEC_SHM_SIZE;
    s->network_mode = x->cfg->network_mode;
    s->network_disabled = no_network;
    s->read_only_rootfs = true;
    s->cap_drop_all = true;
    s->no_new_privileges = true;
    s->log_driver_none = true;
}

static const char *const job_env[] = {
    "HOME=/tmp",
    "LANG=C.UTF-8",
    "PYTHONUNBUFFERED=1",
    "PYTHONDONTWRITEBYTECODE=1",
    "PYTHONIOENCODING=utf-8",
    "MPLBACKEND=Agg",
    "MPLCONFIGDIR=/tmp/.matplotlib",
    NULL,
};

/* Everything between "container created" and "container handed back". */
static void job_in_container(struct executor *x, const char *cid, const struct job_request *req,
                             const struct buf *input_tar, struct execution_record *rec,
                             struct job_result *res)
{
    static const char *const run_cmd[] = {
        "/bin/sh", "-c", "tar -x -f - && exec python3 " EXEC_CODE_NAME, NULL};
    struct capture cap = {.out = BUF_INIT((size_t)x->cfg->output_limit),
                          .err = BUF_INIT((size_t)x->cfg->output_limit)};
    struct engine_exec_result run = {0};
    struct engine_container_state state = {0};
    struct err err = ERR_INIT;
    int64_t t0, t1, oom_kills = 0;

    int64_t t_start = time_mono_ms(), t_collect = 0;
    if (engine_container_start(x->engine, cid, &err) < 0)
        goto engine_failed;

    struct engine_exec_spec spec = {
        .cmd = run_cmd,
        .env = job_env,
        .user = EXEC_USER,
        .working_dir = x->cfg->work_dir,
        .stdin_data = input_tar->data,
        .stdin_len = input_tar->len,
        .output = capture_output,
        .output_ctx = &cap,
    };
    t0 = time_mono_ms();
    spec.deadline_ms = t0 + req->timeout_s * 1000;
    if (engine_exec(x->engine, cid, &spec, &run, &err) < 0)
        goto engine_failed;
    t1 = time_mono_ms();
    res->execution_time = (double)(t1 - t0) / 1000.0;
    rec->duration_ms = t1 - t0;

    if (run.timed_out) {
        struct err kerr = ERR_INIT;
        if (engine_container_kill(x->engine, cid, &kerr) < 0)
            log_warn("executor: cannot kill container '%.12s' of %s, ignoring: %s", cid, res->id,
                     kerr.msg);
        res->status = EXEC_TIMEOUT;
        res->error = xasprintf("代码执行超时(%lld秒)", (long long)req->timeout_s);
    } else {
        res->exit_code = run.exit_code;
        if (engine_container_inspect(x->engine, cid, &state, &err) < 0)
            goto engine_failed;
        if (state.image_id[0]) {
            free(rec->image_id);
            rec->image_id = xstrdup(state.image_id);
        }
        res->status = run.exit_code == 0 ? EXEC_SUCCEEDED : EXEC_FAILED;
    }
    if (executor_stopping(x) && res->status != EXEC_SUCCEEDED) {
        res->status = EXEC_INTERRUPTED;
        free(res->error);
        res->error = xstrdup("the job was interrupted: envhub is shutting down");
    }

    /* Output files, unless the container is gone (timeout, shutdown). */
    if (res->status != EXEC_TIMEOUT && res->status != EXEC_INTERRUPTED && state.running) {
        /* The engine's OOMKilled flag is not set on every kernel (cgroup v1 events), so
         * the memory cgroup's own oom_kill counter, read from inside, decides. */
        _cleanup_free_ char *script = xasprintf(
            "n=0; for f in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; "
            "do [ -r $f ] && while read k v; do [ \"$k\" = oom_kill ] && n=$v; done < $f; done; "
            "printf 'envhub-oom %%s\\0' \"$n\" >&2; "
            "find . -path ./" EXEC_CODE_NAME " -prune -o -type f \\( -size -%lldc -print0 -o "
            "-fprintf /dev/stderr 'envhub-skip %%s %%P\\0' \\) | "
            "tar --null --no-recursion -T - -c -f -",
            (long long)x->cfg->max_file_size + 1);
        const char *collect_cmd[] = {"/bin/sh", "-c", script, NULL};
        struct collect col = {
            .tar = BUF_INIT((size_t)x->cfg->output_files_limit + 1024 * 1024),
            .skipped = BUF_INIT(EXEC_SKIPPED_MAX),
        };
        struct engine_exec_spec cspec = {
            .cmd = collect_cmd,
            .env = job_env,
            .user = EXEC_USER,
            .working_dir = x->cfg->work_dir,
            .output = collect_output,
            .output_ctx = &col,
            .deadline_ms = time_mono_ms() + 30000,
        };
        struct engine_exec_result cres = {0};
        t_collect = time_mono_ms();
        struct tar_out_limits limits = {.max_file_size = (size_t)x->cfg->max_file_size,
                                        .max_total = (size_t)x->cfg->output_files_limit};
        if (engine_exec(x->engine, cid, &cspec, &cres, &err) < 0) {
            log_warn("executor: cannot collect the output files of %s: %s", res->id, err.msg);
            strv_push(&res->files_skipped, xasprintf("*: cannot read the workspace: %s", err.msg));
        } else {
            oom_kills = parse_skipped(&col.skipped, limits.max_file_size, &res->files_skipped);
            if (cres.timed_out)
                strv_push(&res->files_skipped,
                          xstrdup("*: reading the workspace took longer than 30 s"));
            exec_tar_outputs(col.tar.data, col.tar.len, col.truncated, &limits, &res->files,
                             &res->n_files, &res->files_skipped, &err);
        }
        buf_release(&col.tar);
        buf_release(&col.skipped);
    }
    log_debug("executor: job %s start=%lldms run=%lldms collect=%lldms", res->id,
              (long long)(t0 - t_start), (long long)(t1 - t0),
              (long long)(t_collect ? time_mono_ms() - t_collect : 0));
    if (res->status != EXEC_TIMEOUT && res->status != EXEC_INTERRUPTED &&
        (state.oom_killed || oom_kills > 0)) {
        res->status = EXEC_OOM;
        free(res->error);
        res->error = xasprintf("代码执行失败，退出码: %d (out of memory: the job passed its "
                               "memory limit of %lld bytes)",
                               res->exit_code, (long long)x->cfg->memory_limit);
    } else if (res->status == EXEC_FAILED) {
        res->error = xasprintf("代码执行失败，退出码: %d", res->exit_code);
    }
    goto done;

engine_failed:
    res->status = executor_stopping(x) ? EXEC_INTERRUPTED : EXEC_ERROR;
    res->error = xasprintf("envhub could not run the job: %s", err.msg);
    log_error("executor: job %s: %s", res->id, err.msg);
done:
    res->stdout_text = utf8_sanitize(buf_str(&cap.out), cap.out.len, &res->stdout_len);
    res->stderr_text = utf8_sanitize(buf_str(&cap.err), cap.err.len, &res->stderr_len);
    res->stdout_truncated = cap.out_truncated;
    res->stderr_truncated = cap.err_truncated;
    buf_release(&cap.out);
    buf_release(&cap.err);
}

static void manifest_add(struct execution_record *rec, enum file_direction dir,
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

int executor_run(struct executor *x, const struct job_request *req, struct job_result *ret,
                 struct err *err)
{
    _cleanup_(buf_release) struct buf input_tar = BUF_INIT((size_t)x->cfg->workspace_size);
    _cleanup_(execution_record_release) struct execution_record rec = {0};
    struct engine_container_spec spec;
    struct job_result res = {0};
    _cleanup_free_ char *cid = NULL;
    _cleanup_(env_record_release) struct env_record env = {0};
    const char *image = x->cfg->default_image;
    struct err local = ERR_INIT;
    char hex[25];

    if (req->environment) {
        /* the version in service now; a rebuild switching meanwhile keeps this image */
        if (catalog_env_get(x->catalog, req->environment, &env, err) < 0) {
            if (err->code == ERR_NOT_FOUND)
                return err_set(err, ERR_NOT_FOUND, "环境 '%s' 不存在", req->environment);
            return -1;
        }
        if (env.version == 0 || !env.image)
            return err_set(err, ERR_INVALID, "环境 '%s' 状态为 %s，无法使用", req->environment,
                           env_status_name(env.status));
        image = env.image;
    }
    if (exec_tar_inputs(req->code, req->code_len, req->files, req->n_files, &input_tar, err) < 0) {
        if (err->code == ERR_TOO_LARGE)
            return err_set(err, ERR_TOO_LARGE,
                           "files: the input files and code are larger than the workspace "
                           "(ENVHUB_WORKSPACE_SIZE %lld bytes)",
                           (long long)x->cfg->workspace_size);
        return -1;
    }

    id_random_hex(hex, 12);
    snprintf(res.id, sizeof(res.id), "ex_%s", hex);
    res.exit_code = -1;
    rec.id = xstrdup(res.id);
    rec.image = xstrdup(image);
    if (req->environment) {
        rec.environment = xstrdup(req->environment);
        rec.environment_version = env.version;
        if (env.image_id)
            rec.image_id = xstrdup(env.image_id);
    }
    rec.principal = xstrdup(req->principal ? req->principal : "");
    rec.client_addr = xstrdup(req->client_addr ? req->client_addr : "");
    rec.code = xstrndup(req->code, req->code_len);
    sha256_hex(req->code, req->code_len, rec.code_sha256);
    rec.timeout_s = req->timeout_s;
    rec.exit_code = -1;
    rec.duration_ms = -1;
    rec.queued_at = time_now_ms();
    manifest_add(&rec, FILE_IN, req->files, req->n_files);

    if (slot_acquire(x, err) < 0)
        return -1;
    rec.status = EXEC_RUNNING;
    rec.started_at = time_now_ms();
    struct err touch_err = ERR_INIT;
    if (req->environment && catalog_env_touch(x->catalog, req->environment, rec.started_at,
                                              &touch_err) < 0)
        log_warn("executor: cannot update last_used of '%s', ignoring: %s", req->environment,
                 touch_err.msg);
    if (catalog_execution_insert(x->catalog, &rec, err) < 0) {
        slot_release(x);
        return err_prefix(err, "cannot record execution");
    }

    build_spec(x, image, &spec);
    if (engine_container_create(x->engine, &spec, &cid, &local) < 0) {
        res.status = EXEC_ERROR;
        res.error = xasprintf("envhub could not run the job: %s", local.msg);
        res.stdout_text = xstrdup("");
        res.stderr_text = xstrdup("");
    } else {
        pthread_mutex_lock(&x->lock);
        list_push(&x->active, cid);
        bool stopping = x->stopping;
        pthread_mutex_unlock(&x->lock);
        if (stopping) {
            res.status = EXEC_INTERRUPTED;
            res.error = xstrdup("the job was interrupted: envhub is shutting down");
            res.stdout_text = xstrdup("");
            res.stderr_text = xstrdup("");
        } else {
            job_in_container(x, cid, req, &input_tar, &rec, &res);
        }
        container_release(x, cid);
    }
    slot_release(x);

    rec.status = res.status;
    rec.exit_code = res.exit_code;
    rec.error = res.error ? xstrdup(res.error) : NULL;
    rec.finished_at = time_now_ms();
    rec.stdout_text = xstrdup(res.stdout_text);
    rec.stderr_text = xstrdup(res.stderr_text);
    rec.stdout_truncated = res.stdout_truncated;
    rec.stderr_truncated = res.stderr_truncated;
    manifest_add(&rec, FILE_OUT, res.files, res.n_files);
    if (catalog_execution_finish(x->catalog, &rec, err) < 0) {
        job_result_release(&res);
        return err_prefix(err, "cannot record the result of execution '%s'", rec.id);
    }
    if (res.status == EXEC_ERROR) {
        /* the row says what happened; the caller answers with the engine's error */
        err_copy(err, &local);
        if (err->code == ERR_OK)
            err_set(err, ERR_ENGINE, "%s", res.error);
        job_result_release(&res);
        return -1;
    }
    *ret = res;
    return 0;
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
        if (x->n_labels >= MAX_LABELS)
            return err_set(err, ERR_INVALID, "ENVHUB_LABELS has more than %d labels",
                           MAX_LABELS - 2);
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
    x->tmpfs_opts[0] = xasprintf("rw,nosuid,nodev,size=%lld,nr_inodes=%lld,uid=1000,gid=1000,"
                                 "mode=0755",
                                 (long long)cfg->workspace_size, (long long)cfg->tmpfs_inodes);
    x->tmpfs_opts[1] = xasprintf("rw,nosuid,nodev,size=%lld,nr_inodes=%lld,mode=1777",
                                 (long long)cfg->tmp_size, (long long)cfg->tmpfs_inodes);
    x->tmpfs[0] = (struct engine_tmpfs){cfg->work_dir, x->tmpfs_opts[0]};
    x->tmpfs[1] = (struct engine_tmpfs){"/tmp", x->tmpfs_opts[1]};

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
        free(c->id);
        free(c);
    }
}

void executor_close(struct executor *x)
{
    if (!x)
        return;
    executor_shutdown(x);
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
        free(c->id);
        free(c);
    }
    pthread_cond_destroy(&x->removal_ready);
    pthread_cond_destroy(&x->slot_freed);
    pthread_mutex_destroy(&x->lock);
    free(x->tmpfs_opts[0]);
    free(x->tmpfs_opts[1]);
    free(x->label_storage);
    free(x);
}

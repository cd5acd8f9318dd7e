/* builder/builder.c - the build queue and its workers.
 *
 * Invariants: a build is in the catalog before it is queued; each worker
 * owns one build at a time and finishes it in the catalog (ready, failed or
 * cancelled) on every path, except at shutdown, when it puts it back to
 * queued for the next start. Every log line is in the catalog before
 * watchers are woken, so a watcher that reads the catalog after waking never
 * misses a line. */
#include "builder/builder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define MAX_LABELS 16
#define VERIFY_OUTPUT_MAX (8 * 1024 * 1024)
#define VERIFY_TIMEOUT_MS 120000
#define CGROUP_ROOT "/sys/fs/cgroup"

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

enum cgroup_mode { CGROUP_NONE = 0, CGROUP_V1, CGROUP_V2 };

struct builder {
    const struct config *cfg;
    struct engine *engine;
    struct catalog *catalog;

    struct engine_label image_labels[MAX_LABELS];     /* on built images */
    size_t n_image_labels;
    struct engine_label container_labels[MAX_LABELS]; /* on verification containers */
    size_t n_container_labels;
    char *label_storage;
    enum cgroup_mode cgroups;

    pthread_mutex_t lock; /* guards everything below */
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
};

static void count_build(struct builder *b, enum build_status st, int64_t ms)
{
    pthread_mutex_lock(&b->lock);
    b->finished[st]++;
    b->seconds_sum += (double)ms / 1000;
    b->seconds_count++;
    pthread_mutex_unlock(&b->lock);
}

int builder_metrics(struct builder *b, struct buf *out)
{
    int fail = 0;
    pthread_mutex_lock(&b->lock);
    size_t queued = 0, running = 0;
    for (struct queued *q = b->head; q; q = q->next)
        queued++;
    for (struct active *a = b->active; a; a = a->next)
        running++;
    fail |= buf_appends(out, "# HELP envhub_builds_total Environment builds ended, by status.\n"
                             "# TYPE envhub_builds_total counter\n");
    for (int st = BUILD_READY; st <= BUILD_CANCELLED; st++)
        fail |= buf_appendf(out, "envhub_builds_total{status=\"%s\"} %llu\n",
                            build_status_name((enum build_status)st),
                            (unsigned long long)b->finished[st]);
    fail |= buf_appendf(out,
                        "# HELP envhub_build_duration_seconds Time from start to end of builds.\n"
                        "# TYPE envhub_build_duration_seconds summary\n"
                        "envhub_build_duration_seconds_sum %.3f\n"
                        "envhub_build_duration_seconds_count %llu\n"
                        "# HELP envhub_builds_running Builds running now.\n"
                        "# TYPE envhub_builds_running gauge\nenvhub_builds_running %zu\n"
                        "# HELP envhub_builds_queued Builds waiting for a worker.\n"
                        "# TYPE envhub_builds_queued gauge\nenvhub_builds_queued %zu\n",
                        b->seconds_sum, (unsigned long long)b->seconds_count, running, queued);
    pthread_mutex_unlock(&b->lock);
    return fail ? -1 : 0;
}

static void notify_listener(struct builder *b)
{
    pthread_mutex_lock(&b->lock);
    void (*fn)(void *) = b->listener;
    void *ctx = b->listener_ctx;
    pthread_mutex_unlock(&b->lock);
    if (fn)
        fn(ctx);
}

void builder_set_listener(struct builder *b, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&b->lock);
    b->listener = fn;
    b->listener_ctx = ctx;
    pthread_mutex_unlock(&b->lock);
}

/* ---- queue and progress ---- */

static void queue_push(struct builder *b, int64_t build_id)
{
    struct queued *q = xcalloc(1, sizeof(*q));
    q->build_id = build_id;
    pthread_mutex_lock(&b->lock);
    if (b->tail)
        b->tail->next = q;
    else
        b->head = q;
    b->tail = q;
    pthread_cond_signal(&b->work);
    pthread_mutex_unlock(&b->lock);
}

static void progress_signal(struct builder *b)
{
    pthread_mutex_lock(&b->lock);
    b->generation++;
    pthread_cond_broadcast(&b->progress);
    pthread_mutex_unlock(&b->lock);
}

/* Is build @id (of @env) to stop? At shutdown, or when its environment is deleted. */
static bool build_cancelled(struct builder *b, int64_t id)
{
    bool c = false;
    pthread_mutex_lock(&b->lock);
    c = b->stopping;
    for (struct active *a = b->active; a && !c; a = a->next)
        if (a->build_id == id)
            c = a->cancel;
    pthread_mutex_unlock(&b->lock);
    return c;
}

/* ---- one build ---- */

struct build_ctx {
    struct builder *b;
    struct build_record rec;
    int64_t lines;
    char failed_line[ERR_MSG_MAX]; /* "setup.sh failed at line N: CMD", from the ERR trap */
};

static int build_log(struct build_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int build_log(struct build_ctx *c, const char *fmt, ...)
{
    char *line = NULL;
    va_list ap;
    struct err err = ERR_INIT;

    va_start(ap, fmt);
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return 0;
    _cleanup_free_ char *clean = utf8_sanitize(line, (size_t)n, NULL);
    free(line);
    if (catalog_build_log_append(c->b->catalog, c->rec.id, time_now_ms(), clean, NULL, &err) < 0)
        log_warn("builder: cannot store a log line of build %lld, ignoring: %s",
                 (long long)c->rec.id, err.msg);
    c->lines++;
    progress_signal(c->b);
    return 0;
}

static int on_build_line(void *ctx, const char *line)
{
    struct build_ctx *c = ctx;
    static const char trap[] = "envhub: setup.sh failed at line ";
    /* the trap's own output, not the RUN line that quotes it */
    if (strncmp(line, trap, sizeof(trap) - 1) == 0 && line[sizeof(trap) - 1] >= '0' &&
        line[sizeof(trap) - 1] <= '9')
        snprintf(c->failed_line, sizeof(c->failed_line), "%s", line + strlen("envhub: "));
    build_log(c, "%s", line);
    return build_cancelled(c->b, c->rec.id) ? -1 : 0;
}

static bool engine_build_cancelled(void *ctx)
{
    struct build_ctx *c = ctx;
    return build_cancelled(c->b, c->rec.id);
}

/* A per-build cgroup with pids.max, given to /build as its cgroup parent so
 * that a fork bomb in a setup script stops at the limit. NULL when the engine
 * is not local or cgroups are not writable (the open log said so). */
static char *cgroup_create(struct builder *b, int64_t build_id)
{
    if (b->cgroups == CGROUP_NONE)
        return NULL;
    _cleanup_free_ char *name = xasprintf("envhub-build-%s-%lld",
                                          catalog_instance_id(b->catalog), (long long)build_id);
    _cleanup_free_ char *dir = b->cgroups == CGROUP_V1
                                   ? xasprintf(CGROUP_ROOT "/pids/%s", name)
                                   : xasprintf(CGROUP_ROOT "/%s", name);
    _cleanup_free_ char *max = xasprintf("%s/pids.max", dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        log_warn("builder: cannot create cgroup '%s', building without a process limit: %s", dir,
                 strerror(errno));
        return NULL;
    }
    _cleanup_close_ int fd = open(max, O_WRONLY | O_CLOEXEC);
    _cleanup_free_ char *value = xasprintf("%lld", (long long)b->cfg->build_pids);
    if (fd < 0 || write(fd, value, strlen(value)) < 0) {
        log_warn("builder: cannot set '%s', building without a process limit: %s", max,
                 strerror(errno));
        rmdir(dir);
        return NULL;
    }
    return xasprintf("/%s", name);
}

/* Remove the build's cgroup from every hierarchy the engine created it in. */
static void cgroup_remove(struct builder *b, const char *parent)
{
    if (!parent)
        return;
    if (b->cgroups == CGROUP_V2) {
        _cleanup_free_ char *dir = xasprintf(CGROUP_ROOT "%s", parent);
        rmdir(dir);
        return;
    }
    DIR *d = opendir(CGROUP_ROOT);
    if (!d)
        return;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *dir = xasprintf(CGROUP_ROOT "/%s%s", de->d_name, parent);
        rmdir(dir); /* fails harmlessly where it does not exist */
    }
    closedir(d);
}

struct capture {
    struct buf out;
};

static int capture_stdout(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct capture *c = ctx;
    if (stream == ENGINE_STDOUT)
        (void)buf_append_upto(&c->out, data, len);
    return 0;
}

/* Run @script (sh -c) in the verification container; its stdout into *ret. */
static int verify_exec(struct builder *b, const char *cid, const char *script, char **ret,
                       int *ret_code, struct err *err)
{
    const char *cmd[] = {"/bin/sh", "-c", script, NULL};
    static const char *const env[] = {"HOME=/tmp", "LANG=C.UTF-8", NULL};
    struct capture cap = {.out = BUF_INIT(VERIFY_OUTPUT_MAX)};
    struct engine_exec_result res = {0};
    struct engine_exec_spec spec = {
        .cmd = cmd,
        .env = env,
        .user = "1000:1000",
        .working_dir = "/workspace",
        .output = capture_stdout,
        .output_ctx = &cap,
        .deadline_ms = time_mono_ms() + VERIFY_TIMEOUT_MS,
    };
    (void)b;
    if (engine_exec(b->engine, cid, &spec, &res, err) < 0) {
        buf_release(&cap.out);
        return -1;
    }
    if (res.timed_out) {
        buf_release(&cap.out);
        return err_set(err, ERR_TIMEOUT, "the verification run did not finish in %d s",
                       VERIFY_TIMEOUT_MS / 1000);
    }
    *ret_code = res.exit_code;
    *ret = buf_detach(&cap.out, NULL);
    return 0;
}

/* Parse "manager\tname\tversion" lines into the inventory. */
static void parse_inventory(const char *text, struct package_entry **pkgs, size_t *n)
{
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *t1 = memchr(line, '\t', len);
        const char *t2 = t1 ? memchr(t1 + 1, '\t', len - (size_t)(t1 + 1 - line)) : NULL;
        if (t1 && t2 && t1 > line && t2 > t1 + 1) {
            _cleanup_free_ char *manager = xstrndup(line, (size_t)(t1 - line));
            if (strcmp(manager, "pip") == 0 || strcmp(manager, "dpkg") == 0) {
                *pkgs = xrealloc(*pkgs, (*n + 1) * sizeof(**pkgs));
                struct package_entry *p = &(*pkgs)[(*n)++];
                p->manager = steal_ptr(manager);
                p->name = xstrndup(t1 + 1, (size_t)(t2 - t1 - 1));
                p->version = xstrndup(t2 + 1, len - (size_t)(t2 + 1 - line));
            }
        }
        if (!end)
            break;
        line = end + 1;
    }
}

/* The verification: in a container locked down like a job's, python3 runs and
 * says its version, tar is there, the user is 1000 and /workspace is
 * writable. Then the package inventory (pip and dpkg). */
static int verify_image(struct build_ctx *c, const char *image_id, struct package_entry **pkgs,
                        size_t *n_pkgs, struct err *err)
{
    struct builder *b = c->b;
    static const char *const entrypoint[] = {"sleep", NULL};
    static const char *const cmd[] = {"infinity", NULL};
    _cleanup_free_ char *tmpfs_ws = xasprintf("rw,nosuid,nodev,size=%lld,uid=1000,gid=1000",
                                              (long long)b->cfg->workspace_size);
    struct engine_tmpfs tmpfs[] = {{"/workspace", tmpfs_ws}, {"/tmp", "rw,nosuid,nodev,size=64m"}};
    struct engine_container_spec spec = {
        .image = image_id,
        .entrypoint = entrypoint,
        .cmd = cmd,
        .user = "1000:1000",
        .working_dir = "/workspace",
        .labels = b->container_labels,
        .n_labels = b->n_container_labels,
        .tmpfs = tmpfs,
        .n_tmpfs = 2,
        .memory_bytes = b->cfg->memory_limit,
        .pids_limit = b->cfg->pids_limit,
        .network_mode = "none",
        .network_disabled = true,
        .read_only_rootfs = true,
        .cap_drop_all = true,
        .no_new_privileges = true,
        .log_driver_none = true,
    };
    _cleanup_free_ char *cid = NULL;
    _cleanup_free_ char *out = NULL;
    int code = -1, rc = -1;

    build_log(c, "envhub: verifying the image in a sandbox container");
    if (engine_container_create(b->engine, &spec, &cid, err) < 0 ||
        engine_container_start(b->engine, cid, err) < 0)
        goto out;
    if (verify_exec(b, cid,
                    "python3 --version 2>&1 || { echo 'envhub: python3 does not run' >&2; exit 3; }; "
                    "command -v tar >/dev/null || { echo 'envhub: tar is missing'; exit 4; }; "
                    "[ \"$(id -u)\" = 1000 ] || { echo \"envhub: runs as uid $(id -u), not 1000\"; "
                    "exit 5; }; "
                    "touch /workspace/.envhub-verify && rm /workspace/.envhub-verify || "
                    "{ echo 'envhub: /workspace is not writable by uid 1000'; exit 6; }",
                    &out, &code, err) < 0)
        goto out;
    if (code != 0) {
        const char *msg = out && *out ? out : "the verification run failed";
        size_t len = strcspn(msg, "\n");
        err_set(err, ERR_INVALID, "verification failed (exit %d): %.*s", code, (int)len, msg);
        goto out;
    }
    out[strcspn(out, "\n")] = '\0';
    c->rec.python_found = xstrdup(out);
    build_log(c, "envhub: %s, tar present, uid 1000, /workspace writable", out);

    free(out);
    out = NULL;
    if (verify_exec(b, cid,
                    "python3 -m pip list --format=freeze --disable-pip-version-check 2>/dev/null "
                    "| sed -n 's/^\\([^=]*\\)==\\(.*\\)$/pip\\t\\1\\t\\2/p'; "
                    "dpkg-query -W -f='dpkg\\t${Package}\\t${Version}\\n' 2>/dev/null; true",
                    &out, &code, err) < 0)
        goto out;
    parse_inventory(out, pkgs, n_pkgs);
    size_t n_pip = 0;
    for (size_t i = 0; i < *n_pkgs; i++)
        n_pip += strcmp((*pkgs)[i].manager, "pip") == 0;
    build_log(c, "envhub: package inventory: %zu pip packages, %zu dpkg packages", n_pip,
              *n_pkgs - n_pip);
    rc = 0;
out:
    if (cid) {
        struct err rerr = ERR_INIT;
        if (engine_container_remove(b->engine, cid, &rerr) < 0)
            log_warn("builder: cannot remove verification container '%.12s', ignoring: %s", cid,
                     rerr.msg);
    }
    return rc;
}

/* A ready build with the same definition whose image is still there:
 * tag it for this version instead of building. 1 when reused, 0 when not. */
static int try_reuse(struct build_ctx *c, struct package_entry **pkgs, size_t *n_pkgs,
                     struct err *err)
{
    struct builder *b = c->b;
    _cleanup_(build_record_release) struct build_record prev = {0};
    struct engine_image_info info = {0};
    struct err local = ERR_INIT;

    if (catalog_build_find_ready_by_definition(b->catalog, c->rec.definition, &prev, &local) < 0)
        return 0;
    if (!prev.image_id || engine_image_inspect(b->engine, prev.image_id, &info, &local) < 0)
        return 0;
    engine_image_info_release(&info);
    if (engine_image_tag(b->engine, prev.image_id, c->rec.image, err) < 0)
        return -1;
    if (catalog_build_packages(b->catalog, prev.id, pkgs, n_pkgs, err) < 0)
        return -1;
    build_log(c, "envhub: definition unchanged (sha256 %.12s): reusing image %s of '%s' version "
              "%lld, no build needed",
              c->rec.definition, prev.image_id, prev.environment, (long long)prev.version);
    c->rec.image_id = xstrdup(prev.image_id);
    c->rec.base_image_id = prev.base_image_id ? xstrdup(prev.base_image_id) : NULL;
    c->rec.python_found = prev.python_found ? xstrdup(prev.python_found) : NULL;
    c->rec.cache_hit = true;
    return 1;
}

/* Remove the images of versions older than the one before @version: the
 * previous version stays, so jobs that resolved it just before the switch
 * still find their image. */
static void prune_old_images(struct builder *b, const char *env, int64_t version)
{
    struct build_record *builds = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;

    if (catalog_build_list(b->catalog, env, &builds, &n, &err) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (builds[i].version >= version - 1 || builds[i].status != BUILD_READY)
            continue;
        if (engine_image_remove(b->engine, builds[i].image, false, &err) < 0)
            log_debug("builder: image '%s' stays: %s", builds[i].image, err.msg);
    }
    build_records_free(builds, n);
}

static int build_image(struct build_ctx *c, struct package_entry **pkgs, size_t *n_pkgs,
                       struct err *err)
{
    struct builder *b = c->b;
    struct engine_image_info base = {0};
    _cleanup_(buf_release) struct buf context = BUF_INIT(BUF_UNLIMITED);
    _cleanup_free_ char *dockerfile = NULL, *cgroup = NULL, *image_id = NULL;
    int rc = -1;

    if (engine_image_inspect(b->engine, c->rec.base_image, &base, err) < 0) {
        if (err->code != ERR_NOT_FOUND)
            return -1;
        build_log(c, "envhub: base image '%s' is not in the engine; pulling it",
                  c->rec.base_image);
        if (engine_image_pull(b->engine, c->rec.base_image, on_build_line, c, err) < 0 ||
            engine_image_inspect(b->engine, c->rec.base_image, &base, err) < 0)
            return err_set(err, ERR_INVALID,
                           "base image '%s' is not in the engine and cannot be pulled: %s",
                           c->rec.base_image, err->msg);
    }
    c->rec.base_image_id = steal_ptr(base.id);
    engine_image_info_release(&base);
    build_log(c, "envhub: base image %s is %s", c->rec.base_image, c->rec.base_image_id);

    dockerfile = builder_dockerfile(c->rec.base_image, c->rec.environment, c->rec.version,
                                    c->rec.definition);
    if (builder_context_tar(dockerfile, c->rec.setup_script, &context, err) < 0)
        return -1;
    cgroup = cgroup_create(b, c->rec.id);
    struct engine_build_spec spec = {
        .context = context.data,
        .context_len = context.len,
        .tag = c->rec.image,
        .labels = b->image_labels,
        .n_labels = b->n_image_labels,
        .memory_bytes = b->cfg->build_memory,
        .nano_cpus = b->cfg->build_cpu_millis * 1000000,
        .cgroup_parent = cgroup,
        .deadline_ms = time_mono_ms() + b->cfg->build_timeout * 1000,
        .on_line = on_build_line,
        .cancelled = engine_build_cancelled,
        .ctx = c,
    };
    build_log(c, "envhub: building %s (memory %lld bytes, %.2f CPUs, %s, timeout %lld s)",
              c->rec.image, (long long)b->cfg->build_memory,
              (double)b->cfg->build_cpu_millis / 1000,
              cgroup ? "process limit set" : "no process limit", (long long)b->cfg->build_timeout);
    if (engine_image_build(b->engine, &spec, &image_id, err) < 0) {
        /* the engine's message repeats the whole RUN line; the trap names the script's */
        if (err->code == ERR_INVALID && c->failed_line[0])
            err_set(err, ERR_INVALID, "%s", c->failed_line);
        if (err->code == ERR_TIMEOUT)
            err_set(err, ERR_TIMEOUT, "the build passed its time limit of %lld s "
                                      "(ENVHUB_BUILD_TIMEOUT)",
                    (long long)b->cfg->build_timeout);
        goto out;
    }
    c->rec.image_id = steal_ptr(image_id);
    if (verify_image(c, c->rec.image_id, pkgs, n_pkgs, err) < 0) {
        struct err rerr = ERR_INIT;
        engine_image_remove(b->engine, c->rec.image, true, &rerr);
        goto out;
    }
    rc = 0;
out:
    cgroup_remove(b, cgroup);
    return rc;
}

static void run_build(struct builder *b, int64_t id)
{
    struct build_ctx c = {.b = b};
    struct package_entry *pkgs = NULL;
    size_t n_pkgs = 0;
    struct err err = ERR_INIT;
    int64_t t0 = time_mono_ms();

    if (catalog_build_get_by_id(b->catalog, id, &c.rec, &err) < 0) {
        log_warn("builder: build %lld is gone, skipping: %s", (long long)id, err.msg);
        return;
    }
    if (c.rec.status != BUILD_QUEUED && c.rec.status != BUILD_BUILDING)
        goto done;
    if (catalog_build_start(b->catalog, id, time_now_ms(), &err) < 0) {
        log_warn("builder: cannot start build %lld: %s", (long long)id, err.msg);
        goto done;
    }
    log_info("builder: build %lld of '%s' version %lld started", (long long)id,
             c.rec.environment, (long long)c.rec.version);
    build_log(&c, "envhub: build of '%s' version %lld started (definition %.12s)",
              c.rec.environment, (long long)c.rec.version, c.rec.definition);

    int reused = try_reuse(&c, &pkgs, &n_pkgs, &err);
    if (reused < 0 || (reused == 0 && build_image(&c, &pkgs, &n_pkgs, &err) < 0)) {
        if (build_cancelled(b, id)) {
            bool stopping;
            pthread_mutex_lock(&b->lock);
            stopping = b->stopping;
            pthread_mutex_unlock(&b->lock);
            if (stopping) {
                /* shutdown: the next start builds it again */
                build_log(&c, "envhub: stopping; this build will start again with envhub");
                catalog_build_requeue(b->catalog, id, &err);
                goto done;
            }
            err_set(&err, ERR_CANCELLED, "the build was cancelled");
        }
        enum build_status st = err.code == ERR_CANCELLED ? BUILD_CANCELLED : BUILD_FAILED;
        build_log(&c, "envhub: build %s: %s", build_status_name(st), err.msg);
        struct err ferr = ERR_INIT;
        if (catalog_build_fail(b->catalog, id, st, err.msg, time_now_ms(), &ferr) < 0)
            log_warn("builder: cannot record the end of build %lld: %s", (long long)id,
                     ferr.msg);
        count_build(b, st, time_mono_ms() - t0);
        log_info("builder: build %lld of '%s' %s after %lld ms: %s", (long long)id,
                 c.rec.environment, build_status_name(st), (long long)(time_mono_ms() - t0),
                 err.msg);
        goto done;
    }

    c.rec.finished_at = time_now_ms();
    c.rec.status = BUILD_READY;
    build_log(&c, "envhub: version %lld is ready (%s) after %.1f s", (long long)c.rec.version,
              c.rec.image_id, (double)(time_mono_ms() - t0) / 1000);
    if (catalog_build_succeed(b->catalog, &c.rec, pkgs, n_pkgs, &err) < 0) {
        /* deleted meanwhile: the image must not outlive its environment */
        log_warn("builder: cannot record build %lld as ready, removing its image: %s",
                 (long long)id, err.msg);
        struct err rerr = ERR_INIT;
        engine_image_remove(b->engine, c.rec.image, true, &rerr);
        goto done;
    }
    log_info("builder: build %lld of '%s' version %lld ready in %lld ms%s", (long long)id,
             c.rec.environment, (long long)c.rec.version, (long long)(time_mono_ms() - t0),
             c.rec.cache_hit ? " (image reused)" : "");
    count_build(b, BUILD_READY, time_mono_ms() - t0);
    notify_listener(b);
    prune_old_images(b, c.rec.environment, c.rec.version);
done:
    package_entries_free(pkgs, n_pkgs);
    build_record_release(&c.rec);
    progress_signal(b);
}

static void *worker_main(void *arg)
{
    struct builder *b = arg;

    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->head && !b->stopping)
            pthread_cond_wait(&b->work, &b->lock);
        if (b->stopping)
            break;
        struct queued *q = b->head;
        b->head = q->next;
        if (!b->head)
            b->tail = NULL;
        struct active a = {.build_id = q->build_id, .next = b->active};
        b->active = &a;
        free(q);
        pthread_mutex_unlock(&b->lock);

        run_build(b, a.build_id);

        pthread_mutex_lock(&b->lock);
        for (struct active **p = &b->active; *p; p = &(*p)->next)
            if (*p == &a) {
                *p = a.next;
                break;
            }
        b->generation++;
        pthread_cond_broadcast(&b->progress);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* ---- API ---- */

static int validate(struct builder *b, const char *name, const char *base_image,
                    const char *script, const char *python_version, struct err *err)
{
    const char *danger;

    if (name && !builder_name_valid(name))
        return err_set(err, ERR_INVALID,
                       "name: '%.60s' is not a valid environment name (1 to 50 letters, digits, "
                       "'-' and '_', starting with a letter or digit)",
                       name);
    if (!builder_image_ref_valid(base_image))
        return err_set(err, ERR_INVALID, "base_image: '%.100s' is not a valid image reference",
                       base_image);
    size_t len = strlen(script);
    if (len == 0 || len > (size_t)b->cfg->max_script_length)
        return err_set(err, ERR_INVALID,
                       "setup_script: %zu characters; it must have 1 to %lld "
                       "(ENVHUB_MAX_SCRIPT_LENGTH)",
                       len, (long long)b->cfg->max_script_length);
    if (!utf8_valid(script, len))
        return err_set(err, ERR_INVALID, "setup_script: not valid UTF-8");
    if ((danger = builder_script_danger(script)))
        return err_set(err, ERR_INVALID, "setup_script: contains a dangerous command: %s",
                       danger);
    if (strlen(python_version) == 0 || strlen(python_version) > 16)
        return err_set(err, ERR_INVALID, "python_version: '%.20s' must be like \"3.11\"",
                       python_version);
    for (const char *p = python_version; *p; p++)
        if (!(*p >= '0' && *p <= '9') && *p != '.')
            return err_set(err, ERR_INVALID, "python_version: '%.20s' must be like \"3.11\"",
                           python_version);
    return 0;
}

int builder_create(struct builder *b, const struct env_definition *def, struct env_record *ret,
                   struct err *err)
{
    const char *base = def->base_image ? def->base_image : b->cfg->default_image;
    const char *py = def->python_version ? def->python_version : "3.11";
    char definition[65];
    int64_t now = time_now_ms();

    if (validate(b, def->name, base, def->setup_script, py, err) < 0)
        return -1;
    builder_definition_hash(base, py, def->setup_script, definition);
    _cleanup_free_ char *image = builder_image_ref(def->name, 1);
    struct env_record env = {
        .name = (char *)def->name,
        .description = (char *)(def->description ? def->description : ""),
        .base_image = (char *)base,
        .setup_script = (char *)def->setup_script,
        .python_version = (char *)py,
        .status = ENV_BUILDING,
        .created_at = now,
        .updated_at = now,
        .created_by = (char *)(def->created_by ? def->created_by : ""),
        .policy = (char *)(def->policy ? def->policy : "{}"),
    };
    struct build_record build = {
        .environment = (char *)def->name,
        .status = BUILD_QUEUED,
        .base_image = (char *)base,
        .setup_script = (char *)def->setup_script,
        .python_version = (char *)py,
        .definition = definition,
        .image = image,
        .queued_at = now,
        .created_by = env.created_by,
        .policy = env.policy,
    };
    if (catalog_env_create(b->catalog, &env, &build, err) < 0) {
        if (err->code == ERR_CONFLICT)
            return err_set(err, ERR_CONFLICT, "环境 '%s' 已存在", def->name);
        return -1;
    }
    queue_push(b, build.id);
    log_info("builder: environment '%s' created, build %lld queued", def->name,
             (long long)build.id);
    return catalog_env_get(b->catalog, def->name, ret, err);
}

int builder_rebuild(struct builder *b, const char *name, const char *setup_script,
                    const char *base_image, const char *policy, const char *created_by,
                    struct build_record *ret, struct err *err)
{
    _cleanup_(env_record_release) struct env_record env = {0};
    char definition[65];

    if (catalog_env_get(b->catalog, name, &env, err) < 0) {
        if (err->code == ERR_NOT_FOUND)
            return err_set(err, ERR_NOT_FOUND, "环境 '%s' 不存在", name);
        return -1;
    }
    const char *script = setup_script ? setup_script : env.setup_script;
    const char *base = base_image ? base_image : env.base_image;
    if (validate(b, NULL, base, script, env.python_version, err) < 0)
        return -1;
    builder_definition_hash(base, env.python_version, script, definition);
    struct build_record build = {
        .environment = (char *)name,
        .status = BUILD_QUEUED,
        .base_image = (char *)base,
        .setup_script = (char *)script,
        .python_version = env.python_version,
        .definition = definition,
        .queued_at = time_now_ms(),
        .created_by = (char *)(created_by ? created_by : ""),
        .policy = (char *)(policy ? policy : env.policy ? env.policy : "{}"),
    };
    /* the version is assigned by the catalog; the tag follows it */
    int64_t next = (env.latest_version > env.version ? env.latest_version : env.version) + 1;
    _cleanup_free_ char *image = builder_image_ref(name, next);
    build.image = image;
    if (catalog_env_queue_build(b->catalog, &build, err) < 0)
        return -1;
    if (build.version != next) {
        /* a concurrent rebuild took that number: retag this one */
        struct err ierr = ERR_INIT;
        err_set(&ierr, ERR_INTERNAL, "version race on '%s'", name);
        log_warn("builder: %s (expected %lld, got %lld)", ierr.msg, (long long)next,
                 (long long)build.version);
    }
    queue_push(b, build.id);
    log_info("builder: rebuild of '%s' queued as version %lld (build %lld)", name,
             (long long)build.version, (long long)build.id);
    return catalog_build_get_by_id(b->catalog, build.id, ret, err);
}

int builder_delete(struct builder *b, const char *name, struct err *err)
{
    struct build_record *builds = NULL;
    size_t n = 0;
    int64_t deadline = time_mono_ms() + 60000;

    if (catalog_build_list(b->catalog, name, &builds, &n, err) < 0)
        return -1;
    _cleanup_(env_record_release) struct env_record env = {0};
    if (catalog_env_get(b->catalog, name, &env, err) < 0) {
        build_records_free(builds, n);
        if (err->code == ERR_NOT_FOUND)
            return err_set(err, ERR_NOT_FOUND, "环境 '%s' 不存在", name);
        return -1;
    }

    /* Cancel its running build and wait for the worker to let go of it. */
    pthread_mutex_lock(&b->lock);
    for (;;) {
        bool busy = false;
        for (struct active *a = b->active; a; a = a->next)
            for (size_t i = 0; i < n; i++)
                if (a->build_id == builds[i].id) {
                    a->cancel = true;
                    busy = true;
                }
        if (!busy || time_mono_ms() >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&b->progress, &b->lock, &ts);
    }
    /* queued ones are skipped by the worker once their rows are gone */
    pthread_mutex_unlock(&b->lock);

    if (catalog_env_delete(b->catalog, name, err) < 0) {
        build_records_free(builds, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct err rerr = ERR_INIT;
        if (engine_image_remove(b->engine, builds[i].image, true, &rerr) < 0)
            log_warn("builder: cannot remove image '%s' of deleted '%s', ignoring: %s",
                     builds[i].image, name, rerr.msg);
    }
    notify_listener(b);
    log_info("builder: environment '%s' deleted with %zu builds", name, n);
    build_records_free(builds, n);
    progress_signal(b);
    return 0;
}

bool builder_wait(struct builder *b, int64_t build_id, int64_t after, int64_t deadline_ms)
{
    for (;;) {
        pthread_mutex_lock(&b->lock);
        int64_t gen = b->generation;
        pthread_mutex_unlock(&b->lock);

        /* read after taking the generation: nothing can slip in between */
        struct log_line *lines = NULL;
        size_t n = 0;
        struct build_record rec = {0};
        struct err err = ERR_INIT;
        bool ready = false;
        if (catalog_build_log_read(b->catalog, build_id, after, 1, &lines, &n, &err) < 0 || n > 0)
            ready = true;
        log_lines_free(lines, n);
        if (!ready) {
            if (catalog_build_get_by_id(b->catalog, build_id, &rec, &err) < 0 ||
                (rec.status != BUILD_QUEUED && rec.status != BUILD_BUILDING))
                ready = true;
            build_record_release(&rec);
        }
        if (ready)
            return true;
        if (time_mono_ms() >= deadline_ms)
            return false;

        pthread_mutex_lock(&b->lock);
        while (b->generation == gen && !b->stopping && time_mono_ms() < deadline_ms) {
            int64_t left = deadline_ms - time_mono_ms();
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += left / 1000;
            ts.tv_nsec += (left % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&b->progress, &b->lock, &ts);
        }
        bool stopping = b->stopping;
        pthread_mutex_unlock(&b->lock);
        if (stopping)
            return true;
    }
}

/* ---- open / close ---- */

static int setup_labels(struct builder *b, struct err *err)
{
    b->image_labels[b->n_image_labels++] = (struct engine_label){"envhub.managed", "1"};
    b->container_labels[b->n_container_labels++] = (struct engine_label){"envhub.managed", "1"};
    b->container_labels[b->n_container_labels++] =
        (struct engine_label){"envhub.instance", catalog_instance_id(b->catalog)};
    b->label_storage = xstrdup(b->cfg->labels);
    char *save = NULL;
    for (char *tok = strtok_r(b->label_storage, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok)
            return err_set(err, ERR_INVALID, "ENVHUB_LABELS entry '%s' must be key=value", tok);
        if (b->n_container_labels >= MAX_LABELS)
            return err_set(err, ERR_INVALID, "ENVHUB_LABELS has too many labels");
        *eq = '\0';
        b->image_labels[b->n_image_labels++] = (struct engine_label){tok, eq + 1};
        b->container_labels[b->n_container_labels++] = (struct engine_label){tok, eq + 1};
    }
    return 0;
}

/* Remove the build cgroups a killed server of this catalog left behind. */
static void cgroup_remove_leftovers(struct builder *b)
{
    _cleanup_free_ char *prefix = xasprintf("envhub-build-%s-", catalog_instance_id(b->catalog));
    size_t plen = strlen(prefix);
    DIR *root = opendir(CGROUP_ROOT);

    if (!root)
        return;
    for (struct dirent *h; (h = readdir(root));) {
        if (h->d_name[0] == '.')
            continue;
        /* v1: one folder per controller; v2: the build cgroups sit at the root */
        _cleanup_free_ char *dir = b->cgroups == CGROUP_V2 ? xstrdup(CGROUP_ROOT)
                                                           : xasprintf(CGROUP_ROOT "/%s", h->d_name);
        if (b->cgroups == CGROUP_V2 && strncmp(h->d_name, prefix, plen) == 0) {
            _cleanup_free_ char *path = xasprintf("%s/%s", dir, h->d_name);
            rmdir(path);
            continue;
        }
        if (b->cgroups != CGROUP_V1)
            continue;
        DIR *d = opendir(dir);
        if (!d)
            continue;
        for (struct dirent *e; (e = readdir(d));)
            if (strncmp(e->d_name, prefix, plen) == 0) {
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, e->d_name);
                rmdir(path);
            }
        closedir(d);
    }
    closedir(root);
}

/* Process limits for builds need a local engine using cgroupfs and a
 * writable cgroup tree; otherwise builds run without one (said once). */
static void setup_cgroups(struct builder *b)
{
    struct engine_info info;
    struct err err = ERR_INIT;

    if (engine_info(b->engine, &info, &err) < 0) {
        log_warn("builder: builds run without a process limit: %s", err.msg);
        return;
    }
    if (strcmp(info.cgroup_driver, "cgroupfs") != 0) {
        log_warn("builder: builds run without a process limit: the engine's cgroup driver is "
                 "'%s', not cgroupfs",
                 info.cgroup_driver);
        return;
    }
    if (access(CGROUP_ROOT "/pids", W_OK) == 0)
        b->cgroups = CGROUP_V1;
    else if (access(CGROUP_ROOT "/cgroup.subtree_control", W_OK) == 0)
        b->cgroups = CGROUP_V2;
    else
        log_warn("builder: builds run without a process limit: %s is not writable here",
                 CGROUP_ROOT);
    cgroup_remove_leftovers(b);
}

int builder_open(const struct config *cfg, struct engine *e, struct catalog *cat,
                 struct builder **ret, struct err *err)
{
    struct builder *b = xcalloc(1, sizeof(*b));
    struct build_record *unfinished = NULL;
    size_t n = 0;

    b->cfg = cfg;
    b->engine = e;
    b->catalog = cat;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->progress, NULL);
    if (setup_labels(b, err) < 0) {
        builder_close(b);
        return -1;
    }
    setup_cgroups(b);

    /* Builds a stop cut off go back to the queue, oldest first. */
    if (catalog_build_list_unfinished(cat, &unfinished, &n, err) < 0) {
        builder_close(b);
        return err_prefix(err, "cannot read unfinished builds");
    }
    for (size_t i = 0; i < n; i++) {
        struct err rerr = ERR_INIT;
        if (catalog_build_requeue(cat, unfinished[i].id, &rerr) < 0) {
            log_warn("builder: cannot requeue build %lld: %s", (long long)unfinished[i].id,
                     rerr.msg);
            continue;
        }
        catalog_build_log_append(cat, unfinished[i].id, time_now_ms(),
                                 "envhub: restarted; this build is queued again", NULL, &rerr);
        queue_push(b, unfinished[i].id);
    }
    if (n)
        log_info("builder: %zu builds cut off by the last stop are queued again", n);
    build_records_free(unfinished, n);

    b->workers = xcalloc((size_t)cfg->build_concurrency, sizeof(pthread_t));
    for (int64_t i = 0; i < cfg->build_concurrency; i++) {
        if (pthread_create(&b->workers[i], NULL, worker_main, b) != 0) {
            builder_close(b);
            return err_set(err, ERR_INTERNAL, "cannot start build worker %lld", (long long)i);
        }
        b->n_workers++;
    }
    *ret = b;
    return 0;
}

void builder_shutdown(struct builder *b)
{
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    pthread_cond_broadcast(&b->work);
    pthread_cond_broadcast(&b->progress);
    pthread_mutex_unlock(&b->lock);
}

void builder_close(struct builder *b)
{
    if (!b)
        return;
    builder_shutdown(b);
    for (size_t i = 0; i < b->n_workers; i++)
        pthread_join(b->workers[i], NULL);
    free(b->workers);
    while (b->head) {
        struct queued *q = b->head;
        b->head = q->next;
        free(q);
    }
    pthread_cond_destroy(&b->progress);
    pthread_cond_destroy(&b->work);
    pthread_mutex_destroy(&b->lock);
    free(b->label_storage);
    free(b);
}

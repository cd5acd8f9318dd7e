/* builder/builder.c - the build queue and its workers.
 *
 * Invariants: a build is in the catalog before it is queued; each worker
 * owns one build at a time and finishes it in the catalog (ready, failed or
 * cancelled) on every path, except at shutdown, when it puts it back to
 * queued for the next start. Every log line is in the catalog before
 * watchers are woken, so a watcher that reads the catalog after waking never
 * misses a line. */
#include "builder/builder.h"
#include "builder/builder_internal.h"

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

#define VERIFY_OUTPUT_MAX (8 * 1024 * 1024)
#define VERIFY_TIMEOUT_MS 120000
#define CGROUP_ROOT "/sys/fs/cgroup"
#define ACCEPT_OUTPUT_MAX (1024 * 1024)
#define ACCEPT_LOG_LINES 2000

static void count_build(struct builder *b, enum build_status st, int64_t ms)
{
    pthread_mutex_lock(&b->lock);
    b->finished[st]++;
    b->seconds_sum += (double)ms / 1000;
    b->seconds_count++;
    pthread_mutex_unlock(&b->lock);
}

void builder_metrics(struct builder *b, struct builder_metrics *ret)
{
    memset(ret, 0, sizeof(*ret));
    pthread_mutex_lock(&b->lock);
    for (struct queued *q = b->head; q; q = q->next)
        ret->queued++;
    for (struct active *a = b->active; a; a = a->next)
        ret->running++;
    memcpy(ret->finished, b->finished, sizeof(ret->finished));
    ret->seconds_sum = b->seconds_sum;
    ret->seconds_count = b->seconds_count;
    pthread_mutex_unlock(&b->lock);
}

void builder_notify_listener(struct builder *b)
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

static int build_log(struct build_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

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
    _cleanup_free_ char *name =
        xasprintf("envhub-build-%s-%lld", catalog_instance_id(b->catalog), (long long)build_id);
    _cleanup_free_ char *dir = b->cgroups == CGROUP_V1 ? xasprintf(CGROUP_ROOT "/pids/%s", name)
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
    struct sandbox_limits limits;
    struct sandbox_spec sb;

    /* the server's job limits, never a network */
    sandbox_limits_default(b->cfg, &limits);
    limits.network = false;
    sandbox_spec_fill(b->cfg, image_id, &limits, b->container_labels, SANDBOX_VERIFICATION, &sb);
    _cleanup_free_ char *cid = NULL;
    _cleanup_free_ char *out = NULL;
    int code = -1, rc = -1;

    build_log(c, "envhub: verifying the image in a sandbox container");
    if (engine_container_create(b->engine, &sb.spec, &cid, err) < 0 ||
        engine_container_start(b->engine, cid, err) < 0)
        goto out;
    if (verify_exec(
            b, cid,
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

/* ---- the acceptance check ---- */

/* The default acceptance check: import every distribution named in argv
 * (those the setup script installed), each through the top-level modules
 * importlib.metadata maps it to (top_level.txt or its files), else its name
 * lower-cased with '-' and '.' as '_'; a distribution without an importable
 * module is skipped. One line per distribution: "ok|skip|fail\tDIST\t...". */
static const char import_check_py[] =
    "import importlib, importlib.util, os, re, sys\n"
    "def norm(n):\n"
    "    return re.sub(r'[-_.]+', '-', n).lower()\n"
    "mods = {}\n"
    "try:\n"
    "    import importlib.metadata as md\n"
    "    for mod, dists in md.packages_distributions().items():\n"
    "        for d in dists:\n"
    "            mods.setdefault(norm(d), set()).add(mod)\n"
    "except Exception:\n"
    "    pass\n"
    "failed = 0\n"
    "for dist in sys.argv[1:]:\n"
    "    cands = sorted(m for m in mods.get(norm(dist), ()) if m.isidentifier())\n"
    "    if not cands:\n"
    "        cands = [re.sub(r'[-.]', '_', dist.lower())]\n"
    "    public = [m for m in cands if not m.startswith('_')] or cands\n"
    "    found = []\n"
    "    for m in public:\n"
    "        try:\n"
    "            if importlib.util.find_spec(m) is not None:\n"
    "                found.append(m)\n"
    "        except Exception:\n"
    "            found.append(m)\n"
    "    if not found:\n"
    "        print('skip\\t%s\\t%s' % (dist, ','.join(public)), flush=True)\n"
    "        continue\n"
    "    for m in found:\n"
    "        try:\n"
    "            importlib.import_module(m)\n"
    "        except BaseException as e:\n"
    "            msg = ('%s: %s' % (type(e).__name__, e)).replace('\\n', ' ')[:300]\n"
    "            print('fail\\t%s\\t%s\\t%s' % (dist, m, msg), flush=True)\n"
    "            failed += 1\n"
    "            break\n"
    "    else:\n"
    "        print('ok\\t%s\\t%s' % (dist, ','.join(found)), flush=True)\n"
    "sys.stdout.flush()\n"
    "os._exit(1 if failed else 0)\n";

/* stdout and stderr into one text, a whole line at a time: a line written
 * in pieces (print() writes its text, then the newline) is not cut by the
 * other stream. */
struct capture_lines {
    struct buf out;
    struct buf partial[2]; /* stdout's, stderr's unfinished line */
    char last_err[160];    /* the last line of stderr ("" when none) */
};

static int capture_both(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct capture_lines *c = ctx;
    if (stream != ENGINE_STDOUT && stream != ENGINE_STDERR)
        return 0;
    struct buf *part = &c->partial[stream == ENGINE_STDERR];
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) + 1 : len;
        (void)buf_append_upto(part, data, n);
        if (nl) {
            (void)buf_append_upto(&c->out, part->data, part->len);
            if (stream == ENGINE_STDERR && part->len > 1)
                snprintf(c->last_err, sizeof(c->last_err), "%.*s", (int)(part->len - 1),
                         part->data);
            buf_reset(part);
        }
        data += n;
        len -= n;
    }
    return 0;
}

static void capture_lines_finish(struct capture_lines *c)
{
    if (c->partial[1].len)
        snprintf(c->last_err, sizeof(c->last_err), "%.*s", (int)c->partial[1].len,
                 c->partial[1].data);
    for (int i = 0; i < 2; i++) {
        if (c->partial[i].len) {
            (void)buf_append_upto(&c->out, c->partial[i].data, c->partial[i].len);
            (void)buf_append_upto(&c->out, "\n", 1);
        }
        buf_release(&c->partial[i]);
    }
}

/* The limits of version @policy (the server's job limits without one); an
 * acceptance check may run up to their timeout_max. */
static int accept_limits(struct builder *b, const char *policy, struct sandbox_limits *ret,
                         struct err *err)
{
    if (sandbox_policy_parse(b->cfg, policy, ret, NULL, err) < 0)
        return err_prefix(err, "the version's policy");
    return 0;
}

/* Start a sandbox container of @image made like a job's, with limits @l. */
static int accept_container(struct builder *b, const char *image, const struct sandbox_limits *l,
                            char **ret_cid, struct err *err)
{
    struct sandbox_spec sb;

    sandbox_spec_fill(b->cfg, image, l, b->container_labels, SANDBOX_ACCEPTANCE, &sb);
    if (engine_container_create(b->engine, &sb.spec, ret_cid, err) < 0)
        return -1;
    return engine_container_start(b->engine, *ret_cid, err);
}

/* Write @program into the workspace and run it with python3 (-I when
 * @isolated: as envhub's agent runs) and @args; stdout and stderr
 * (together, capped) into *ret_out. */
static int accept_run(struct builder *b, const char *cid, const char *program, bool isolated,
                      const char *const *args, size_t n_args, int64_t timeout_s, char **ret_out,
                      char ret_last_err[160], int *ret_code, bool *ret_timed_out, struct err *err)
{
    /* unbuffered: stdout and stderr reach the build log in the order written */
    static const char *const env[] = {"HOME=/tmp", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1",
                                      "PYTHONUNBUFFERED=1", NULL};
    _cleanup_free_ char *path = xasprintf("%s/.envhub_acceptance.py", b->cfg->work_dir);
    const char *write_cmd[] = {"/bin/sh", "-c", "cat > \"$1\"", "sh", path, NULL};
    struct engine_exec_result res = {0};
    struct capture_lines cap = {
        .out = BUF_INIT(ACCEPT_OUTPUT_MAX),
        .partial = {BUF_INIT(ACCEPT_OUTPUT_MAX), BUF_INIT(ACCEPT_OUTPUT_MAX)}};
    struct engine_exec_spec spec = {
        .cmd = write_cmd,
        .env = env,
        .user = "1000:1000",
        .working_dir = b->cfg->work_dir,
        .stdin_data = program,
        .stdin_len = strlen(program),
        .output = capture_both,
        .output_ctx = &cap,
        .deadline_ms = time_mono_ms() + VERIFY_TIMEOUT_MS,
    };
    int rc = engine_exec(b->engine, cid, &spec, &res, err);
    capture_lines_finish(&cap);
    if (rc == 0 && res.exit_code != 0)
        rc =
            err_set(err, ERR_INVALID, "cannot write the check into the workspace (exit %d): %.120s",
                    res.exit_code, buf_str(&cap.out));
    if (rc < 0) {
        buf_release(&cap.out);
        return -1;
    }
    buf_reset(&cap.out);

    const char **cmd = xcalloc(n_args + 4, sizeof(*cmd));
    size_t n = 0;
    cmd[n++] = "python3";
    if (isolated)
        cmd[n++] = "-I";
    cmd[n++] = path;
    for (size_t i = 0; i < n_args; i++)
        cmd[n++] = args[i];
    spec.cmd = cmd;
    spec.stdin_data = NULL;
    spec.stdin_len = 0;
    spec.deadline_ms = time_mono_ms() + timeout_s * 1000;
    memset(&res, 0, sizeof(res));
    rc = engine_exec(b->engine, cid, &spec, &res, err);
    capture_lines_finish(&cap);
    free(cmd);
    if (rc < 0) {
        buf_release(&cap.out);
        return -1;
    }
    *ret_code = res.exit_code;
    *ret_timed_out = res.timed_out;
    snprintf(ret_last_err, 160, "%s", cap.last_err);
    *ret_out = buf_detach(&cap.out, NULL);
    if (!*ret_out)
        *ret_out = xstrdup("");
    return 0;
}

/* Copy the check's output into the build log, @prefix before each line. */
static void accept_log_output(struct build_ctx *c, const char *prefix, const char *out)
{
    size_t lines = 0, dropped = 0;
    for (const char *p = out; *p;) {
        size_t len = strcspn(p, "\n");
        if (lines < ACCEPT_LOG_LINES) {
            build_log(c, "%s%.*s", prefix, (int)len, p);
            lines++;
        } else {
            dropped++;
        }
        p += len;
        if (*p == '\n')
            p++;
    }
    if (dropped)
        build_log(c, "envhub: ... %zu more lines of output not shown", dropped);
}

/* The last non-empty line of @out (borrowed into @buf). */
static const char *last_line(const char *out, char *buf, size_t size)
{
    const char *end = out + strlen(out);
    while (end > out && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        end--;
    const char *start = end;
    while (start > out && start[-1] != '\n')
        start--;
    snprintf(buf, size, "%.*s", (int)(end - start), start);
    return buf;
}

/* The base image's pip packages ("name==version" lines), listed once per
 * image id in a locked-down container of it; NULL when it cannot be run. */
static char *base_pip_freeze(struct build_ctx *c, const char *base_id)
{
    struct builder *b = c->b;
    char *found = NULL;

    pthread_mutex_lock(&b->lock);
    for (struct base_pip *p = b->base_pips; p && !found; p = p->next)
        if (strcmp(p->image_id, base_id) == 0)
            found = xstrdup(p->freeze);
    pthread_mutex_unlock(&b->lock);
    if (found)
        return found;

    struct sandbox_limits sb;
    sandbox_limits_default(b->cfg, &sb); /* the server's job limits, no network */
    sb.network = false;
    _cleanup_free_ char *cid = NULL;
    _cleanup_free_ char *out = NULL;
    struct err err = ERR_INIT;
    int code = -1;
    if (accept_container(b, base_id, &sb, &cid, &err) == 0)
        verify_exec(b, cid,
                    "python3 -m pip list --format=freeze --disable-pip-version-check "
                    "2>/dev/null; true",
                    &out, &code, &err);
    if (cid) {
        struct err rerr = ERR_INIT;
        engine_container_remove(b->engine, cid, &rerr);
    }
    if (!out || code != 0) {
        build_log(c,
                  "envhub: cannot list the pip packages of base image %s (%s): every pip "
                  "package is checked",
                  base_id, err.msg[0] ? err.msg : "no answer");
        return NULL;
    }
    struct base_pip *p = xcalloc(1, sizeof(*p));
    p->image_id = xstrdup(base_id);
    p->freeze = xstrdup(out);
    pthread_mutex_lock(&b->lock);
    p->next = b->base_pips;
    b->base_pips = p;
    pthread_mutex_unlock(&b->lock);
    return steal_ptr(out);
}

/* Is "name==version" a line of @freeze? */
static bool freeze_has(const char *freeze, const char *name, const char *version)
{
    if (!freeze)
        return false;
    _cleanup_free_ char *line = xasprintf("%s==%s", name, version);
    size_t n = strlen(line);
    for (const char *p = freeze; *p;) {
        size_t len = strcspn(p, "\r\n");
        if (len == n && strncmp(p, line, n) == 0)
            return true;
        p += len;
        while (*p == '\r' || *p == '\n')
            p++;
    }
    return false;
}

/* The preload check: import each module of policy.preload as the agent
 * does (python3 -I), one line each: "ok\tMODULE\tMS" or "fail\tMODULE\tWHY". */
static const char preload_check_py[] =
    "import importlib, os, sys, time\n"
    "failed = 0\n"
    "for m in sys.argv[1:]:\n"
    "    t = time.monotonic()\n"
    "    try:\n"
    "        importlib.import_module(m)\n"
    "    except BaseException as e:\n"
    "        msg = ('%s: %s' % (type(e).__name__, e)).replace('\\n', ' ')[:300]\n"
    "        print('fail\\t%s\\t%s' % (m, msg), flush=True)\n"
    "        failed += 1\n"
    "    else:\n"
    "        print('ok\\t%s\\t%d' % (m, (time.monotonic() - t) * 1000), flush=True)\n"
    "sys.stdout.flush()\n"
    "os._exit(1 if failed else 0)\n";

/* Every module of policy.preload (@sb) imports in the version's sandbox
 * @cid, or ERR_INVALID naming the first that does not. */
static int preload_check(struct build_ctx *c, const char *cid, const struct sandbox_limits *sb,
                         struct err *err)
{
    const char *mods[SANDBOX_PRELOAD_MAX];
    _cleanup_free_ char *out = NULL;
    char last_err[160] = "", first_fail[ERR_MSG_MAX] = "";
    int code = -1;
    bool timed_out = false;
    size_t failed = 0;

    for (size_t i = 0; i < sb->n_preload; i++)
        mods[i] = sb->preload[i];
    build_log(c,
              "envhub: preload check: importing the %zu modules of policy.preload as warm "
              "containers will (python3 -I)",
              sb->n_preload);
    if (accept_run(c->b, cid, preload_check_py, true, mods, sb->n_preload, sb->timeout_max, &out,
                   last_err, &code, &timed_out, err) < 0)
        return err_prefix(err, "the preload check could not run");
    for (char *line = out; *line;) {
        size_t len = strcspn(line, "\n");
        char save = line[len];
        line[len] = '\0';
        char *mod = strchr(line, '\t'), *rest = mod ? strchr(mod + 1, '\t') : NULL;
        if (mod && rest && (strncmp(line, "ok\t", 3) == 0 || strncmp(line, "fail\t", 5) == 0)) {
            *rest++ = '\0';
            mod++;
            if (line[0] == 'o') {
                build_log(c, "envhub: preload check: %s imported in %s ms", mod, rest);
            } else {
                build_log(c, "envhub: preload check: %s does not import: %s", mod, rest);
                if (!failed++)
                    snprintf(first_fail, sizeof(first_fail), "'%.100s' does not import (%.120s)",
                             mod, rest);
            }
        } else if (*line) {
            build_log(c, "preload| %s", line);
        }
        line[len] = save;
        line += len + (save == '\n');
    }
    if (timed_out)
        return err_set(err, ERR_INVALID, "policy.preload: the imports did not finish within %lld s",
                       (long long)sb->timeout_max);
    if (failed)
        return err_set(err, ERR_INVALID, "policy.preload: %s%s", first_fail,
                       failed > 1 ? " (and others: see the log)" : "");
    if (code != 0)
        return err_set(err, ERR_INVALID, "policy.preload: the preload check failed (exit %d)%s%s",
                       code, *last_err ? ": " : "", last_err);
    build_log(c, "envhub: preload check passed");
    return 0;
}

/* The check that decides whether version N may serve, in a sandbox made
 * like a job's with the version's policy: its test_script, or else an import
 * of every pip package the setup script installed (in this image, not in the
 * base image). ERR_INVALID with the reason when it does not pass. */
static int acceptance_check(struct build_ctx *c, const struct package_entry *pkgs, size_t n_pkgs,
                            struct err *err)
{
    struct builder *b = c->b;
    struct sandbox_limits sb;
    const char *script = c->rec.test_script && *c->rec.test_script ? c->rec.test_script : NULL;
    const char **dists = NULL;
    size_t n_dists = 0;
    _cleanup_free_ char *cid = NULL, *out = NULL, *freeze = NULL;
    int code = -1, rc = -1;
    bool timed_out = false;
    char last_err[160] = "";
    int64_t t0 = time_mono_ms();

    if (accept_limits(b, c->rec.policy, &sb, err) < 0)
        return -1;
    if (!script) {
        freeze = c->rec.base_image_id ? base_pip_freeze(c, c->rec.base_image_id) : NULL;
        dists = xcalloc(n_pkgs + 1, sizeof(*dists));
        for (size_t i = 0; i < n_pkgs; i++)
            if (strcmp(pkgs[i].manager, "pip") == 0 &&
                !freeze_has(freeze, pkgs[i].name, pkgs[i].version))
                dists[n_dists++] = pkgs[i].name;
    }
    if (!script && n_dists == 0) {
        build_log(c, "envhub: import check: the setup script installed no pip package; "
                     "nothing to import");
        if (sb.n_preload == 0) {
            free(dists);
            return 0;
        }
    } else if (!script) {
        build_log(c,
                  "envhub: import check: importing the %zu pip packages the setup script "
                  "installed, in a sandbox (memory %lld bytes, network %s, timeout %lld s)",
                  n_dists, (long long)sb.memory, sb.network ? "bridge" : "none",
                  (long long)sb.timeout_max);
    } else {
        build_log(c,
                  "envhub: acceptance check: running test_script in a sandbox (memory %lld "
                  "bytes, %.2f CPUs, network %s, uid 1000, read-only root, timeout %lld s)",
                  (long long)sb.memory, (double)sb.cpu_millis / 1000,
                  sb.network ? "bridge" : "none", (long long)sb.timeout_max);
    }

    if (accept_container(b, c->rec.image_id, &sb, &cid, err) < 0) {
        err_prefix(err, "the acceptance check could not run");
        goto out;
    }
    if (!script && n_dists == 0) {
        rc = 0; /* only the preload check */
        goto out;
    }
    if (accept_run(b, cid, script ? script : import_check_py, false, dists, n_dists, sb.timeout_max,
                   &out, last_err, &code, &timed_out, err) < 0) {
        err_prefix(err, "the acceptance check could not run");
        goto out;
    }
    if (script) {
        char last[160];
        accept_log_output(c, "test_script| ", out);
        if (timed_out)
            err_set(err, ERR_INVALID, "test_script did not finish within %lld s",
                    (long long)sb.timeout_max);
        else if (code != 0) /* the last line of stderr says why (a traceback's does) */
            err_set(err, ERR_INVALID, "test_script failed (exit %d%s): %s", code,
                    code == 137 ? ", killed: out of memory?" : "",
                    *last_err ? last_err
                    : *out    ? last_line(out, last, sizeof(last))
                              : "no output");
        else {
            build_log(c, "envhub: test_script passed in %.1f s",
                      (double)(time_mono_ms() - t0) / 1000);
            rc = 0;
        }
        goto out;
    }

    /* the import check's report */
    size_t ok = 0, skipped = 0, failed = 0;
    char first_fail[ERR_MSG_MAX] = "";
    for (char *line = out; *line;) {
        size_t len = strcspn(line, "\n");
        char save = line[len];
        line[len] = '\0';
        if (strncmp(line, "ok\t", 3) == 0) {
            ok++;
        } else if (strncmp(line, "skip\t", 5) == 0) {
            skipped++;
            char *tab = strchr(line + 5, '\t');
            build_log(c, "envhub: import check: %.*s skipped: no importable top-level module (%s)",
                      (int)(tab ? tab - (line + 5) : (ptrdiff_t)strlen(line + 5)), line + 5,
                      tab ? tab + 1 : "");
        } else if (strncmp(line, "fail\t", 5) == 0) {
            char *dist = line + 5, *mod = strchr(dist, '\t'),
                 *why = mod ? strchr(mod + 1, '\t') : NULL;
            if (mod)
                *mod++ = '\0';
            if (why)
                *why++ = '\0';
            build_log(c, "envhub: import check: package '%s' does not import (import %s: %s)", dist,
                      mod ? mod : "?", why ? why : "?");
            if (!failed++)
                snprintf(first_fail, sizeof(first_fail),
                         "package '%.60s' does not import "
                         "(import %.40s: %.100s)",
                         dist, mod ? mod : "?", why ? why : "?");
        } else if (*line) {
            build_log(c, "import| %s", line);
        }
        line[len] = save;
        line += len + (save == '\n');
    }
    if (timed_out)
        err_set(err, ERR_INVALID, "import check did not finish within %lld s",
                (long long)sb.timeout_max);
    else if (failed)
        err_set(err, ERR_INVALID, "import check failed: %s%s", first_fail,
                failed > 1 ? " (and others: see the log)" : "");
    else if (code != 0)
        err_set(err, ERR_INVALID, "import check failed (exit %d) after %zu packages", code, ok);
    else {
        build_log(c, "envhub: import check passed: %zu packages imported, %zu skipped in %.1f s",
                  ok, skipped, (double)(time_mono_ms() - t0) / 1000);
        rc = 0;
    }
out:
    if (rc == 0 && sb.n_preload)
        rc = preload_check(c, cid, &sb, err);
    if (cid) {
        struct err rerr = ERR_INIT;
        if (engine_container_remove(b->engine, cid, &rerr) < 0)
            log_warn("builder: cannot remove acceptance container '%.12s', ignoring: %s", cid,
                     rerr.msg);
    }
    free(dists);
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
    /* the same reference on another image (drift): build on what it names now */
    if (prev.base_image_id &&
        engine_image_inspect(b->engine, c->rec.base_image, &info, &local) == 0 &&
        strcmp(info.id, prev.base_image_id) != 0) {
        build_log(c,
                  "envhub: definition unchanged, but base image '%s' is now %s (version %lld "
                  "was built on %s): building again",
                  c->rec.base_image, info.id, (long long)prev.version, prev.base_image_id);
        engine_image_info_release(&info);
        return 0;
    }
    engine_image_info_release(&info);
    if (engine_image_tag(b->engine, prev.image_id, c->rec.image, err) < 0)
        return -1;
    if (catalog_build_packages(b->catalog, prev.id, pkgs, n_pkgs, err) < 0)
        return -1;
    build_log(c,
              "envhub: definition unchanged (sha256 %.12s): reusing image %s of '%s' version "
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
        build_log(c, "envhub: base image '%s' is not in the engine; pulling it", c->rec.base_image);
        if (engine_image_pull(b->engine, c->rec.base_image, on_build_line, c, err) < 0 ||
            engine_image_inspect(b->engine, c->rec.base_image, &base, err) < 0)
            return err_set(err, ERR_INVALID,
                           "base image '%s' is not in the engine and cannot be pulled: %s",
                           c->rec.base_image, err->msg);
    }
    if (sandbox_image_check(c->rec.base_image, &base, err) < 0) {
        engine_image_info_release(&base);
        return err_prefix(err, "base_image");
    }
    c->rec.base_image_id = steal_ptr(base.id);
    engine_image_info_release(&base);
    build_log(c, "envhub: base image %s is %s", c->rec.base_image, c->rec.base_image_id);

    dockerfile = builder_dockerfile(c->rec.base_image, c->rec.environment, c->rec.version,
                                    c->rec.definition);
    if (builder_context_tar(dockerfile, c->rec.setup_script, &context, err) < 0)
        return -1;
    cgroup = cgroup_create(b, c->rec.id);
    size_t n_labels = 0;
    const struct engine_label *labels = sandbox_labels_list(b->image_labels, &n_labels);
    struct engine_build_spec spec = {
        .context = context.data,
        .context_len = context.len,
        .tag = c->rec.image,
        .labels = labels,
        .n_labels = n_labels,
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
            err_set(err, ERR_TIMEOUT,
                    "the build passed its time limit of %lld s "
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

/* With ENVHUB_REGISTRY the version's image is pushed as REGISTRY/<its tag>
 * and recorded by digest (the reference nodes pull it by). The registry tag is
 * taken off the local image after the push: the version keeps its own tag. */
static int push_version(struct build_ctx *c, struct err *err)
{
    struct builder *b = c->b;
    _cleanup_free_ char *digest = NULL;

    if (!b->cfg->registry[0])
        return 0;
    _cleanup_free_ char *ref = xasprintf("%s/%s", b->cfg->registry, c->rec.image);
    build_log(c, "envhub: pushing %s to ENVHUB_REGISTRY", ref);
    int64_t t0 = time_mono_ms();
    if (engine_image_tag(b->engine, c->rec.image_id, ref, err) < 0)
        return err_prefix(err, "registry");
    int rc = engine_image_push(b->engine, ref, on_build_line, c, &digest, err);
    struct err rerr = ERR_INIT;
    if (engine_image_remove(b->engine, ref, false, &rerr) < 0)
        log_warn("builder: cannot untag '%s' after its push: %s", ref, rerr.msg);
    if (rc < 0)
        return err_prefix(err, "registry %s (ENVHUB_REGISTRY)", b->cfg->registry);
    const char *colon = strrchr(c->rec.image, ':');
    int repo_len = (int)(colon ? (size_t)(colon - c->rec.image) : strlen(c->rec.image));
    c->rec.registry_image =
        xasprintf("%s/%.*s@%s", b->cfg->registry, repo_len, c->rec.image, digest);
    build_log(c, "envhub: pushed as %s in %.1f s", c->rec.registry_image,
              (double)(time_mono_ms() - t0) / 1000);
    return 0;
}

void builder_registry_forget(const struct build_record *build)
{
    const char *ref = build->registry_image;
    struct err err = ERR_INIT;

    if (!ref)
        return;
    /* "host:port/repo@sha256:..." */
    const char *slash = strchr(ref, '/'), *at = strrchr(ref, '@');
    if (!slash || !at || at < slash) {
        log_warn("builder: '%s' of build %lld is not a registry reference", ref,
                 (long long)build->id);
        return;
    }
    _cleanup_free_ char *registry = xstrndup(ref, (size_t)(slash - ref));
    _cleanup_free_ char *repo = xstrndup(slash + 1, (size_t)(at - slash - 1));
    if (engine_registry_delete(registry, repo, at + 1, &err) < 0)
        log_warn("builder: cannot remove %s from its registry: %s", ref, err.msg);
    else
        log_info("builder: %s removed from its registry", ref);
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
    log_info("builder: build %lld of '%s' version %lld started", (long long)id, c.rec.environment,
             (long long)c.rec.version);
    build_log(&c, "envhub: build of '%s' version %lld started (definition %.12s)",
              c.rec.environment, (long long)c.rec.version, c.rec.definition);

    int reused = try_reuse(&c, &pkgs, &n_pkgs, &err);
    int built = reused < 0 ? -1 : reused == 0 ? build_image(&c, &pkgs, &n_pkgs, &err) : 0;
    if (built == 0 &&
        (acceptance_check(&c, pkgs, n_pkgs, &err) < 0 || push_version(&c, &err) < 0)) {
        /* not in service: a new image goes, a reused one loses this version's tag */
        struct err rerr = ERR_INIT;
        if (engine_image_remove(b->engine, c.rec.image, reused == 0, &rerr) < 0)
            log_warn("builder: cannot remove image '%s' of a build that failed its check: %s",
                     c.rec.image, rerr.msg);
        built = -1;
    }
    if (built < 0) {
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
            log_warn("builder: cannot record the end of build %lld: %s", (long long)id, ferr.msg);
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
        builder_registry_forget(&c.rec);
        goto done;
    }
    log_info("builder: build %lld of '%s' version %lld ready in %lld ms%s", (long long)id,
             c.rec.environment, (long long)c.rec.version, (long long)(time_mono_ms() - t0),
             c.rec.cache_hit ? " (image reused)" : "");
    count_build(b, BUILD_READY, time_mono_ms() - t0);
    builder_notify_listener(b);
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

/* A local base image that declares a VOLUME is refused when the build is
 * asked for (the build checks again, after a pull). An engine that does not
 * answer decides nothing here. */
static bool base_image_refused(struct builder *b, const char *base_image, struct err *err)
{
    struct engine_image_info info = {0};
    struct err local = ERR_INIT;
    bool refused = false;

    if (engine_image_inspect(b->engine, base_image, &info, &local) == 0 &&
        sandbox_image_check(base_image, &info, err) < 0) {
        err_prefix(err, "base_image");
        refused = true;
    }
    engine_image_info_release(&info);
    return refused;
}

static int validate(struct builder *b, const char *name, const char *base_image, const char *script,
                    const char *python_version, struct err *err)
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
    if (base_image_refused(b, base_image, err))
        return -1;
    size_t len = strlen(script);
    if (len == 0 || len > (size_t)b->cfg->max_script_length)
        return err_set(err, ERR_INVALID,
                       "setup_script: %zu characters; it must have 1 to %lld "
                       "(ENVHUB_MAX_SCRIPT_LENGTH)",
                       len, (long long)b->cfg->max_script_length);
    if (!utf8_valid(script, len))
        return err_set(err, ERR_INVALID, "setup_script: not valid UTF-8");
    if ((danger = builder_script_danger(script)))
        return err_set(err, ERR_INVALID, "setup_script: contains a dangerous command: %s", danger);
    if (strlen(python_version) == 0 || strlen(python_version) > 16)
        return err_set(err, ERR_INVALID, "python_version: '%.20s' must be like \"3.11\"",
                       python_version);
    for (const char *p = python_version; *p; p++)
        if (!(*p >= '0' && *p <= '9') && *p != '.')
            return err_set(err, ERR_INVALID, "python_version: '%.20s' must be like \"3.11\"",
                           python_version);
    return 0;
}

/* An optional test script: valid UTF-8 within ENVHUB_MAX_SCRIPT_LENGTH. */
static int validate_test_script(struct builder *b, const char *script, struct err *err)
{
    if (!script)
        return 0;
    size_t len = strlen(script);
    if (len > (size_t)b->cfg->max_script_length)
        return err_set(err, ERR_INVALID,
                       "test_script: %zu characters; it must have at most %lld "
                       "(ENVHUB_MAX_SCRIPT_LENGTH)",
                       len, (long long)b->cfg->max_script_length);
    if (!utf8_valid(script, len))
        return err_set(err, ERR_INVALID, "test_script: not valid UTF-8");
    return 0;
}

int builder_create(struct builder *b, const struct env_definition *def, struct env_record *ret,
                   struct err *err)
{
    const char *base = def->base_image ? def->base_image : b->cfg->default_image;
    const char *py = def->python_version ? def->python_version : "3.11";
    char definition[65];
    int64_t now = time_now_ms();

    if (validate(b, def->name, base, def->setup_script, py, err) < 0 ||
        validate_test_script(b, def->test_script, err) < 0)
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
        .test_script = (char *)def->test_script,
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
        .test_script = env.test_script,
    };
    if (catalog_env_create(b->catalog, &env, &build, err) < 0) {
        if (err->code == ERR_CONFLICT)
            return err_about(err, ERR_CONFLICT, ERR_ABOUT_ENV_EXISTS, def->name, NULL);
        return -1;
    }
    queue_push(b, build.id);
    log_info("builder: environment '%s' created, build %lld queued", def->name,
             (long long)build.id);
    return catalog_env_get(b->catalog, def->name, ret, err);
}

int builder_rebuild(struct builder *b, const char *name, const char *setup_script,
                    const char *base_image, const char *policy, const char *test_script,
                    const char *created_by, struct build_record *ret, struct err *err)
{
    return builder_queue_rebuild(b, name, setup_script, base_image, policy, test_script, created_by,
                                 true, ret, err);
}

int builder_queue_rebuild(struct builder *b, const char *name, const char *setup_script,
                          const char *base_image, const char *policy, const char *test_script,
                          const char *created_by, bool event, struct build_record *ret,
                          struct err *err)
{
    _cleanup_(env_record_release) struct env_record env = {0};
    char definition[65];

    if (catalog_env_get(b->catalog, name, &env, err) < 0) {
        if (err->code == ERR_NOT_FOUND)
            return err_about(err, ERR_NOT_FOUND, ERR_ABOUT_ENV_MISSING, name, NULL);
        return -1;
    }
    if (env.lifecycle == ENV_RETIRED)
        return err_set(err, ERR_CONFLICT,
                       "environment '%s' is retired; reinstate it before rebuilding it", name);
    const char *script = setup_script ? setup_script : env.setup_script;
    const char *base = base_image ? base_image : env.base_image;
    const char *test = test_script ? test_script : env.test_script;
    if (validate(b, NULL, base, script, env.python_version, err) < 0 ||
        validate_test_script(b, test, err) < 0)
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
        .policy = (char *)(policy       ? policy
                           : env.policy ? env.policy
                                        : "{}"),
        .test_script = (char *)test,
    };
    /* the version is assigned by the catalog; the tag follows it */
    int64_t next = (env.latest_version > env.version ? env.latest_version : env.version) + 1;
    _cleanup_free_ char *image = builder_image_ref(name, next);
    build.image = image;
    if (catalog_env_queue_build(b->catalog, &build, event, err) < 0)
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

int builder_delete(struct builder *b, const char *name, const char *by, struct err *err)
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
            return err_about(err, ERR_NOT_FOUND, ERR_ABOUT_ENV_MISSING, name, NULL);
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
        struct timespec ts = time_deadline_in(1000);
        pthread_cond_timedwait(&b->progress, &b->lock, &ts);
    }
    /* queued ones are skipped by the worker once their rows are gone */
    pthread_mutex_unlock(&b->lock);

    if (catalog_env_delete(b->catalog, name, time_now_ms(), by, err) < 0) {
        build_records_free(builds, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct err rerr = ERR_INIT;
        if (engine_image_remove(b->engine, builds[i].image, true, &rerr) < 0)
            log_warn("builder: cannot remove image '%s' of deleted '%s', ignoring: %s",
                     builds[i].image, name, rerr.msg);
        builder_image_orphaned(b, &builds[i]); /* a running job's container kept it */
        builder_registry_forget(&builds[i]);
    }
    builder_notify_listener(b);
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
            struct timespec ts = time_deadline_in(left);
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
    if (sandbox_labels_parse(b->cfg->labels, NULL, &b->image_labels, err) < 0 ||
        sandbox_labels_parse(b->cfg->labels, catalog_instance_id(b->catalog), &b->container_labels,
                             err) < 0)
        return -1;
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
        _cleanup_free_ char *dir = b->cgroups == CGROUP_V2
                                       ? xstrdup(CGROUP_ROOT)
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
    pthread_cond_init(&b->maint_wake, NULL);
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
    if (builder_maintenance_start(b, err) < 0) {
        builder_close(b);
        return -1;
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
    pthread_cond_broadcast(&b->maint_wake);
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
    builder_maintenance_stop(b);
    while (b->base_pips) {
        struct base_pip *p = b->base_pips;
        b->base_pips = p->next;
        free(p->image_id);
        free(p->freeze);
        free(p);
    }
    pthread_cond_destroy(&b->maint_wake);
    while (b->head) {
        struct queued *q = b->head;
        b->head = q->next;
        free(q);
    }
    pthread_cond_destroy(&b->progress);
    pthread_cond_destroy(&b->work);
    pthread_mutex_destroy(&b->lock);
    sandbox_labels_free(b->image_labels);
    sandbox_labels_free(b->container_labels);
    free(b);
}

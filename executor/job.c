/* executor/job.c - one run of user code in a sandbox container.
 *
 * One exec does the work: a small shell wrapper unpacks the input tar from
 * its stdin, runs the code, then reports on stderr, after everything the code
 * printed, "\0envhub-status RC FILES OOM\0": the code's exit status, whether
 * the workspace holds any file, and the memory cgroup's OOM kills during the
 * run (the engine's OOMKilled flag is not set on every kernel). A second exec
 * streams the workspace back as a tar only when there are files. The report
 * is read from a small tail kept apart from the capped stderr, so a flood of
 * output cannot hide it, and it is cut from what the caller sees. A job can
 * forge the report, but only about itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

#define JOB_TAIL 96 /* bytes of stderr kept for the report */
#define JOB_SKIPPED_MAX 65536
#define JOB_COLLECT_TIMEOUT_MS 30000
#define JOB_SESSION_GRACE_S 5 /* the in-container timeout fires first */

static const char marker_tag[] = "envhub-status ";

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

/* Recycling: before a container's next job, every process of uid 1000 but
 * the container's first is killed and the writable places emptied; when
 * something survives, the wrapper reports `unclean_tag` and the executor
 * runs the job in a fresh container instead. Zombies (background processes
 * whose parent was the container's first process, which never reaps) cannot
 * be killed and do no harm but use the pids limit: a few are tolerated. */
#define RECYCLE_MAX_ZOMBIES "16"
static const char unclean_tag[] = "envhub-unclean";
static const char recycle_clean[] =
    "clean() { kill -9 -1 2>/dev/null; "
    "rm -rf /workspace/* /workspace/.[!.]* /workspace/..?* /tmp/* /tmp/.[!.]* /tmp/..?* "
    "/dev/shm/* /dev/shm/.[!.]* 2>/dev/null; "
    "for try in 1 2 3 4 5 6 7 8 9 10; do left=0; z=0; "
    "for p in /proc/[0-9]*; do q=${p#/proc/}; { [ \"$q\" = 1 ] || [ \"$q\" = $$ ]; } && continue; "
    "st=; while read -r k v rest; do [ \"$k\" = State: ] && { st=$v; break; }; "
    "done < $p/status 2>/dev/null; "
    "case $st in Z) z=$((z+1));; '') ;; *) left=1;; esac; done; "
    "[ $left = 0 ] && break; sleep 0.02; done; "
    "[ $left = 0 ] && [ $z -le " RECYCLE_MAX_ZOMBIES " ] || return 1; "
    "for f in /workspace/* /workspace/.[!.]* /workspace/..?* /tmp/* /tmp/.[!.]* /tmp/..?* "
    "/dev/shm/*; do { [ -e \"$f\" ] || [ -L \"$f\" ]; } && return 1; done; return 0; }; "
    "clean || { printf '\\0envhub-unclean\\0' >&2; exit 126; }; ";

bool exec_parse_unclean(const char *tail, size_t tail_len)
{
    size_t n = sizeof(unclean_tag) - 1;
    return tail_len >= n + 2 && tail[tail_len - 1] == '\0' && tail[tail_len - n - 2] == '\0' &&
           memcmp(tail + tail_len - n - 1, unclean_tag, n) == 0;
}

/* The wrapper. oom() reads the memory cgroup's oom_kill counter (v1 or v2);
 * the glob loop finds any entry but the code file without forking. */
static char *wrapper_script(const struct job_io *io)
{
    _cleanup_free_ char *run =
        io->session ? xasprintf("timeout -k 2 %lld python3 " EXEC_CODE_NAME "; rc=$?; "
                                "rm -f " EXEC_CODE_NAME,
                                (long long)io->timeout_s)
                    : xstrdup("python3 " EXEC_CODE_NAME "; rc=$?");
    return xasprintf(
        "%s"
        "oom() { n=0; for f in /sys/fs/cgroup/memory/memory.oom_control "
        "/sys/fs/cgroup/memory.events; do [ -r \"$f\" ] || continue; "
        "while read -r k v; do [ \"$k\" = oom_kill ] && n=$v; done < \"$f\"; break; done; }; "
        "oom; o0=$n; "
        "tar -x -f - || { echo 'envhub: cannot unpack the input files into the workspace' >&2; "
        "exit 125; }; "
        "%s; "
        "oom; files=0; "
        "for f in * .[!.]* ..?*; do { [ -e \"$f\" ] || [ -L \"$f\" ]; } || continue; "
        "[ \"$f\" = " EXEC_CODE_NAME " ] && continue; files=1; break; done; "
        "printf '\\0%s%%d %%d %%d\\0' \"$rc\" \"$files\" \"$((n - o0))\" >&2; "
        "exit $rc",
        io->recycled ? recycle_clean : "", run, marker_tag);
}

bool exec_parse_marker(const char *tail, size_t tail_len, struct status_marker *ret)
{
    /* the last "\0envhub-status " in the tail, ended by a NUL */
    for (size_t i = tail_len; i-- > 0;) {
        if (tail[i] != '\0' || tail_len - i - 1 < sizeof(marker_tag) - 1 ||
            memcmp(tail + i + 1, marker_tag, sizeof(marker_tag) - 1) != 0)
            continue;
        const char *p = tail + i + 1 + sizeof(marker_tag) - 1;
        size_t left = tail_len - (size_t)(p - tail);
        const char *end = memchr(p, '\0', left);
        if (!end || end != tail + tail_len - 1)
            return false;
        char text[64];
        size_t n = (size_t)(end - p);
        if (n >= sizeof(text))
            return false;
        memcpy(text, p, n);
        text[n] = '\0';
        int rc, files;
        long long oom;
        char extra;
        if (sscanf(text, "%d %d %lld%c", &rc, &files, &oom, &extra) != 3 || rc < 0 || rc > 255 ||
            (files != 0 && files != 1) || oom < 0)
            return false;
        ret->rc = rc;
        ret->files = files == 1;
        ret->oom_kills = oom;
        ret->len = tail_len - i;
        return true;
    }
    return false;
}

struct capture {
    struct buf out, err;
    bool out_truncated, err_truncated;
    size_t err_total; /* bytes of stderr received, kept or not */
    char tail[JOB_TAIL];
    size_t tail_len;
    engine_output_fn live;
    void *live_ctx;
    char pend[JOB_TAIL]; /* stderr held back from live followers: maybe the report */
    size_t pend_len;
};

/* Could pend[0..n) be the start of the report? */
static bool maybe_marker(const char *p, size_t n)
{
    size_t tag = sizeof(marker_tag) - 1;
    if (n == 0 || p[0] != '\0')
        return false;
    if (n - 1 <= tag)
        return memcmp(p + 1, marker_tag, n - 1) == 0;
    if (memcmp(p + 1, marker_tag, tag) != 0)
        return false;
    for (size_t i = 1 + tag; i < n; i++)
        if (!(p[i] == ' ' || (p[i] >= '0' && p[i] <= '9') || (p[i] == '\0' && i == n - 1)))
            return false;
    return true;
}

/* Stderr to live followers without the report: bytes from a NUL on are held
 * back while they may be it, and let go as soon as they cannot be. */
static void live_stderr(struct capture *c, const char *data, size_t len)
{
    while (len > 0) {
        if (c->pend_len == 0) {
            const char *nul = memchr(data, '\0', len);
            size_t plain = nul ? (size_t)(nul - data) : len;
            if (plain)
                c->live(c->live_ctx, ENGINE_STDERR, data, plain);
            data += plain;
            len -= plain;
            if (!len)
                return;
        }
        c->pend[c->pend_len++] = *data++;
        len--;
        if (!maybe_marker(c->pend, c->pend_len) || c->pend_len == sizeof(c->pend)) {
            /* not the report after all: the first byte goes, the rest is looked at again */
            char again[JOB_TAIL];
            size_t n = c->pend_len - 1;
            memcpy(again, c->pend + 1, n);
            c->live(c->live_ctx, ENGINE_STDERR, c->pend, 1);
            c->pend_len = 0;
            live_stderr(c, again, n);
        }
    }
}

static int capture_output(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct capture *c = ctx;
    bool is_err = stream == ENGINE_STDERR;
    struct buf *b = is_err ? &c->err : &c->out;

    if (is_err) {
        c->err_total += len;
        /* keep the last JOB_TAIL bytes whatever the cap */
        if (len >= JOB_TAIL) {
            memcpy(c->tail, data + len - JOB_TAIL, JOB_TAIL);
            c->tail_len = JOB_TAIL;
        } else {
            size_t keep = c->tail_len + len > JOB_TAIL ? JOB_TAIL - len : c->tail_len;
            memmove(c->tail, c->tail + c->tail_len - keep, keep);
            memcpy(c->tail + keep, data, len);
            c->tail_len = keep + len;
        }
    }
    if (c->live && is_err)
        live_stderr(c, data, len);
    else if (c->live)
        c->live(c->live_ctx, stream, data, len);
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
    struct buf tar, report;
    bool truncated;
};

static int collect_output(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct collect *c = ctx;

    if (stream == ENGINE_STDERR) {
        (void)buf_append_upto(&c->report, data, len);
        return 0;
    }
    if (buf_append_upto(&c->tar, data, len) < len) {
        /* whatever sizes the headers claim, never read past the cap */
        c->truncated = true;
        return -1;
    }
    return 0;
}

/* find's report of files over the size limit: "envhub-skip SIZE PATH\0". */
static void parse_skipped(const struct buf *b, size_t max_file_size, char ***skipped)
{
    const char *p = buf_str(b), *end = p + b->len;
    static const char tag[] = "envhub-skip ";

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
        }
        p += len + 1;
    }
}

/* The workspace's regular files within the caps, by the second exec. */
static void collect_files(struct executor *x, const char *cid, struct job_result *res)
{
    const struct config *cfg = x->cfg;
    _cleanup_free_ char *script =
        xasprintf("find . -path ./" EXEC_CODE_NAME " -prune -o -type f \\( -size -%lldc -print0 "
                  "-o -fprintf /dev/stderr 'envhub-skip %%s %%P\\0' \\) | "
                  "tar --null --no-recursion -T - -c -f -",
                  (long long)cfg->max_file_size + 1);
    const char *cmd[] = {"/bin/sh", "-c", script, NULL};
    struct collect col = {
        .tar = BUF_INIT((size_t)cfg->output_files_limit + 1024 * 1024),
        .report = BUF_INIT(JOB_SKIPPED_MAX),
    };
    struct engine_exec_spec spec = {
        .cmd = cmd,
        .env = job_env,
        .user = EXEC_USER,
        .working_dir = cfg->work_dir,
        .output = collect_output,
        .output_ctx = &col,
        .deadline_ms = time_mono_ms() + JOB_COLLECT_TIMEOUT_MS,
    };
    struct tar_out_limits limits = {.max_file_size = (size_t)cfg->max_file_size,
                                    .max_total = (size_t)cfg->output_files_limit};
    struct engine_exec_result cres = {0};
    struct err err = ERR_INIT;

    if (engine_exec(x->engine, cid, &spec, &cres, &err) < 0) {
        log_warn("executor: cannot collect the output files of %s: %s", res->id, err.msg);
        strv_push(&res->files_skipped, xasprintf("*: cannot read the workspace: %s", err.msg));
    } else {
        parse_skipped(&col.report, limits.max_file_size, &res->files_skipped);
        if (cres.timed_out)
            strv_push(&res->files_skipped,
                      xasprintf("*: reading the workspace took longer than %d s",
                                JOB_COLLECT_TIMEOUT_MS / 1000));
        exec_tar_outputs(col.tar.data, col.tar.len, col.truncated, &limits, &res->files,
                         &res->n_files, &res->files_skipped, &err);
    }
    buf_release(&col.tar);
    buf_release(&col.report);
}

/* The captured bytes as text: handed over when they are valid UTF-8 (the
 * usual case: no copy of a large output), else repaired (U+FFFD for each
 * byte that is not UTF-8). NUL and the other control bytes are kept as
 * written: the result is used with *ret_len. */
static char *output_text(struct buf *b, size_t *ret_len)
{
    if (utf8_valid_with_nul(buf_str(b), b->len))
        return buf_detach(b, ret_len);
    return utf8_repair(buf_str(b), b->len, ret_len);
}

void job_run(struct executor *x, const char *cid, const struct job_io *io, struct job_result *res,
             struct job_outcome *out)
{
    _cleanup_free_ char *script = wrapper_script(io);
    const char *run_cmd[] = {"/bin/sh", "-c", script, NULL};
    struct capture cap = {
        .out = BUF_INIT((size_t)io->output_limit),
        .err = BUF_INIT((size_t)io->output_limit),
        .live = io->live,
        .live_ctx = io->live_ctx,
    };
    struct engine_exec_result run = {0};
    struct status_marker marker = {0};
    struct err *err = &out->engine_err;
    bool have_marker = false, want_files = true;
    int64_t t0, t1, t_start = time_mono_ms();

    memset(out, 0, sizeof(*out));
    res->exit_code = -1;
    if (!io->started && engine_container_start(x->engine, cid, err) < 0)
        goto engine_failed;

    struct engine_exec_spec spec = {
        .cmd = run_cmd,
        .env = job_env,
        .user = EXEC_USER,
        .working_dir = x->cfg->work_dir,
        .stdin_data = io->input_tar->data,
        .stdin_len = io->input_tar->len,
        .output = capture_output,
        .output_ctx = &cap,
    };
    t0 = time_mono_ms();
    spec.deadline_ms = t0 + (io->timeout_s + (io->session ? JOB_SESSION_GRACE_S : 0)) * 1000;
    if (engine_exec(x->engine, cid, &spec, &run, err) < 0)
        goto engine_failed;
    t1 = time_mono_ms();
    res->execution_time = (double)(t1 - t0) / 1000.0;

    if (!run.timed_out && cap.tail_len)
        have_marker = exec_parse_marker(cap.tail, cap.tail_len, &marker);
    if (!have_marker && io->recycled && exec_parse_unclean(cap.tail, cap.tail_len)) {
        out->unclean = true; /* nothing ran: the executor takes a fresh container */
        res->status = EXEC_ERROR;
        res->error = xstrdup("the recycled container could not be cleaned");
        goto done;
    }
    if (have_marker) {
        /* the report is not the job's output: cut it where it was kept,
         * also the part of it a cap let in (the output keeps NUL, so a
         * leftover "\0envh" would show); the job's stderr is truncated only
         * when the cap cut the job's own bytes */
        size_t at = cap.err_total - marker.len;
        if (cap.err.len > at) {
            cap.err.len = at;
            cap.err.data[at] = '\0';
        }
        cap.err_truncated = at > cap.err.len;
        want_files = marker.files;
    } else if (cap.live && cap.pend_len) {
        /* no report came: what was held back from followers is the job's */
        cap.live(cap.live_ctx, ENGINE_STDERR, cap.pend, cap.pend_len);
        cap.pend_len = 0;
    }

    bool session_timeout =
        io->session && have_marker && marker.rc == 124 && t1 - t0 >= io->timeout_s * 1000 - 200;
    if (run.timed_out || session_timeout) {
        if (run.timed_out && !io->session) {
            struct err kerr = ERR_INIT;
            if (engine_container_kill(x->engine, cid, &kerr) < 0)
                log_warn("executor: cannot kill container '%.12s' of %s, ignoring: %s", cid,
                         res->id, kerr.msg);
        }
        res->status = EXEC_TIMEOUT;
        res->error = xasprintf("代码执行超时(%lld秒)", (long long)io->timeout_s);
        /* a session survives its call's timeout; a job's container does not */
        out->container_usable = io->session && !run.timed_out;
        want_files = out->container_usable && want_files;
    } else {
        struct engine_container_state state = {0};
        res->exit_code = have_marker ? marker.rc : run.exit_code;
        if (!have_marker) {
            /* no report: the wrapper itself was killed; ask the engine */
            if (engine_container_inspect(x->engine, cid, &state, err) < 0)
                goto engine_failed;
            if (state.image_id[0])
                out->image_id = xstrdup(state.image_id);
            want_files = state.running;
        }
        if ((have_marker && marker.oom_kills > 0) || state.oom_killed) {
            res->status = EXEC_OOM;
            res->error = xasprintf("代码执行失败，退出码: %d (out of memory: the job passed its "
                                   "memory limit of %lld bytes)",
                                   res->exit_code, (long long)io->memory);
        } else if (res->exit_code == 0) {
            res->status = EXEC_SUCCEEDED;
        } else {
            res->status = EXEC_FAILED;
            res->error = xasprintf("代码执行失败，退出码: %d", res->exit_code);
        }
        out->container_usable = have_marker;
    }
    if (exec_stopping(x) && res->status != EXEC_SUCCEEDED) {
        res->status = EXEC_INTERRUPTED;
        free(res->error);
        res->error = xstrdup("the job was interrupted: envhub is shutting down");
        out->container_usable = false;
        want_files = false;
    }
    int64_t t_collect = time_mono_ms();
    if (want_files)
        collect_files(x, cid, res);
    log_debug("executor: job %s start=%lldms run=%lldms collect=%lldms", res->id,
              (long long)(t0 - t_start), (long long)(t1 - t0),
              (long long)(want_files ? time_mono_ms() - t_collect : 0));
    goto done;

engine_failed:
    out->engine_failed = true;
    res->status = exec_stopping(x) ? EXEC_INTERRUPTED : EXEC_ERROR;
    res->error = xasprintf("envhub could not run the job: %s", err->msg);
    log_error("executor: job %s: %s", res->id, err->msg);
done:
    res->stdout_text = output_text(&cap.out, &res->stdout_len);
    res->stderr_text = output_text(&cap.err, &res->stderr_len);
    res->stdout_truncated = cap.out_truncated;
    res->stderr_truncated = cap.err_truncated;
    buf_release(&cap.out);
    buf_release(&cap.err);
}

/* executor/job.c - one run of user code in a sandbox container.
 *
 * One exec does the work: the wrapper (executor/wrapper.sh, compiled in)
 * unpacks the input tar from its stdin, runs the code, then reports on
 * stderr, after everything the code printed, "\0envhub-status RC FILES
 * OOM\0": the code's exit status, whether the workspace holds any file, and
 * the memory cgroup's OOM kills during the run (the engine's OOMKilled flag
 * is not set on every kernel). A second exec streams the workspace back as a
 * tar only when there are files; the pictures the code showed (matplotlib
 * figures saved by envhub's backend, executor/display.py, into
 * EXEC_DISPLAY_DIR) come back in the same tar and are read apart. The
 * report is read from a small tail kept apart from the capped stderr, so a
 * flood of output cannot hide it, and it is cut from what the caller sees.
 * A job can forge the report, but only about itself. Calls shared.c and
 * tar.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

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

/* Recycling: the wrapper of a recycled container's next job cleans it first
 * (see wrapper.sh); when something survives it reports `unclean_tag` and the
 * executor runs the job in a fresh container instead. */
static const char unclean_tag[] = "envhub-unclean";

bool exec_parse_unclean(const char *tail, size_t tail_len)
{
    size_t n = sizeof(unclean_tag) - 1;
    return tail_len >= n + 2 && tail[tail_len - 1] == '\0' && tail[tail_len - n - 2] == '\0' &&
           memcmp(tail + tail_len - n - 1, unclean_tag, n) == 0;
}

const char *exec_wrapper_script(void)
{
    /* the first file of executor_embedded (Makefile) */
    return (const char *)executor_embedded[0].data;
}

const char *exec_display_module(size_t *ret_len)
{
    /* the second: executor/display.py */
    *ret_len = executor_embedded[1].len;
    return (const char *)executor_embedded[1].data;
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
            char again[EXEC_JOB_TAIL];
            size_t n = c->pend_len - 1;
            memcpy(again, c->pend + 1, n);
            c->live(c->live_ctx, ENGINE_STDERR, c->pend, 1);
            c->pend_len = 0;
            live_stderr(c, again, n);
        }
    }
}

int exec_capture_output(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct capture *c = ctx;
    bool is_err = stream == ENGINE_STDERR;
    struct buf *b = is_err ? &c->err : &c->out;

    if (is_err && !c->raw) {
        c->err_total += len;
        /* keep the last EXEC_JOB_TAIL bytes whatever the cap */
        if (len >= EXEC_JOB_TAIL) {
            memcpy(c->tail, data + len - EXEC_JOB_TAIL, EXEC_JOB_TAIL);
            c->tail_len = EXEC_JOB_TAIL;
        } else {
            size_t keep = c->tail_len + len > EXEC_JOB_TAIL ? EXEC_JOB_TAIL - len : c->tail_len;
            memmove(c->tail, c->tail + c->tail_len - keep, keep);
            memcpy(c->tail + keep, data, len);
            c->tail_len = keep + len;
        }
    }
    if (c->live && is_err && !c->raw)
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

void exec_skip_large(char ***skipped, const char *path, size_t len, size_t max_file_size)
{
    static const char display[] = "./" EXEC_DISPLAY_DIR "/";
    bool shown = len >= sizeof(display) - 1 && memcmp(path, display, sizeof(display) - 1) == 0;
    const char *name = shown ? path + sizeof(display) - 1 : path;

    while (!shown && name[0] == '.' && name[1] == '/')
        name += 2;
    _cleanup_free_ char *clean = utf8_escape(name, len - (size_t)(name - path));
    strv_push(skipped, xasprintf("%s%s: larger than the file size limit (%zu bytes)",
                                 shown ? "display " : "", clean, max_file_size));
}

/* find's report of files over the size limit: "envhub-skip SIZE ./PATH\0"
 * (pictures: "./" EXEC_DISPLAY_DIR "/NAME"). */
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
                exec_skip_large(skipped, path, strlen(path), max_file_size);
            }
        }
        p += len + 1;
    }
}

/* The workspace's regular files within the caps, and the pictures the code
 * showed (EXEC_DISPLAY_DIR, a folder of its own, not a symlink), by the
 * second exec. envhub's folder is not part of the workspace's files. */
static void collect_files(struct executor *x, const char *cid, struct job_result *res)
{
    const struct config *cfg = x->cfg;
    _cleanup_free_ char *script =
        xasprintf("d=; [ -d " EXEC_DISPLAY_DIR " ] && [ ! -L " EXEC_DISPLAY_DIR
                  " ] && d=./" EXEC_DISPLAY_DIR "; find . $d \\( -path ./" EXEC_CODE_NAME
                  " -o -path ./" EXEC_PRIVATE_DIR " \\) -prune -o -type f \\( -size -%lldc -print0 "
                  "-o -fprintf /dev/stderr 'envhub-skip %%s %%p\\0' \\) | "
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
        .user = SANDBOX_USER,
        .working_dir = cfg->work_dir,
        .output = collect_output,
        .output_ctx = &col,
        .deadline_ms = time_mono_ms() + JOB_COLLECT_TIMEOUT_MS,
    };
    struct tar_out_limits limits = {.max_file_size = (size_t)cfg->max_file_size,
                                    .max_total = (size_t)cfg->output_files_limit,
                                    .max_files = (size_t)cfg->max_output_files,
                                    .max_display = (size_t)cfg->max_display};
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
        exec_tar_collected(col.tar.data, col.tar.len, col.truncated, &limits, &res->files,
                           &res->n_files, &res->display, &res->n_display, &res->files_skipped,
                           &err);
    }
    buf_release(&col.tar);
    buf_release(&col.report);
}

/* The captured bytes as text: handed over when they are valid UTF-8 (the
 * usual case: no copy of a large output), else repaired (U+FFFD for each
 * byte that is not UTF-8). NUL and the other control bytes are kept as
 * written: the result is used with *ret_len. */
char *exec_output_text(struct buf *b, size_t *ret_len)
{
    if (utf8_valid_with_nul(buf_str(b), b->len))
        return buf_detach(b, ret_len);
    return utf8_repair(buf_str(b), b->len, ret_len);
}

void exec_result_timeout(struct job_result *res, int64_t timeout_s)
{
    res->status = EXEC_TIMEOUT;
    res->error = xasprintf("代码执行超时(%lld秒)", (long long)timeout_s);
}

void exec_result_exit(struct job_result *res, int exit_code, bool oom, int64_t memory)
{
    res->exit_code = exit_code;
    if (oom) {
        res->status = EXEC_OOM;
        res->error = xasprintf("代码执行失败，退出码: %d (out of memory: the job passed its "
                               "memory limit of %lld bytes)",
                               exit_code, (long long)memory);
    } else if (exit_code == 0) {
        res->status = EXEC_SUCCEEDED;
    } else {
        res->status = EXEC_FAILED;
        res->error = xasprintf("代码执行失败，退出码: %d", exit_code);
    }
}

bool exec_result_interrupted(struct executor *x, struct job_result *res, struct job_outcome *out)
{
    if (!exec_stopping(x) || res->status == EXEC_SUCCEEDED)
        return false;
    res->status = EXEC_INTERRUPTED;
    free(res->error);
    res->error = xstrdup("the job was interrupted: envhub is shutting down");
    out->container_usable = false;
    return true;
}

void exec_result_engine_failed(struct executor *x, struct job_result *res, struct job_outcome *out)
{
    out->engine_failed = true;
    res->status = exec_stopping(x) ? EXEC_INTERRUPTED : EXEC_ERROR;
    res->error = xasprintf("envhub could not run the job: %s", out->engine_err.msg);
    log_error("executor: job %s: %s", res->id, out->engine_err.msg);
}

void exec_result_unclean(struct job_result *res, struct job_outcome *out, const char *why,
                         size_t len)
{
    _cleanup_free_ char *text = utf8_escape(why, len);

    out->unclean = true;
    res->status = EXEC_ERROR;
    res->error = xasprintf("the recycled container could not be cleaned: %s", text);
}

void exec_capture_finish(struct capture *c, struct job_result *res)
{
    res->stdout_text = exec_output_text(&c->out, &res->stdout_len);
    res->stderr_text = exec_output_text(&c->err, &res->stderr_len);
    res->stdout_truncated = c->out_truncated;
    res->stderr_truncated = c->err_truncated;
    buf_release(&c->out);
    buf_release(&c->err);
}

/* One run, step by step. */
struct run {
    struct capture cap;
    struct engine_exec_result exec;
    struct status_marker marker;
    bool have_marker; /* the wrapper reported */
    bool want_files;  /* the workspace is worth reading */
    int64_t t_start, t0, t1;
};

/* Step 1: start the container if need be, and run the wrapper to its end
 * or the deadline; -1 when the engine failed (out->engine_err says why). */
static int run_wrapper(struct executor *x, const char *cid, const struct job_io *io, struct run *r,
                       struct job_outcome *out)
{
    char timeout[24], display[24];
    snprintf(timeout, sizeof(timeout), "%lld", io->session ? (long long)io->timeout_s : 0LL);
    snprintf(display, sizeof(display), "%lld", (long long)x->cfg->max_display);
    const char *cmd[] = {
        "/bin/sh", "-c", exec_wrapper_script(), "envhub-wrapper", io->recycled ? "1" : "0", timeout,
        display,   NULL};

    if (!io->started && engine_container_start(x->engine, cid, &out->engine_err) < 0)
        return -1;
    struct engine_exec_spec spec = {
        .cmd = cmd,
        .env = job_env,
        .user = SANDBOX_USER,
        .working_dir = x->cfg->work_dir,
        .stdin_data = io->input_tar->data,
        .stdin_len = io->input_tar->len,
        .output = exec_capture_output,
        .output_ctx = &r->cap,
    };
    r->t0 = time_mono_ms();
    spec.deadline_ms = r->t0 + (io->timeout_s + (io->session ? JOB_SESSION_GRACE_S : 0)) * 1000;
    if (engine_exec(x->engine, cid, &spec, &r->exec, &out->engine_err) < 0)
        return -1;
    r->t1 = time_mono_ms();
    return 0;
}

/* Step 2: the wrapper's report, read from the tail of stderr and cut from
 * the job's output. */
static void read_report(struct run *r)
{
    struct capture *cap = &r->cap;

    if (!r->exec.timed_out && cap->tail_len)
        r->have_marker = exec_parse_marker(cap->tail, cap->tail_len, &r->marker);
    if (r->have_marker) {
        /* the report is not the job's output: cut it where it was kept,
         * also the part of it a cap let in (the output keeps NUL, so a
         * leftover "\0envh" would show); the job's stderr is truncated only
         * when the cap cut the job's own bytes */
        size_t at = cap->err_total - r->marker.len;
        buf_truncate(&cap->err, at);
        cap->err_truncated = at > cap->err.len;
        r->want_files = r->marker.files;
    } else if (cap->live && cap->pend_len) {
        /* no report came: what was held back from followers is the job's */
        cap->live(cap->live_ctx, ENGINE_STDERR, cap->pend, cap->pend_len);
        cap->pend_len = 0;
    }
}

/* Step 3a: the deadline passed (the engine's for a job, timeout(1)'s inside
 * a session's container). */
static bool timed_out(const struct job_io *io, const struct run *r)
{
    return r->exec.timed_out || (io->session && r->have_marker && r->marker.rc == 124 &&
                                 r->t1 - r->t0 >= io->timeout_s * 1000 - 200);
}

static void judge_timeout(struct executor *x, const char *cid, const struct job_io *io,
                          struct run *r, struct job_result *res, struct job_outcome *out)
{
    if (r->exec.timed_out && !io->session) {
        struct err kerr = ERR_INIT;
        if (engine_container_kill(x->engine, cid, &kerr) < 0)
            log_warn("executor: cannot kill container '%.12s' of %s, ignoring: %s", cid, res->id,
                     kerr.msg);
    }
    exec_result_timeout(res, io->timeout_s);
    /* a session survives its call's timeout; a job's container does not */
    out->container_usable = io->session && !r->exec.timed_out;
    r->want_files = out->container_usable && r->want_files;
}

/* Step 3b: the code ended: its exit status, out of memory or not; -1 when
 * the engine cannot say (no report: the wrapper itself was killed). */
static int judge_exit(struct executor *x, const char *cid, const struct job_io *io, struct run *r,
                      struct job_result *res, struct job_outcome *out)
{
    struct engine_container_state state = {0};

    res->exit_code = r->have_marker ? r->marker.rc : r->exec.exit_code;
    if (!r->have_marker) {
        if (engine_container_inspect(x->engine, cid, &state, &out->engine_err) < 0)
            return -1;
        if (state.image_id[0])
            out->image_id = xstrdup(state.image_id);
        r->want_files = state.running;
    }
    exec_result_exit(res, res->exit_code,
                     (r->have_marker && r->marker.oom_kills > 0) || state.oom_killed, io->memory);
    out->container_usable = r->have_marker;
    return 0;
}

/* Step 4: shutting down turns anything but a success into an interruption;
 * then the output files. */
static void finish(struct executor *x, const char *cid, struct run *r, struct job_result *res,
                   struct job_outcome *out)
{
    if (exec_result_interrupted(x, res, out))
        r->want_files = false;
    int64_t t_collect = time_mono_ms();
    if (r->want_files)
        collect_files(x, cid, res);
    log_debug("executor: job %s start=%lldms run=%lldms collect=%lldms", res->id,
              (long long)(r->t0 - r->t_start), (long long)(r->t1 - r->t0),
              (long long)(r->want_files ? time_mono_ms() - t_collect : 0));
}

void exec_job_run(struct executor *x, const char *cid, const struct job_io *io,
                  struct job_result *res, struct job_outcome *out)
{
    struct run r = {
        .cap =
            {
                .out = BUF_INIT((size_t)io->output_limit),
                .err = BUF_INIT((size_t)io->output_limit),
                .live = io->live,
                .live_ctx = io->live_ctx,
            },
        .want_files = true,
        .t_start = time_mono_ms(),
    };

    if (strcmp(x->cfg->job_transport, "agent") == 0 && (!io->session || io->kernel)) {
        exec_agent_run(x, cid, io, res, out);
        return;
    }
    memset(out, 0, sizeof(*out));
    res->exit_code = -1;
    if (run_wrapper(x, cid, io, &r, out) < 0)
        goto engine_failed;
    res->execution_time = (double)(r.t1 - r.t0) / 1000.0;
    read_report(&r);
    if (!r.have_marker && io->recycled && exec_parse_unclean(r.cap.tail, r.cap.tail_len)) {
        /* nothing ran: the executor takes a fresh container; the wrapper's
         * first line says what it found */
        const char *why = buf_str(&r.cap.err);
        exec_result_unclean(res, out, why, strcspn(why, "\n"));
        goto done;
    }
    if (timed_out(io, &r))
        judge_timeout(x, cid, io, &r, res, out);
    else if (judge_exit(x, cid, io, &r, res, out) < 0)
        goto engine_failed;
    finish(x, cid, &r, res, out);
    goto done;

engine_failed:
    exec_result_engine_failed(x, res, out);
done:
    exec_capture_finish(&r.cap, res);
}

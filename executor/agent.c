/* executor/agent.c - one job through the agent, the container's main
 * process (executor/agent.py, compiled in): attach, hand over the job, read
 * its output live until the agent says every process of it is gone, then
 * ask for the report with a fresh nonce. The agent's frames are decoded by
 * agent_proto.c; what it reports is judged like the wrapper's report
 * (job.c). Anything off the protocol (a broken frame, a wrong nonce, an
 * agent that stops answering) ends the job with the reason, and its
 * container goes. Calls shared.c, job.c's helpers and tar.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

#define AGENT_ATTACH_TIMEOUT_MS 30000
#define AGENT_COLLECT_TIMEOUT_MS 30000
#define AGENT_GRACE_S 5 /* past the timeout the agent enforces, envhub kills the container */
#define AGENT_STDERR_MAX 4096

const char *exec_agent_script(void)
{
    /* the third file of executor_embedded (Makefile) */
    return (const char *)executor_embedded[2].data;
}

/* The conversation's state. */
struct talk {
    struct executor *x;
    const char *cid;
    struct engine_conn *conn;
    struct capture cap;
    struct agent_decoder dec;
    struct buf agent_err; /* the agent's own stderr (its diagnostics) */
    const char *broken;   /* the protocol was broken: how */
    bool collecting;      /* the nonce went out: wait for the report */
};

/* Demultiplexed bytes from the container: stdout is the agent's frames. */
static int on_stream(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct talk *t = ctx;

    if (stream == ENGINE_STDERR) {
        (void)buf_append_upto(&t->agent_err, data, len);
        return 0;
    }
    if (agent_decode(&t->dec, data, len, &t->broken) < 0)
        return -1;
    /* a pause once the agent has said its piece */
    if (t->collecting)
        return t->dec.reported ? 1 : 0;
    return t->dec.exited || t->dec.unclean ? 1 : 0;
}

/* The job's frame: 'J', its length, the settings line, the input tar; -1
 * when it does not fit a frame's 4-byte length. */
static int job_frame(struct executor *x, const struct job_io *io, struct buf *ret, struct err *err)
{
    const struct config *cfg = x->cfg;
    json_auto_t *spec = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:b, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:i}", "timeout",
        (json_int_t)io->timeout_s, "display", (json_int_t)cfg->max_display, "max_file_size",
        (json_int_t)cfg->max_file_size, "max_total", (json_int_t)cfg->output_files_limit,
        "max_files", (json_int_t)cfg->max_output_files, "recycled", io->recycled, "workdir",
        cfg->work_dir, "code", EXEC_CODE_NAME, "private", EXEC_PRIVATE_DIR, "display_dir",
        EXEC_DISPLAY_DIR, "kernel", io->kernel, "keep_processes", io->keep_processes, "reset",
        io->reset, "result_max", EXEC_RESULT_MAX);
    _cleanup_free_ char *line = json_dumps(spec, JSON_COMPACT);
    size_t n = strlen(line) + 1 + io->input_tar->len;
    if (n > UINT32_MAX)
        return err_set(err, ERR_TOO_LARGE, "the input files (%zu bytes) are too large for a frame",
                       io->input_tar->len);
    unsigned char head[5] = {'J', (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                             (unsigned char)(n >> 8), (unsigned char)n};

    buf_put(ret, (const char *)head, sizeof(head));
    buf_put(ret, line, strlen(line));
    buf_put(ret, "\n", 1);
    buf_put(ret, io->input_tar->data, io->input_tar->len);
    return 0;
}

/* The agent said nothing more (the stream ended, the container stopped, the
 * deadline passed, the protocol broke): the container goes, and why goes in
 * the result. */
static void agent_lost(struct talk *t, const struct job_io *io, const struct engine_read_result *rr,
                       struct job_result *res, struct job_outcome *out)
{
    struct executor *x = t->x;
    struct engine_container_state state = {0};
    struct err err = ERR_INIT;

    out->container_usable = false;
    log_debug("executor: job %s: agent lost (ended %d, stopped %d, paused %d, timed out %d, "
              "container stopped %d, exited %d)",
              res->id, rr->ended, rr->stopped, rr->paused, rr->timed_out, rr->container_stopped,
              t->dec.exited);
    if (!rr->ended && !rr->container_stopped && engine_container_kill(x->engine, t->cid, &err) < 0)
        log_warn("executor: cannot kill container '%.12s' of %s, ignoring: %s", t->cid, res->id,
                 err.msg);
    if (engine_container_inspect(x->engine, t->cid, &state, &err) == 0 && state.image_id[0])
        out->image_id = xstrdup(state.image_id);
    if (rr->timed_out && !t->dec.exited) {
        exec_result_timeout(res, io->timeout_s);
        return;
    }
    if (state.oom_killed) {
        exec_result_exit(res, state.exit_code, true, io->memory);
        return;
    }
    /* the agent's own stderr: from inside the container, escaped */
    _cleanup_free_ char *said =
        utf8_escape(buf_str(&t->agent_err), strcspn(buf_str(&t->agent_err), "\n"));
    if (!t->broken && !rr->timed_out && !state.running && state.exit_code > 0) {
        /* the container ended under the job (killed from outside, cancelled):
         * the job ended with it, as under exec */
        log_warn("executor: job %s: its container ended (exit code %d)%s%s", res->id,
                 state.exit_code, said[0] ? ": " : "", said);
        exec_result_exit(res, state.exit_code, false, io->memory);
        return;
    }
    res->status = EXEC_ERROR;
    if (t->broken)
        res->error = xasprintf("the sandbox's agent broke its protocol: %s", t->broken);
    else if (rr->timed_out)
        res->error = xasprintf("the sandbox's agent did not report within %d s",
                               AGENT_COLLECT_TIMEOUT_MS / 1000);
    else
        res->error = xasprintf("the sandbox's agent ended (exit code %d)%s%s", state.exit_code,
                               said[0] ? ": " : "", said);
}

/* The report: status, files, pictures. */
static void judge_report(struct talk *t, const struct job_io *io, const char *nonce,
                         struct job_result *res, struct job_outcome *out)
{
    const struct config *cfg = t->x->cfg;
    struct agent_report rep;
    struct err err = ERR_INIT;
    struct tar_out_limits limits = {.max_file_size = (size_t)cfg->max_file_size,
                                    .max_total = (size_t)cfg->output_files_limit,
                                    .max_files = (size_t)cfg->max_output_files,
                                    .max_display = (size_t)cfg->max_display};

    if (agent_report_parse(t->dec.msg.data, t->dec.msg.len, nonce, limits.max_file_size, &rep,
                           &err) < 0) {
        res->status = EXEC_ERROR;
        res->error = xasprintf("the sandbox's agent broke its protocol: %s", err.msg);
        out->container_usable = false;
        return;
    }
    if (rep.timed_out)
        exec_result_timeout(res, io->timeout_s);
    else
        exec_result_exit(res, rep.rc, rep.oom_kills > 0, io->memory);
    out->preload_errors = steal_ptr(rep.preload_errors);
    out->reported = true;
    res->result = steal_ptr(rep.result);
    res->interpreter_lost = rep.interpreter_died;
    res->files_skipped = steal_ptr(rep.skipped);
    exec_tar_collected(rep.tar, rep.tar_len, rep.truncated, &limits, &res->files, &res->n_files,
                       &res->display, &res->n_display, &res->files_skipped, &err);
    /* every process of the job is gone: the next job of the same principal
     * may have the container (recycling), after the agent cleans it */
    out->container_usable = true;
    agent_report_release(&rep);
}

static void talk_end(struct talk *t, struct job_result *res)
{
    exec_capture_finish(&t->cap, res);
    buf_release(&t->agent_err);
    agent_decoder_release(&t->dec);
    engine_conn_close(t->conn);
}

void exec_agent_run(struct executor *x, const char *cid, const struct job_io *io,
                    struct job_result *res, struct job_outcome *out)
{
    const struct config *cfg = x->cfg;
    struct talk t = {
        .x = x,
        .cid = cid,
        .cap =
            {
                .out = BUF_INIT((size_t)io->output_limit),
                .err = BUF_INIT((size_t)io->output_limit),
                .raw = true,
                .live = io->live,
                .live_ctx = io->live_ctx,
            },
        .agent_err = BUF_INIT(AGENT_STDERR_MAX),
    };
    _cleanup_(buf_release) struct buf frame = BUF_INIT(BUF_UNLIMITED);
    struct engine_read_result rr = {0};
    char nonce[AGENT_NONCE_LEN + 1];

    memset(out, 0, sizeof(*out));
    res->exit_code = -1;
    /* the report: files and pictures within their caps, the tar's headers, the JSON */
    agent_decoder_init(&t.dec, (size_t)cfg->output_files_limit + 2 * 1024 * 1024,
                       exec_capture_output, &t.cap);
    int64_t t0 = time_mono_ms();
    if ((!io->started && engine_container_start(x->engine, cid, &out->engine_err) < 0) ||
        engine_attach(x->engine, cid, t0 + AGENT_ATTACH_TIMEOUT_MS, &t.conn, &out->engine_err) < 0)
        goto engine_failed;
    if (job_frame(x, io, &frame, &out->engine_err) < 0)
        goto engine_failed;
    int64_t deadline = time_mono_ms() + (io->timeout_s + AGENT_GRACE_S) * 1000;
    if (engine_conn_send(t.conn, frame.data, frame.len, deadline, &out->engine_err) < 0 ||
        engine_conn_read(t.conn, on_stream, &t, deadline, &rr, &out->engine_err) < 0)
        goto engine_failed;
    int64_t t1 = time_mono_ms();
    res->execution_time = (double)(t1 - t0) / 1000.0;
    if (t.dec.unclean) {
        /* nothing ran: the executor takes a fresh container */
        exec_result_unclean(res, out, t.dec.msg.data ? t.dec.msg.data : "", t.dec.msg.len);
        goto done;
    }
    if (!t.dec.exited) {
        agent_lost(&t, io, &rr, res, out);
        goto finish;
    }

    /* every process of the job is gone: now, and only now, a nonce */
    id_random_hex(nonce, AGENT_NONCE_LEN / 2);
    unsigned char head[5] = {'C', 0, 0, 0, AGENT_NONCE_LEN};
    buf_truncate(&frame, 0);
    buf_put(&frame, (const char *)head, sizeof(head));
    buf_put(&frame, nonce, AGENT_NONCE_LEN);
    deadline = time_mono_ms() + AGENT_COLLECT_TIMEOUT_MS;
    t.collecting = true;
    if (engine_conn_send(t.conn, frame.data, frame.len, deadline, &out->engine_err) < 0 ||
        engine_conn_read(t.conn, on_stream, &t, deadline, &rr, &out->engine_err) < 0)
        goto engine_failed;
    if (!t.dec.reported) {
        agent_lost(&t, io, &rr, res, out);
        goto finish;
    }
    judge_report(&t, io, nonce, res, out);
    log_debug("executor: job %s run=%lldms collect=%lldms (agent)", res->id, (long long)(t1 - t0),
              (long long)(time_mono_ms() - t1));

finish:
    exec_result_interrupted(x, res, out);
    goto done;

engine_failed:
    exec_result_engine_failed(x, res, out);
done:
    talk_end(&t, res);
}

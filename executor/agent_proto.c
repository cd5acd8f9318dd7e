/* executor/agent_proto.c - what the in-container agent sends, read as the
 * hostile input it may be (the agent shares its container with the job):
 * the frame decoder of its stdout and the report parser. Pure: no engine,
 * no catalog; fuzzed by tests/fuzz/fuzz_agent_stream.c. */
#include <jansson.h>
#include <string.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/json_shape.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

#define AGENT_REPORT_JSON_MAX (1024 * 1024)
/* bytes of a session call's result: EXEC_RESULT_MAX characters of UTF-8 and the note past them */
#define AGENT_RESULT_MAX (4 * (EXEC_RESULT_MAX + 100))
#define AGENT_LIST_MAX 1000

void agent_decoder_init(struct agent_decoder *d, size_t report_max, engine_output_fn output,
                        void *output_ctx)
{
    memset(d, 0, sizeof(*d));
    d->report_max = report_max;
    d->output = output;
    d->output_ctx = output_ctx;
    d->msg = (struct buf)BUF_INIT(report_max > AGENT_TEXT_MAX ? report_max : AGENT_TEXT_MAX);
}

void agent_decoder_release(struct agent_decoder *d)
{
    buf_release(&d->msg);
}

/* A frame's head is complete: may it come now, with that length? */
static const char *frame_refused(const struct agent_decoder *d, char kind, uint32_t len)
{
    if (d->unclean || d->reported)
        return "the agent sent more after its last frame";
    switch (kind) {
    case 'o':
    case 'e':
        if (d->exited)
            return "the agent sent job output after saying the job ended";
        return len > AGENT_DATA_MAX ? "an output frame of the agent is too large" : NULL;
    case 'x':
        if (d->exited)
            return "the agent said twice that the job ended";
        return len ? "the agent's end-of-job frame is not empty" : NULL;
    case 'u':
        if (d->exited)
            return "the agent refused a job after running it";
        return len > AGENT_TEXT_MAX ? "the agent's refusal is too long" : NULL;
    case 'r':
        if (!d->exited)
            return "the agent reported before saying the job ended";
        return len > d->report_max ? "the agent's report is larger than the output limits" : NULL;
    default:
        return "the agent sent a frame of an unknown type";
    }
}

/* The frame being read is complete. */
static void frame_done(struct agent_decoder *d)
{
    if (d->kind == 'x')
        d->exited = true;
    else if (d->kind == 'u')
        d->unclean = true;
    else if (d->kind == 'r')
        d->reported = true;
    d->kind = 0;
}

int agent_decode(struct agent_decoder *d, const char *data, size_t len, const char **ret_why)
{
    while (len > 0) {
        if (d->kind == 0) {
            size_t take = sizeof(d->head) - d->head_len;
            if (take > len)
                take = len;
            memcpy(d->head + d->head_len, data, take);
            d->head_len += take;
            data += take;
            len -= take;
            if (d->head_len < sizeof(d->head))
                return 0;
            d->head_len = 0;
            char kind = (char)d->head[0];
            uint32_t n = (uint32_t)d->head[1] << 24 | (uint32_t)d->head[2] << 16 |
                         (uint32_t)d->head[3] << 8 | (uint32_t)d->head[4];
            const char *why = frame_refused(d, kind, n);
            if (why) {
                *ret_why = why;
                return -1;
            }
            d->kind = kind;
            d->left = n;
            buf_truncate(&d->msg, 0);
            if (n == 0)
                frame_done(d);
            continue;
        }
        size_t take = len < d->left ? len : d->left;
        if (d->kind == 'o' || d->kind == 'e') {
            if (d->output && take)
                d->output(d->output_ctx, d->kind == 'o' ? ENGINE_STDOUT : ENGINE_STDERR, data,
                          take);
        } else if (buf_append(&d->msg, data, take) < 0) {
            /* cannot happen: the length was checked against the same limit */
            *ret_why = "the agent's frame is larger than announced";
            return -1;
        }
        d->left -= (uint32_t)take;
        data += take;
        len -= take;
        if (d->left == 0)
            frame_done(d);
    }
    return 0;
}

void agent_report_release(struct agent_report *r)
{
    strv_free(r->skipped);
    strv_free(r->preload_errors);
    free(r->result);
    memset(r, 0, sizeof(*r));
}

/* "hex of the path's bytes" -> the path; NULL when it is not hex. */
static char *unhex(const char *s, size_t *ret_len)
{
    size_t n = strlen(s);
    if (n % 2)
        return NULL;
    char *out = xmalloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + (size_t)k];
            int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (h < 0) {
                free(out);
                return NULL;
            }
            v = v * 16 + h;
        }
        out[i] = (char)v;
    }
    out[n / 2] = '\0';
    *ret_len = n / 2;
    return out;
}

static int report_fields(json_t *doc, size_t max_file_size, struct agent_report *r, struct err *err)
{
    json_t *rc = json_object_get(doc, "rc"), *timed_out = json_object_get(doc, "timed_out");
    json_t *oom = json_object_get(doc, "oom_kills"), *skipped = json_object_get(doc, "skipped");
    json_t *preload = json_object_get(doc, "preload_errors");
    json_t *result = json_object_get(doc, "result");
    json_t *interp = json_object_get(doc, "interpreter");

    if (!json_is_integer(rc) || json_integer_value(rc) < -1 || json_integer_value(rc) > 255 ||
        !json_is_boolean(timed_out) || !json_is_integer(oom) || json_integer_value(oom) < 0 ||
        !json_is_array(skipped) || json_array_size(skipped) > AGENT_LIST_MAX ||
        (preload && (!json_is_object(preload) || json_object_size(preload) > AGENT_LIST_MAX)) ||
        (result && !json_is_null(result) &&
         (!json_is_string(result) || json_string_length(result) > AGENT_RESULT_MAX)) ||
        (interp && !json_is_string(interp)))
        return err_set(err, ERR_ENGINE, "the agent's report has a field missing or out of range");
    if (json_is_string(result))
        r->result = xstrndup(json_string_value(result), json_string_length(result));
    r->interpreter_died = interp && strcmp(json_string_value(interp), "died") == 0;
    r->rc = (int)json_integer_value(rc);
    r->timed_out = json_is_true(timed_out);
    r->oom_kills = json_integer_value(oom);
    r->truncated = json_is_true(json_object_get(doc, "truncated"));
    size_t i;
    json_t *item;
    json_array_foreach(skipped, i, item)
    {
        json_t *size = json_array_get(item, 0), *path = json_array_get(item, 1);
        size_t len = 0;
        _cleanup_free_ char *raw =
            json_is_integer(size) && json_is_string(path) && json_array_size(item) == 2
                ? unhex(json_string_value(path), &len)
                : NULL;
        if (!raw)
            return err_set(err, ERR_ENGINE, "the agent's report lists a file left out badly");
        exec_skip_large(&r->skipped, raw, len, max_file_size);
    }
    const char *name;
    json_t *why;
    json_object_foreach(preload, name, why)
    {
        const char *text = json_is_string(why) ? json_string_value(why) : "?";
        _cleanup_free_ char *n = utf8_escape(name, strlen(name));
        _cleanup_free_ char *t = utf8_escape(text, strnlen(text, AGENT_TEXT_MAX));
        strv_push(&r->preload_errors, xasprintf("%s: %s", n, t));
    }
    return 0;
}

int agent_report_parse(const char *payload, size_t len, const char *nonce, size_t max_file_size,
                       struct agent_report *ret, struct err *err)
{
    memset(ret, 0, sizeof(*ret));
    if (len < AGENT_NONCE_LEN + 1 || payload[AGENT_NONCE_LEN] != '\n' ||
        strlen(nonce) != AGENT_NONCE_LEN || memcmp(payload, nonce, AGENT_NONCE_LEN) != 0)
        return err_set(err, ERR_ENGINE, "the agent's report does not carry the nonce envhub sent");
    const char *json = payload + AGENT_NONCE_LEN + 1;
    size_t left = len - AGENT_NONCE_LEN - 1;
    const char *nl =
        memchr(json, '\n', left < AGENT_REPORT_JSON_MAX ? left : AGENT_REPORT_JSON_MAX);
    if (!nl)
        return err_set(err, ERR_ENGINE, "the agent's report has no end");
    struct err serr = ERR_INIT;
    if (json_shape_check(json, (size_t)(nl - json), &JSON_SHAPE_ENGINE, "report", &serr) < 0)
        return err_set(err, ERR_ENGINE, "the agent's report: %s", serr.msg);
    json_error_t jerr;
    json_auto_t *doc = json_loadb(json, (size_t)(nl - json), 0, &jerr);
    if (!json_is_object(doc))
        return err_set(err, ERR_ENGINE, "the agent's report is not a JSON object");
    if (report_fields(doc, max_file_size, ret, err) < 0) {
        agent_report_release(ret);
        return -1;
    }
    ret->tar = nl + 1;
    ret->tar_len = left - (size_t)(nl + 1 - json);
    return 0;
}

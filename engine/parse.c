/* engine/parse.c - the pure parts of the engine client: the multiplexed
 * stdout/stderr stream, the engine's JSON answers and version strings. No I/O
 * here, so every function is fed by fixtures in tests/unit/test_engine.c. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/json_shape.h"
#include "core/xalloc.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"

#include "core/banned.h"

json_t *engine_json_load(const char *text, size_t len, json_error_t *jerr)
{
    struct err err = ERR_INIT;

    if (json_shape_check(text, len, &JSON_SHAPE_ENGINE, "answer", &err) < 0) {
        memset(jerr, 0, sizeof(*jerr));
        snprintf(jerr->text, sizeof(jerr->text), "%.150s", err.msg);
        return NULL;
    }
    return json_loadb(text, len, 0, jerr);
}

void engine_demux_init(struct engine_demux *d)
{
    memset(d, 0, sizeof(*d));
}

int engine_demux_feed(struct engine_demux *d, const char *data, size_t len, engine_output_fn fn,
                      void *ctx, const char **ret_why)
{
    while (len > 0) {
        if (d->remaining == 0) {
            size_t take = sizeof(d->header) - d->header_len;
            if (take > len)
                take = len;
            memcpy(d->header + d->header_len, data, take);
            d->header_len += take;
            data += take;
            len -= take;
            if (d->header_len < sizeof(d->header))
                return 0;
            d->header_len = 0;
            if ((d->header[0] != ENGINE_STDOUT && d->header[0] != ENGINE_STDERR &&
                 d->header[0] != ENGINE_STDIN) ||
                d->header[1] || d->header[2] || d->header[3]) {
                if (ret_why)
                    *ret_why = "bad frame header in the exec stream";
                return -1;
            }
            d->stream = (enum engine_stream)d->header[0];
            d->remaining = (uint32_t)d->header[4] << 24 | (uint32_t)d->header[5] << 16 |
                           (uint32_t)d->header[6] << 8 | (uint32_t)d->header[7];
            continue;
        }
        size_t take = len < d->remaining ? len : d->remaining;
        /* stdin frames only appear with a TTY; treat them as stdout */
        enum engine_stream s = d->stream == ENGINE_STDERR ? ENGINE_STDERR : ENGINE_STDOUT;
        if (fn && fn(ctx, s, data, take) < 0) {
            if (ret_why)
                *ret_why = NULL;
            return -1;
        }
        d->remaining -= (uint32_t)take;
        data += take;
        len -= take;
    }
    return 0;
}

char *engine_parse_error_message(const char *body, size_t len)
{
    json_error_t jerr;
    json_auto_t *doc = engine_json_load(body, len, &jerr);
    const char *msg = NULL;

    if (doc && json_is_object(doc)) {
        msg = json_string_value(json_object_get(doc, "message"));
        if (!msg)
            msg = json_string_value(json_object_get(doc, "error"));
    }
    if (msg)
        return xstrdup(msg);
    if (len == 0)
        return xstrdup("no message");
    /* not JSON: keep the first line of the raw body */
    size_t n = 0;
    while (n < len && n < 200 && body[n] != '\n' && body[n] != '\r')
        n++;
    return xstrndup(body, n);
}

int engine_parse_container_state(const char *json, struct engine_container_state *ret,
                                 struct err *err)
{
    json_error_t jerr;
    json_auto_t *doc = engine_json_load(json, strlen(json), &jerr);
    json_t *state;
    const char *status;

    if (!doc)
        return err_set(err, ERR_ENGINE, "cannot parse container state: %s", jerr.text);
    state = json_object_get(doc, "State");
    if (!json_is_object(state))
        return err_set(err, ERR_ENGINE, "container inspect answer has no State");
    memset(ret, 0, sizeof(*ret));
    ret->running = json_is_true(json_object_get(state, "Running"));
    ret->oom_killed = json_is_true(json_object_get(state, "OOMKilled"));
    ret->exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
    status = json_string_value(json_object_get(state, "Status"));
    snprintf(ret->status, sizeof(ret->status), "%s", status ? status : "unknown");
    const char *image = json_string_value(json_object_get(doc, "Image"));
    snprintf(ret->image_id, sizeof(ret->image_id), "%s", image ? image : "");
    return 0;
}

void engine_image_info_release(struct engine_image_info *info)
{
    if (!info)
        return;
    free(info->id);
    free(info->created);
    strv_free(info->volumes);
    memset(info, 0, sizeof(*info));
}

int engine_parse_image_info(const char *json, struct engine_image_info *ret, struct err *err)
{
    json_error_t jerr;
    json_auto_t *doc = engine_json_load(json, strlen(json), &jerr);
    const char *id, *created;

    if (!doc)
        return err_set(err, ERR_ENGINE, "cannot parse image inspect answer: %s", jerr.text);
    id = json_string_value(json_object_get(doc, "Id"));
    if (!id)
        return err_set(err, ERR_ENGINE, "image inspect answer has no Id");
    created = json_string_value(json_object_get(doc, "Created"));
    ret->id = xstrdup(id);
    ret->created = xstrdup(created ? created : "");
    ret->size = json_integer_value(json_object_get(doc, "Size"));
    /* {"/data": {}, ...}; an image from before the engine had Config has none */
    json_t *volumes = json_object_get(json_object_get(doc, "Config"), "Volumes");
    const char *path;
    json_t *v;
    json_object_foreach(volumes, path, v) strv_push(&ret->volumes, xstrdup(path));
    return 0;
}

int engine_version_compare(const char *a, const char *b)
{
    for (int part = 0; part < 4; part++) {
        char *ea, *eb;
        long x = strtol(a, &ea, 10), y = strtol(b, &eb, 10);
        if (x != y)
            return x < y ? -1 : 1;
        if (*ea != '.' && *eb != '.')
            return 0;
        a = *ea == '.' ? ea + 1 : ea;
        b = *eb == '.' ? eb + 1 : eb;
    }
    return 0;
}

/* ---- the progress stream of /build and /images/create ---- */

#define PROGRESS_JSON_MAX (1024 * 1024) /* one JSON object */
#define PROGRESS_LINE_MAX (64 * 1024)   /* one log line; longer ones are cut */

void engine_progress_init(struct engine_progress *p, engine_line_fn on_line, void *ctx)
{
    memset(p, 0, sizeof(*p));
    p->partial = (struct buf)BUF_INIT(PROGRESS_JSON_MAX);
    p->text = (struct buf)BUF_INIT(PROGRESS_LINE_MAX);
    p->on_line = on_line;
    p->ctx = ctx;
}

void engine_progress_release(struct engine_progress *p)
{
    buf_release(&p->partial);
    buf_release(&p->text);
}

/* Copy of a line without terminal escape sequences (the classic builder
 * colours a step's stderr) and carriage returns. */
static char *strip_terminal(const char *line, size_t len)
{
    char *out = xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == 0x1b && i + 1 < len && line[i + 1] == '[') {
            i += 2;
            while (i < len && !((line[i] >= '@' && line[i] <= '~')))
                i++;
            continue;
        }
        if (line[i] == '\r')
            continue;
        out[o++] = line[i];
    }
    out[o] = '\0';
    return out;
}

static void progress_emit(struct engine_progress *p, const char *line, size_t len)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    /* an "error" or "status" may hold several lines (a failed RUN quotes its
     * script): on_line gets each apart, as it gets "stream" text */
    for (;;) {
        const char *nl = memchr(line, '\n', len);
        size_t n = nl ? (size_t)(nl - line) : len;
        if (p->cancelled || !p->on_line)
            return;
        _cleanup_free_ char *copy = strip_terminal(line, n);
        if (p->on_line(p->ctx, copy) < 0)
            p->cancelled = true;
        if (!nl)
            return;
        line = nl + 1;
        len -= n + 1;
    }
}

/* Split @s at newlines: each complete piece goes to @done with what @b held
 * before it; the tail stays in @b (cut at b's limit: an endless line is
 * shortened, never grown without bound). */
static void split_lines(struct buf *b, const char *s, size_t len,
                        void (*done)(struct engine_progress *p, const char *line, size_t n),
                        struct engine_progress *p)
{
    while (len > 0) {
        const char *nl = memchr(s, '\n', len);
        size_t piece = nl ? (size_t)(nl - s) : len;
        (void)buf_append_upto(b, s, piece);
        if (!nl)
            return;
        done(p, buf_str(b), b->len);
        buf_reset(b);
        s += piece + 1;
        len -= piece + 1;
    }
}

/* "stream" text: complete lines go out, the rest waits for its newline. */
static void progress_text(struct engine_progress *p, const char *s, size_t len)
{
    split_lines(&p->text, s, len, progress_emit, p);
}

static void progress_object(struct engine_progress *p, const char *json, size_t len)
{
    json_error_t jerr;
    json_auto_t *doc = len ? engine_json_load(json, len, &jerr) : NULL;
    json_t *v;

    if (!json_is_object(doc))
        return;
    if ((v = json_object_get(doc, "stream")) && json_is_string(v))
        progress_text(p, json_string_value(v), json_string_length(v));
    if ((v = json_object_get(doc, "aux")) && json_is_object(v)) {
        const char *id = json_string_value(json_object_get(v, "ID"));
        const char *digest = json_string_value(json_object_get(v, "Digest"));
        if (id)
            snprintf(p->image_id, sizeof(p->image_id), "%s", id);
        if (digest && engine_digest_valid(digest))
            snprintf(p->digest, sizeof(p->digest), "%s", digest);
    }
    if ((v = json_object_get(doc, "error")) && json_is_string(v)) {
        snprintf(p->error, sizeof(p->error), "%s", json_string_value(v));
        _cleanup_free_ char *line = xasprintf("ERROR: %s", json_string_value(v));
        progress_emit(p, line, strlen(line));
    }
    if ((v = json_object_get(doc, "status")) && json_is_string(v)) {
        /* pull progress bars repeat many times a second: keep the milestones */
        json_t *detail = json_object_get(doc, "progressDetail");
        if (!json_is_object(detail) || json_object_size(detail) == 0) {
            const char *id = json_string_value(json_object_get(doc, "id"));
            _cleanup_free_ char *line =
                id ? xasprintf("%s: %s", id, json_string_value(v)) : xstrdup(json_string_value(v));
            progress_emit(p, line, strlen(line));
        }
    }
}

int engine_progress_feed(struct engine_progress *p, const char *data, size_t len)
{
    split_lines(&p->partial, data, len, progress_object, p);
    return p->cancelled ? -1 : 0;
}

void engine_progress_finish(struct engine_progress *p)
{
    if (p->partial.len)
        progress_object(p, buf_str(&p->partial), p->partial.len);
    buf_reset(&p->partial);
    if (p->text.len)
        progress_emit(p, buf_str(&p->text), p->text.len);
    buf_reset(&p->text);
}

bool engine_digest_valid(const char *digest)
{
    if (strncmp(digest, "sha256:", 7) != 0)
        return false;
    const char *hex = digest + 7;
    return strlen(hex) == 64 && strspn(hex, "0123456789abcdef") == 64;
}

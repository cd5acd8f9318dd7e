/* tests/fuzz/fuzz_build_progress.c - engine_progress_feed and
 * engine_progress_finish (engine/parse.c): the JSON lines /build and
 * /images/create stream back, whose "stream" text and "error" come from a
 * setup script we do not trust.
 *
 * Input: two bytes giving a split position, one byte giving how many lines
 * on_line takes before it cancels (255: never), then the stream.
 * Properties: every line handed out is one line (no newline, no carriage
 * return); feeding in two pieces split anywhere gives the same lines, image
 * id and error as feeding at once; a cancel is reported by the feed that
 * caused it and no line follows it; image id and error stay terminated. */
#include "core/buf.h"
#include "engine/engine.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

struct lines {
    struct buf all; /* each line and a newline */
    size_t n, cancel_after;
};

static int on_line(void *ctx, const char *line)
{
    struct lines *l = ctx;

    FUZZ_CHECK(l->n <= l->cancel_after); /* nothing after a cancel */
    FUZZ_CHECK(strchr(line, '\n') == NULL && strchr(line, '\r') == NULL);
    FUZZ_CHECK(buf_appendf(&l->all, "%s\n", line) == 0);
    l->n++;
    return l->n > l->cancel_after ? -1 : 0;
}

struct run {
    struct lines lines;
    char image_id[80];
    char error[ERR_MSG_MAX];
    bool cancelled;
};

static void feed(const uint8_t *data, size_t size, size_t split, size_t cancel_after, struct run *r)
{
    struct engine_progress p;
    const char *s = (const char *)data;

    r->lines = (struct lines){.all = BUF_INIT(BUF_UNLIMITED), .cancel_after = cancel_after};
    engine_progress_init(&p, on_line, &r->lines);
    int rc = engine_progress_feed(&p, s, split);
    FUZZ_CHECK(rc == (p.cancelled ? -1 : 0));
    if (rc == 0) {
        rc = engine_progress_feed(&p, s + split, size - split);
        FUZZ_CHECK(rc == (p.cancelled ? -1 : 0));
    }
    if (rc == 0)
        engine_progress_finish(&p);
    FUZZ_CHECK(p.cancelled == (r->lines.n > cancel_after));
    FUZZ_CHECK(strnlen(p.image_id, sizeof(p.image_id)) < sizeof(p.image_id));
    FUZZ_CHECK(strnlen(p.error, sizeof(p.error)) < sizeof(p.error));
    memcpy(r->image_id, p.image_id, sizeof(r->image_id));
    memcpy(r->error, p.error, sizeof(r->error));
    r->cancelled = p.cancelled;
    engine_progress_release(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t lo = fuzz_take_byte(&data, &size), hi = fuzz_take_byte(&data, &size);
    uint8_t cancel = fuzz_take_byte(&data, &size);
    size_t split = ((size_t)hi << 8 | lo) % (size + 1);
    size_t cancel_after = cancel == 255 ? SIZE_MAX : cancel;
    struct run whole, halves;

    feed(data, size, size, cancel_after, &whole);
    feed(data, size, split, cancel_after, &halves);
    FUZZ_CHECK(whole.cancelled == halves.cancelled);
    FUZZ_CHECK(whole.lines.n == halves.lines.n);
    FUZZ_CHECK(strcmp(buf_str(&whole.lines.all), buf_str(&halves.lines.all)) == 0);
    if (!whole.cancelled) {
        FUZZ_CHECK(strcmp(whole.image_id, halves.image_id) == 0);
        FUZZ_CHECK(strcmp(whole.error, halves.error) == 0);
    }
    buf_release(&whole.lines.all);
    buf_release(&halves.lines.all);
    return 0;
}

/* tests/fuzz/fuzz_engine_stream.c - engine_demux_feed (engine/parse.c), the
 * reader of an exec's multiplexed stdout/stderr: 8-byte headers (stream,
 * three zero bytes, big-endian length) each followed by its payload, as
 * the engine relays them from code we do not trust.
 *
 * Input: two bytes giving a split position, one byte giving how many payload
 * bytes the output callback takes before it asks to stop (255: never), then
 * the stream. Properties: feeding the stream at once, in two pieces split
 * anywhere, or a byte at a time gives the same output (same bytes, same
 * streams, same order) and the same result; a malformed stream says why,
 * a stop does not; no more payload comes out than went in. */
#include "core/buf.h"
#include "engine/engine.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

struct sink {
    struct buf out;     /* a marker byte at each change of stream, then the bytes */
    int last;           /* the stream of the last piece kept, -1 before any */
    size_t taken, stop; /* payload bytes so far; stop past this many (SIZE_MAX: never) */
};

/* Keeps the payload up to the stop (pieces differ with the split, the bytes
 * up to there do not). */
static int collect(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct sink *s = ctx;
    size_t keep = len;

    FUZZ_CHECK(stream == ENGINE_STDOUT || stream == ENGINE_STDERR);
    FUZZ_CHECK(len > 0);
    if (s->stop != SIZE_MAX && keep > s->stop + 1 - s->taken)
        keep = s->stop + 1 - s->taken;
    if (keep > 0 && (int)stream != s->last) {
        FUZZ_CHECK(buf_append(&s->out, stream == ENGINE_STDOUT ? "O" : "E", 1) == 0);
        s->last = (int)stream;
    }
    FUZZ_CHECK(buf_append(&s->out, data, keep) == 0);
    s->taken += len;
    return s->taken > s->stop ? -1 : 0;
}

struct run {
    struct sink sink;
    int rc;
    const char *why;
};

/* Feed @data in two pieces split at @split, or (@bytewise) a byte at a time. */
static void feed(const uint8_t *data, size_t size, size_t split, bool bytewise, size_t stop,
                 struct run *r)
{
    struct engine_demux d;
    const char *p = (const char *)data;

    engine_demux_init(&d);
    r->sink = (struct sink){.out = BUF_INIT(BUF_UNLIMITED), .last = -1, .stop = stop};
    r->rc = 0;
    r->why = "unset";
    if (bytewise) {
        for (size_t i = 0; i < size && r->rc == 0; i++)
            r->rc = engine_demux_feed(&d, p + i, 1, collect, &r->sink, &r->why);
    } else {
        r->rc = engine_demux_feed(&d, p, split, collect, &r->sink, &r->why);
        if (r->rc == 0)
            r->rc = engine_demux_feed(&d, p + split, size - split, collect, &r->sink, &r->why);
    }
    FUZZ_CHECK(r->rc == 0 || r->rc == -1);
    FUZZ_CHECK(d.header_len < sizeof(d.header));
    if (r->rc == 0)
        FUZZ_CHECK(strcmp(r->why, "unset") == 0); /* untouched on success */
    else if (r->sink.taken > stop)
        FUZZ_CHECK(r->why == NULL); /* the callback stopped it */
    else
        FUZZ_CHECK(r->why != NULL && r->why[0] != '\0' && strchr(r->why, '\n') == NULL);
    /* every payload byte came with at least one header before it */
    FUZZ_CHECK(r->sink.taken + (r->sink.taken ? 8 : 0) <= size);
}

static void same(const struct run *a, const struct run *b)
{
    FUZZ_CHECK(a->rc == b->rc);
    FUZZ_CHECK(a->sink.out.len == b->sink.out.len);
    FUZZ_CHECK(a->sink.out.len == 0 ||
               memcmp(a->sink.out.data, b->sink.out.data, a->sink.out.len) == 0);
    FUZZ_CHECK((a->why == NULL) == (b->why == NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t lo = fuzz_take_byte(&data, &size), hi = fuzz_take_byte(&data, &size);
    uint8_t stop_at = fuzz_take_byte(&data, &size);
    size_t split = ((size_t)hi << 8 | lo) % (size + 1);
    size_t stop = stop_at == 255 ? SIZE_MAX : stop_at;
    struct run whole, halves, bytes;

    feed(data, size, size, false, stop, &whole);
    feed(data, size, split, false, stop, &halves);
    same(&whole, &halves);
    if (size <= 4096) { /* a call per byte: keep it cheap */
        feed(data, size, 0, true, stop, &bytes);
        same(&whole, &bytes);
        buf_release(&bytes.sink.out);
    }
    buf_release(&whole.sink.out);
    buf_release(&halves.sink.out);
    return 0;
}

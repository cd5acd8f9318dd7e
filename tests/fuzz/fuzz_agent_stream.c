/* tests/fuzz/fuzz_agent_stream.c - agent_decode and agent_report_parse
 * (executor/agent_proto.c), the readers of the in-container agent's stdout:
 * frames of a type byte and a 4-byte length, written by a process that
 * shares its container with the code we run.
 *
 * Input: two bytes giving a split position, one byte giving the report
 * limit (in 64-byte steps), then the stream. Properties: feeding it whole
 * or in two pieces split anywhere gives the same output, flags and verdict;
 * a refusal says why; no more output comes out than went in; the flags
 * follow the protocol's order (a report only after the end, never both a
 * refusal and an end); a report is parsed against a fixed nonce without
 * crashing, and what it gives (lists, tar) stays inside its payload. */
#include "core/buf.h"
#include "core/util.h"
#include "executor/executor_internal.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

#define NONCE "0123456789abcdef0123456789abcdef"

struct run {
    struct buf out, err; /* the job's bytes of each stream */
    struct agent_decoder d;
    int rc;
    const char *why;
};

static int collect(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct run *r = ctx;
    FUZZ_CHECK(stream == ENGINE_STDOUT || stream == ENGINE_STDERR);
    FUZZ_CHECK(len > 0 && len <= AGENT_DATA_MAX);
    FUZZ_CHECK(buf_append(stream == ENGINE_STDOUT ? &r->out : &r->err, data, len) == 0);
    return 0;
}

static void feed(const uint8_t *data, size_t size, size_t split, size_t report_max, struct run *r)
{
    const char *p = (const char *)data;

    r->out = (struct buf)BUF_INIT(BUF_UNLIMITED);
    r->err = (struct buf)BUF_INIT(BUF_UNLIMITED);
    agent_decoder_init(&r->d, report_max, collect, r);
    r->why = NULL;
    r->rc = agent_decode(&r->d, p, split, &r->why);
    if (r->rc == 0)
        r->rc = agent_decode(&r->d, p + split, size - split, &r->why);
    FUZZ_CHECK(r->rc == 0 || (r->rc == -1 && r->why && r->why[0]));
    FUZZ_CHECK(!(r->d.reported && !r->d.exited));
    FUZZ_CHECK(!(r->d.unclean && r->d.exited));
    FUZZ_CHECK(r->d.msg.len <= size);
}

static bool same_bytes(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t lo = fuzz_take_byte(&data, &size), hi = fuzz_take_byte(&data, &size);
    size_t report_max = 64 * (size_t)fuzz_take_byte(&data, &size) + 64;
    size_t split = ((size_t)hi << 8 | lo) % (size + 1);
    struct run whole, halves;

    feed(data, size, size, report_max, &whole);
    feed(data, size, split, report_max, &halves);
    FUZZ_CHECK(whole.rc == halves.rc);
    FUZZ_CHECK(whole.d.exited == halves.d.exited && whole.d.reported == halves.d.reported &&
               whole.d.unclean == halves.d.unclean);
    /* pieces differ with the split, the bytes of each stream do not; each
     * came with a 5-byte head before it */
    FUZZ_CHECK(same_bytes(&whole.out, &halves.out) && same_bytes(&whole.err, &halves.err));
    FUZZ_CHECK(whole.out.len + whole.err.len + (whole.out.len + whole.err.len ? 5 : 0) <= size);
    if (whole.d.reported) {
        struct agent_report rep;
        struct err err = ERR_INIT;
        const char *payload = whole.d.msg.data ? whole.d.msg.data : "";
        if (agent_report_parse(payload, whole.d.msg.len, NONCE, 1000, &rep, &err) == 0) {
            FUZZ_CHECK(rep.tar >= payload && rep.tar + rep.tar_len == payload + whole.d.msg.len);
            FUZZ_CHECK(rep.rc >= -1 && rep.rc <= 255 && rep.oom_kills >= 0);
            for (char **s = rep.skipped; s && *s; s++)
                FUZZ_CHECK(utf8_valid(*s, strlen(*s)));
            for (char **s = rep.preload_errors; s && *s; s++)
                FUZZ_CHECK(utf8_valid(*s, strlen(*s)));
            agent_report_release(&rep);
        } else {
            fuzz_check_err(&err);
        }
    }
    agent_decoder_release(&whole.d);
    agent_decoder_release(&halves.d);
    buf_release(&whole.out);
    buf_release(&whole.err);
    buf_release(&halves.out);
    buf_release(&halves.err);
    return 0;
}

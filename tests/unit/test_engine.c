/* tests/unit/test_engine.c - the pure parts of the engine client
 * (engine/parse.c): the stdout/stderr demultiplexer fed in every possible
 * chunking, and the parsers of the engine's JSON answers, fed by the
 * recorded-style answers in tests/fixtures/engine/ (read relative to the
 * repository root, where make runs the tests). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/xalloc.h"
#include "engine/engine.h"

#include "core/banned.h"

#define FIXTURES "tests/fixtures/engine/"

/* The whole file as a NUL-terminated string; the test fails naming the path
 * when it cannot be read (run the tests from the repository root). */
static char *read_fixture(const char *name, size_t *ret_len)
{
    char path[256];
    struct buf b = BUF_INIT(BUF_UNLIMITED);
    char chunk[4096];
    size_t n;

    snprintf(path, sizeof(path), FIXTURES "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open fixture '%s' (run from the repository root): %s", path,
                 strerror(errno));
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(&b, chunk, n) < 0)
            fail_msg("fixture '%s' is too large", path);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        buf_release(&b);
        fail_msg("cannot read fixture '%s'", path);
    }
    return buf_detach(&b, ret_len);
}

/* ---- demultiplexer ---- */

/* What the callback saw: the bytes of each stream, and for every byte the
 * stream it came on, so two chunkings can be compared exactly. */
struct sink {
    struct buf out, err, order;
    int calls, zero_calls, stdin_calls;
    int stop_at_call; /* return -1 on this call (1-based); 0: never */
};

static void sink_init(struct sink *s)
{
    memset(s, 0, sizeof(*s));
    s->out = (struct buf)BUF_INIT(BUF_UNLIMITED);
    s->err = (struct buf)BUF_INIT(BUF_UNLIMITED);
    s->order = (struct buf)BUF_INIT(BUF_UNLIMITED);
}

static void sink_release(struct sink *s)
{
    buf_release(&s->out);
    buf_release(&s->err);
    buf_release(&s->order);
}

static int sink_fn(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct sink *s = ctx;

    s->calls++;
    if (s->stop_at_call && s->calls == s->stop_at_call)
        return -1;
    if (len == 0)
        s->zero_calls++;
    if (stream == ENGINE_STDIN)
        s->stdin_calls++;
    struct buf *b = stream == ENGINE_STDERR ? &s->err : &s->out;
    if (buf_append(b, data, len) < 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (buf_append(&s->order, stream == ENGINE_STDERR ? "2" : "1", 1) < 0)
            return -1;
    return 0;
}

static void sink_assert_equal(const struct sink *a, const struct sink *b)
{
    assert_int_equal(a->out.len, b->out.len);
    assert_int_equal(a->err.len, b->err.len);
    assert_int_equal(a->order.len, b->order.len);
    assert_memory_equal(buf_str(&a->out), buf_str(&b->out), a->out.len);
    assert_memory_equal(buf_str(&a->err), buf_str(&b->err), a->err.len);
    assert_memory_equal(buf_str(&a->order), buf_str(&b->order), a->order.len);
}

static void frame(struct buf *b, unsigned char stream, const void *data, size_t len)
{
    unsigned char h[8] = {stream,
                          0,
                          0,
                          0,
                          (unsigned char)(len >> 24),
                          (unsigned char)(len >> 16),
                          (unsigned char)(len >> 8),
                          (unsigned char)len};
    assert_int_equal(buf_append(b, h, sizeof(h)), 0);
    assert_int_equal(buf_append(b, data, len), 0);
}

static void frames_str(struct buf *b, unsigned char stream, const char *s)
{
    frame(b, stream, s, strlen(s));
}

/* Feed data in the chunk sizes a generator picks; each feed must succeed. */
static void feed_all(struct sink *s, const char *data, size_t len, size_t (*next)(void *), void *g)
{
    struct engine_demux d;
    const char *why = NULL;

    engine_demux_init(&d);
    for (size_t off = 0; off < len;) {
        size_t n = next(g);
        if (n > len - off)
            n = len - off;
        if (engine_demux_feed(&d, data + off, n, sink_fn, s, &why) != 0)
            fail_msg("feed failed at offset %zu: %s", off, why ? why : "(callback)");
        off += n;
    }
    /* the stream ended on a frame boundary */
    assert_int_equal(d.header_len, 0);
    assert_int_equal(d.remaining, 0);
}

static size_t chunk_one(void *g)
{
    (void)g;
    return 1;
}

static size_t chunk_fixed(void *g)
{
    return *(size_t *)g;
}

/* xorshift64: deterministic random chunk sizes 1..5000 */
static size_t chunk_random(void *g)
{
    uint64_t *x = g;
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (size_t)(*x % 5000) + 1;
}

static void demux_one_frame(void **state)
{
    struct buf in = BUF_INIT(BUF_UNLIMITED);
    struct engine_demux d;
    struct sink s;
    const char *why = "untouched";
    (void)state;

    frames_str(&in, ENGINE_STDOUT, "hello\n");
    sink_init(&s);
    engine_demux_init(&d);
    assert_int_equal(engine_demux_feed(&d, in.data, in.len, sink_fn, &s, &why), 0);
    assert_string_equal(why, "untouched");
    assert_int_equal(s.calls, 1);
    assert_string_equal(buf_str(&s.out), "hello\n");
    assert_int_equal(s.err.len, 0);
    sink_release(&s);
    buf_release(&in);
}

static void demux_interleaved_stdout_and_stderr(void **state)
{
    struct buf in = BUF_INIT(BUF_UNLIMITED);
    struct engine_demux d;
    struct sink s;
    (void)state;

    frames_str(&in, ENGINE_STDOUT, "out1 ");
    frames_str(&in, ENGINE_STDERR, "err1 ");
    frames_str(&in, ENGINE_STDOUT, "out2 ");
    frames_str(&in, ENGINE_STDERR, "Traceback...\n");
    frames_str(&in, ENGINE_STDOUT, "out3");
    sink_init(&s);
    engine_demux_init(&d);
    assert_int_equal(engine_demux_feed(&d, in.data, in.len, sink_fn, &s, NULL), 0);
    assert_string_equal(buf_str(&s.out), "out1 out2 out3");
    assert_string_equal(buf_str(&s.err), "err1 Traceback...\n");
    assert_string_equal(buf_str(&s.order), "11111222221111122222222222221111");
    assert_int_equal(s.calls, 5);
    sink_release(&s);
    buf_release(&in);
}

/* The stream as the tests below feed it in pieces: headers and payloads of
 * both streams, a zero-length frame, binary bytes and a stdin frame. */
static void build_mixed_stream(struct buf *in)
{
    unsigned char bin[300];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)(i * 31);
    frames_str(in, ENGINE_STDOUT, "first line\n");
    frames_str(in, ENGINE_STDERR, "warning: x\n");
    frame(in, ENGINE_STDOUT, "", 0);
    frame(in, ENGINE_STDERR, bin, sizeof(bin));
    frames_str(in, ENGINE_STDOUT, "\xe4\xbb\xa3\xe7\xa0\x81");
    frame(in, ENGINE_STDOUT, "a\0b", 3);
    frames_str(in, ENGINE_STDERR, "e");
    frames_str(in, ENGINE_STDOUT, "last");
}

static void demux_frame_split_at_every_byte_boundary(void **state)
{
    struct buf in = BUF_INIT(BUF_UNLIMITED);
    struct sink whole;
    (void)state;

    build_mixed_stream(&in);
    sink_init(&whole);
    size_t all = in.len;
    feed_all(&whole, in.data, in.len, chunk_fixed, &all);
    assert_int_equal(whole.out.len + whole.err.len, in.len - 8 * 8);

    /* two feeds, split at each position */
    for (size_t cut = 0; cut <= in.len; cut++) {
        struct engine_demux d;
        struct sink s;
        sink_init(&s);
        engine_demux_init(&d);
        assert_int_equal(engine_demux_feed(&d, in.data, cut, sink_fn, &s, NULL), 0);
        assert_int_equal(engine_demux_feed(&d, in.data + cut, in.len - cut, sink_fn, &s, NULL), 0);
        sink_assert_equal(&whole, &s);
        assert_int_equal(s.zero_calls, 0);
        sink_release(&s);
    }

    /* one byte at a time */
    struct sink bytes;
    sink_init(&bytes);
    feed_all(&bytes, in.data, in.len, chunk_one, NULL);
    sink_assert_equal(&whole, &bytes);
    sink_release(&bytes);

    sink_release(&whole);
    buf_release(&in);
}

static void demux_random_chunk_sizes_give_identical_output(void **state)
{
    struct buf in = BUF_INIT(BUF_UNLIMITED);
    struct sink whole;
    (void)state;

    /* many frames of varied sizes so chunks straddle headers and payloads */
    for (int i = 0; i < 200; i++) {
        char payload[700];
        size_t n = (size_t)(i * 37 % 700);
        memset(payload, 'a' + i % 26, n);
        frame(&in, i % 3 ? ENGINE_STDOUT : ENGINE_STDERR, payload, n);
    }
    sink_init(&whole);
    size_t all = in.len;
    feed_all(&whole, in.data, in.len, chunk_fixed, &all);

    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct sink s;
        uint64_t x = seed * 0x9e3779b97f4a7c15ULL;
        sink_init(&s);
        feed_all(&s, in.data, in.len, chunk_random, &x);
        sink_assert_equal(&whole, &s);
        sink_release(&s);
    }
    for (size_t size = 2; size <= 17; size++) {
        struct sink s;
        sink_init(&s);
        feed_all(&s, in.data, in.len, chunk_fixed, &size);
        sink_assert_equal(&whole, &s);
        sink_release(&s);
    }
    sink_release(&whole);
    buf_release(&in);
}

static void demux_zero_length_frame_gives_no_call(void **state)
{
    struct buf in = BUF_INIT(BUF_UNLIMITED);
    struct engine_demux d;
    struct sink s;
    (void)state;

    frames_str(&in, ENGINE_STDOUT, "a");
    frame(&in, ENGINE_STDOUT, "", 0);
    frame(&in, ENGINE_STDERR, "", 0);
    frames_str(&in, ENGINE_STDOUT, "b");
    sink_init(&s);
    engine_demux_init(&d);
    assert_int_equal(engine_demux_feed(&d, in.data, in.len, sink_fn, &s, NULL), 0);
    assert_string_equal(buf_str(&s.out), "ab");
    assert_int_equal(s.err.len, 0);
    assert_int_equal(s.calls, 2);
    assert_int_equal(s.zero_calls, 0);

    /* a stream of nothing but an empty frame */
    buf_reset(&in);
    frame(&in, ENGINE_STDERR, "", 0);
    engine_demux_init(&d);
    assert_int_equal(engine_demux_feed(&d, in.data, in.len, sink_fn, &s, NULL), 0);
    assert_int_equal(s.calls, 2);
    /* feeding nothing is fine */
    assert_int_equal(engine_demux_feed(&d, NULL, 0, sink_fn, &s, NULL), 0);
    sink_release(&s);
    buf_release(&in);
}

static void demux_partial_header_waits_for_more(void **state)
{
    struct buf in = BUF_INIT(BUF_UNLIMITED);
    struct engine_demux d;
    struct sink s;
    (void)state;

    frames_str(&in, ENGINE_STDERR, "xyz");
    sink_init(&s);
    engine_demux_init(&d);
    assert_int_equal(engine_demux_feed(&d, in.data, 5, sink_fn, &s, NULL), 0);
    assert_int_equal(s.calls, 0);
    assert_int_equal(engine_demux_feed(&d, in.data + 5, 4, sink_fn, &s, NULL), 0);
    assert_string_equal(buf_str(&s.err), "x");
    assert_int_equal(engine_demux_feed(&d, in.data + 9, in.len - 9, sink_fn, &s, NULL), 0);
    assert_string_equal(buf_str(&s.err), "xyz");
    sink_release(&s);
    buf_release(&in);
}

static void demux_stdin_frames_count_as_stdout(void **state)
{
    struct buf in = BUF_INIT(BUF_UNLIMITED);
    struct engine_demux d;
    struct sink s;
    (void)state;

    frames_str(&in, ENGINE_STDIN, "tty");
    sink_init(&s);
    engine_demux_init(&d);
    assert_int_equal(engine_demux_feed(&d, in.data, in.len, sink_fn, &s, NULL), 0);
    assert_string_equal(buf_str(&s.out), "tty");
    assert_int_equal(s.stdin_calls, 0);
    sink_release(&s);
    buf_release(&in);
}

static void demux_bad_stream_byte_fails_with_why(void **state)
{
    static const unsigned char bad_headers[][8] = {
        {3, 0, 0, 0, 0, 0, 0, 1},
        {4, 0, 0, 0, 0, 0, 0, 1},
        {0xff, 0, 0, 0, 0, 0, 0, 1},
        {1, 1, 0, 0, 0, 0, 0, 1},
        {2, 0, 0, 1, 0, 0, 0, 1},
        {'H', 'T', 'T', 'P', '/', '1', '.', '1'},
        {'{', '"', 'm', 'e', 's', 's', 'a', 'g'},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        struct buf in = BUF_INIT(BUF_UNLIMITED);
        struct engine_demux d;
        struct sink s;
        const char *why = NULL;

        frames_str(&in, ENGINE_STDOUT, "ok");
        assert_int_equal(buf_append(&in, bad_headers[i], 8), 0);
        assert_int_equal(buf_appends(&in, "x"), 0);
        sink_init(&s);
        engine_demux_init(&d);
        assert_int_equal(engine_demux_feed(&d, in.data, in.len, sink_fn, &s, &why), -1);
        assert_non_null(why);
        assert_non_null(strstr(why, "header"));
        assert_string_equal(buf_str(&s.out), "ok"); /* what came before was delivered */
        assert_int_equal(s.calls, 1);
        /* ret_why may be NULL */
        engine_demux_init(&d);
        assert_int_equal(engine_demux_feed(&d, in.data, in.len, NULL, NULL, NULL), -1);
        sink_release(&s);
        buf_release(&in);
    }
}

static void demux_callback_stop_returns_minus_one_without_why(void **state)
{
    struct buf in = BUF_INIT(BUF_UNLIMITED);
    struct engine_demux d;
    struct sink s;
    const char *why = "untouched";
    (void)state;

    frames_str(&in, ENGINE_STDOUT, "one");
    frames_str(&in, ENGINE_STDERR, "two");
    frames_str(&in, ENGINE_STDOUT, "three");
    sink_init(&s);
    s.stop_at_call = 2;
    engine_demux_init(&d);
    assert_int_equal(engine_demux_feed(&d, in.data, in.len, sink_fn, &s, &why), -1);
    assert_null(why);
    assert_int_equal(s.calls, 2); /* nothing after the stop */
    assert_string_equal(buf_str(&s.out), "one");
    assert_int_equal(s.err.len, 0);
    sink_release(&s);
    buf_release(&in);
}

static void demux_without_callback_just_consumes(void **state)
{
    struct buf in = BUF_INIT(BUF_UNLIMITED);
    struct engine_demux d;
    (void)state;

    build_mixed_stream(&in);
    engine_demux_init(&d);
    assert_int_equal(engine_demux_feed(&d, in.data, in.len, NULL, NULL, NULL), 0);
    assert_int_equal(d.remaining, 0);
    assert_int_equal(d.header_len, 0);
    buf_release(&in);
}

static void demux_large_frame_over_64_kib(void **state)
{
    struct buf in = BUF_INIT(BUF_UNLIMITED);
    const size_t big = 200 * 1024 + 7;
    char *payload = xmalloc(big);
    struct sink s;
    (void)state;

    for (size_t i = 0; i < big; i++)
        payload[i] = (char)(i * 131 + (i >> 9));
    frames_str(&in, ENGINE_STDOUT, "before");
    frame(&in, ENGINE_STDERR, payload, big);
    frames_str(&in, ENGINE_STDOUT, "after");

    size_t sizes[] = {4096, 65536, 65537, in.len};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        sink_init(&s);
        feed_all(&s, in.data, in.len, chunk_fixed, &sizes[k]);
        assert_string_equal(buf_str(&s.out), "beforeafter");
        assert_int_equal(s.err.len, big);
        assert_memory_equal(s.err.data, payload, big);
        sink_release(&s);
    }
    uint64_t x = 42;
    sink_init(&s);
    feed_all(&s, in.data, in.len, chunk_random, &x);
    assert_int_equal(s.err.len, big);
    assert_memory_equal(s.err.data, payload, big);
    sink_release(&s);

    free(payload);
    buf_release(&in);
}

/* ---- error bodies ---- */

static void error_message_from_the_engine_json(void **state)
{
    size_t len;
    char *body, *msg;
    (void)state;

    body = read_fixture("error_no_such_container.json", &len);
    msg = engine_parse_error_message(body, len);
    assert_string_equal(msg, "No such container: x");
    free(msg);
    free(body);

    body = read_fixture("error_no_such_image.json", &len);
    msg = engine_parse_error_message(body, len);
    assert_string_equal(msg, "No such image: envhub/missing:latest");
    free(msg);
    free(body);

    body = read_fixture("error_conflict.json", &len);
    msg = engine_parse_error_message(body, len);
    assert_true(strncmp(msg, "Conflict. The container name \"/envhub-job-1\"", 44) == 0);
    free(msg);
    free(body);
}

static void error_message_reads_the_error_field_of_stream_answers(void **state)
{
    const char *body = "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}";
    char *msg = engine_parse_error_message(body, strlen(body));
    (void)state;

    assert_string_equal(msg, "boom");
    free(msg);
}

static void error_message_of_a_non_json_body_is_its_first_line(void **state)
{
    size_t len;
    char *body = read_fixture("error_not_json.json", &len);
    char *msg = engine_parse_error_message(body, len);
    (void)state;

    assert_string_equal(msg, "<html>");
    free(msg);
    free(body);

    msg = engine_parse_error_message("page not found", 14);
    assert_string_equal(msg, "page not found");
    free(msg);
    /* JSON but not the engine's shape: the raw body */
    msg = engine_parse_error_message("[1,2]", 5);
    assert_string_equal(msg, "[1,2]");
    free(msg);
    msg = engine_parse_error_message("{\"message\": 5}", 14);
    assert_string_equal(msg, "{\"message\": 5}");
    free(msg);
}

static void error_message_of_an_empty_body(void **state)
{
    char *msg = engine_parse_error_message("", 0);
    (void)state;

    assert_string_equal(msg, "no message");
    free(msg);
}

static void error_message_uses_only_len_bytes_and_caps_raw_lines(void **state)
{
    const char *body = "{\"message\":\"short\"}TRAILING GARBAGE";
    char *msg = engine_parse_error_message(body, 19);
    (void)state;

    assert_string_equal(msg, "short");
    free(msg);

    char *raw = xmalloc(1000);
    memset(raw, 'z', 1000);
    msg = engine_parse_error_message(raw, 1000); /* not NUL-terminated */
    assert_true(strlen(msg) <= 200);
    assert_true(strlen(msg) > 0);
    free(msg);
    free(raw);
}

/* ---- container and image inspect ---- */

static void container_state_running(void **state)
{
    struct engine_container_state st;
    struct err err = ERR_INIT;
    char *json = read_fixture("container_inspect_running.json", NULL);
    (void)state;

    err_set(&err, ERR_BUSY, "sentinel");
    assert_int_equal(engine_parse_container_state(json, &st, &err), 0);
    assert_int_equal(err.code, ERR_BUSY); /* untouched on success */
    assert_string_equal(err.msg, "sentinel");
    assert_true(st.running);
    assert_false(st.oom_killed);
    assert_int_equal(st.exit_code, 0);
    assert_string_equal(st.status, "running");
    assert_string_equal(st.image_id,
                        "sha256:9b1c3e0a6d2f4e8b7c5a1d3f9e2b4c6a8d0f1e3b5c7a9d2f4e6b8c0a1d3f5e7b");
    free(json);
}

static void container_state_exited(void **state)
{
    struct engine_container_state st;
    struct err err = ERR_INIT;
    char *json = read_fixture("container_inspect_exited.json", NULL);
    (void)state;

    assert_int_equal(engine_parse_container_state(json, &st, &err), 0);
    assert_false(st.running);
    assert_false(st.oom_killed);
    assert_int_equal(st.exit_code, 1);
    assert_string_equal(st.status, "exited");
    assert_true(strncmp(st.image_id, "sha256:9b1c", 11) == 0);
    free(json);
}

static void container_state_oom_killed(void **state)
{
    struct engine_container_state st;
    struct err err = ERR_INIT;
    char *json = read_fixture("container_inspect_oomkilled.json", NULL);
    (void)state;

    assert_int_equal(engine_parse_container_state(json, &st, &err), 0);
    assert_false(st.running);
    assert_true(st.oom_killed);
    assert_int_equal(st.exit_code, 137);
    assert_string_equal(st.status, "exited");
    free(json);
}

static void container_state_fills_gaps_and_caps_long_strings(void **state)
{
    struct engine_container_state st;
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(engine_parse_container_state("{\"State\":{}}", &st, &err), 0);
    assert_false(st.running);
    assert_false(st.oom_killed);
    assert_int_equal(st.exit_code, 0);
    assert_string_equal(st.status, "unknown");
    assert_string_equal(st.image_id, "");

    assert_int_equal(engine_parse_container_state(
                         "{\"State\":{\"Status\":\"a-status-much-longer-than-sixteen\"},"
                         "\"Image\":\"sha256:0123456789012345678901234567890123456789012345678"
                         "9012345678901234567890123456789\"}",
                         &st, &err),
                     0);
    assert_int_equal(strlen(st.status), sizeof(st.status) - 1);
    assert_int_equal(strlen(st.image_id), sizeof(st.image_id) - 1);
}

static void container_state_rejects_bad_answers_and_leaves_ret_alone(void **state)
{
    static const char *const bad[] = {
        "", "not json", "{\"State\": ", "[]", "{}", "{\"State\": null}", "{\"State\": \"running\"}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct engine_container_state st, before;
        struct err err = ERR_INIT;
        memset(&st, 0xab, sizeof(st));
        before = st;
        if (engine_parse_container_state(bad[i], &st, &err) != -1)
            fail_msg("parsed '%s'", bad[i]);
        assert_int_equal(err.code, ERR_ENGINE);
        assert_true(err.msg[0] != '\0');
        assert_memory_equal(&st, &before, sizeof(st));
    }
}

static void image_info_from_inspect(void **state)
{
    struct engine_image_info info = {0};
    struct err err = ERR_INIT;
    char *json = read_fixture("image_inspect.json", NULL);
    (void)state;

    err_set(&err, ERR_BUSY, "sentinel");
    assert_int_equal(engine_parse_image_info(json, &info, &err), 0);
    assert_string_equal(err.msg, "sentinel");
    assert_string_equal(info.id,
                        "sha256:9b1c3e0a6d2f4e8b7c5a1d3f9e2b4c6a8d0f1e3b5c7a9d2f4e6b8c0a1d3f5e7b");
    assert_int_equal(info.size, 287654321);
    assert_string_equal(info.created, "2026-11-20T09:12:44.118337093Z");
    engine_image_info_release(&info);
    assert_null(info.id);
    assert_null(info.created);
    engine_image_info_release(&info); /* twice is fine */
    engine_image_info_release(NULL);
    free(json);
}

static void image_info_lists_declared_volumes(void **state)
{
    struct engine_image_info info = {0};
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(engine_parse_image_info("{\"Id\":\"sha256:ab\",\"Config\":{\"Volumes\":"
                                             "{\"/data\":{},\"/var/cache\":{}}}}",
                                             &info, &err),
                     0);
    assert_int_equal(strv_length(info.volumes), 2);
    assert_string_equal(info.volumes[0], "/data");
    assert_string_equal(info.volumes[1], "/var/cache");
    engine_image_info_release(&info);
    assert_null(info.volumes);
    assert_int_equal(engine_parse_image_info("{\"Id\":\"sha256:ab\",\"Config\":{\"Volumes\":null}}",
                                             &info, &err),
                     0);
    assert_null(info.volumes);
    engine_image_info_release(&info);
}

static void image_info_without_created_or_size(void **state)
{
    struct engine_image_info info = {0};
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(engine_parse_image_info("{\"Id\":\"sha256:ab\"}", &info, &err), 0);
    assert_string_equal(info.id, "sha256:ab");
    assert_string_equal(info.created, "");
    assert_int_equal(info.size, 0);
    engine_image_info_release(&info);
}

static void image_info_rejects_bad_answers(void **state)
{
    static const char *const bad[] = {"", "<html>", "{}", "{\"Id\": 5}", "{\"Id\": null}", "[]"};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct engine_image_info info = {0};
        struct err err = ERR_INIT;
        if (engine_parse_image_info(bad[i], &info, &err) != -1)
            fail_msg("parsed '%s'", bad[i]);
        assert_int_equal(err.code, ERR_ENGINE);
        assert_null(info.id);
        assert_null(info.created);
    }
    /* an error body is not an image */
    size_t len;
    char *json = read_fixture("error_no_such_image.json", &len);
    struct engine_image_info info = {0};
    struct err err = ERR_INIT;
    assert_int_equal(engine_parse_image_info(json, &info, &err), -1);
    assert_non_null(strstr(err.msg, "Id"));
    free(json);
}

/* ---- versions ---- */

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

static void version_compare_is_numeric(void **state)
{
    static const struct {
        const char *a, *b;
        int want;
    } cases[] = {
        {"1.41", "1.43", -1},
        {"1.43", "1.41", 1},
        {"1.4", "1.41", -1},
        {"1.41", "1.4", 1},
        {"1.41", "1.41", 0},
        {"2.0", "1.99", 1},
        {"1.99", "2.0", -1},
        {"1.9", "1.10", -1},
        {"1.41", "1.41.0", 0},
        {"1.41.1", "1.41", 1},
        {"1", "1.0", 0},
        {"10.0", "9.9", 1},
        {ENGINE_API_MIN, ENGINE_API_MAX, -1},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = sign(engine_version_compare(cases[i].a, cases[i].b));
        if (got != cases[i].want)
            fail_msg("engine_version_compare(\"%s\", \"%s\") = %d, expected %d", cases[i].a,
                     cases[i].b, got, cases[i].want);
    }
}

/* ---- the progress stream of /build and /images/create ---- */

struct lines {
    char **v;
    size_t n;
    int stop_at; /* return -1 on this line (1-based); 0: never */
};

static int lines_fn(void *ctx, const char *line)
{
    struct lines *l = ctx;
    strv_push(&l->v, xstrdup(line));
    l->n++;
    return l->stop_at && (int)l->n == l->stop_at ? -1 : 0;
}

/* What `docker build` streams: text split into objects anywhere, even in
 * the middle of a line, an aux object with the image id. */
static const char build_stream[] =
    "{\"stream\":\"Step 1/3 : FROM envhub/python:bookworm\\n\"}\r\n"
    "{\"stream\":\" ---\\u003e 9b1c3e0a6d2f\\n\"}\r\n"
    "{\"stream\":\"Step 2/3 : RUN pip install \"}\r\n"
    "{\"stream\":\"numpy\\n\"}\r\n"
    "{\"stream\":\"Collecting numpy\\r\\nDone\\n\"}\r\n"
    "{\"aux\":{\"ID\":\"sha256:5e7b9b1c3e0a6d2f4e8b7c5a1d3f9e2b4c6a8d0f1e3b5c7a9d2f4e6b8c0a1d3f\"}}"
    "\r\n"
    "{\"stream\":\"Successfully built 5e7b9b1c3e0a\\n\"}\r\n";

static const char *const build_lines[] = {
    "Step 1/3 : FROM envhub/python:bookworm",
    " ---> 9b1c3e0a6d2f",
    "Step 2/3 : RUN pip install numpy",
    "Collecting numpy",
    "Done",
    "Successfully built 5e7b9b1c3e0a",
};

static void assert_build_lines(const struct lines *l, const struct engine_progress *p)
{
    const size_t want = sizeof(build_lines) / sizeof(build_lines[0]);
    if (l->n != want)
        fail_msg("%zu lines, expected %zu", l->n, want);
    for (size_t i = 0; i < want; i++)
        assert_string_equal(l->v[i], build_lines[i]);
    assert_string_equal(p->image_id,
                        "sha256:5e7b9b1c3e0a6d2f4e8b7c5a1d3f9e2b4c6a8d0f1e3b5c7a9d2f4e6b8c0a1d3f");
    assert_string_equal(p->error, "");
}

static void progress_build_lines_whatever_the_chunking(void **state)
{
    const size_t len = sizeof(build_stream) - 1;
    (void)state;

    for (size_t cut = 0; cut <= len; cut++) {
        struct engine_progress p;
        struct lines l = {0};
        engine_progress_init(&p, lines_fn, &l);
        assert_int_equal(engine_progress_feed(&p, build_stream, cut), 0);
        assert_int_equal(engine_progress_feed(&p, build_stream + cut, len - cut), 0);
        engine_progress_finish(&p);
        assert_build_lines(&l, &p);
        engine_progress_release(&p);
        strv_free(l.v);
    }

    struct engine_progress p;
    struct lines l = {0};
    engine_progress_init(&p, lines_fn, &l);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(engine_progress_feed(&p, build_stream + i, 1), 0);
    engine_progress_finish(&p);
    assert_build_lines(&l, &p);
    engine_progress_release(&p);
    strv_free(l.v);
}

static void progress_error_is_kept_and_shown(void **state)
{
    const char *s = "{\"stream\":\"Step 2/2 : RUN false\\n\"}\n"
                    "{\"errorDetail\":{\"code\":1,\"message\":\"The command '/bin/sh -c false' "
                    "returned a non-zero code: 1\"},\"error\":\"The command '/bin/sh -c false' "
                    "returned a non-zero code: 1\"}\n";
    struct engine_progress p;
    struct lines l = {0};
    (void)state;

    engine_progress_init(&p, lines_fn, &l);
    assert_int_equal(engine_progress_feed(&p, s, strlen(s)), 0);
    engine_progress_finish(&p);
    assert_string_equal(p.error, "The command '/bin/sh -c false' returned a non-zero code: 1");
    assert_string_equal(p.image_id, "");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[1],
                        "ERROR: The command '/bin/sh -c false' returned a non-zero code: 1");
    engine_progress_release(&p);
    strv_free(l.v);
}

/* A failed RUN quotes its script, line breaks and all (found by
 * tests/fuzz/fuzz_build_progress.c): on_line still gets one line a call. */
static void progress_multiline_error_comes_out_a_line_at_a_time(void **state)
{
    const char *s = "{\"error\":\"The command '/bin/sh -c pip install x\\nexit 1' "
                    "returned a non-zero code: 1\"}\n"
                    "{\"status\":\"one\\r\\ntwo\",\"id\":\"x\"}\n";
    struct engine_progress p;
    struct lines l = {0};
    (void)state;

    engine_progress_init(&p, lines_fn, &l);
    assert_int_equal(engine_progress_feed(&p, s, strlen(s)), 0);
    engine_progress_finish(&p);
    assert_string_equal(
        p.error, "The command '/bin/sh -c pip install x\nexit 1' returned a non-zero code: 1");
    assert_int_equal(l.n, 4);
    assert_string_equal(l.v[0], "ERROR: The command '/bin/sh -c pip install x");
    assert_string_equal(l.v[1], "exit 1' returned a non-zero code: 1");
    assert_string_equal(l.v[2], "x: one");
    assert_string_equal(l.v[3], "two");
    engine_progress_release(&p);
    strv_free(l.v);
}

static void progress_pull_keeps_milestones_not_progress_bars(void **state)
{
    const char *s =
        "{\"status\":\"Pulling from library/python\",\"id\":\"3.11-slim\"}\n"
        "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"a1b2c3\"}\n"
        "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1024,\"total\":2048},"
        "\"progress\":\"[=====>    ]\",\"id\":\"a1b2c3\"}\n"
        "{\"status\":\"Download complete\",\"progressDetail\":{},\"id\":\"a1b2c3\"}\n"
        "{\"status\":\"Digest: sha256:0f1e\"}\n";
    struct engine_progress p;
    struct lines l = {0};
    (void)state;

    engine_progress_init(&p, lines_fn, &l);
    assert_int_equal(engine_progress_feed(&p, s, strlen(s)), 0);
    engine_progress_finish(&p);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.v[0], "3.11-slim: Pulling from library/python");
    assert_string_equal(l.v[1], "a1b2c3: Pulling fs layer");
    assert_string_equal(l.v[2], "a1b2c3: Download complete");
    assert_string_equal(l.v[3], "Digest: sha256:0f1e");
    engine_progress_release(&p);
    strv_free(l.v);
}

static void progress_push_gives_the_digest_only_when_it_is_one(void **state)
{
    const char *s =
        "{\"status\":\"The push refers to repository [127.0.0.1:5000/envhub/x]\"}\n"
        "{\"status\":\"Pushing\",\"progressDetail\":{\"current\":512,\"total\":1024},"
        "\"id\":\"a1b2c3\"}\n"
        "{\"status\":\"Pushed\",\"progressDetail\":{},\"id\":\"a1b2c3\"}\n"
        "{\"progressDetail\":{},\"aux\":{\"Tag\":\"v1\",\"Digest\":\"sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"Size\":527}}\n";
    static const char *const forged[] = {
        "{\"aux\":{\"Digest\":\"sha256:0123\"}}\n",
        "{\"aux\":{\"Digest\":\"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789"
        "abcdef\"}}\n",
        "{\"aux\":{\"Digest\":\"md5:0123456789abcdef0123456789abcdef\"}}\n",
        "{\"aux\":{\"Digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
        "abcdef/../x\"}}\n",
        "{\"aux\":{\"Digest\":42}}\n",
    };
    struct engine_progress p;
    struct lines l = {0};
    (void)state;

    engine_progress_init(&p, lines_fn, &l);
    assert_int_equal(engine_progress_feed(&p, s, strlen(s)), 0);
    engine_progress_finish(&p);
    assert_string_equal(p.digest,
                        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[1], "a1b2c3: Pushed");
    engine_progress_release(&p);
    strv_free(l.v);
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        engine_progress_init(&p, NULL, NULL);
        assert_int_equal(engine_progress_feed(&p, forged[i], strlen(forged[i])), 0);
        engine_progress_finish(&p);
        assert_string_equal(p.digest, "");
        engine_progress_release(&p);
    }
}

static void progress_callback_minus_one_cancels(void **state)
{
    struct engine_progress p;
    struct lines l = {.stop_at = 2};
    (void)state;

    engine_progress_init(&p, lines_fn, &l);
    assert_int_equal(engine_progress_feed(&p, build_stream, sizeof(build_stream) - 1), -1);
    assert_int_equal(l.n, 2); /* nothing after the cancel */
    assert_int_equal(engine_progress_feed(&p, build_stream, sizeof(build_stream) - 1), -1);
    engine_progress_finish(&p);
    assert_int_equal(l.n, 2);
    engine_progress_release(&p);
    strv_free(l.v);
}

static void progress_finish_flushes_what_has_no_newline(void **state)
{
    const char *s = "{\"stream\":\"first\\nlast words\"}";
    struct engine_progress p;
    struct lines l = {0};
    (void)state;

    engine_progress_init(&p, lines_fn, &l);
    assert_int_equal(engine_progress_feed(&p, s, strlen(s)), 0);
    assert_int_equal(l.n, 0); /* the object itself has no newline yet */
    engine_progress_finish(&p);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0], "first");
    assert_string_equal(l.v[1], "last words");
    engine_progress_finish(&p); /* nothing left: no more lines */
    assert_int_equal(l.n, 2);
    engine_progress_release(&p);
    strv_free(l.v);
}

static void progress_ignores_lines_that_are_not_objects(void **state)
{
    const char *s = "not json at all\n[1,2,3]\n\n\"text\"\n{\"stream\":5}\n{\"aux\":\"x\"}\n"
                    "{\"stream\":\"kept\\n\"}\n";
    struct engine_progress p;
    struct lines l = {0};
    (void)state;

    engine_progress_init(&p, lines_fn, &l);
    assert_int_equal(engine_progress_feed(&p, s, strlen(s)), 0);
    engine_progress_finish(&p);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0], "kept");
    assert_string_equal(p.image_id, "");
    engine_progress_release(&p);
    strv_free(l.v);
}

/* A step that prints megabytes without a newline: the line is cut at 64 KiB
 * rather than kept growing, and what follows still comes through. */
static void progress_endless_line_is_cut_not_grown(void **state)
{
    struct engine_progress p;
    struct lines l = {0};
    char chunk[1000];
    (void)state;

    memset(chunk, 'z', sizeof(chunk));
    engine_progress_init(&p, lines_fn, &l);
    for (int i = 0; i < 300; i++) {
        struct buf obj = BUF_INIT(BUF_UNLIMITED);
        assert_int_equal(buf_appendf(&obj, "{\"stream\":\"%.*s\"}\n", (int)sizeof(chunk), chunk),
                         0);
        assert_int_equal(engine_progress_feed(&p, obj.data, obj.len), 0);
        buf_release(&obj);
    }
    assert_true(p.text.len <= 64 * 1024);
    const char *end = "{\"stream\":\"\\nnext\\n\"}\n";
    assert_int_equal(engine_progress_feed(&p, end, strlen(end)), 0);
    engine_progress_finish(&p);
    assert_int_equal(l.n, 2);
    assert_true(strlen(l.v[0]) <= 64 * 1024);
    assert_true(strlen(l.v[0]) >= 1000);
    assert_string_equal(l.v[1], "next");
    engine_progress_release(&p);
    strv_free(l.v);
}

static void progress_without_callback_still_reads_the_id(void **state)
{
    struct engine_progress p;
    (void)state;

    engine_progress_init(&p, NULL, NULL);
    assert_int_equal(engine_progress_feed(&p, build_stream, sizeof(build_stream) - 1), 0);
    engine_progress_finish(&p);
    assert_true(strncmp(p.image_id, "sha256:5e7b", 11) == 0);
    engine_progress_release(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(demux_one_frame),
        cmocka_unit_test(demux_interleaved_stdout_and_stderr),
        cmocka_unit_test(demux_frame_split_at_every_byte_boundary),
        cmocka_unit_test(demux_random_chunk_sizes_give_identical_output),
        cmocka_unit_test(demux_zero_length_frame_gives_no_call),
        cmocka_unit_test(demux_partial_header_waits_for_more),
        cmocka_unit_test(demux_stdin_frames_count_as_stdout),
        cmocka_unit_test(demux_bad_stream_byte_fails_with_why),
        cmocka_unit_test(demux_callback_stop_returns_minus_one_without_why),
        cmocka_unit_test(demux_without_callback_just_consumes),
        cmocka_unit_test(demux_large_frame_over_64_kib),
        cmocka_unit_test(error_message_from_the_engine_json),
        cmocka_unit_test(error_message_reads_the_error_field_of_stream_answers),
        cmocka_unit_test(error_message_of_a_non_json_body_is_its_first_line),
        cmocka_unit_test(error_message_of_an_empty_body),
        cmocka_unit_test(error_message_uses_only_len_bytes_and_caps_raw_lines),
        cmocka_unit_test(container_state_running),
        cmocka_unit_test(container_state_exited),
        cmocka_unit_test(container_state_oom_killed),
        cmocka_unit_test(container_state_fills_gaps_and_caps_long_strings),
        cmocka_unit_test(container_state_rejects_bad_answers_and_leaves_ret_alone),
        cmocka_unit_test(image_info_from_inspect),
        cmocka_unit_test(image_info_without_created_or_size),
        cmocka_unit_test(image_info_lists_declared_volumes),
        cmocka_unit_test(image_info_rejects_bad_answers),
        cmocka_unit_test(version_compare_is_numeric),
        cmocka_unit_test(progress_build_lines_whatever_the_chunking),
        cmocka_unit_test(progress_error_is_kept_and_shown),
        cmocka_unit_test(progress_multiline_error_comes_out_a_line_at_a_time),
        cmocka_unit_test(progress_pull_keeps_milestones_not_progress_bars),
        cmocka_unit_test(progress_push_gives_the_digest_only_when_it_is_one),
        cmocka_unit_test(progress_callback_minus_one_cancels),
        cmocka_unit_test(progress_finish_flushes_what_has_no_newline),
        cmocka_unit_test(progress_ignores_lines_that_are_not_objects),
        cmocka_unit_test(progress_endless_line_is_cut_not_grown),
        cmocka_unit_test(progress_without_callback_still_reads_the_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

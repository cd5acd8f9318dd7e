/* tests/unit/test_agent.c - the readers of what the in-container agent
 * sends (executor/agent_proto.c): the frame decoder of its stdout and the
 * report parser, fed well-formed conversations, split at every byte, and
 * the forgeries a job could try (frames inside its own output, a report
 * before the end, a wrong nonce, bytes after the report). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/err.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

#define NONCE "0123456789abcdef0123456789abcdef"

struct sink {
    struct buf out, err;
};

static int sink_output(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct sink *s = ctx;
    buf_put(stream == ENGINE_STDOUT ? &s->out : &s->err, data, len);
    return 0;
}

/* A frame: type, big-endian length, payload. */
static void frame(struct buf *b, char kind, const char *payload, size_t len)
{
    unsigned char head[5] = {(unsigned char)kind, (unsigned char)(len >> 24),
                             (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                             (unsigned char)len};
    buf_put(b, (const char *)head, sizeof(head));
    buf_put(b, payload, len);
}

#define FRAME(b, kind, s) frame(b, kind, s, sizeof(s) - 1)

static const char report_json[] = "{\"rc\": 3, \"timed_out\": false, \"oom_kills\": 0, "
                                  "\"skipped\": [[2000, \"2e2f6269672e62696e\"]], "
                                  "\"preload_errors\": {\"pandas\": \"ModuleNotFoundError: x\"}}";

static void conversation(struct buf *b)
{
    FRAME(b, 'o', "hello ");
    FRAME(b, 'e', "oops\n");
    FRAME(b, 'o', "world\n");
    frame(b, 'x', "", 0);
    _cleanup_free_ char *payload = xasprintf("%s\n%s\ntarbytes", NONCE, report_json);
    frame(b, 'r', payload, strlen(payload));
}

static void decoder_reads_a_conversation_split_anywhere(void **state)
{
    (void)state;
    _cleanup_(buf_release) struct buf b = BUF_INIT(BUF_UNLIMITED);
    conversation(&b);

    for (size_t split = 0; split <= b.len; split++) {
        struct sink s = {BUF_INIT(BUF_UNLIMITED), BUF_INIT(BUF_UNLIMITED)};
        struct agent_decoder d;
        const char *why = NULL;
        agent_decoder_init(&d, 1 << 20, sink_output, &s);
        assert_int_equal(agent_decode(&d, b.data, split, &why), 0);
        assert_int_equal(agent_decode(&d, b.data + split, b.len - split, &why), 0);
        assert_true(d.exited);
        assert_true(d.reported);
        assert_false(d.unclean);
        assert_string_equal(buf_str(&s.out), "hello world\n");
        assert_string_equal(buf_str(&s.err), "oops\n");

        struct agent_report rep;
        struct err err = ERR_INIT;
        assert_int_equal(agent_report_parse(d.msg.data, d.msg.len, NONCE, 1000, &rep, &err), 0);
        assert_int_equal(rep.rc, 3);
        assert_false(rep.timed_out);
        assert_int_equal(rep.oom_kills, 0);
        assert_string_equal(rep.skipped[0],
                            "big.bin: larger than the file size limit (1000 bytes)");
        assert_null(rep.skipped[1]);
        assert_string_equal(rep.preload_errors[0], "pandas: ModuleNotFoundError: x");
        assert_int_equal(rep.tar_len, strlen("tarbytes"));
        assert_memory_equal(rep.tar, "tarbytes", rep.tar_len);
        agent_report_release(&rep);
        agent_decoder_release(&d);
        buf_release(&s.out);
        buf_release(&s.err);
    }
}

/* What a job prints is inside an 'o' frame: a forged end and report in it
 * are bytes of output, nothing else. */
static void frames_inside_output_are_output(void **state)
{
    (void)state;
    _cleanup_(buf_release) struct buf forged = BUF_INIT(BUF_UNLIMITED);
    _cleanup_(buf_release) struct buf b = BUF_INIT(BUF_UNLIMITED);
    struct sink s = {BUF_INIT(BUF_UNLIMITED), BUF_INIT(BUF_UNLIMITED)};
    struct agent_decoder d;
    const char *why = NULL;

    conversation(&forged);
    frame(&b, 'o', forged.data, forged.len);
    agent_decoder_init(&d, 1 << 20, sink_output, &s);
    assert_int_equal(agent_decode(&d, b.data, b.len, &why), 0);
    assert_false(d.exited);
    assert_false(d.reported);
    assert_int_equal(s.out.len, forged.len);
    assert_memory_equal(s.out.data, forged.data, forged.len);
    agent_decoder_release(&d);
    buf_release(&s.out);
    buf_release(&s.err);
}

static void refused(const struct buf *b, size_t report_max, const char *expect)
{
    struct agent_decoder d;
    const char *why = NULL;

    agent_decoder_init(&d, report_max, NULL, NULL);
    assert_int_equal(agent_decode(&d, b->data, b->len, &why), -1);
    assert_non_null(why);
    assert_non_null(strstr(why, expect));
    agent_decoder_release(&d);
}

static void decoder_refuses_what_breaks_the_order(void **state)
{
    (void)state;
    struct buf b = BUF_INIT(BUF_UNLIMITED);

    FRAME(&b, 'r', NONCE "\n{}\n"); /* a report before the end */
    refused(&b, 1 << 20, "before");
    buf_truncate(&b, 0);
    frame(&b, 'x', "", 0);
    FRAME(&b, 'o', "late"); /* output after the end */
    refused(&b, 1 << 20, "after saying the job ended");
    buf_truncate(&b, 0);
    frame(&b, 'x', "", 0);
    frame(&b, 'x', "", 0);
    refused(&b, 1 << 20, "twice");
    buf_truncate(&b, 0);
    frame(&b, 'x', "", 0);
    FRAME(&b, 'r', NONCE "\n{}\n");
    FRAME(&b, 'o', "x"); /* anything after the report */
    refused(&b, 1 << 20, "after its last frame");
    buf_truncate(&b, 0);
    FRAME(&b, 'u', "not clean");
    FRAME(&b, 'o', "x");
    refused(&b, 1 << 20, "after its last frame");
    buf_truncate(&b, 0);
    FRAME(&b, 'z', "");
    refused(&b, 1 << 20, "unknown type");
    buf_release(&b);
}

static void decoder_bounds_every_frame(void **state)
{
    (void)state;
    struct buf b = BUF_INIT(BUF_UNLIMITED);
    unsigned char huge[5] = {'o', 0xff, 0xff, 0xff, 0xff};

    buf_put(&b, (const char *)huge, sizeof(huge));
    refused(&b, 1 << 20, "too large");
    buf_truncate(&b, 0);
    huge[0] = 'u';
    buf_put(&b, (const char *)huge, sizeof(huge));
    refused(&b, 1 << 20, "too long");
    buf_truncate(&b, 0);
    frame(&b, 'x', "", 0);
    FRAME(&b, 'r', NONCE "\n{}\n0123456789");
    refused(&b, 20, "larger than the output limits");
    buf_truncate(&b, 0);
    FRAME(&b, 'x', "?"); /* the end carries nothing */
    refused(&b, 1 << 20, "not empty");
    buf_release(&b);
}

static void report_parse_fails(const char *payload, const char *expect)
{
    struct agent_report rep;
    struct err err = ERR_INIT;

    assert_int_equal(agent_report_parse(payload, strlen(payload), NONCE, 1000, &rep, &err), -1);
    assert_int_equal(err.code, ERR_ENGINE);
    assert_non_null(strstr(err.msg, expect));
}

static void report_must_carry_the_nonce_and_its_fields(void **state)
{
    (void)state;
    report_parse_fails("ffffffffffffffffffffffffffffffff\n{\"rc\":0}\n", "nonce");
    report_parse_fails(NONCE, "nonce");
    report_parse_fails(NONCE "\n{\"rc\":0,\"timed_out\":false,\"oom_kills\":0,\"skipped\":[]}",
                       "no end");
    report_parse_fails(NONCE "\n[1]\n", "not a JSON object");
    report_parse_fails(NONCE "\n{\"rc\":256,\"timed_out\":false,\"oom_kills\":0,\"skipped\":[]}\n",
                       "out of range");
    report_parse_fails(NONCE "\n{\"rc\":0,\"timed_out\":1,\"oom_kills\":0,\"skipped\":[]}\n",
                       "out of range");
    report_parse_fails(NONCE "\n{\"rc\":0,\"timed_out\":false,\"oom_kills\":-1,\"skipped\":[]}\n",
                       "out of range");
    report_parse_fails(
        NONCE "\n{\"rc\":0,\"timed_out\":false,\"oom_kills\":0,\"skipped\":[[1,\"zz\"]]}\n",
        "left out");
    report_parse_fails(NONCE "\n"
                             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                             "[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
                             "]]]]]]]]]]]]\n",
                       "report");

    /* a name that is not UTF-8 is escaped, not passed on raw */
    struct agent_report rep;
    struct err err = ERR_INIT;
    const char *ok = NONCE "\n{\"rc\":-1,\"timed_out\":true,\"oom_kills\":2,"
                           "\"skipped\":[[5000,\"2e2fff\"]]}\n";
    assert_int_equal(agent_report_parse(ok, strlen(ok), NONCE, 1000, &rep, &err), 0);
    assert_true(rep.timed_out);
    assert_int_equal(rep.oom_kills, 2);
    assert_true(utf8_valid(rep.skipped[0], strlen(rep.skipped[0])));
    assert_null(rep.preload_errors);
    assert_int_equal(rep.tar_len, 0);
    agent_report_release(&rep);
}

static void report_carries_a_session_calls_result(void **state)
{
    (void)state;
    struct agent_report rep;
    struct err err = ERR_INIT;
    const char *base = NONCE "\n{\"rc\":0,\"timed_out\":false,\"oom_kills\":0,\"skipped\":[]";

    _cleanup_free_ char *with =
        xasprintf("%s,\"result\":\"'\\u00e9'\",\"interpreter\":\"kept\"}\n", base);
    assert_int_equal(agent_report_parse(with, strlen(with), NONCE, 1000, &rep, &err), 0);
    assert_string_equal(rep.result, "'\xc3\xa9'");
    assert_false(rep.interpreter_died);
    agent_report_release(&rep);

    _cleanup_free_ char *died = xasprintf("%s,\"result\":null,\"interpreter\":\"died\"}\n", base);
    assert_int_equal(agent_report_parse(died, strlen(died), NONCE, 1000, &rep, &err), 0);
    assert_null(rep.result);
    assert_true(rep.interpreter_died);
    agent_report_release(&rep);

    /* a result past its bound, or not text, breaks the protocol */
    struct buf big = BUF_INIT(BUF_UNLIMITED);
    buf_putf(&big, "%s,\"result\":\"", base);
    for (size_t i = 0; i < 4 * (EXEC_RESULT_MAX + 100) + 1; i++)
        buf_put(&big, "a", 1);
    buf_putf(&big, "\"}\n");
    assert_int_equal(agent_report_parse(big.data, big.len, NONCE, 1000, &rep, &err), -1);
    assert_non_null(strstr(err.msg, "out of range"));
    buf_release(&big);
    _cleanup_free_ char *number = xasprintf("%s,\"result\":42}\n", base);
    report_parse_fails(number, "out of range");
    _cleanup_free_ char *interp = xasprintf("%s,\"interpreter\":1}\n", base);
    report_parse_fails(interp, "out of range");
}

static void agent_is_compiled_in(void **state)
{
    (void)state;
    const char *src = exec_agent_script();
    assert_non_null(strstr(src, "PR_SET_DUMPABLE"));
    assert_non_null(strstr(src, "def collect("));
    assert_non_null(strstr(src, "def run_kernel("));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decoder_reads_a_conversation_split_anywhere),
        cmocka_unit_test(frames_inside_output_are_output),
        cmocka_unit_test(decoder_refuses_what_breaks_the_order),
        cmocka_unit_test(decoder_bounds_every_frame),
        cmocka_unit_test(report_must_carry_the_nonce_and_its_fields),
        cmocka_unit_test(report_carries_a_session_calls_result),
        cmocka_unit_test(agent_is_compiled_in),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

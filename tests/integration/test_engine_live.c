/* tests/integration/test_engine_live.c - the engine client (engine/engine.h)
 * against the real Docker engine: a locked-down container is created,
 * started, exec'd into with stdin, limited, inspected, listed, killed and
 * removed, with the base image the project bootstraps. Everything it makes
 * carries envhub.test=<run id> and is removed at the end, also after a
 * failure. Without an engine it skips, unless CI=true (then it fails). */
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
#include "core/cleanup.h"
#include "core/err.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "engine/engine.h"

#include "core/banned.h"

#define IMAGE "envhub/python:bookworm"

static struct engine *engine;
static char run_id[17];

struct output {
    struct buf out, err;
};

static int collect(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct output *o = ctx;
    buf_put(stream == ENGINE_STDERR ? &o->err : &o->out, data, len);
    return 0;
}

static void output_release(struct output *o)
{
    buf_release(&o->out);
    buf_release(&o->err);
}

static int setup(void **state)
{
    (void)state;
    struct err err = ERR_INIT;
    const char *host = getenv("DOCKER_HOST");
    id_random_hex(run_id, 8);
    if (engine_open(host && *host ? host : "unix:///var/run/docker.sock", &engine, &err) < 0) {
        const char *ci = getenv("CI");
        fprintf(stderr, "no Docker engine: %s\n", err.msg);
        return ci && strcmp(ci, "true") == 0 ? -1 : 0;
    }
    struct engine_image_info info = {0};
    if (engine_image_inspect(engine, IMAGE, &info, &err) < 0) {
        fprintf(stderr, "no image %s (make base-image): %s\n", IMAGE, err.msg);
        engine_close(engine);
        engine = NULL;
        return -1;
    }
    engine_image_info_release(&info);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    struct err err = ERR_INIT;
    char **ids = NULL;
    if (engine && engine_container_list(engine, "envhub.test", run_id, &ids, &err) == 0) {
        for (char **p = ids; *p; p++)
            engine_container_remove(engine, *p, &err);
        strv_free(ids);
    }
    engine_close(engine);
    return 0;
}

#define NEED_ENGINE()                                                                              \
    do {                                                                                           \
        if (!engine)                                                                               \
            skip();                                                                                \
    } while (0)

/* The sandbox's shape: read-only root, small tmpfs, uid 1000, nothing else. */
static char *sandbox(const char *const *cmd)
{
    static const struct engine_tmpfs tmpfs[] = {
        {"/workspace", "rw,nosuid,nodev,size=1048576,nr_inodes=64,uid=1000,gid=1000,mode=0700"},
        {"/tmp", "rw,nosuid,nodev,size=1048576,nr_inodes=64,uid=1000,gid=1000,mode=0700"},
    };
    struct engine_label labels[] = {{"envhub.test", run_id}};
    struct engine_container_spec spec = {
        .image = IMAGE,
        .cmd = cmd,
        .user = "1000:1000",
        .working_dir = "/workspace",
        .labels = labels,
        .n_labels = 1,
        .tmpfs = tmpfs,
        .n_tmpfs = 2,
        .memory_bytes = 64 << 20,
        .nano_cpus = 500000000,
        .pids_limit = 32,
        .network_mode = "none",
        .network_disabled = true,
        .read_only_rootfs = true,
        .cap_drop_all = true,
        .no_new_privileges = true,
        .log_driver_none = true,
    };
    char *id = NULL;
    struct err err = ERR_INIT;
    if (engine_container_create(engine, &spec, &id, &err) < 0)
        fail_msg("create: %s", err.msg);
    assert_int_equal(strlen(id), 64);
    if (engine_container_start(engine, id, &err) < 0)
        fail_msg("start: %s", err.msg);
    return id;
}

static struct engine_exec_result run(const char *id, const char *script, const char *in,
                                     int64_t within_ms, struct output *o)
{
    const char *cmd[] = {"/bin/sh", "-c", script, NULL};
    struct engine_exec_spec spec = {
        .cmd = cmd,
        .stdin_data = in,
        .stdin_len = in ? strlen(in) : 0,
        .output = collect,
        .output_ctx = o,
        .deadline_ms = within_ms ? time_mono_ms() + within_ms : 0,
    };
    struct engine_exec_result res = {0};
    struct err err = ERR_INIT;
    if (engine_exec(engine, id, &spec, &res, &err) < 0)
        fail_msg("exec %s: %s", script, err.msg);
    return res;
}

static void exec_streams_stdin_in_and_both_outputs_out(void **state)
{
    (void)state;
    NEED_ENGINE();
    const char *sleep_cmd[] = {"sleep", "infinity", NULL};
    _cleanup_free_ char *id = sandbox(sleep_cmd);
    struct output o = {BUF_INIT(BUF_UNLIMITED), BUF_INIT(BUF_UNLIMITED)};
    struct engine_exec_result r =
        run(id, "cat; id -u; echo to-stderr >&2; exit 3", "from stdin\n", 30000, &o);
    assert_int_equal(r.exit_code, 3);
    assert_false(r.timed_out);
    assert_string_equal(buf_str(&o.out), "from stdin\n1000\n");
    assert_string_equal(buf_str(&o.err), "to-stderr\n");
    output_release(&o);
    struct err err = ERR_INIT;
    assert_int_equal(engine_container_remove(engine, id, &err), 0);
}

static void the_sandbox_holds_its_limits(void **state)
{
    (void)state;
    NEED_ENGINE();
    const char *sleep_cmd[] = {"sleep", "infinity", NULL};
    _cleanup_free_ char *id = sandbox(sleep_cmd);
    struct output o = {BUF_INIT(BUF_UNLIMITED), BUF_INIT(BUF_UNLIMITED)};
    /* the root is read-only, the workspace writable up to its size */
    struct engine_exec_result r = run(id,
                                      "touch /etc/x 2>/dev/null && echo root-writable; "
                                      "head -c 2000000 /dev/zero > /workspace/big 2>/dev/null "
                                      "|| echo full; "
                                      "grep CapEff /proc/self/status",
                                      NULL, 30000, &o);
    assert_int_equal(r.exit_code, 0);
    const char *out = buf_str(&o.out);
    assert_null(strstr(out, "root-writable"));
    assert_non_null(strstr(out, "full\n"));
    assert_non_null(strstr(out, "CapEff:\t0000000000000000"));
    output_release(&o);
    struct engine_container_state st;
    struct err err = ERR_INIT;
    assert_int_equal(engine_container_inspect(engine, id, &st, &err), 0);
    assert_true(st.running);
    assert_string_equal(st.status, "running");
    assert_true(strncmp(st.image_id, "sha256:", 7) == 0);
    engine_container_remove(engine, id, &err);
}

static void a_deadline_ends_an_exec_that_does_not(void **state)
{
    (void)state;
    NEED_ENGINE();
    const char *sleep_cmd[] = {"sleep", "infinity", NULL};
    _cleanup_free_ char *id = sandbox(sleep_cmd);
    struct output o = {BUF_INIT(BUF_UNLIMITED), BUF_INIT(BUF_UNLIMITED)};
    int64_t t0 = time_mono_ms();
    struct engine_exec_result r = run(id, "echo started; sleep 60", NULL, 1500, &o);
    assert_true(r.timed_out);
    assert_int_equal(r.exit_code, -1);
    assert_true(time_mono_ms() - t0 < 30000);
    assert_string_equal(buf_str(&o.out), "started\n");
    output_release(&o);
    struct err err = ERR_INIT;
    /* kill, then remove; both again are not errors */
    assert_int_equal(engine_container_kill(engine, id, &err), 0);
    assert_int_equal(engine_container_kill(engine, id, &err), 0);
    assert_int_equal(engine_container_remove(engine, id, &err), 0);
    assert_int_equal(engine_container_remove(engine, id, &err), 0);
    struct engine_container_state st;
    assert_int_equal(engine_container_inspect(engine, id, &st, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
}

static void containers_are_listed_by_label(void **state)
{
    (void)state;
    NEED_ENGINE();
    const char *sleep_cmd[] = {"sleep", "infinity", NULL};
    _cleanup_free_ char *a = sandbox(sleep_cmd), *b = sandbox(sleep_cmd);
    char **ids = NULL;
    struct err err = ERR_INIT;
    assert_int_equal(engine_container_list(engine, "envhub.test", run_id, &ids, &err), 0);
    size_t found = 0;
    for (char **p = ids; *p; p++)
        found += strcmp(*p, a) == 0 || strcmp(*p, b) == 0;
    assert_int_equal(found, 2);
    strv_free(ids);
    engine_container_remove(engine, a, &err);
    engine_container_remove(engine, b, &err);
    assert_int_equal(engine_container_list(engine, "envhub.test", run_id, &ids, &err), 0);
    assert_null(ids[0]);
    strv_free(ids);
}

static void the_engines_refusals_carry_its_message_and_code(void **state)
{
    (void)state;
    NEED_ENGINE();
    struct err err = ERR_INIT;
    struct engine_image_info info = {0};
    assert_int_equal(engine_image_inspect(engine, "envhub/no-such-image:none", &info, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no-such-image"));
    err_clear(&err);
    const char *cmd[] = {"true", NULL};
    struct engine_container_spec spec = {.image = "envhub/no-such-image:none", .cmd = cmd};
    char *id = NULL;
    assert_int_equal(engine_container_create(engine, &spec, &id, &err), -1);
    assert_null(id);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(engine_ping(engine, &err), 0);
    assert_true(engine_version_compare(engine_api_version(engine), ENGINE_API_MIN) >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exec_streams_stdin_in_and_both_outputs_out),
        cmocka_unit_test(the_sandbox_holds_its_limits),
        cmocka_unit_test(a_deadline_ends_an_exec_that_does_not),
        cmocka_unit_test(containers_are_listed_by_label),
        cmocka_unit_test(the_engines_refusals_carry_its_message_and_code),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

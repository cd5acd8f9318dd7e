/* tests/unit/test_wrapper.c - the in-container wrapper (executor/wrapper.sh,
 * compiled in) and the parsers of its report: exec_parse_marker() for
 * "\0envhub-status RC FILES OOM\0", exec_parse_unclean() for the recycling
 * clean-up's failure. The wrapper itself runs here too, in a temporary
 * folder with the host's sh, tar and python3 (skipped without them), as a
 * job and as a session call; never in recycling mode, whose clean-up kills
 * every process of its user. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

#define MARKER(s) s, sizeof(s) - 1

/* ---- exec_parse_marker ---- */

static void marker_at_the_end_is_read(void **state)
{
    struct status_marker m = {0};
    (void)state;

    assert_true(exec_parse_marker(MARKER("\0envhub-status 0 1 0\0"), &m));
    assert_int_equal(m.rc, 0);
    assert_true(m.files);
    assert_int_equal(m.oom_kills, 0);
    assert_int_equal(m.len, sizeof("\0envhub-status 0 1 0\0") - 1);

    /* after the job's own stderr; the length is the marker's alone */
    assert_true(exec_parse_marker(MARKER("Traceback...\nboom\n\0envhub-status 137 0 2\0"), &m));
    assert_int_equal(m.rc, 137);
    assert_false(m.files);
    assert_int_equal(m.oom_kills, 2);
    assert_int_equal(m.len, sizeof("\0envhub-status 137 0 2\0") - 1);
}

static void last_marker_wins(void **state)
{
    struct status_marker m = {0};
    (void)state;

    /* a job printing a forged report first: the wrapper's comes last */
    assert_true(exec_parse_marker(MARKER("\0envhub-status 0 0 0\0x\0envhub-status 3 1 0\0"), &m));
    assert_int_equal(m.rc, 3);
    assert_true(m.files);
}

static void malformed_markers_are_refused(void **state)
{
    struct status_marker m = {0};
    (void)state;

    assert_false(exec_parse_marker(MARKER(""), &m));
    assert_false(exec_parse_marker(MARKER("no marker at all"), &m));
    /* not at the very end */
    assert_false(exec_parse_marker(MARKER("\0envhub-status 0 0 0\0more"), &m));
    /* no terminating NUL */
    assert_false(exec_parse_marker(MARKER("\0envhub-status 0 0 0"), &m));
    /* no leading NUL */
    assert_false(exec_parse_marker(MARKER("envhub-status 0 0 0\0"), &m));
    /* out of range, missing or extra fields */
    assert_false(exec_parse_marker(MARKER("\0envhub-status 256 0 0\0"), &m));
    assert_false(exec_parse_marker(MARKER("\0envhub-status -1 0 0\0"), &m));
    assert_false(exec_parse_marker(MARKER("\0envhub-status 0 2 0\0"), &m));
    assert_false(exec_parse_marker(MARKER("\0envhub-status 0 0 -1\0"), &m));
    assert_false(exec_parse_marker(MARKER("\0envhub-status 0 0\0"), &m));
    assert_false(exec_parse_marker(MARKER("\0envhub-status 0 0 0 0\0"), &m));
    assert_false(exec_parse_marker(MARKER("\0envhub-status 0 0 0x\0"), &m));
    assert_false(exec_parse_marker(MARKER("\0envhub-stat 0 0 0\0"), &m));
    /* longer than any report */
    assert_false(exec_parse_marker(
        MARKER("\0envhub-status 0 0 "
               "000000000000000000000000000000000000000000000000000000000000000000000000\0"),
        &m));
}

static void unclean_report_is_read(void **state)
{
    (void)state;
    assert_true(exec_parse_unclean(MARKER("\0envhub-unclean\0")));
    assert_true(exec_parse_unclean(MARKER("output\0envhub-unclean\0")));
    assert_false(exec_parse_unclean(MARKER("envhub-unclean\0")));
    assert_false(exec_parse_unclean(MARKER("\0envhub-unclean")));
    assert_false(exec_parse_unclean(MARKER("\0envhub-unclean\0x")));
    assert_false(exec_parse_unclean(MARKER("")));
}

/* ---- the wrapper ---- */

static void wrapper_is_compiled_in(void **state)
{
    const char *w = exec_wrapper_script();
    (void)state;

    assert_non_null(w);
    assert_non_null(strstr(executor_embedded[0].path, "executor/wrapper.sh"));
    assert_non_null(strstr(executor_embedded[1].path, "executor/display.py"));
    assert_non_null(strstr(executor_embedded[2].path, "executor/agent.py"));
    assert_null(executor_embedded[3].path);
    assert_int_equal(strlen(w), executor_embedded[0].len);
    /* what the parsers and the file collection rely on */
    assert_non_null(strstr(w, "printf '\\0envhub-status %d %d %d\\0'"));
    assert_non_null(strstr(w, "printf '\\0envhub-unclean\\0'"));
    assert_non_null(strstr(w, "python3 " EXEC_CODE_NAME));
    /* the recycling clean-up (run against a real engine by tests/api/test_pool.py):
     * SysV IPC, POSIX message queues and shared memory go, and are checked */
    assert_non_null(strstr(w, "ipcrm -a"));
    assert_non_null(strstr(w, "/proc/sysvipc/shm /proc/sysvipc/msg /proc/sysvipc/sem"));
    assert_non_null(strstr(w, "/dev/mqueue/*"));
    assert_non_null(strstr(w, "/dev/shm/*"));
}

struct run {
    char dir[64];
    char *out, *err;
    size_t out_len, err_len;
    int status;
};

static char *slurp(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    struct buf b = BUF_INIT(1 << 20);
    char chunk[4096];
    size_t n;

    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(&b, chunk, n) < 0)
            fail_msg("%s is too large", path);
    fclose(f);
    return buf_detach(&b, ret_len);
}

static bool have_tools(void)
{
    return access("/bin/sh", X_OK) == 0 && access("/usr/bin/python3", X_OK) == 0 &&
           (access("/bin/tar", X_OK) == 0 || access("/usr/bin/tar", X_OK) == 0);
}

/* Run the wrapper on @code in @r->dir (a new temporary folder unless
 * @again): @timeout "0" as a job, else as a session call; @display the
 * pictures allowed (NULL: the argument left out). */
static void run_wrapper_in(const char *code, const char *timeout, const char *display, bool again,
                           struct run *r)
{
    struct buf tar = BUF_INIT(1 << 20);
    struct err err = ERR_INIT;

    if (again) {
        free(r->out);
        free(r->err);
        r->out = r->err = NULL;
    } else {
        memset(r, 0, sizeof(*r));
        snprintf(r->dir, sizeof(r->dir), "/tmp/envhub-test-wrapper-XXXXXX");
        if (!mkdtemp(r->dir))
            fail_msg("mkdtemp: %s", strerror(errno));
    }
    if (exec_tar_inputs(code, strlen(code), NULL, 0, &tar, &err) < 0)
        fail_msg("input tar: %s", err.msg);
    char *in_path = xasprintf("%s.in", r->dir), *out_path = xasprintf("%s.out", r->dir),
         *err_path = xasprintf("%s.err", r->dir);
    FILE *f = fopen(in_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(tar.data, 1, tar.len, f), tar.len);
    fclose(f);
    buf_release(&tar);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open(in_path, O_RDONLY), out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
            er = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || er < 0 || chdir(r->dir) < 0 || dup2(in, 0) < 0 ||
            dup2(out, 1) < 0 || dup2(er, 2) < 0)
            _exit(127);
        execl("/bin/sh", "sh", "-c", exec_wrapper_script(), "envhub-wrapper", "0", timeout, display,
              (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &r->status, 0), pid);
    r->out = slurp(out_path, &r->out_len);
    r->err = slurp(err_path, &r->err_len);
    unlink(in_path);
    unlink(out_path);
    unlink(err_path);
    free(in_path);
    free(out_path);
    free(err_path);
}

static void run_wrapper(const char *code, const char *timeout, struct run *r)
{
    run_wrapper_in(code, timeout, NULL, false, r);
}

static void run_release(struct run *r)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", r->dir, (char *)NULL);
        _exit(127);
    }
    waitpid(pid, NULL, 0);
    free(r->out);
    free(r->err);
}

static void wrapper_reports_a_jobs_exit_and_files(void **state)
{
    struct run r;
    struct status_marker m = {0};
    (void)state;

    if (!have_tools())
        skip();
    run_wrapper("import sys\nopen('out.txt', 'w').write('x')\nprint('hi')\n"
                "sys.stderr.write('oops\\n')\nsys.exit(3)\n",
                "0", &r);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 3);
    assert_string_equal(r.out, "hi\n");
    assert_true(exec_parse_marker(r.err, r.err_len, &m));
    assert_int_equal(m.rc, 3);
    assert_true(m.files);
    assert_int_equal(m.oom_kills, 0);
    /* what comes before the report is the job's own stderr */
    assert_int_equal(r.err_len - m.len, strlen("oops\n"));
    assert_memory_equal(r.err, "oops\n", 5);
    run_release(&r);
}

static void wrapper_ignores_the_code_file(void **state)
{
    struct run r;
    struct status_marker m = {0};
    (void)state;

    if (!have_tools())
        skip();
    run_wrapper("pass\n", "0", &r);
    assert_true(exec_parse_marker(r.err, r.err_len, &m));
    assert_int_equal(m.rc, 0);
    assert_false(m.files); /* only the code file is there */
    assert_int_equal(r.err_len, m.len);
    run_release(&r);
}

static void session_call_times_out_inside(void **state)
{
    struct run r;
    struct status_marker m = {0};
    (void)state;

    if (!have_tools())
        skip();
    run_wrapper("import time\ntime.sleep(30)\n", "1", &r);
    assert_true(exec_parse_marker(r.err, r.err_len, &m));
    assert_int_equal(m.rc, 124); /* timeout(1)'s */
    assert_false(m.files);       /* a session's code file is removed after the call */
    char *code = xasprintf("%s/%s", r.dir, EXEC_CODE_NAME);
    assert_int_equal(access(code, F_OK), -1);
    free(code);
    run_release(&r);
}

/* The backend is chosen only when pictures are allowed; envhub's folder is
 * not a file of the job's, but a picture in it is worth collecting; a
 * session's next call starts without the last one's pictures. */
static void wrapper_sets_up_the_display_backend(void **state)
{
    struct run r;
    struct status_marker m = {0};
    const char *code = "import os, sys\n"
                       "print(os.environ.get('MPLBACKEND'), os.environ.get('ENVHUB_MAX_DISPLAY'))\n"
                       "d = os.environ.get('ENVHUB_DISPLAY_DIR')\n"
                       "print(d == os.path.join(os.getcwd(), '.envhub', 'display'))\n"
                       "print(os.path.isfile(os.path.join(os.getcwd(), '.envhub', "
                       "'envhub_display.py')))\n"
                       "print(sys.path.count(os.path.join(os.getcwd(), '.envhub')))\n"
                       "print(sorted(os.listdir(d)) if os.path.isdir(d) else 'none')\n"
                       "os.makedirs(d, exist_ok=True)\n"
                       "open(os.path.join(d, 'figure-1.png'), 'wb').write(b'x')\n";
    (void)state;

    if (!have_tools())
        skip();
    run_wrapper_in(code, "5", "7", false, &r);
    assert_string_equal(r.out, "module://envhub_display 7\nTrue\nTrue\n1\nnone\n");
    assert_true(exec_parse_marker(r.err, r.err_len, &m));
    assert_int_equal(m.rc, 0);
    assert_true(m.files); /* a picture */
    /* the next call of the session: the last call's picture is gone */
    run_wrapper_in(code, "5", "7", true, &r);
    assert_string_equal(r.out, "module://envhub_display 7\nTrue\nTrue\n1\nnone\n");
    run_release(&r);

    /* no pictures allowed (ENVHUB_MAX_DISPLAY=0), or an older caller: Agg as before */
    run_wrapper_in("import os\nprint(os.environ.get('MPLBACKEND'))\n", "0", "0", false, &r);
    assert_string_equal(r.out, "None\n"); /* the engine's job_env sets Agg; here nothing */
    assert_true(exec_parse_marker(r.err, r.err_len, &m));
    assert_false(m.files); /* envhub's folder alone is no file */
    run_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(marker_at_the_end_is_read),
        cmocka_unit_test(last_marker_wins),
        cmocka_unit_test(malformed_markers_are_refused),
        cmocka_unit_test(unclean_report_is_read),
        cmocka_unit_test(wrapper_is_compiled_in),
        cmocka_unit_test(wrapper_reports_a_jobs_exit_and_files),
        cmocka_unit_test(wrapper_ignores_the_code_file),
        cmocka_unit_test(session_call_times_out_inside),
        cmocka_unit_test(wrapper_sets_up_the_display_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/fuzz/fuzz_execute_body.c - web_parse_execute (web/request.c): the
 * body of POST /execute, /sessions/{id}/execute and each job of a batch.
 *
 * Input: one byte of choices (bit 0: the server's default limits, else
 * small ones the fuzzer can reach; bit 1: "environment" required), then the
 * body. Properties: a body that parses gives code of 1 to max_code_length
 * bytes that is not all white space, NUL-terminated; a timeout from 1 to
 * max_timeout (the default when none was given); at most max_files files,
 * each with a distinct safe name that is not the code's and at most
 * max_file_size bytes; an environment when required, never an empty one;
 * limits that are positive when given. A failure is 400 or 422 with a
 * one-line message, and leaves nothing allocated. */
#include <ctype.h>

#include "core/config.h"
#include "core/util.h"
#include "executor/executor_internal.h"
#include "web/web_internal.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

/* Small limits, as tests/unit/test_request.c has them. */
static const struct request_limits small = {
    .max_code_length = 100,
    .max_file_size = 16,
    .max_files = 3,
    .default_timeout = 30,
    .max_timeout = 300,
    .shape =
        {
            .max_depth = 8,
            .max_members = 8,
            .max_items = 8,
            .max_key = 64,
            .max_string = 256,
            .max_values = 64,
        },
};

/* web_request_limits() of the server's defaults, computed once. */
static const struct request_limits *default_limits(void)
{
    static struct request_limits lim;
    static bool ready;

    if (!ready) {
        char name[] = "fuzz_execute_body";
        char *argv[] = {name, NULL};
        int argc = 1;
        struct config cfg;
        struct err err = ERR_INIT;
        if (config_load(&cfg, &argc, argv, &err) < 0) {
            fprintf(stderr, "fuzz_execute_body: %s\n", err.msg);
            abort();
        }
        web_request_limits(&cfg, &lim);
        config_release(&cfg);
        ready = true;
    }
    return &lim;
}

static void check_request(const struct execute_request *r, const struct request_limits *lim,
                          bool environment_required)
{
    bool blank = true;

    FUZZ_CHECK(r->code != NULL && r->code_len >= 1);
    FUZZ_CHECK((int64_t)r->code_len <= lim->max_code_length && r->code[r->code_len] == '\0');
    for (size_t i = 0; i < r->code_len; i++)
        blank &= isspace((unsigned char)r->code[i]) != 0;
    FUZZ_CHECK(!blank);
    FUZZ_CHECK(r->timeout_s >= 1 && r->timeout_s <= lim->max_timeout);
    FUZZ_CHECK(r->timeout_given || r->timeout_s == lim->default_timeout);
    FUZZ_CHECK((int64_t)r->n_files <= lim->max_files);
    FUZZ_CHECK(r->n_files == 0 || r->files != NULL);
    for (size_t i = 0; i < r->n_files; i++) {
        const struct job_file *f = &r->files[i];
        FUZZ_CHECK(f->path != NULL && f->data != NULL);
        FUZZ_CHECK(path_is_safe_relative(f->path, strlen(f->path), NULL));
        FUZZ_CHECK(strcmp(f->path, EXEC_CODE_NAME) != 0);
        FUZZ_CHECK((int64_t)f->len <= lim->max_file_size);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(f->path, r->files[j].path) != 0);
    }
    FUZZ_CHECK(!environment_required || r->environment != NULL);
    FUZZ_CHECK(r->environment == NULL || r->environment[0] != '\0');
    FUZZ_CHECK(r->overrides.memory >= 0 && r->overrides.pids >= 0);
    FUZZ_CHECK(r->overrides.output_limit >= 0);
    FUZZ_CHECK(r->overrides.cpu_millis == 0 ||
               (r->overrides.cpu_millis >= 10 && r->overrides.cpu_millis <= 1024000));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t choice = fuzz_take_byte(&data, &size);
    const struct request_limits *lim = (choice & 1) ? default_limits() : &small;
    bool environment_required = choice & 2;
    struct execute_request r = {0};
    struct err err = ERR_INIT;

    if (web_parse_execute((const char *)data, size, lim, environment_required, &r, &err) == 0) {
        FUZZ_CHECK(err.code == ERR_OK);
        check_request(&r, lim, environment_required);
        execute_request_release(&r);
    } else {
        FUZZ_CHECK(err.code == ERR_INVALID || err.code == ERR_UNPROCESSABLE);
        fuzz_check_err(&err);
        /* nothing was handed over */
        FUZZ_CHECK(r.code == NULL && r.files == NULL && r.environment == NULL);
    }
    return 0;
}

/* tests/fuzz/fuzz_node_result.c - exec_remote_result_parse and
 * exec_remote_spec_parse (executor/remote.c): the server's reader of what a
 * node sends back about a job (another machine's word, checked like what
 * comes out of a sandbox), a node's reader of a job's spec, and of the
 * pools the server asks it to keep (exec_remote_pools_parse).
 *
 * Input: the text. Properties: a refusal says why and leaves the result as
 * it was; an accepted result stays inside the limits it was read with
 * (stdout and stderr, file count, size and total, pictures PNG with plain
 * names, file paths safe and relative), its status final, its id kept. */
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

#define OUTPUT_LIMIT 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct tar_out_limits lim = {
        .max_file_size = 32, .max_total = 48, .max_files = 4, .max_display = 2};
    const char *text = (const char *)data;
    struct job_result res = {.id = "ex_fuzz"};
    struct job_outcome out = {0};
    struct err err = ERR_INIT;

    if (exec_remote_result_parse(&lim, OUTPUT_LIMIT, text, size, &res, &out, &err) < 0) {
        fuzz_check_err(&err);
        FUZZ_CHECK(!res.stdout_text && !res.files && !out.image_id && !out.preload_errors);
    } else {
        FUZZ_CHECK(strcmp(res.id, "ex_fuzz") == 0);
        FUZZ_CHECK(res.status >= EXEC_SUCCEEDED && res.status <= EXEC_INTERRUPTED);
        FUZZ_CHECK(res.stdout_len <= OUTPUT_LIMIT && res.stderr_len <= OUTPUT_LIMIT);
        FUZZ_CHECK(res.n_files <= lim.max_files && res.n_display <= lim.max_display);
        size_t total = 0;
        for (size_t i = 0; i < res.n_files; i++) {
            const char *why = NULL;
            FUZZ_CHECK(res.files[i].len <= lim.max_file_size);
            FUZZ_CHECK(path_is_safe_relative(res.files[i].path, strlen(res.files[i].path), &why));
            total += res.files[i].len;
        }
        for (size_t i = 0; i < res.n_display; i++) {
            FUZZ_CHECK(res.display[i].len >= 8 && !strchr(res.display[i].path, '/'));
            total += res.display[i].len;
        }
        FUZZ_CHECK(total <= lim.max_total);
        FUZZ_CHECK(utf8_valid_with_nul(res.stdout_text, res.stdout_len));
    }
    job_result_release(&res);
    free(out.image_id);
    strv_free(out.preload_errors);

    struct prepared_job pj;
    err_clear(&err);
    if (exec_remote_spec_parse(text, size, &pj, &err) < 0)
        fuzz_check_err(&err);
    else
        FUZZ_CHECK(pj.rec.id && pj.rec.image &&
                   pj.input_tar.len <= (size_t)pj.limits.workspace_size);
    exec_job_release(&pj);

    struct exec_pool_target *t = NULL;
    size_t n = 0;
    err_clear(&err);
    if (exec_remote_pools_parse(text, size, &t, &n, &err) < 0) {
        fuzz_check_err(&err);
        FUZZ_CHECK(!t && n == 0);
    } else {
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(t[i].image && t[i].want >= 1 && t[i].want <= 1000 &&
                       t[i].limits.n_preload <= SANDBOX_PRELOAD_MAX);
    }
    exec_pool_targets_free(t, n);
    return 0;
}

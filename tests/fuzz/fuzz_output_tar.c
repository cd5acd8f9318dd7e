/* tests/fuzz/fuzz_output_tar.c - exec_tar_outputs and exec_tar_collected
 * (executor/tar.c), the readers of the workspace tar that comes out of the
 * sandbox, written by the code we run.
 *
 * Input: one byte of choices (bit 0: the stream was cut at the cap; bit 1:
 * small limits), then the tar. Properties: it never fails; every file it
 * returns has a safe relative name (path_is_safe_relative), neither the
 * code's nor another file's, a size within the file limit and a NUL after
 * its bytes, and all of them together stay within the total limit; what is
 * left out is listed as "path: reason". The same tar read by the collect
 * step's reader: files as above, none in envhub's folder; pictures with
 * safe names directly in the display folder, ending ".png", starting with
 * the PNG signature, at most max_display of them, unique, within the file
 * limit, and files and pictures together within the total. */
#include <strings.h>

#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor.h"
#include "executor/executor_internal.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void check_unique(const struct job_file *files, size_t n)
{
    if (n < 2)
        return;
    const char **paths = xcalloc(n, sizeof(*paths));
    for (size_t i = 0; i < n; i++)
        paths[i] = files[i].path;
    qsort(paths, n, sizeof(*paths), by_string);
    for (size_t i = 1; i < n; i++)
        FUZZ_CHECK(strcmp(paths[i - 1], paths[i]) != 0);
    free(paths);
}

static void check_collected(const uint8_t *data, size_t size, bool truncated,
                            struct tar_out_limits limits)
{
    struct job_file *files = NULL, *display = NULL;
    char **skipped = NULL;
    size_t n = 0, n_display = 0, total = 0;
    struct err err = ERR_INIT;

    limits.max_display = 3;
    FUZZ_CHECK(exec_tar_collected((const char *)data, size, truncated, &limits, &files, &n,
                                  &display, &n_display, &skipped, &err) == 0);
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        FUZZ_CHECK(path_is_safe_relative(files[i].path, strlen(files[i].path), &why));
        FUZZ_CHECK(strncmp(files[i].path, EXEC_PRIVATE_DIR "/", strlen(EXEC_PRIVATE_DIR) + 1));
        FUZZ_CHECK(files[i].len <= limits.max_file_size);
        total += files[i].len;
    }
    FUZZ_CHECK(n_display <= limits.max_display);
    for (size_t i = 0; i < n_display; i++) {
        const struct job_file *f = &display[i];
        const char *why = NULL;
        size_t len = strlen(f->path);
        FUZZ_CHECK(path_is_safe_relative(f->path, len, &why) && !strchr(f->path, '/'));
        FUZZ_CHECK(len > 4 && strcasecmp(f->path + len - 4, ".png") == 0);
        FUZZ_CHECK(f->len >= 8 && memcmp(f->data, "\x89PNG\r\n\x1a\n", 8) == 0);
        FUZZ_CHECK(f->len <= limits.max_file_size && f->data[f->len] == '\0');
        total += f->len;
    }
    check_unique(files, n);
    check_unique(display, n_display);
    FUZZ_CHECK(total <= limits.max_total);
    for (size_t i = 0; skipped && skipped[i]; i++)
        FUZZ_CHECK(skipped[i][0] != '\0' && strstr(skipped[i], ": ") != NULL);
    job_files_free(files, n);
    job_files_free(display, n_display);
    strv_free(skipped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t choice = fuzz_take_byte(&data, &size);
    bool truncated = choice & 1;
    struct tar_out_limits limits = {
        .max_file_size = 10 << 20, .max_total = 100 << 20, .max_files = 1000};
    struct job_file *files = NULL;
    char **skipped = NULL;
    size_t n = 0, total = 0;
    struct err err = ERR_INIT;

    if (choice & 2)
        limits = (struct tar_out_limits){.max_file_size = 16 + (choice >> 2) % 64,
                                         .max_total = 64 + (choice >> 2)};
    int rc =
        exec_tar_outputs((const char *)data, size, truncated, &limits, &files, &n, &skipped, &err);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(n == 0 || files != NULL);
    for (size_t i = 0; i < n; i++) {
        const struct job_file *f = &files[i];
        const char *why = NULL;
        FUZZ_CHECK(f->path != NULL && f->data != NULL);
        FUZZ_CHECK(path_is_safe_relative(f->path, strlen(f->path), &why));
        FUZZ_CHECK(strcmp(f->path, EXEC_CODE_NAME) != 0);
        FUZZ_CHECK(f->len <= limits.max_file_size);
        FUZZ_CHECK(f->data[f->len] == '\0');
        total += f->len;
    }
    /* the catalog keys a job's files by path: never two of one name */
    check_unique(files, n);
    FUZZ_CHECK(total <= limits.max_total);
    for (size_t i = 0; skipped && skipped[i]; i++)
        FUZZ_CHECK(skipped[i][0] != '\0' && strstr(skipped[i], ": ") != NULL);
    job_files_free(files, n);
    strv_free(skipped);
    check_collected(data, size, truncated, limits);
    return 0;
}

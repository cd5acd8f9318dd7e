/* executor/executor_internal.h - the executor's pure parts, shared by its .c
 * files and its unit tests; nobody else includes it. */
#ifndef ENVHUB_EXECUTOR_INTERNAL_H
#define ENVHUB_EXECUTOR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "executor/executor.h"

/* Where the code goes inside the workspace; never returned as an output. */
#define EXEC_CODE_NAME ".envhub_main.py"

/* Write a tar holding @code at EXEC_CODE_NAME and each input file at its
 * path (regular files, mode 0644, owner 1000) into @out. ERR_TOO_LARGE when
 * out's limit is passed. */
int exec_tar_inputs(const char *code, size_t code_len, const struct job_file *files, size_t n,
                    struct buf *out, struct err *err);

struct tar_out_limits {
    size_t max_file_size; /* larger files are skipped */
    size_t max_total;     /* files past this total are skipped */
};

/* Read the workspace tar in data[0..len): only regular files with safe
 * relative names within the limits are returned (the code file, symlinks,
 * hard links, devices, FIFOs and folders never are). @truncated says the
 * stream was cut at the cap: an entry that ends early is skipped, never
 * returned in part. Files left out are appended to *skipped as
 * "path: reason" (a NULL-terminated array, grown with xrealloc). */
int exec_tar_outputs(const char *data, size_t len, bool truncated,
                     const struct tar_out_limits *limits, struct job_file **ret_files,
                     size_t *ret_n, char ***skipped, struct err *err);

#endif

/* cli/common.c - what every command shares: its error messages, its client
 * of the server and the reading of the files it sends. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "cli/client.h"
#include "core/buf.h"
#include "core/cleanup.h"

#include "core/banned.h"

int cli_usage_error(const char *path, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see `%s --help`\n", path);
    return CLI_EXIT_USAGE;
}

int cli_fail(const struct err *err)
{
    fprintf(stderr, "envhub: %s\n", err->msg);
    return CLI_EXIT_FAILED;
}

int cli_client(const struct cli_ctx *ctx, struct client *c)
{
    struct err err = ERR_INIT;
    if (client_init(c, ctx->cfg, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int cli_read_file(const char *path, struct buf *out, struct err *err)
{
    _cleanup_close_ int fd =
        strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
    char chunk[16384];
    ssize_t n;

    if (fd < 0)
        return err_errno(err, ERR_INVALID, errno, "cannot open '%s'", path);
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_errno(err, ERR_INVALID, errno, "cannot read '%s'", path);
        }
        if (buf_append(out, chunk, (size_t)n) < 0)
            return err_set(err, ERR_TOO_LARGE, "'%s' is larger than %zu bytes", path, out->limit);
    }
    return 0;
}

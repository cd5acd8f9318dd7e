/* web/compat.c - the texts of SimplePySandbox's contract, in one table.
 *
 * The modules below web say what an error is about (struct err's `about`,
 * with an English message for the log); the answer words it as the seed
 * project does, so that its clients, which compare these strings, keep
 * working (docs/compat.md). */
#include <stdio.h>
#include <string.h>

#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

void web_compat_detail(const struct err *err, char *out, size_t n)
{
    /* a context prefixed to the message ("jobs[1]: ...") stays in front */
    char base[96];
    snprintf(base, sizeof(base), "environment '%s'", err->about_name);
    const char *at = strstr(err->msg, base);
    int prefix = at ? (int)(at - err->msg) : 0;

    switch (err->about) {
    case ERR_ABOUT_ENV_MISSING:
        snprintf(out, n, "%.*s环境 '%s' 不存在", prefix, err->msg, err->about_name);
        return;
    case ERR_ABOUT_ENV_EXISTS:
        snprintf(out, n, "%.*s环境 '%s' 已存在", prefix, err->msg, err->about_name);
        return;
    case ERR_ABOUT_ENV_NOT_READY:
        snprintf(out, n, "%.*s环境 '%s' 状态为 %s，无法使用", prefix, err->msg, err->about_name,
                 err->about_state);
        return;
    case ERR_ABOUT_NONE:
        break;
    }
    snprintf(out, n, "%s", err->msg);
}

char *web_compat_deleted(const char *name)
{
    return xasprintf("环境 '%s' 已删除", name);
}

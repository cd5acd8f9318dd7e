/* builder/definition.c - the pure parts of a build: names, image references,
 * the definition hash, the Dockerfile and the deterministic build context.
 * Nothing here touches the engine or the catalog. */
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "builder/builder.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

/* Bumped whenever the Dockerfile template changes, so that old images are
 * not reused for a definition that would now build differently. */
#define DOCKERFILE_TEMPLATE "envhub-dockerfile-1"

bool builder_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > 50 || !isalnum((unsigned char)name[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}

/* One path component: [a-z0-9]+ joined by '.', '_', '__' or runs of '-'. */
static bool ref_component_valid(const char *s, size_t n)
{
    if (n == 0 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])) ||
        !(islower((unsigned char)s[n - 1]) || isdigit((unsigned char)s[n - 1])))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (islower(c) || isdigit(c))
            continue;
        if (c == '.' || c == '_' || c == '-') {
            if (c == '.' && (s[i + 1] == '.' || s[i + 1] == '_' || s[i + 1] == '-'))
                return false;
            continue;
        }
        return false;
    }
    return true;
}

/* A registry host: letters, digits, '.', '-', an optional :port. */
static bool ref_domain_valid(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0)
        return false;
    for (; i < n && s[i] != ':'; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-')
            return false;
    if (i < n) {
        if (i + 1 == n)
            return false;
        for (size_t k = i + 1; k < n; k++)
            if (!isdigit((unsigned char)s[k]))
                return false;
    }
    return true;
}

bool builder_image_ref_valid(const char *ref)
{
    size_t len = strlen(ref);
    if (len == 0 || len > 255)
        return false;
    _cleanup_free_ char *r = xstrdup(ref);
    char *at = strchr(r, '@');
    if (at) {
        *at = '\0';
        const char *d = at + 1;
        if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
            return false;
        for (const char *p = d + 7; *p; p++)
            if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
                return false;
    }
    char *slash = strrchr(r, '/');
    char *colon = strrchr(r, ':');
    if (colon && (!slash || colon > slash)) {
        *colon = '\0';
        const char *tag = colon + 1;
        size_t tl = strlen(tag);
        if (tl == 0 || tl > 128 || !(isalnum((unsigned char)tag[0]) || tag[0] == '_'))
            return false;
        for (size_t i = 0; i < tl; i++)
            if (!isalnum((unsigned char)tag[i]) && tag[i] != '_' && tag[i] != '.' && tag[i] != '-')
                return false;
    }
    /* path components; the first may be a registry host */
    char *p = r;
    bool first = true;
    for (;;) {
        char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        bool is_domain =
            first && end &&
            (memchr(p, '.', n) || memchr(p, ':', n) || (n == 9 && strncmp(p, "localhost", 9) == 0));
        if (is_domain ? !ref_domain_valid(p, n) : !ref_component_valid(p, n))
            return false;
        if (!end)
            break;
        p = end + 1;
        first = false;
    }
    return true;
}

char *builder_image_ref(const char *name, int64_t version)
{
    char hash[SHA256_HEX_LEN + 1];
    _cleanup_free_ char *lower = xstrdup(name);

    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    /* a leading '_' or '-' cannot start a path component; names never have one */
    sha256_hex(name, strlen(name), hash);
    return xasprintf("envhub-env/%s-%.8s:v%lld", lower, hash, (long long)version);
}

void builder_definition_hash(const char *base_image, const char *python_version, const char *script,
                             char out[65])
{
    _cleanup_(buf_release) struct buf b = BUF_INIT(BUF_UNLIMITED);
    /* NUL separators: no field can end inside another */
    buf_put(&b, DOCKERFILE_TEMPLATE, sizeof(DOCKERFILE_TEMPLATE));
    buf_put(&b, base_image, strlen(base_image) + 1);
    buf_put(&b, python_version, strlen(python_version) + 1);
    buf_put(&b, script, strlen(script) + 1);
    sha256_hex(b.data, b.len, out);
}

char *builder_dockerfile(const char *base_image, const char *name, int64_t version,
                         const char *definition)
{
    /* The setup script runs with -e and pipefail; an ERR trap names the
     * failing line of setup.sh in the log. The sandbox user is made when the
     * base image lacks it. */
    return xasprintf(
        "# generated by envhub (" DOCKERFILE_TEMPLATE ")\n"
        "FROM %s\n"
        "USER root\n"
        "ENV DEBIAN_FRONTEND=noninteractive\n"
        "COPY setup.sh /envhub/setup.sh\n"
        "RUN bash -c 'set -e -o pipefail; "
        "trap '\"'\"'echo \"envhub: setup.sh failed at line $LINENO: $BASH_COMMAND\" >&2'\"'\"' "
        "ERR; source /envhub/setup.sh'\n"
        "RUN (getent group 1000 >/dev/null || groupadd -g 1000 sandbox) && "
        "(getent passwd 1000 >/dev/null || useradd -u 1000 -g 1000 -m -s /bin/sh sandbox) && "
        "mkdir -p /workspace && chown 1000:1000 /workspace\n"
        "USER 1000:1000\n"
        "WORKDIR /workspace\n"
        "LABEL envhub.managed=1 envhub.environment=\"%s\" envhub.version=\"%lld\" "
        "envhub.definition=\"%s\"\n",
        base_image, name, (long long)version, definition);
}

static la_ssize_t context_write(struct archive *a, void *ctx, const void *data, size_t len)
{
    (void)a;
    if (buf_append(ctx, data, len) < 0)
        return -1;
    return (la_ssize_t)len;
}

static int context_add(struct archive *a, const char *path, const char *data, struct err *err)
{
    struct archive_entry *e = archive_entry_new();
    size_t len = strlen(data);
    int rc = 0;

    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, 0, 0); /* deterministic: same definition, same bytes */
    archive_entry_set_size(e, (la_int64_t)len);
    if (archive_write_header(a, e) != ARCHIVE_OK ||
        (len && archive_write_data(a, data, len) != (la_ssize_t)len))
        rc = err_set(err, ERR_INTERNAL, "cannot add '%s' to the build context: %s", path,
                     archive_error_string(a));
    archive_entry_free(e);
    return rc;
}

int builder_context_tar(const char *dockerfile, const char *script, struct buf *out,
                        struct err *err)
{
    struct archive *a = archive_write_new();
    int rc = 0;

    archive_write_set_format_ustar(a);
    if (archive_write_open(a, out, NULL, context_write, NULL) != ARCHIVE_OK)
        rc = err_set(err, ERR_INTERNAL, "cannot start the build context: %s",
                     archive_error_string(a));
    if (rc == 0 && (context_add(a, "Dockerfile", dockerfile, err) < 0 ||
                    context_add(a, "setup.sh", script, err) < 0))
        rc = -1;
    if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
        rc = err_set(err, ERR_INTERNAL, "cannot finish the build context: %s",
                     archive_error_string(a));
    archive_write_free(a);
    return rc;
}

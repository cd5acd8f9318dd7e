/* executor/tar.c - the tar streams between envhub and a sandbox: inputs in,
 * workspace out. Reading is defensive: the tar comes from untrusted code, so
 * only whole regular files with safe names and within the caps come out,
 * whatever the headers claim. */
#include <archive.h>
#include <archive_entry.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

static void archive_write_freep(struct archive **a)
{
    if (*a)
        archive_write_free(*a);
}

static void archive_read_freep(struct archive **a)
{
    if (*a)
        archive_read_free(*a);
}

static void archive_entry_freep(struct archive_entry **e)
{
    if (*e)
        archive_entry_free(*e);
}

struct tar_sink {
    struct buf *out;
    bool too_large;
};

static la_ssize_t tar_write_cb(struct archive *a, void *ctx, const void *data, size_t len)
{
    struct tar_sink *s = ctx;
    (void)a;
    if (buf_append(s->out, data, len) < 0) {
        s->too_large = true;
        return -1;
    }
    return (la_ssize_t)len;
}

static int tar_add(struct archive *a, const char *path, const char *data, size_t len, time_t mtime,
                   struct err *err)
{
    _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();

    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_uid(e, 1000);
    archive_entry_set_gid(e, 1000);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_mtime(e, mtime, 0);
    if (archive_write_header(a, e) != ARCHIVE_OK)
        return err_set(err, ERR_INTERNAL, "cannot add '%s' to the input tar: %s", path,
                       archive_error_string(a));
    if (len && archive_write_data(a, data, len) != (la_ssize_t)len)
        return err_set(err, ERR_INTERNAL, "cannot write '%s' into the input tar: %s", path,
                       archive_error_string(a));
    return 0;
}

int exec_tar_inputs(const char *code, size_t code_len, const struct job_file *files, size_t n,
                    struct buf *out, struct err *err)
{
    _cleanup_(archive_write_freep) struct archive *a = archive_write_new();
    struct tar_sink sink = {.out = out};
    time_t now = time(NULL);

    /* GNU format: names go in as the bytes they are (UTF-8 from JSON), with no
     * locale conversion, and GNU tar in the sandbox reads them natively */
    archive_write_set_format_gnutar(a);
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open(a, &sink, NULL, tar_write_cb, NULL) != ARCHIVE_OK)
        return err_set(err, ERR_INTERNAL, "cannot start the input tar: %s",
                       archive_error_string(a));
    for (size_t i = 0; i < n; i++)
        if (tar_add(a, files[i].path, files[i].data, files[i].len, now, err) < 0)
            goto fail;
    if (tar_add(a, EXEC_CODE_NAME, code, code_len, now, err) < 0)
        goto fail;
    size_t module_len;
    const char *module = exec_display_module(&module_len);
    if (tar_add(a, EXEC_DISPLAY_MODULE, module, module_len, now, err) < 0)
        goto fail;
    if (archive_write_close(a) != ARCHIVE_OK) {
        err_set(err, ERR_INTERNAL, "cannot finish the input tar: %s", archive_error_string(a));
        goto fail;
    }
    return 0;
fail:
    if (sink.too_large)
        return err_set(err, ERR_TOO_LARGE, "the input files are larger than %zu bytes in all",
                       out->limit);
    return -1;
}

/* The files a workspace tar leaves out, "name: reason" on *v: names
 * escaped (utf8_escape: a sandbox may name a file anything), at most
 * TAR_SKIPPED_MAX entries and then one line counting the rest. */
struct skips {
    char ***v;
    size_t n, more;
};

/* One entry: "NAME: reason", "display NAME: reason" for a @picture (the
 * name escaped; "*" for the workspace as a whole: @name NULL). */
static void skip(struct skips *s, bool picture, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void skip(struct skips *s, bool picture, const char *name, const char *fmt, ...)
{
    if (s->n >= TAR_SKIPPED_MAX) {
        s->more++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *why = xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *shown = name ? utf8_escape(name, strlen(name)) : NULL;
    strv_push(s->v, xasprintf("%s%s: %s", picture ? "display " : "", shown ? shown : "*", why));
    s->n++;
}

static void skips_end(struct skips *s)
{
    if (s->more)
        strv_push(s->v, xasprintf("*: %zu more files left out, not listed", s->more));
}

/* Paths in the workspace tar are "./x/y"; give "x/y" (NULL for "." itself). */
static const char *strip_dot(const char *p)
{
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    return p[0] ? p : NULL;
}

struct named {
    const char *path;
    size_t i;
};

static int by_path_then_order(const void *a, const void *b)
{
    const struct named *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* A name the archive holds twice keeps its first file: the catalog keys a
 * job's files by path (a second one failed the whole record), and only a
 * crafted archive has two. Sorted, so any number of entries stays cheap. */
static void drop_duplicates(struct job_file *files, size_t *n, bool pictures, struct skips *skipped)
{
    if (*n < 2)
        return;
    struct named *v = xcalloc(*n, sizeof(*v));
    bool *dup = xcalloc(*n, sizeof(*dup));
    for (size_t i = 0; i < *n; i++)
        v[i] = (struct named){.path = files[i].path, .i = i};
    qsort(v, *n, sizeof(*v), by_path_then_order);
    for (size_t i = 1; i < *n; i++)
        if (strcmp(v[i - 1].path, v[i].path) == 0)
            dup[v[i].i] = true;
    free(v);
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++) {
        if (!dup[i]) {
            files[kept++] = files[i];
            continue;
        }
        skip(skipped, pictures, files[i].path, "in the workspace archive more than once");
        free(files[i].path);
        free(files[i].data);
    }
    free(dup);
    *n = kept;
}

/* Is @raw (a name in the collect step's tar) a picture? *ret_name: its name
 * in the display folder. */
static bool display_entry(const char *raw, const char **ret_name)
{
    static const char prefix[] = "./" EXEC_DISPLAY_DIR "/";

    if (strncmp(raw, prefix, sizeof(prefix) - 1) != 0)
        return false;
    *ret_name = raw + sizeof(prefix) - 1;
    return true;
}

/* envhub's own folder, or something in it. */
static bool private_entry(const char *path)
{
    size_t n = strlen(EXEC_PRIVATE_DIR);
    return strncmp(path, EXEC_PRIVATE_DIR, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool ends_with_png(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

static const unsigned char png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int by_version(const void *a, const void *b)
{
    const struct job_file *x = a, *y = b;
    return strverscmp(x->path, y->path);
}

/* One list the reader fills: the output files or the pictures. */
struct kept {
    struct job_file *v;
    size_t n, cap;
};

static void kept_push(struct kept *k, const char *path, char *content, size_t len)
{
    ALLOC_GROW(k->v, k->n + 1, k->cap);
    k->v[k->n].path = xstrdup(path);
    k->v[k->n].data = content;
    k->v[k->n].len = len;
    k->n++;
}

/* Why entry @name (@size bytes, its content not read yet; a @picture of
 * the display folder, else an output file) is left out, or NULL; @n_kept:
 * those of its kind kept so far. */
static const char *refusal(const char *name, bool picture, la_int64_t size, size_t n_kept,
                           const struct tar_out_limits *limits, char *why, size_t why_len)
{
    const char *unsafe = NULL;

    if (!path_is_safe_relative(name, strlen(name), &unsafe)) {
        snprintf(why, why_len, "unsafe name (%s)", unsafe);
        return why;
    }
    if (picture && strchr(name, '/'))
        return "not directly in the display folder";
    if (!utf8_valid(name, strlen(name)))
        return "name is not UTF-8"; /* JSON and the catalog hold text */
    if (picture && !ends_with_png(name))
        return "not a .png file";
    if (picture && n_kept >= limits->max_display) {
        snprintf(why, why_len, "past the display limit (%zu pictures, ENVHUB_MAX_DISPLAY)",
                 limits->max_display);
        return why;
    }
    if (!picture && n_kept >= limits->max_files) {
        snprintf(why, why_len,
                 "past the output file count limit (%zu files, ENVHUB_MAX_OUTPUT_FILES)",
                 limits->max_files);
        return why;
    }
    if (size < 0 || (uint64_t)size > limits->max_file_size) {
        snprintf(why, why_len, "larger than the file size limit (%zu bytes)",
                 limits->max_file_size);
        return why;
    }
    return NULL;
}

static int read_tar(const char *data, size_t len, bool truncated,
                    const struct tar_out_limits *limits, struct kept *files, struct kept *display,
                    char ***skipped)
{
    _cleanup_(archive_read_freep) struct archive *a = archive_read_new();
    struct archive_entry *e;
    struct skips sk = {.v = skipped};
    size_t total = 0;

    if (len == 0)
        return 0;
    archive_read_support_format_tar(a);
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
        skip(&sk, false, NULL, "unreadable workspace archive: %s", archive_error_string(a));
        skips_end(&sk);
        return 0;
    }
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            /* a cut between two entries reads as a clean end: say what was lost */
            if (truncated)
                skip(&sk, false, NULL,
                     "the rest of the workspace passed the output files limit (%zu bytes in all)",
                     limits->max_total);
            else if (r != ARCHIVE_EOF)
                skip(&sk, false, NULL, "the rest of the workspace archive is damaged: %s",
                     archive_error_string(a));
            break;
        }
        const char *raw = archive_entry_pathname(e);
        const char *path = raw ? strip_dot(raw) : NULL;
        char why_buf[128];
        if (!path)
            continue;
        if (strcmp(path, EXEC_CODE_NAME) == 0)
            continue;
        const char *name = path;
        bool picture = display && display_entry(raw, &name);
        if (!picture && private_entry(path))
            continue; /* envhub's own: its backend, or pictures not asked for */
        struct kept *into = picture ? display : files;
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e)) {
            if (archive_entry_filetype(e) != AE_IFDIR)
                skip(&sk, picture, name, "not a regular file");
            continue;
        }
        la_int64_t size = archive_entry_size(e);
        const char *why = refusal(name, picture, size, into->n, limits, why_buf, sizeof(why_buf));
        if (why) {
            skip(&sk, picture, name, "%s", why);
            continue;
        }
        if (total + (size_t)size > limits->max_total) {
            skip(&sk, picture, name, "past the output files limit (%zu bytes in all)",
                 limits->max_total);
            continue;
        }
        char *content = xmalloc((size_t)size + 1);
        size_t got = 0;
        while (got < (size_t)size) {
            la_ssize_t k = archive_read_data(a, content + got, (size_t)size - got);
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        if (got != (size_t)size) {
            free(content);
            skip(&sk, picture, name, "%s",
                 truncated ? "past the output files limit" : "incomplete in the workspace archive");
            break;
        }
        content[got] = '\0';
        if (picture && (got < sizeof(png_signature) ||
                        memcmp(content, png_signature, sizeof(png_signature)))) {
            free(content);
            skip(&sk, true, name, "not a PNG image");
            continue;
        }
        kept_push(into, name, content, got);
        total += got;
    }
    drop_duplicates(files->v, &files->n, false, &sk);
    if (display) {
        drop_duplicates(display->v, &display->n, true, &sk);
        if (display->n > 1)
            qsort(display->v, display->n, sizeof(*display->v), by_version);
    }
    skips_end(&sk);
    return 0;
}

int exec_tar_outputs(const char *data, size_t len, bool truncated,
                     const struct tar_out_limits *limits, struct job_file **ret_files,
                     size_t *ret_n, char ***skipped, struct err *err)
{
    struct kept files = {0};
    (void)err;

    read_tar(data, len, truncated, limits, &files, NULL, skipped);
    *ret_files = files.v;
    *ret_n = files.n;
    return 0;
}

int exec_tar_collected(const char *data, size_t len, bool truncated,
                       const struct tar_out_limits *limits, struct job_file **ret_files,
                       size_t *ret_n, struct job_file **ret_display, size_t *ret_n_display,
                       char ***skipped, struct err *err)
{
    struct kept files = {0}, display = {0};
    (void)err;

    read_tar(data, len, truncated, limits, &files, &display, skipped);
    *ret_files = files.v;
    *ret_n = files.n;
    *ret_display = display.v;
    *ret_n_display = display.n;
    return 0;
}

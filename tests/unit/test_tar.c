/* tests/unit/test_tar.c - the tar streams of executor/tar.c: the input tar
 * read back entry by entry, and the workspace tar a sandbox sends back, built
 * here with libarchive's writer to hold what untrusted code could leave:
 * links, devices, FIFOs, unsafe names, oversized and truncated entries and
 * headers that lie about their size. */
#include <archive.h>
#include <archive_entry.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)
#define GIB ((uint64_t)1024 * 1024 * 1024)

/* ---- building tars in memory ---- */

struct tb {
    struct archive *a;
    struct buf out;
    bool frozen; /* tb_cut: nothing more reaches out */
};

static la_ssize_t tb_write(struct archive *a, void *ctx, const void *data, size_t len)
{
    struct tb *t = ctx;
    (void)a;
    if (t->frozen || buf_append(&t->out, data, len) < 0)
        return -1;
    return (la_ssize_t)len;
}

/* pax_restricted as the input writer and GNU tar use; ustar when @ustar. */
static void tb_open(struct tb *t, bool ustar)
{
    t->out = (struct buf)BUF_INIT(BUF_UNLIMITED);
    t->frozen = false;
    t->a = archive_write_new();
    assert_non_null(t->a);
    if (ustar)
        assert_int_equal(archive_write_set_format_ustar(t->a), ARCHIVE_OK);
    else
        assert_int_equal(archive_write_set_format_pax_restricted(t->a), ARCHIVE_OK);
    /* unblocked: every byte reaches t->out at once, so a tar can be cut
     * anywhere after a header or a write */
    assert_int_equal(archive_write_set_bytes_per_block(t->a, 0), ARCHIVE_OK);
    assert_int_equal(archive_write_open(t->a, t, NULL, tb_write, NULL), ARCHIVE_OK);
}

/* An entry of any type; @claim is the size the header states (it may lie
 * when the tar is cut afterwards with tb_cut). */
static void tb_entry(struct tb *t, const char *path, mode_t type, const void *data, size_t len,
                     int64_t claim, const char *link, bool hard)
{
    struct archive_entry *e = archive_entry_new();

    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, (unsigned int)type);
    archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_uid(e, 1000);
    archive_entry_set_gid(e, 1000);
    archive_entry_set_mtime(e, 1795459095, 0);
    if (type == AE_IFREG)
        archive_entry_set_size(e, claim);
    if (type == AE_IFCHR || type == AE_IFBLK)
        archive_entry_set_rdev(e, makedev(1, 3));
    if (link && hard)
        archive_entry_set_hardlink(e, link);
    else if (link)
        archive_entry_set_symlink(e, link);
    int r = archive_write_header(t->a, e);
    if (r != ARCHIVE_OK)
        fail_msg("cannot write the header of '%s': %s", path, archive_error_string(t->a));
    archive_entry_free(e);
    if (len && archive_write_data(t->a, data, len) != (la_ssize_t)len)
        fail_msg("cannot write the data of '%s': %s", path, archive_error_string(t->a));
}

static void tb_file(struct tb *t, const char *path, const void *data, size_t len)
{
    tb_entry(t, path, AE_IFREG, data, len, (int64_t)len, NULL, false);
}

static void tb_str(struct tb *t, const char *path, const char *s)
{
    tb_file(t, path, s, strlen(s));
}

static void tb_dir(struct tb *t, const char *path)
{
    tb_entry(t, path, AE_IFDIR, NULL, 0, 0, NULL, false);
}

/* The finished tar; the caller releases t->out. */
static void tb_close(struct tb *t)
{
    assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
    archive_write_free(t->a);
    t->a = NULL;
}

/* Stop where the writer is, without the padding and end blocks close()
 * would write: the tar ends in the middle of the last entry's data. */
static void tb_cut(struct tb *t)
{
    /* close() then fails at its first write (the padding of the entry, which
     * for a lying header could be gigabytes) but still frees what it holds */
    t->frozen = true;
    assert_int_not_equal(archive_write_close(t->a), ARCHIVE_OK);
    archive_write_free(t->a);
    t->a = NULL;
}

/* ---- reading the results ---- */

struct outputs {
    struct job_file *files;
    size_t n;
    char **skipped;
};

static void run_outputs(struct outputs *o, const struct buf *tar, bool truncated, size_t max_file,
                        size_t max_total)
{
    struct tar_out_limits lim = {
        .max_file_size = max_file, .max_total = max_total, .max_files = 1000};
    struct err err = ERR_INIT;

    memset(o, 0, sizeof(*o));
    if (exec_tar_outputs(tar->data, tar->len, truncated, &lim, &o->files, &o->n, &o->skipped,
                         &err) != 0)
        fail_msg("exec_tar_outputs failed: %s", err.msg);
}

static void outputs_release(struct outputs *o)
{
    job_files_free(o->files, o->n);
    strv_free(o->skipped);
    memset(o, 0, sizeof(*o));
}

static const struct job_file *find_file(const struct outputs *o, const char *path)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->files[i].path, path) == 0)
            return &o->files[i];
    return NULL;
}

static size_t skipped_count(const struct outputs *o)
{
    size_t n = 0;
    while (o->skipped && o->skipped[n])
        n++;
    return n;
}

/* The skipped line for @path ("path: reason"), or NULL. */
static const char *find_skipped(const struct outputs *o, const char *path)
{
    size_t len = strlen(path);
    for (size_t i = 0; o->skipped && o->skipped[i]; i++)
        if (strncmp(o->skipped[i], path, len) == 0 && o->skipped[i][len] == ':')
            return o->skipped[i];
    return NULL;
}

static void assert_skipped_with(const struct outputs *o, const char *path, const char *reason)
{
    const char *line = find_skipped(o, path);
    if (!line)
        fail_msg("'%s' is not reported in skipped", path);
    if (!strstr(line, reason))
        fail_msg("skipped line '%s' does not say '%s'", line, reason);
    if (find_file(o, path))
        fail_msg("'%s' is both skipped and returned", path);
}

static void assert_file(const struct outputs *o, const char *path, const void *data, size_t len)
{
    const struct job_file *f = find_file(o, path);
    if (!f)
        fail_msg("'%s' is not returned", path);
    assert_int_equal(f->len, len);
    if (len)
        assert_memory_equal(f->data, data, len);
    assert_int_equal(f->data[len], '\0');
}

/* ---- the input tar ---- */

struct read_entry {
    char *path;
    unsigned int type, perm;
    int64_t uid, gid, size;
    char *data;
};

/* Read every entry of @tar into @ret (at most @max); returns the count. */
static size_t read_back(const struct buf *tar, struct read_entry *ret, size_t max)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    size_t n = 0;

    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_memory(a, tar->data, tar->len), ARCHIVE_OK);
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        assert_true(n < max);
        struct read_entry *r = &ret[n++];
        r->path = xstrdup(archive_entry_pathname(e));
        r->type = archive_entry_filetype(e);
        r->perm = archive_entry_perm(e);
        r->uid = archive_entry_uid(e);
        r->gid = archive_entry_gid(e);
        r->size = archive_entry_size(e);
        r->data = xmalloc((size_t)r->size + 1);
        assert_int_equal(archive_read_data(a, r->data, (size_t)r->size), r->size);
    }
    assert_string_equal(archive_error_string(a) ? archive_error_string(a) : "", "");
    archive_read_free(a);
    return n;
}

static void read_entries_free(struct read_entry *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].path);
        free(r[i].data);
    }
}

static void inputs_round_trip_code_and_nested_files(void **state)
{
    struct buf out = BUF_INIT(BUF_UNLIMITED);
    struct err err = ERR_INIT;
    const char *code = "print(open('data/in.csv').read())\n";
    char *big = xmalloc(MIB + 3);
    for (size_t i = 0; i < MIB + 3; i++)
        big[i] = (char)(i * 7);
    char bin[] = "a\0b\xff";
    struct job_file files[] = {
        {.path = (char *)"data/in.csv", .data = (char *)"x,y\n1,2\n", .len = 8},
        {.path = (char *)"a/b/c/deep.txt", .data = (char *)"deep", .len = 4},
        {.path = (char *)"empty", .data = (char *)"", .len = 0},
        {.path = (char *)"bin.dat", .data = bin, .len = 4},
        {.path = (char *)"big.bin", .data = big, .len = MIB + 3},
        {.path = (char *)".hidden", .data = (char *)"h", .len = 1},
    };
    const size_t nf = sizeof(files) / sizeof(files[0]);
    struct read_entry got[16];
    (void)state;

    err_set(&err, ERR_BUSY, "sentinel");
    assert_int_equal(exec_tar_inputs(code, strlen(code), files, nf, &out, &err), 0);
    assert_string_equal(err.msg, "sentinel"); /* untouched on success */
    assert_int_equal(out.len % 512, 0);

    size_t n = read_back(&out, got, 16);
    assert_int_equal(n, nf + 2);
    /* last, envhub's matplotlib backend (executor/display.py) */
    size_t module_len;
    const char *module = exec_display_module(&module_len);
    assert_string_equal(got[nf + 1].path, EXEC_DISPLAY_MODULE);
    assert_int_equal(got[nf + 1].size, module_len);
    assert_memory_equal(got[nf + 1].data, module, module_len);
    n--;
    for (size_t i = 0; i < n; i++) {
        const char *want_path = i < nf ? files[i].path : EXEC_CODE_NAME;
        const char *want_data = i < nf ? files[i].data : code;
        size_t want_len = i < nf ? files[i].len : strlen(code);
        assert_string_equal(got[i].path, want_path);
        assert_int_equal(got[i].type, AE_IFREG);
        assert_int_equal(got[i].perm, 0644);
        assert_int_equal(got[i].uid, 1000);
        assert_int_equal(got[i].gid, 1000);
        assert_int_equal(got[i].size, want_len);
        if (want_len)
            assert_memory_equal(got[i].data, want_data, want_len);
    }
    read_entries_free(got, n + 1);

    /* read as a workspace, the same tar gives back the files but not the code
     * nor the backend */
    struct outputs o;
    run_outputs(&o, &out, false, 10 * MIB, 64 * MIB);
    assert_int_equal(o.n, nf);
    for (size_t i = 0; i < nf; i++)
        assert_file(&o, files[i].path, files[i].data, files[i].len);
    assert_null(find_file(&o, EXEC_CODE_NAME));
    assert_null(o.skipped);
    outputs_release(&o);

    free(big);
    buf_release(&out);
}

static void inputs_with_only_code(void **state)
{
    struct buf out = BUF_INIT(BUF_UNLIMITED);
    struct err err = ERR_INIT;
    struct read_entry got[4];
    (void)state;

    assert_int_equal(exec_tar_inputs("pass", 4, NULL, 0, &out, &err), 0);
    size_t n = read_back(&out, got, 4);
    assert_int_equal(n, 2);
    assert_string_equal(got[0].path, EXEC_CODE_NAME);
    assert_string_equal(got[1].path, EXEC_DISPLAY_MODULE);
    assert_memory_equal(got[0].data, "pass", 4);
    read_entries_free(got, n);
    buf_release(&out);
}

/* Names are UTF-8 from JSON; envhub runs in the C locale (it never calls
 * setlocale), where libarchive cannot convert them for the pax header. */
static void inputs_keep_non_ascii_names(void **state)
{
    struct buf out = BUF_INIT(BUF_UNLIMITED);
    struct err err = ERR_INIT;
    struct job_file files[] = {
        {.path = (char *)"\xe6\x95\xb0\xe6\x8d\xae.csv", .data = (char *)"1", .len = 1},
        {.path = (char *)"caf\xc3\xa9/r\xc3\xa9sum\xc3\xa9.txt", .data = (char *)"2", .len = 1},
    };
    struct read_entry got[4];
    (void)state;

    if (exec_tar_inputs("pass", 4, files, 2, &out, &err) != 0) {
        buf_release(&out);
        fail_msg("exec_tar_inputs refused UTF-8 names: %s", err.msg);
    }
    size_t n = read_back(&out, got, 4);
    assert_int_equal(n, 4);
    assert_string_equal(got[0].path, files[0].path);
    assert_string_equal(got[1].path, files[1].path);
    read_entries_free(got, n);
    buf_release(&out);
}

static void inputs_over_the_buffer_limit_are_too_large(void **state)
{
    struct buf out = BUF_INIT(16 * KIB);
    struct err err = ERR_INIT;
    char *big = xmalloc(64 * KIB);
    memset(big, 'x', 64 * KIB);
    struct job_file files[] = {{.path = (char *)"big", .data = big, .len = 64 * KIB}};
    (void)state;

    assert_int_equal(exec_tar_inputs("pass", 4, files, 1, &out, &err), -1);
    assert_int_equal(err.code, ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "16384"));
    assert_true(out.len <= 16 * KIB);
    free(big);
    buf_release(&out);
}

/* ---- the workspace tar ---- */

static void outputs_return_regular_files_with_exact_bytes(void **state)
{
    struct tb t;
    struct outputs o;
    char *blob = xmalloc(100 * KIB);
    (void)state;

    for (size_t i = 0; i < 100 * KIB; i++)
        blob[i] = (char)(i % 251);
    tb_open(&t, false);
    tb_dir(&t, "./");
    tb_str(&t, "./result.txt", "42\n");
    tb_dir(&t, "./out/");
    tb_dir(&t, "./out/sub/");
    tb_file(&t, "./out/sub/data.bin", blob, 100 * KIB);
    tb_file(&t, "./empty.txt", "", 0);
    tb_str(&t, "plain/no-dot-prefix.txt", "p");
    tb_str(&t, "./.hidden", "h");
    tb_close(&t);

    run_outputs(&o, &t.out, false, 10 * MIB, 64 * MIB);
    assert_int_equal(o.n, 5);
    assert_file(&o, "result.txt", "42\n", 3);
    assert_file(&o, "out/sub/data.bin", blob, 100 * KIB);
    assert_file(&o, "empty.txt", "", 0);
    assert_file(&o, "plain/no-dot-prefix.txt", "p", 1);
    assert_file(&o, ".hidden", "h", 1);
    assert_null(o.skipped); /* folders are neither returned nor reported */
    outputs_release(&o);
    free(blob);
    buf_release(&t.out);
}

static void outputs_never_return_the_code_file(void **state)
{
    struct tb t;
    struct outputs o;
    (void)state;

    tb_open(&t, false);
    tb_str(&t, "./" EXEC_CODE_NAME, "print('secret')");
    tb_str(&t, EXEC_CODE_NAME, "print('secret')");
    tb_str(&t, "./keep.txt", "k");
    tb_close(&t);

    run_outputs(&o, &t.out, false, 10 * MIB, 64 * MIB);
    assert_int_equal(o.n, 1);
    assert_file(&o, "keep.txt", "k", 1);
    assert_null(find_file(&o, EXEC_CODE_NAME));
    assert_int_equal(skipped_count(&o), 0);
    outputs_release(&o);
    buf_release(&t.out);
}

/* Two entries of one name failed the catalog's record of the job (its files
 * are keyed by path); found by tests/fuzz/fuzz_output_tar.c. */
static void outputs_keep_the_first_of_a_name_given_twice(void **state)
{
    struct tb t;
    struct outputs o;
    (void)state;

    tb_open(&t, false);
    tb_str(&t, "./same", "first");
    tb_str(&t, "same", "second");
    tb_str(&t, "./other", "o");
    tb_str(&t, "././same", "third");
    tb_close(&t);

    run_outputs(&o, &t.out, false, 10 * MIB, 64 * MIB);
    assert_int_equal(o.n, 2);
    assert_string_equal(o.files[0].path, "same");
    assert_file(&o, "same", "first", 5);
    assert_string_equal(o.files[1].path, "other");
    assert_int_equal(skipped_count(&o), 2);
    assert_string_equal(o.skipped[0], "same: in the workspace archive more than once");
    assert_string_equal(o.skipped[1], "same: in the workspace archive more than once");
    outputs_release(&o);
    buf_release(&t.out);
}

static void outputs_skip_symlinks_and_hard_links(void **state)
{
    struct tb t;
    struct outputs o;
    (void)state;

    tb_open(&t, false);
    tb_str(&t, "./real.txt", "real");
    tb_entry(&t, "./passwd", AE_IFLNK, NULL, 0, 0, "/etc/passwd", false);
    tb_entry(&t, "./up", AE_IFLNK, NULL, 0, 0, "../../..", false);
    tb_entry(&t, "./hard", AE_IFREG, NULL, 0, 0, "./real.txt", true);
    tb_entry(&t, "./hard-etc", AE_IFREG, NULL, 0, 0, "/etc/shadow", true);
    tb_close(&t);

    run_outputs(&o, &t.out, false, 10 * MIB, 64 * MIB);
    assert_int_equal(o.n, 1);
    assert_file(&o, "real.txt", "real", 4);
    assert_skipped_with(&o, "passwd", "not a regular file");
    assert_skipped_with(&o, "up", "not a regular file");
    assert_skipped_with(&o, "hard", "not a regular file");
    assert_skipped_with(&o, "hard-etc", "not a regular file");
    outputs_release(&o);
    buf_release(&t.out);
}

static void outputs_skip_unsafe_names(void **state)
{
    static const char *const unsafe[] = {
        "../evil", "./../evil2", "/abs", "/etc/cron.d/x", "a/../../b",
        "a/./b",   "a//b",       "x\ny", "tab\there",     "del\x7f",
    };
    char longname[300];
    struct tb t;
    struct outputs o;
    (void)state;

    memset(longname, 'n', sizeof(longname));
    longname[sizeof(longname) - 1] = '\0';
    tb_open(&t, false);
    for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++)
        tb_str(&t, unsafe[i], "bad");
    tb_str(&t, longname, "long");
    tb_str(&t, "./ok.txt", "ok");
    tb_close(&t);

    run_outputs(&o, &t.out, false, 10 * MIB, 64 * MIB);
    assert_int_equal(o.n, 1);
    assert_file(&o, "ok.txt", "ok", 2);
    assert_int_equal(skipped_count(&o), sizeof(unsafe) / sizeof(unsafe[0]) + 1);
    for (size_t i = 0; o.skipped[i]; i++)
        if (!strstr(o.skipped[i], "unsafe name"))
            fail_msg("skipped line '%s' does not say 'unsafe name'", o.skipped[i]);
    assert_skipped_with(&o, "../evil", "'..'");
    assert_skipped_with(&o, "/abs", "absolute");
    assert_skipped_with(&o, "a/../../b", "'..'");
    assert_skipped_with(&o, longname, "255");
    outputs_release(&o);
    buf_release(&t.out);
}

static void outputs_skip_fifos_and_devices(void **state)
{
    struct tb t;
    struct outputs o;
    (void)state;

    tb_open(&t, false);
    tb_entry(&t, "./fifo", AE_IFIFO, NULL, 0, 0, NULL, false);
    tb_entry(&t, "./null", AE_IFCHR, NULL, 0, 0, NULL, false);
    tb_entry(&t, "./disk", AE_IFBLK, NULL, 0, 0, NULL, false);
    tb_str(&t, "./after.txt", "after");
    tb_close(&t);

    run_outputs(&o, &t.out, false, 10 * MIB, 64 * MIB);
    assert_int_equal(o.n, 1);
    assert_file(&o, "after.txt", "after", 5);
    assert_skipped_with(&o, "fifo", "not a regular file");
    assert_skipped_with(&o, "null", "not a regular file");
    assert_skipped_with(&o, "disk", "not a regular file");
    outputs_release(&o);
    buf_release(&t.out);
}

static void outputs_skip_a_file_over_the_size_limit(void **state)
{
    struct tb t;
    struct outputs o;
    char data[2000];
    (void)state;

    memset(data, 'd', sizeof(data));
    tb_open(&t, false);
    tb_file(&t, "./exact.bin", data, 1000);
    tb_file(&t, "./over.bin", data, 1001);
    tb_file(&t, "./after.bin", data, 10);
    tb_close(&t);

    run_outputs(&o, &t.out, false, 1000, 64 * MIB);
    assert_int_equal(o.n, 2);
    assert_file(&o, "exact.bin", data, 1000);
    assert_file(&o, "after.bin", data, 10);
    assert_skipped_with(&o, "over.bin", "file size limit");
    assert_non_null(strstr(find_skipped(&o, "over.bin"), "1000"));
    outputs_release(&o);
    buf_release(&t.out);
}

static void outputs_skip_files_past_the_total(void **state)
{
    struct tb t;
    struct outputs o;
    char data[100];
    (void)state;

    memset(data, 't', sizeof(data));
    tb_open(&t, false);
    tb_file(&t, "./a", data, 60);
    tb_file(&t, "./b", data, 60); /* 120 > 100 */
    tb_file(&t, "./c", data, 30); /* 90: still fits */
    tb_file(&t, "./d", data, 11); /* 101 */
    tb_file(&t, "./e", data, 10); /* 100: exactly the total */
    tb_close(&t);

    run_outputs(&o, &t.out, false, 1000, 100);
    assert_int_equal(o.n, 3);
    assert_file(&o, "a", data, 60);
    assert_file(&o, "c", data, 30);
    assert_file(&o, "e", data, 10);
    assert_skipped_with(&o, "b", "output files limit");
    assert_skipped_with(&o, "d", "output files limit");
    outputs_release(&o);
    buf_release(&t.out);
}

/* A tar cut in the middle of a file's data, as when the stream passed the
 * cap: the files before come back whole, the cut one not at all. */
static void outputs_never_return_a_truncated_file_in_part(void **state)
{
    char data[5000];
    (void)state;

    memset(data, 'c', sizeof(data));
    for (int truncated = 0; truncated <= 1; truncated++) {
        struct tb t;
        struct outputs o;
        tb_open(&t, false);
        tb_str(&t, "./first.txt", "first");
        tb_entry(&t, "./cut.bin", AE_IFREG, data, 1000, 5000, NULL, false);
        tb_cut(&t);

        run_outputs(&o, &t.out, truncated, 10 * MIB, 64 * MIB);
        assert_int_equal(o.n, 1);
        assert_file(&o, "first.txt", "first", 5);
        assert_null(find_file(&o, "cut.bin"));
        assert_skipped_with(&o, "cut.bin", truncated ? "output files limit" : "incomplete");
        outputs_release(&o);
        buf_release(&t.out);
    }
}

static void outputs_cut_inside_a_header(void **state)
{
    struct tb t;
    struct outputs o;
    (void)state;

    tb_open(&t, true);
    tb_str(&t, "./first.txt", "first");
    tb_str(&t, "./second.txt", "second");
    tb_close(&t);
    /* first header + its 512-byte data block + half of the second header */
    t.out.len = 512 + 512 + 200;

    run_outputs(&o, &t.out, true, 10 * MIB, 64 * MIB);
    assert_int_equal(o.n, 1);
    assert_file(&o, "first.txt", "first", 5);
    assert_null(find_file(&o, "second.txt"));
    assert_non_null(o.skipped);
    assert_non_null(strstr(o.skipped[0], "limit"));
    outputs_release(&o);
    buf_release(&t.out);
}

/* Cut exactly between two entries: no entry ends early, but the stream was
 * cut, so the files after the cut are left out and that must be said. */
static void outputs_cut_between_entries_reports_the_rest(void **state)
{
    struct tb t;
    struct outputs o;
    (void)state;

    tb_open(&t, true);
    tb_str(&t, "./first.txt", "first");
    tb_str(&t, "./second.txt", "second");
    tb_close(&t);
    t.out.len = 512 + 512; /* first header and its data block, nothing more */

    run_outputs(&o, &t.out, true, 10 * MIB, 64 * MIB);
    assert_int_equal(o.n, 1);
    assert_file(&o, "first.txt", "first", 5);
    size_t reported = skipped_count(&o);
    outputs_release(&o);
    buf_release(&t.out);
    if (reported == 0)
        fail_msg("a stream cut at the cap left files out without a word in skipped");
}

/* A header within max_file_size claiming 9 MiB with 1 KiB behind it: the
 * reader may allocate the claim (it is capped) but must not return it. */
static void outputs_header_claiming_more_than_the_stream_holds(void **state)
{
    char data[KIB];
    (void)state;

    memset(data, 'h', sizeof(data));
    for (int truncated = 0; truncated <= 1; truncated++) {
        struct tb t;
        struct outputs o;
        tb_open(&t, false);
        tb_str(&t, "./ok.txt", "ok");
        tb_entry(&t, "./liar.bin", AE_IFREG, data, sizeof(data), (int64_t)(9 * MIB), NULL, false);
        tb_cut(&t);
        assert_true(t.out.len < 8 * KIB);

        int64_t start = time_mono_ms();
        run_outputs(&o, &t.out, truncated, 10 * MIB, 64 * MIB);
        assert_true(time_mono_ms() - start < 5000);
        assert_int_equal(o.n, 1);
        assert_file(&o, "ok.txt", "ok", 2);
        assert_null(find_file(&o, "liar.bin"));
        assert_non_null(find_skipped(&o, "liar.bin"));
        outputs_release(&o);
        buf_release(&t.out);
    }
}

/* 100 GiB claimed: over max_file_size, so skipped before any allocation. */
static void outputs_header_claiming_100_gib_is_skipped_without_allocating(void **state)
{
    struct tb t;
    struct outputs o;
    char data[KIB];
    (void)state;

    memset(data, 'g', sizeof(data));
    tb_open(&t, false);
    tb_entry(&t, "./huge.bin", AE_IFREG, data, sizeof(data), (int64_t)(100 * GIB), NULL, false);
    tb_cut(&t);

    int64_t start = time_mono_ms();
    run_outputs(&o, &t.out, true, 10 * MIB, 64 * MIB);
    assert_true(time_mono_ms() - start < 5000);
    assert_int_equal(o.n, 0);
    assert_skipped_with(&o, "huge.bin", "file size limit");
    outputs_release(&o);
    buf_release(&t.out);
}

static void outputs_of_empty_input_are_empty(void **state)
{
    struct tar_out_limits lim = {.max_file_size = MIB, .max_total = MIB, .max_files = 1000};
    struct job_file *files = (struct job_file *)&lim; /* must be overwritten */
    size_t n = 99;
    char **skipped = NULL;
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(exec_tar_outputs("", 0, false, &lim, &files, &n, &skipped, &err), 0);
    assert_null(files);
    assert_int_equal(n, 0);
    assert_null(skipped);
    assert_int_equal(exec_tar_outputs(NULL, 0, true, &lim, &files, &n, &skipped, &err), 0);
    assert_null(files);
    assert_null(skipped);
}

static void outputs_of_an_empty_tar_are_empty(void **state)
{
    struct tb t;
    struct outputs o;
    (void)state;

    tb_open(&t, false);
    tb_close(&t);
    run_outputs(&o, &t.out, false, MIB, MIB);
    assert_int_equal(o.n, 0);
    assert_null(o.skipped);
    outputs_release(&o);
    buf_release(&t.out);
}

static void outputs_of_garbage_return_nothing(void **state)
{
    struct buf junk = BUF_INIT(BUF_UNLIMITED);
    struct outputs o;
    (void)state;

    for (int i = 0; i < 300; i++)
        assert_int_equal(buf_appendf(&junk, "not a tar %d\n", i), 0);
    run_outputs(&o, &junk, false, MIB, MIB);
    assert_int_equal(o.n, 0);
    outputs_release(&o);
    run_outputs(&o, &junk, true, MIB, MIB);
    assert_int_equal(o.n, 0);
    outputs_release(&o);
    buf_release(&junk);
}

/* The header contract: files left out are reported. A damaged header in a
 * stream that was not cut must not make the rest vanish without a word. */
static void outputs_report_a_damaged_archive(void **state)
{
    struct tb t;
    struct outputs o;
    (void)state;

    tb_open(&t, true);
    tb_str(&t, "./first.txt", "first");
    tb_str(&t, "./second.txt", "second");
    tb_close(&t);
    /* spoil the second header's checksum field */
    memset(t.out.data + 1024 + 148, '7', 6);

    run_outputs(&o, &t.out, false, 10 * MIB, 64 * MIB);
    assert_file(&o, "first.txt", "first", 5);
    assert_null(find_file(&o, "second.txt"));
    size_t reported = skipped_count(&o);
    outputs_release(&o);
    buf_release(&t.out);
    if (reported == 0)
        fail_msg("the damaged rest of the archive is not reported in skipped");
}

static void outputs_keep_non_ascii_names(void **state)
{
    struct tb t;
    struct outputs o;
    (void)state;

    tb_open(&t, true); /* ustar: the name bytes as they are, no charset header */
    tb_str(&t, "./\xe6\x95\xb0\xe6\x8d\xae.csv", "1,2");
    tb_close(&t);
    run_outputs(&o, &t.out, false, MIB, MIB);
    assert_int_equal(o.n, 1);
    assert_file(&o, "\xe6\x95\xb0\xe6\x8d\xae.csv", "1,2", 3);
    outputs_release(&o);
    buf_release(&t.out);
}

static void outputs_list_names_that_are_not_utf8_escaped(void **state)
{
    struct tb t;
    struct outputs o;
    (void)state;

    tb_open(&t, true);
    tb_str(&t, "./caf\xe9.txt", "latin-1");
    tb_str(&t, "./a\\b.txt", "kept");
    tb_str(&t, "./tab\there", "x");
    tb_close(&t);
    run_outputs(&o, &t.out, false, MIB, MIB);
    assert_int_equal(o.n, 1);
    assert_file(&o, "a\\b.txt", "kept", 4);
    assert_non_null(o.skipped);
    assert_string_equal(o.skipped[0], "caf\\xe9.txt: name is not UTF-8");
    assert_string_equal(o.skipped[1], "tab\\x09here: unsafe name (contains a control character)");
    assert_null(o.skipped[2]);
    outputs_release(&o);
    buf_release(&t.out);
}

static void outputs_past_the_count_limit_are_skipped_and_the_list_bounded(void **state)
{
    struct tb t;
    struct outputs o = {0};
    struct tar_out_limits lim = {.max_file_size = MIB, .max_total = MIB, .max_files = 3};
    struct err err = ERR_INIT;
    char name[32];
    (void)state;

    tb_open(&t, true);
    for (int i = 0; i < 3 + TAR_SKIPPED_MAX + 5; i++) {
        snprintf(name, sizeof(name), "./f%05d", i);
        tb_str(&t, name, "");
    }
    tb_close(&t);
    assert_int_equal(
        exec_tar_outputs(t.out.data, t.out.len, false, &lim, &o.files, &o.n, &o.skipped, &err), 0);
    assert_int_equal(o.n, 3);
    assert_non_null(find_file(&o, "f00002"));
    assert_int_equal(strv_length(o.skipped), TAR_SKIPPED_MAX + 1);
    assert_string_equal(
        o.skipped[0],
        "f00003: past the output file count limit (3 files, ENVHUB_MAX_OUTPUT_FILES)");
    assert_string_equal(o.skipped[TAR_SKIPPED_MAX], "*: 5 more files left out, not listed");
    outputs_release(&o);
    buf_release(&t.out);
}

/* ---- the collect step's tar: output files and pictures ---- */

#define PNG_SIG "\x89PNG\r\n\x1a\n"
#define DISPLAY "./" EXEC_DISPLAY_DIR "/"

struct collected {
    struct job_file *files, *display;
    size_t n, n_display;
    char **skipped;
};

static void run_collected(struct collected *c, const struct buf *tar, bool truncated,
                          size_t max_file, size_t max_total, size_t max_display)
{
    struct tar_out_limits lim = {.max_file_size = max_file,
                                 .max_total = max_total,
                                 .max_files = 1000,
                                 .max_display = max_display};
    struct err err = ERR_INIT;

    memset(c, 0, sizeof(*c));
    if (exec_tar_collected(tar->data, tar->len, truncated, &lim, &c->files, &c->n, &c->display,
                           &c->n_display, &c->skipped, &err) != 0)
        fail_msg("exec_tar_collected failed: %s", err.msg);
}

static void collected_release(struct collected *c)
{
    job_files_free(c->files, c->n);
    job_files_free(c->display, c->n_display);
    strv_free(c->skipped);
    memset(c, 0, sizeof(*c));
}

/* Is @want, whole or as a prefix ending at ": ", among the skipped lines? */
static bool skipped_has(char **skipped, const char *want)
{
    for (char **p = skipped; p && *p; p++)
        if (strncmp(*p, want, strlen(want)) == 0)
            return true;
    return false;
}

static void collected_pictures_apart_from_files_in_number_order(void **state)
{
    struct tb t;
    struct collected c;
    (void)state;

    tb_open(&t, false);
    tb_dir(&t, "./");
    tb_str(&t, "./result.txt", "42");
    tb_str(&t, "./display/figure-1.png", PNG_SIG "a workspace file, not a picture");
    tb_dir(&t, DISPLAY);
    tb_str(&t, DISPLAY "figure-10.png", PNG_SIG "ten");
    tb_str(&t, DISPLAY "figure-2.png", PNG_SIG "two");
    tb_str(&t, DISPLAY "figure-1.png", PNG_SIG "one");
    /* the backend and anything else of envhub's folder are not the job's files */
    tb_str(&t, "./" EXEC_DISPLAY_MODULE, "import os");
    tb_str(&t, "./" EXEC_PRIVATE_DIR "/other.txt", "x");
    tb_close(&t);

    run_collected(&c, &t.out, false, 10 * MIB, 64 * MIB, 20);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.files[0].path, "result.txt");
    assert_string_equal(c.files[1].path, "display/figure-1.png");
    assert_int_equal(c.n_display, 3);
    assert_string_equal(c.display[0].path, "figure-1.png");
    assert_string_equal(c.display[1].path, "figure-2.png");
    assert_string_equal(c.display[2].path, "figure-10.png");
    assert_int_equal(c.display[2].len, 8 + 3);
    assert_memory_equal(c.display[2].data, PNG_SIG "ten", 11);
    assert_null(c.skipped);
    collected_release(&c);

    /* read as plain outputs (a session's file), no picture and no backend comes back */
    struct outputs o;
    run_outputs(&o, &t.out, false, 10 * MIB, 64 * MIB);
    assert_int_equal(o.n, 2);
    assert_null(find_file(&o, EXEC_DISPLAY_MODULE));
    outputs_release(&o);
    buf_release(&t.out);
}

static void collected_pictures_must_be_png_files_with_safe_names(void **state)
{
    struct tb t;
    struct collected c;
    (void)state;

    tb_open(&t, false);
    tb_str(&t, DISPLAY "notes.txt", PNG_SIG "png bytes, wrong name");
    tb_str(&t, DISPLAY "fake.png", "GIF89a not a png");
    tb_str(&t, DISPLAY "tiny.png", "\x89PN");
    tb_str(&t, DISPLAY "sub/figure-1.png", PNG_SIG "nested");
    tb_str(&t, DISPLAY "../escape.png", PNG_SIG "dot dot");
    tb_entry(&t, DISPLAY "link.png", AE_IFLNK, NULL, 0, 0, "/etc/passwd", false);
    tb_entry(&t, DISPLAY "hard.png", AE_IFREG, NULL, 0, 0, DISPLAY "ok.png", true);
    tb_entry(&t, DISPLAY "fifo.png", AE_IFIFO, NULL, 0, 0, NULL, false);
    tb_str(&t, DISPLAY "ok.png", PNG_SIG "fine");
    tb_close(&t);

    run_collected(&c, &t.out, false, 10 * MIB, 64 * MIB, 20);
    assert_int_equal(c.n, 0);
    assert_int_equal(c.n_display, 1);
    assert_string_equal(c.display[0].path, "ok.png");
    assert_true(skipped_has(c.skipped, "display notes.txt: not a .png file"));
    assert_true(skipped_has(c.skipped, "display fake.png: not a PNG image"));
    assert_true(skipped_has(c.skipped, "display tiny.png: not a PNG image"));
    assert_true(skipped_has(c.skipped, "display sub/figure-1.png: not directly in the display"));
    assert_true(skipped_has(c.skipped, "display ../escape.png: unsafe name"));
    assert_true(skipped_has(c.skipped, "display link.png: not a regular file"));
    assert_true(skipped_has(c.skipped, "display hard.png: not a regular file"));
    assert_true(skipped_has(c.skipped, "display fifo.png: not a regular file"));
    collected_release(&c);
    buf_release(&t.out);
}

static void collected_pictures_obey_the_count_size_and_total(void **state)
{
    struct tb t;
    struct collected c;
    char big[64];
    (void)state;

    memcpy(big, PNG_SIG, 8);
    memset(big + 8, 'x', sizeof(big) - 8);
    tb_open(&t, false);
    tb_file(&t, "./data.bin", big, 40); /* the files come first in the total */
    for (int i = 1; i <= 5000; i++) {
        char name[64];
        snprintf(name, sizeof(name), DISPLAY "figure-%d.png", i);
        tb_file(&t, name, big, 16);
    }
    tb_file(&t, DISPLAY "huge.png", big, 64);
    tb_close(&t);

    /* at most 3 pictures: 4998 refusals, listed up to TAR_SKIPPED_MAX, then counted */
    run_collected(&c, &t.out, false, 48, 64 * MIB, 3);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.n_display, 3);
    assert_string_equal(c.display[2].path, "figure-3.png");
    assert_true(skipped_has(c.skipped, "display figure-4.png: past the display limit (3 pictures, "
                                       "ENVHUB_MAX_DISPLAY)"));
    size_t n = 0;
    for (char **p = c.skipped; p && *p; p++)
        n++;
    assert_int_equal(n, TAR_SKIPPED_MAX + 1);
    assert_true(skipped_has(c.skipped, "*: 3998 more files left out, not listed"));
    collected_release(&c);

    /* 40 + 16 + 16 bytes in all: the output files' total counts pictures too */
    run_collected(&c, &t.out, false, 48, 72, 20);
    assert_int_equal(c.n_display, 2);
    assert_string_equal(c.display[1].path, "figure-2.png");
    assert_true(skipped_has(c.skipped, "display figure-3.png: past the output files limit (72 "));
    collected_release(&c);

    /* with room for every count, the one over the file size is skipped by name */
    run_collected(&c, &t.out, false, 48, 64 * MIB, 10000);
    assert_int_equal(c.n_display, 5000);
    assert_string_equal(c.display[4999].path, "figure-5000.png");
    assert_true(skipped_has(c.skipped, "display huge.png: larger than the file size limit (48 "));
    collected_release(&c);
    buf_release(&t.out);
}

static void collected_without_pictures_is_the_outputs(void **state)
{
    struct tb t;
    struct collected c;
    (void)state;

    tb_open(&t, false);
    tb_str(&t, "./a.txt", "a");
    tb_close(&t);
    run_collected(&c, &t.out, false, 10 * MIB, 64 * MIB, 20);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.n_display, 0);
    assert_null(c.display);
    collected_release(&c);
    buf_release(&t.out);

    run_collected(&c, &(struct buf)BUF_INIT(0), false, 10 * MIB, 64 * MIB, 20);
    assert_int_equal(c.n + c.n_display, 0);
    collected_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(inputs_round_trip_code_and_nested_files),
        cmocka_unit_test(collected_pictures_apart_from_files_in_number_order),
        cmocka_unit_test(collected_pictures_must_be_png_files_with_safe_names),
        cmocka_unit_test(collected_pictures_obey_the_count_size_and_total),
        cmocka_unit_test(collected_without_pictures_is_the_outputs),
        cmocka_unit_test(inputs_with_only_code),
        cmocka_unit_test(inputs_keep_non_ascii_names),
        cmocka_unit_test(inputs_over_the_buffer_limit_are_too_large),
        cmocka_unit_test(outputs_return_regular_files_with_exact_bytes),
        cmocka_unit_test(outputs_never_return_the_code_file),
        cmocka_unit_test(outputs_keep_the_first_of_a_name_given_twice),
        cmocka_unit_test(outputs_skip_symlinks_and_hard_links),
        cmocka_unit_test(outputs_skip_unsafe_names),
        cmocka_unit_test(outputs_skip_fifos_and_devices),
        cmocka_unit_test(outputs_skip_a_file_over_the_size_limit),
        cmocka_unit_test(outputs_skip_files_past_the_total),
        cmocka_unit_test(outputs_never_return_a_truncated_file_in_part),
        cmocka_unit_test(outputs_cut_inside_a_header),
        cmocka_unit_test(outputs_cut_between_entries_reports_the_rest),
        cmocka_unit_test(outputs_header_claiming_more_than_the_stream_holds),
        cmocka_unit_test(outputs_header_claiming_100_gib_is_skipped_without_allocating),
        cmocka_unit_test(outputs_of_empty_input_are_empty),
        cmocka_unit_test(outputs_of_an_empty_tar_are_empty),
        cmocka_unit_test(outputs_of_garbage_return_nothing),
        cmocka_unit_test(outputs_report_a_damaged_archive),
        cmocka_unit_test(outputs_keep_non_ascii_names),
        cmocka_unit_test(outputs_list_names_that_are_not_utf8_escaped),
        cmocka_unit_test(outputs_past_the_count_limit_are_skipped_and_the_list_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

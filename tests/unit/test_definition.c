/* tests/unit/test_definition.c - the pure parts of a build (builder/definition.c):
 * environment names, base image references, the image tag of a version, the
 * definition hash, the rendered Dockerfile and the deterministic build context
 * (read back here with libarchive's reader). No engine, no catalog. */
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

#include <cmocka.h>

#include "builder/builder.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/err.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define DIGEST_A "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- names: ^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$ ---- */

static void names_that_match_the_pattern_are_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "a",
        "Z",
        "0",
        "9",
        "data-science",
        "Data_Science-2",
        "a-",
        "a_",
        "a--b",
        "a__b",
        "0_leading-digit",
        "UPPER",
        "MiXeD-123_x",
        /* exactly 50 characters */
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX",
        "0123456789-0123456789_0123456789-0123456789_012345",
    };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        if (!builder_name_valid(good[i]))
            fail_msg("'%s' (%zu chars) should be a valid name", good[i], strlen(good[i]));
    }
    assert_int_equal(strlen(good[ARRAY_SIZE(good) - 1]), 50);
    assert_int_equal(strlen(good[ARRAY_SIZE(good) - 2]), 50);
}

static void names_outside_the_pattern_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "-leading-dash",
        "_leading_underscore",
        /* 51 characters */
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY",
        "has space",
        " lead",
        "trail ",
        "dot.name",
        "slash/name",
        "back\\slash",
        "semi;colon",
        "colon:name",
        "at@name",
        "quote'name",
        "dq\"name",
        "tab\tname",
        "new\nline",
        "name\n",
        "\xc3\xa9t\xc3\xa9", /* été: non-ASCII letters */
        "a\xc3\xa9",         /* ASCII then non-ASCII */
        "\xef\xbc\xa1",      /* fullwidth A */
        "$(id)",
        "a*",
        "..",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (builder_name_valid(bad[i]))
            fail_msg("bad name #%zu '%s' was accepted", i, bad[i]);
    }
    assert_int_equal(strlen(bad[3]), 51);
}

static void every_single_character_name_follows_the_pattern(void **state)
{
    (void)state;
    for (int c = 1; c < 256; c++) {
        char name[2] = {(char)c, '\0'};
        bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (builder_name_valid(name) != want)
            fail_msg("name of the single byte 0x%02x: %s, expected %s", c,
                     builder_name_valid(name) ? "valid" : "invalid", want ? "valid" : "invalid");
        char two[3] = {'a', (char)c, '\0'};
        bool want2 = want || c == '-' || c == '_';
        if (builder_name_valid(two) != want2)
            fail_msg("name 'a' + byte 0x%02x: %s, expected %s", c,
                     builder_name_valid(two) ? "valid" : "invalid", want2 ? "valid" : "invalid");
    }
}

/* ---- base image references ---- */

static void usual_image_references_are_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "envhub/python:bookworm",
        "python",
        "python:3.11",
        "python:3.11-slim-bookworm",
        "debian:bookworm-20240101",
        "library/debian",
        "docker.io/library/python:3.11",
        "registry.example.com/team/image",
        "registry.example.com:5000/team/image:v1.2",
        "localhost/img",
        "localhost:5000/img:tag",
        "my_image",
        "my__image",
        "my-image",
        "my--image",
        "my.image",
        "a/b/c/d",
        "img:_tag",
        "img:TAG_with.Dots-and-dashes",
        "img@" DIGEST_A,
        "img:tag@" DIGEST_A,
        "registry.example.com:443/a/b:c@" DIGEST_A,
        "0img",
        "img0",
    };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        if (!builder_image_ref_valid(good[i]))
            fail_msg("'%s' should be a valid image reference", good[i]);
    }
}

static void malformed_image_references_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "Python",          /* upper case in a path component */
        "envhub/Python:3", /* idem, not the first */
        "python:",         /* empty tag */
        ":latest",         /* empty name */
        "-python",         /* a component starts with a separator */
        "python-",         /* ... or ends with one */
        "_python",
        "python.",
        "a..b", /* '.' followed by another separator */
        "a._b",
        "a.-b",
        "a//b", /* empty component */
        "/a",
        "a/",
        "a b",
        "a\tb",
        "a\nb",
        "img:-tag", /* a tag starts with a letter, digit or '_' */
        "img:.tag",
        "img:ta g",
        "img:ta/g",
        "img:tag:more",
        "img@sha256:abc",                           /* short digest */
        "img@md5:0123456789abcdef0123456789abcdef", /* other algorithm */
        "img@SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "img@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        "img@" DIGEST_A "0", /* 65 hex digits */
        "img@",
        "host:/img",        /* a registry with an empty port */
        "host:abc/img",     /* ... or a port that is not a number */
        "ex_ample.com/img", /* '_' in a registry host */
        "exa mple.com/img",
        "img;rm",
        "img$(id)",
        "\xc3\xa9t\xc3\xa9",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (builder_image_ref_valid(bad[i]))
            fail_msg("bad reference #%zu '%s' was accepted", i, bad[i]);
    }
}

static void image_reference_and_tag_lengths_are_bounded(void **state)
{
    (void)state;
    char ref[400];

    /* a tag of 128 characters is the longest */
    memset(ref, 0, sizeof(ref));
    memcpy(ref, "img:", 4);
    memset(ref + 4, 't', 128);
    assert_true(builder_image_ref_valid(ref));
    ref[4 + 128] = 't';
    assert_false(builder_image_ref_valid(ref));

    /* the whole reference: 255 characters at most */
    memset(ref, 0, sizeof(ref));
    memset(ref, 'a', 255);
    assert_true(builder_image_ref_valid(ref));
    ref[255] = 'a';
    assert_false(builder_image_ref_valid(ref));
}

/* ---- the image tag of a version ---- */

static void image_tag_is_lower_case_with_a_hash_of_the_name(void **state)
{
    (void)state;
    char hash[SHA256_HEX_LEN + 1];
    _cleanup_free_ char *upper = builder_image_ref("Data-Science", 3);
    _cleanup_free_ char *lower = builder_image_ref("data-science", 3);
    _cleanup_free_ char *next = builder_image_ref("data-science", 4);
    _cleanup_free_ char *big = builder_image_ref("x", 1234567890123LL);

    /* sha256("Data-Science") = 302702ac..., sha256("data-science") = 970677b8... */
    assert_string_equal(upper, "envhub-env/data-science-302702ac:v3");
    assert_string_equal(lower, "envhub-env/data-science-970677b8:v3");
    assert_string_equal(next, "envhub-env/data-science-970677b8:v4");
    assert_string_equal(big, "envhub-env/x-2d711642:v1234567890123");
    sha256_hex("Data-Science", strlen("Data-Science"), hash);
    assert_memory_equal(upper + strlen("envhub-env/data-science-"), hash, 8);

    /* names differing only by case get distinct, valid references */
    assert_string_not_equal(upper, lower);
    assert_true(builder_image_ref_valid(upper));
    assert_true(builder_image_ref_valid(lower));
    assert_true(builder_image_ref_valid(big));

    /* every valid name gives a valid reference, the longest too */
    _cleanup_free_ char *longest =
        builder_image_ref("A0123456789012345678901234567890123456789012345678", 99);
    assert_true(builder_name_valid("A0123456789012345678901234567890123456789012345678"));
    assert_true(builder_image_ref_valid(longest));
    _cleanup_free_ char *dashes = builder_image_ref("a--__--b", 1);
    assert_true(builder_image_ref_valid(dashes));
}

/* ---- the definition hash ---- */

static void definition_hash_is_stable_and_covers_every_field(void **state)
{
    (void)state;
    char h1[65], h2[65], h3[65];

    builder_definition_hash("envhub/python:bookworm", "3.11", "echo ok\n", h1);
    builder_definition_hash("envhub/python:bookworm", "3.11", "echo ok\n", h2);
    assert_string_equal(h1, h2);
    assert_int_equal(strlen(h1), 64);
    for (const char *p = h1; *p; p++)
        assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));

    builder_definition_hash("envhub/python:bookworm", "3.11", "echo ok", h3);
    assert_string_not_equal(h1, h3); /* the script, to the last byte */
    builder_definition_hash("envhub/python:other", "3.11", "echo ok\n", h3);
    assert_string_not_equal(h1, h3); /* the base image */
    builder_definition_hash("envhub/python:bookworm", "3.12", "echo ok\n", h3);
    assert_string_not_equal(h1, h3); /* the Python version */

    /* no field can run into the next */
    builder_definition_hash("ab", "c", "d", h2);
    builder_definition_hash("a", "bc", "d", h3);
    assert_string_not_equal(h2, h3);
    builder_definition_hash("a", "b", "cd", h2);
    builder_definition_hash("a", "bc", "d", h3);
    assert_string_not_equal(h2, h3);
}

/* ---- the Dockerfile ---- */

static void dockerfile_is_rendered_exactly(void **state)
{
    (void)state;
    char def[65];
    builder_definition_hash("envhub/python:bookworm", "3.11", "echo ok\n", def);
    _cleanup_free_ char *df = builder_dockerfile("envhub/python:bookworm", "Data-Science", 7, def);
    _cleanup_free_ char *want = xasprintf(
        "# generated by envhub (envhub-dockerfile-1)\n"
        "FROM envhub/python:bookworm\n"
        "USER root\n"
        "ENV DEBIAN_FRONTEND=noninteractive\n"
        "COPY setup.sh /envhub/setup.sh\n"
        "RUN bash -c 'set -e -o pipefail; trap '\"'\"'echo \"envhub: setup.sh failed at line "
        "$LINENO: $BASH_COMMAND\" >&2'\"'\"' ERR; source /envhub/setup.sh'\n"
        "RUN (getent group 1000 >/dev/null || groupadd -g 1000 sandbox) && "
        "(getent passwd 1000 >/dev/null || useradd -u 1000 -g 1000 -m -s /bin/sh sandbox) && "
        "mkdir -p /workspace && chown 1000:1000 /workspace\n"
        "USER 1000:1000\n"
        "WORKDIR /workspace\n"
        "LABEL envhub.managed=1 envhub.environment=\"Data-Science\" envhub.version=\"7\" "
        "envhub.definition=\"%s\"\n",
        def);
    assert_string_equal(df, want);
}

/* The n-th line (0-based) of @text, into @out. */
static void nth_line(const char *text, int n, char *out, size_t size)
{
    const char *p = text;
    for (int i = 0; i < n && p; i++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    assert_non_null(p);
    size_t len = strcspn(p, "\n");
    assert_true(len < size);
    memcpy(out, p, len);
    out[len] = '\0';
}

static void dockerfile_follows_the_definition(void **state)
{
    (void)state;
    char line[512];
    _cleanup_free_ char *a =
        builder_dockerfile("registry.example.com:5000/team/py:3.12", "ml", 1, "feedface");
    _cleanup_free_ char *b =
        builder_dockerfile("registry.example.com:5000/team/py:3.12", "ml", 1, "feedface");
    _cleanup_free_ char *c =
        builder_dockerfile("registry.example.com:5000/team/py:3.12", "ml", 2, "feedface");

    assert_string_equal(a, b); /* the same definition renders the same text */
    assert_string_not_equal(a, c);
    nth_line(a, 1, line, sizeof(line));
    assert_string_equal(line, "FROM registry.example.com:5000/team/py:3.12");
    /* the script is copied in and sourced, never inlined */
    assert_non_null(strstr(a, "\nCOPY setup.sh /envhub/setup.sh\n"));
    assert_non_null(strstr(a, "source /envhub/setup.sh'\n"));
    /* it runs as root with -e and pipefail, and the image ends as uid 1000 in /workspace */
    nth_line(a, 2, line, sizeof(line));
    assert_string_equal(line, "USER root");
    assert_non_null(strstr(a, "set -e -o pipefail"));
    assert_non_null(strstr(a, "setup.sh failed at line $LINENO"));
    const char *last_user = NULL;
    for (const char *p = a; (p = strstr(p, "\nUSER ")); p++)
        last_user = p + 1;
    assert_non_null(last_user);
    assert_memory_equal(last_user, "USER 1000:1000\n", strlen("USER 1000:1000\n"));
    assert_non_null(strstr(a, "\nWORKDIR /workspace\n"));
    assert_non_null(strstr(a, "envhub.environment=\"ml\" envhub.version=\"1\" "
                              "envhub.definition=\"feedface\"\n"));
    nth_line(c, 9, line, sizeof(line));
    assert_non_null(strstr(line, "envhub.version=\"2\""));
    /* ten lines, each ended by a newline; every one but the comment is an instruction */
    size_t newlines = 0;
    for (const char *p = a; *p; p++)
        newlines += *p == '\n';
    assert_int_equal(newlines, 10);
    assert_int_equal(a[strlen(a) - 1], '\n');
    static const char *const instructions[] = {"FROM ", "USER ",    "ENV ",  "COPY ",
                                               "RUN ",  "WORKDIR ", "LABEL "};
    for (int i = 1; i <= 9; i++) {
        nth_line(a, i, line, sizeof(line));
        bool ok = false;
        for (size_t k = 0; k < ARRAY_SIZE(instructions); k++)
            ok |= strncmp(line, instructions[k], strlen(instructions[k])) == 0;
        if (!ok)
            fail_msg("line %d is not an instruction: %s", i, line);
    }
}

/* ---- the build context ---- */

struct entry {
    char path[64];
    int64_t size, mtime;
    int64_t uid, gid;
    int mode;
    unsigned type;
    char *data;
};

static void entries_free(struct entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].data);
}

/* Read a tar back; returns the number of entries (at most @max). */
static size_t read_tar(const struct buf *tar, struct entry *out, size_t max)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    size_t n = 0;
    int r;

    assert_non_null(a);
    assert_int_equal(archive_read_support_format_tar(a), ARCHIVE_OK);
    assert_int_equal(archive_read_open_memory(a, tar->data, tar->len), ARCHIVE_OK);
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        assert_true(n < max);
        struct entry *x = &out[n++];
        snprintf(x->path, sizeof(x->path), "%s", archive_entry_pathname(e));
        x->size = archive_entry_size(e);
        x->mtime = archive_entry_mtime(e);
        x->uid = archive_entry_uid(e);
        x->gid = archive_entry_gid(e);
        x->mode = (int)(archive_entry_perm(e) & 07777);
        x->type = archive_entry_filetype(e);
        x->data = xcalloc((size_t)x->size + 1, 1);
        if (x->size)
            assert_int_equal(archive_read_data(a, x->data, (size_t)x->size), x->size);
    }
    assert_int_equal(r, ARCHIVE_EOF);
    /* ustar, the format the writer was given */
    assert_int_equal(archive_format(a), ARCHIVE_FORMAT_TAR_USTAR);
    assert_int_equal(archive_read_free(a), ARCHIVE_OK);
    return n;
}

static void context(const char *dockerfile, const char *script, struct buf *out)
{
    struct err err = ERR_INIT;
    *out = (struct buf)BUF_INIT(BUF_UNLIMITED);
    if (builder_context_tar(dockerfile, script, out, &err) != 0)
        fail_msg("builder_context_tar: %s", err.msg);
}

static void context_holds_the_dockerfile_and_the_script_with_fixed_metadata(void **state)
{
    (void)state;
    const char *script = "#!/bin/bash\napt-get update\necho 'ok'\n";
    _cleanup_free_ char *df = builder_dockerfile("envhub/python:bookworm", "basic", 1, "abc");
    _cleanup_(buf_release) struct buf tar = BUF_INIT(BUF_UNLIMITED);
    struct entry e[4] = {0};

    context(df, script, &tar);
    assert_true(tar.len > 0);
    assert_int_equal(tar.len % 512, 0); /* whole tar records */
    /* the ustar magic of the first header */
    assert_true(tar.len >= 512);
    assert_memory_equal(tar.data + 257, "ustar", 5);

    size_t n = read_tar(&tar, e, ARRAY_SIZE(e));
    assert_int_equal(n, 2);
    assert_string_equal(e[0].path, "Dockerfile");
    assert_string_equal(e[1].path, "setup.sh");
    assert_string_equal(e[0].data, df);
    assert_string_equal(e[1].data, script);
    assert_int_equal(e[0].size, strlen(df));
    assert_int_equal(e[1].size, strlen(script));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(e[i].type, AE_IFREG);
        assert_int_equal(e[i].mode, 0644);
        assert_int_equal(e[i].uid, 0);
        assert_int_equal(e[i].gid, 0);
        assert_int_equal(e[i].mtime, 0);
    }
    entries_free(e, n);
}

static void context_is_byte_identical_for_the_same_definition(void **state)
{
    (void)state;
    const char *script = "echo ok\n";
    char def[65];
    builder_definition_hash("envhub/python:bookworm", "3.11", script, def);
    _cleanup_free_ char *df1 = builder_dockerfile("envhub/python:bookworm", "same", 1, def);
    _cleanup_free_ char *df2 = builder_dockerfile("envhub/python:bookworm", "same", 1, def);
    _cleanup_(buf_release) struct buf t1 = BUF_INIT(BUF_UNLIMITED);
    _cleanup_(buf_release) struct buf t2 = BUF_INIT(BUF_UNLIMITED);

    context(df1, script, &t1);
    context(df2, script, &t2);
    assert_int_equal(t1.len, t2.len);
    assert_memory_equal(t1.data, t2.data, t1.len);

    /* and again after other work in between: no clock, no owner, no counter leaks in */
    _cleanup_(buf_release) struct buf other = BUF_INIT(BUF_UNLIMITED);
    context("FROM x\n", "something else\n", &other);
    _cleanup_(buf_release) struct buf t3 = BUF_INIT(BUF_UNLIMITED);
    context(df1, script, &t3);
    assert_int_equal(t1.len, t3.len);
    assert_memory_equal(t1.data, t3.data, t1.len);
}

static bool same_bytes(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void context_changes_when_the_script_or_dockerfile_changes(void **state)
{
    (void)state;
    _cleanup_free_ char *df = builder_dockerfile("envhub/python:bookworm", "chg", 1, "abc");
    _cleanup_(buf_release) struct buf base = BUF_INIT(BUF_UNLIMITED);
    _cleanup_(buf_release) struct buf one_byte = BUF_INIT(BUF_UNLIMITED);
    _cleanup_(buf_release) struct buf longer = BUF_INIT(BUF_UNLIMITED);
    _cleanup_(buf_release) struct buf other_df = BUF_INIT(BUF_UNLIMITED);
    struct entry e[4] = {0};

    context(df, "echo ok\n", &base);
    context(df, "echo oK\n", &one_byte); /* same length, one byte apart */
    context(df, "echo ok\necho more\n", &longer);
    _cleanup_free_ char *df2 = builder_dockerfile("envhub/python:bookworm", "chg", 2, "abc");
    context(df2, "echo ok\n", &other_df);

    assert_false(same_bytes(&base, &one_byte));
    assert_false(same_bytes(&base, &longer));
    assert_false(same_bytes(&base, &other_df));
    assert_int_equal(base.len, one_byte.len); /* only content differs, not the layout */

    size_t n = read_tar(&one_byte, e, ARRAY_SIZE(e));
    assert_int_equal(n, 2);
    assert_string_equal(e[1].data, "echo oK\n");
    entries_free(e, n);
}

static void context_of_a_large_script_round_trips(void **state)
{
    (void)state;
    /* a script longer than one tar record and not a multiple of 512 bytes */
    size_t len = 100000 + 37;
    char *script = xcalloc(len + 1, 1);
    for (size_t i = 0; i < len; i++)
        script[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
    _cleanup_(buf_release) struct buf tar = BUF_INIT(BUF_UNLIMITED);
    struct entry e[4] = {0};

    context("FROM envhub/python:bookworm\n", script, &tar);
    assert_int_equal(tar.len % 512, 0);
    size_t n = read_tar(&tar, e, ARRAY_SIZE(e));
    assert_int_equal(n, 2);
    assert_int_equal(e[1].size, len);
    assert_memory_equal(e[1].data, script, len);
    entries_free(e, n);
    free(script);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_that_match_the_pattern_are_valid),
        cmocka_unit_test(names_outside_the_pattern_are_refused),
        cmocka_unit_test(every_single_character_name_follows_the_pattern),
        cmocka_unit_test(usual_image_references_are_valid),
        cmocka_unit_test(malformed_image_references_are_refused),
        cmocka_unit_test(image_reference_and_tag_lengths_are_bounded),
        cmocka_unit_test(image_tag_is_lower_case_with_a_hash_of_the_name),
        cmocka_unit_test(definition_hash_is_stable_and_covers_every_field),
        cmocka_unit_test(dockerfile_is_rendered_exactly),
        cmocka_unit_test(dockerfile_follows_the_definition),
        cmocka_unit_test(context_holds_the_dockerfile_and_the_script_with_fixed_metadata),
        cmocka_unit_test(context_is_byte_identical_for_the_same_definition),
        cmocka_unit_test(context_changes_when_the_script_or_dockerfile_changes),
        cmocka_unit_test(context_of_a_large_script_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

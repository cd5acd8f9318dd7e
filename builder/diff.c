/* builder/diff.c - a unified line diff of two setup scripts (pure).
 *
 * The common head and tail lines are set aside, the middle is aligned by a
 * longest common subsequence (dynamic programming over at most
 * DIFF_MAX_CELLS line pairs; beyond that the middle is replaced whole, still
 * a correct diff), and the edit script is printed in `diff -u` hunks. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder/builder.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define DIFF_MAX_CELLS (4u * 1024 * 1024)

struct line {
    const char *p;
    size_t len;
};

struct lines {
    struct line *v;
    size_t n;
    bool no_final_newline; /* the text does not end with '\n' */
};

/* Split @text into lines (without their '\n'); "" has none. */
static void split_lines(const char *text, struct lines *out)
{
    size_t cap = 0;
    out->v = NULL;
    out->n = 0;
    out->no_final_newline = false;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        ALLOC_GROW(out->v, out->n + 1, cap);
        out->v[out->n++] = (struct line){p, len};
        if (!nl) {
            out->no_final_newline = true;
            break;
        }
        p = nl + 1;
    }
}

/* Lines equal, the last line's missing newline included. */
static bool line_eq(const struct lines *a, size_t i, const struct lines *b, size_t j)
{
    if (a->v[i].len != b->v[j].len || memcmp(a->v[i].p, b->v[j].p, a->v[i].len) != 0)
        return false;
    bool a_last = i == a->n - 1 && a->no_final_newline;
    bool b_last = j == b->n - 1 && b->no_final_newline;
    return a_last == b_last;
}

enum op_kind { OP_EQUAL, OP_DELETE, OP_INSERT };

struct op {
    enum op_kind kind;
    size_t i, j; /* line of a (EQUAL, DELETE) and of b (EQUAL, INSERT) */
};

struct ops {
    struct op *v;
    size_t n, cap;
};

static void ops_push(struct ops *o, enum op_kind kind, size_t i, size_t j)
{
    ALLOC_GROW(o->v, o->n + 1, o->cap);
    o->v[o->n++] = (struct op){kind, i, j};
}

/* The edit script of lines [i0, i1) of @a against [j0, j1) of @b. */
static void align_middle(const struct lines *a, size_t i0, size_t i1, const struct lines *b,
                         size_t j0, size_t j1, struct ops *o)
{
    size_t n = i1 - i0, m = j1 - j0;

    if (n == 0 || m == 0 || (n + 1) > DIFF_MAX_CELLS / (m + 1)) {
        for (size_t i = i0; i < i1; i++)
            ops_push(o, OP_DELETE, i, j0);
        for (size_t j = j0; j < j1; j++)
            ops_push(o, OP_INSERT, i1, j);
        return;
    }
    /* L[x][y]: LCS length of a[i0+x..i1) and b[j0+y..j1) */
    uint32_t *L = xcalloc((n + 1) * (m + 1), sizeof(*L));
#define CELL(x, y) L[(size_t)(x) * (m + 1) + (size_t)(y)]
    for (size_t x = n; x-- > 0;)
        for (size_t y = m; y-- > 0;)
            CELL(x, y) = line_eq(a, i0 + x, b, j0 + y)
                             ? CELL(x + 1, y + 1) + 1
                             : (CELL(x + 1, y) >= CELL(x, y + 1) ? CELL(x + 1, y) : CELL(x, y + 1));
    size_t x = 0, y = 0;
    while (x < n && y < m) {
        if (line_eq(a, i0 + x, b, j0 + y)) {
            ops_push(o, OP_EQUAL, i0 + x, j0 + y);
            x++;
            y++;
        } else if (CELL(x + 1, y) >= CELL(x, y + 1)) {
            ops_push(o, OP_DELETE, i0 + x, j0 + y);
            x++;
        } else {
            ops_push(o, OP_INSERT, i0 + x, j0 + y);
            y++;
        }
    }
#undef CELL
    for (; x < n; x++)
        ops_push(o, OP_DELETE, i0 + x, j1);
    for (; y < m; y++)
        ops_push(o, OP_INSERT, i1, j0 + y);
    free(L);
}

static void out_add(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_add(struct buf *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vputf(out, fmt, ap);
    va_end(ap);
}

/* "-start,count" as diff -u writes it: a range of 1 is just its start; an
 * empty range names the line before it. */
static void range(struct buf *out, char sign, size_t start, size_t count)
{
    if (count == 1)
        out_add(out, "%c%zu", sign, start + 1);
    else
        out_add(out, "%c%zu,%zu", sign, count ? start + 1 : start, count);
}

static void emit_line(struct buf *out, char sign, const struct lines *l, size_t k)
{
    out_add(out, "%c%.*s\n", sign, (int)l->v[k].len, l->v[k].p);
    if (k == l->n - 1 && l->no_final_newline)
        out_add(out, "\\ No newline at end of file\n");
}

char *builder_unified_diff(const char *a_text, const char *b_text, const char *label_a,
                           const char *label_b, int context)
{
    struct lines a, b;
    struct ops o = {0};
    struct buf out = BUF_INIT(BUF_UNLIMITED);
    size_t ctx = context < 0 ? 0 : (size_t)context;

    split_lines(a_text, &a);
    split_lines(b_text, &b);
    size_t head = 0;
    while (head < a.n && head < b.n && line_eq(&a, head, &b, head))
        head++;
    size_t tail = 0;
    while (tail < a.n - head && tail < b.n - head &&
           line_eq(&a, a.n - 1 - tail, &b, b.n - 1 - tail))
        tail++;
    for (size_t k = 0; k < head; k++)
        ops_push(&o, OP_EQUAL, k, k);
    align_middle(&a, head, a.n - tail, &b, head, b.n - tail, &o);
    for (size_t k = tail; k-- > 0;)
        ops_push(&o, OP_EQUAL, a.n - 1 - k, b.n - 1 - k);

    bool changed = false;
    for (size_t k = 0; k < o.n && !changed; k++)
        changed = o.v[k].kind != OP_EQUAL;
    if (changed)
        out_add(&out, "--- %s\n+++ %s\n", label_a, label_b);
    /* hunks: changes with at most 2 * ctx equal lines between them go together */
    size_t k = 0;
    while (changed && k < o.n) {
        while (k < o.n && o.v[k].kind == OP_EQUAL)
            k++;
        if (k == o.n)
            break;
        size_t start = k > ctx ? k - ctx : 0;
        size_t end = k; /* one past the last change of the hunk */
        for (size_t e = k; e < o.n;) {
            if (o.v[e].kind != OP_EQUAL) {
                end = ++e;
                continue;
            }
            size_t run = 0;
            while (e + run < o.n && o.v[e + run].kind == OP_EQUAL)
                run++;
            if (e + run == o.n || run > 2 * ctx)
                break;
            e += run;
        }
        size_t stop = end + ctx < o.n ? end + ctx : o.n;
        /* where the hunk starts in each text, and how many lines of each */
        size_t a_start = o.v[start].i, b_start = o.v[start].j, a_count = 0, b_count = 0;
        for (size_t e = start; e < stop; e++) {
            a_count += o.v[e].kind != OP_INSERT;
            b_count += o.v[e].kind != OP_DELETE;
        }
        out_add(&out, "@@ ");
        range(&out, '-', a_start, a_count);
        out_add(&out, " ");
        range(&out, '+', b_start, b_count);
        out_add(&out, " @@\n");
        for (size_t e = start; e < stop; e++) {
            if (o.v[e].kind == OP_EQUAL)
                emit_line(&out, ' ', &a, o.v[e].i);
            else if (o.v[e].kind == OP_DELETE)
                emit_line(&out, '-', &a, o.v[e].i);
            else
                emit_line(&out, '+', &b, o.v[e].j);
        }
        k = stop;
    }
    free(o.v);
    free(a.v);
    free(b.v);
    char *text = buf_detach(&out, NULL);
    return text ? text : xstrdup("");
}

/* core/json_shape.c - a one-pass, non-recursive scan of JSON text that
 * bounds its shape before a parser allocates or recurses.
 *
 * The scan knows only what it needs: whether it is inside a string (so that
 * brackets there do not count), the stack of open containers (a fixed array
 * of JSON_SHAPE_DEPTH_MAX entries) and, per container, how many elements it
 * has begun. An element begins at the first byte of a value in an array, or
 * at the key in an object; its commas end it. Everything else is the
 * parser's business. */
#include "core/json_shape.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/banned.h"

const struct json_shape_bounds JSON_SHAPE_ENGINE = {
    .max_depth = JSON_SHAPE_DEPTH_MAX,
    .max_members = 1000000,
    .max_items = 1000000,
    .max_key = 1 << 20,
    .max_string = (size_t)256 << 20,
    .max_values = 10000000,
};

struct frame {
    bool object;
    bool begun; /* the current element has started (reset by ',') */
    bool want_key;
    size_t elements;
};

struct scan {
    const struct json_shape_bounds *b;
    const char *what;
    char field[48]; /* the top-level key being scanned, printable, for messages */
    struct frame stack[JSON_SHAPE_DEPTH_MAX];
    size_t depth;
    size_t values;
};

/* The subject of a message: the top-level field when inside one. */
static const char *subject(const struct scan *s)
{
    return s->field[0] ? s->field : s->what;
}

static int refuse(struct scan *s, struct err *err, size_t at, const char *fmt, size_t limit)
{
    char why[128];
    /* fmt is one of this file's literals with a single %zu */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(why, sizeof(why), fmt, limit);
#pragma GCC diagnostic pop
    return err_set(err, ERR_UNPROCESSABLE, "%s: %s (at byte %zu)", subject(s), why, at);
}

/* A value or a key begins at byte @at in the innermost container. */
static int begin_element(struct scan *s, size_t at, struct err *err)
{
    if (s->depth == 0) { /* the top value (anything after it is the parser's error) */
        s->values++;
        return 0;
    }
    struct frame *f = &s->stack[s->depth - 1];
    if (f->begun)
        return 0;
    f->begun = true;
    f->elements++;
    if (f->object && f->elements > s->b->max_members)
        return refuse(s, err, at, "an object with more keys than the limit of %zu",
                      s->b->max_members);
    if (!f->object && f->elements > s->b->max_items)
        return refuse(s, err, at, "an array with more elements than the limit of %zu",
                      s->b->max_items);
    if (++s->values > s->b->max_values)
        return refuse(s, err, at, "more values in all than the limit of %zu", s->b->max_values);
    return 0;
}

/* Remember a top-level key (its bytes as written, unprintable ones as '?'). */
static void note_field(struct scan *s, const char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < sizeof(s->field); i++)
        s->field[o++] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
    if (n > sizeof(s->field) - 5) {
        memcpy(s->field + o, "...", 3);
        o += 3;
    }
    s->field[o] = '\0';
}

int json_shape_check(const char *p, size_t len, const struct json_shape_bounds *b, const char *what,
                     struct err *err)
{
    struct scan s = {.b = b, .what = what};
    size_t max_depth = b->max_depth < JSON_SHAPE_DEPTH_MAX ? b->max_depth : JSON_SHAPE_DEPTH_MAX;

    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        switch (c) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            break;
        case '"': {
            struct frame *f = s.depth ? &s.stack[s.depth - 1] : NULL;
            bool key = f && f->object && f->want_key;
            size_t start = i + 1, limit = key ? b->max_key : b->max_string;
            if (begin_element(&s, i, err) < 0)
                return -1;
            for (i = start; i < len && p[i] != '"'; i++)
                if (p[i] == '\\' && i + 1 < len)
                    i++;
            size_t n = (i < len ? i : len) - start;
            if (n > limit)
                return refuse(&s, err, start,
                              key ? "a key longer than the limit of %zu bytes"
                                  : "a string longer than the limit of %zu bytes",
                              limit);
            if (key && s.depth == 1) {
                note_field(&s, p + start, n);
                f->want_key = false;
            } else if (key) {
                f->want_key = false;
            }
            break;
        }
        case '{':
        case '[':
            if (begin_element(&s, i, err) < 0)
                return -1;
            if (s.depth >= max_depth)
                return refuse(&s, err, i, "nesting deeper than the limit of %zu levels", max_depth);
            s.stack[s.depth++] = (struct frame){.object = c == '{', .want_key = c == '{'};
            break;
        case '}':
        case ']':
            if (s.depth == 0)
                return 0; /* unbalanced: the parser says where */
            s.depth--;
            if (s.depth == 0)
                s.field[0] = '\0';
            break;
        case ',':
            if (s.depth) {
                struct frame *f = &s.stack[s.depth - 1];
                f->begun = false;
                f->want_key = f->object;
                if (f->object && s.depth == 1)
                    s.field[0] = '\0';
            }
            break;
        case ':':
            if (s.depth)
                s.stack[s.depth - 1].want_key = false;
            break;
        default: /* a number, true, false, null, or bytes the parser will refuse */
            if (begin_element(&s, i, err) < 0)
                return -1;
            break;
        }
    }
    return 0;
}

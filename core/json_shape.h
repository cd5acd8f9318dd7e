/* core/json_shape.h - the shape of JSON text, checked before any parser sees it.
 *
 * A JSON parser that recurses (jansson does) can be made to exhaust a
 * thread's stack by a few kilobytes of brackets, and to allocate far more
 * than the text's size (every "[]" is a heap object). json_shape_check()
 * scans the bytes once, without recursion and without allocating, and
 * refuses text whose nesting, object sizes, array lengths, string sizes or
 * total number of values pass the given bounds. It does not validate the
 * syntax: text it lets through still goes to the parser, which reports
 * syntax errors with their line and column. Pure and thread-safe. */
#ifndef ENVHUB_JSON_SHAPE_H
#define ENVHUB_JSON_SHAPE_H

#include <stddef.h>

#include "core/err.h"

/* The deepest nesting any bounds may allow (the scan keeps a fixed stack). */
#define JSON_SHAPE_DEPTH_MAX 64

struct json_shape_bounds {
    size_t max_depth;   /* nested arrays and objects, at most JSON_SHAPE_DEPTH_MAX */
    size_t max_members; /* keys of one object */
    size_t max_items;   /* elements of one array */
    size_t max_key;     /* bytes of one key, as written (escapes count as written) */
    size_t max_string;  /* bytes of one string value, as written */
    size_t max_values;  /* values in the whole text: elements, members and the top one */
};

/* Bounds for what the Docker engine answers (inspections, lists, build
 * progress): generous, but no text can nest deeper than 64 levels. */
extern const struct json_shape_bounds JSON_SHAPE_ENGINE;

/* 0 when the text at p[0..len) stays within @b; otherwise -1 with
 * ERR_UNPROCESSABLE and a message that starts with @what (e.g. "body") or,
 * when the offending value sits under a top-level key, with that key
 * ("files: ..."), and names the limit and the byte offset. */
int json_shape_check(const char *p, size_t len, const struct json_shape_bounds *b, const char *what,
                     struct err *err);

#endif

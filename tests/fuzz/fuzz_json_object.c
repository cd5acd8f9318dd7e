/* tests/fuzz/fuzz_json_object.c - web_json_object (web/request.c), the
 * parser of every JSON request body but /execute's (environments, rebuild,
 * keys, sessions, lifecycle, batches), and json_shape_check
 * (core/json_shape.c), the scan that bounds JSON before jansson sees it.
 *
 * Input: six bytes of choices (flags, shape; then the bounds: depth 1 to 64,
 * members, items, key and string bytes, values, all small), then the text.
 * Properties: web_json_object gives an object, or fails with 413/422 and a
 * one-line message; text json_shape_check accepts within depth 64 parses with
 * jansson without crashing, and whatever jansson makes of it stays within
 * the bounds the scan checked: no deeper, no larger object or array, no
 * longer key or string, no more values. */
#include <jansson.h>

#include "core/json_shape.h"
#include "web/web_internal.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

struct tally {
    size_t values;
};

/* Walk @v (at @depth, 1 for the top value) checking it against @b. */
static void walk(const json_t *v, size_t depth, const struct json_shape_bounds *b, struct tally *t)
{
    t->values++;
    if (json_is_array(v) || json_is_object(v))
        FUZZ_CHECK(depth <= b->max_depth);
    if (json_is_string(v))
        FUZZ_CHECK(json_string_length(v) <= b->max_string);
    if (json_is_array(v)) {
        FUZZ_CHECK(json_array_size(v) <= b->max_items);
        for (size_t i = 0; i < json_array_size(v); i++)
            walk(json_array_get(v, i), depth + 1, b, t);
    } else if (json_is_object(v)) {
        const char *key;
        json_t *member;
        FUZZ_CHECK(json_object_size(v) <= b->max_members);
        json_object_foreach((json_t *)v, key, member)
        {
            FUZZ_CHECK(strlen(key) <= b->max_key);
            walk(member, depth + 1, b, t);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const shapes[] = {NULL, "{name, role}", "{environment?, idle_timeout?}"};
    uint8_t choice = fuzz_take_byte(&data, &size);
    struct json_shape_bounds b = {
        .max_depth = 1 + fuzz_take_byte(&data, &size) % JSON_SHAPE_DEPTH_MAX,
        .max_members = fuzz_take_byte(&data, &size) % 16,
        .max_items = fuzz_take_byte(&data, &size) % 16,
        .max_key = fuzz_take_byte(&data, &size) % 64,
        .max_string = fuzz_take_byte(&data, &size),
    };
    const char *text = (const char *)data;
    size_t flags = (choice & 1) ? JSON_ALLOW_NUL : 0;
    struct err err = ERR_INIT;
    json_t *doc = NULL;

    b.max_values = 1 + (size_t)(choice >> 2) * 4;
    if (web_json_object(text, size, flags, &b, shapes[(choice >> 1) % 3], &doc, &err) == 0) {
        FUZZ_CHECK(err.code == ERR_OK && json_is_object(doc));
        json_decref(doc);
    } else {
        FUZZ_CHECK(doc == NULL);
        FUZZ_CHECK(err.code == ERR_UNPROCESSABLE || err.code == ERR_TOO_LARGE);
        fuzz_check_err(&err);
    }

    /* the scan alone, and jansson after it (any top value) */
    err = (struct err)ERR_INIT;
    if (json_shape_check(text, size, &b, "body", &err) == 0) {
        json_error_t jerr;
        json_t *any = json_loadb(text, size, JSON_DECODE_ANY | flags, &jerr);
        if (any) {
            struct tally t = {0};
            walk(any, 1, &b, &t);
            FUZZ_CHECK(t.values <= b.max_values);
            json_decref(any);
        }
    } else {
        FUZZ_CHECK(err.code == ERR_UNPROCESSABLE);
        fuzz_check_err(&err);
    }
    return 0;
}

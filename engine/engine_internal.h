/* engine/engine_internal.h - shared by the engine/ sources and their tests only. */
#ifndef ENVHUB_ENGINE_INTERNAL_H
#define ENVHUB_ENGINE_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

/* Parse JSON the engine sent, after json_shape_check() with
 * JSON_SHAPE_ENGINE: no answer, however built, can make the parser recurse
 * past 64 levels. NULL when it is not JSON or passes the bounds; @jerr->text
 * says why. The caller owns the result. */
json_t *engine_json_load(const char *text, size_t len, json_error_t *jerr);

#endif

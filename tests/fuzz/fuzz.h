/* tests/fuzz/fuzz.h - what the harnesses of tests/fuzz/ share: the entry
 * point libFuzzer calls (and fuzz_main.c's replay), a check that aborts with
 * the failed property, and the properties of every struct err.
 *
 * A harness is deterministic (no clock, no randomness, no files) and frees
 * everything it allocates: LeakSanitizer runs in the replay. */
#ifndef ENVHUB_FUZZ_H
#define ENVHUB_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property that does not hold is a crash, for libFuzzer and the replay
 * alike (assert() would vanish under NDEBUG). */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A failure's error: a code, and a message that is non-empty, one line (no
 * control character: it may be logged) and NUL-terminated in its array. */
static inline void fuzz_check_err(const struct err *err)
{
    size_t n = strnlen(err->msg, sizeof(err->msg));

    FUZZ_CHECK(err->code != ERR_OK);
    FUZZ_CHECK(n > 0 && n < sizeof(err->msg));
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)err->msg[i] >= 0x20 && err->msg[i] != 0x7f);
}

/* The first byte of the input, for choices a harness makes (0 when empty);
 * *data and *size move past it. */
static inline uint8_t fuzz_take_byte(const uint8_t **data, size_t *size)
{
    if (*size == 0)
        return 0;
    uint8_t b = **data;
    (*data)++;
    (*size)--;
    return b;
}

#endif

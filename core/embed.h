/* core/embed.h - files compiled into the binary by core/embed.sh (migrations,
 * web assets). Each array ends with an entry whose path is NULL; data is
 * NUL-terminated one byte past len. */
#ifndef ENVHUB_EMBED_H
#define ENVHUB_EMBED_H

#include <stddef.h>

struct embedded_file {
    const char *path;
    const unsigned char *data;
    size_t len;
};

#endif

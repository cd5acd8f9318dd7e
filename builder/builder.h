/* builder/builder.h - environment definitions -> versioned Docker images.
 *
 * A definition (name, description, base image, bash setup script, Python
 * version) is validated, recorded in the catalog as a queued build, and built
 * by one of the builder's worker threads (at most ENVHUB_BUILD_CONCURRENCY at
 * once, the rest wait in order): render the Dockerfile, tar the context with
 * libarchive, pull the base image when it is not local, POST /build with
 * memory, CPU and process limits, store every log line, verify the image in a
 * locked-down container (python3 runs, tar present, uid 1000), record the
 * package inventory, and only then put the version in service. An unchanged
 * definition reuses the image it already has.
 *
 * One struct builder serves all threads. */
#ifndef ENVHUB_BUILDER_H
#define ENVHUB_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "engine/engine.h"

struct builder;

/* Start the workers; builds a stop cut off are queued again. @cfg, @e and
 * @cat are borrowed and must outlive the builder. */
int builder_open(const struct config *cfg, struct engine *e, struct catalog *cat,
                 struct builder **ret, struct err *err);
/* Cancel running builds (they are queued again at the next start) and wake
 * every waiter; returns at once. Safe to call twice. */
void builder_shutdown(struct builder *b);
/* Shut down if not yet, wait for the workers, free. NULL is fine. */
void builder_close(struct builder *b);

struct env_definition {
    const char *name;
    const char *description;    /* NULL: "" */
    const char *base_image;     /* NULL: the configured default image */
    const char *setup_script;
    const char *python_version; /* NULL: "3.11" */
    const char *policy;         /* canonical policy JSON (checked by the caller); NULL: "{}" */
    const char *created_by;
};

/* Validate @def and create the environment with build 1 queued. *ret (the
 * environment as recorded) belongs to the caller. ERR_INVALID for a bad
 * name, script or image reference (the message names the field), ERR_CONFLICT
 * when the name exists ("环境 'x' 已存在"). */
int builder_create(struct builder *b, const struct env_definition *def, struct env_record *ret,
                   struct err *err);

/* Queue version N+1 of @name, with a new script, base image and/or policy
 * when given (NULL keeps the current one); version N keeps serving until N+1 is ready.
 * *ret is the queued build. ERR_NOT_FOUND, ERR_CONFLICT (a build is already
 * queued or running), ERR_INVALID. */
int builder_rebuild(struct builder *b, const char *name, const char *setup_script,
                    const char *base_image, const char *policy, const char *created_by,
                    struct build_record *ret, struct err *err);

/* Cancel a build in progress, remove the environment's images and its
 * catalog rows (executions keep theirs). ERR_NOT_FOUND. */
int builder_delete(struct builder *b, const char *name, struct err *err);

/* Wait until build @build_id has log lines after @after, or has ended, or
 * @deadline_ms (time_mono_ms) passes (then false). Never polls: woken by
 * the worker. */
bool builder_wait(struct builder *b, int64_t build_id, int64_t after, int64_t deadline_ms);

/* Call @fn (from a builder thread) whenever an environment's version in
 * service changes or an environment is deleted: the warm pools follow. */
void builder_set_listener(struct builder *b, void (*fn)(void *ctx), void *ctx);

/* Append the builder's metrics in Prometheus text format to @out. */
int builder_metrics(struct builder *b, struct buf *out);

/* ---- pure helpers (unit-tested) ---- */

/* ^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$ */
bool builder_name_valid(const char *name);
/* A Docker image reference we accept as a base image. */
bool builder_image_ref_valid(const char *ref);
/* The first dangerous command in @script (see builder/dangerous.c for the
 * list), as a static description; NULL when none. */
const char *builder_script_danger(const char *script);
/* "envhub-env/<lower-case name>-<8 hex of sha256(name)>:<version>": valid and
 * unique even for names that differ only by case. The caller frees. */
char *builder_image_ref(const char *name, int64_t version);
/* sha256 of what decides the image: base image, Python version, script and
 * the Dockerfile template's own version. */
void builder_definition_hash(const char *base_image, const char *python_version,
                             const char *script, char out[65]);
/* The Dockerfile of a build. The caller frees. */
char *builder_dockerfile(const char *base_image, const char *name, int64_t version,
                         const char *definition);
/* Deterministic build context (Dockerfile + setup.sh, fixed times and
 * owners) into @out. */
int builder_context_tar(const char *dockerfile, const char *script, struct buf *out,
                        struct err *err);

#endif

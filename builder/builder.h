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

/* Start the workers and the maintenance thread (retired images, drift);
 * builds a stop cut off are queued again. @cfg, @e and @cat are borrowed and
 * must outlive the builder. Acceptance checks run in the sandbox a job of
 * that version would get (the version's policy). */
int builder_open(const struct config *cfg, struct engine *e, struct catalog *cat,
                 struct builder **ret, struct err *err);
/* Cancel running builds (they are queued again at the next start) and wake
 * every waiter; returns at once. Safe to call twice. */
void builder_shutdown(struct builder *b);
/* Shut down if not yet, wait for the workers, free. NULL is fine. */
void builder_close(struct builder *b);

struct env_definition {
    const char *name;
    const char *description; /* NULL: "" */
    const char *base_image;  /* NULL: the configured default image */
    const char *setup_script;
    const char *python_version; /* NULL: "3.11" */
    const char *policy;         /* canonical policy JSON (checked by the caller); NULL: "{}" */
    const char *created_by;
    const char *test_script; /* acceptance check (python); NULL or "": the import check */
};

/* Validate @def and create the environment with build 1 queued. *ret (the
 * environment as recorded) belongs to the caller. ERR_INVALID for a bad
 * name, script or image reference (the message names the field), ERR_CONFLICT
 * when the name exists ("环境 'x' 已存在"). */
int builder_create(struct builder *b, const struct env_definition *def, struct env_record *ret,
                   struct err *err);

/* Queue version N+1 of @name, with a new script, base image, policy and/or
 * test script when given (NULL keeps the current one; a test script "" goes
 * back to the import check); version N keeps serving until N+1 is ready.
 * *ret is the queued build. ERR_NOT_FOUND, ERR_CONFLICT (a build is already
 * queued or running, or the environment is retired), ERR_INVALID. */
int builder_rebuild(struct builder *b, const char *name, const char *setup_script,
                    const char *base_image, const char *policy, const char *test_script,
                    const char *created_by, struct build_record *ret, struct err *err);

/* Cancel a build in progress, remove the environment's images and its
 * catalog rows (executions keep theirs), recording @by as who deleted it.
 * ERR_NOT_FOUND. */
int builder_delete(struct builder *b, const char *name, const char *by, struct err *err);

/* Wait until build @build_id has log lines after @after, or has ended, or
 * @deadline_ms (time_mono_ms) passes (then false). Never polls: woken by
 * the worker. */
bool builder_wait(struct builder *b, int64_t build_id, int64_t after, int64_t deadline_ms);

/* Call @fn (from a builder thread) whenever an environment's version in
 * service changes or an environment is deleted: the warm pools follow. */
void builder_set_listener(struct builder *b, void (*fn)(void *ctx), void *ctx);

/* What /metrics shows of the builder, as plain numbers (web renders them). */
struct builder_metrics {
    uint64_t finished[BUILD_CANCELLED + 1]; /* builds ended, by status */
    double seconds_sum;                     /* start to end, of the builds ended */
    uint64_t seconds_count;
    size_t running, queued;
};
void builder_metrics(struct builder *b, struct builder_metrics *ret);

/* ---- curation (builder/curation.c) ---- */

/* Move @name to lifecycle @state: deprecated (still runnable; executions carry
 * a warning naming @replacement when given), retired (not runnable; its images
 * are removed ENVHUB_RETIRE_GRACE seconds later; history kept) or active
 * (reinstated: when its images were removed, the same definition is rebuilt
 * and *ret_rebuild (optional) says which version, else 0). @replacement must
 * be another existing environment. *ret is the environment as now recorded.
 * ERR_NOT_FOUND, ERR_INVALID (the replacement). */
int builder_set_lifecycle(struct builder *b, const char *name, enum env_lifecycle state,
                          const char *replacement, const char *by, struct env_record *ret,
                          int64_t *ret_rebuild, struct err *err);

/* One environment's base image, then and now. */
struct drift_report {
    char *environment;
    int64_t version;   /* in service */
    char *base_image;  /* the reference it was built FROM */
    char *built_on;    /* the image id it was built on; NULL when not recorded */
    char *resolves_to; /* what the reference resolves to now; NULL: not in the engine */
    int drifted;       /* 1: they differ; 0: the same; -1: unknown */
    int64_t checked_at;
};
void drift_reports_free(struct drift_report *r, size_t n); /* NULL is fine */
/* Resolve the base image reference of @name (NULL: every environment with a
 * version in service and not retired) in the engine now, record the answer
 * in the catalog, and report. ERR_NOT_FOUND for an unknown @name. */
int builder_drift_check(struct builder *b, const char *name, struct drift_report **ret,
                        size_t *ret_n, struct err *err);

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
void builder_definition_hash(const char *base_image, const char *python_version, const char *script,
                             char out[65]);
/* The Dockerfile of a build. The caller frees. */
char *builder_dockerfile(const char *base_image, const char *name, int64_t version,
                         const char *definition);
/* Deterministic build context (Dockerfile + setup.sh, fixed times and
 * owners) into @out. */
int builder_context_tar(const char *dockerfile, const char *script, struct buf *out,
                        struct err *err);
/* A unified diff (`diff -u` format, @context lines around each change) of
 * the lines of @a and @b, headed "--- @label_a" / "+++ @label_b"; "" when
 * they are equal. A longest-common-subsequence diff after the common head
 * and tail are set aside; past about 4 million line pairs it falls back to
 * replacing the differing middle whole. The caller frees. */
char *builder_unified_diff(const char *a, const char *b, const char *label_a, const char *label_b,
                           int context);

#endif

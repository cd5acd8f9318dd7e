/* sandbox/sandbox.h - the sandbox profile, written once: the limits a job
 * runs with (an environment's policy against the server's maxima, lowered by
 * a request), the container spec every sandbox container is made from, and
 * the labels on everything envhub creates.
 *
 * Every container that runs code of a built image is made from
 * sandbox_spec_fill(): jobs, warm pools and sessions (executor/), a built
 * version's acceptance check and a built image's verification (builder/).
 *
 * Pure functions and plain data: no engine calls, no locks; all of it may be
 * used from any thread. Depends on core/ and engine/engine.h (the spec) only. */
#ifndef ENVHUB_SANDBOX_H
#define ENVHUB_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "engine/engine.h"

/* ---- limits and policy ---- */

/* policy.preload: at most this many modules, each a dotted Python name
 * ("numpy", "matplotlib.pyplot") of ASCII letters, digits and '_' of at
 * most SANDBOX_PRELOAD_NAME_MAX bytes. */
#define SANDBOX_PRELOAD_MAX 32
#define SANDBOX_PRELOAD_NAME_MAX 100

/* The limits a sandbox runs with. */
struct sandbox_limits {
    int64_t timeout_default, timeout_max; /* seconds */
    int64_t memory;                       /* bytes */
    int64_t cpu_millis;                   /* thousandths of a CPU */
    int64_t pids;
    int64_t output_limit;   /* bytes kept of stdout and of stderr */
    int64_t workspace_size; /* bytes of /workspace */
    bool network;           /* bridge; else none */
    bool gvisor;            /* runtime runsc (gVisor); else the engine's default, runc */
    int64_t pool_size, recycle;
    /* modules the agent imports in a warm container before any job
     * (policy.preload), in the policy's order */
    size_t n_preload;
    char preload[SANDBOX_PRELOAD_MAX][SANDBOX_PRELOAD_NAME_MAX + 1];
};

/* The server's defaults (no policy). */
void sandbox_limits_default(const struct config *cfg, struct sandbox_limits *ret);

/* Parse and check an environment's policy (JSON text, NULL or "" for none)
 * against the server's maxima. Fields (all optional; an absent one takes the
 * server's default): timeout_default, timeout_max (seconds), memory,
 * workspace_size, output_limit (bytes), cpu (CPUs, a number), pids, network
 * ("none" or "bridge"), runtime ("runc" or "runsc": gVisor, which has no
 * network, so it cannot go with "bridge"), pool_size (warm containers),
 * recycle (jobs per container, 1: a fresh one each), preload (module names the
 * warm containers import before any job: SANDBOX_PRELOAD_MAX dotted names, no
 * repeats). ERR_INVALID naming "policy.<field>" and
 * the limit; a policy nested or sized past its bounds (core/json_shape) is
 * ERR_INVALID too. *ret (optional): the effective limits; *ret_canonical
 * (optional): the policy as stored (sorted, only the given fields), the
 * caller frees. */
int sandbox_policy_parse(const struct config *cfg, const char *json, struct sandbox_limits *ret,
                         char **ret_canonical, struct err *err);

/* What a request asks to lower (0: keep the environment's). */
struct sandbox_overrides {
    int64_t memory, cpu_millis, pids, output_limit;
};

/* @env lowered by @o (NULL: nothing to lower) into *ret; ERR_INVALID naming
 * "limits.<field>" when @o asks more than @env allows. */
int sandbox_limits_lower(const struct sandbox_limits *env, const struct sandbox_overrides *o,
                         struct sandbox_limits *ret, struct err *err);

/* The limits a job ran with, as recorded (compact JSON, sorted keys); the
 * caller frees. */
char *sandbox_limits_json(const struct sandbox_limits *l, int64_t timeout_s);

/* Is @name a module name policy.preload accepts (see SANDBOX_PRELOAD_MAX)? */
bool sandbox_preload_name_ok(const char *name);

/* Do containers made for @a suit a job needing @b? (memory, CPU, pids,
 * workspace size, network, runtime and preload: what the container is made
 * with) */
bool sandbox_limits_equal(const struct sandbox_limits *a, const struct sandbox_limits *b);

/* ---- labels ---- */

/* Labels envhub puts on what it creates: envhub.managed=1, envhub.instance=
 * <catalog instance id> (containers only) and the extra ones of ENVHUB_LABELS. */
struct sandbox_labels;

/* At most this many labels in all, envhub's own included. */
#define SANDBOX_MAX_LABELS 16

/* Parse @spec, ENVHUB_LABELS ("key=value,key=value"; NULL or "" for none),
 * after envhub.managed=1 and, when @instance_id is not NULL,
 * envhub.instance=@instance_id. ERR_INVALID for an entry that is not
 * key=value, for more than SANDBOX_MAX_LABELS - 2 entries, and for a key that
 * would set envhub's own labels (envhub.managed..., envhub.instance...). On
 * success *ret belongs to the caller: sandbox_labels_free() it. */
int sandbox_labels_parse(const char *spec, const char *instance_id, struct sandbox_labels **ret,
                         struct err *err);
void sandbox_labels_free(struct sandbox_labels *l); /* NULL is fine */
/* The labels in order, borrowed until sandbox_labels_free(); *ret_n their count. */
const struct engine_label *sandbox_labels_list(const struct sandbox_labels *l, size_t *ret_n);

/* ---- the container spec ---- */

#define SANDBOX_USER "1000:1000"
/* Variables a job container's spec sets at most (sandbox_spec_fill). */
#define SANDBOX_ENV_MAX 8
#define SANDBOX_SHM_SIZE (4 * 1024 * 1024)

/* What a sandbox container is for. Every one has: a read-only root, /workspace
 * and /tmp as tmpfs (nosuid, nodev; the workspace owned by uid 1000, of the
 * limits' workspace_size), user 1000:1000, every capability dropped,
 * no-new-privileges, the limits' memory (swap off) and pids, network "none"
 * with NetworkDisabled unless the limits allow the bridge, log driver none,
 * the runtime runsc (gVisor) when the limits ask for it (jobs and acceptance
 * checks; an image's verification runs under the default runtime),
 * the labels, and `sleep infinity` as its command (work goes in by exec).
 * What sets them apart:
 *
 *   purpose               env        CPU limit  /dev/shm  tmpfs                       workspace at
 *   SANDBOX_JOB           HOME, LANG yes        4 MiB     nr_inodes, modes, /tmp of   WORK_DIR
 *   SANDBOX_ACCEPTANCE    image's    yes        4 MiB       ENVHUB_TMP_SIZE           WORK_DIR
 *   SANDBOX_VERIFICATION  image's    no         engine's  /tmp of 64 MiB, no inode    /workspace
 *                                                          limits, the kernel's modes
 */
enum sandbox_purpose {
    SANDBOX_JOB,          /* a job, a session or a warm container (which serves either) */
    SANDBOX_ACCEPTANCE,   /* a built version's acceptance check, with the version's limits */
    SANDBOX_VERIFICATION, /* a built image's verification (python3, tar, uid, inventory) */
};

/* A container spec and the storage its pointers need. Its pointers point
 * into itself, at @labels and at the config: fill it where it is used, do
 * not copy it. */
struct sandbox_spec {
    struct engine_container_spec spec; /* for engine_container_create() */
    struct engine_tmpfs tmpfs[2];
    char workspace_opts[192], tmp_opts[160];
};

/* Fill *ret for a sandbox container of @image with limits @l and @labels, for
 * @purpose. @cfg (WORK_DIR, ENVHUB_TMP_SIZE, ENVHUB_TMPFS_INODES), @image and
 * @labels are borrowed: they must outlive *ret's use. Pure. */
void sandbox_spec_fill(const struct config *cfg, const char *image, const struct sandbox_limits *l,
                       const struct sandbox_labels *labels, enum sandbox_purpose purpose,
                       struct sandbox_spec *ret);

/* May image @ref (inspected: @info) hold sandboxes? Not when it declares a
 * VOLUME: the engine would give every container of it a writable directory
 * on the host's disk, past the read-only root and every size limit. ERR_INVALID
 * naming the image and the paths (escaped, at most a few). Pure. */
int sandbox_image_check(const char *ref, const struct engine_image_info *info, struct err *err);

#endif

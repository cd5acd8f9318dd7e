/* sandbox/spec.c - the container spec of every sandbox: jobs, sessions and
 * warm pools, acceptance checks, verifications. What sets the purposes apart
 * is the table below; everything else is the same for all. */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "sandbox/sandbox.h"

#include "core/banned.h"

/* The verification's own workspace and /tmp (its script looks at /workspace). */
#define VERIFY_WORK_DIR "/workspace"
#define VERIFY_TMP_OPTS "rw,nosuid,nodev,size=64m"

static const struct profile {
    bool job_env;      /* HOME=/tmp, LANG=C.UTF-8 in the container (else the image's) */
    bool cpu_limit;    /* NanoCpus from the limits (else no CPU limit) */
    bool shm_limit;    /* /dev/shm of SANDBOX_SHM_SIZE (else the engine's default) */
    bool tmpfs_limits; /* nr_inodes and modes on both tmpfs, /tmp of ENVHUB_TMP_SIZE */
    bool cfg_work_dir; /* the workspace at WORK_DIR (else at /workspace) */
} profiles[] = {
    [SANDBOX_JOB] = {.job_env = true,
                     .cpu_limit = true,
                     .shm_limit = true,
                     .tmpfs_limits = true,
                     .cfg_work_dir = true},
    [SANDBOX_ACCEPTANCE] = {.cpu_limit = true,
                            .shm_limit = true,
                            .tmpfs_limits = true,
                            .cfg_work_dir = true},
    [SANDBOX_VERIFICATION] = {0},
};

void sandbox_spec_fill(const struct config *cfg, const char *image, const struct sandbox_limits *l,
                       const struct sandbox_labels *labels, enum sandbox_purpose purpose,
                       struct sandbox_spec *ret)
{
    static const char *const entrypoint[] = {"sleep", NULL};
    static const char *const cmd[] = {"infinity", NULL};
    static const char *const env[] = {"HOME=/tmp", "LANG=C.UTF-8", NULL};
    const struct profile *p = &profiles[purpose];
    struct engine_container_spec *s = &ret->spec;
    const char *work_dir = p->cfg_work_dir ? cfg->work_dir : VERIFY_WORK_DIR;

    memset(ret, 0, sizeof(*ret));
    if (p->tmpfs_limits) {
        snprintf(ret->workspace_opts, sizeof(ret->workspace_opts),
                 "rw,nosuid,nodev,size=%lld,nr_inodes=%lld,uid=1000,gid=1000,mode=0755",
                 (long long)l->workspace_size, (long long)cfg->tmpfs_inodes);
        snprintf(ret->tmp_opts, sizeof(ret->tmp_opts),
                 "rw,nosuid,nodev,size=%lld,nr_inodes=%lld,mode=1777", (long long)cfg->tmp_size,
                 (long long)cfg->tmpfs_inodes);
    } else {
        snprintf(ret->workspace_opts, sizeof(ret->workspace_opts),
                 "rw,nosuid,nodev,size=%lld,uid=1000,gid=1000", (long long)l->workspace_size);
        snprintf(ret->tmp_opts, sizeof(ret->tmp_opts), "%s", VERIFY_TMP_OPTS);
    }
    ret->tmpfs[0] = (struct engine_tmpfs){work_dir, ret->workspace_opts};
    ret->tmpfs[1] = (struct engine_tmpfs){"/tmp", ret->tmp_opts};
    s->image = image;
    s->entrypoint = entrypoint;
    s->cmd = cmd;
    s->env = p->job_env ? env : NULL;
    s->user = SANDBOX_USER;
    s->working_dir = work_dir;
    s->labels = sandbox_labels_list(labels, &s->n_labels);
    s->tmpfs = ret->tmpfs;
    s->n_tmpfs = 2;
    s->memory_bytes = l->memory;
    s->nano_cpus = p->cpu_limit ? l->cpu_millis * 1000000 : 0;
    s->pids_limit = l->pids;
    s->shm_size = p->shm_limit ? SANDBOX_SHM_SIZE : 0;
    s->network_mode = l->network ? "bridge" : "none";
    /* no network stack at all: also halves the container's start */
    s->network_disabled = !l->network;
    s->read_only_rootfs = true;
    s->cap_drop_all = true;
    s->no_new_privileges = true;
    s->log_driver_none = true;
    s->runtime = l->gvisor && purpose != SANDBOX_VERIFICATION ? "runsc" : NULL;
}

#define IMAGE_CHECK_VOLUMES_SHOWN 4

int sandbox_image_check(const char *ref, const struct engine_image_info *info, struct err *err)
{
    _cleanup_(buf_release) struct buf list = BUF_INIT(BUF_UNLIMITED);
    size_t n = info->volumes ? strv_length(info->volumes) : 0;

    if (n == 0)
        return 0;
    for (size_t i = 0; i < n && i < IMAGE_CHECK_VOLUMES_SHOWN; i++) {
        _cleanup_free_ char *path = utf8_escape(info->volumes[i], strlen(info->volumes[i]));
        buf_putf(&list, "%s%s", i ? ", " : "", path);
    }
    if (n > IMAGE_CHECK_VOLUMES_SHOWN)
        buf_putf(&list, " and %zu more", n - IMAGE_CHECK_VOLUMES_SHOWN);
    _cleanup_free_ char *name = utf8_escape(ref, strlen(ref));
    return err_set(err, ERR_INVALID,
                   "image '%s' declares VOLUME %s: a volume is a writable directory on the host's "
                   "disk, outside the sandbox's read-only root and its size limits, so envhub "
                   "runs nothing in it; use a base image without VOLUME",
                   name, buf_str(&list));
}

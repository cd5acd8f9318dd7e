/* engine/engine.h - a Docker Engine API client over the engine's unix socket.
 *
 * libcurl speaks HTTP on the socket, jansson reads and writes the JSON. The
 * API version is negotiated once at engine_open(): the engine's own version,
 * capped at ENGINE_API_MAX, and refused below ENGINE_API_MIN (1.41, Docker
 * 20.10). Errors carry the engine's own message ("No such container: ...")
 * with code ERR_NOT_FOUND for its 404, ERR_CONFLICT for 409, ERR_ENGINE for
 * anything else it refuses, ERR_UNAVAILABLE when the socket does not answer.
 *
 * One struct engine is shared by all threads: every call uses its own
 * connection, so calls may run concurrently. Nothing else in envhub talks to
 * the engine. */
#ifndef ENVHUB_ENGINE_H
#define ENVHUB_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define ENGINE_API_MIN "1.41"
#define ENGINE_API_MAX "1.43"

struct engine;

/* Connect to the engine at @host ("unix:///var/run/docker.sock") and
 * negotiate the API version. *ret belongs to the caller: engine_close() it. */
int engine_open(const char *host, struct engine **ret, struct err *err);
void engine_close(struct engine *e); /* NULL is fine */
/* "1.41": the version every request uses. */
const char *engine_api_version(const struct engine *e);
/* GET /_ping: 0 when the engine answers. */
int engine_ping(struct engine *e, struct err *err);

/* ---- containers ---- */

struct engine_label {
    const char *key, *value;
};

struct engine_tmpfs {
    const char *path; /* mount point, e.g. "/workspace" */
    const char
        *options; /* "rw,nosuid,nodev,size=67108864,nr_inodes=8192,uid=1000,gid=1000,mode=0700" */
};

/* What a container is made of; every pointer is borrowed for the call. */
struct engine_container_spec {
    const char *image;
    const char *const *entrypoint; /* NULL-terminated; NULL: the image's */
    const char *const *cmd;        /* NULL-terminated argv; NULL: the image's */
    const char *const *env;        /* NULL-terminated "K=V"; may be NULL */
    const char *user;              /* "1000:1000"; NULL: the image's */
    const char *working_dir;       /* NULL: the image's */
    const struct engine_label *labels;
    size_t n_labels;
    const struct engine_tmpfs *tmpfs;
    size_t n_tmpfs;
    int64_t memory_bytes;     /* 0: no limit; swap is always limited to the same */
    int64_t nano_cpus;        /* 0: no limit */
    int64_t pids_limit;       /* 0: no limit */
    int64_t shm_size;         /* 0: the engine's default */
    const char *network_mode; /* "none", "bridge"; NULL: the engine's default */
    bool network_disabled;    /* no network stack at all (faster start) */
    bool read_only_rootfs;
    bool cap_drop_all;
    bool no_new_privileges;
    bool log_driver_none;
    bool open_stdin;     /* stdin kept open for attach (OpenStdin, not StdinOnce) */
    const char *runtime; /* "runsc" (gVisor); NULL: the engine's default (runc) */
    bool auto_remove;
};

/* POST /containers/create. *ret_id (64 hex characters) belongs to the caller. */
int engine_container_create(struct engine *e, const struct engine_container_spec *spec,
                            char **ret_id, struct err *err);
int engine_container_start(struct engine *e, const char *id, struct err *err);
/* SIGKILL; a container that is not running is not an error. */
int engine_container_kill(struct engine *e, const char *id, struct err *err);
/* DELETE with force (kills first) and its anonymous volumes; a container
 * that is already gone is not an error. */
int engine_container_remove(struct engine *e, const char *id, struct err *err);

struct engine_container_state {
    bool running;
    bool oom_killed;
    int exit_code;
    char image_id[80]; /* "sha256:..." the container runs */
    char status[16];   /* "created", "running", "exited", ... */
};
int engine_container_inspect(struct engine *e, const char *id, struct engine_container_state *ret,
                             struct err *err);

/* Ids (NULL-terminated array, strv_free() it) of all containers, running or
 * not, carrying label @key=@value (or just @key when @value is NULL). */
int engine_container_list(struct engine *e, const char *key, const char *value, char ***ret_ids,
                          struct err *err);

/* ---- exec ---- */

enum engine_stream { ENGINE_STDIN = 0, ENGINE_STDOUT = 1, ENGINE_STDERR = 2 };

/* Output sink: called for each chunk of the exec's stdout or stderr, in
 * order. Return 0 to go on, -1 to stop reading (the exec is abandoned). */
typedef int (*engine_output_fn)(void *ctx, enum engine_stream stream, const char *data, size_t len);

struct engine_exec_spec {
    const char *const *cmd; /* NULL-terminated argv */
    const char *const *env; /* may be NULL */
    const char *user;       /* NULL: the container's */
    const char *working_dir;
    const void *stdin_data; /* written to the process's stdin, then EOF; NULL: no stdin */
    size_t stdin_len;
    engine_output_fn output;
    void *output_ctx;
    int64_t deadline_ms; /* time_mono_ms() deadline; 0: none */
};

struct engine_exec_result {
    int exit_code;          /* -1 when the exec did not finish (deadline, stopped); the
                             * container's when it stopped under the exec */
    bool timed_out;         /* the deadline passed before the output ended */
    bool stopped;           /* the output callback asked to stop */
    bool container_stopped; /* the container itself ended (e.g. killed out of memory) */
};

/* Create an exec in running container @id, start it on a hijacked
 * connection, stream stdin in and demultiplexed stdout/stderr out, then read
 * its exit code. While the output is quiet the container is looked at every
 * ENGINE_EXEC_WATCH_MS: when it has stopped, the exec ends there (under
 * gVisor a container killed out of memory leaves an exec's stream open). Returns 0 when the exec
 * ran (whatever its exit code, also on deadline or stop: see *ret); -1 when the engine failed. */
int engine_exec(struct engine *e, const char *id, const struct engine_exec_spec *spec,
                struct engine_exec_result *ret, struct err *err);

/* ---- attach: a conversation with a container's main process ---- */

/* A hijacked connection to a container's stdin, stdout and stderr
 * (OpenStdin containers): what is sent reaches the main process's stdin,
 * which stays open when the connection closes. */
struct engine_conn;

struct engine_read_result {
    int exit_code;          /* the container's, when it stopped under the read; else -1 */
    bool paused;            /* the output callback returned 1 */
    bool stopped;           /* it returned -1 */
    bool ended;             /* the stream ended (the process closed its output, or exited) */
    bool timed_out;         /* the deadline passed */
    bool container_stopped; /* the container ended while the stream stayed open */
};

/* POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1 on a
 * connection of its own; *ret is the caller's: engine_conn_close() it. */
int engine_attach(struct engine *e, const char *id, int64_t deadline_ms, struct engine_conn **ret,
                  struct err *err);
/* Write all of @data to the process's stdin by @deadline_ms (0: none). */
int engine_conn_send(struct engine_conn *c, const void *data, size_t len, int64_t deadline_ms,
                     struct err *err);
/* Read the demultiplexed output into @fn until it returns 1 (a pause: the
 * rest of the bytes already received is still fed to it first) or -1, the
 * stream ends, the container stops, or the deadline passes: *ret says which.
 * -1 only when the engine failed. Watches a quiet container like
 * engine_exec(). */
int engine_conn_read(struct engine_conn *c, engine_output_fn fn, void *ctx, int64_t deadline_ms,
                     struct engine_read_result *ret, struct err *err);
void engine_conn_close(struct engine_conn *c); /* NULL is fine */

/* ---- the multiplexed stream (pure, for the exec reader and tests) ---- */

/* Incremental demultiplexer of Docker's 8-byte-header stream: byte 0 the
 * stream (1 stdout, 2 stderr), bytes 4..7 the big-endian payload length. */
struct engine_demux {
    unsigned char header[8];
    size_t header_len;
    uint32_t remaining;
    enum engine_stream stream;
};
void engine_demux_init(struct engine_demux *d);
/* Feed bytes; calls @fn for each payload piece. Returns 0, -1 when the stream
 * is malformed (*ret_why says how), or the callback's -1 (ret_why NULL). */
int engine_demux_feed(struct engine_demux *d, const char *data, size_t len, engine_output_fn fn,
                      void *ctx, const char **ret_why);

/* ---- images ---- */

struct engine_image_info {
    char *id; /* "sha256:..." */
    int64_t size;
    char *created;  /* ISO 8601 as the engine says */
    char **volumes; /* Config.Volumes: the paths its VOLUMEs declare, NULL-terminated; NULL: none */
};
void engine_image_info_release(struct engine_image_info *info);
/* GET /images/{ref}/json; ERR_NOT_FOUND when the image is not local. */
int engine_image_inspect(struct engine *e, const char *ref, struct engine_image_info *ret,
                         struct err *err);
/* POST /images/create?fromSrc=- with the root filesystem tar read from fd,
 * tagged @ref ("repo:tag"); @changes are Dockerfile lines (CMD, ENV, ...). */
int engine_image_import(struct engine *e, int fd, const char *ref, const char *const *changes,
                        struct err *err);
/* DELETE /images/{ref}; a missing image is not an error. */
int engine_image_remove(struct engine *e, const char *ref, bool force, struct err *err);

/* ---- image builds and pulls ---- */

/* Called with each complete line of a build's or pull's output (no newline).
 * Return 0 to go on, -1 to cancel. */
typedef int (*engine_line_fn)(void *ctx, const char *line);

struct engine_build_spec {
    const void *context; /* the build context, a tar */
    size_t context_len;
    const char *tag; /* "repo:tag" the image gets */
    const struct engine_label *labels;
    size_t n_labels;
    int64_t memory_bytes;      /* per build step; 0: no limit */
    int64_t nano_cpus;         /* 0: no limit */
    const char *cgroup_parent; /* NULL: the engine's default */
    int64_t deadline_ms;       /* time_mono_ms() deadline; 0: none */
    engine_line_fn on_line;
    /* polled about once a second, even while the build prints nothing:
     * true cancels the build (may be NULL) */
    bool (*cancelled)(void *ctx);
    void *ctx;
};

/* POST /build (classic builder, intermediate containers always removed).
 * Streams the output to on_line; *ret_image_id ("sha256:...") belongs to the
 * caller. A failing step is ERR_INVALID with the engine's message; the
 * deadline ERR_TIMEOUT; on_line's -1 ERR_CANCELLED. */
int engine_image_build(struct engine *e, const struct engine_build_spec *spec, char **ret_image_id,
                       struct err *err);
/* POST /images/create?fromImage: pull @ref from its registry, progress to
 * on_line (may be NULL). */
int engine_image_pull(struct engine *e, const char *ref, engine_line_fn on_line, void *ctx,
                      struct err *err);
/* POST /images/{repo}/push?tag=: push @ref ("registry:port/repo:tag") to its
 * registry, progress to on_line (may be NULL); *ret_digest ("sha256:<64
 * hex>", the manifest's digest the registry answered) belongs to the caller. */
int engine_image_push(struct engine *e, const char *ref, engine_line_fn on_line, void *ctx,
                      char **ret_digest, struct err *err);
/* DELETE http://@registry/v2/@repo/manifests/@digest on a registry served
 * over plain HTTP (a loopback one): the manifest and its tags go; a manifest
 * already gone is not an error. */
int engine_registry_delete(const char *registry, const char *repo, const char *digest,
                           struct err *err);
/* "sha256:" and 64 lower-case hex digits. */
bool engine_digest_valid(const char *digest);
/* Give image @source (id or reference) the reference @ref ("repo:tag"). */
int engine_image_tag(struct engine *e, const char *source, const char *ref, struct err *err);

struct engine_info {
    char cgroup_driver[16]; /* "cgroupfs", "systemd" */
    char cgroup_version[4]; /* "1", "2" */
};
/* GET /info. */
int engine_info(struct engine *e, struct engine_info *ret, struct err *err);

/* Incremental reader of the engine's progress stream (JSON objects, one per
 * line, as /build and /images/create answer): "stream" text is split into
 * lines for on_line, {"aux": {"ID"}} gives the image id, {"error"} the
 * failure. Pure, for tests. */
struct engine_progress {
    struct buf partial; /* an unfinished JSON line */
    struct buf text;    /* "stream" text not yet ended by a newline */
    char image_id[80];
    char digest[80]; /* {"aux": {"Digest"}} of a push */
    char error[ERR_MSG_MAX];
    engine_line_fn on_line;
    void *ctx;
    bool cancelled;
};
void engine_progress_init(struct engine_progress *p, engine_line_fn on_line, void *ctx);
/* Returns -1 when on_line asked to cancel. */
int engine_progress_feed(struct engine_progress *p, const char *data, size_t len);
/* Flush what is left (a last line without newline). */
void engine_progress_finish(struct engine_progress *p);
void engine_progress_release(struct engine_progress *p);

/* ---- parsers (pure, fed by fixtures in tests) ---- */

/* The engine's error body {"message": "..."} -> its message; the first line
 * of the raw body when it is not JSON. Always a new string: the caller frees. */
char *engine_parse_error_message(const char *body, size_t len);
int engine_parse_container_state(const char *json, struct engine_container_state *ret,
                                 struct err *err);
int engine_parse_image_info(const char *json, struct engine_image_info *ret, struct err *err);
/* "1.43" vs "1.41": <0, 0, >0 like strcmp, numerically. */
int engine_version_compare(const char *a, const char *b);

#endif

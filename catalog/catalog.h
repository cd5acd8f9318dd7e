/* catalog/catalog.h - envhub's SQLite catalog: environments, builds and every
 * execution. The only module that speaks SQL.
 *
 * catalog_open() opens (creating if missing) the database in WAL mode with a
 * busy timeout and foreign keys on, then applies the migrations compiled
 * into the binary (migrations/NNNN_name.sql, in order, each in its own
 * transaction, recorded in schema_migrations).
 *
 * One struct catalog is shared by all threads: it serialises writes inside,
 * on one connection; the history's reads (lists, searches, statistics,
 * exports) run on read-only connections of their own, beside the writer.
 * Times are milliseconds since the epoch (UTC). Strings returned in structs
 * belong to the struct; the matching _release() frees them.
 *
 * The sections below follow the files that implement them: catalog.c,
 * executions.c, environments.c, packages.c, keys.c, history.c, stats.c,
 * chain.c and verify.c (the audit chain), storage.c, sessions.c, callbacks.c. */
#ifndef ENVHUB_CATALOG_H
#define ENVHUB_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct catalog;

/* ---- opening (catalog/catalog.c) ---- */

/* Open @path (":memory:" works) and migrate it. *ret belongs to the caller.
 * ERR_UNAVAILABLE when the file cannot be opened or is locked, ERR_INTERNAL
 * when a migration fails (its name and SQLite's message in err). */
int catalog_open(const char *path, struct catalog **ret, struct err *err);
void catalog_close(struct catalog *cat); /* NULL is fine */
static inline void catalog_closep(struct catalog **cat)
{
    catalog_close(*cat);
}

/* The time budget of each history query (list, search, get, statistics,
 * an export's batch) in milliseconds, 0 for none (the default): a query
 * past it is stopped and fails with ERR_UNPROCESSABLE, whose message names
 * ENVHUB_QUERY_BUDGET_MS and asks for a narrower filter. Thread-safe; it
 * applies to queries that begin after it. */
void catalog_set_query_budget(struct catalog *cat, int64_t ms);

/* The highest migration applied. */
int catalog_schema_version(struct catalog *cat, int *ret, struct err *err);
/* A random id made when the catalog was created, stable across restarts:
 * containers carry it as a label so a restarted server knows its own.
 * Borrowed until catalog_close(). */
const char *catalog_instance_id(const struct catalog *cat);

/* ---- executions (catalog/executions.c) ---- */

enum exec_status {
    EXEC_QUEUED = 0,
    EXEC_RUNNING,
    EXEC_SUCCEEDED,
    EXEC_FAILED,
    EXEC_TIMEOUT,
    EXEC_OOM,
    EXEC_ERROR,
    EXEC_INTERRUPTED,
};
const char *exec_status_name(enum exec_status s);
/* -1 when @name is not a status. */
int exec_status_parse(const char *name);

/* An input file, an output file, or a picture the code showed (its
 * matplotlib figures: the answer's `display`). */
enum file_direction { FILE_IN = 0, FILE_OUT = 1, FILE_DISPLAY = 2 };
/* "in", "out" or "display", as the catalog stores it. */
const char *file_direction_name(enum file_direction d);

struct file_entry {
    enum file_direction direction;
    char *path; /* relative to the workspace */
    int64_t size;
    char sha256[65];
};

struct execution_record {
    char *id;                    /* "ex_" + 24 hex characters */
    char *environment;           /* NULL: the default image */
    int64_t environment_version; /* 0 when no environment */
    char *image;                 /* the image reference used */
    char *image_id;              /* "sha256:..." or NULL when not known */
    char *session_id;            /* the session the call belongs to, NULL when none */
    char *node;      /* cluster mode: the node it was leased to; NULL: this server's engine */
    char *limits;    /* JSON: the limits it ran with; NULL when unknown */
    char *warning;   /* the deprecation notice it got (read back only); NULL: none */
    char *principal; /* who ran it */
    char *client_addr;
    char *code;
    char code_sha256[65];
    int64_t timeout_s;
    enum exec_status status;
    int exit_code;                              /* -1 when none */
    char *error;                                /* NULL when none */
    int64_t queued_at, started_at, finished_at; /* 0 when not yet */
    int64_t duration_ms;                        /* of the user's code; -1 when it did not run */
    /* The job's output as stored (capped): UTF-8 that may hold NUL and other
     * control bytes, so each goes with its length in bytes. Reads fill the
     * lengths; on a write, a length of 0 with a non-empty string stands for
     * strlen() (text without NUL needs none). NULL is stored as "". */
    char *stdout_text;
    size_t stdout_len;
    char *stderr_text;
    size_t stderr_len;
    bool stdout_truncated, stderr_truncated;
    struct file_entry *files;
    size_t n_files;
    /* Retention (read back by catalog_history_get only): when the output was
     * dropped (0: it was not), and the sha256 and size in bytes of stdout and
     * stderr as they were stored, whether still held or dropped. */
    int64_t output_pruned_at;
    char stdout_sha256[65], stderr_sha256[65];
    int64_t stdout_size, stderr_size;
};
void execution_record_release(struct execution_record *rec);

/* Insert a new execution (status queued or running) with its input file
 * manifest. @rec's id must be unique (ERR_CONFLICT otherwise). */
int catalog_execution_insert(struct catalog *cat, const struct execution_record *rec,
                             struct err *err);
/* Record the outcome: status, exit code, error, times, duration, stdout and
 * stderr with their truncation flags, image id, and the output files of
 * @rec (those with direction FILE_OUT) and its pictures (FILE_DISPLAY), in
 * one transaction, which also adds the final row to the audit chain (see
 * "the audit chain" below). ERR_CONFLICT when the row is sealed in the chain
 * already. A catalog busy past its busy timeout (another connection holds
 * the write lock) is tried again, a few times with a growing pause; then
 * ERR_UNAVAILABLE says how often. */
int catalog_execution_finish(struct catalog *cat, const struct execution_record *rec,
                             struct err *err);
/* Mark one execution running with its start time. */
int catalog_execution_start(struct catalog *cat, const char *id, int64_t started_at,
                            struct err *err);
/* Fill *ret with execution @id and its file manifest; ERR_NOT_FOUND. */
int catalog_execution_get(struct catalog *cat, const char *id, struct execution_record *ret,
                          struct err *err);
/* Start-up recovery: every execution still queued or running was cut off by
 * a stop; mark them interrupted at @now. *ret_count says how many. In the
 * same transaction, every final execution not yet in the audit chain (those,
 * and those of a catalog from before the chain) joins it, in seq order. */
int catalog_recover_executions(struct catalog *cat, int64_t now, int *ret_count, struct err *err);
/* Number of executions (all statuses). */
int catalog_execution_count(struct catalog *cat, int64_t *ret, struct err *err);
/* For benchmarks and tests: insert @n final executions (status, outcome,
 * input and output files from each record) in one transaction, each joining
 * the chain in order. ERR_INVALID when one is not final. */
int catalog_history_seed(struct catalog *cat, const struct execution_record *recs, size_t n,
                         struct err *err);

/* ---- environments, builds, logs (catalog/environments.c) ---- */

/* An environment is a name with a definition (base image, setup script,
 * Python version) and a version in service; every build of it is a numbered
 * version (1, 2, ...). A build that fails never takes a ready version out of
 * service: the environment keeps serving it and records the error. */

enum env_status { ENV_BUILDING = 0, ENV_READY, ENV_FAILED };
/* "building", "ready", "failed"; "unknown" for anything else. */
const char *env_status_name(enum env_status s);

/* Curators' lifecycle of an environment, beside its build status: active ->
 * deprecated (still runnable; executions carry a warning) -> retired (not
 * runnable; its images are removed after a grace period; history kept). */
enum env_lifecycle { ENV_ACTIVE = 0, ENV_DEPRECATED, ENV_RETIRED };
/* "active", "deprecated", "retired"; "unknown" for anything else. */
const char *env_lifecycle_name(enum env_lifecycle l);
/* -1 when @name is not a state. */
int env_lifecycle_parse(const char *name);

struct env_record {
    char *name;
    char *description;
    char *base_image;
    char *setup_script;
    char *python_version;
    enum env_status status; /* building and failed only while no version is ready */
    int64_t version;        /* in service; 0 when none is ready yet */
    char *image;            /* docker image of that version, NULL when none */
    char *image_id;         /* NULL when none */
    char *definition;       /* sha256 of that version's definition, NULL when none */
    char *error;            /* the last failed build's error, NULL when none */
    int64_t created_at, updated_at;
    int64_t last_used; /* 0: never */
    char *created_by;
    /* Filled by the get/list calls: the newest build, whatever its status;
     * 0 and NULL when the environment has no build. */
    int64_t latest_version;
    char *latest_status; /* "queued", "building", "ready", "failed", "cancelled" */
    char *policy;        /* JSON object: the policy of the version in service (or asked for) */
    /* curation (migration 0008) */
    char *test_script; /* the acceptance check (python); NULL: the default import check */
    enum env_lifecycle lifecycle;
    char *replacement;    /* the environment to use instead; NULL when none */
    int64_t lifecycle_at; /* when the lifecycle state last changed; 0: never */
    char *lifecycle_by;
    char *warning; /* what its executions carry (deprecated, retired); NULL when active */
    int64_t images_removed_at; /* retired and its images removed; 0: not */
    char *base_image_id;       /* the base image id the version in service was built on */
    int64_t drift_checked_at;  /* the last drift check; 0: never */
    char *drift_image_id;      /* what base_image resolved to then; NULL: not in the engine */
    char *registry_image;      /* the version in service in ENVHUB_REGISTRY; NULL: not pushed */
};
/* Free the strings and zero *env; NULL and a zeroed record are fine. */
void env_record_release(struct env_record *env);
/* Release @n records and free the array; NULL is fine. */
void env_records_free(struct env_record *envs, size_t n);

enum build_status { BUILD_QUEUED = 0, BUILD_BUILDING, BUILD_READY, BUILD_FAILED, BUILD_CANCELLED };
/* "queued", "building", "ready", "failed", "cancelled"; "unknown" for anything else. */
const char *build_status_name(enum build_status s);
/* -1 when @name is not a status. */
int build_status_parse(const char *name);

struct build_record {
    int64_t id;
    char *environment;
    int64_t version;
    enum build_status status;
    char *base_image;
    char *setup_script;
    char *python_version;
    char *definition;    /* sha256 of the definition, as the builder computes it */
    char *image;         /* the tag this version gets */
    char *image_id;      /* NULL until built */
    char *base_image_id; /* NULL until built */
    char *python_found;  /* "Python 3.11.2" from the verification run, NULL until built */
    bool cache_hit;      /* the image of an identical definition was reused */
    char *error;         /* NULL unless failed or cancelled */
    int64_t queued_at, started_at, finished_at; /* 0 when not yet */
    char *created_by;
    int64_t log_lines; /* filled by the get/list calls: lines in its log */
    char *policy;      /* JSON object: limits, network, pool, recycling of this version */
    char *test_script; /* the acceptance check (python); NULL: the default import check */
    /* pushed to ENVHUB_REGISTRY: "host:port/repo@sha256:..."; NULL: not pushed */
    char *registry_image;
};
/* Free the strings and zero *b; NULL and a zeroed record are fine. */
void build_record_release(struct build_record *b);
/* Release @n records and free the array; NULL is fine. */
void build_records_free(struct build_record *b, size_t n);

/* One installed package of a build, from the verification run. */
struct package_entry {
    char *manager; /* "pip" or "dpkg" */
    char *name;
    char *version;
};
/* Free @n entries' strings and the array; NULL is fine. */
void package_entries_free(struct package_entry *p, size_t n);

/* Create environment @env->name (status building, version 0, no image,
 * created_at = updated_at = env->created_at; description, base_image,
 * setup_script, python_version, created_by, policy and test_script from
 * @env, its other fields ignored) and its first build (version 1, status queued, base_image,
 * setup_script, python_version, definition, image, queued_at and created_by
 * from @build, which belongs to @env whatever build->environment says), in
 * one transaction. Sets build->id and build->version (1).
 * Records the environment.create event (by env->created_by, at
 * env->created_at, no detail) in the same transaction.
 * ERR_CONFLICT when the name exists, whatever its case; ERR_INVALID when a
 * required field (a name, base_image, setup_script, python_version,
 * definition, image) is NULL. */
int catalog_env_create(struct catalog *cat, const struct env_record *env,
                       struct build_record *build, struct err *err);
/* Queue the next version (the highest of its builds + 1) of environment
 * build->environment, with @build's base_image, setup_script,
 * python_version, definition, image, queued_at, created_by, policy and
 * test_script ("" stored as none); sets
 * build->id and build->version. The environment's status becomes building
 * when no version is ready (a ready one keeps serving); updated_at =
 * build->queued_at. ERR_NOT_FOUND when the environment does not exist (exact
 * case); ERR_CONFLICT when a build of it is already queued or building;
 * ERR_INVALID as for catalog_env_create. With @event, the environment.rebuild
 * event ("version N", by build->created_by at build->queued_at) is recorded
 * in the same transaction; without, the build is part of a change whose own
 * event covers it (a reinstated environment's images rebuilt). */
int catalog_env_queue_build(struct catalog *cat, struct build_record *build, bool event,
                            struct err *err);
/* Fill *ret with environment @name (exact case); ERR_NOT_FOUND. */
int catalog_env_get(struct catalog *cat, const char *name, struct env_record *ret, struct err *err);
/* All environments, ordered by name; *ret (NULL when there is none) belongs
 * to the caller: env_records_free(*ret, *ret_n). */
int catalog_env_list(struct catalog *cat, struct env_record **ret, size_t *ret_n, struct err *err);
/* Delete environment @name with its builds, their logs and package
 * inventories, and record the environment.delete event (by @by, at @at) in
 * the same transaction; executions keep their rows. ERR_NOT_FOUND. */
int catalog_env_delete(struct catalog *cat, const char *name, int64_t at, const char *by,
                       struct err *err);
/* last_used = @at. ERR_NOT_FOUND. */
int catalog_env_touch(struct catalog *cat, const char *name, int64_t at, struct err *err);

/* builds */

/* Fill *ret with version @version of @environment; ERR_NOT_FOUND. */
int catalog_build_get(struct catalog *cat, const char *environment, int64_t version,
                      struct build_record *ret, struct err *err);
/* Fill *ret with build @id; ERR_NOT_FOUND. */
int catalog_build_get_by_id(struct catalog *cat, int64_t id, struct build_record *ret,
                            struct err *err);
/* Builds of @environment, newest version first; none (*ret NULL, *ret_n 0)
 * when it has none or does not exist. The caller frees them with
 * build_records_free(*ret, *ret_n). */
int catalog_build_list(struct catalog *cat, const char *environment, struct build_record **ret,
                       size_t *ret_n, struct err *err);
/* Builds in status queued or building, oldest first (by id), for start-up
 * recovery and the build queue. As catalog_build_list. */
int catalog_build_list_unfinished(struct catalog *cat, struct build_record **ret, size_t *ret_n,
                                  struct err *err);
/* queued -> building, started_at = @at. ERR_NOT_FOUND; ERR_CONFLICT when
 * the build is not queued. */
int catalog_build_start(struct catalog *cat, int64_t id, int64_t at, struct err *err);
/* queued or building -> queued, started_at cleared, its log kept (after a
 * restart). ERR_NOT_FOUND; ERR_CONFLICT when the build has finished. */
int catalog_build_requeue(struct catalog *cat, int64_t id, struct err *err);
/* Fill *ret with the newest ready build with this definition (any
 * environment); ERR_NOT_FOUND when none. Whether its image still exists is
 * for the caller to check. */
int catalog_build_find_ready_by_definition(struct catalog *cat, const char *definition,
                                           struct build_record *ret, struct err *err);
/* Finish build @b->id as ready, in one transaction: the build gets status
 * ready, b's image_id, base_image_id, python_found, cache_hit and
 * finished_at, and no error; its package inventory is @pkgs (a package
 * listed twice keeps its last version); and, unless the environment already
 * serves a newer version, the build's version goes into service: the
 * environment gets status ready, the build's version, image, definition,
 * base_image, setup_script, python_version, policy and test_script,
 * b->image_id, no error, no images_removed_at, and updated_at = b->finished_at. The environment,
 * version, image and definition are those stored with the build; the other fields of @b are not
 * read. ERR_NOT_FOUND when the build does not exist (its environment was deleted); ERR_CONFLICT
 * when it is not queued or building. */
int catalog_build_succeed(struct catalog *cat, const struct build_record *b,
                          const struct package_entry *pkgs, size_t n_pkgs, struct err *err);
/* Finish build @id with @status (BUILD_FAILED or BUILD_CANCELLED, else
 * ERR_INVALID), @error and finished_at = @at, in one transaction. Its
 * environment records the error (updated_at = @at); its status becomes
 * failed when no version is ready, and a ready version keeps serving.
 * ERR_NOT_FOUND; ERR_CONFLICT when the build is not queued or building. */
int catalog_build_fail(struct catalog *cat, int64_t id, enum build_status status, const char *error,
                       int64_t at, struct err *err);

/* build logs and package inventories */

struct log_line {
    int64_t seq; /* 1, 2, ... within its build */
    int64_t at;
    char *line;
};
/* Free @n lines' strings and the array; NULL is fine. */
void log_lines_free(struct log_line *lines, size_t n);

/* Append @line (stored as given; NULL is "") to build @id's log, numbered
 * one past its last line (the first is 1); *ret_seq (optional) gets that
 * number. ERR_NOT_FOUND when the build does not exist. */
int catalog_build_log_append(struct catalog *cat, int64_t id, int64_t at, const char *line,
                             int64_t *ret_seq, struct err *err);
/* Lines of build @id with seq > @after, at most @limit of them, in order;
 * the caller frees them with log_lines_free(*ret, *ret_n). None (*ret NULL,
 * *ret_n 0) when there are no more, also when the build does not exist (a
 * follower tells a deleted build with catalog_build_get_by_id). */
int catalog_build_log_read(struct catalog *cat, int64_t id, int64_t after, size_t limit,
                           struct log_line **ret, size_t *ret_n, struct err *err);

/* The package inventory of build @id, by manager, then name; the caller
 * frees it with package_entries_free(*ret, *ret_n). Empty (*ret NULL) when
 * the build has none or does not exist. */
int catalog_build_packages(struct catalog *cat, int64_t id, struct package_entry **ret,
                           size_t *ret_n, struct err *err);

/* curation: lifecycle, drift, usage */

/* Set @name's lifecycle state, replacement (NULL: none), warning (NULL: none),
 * lifecycle_at = @at and lifecycle_by = @by, and record the event
 * environment.reinstate, .deprecate or .retire (detail "replacement NAME"
 * when there is one) in the same transaction. ERR_NOT_FOUND. */
int catalog_env_set_lifecycle(struct catalog *cat, const char *name, enum env_lifecycle state,
                              const char *replacement, const char *warning, int64_t at,
                              const char *by, struct err *err);
/* A retired environment's images are gone: images_removed_at = @at. */
int catalog_env_mark_images_removed(struct catalog *cat, const char *name, int64_t at,
                                    struct err *err);
/* Record a drift check of @name at @at: its base image reference resolved to
 * @image_id (NULL: it is not in the engine). ERR_NOT_FOUND. */
int catalog_env_set_drift(struct catalog *cat, const char *name, int64_t at, const char *image_id,
                          struct err *err);

/* Executions of @name recorded in the last 7, 30 and 90 days before @now
 * (ret[0], ret[1], ret[2]): seeks on the recorded_at and environment
 * indexes, then counts index entries of the 90-day window only. */
int catalog_env_runs(struct catalog *cat, const char *name, int64_t now, int64_t ret[3],
                     struct err *err);

/* ---- package queries (catalog/packages.c) ---- */

/* One ready build carrying a package. */
struct package_hit {
    char *environment;
    int64_t environment_version;
    bool in_service; /* that version is the environment's version in service */
    enum env_lifecycle lifecycle;
    char *manager, *name, *version;
};
void package_hits_free(struct package_hit *h, size_t n); /* NULL is fine */
/* Ready builds carrying package @name (compared as pip compares names: case
 * and '_', '.' against '-' do not matter), of @manager ("pip", "dpkg", NULL:
 * both), ordered by environment, version (newest first), manager. */
int catalog_packages_find(struct catalog *cat, const char *name, const char *manager,
                          struct package_hit **ret, size_t *ret_n, struct err *err);

/* ---- API keys and change events (catalog/keys.c) ---- */

enum role { ROLE_ADMIN = 0, ROLE_CURATOR, ROLE_RUNNER, ROLE_AUDITOR };
const char *role_name(enum role r);
int role_parse(const char *name); /* -1 when unknown (or NULL) */

struct key_record {
    char *id; /* the public part of the secret */
    char *name;
    enum role role;
    char *secret_sha256; /* hex; the secret itself is never stored */
    int64_t created_at;
    char *created_by;
    int64_t revoked_at; /* 0: active */
    char *revoked_by;
    int64_t max_concurrent; /* -1: the role's default */
    int64_t max_per_minute; /* -1: the role's default */
};
void key_record_release(struct key_record *k);
void key_records_free(struct key_record *k, size_t n);

/* Store a new key and its key.create event in one transaction. ERR_CONFLICT
 * when the name (or id) exists, revoked or not. */
int catalog_key_create(struct catalog *cat, const struct key_record *key, struct err *err);
/* The key with public id @id, revoked or not; ERR_NOT_FOUND. */
int catalog_key_get(struct catalog *cat, const char *id, struct key_record *ret, struct err *err);
/* Every key, by name. */
int catalog_key_list(struct catalog *cat, struct key_record **ret, size_t *ret_n, struct err *err);
/* Revoke key @name at @at, by @by, with its key.revoke event. ERR_NOT_FOUND;
 * ERR_CONFLICT when it is revoked already. */
int catalog_key_revoke(struct catalog *cat, const char *name, int64_t at, const char *by,
                       struct err *err);
/* Keys not revoked. */
int catalog_key_count_active(struct catalog *cat, int64_t *ret, struct err *err);
/* Keys ever made, revoked or not. */
int catalog_key_count_all(struct catalog *cat, int64_t *ret, struct err *err);

/* Who changed what: the calls that create, rebuild or delete an environment,
 * change its lifecycle, make or revoke a key each record their event
 * ("environment.create", "environment.rebuild", "environment.delete",
 * "environment.deprecate", "environment.retire", "environment.reinstate",
 * "key.create", "key.revoke") in the transaction of the change itself. */
struct event_record {
    int64_t seq, at;
    char *principal, *action, *subject, *detail;
};
void event_records_free(struct event_record *e, size_t n);
/* Events, newest first, at most @limit, of @subject when not NULL. */
int catalog_event_list(struct catalog *cat, const char *subject, size_t limit,
                       struct event_record **ret, size_t *ret_n, struct err *err);

/* ---- history (catalog/history.c) ---- */

/* The query side of the execution history, for the auditors' API: filters,
 * keyset pages newest first, export in batches. */

struct history_filter {
    const char *environment;     /* NULL: any */
    int64_t environment_version; /* 0: any; needs environment */
    int status;                  /* an enum exec_status, -1: any */
    const char *principal;       /* NULL: any */
    const char *code_sha256;     /* NULL: any; 64 lower-case hex */
    const char *node;            /* NULL: any; the node it was leased to (cluster mode) */
    const char *text;            /* NULL: any; whitespace-separated words that must all
                                  * occur in the code (letters and digits; '.', '_' and
                                  * other punctuation separate words) */
    bool has_since, has_until;
    int64_t since, until; /* recorded_at in [since, until) */
};

/* One execution as the history shows it. List items carry no code, stdout,
 * stderr or files (NULL, 0); catalog_history_get fills everything. */
struct history_item {
    struct execution_record rec;
    int64_t seq;         /* insertion order: the key of pages */
    int64_t recorded_at; /* entered the history: start (or queue) time, never
                          * decreasing with seq */
    int64_t chain_seq;   /* 0 while not final */
    char chain_hash[65]; /* "" while not final */
};
/* Free the strings and zero *it; NULL is fine. */
void history_item_release(struct history_item *it);
/* Release @n items and free the array; NULL is fine. */
void history_items_free(struct history_item *items, size_t n);

/* Executions matching @f with seq < @before_seq (0: no bound), newest
 * (highest seq) first, at most @limit. *ret (NULL when none) belongs to the
 * caller: history_items_free(*ret, *ret_n). ERR_INVALID when @f is not
 * consistent (a version without environment, an unknown status). */
int catalog_history_list(struct catalog *cat, const struct history_filter *f, int64_t before_seq,
                         size_t limit, struct history_item **ret, size_t *ret_n, struct err *err);
/* Fill *ret with execution @id, its code, output and file manifest;
 * ERR_NOT_FOUND. */
int catalog_history_get(struct catalog *cat, const char *id, struct history_item *ret,
                        struct err *err);

/* A streaming read of every execution matching a filter, newest first, in
 * keyset batches, on a read-only connection of its own (so writers go on);
 * for a catalog in memory, on the shared connection a batch at a time. One
 * thread at a time; rows inserted meanwhile are newer and not visited. */
struct history_export;
/* @f is copied. *ret belongs to the caller: catalog_history_export_close(). */
int catalog_history_export_open(struct catalog *cat, const struct history_filter *f,
                                struct history_export **ret, struct err *err);
/* The next at most @max items (list items); *ret_n 0 at the end. As
 * catalog_history_list for *ret. */
int catalog_history_export_next(struct history_export *x, size_t max, struct history_item **ret,
                                size_t *ret_n, struct err *err);
void catalog_history_export_close(struct history_export *x); /* NULL is fine */

/* ---- statistics (catalog/stats.c) ---- */

enum history_group { HISTORY_GROUP_ENVIRONMENT = 0, HISTORY_GROUP_STATUS, HISTORY_GROUP_DAY };

/* Statistics of one group. Percentiles are nearest-rank over the rows that
 * have a duration; -1 when none has. */
struct history_stat {
    char *key;        /* environment (NULL: the default image), status name, or
                       * "YYYY-MM-DD" (UTC day of recorded_at) */
    int64_t count;    /* executions */
    int64_t timed;    /* of which with a duration */
    int64_t total_ms; /* sum of their durations */
    int64_t p50_ms, p95_ms;
};
void history_stats_free(struct history_stat *stats, size_t n); /* NULL is fine */
/* Group the executions matching @f by @group (ordered by key; NULL first),
 * and *ret_all over all of them (its key NULL). Reads on a connection of its
 * own as the export does. *ret belongs to the caller: history_stats_free(). */
int catalog_history_stats(struct catalog *cat, const struct history_filter *f,
                          enum history_group group, struct history_stat **ret, size_t *ret_n,
                          struct history_stat *ret_all, struct err *err);

/* ---- the audit chain (catalog/chain.c, catalog/verify.c) ---- */

/* Every execution that becomes final (any status but queued and running)
 * joins the audit chain in the transaction that makes it final:
 * chain_seq = the head's + 1 and chain_hash = hex sha256(previous
 * chain_hash || canonical serialisation of the row), the serialisation
 * covering every audited field, the sha256 of code, stdout and stderr and the
 * file manifest (docs/history.md has it byte for byte). A
 * final row is sealed: finishing it again is refused (ERR_CONFLICT) unless it
 * is still the newest link, which is then recomputed in place. */

struct history_verify {
    bool ok;
    int64_t count;    /* links checked (after the checkpoint) */
    int64_t head_seq; /* the newest link: its chain_seq and hash */
    char head_hash[65];
    bool has_checkpoint; /* a prune cut the chain: verify starts after it */
    int64_t checkpoint_seq, checkpoint_before, checkpoint_at, checkpoint_pruned;
    char checkpoint_hash[65];
    /* When !ok: the first execution, in chain order, whose link does not hold
     * ("" when the break names no row, as when the newest links are gone),
     * its chain_seq (0 then) and why. */
    char first_bad_id[64];
    int64_t first_bad_seq;
    char reason[200];
};

/* Walk the chain from the newest checkpoint (or the start) to the head and
 * fill *ret: ok, or the first link that does not hold: an edited field
 * (recomputed hash differs, or the code does not match its code_sha256), a
 * missing or moved row (chain_seq out of sequence), rows gone from the end
 * (the head is not reached), rows beyond the head, or final rows outside the
 * chain. A broken chain is a successful call with ret->ok false. Reads on
 * connections of its own, with up to two threads. */
int catalog_history_verify(struct catalog *cat, struct history_verify *ret, struct err *err);
/* The same on the catalog file @path opened read-only (an auditor's copy;
 * it is neither migrated nor written). ERR_UNAVAILABLE when it cannot be
 * opened, ERR_INVALID when it has no audit chain (schema before 4). */
int catalog_history_verify_file(const char *path, struct history_verify *ret, struct err *err);

struct history_prune {
    int64_t pruned;         /* executions deleted */
    int64_t checkpoint_seq; /* the chain's cut: the last link deleted (0: none ever) */
    char checkpoint_hash[65];
};
/* Delete the oldest links of the chain whose executions finished before
 * @before (stopping at the first that did not: the cut is a prefix of the
 * chain), with their files, in transactions of at most 10000 rows, and
 * record the cut as a checkpoint. Executions still queued or running stay. */
int catalog_history_prune(struct catalog *cat, int64_t before, int64_t now,
                          struct history_prune *ret, struct err *err);

/* ---- storage: output budget, retention, disk (catalog/storage.c) ---- */

/* The UTC day of @ms (milliseconds since the epoch): days since 1970-01-01. */
int64_t catalog_utc_day(int64_t ms);
/* Output bytes (stdout + stderr as stored) that @principal's executions
 * stored on UTC day @day: each finish adds its row's bytes to the day it
 * finished, in its own transaction. 0 when none. */
int catalog_output_usage(struct catalog *cat, const char *principal, int64_t day, int64_t *ret,
                         struct err *err);

struct output_prune {
    int64_t rows;  /* executions whose output was dropped by this pass */
    int64_t bytes; /* bytes of stdout and stderr dropped */
    bool more;     /* the pass stopped at its bounds: call again */
};
/* Retention, one bounded pass in one write transaction: the final
 * executions recorded before @before (recorded_at, ms), oldest first and
 * at most @max_rows of them (and about 64 MiB of output), lose their stdout
 * and stderr (stored as ""), keep their sha256 and sizes
 * (stdout_sha256, stdout_size, ...) and get output_pruned_at = @now; the
 * audit chain takes their digests from the stored sha256, so their links
 * still verify. A pass resumes after the last row the previous one saw and
 * stops at the first row recorded at or after @before, or not yet final.
 * *ret says what it did. Thread-safe; the lock is held for the one pass. */
int catalog_output_prune(struct catalog *cat, int64_t before, int64_t now, size_t max_rows,
                         struct output_prune *ret, struct err *err);

struct catalog_disk {
    bool on_disk;        /* false: the catalog is in memory, the rest is 0 */
    int64_t db_bytes;    /* the database file */
    int64_t wal_bytes;   /* its write-ahead log (-wal) */
    int64_t free_bytes;  /* free space an unprivileged writer can use in its folder */
    int64_t total_bytes; /* size of that file system */
};
/* Sizes of the catalog's files and the free space of their file system
 * (stat, statvfs). ERR_INTERNAL when they cannot be read. Thread-safe. */
int catalog_disk_usage(struct catalog *cat, struct catalog_disk *ret, struct err *err);

/* ---- sessions (catalog/sessions.c) ---- */

struct session_record {
    char *id;
    char *principal;
    char *environment; /* NULL: the default image */
    char *image;
    int64_t idle_timeout_s;
    int64_t created_at;
};
/* A new open session. ERR_CONFLICT when the id exists. */
int catalog_session_insert(struct catalog *cat, const struct session_record *s, struct err *err);
/* Close session @id at @at for @reason ("deleted", "idle", ...). */
int catalog_session_close(struct catalog *cat, const char *id, int64_t at, const char *reason,
                          struct err *err);
/* ---- cluster mode's drained nodes (nodes.c) ---- */

/* Node @name drained (by @by at @at) or resumed; draining twice keeps the first. */
int catalog_node_drain_set(struct catalog *cat, const char *name, bool drained, const char *by,
                           int64_t at, struct err *err);
/* The names of the drained nodes (strv in *ret, NULL when none; the caller frees). */
int catalog_node_drains(struct catalog *cat, char ***ret, struct err *err);

/* Start-up: every session still open was cut off; close them. */
int catalog_sessions_close_all(struct catalog *cat, int64_t at, const char *reason, int *ret_count,
                               struct err *err);

/* ---- result callbacks (catalog/callbacks.c) ----
 *
 * A callback_url of POST /executions is kept from its submission until it is
 * delivered or given up, so that a stop loses none. It is due once its
 * execution is final and its next_at has come; it goes with its execution. */

struct callback_record {
    char *execution_id;
    char *url;
    int64_t created_at;
    int64_t tries;   /* deliveries that failed so far */
    int64_t next_at; /* not tried again before; 0: at once */
};
void callback_records_free(struct callback_record *c, size_t n); /* NULL is fine */
/* Keep the callback of execution @execution_id to @url, made at @at.
 * ERR_NOT_FOUND when there is no such execution, ERR_CONFLICT when it has a
 * callback already. */
int catalog_callback_add(struct catalog *cat, const char *execution_id, const char *url, int64_t at,
                         struct err *err);
/* At most @max callbacks due at @now (their execution final, next_at <=
 * @now), the earliest first, into *ret (callback_records_free it);
 * *ret_next: the earliest next_at after @now of the others whose execution
 * is final (0 when none). */
int catalog_callbacks_due(struct catalog *cat, int64_t now, size_t max,
                          struct callback_record **ret, size_t *ret_n, int64_t *ret_next,
                          struct err *err);
/* A delivery failed with @error: one more try counted, the next not before
 * @next_at. ERR_NOT_FOUND when the callback is no longer pending. */
int catalog_callback_failed(struct catalog *cat, const char *execution_id, int64_t next_at,
                            const char *error, struct err *err);
/* Delivered or given up: no longer pending (a missing one is fine). */
int catalog_callback_remove(struct catalog *cat, const char *execution_id, struct err *err);
/* How many callbacks are pending (due or not). */
int catalog_callback_count(struct catalog *cat, int64_t *ret, struct err *err);

#endif

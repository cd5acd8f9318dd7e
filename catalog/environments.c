/* catalog/environments.c - environments, their numbered builds, build logs
 * and package inventories (migrations/0002_environments.sql).
 *
 * The invariants: an environment has at most one build queued or building;
 * its version in service only moves forward (a late older build never
 * replaces a newer one); a failed build never takes a ready version out of
 * service. Each change that touches more than one row runs in one write
 * transaction under cat->lock (catalog_tx_begin, see catalog_internal.h);
 * the changes curators make (create, rebuild, delete, lifecycle) write their
 * event (GET /events) in that same transaction. */
#include "catalog/catalog.h"

#include <stdio.h>
#include <string.h>

#include "catalog/catalog_internal.h"
#include "core/cleanup.h"
#include "core/xalloc.h"

#include "core/banned.h"

static const char *const env_status_names[] = {
    [ENV_BUILDING] = "building",
    [ENV_READY] = "ready",
    [ENV_FAILED] = "failed",
};

static const char *const build_status_names[] = {
    [BUILD_QUEUED] = "queued", [BUILD_BUILDING] = "building",   [BUILD_READY] = "ready",
    [BUILD_FAILED] = "failed", [BUILD_CANCELLED] = "cancelled",
};

/* ---- status names ---- */

const char *env_status_name(enum env_status s)
{
    return name_of(env_status_names, ARRAY_SIZE(env_status_names), (unsigned)s);
}

static int env_status_parse(const char *name)
{
    return name_index(env_status_names, ARRAY_SIZE(env_status_names), name);
}

static const char *const env_lifecycle_names[] = {
    [ENV_ACTIVE] = "active",
    [ENV_DEPRECATED] = "deprecated",
    [ENV_RETIRED] = "retired",
};

const char *env_lifecycle_name(enum env_lifecycle l)
{
    return name_of(env_lifecycle_names, ARRAY_SIZE(env_lifecycle_names), (unsigned)l);
}

int env_lifecycle_parse(const char *name)
{
    return name_index(env_lifecycle_names, ARRAY_SIZE(env_lifecycle_names), name);
}

const char *build_status_name(enum build_status s)
{
    return name_of(build_status_names, ARRAY_SIZE(build_status_names), (unsigned)s);
}

int build_status_parse(const char *name)
{
    return name_index(build_status_names, ARRAY_SIZE(build_status_names), name);
}

/* ---- releasing ---- */

void env_record_release(struct env_record *env)
{
    if (!env)
        return;
    free(env->name);
    free(env->description);
    free(env->base_image);
    free(env->setup_script);
    free(env->python_version);
    free(env->image);
    free(env->image_id);
    free(env->definition);
    free(env->error);
    free(env->created_by);
    free(env->latest_status);
    free(env->policy);
    free(env->test_script);
    free(env->replacement);
    free(env->lifecycle_by);
    free(env->warning);
    free(env->base_image_id);
    free(env->drift_image_id);
    free(env->registry_image);
    memset(env, 0, sizeof(*env));
}

void env_records_free(struct env_record *envs, size_t n)
{
    ARRAY_FREE(envs, n, env_record_release);
}

void build_record_release(struct build_record *b)
{
    if (!b)
        return;
    free(b->environment);
    free(b->base_image);
    free(b->setup_script);
    free(b->python_version);
    free(b->definition);
    free(b->image);
    free(b->image_id);
    free(b->base_image_id);
    free(b->python_found);
    free(b->error);
    free(b->created_by);
    free(b->policy);
    free(b->test_script);
    free(b->registry_image);
    memset(b, 0, sizeof(*b));
}

void build_records_free(struct build_record *b, size_t n)
{
    ARRAY_FREE(b, n, build_record_release);
}

void package_entries_free(struct package_entry *p, size_t n)
{
    if (!p)
        return;
    for (size_t i = 0; i < n; i++) {
        free(p[i].manager);
        free(p[i].name);
        free(p[i].version);
    }
    free(p);
}

void log_lines_free(struct log_line *lines, size_t n)
{
    if (!lines)
        return;
    for (size_t i = 0; i < n; i++)
        free(lines[i].line);
    free(lines);
}

/* Arrays built row by row: released with their strings by the matching
 * _free on every early return, stolen on success. */
struct env_array {
    struct env_record *v;
    size_t n, cap;
};
struct build_array {
    struct build_record *v;
    size_t n, cap;
};
struct log_array {
    struct log_line *v;
    size_t n, cap;
};
struct package_array {
    struct package_entry *v;
    size_t n, cap;
};

static void env_array_release(struct env_array *a)
{
    env_records_free(a->v, a->n);
}

static void build_array_release(struct build_array *a)
{
    build_records_free(a->v, a->n);
}

static void log_array_release(struct log_array *a)
{
    log_lines_free(a->v, a->n);
}

static void package_array_release(struct package_array *a)
{
    package_entries_free(a->v, a->n);
}

/* ---- reading rows ---- */

/* The environment's columns, then its newest build's version and status
 * (NULL when it has none), found through the builds (environment, version)
 * unique index; the curation columns, and the base image id of the version in
 * service (the same index). */
#define ENV_SELECT                                                                                 \
    "SELECT e.name, e.description, e.base_image, e.setup_script, e.python_version, e.status,"      \
    " e.version, e.image, e.image_id, e.definition, e.error, e.created_at, e.updated_at,"          \
    " e.last_used, e.created_by, b.version, b.status, e.policy, e.test_script, e.lifecycle,"       \
    " e.replacement, e.lifecycle_at, e.lifecycle_by, e.warning, e.images_removed_at,"              \
    " (SELECT base_image_id FROM builds WHERE environment = e.name AND version = e.version),"      \
    " e.drift_checked_at, e.drift_image_id,"                                                       \
    " (SELECT registry_image FROM builds WHERE environment = e.name AND version = e.version)"      \
    " FROM environments e LEFT JOIN builds b ON b.environment = e.name"                            \
    " AND b.version = (SELECT max(version) FROM builds WHERE environment = e.name)"

enum {
    ENV_COL_NAME,
    ENV_COL_DESCRIPTION,
    ENV_COL_BASE_IMAGE,
    ENV_COL_SETUP_SCRIPT,
    ENV_COL_PYTHON_VERSION,
    ENV_COL_STATUS,
    ENV_COL_VERSION,
    ENV_COL_IMAGE,
    ENV_COL_IMAGE_ID,
    ENV_COL_DEFINITION,
    ENV_COL_ERROR,
    ENV_COL_CREATED_AT,
    ENV_COL_UPDATED_AT,
    ENV_COL_LAST_USED,
    ENV_COL_CREATED_BY,
    ENV_COL_LATEST_VERSION,
    ENV_COL_LATEST_STATUS,
    ENV_COL_POLICY,
    ENV_COL_TEST_SCRIPT,
    ENV_COL_LIFECYCLE,
    ENV_COL_REPLACEMENT,
    ENV_COL_LIFECYCLE_AT,
    ENV_COL_LIFECYCLE_BY,
    ENV_COL_WARNING,
    ENV_COL_IMAGES_REMOVED_AT,
    ENV_COL_BASE_IMAGE_ID,
    ENV_COL_DRIFT_CHECKED_AT,
    ENV_COL_DRIFT_IMAGE_ID,
    ENV_COL_REGISTRY_IMAGE,
};

static int env_from_row(sqlite3_stmt *st, struct env_record *env, struct err *err)
{
    const char *status = (const char *)sqlite3_column_text(st, ENV_COL_STATUS);
    int s = env_status_parse(status);

    env->name = column_strdup(st, ENV_COL_NAME);
    if (s < 0)
        return err_set(err, ERR_INTERNAL, "environment '%s' has an unknown status '%s'",
                       env->name ? env->name : "", status ? status : "");
    env->description = column_strdup(st, ENV_COL_DESCRIPTION);
    env->base_image = column_strdup(st, ENV_COL_BASE_IMAGE);
    env->setup_script = column_strdup(st, ENV_COL_SETUP_SCRIPT);
    env->python_version = column_strdup(st, ENV_COL_PYTHON_VERSION);
    env->status = (enum env_status)s;
    env->version = sqlite3_column_int64(st, ENV_COL_VERSION);
    env->image = column_strdup(st, ENV_COL_IMAGE);
    env->image_id = column_strdup(st, ENV_COL_IMAGE_ID);
    env->definition = column_strdup(st, ENV_COL_DEFINITION);
    env->error = column_strdup(st, ENV_COL_ERROR);
    env->created_at = sqlite3_column_int64(st, ENV_COL_CREATED_AT);
    env->updated_at = sqlite3_column_int64(st, ENV_COL_UPDATED_AT);
    env->last_used = sqlite3_column_int64(st, ENV_COL_LAST_USED); /* NULL reads 0 */
    env->created_by = column_strdup(st, ENV_COL_CREATED_BY);
    env->latest_version = sqlite3_column_int64(st, ENV_COL_LATEST_VERSION);
    env->latest_status = column_strdup(st, ENV_COL_LATEST_STATUS);
    env->policy = column_strdup(st, ENV_COL_POLICY);
    env->test_script = column_strdup(st, ENV_COL_TEST_SCRIPT);
    int l = env_lifecycle_parse((const char *)sqlite3_column_text(st, ENV_COL_LIFECYCLE));
    env->lifecycle = l < 0 ? ENV_ACTIVE : (enum env_lifecycle)l;
    env->replacement = column_strdup(st, ENV_COL_REPLACEMENT);
    env->lifecycle_at = sqlite3_column_int64(st, ENV_COL_LIFECYCLE_AT);
    env->lifecycle_by = column_strdup(st, ENV_COL_LIFECYCLE_BY);
    env->warning = column_strdup(st, ENV_COL_WARNING);
    env->images_removed_at = sqlite3_column_int64(st, ENV_COL_IMAGES_REMOVED_AT);
    env->base_image_id = column_strdup(st, ENV_COL_BASE_IMAGE_ID);
    env->drift_checked_at = sqlite3_column_int64(st, ENV_COL_DRIFT_CHECKED_AT);
    env->drift_image_id = column_strdup(st, ENV_COL_DRIFT_IMAGE_ID);
    env->registry_image = column_strdup(st, ENV_COL_REGISTRY_IMAGE);
    return 0;
}

/* The build's columns, then the number of lines in its log: the last seq,
 * one seek in the build_logs primary key (seq counts from 1 without gaps). */
#define BUILD_SELECT                                                                               \
    "SELECT b.id, b.environment, b.version, b.status, b.base_image, b.setup_script,"               \
    " b.python_version, b.definition, b.image, b.image_id, b.base_image_id, b.python_found,"       \
    " b.cache_hit, b.error, b.queued_at, b.started_at, b.finished_at, b.created_by,"               \
    " coalesce((SELECT max(seq) FROM build_logs WHERE build_id = b.id), 0), b.policy,"             \
    " b.test_script, b.registry_image"                                                             \
    " FROM builds b"

enum {
    BUILD_COL_ID,
    BUILD_COL_ENVIRONMENT,
    BUILD_COL_VERSION,
    BUILD_COL_STATUS,
    BUILD_COL_BASE_IMAGE,
    BUILD_COL_SETUP_SCRIPT,
    BUILD_COL_PYTHON_VERSION,
    BUILD_COL_DEFINITION,
    BUILD_COL_IMAGE,
    BUILD_COL_IMAGE_ID,
    BUILD_COL_BASE_IMAGE_ID,
    BUILD_COL_PYTHON_FOUND,
    BUILD_COL_CACHE_HIT,
    BUILD_COL_ERROR,
    BUILD_COL_QUEUED_AT,
    BUILD_COL_STARTED_AT,
    BUILD_COL_FINISHED_AT,
    BUILD_COL_CREATED_BY,
    BUILD_COL_LOG_LINES,
    BUILD_COL_POLICY,
    BUILD_COL_TEST_SCRIPT,
    BUILD_COL_REGISTRY_IMAGE,
};

static int build_from_row(sqlite3_stmt *st, struct build_record *b, struct err *err)
{
    const char *status = (const char *)sqlite3_column_text(st, BUILD_COL_STATUS);
    int s = build_status_parse(status);

    b->id = sqlite3_column_int64(st, BUILD_COL_ID);
    if (s < 0)
        return err_set(err, ERR_INTERNAL, "build %lld has an unknown status '%s'", (long long)b->id,
                       status ? status : "");
    b->environment = column_strdup(st, BUILD_COL_ENVIRONMENT);
    b->version = sqlite3_column_int64(st, BUILD_COL_VERSION);
    b->status = (enum build_status)s;
    b->base_image = column_strdup(st, BUILD_COL_BASE_IMAGE);
    b->setup_script = column_strdup(st, BUILD_COL_SETUP_SCRIPT);
    b->python_version = column_strdup(st, BUILD_COL_PYTHON_VERSION);
    b->definition = column_strdup(st, BUILD_COL_DEFINITION);
    b->image = column_strdup(st, BUILD_COL_IMAGE);
    b->image_id = column_strdup(st, BUILD_COL_IMAGE_ID);
    b->base_image_id = column_strdup(st, BUILD_COL_BASE_IMAGE_ID);
    b->python_found = column_strdup(st, BUILD_COL_PYTHON_FOUND);
    b->cache_hit = sqlite3_column_int(st, BUILD_COL_CACHE_HIT) != 0;
    b->error = column_strdup(st, BUILD_COL_ERROR);
    b->queued_at = sqlite3_column_int64(st, BUILD_COL_QUEUED_AT);
    b->started_at = sqlite3_column_int64(st, BUILD_COL_STARTED_AT);   /* NULL reads 0 */
    b->finished_at = sqlite3_column_int64(st, BUILD_COL_FINISHED_AT); /* NULL reads 0 */
    b->created_by = column_strdup(st, BUILD_COL_CREATED_BY);
    b->log_lines = sqlite3_column_int64(st, BUILD_COL_LOG_LINES);
    b->policy = column_strdup(st, BUILD_COL_POLICY);
    b->test_script = column_strdup(st, BUILD_COL_TEST_SCRIPT);
    b->registry_image = column_strdup(st, BUILD_COL_REGISTRY_IMAGE);
    return 0;
}

/* Step @st, a bound query for at most one build, into *ret. @what names the
 * build in messages ("build 7", "version 2 of 'x'"). */
static int build_query_one(struct catalog *cat, sqlite3_stmt *st, int rc, const char *what,
                           struct build_record *ret, struct err *err)
{
    _cleanup_(build_record_release) struct build_record b = {0};

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "%s not found", what);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read %s", what);
    if (build_from_row(st, &b, err) < 0)
        return -1;
    *ret = b;
    memset(&b, 0, sizeof(b)); /* the caller owns the strings now */
    return 0;
}

/* Step @st, a bound query for builds, into a new array. */
static int build_query_list(struct catalog *cat, sqlite3_stmt *st, int rc, const char *what,
                            struct build_record **ret, size_t *ret_n, struct err *err)
{
    _cleanup_(build_array_release) struct build_array a = {0};

    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if (build_from_row(st, ARRAY_PUSH(&a), err) < 0)
            return -1;
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot list %s", what);
    *ret_n = a.n;
    *ret = steal_ptr(a.v);
    a.n = 0;
    return 0;
}

/* ---- creating and queueing ---- */

/* The first required field of a build that is missing, or NULL. */
static const char *build_missing_field(const struct build_record *b)
{
    if (!b->base_image)
        return "base_image";
    if (!b->setup_script)
        return "setup_script";
    if (!b->python_version)
        return "python_version";
    if (!b->definition)
        return "definition";
    if (!b->image)
        return "image";
    return NULL;
}

/* Insert build @version of @environment, queued, with @b's definition. */
static int build_insert(struct catalog *cat, const char *environment, int64_t version,
                        const struct build_record *b, int64_t *ret_id, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder bd;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO builds (environment, version, status, base_image,"
                            " setup_script, python_version, definition, image, queued_at,"
                            " created_by, policy, test_script)"
                            " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        bd = binder_of(st);
        bind_text(&bd, environment);
        bind_int64(&bd, version);
        bind_text(&bd, b->base_image);
        bind_text(&bd, b->setup_script);
        bind_text(&bd, b->python_version);
        bind_text(&bd, b->definition);
        bind_text(&bd, b->image);
        bind_int64(&bd, b->queued_at);
        bind_text(&bd, b->created_by ? b->created_by : "");
        bind_text(&bd, b->policy ? b->policy : "{}");
        bind_text(&bd, b->test_script && *b->test_script ? b->test_script : NULL);
        rc = bd.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot queue version %lld of environment '%s'",
                                  (long long)version, environment);
    *ret_id = sqlite3_last_insert_rowid(cat->db);
    return 0;
}

/* The body of catalog_env_create's transaction. */
static int env_create_tx(struct catalog *cat, const struct env_record *env,
                         const struct build_record *build, int64_t *ret_id, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *dup = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *ins = NULL;
    struct binder b;
    int rc;

    /* The unique index would refuse it too; looking first lets the message
     * name the existing spelling. */
    rc = sqlite3_prepare_v2(cat->db, "SELECT name FROM environments WHERE name = ? COLLATE NOCASE",
                            -1, &dup, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(dup);
        bind_text(&b, env->name);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(dup);
    if (rc == SQLITE_ROW) {
        const char *existing = (const char *)sqlite3_column_text(dup, 0);
        if (existing && strcmp(existing, env->name) != 0)
            return err_set(err, ERR_CONFLICT, "environment '%s' exists (as '%s')", env->name,
                           existing);
        return err_set(err, ERR_CONFLICT, "environment '%s' exists", env->name);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot create environment '%s'",
                                  env->name);

    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO environments (name, description, base_image,"
                            " setup_script, python_version, status, version, created_at,"
                            " updated_at, created_by, policy, test_script) VALUES (?, ?, ?, ?, ?,"
                            " 'building', 0, ?, ?, ?, ?, ?)",
                            -1, &ins, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(ins);
        bind_text(&b, env->name);
        bind_text(&b, env->description ? env->description : "");
        bind_text(&b, env->base_image);
        bind_text(&b, env->setup_script);
        bind_text(&b, env->python_version);
        bind_int64(&b, env->created_at);
        bind_int64(&b, env->created_at);
        bind_text(&b, env->created_by ? env->created_by : "");
        bind_text(&b, env->policy ? env->policy : "{}");
        bind_text(&b, env->test_script && *env->test_script ? env->test_script : NULL);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(ins);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot create environment '%s'",
                                  env->name);
    if (build_insert(cat, env->name, 1, build, ret_id, err) < 0)
        return -1;
    /* the environment has no definition of its own until a version is ready:
     * the event's detail is empty */
    return catalog_event_insert_tx(cat, env->created_at, env->created_by, "environment.create",
                                   env->name, "", err);
}

int catalog_env_create(struct catalog *cat, const struct env_record *env,
                       struct build_record *build, struct err *err)
{
    const char *missing = NULL;
    int64_t id = 0;

    if (!env->name)
        return err_set(err, ERR_INVALID, "cannot create an environment without a name");
    if (!env->base_image)
        missing = "base_image";
    else if (!env->setup_script)
        missing = "setup_script";
    else if (!env->python_version)
        missing = "python_version";
    else
        missing = build_missing_field(build);
    if (missing)
        return err_set(err, ERR_INVALID, "cannot create environment '%s': no %s", env->name,
                       missing);

    CATALOG_LOCK(cat);
    CATALOG_TX(tx);
    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
        env_create_tx(cat, env, build, &id, err) < 0 || catalog_tx_commit(&tx, err) < 0)
        return -1;
    build->id = id;
    build->version = 1;
    return 0;
}

/* The body of catalog_env_queue_build's transaction. */
static int env_queue_build_tx(struct catalog *cat, const struct build_record *build, bool event,
                              int64_t *ret_id, int64_t *ret_version, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *sel = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *upd = NULL;
    const char *name = build->environment;
    int64_t max_version, busy_version;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "SELECT (SELECT coalesce(max(version), 0) FROM builds"
                            "        WHERE environment = e.name),"
                            " (SELECT max(version) FROM builds WHERE environment = e.name"
                            "        AND status IN ('queued', 'building'))"
                            " FROM environments e WHERE e.name = ?",
                            -1, &sel, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(sel);
        bind_text(&b, name);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(sel);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "environment '%s' does not exist", name);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot queue a build of '%s'", name);
    max_version = sqlite3_column_int64(sel, 0);
    if (sqlite3_column_type(sel, 1) != SQLITE_NULL) {
        busy_version = sqlite3_column_int64(sel, 1);
        return err_set(err, ERR_CONFLICT,
                       "a build of '%s' is already queued or running (version %lld)", name,
                       (long long)busy_version);
    }

    if (build_insert(cat, name, max_version + 1, build, ret_id, err) < 0)
        return -1;

    /* A ready version keeps serving (and its status) while the next builds. */
    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE environments SET updated_at = ?,"
                            " status = CASE WHEN version = 0 THEN 'building' ELSE status END"
                            " WHERE name = ?",
                            -1, &upd, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(upd);
        bind_int64(&b, build->queued_at);
        bind_text(&b, name);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(upd);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot queue a build of '%s'", name);
    *ret_version = max_version + 1;
    if (!event)
        return 0;
    char detail[32];
    snprintf(detail, sizeof(detail), "version %lld", (long long)*ret_version);
    return catalog_event_insert_tx(cat, build->queued_at, build->created_by, "environment.rebuild",
                                   name, detail, err);
}

int catalog_env_queue_build(struct catalog *cat, struct build_record *build, bool event,
                            struct err *err)
{
    const char *missing = build_missing_field(build);
    int64_t id = 0, version = 0;

    if (!build->environment)
        return err_set(err, ERR_INVALID, "cannot queue a build without an environment");
    if (missing)
        return err_set(err, ERR_INVALID, "cannot queue a build of '%s': no %s", build->environment,
                       missing);

    CATALOG_LOCK(cat);
    CATALOG_TX(tx);
    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
        env_queue_build_tx(cat, build, event, &id, &version, err) < 0 ||
        catalog_tx_commit(&tx, err) < 0)
        return -1;
    build->id = id;
    build->version = version;
    return 0;
}

/* ---- environments: reading, deleting, touching ---- */

int catalog_env_get(struct catalog *cat, const char *name, struct env_record *ret, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_(env_record_release) struct env_record env = {0};
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db, ENV_SELECT " WHERE e.name = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_text(&b, name);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "environment '%s' does not exist", name);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read environment '%s'", name);
    if (env_from_row(st, &env, err) < 0)
        return -1;
    *ret = env;
    memset(&env, 0, sizeof(env)); /* the caller owns the strings now */
    return 0;
}

int catalog_env_list(struct catalog *cat, struct env_record **ret, size_t *ret_n, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_(env_array_release) struct env_array a = {0};
    int rc;

    rc = sqlite3_prepare_v2(cat->db, ENV_SELECT " ORDER BY e.name", -1, &st, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if (env_from_row(st, ARRAY_PUSH(&a), err) < 0)
            return -1;
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot list environments");
    *ret_n = a.n;
    *ret = steal_ptr(a.v);
    a.n = 0;
    return 0;
}

/* Run @sql, an UPDATE or DELETE of one environment with @name bound after
 * the values bound by the caller; ERR_NOT_FOUND when no row changed. */
static int env_change(struct catalog *cat, sqlite3_stmt *st, struct binder *b, int rc,
                      const char *name, const char *what, struct err *err)
{
    if (rc == SQLITE_OK) {
        bind_text(b, name);
        rc = b->rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot %s environment '%s'", what,
                                  name);
    if (sqlite3_changes(cat->db) == 0)
        return err_set(err, ERR_NOT_FOUND, "environment '%s' does not exist", name);
    return 0;
}

/* The body of catalog_env_delete's transaction. */
static int env_delete_tx(struct catalog *cat, const char *name, int64_t at, const char *by,
                         struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    /* Builds, their logs and packages go with it: ON DELETE CASCADE. */
    rc = sqlite3_prepare_v2(cat->db, "DELETE FROM environments WHERE name = ?", -1, &st, NULL);
    b = binder_of(st);
    if (env_change(cat, st, &b, rc, name, "delete", err) < 0)
        return -1;
    return catalog_event_insert_tx(cat, at, by, "environment.delete", name, "", err);
}

int catalog_env_delete(struct catalog *cat, const char *name, int64_t at, const char *by,
                       struct err *err)
{
    CATALOG_LOCK(cat);
    CATALOG_TX(tx);

    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
        env_delete_tx(cat, name, at, by, err) < 0)
        return -1;
    return catalog_tx_commit(&tx, err);
}

int catalog_env_touch(struct catalog *cat, const char *name, int64_t at, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db, "UPDATE environments SET last_used = ? WHERE name = ?", -1,
                            &st, NULL);
    b = binder_of(st);
    if (rc == SQLITE_OK)
        bind_int64(&b, at);
    return env_change(cat, st, &b, rc, name, "touch", err);
}

/* ---- builds: reading ---- */

int catalog_build_get(struct catalog *cat, const char *environment, int64_t version,
                      struct build_record *ret, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    char what[ERR_MSG_MAX];
    struct binder b;
    int rc;

    snprintf(what, sizeof(what), "version %lld of environment '%s'", (long long)version,
             environment);
    rc = sqlite3_prepare_v2(cat->db, BUILD_SELECT " WHERE b.environment = ? AND b.version = ?", -1,
                            &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_text(&b, environment);
        bind_int64(&b, version);
        rc = b.rc;
    }
    return build_query_one(cat, st, rc, what, ret, err);
}

int catalog_build_get_by_id(struct catalog *cat, int64_t id, struct build_record *ret,
                            struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    char what[32];
    struct binder b;
    int rc;

    snprintf(what, sizeof(what), "build %lld", (long long)id);
    rc = sqlite3_prepare_v2(cat->db, BUILD_SELECT " WHERE b.id = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, id);
        rc = b.rc;
    }
    return build_query_one(cat, st, rc, what, ret, err);
}

int catalog_build_find_ready_by_definition(struct catalog *cat, const char *definition,
                                           struct build_record *ret, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    char what[ERR_MSG_MAX];
    struct binder b;
    int rc;

    snprintf(what, sizeof(what), "a ready build of definition '%s'", definition);
    /* status = 'ready' lets SQLite use the partial index builds_definition. */
    rc = sqlite3_prepare_v2(cat->db,
                            BUILD_SELECT " WHERE b.definition = ? AND b.status = 'ready'"
                                         " ORDER BY b.id DESC LIMIT 1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_text(&b, definition);
        rc = b.rc;
    }
    return build_query_one(cat, st, rc, what, ret, err);
}

int catalog_build_list(struct catalog *cat, const char *environment, struct build_record **ret,
                       size_t *ret_n, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    char what[ERR_MSG_MAX];
    struct binder b;
    int rc;

    snprintf(what, sizeof(what), "the builds of '%s'", environment);
    rc = sqlite3_prepare_v2(
        cat->db, BUILD_SELECT " WHERE b.environment = ? ORDER BY b.version DESC", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_text(&b, environment);
        rc = b.rc;
    }
    return build_query_list(cat, st, rc, what, ret, ret_n, err);
}

int catalog_build_list_unfinished(struct catalog *cat, struct build_record **ret, size_t *ret_n,
                                  struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            BUILD_SELECT " WHERE b.status IN ('queued', 'building') ORDER BY b.id",
                            -1, &st, NULL);
    return build_query_list(cat, st, rc, "unfinished builds", ret, ret_n, err);
}

/* ---- builds: state changes ---- */

/* After an UPDATE of build @id guarded by its status changed nothing: say
 * whether the build is unknown or in another status. */
static int build_explain_unchanged(struct catalog *cat, int64_t id, const char *what,
                                   struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db, "SELECT environment, version, status FROM builds WHERE id = ?",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOT_FOUND, "build %lld not found", (long long)id);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot %s build %lld", what,
                                  (long long)id);
    return err_set(err, ERR_CONFLICT, "cannot %s build %lld (version %lld of '%s'): it is %s", what,
                   (long long)id, (long long)sqlite3_column_int64(st, 1),
                   (const char *)sqlite3_column_text(st, 0),
                   (const char *)sqlite3_column_text(st, 2));
}

/* Run @st, an UPDATE of build @id (bound last) guarded by its status. */
static int build_change(struct catalog *cat, sqlite3_stmt *st, struct binder *b, int rc, int64_t id,
                        const char *what, struct err *err)
{
    if (rc == SQLITE_OK) {
        bind_int64(b, id);
        rc = b->rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot %s build %lld", what,
                                  (long long)id);
    if (sqlite3_changes(cat->db) == 0)
        return build_explain_unchanged(cat, id, what, err);
    return 0;
}

int catalog_build_start(struct catalog *cat, int64_t id, int64_t at, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE builds SET status = 'building', started_at = ?"
                            " WHERE id = ? AND status = 'queued'",
                            -1, &st, NULL);
    b = binder_of(st);
    if (rc == SQLITE_OK)
        bind_int64(&b, at);
    return build_change(cat, st, &b, rc, id, "start", err);
}

int catalog_build_requeue(struct catalog *cat, int64_t id, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE builds SET status = 'queued', started_at = NULL"
                            " WHERE id = ? AND status IN ('queued', 'building')",
                            -1, &st, NULL);
    b = binder_of(st);
    return build_change(cat, st, &b, rc, id, "requeue", err);
}

static bool package_manager_valid(const char *m)
{
    return m && (strcmp(m, "pip") == 0 || strcmp(m, "dpkg") == 0);
}

static int packages_store(struct catalog *cat, int64_t id, const struct package_entry *pkgs,
                          size_t n, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *del = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *ins = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db, "DELETE FROM packages WHERE build_id = ?", -1, &del, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(del);
        bind_int64(&b, id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(del);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot record the packages of build %lld", (long long)id);
    if (n == 0)
        return 0;

    /* A name listed twice (pip can report one twice) keeps its last version. */
    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT OR REPLACE INTO packages (build_id, manager, name, version)"
                            " VALUES (?, ?, ?, ?)",
                            -1, &ins, NULL);
    if (rc != SQLITE_OK)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot record the packages of build %lld", (long long)id);
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(ins);
        b = binder_of(ins);
        bind_int64(&b, id);
        bind_text(&b, pkgs[i].manager);
        bind_text(&b, pkgs[i].name);
        bind_text(&b, pkgs[i].version);
        rc = b.rc;
        if (rc == SQLITE_OK)
            rc = sqlite3_step(ins);
        if (rc != SQLITE_DONE)
            return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                      "cannot record package '%s' of build %lld", pkgs[i].name,
                                      (long long)id);
    }
    return 0;
}

/* The body of catalog_build_succeed's transaction. */
static int build_succeed_tx(struct catalog *cat, const struct build_record *rec,
                            const struct package_entry *pkgs, size_t n_pkgs, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *upd = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *env = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE builds SET status = 'ready', image_id = ?, base_image_id = ?,"
                            " python_found = ?, cache_hit = ?, finished_at = ?, error = NULL,"
                            " registry_image = ?"
                            " WHERE id = ? AND status IN ('queued', 'building')",
                            -1, &upd, NULL);
    b = binder_of(upd);
    if (rc == SQLITE_OK) {
        bind_text(&b, rec->image_id);
        bind_text(&b, rec->base_image_id);
        bind_text(&b, rec->python_found);
        bind_int64(&b, rec->cache_hit);
        bind_int64_or_null(&b, rec->finished_at, rec->finished_at == 0);
        bind_text(&b, rec->registry_image);
    }
    if (build_change(cat, upd, &b, rc, rec->id, "finish", err) < 0)
        return -1;

    if (packages_store(cat, rec->id, pkgs, n_pkgs, err) < 0)
        return -1;

    /* The version only moves forward: a late older build changes nothing. */
    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE environments SET (status, version, image, image_id,"
                            " definition, base_image, setup_script, python_version, error,"
                            " updated_at, policy, test_script, images_removed_at) = (SELECT"
                            " 'ready', b.version, b.image, ?1, b.definition, b.base_image,"
                            " b.setup_script, b.python_version, NULL, ?2, b.policy, b.test_script,"
                            " NULL FROM builds b WHERE b.id = ?3)"
                            " WHERE name = (SELECT environment FROM builds WHERE id = ?3)"
                            " AND version < (SELECT version FROM builds WHERE id = ?3)",
                            -1, &env, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(env);
        bind_text(&b, rec->image_id);
        bind_int64(&b, rec->finished_at);
        bind_int64(&b, rec->id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(env);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot put build %lld in service",
                                  (long long)rec->id);
    return 0;
}

int catalog_build_succeed(struct catalog *cat, const struct build_record *b,
                          const struct package_entry *pkgs, size_t n_pkgs, struct err *err)
{
    for (size_t i = 0; i < n_pkgs; i++) {
        if (!package_manager_valid(pkgs[i].manager))
            return err_set(err, ERR_INVALID,
                           "cannot finish build %lld: package '%s' has an unknown manager '%s'",
                           (long long)b->id, pkgs[i].name ? pkgs[i].name : "",
                           pkgs[i].manager ? pkgs[i].manager : "");
        if (!pkgs[i].name || !pkgs[i].version)
            return err_set(err, ERR_INVALID,
                           "cannot finish build %lld: a %s package without a name or version",
                           (long long)b->id, pkgs[i].manager);
    }

    CATALOG_LOCK(cat);
    CATALOG_TX(tx);
    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
        build_succeed_tx(cat, b, pkgs, n_pkgs, err) < 0)
        return -1;
    return catalog_tx_commit(&tx, err);
}

/* The body of catalog_build_fail's transaction. */
static int build_fail_tx(struct catalog *cat, int64_t id, enum build_status status,
                         const char *error, int64_t at, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *upd = NULL;
    _cleanup_(stmt_finalizep) sqlite3_stmt *env = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE builds SET status = ?, error = ?, finished_at = ?"
                            " WHERE id = ? AND status IN ('queued', 'building')",
                            -1, &upd, NULL);
    b = binder_of(upd);
    if (rc == SQLITE_OK) {
        bind_text(&b, build_status_names[status]);
        bind_text(&b, error);
        bind_int64(&b, at);
    }
    if (build_change(cat, upd, &b, rc, id, "finish", err) < 0)
        return -1;

    /* A ready version keeps serving; only an environment without one fails. */
    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE environments SET error = ?, updated_at = ?,"
                            " status = CASE WHEN version = 0 THEN 'failed' ELSE status END"
                            " WHERE name = (SELECT environment FROM builds WHERE id = ?)",
                            -1, &env, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(env);
        bind_text(&b, error);
        bind_int64(&b, at);
        bind_int64(&b, id);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(env);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot record the failure of build %lld", (long long)id);
    return 0;
}

int catalog_build_fail(struct catalog *cat, int64_t id, enum build_status status, const char *error,
                       int64_t at, struct err *err)
{
    if (status != BUILD_FAILED && status != BUILD_CANCELLED)
        return err_set(err, ERR_INVALID, "cannot finish build %lld as '%s': not a failure",
                       (long long)id, build_status_name(status));

    CATALOG_LOCK(cat);
    CATALOG_TX(tx);
    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
        build_fail_tx(cat, id, status, error, at, err) < 0)
        return -1;
    return catalog_tx_commit(&tx, err);
}

/* ---- build logs and packages ---- */

int catalog_build_log_append(struct catalog *cat, int64_t id, int64_t at, const char *line,
                             int64_t *ret_seq, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int64_t seq = 0;
    int rc;

    /* One statement under the lock: numbering and insert cannot interleave
     * with another append. The max is one seek in the primary key. */
    rc = sqlite3_prepare_v2(cat->db,
                            "INSERT INTO build_logs (build_id, seq, at, line)"
                            " SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3"
                            " FROM build_logs WHERE build_id = ?1"
                            " RETURNING seq",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, id);
        bind_int64(&b, at);
        bind_text(&b, line ? line : "");
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return err_set(err, ERR_NOT_FOUND, "build %lld not found", (long long)id);
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot append to the log of build %lld", (long long)id);
    if (ret_seq)
        *ret_seq = seq;
    return 0;
}

int catalog_build_log_read(struct catalog *cat, int64_t id, int64_t after, size_t limit,
                           struct log_line **ret, size_t *ret_n, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_(log_array_release) struct log_array a = {0};
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "SELECT seq, at, line FROM build_logs WHERE build_id = ? AND seq > ?"
                            " ORDER BY seq LIMIT ?",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, id);
        bind_int64(&b, after);
        bind_int64(&b, limit > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)limit);
        rc = b.rc;
    }
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        struct log_line *l = ARRAY_PUSH(&a);
        l->seq = sqlite3_column_int64(st, 0);
        l->at = sqlite3_column_int64(st, 1);
        l->line = column_strdup(st, 2);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot read the log of build %lld",
                                  (long long)id);
    *ret_n = a.n;
    *ret = steal_ptr(a.v);
    a.n = 0;
    return 0;
}

int catalog_build_packages(struct catalog *cat, int64_t id, struct package_entry **ret,
                           size_t *ret_n, struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_(package_array_release) struct package_array a = {0};
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "SELECT manager, name, version FROM packages WHERE build_id = ?"
                            " ORDER BY manager, name",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, id);
        rc = b.rc;
    }
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        struct package_entry *p = ARRAY_PUSH(&a);
        p->manager = column_strdup(st, 0);
        p->name = column_strdup(st, 1);
        p->version = column_strdup(st, 2);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err,
                                  "cannot read the packages of build %lld", (long long)id);
    *ret_n = a.n;
    *ret = steal_ptr(a.v);
    a.n = 0;
    return 0;
}

/* ---- curation: lifecycle, drift, usage ---- */

/* The body of catalog_env_set_lifecycle's transaction. */
static int env_set_lifecycle_tx(struct catalog *cat, const char *name, enum env_lifecycle state,
                                const char *replacement, const char *warning, int64_t at,
                                const char *by, struct err *err)
{
    static const char *const actions[] = {
        [ENV_ACTIVE] = "environment.reinstate",
        [ENV_DEPRECATED] = "environment.deprecate",
        [ENV_RETIRED] = "environment.retire",
    };
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_free_ char *detail = replacement ? xasprintf("replacement %s", replacement) : NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE environments SET lifecycle = ?, replacement = ?, warning = ?,"
                            " lifecycle_at = ?, lifecycle_by = ? WHERE name = ?",
                            -1, &st, NULL);
    b = binder_of(st);
    if (rc == SQLITE_OK) {
        bind_text(&b, env_lifecycle_names[state]);
        bind_text(&b, replacement);
        bind_text(&b, warning);
        bind_int64(&b, at);
        bind_text(&b, by ? by : "");
    }
    if (env_change(cat, st, &b, rc, name, "change the lifecycle of", err) < 0)
        return -1;
    return catalog_event_insert_tx(cat, at, by, actions[state], name, detail, err);
}

int catalog_env_set_lifecycle(struct catalog *cat, const char *name, enum env_lifecycle state,
                              const char *replacement, const char *warning, int64_t at,
                              const char *by, struct err *err)
{
    if ((unsigned)state >= ARRAY_SIZE(env_lifecycle_names))
        return err_set(err, ERR_INVALID, "unknown lifecycle state %d", (int)state);

    CATALOG_LOCK(cat);
    CATALOG_TX(tx);
    if (catalog_tx_begin(&tx, cat->db, CATALOG_TX_WRITE, err) < 0 ||
        env_set_lifecycle_tx(cat, name, state, replacement, warning, at, by, err) < 0)
        return -1;
    return catalog_tx_commit(&tx, err);
}

int catalog_env_mark_images_removed(struct catalog *cat, const char *name, int64_t at,
                                    struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db, "UPDATE environments SET images_removed_at = ? WHERE name = ?",
                            -1, &st, NULL);
    b = binder_of(st);
    if (rc == SQLITE_OK)
        bind_int64(&b, at);
    return env_change(cat, st, &b, rc, name, "record the images removed of", err);
}

int catalog_env_set_drift(struct catalog *cat, const char *name, int64_t at, const char *image_id,
                          struct err *err)
{
    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "UPDATE environments SET drift_checked_at = ?, drift_image_id = ?"
                            " WHERE name = ?",
                            -1, &st, NULL);
    b = binder_of(st);
    if (rc == SQLITE_OK) {
        bind_int64(&b, at);
        bind_text(&b, image_id);
    }
    return env_change(cat, st, &b, rc, name, "record the drift check of", err);
}

#define RUNS_DAY_MS 86400000LL

/* The first seq recorded at or after @since: recorded_at never decreases
 * with seq, so one seek in executions_recorded (recorded_at, seq, ...) finds
 * where a time window starts. INT64_MAX when nothing is that recent. */
static int runs_first_seq(struct catalog *cat, int64_t since, int64_t *ret, struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(cat->db,
                            "SELECT seq FROM executions WHERE recorded_at >= ?"
                            " ORDER BY recorded_at, seq LIMIT 1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_int64(&b, since);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *ret = sqlite3_column_int64(st, 0);
        return 0;
    }
    if (rc == SQLITE_DONE) {
        *ret = INT64_MAX;
        return 0;
    }
    return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot count recent executions");
}

int catalog_env_runs(struct catalog *cat, const char *name, int64_t now, int64_t ret[3],
                     struct err *err)
{
    static const int64_t days[3] = {7, 30, 90};
    int64_t first[3];

    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct binder b;
    int rc;

    for (int i = 0; i < 3; i++)
        if (runs_first_seq(cat, now - days[i] * RUNS_DAY_MS, &first[i], err) < 0)
            return -1;
    ret[0] = ret[1] = ret[2] = 0;
    if (first[2] == INT64_MAX)
        return 0;
    /* executions_env (environment, seq, ...): a range of the 90-day window */
    rc = sqlite3_prepare_v2(cat->db,
                            "SELECT count(*), coalesce(sum(seq >= ?2), 0),"
                            " coalesce(sum(seq >= ?3), 0)"
                            " FROM executions WHERE environment = ?1 AND seq >= ?4",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_text(&b, name);
        bind_int64(&b, first[0]);
        bind_int64(&b, first[1]);
        bind_int64(&b, first[2]);
        rc = b.rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot count the runs of '%s'", name);
    ret[2] = sqlite3_column_int64(st, 0);
    ret[0] = sqlite3_column_int64(st, 1);
    ret[1] = sqlite3_column_int64(st, 2);
    return 0;
}

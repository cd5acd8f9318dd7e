/* tests/unit/test_catalog_env.c - environments, their numbered builds, build
 * logs and package inventories in the catalog (catalog/environments.c), on
 * real SQLite files in /tmp; the events changes record in their own
 * transaction; and the upgrade of a catalog left at schema version 1 by
 * migrations/0002_environments.sql. */
#include <pthread.h>

#include "core/buf.h"
#include "tests/unit/catalog_fixture.h"

#include "core/banned.h"

#define T0 1700000000000 /* a time in ms; tests add to it */

/* An environment as POST /environments would describe it (borrowed strings:
 * the catalog only reads them). */
static struct env_record env_def(const char *name)
{
    return (struct env_record){
        .name = (char *)name,
        .description = (char *)"for tests",
        .base_image = (char *)"envhub/python:bookworm",
        .setup_script = (char *)"pip install requests\n",
        .python_version = (char *)"3.11",
        .created_at = T0,
        .created_by = (char *)"alice",
    };
}

/* A build of @name with definition @def; the image tag says which. */
static struct build_record build_def(const char *name, const char *def, const char *image,
                                     int64_t queued_at)
{
    return (struct build_record){
        .environment = (char *)name,
        .base_image = (char *)"envhub/python:bookworm",
        .setup_script = (char *)"pip install requests\n",
        .python_version = (char *)"3.11",
        .definition = (char *)def,
        .image = (char *)image,
        .queued_at = queued_at,
        .created_by = (char *)"alice",
    };
}

/* Create @name with its first build; returns that build's id. */
static int64_t create_env(struct catalog *cat, const char *name, const char *def)
{
    struct env_record env = env_def(name);
    struct build_record b = build_def(name, def, "envhub-env/x:1", T0);
    struct err err = ERR_INIT;

    assert_int_equal(catalog_env_create(cat, &env, &b, &err), 0);
    assert_true(b.id > 0);
    assert_int_equal(b.version, 1);
    return b.id;
}

/* Queue the next build of @name; returns it (id and version set). */
static struct build_record queue(struct catalog *cat, const char *name, const char *def,
                                 const char *image, int64_t at)
{
    struct build_record b = build_def(name, def, image, at);
    struct err err = ERR_INIT;

    assert_int_equal(catalog_env_queue_build(cat, &b, true, &err), 0);
    return b;
}

/* What the builder hands over when build @id succeeded. */
static void succeed(struct catalog *cat, int64_t id, const char *image_id, int64_t at,
                    const struct package_entry *pkgs, size_t n)
{
    struct build_record b = {
        .id = id,
        .image_id = (char *)image_id,
        .base_image_id = (char *)"sha256:base",
        .python_found = (char *)"Python 3.11.2",
        .finished_at = at,
    };
    struct err err = ERR_INIT;

    assert_int_equal(catalog_build_succeed(cat, &b, pkgs, n, &err), 0);
}

static struct env_record get_env(struct catalog *cat, const char *name)
{
    struct env_record env;
    struct err err = ERR_INIT;

    assert_int_equal(catalog_env_get(cat, name, &env, &err), 0);
    return env;
}

static struct build_record get_build(struct catalog *cat, int64_t id)
{
    struct build_record b;
    struct err err = ERR_INIT;

    assert_int_equal(catalog_build_get_by_id(cat, id, &b, &err), 0);
    return b;
}

static void append_lines(struct catalog *cat, int64_t id, int n)
{
    struct err err = ERR_INIT;

    for (int i = 0; i < n; i++) {
        char line[32];
        snprintf(line, sizeof(line), "step %d", i + 1);
        assert_int_equal(catalog_build_log_append(cat, id, T0 + i, line, NULL, &err), 0);
    }
}

/* ---- creating ---- */

static void create_then_get_is_building_at_version_0_with_build_1_queued(void **state)
{
    struct catalog_fixture *fx = *state;
    struct env_record env = env_def("data-science");
    struct build_record b = build_def("ignored", "def-a", "envhub-env/data-science:1", T0 + 1);
    struct build_record got;
    struct err err = ERR_INIT;

    assert_int_equal(catalog_env_create(fx->cat, &env, &b, &err), 0);
    assert_true(b.id > 0);
    assert_int_equal(b.version, 1);

    env = get_env(fx->cat, "data-science");
    assert_string_equal(env.name, "data-science");
    assert_string_equal(env.description, "for tests");
    assert_string_equal(env.base_image, "envhub/python:bookworm");
    assert_string_equal(env.setup_script, "pip install requests\n");
    assert_string_equal(env.python_version, "3.11");
    assert_int_equal(env.status, ENV_BUILDING);
    assert_int_equal(env.version, 0);
    assert_null(env.image);
    assert_null(env.image_id);
    assert_null(env.definition);
    assert_null(env.error);
    assert_int_equal(env.created_at, T0);
    assert_int_equal(env.updated_at, T0);
    assert_int_equal(env.last_used, 0);
    assert_string_equal(env.created_by, "alice");
    assert_int_equal(env.latest_version, 1);
    assert_string_equal(env.latest_status, "queued");
    env_record_release(&env);

    assert_int_equal(catalog_build_get(fx->cat, "data-science", 1, &got, &err), 0);
    assert_int_equal(got.id, b.id);
    assert_string_equal(got.environment, "data-science"); /* the env's, not build->environment */
    assert_int_equal(got.version, 1);
    assert_int_equal(got.status, BUILD_QUEUED);
    assert_string_equal(got.definition, "def-a");
    assert_string_equal(got.image, "envhub-env/data-science:1");
    assert_null(got.image_id);
    assert_null(got.base_image_id);
    assert_null(got.python_found);
    assert_false(got.cache_hit);
    assert_null(got.error);
    assert_int_equal(got.queued_at, T0 + 1);
    assert_int_equal(got.started_at, 0);
    assert_int_equal(got.finished_at, 0);
    assert_string_equal(got.created_by, "alice");
    assert_int_equal(got.log_lines, 0);
    build_record_release(&got);
}

static void create_of_an_existing_name_is_a_conflict_whatever_its_case(void **state)
{
    struct catalog_fixture *fx = *state;
    struct env_record env = env_def("web");
    struct build_record b = build_def("web", "def-w", "envhub-env/web:1", T0);
    struct build_record *builds = NULL;
    struct err err = ERR_INIT;
    size_t n = 99;

    create_env(fx->cat, "web", "def-w");

    assert_int_equal(catalog_env_create(fx->cat, &env, &b, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_string_equal(err.msg, "environment 'web' exists");

    err_clear(&err);
    env.name = (char *)"WeB";
    assert_int_equal(catalog_env_create(fx->cat, &env, &b, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_string_equal(err.msg, "environment 'WeB' exists (as 'web')");

    /* nothing was added: one environment, one build */
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM environments"), 1);
    assert_int_equal(catalog_build_list(fx->cat, "web", &builds, &n, &err), 0);
    assert_int_equal(n, 1);
    build_records_free(builds, n);
}

static void create_without_a_required_field_is_invalid(void **state)
{
    struct catalog_fixture *fx = *state;
    struct env_record env = env_def("x");
    struct build_record b = build_def("x", "def", "img", T0);
    struct err err = ERR_INIT;

    env.setup_script = NULL;
    assert_int_equal(catalog_env_create(fx->cat, &env, &b, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_string_equal(err.msg, "cannot create environment 'x': no setup_script");

    env = env_def("x");
    b.definition = NULL;
    assert_int_equal(catalog_env_create(fx->cat, &env, &b, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_string_equal(err.msg, "cannot create environment 'x': no definition");
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM environments"), 0);
}

/* ---- queueing and status transitions ---- */

static void queue_build_takes_the_next_version_and_refuses_a_second_unfinished_one(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t first = create_env(fx->cat, "ml", "def-1");
    struct build_record b = build_def("ml", "def-2", "envhub-env/ml:2", T0 + 10);
    struct env_record env;
    struct err err = ERR_INIT;

    /* version 1 is still queued */
    assert_int_equal(catalog_env_queue_build(fx->cat, &b, true, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_string_equal(err.msg, "a build of 'ml' is already queued or running (version 1)");

    /* ... and still when it is building */
    err_clear(&err);
    assert_int_equal(catalog_build_start(fx->cat, first, T0 + 5, &err), 0);
    assert_int_equal(catalog_env_queue_build(fx->cat, &b, true, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);

    /* once it has finished, version 2 */
    assert_int_equal(catalog_build_fail(fx->cat, first, BUILD_FAILED, "boom", T0 + 6, &err), 0);
    b = queue(fx->cat, "ml", "def-2", "envhub-env/ml:2", T0 + 10);
    assert_int_equal(b.version, 2);
    assert_true(b.id > first);

    /* versions never repeat, even after failures: 3 follows 2 */
    assert_int_equal(catalog_build_fail(fx->cat, b.id, BUILD_CANCELLED, "stop", T0 + 11, &err), 0);
    b = queue(fx->cat, "ml", "def-3", "envhub-env/ml:3", T0 + 12);
    assert_int_equal(b.version, 3);

    env = get_env(fx->cat, "ml");
    assert_int_equal(env.latest_version, 3);
    assert_string_equal(env.latest_status, "queued");
    assert_int_equal(env.updated_at, T0 + 12);
    env_record_release(&env);
}

static void first_build_failing_fails_the_environment_and_a_rebuild_makes_it_building(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "flaky", "def-1");
    struct build_record b;
    struct env_record env;
    struct err err = ERR_INIT;

    assert_int_equal(catalog_build_start(fx->cat, id, T0 + 1, &err), 0);
    assert_int_equal(catalog_build_fail(fx->cat, id, BUILD_FAILED,
                                        "setup script exited with status 1", T0 + 2, &err),
                     0);

    env = get_env(fx->cat, "flaky");
    assert_int_equal(env.status, ENV_FAILED);
    assert_int_equal(env.version, 0);
    assert_string_equal(env.error, "setup script exited with status 1");
    assert_int_equal(env.updated_at, T0 + 2);
    assert_int_equal(env.latest_version, 1);
    assert_string_equal(env.latest_status, "failed");
    env_record_release(&env);

    b = get_build(fx->cat, id);
    assert_int_equal(b.status, BUILD_FAILED);
    assert_string_equal(b.error, "setup script exited with status 1");
    assert_int_equal(b.started_at, T0 + 1);
    assert_int_equal(b.finished_at, T0 + 2);
    build_record_release(&b);

    b = queue(fx->cat, "flaky", "def-2", "envhub-env/flaky:2", T0 + 3);
    assert_int_equal(b.version, 2);
    env = get_env(fx->cat, "flaky");
    assert_int_equal(env.status, ENV_BUILDING);
    assert_int_equal(env.version, 0);
    assert_int_equal(env.latest_version, 2);
    assert_string_equal(env.latest_status, "queued");
    env_record_release(&env);
}

static void succeed_puts_the_version_in_service_with_its_packages(void **state)
{
    static const struct package_entry pkgs[] = {
        {(char *)"pip", (char *)"requests", (char *)"2.31.0"},
        {(char *)"dpkg", (char *)"tar", (char *)"1.34"},
        {(char *)"pip", (char *)"certifi", (char *)"2023.1"},
        {(char *)"pip", (char *)"requests", (char *)"2.32.0"}, /* listed twice: the last wins */
    };
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "web", "def-w");
    struct package_entry *got = NULL;
    struct build_record b;
    struct env_record env;
    struct err err = ERR_INIT;
    size_t n = 0;

    assert_int_equal(catalog_build_start(fx->cat, id, T0 + 1, &err), 0);
    succeed(fx->cat, id, "sha256:img1", T0 + 9, pkgs, ARRAY_SIZE(pkgs));

    env = get_env(fx->cat, "web");
    assert_int_equal(env.status, ENV_READY);
    assert_int_equal(env.version, 1);
    assert_string_equal(env.image, "envhub-env/x:1");
    assert_string_equal(env.image_id, "sha256:img1");
    assert_string_equal(env.definition, "def-w");
    assert_null(env.error);
    assert_int_equal(env.updated_at, T0 + 9);
    assert_int_equal(env.latest_version, 1);
    assert_string_equal(env.latest_status, "ready");
    env_record_release(&env);

    b = get_build(fx->cat, id);
    assert_int_equal(b.status, BUILD_READY);
    assert_string_equal(b.image_id, "sha256:img1");
    assert_string_equal(b.base_image_id, "sha256:base");
    assert_string_equal(b.python_found, "Python 3.11.2");
    assert_int_equal(b.finished_at, T0 + 9);
    assert_null(b.error);
    build_record_release(&b);

    assert_int_equal(catalog_build_packages(fx->cat, id, &got, &n, &err), 0);
    assert_int_equal(n, 3); /* by manager, then name */
    assert_string_equal(got[0].manager, "dpkg");
    assert_string_equal(got[0].name, "tar");
    assert_string_equal(got[0].version, "1.34");
    assert_string_equal(got[1].manager, "pip");
    assert_string_equal(got[1].name, "certifi");
    assert_string_equal(got[2].name, "requests");
    assert_string_equal(got[2].version, "2.32.0");
    package_entries_free(got, n);
}

static void a_cache_hit_can_succeed_straight_from_queued(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "cached", "def-c");
    struct build_record b = {
        .id = id, .image_id = (char *)"sha256:reused", .cache_hit = true, .finished_at = T0 + 1};
    struct package_entry dummy, *pkgs = &dummy; /* overwritten on success */
    struct err err = ERR_INIT;
    size_t n = 99;

    assert_int_equal(catalog_build_succeed(fx->cat, &b, NULL, 0, &err), 0);
    b = get_build(fx->cat, id);
    assert_int_equal(b.status, BUILD_READY);
    assert_true(b.cache_hit);
    assert_int_equal(b.started_at, 0);
    build_record_release(&b);

    assert_int_equal(catalog_build_packages(fx->cat, id, &pkgs, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(pkgs);
}

static void succeed_puts_the_new_definition_of_a_rebuild_into_the_environment(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "evolving", "def-1");
    struct build_record b;
    struct env_record env;
    struct err err = ERR_INIT;

    succeed(fx->cat, id, "sha256:v1", T0 + 1, NULL, 0);
    b = build_def("evolving", "def-2", "envhub-env/evolving:2", T0 + 2);
    b.setup_script = (char *)"pip install numpy\n";
    b.python_version = (char *)"3.12";
    b.base_image = (char *)"python:3.12-slim";
    assert_int_equal(catalog_env_queue_build(fx->cat, &b, true, &err), 0);

    /* while it builds, the environment still describes version 1 */
    env = get_env(fx->cat, "evolving");
    assert_int_equal(env.status, ENV_READY);
    assert_string_equal(env.setup_script, "pip install requests\n");
    env_record_release(&env);

    succeed(fx->cat, b.id, "sha256:v2", T0 + 3, NULL, 0);
    env = get_env(fx->cat, "evolving");
    assert_int_equal(env.version, 2);
    assert_string_equal(env.definition, "def-2");
    assert_string_equal(env.image, "envhub-env/evolving:2");
    assert_string_equal(env.setup_script, "pip install numpy\n");
    assert_string_equal(env.python_version, "3.12");
    assert_string_equal(env.base_image, "python:3.12-slim");
    assert_string_equal(env.description, "for tests"); /* not part of a build */
    env_record_release(&env);
}

static void failed_rebuild_of_a_ready_environment_keeps_it_ready_with_the_error(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "stable", "def-1");
    struct build_record b;
    struct env_record env;
    struct err err = ERR_INIT;

    succeed(fx->cat, id, "sha256:v1", T0 + 1, NULL, 0);
    b = queue(fx->cat, "stable", "def-2", "envhub-env/stable:2", T0 + 2);
    assert_int_equal(b.version, 2);

    /* queued on a ready environment: it stays ready and keeps serving */
    env = get_env(fx->cat, "stable");
    assert_int_equal(env.status, ENV_READY);
    assert_int_equal(env.version, 1);
    assert_int_equal(env.latest_version, 2);
    assert_string_equal(env.latest_status, "queued");
    env_record_release(&env);

    assert_int_equal(catalog_build_start(fx->cat, b.id, T0 + 3, &err), 0);
    assert_int_equal(
        catalog_build_fail(fx->cat, b.id, BUILD_FAILED, "pip: no matching version", T0 + 4, &err),
        0);
    env = get_env(fx->cat, "stable");
    assert_int_equal(env.status, ENV_READY);
    assert_int_equal(env.version, 1);
    assert_string_equal(env.image_id, "sha256:v1");
    assert_string_equal(env.definition, "def-1");
    assert_string_equal(env.error, "pip: no matching version");
    assert_int_equal(env.updated_at, T0 + 4);
    assert_string_equal(env.latest_status, "failed");
    env_record_release(&env);

    /* the next success clears the error */
    b = queue(fx->cat, "stable", "def-3", "envhub-env/stable:3", T0 + 5);
    succeed(fx->cat, b.id, "sha256:v3", T0 + 6, NULL, 0);
    env = get_env(fx->cat, "stable");
    assert_int_equal(env.version, 3);
    assert_null(env.error);
    env_record_release(&env);
}

static void late_success_of_an_older_build_does_not_move_the_environment_back(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t old_id = create_env(fx->cat, "race", "def-1");
    struct build_record newer, old;
    struct env_record env;
    struct err err = ERR_INIT;
    char sql[256];

    /* Only one build may be unfinished, so make the race behind the
     * catalog's back: version 2 is queued while version 1 still builds. */
    assert_int_equal(catalog_build_start(fx->cat, old_id, T0 + 1, &err), 0);
    snprintf(sql, sizeof(sql),
             "INSERT INTO builds (environment, version, status, base_image, setup_script,"
             " python_version, definition, image, queued_at) SELECT environment, 2, 'queued',"
             " base_image, setup_script, python_version, 'def-2', 'envhub-env/race:2', 5"
             " FROM builds WHERE id = %lld",
             (long long)old_id);
    raw_exec(fx->path, sql);
    assert_int_equal(catalog_build_get(fx->cat, "race", 2, &newer, &err), 0);

    succeed(fx->cat, newer.id, "sha256:v2", T0 + 2, NULL, 0);
    succeed(fx->cat, old_id, "sha256:v1", T0 + 3, NULL, 0);

    env = get_env(fx->cat, "race");
    assert_int_equal(env.status, ENV_READY);
    assert_int_equal(env.version, 2);
    assert_string_equal(env.image_id, "sha256:v2");
    assert_string_equal(env.definition, "def-2");
    assert_string_equal(env.image, "envhub-env/race:2");
    assert_int_equal(env.updated_at, T0 + 2);
    env_record_release(&env);
    build_record_release(&newer);

    /* the older build did finish, and says so */
    old = get_build(fx->cat, old_id);
    assert_int_equal(old.status, BUILD_READY);
    assert_string_equal(old.image_id, "sha256:v1");
    build_record_release(&old);
}

static void finishing_a_finished_build_is_a_conflict_and_changes_nothing(void **state)
{
    static const struct package_entry pkgs[] = {{(char *)"pip", (char *)"x", (char *)"1"}};
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "done", "def-1");
    struct build_record b = {.id = id, .image_id = (char *)"sha256:late", .finished_at = T0 + 5};
    struct env_record env;
    struct err err = ERR_INIT;

    succeed(fx->cat, id, "sha256:v1", T0 + 1, NULL, 0);

    assert_int_equal(catalog_build_fail(fx->cat, id, BUILD_CANCELLED, "late", T0 + 2, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_string_equal(err.msg, "cannot finish build 1 (version 1 of 'done'): it is ready");

    err_clear(&err);
    assert_int_equal(catalog_build_succeed(fx->cat, &b, pkgs, 1, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);

    env = get_env(fx->cat, "done");
    assert_null(env.error);
    assert_string_equal(env.image_id, "sha256:v1");
    env_record_release(&env);
    b = get_build(fx->cat, id);
    assert_int_equal(b.status, BUILD_READY);
    assert_string_equal(b.image_id, "sha256:v1");
    build_record_release(&b);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM packages"), 0);
}

static void fail_with_a_status_that_is_not_a_failure_is_invalid(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "x", "def");
    struct err err = ERR_INIT;

    assert_int_equal(catalog_build_fail(fx->cat, id, BUILD_READY, "?", T0, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_int_equal(catalog_build_fail(fx->cat, id, (enum build_status)42, "?", T0, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
}

static void succeed_with_an_unknown_package_manager_is_invalid_and_changes_nothing(void **state)
{
    static const struct package_entry pkgs[] = {
        {(char *)"pip", (char *)"ok", (char *)"1"},
        {(char *)"npm", (char *)"left-pad", (char *)"1.3.0"},
    };
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "x", "def");
    struct build_record b = {.id = id, .image_id = (char *)"sha256:x", .finished_at = T0};
    struct err err = ERR_INIT;

    assert_int_equal(catalog_build_succeed(fx->cat, &b, pkgs, ARRAY_SIZE(pkgs), &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_non_null(strstr(err.msg, "'left-pad' has an unknown manager 'npm'"));
    b = get_build(fx->cat, id);
    assert_int_equal(b.status, BUILD_QUEUED);
    build_record_release(&b);
}

/* ---- starting, requeueing, listing ---- */

static void start_moves_queued_to_building_and_refuses_anything_else(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "s", "def");
    struct build_record b;
    struct err err = ERR_INIT;

    assert_int_equal(catalog_build_start(fx->cat, id, T0 + 7, &err), 0);
    b = get_build(fx->cat, id);
    assert_int_equal(b.status, BUILD_BUILDING);
    assert_int_equal(b.started_at, T0 + 7);
    build_record_release(&b);

    assert_int_equal(catalog_build_start(fx->cat, id, T0 + 8, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_string_equal(err.msg, "cannot start build 1 (version 1 of 's'): it is building");
    b = get_build(fx->cat, id);
    assert_int_equal(b.started_at, T0 + 7);
    build_record_release(&b);
}

static void list_unfinished_has_queued_and_building_builds_oldest_first(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t a = create_env(fx->cat, "a", "def-a");
    int64_t b = create_env(fx->cat, "b", "def-b");
    int64_t c = create_env(fx->cat, "c", "def-c");
    struct build_record *list = NULL;
    struct err err = ERR_INIT;
    size_t n = 0;

    assert_int_equal(catalog_build_start(fx->cat, b, T0 + 1, &err), 0);
    assert_int_equal(catalog_build_start(fx->cat, c, T0 + 1, &err), 0);
    succeed(fx->cat, c, "sha256:c", T0 + 2, NULL, 0);

    assert_int_equal(catalog_build_list_unfinished(fx->cat, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, a);
    assert_int_equal(list[0].status, BUILD_QUEUED);
    assert_string_equal(list[0].environment, "a");
    assert_int_equal(list[1].id, b);
    assert_int_equal(list[1].status, BUILD_BUILDING);
    build_records_free(list, n);

    succeed(fx->cat, a, "sha256:a", T0 + 3, NULL, 0);
    assert_int_equal(catalog_build_fail(fx->cat, b, BUILD_FAILED, "x", T0 + 3, &err), 0);
    list = &(struct build_record){0}; /* overwritten on success */
    assert_int_equal(catalog_build_list_unfinished(fx->cat, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(list);
}

static void requeue_returns_a_building_build_to_the_queue_keeping_its_log(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "r", "def");
    struct build_record b;
    struct err err = ERR_INIT;
    int64_t seq = 0;

    assert_int_equal(catalog_build_start(fx->cat, id, T0 + 1, &err), 0);
    append_lines(fx->cat, id, 3);

    assert_int_equal(catalog_build_requeue(fx->cat, id, &err), 0);
    b = get_build(fx->cat, id);
    assert_int_equal(b.status, BUILD_QUEUED);
    assert_int_equal(b.started_at, 0);
    assert_int_equal(b.log_lines, 3);
    build_record_release(&b);

    /* queued again is fine; it starts again and its log goes on */
    assert_int_equal(catalog_build_requeue(fx->cat, id, &err), 0);
    assert_int_equal(catalog_build_start(fx->cat, id, T0 + 20, &err), 0);
    assert_int_equal(catalog_build_log_append(fx->cat, id, T0 + 21, "again", &seq, &err), 0);
    assert_int_equal(seq, 4);

    succeed(fx->cat, id, "sha256:r", T0 + 22, NULL, 0);
    assert_int_equal(catalog_build_requeue(fx->cat, id, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_string_equal(err.msg, "cannot requeue build 1 (version 1 of 'r'): it is ready");
}

static void list_orders_environments_by_name_with_their_newest_build(void **state)
{
    struct catalog_fixture *fx = *state;
    struct env_record *envs = NULL;
    struct err err = ERR_INIT;
    struct build_record b;
    size_t n = 0;

    assert_int_equal(catalog_env_list(fx->cat, &envs, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(envs);

    create_env(fx->cat, "zeta", "def-z");
    int64_t id = create_env(fx->cat, "alpha", "def-a");
    create_env(fx->cat, "Mid", "def-m");
    succeed(fx->cat, id, "sha256:a1", T0 + 1, NULL, 0);
    b = queue(fx->cat, "alpha", "def-a2", "envhub-env/alpha:2", T0 + 2);
    assert_int_equal(catalog_build_start(fx->cat, b.id, T0 + 3, &err), 0);

    assert_int_equal(catalog_env_list(fx->cat, &envs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(envs[0].name, "Mid"); /* byte order: upper case first */
    assert_string_equal(envs[1].name, "alpha");
    assert_string_equal(envs[2].name, "zeta");
    assert_int_equal(envs[1].status, ENV_READY);
    assert_int_equal(envs[1].version, 1);
    assert_int_equal(envs[1].latest_version, 2);
    assert_string_equal(envs[1].latest_status, "building");
    assert_int_equal(envs[2].status, ENV_BUILDING);
    assert_int_equal(envs[2].latest_version, 1);
    assert_string_equal(envs[2].latest_status, "queued");
    env_records_free(envs, n);
}

static void build_list_is_newest_first_with_log_line_counts(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "hist", "def-1");
    struct build_record *list = NULL, b;
    struct err err = ERR_INIT;
    size_t n = 0;

    append_lines(fx->cat, id, 5);
    assert_int_equal(catalog_build_fail(fx->cat, id, BUILD_FAILED, "x", T0 + 1, &err), 0);
    b = queue(fx->cat, "hist", "def-2", "envhub-env/hist:2", T0 + 2);
    append_lines(fx->cat, b.id, 2);
    create_env(fx->cat, "other", "def-o");

    assert_int_equal(catalog_build_list(fx->cat, "hist", &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].version, 2);
    assert_int_equal(list[0].log_lines, 2);
    assert_string_equal(list[0].definition, "def-2");
    assert_int_equal(list[1].version, 1);
    assert_int_equal(list[1].log_lines, 5);
    assert_int_equal(list[1].status, BUILD_FAILED);
    build_records_free(list, n);
}

/* ---- logs ---- */

static void log_append_numbers_lines_from_1_and_read_pages_with_after_and_limit(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "logs", "def");
    int64_t other = create_env(fx->cat, "other", "def-o");
    struct log_line *lines = NULL;
    struct err err = ERR_INIT;
    int64_t seq = 0;
    size_t n = 0;

    assert_int_equal(catalog_build_log_append(fx->cat, id, T0, "Step 1/6 : FROM x", &seq, &err), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(catalog_build_log_append(fx->cat, other, T0, "other", &seq, &err), 0);
    assert_int_equal(seq, 1); /* numbered per build */
    append_lines(fx->cat, id, 4);
    assert_int_equal(catalog_build_log_append(fx->cat, id, T0 + 9, NULL, &seq, &err), 0);
    assert_int_equal(seq, 6);

    assert_int_equal(catalog_build_log_read(fx->cat, id, 0, 100, &lines, &n, &err), 0);
    assert_int_equal(n, 6);
    assert_int_equal(lines[0].seq, 1);
    assert_int_equal(lines[0].at, T0);
    assert_string_equal(lines[0].line, "Step 1/6 : FROM x");
    assert_string_equal(lines[1].line, "step 1");
    assert_string_equal(lines[5].line, ""); /* NULL is stored as "" */
    log_lines_free(lines, n);

    assert_int_equal(catalog_build_log_read(fx->cat, id, 2, 2, &lines, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(lines[0].seq, 3);
    assert_string_equal(lines[0].line, "step 2");
    assert_int_equal(lines[1].seq, 4);
    log_lines_free(lines, n);

    assert_int_equal(catalog_build_log_read(fx->cat, id, 6, 10, &lines, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(lines);
    assert_int_equal(catalog_build_log_read(fx->cat, id, 0, 0, &lines, &n, &err), 0);
    assert_int_equal(n, 0);

    struct build_record b = get_build(fx->cat, id);
    assert_int_equal(b.log_lines, 6);
    build_record_release(&b);
}

struct appender {
    struct catalog *cat;
    int64_t build;
    int failures;
};

#define APPEND_THREADS 4
#define APPEND_PER_THREAD 50

static void *append_many(void *arg)
{
    struct appender *a = arg;

    for (int i = 0; i < APPEND_PER_THREAD; i++) {
        struct err err = ERR_INIT;
        if (catalog_build_log_append(a->cat, a->build, T0 + i, "line", NULL, &err) < 0)
            a->failures++;
    }
    return NULL;
}

static void concurrent_appends_number_lines_without_gaps_or_repeats(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "busy", "def");
    struct appender ap[APPEND_THREADS];
    pthread_t th[APPEND_THREADS];
    struct log_line *lines = NULL;
    struct err err = ERR_INIT;
    size_t n = 0;

    for (int i = 0; i < APPEND_THREADS; i++) {
        ap[i] = (struct appender){.cat = fx->cat, .build = id, .failures = 0};
        assert_int_equal(pthread_create(&th[i], NULL, append_many, &ap[i]), 0);
    }
    for (int i = 0; i < APPEND_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ap[i].failures, 0);
    }
    assert_int_equal(catalog_build_log_read(fx->cat, id, 0, 1000, &lines, &n, &err), 0);
    assert_int_equal(n, APPEND_THREADS * APPEND_PER_THREAD);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(lines[i].seq, (int64_t)i + 1);
    log_lines_free(lines, n);
}

/* ---- definitions ---- */

static void find_ready_by_definition_returns_the_newest_ready_build_of_any_environment(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t a = create_env(fx->cat, "a", "same");
    int64_t b = create_env(fx->cat, "b", "same");
    int64_t c = create_env(fx->cat, "c", "same"); /* never ready */
    struct build_record got;
    struct err err = ERR_INIT;

    assert_int_equal(catalog_build_find_ready_by_definition(fx->cat, "same", &got, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);

    succeed(fx->cat, a, "sha256:a", T0 + 1, NULL, 0);
    succeed(fx->cat, b, "sha256:b", T0 + 2, NULL, 0);
    assert_int_equal(catalog_build_fail(fx->cat, c, BUILD_FAILED, "x", T0 + 3, &err), 0);

    assert_int_equal(catalog_build_find_ready_by_definition(fx->cat, "same", &got, &err), 0);
    assert_int_equal(got.id, b);
    assert_string_equal(got.environment, "b");
    assert_string_equal(got.image_id, "sha256:b");
    build_record_release(&got);

    err_clear(&err);
    assert_int_equal(catalog_build_find_ready_by_definition(fx->cat, "other", &got, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
}

/* ---- deleting and touching ---- */

static void delete_removes_builds_logs_and_packages_but_not_executions(void **state)
{
    static const struct package_entry pkgs[] = {{(char *)"pip", (char *)"x", (char *)"1"}};
    struct catalog_fixture *fx = *state;
    int64_t id = create_env(fx->cat, "gone", "def");
    int64_t keep = create_env(fx->cat, "kept", "def-k");
    struct execution_record rec = {
        .id = (char *)"ex_000000000000000000000001",
        .environment = (char *)"gone",
        .environment_version = 1,
        .image = (char *)"envhub-env/gone:1",
        .code = (char *)"print(1)",
        .timeout_s = 30,
        .status = EXEC_QUEUED,
        .exit_code = -1,
        .queued_at = T0,
        .duration_ms = -1,
    };
    struct build_record b;
    struct err err = ERR_INIT;
    int64_t count = 0;

    append_lines(fx->cat, id, 3);
    append_lines(fx->cat, keep, 2);
    succeed(fx->cat, id, "sha256:g", T0 + 1, pkgs, 1);
    succeed(fx->cat, keep, "sha256:k", T0 + 1, pkgs, 1);
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), 0);

    assert_int_equal(catalog_env_delete(fx->cat, "gone", T0 + 2, "bob", &err), 0);
    assert_int_equal(catalog_env_get(fx->cat, "gone", &(struct env_record){0}, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_int_equal(catalog_build_get_by_id(fx->cat, id, &b, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM builds"), 1);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM build_logs"), 2);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM packages"), 1);
    assert_int_equal(catalog_execution_count(fx->cat, &count, &err), 0);
    assert_int_equal(count, 1);
    assert_int_equal(
        raw_int(fx->path, "SELECT count(*) FROM executions WHERE environment = 'gone'"), 1);

    /* a builder still working on it learns the build is gone */
    err_clear(&err);
    assert_int_equal(catalog_build_log_append(fx->cat, id, T0, "late", NULL, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_string_equal(err.msg, "build 1 not found");

    /* the name is free again, and versions start over (create_env checks 1) */
    create_env(fx->cat, "gone", "def");
    assert_int_equal(catalog_env_delete(fx->cat, "gone", T0 + 2, "bob", &err), 0);
    assert_int_equal(catalog_env_delete(fx->cat, "gone", T0 + 2, "bob", &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
}

static void touch_sets_last_used(void **state)
{
    struct catalog_fixture *fx = *state;
    struct env_record env;
    struct err err = ERR_INIT;

    create_env(fx->cat, "used", "def");
    assert_int_equal(catalog_env_touch(fx->cat, "used", T0 + 500, &err), 0);
    env = get_env(fx->cat, "used");
    assert_int_equal(env.last_used, T0 + 500);
    assert_int_equal(env.updated_at, T0); /* use is not a change */
    env_record_release(&env);

    assert_int_equal(catalog_env_touch(fx->cat, "used", T0 + 600, &err), 0);
    env = get_env(fx->cat, "used");
    assert_int_equal(env.last_used, T0 + 600);
    env_record_release(&env);
}

static void unknown_names_and_ids_are_not_found_and_lists_of_them_empty(void **state)
{
    struct catalog_fixture *fx = *state;
    struct build_record b = build_def("nope", "def", "img", T0);
    struct env_record env;
    struct build_record *builds = NULL;
    struct log_line *lines = NULL;
    struct package_entry *pkgs = NULL;
    struct err err = ERR_INIT;
    size_t n = 0;

    create_env(fx->cat, "Known", "def");

#define EXPECT_NOT_FOUND(call, message)                                                            \
    do {                                                                                           \
        err_clear(&err);                                                                           \
        assert_int_equal((call), -1);                                                              \
        assert_int_equal(err.code, ERR_NOT_FOUND);                                                 \
        assert_string_equal(err.msg, (message));                                                   \
    } while (0)

    EXPECT_NOT_FOUND(catalog_env_get(fx->cat, "nope", &env, &err),
                     "environment 'nope' does not exist");
    EXPECT_NOT_FOUND(catalog_env_get(fx->cat, "known", &env, &err), /* exact case */
                     "environment 'known' does not exist");
    EXPECT_NOT_FOUND(catalog_env_queue_build(fx->cat, &b, true, &err),
                     "environment 'nope' does not exist");
    EXPECT_NOT_FOUND(catalog_env_delete(fx->cat, "nope", T0, "bob", &err),
                     "environment 'nope' does not exist");
    EXPECT_NOT_FOUND(catalog_env_touch(fx->cat, "nope", T0, &err),
                     "environment 'nope' does not exist");
    EXPECT_NOT_FOUND(catalog_build_get(fx->cat, "Known", 2, &b, &err),
                     "version 2 of environment 'Known' not found");
    EXPECT_NOT_FOUND(catalog_build_get_by_id(fx->cat, 99, &b, &err), "build 99 not found");
    EXPECT_NOT_FOUND(catalog_build_start(fx->cat, 99, T0, &err), "build 99 not found");
    EXPECT_NOT_FOUND(catalog_build_requeue(fx->cat, 99, &err), "build 99 not found");
    EXPECT_NOT_FOUND(catalog_build_fail(fx->cat, 99, BUILD_FAILED, "x", T0, &err),
                     "build 99 not found");
    b = (struct build_record){.id = 99};
    EXPECT_NOT_FOUND(catalog_build_succeed(fx->cat, &b, NULL, 0, &err), "build 99 not found");
    EXPECT_NOT_FOUND(catalog_build_log_append(fx->cat, 99, T0, "x", NULL, &err),
                     "build 99 not found");
#undef EXPECT_NOT_FOUND

    /* the lists are empty instead: a follower of a deleted build reads no
     * more lines, and deleting an unknown name lists no builds */
    n = 99;
    assert_int_equal(catalog_build_list(fx->cat, "nope", &builds, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(builds);
    n = 99;
    assert_int_equal(catalog_build_log_read(fx->cat, 99, 0, 10, &lines, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(lines);
    n = 99;
    assert_int_equal(catalog_build_packages(fx->cat, 99, &pkgs, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(pkgs);

    /* nothing was written */
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM build_logs"), 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM builds"), 1);
}

/* ---- change events ---- */

/* The events of @subject, oldest first, as "action by principal at +ms: detail" lines. */
static char *events_of(struct catalog *cat, const char *subject)
{
    struct event_record *ev = NULL;
    struct buf out = BUF_INIT(BUF_UNLIMITED);
    struct err err = ERR_INIT;
    size_t n = 0;

    assert_int_equal(catalog_event_list(cat, subject, 100, &ev, &n, &err), 0);
    for (size_t i = n; i-- > 0;)
        buf_putf(&out, "%s by %s at +%lld: %s\n", ev[i].action, ev[i].principal,
                 (long long)(ev[i].at - T0), ev[i].detail);
    event_records_free(ev, n);
    return buf_detach(&out, NULL);
}

static void changes_record_their_events_with_them(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    char *got;

    int64_t first = create_env(fx->cat, "ev", "def");
    /* a refused change records nothing */
    struct build_record busy = build_def("ev", "def-2", "envhub-env/ev:2", T0 + 1);
    assert_int_equal(catalog_env_queue_build(fx->cat, &busy, true, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_int_equal(catalog_build_fail(fx->cat, first, BUILD_CANCELLED, "x", T0 + 1, &err), 0);
    struct build_record two = queue(fx->cat, "ev", "def-2", "envhub-env/ev:2", T0 + 1);
    assert_int_equal(two.version, 2);
    /* a build the server queues as part of another change records none of its own */
    assert_int_equal(catalog_build_fail(fx->cat, two.id, BUILD_CANCELLED, "x", T0 + 3, &err), 0);
    struct build_record quiet = build_def("ev", "def-4", "envhub-env/ev:3", T0 + 4);
    assert_int_equal(catalog_env_queue_build(fx->cat, &quiet, false, &err), 0);
    assert_int_equal(quiet.version, 3);
    assert_int_equal(catalog_env_delete(fx->cat, "ev", T0 + 5, "bob", &err), 0);
    assert_int_equal(catalog_env_delete(fx->cat, "ev", T0 + 6, "bob", &err), -1);

    got = events_of(fx->cat, "ev");
    assert_string_equal(got, "environment.create by alice at +0: \n"
                             "environment.rebuild by alice at +1: version 2\n"
                             "environment.delete by bob at +5: \n");
    free(got);
}

static void a_change_whose_event_cannot_be_stored_is_not_made(void **state)
{
    struct catalog_fixture *fx = *state;
    struct env_record env = env_def("ev");
    struct build_record b = build_def("ev", "def", "envhub-env/ev:1", T0);
    struct err err = ERR_INIT;

    raw_exec(fx->path, "CREATE TRIGGER events_closed BEFORE INSERT ON events"
                       " BEGIN SELECT RAISE(ABORT, 'events are closed'); END");
    assert_int_equal(catalog_env_create(fx->cat, &env, &b, &err), -1);
    assert_string_equal(err.msg,
                        "cannot record event 'environment.create' of 'ev': events are closed");
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM environments"), 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM builds"), 0);

    raw_exec(fx->path, "DROP TRIGGER events_closed");
    int64_t id = create_env(fx->cat, "ev", "def");
    assert_int_equal(catalog_build_fail(fx->cat, id, BUILD_FAILED, "x", T0 + 1, &err), 0);
    raw_exec(fx->path, "CREATE TRIGGER events_closed BEFORE INSERT ON events"
                       " BEGIN SELECT RAISE(ABORT, 'events are closed'); END");
    b = build_def("ev", "def-2", "envhub-env/ev:2", T0 + 2);
    assert_int_equal(catalog_env_queue_build(fx->cat, &b, true, &err), -1);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM builds"), 1);
    assert_int_equal(catalog_env_delete(fx->cat, "ev", T0 + 3, "bob", &err), -1);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM environments"), 1);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM events"), 1); /* the create */
}

/* ---- migrations ---- */

static void a_catalog_left_at_version_1_upgrades_to_2_and_keeps_its_executions(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec;
    struct err err = ERR_INIT;
    int version = -1;
    sqlite3 *db;

    /* A file made by the build that knew only 0001_init. */
    assert_non_null(strstr(migrations_embedded[0].path, "0001_init.sql"));
    db = raw_open_migrated_before(fx->path, "0002_");
    assert_int_equal(catalog_migrate_version(db, &version, &err), 0);
    assert_int_equal(version, 1);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO executions (id, image, code, code_sha256,"
                                  " timeout_s, status, queued_at) VALUES ('ex_old', 'img',"
                                  " 'print(1)', 'abc', 30, 'succeeded', 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(catalog_open(fx->path, &fx->cat, &err), 0);
    assert_int_equal(catalog_schema_version(fx->cat, &version, &err), 0);
    assert_true(version >= 2);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM schema_migrations WHERE version = 2"
                                       " AND name = 'environments'"),
                     1);
    assert_int_equal(catalog_execution_get(fx->cat, "ex_old", &rec, &err), 0);
    assert_int_equal(rec.status, EXEC_SUCCEEDED);
    execution_record_release(&rec);

    /* and the new tables work */
    int64_t id = create_env(fx->cat, "after-upgrade", "def");
    append_lines(fx->cat, id, 1);
    succeed(fx->cat, id, "sha256:u", T0, NULL, 0);
    struct env_record env = get_env(fx->cat, "after-upgrade");
    assert_int_equal(env.status, ENV_READY);
    env_record_release(&env);
}

/* ---- plain functions ---- */

static void status_names_round_trip(void **state)
{
    static const char *const builds[] = {"queued", "building", "ready", "failed", "cancelled"};
    static const char *const envs[] = {"building", "ready", "failed"};

    (void)state;
    for (int s = BUILD_QUEUED; s <= BUILD_CANCELLED; s++) {
        assert_string_equal(build_status_name((enum build_status)s), builds[s]);
        assert_int_equal(build_status_parse(builds[s]), s);
    }
    assert_int_equal(build_status_parse("Ready"), -1);
    assert_int_equal(build_status_parse(""), -1);
    assert_int_equal(build_status_parse(NULL), -1);
    assert_string_equal(build_status_name((enum build_status)99), "unknown");
    for (int s = ENV_BUILDING; s <= ENV_FAILED; s++)
        assert_string_equal(env_status_name((enum env_status)s), envs[s]);
    assert_string_equal(env_status_name((enum env_status) - 1), "unknown");
}

static void release_and_free_accept_null_and_free_everything(void **state)
{
    static const struct env_record zero_env;
    static const struct build_record zero_build;
    struct env_record env = {
        .name = xstrdup("n"), .error = xstrdup("e"), .latest_status = xstrdup("ready")};
    struct build_record b = {.environment = xstrdup("n"), .python_found = xstrdup("p")};
    struct package_entry *pkgs = xcalloc(2, sizeof(*pkgs));
    struct log_line *lines = xcalloc(1, sizeof(*lines));
    struct env_record *envs = xcalloc(2, sizeof(*envs));
    struct build_record *builds = xcalloc(1, sizeof(*builds));

    (void)state;
    env_record_release(&env); /* valgrind checks the freeing */
    assert_memory_equal(&env, &zero_env, sizeof(env));
    env_record_release(&env);
    env_record_release(NULL);
    build_record_release(&b);
    assert_memory_equal(&b, &zero_build, sizeof(b));
    build_record_release(NULL);

    pkgs[0] = (struct package_entry){xstrdup("pip"), xstrdup("a"), xstrdup("1")};
    package_entries_free(pkgs, 2); /* the second is all NULL */
    package_entries_free(NULL, 3);
    lines[0].line = xstrdup("x");
    log_lines_free(lines, 1);
    log_lines_free(NULL, 0);
    envs[1].description = xstrdup("d");
    env_records_free(envs, 2);
    env_records_free(NULL, 1);
    builds[0].image = xstrdup("i");
    build_records_free(builds, 1);
    build_records_free(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CATALOG_TEST(create_then_get_is_building_at_version_0_with_build_1_queued),
        CATALOG_TEST(create_of_an_existing_name_is_a_conflict_whatever_its_case),
        CATALOG_TEST(create_without_a_required_field_is_invalid),
        CATALOG_TEST(queue_build_takes_the_next_version_and_refuses_a_second_unfinished_one),
        CATALOG_TEST(first_build_failing_fails_the_environment_and_a_rebuild_makes_it_building),
        CATALOG_TEST(succeed_puts_the_version_in_service_with_its_packages),
        CATALOG_TEST(a_cache_hit_can_succeed_straight_from_queued),
        CATALOG_TEST(succeed_puts_the_new_definition_of_a_rebuild_into_the_environment),
        CATALOG_TEST(failed_rebuild_of_a_ready_environment_keeps_it_ready_with_the_error),
        CATALOG_TEST(late_success_of_an_older_build_does_not_move_the_environment_back),
        CATALOG_TEST(finishing_a_finished_build_is_a_conflict_and_changes_nothing),
        CATALOG_TEST(fail_with_a_status_that_is_not_a_failure_is_invalid),
        CATALOG_TEST(succeed_with_an_unknown_package_manager_is_invalid_and_changes_nothing),
        CATALOG_TEST(start_moves_queued_to_building_and_refuses_anything_else),
        CATALOG_TEST(list_unfinished_has_queued_and_building_builds_oldest_first),
        CATALOG_TEST(requeue_returns_a_building_build_to_the_queue_keeping_its_log),
        CATALOG_TEST(list_orders_environments_by_name_with_their_newest_build),
        CATALOG_TEST(build_list_is_newest_first_with_log_line_counts),
        CATALOG_TEST(log_append_numbers_lines_from_1_and_read_pages_with_after_and_limit),
        CATALOG_TEST(concurrent_appends_number_lines_without_gaps_or_repeats),
        CATALOG_TEST(find_ready_by_definition_returns_the_newest_ready_build_of_any_environment),
        CATALOG_TEST(delete_removes_builds_logs_and_packages_but_not_executions),
        CATALOG_TEST(touch_sets_last_used),
        CATALOG_TEST(unknown_names_and_ids_are_not_found_and_lists_of_them_empty),
        CATALOG_TEST(changes_record_their_events_with_them),
        CATALOG_TEST(a_change_whose_event_cannot_be_stored_is_not_made),
        CATALOG_FILE_TEST(a_catalog_left_at_version_1_upgrades_to_2_and_keeps_its_executions),
        cmocka_unit_test(status_names_round_trip),
        cmocka_unit_test(release_and_free_accept_null_and_free_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

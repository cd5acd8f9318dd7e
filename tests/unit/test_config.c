/* tests/unit/test_config.c - config_load (core/config.c): defaults, then
 * environment variables, then flags; arguments it does not know stay in argv
 * in order; errors name the flag or variable and the accepted range. Every
 * test starts from an environment without any envhub variable and calls
 * config_release whatever config_load answered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/err.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)

/* Every variable config.c reads; the tests must not see the caller's. */
static const char *const config_vars[] = {
    "ENVHUB_LISTEN",
    "ENVHUB_DB",
    "DOCKER_HOST",
    "DOCKER_IMAGE",
    "NETWORK_MODE",
    "ENVHUB_JOB_TRANSPORT",
    "WORK_DIR",
    "ENVHUB_CORS_ORIGINS",
    "ENVHUB_LABELS",
    "ENVHUB_REGISTRY",
    "ENVHUB_CLUSTER",
    "ENVHUB_NODE_KEY_FILE",
    "ENVHUB_NODE_TIMEOUT",
    "ENVHUB_LOG_LEVEL",
    "SANDBOX_TIMEOUT",
    "ENVHUB_MAX_TIMEOUT",
    "MAX_CODE_LENGTH",
    "MAX_FILE_SIZE",
    "ENVHUB_MAX_FILES",
    "ENVHUB_MAX_BODY",
    "MEMORY_LIMIT",
    "CPU_LIMIT",
    "ENVHUB_PIDS_LIMIT",
    "ENVHUB_WORKSPACE_SIZE",
    "ENVHUB_TMP_SIZE",
    "ENVHUB_TMPFS_INODES",
    "ENVHUB_OUTPUT_LIMIT",
    "ENVHUB_OUTPUT_FILES_LIMIT",
    "CONCURRENT_LIMIT",
    "ENVHUB_QUEUE_LIMIT",
    "ENVHUB_THREADS",
    "ENVHUB_MAX_SCRIPT_LENGTH",
    "ENVHUB_BUILD_TIMEOUT",
    "ENVHUB_BUILD_CONCURRENCY",
    "ENVHUB_BUILD_MEMORY",
    "ENVHUB_BUILD_CPU",
    "ENVHUB_BUILD_PIDS",
};

static int clean_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(config_vars) / sizeof(config_vars[0]); i++)
        unsetenv(config_vars[i]);
    return 0;
}

#define MAX_ARGS 16

/* A mutable argv built from literals; `owned` keeps every string so they
 * can be freed after config_load has dropped some of them from argv. */
struct args {
    int argc;
    char *argv[MAX_ARGS + 1];
    char *owned[MAX_ARGS];
    int n_owned;
};

static void args_init(struct args *a, ...)
{
    va_list ap;
    const char *s;

    memset(a, 0, sizeof(*a));
    a->owned[a->n_owned++] = xstrdup("envhub");
    va_start(ap, a);
    while ((s = va_arg(ap, const char *)) != NULL) {
        assert_true(a->n_owned < MAX_ARGS);
        a->owned[a->n_owned++] = xstrdup(s);
    }
    va_end(ap);
    for (int i = 0; i < a->n_owned; i++)
        a->argv[i] = a->owned[i];
    a->argv[a->n_owned] = NULL;
    a->argc = a->n_owned;
}

static void args_release(struct args *a)
{
    for (int i = 0; i < a->n_owned; i++)
        free(a->owned[i]);
    memset(a, 0, sizeof(*a));
}

/* Load with the given arguments, expecting success. */
static void load_ok(struct config *cfg, struct args *a)
{
    struct err err = ERR_INIT;
    if (config_load(cfg, &a->argc, a->argv, &err) != 0)
        fail_msg("config_load failed: %s", err.msg);
}

/* Load expecting failure; the message must contain every word given. */
static void load_fails(struct args *a, ...)
{
    struct config cfg;
    struct err err = ERR_INIT;
    va_list ap;
    const char *word;

    int r = config_load(&cfg, &a->argc, a->argv, &err);
    config_release(&cfg); /* whatever config_load allocated before failing */
    if (r != -1)
        fail_msg("config_load succeeded where it should fail");
    assert_int_equal(err.code, ERR_INVALID);
    va_start(ap, a);
    while ((word = va_arg(ap, const char *)) != NULL)
        if (!strstr(err.msg, word)) {
            va_end(ap);
            fail_msg("error '%s' does not mention '%s'", err.msg, word);
        }
    va_end(ap);
}

static void env_fails(const char *name, const char *value, ...)
{
    struct config cfg;
    struct err err = ERR_INIT;
    struct args a;
    va_list ap;
    const char *word;

    setenv(name, value, 1);
    args_init(&a, NULL);
    int r = config_load(&cfg, &a.argc, a.argv, &err);
    config_release(&cfg);
    args_release(&a);
    unsetenv(name);
    if (r != -1)
        fail_msg("config_load accepted %s='%s'", name, value);
    assert_int_equal(err.code, ERR_INVALID);
    if (!strstr(err.msg, name))
        fail_msg("error '%s' does not name %s", err.msg, name);
    va_start(ap, value);
    while ((word = va_arg(ap, const char *)) != NULL)
        if (!strstr(err.msg, word)) {
            va_end(ap);
            fail_msg("error '%s' for %s='%s' does not mention '%s'", err.msg, name, value, word);
        }
    va_end(ap);
}

static void defaults_without_variables_or_flags(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    args_init(&a, NULL);
    load_ok(&cfg, &a);
    assert_string_equal(cfg.listen, "127.0.0.1:8000");
    assert_string_equal(cfg.db_path, "envhub.db");
    assert_string_equal(cfg.docker_host, "unix:///var/run/docker.sock");
    assert_string_equal(cfg.default_image, "envhub/python:bookworm");
    assert_string_equal(cfg.network_mode, "none");
    assert_string_equal(cfg.job_transport, "agent");
    assert_string_equal(cfg.work_dir, "/workspace");
    assert_string_equal(cfg.cors_origins, "");
    assert_string_equal(cfg.labels, "");
    assert_string_equal(cfg.log_level, "info");
    assert_int_equal(cfg.default_timeout, 30);
    assert_int_equal(cfg.max_timeout, 300);
    assert_int_equal(cfg.max_code_length, 50000);
    assert_int_equal(cfg.max_file_size, 10485760);
    assert_int_equal(cfg.max_files, 100);
    assert_int_equal(cfg.max_body, 64 * MIB);
    assert_int_equal(cfg.memory_limit, 536870912);
    assert_int_equal(cfg.cpu_millis, 1000);
    assert_int_equal(cfg.pids_limit, 128);
    assert_int_equal(cfg.workspace_size, 128 * MIB);
    assert_int_equal(cfg.tmp_size, 64 * MIB);
    assert_int_equal(cfg.tmpfs_inodes, 8192);
    assert_int_equal(cfg.output_limit, 1 * MIB);
    assert_int_equal(cfg.output_files_limit, 64 * MIB);
    assert_int_equal(cfg.concurrent_limit, 10);
    assert_int_equal(cfg.queue_limit, 50);
    assert_int_equal(cfg.server_threads, 0);
    assert_int_equal(cfg.max_script_length, 10000);
    assert_int_equal(cfg.build_timeout, 1800);
    assert_int_equal(cfg.build_concurrency, 2);
    assert_int_equal(cfg.build_memory, 2 * GIB);
    assert_int_equal(cfg.build_cpu_millis, 2000);
    assert_int_equal(cfg.build_pids, 1024);
    assert_int_equal(a.argc, 1);
    assert_string_equal(a.argv[0], "envhub");
    assert_null(a.argv[1]);
    config_release(&cfg);
    args_release(&a);
}

static void variables_override_defaults(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    setenv("SANDBOX_TIMEOUT", "60", 1);
    setenv("MEMORY_LIMIT", "1g", 1);
    setenv("CPU_LIMIT", "0.5", 1);
    setenv("ENVHUB_LISTEN", "0.0.0.0:9000", 1);
    setenv("NETWORK_MODE", "bridge", 1);
    setenv("MAX_CODE_LENGTH", "1000", 1);
    setenv("MAX_FILE_SIZE", "1m", 1);
    setenv("CONCURRENT_LIMIT", "3", 1);
    setenv("ENVHUB_CORS_ORIGINS", "http://localhost:3000", 1);
    setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock", 1);
    setenv("ENVHUB_LOG_LEVEL", "debug", 1);
    args_init(&a, NULL);
    load_ok(&cfg, &a);
    assert_int_equal(cfg.default_timeout, 60);
    assert_int_equal(cfg.memory_limit, GIB);
    assert_int_equal(cfg.cpu_millis, 500);
    assert_string_equal(cfg.listen, "0.0.0.0:9000");
    assert_string_equal(cfg.network_mode, "bridge");
    assert_int_equal(cfg.max_code_length, 1000);
    assert_int_equal(cfg.max_file_size, MIB);
    assert_int_equal(cfg.concurrent_limit, 3);
    assert_string_equal(cfg.cors_origins, "http://localhost:3000");
    assert_string_equal(cfg.docker_host, "unix:///run/user/1000/docker.sock");
    assert_string_equal(cfg.log_level, "debug");
    /* the rest keeps its default */
    assert_int_equal(cfg.max_timeout, 300);
    assert_int_equal(cfg.pids_limit, 128);
    config_release(&cfg);
    args_release(&a);
}

static void cpu_limit_rounds_to_thousandths(void **state)
{
    static const struct {
        const char *v;
        int64_t millis;
    } cases[] = {{"1", 1000}, {"2.5", 2500}, {"0.01", 10}, {"0.015625", 16}, {"1024", 1024000}};
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config cfg;
        struct args a;
        setenv("CPU_LIMIT", cases[i].v, 1);
        args_init(&a, NULL);
        load_ok(&cfg, &a);
        if (cfg.cpu_millis != cases[i].millis)
            fail_msg("CPU_LIMIT=%s gave %lld millis, expected %lld", cases[i].v,
                     (long long)cfg.cpu_millis, (long long)cases[i].millis);
        config_release(&cfg);
        args_release(&a);
    }
}

static void flags_override_variables_in_both_spellings(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    setenv("SANDBOX_TIMEOUT", "60", 1);
    setenv("MEMORY_LIMIT", "1g", 1);
    setenv("ENVHUB_LISTEN", "0.0.0.0:9000", 1);
    setenv("CPU_LIMIT", "4", 1);
    args_init(&a, "--timeout", "90", "--memory-limit=256m", "--listen", "127.0.0.1:8123",
              "--cpu-limit=0.25", "--network-mode=bridge", NULL);
    load_ok(&cfg, &a);
    assert_int_equal(cfg.default_timeout, 90);
    assert_int_equal(cfg.memory_limit, 256 * MIB);
    assert_string_equal(cfg.listen, "127.0.0.1:8123");
    assert_int_equal(cfg.cpu_millis, 250);
    assert_string_equal(cfg.network_mode, "bridge");
    assert_int_equal(a.argc, 1);
    assert_null(a.argv[1]);
    config_release(&cfg);
    args_release(&a);
}

static void the_last_of_a_repeated_flag_wins(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    args_init(&a, "--timeout=10", "--timeout", "20", "--db", "a.db", "--db=b.db", NULL);
    load_ok(&cfg, &a);
    assert_int_equal(cfg.default_timeout, 20);
    assert_string_equal(cfg.db_path, "b.db");
    config_release(&cfg);
    args_release(&a);
}

static void a_flag_value_may_be_empty_or_contain_equals(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    args_init(&a, "--cors-origins=", "--labels=team=ml,tier=dev", NULL);
    load_ok(&cfg, &a);
    assert_string_equal(cfg.cors_origins, "");
    assert_string_equal(cfg.labels, "team=ml,tier=dev");
    config_release(&cfg);
    args_release(&a);
}

static void unknown_arguments_stay_in_order(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    args_init(&a, "serve", "--timeout", "5", "--verbose", "x", "--listen=127.0.0.1:1", "-h",
              "--unknown=3", "--max-files", "7", "last", NULL);
    load_ok(&cfg, &a);
    assert_int_equal(cfg.default_timeout, 5);
    assert_string_equal(cfg.listen, "127.0.0.1:1");
    assert_int_equal(cfg.max_files, 7);
    assert_int_equal(a.argc, 7);
    assert_string_equal(a.argv[0], "envhub");
    assert_string_equal(a.argv[1], "serve");
    assert_string_equal(a.argv[2], "--verbose");
    assert_string_equal(a.argv[3], "x");
    assert_string_equal(a.argv[4], "-h");
    assert_string_equal(a.argv[5], "--unknown=3");
    assert_string_equal(a.argv[6], "last");
    assert_null(a.argv[7]);
    config_release(&cfg);
    args_release(&a);
}

static void a_flag_name_must_match_whole(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    /* prefixes and extensions of known flags are not those flags */
    args_init(&a, "--time=5", "--timeouts=5", "--timeout-x", NULL);
    load_ok(&cfg, &a);
    assert_int_equal(cfg.default_timeout, 30);
    assert_int_equal(a.argc, 4);
    assert_string_equal(a.argv[1], "--time=5");
    assert_string_equal(a.argv[2], "--timeouts=5");
    assert_string_equal(a.argv[3], "--timeout-x");
    config_release(&cfg);
    args_release(&a);
}

static void double_dash_ends_the_flags(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    args_init(&a, "run", "--", "--timeout", "5", NULL);
    load_ok(&cfg, &a);
    assert_int_equal(cfg.default_timeout, 30);
    assert_int_equal(a.argc, 5);
    assert_string_equal(a.argv[1], "run");
    assert_string_equal(a.argv[2], "--");
    assert_string_equal(a.argv[3], "--timeout");
    assert_string_equal(a.argv[4], "5");
    assert_null(a.argv[5]);
    config_release(&cfg);
    args_release(&a);
}

static void success_leaves_err_untouched(void **state)
{
    struct config cfg;
    struct args a;
    struct err err = ERR_INIT;
    (void)state;

    err_set(&err, ERR_BUSY, "sentinel");
    args_init(&a, "--timeout", "7", NULL);
    assert_int_equal(config_load(&cfg, &a.argc, a.argv, &err), 0);
    assert_int_equal(err.code, ERR_BUSY);
    assert_string_equal(err.msg, "sentinel");
    config_release(&cfg);
    args_release(&a);
}

static void bad_integer_flag_names_the_flag_and_range(void **state)
{
    struct args a;
    (void)state;

    args_init(&a, "--timeout", "abc", NULL);
    load_fails(&a, "--timeout", "'abc'", "1", "86400", NULL);
    args_release(&a);
    args_init(&a, "--timeout=12s", NULL);
    load_fails(&a, "--timeout", "'12s'", "86400", NULL);
    args_release(&a);
    args_init(&a, "--concurrent-limit=0", NULL);
    load_fails(&a, "--concurrent-limit", "1", "1000", NULL);
    args_release(&a);
    args_init(&a, "--max-code-length", "99999999999999999999", NULL);
    load_fails(&a, "--max-code-length", NULL);
    args_release(&a);
}

static void bad_size_flag_names_the_flag_and_range(void **state)
{
    struct args a;
    (void)state;

    args_init(&a, "--memory-limit=lots", NULL);
    load_fails(&a, "--memory-limit", "'lots'", "size", NULL);
    args_release(&a);
    args_init(&a, "--memory-limit", "1m", NULL); /* below the 6 MiB minimum */
    load_fails(&a, "--memory-limit", "6291456", NULL);
    args_release(&a);
}

static void bad_variables_name_the_variable_and_range(void **state)
{
    (void)state;
    env_fails("SANDBOX_TIMEOUT", "abc", "1", "86400", NULL);
    env_fails("SANDBOX_TIMEOUT", "0", "1", "86400", NULL);
    env_fails("SANDBOX_TIMEOUT", "86401", "86400", NULL);
    env_fails("SANDBOX_TIMEOUT", "-5", NULL);
    env_fails("SANDBOX_TIMEOUT", "", NULL);
    env_fails("MAX_CODE_LENGTH", "0", "1", NULL);
    env_fails("CONCURRENT_LIMIT", "1001", "1000", NULL);
    env_fails("MEMORY_LIMIT", "512x", "size", NULL);
    env_fails("MEMORY_LIMIT", "-1m", NULL);
    env_fails("MEMORY_LIMIT", "1m", "6291456", NULL);
    env_fails("MAX_FILE_SIZE", "2g", "1073741824", NULL);
    env_fails("CPU_LIMIT", "abc", "CPUs", NULL);
    env_fails("CPU_LIMIT", "0", "0.01", NULL);
    env_fails("CPU_LIMIT", "0.001", "0.01", NULL);
    env_fails("CPU_LIMIT", "2000", "1024", NULL);
    env_fails("CPU_LIMIT", "1.5x", NULL);
    env_fails("CPU_LIMIT", "", NULL);
    env_fails("CPU_LIMIT", "inf", NULL);
    env_fails("ENVHUB_LOG_LEVEL", "verbose", "error, warn, info or debug", NULL);
    env_fails("WORK_DIR", "workspace", "absolute", NULL);
    env_fails("DOCKER_HOST", "tcp://127.0.0.1:2375", "unix://", NULL);
}

/* strtod() reads "nan"; every comparison with NaN is false, so the range
 * check passes and (int64_t)NaN is undefined (INT64_MIN on x86-64). */
static void cpu_limit_rejects_nan(void **state)
{
    (void)state;
    env_fails("CPU_LIMIT", "nan", NULL);
    env_fails("CPU_LIMIT", "-nan", NULL);
}

static void network_mode_must_be_none_or_bridge(void **state)
{
    struct args a;
    (void)state;

    env_fails("NETWORK_MODE", "host", "none or bridge", NULL);
    env_fails("NETWORK_MODE", "", "none or bridge", NULL);
    env_fails("NETWORK_MODE", "None", "none or bridge", NULL);
    args_init(&a, "--network-mode=container:abc", NULL);
    load_fails(&a, "NETWORK_MODE", "'container:abc'", "none or bridge", NULL);
    args_release(&a);
    env_fails("ENVHUB_JOB_TRANSPORT", "ssh", "ENVHUB_JOB_TRANSPORT", "agent or exec", NULL);
    args_init(&a, "--job-transport=Agent", NULL);
    load_fails(&a, "ENVHUB_JOB_TRANSPORT", "'Agent'", "agent or exec", NULL);
    args_release(&a);
}

static void cluster_is_swarm_with_a_node_key_or_nothing(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    env_fails("ENVHUB_CLUSTER", "kubernetes", "swarm", NULL);
    env_fails("ENVHUB_CLUSTER", "swarm", "ENVHUB_NODE_KEY_FILE", NULL); /* no key file */
    env_fails("ENVHUB_NODE_TIMEOUT", "1", "2", "3600", NULL);
    args_init(&a, "--cluster", "swarm", "--node-key-file", "/k", "--node-timeout", "7", NULL);
    load_ok(&cfg, &a);
    assert_string_equal(cfg.cluster, "swarm");
    assert_string_equal(cfg.node_key_file, "/k");
    assert_int_equal(cfg.node_timeout, 7);
    config_release(&cfg);
    args_release(&a);
    args_init(&a, NULL);
    load_ok(&cfg, &a);
    assert_string_equal(cfg.cluster, "");
    assert_int_equal(cfg.node_timeout, 10);
    config_release(&cfg);
    args_release(&a);
}

static void registry_must_be_host_and_port(void **state)
{
    static const char *const bad[] = {
        "http://127.0.0.1:5000",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:5000/envhub",
        ":5000",
        "reg istry:5000",
        "127.0.0.1:50000x",
        "[::1]:5000",
    };
    static const char *const good[] = {"127.0.0.1:5000", "registry.example.test:443", "r:1",
                                       "localhost:65535"};
    struct config cfg;
    struct args a;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        env_fails("ENVHUB_REGISTRY", bad[i], "host:port", NULL);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        args_init(&a, "--registry", good[i], NULL);
        load_ok(&cfg, &a);
        assert_string_equal(cfg.registry, good[i]);
        config_release(&cfg);
        args_release(&a);
    }
    args_init(&a, NULL);
    load_ok(&cfg, &a);
    assert_string_equal(cfg.registry, ""); /* none by default */
    config_release(&cfg);
    args_release(&a);
}

static void default_timeout_may_not_exceed_max_timeout(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    env_fails("SANDBOX_TIMEOUT", "400", "ENVHUB_MAX_TIMEOUT", "300", NULL);

    setenv("ENVHUB_MAX_TIMEOUT", "600", 1);
    setenv("SANDBOX_TIMEOUT", "400", 1);
    args_init(&a, NULL);
    load_ok(&cfg, &a);
    assert_int_equal(cfg.default_timeout, 400);
    assert_int_equal(cfg.max_timeout, 600);
    config_release(&cfg);
    args_release(&a);

    args_init(&a, "--max-timeout", "100", NULL);
    load_fails(&a, "SANDBOX_TIMEOUT", "400", "ENVHUB_MAX_TIMEOUT", "100", NULL);
    args_release(&a);

    /* equal is fine */
    args_init(&a, "--max-timeout", "400", NULL);
    load_ok(&cfg, &a);
    config_release(&cfg);
    args_release(&a);
}

static void a_flag_without_its_value_is_an_error(void **state)
{
    struct args a;
    (void)state;

    args_init(&a, "--timeout", NULL);
    load_fails(&a, "--timeout", "value", NULL);
    args_release(&a);
    args_init(&a, "serve", "--listen", NULL);
    load_fails(&a, "--listen", "value", NULL);
    args_release(&a);
}

/* A variable that is wrong fails the load even when a flag would replace it:
 * the operator learns about the bad setting. */
static void a_bad_variable_fails_even_when_a_flag_overrides_it(void **state)
{
    struct args a;
    (void)state;

    setenv("SANDBOX_TIMEOUT", "zero", 1);
    args_init(&a, "--timeout", "10", NULL);
    load_fails(&a, "SANDBOX_TIMEOUT", NULL);
    args_release(&a);
}

static void config_release_is_safe_on_a_zeroed_or_released_config(void **state)
{
    struct config cfg;
    struct args a;
    (void)state;

    memset(&cfg, 0, sizeof(cfg));
    config_release(&cfg);
    config_release(NULL);
    args_init(&a, NULL);
    load_ok(&cfg, &a);
    config_release(&cfg);
    assert_null(cfg.listen);
    config_release(&cfg); /* twice */
    args_release(&a);
}

static void config_print_lists_every_setting(void **state)
{
    struct config cfg;
    struct args a;
    char *text = NULL;
    size_t size = 0;
    (void)state;

    args_init(&a, "--timeout", "42", NULL);
    load_ok(&cfg, &a);
    FILE *f = open_memstream(&text, &size);
    assert_non_null(f);
    config_print(&cfg, f);
    fclose(f);
    for (size_t i = 0; i < sizeof(config_vars) / sizeof(config_vars[0]); i++)
        if (!strstr(text, config_vars[i]))
            fail_msg("config_print does not list %s", config_vars[i]);
    assert_non_null(strstr(text, "`42`"));
    free(text);
    config_release(&cfg);
    args_release(&a);
}

#define T(f) cmocka_unit_test_setup_teardown(f, clean_env, clean_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(defaults_without_variables_or_flags),
        T(variables_override_defaults),
        T(cpu_limit_rounds_to_thousandths),
        T(flags_override_variables_in_both_spellings),
        T(the_last_of_a_repeated_flag_wins),
        T(a_flag_value_may_be_empty_or_contain_equals),
        T(unknown_arguments_stay_in_order),
        T(a_flag_name_must_match_whole),
        T(double_dash_ends_the_flags),
        T(success_leaves_err_untouched),
        T(bad_integer_flag_names_the_flag_and_range),
        T(bad_size_flag_names_the_flag_and_range),
        T(bad_variables_name_the_variable_and_range),
        T(cpu_limit_rejects_nan),
        T(network_mode_must_be_none_or_bridge),
        T(registry_must_be_host_and_port),
        T(cluster_is_swarm_with_a_node_key_or_nothing),
        T(default_timeout_may_not_exceed_max_timeout),
        T(a_flag_without_its_value_is_an_error),
        T(a_bad_variable_fails_even_when_a_flag_overrides_it),
        T(config_release_is_safe_on_a_zeroed_or_released_config),
        T(config_print_lists_every_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

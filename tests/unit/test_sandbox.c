/* tests/unit/test_sandbox.c - sandbox/: the container spec of each purpose
 * field by field, the ENVHUB_LABELS parser, and the policy functions (an
 * environment's policy against the server's maxima, its canonical form, a
 * request's overrides, the recorded limits). */
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
#include "sandbox/sandbox.h"

#include "core/banned.h"

static int setup_config(void **state)
{
    static struct config cfg;
    char name[] = "test_sandbox";
    char *argv[] = {name, NULL};
    int argc = 1;
    struct err err = ERR_INIT;

    if (config_load(&cfg, &argc, argv, &err) < 0)
        fail_msg("config: %s", err.msg);
    *state = &cfg;
    return 0;
}

static int teardown_config(void **state)
{
    config_release(*state);
    return 0;
}

/* ---- the container spec ---- */

static struct sandbox_labels *labels_of(const char *spec, const char *instance)
{
    struct sandbox_labels *l = NULL;
    struct err err = ERR_INIT;
    if (sandbox_labels_parse(spec, instance, &l, &err) < 0)
        fail_msg("labels '%s': %s", spec, err.msg);
    return l;
}

static const char *label_value(const struct engine_container_spec *s, const char *key)
{
    for (size_t i = 0; i < s->n_labels; i++)
        if (strcmp(s->labels[i].key, key) == 0)
            return s->labels[i].value;
    return NULL;
}

static struct sandbox_limits test_limits(bool network)
{
    return (struct sandbox_limits){
        .timeout_default = 30,
        .timeout_max = 60,
        .memory = 256 * 1024 * 1024,
        .cpu_millis = 1500,
        .pids = 77,
        .output_limit = 4096,
        .workspace_size = 32 * 1024 * 1024,
        .network = network,
        .recycle = 1,
    };
}

/* What every purpose shares: the lock-down. */
static void assert_locked_down(const struct engine_container_spec *s, const char *image,
                               const struct sandbox_limits *l)
{
    assert_string_equal(s->image, image);
    assert_true(s->read_only_rootfs);
    assert_true(s->cap_drop_all);
    assert_true(s->no_new_privileges);
    assert_true(s->log_driver_none);
    assert_false(s->auto_remove);
    assert_string_equal(s->user, "1000:1000");
    assert_int_equal(s->memory_bytes, l->memory); /* the engine sets swap to the same: off */
    assert_int_equal(s->pids_limit, l->pids);
    assert_non_null(s->entrypoint);
    assert_string_equal(s->entrypoint[0], "sleep");
    assert_null(s->entrypoint[1]);
    assert_string_equal(s->cmd[0], "infinity");
    assert_null(s->cmd[1]);
    assert_int_equal(s->n_tmpfs, 2);
    assert_string_equal(s->tmpfs[1].path, "/tmp");
    assert_string_equal(s->tmpfs[0].path, s->working_dir);
    assert_string_equal(label_value(s, "envhub.managed"), "1");
    assert_string_equal(label_value(s, "envhub.instance"), "inst-1");
    assert_string_equal(label_value(s, "team"), "a");
    if (l->network) {
        assert_string_equal(s->network_mode, "bridge");
        assert_false(s->network_disabled);
    } else {
        assert_string_equal(s->network_mode, "none");
        assert_true(s->network_disabled);
    }
}

static void job_spec_is_locked_down_with_the_limits(void **state)
{
    const struct config *cfg = *state;
    struct sandbox_labels *labels = labels_of("team=a", "inst-1");
    struct sandbox_limits l = test_limits(false);
    struct sandbox_spec sb;
    char want[256];

    sandbox_spec_fill(cfg, "img:1", &l, labels, SANDBOX_JOB, &sb);
    const struct engine_container_spec *s = &sb.spec;
    assert_locked_down(s, "img:1", &l);
    assert_int_equal(s->nano_cpus, 1500000000LL);
    assert_int_equal(s->shm_size, SANDBOX_SHM_SIZE);
    assert_string_equal(s->working_dir, cfg->work_dir);
    snprintf(want, sizeof(want),
             "rw,nosuid,nodev,size=%d,nr_inodes=%lld,uid=1000,gid=1000,mode=0755", 32 * 1024 * 1024,
             (long long)cfg->tmpfs_inodes);
    assert_string_equal(s->tmpfs[0].options, want);
    snprintf(want, sizeof(want), "rw,nosuid,nodev,size=%lld,nr_inodes=%lld,mode=1777",
             (long long)cfg->tmp_size, (long long)cfg->tmpfs_inodes);
    assert_string_equal(s->tmpfs[1].options, want);
    assert_non_null(s->env);
    assert_string_equal(s->env[0], "HOME=/tmp");
    assert_string_equal(s->env[1], "LANG=C.UTF-8");
    assert_null(s->env[2]);
    assert_int_equal(s->n_labels, 3);
    sandbox_labels_free(labels);
}

static void job_spec_has_a_network_only_when_the_limits_allow_it(void **state)
{
    const struct config *cfg = *state;
    struct sandbox_labels *labels = labels_of("team=a", "inst-1");
    struct sandbox_limits l = test_limits(true);
    struct sandbox_spec sb;

    sandbox_spec_fill(cfg, "img:1", &l, labels, SANDBOX_JOB, &sb);
    assert_locked_down(&sb.spec, "img:1", &l);
    l.network = false;
    sandbox_spec_fill(cfg, "img:1", &l, labels, SANDBOX_JOB, &sb);
    assert_locked_down(&sb.spec, "img:1", &l);
    sandbox_labels_free(labels);
}

static void acceptance_spec_is_a_jobs_without_the_environment(void **state)
{
    const struct config *cfg = *state;
    struct sandbox_labels *labels = labels_of("team=a", "inst-1");
    struct sandbox_limits l = test_limits(true);
    struct sandbox_spec job, acc;

    sandbox_spec_fill(cfg, "img:2", &l, labels, SANDBOX_JOB, &job);
    sandbox_spec_fill(cfg, "img:2", &l, labels, SANDBOX_ACCEPTANCE, &acc);
    const struct engine_container_spec *s = &acc.spec;
    assert_locked_down(s, "img:2", &l);
    assert_null(s->env);
    assert_int_equal(s->nano_cpus, job.spec.nano_cpus);
    assert_int_equal(s->shm_size, job.spec.shm_size);
    assert_string_equal(s->working_dir, job.spec.working_dir);
    assert_string_equal(s->tmpfs[0].options, job.spec.tmpfs[0].options);
    assert_string_equal(s->tmpfs[1].options, job.spec.tmpfs[1].options);
    sandbox_labels_free(labels);
}

static void verification_spec_keeps_its_own_workspace_and_tmp(void **state)
{
    const struct config *cfg = *state;
    struct sandbox_labels *labels = labels_of("team=a", "inst-1");
    struct sandbox_limits l = test_limits(false);
    struct sandbox_spec sb;

    sandbox_spec_fill(cfg, "sha256:abc", &l, labels, SANDBOX_VERIFICATION, &sb);
    const struct engine_container_spec *s = &sb.spec;
    assert_locked_down(s, "sha256:abc", &l);
    assert_null(s->env);
    assert_int_equal(s->nano_cpus, 0);
    assert_int_equal(s->shm_size, 0);
    assert_string_equal(s->working_dir, "/workspace");
    assert_string_equal(s->tmpfs[0].path, "/workspace");
    assert_string_equal(s->tmpfs[0].options, "rw,nosuid,nodev,size=33554432,uid=1000,gid=1000");
    assert_string_equal(s->tmpfs[1].options, "rw,nosuid,nodev,size=64m");
    sandbox_labels_free(labels);
}

/* ---- labels ---- */

static void labels_put_envhubs_own_first(void **state)
{
    struct sandbox_labels *l = labels_of("a=1,envhub.test=run9,b=x=y", "inst-1");
    size_t n = 0;
    const struct engine_label *v = sandbox_labels_list(l, &n);
    (void)state;

    assert_int_equal(n, 5);
    assert_string_equal(v[0].key, "envhub.managed");
    assert_string_equal(v[0].value, "1");
    assert_string_equal(v[1].key, "envhub.instance");
    assert_string_equal(v[1].value, "inst-1");
    assert_string_equal(v[2].key, "a");
    assert_string_equal(v[2].value, "1");
    assert_string_equal(v[3].key, "envhub.test");
    assert_string_equal(v[3].value, "run9");
    assert_string_equal(v[4].key, "b");
    assert_string_equal(v[4].value, "x=y");
    sandbox_labels_free(l);
}

static void labels_without_an_instance_are_for_images(void **state)
{
    struct sandbox_labels *l = labels_of("a=1", NULL);
    size_t n = 0;
    const struct engine_label *v = sandbox_labels_list(l, &n);
    (void)state;

    assert_int_equal(n, 2);
    assert_string_equal(v[0].key, "envhub.managed");
    assert_string_equal(v[1].key, "a");
    sandbox_labels_free(l);

    l = labels_of("", NULL);
    v = sandbox_labels_list(l, &n);
    assert_int_equal(n, 1);
    sandbox_labels_free(l);
    l = labels_of(NULL, "i");
    v = sandbox_labels_list(l, &n);
    assert_int_equal(n, 2);
    assert_string_equal(v[1].value, "i");
    sandbox_labels_free(l);
}

static void expect_labels_refused(const char *spec, const char *instance, const char *msg)
{
    struct sandbox_labels *l = NULL;
    struct err err = ERR_INIT;

    assert_int_equal(sandbox_labels_parse(spec, instance, &l, &err), -1);
    assert_null(l);
    assert_int_equal(err.code, ERR_INVALID);
    if (!strstr(err.msg, msg))
        fail_msg("labels '%s': '%s' does not say '%s'", spec, err.msg, msg);
}

static void malformed_labels_are_refused(void **state)
{
    (void)state;
    expect_labels_refused("a=1,novalue", "i", "ENVHUB_LABELS entry 'novalue' must be key=value");
    expect_labels_refused("=v", "i", "ENVHUB_LABELS entry '=v' must be key=value");
    expect_labels_refused("a=1,=", NULL, "must be key=value");
}

static void too_many_labels_are_refused(void **state)
{
    char spec[512] = "";
    size_t len = 0;
    (void)state;

    for (int i = 0; i < SANDBOX_MAX_LABELS - 2; i++)
        len += (size_t)snprintf(spec + len, sizeof(spec) - len, "%sk%d=v", i ? "," : "", i);
    struct sandbox_labels *l = labels_of(spec, "i"); /* exactly the room there is */
    size_t n = 0;
    sandbox_labels_list(l, &n);
    assert_int_equal(n, SANDBOX_MAX_LABELS);
    sandbox_labels_free(l);
    l = labels_of(spec, NULL);
    sandbox_labels_free(l);

    snprintf(spec + len, sizeof(spec) - len, ",one=more");
    expect_labels_refused(spec, "i", "ENVHUB_LABELS has more than 14 labels");
    expect_labels_refused(spec, NULL, "ENVHUB_LABELS has more than 14 labels");
}

static void envhubs_own_labels_cannot_be_set(void **state)
{
    (void)state;
    expect_labels_refused("envhub.managed=0", "i", "ENVHUB_LABELS may not set 'envhub.managed'");
    expect_labels_refused("a=1,envhub.instance=other", "i",
                          "ENVHUB_LABELS may not set 'envhub.instance'");
    expect_labels_refused("envhub.instance.x=1", NULL, "may not set 'envhub.instance.x'");
    /* the builder's image labels are guarded the same way */
    expect_labels_refused("envhub.managed=1", NULL, "may not set 'envhub.managed'");
}

/* ---- policy ---- */

static void no_policy_gives_the_servers_defaults(void **state)
{
    const struct config *cfg = *state;
    struct sandbox_limits d, l;
    char *canon = NULL;
    struct err err = ERR_INIT;

    sandbox_limits_default(cfg, &d);
    assert_int_equal(d.timeout_default, cfg->default_timeout);
    assert_int_equal(d.timeout_max, cfg->max_timeout);
    assert_int_equal(d.memory, cfg->memory_limit);
    assert_int_equal(d.cpu_millis, cfg->cpu_millis);
    assert_int_equal(d.pids, cfg->pids_limit);
    assert_int_equal(d.output_limit, cfg->output_limit);
    assert_int_equal(d.workspace_size, cfg->workspace_size);
    assert_int_equal(d.network, strcmp(cfg->network_mode, "bridge") == 0);
    assert_int_equal(d.pool_size, 0);
    assert_int_equal(d.recycle, 1);
    assert_int_equal(sandbox_policy_parse(cfg, NULL, &l, &canon, &err), 0);
    assert_string_equal(canon, "{}");
    assert_true(sandbox_limits_equal(&d, &l));
    assert_int_equal(l.timeout_max, d.timeout_max);
    free(canon);
    assert_int_equal(sandbox_policy_parse(cfg, "", &l, NULL, &err), 0);
}

static void canonical_form_parses_to_the_same_policy(void **state)
{
    struct config *cfg = *state;
    struct sandbox_limits a, b;
    char *canon = NULL, *again = NULL;
    struct err err = ERR_INIT;

    assert_int_equal(sandbox_policy_parse(cfg, "{\"pids\": 64, \"cpu\": 0.5, \"timeout_max\": 10}",
                                          &a, &canon, &err),
                     0);
    assert_string_equal(canon, "{\"cpu\":0.5,\"pids\":64,\"timeout_max\":10}");
    assert_int_equal(a.pids, 64);
    assert_int_equal(a.cpu_millis, 500);
    assert_true(a.timeout_default <= 10);
    assert_int_equal(sandbox_policy_parse(cfg, canon, &b, &again, &err), 0);
    assert_string_equal(canon, again);
    assert_true(sandbox_limits_equal(&a, &b));
    free(canon);
    free(again);
}

static void expect_policy_refused(const struct config *cfg, const char *json, const char *msg)
{
    struct sandbox_limits l;
    char *canon = NULL;
    struct err err = ERR_INIT;

    assert_int_equal(sandbox_policy_parse(cfg, json, &l, &canon, &err), -1);
    assert_null(canon);
    assert_int_equal(err.code, ERR_INVALID);
    if (!strstr(err.msg, msg))
        fail_msg("policy %s: '%s' does not say '%s'", json, err.msg, msg);
}

static void policy_past_the_servers_maxima_is_refused(void **state)
{
    struct config *cfg = *state;
    char json[128];

    snprintf(json, sizeof(json), "{\"memory\": %lld}", (long long)cfg->max_memory + 1);
    expect_policy_refused(cfg, json, "(ENVHUB_MAX_MEMORY)");
    snprintf(json, sizeof(json), "{\"timeout_max\": %lld}", (long long)cfg->max_timeout + 1);
    expect_policy_refused(cfg, json, "policy.timeout_max");
    expect_policy_refused(cfg, "{\"timeout_max\": 5, \"timeout_default\": 6}",
                          "policy.timeout_default: 6 is over the server's maximum of 5 "
                          "(policy.timeout_max)");
    expect_policy_refused(cfg, "{\"pids\": 1}", "policy.pids: 1 is below the minimum of 8");
    expect_policy_refused(cfg, "{\"pids\": \"8\"}", "policy.pids: must be an integer");
    expect_policy_refused(cfg, "{\"cpu\": 0}", "policy.cpu: 0 is outside 0.01");
    expect_policy_refused(cfg, "{\"network\": \"host\"}", "policy.network: must be");
    expect_policy_refused(cfg, "[]", "policy: must be a JSON object");
    bool allow = cfg->allow_network;
    cfg->allow_network = false;
    expect_policy_refused(cfg, "{\"network\": \"bridge\"}", "(ENVHUB_ALLOW_NETWORK)");
    cfg->allow_network = allow;
}

/* The shape check's message was formatted into itself and came out empty
 * (found by tests/fuzz/fuzz_policy.c). */
static void too_deep_a_policy_says_why(void **state)
{
    struct config *cfg = *state;
    struct sandbox_limits l;
    struct err err = ERR_INIT;

    assert_int_equal(sandbox_policy_parse(cfg, "{\"a\": [[[[1]]]]}", &l, NULL, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_non_null(strstr(err.msg, "a: nesting deeper than the limit of 4 levels"));
}

static void an_unknown_field_is_named_on_one_line(void **state)
{
    struct config *cfg = *state;
    struct sandbox_limits l;
    struct err err = ERR_INIT;

    assert_int_equal(sandbox_policy_parse(cfg, "{\"a\\nb\": 1}", &l, NULL, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_non_null(strstr(err.msg, "policy.a b: unknown field"));
}

static void preload_names_are_dotted_python_names(void **state)
{
    (void)state;
    static const char *const good[] = {"numpy", "matplotlib.pyplot", "_x1.y_2", "A"};
    static const char *const bad[] = {"",
                                      ".numpy",
                                      "numpy.",
                                      "a..b",
                                      "1abc",
                                      "a.1b",
                                      "a b",
                                      "a-b",
                                      "a;b",
                                      "os\n",
                                      "\xc3\xa9t\xc3\xa9",
                                      "a/b",
                                      "__import__('os')"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!sandbox_preload_name_ok(good[i]))
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sandbox_preload_name_ok(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    char longest[SANDBOX_PRELOAD_NAME_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    longest[SANDBOX_PRELOAD_NAME_MAX] = '\0';
    assert_true(sandbox_preload_name_ok(longest));
    longest[SANDBOX_PRELOAD_NAME_MAX] = 'a';
    longest[SANDBOX_PRELOAD_NAME_MAX + 1] = '\0';
    assert_false(sandbox_preload_name_ok(longest));
}

static void preload_is_kept_in_order_and_bounded(void **state)
{
    struct config *cfg = *state;
    struct sandbox_limits a, b;
    char *canon = NULL;
    struct err err = ERR_INIT;

    assert_int_equal(
        sandbox_policy_parse(cfg, "{\"preload\": [\"pandas\", \"numpy\"]}", &a, &canon, &err), 0);
    assert_string_equal(canon, "{\"preload\":[\"pandas\",\"numpy\"]}");
    assert_int_equal(a.n_preload, 2);
    assert_string_equal(a.preload[0], "pandas");
    assert_string_equal(a.preload[1], "numpy");
    free(canon);
    /* an empty list is no preload; the order matters to the pool */
    assert_int_equal(sandbox_policy_parse(cfg, "{\"preload\": []}", &b, &canon, &err), 0);
    assert_string_equal(canon, "{}");
    assert_int_equal(b.n_preload, 0);
    assert_false(sandbox_limits_equal(&a, &b));
    free(canon);
    assert_int_equal(
        sandbox_policy_parse(cfg, "{\"preload\": [\"numpy\", \"pandas\"]}", &b, NULL, &err), 0);
    assert_false(sandbox_limits_equal(&a, &b));

    expect_policy_refused(cfg, "{\"preload\": \"numpy\"}",
                          "policy.preload: must be a list of module names");
    expect_policy_refused(cfg, "{\"preload\": [1]}", "policy.preload[0]: must be a module name");
    expect_policy_refused(cfg, "{\"preload\": [\"os\", \"os; import x\"]}",
                          "policy.preload[1]: 'os; import x' is not a module name");
    expect_policy_refused(cfg, "{\"preload\": [\"os\", \"sys\", \"os\"]}",
                          "policy.preload[2]: 'os' is listed twice");
    char many[1024] = "{\"preload\": [";
    for (int i = 0; i <= SANDBOX_PRELOAD_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"m%d\"", i ? "," : "", i);
    snprintf(many + strlen(many), sizeof(many) - strlen(many), "]}");
    expect_policy_refused(cfg, many, "policy.preload: 33 modules is over the maximum of 32");
}

static void overrides_only_lower_the_limits(void **state)
{
    struct sandbox_limits env = test_limits(false), l;
    struct sandbox_overrides o = {.memory = 128 * 1024 * 1024, .cpu_millis = 500};
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(sandbox_limits_lower(&env, NULL, &l, &err), 0);
    assert_true(sandbox_limits_equal(&env, &l));
    assert_int_equal(sandbox_limits_lower(&env, &o, &l, &err), 0);
    assert_int_equal(l.memory, 128 * 1024 * 1024);
    assert_int_equal(l.cpu_millis, 500);
    assert_int_equal(l.pids, env.pids);
    assert_false(sandbox_limits_equal(&env, &l)); /* a warm container does not fit */

    o = (struct sandbox_overrides){.pids = env.pids + 1};
    assert_int_equal(sandbox_limits_lower(&env, &o, &l, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_string_equal(err.msg, "limits.pids: 78 is over the environment's limit of 77");
    o = (struct sandbox_overrides){.cpu_millis = 2000};
    assert_int_equal(sandbox_limits_lower(&env, &o, &l, &err), -1);
    assert_string_equal(err.msg, "limits.cpu: 2.00 is over the environment's limit of 1.50");
    o = (struct sandbox_overrides){.output_limit = 4097};
    assert_int_equal(sandbox_limits_lower(&env, &o, &l, &err), -1);
    assert_non_null(strstr(err.msg, "limits.output_limit: 4097 bytes"));
}

static void recorded_limits_are_sorted_json(void **state)
{
    struct sandbox_limits l = test_limits(true);
    (void)state;

    char *json = sandbox_limits_json(&l, 12);
    assert_string_equal(json, "{\"cpu\":1.5,\"memory\":268435456,\"network\":\"bridge\","
                              "\"output_limit\":4096,\"pids\":77,\"timeout\":12,"
                              "\"workspace_size\":33554432}");
    free(json);
}

/* gVisor on request: jobs and acceptance checks run under runsc, an image's
 * verification under the default runtime; the policy field and its rules. */
static void runsc_is_the_runtime_of_jobs_and_checks_when_asked(void **state)
{
    const struct config *cfg = *state;
    struct sandbox_labels *labels = labels_of("", "inst-1");
    struct sandbox_limits l = test_limits(false);
    struct sandbox_spec sb;

    sandbox_spec_fill(cfg, "img:1", &l, labels, SANDBOX_JOB, &sb);
    assert_null(sb.spec.runtime);
    l.gvisor = true;
    sandbox_spec_fill(cfg, "img:1", &l, labels, SANDBOX_JOB, &sb);
    assert_string_equal(sb.spec.runtime, "runsc");
    assert_true(sb.spec.network_disabled && sb.spec.read_only_rootfs && sb.spec.cap_drop_all);
    sandbox_spec_fill(cfg, "img:1", &l, labels, SANDBOX_ACCEPTANCE, &sb);
    assert_string_equal(sb.spec.runtime, "runsc");
    sandbox_spec_fill(cfg, "img:1", &l, labels, SANDBOX_VERIFICATION, &sb);
    assert_null(sb.spec.runtime);
    sandbox_labels_free(labels);

    struct sandbox_limits p;
    char *canon = NULL;
    struct err err = ERR_INIT;
    assert_int_equal(sandbox_policy_parse(cfg, "{\"runtime\": \"runsc\"}", &p, &canon, &err), 0);
    assert_true(p.gvisor);
    assert_string_equal(canon, "{\"runtime\":\"runsc\"}");
    free(canon);
    char *rec = sandbox_limits_json(&p, 30);
    assert_non_null(strstr(rec, "\"runtime\":\"runsc\""));
    free(rec);
    struct sandbox_limits d;
    assert_int_equal(sandbox_policy_parse(cfg, "{\"runtime\": \"runc\"}", &d, NULL, &err), 0);
    assert_false(d.gvisor);
    rec = sandbox_limits_json(&d, 30);
    assert_null(strstr(rec, "runtime")); /* the default is not recorded */
    free(rec);
    assert_false(sandbox_limits_equal(&p, &d));
    expect_policy_refused(cfg, "{\"runtime\": \"kata\"}", "policy.runtime: must be");
    expect_policy_refused(cfg, "{\"runtime\": 1}", "policy.runtime: must be");
    struct config open_net = *cfg;
    open_net.allow_network = 1;
    expect_policy_refused(&open_net, "{\"runtime\": \"runsc\", \"network\": \"bridge\"}",
                          "\"runsc\" jobs have no network");
}

static void images_that_declare_a_volume_are_refused_by_path(void **state)
{
    char data[] = "/data", ctl[] = "/a\nb", n[6][3] = {"/1", "/2", "/3", "/4", "/5", "/6"};
    char *few[] = {data, NULL};
    char *bad[] = {ctl, NULL};
    char *many[] = {n[0], n[1], n[2], n[3], n[4], n[5], NULL};
    struct engine_image_info info = {0};
    struct err err = ERR_INIT;
    (void)state;

    assert_int_equal(sandbox_image_check("base:1", &info, &err), 0);
    info.volumes = few;
    assert_int_equal(sandbox_image_check("base:1", &info, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_non_null(strstr(err.msg, "image 'base:1' declares VOLUME /data:"));
    err_clear(&err);
    info.volumes = bad;
    assert_int_equal(sandbox_image_check("base:1", &info, &err), -1);
    assert_non_null(strstr(err.msg, "VOLUME /a\\x0ab:"));
    err_clear(&err);
    info.volumes = many;
    assert_int_equal(sandbox_image_check("base:1", &info, &err), -1);
    assert_non_null(strstr(err.msg, "VOLUME /1, /2, /3, /4 and 2 more:"));
    err_clear(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(job_spec_is_locked_down_with_the_limits),
        cmocka_unit_test(job_spec_has_a_network_only_when_the_limits_allow_it),
        cmocka_unit_test(acceptance_spec_is_a_jobs_without_the_environment),
        cmocka_unit_test(verification_spec_keeps_its_own_workspace_and_tmp),
        cmocka_unit_test(labels_put_envhubs_own_first),
        cmocka_unit_test(labels_without_an_instance_are_for_images),
        cmocka_unit_test(malformed_labels_are_refused),
        cmocka_unit_test(too_many_labels_are_refused),
        cmocka_unit_test(envhubs_own_labels_cannot_be_set),
        cmocka_unit_test(no_policy_gives_the_servers_defaults),
        cmocka_unit_test(canonical_form_parses_to_the_same_policy),
        cmocka_unit_test(policy_past_the_servers_maxima_is_refused),
        cmocka_unit_test(too_deep_a_policy_says_why),
        cmocka_unit_test(an_unknown_field_is_named_on_one_line),
        cmocka_unit_test(preload_names_are_dotted_python_names),
        cmocka_unit_test(preload_is_kept_in_order_and_bounded),
        cmocka_unit_test(overrides_only_lower_the_limits),
        cmocka_unit_test(recorded_limits_are_sorted_json),
        cmocka_unit_test(runsc_is_the_runtime_of_jobs_and_checks_when_asked),
        cmocka_unit_test(images_that_declare_a_volume_are_refused_by_path),
    };
    return cmocka_run_group_tests(tests, setup_config, teardown_config);
}

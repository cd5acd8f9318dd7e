/* sandbox/policy.c - an environment's policy: the limits and settings every
 * job in that environment runs with, stored as JSON with each version.
 *
 * Fields (all optional; an absent one takes the server's default):
 *   timeout_default, timeout_max  seconds
 *   memory, workspace_size, output_limit  bytes
 *   cpu  CPUs (a number)      pids  processes
 *   network  "none" or "bridge"
 *   runtime  "runc" or "runsc" (gVisor; no network)
 *   pool_size  warm containers   recycle  jobs per container (1: fresh each)
 *   preload  module names warm containers import before any job
 * Each is bounded by a server-wide maximum; a request may lower memory, cpu,
 * pids and output_limit, and choose a timeout, within them. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/json_shape.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "sandbox/sandbox.h"

#include "core/banned.h"

void sandbox_limits_default(const struct config *cfg, struct sandbox_limits *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->timeout_default = cfg->default_timeout;
    ret->timeout_max = cfg->max_timeout;
    ret->memory = cfg->memory_limit;
    ret->cpu_millis = cfg->cpu_millis;
    ret->pids = cfg->pids_limit;
    ret->output_limit = cfg->output_limit;
    ret->workspace_size = cfg->workspace_size;
    ret->network = strcmp(cfg->network_mode, "bridge") == 0;
    ret->pool_size = 0;
    ret->recycle = 1;
}

/* An integer field within [min, max]; absent keeps *v. */
static int int_field(json_t *doc, const char *name, int64_t min, int64_t max, const char *max_name,
                     int64_t *v, json_t *canon, struct err *err)
{
    json_t *j = json_object_get(doc, name);
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_integer(j))
        return err_set(err, ERR_INVALID, "policy.%s: must be an integer", name);
    int64_t x = json_integer_value(j);
    if (x < min)
        return err_set(err, ERR_INVALID, "policy.%s: %lld is below the minimum of %lld", name,
                       (long long)x, (long long)min);
    if (x > max)
        return err_set(err, ERR_INVALID,
                       "policy.%s: %lld is over the server's maximum of %lld (%s)", name,
                       (long long)x, (long long)max, max_name);
    *v = x;
    json_object_set_new(canon, name, json_integer(x));
    return 0;
}

bool sandbox_preload_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > SANDBOX_PRELOAD_NAME_MAX)
        return false;
    /* dot-separated parts, each [A-Za-z_][A-Za-z0-9_]* */
    bool part_start = true;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        bool letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
        bool digit = ch >= '0' && ch <= '9';
        if (ch == '.') {
            if (part_start)
                return false;
            part_start = true;
        } else if (letter || (digit && !part_start)) {
            part_start = false;
        } else {
            return false;
        }
    }
    return !part_start;
}

/* policy.preload: a list of module names, kept in its order. */
static int preload_field(json_t *doc, struct sandbox_limits *l, json_t *canon, struct err *err)
{
    json_t *list = json_object_get(doc, "preload");
    if (!list || json_is_null(list))
        return 0;
    if (!json_is_array(list))
        return err_set(err, ERR_INVALID, "policy.preload: must be a list of module names");
    if (json_array_size(list) > SANDBOX_PRELOAD_MAX)
        return err_set(err, ERR_INVALID, "policy.preload: %zu modules is over the maximum of %d",
                       json_array_size(list), SANDBOX_PRELOAD_MAX);
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        const char *name = json_string_value(item);
        if (!name)
            return err_set(err, ERR_INVALID,
                           "policy.preload[%zu]: must be a module name (a string)", i);
        if (!sandbox_preload_name_ok(name))
            return err_set(err, ERR_INVALID,
                           "policy.preload[%zu]: '%.40s' is not a module name (dotted Python "
                           "names of ASCII letters, digits and '_', at most %d bytes)",
                           i, name, SANDBOX_PRELOAD_NAME_MAX);
        for (size_t j = 0; j < l->n_preload; j++)
            if (strcmp(l->preload[j], name) == 0)
                return err_set(err, ERR_INVALID, "policy.preload[%zu]: '%s' is listed twice", i,
                               name);
        snprintf(l->preload[l->n_preload++], sizeof(l->preload[0]), "%s", name);
    }
    if (l->n_preload)
        json_object_set(canon, "preload", list);
    return 0;
}

int sandbox_policy_parse(const struct config *cfg, const char *json, struct sandbox_limits *ret,
                         char **ret_canonical, struct err *err)
{
    /* a policy is a flat object of a few numbers and words */
    static const struct json_shape_bounds shape = {
        .max_depth = 4,
        .max_members = 64,
        .max_items = 64,
        .max_key = 64,
        .max_string = 4096,
        .max_values = 1024,
    };
    const char *text = json && *json ? json : "{}";
    json_error_t jerr;
    if (json_shape_check(text, strlen(text), &shape, "policy", err) < 0) {
        /* the message stands; only the code is a policy's (formatting
         * err->msg into itself would overlap: it came out empty) */
        err->code = ERR_INVALID;
        return -1;
    }
    json_auto_t *doc = json_loads(text, 0, &jerr);
    json_auto_t *canon = json_object();
    struct sandbox_limits l;
    static const char *const known[] = {
        "timeout_default", "timeout_max", "memory",    "cpu",     "pids",    "output_limit",
        "workspace_size",  "network",     "pool_size", "recycle", "runtime", "preload"};

    sandbox_limits_default(cfg, &l);
    if (!json_is_object(doc))
        return err_set(err, ERR_INVALID, "policy: must be a JSON object");
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok)
            return err_set(err, ERR_INVALID,
                           "policy.%.40s: unknown field (known: timeout_default, timeout_max, "
                           "memory, cpu, pids, output_limit, workspace_size, network, runtime, "
                           "pool_size, recycle, preload)",
                           key);
    }
    if (int_field(doc, "timeout_max", 1, cfg->max_timeout, "ENVHUB_MAX_TIMEOUT", &l.timeout_max,
                  canon, err) < 0 ||
        int_field(doc, "timeout_default", 1, l.timeout_max, "policy.timeout_max",
                  &l.timeout_default, canon, err) < 0 ||
        int_field(doc, "memory", 6 * 1024 * 1024, cfg->max_memory, "ENVHUB_MAX_MEMORY", &l.memory,
                  canon, err) < 0 ||
        int_field(doc, "pids", 8, cfg->max_pids, "ENVHUB_MAX_PIDS", &l.pids, canon, err) < 0 ||
        int_field(doc, "output_limit", 1024, cfg->max_output_limit, "ENVHUB_MAX_OUTPUT_LIMIT",
                  &l.output_limit, canon, err) < 0 ||
        int_field(doc, "workspace_size", 1024 * 1024, cfg->max_workspace_size,
                  "ENVHUB_MAX_WORKSPACE_SIZE", &l.workspace_size, canon, err) < 0 ||
        int_field(doc, "pool_size", 0, cfg->max_pool_size, "ENVHUB_MAX_POOL_SIZE", &l.pool_size,
                  canon, err) < 0 ||
        int_field(doc, "recycle", 1, 100000, "100000", &l.recycle, canon, err) < 0)
        return -1;
    if (!json_object_get(doc, "timeout_default") && l.timeout_default > l.timeout_max)
        l.timeout_default = l.timeout_max;
    json_t *cpu = json_object_get(doc, "cpu");
    if (cpu && !json_is_null(cpu)) {
        if (!json_is_number(cpu))
            return err_set(err, ERR_INVALID, "policy.cpu: must be a number of CPUs");
        double c = json_number_value(cpu);
        if (!(c >= 0.01) || c * 1000 > (double)cfg->max_cpu_millis)
            return err_set(err, ERR_INVALID,
                           "policy.cpu: %g is outside 0.01 to the server's maximum of %.2f "
                           "(ENVHUB_MAX_CPU)",
                           c, (double)cfg->max_cpu_millis / 1000);
        l.cpu_millis = (int64_t)llround(c * 1000);
        json_object_set_new(canon, "cpu", json_real((double)l.cpu_millis / 1000));
    }
    json_t *net = json_object_get(doc, "network");
    if (net && !json_is_null(net)) {
        const char *n = json_string_value(net);
        if (!n || (strcmp(n, "none") != 0 && strcmp(n, "bridge") != 0))
            return err_set(err, ERR_INVALID, "policy.network: must be \"none\" or \"bridge\"");
        if (strcmp(n, "bridge") == 0 && !cfg->allow_network)
            return err_set(err, ERR_INVALID,
                           "policy.network: \"bridge\" is not allowed on this server "
                           "(ENVHUB_ALLOW_NETWORK)");
        l.network = strcmp(n, "bridge") == 0;
        json_object_set_new(canon, "network", json_string(n));
    }
    json_t *rt = json_object_get(doc, "runtime");
    if (rt && !json_is_null(rt)) {
        const char *r = json_string_value(rt);
        if (!r || (strcmp(r, "runc") != 0 && strcmp(r, "runsc") != 0))
            return err_set(err, ERR_INVALID,
                           "policy.runtime: must be \"runc\" or \"runsc\" (gVisor)");
        l.gvisor = strcmp(r, "runsc") == 0;
        /* the engine runs runsc with --network=none: its jobs have no network */
        if (l.gvisor && l.network)
            return err_set(err, ERR_INVALID,
                           "policy.runtime: \"runsc\" jobs have no network; policy.network must "
                           "be \"none\"");
        json_object_set_new(canon, "runtime", json_string(r));
    }
    if (preload_field(doc, &l, canon, err) < 0)
        return -1;
    if (ret)
        *ret = l;
    if (ret_canonical)
        *ret_canonical = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
    return 0;
}

int sandbox_limits_lower(const struct sandbox_limits *env, const struct sandbox_overrides *o,
                         struct sandbox_limits *ret, struct err *err)
{
    *ret = *env;
    if (!o)
        return 0;
    if (o->memory > 0) {
        if (o->memory > env->memory)
            return err_set(err, ERR_INVALID,
                           "limits.memory: %lld bytes is over the environment's limit of %lld",
                           (long long)o->memory, (long long)env->memory);
        ret->memory = o->memory;
    }
    if (o->cpu_millis > 0) {
        if (o->cpu_millis > env->cpu_millis)
            return err_set(err, ERR_INVALID,
                           "limits.cpu: %.2f is over the environment's limit of %.2f",
                           (double)o->cpu_millis / 1000, (double)env->cpu_millis / 1000);
        ret->cpu_millis = o->cpu_millis;
    }
    if (o->pids > 0) {
        if (o->pids > env->pids)
            return err_set(err, ERR_INVALID,
                           "limits.pids: %lld is over the environment's limit of %lld",
                           (long long)o->pids, (long long)env->pids);
        ret->pids = o->pids;
    }
    if (o->output_limit > 0) {
        if (o->output_limit > env->output_limit)
            return err_set(err, ERR_INVALID,
                           "limits.output_limit: %lld bytes is over the environment's limit of "
                           "%lld",
                           (long long)o->output_limit, (long long)env->output_limit);
        ret->output_limit = o->output_limit;
    }
    return 0;
}

char *sandbox_limits_json(const struct sandbox_limits *l, int64_t timeout_s)
{
    json_t *doc = json_pack(
        "{s:I, s:I, s:f, s:I, s:I, s:I, s:s}", "timeout", (json_int_t)timeout_s, "memory",
        (json_int_t)l->memory, "cpu", (double)l->cpu_millis / 1000, "pids", (json_int_t)l->pids,
        "output_limit", (json_int_t)l->output_limit, "workspace_size",
        (json_int_t)l->workspace_size, "network", l->network ? "bridge" : "none");
    if (l->gvisor) /* recorded only when it is not the default */
        json_object_set_new(doc, "runtime", json_string("runsc"));
    char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return s;
}

bool sandbox_limits_equal(const struct sandbox_limits *a, const struct sandbox_limits *b)
{
    if (a->n_preload != b->n_preload)
        return false;
    for (size_t i = 0; i < a->n_preload; i++)
        if (strcmp(a->preload[i], b->preload[i]) != 0)
            return false;
    return a->memory == b->memory && a->cpu_millis == b->cpu_millis && a->pids == b->pids &&
           a->workspace_size == b->workspace_size && a->network == b->network &&
           a->gvisor == b->gvisor;
}

/* web/api_curation.c - what curators ask of the catalog beyond one
 * environment's builds: which environments carry a package (GET /packages),
 * what changed between two versions (GET /environments/{name}/diff),
 * lifecycle states (POST /environments/{name}/lifecycle), base-image drift
 * (GET /drift), and the curation fields of an environment's JSON. */
#include <civetweb.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder/builder.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/version.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define QUERY_VALUE_MAX 256

/* Query parameter @name into @out; false when absent. A value too long is
 * answered 400 (then *answered). */
static bool query_get(struct web_request *rq, const char *name, char *out, size_t size,
                      bool *answered)
{
    if (!rq->query)
        return false;
    int n = mg_get_var(rq->query, strlen(rq->query), name, out, size);
    if (n == -2) {
        web_reply_detail(rq, 400, "%s: over %zu characters", name, size - 1);
        *answered = true;
        return false;
    }
    return n >= 0;
}

/* ---- GET /packages?name=&version=&manager=&current= ---- */

void api_packages(struct web_request *rq)
{
    char name[QUERY_VALUE_MAX], spec_text[QUERY_VALUE_MAX], manager[16], current[8];
    bool answered = false, has_spec, has_manager, only_current = false;
    struct version_spec spec = {0};
    struct package_hit *hits = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;

    if (!query_get(rq, "name", name, sizeof(name), &answered) || !*name) {
        if (!answered)
            web_reply_detail(rq, 400, "name: required (GET /packages?name=numpy&version=<2)");
        return;
    }
    has_spec = query_get(rq, "version", spec_text, sizeof(spec_text), &answered) && *spec_text;
    if (answered)
        return;
    has_manager = query_get(rq, "manager", manager, sizeof(manager), &answered) && *manager;
    if (answered)
        return;
    if (query_get(rq, "current", current, sizeof(current), &answered))
        only_current = strcmp(current, "0") != 0 && strcmp(current, "false") != 0;
    if (answered)
        return;
    if (has_manager && strcmp(manager, "pip") != 0 && strcmp(manager, "dpkg") != 0) {
        web_reply_detail(rq, 400, "manager: '%s' must be pip or dpkg", manager);
        return;
    }
    if (has_spec && version_spec_parse(spec_text, &spec, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    if (catalog_packages_find(rq->deps->catalog, name, has_manager ? manager : NULL, &hits, &n,
                              &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *matches = json_array();
    json_t *envs = json_array();
    json_t *cur = NULL; /* the entry of the environment being added to */
    const char *cur_name = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct package_hit *h = &hits[i];
        if ((only_current && !h->in_service) ||
            (has_spec && !version_spec_match(&spec, h->manager, h->version)))
            continue;
        json_array_append_new(
            matches,
            json_pack("{s:s, s:I, s:b, s:s, s:s, s:s, s:s}", "environment", h->environment,
                      "environment_version", (json_int_t)h->environment_version, "in_service",
                      h->in_service, "lifecycle", env_lifecycle_name(h->lifecycle), "manager",
                      h->manager, "package", h->name, "version", h->version));
        if (!cur_name || strcmp(cur_name, h->environment) != 0) {
            cur = json_pack("{s:s, s:s, s:[], s:b}", "environment", h->environment, "lifecycle",
                            env_lifecycle_name(h->lifecycle), "versions", "in_service", false);
            json_array_append_new(envs, cur);
            cur_name = h->environment;
        }
        json_t *versions = json_object_get(cur, "versions");
        size_t k = json_array_size(versions);
        if (k == 0 || json_integer_value(json_array_get(versions, k - 1)) !=
                          (json_int_t)h->environment_version)
            json_array_append_new(versions, json_integer(h->environment_version));
        if (h->in_service)
            json_object_set_new(cur, "in_service", json_true());
    }
    size_t total = json_array_size(matches);
    json_t *doc =
        json_pack("{s:s, s:o, s:o, s:b, s:o, s:o, s:I}", "name", name, "version",
                  has_spec ? json_string(spec_text) : json_null(), "manager",
                  has_manager ? json_string(manager) : json_null(), "current", only_current,
                  "environments", envs, "matches", matches, "total", (json_int_t)total);
    package_hits_free(hits, n);
    web_reply_json(rq, 200, doc);
}

/* ---- GET /environments/{name}/diff?from=N&to=M ---- */

static json_t *package_json(const struct package_entry *p)
{
    return json_pack("{s:s, s:s, s:s}", "manager", p->manager, "name", p->name, "version",
                     p->version);
}

/* Both lists are ordered by manager, then name (the catalog's order). */
static json_t *packages_diff(const struct package_entry *a, size_t na,
                             const struct package_entry *b, size_t nb)
{
    json_t *added = json_array(), *removed = json_array(), *changed = json_array();
    size_t i = 0, j = 0, same = 0;
    while (i < na || j < nb) {
        int c = i == na ? 1 : j == nb ? -1 : strcmp(a[i].manager, b[j].manager);
        if (c == 0)
            c = strcmp(a[i].name, b[j].name);
        if (c < 0) {
            json_array_append_new(removed, package_json(&a[i++]));
        } else if (c > 0) {
            json_array_append_new(added, package_json(&b[j++]));
        } else {
            if (strcmp(a[i].version, b[j].version) != 0)
                json_array_append_new(changed, json_pack("{s:s, s:s, s:s, s:s}", "manager",
                                                         a[i].manager, "name", a[i].name, "from",
                                                         a[i].version, "to", b[j].version));
            else
                same++;
            i++;
            j++;
        }
    }
    return json_pack("{s:o, s:o, s:o, s:I}", "added", added, "removed", removed, "changed", changed,
                     "unchanged", (json_int_t)same);
}

static json_t *text_diff(const char *name, const char *file, int64_t from, const char *a,
                         int64_t to, const char *b)
{
    _cleanup_free_ char *la = xasprintf("%s/v%lld/%s", name, (long long)from, file);
    _cleanup_free_ char *lb = xasprintf("%s/v%lld/%s", name, (long long)to, file);
    _cleanup_free_ char *d = builder_unified_diff(a ? a : "", b ? b : "", la, lb, 3);
    return json_pack("{s:b, s:s}", "changed", *d != '\0', "diff", d);
}

static json_t *policy_value(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text ? text : "{}", 0, &jerr);
    return v ? v : json_object();
}

void api_env_diff(struct web_request *rq)
{
    _cleanup_(env_record_release) struct env_record env = {0};
    _cleanup_(build_record_release) struct build_record from = {0};
    _cleanup_(build_record_release) struct build_record to = {0};
    struct package_entry *pa = NULL, *pb = NULL;
    size_t na = 0, nb = 0;
    struct err err = ERR_INIT;
    char value[32];
    bool answered = false;
    int64_t v_from = 0, v_to = 0;

    if (catalog_env_get(rq->deps->catalog, rq->params[0], &env, &err) < 0) {
        if (err.code == ERR_NOT_FOUND)
            err_about(&err, ERR_NOT_FOUND, ERR_ABOUT_ENV_MISSING, rq->params[0], NULL);
        web_reply_err(rq, &err);
        return;
    }
    if (query_get(rq, "to", value, sizeof(value), &answered)) {
        if (parse_int(value, 1, INT64_MAX, &v_to) < 0) {
            web_reply_detail(rq, 400, "to: '%s' is not a version number", value);
            return;
        }
    } else if (!answered) {
        v_to = env.version ? env.version : env.latest_version;
    }
    if (answered)
        return;
    if (query_get(rq, "from", value, sizeof(value), &answered)) {
        if (parse_int(value, 1, INT64_MAX, &v_from) < 0) {
            web_reply_detail(rq, 400, "from: '%s' is not a version number", value);
            return;
        }
    } else if (!answered) {
        /* the newest ready version before `to` */
        struct build_record *builds = NULL;
        size_t n = 0;
        if (catalog_build_list(rq->deps->catalog, env.name, &builds, &n, &err) < 0) {
            web_reply_err(rq, &err);
            return;
        }
        for (size_t i = 0; i < n && !v_from; i++)
            if (builds[i].version < v_to && builds[i].status == BUILD_READY)
                v_from = builds[i].version;
        build_records_free(builds, n);
        if (!v_from) {
            web_reply_detail(rq, 400,
                             "from: environment '%s' has no ready version before %lld to compare "
                             "with",
                             env.name, (long long)v_to);
            return;
        }
    }
    if (answered)
        return;
    if (v_to == 0) {
        web_reply_detail(rq, 404, "environment '%s' has no build", env.name);
        return;
    }
    if (catalog_build_get(rq->deps->catalog, env.name, v_from, &from, &err) < 0 ||
        catalog_build_get(rq->deps->catalog, env.name, v_to, &to, &err) < 0) {
        if (err.code == ERR_NOT_FOUND)
            web_reply_detail(rq, 404, "environment '%s' has no build %lld", env.name,
                             (long long)(from.id ? v_to : v_from));
        else
            web_reply_err(rq, &err);
        return;
    }
    if (catalog_build_packages(rq->deps->catalog, from.id, &pa, &na, &err) < 0 ||
        catalog_build_packages(rq->deps->catalog, to.id, &pb, &nb, &err) < 0) {
        package_entries_free(pa, na);
        web_reply_err(rq, &err);
        return;
    }
    json_t *pol_from = policy_value(from.policy), *pol_to = policy_value(to.policy);
    bool pol_changed = !json_equal(pol_from, pol_to);
    json_t *doc = json_pack(
        "{s:s, s:I, s:I, s:s, s:s, s:o, s:o, s:o, s:{s:s, s:s, s:b}, s:{s:o, s:o, s:b}}",
        "environment", env.name, "from", (json_int_t)v_from, "to", (json_int_t)v_to, "from_status",
        build_status_name(from.status), "to_status", build_status_name(to.status), "packages",
        packages_diff(pa, na, pb, nb), "setup_script",
        text_diff(env.name, "setup.sh", v_from, from.setup_script, v_to, to.setup_script),
        "test_script",
        text_diff(env.name, "test_script.py", v_from, from.test_script, v_to, to.test_script),
        "base_image", "from", from.base_image, "to", to.base_image, "changed",
        strcmp(from.base_image, to.base_image) != 0, "policy", "from", pol_from, "to", pol_to,
        "changed", pol_changed);
    package_entries_free(pa, na);
    package_entries_free(pb, nb);
    web_reply_json(rq, 200, doc);
}

/* ---- POST /environments/{name}/lifecycle {state, replacement} ---- */

void api_env_lifecycle(struct web_request *rq)
{
    _cleanup_(env_record_release) struct env_record env = {0};
    struct err err = ERR_INIT;
    int64_t rebuild = 0;
    json_auto_t *doc =
        web_read_object(rq, 0, "{\"state\": \"deprecated\", \"replacement\": \"other\"}", &err);

    if (!doc) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *jstate = json_object_get(doc, "state");
    json_t *jrepl = json_object_get(doc, "replacement");
    if (!json_is_string(jstate)) {
        web_reply_detail(rq, 422, "state: required, one of active, deprecated, retired");
        return;
    }
    if (jrepl && !json_is_null(jrepl) && !json_is_string(jrepl)) {
        web_reply_detail(rq, 422, "replacement: must be an environment name");
        return;
    }
    const char *s = json_string_value(jstate);
    int state = env_lifecycle_parse(s);
    if (strcmp(s, "ready") == 0 || strcmp(s, "reinstated") == 0)
        state = ENV_ACTIVE;
    if (state < 0) {
        web_reply_detail(rq, 400, "state: '%.40s' must be active, deprecated or retired", s);
        return;
    }
    const char *replacement = json_is_string(jrepl) ? json_string_value(jrepl) : NULL;
    if (builder_set_lifecycle(rq->deps->builder, rq->params[0], (enum env_lifecycle)state,
                              replacement, rq->principal, &env, &rebuild, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *out = web_env_json(&env);
    json_object_set_new(out, "rebuild", rebuild ? json_integer(rebuild) : json_null());
    web_reply_json(rq, 200, out);
}

/* ---- GET /drift[?environment=NAME] ---- */

void api_drift(struct web_request *rq)
{
    char name[QUERY_VALUE_MAX];
    bool answered = false;
    struct drift_report *r = NULL;
    size_t n = 0, drifted = 0;
    struct err err = ERR_INIT;

    bool one = query_get(rq, "environment", name, sizeof(name), &answered) && *name;
    if (answered)
        return;
    if (builder_drift_check(rq->deps->builder, one ? name : NULL, &r, &n, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        drifted += r[i].drifted == 1;
        json_array_append_new(
            list,
            json_pack("{s:s, s:I, s:s, s:o, s:o, s:o, s:o, s:o}", "environment", r[i].environment,
                      "version", (json_int_t)r[i].version, "base_image", r[i].base_image,
                      "built_on", web_json_str(r[i].built_on), "resolves_to",
                      web_json_str(r[i].resolves_to), "drifted", web_env_drift_flag(r[i].drifted),
                      "checked_at", web_json_time(r[i].checked_at), "rebuild",
                      r[i].drifted == 1 ? web_env_rebuild_hint(r[i].environment) : json_null()));
    }
    drift_reports_free(r, n);
    web_reply_json(rq, 200,
                   json_pack("{s:o, s:I, s:I}", "environments", list, "checked", (json_int_t)n,
                             "drifted", (json_int_t)drifted));
}

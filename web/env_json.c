/* web/env_json.c - an environment as the API shows it, in one place:
 * SimplePySandbox's fields (name, description, base_image, docker_image,
 * status, created_at, last_used, setup_script, python_version) and envhub's
 * (version, image, policy, latest build, curation: lifecycle, warnings,
 * drift; runs in the last days). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder/builder.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

json_t *web_env_drift_flag(int drifted)
{
    return drifted < 0 ? json_null() : json_boolean(drifted);
}

json_t *web_env_rebuild_hint(const char *name)
{
    _cleanup_free_ char *path = xasprintf("/environments/%s/rebuild", name);
    _cleanup_free_ char *cli = xasprintf("envhub env rebuild %s", name);
    return json_pack("{s:s, s:s, s:s}", "method", "POST", "path", path, "cli", cli);
}

static void curation_json(const struct env_record *env, json_t *doc)
{
    json_object_set_new(doc, "test_script", web_json_str(env->test_script));
    json_object_set_new(doc, "lifecycle", json_string(env_lifecycle_name(env->lifecycle)));
    json_object_set_new(doc, "replacement", web_json_str(env->replacement));
    json_object_set_new(doc, "warning", web_json_str(env->warning));
    json_object_set_new(doc, "lifecycle_changed_at", web_json_time(env->lifecycle_at));
    json_object_set_new(doc, "lifecycle_changed_by", web_json_str(env->lifecycle_by));
    json_object_set_new(doc, "images_removed_at", web_json_time(env->images_removed_at));
    /* drift as last checked: the reference then vs the id this version was built on */
    json_t *drift = json_null();
    if (env->version > 0 && env->drift_checked_at > 0) {
        int drifted = !env->drift_image_id || !env->base_image_id
                          ? -1
                          : strcmp(env->drift_image_id, env->base_image_id) != 0;
        drift = json_pack(
            "{s:o, s:s, s:o, s:o, s:o, s:o}", "drifted", web_env_drift_flag(drifted), "base_image",
            env->base_image, "built_on", web_json_str(env->base_image_id), "resolves_to",
            web_json_str(env->drift_image_id), "checked_at", web_json_time(env->drift_checked_at),
            "rebuild", drifted == 1 ? web_env_rebuild_hint(env->name) : json_null());
    }
    json_object_set_new(doc, "drift", drift);
}

json_t *web_env_json(const struct env_record *env)
{
    /* before its first version is ready, docker_image names the tag being built */
    _cleanup_free_ char *pending = NULL;
    const char *image = env->image;
    if (!image) {
        pending = builder_image_ref(env->name, env->latest_version ? env->latest_version : 1);
        image = pending;
    }
    json_t *build = env->latest_version
                        ? json_pack("{s:I, s:s}", "version", (json_int_t)env->latest_version,
                                    "status", env->latest_status ? env->latest_status : "")
                        : json_null();
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:I, s:o, s:o, s:o, s:o, "
        "s:s, s:o}",
        "name", env->name, "description", env->description, "base_image", env->base_image,
        "docker_image", image, "status", env_status_name(env->status), "created_at",
        web_json_time(env->created_at), "last_used", web_json_time(env->last_used), "setup_script",
        env->setup_script, "python_version", env->python_version, "version",
        (json_int_t)env->version, "image_id", web_json_str(env->image_id), "error",
        web_json_str(env->error), "updated_at", web_json_time(env->updated_at), "definition",
        web_json_str(env->definition), "created_by", env->created_by, "latest_build", build);
    json_error_t jerr;
    json_t *policy = json_loads(env->policy ? env->policy : "{}", 0, &jerr);
    json_object_set_new(doc, "policy", policy ? policy : json_object());
    /* the version in service in ENVHUB_REGISTRY, by digest; null: not pushed */
    json_object_set_new(doc, "registry_image", web_json_str(env->registry_image));
    curation_json(env, doc);
    return doc;
}

void web_env_runs_json(struct web_request *rq, const char *name, json_t *doc)
{
    int64_t runs[3];
    struct err err = ERR_INIT;
    if (catalog_env_runs(rq->deps->catalog, name, time_now_ms(), runs, &err) < 0) {
        log_warn("web: cannot count the runs of '%s': %s", name, err.msg);
        json_object_set_new(doc, "runs", json_null());
        return;
    }
    json_object_set_new(doc, "runs",
                        json_pack("{s:I, s:I, s:I}", "7d", (json_int_t)runs[0], "30d",
                                  (json_int_t)runs[1], "90d", (json_int_t)runs[2]));
}

/* web/api_keys.c - API keys over HTTP (admins only) and the change events
 * (auditors): who created, rebuilt or deleted environments, who made or
 * revoked keys. A secret is shown once, in the answer that creates it. */
#include <civetweb.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

static json_t *limit_json(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *key_json(const struct key_record *k)
{
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o}", "name", k->name, "id", k->id, "role",
        role_name(k->role), "created_at", web_json_time(k->created_at), "created_by",
        k->created_by ? k->created_by : "", "revoked_at", web_json_time(k->revoked_at),
        "revoked_by", k->revoked_by ? json_string(k->revoked_by) : json_null(), "max_concurrent",
        limit_json(k->max_concurrent), "max_per_minute", limit_json(k->max_per_minute));
}

/* An optional non-negative integer member; -1 when absent. */
static int get_limit(json_t *doc, const char *field, int64_t *ret, struct err *err)
{
    json_t *v = json_object_get(doc, field);
    *ret = -1;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return err_set(err, ERR_UNPROCESSABLE, "%s: must be an integer", field);
    if (json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
        return err_set(err, ERR_UNPROCESSABLE, "%s: must be from 0 (no limit) to 1000000", field);
    *ret = json_integer_value(v);
    return 0;
}

void api_keys_create(struct web_request *rq)
{
    _cleanup_free_ char *secret = NULL;
    struct err err = ERR_INIT;
    int64_t max_conc, max_min;
    json_auto_t *doc = web_read_object(rq, 0, "{name, role}", &err);

    if (!doc) {
        web_reply_err(rq, &err);
        return;
    }
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *role_s = json_string_value(json_object_get(doc, "role"));
    if (!name || !role_s) {
        web_reply_detail(rq, 422, "%s: field required (a string)", name ? "role" : "name");
        return;
    }
    int role = role_parse(role_s);
    if (role < 0) {
        web_reply_detail(rq, 400, "role: '%.40s' is not a role (admin, curator, runner, auditor)",
                         role_s);
        return;
    }
    if (get_limit(doc, "max_concurrent", &max_conc, &err) < 0 ||
        get_limit(doc, "max_per_minute", &max_min, &err) < 0 ||
        web_key_issue(rq->deps->catalog, name, (enum role)role, max_conc, max_min, rq->principal,
                      &secret, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    _cleanup_(key_record_release) struct key_record k = {0};
    /* the id is the 12 characters after "ehk_" */
    _cleanup_free_ char *id = xstrndup(secret + 4, 12);
    if (catalog_key_get(rq->deps->catalog, id, &k, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *answer = key_json(&k);
    json_object_set_new(answer, "secret", json_string(secret));
    web_reply_json(rq, 201, answer);
}

void api_keys_list(struct web_request *rq)
{
    struct key_record *keys = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;

    if (catalog_key_list(rq->deps->catalog, &keys, &n, &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, key_json(&keys[i]));
    key_records_free(keys, n);
    web_reply_json(rq, 200, json_pack("{s:o, s:I}", "keys", list, "total", (json_int_t)n));
}

void api_keys_revoke(struct web_request *rq)
{
    struct err err = ERR_INIT;

    if (catalog_key_revoke(rq->deps->catalog, rq->params[0], time_now_ms(), rq->principal, &err) <
        0) {
        web_reply_err(rq, &err);
        return;
    }
    _cleanup_free_ char *msg = xasprintf("key '%s' revoked", rq->params[0]);
    web_reply_json(rq, 200, json_pack("{s:s}", "message", msg));
}

void api_events(struct web_request *rq)
{
    struct event_record *ev = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;
    char subject[128] = "", limit_s[16];
    int64_t limit = 100;

    if (rq->query) {
        if (mg_get_var(rq->query, strlen(rq->query), "subject", subject, sizeof(subject)) < 0)
            subject[0] = '\0';
        if (mg_get_var(rq->query, strlen(rq->query), "limit", limit_s, sizeof(limit_s)) >= 0 &&
            parse_int(limit_s, 1, 1000, &limit) < 0) {
            web_reply_detail(rq, 400, "limit: '%s' must be from 1 to 1000", limit_s);
            return;
        }
    }
    if (catalog_event_list(rq->deps->catalog, subject[0] ? subject : NULL, (size_t)limit, &ev, &n,
                           &err) < 0) {
        web_reply_err(rq, &err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:I, s:o, s:s, s:s, s:s, s:s}", "seq",
                                              (json_int_t)ev[i].seq, "at", web_json_time(ev[i].at),
                                              "principal", ev[i].principal, "action", ev[i].action,
                                              "subject", ev[i].subject, "detail", ev[i].detail));
    event_records_free(ev, n);
    web_reply_json(rq, 200, json_pack("{s:o, s:I}", "events", list, "total", (json_int_t)n));
}

void api_me(struct web_request *rq)
{
    json_t *perms = json_object();
    static const struct {
        const char *name;
        enum perm perm;
    } all[] = {
        {"run", PERM_RUN},
        {"environments_read", PERM_ENV_READ},
        {"environments_write", PERM_ENV_WRITE},
        {"history", PERM_HISTORY},
        {"audit", PERM_AUDIT},
        {"keys", PERM_KEYS},
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        json_object_set_new(perms, all[i].name,
                            json_boolean(web_role_allows(rq->role, all[i].perm)));
    web_reply_json(rq, 200,
                   json_pack("{s:s, s:s, s:b, s:b, s:o}", "principal", rq->principal, "role",
                             role_name(rq->role), "open_mode", rq->open_mode, "own_history_only",
                             rq->role == ROLE_RUNNER || rq->role == ROLE_CURATOR, "can", perms));
}

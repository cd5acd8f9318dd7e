/* web/auth.c - who is calling and what they may do: API keys, roles, quotas.
 *
 * A key's secret reads "ehk_<id>_<random>": the id finds the row, then the
 * sha256 of the whole secret is compared in constant time with the stored
 * one. Secrets are never stored or logged. Revocation is read on every
 * request, so it takes effect at once. Until the first key is created,
 * envhub runs in open mode (everyone is admin), but only when it listens on
 * loopback; revoking keys never reopens it.
 *
 * Quotas count per key: executions running now and open sessions (each holds
 * one until it ends), and executions started in the last 60 s (a sliding
 * window; a session's open and its calls count there too); one mutex guards
 * the table. */
#include <civetweb.h>
#include <ctype.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster/cluster.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web_internal.h"

#include "core/banned.h"

#define KEY_PREFIX "ehk_"
#define KEY_ID_BYTES 6      /* 12 hex characters */
#define KEY_SECRET_BYTES 24 /* 48 hex characters: 192 bits */
#define QUOTA_WINDOW_MS 60000

struct quota_entry {
    char *principal;
    int64_t running;
    int64_t *starts; /* ring of start times within the window */
    size_t n_starts, cap;
    struct quota_entry *next;
};

/* A queued or running asynchronous execution holding its key's concurrency. */
struct quota_hold {
    char exec_id[32];
    char key_id[16];
    struct quota_hold *next;
};

struct auth {
    const struct config *cfg;
    struct catalog *catalog;
    bool loopback;
    pthread_mutex_t lock;
    struct quota_entry *quotas;
    struct quota_hold *holds;
};

/* ---- roles ---- */

bool web_role_allows(enum role role, enum perm perm)
{
    switch (perm) {
    case PERM_PUBLIC:
    case PERM_ENV_READ:
        return true;
    case PERM_RUN:
        return role != ROLE_AUDITOR;
    case PERM_HISTORY: /* runners and curators: their own executions only */
        return true;
    case PERM_ENV_WRITE:
        return role == ROLE_ADMIN || role == ROLE_CURATOR;
    case PERM_AUDIT:
        return role == ROLE_ADMIN || role == ROLE_AUDITOR;
    case PERM_KEYS:
        return role == ROLE_ADMIN;
    case PERM_NODE: /* a node's token, never a role (web_authorize) */
        return false;
    }
    return false;
}

bool web_listen_is_loopback(const char *listen)
{
    /* "127.0.0.1:8000", "localhost:8000", "[::1]:8000"; a bare port means every address */
    if (strncmp(listen, "127.", 4) == 0 || strncmp(listen, "localhost:", 10) == 0 ||
        strncmp(listen, "[::1]:", 6) == 0)
        return strchr(listen, ',') == NULL;
    return false;
}

int web_auth_open(const struct config *cfg, struct catalog *cat, struct auth **ret, struct err *err)
{
    int64_t created = 0, active = 0;

    /* the same rule as web_authorize: open mode while no key was ever created */
    if (catalog_key_count_all(cat, &created, err) < 0 ||
        catalog_key_count_active(cat, &active, err) < 0)
        return -1;
    bool loopback = web_listen_is_loopback(cfg->listen);
    if (active == 0 && !loopback)
        return err_set(err, ERR_FORBIDDEN,
                       "refusing to serve on '%s' without an active API key: %s; create an admin "
                       "key first (envhub key create --name admin --role admin) or listen on "
                       "127.0.0.1",
                       cfg->listen,
                       created > 0 ? "every key is revoked, so no request could be served"
                                   : "anyone who reaches it could run code");
    if (created == 0)
        log_warn("auth: open mode: no API keys exist, so every request to %s is served without "
                 "authentication (as admin); create a key (envhub key create) to require keys",
                 cfg->listen);
    else if (active == 0)
        log_warn("auth: 0 active API keys (all %lld revoked): requests need Authorization: "
                 "Bearer <key> and get 401 until a key is created (envhub key create)",
                 (long long)created);
    else
        log_info("auth: %lld active API keys; requests need Authorization: Bearer <key>",
                 (long long)active);
    struct auth *a = xcalloc(1, sizeof(*a));
    a->cfg = cfg;
    a->catalog = cat;
    a->loopback = loopback;
    pthread_mutex_init(&a->lock, NULL);
    *ret = a;
    return 0;
}

void web_auth_close(struct auth *a)
{
    if (!a)
        return;
    while (a->holds) {
        struct quota_hold *h = a->holds;
        a->holds = h->next;
        free(h);
    }
    while (a->quotas) {
        struct quota_entry *q = a->quotas;
        a->quotas = q->next;
        free(q->principal);
        free(q->starts);
        free(q);
    }
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* ---- keys ---- */

bool web_key_name_valid(const char *name)
{
    size_t n = strlen(name);
    /* a letter first: a key's name is a principal and must never read like a
     * client address, which is the principal of open mode */
    if (n < 1 || n > 64 || !isalpha((unsigned char)name[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("_.@-", name[i]))
            return false;
    return true;
}

int web_key_issue(struct catalog *cat, const char *name, enum role role, int64_t max_concurrent,
                  int64_t max_per_minute, const char *created_by, char **ret_secret,
                  struct err *err)
{
    char id[2 * KEY_ID_BYTES + 1], random[2 * KEY_SECRET_BYTES + 1], hash[SHA256_HEX_LEN + 1];

    if (!web_key_name_valid(name))
        return err_set(err, ERR_INVALID,
                       "name: '%.70s' is not a valid key name (1 to 64 letters, digits, '_', '.', "
                       "'@' and '-', starting with a letter)",
                       name);
    id_random_hex(id, KEY_ID_BYTES);
    id_random_hex(random, KEY_SECRET_BYTES);
    _cleanup_free_ char *secret = xasprintf(KEY_PREFIX "%s_%s", id, random);
    sha256_hex(secret, strlen(secret), hash);
    struct key_record k = {
        .id = id,
        .name = (char *)name,
        .role = role,
        .secret_sha256 = hash,
        .created_at = time_now_ms(),
        .created_by = (char *)(created_by ? created_by : ""),
        .max_concurrent = max_concurrent,
        .max_per_minute = max_per_minute,
    };
    if (catalog_key_create(cat, &k, err) < 0)
        return -1;
    *ret_secret = steal_ptr(secret);
    return 0;
}

/* "Bearer ehk_<id>_<random>" -> the key, when it exists, is active and the
 * hash matches. */
static int authenticate(struct auth *a, const char *header, struct key_record *ret)
{
    struct err err = ERR_INIT;
    static const char bearer[] = "Bearer ";

    if (!header || strncasecmp(header, bearer, sizeof(bearer) - 1) != 0)
        return -1;
    const char *secret = header + sizeof(bearer) - 1;
    while (*secret == ' ')
        secret++;
    size_t len = strlen(secret);
    if (len != strlen(KEY_PREFIX) + 2 * KEY_ID_BYTES + 1 + 2 * KEY_SECRET_BYTES ||
        strncmp(secret, KEY_PREFIX, strlen(KEY_PREFIX)) != 0)
        return -1;
    char id[2 * KEY_ID_BYTES + 1];
    memcpy(id, secret + strlen(KEY_PREFIX), 2 * KEY_ID_BYTES);
    id[2 * KEY_ID_BYTES] = '\0';
    if (catalog_key_get(a->catalog, id, ret, &err) < 0)
        return -1;
    char hash[SHA256_HEX_LEN + 1];
    sha256_hex(secret, len, hash);
    bool match = strlen(ret->secret_sha256) == SHA256_HEX_LEN &&
                 CRYPTO_memcmp(hash, ret->secret_sha256, SHA256_HEX_LEN) == 0;
    if (!match || ret->revoked_at != 0) {
        key_record_release(ret);
        return -1;
    }
    return 0;
}

/* A node's call: its name is the route's first parameter, its token the
 * bearer; open mode or not, nothing else is let in. */
static bool node_authorize(struct web_request *rq, const char *header)
{
    struct cluster *c = rq->deps->cluster;
    if (!c) {
        web_reply_detail(rq, 404, "not found: %s (cluster mode is off: ENVHUB_CLUSTER is empty)",
                         rq->path);
        return false;
    }
    const char *token = header && strncasecmp(header, "Bearer ", 7) == 0 ? header + 7 : NULL;
    if (!cluster_token_ok(c, rq->params[0], token)) {
        rq->extra_headers = "WWW-Authenticate: Bearer\r\n";
        web_reply_detail(rq, 401,
                         "node '%.64s': a node's calls need Authorization: Bearer <its token> "
                         "(envhub cluster token NAME, from ENVHUB_NODE_KEY_FILE)",
                         rq->params[0] ? rq->params[0] : "");
        return false;
    }
    snprintf(rq->principal_buf, sizeof(rq->principal_buf), "node:%.60s", rq->params[0]);
    rq->principal = rq->principal_buf;
    return true;
}

bool web_authorize(struct auth *a, struct web_request *rq, enum perm perm)
{
    struct err err = ERR_INIT;
    int64_t created = 0;
    const char *header = mg_get_header(rq->conn, "Authorization");

    if (perm == PERM_PUBLIC)
        return true;
    if (perm == PERM_NODE)
        return node_authorize(rq, header);
    /* open mode lasts until the first key is made; revoking keys never reopens it */
    if (catalog_key_count_all(a->catalog, &created, &err) < 0) {
        web_reply_err(rq, &err);
        return false;
    }
    if (created == 0) {
        if (!a->loopback) {
            web_reply_detail(rq, 401,
                             "no API keys exist: an administrator must create one "
                             "(envhub key create)");
            return false;
        }
        /* open mode: loopback callers act as admin, known by their address */
        rq->role = ROLE_ADMIN;
        rq->open_mode = true;
        return true;
    }
    struct key_record key = {0};
    if (authenticate(a, header, &key) < 0) {
        rq->extra_headers = "WWW-Authenticate: Bearer\r\n";
        web_reply_detail(rq, 401,
                         header ? "Authorization: the API key is unknown or revoked"
                                : "Authorization: missing; send 'Authorization: Bearer <key>'");
        return false;
    }
    snprintf(rq->principal_buf, sizeof(rq->principal_buf), "%s", key.name);
    snprintf(rq->key_id, sizeof(rq->key_id), "%s", key.id);
    rq->principal = rq->principal_buf;
    rq->role = key.role;
    rq->key_max_concurrent = key.max_concurrent;
    rq->key_max_per_minute = key.max_per_minute;
    key_record_release(&key);
    if (!web_role_allows(rq->role, perm)) {
        web_reply_detail(rq, 403, "role '%s' (key '%s') may not %s %s", role_name(rq->role),
                         rq->principal, rq->method, rq->path);
        return false;
    }
    /* runners and curators see their own executions only */
    if (perm == PERM_HISTORY && (rq->role == ROLE_RUNNER || rq->role == ROLE_CURATOR))
        rq->own_principal = rq->principal;
    return true;
}

/* ---- quotas ---- */

static void role_limits(const struct auth *a, const struct web_request *rq, int64_t *conc,
                        int64_t *per_min)
{
    const struct config *c = a->cfg;
    *conc = 0;
    *per_min = 0;
    if (rq->role == ROLE_RUNNER) {
        *conc = c->quota_runner_concurrent;
        *per_min = c->quota_runner_per_minute;
    } else if (rq->role == ROLE_CURATOR) {
        *conc = c->quota_curator_concurrent;
        *per_min = c->quota_curator_per_minute;
    }
    if (rq->key_max_concurrent >= 0)
        *conc = rq->key_max_concurrent;
    if (rq->key_max_per_minute >= 0)
        *per_min = rq->key_max_per_minute;
}

/* Under the lock: would one more execution pass the key's limits? Drops
 * starts that left the window. ERR_BUSY with rq->retry_after when not. */
static int quota_admits(struct quota_entry *q, struct web_request *rq, int64_t conc,
                        int64_t per_min, int64_t now, struct err *err)
{
    size_t keep = 0;
    for (size_t i = 0; i < q->n_starts; i++)
        if (q->starts[i] > now - QUOTA_WINDOW_MS)
            q->starts[keep++] = q->starts[i];
    q->n_starts = keep;
    if (conc > 0 && !rq->quota_in_session && q->running >= conc) {
        rq->retry_after = 1;
        return err_set(err, ERR_BUSY,
                       "quota: key '%s' already runs %lld executions at once (its limit, "
                       "max_concurrent; each open session counts as one)",
                       rq->principal, (long long)conc);
    }
    if (per_min > 0 && (int64_t)q->n_starts >= per_min) {
        int64_t wait_ms = q->starts[0] + QUOTA_WINDOW_MS - now;
        rq->retry_after = (int)((wait_ms + 999) / 1000);
        if (rq->retry_after < 1)
            rq->retry_after = 1;
        return err_set(err, ERR_BUSY,
                       "quota: key '%s' started %lld executions in the last minute (its limit); "
                       "retry in %d s",
                       rq->principal, (long long)per_min, rq->retry_after);
    }
    return 0;
}

/* Under the lock: the key's entry, made when @create. */
static struct quota_entry *quota_entry(struct auth *a, const char *key_id, bool create)
{
    for (struct quota_entry *q = a->quotas; q; q = q->next)
        if (strcmp(q->principal, key_id) == 0)
            return q;
    if (!create)
        return NULL;
    struct quota_entry *q = xcalloc(1, sizeof(*q));
    q->principal = xstrdup(key_id);
    q->next = a->quotas;
    a->quotas = q;
    return q;
}

int web_quota_check(struct auth *a, struct web_request *rq, struct err *err)
{
    int64_t conc, per_min;
    int rc = 0;

    if (rq->open_mode || !rq->key_id[0])
        return 0;
    role_limits(a, rq, &conc, &per_min);
    if (conc <= 0 && per_min <= 0)
        return 0;
    pthread_mutex_lock(&a->lock);
    struct quota_entry *q = quota_entry(a, rq->key_id, false);
    if (q)
        rc = quota_admits(q, rq, conc, per_min, time_mono_ms(), err);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

int web_quota_enter(struct auth *a, struct web_request *rq, struct err *err)
{
    int64_t conc, per_min, now = time_mono_ms();

    if (rq->open_mode || !rq->key_id[0])
        return 0;
    role_limits(a, rq, &conc, &per_min);
    if (conc <= 0 && per_min <= 0)
        return 0;
    pthread_mutex_lock(&a->lock);
    struct quota_entry *q = quota_entry(a, rq->key_id, true);
    if (quota_admits(q, rq, conc, per_min, now, err) < 0) {
        pthread_mutex_unlock(&a->lock);
        return -1;
    }
    ALLOC_GROW(q->starts, q->n_starts + 1, q->cap);
    q->starts[q->n_starts++] = now;
    if (!rq->quota_in_session)
        q->running++;
    rq->quota_held = true;
    pthread_mutex_unlock(&a->lock);
    return 0;
}

void web_quota_leave(struct auth *a, struct web_request *rq, bool started)
{
    if (!rq->quota_held)
        return;
    pthread_mutex_lock(&a->lock);
    struct quota_entry *q = quota_entry(a, rq->key_id, false);
    if (q) {
        if (!rq->quota_in_session)
            q->running--;
        /* a request that started nothing does not count against the minute */
        if (!started && q->n_starts > 0)
            q->n_starts--;
    }
    pthread_mutex_unlock(&a->lock);
    rq->quota_held = false;
}

int web_budget_check(struct auth *a, struct web_request *rq, int64_t now, struct err *err)
{
    int64_t budget = a->cfg->output_budget, used = 0;
    int64_t day = catalog_utc_day(now);

    if (budget <= 0)
        return 0;
    if (catalog_output_usage(a->catalog, rq->principal, day, &used, err) < 0)
        return -1;
    if (used < budget)
        return 0;
    /* the budget is per UTC day: the next one starts at midnight */
    int64_t wait_s = ((day + 1) * 86400000LL - now + 999) / 1000;
    rq->retry_after = wait_s < 1 ? 1 : wait_s > INT32_MAX ? INT32_MAX : (int)wait_s;
    return err_set(err, ERR_BUSY,
                   "output budget: '%s' stored %lld bytes of output today (UTC); "
                   "ENVHUB_OUTPUT_BUDGET allows %lld a day; retry after 00:00 UTC (in %d s)",
                   rq->principal, (long long)used, (long long)budget, rq->retry_after);
}

void web_quota_hold(struct auth *a, struct web_request *rq, const char *exec_id)
{
    if (!rq->quota_held)
        return;
    struct quota_hold *h = xcalloc(1, sizeof(*h));
    snprintf(h->exec_id, sizeof(h->exec_id), "%s", exec_id);
    snprintf(h->key_id, sizeof(h->key_id), "%s", rq->key_id);
    pthread_mutex_lock(&a->lock);
    h->next = a->holds;
    a->holds = h;
    pthread_mutex_unlock(&a->lock);
    rq->quota_held = false; /* the execution holds it now */
}

void web_quota_release(struct auth *a, const char *exec_id)
{
    pthread_mutex_lock(&a->lock);
    for (struct quota_hold **p = &a->holds; *p; p = &(*p)->next)
        if (strcmp((*p)->exec_id, exec_id) == 0) {
            struct quota_hold *h = *p;
            *p = h->next;
            struct quota_entry *q = quota_entry(a, h->key_id, false);
            if (q)
                q->running--;
            free(h);
            break;
        }
    pthread_mutex_unlock(&a->lock);
}

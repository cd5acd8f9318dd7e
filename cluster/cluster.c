/* cluster/cluster.c - nodes, the queue, leases and placement (see
 * cluster.h). One mutex guards everything; each job has a condition its
 * submitter waits on, each node one its lease poll waits on; a reaper
 * thread finds the nodes that went silent. No call out of this file is made
 * with the lock held. */
#include "cluster/cluster.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

enum job_state { JOB_QUEUED, JOB_LEASED, JOB_DONE };

struct node {
    char *name, *boot, *engine;
    char *engine_error; /* its engine does not answer: it takes nothing */
    bool up, drained;
    int64_t slots, running, leased;
    uint64_t done, lost;
    int64_t first_seen_ms, last_seen_ms; /* wall clock */
    int64_t last_seen_mono, last_given_mono;
    char **warm, **pulling, **pools, **images;
    char **cancel; /* ids to name in its next heartbeat's answer */
    bool asking;   /* a lease poll waits */
    struct job *given;
    pthread_cond_t wake;
    struct node *next;
};

struct job {
    char *id, *image, *spec;
    size_t spec_len;
    enum job_state state;
    struct node *node; /* leased to */
    char *boot;        /* of the node's start it is leased to */
    bool started;      /* a heartbeat of that boot listed it */
    int rc;
    struct err err;
    char *ran_on; /* the node it was leased to last */
    char *result;
    size_t result_len;
    pthread_cond_t done;
    struct job *next;  /* every job in flight */
    struct job *qnext; /* the queue */
};

struct cluster {
    pthread_mutex_t lock;
    char *key;
    size_t key_len;
    int64_t timeout_ms;
    bool stopping;
    struct node *nodes;
    struct job *jobs;
    struct job *qhead, *qtail;
    int64_t queued;
    struct cluster_stats stats;
    pthread_cond_t reaper_wake;
    pthread_t reaper;
    bool reaper_started;
};

/* ---- pure parts ---- */

bool cluster_node_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > CLUSTER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '-')))
            return false;
    }
    return true;
}

void cluster_node_token(const char *key, size_t key_len, const char *name,
                        char ret[CLUSTER_TOKEN_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    _cleanup_free_ char *msg = xasprintf("envhub-node:%s", name);

    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), mac,
              &mac_len) ||
        mac_len != 32) {
        /* cannot happen with SHA-256; a token nobody can match */
        memset(ret, 'x', CLUSTER_TOKEN_LEN);
        ret[CLUSTER_TOKEN_LEN] = '\0';
        return;
    }
    for (unsigned int i = 0; i < 32; i++) {
        ret[2 * i] = hex[mac[i] >> 4];
        ret[2 * i + 1] = hex[mac[i] & 15];
    }
    ret[CLUSTER_TOKEN_LEN] = '\0';
}

int cluster_pick(const struct cluster_candidate *c, size_t n)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].asking || !c[i].up || c[i].drained || c[i].slots <= 0 ||
            c[i].leased >= c[i].slots)
            continue;
        if (best < 0) {
            best = (int)i;
            continue;
        }
        const struct cluster_candidate *b = &c[best];
        if (c[i].warm != b->warm) {
            if (c[i].warm)
                best = (int)i;
            continue;
        }
        /* less loaded: leased / slots, compared without division */
        int64_t lhs = c[i].leased * b->slots, rhs = b->leased * c[i].slots;
        if (lhs != rhs) {
            if (lhs < rhs)
                best = (int)i;
            continue;
        }
        /* the one that got a job last: the container its last job gave back is warm
         * for the next (a burst reuses it), and a closed loop stays on one node */
        if (c[i].last_given_ms > b->last_given_ms)
            best = (int)i;
    }
    return best;
}

int cluster_key_read(const char *path, char **ret, size_t *ret_len, struct err *err)
{
    char buf[4097];
    FILE *f = fopen(path, "re");
    if (!f)
        return err_errno(err, ERR_INVALID, errno, "ENVHUB_NODE_KEY_FILE '%s' cannot be read", path);
    size_t n = fread(buf, 1, sizeof(buf), f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || n == sizeof(buf))
        return err_set(err, ERR_INVALID, "ENVHUB_NODE_KEY_FILE '%s': %s", path,
                       failed ? "cannot be read" : "longer than 4096 bytes");
    size_t a = 0;
    while (a < n && (buf[a] == ' ' || buf[a] == '\n' || buf[a] == '\r' || buf[a] == '\t'))
        a++;
    while (n > a &&
           (buf[n - 1] == ' ' || buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == '\t'))
        n--;
    if (n - a < 16) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return err_set(err, ERR_INVALID,
                       "ENVHUB_NODE_KEY_FILE '%s' holds %zu bytes; a node key needs at least 16 "
                       "(e.g. head -c 32 /dev/urandom | base64 > FILE)",
                       path, n - a);
    }
    *ret = xmemdup(buf + a, n - a + 1);
    (*ret)[n - a] = '\0';
    *ret_len = n - a;
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

/* ---- nodes and jobs, under the lock ---- */

static struct node *node_find(struct cluster *c, const char *name)
{
    for (struct node *n = c->nodes; n; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

static struct job *job_find(struct cluster *c, const char *id)
{
    for (struct job *j = c->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static void node_touch(struct node *n)
{
    n->last_seen_ms = time_now_ms();
    n->last_seen_mono = time_mono_ms();
}

static void queue_push(struct cluster *c, struct job *j, bool front)
{
    j->state = JOB_QUEUED;
    j->node = NULL;
    free(steal_ptr(j->boot));
    j->started = false;
    if (front) {
        j->qnext = c->qhead;
        c->qhead = j;
        if (!c->qtail)
            c->qtail = j;
    } else {
        j->qnext = NULL;
        if (c->qtail)
            c->qtail->qnext = j;
        else
            c->qhead = j;
        c->qtail = j;
    }
    c->queued++;
}

static struct job *queue_pop(struct cluster *c)
{
    struct job *j = c->qhead;
    if (!j)
        return NULL;
    c->qhead = j->qnext;
    if (!c->qhead)
        c->qtail = NULL;
    j->qnext = NULL;
    c->queued--;
    return j;
}

static void queue_remove(struct cluster *c, struct job *j)
{
    for (struct job **p = &c->qhead, *prev = NULL; *p; prev = *p, p = &(*p)->qnext)
        if (*p == j) {
            *p = j->qnext;
            if (c->qtail == j)
                c->qtail = prev;
            j->qnext = NULL;
            c->queued--;
            return;
        }
}

/* The job's end: its submitter wakes. */
static void job_end(struct job *j, int rc, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void job_end(struct job *j, int rc, enum err_code code, const char *fmt, ...)
{
    j->state = JOB_DONE;
    j->rc = rc;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *msg = xvasprintf(fmt, ap);
        va_end(ap);
        err_set(&j->err, code, "%s", msg);
    }
    pthread_cond_signal(&j->done);
}

/* Lease @j to @n (which asks, or is about to take it from the queue). */
static void job_lease(struct node *n, struct job *j)
{
    j->state = JOB_LEASED;
    j->node = n;
    j->boot = xstrdup(n->boot);
    j->started = false;
    free(j->ran_on);
    j->ran_on = xstrdup(n->name);
    n->leased++;
    n->last_given_mono = time_mono_ms();
}

static bool warm_for(const struct node *n, const char *image)
{
    for (char **w = n->warm; w && *w; w++)
        if (strcmp(*w, image) == 0)
            return true;
    return false;
}

/* Give @j to the best node that asks; false when none can take it. */
static bool place(struct cluster *c, struct job *j)
{
    size_t count = 0;
    for (struct node *n = c->nodes; n; n = n->next)
        count++;
    if (count == 0)
        return false;
    _cleanup_free_ struct cluster_candidate *cand = xcalloc(count, sizeof(*cand));
    _cleanup_free_ struct node **by_index = xcalloc(count, sizeof(*by_index));
    size_t i = 0;
    for (struct node *n = c->nodes; n; n = n->next, i++) {
        by_index[i] = n;
        cand[i] = (struct cluster_candidate){
            .asking = n->asking && !n->given,
            .up = n->up && !n->engine_error,
            .drained = n->drained,
            .slots = n->slots,
            .leased = n->leased,
            .warm = warm_for(n, j->image),
            .last_given_ms = n->last_given_mono,
        };
    }
    int best = cluster_pick(cand, count);
    if (best < 0)
        return false;
    struct node *n = by_index[best];
    job_lease(n, j);
    n->given = j;
    c->stats.placed++;
    pthread_cond_signal(&n->wake);
    return true;
}

/* Back to the front of the queue (it never started), or to a node that asks. */
static void requeue(struct cluster *c, struct job *j)
{
    if (j->node)
        j->node->leased--;
    j->node = NULL;
    c->stats.requeued++;
    if (!place(c, j))
        queue_push(c, j, true);
}

/* Node @n is gone (@why): what it started ends ERR_GONE, the rest goes back
 * to the queue. */
static void node_drop_leases(struct cluster *c, struct node *n, const char *why)
{
    for (struct job *j = c->jobs; j; j = j->next) {
        if (j->state != JOB_LEASED || j->node != n)
            continue;
        if (n->given == j)
            n->given = NULL;
        if (j->started) {
            n->leased--;
            n->lost++;
            c->stats.interrupted++;
            job_end(j, -1, ERR_GONE, "node '%s' %s while the job ran", n->name, why);
        } else {
            requeue(c, j);
        }
    }
}

static bool any_node_ready(struct cluster *c, bool *ret_drained);

static void *reaper_main(void *arg)
{
    struct cluster *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        int64_t now = time_mono_ms();
        for (struct node *n = c->nodes; n; n = n->next) {
            if (!n->up || n->asking || now - n->last_seen_mono <= c->timeout_ms)
                continue;
            n->up = false;
            char why[96];
            snprintf(why, sizeof(why), "stopped answering (last heard %.1f s ago)",
                     (double)(now - n->last_seen_mono) / 1000.0);
            log_warn("cluster: node '%s' %s; its started jobs end interrupted, the others go "
                     "to other nodes",
                     n->name, why);
            node_drop_leases(c, n, why);
        }
        /* with no node left to take them, what waits in the queue fails rather than hang */
        bool drained = false;
        if (c->qhead && !any_node_ready(c, &drained)) {
            log_warn("cluster: no node takes jobs now; the %lld waiting for one end",
                     (long long)c->queued);
            struct job *j;
            while ((j = queue_pop(c)))
                job_end(j, -1, ERR_UNAVAILABLE,
                        drained ? "every node is drained: no node takes new jobs"
                                : "no node is up to run the job (the last ones were lost)");
        }
        struct timespec until = time_deadline_in(200);
        pthread_cond_timedwait(&c->reaper_wake, &c->lock, &until);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---- life ---- */

int cluster_open(const char *key, size_t key_len, int64_t node_timeout_ms, struct cluster **ret,
                 struct err *err)
{
    if (key_len < 16)
        return err_set(err, ERR_INVALID,
                       "the node key is %zu bytes; it must be at least 16 (use 32 random bytes)",
                       key_len);
    struct cluster *c = xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->reaper_wake, NULL);
    c->key = xmemdup(key, key_len);
    c->key_len = key_len;
    c->timeout_ms = node_timeout_ms;
    int rc = pthread_create(&c->reaper, NULL, reaper_main, c);
    if (rc != 0) {
        cluster_close(c);
        return err_set(err, ERR_INTERNAL, "cannot start the cluster's reaper thread: %s",
                       strerror(rc));
    }
    c->reaper_started = true;
    *ret = c;
    return 0;
}

void cluster_shutdown(struct cluster *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->stopping = true;
    for (struct job *j = c->jobs; j; j = j->next) {
        if (j->state == JOB_QUEUED) {
            queue_remove(c, j);
            job_end(j, -1, ERR_UNAVAILABLE, "envhub is shutting down");
        } else if (j->state == JOB_LEASED) {
            j->node->leased--;
            job_end(j, -1, ERR_UNAVAILABLE,
                    "the job was interrupted on node '%s': envhub is shutting down", j->node->name);
        }
    }
    for (struct node *n = c->nodes; n; n = n->next)
        pthread_cond_broadcast(&n->wake);
    pthread_cond_broadcast(&c->reaper_wake);
    pthread_mutex_unlock(&c->lock);
}

void cluster_close(struct cluster *c)
{
    if (!c)
        return;
    cluster_shutdown(c);
    if (c->reaper_started)
        pthread_join(c->reaper, NULL);
    while (c->nodes) {
        struct node *n = c->nodes;
        c->nodes = n->next;
        free(n->name);
        free(n->boot);
        free(n->engine);
        free(n->engine_error);
        strv_free(n->warm);
        strv_free(n->pulling);
        strv_free(n->pools);
        strv_free(n->images);
        strv_free(n->cancel);
        pthread_cond_destroy(&n->wake);
        free(n);
    }
    OPENSSL_cleanse(c->key, c->key_len);
    free(c->key);
    pthread_cond_destroy(&c->reaper_wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

bool cluster_token_ok(struct cluster *c, const char *name, const char *token)
{
    char want[CLUSTER_TOKEN_LEN + 1];
    if (!token || !cluster_node_name_ok(name) || strlen(token) != CLUSTER_TOKEN_LEN)
        return false;
    cluster_node_token(c->key, c->key_len, name, want);
    bool ok = CRYPTO_memcmp(want, token, CLUSTER_TOKEN_LEN) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    return ok;
}

/* ---- the server's jobs ---- */

void cluster_outcome_release(struct cluster_outcome *o)
{
    free(o->node);
    free(o->result);
    memset(o, 0, sizeof(*o));
}

static bool any_node_ready(struct cluster *c, bool *ret_drained)
{
    *ret_drained = false;
    for (struct node *n = c->nodes; n; n = n->next) {
        if (n->up && !n->drained && !n->engine_error)
            return true;
        if (n->up)
            *ret_drained = true;
    }
    return false;
}

int cluster_run(struct cluster *c, const char *id, const char *image, char *spec, size_t spec_len,
                struct cluster_outcome *ret, struct err *err)
{
    memset(ret, 0, sizeof(*ret));
    pthread_mutex_lock(&c->lock);
    bool drained = false;
    if (c->stopping || !any_node_ready(c, &drained)) {
        bool stopping = c->stopping;
        pthread_mutex_unlock(&c->lock);
        free(spec);
        if (stopping)
            return err_set(err, ERR_UNAVAILABLE, "envhub is shutting down");
        return err_set(err, ERR_UNAVAILABLE,
                       drained ? "every node is drained: no node takes new jobs (resume one: "
                                 "envhub cluster resume NODE)"
                               : "no node is up to run the job (none heard from within %lld ms; "
                                 "is `envhub node` running beside each engine?)",
                       (long long)c->timeout_ms);
    }
    struct job *j = xcalloc(1, sizeof(*j));
    j->id = xstrdup(id);
    j->image = xstrdup(image);
    j->spec = spec;
    j->spec_len = spec_len;
    j->err = (struct err)ERR_INIT;
    pthread_cond_init(&j->done, NULL);
    j->next = c->jobs;
    c->jobs = j;
    if (!place(c, j))
        queue_push(c, j, false);
    while (j->state != JOB_DONE)
        pthread_cond_wait(&j->done, &c->lock);
    for (struct job **p = &c->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    pthread_mutex_unlock(&c->lock);

    int rc = j->rc;
    ret->node = steal_ptr(j->ran_on);
    if (rc == 0) {
        ret->result = steal_ptr(j->result);
        ret->result_len = j->result_len;
    } else {
        err_copy(err, &j->err);
    }
    pthread_cond_destroy(&j->done);
    free(j->id);
    free(j->image);
    free(j->spec);
    free(j->boot);
    free(j->ran_on);
    free(j->result);
    free(j);
    return rc;
}

int cluster_cancel(struct cluster *c, const char *id, const char *by, struct err *err)
{
    pthread_mutex_lock(&c->lock);
    struct job *j = job_find(c, id);
    if (!j || j->state == JOB_DONE) {
        pthread_mutex_unlock(&c->lock);
        return err_set(err, ERR_NOT_FOUND, "execution '%s' is not queued or running", id);
    }
    if (j->state == JOB_QUEUED) {
        queue_remove(c, j);
        job_end(j, -1, ERR_CANCELLED, "cancelled by %s before it ran", by);
    } else {
        strv_push(&j->node->cancel, xstrdup(id));
    }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* ---- the node's side ---- */

void cluster_reply_release(struct cluster_reply *r)
{
    strv_free(r->cancel);
    memset(r, 0, sizeof(*r));
}

static char **strv_copy(char *const *v)
{
    char **out = NULL;
    for (size_t i = 0; v && v[i] && i < CLUSTER_REPORT_MAX; i++)
        strv_push(&out, xstrdup(v[i]));
    return out;
}

int cluster_heartbeat(struct cluster *c, const struct cluster_report *r, struct cluster_reply *ret,
                      struct err *err)
{
    memset(ret, 0, sizeof(*ret));
    if (!cluster_node_name_ok(r->name) || !r->boot || !r->boot[0])
        return err_set(err, ERR_INVALID, "a heartbeat needs the node's name and boot id");
    pthread_mutex_lock(&c->lock);
    struct node *n = node_find(c, r->name);
    if (!n) {
        n = xcalloc(1, sizeof(*n));
        n->name = xstrdup(r->name);
        n->first_seen_ms = time_now_ms();
        pthread_cond_init(&n->wake, NULL);
        n->next = c->nodes;
        c->nodes = n;
        log_info("cluster: node '%s' joined (%s, %lld slots)", r->name,
                 r->engine ? r->engine : "engine unknown", (long long)r->slots);
    } else if (n->boot && strcmp(n->boot, r->boot) != 0) {
        log_warn("cluster: node '%s' restarted (boot %s, was %s)", n->name, r->boot, n->boot);
        node_drop_leases(c, n, "restarted");
        strv_free(steal_ptr(n->cancel));
        pthread_cond_broadcast(&n->wake); /* a poll of the old boot ends */
    } else if (!n->up) {
        log_info("cluster: node '%s' answers again", n->name);
    }
    if (!n->first_seen_ms)
        n->first_seen_ms = time_now_ms(); /* known as drained before it first reported */
    free(n->boot);
    n->boot = xstrdup(r->boot);
    free(n->engine);
    n->engine = r->engine ? xstrdup(r->engine) : NULL;
    if (r->engine_error && !n->engine_error) {
        char why[200];
        snprintf(why, sizeof(why), "lost its engine (%.150s)", r->engine_error);
        log_warn("cluster: node '%s' %s; its started jobs end interrupted, the others go to other "
                 "nodes",
                 n->name, why);
        node_drop_leases(c, n, why);
    } else if (!r->engine_error && n->engine_error) {
        log_info("cluster: node '%s': its engine answers again", n->name);
    }
    free(n->engine_error);
    n->engine_error = r->engine_error ? xstrndup(r->engine_error, 200) : NULL;
    n->slots = r->slots;
    n->running = (int64_t)strv_length(r->running);
    strv_free(n->warm);
    n->warm = strv_copy(r->warm);
    strv_free(n->pulling);
    n->pulling = strv_copy(r->pulling);
    strv_free(n->pools);
    n->pools = strv_copy(r->pools);
    strv_free(n->images);
    n->images = strv_copy(r->images);
    n->up = true;
    node_touch(n);
    /* what it runs: started if leased to it, else to be killed */
    char **cancel = steal_ptr(n->cancel);
    for (size_t i = 0; r->running && r->running[i] && i < CLUSTER_REPORT_MAX; i++) {
        struct job *j = job_find(c, r->running[i]);
        if (j && j->state == JOB_LEASED && j->node == n && strcmp(j->boot, n->boot) == 0)
            j->started = true;
        else
            strv_push(&cancel, xstrdup(r->running[i]));
    }
    /* what it started and no longer lists, without a result: lost there */
    for (struct job *j = c->jobs; j; j = j->next) {
        if (j->state != JOB_LEASED || j->node != n || !j->started)
            continue;
        bool listed = false;
        for (size_t i = 0; r->running && r->running[i] && !listed; i++)
            listed = strcmp(r->running[i], j->id) == 0;
        if (listed)
            continue;
        n->leased--;
        n->lost++;
        c->stats.interrupted++;
        job_end(j, -1, ERR_GONE, "node '%s' no longer runs the job and sent no result for it",
                n->name);
    }
    ret->drained = n->drained;
    ret->cancel = cancel;
    /* a node that can take work may take what waits */
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int cluster_lease(struct cluster *c, const char *name, const char *boot, int64_t wait_ms,
                  char **ret_id, char **ret_spec, size_t *ret_spec_len, struct err *err)
{
    *ret_id = NULL;
    *ret_spec = NULL;
    *ret_spec_len = 0;
    if (wait_ms > c->timeout_ms / 2)
        wait_ms = c->timeout_ms / 2;
    if (wait_ms < 0)
        wait_ms = 0;
    pthread_mutex_lock(&c->lock);
    struct node *n = node_find(c, name);
    if (!n || !n->boot || strcmp(n->boot, boot) != 0) {
        pthread_mutex_unlock(&c->lock);
        return err_set(err, ERR_CONFLICT,
                       "node '%s' is not registered with boot '%s': send a heartbeat first", name,
                       boot);
    }
    if (n->asking) {
        pthread_mutex_unlock(&c->lock);
        return err_set(err, ERR_CONFLICT, "node '%s' polls for a lease already", name);
    }
    node_touch(n);
    n->up = true;
    struct job *j = NULL;
    if (!c->stopping && !n->drained && !n->engine_error && n->leased < n->slots && c->qhead) {
        j = queue_pop(c);
        job_lease(n, j);
        c->stats.placed++;
    } else if (!c->stopping) {
        struct timespec until = time_deadline_in(wait_ms);
        n->asking = true;
        while (!n->given && !c->stopping && strcmp(n->boot, boot) == 0)
            if (pthread_cond_timedwait(&n->wake, &c->lock, &until) != 0)
                break;
        n->asking = false;
        j = steal_ptr(n->given);
        node_touch(n);
    }
    if (j && j->state == JOB_LEASED && j->node == n) {
        *ret_id = xstrdup(j->id);
        *ret_spec = xmemdup(j->spec, j->spec_len + 1);
        (*ret_spec)[j->spec_len] = '\0';
        *ret_spec_len = j->spec_len;
    }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void cluster_unlease(struct cluster *c, const char *name, const char *id)
{
    pthread_mutex_lock(&c->lock);
    struct job *j = job_find(c, id);
    if (j && j->state == JOB_LEASED && j->node && strcmp(j->node->name, name) == 0 && !j->started)
        requeue(c, j);
    pthread_mutex_unlock(&c->lock);
}

int cluster_complete(struct cluster *c, const char *name, const char *boot, const char *id,
                     char *result, size_t len, struct err *err)
{
    pthread_mutex_lock(&c->lock);
    struct node *n = node_find(c, name);
    struct job *j = job_find(c, id);
    if (!n || !j || j->state != JOB_LEASED || j->node != n || strcmp(j->boot, boot) != 0) {
        pthread_mutex_unlock(&c->lock);
        free(result);
        return err_set(err, ERR_CONFLICT,
                       "node '%s' holds no lease on execution '%s' (it ended without this "
                       "result: the node was lost or restarted, or envhub stopped)",
                       name, id);
    }
    node_touch(n);
    n->leased--;
    n->done++;
    j->result = result;
    j->result_len = len;
    job_end(j, 0, ERR_OK, NULL);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

bool cluster_holds(struct cluster *c, const char *name, const char *boot, const char *id)
{
    pthread_mutex_lock(&c->lock);
    struct node *n = node_find(c, name);
    struct job *j = job_find(c, id);
    bool held = n && j && j->state == JOB_LEASED && j->node == n && strcmp(j->boot, boot) == 0;
    pthread_mutex_unlock(&c->lock);
    return held;
}

int cluster_giveback(struct cluster *c, const char *name, const char *boot, const char *id,
                     struct err *err)
{
    pthread_mutex_lock(&c->lock);
    struct node *n = node_find(c, name);
    struct job *j = job_find(c, id);
    if (!n || !j || j->state != JOB_LEASED || j->node != n || strcmp(j->boot, boot) != 0) {
        pthread_mutex_unlock(&c->lock);
        return err_set(err, ERR_CONFLICT, "node '%s' holds no lease on execution '%s'", name, id);
    }
    node_touch(n);
    log_info("cluster: node '%s' gave '%s' back unrun; it goes to another node", name, id);
    requeue(c, j);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* ---- operation ---- */

void cluster_node_infos_free(struct cluster_node_info *n, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(n[i].name);
        free(n[i].boot);
        free(n[i].engine);
        free(n[i].engine_error);
        strv_free(n[i].warm);
        strv_free(n[i].pulling);
        strv_free(n[i].pools);
        strv_free(n[i].images);
    }
    free(n);
}

static int info_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cluster_node_info *)a)->name,
                  ((const struct cluster_node_info *)b)->name);
}

void cluster_nodes(struct cluster *c, struct cluster_node_info **ret, size_t *ret_n,
                   struct cluster_stats *ret_stats)
{
    pthread_mutex_lock(&c->lock);
    size_t count = 0;
    for (struct node *n = c->nodes; n; n = n->next)
        count++;
    struct cluster_node_info *out = xcalloc(count ? count : 1, sizeof(*out));
    size_t i = 0;
    for (struct node *n = c->nodes; n; n = n->next, i++)
        out[i] = (struct cluster_node_info){
            .name = xstrdup(n->name),
            .boot = n->boot ? xstrdup(n->boot) : NULL,
            .engine = n->engine ? xstrdup(n->engine) : NULL,
            .engine_error = n->engine_error ? xstrdup(n->engine_error) : NULL,
            .up = n->up,
            .drained = n->drained,
            .slots = n->slots,
            .running = n->running,
            .leased = n->leased,
            .jobs_done = n->done,
            .jobs_lost = n->lost,
            .first_seen_ms = n->first_seen_ms,
            .last_seen_ms = n->last_seen_ms,
            .warm = strv_copy(n->warm),
            .pulling = strv_copy(n->pulling),
            .pools = strv_copy(n->pools),
            .images = strv_copy(n->images),
        };
    if (ret_stats) {
        *ret_stats = c->stats;
        ret_stats->queued = c->queued;
        ret_stats->leased = 0;
        for (struct node *n = c->nodes; n; n = n->next)
            ret_stats->leased += n->leased;
    }
    pthread_mutex_unlock(&c->lock);
    qsort(out, count, sizeof(*out), info_cmp);
    *ret = out;
    *ret_n = count;
}

void cluster_drain_known(struct cluster *c, const char *name)
{
    if (!cluster_node_name_ok(name))
        return;
    pthread_mutex_lock(&c->lock);
    struct node *n = node_find(c, name);
    if (!n) {
        n = xcalloc(1, sizeof(*n));
        n->name = xstrdup(name);
        pthread_cond_init(&n->wake, NULL);
        n->next = c->nodes;
        c->nodes = n;
    }
    n->drained = true;
    pthread_mutex_unlock(&c->lock);
}

int cluster_drain(struct cluster *c, const char *name, bool drained, struct err *err)
{
    pthread_mutex_lock(&c->lock);
    struct node *n = node_find(c, name);
    if (!n) {
        pthread_mutex_unlock(&c->lock);
        return err_set(err, ERR_NOT_FOUND, "no node named '%s' has reported to this server", name);
    }
    bool was = n->drained;
    n->drained = drained;
    pthread_mutex_unlock(&c->lock);
    if (was != drained)
        log_info("cluster: node '%s' %s", name,
                 drained ? "drained: it finishes its jobs and takes no new ones"
                         : "resumed: it takes new jobs");
    return 0;
}

/* executor/shared.c - the executor's bottom layer: what every other layer
 * shares. The stopping flag, the counters behind /metrics, the environment
 * lookup jobs and sessions both make, and the execution row's common parts.
 * Calls nothing else of the executor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

/* ---- results ---- */

void job_files_free(struct job_file *files, size_t n)
{
    for (size_t i = 0; files && i < n; i++) {
        free(files[i].path);
        free(files[i].data);
    }
    free(files);
}

void job_result_release(struct job_result *r)
{
    if (!r)
        return;
    free(r->stdout_text);
    free(r->stderr_text);
    job_files_free(r->files, r->n_files);
    job_files_free(r->display, r->n_display);
    strv_free(r->files_skipped);
    free(r->error);
    free(r->warning);
    free(r->result);
    memset(r, 0, sizeof(*r));
}

void exec_ref_free(struct container_ref *c)
{
    if (!c)
        return;
    free(c->id);
    free(c->image);
    free(c->principal);
    free(c);
}

bool exec_stopping(struct executor *x)
{
    return atomic_load(&x->stopping);
}

int exec_collect_stdout(void *ctx, enum engine_stream stream, const char *data, size_t len)
{
    struct buf *b = ctx;
    if (stream != ENGINE_STDOUT)
        return 0;
    /* stop reading at the cap, whatever the stream claims */
    return buf_append_upto(b, data, len) < len ? -1 : 0;
}

/* ---- counters ---- */

const double executor_duration_buckets[EXECUTOR_DURATION_BUCKETS] = {
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

void exec_stats_init(struct executor *x)
{
    pthread_mutex_init(&x->stats.lock, NULL);
}

void exec_note_pull(struct executor *x, const char *image, const char *line)
{
    size_t n = strlen(image);
    pthread_mutex_lock(&x->stats.lock);
    size_t k = 0;
    for (size_t i = 0; x->stats.pulling && x->stats.pulling[i]; i++) {
        char *e = x->stats.pulling[i];
        if (strncmp(e, image, n) == 0 && e[n] == ':' && e[n + 1] == ' ') {
            free(e);
            continue;
        }
        x->stats.pulling[k++] = e;
    }
    if (x->stats.pulling)
        x->stats.pulling[k] = NULL;
    if (line)
        strv_push(&x->stats.pulling, xasprintf("%s: %.200s", image, line));
    pthread_mutex_unlock(&x->stats.lock);
}

void executor_node_prune(struct executor *x, char *const *keep)
{
    char **gone = NULL;
    pthread_mutex_lock(&x->stats.lock);
    for (size_t i = 0; x->stats.pulled && x->stats.pulled[i]; i++) {
        bool kept = false;
        for (size_t k = 0; keep && keep[k] && !kept; k++)
            kept = strcmp(keep[k], x->stats.pulled[i]) == 0;
        if (!kept)
            strv_push(&gone, xstrdup(x->stats.pulled[i]));
    }
    pthread_mutex_unlock(&x->stats.lock);
    for (size_t i = 0; gone && gone[i]; i++) {
        struct err err = ERR_INIT;
        /* not forced: a container of it (a job still running, a pool container on its way
         * out) keeps it until the next try */
        if (engine_image_remove(x->engine, gone[i], false, &err) < 0 && err.code != ERR_NOT_FOUND)
            continue;
        log_info("executor: removed %s: its version is out of service", gone[i]);
        pthread_mutex_lock(&x->stats.lock);
        size_t k = 0;
        for (size_t j = 0; x->stats.pulled && x->stats.pulled[j]; j++) {
            if (strcmp(x->stats.pulled[j], gone[i]) == 0) {
                free(x->stats.pulled[j]);
                continue;
            }
            x->stats.pulled[k++] = x->stats.pulled[j];
        }
        if (x->stats.pulled)
            x->stats.pulled[k] = NULL;
        pthread_mutex_unlock(&x->stats.lock);
    }
    strv_free(gone);
}

char **executor_node_images(struct executor *x)
{
    char **out = NULL;
    pthread_mutex_lock(&x->stats.lock);
    for (size_t i = 0; x->stats.pulled && x->stats.pulled[i]; i++)
        strv_push(&out, xstrdup(x->stats.pulled[i]));
    pthread_mutex_unlock(&x->stats.lock);
    return out;
}

char **executor_node_pulls(struct executor *x)
{
    char **out = NULL;
    pthread_mutex_lock(&x->stats.lock);
    for (size_t i = 0; x->stats.pulling && x->stats.pulling[i]; i++)
        strv_push(&out, xstrdup(x->stats.pulling[i]));
    pthread_mutex_unlock(&x->stats.lock);
    return out;
}

void exec_stats_fini(struct executor *x)
{
    while (x->stats.counters) {
        struct exec_counter *c = x->stats.counters;
        x->stats.counters = c->next;
        free(c->environment);
        free(c->preload_error);
        free(c);
    }
    free(x->stats.default_image_id);
    strv_free(x->stats.pulling);
    strv_free(x->stats.pulled);
    pthread_mutex_destroy(&x->stats.lock);
}

/* @environment's counters, made when missing; under stats.lock. */
static struct exec_counter *counter_of(struct executor *x, const char *environment)
{
    const char *env = environment ? environment : "";
    struct exec_counter *c = x->stats.counters;
    while (c && strcmp(c->environment, env) != 0)
        c = c->next;
    if (!c) {
        c = xcalloc(1, sizeof(*c));
        c->environment = xstrdup(env);
        c->next = x->stats.counters;
        x->stats.counters = c;
    }
    return c;
}

void exec_count(struct executor *x, const char *environment, enum exec_status status,
                double seconds)
{
    pthread_mutex_lock(&x->stats.lock);
    struct exec_counter *c = counter_of(x, environment);
    if ((unsigned)status <= EXEC_INTERRUPTED)
        c->by_status[status]++;
    if (seconds >= 0) {
        for (size_t i = 0; i < EXECUTOR_DURATION_BUCKETS; i++)
            if (seconds <= executor_duration_buckets[i])
                c->duration_buckets[i]++;
        c->duration_sum += seconds;
        c->duration_count++;
    }
    pthread_mutex_unlock(&x->stats.lock);
}

void exec_note_preload(struct executor *x, const char *environment, int64_t version,
                       char *const *errors)
{
    /* a few lines of the first modules: enough to act on */
    struct buf text = BUF_INIT(BUF_UNLIMITED);
    size_t n = strv_length(errors);
    for (size_t i = 0; i < n && i < 4; i++)
        buf_putf(&text, "%s%.200s", i ? "; " : "", errors[i]);
    if (n > 4)
        buf_putf(&text, "; and %zu more", n - 4);
    pthread_mutex_lock(&x->stats.lock);
    struct exec_counter *c = counter_of(x, environment);
    /* a report of an older version says nothing of the current one */
    if (version >= c->preload_version) {
        if (text.len && (!c->preload_error || strcmp(c->preload_error, buf_str(&text)) != 0))
            log_warn("executor: containers of %s version %lld could not preload: %s",
                     *c->environment ? c->environment : "the default image", (long long)version,
                     buf_str(&text));
        free(c->preload_error);
        c->preload_error = text.len ? buf_detach(&text, NULL) : NULL;
        c->preload_version = version;
        c->preload_at_ms = time_now_ms();
    }
    pthread_mutex_unlock(&x->stats.lock);
    buf_release(&text);
}

void executor_preload_failures(struct executor *x, struct executor_preload_failure **ret,
                               size_t *ret_n)
{
    *ret = NULL;
    *ret_n = 0;
    pthread_mutex_lock(&x->stats.lock);
    for (struct exec_counter *c = x->stats.counters; c; c = c->next) {
        if (!c->preload_error)
            continue;
        *ret = xrealloc(*ret, (*ret_n + 1) * sizeof(**ret));
        (*ret)[(*ret_n)++] = (struct executor_preload_failure){
            .environment = xstrdup(c->environment),
            .version = c->preload_version,
            .detail = xstrdup(c->preload_error),
            .at_ms = c->preload_at_ms,
        };
    }
    pthread_mutex_unlock(&x->stats.lock);
}

void executor_preload_failures_free(struct executor_preload_failure *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].environment);
        free(f[i].detail);
    }
    free(f);
}

void exec_count_engine_error(struct executor *x)
{
    pthread_mutex_lock(&x->stats.lock);
    x->stats.engine_errors++;
    pthread_mutex_unlock(&x->stats.lock);
}

uint64_t exec_engine_errors(struct executor *x)
{
    pthread_mutex_lock(&x->stats.lock);
    uint64_t n = x->stats.engine_errors;
    pthread_mutex_unlock(&x->stats.lock);
    return n;
}

char *exec_default_image_id(struct executor *x)
{
    pthread_mutex_lock(&x->stats.lock);
    char *id = x->stats.default_image_id ? xstrdup(x->stats.default_image_id) : NULL;
    pthread_mutex_unlock(&x->stats.lock);
    return id;
}

void exec_set_default_image_id(struct executor *x, const char *id)
{
    char *copy = xstrdup(id);
    pthread_mutex_lock(&x->stats.lock);
    free(x->stats.default_image_id);
    x->stats.default_image_id = copy;
    pthread_mutex_unlock(&x->stats.lock);
}

void exec_counters_snapshot(struct executor *x, struct executor_env_counts **ret, size_t *ret_n)
{
    struct executor_env_counts *v = NULL;
    size_t n = 0, cap = 0;

    pthread_mutex_lock(&x->stats.lock);
    for (struct exec_counter *c = x->stats.counters; c; c = c->next) {
        ALLOC_GROW(v, n + 1, cap);
        struct executor_env_counts *e = &v[n++];
        e->environment = xstrdup(c->environment);
        memcpy(e->by_status, c->by_status, sizeof(e->by_status));
        memcpy(e->duration_buckets, c->duration_buckets, sizeof(e->duration_buckets));
        e->duration_sum = c->duration_sum;
        e->duration_count = c->duration_count;
    }
    pthread_mutex_unlock(&x->stats.lock);
    *ret = v;
    *ret_n = n;
}

/* ---- the environment lookup ---- */

int exec_env_resolve(struct executor *x, const char *name, struct exec_env *ret, struct err *err)
{
    memset(ret, 0, sizeof(*ret));
    sandbox_limits_default(x->cfg, &ret->limits);
    ret->image = x->cfg->default_image;
    if (!name)
        return 0;
    /* the version in service now; a rebuild switching meanwhile keeps this image */
    if (catalog_env_get(x->catalog, name, &ret->rec, err) < 0) {
        exec_env_release(ret);
        if (err->code == ERR_NOT_FOUND)
            return err_about(err, ERR_NOT_FOUND, ERR_ABOUT_ENV_MISSING, name, NULL);
        return -1;
    }
    struct env_record *env = &ret->rec;
    /* curation: a retired environment runs nothing; a deprecated one warns */
    if (env->lifecycle == ENV_RETIRED) {
        err_set(err, ERR_GONE, "%s", env->warning ? env->warning : "retired");
        goto fail;
    }
    if (env->version == 0 || !env->image) {
        err_about(err, ERR_INVALID, ERR_ABOUT_ENV_NOT_READY, name, env_status_name(env->status));
        goto fail;
    }
    if (sandbox_policy_parse(x->cfg, env->policy, &ret->limits, NULL, err) < 0) {
        err_prefix(err, "environment '%s' has a policy this server refuses", name);
        goto fail;
    }
    ret->name = name;
    ret->image = env->image;
    return 0;
fail:
    exec_env_release(ret);
    return -1;
}

void exec_env_release(struct exec_env *env)
{
    env_record_release(&env->rec);
    memset(env, 0, sizeof(*env));
}

/* ---- the execution row ---- */

void exec_record_init(struct execution_record *rec, const struct job_request *req,
                      int64_t timeout_s, const struct sandbox_limits *l)
{
    char hex[25];

    id_random_hex(hex, 12);
    rec->id = xasprintf("ex_%s", hex);
    rec->principal = xstrdup(req->principal ? req->principal : "");
    rec->client_addr = xstrdup(req->client_addr ? req->client_addr : "");
    rec->code = xstrndup(req->code, req->code_len);
    sha256_hex(req->code, req->code_len, rec->code_sha256);
    rec->timeout_s = timeout_s;
    rec->limits = sandbox_limits_json(l, timeout_s);
    rec->exit_code = -1;
    rec->duration_ms = -1;
    rec->queued_at = time_now_ms();
    rec->status = EXEC_QUEUED;
    exec_manifest_add(rec, FILE_IN, req->files, req->n_files);
}

void exec_manifest_add(struct execution_record *rec, enum file_direction dir,
                       const struct job_file *files, size_t n)
{
    rec->files = xrealloc(rec->files, (rec->n_files + n + 1) * sizeof(*rec->files));
    for (size_t i = 0; i < n; i++) {
        struct file_entry *f = &rec->files[rec->n_files++];
        f->direction = dir;
        f->path = xstrdup(files[i].path);
        f->size = (int64_t)files[i].len;
        sha256_hex(files[i].data, files[i].len, f->sha256);
    }
}

/* Take the output files and pictures out of @rec's manifest; false when it
 * had none. */
static bool drop_output_manifest(struct execution_record *rec)
{
    size_t kept = 0, n = rec->n_files;

    for (size_t i = 0; i < n; i++) {
        if (rec->files[i].direction != FILE_IN)
            free(rec->files[i].path);
        else
            rec->files[kept++] = rec->files[i];
    }
    rec->n_files = kept;
    return kept < n;
}

int exec_record_finish(struct executor *x, struct execution_record *rec,
                       const struct job_result *res, struct err *err)
{
    bool ran = res->status != EXEC_ERROR;

    rec->status = res->status;
    rec->exit_code = res->exit_code;
    free(rec->error);
    rec->error = res->error ? xstrdup(res->error) : NULL;
    rec->finished_at = time_now_ms();
    rec->duration_ms = ran ? (int64_t)(res->execution_time * 1000) : -1;
    /* the row borrows the result's output (no copy of a large output), until it is written */
    rec->stdout_text = res->stdout_text;
    rec->stdout_len = res->stdout_len;
    rec->stderr_text = res->stderr_text;
    rec->stderr_len = res->stderr_len;
    rec->stdout_truncated = res->stdout_truncated;
    rec->stderr_truncated = res->stderr_truncated;
    exec_manifest_add(rec, FILE_OUT, res->files, res->n_files);
    exec_manifest_add(rec, FILE_DISPLAY, res->display, res->n_display);
    exec_count(x, rec->environment, res->status, ran ? res->execution_time : -1);
    struct err ferr = ERR_INIT;
    int rc = catalog_execution_finish(x->catalog, rec, &ferr);
    if (rc < 0 && ferr.code != ERR_UNAVAILABLE && drop_output_manifest(rec)) {
        /* an output manifest the catalog refuses (a path twice is
         * ERR_CONFLICT) must not leave the row running: the outcome goes in
         * without it, and says so (a busy catalog was tried again already;
         * a row sealed in the audit chain is refused again, and is final) */
        log_warn("executor: cannot record the output files of %s, recording its end without "
                 "them: %s",
                 rec->id, ferr.msg);
        char *note = xasprintf("%s%sits output files could not be recorded: %s",
                               rec->error ? rec->error : "", rec->error ? "; " : "", ferr.msg);
        free(rec->error);
        rec->error = note;
        err_clear(&ferr);
        rc = catalog_execution_finish(x->catalog, rec, &ferr);
    }
    if (rc < 0 && ferr.code == ERR_UNAVAILABLE)
        /* busy past every try: the row stays running while this process
         * lives; the next start records it interrupted (executor_open) */
        err_set(err, ERR_UNAVAILABLE, "%s; the next start records it interrupted", ferr.msg);
    else if (rc < 0)
        err_copy(err, &ferr);
    rec->stdout_text = rec->stderr_text = NULL;
    rec->stdout_len = rec->stderr_len = 0;
    return rc;
}

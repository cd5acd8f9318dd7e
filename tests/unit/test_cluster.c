/* tests/unit/test_cluster.c - cluster mode's pure parts and its queue
 * without an engine: node names and tokens (cluster/cluster.c), placement
 * (cluster_pick), leases through their life (a job placed, leased, its
 * result; a node lost before and after it started a job; a node restarted;
 * cancels; a result from a node without the lease; shutdown), and the job's
 * spec and result as they travel (executor/remote.c): round trips, and
 * the results a dishonest node could send. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/cluster.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/err.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "executor/executor_internal.h"

#include "core/banned.h"

#define KEY "0123456789abcdef0123456789abcdef"
/* A one-string list (the report's lists are char **). */
#define LIST1(name, text)                                                                          \
    char name##_text[] = text;                                                                     \
    char *name[] = {name##_text, NULL}

/* ---- names and tokens ---- */

static void node_names_are_plain(void **state)
{
    (void)state;
    assert_true(cluster_node_name_ok("n1"));
    assert_true(cluster_node_name_ok("worker-2.example_test"));
    assert_true(cluster_node_name_ok("x9sk3hd8q0v0e4mvf7m2c1a0b"));
    char longest[CLUSTER_NAME_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    longest[CLUSTER_NAME_MAX] = '\0';
    assert_true(cluster_node_name_ok(longest));
    longest[CLUSTER_NAME_MAX] = 'a';
    longest[CLUSTER_NAME_MAX + 1] = '\0';
    assert_false(cluster_node_name_ok(longest));
    static const char *const bad[] = {"", "-n1", ".n1", "n 1", "n/1", "../x", "n1\n", "é", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_false(cluster_node_name_ok(bad[i]));
    assert_false(cluster_node_name_ok(NULL));
}

static void a_token_is_bound_to_its_node_and_key(void **state)
{
    char a[CLUSTER_TOKEN_LEN + 1], b[CLUSTER_TOKEN_LEN + 1], c[CLUSTER_TOKEN_LEN + 1];
    struct cluster *cl = NULL;
    struct err err = ERR_INIT;
    (void)state;

    cluster_node_token(KEY, strlen(KEY), "n1", a);
    cluster_node_token(KEY, strlen(KEY), "n2", b);
    cluster_node_token("another key of 32 bytes, at ease", 32, "n1", c);
    assert_int_equal(strlen(a), CLUSTER_TOKEN_LEN);
    assert_string_not_equal(a, b);
    assert_string_not_equal(a, c);
    cluster_node_token(KEY, strlen(KEY), "n1", b);
    assert_string_equal(a, b); /* the same node and key: the same token */

    assert_int_equal(cluster_open("short", 5, 1000, &cl, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    assert_non_null(strstr(err.msg, "at least 16"));
    assert_int_equal(cluster_open(KEY, strlen(KEY), 1000, &cl, &err), 0);
    assert_true(cluster_token_ok(cl, "n1", a));
    assert_false(cluster_token_ok(cl, "n2", a)); /* another node's */
    assert_false(cluster_token_ok(cl, "n1", c)); /* another key's */
    assert_false(cluster_token_ok(cl, "n1", NULL));
    assert_false(cluster_token_ok(cl, "n1", ""));
    a[10] ^= 1;
    assert_false(cluster_token_ok(cl, "n1", a));
    a[10] ^= 1;
    char longer[CLUSTER_TOKEN_LEN + 2];
    snprintf(longer, sizeof(longer), "%sx", a);
    assert_false(cluster_token_ok(cl, "n1", longer));
    assert_false(cluster_token_ok(cl, "../n1", a));
    cluster_close(cl);
}

/* ---- placement ---- */

static void placement_prefers_warm_then_least_loaded_then_the_last_given(void **state)
{
    (void)state;
    struct cluster_candidate c[4] = {
        {.asking = true, .up = true, .slots = 4, .leased = 1, .last_given_ms = 5},
        {.asking = true, .up = true, .slots = 4, .leased = 2, .warm = true, .last_given_ms = 9},
        {.asking = true, .up = true, .slots = 2, .leased = 0, .last_given_ms = 7},
        {.asking = true, .up = true, .slots = 8, .leased = 0, .last_given_ms = 1},
    };
    assert_int_equal(cluster_pick(c, 4), 1); /* warm wins over idle */
    c[1].warm = false;
    /* 0/2 and 0/8 tie on load: the one given a job last (its container is warm) */
    assert_int_equal(cluster_pick(c, 4), 2);
    c[3].last_given_ms = 8;
    assert_int_equal(cluster_pick(c, 4), 3);
    c[2].drained = true;
    c[3].up = false;
    assert_int_equal(cluster_pick(c, 4), 0); /* 1/4 before 2/4 */
    c[0].asking = false;
    assert_int_equal(cluster_pick(c, 4), 1);
    c[1].leased = 4; /* full */
    assert_int_equal(cluster_pick(c, 4), -1);
    assert_int_equal(cluster_pick(c, 0), -1);
    struct cluster_candidate none = {.asking = true, .up = true, .slots = 0};
    assert_int_equal(cluster_pick(&none, 1), -1);
}

/* ---- leases ---- */

struct runner {
    struct cluster *c;
    char id[32];
    int rc;
    struct err err;
    struct cluster_outcome out;
    pthread_t t;
    bool done;
};

static void *run_main(void *arg)
{
    struct runner *r = arg;
    r->err = (struct err)ERR_INIT;
    r->rc = cluster_run(r->c, r->id, "img:1", xasprintf("{\"id\":\"%s\"}", r->id),
                        strlen(r->id) + 9, &r->out, &r->err);
    r->done = true;
    return NULL;
}

static void submit(struct runner *r, struct cluster *c, const char *id)
{
    memset(r, 0, sizeof(*r));
    r->c = c;
    snprintf(r->id, sizeof(r->id), "%s", id);
    assert_int_equal(pthread_create(&r->t, NULL, run_main, r), 0);
}

static void finish(struct runner *r)
{
    pthread_join(r->t, NULL);
}

static void beat(struct cluster *c, const char *name, const char *boot, char **running,
                 struct cluster_reply *ret)
{
    struct err err = ERR_INIT;
    LIST1(warm, "img:1");
    struct cluster_report rep = {.name = name,
                                 .boot = boot,
                                 .slots = 2,
                                 .running = running,
                                 .warm = strcmp(name, "warm") == 0 ? warm : NULL,
                                 .engine = "test"};
    struct cluster_reply tmp;
    assert_int_equal(cluster_heartbeat(c, &rep, ret ? ret : &tmp, &err), 0);
    if (!ret)
        cluster_reply_release(&tmp);
}

/* A lease of node @name within @ms: its id (the caller frees), or NULL. */
static char *lease(struct cluster *c, const char *name, const char *boot, int64_t ms)
{
    struct err err = ERR_INIT;
    char *id = NULL, *spec = NULL;
    size_t len = 0;
    assert_int_equal(cluster_lease(c, name, boot, ms, &id, &spec, &len, &err), 0);
    if (id) {
        assert_non_null(strstr(spec, id));
        assert_int_equal(len, strlen(spec));
    }
    free(spec);
    return id;
}

static void wait_done(struct runner *r)
{
    for (int i = 0; i < 500 && !r->done; i++)
        usleep(10000);
    assert_true(r->done);
    finish(r);
}

static void a_job_goes_to_a_node_and_its_result_comes_back(void **state)
{
    struct cluster *c = NULL;
    struct err err = ERR_INIT;
    struct runner r;
    (void)state;

    assert_int_equal(cluster_open(KEY, strlen(KEY), 2000, &c, &err), 0);
    /* no node yet: at once, saying so */
    submit(&r, c, "ex_nonode");
    wait_done(&r);
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.err.code, ERR_UNAVAILABLE);
    assert_non_null(strstr(r.err.msg, "no node is up"));
    assert_null(r.out.node);

    /* a lease before a heartbeat is refused */
    char *id = NULL, *spec = NULL;
    size_t len;
    assert_int_equal(cluster_lease(c, "n1", "b1", 10, &id, &spec, &len, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    err_clear(&err);

    beat(c, "n1", "b1", NULL, NULL);
    submit(&r, c, "ex_one");
    id = lease(c, "n1", "b1", 1000);
    assert_string_equal(id, "ex_one");
    /* a result from another boot, or for another job, is refused */
    assert_int_equal(cluster_complete(c, "n1", "b0", "ex_one", xstrdup("{}"), 2, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    err_clear(&err);
    assert_int_equal(cluster_complete(c, "n1", "b1", "ex_other", xstrdup("{}"), 2, &err), -1);
    err_clear(&err);
    assert_int_equal(cluster_complete(c, "n1", "b1", "ex_one", xstrdup("{\"ok\":1}"), 8, &err), 0);
    wait_done(&r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out.node, "n1");
    assert_string_equal(r.out.result, "{\"ok\":1}");
    cluster_outcome_release(&r.out);
    /* and once more: nothing is recorded twice */
    assert_int_equal(cluster_complete(c, "n1", "b1", "ex_one", xstrdup("{}"), 2, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    free(id);

    struct cluster_node_info *nodes;
    size_t n;
    struct cluster_stats st;
    cluster_nodes(c, &nodes, &n, &st);
    assert_int_equal(n, 1);
    assert_int_equal(nodes[0].jobs_done, 1);
    assert_int_equal(nodes[0].leased, 0);
    assert_int_equal(st.placed, 1);
    assert_int_equal(st.queued, 0);
    cluster_node_infos_free(nodes, n);
    cluster_close(c);
}

struct poll {
    struct cluster *c;
    const char *name, *boot;
    char *id;
    pthread_t t;
};

static void *poll_main(void *arg)
{
    struct poll *p = arg;
    p->id = lease(p->c, p->name, p->boot, 1500);
    return NULL;
}

static void a_job_goes_to_the_warm_node_among_those_that_ask(void **state)
{
    struct cluster *c = NULL;
    struct err err = ERR_INIT;
    struct runner r;
    struct poll p[2];
    (void)state;

    assert_int_equal(cluster_open(KEY, strlen(KEY), 4000, &c, &err), 0);
    beat(c, "cold", "b1", NULL, NULL);
    beat(c, "warm", "b2", NULL, NULL);
    p[0] = (struct poll){.c = c, .name = "cold", .boot = "b1"};
    p[1] = (struct poll){.c = c, .name = "warm", .boot = "b2"};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&p[i].t, NULL, poll_main, &p[i]), 0);
    usleep(200000); /* both wait */
    submit(&r, c, "ex_warm");
    for (int i = 0; i < 2; i++)
        pthread_join(p[i].t, NULL);
    assert_null(p[0].id);
    assert_non_null(p[1].id);
    assert_string_equal(p[1].id, "ex_warm");
    assert_int_equal(cluster_complete(c, "warm", "b2", "ex_warm", xstrdup("{}"), 2, &err), 0);
    wait_done(&r);
    assert_string_equal(r.out.node, "warm");
    cluster_outcome_release(&r.out);
    free(p[1].id);
    cluster_close(c);
}

static void a_lost_node_loses_what_it_started_and_gives_back_the_rest(void **state)
{
    struct cluster *c = NULL;
    struct err err = ERR_INIT;
    struct runner started, unstarted;
    (void)state;

    assert_int_equal(cluster_open(KEY, strlen(KEY), 600, &c, &err), 0);
    beat(c, "n1", "b1", NULL, NULL);
    submit(&started, c, "ex_started");
    char *id1 = lease(c, "n1", "b1", 1000);
    assert_string_equal(id1, "ex_started");
    LIST1(running, "ex_started");
    beat(c, "n1", "b1", running, NULL); /* it runs */
    submit(&unstarted, c, "ex_unstarted");
    char *id2 = lease(c, "n1", "b1", 1000);
    assert_string_equal(id2, "ex_unstarted");
    /* n1 goes silent; n2 is there (and keeps reporting) */
    for (int i = 0; i < 500 && !started.done; i++) {
        beat(c, "n2", "b9", NULL, NULL);
        usleep(20000);
    }
    wait_done(&started);
    assert_int_equal(started.rc, -1);
    assert_int_equal(started.err.code, ERR_GONE);
    assert_non_null(strstr(started.err.msg, "node 'n1' stopped answering"));
    assert_string_equal(started.out.node, "n1");
    cluster_outcome_release(&started.out);
    /* the unstarted one waits for n2 (not done) */
    assert_false(unstarted.done);
    beat(c, "n2", "b9", NULL, NULL);
    char *id3 = lease(c, "n2", "b9", 1000);
    assert_string_equal(id3, "ex_unstarted");
    /* n1's late result is refused */
    assert_int_equal(cluster_complete(c, "n1", "b1", "ex_unstarted", xstrdup("{}"), 2, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    err_clear(&err);
    assert_int_equal(cluster_complete(c, "n2", "b9", "ex_unstarted", xstrdup("{}"), 2, &err), 0);
    wait_done(&unstarted);
    assert_int_equal(unstarted.rc, 0);
    assert_string_equal(unstarted.out.node, "n2");
    cluster_outcome_release(&unstarted.out);
    /* n1 comes back with the same boot: up again, and told to kill what it still runs */
    struct cluster_reply reply;
    beat(c, "n1", "b1", running, &reply);
    assert_non_null(reply.cancel);
    assert_string_equal(reply.cancel[0], "ex_started");
    cluster_reply_release(&reply);
    struct cluster_node_info *nodes;
    size_t n;
    struct cluster_stats st;
    cluster_nodes(c, &nodes, &n, &st);
    assert_int_equal(n, 2);
    assert_string_equal(nodes[0].name, "n1");
    assert_true(nodes[0].up);
    assert_int_equal(nodes[0].jobs_lost, 1);
    assert_int_equal(st.interrupted, 1);
    assert_int_equal(st.requeued, 1);
    cluster_node_infos_free(nodes, n);
    free(id1);
    free(id2);
    free(id3);
    cluster_close(c);
}

static void a_restarted_node_or_a_dropped_job_ends_the_lease(void **state)
{
    struct cluster *c = NULL;
    struct err err = ERR_INIT;
    struct runner r1, r2;
    (void)state;

    assert_int_equal(cluster_open(KEY, strlen(KEY), 5000, &c, &err), 0);
    beat(c, "n1", "b1", NULL, NULL);
    submit(&r1, c, "ex_a");
    char *a = lease(c, "n1", "b1", 1000);
    LIST1(ra, "ex_a");
    beat(c, "n1", "b1", ra, NULL);
    beat(c, "n1", "b2", NULL, NULL); /* another boot: restarted */
    wait_done(&r1);
    assert_int_equal(r1.err.code, ERR_GONE);
    assert_non_null(strstr(r1.err.msg, "restarted"));
    cluster_outcome_release(&r1.out);
    /* the old boot can neither poll nor report */
    char *id = NULL, *spec = NULL;
    size_t len;
    assert_int_equal(cluster_lease(c, "n1", "b1", 10, &id, &spec, &len, &err), -1);
    err_clear(&err);
    submit(&r2, c, "ex_b");
    char *b = lease(c, "n1", "b2", 1000);
    LIST1(rb, "ex_b");
    beat(c, "n1", "b2", rb, NULL);
    beat(c, "n1", "b2", NULL, NULL); /* started, then no longer listed, no result */
    wait_done(&r2);
    assert_int_equal(r2.err.code, ERR_GONE);
    assert_non_null(strstr(r2.err.msg, "no longer runs"));
    cluster_outcome_release(&r2.out);
    free(a);
    free(b);
    cluster_close(c);
}

static void a_node_without_its_engine_takes_nothing_and_gives_back_what_it_cannot_run(void **state)
{
    struct cluster *c = NULL;
    struct err err = ERR_INIT;
    struct runner ran, unrun;
    struct cluster_reply reply;
    (void)state;

    assert_int_equal(cluster_open(KEY, strlen(KEY), 5000, &c, &err), 0);
    beat(c, "n1", "b1", NULL, NULL);
    beat(c, "n2", "b2", NULL, NULL);
    submit(&ran, c, "ex_ran");
    char *a = lease(c, "n1", "b1", 1000);
    submit(&unrun, c, "ex_unrun");
    char *b = lease(c, "n1", "b1", 1000);
    assert_string_equal(b, "ex_unrun");
    LIST1(running, "ex_ran");
    beat(c, "n1", "b1", running, NULL);
    /* its engine is gone: what it started ends, naming the node and why */
    struct cluster_report down = {.name = "n1",
                                  .boot = "b1",
                                  .slots = 2,
                                  .running = running,
                                  .engine_error = "connection refused"};
    assert_int_equal(cluster_heartbeat(c, &down, &reply, &err), 0);
    cluster_reply_release(&reply);
    wait_done(&ran);
    assert_int_equal(ran.err.code, ERR_GONE);
    assert_non_null(strstr(ran.err.msg, "node 'n1' lost its engine (connection refused)"));
    cluster_outcome_release(&ran.out);
    /* the unconfirmed one went back: n2 takes it; n1 is offered nothing */
    char *c2 = lease(c, "n2", "b2", 1000);
    assert_string_equal(c2, "ex_unrun");
    assert_int_equal(cluster_giveback(c, "n1", "b1", "ex_unrun", &err), -1); /* not n1's now */
    assert_int_equal(err.code, ERR_CONFLICT);
    err_clear(&err);
    /* n2 gives it back in turn (no container there): a third node can have it */
    assert_int_equal(cluster_giveback(c, "n2", "b2", "ex_unrun", &err), 0);
    assert_null(lease(c, "n1", "b1", 300)); /* engine still down */
    beat(c, "n3", "b3", NULL, NULL);
    char *d = lease(c, "n3", "b3", 1000);
    assert_string_equal(d, "ex_unrun");
    assert_int_equal(cluster_complete(c, "n3", "b3", "ex_unrun", xstrdup("{}"), 2, &err), 0);
    wait_done(&unrun);
    assert_int_equal(unrun.rc, 0);
    assert_string_equal(unrun.out.node, "n3");
    cluster_outcome_release(&unrun.out);
    struct cluster_node_info *nodes;
    size_t n;
    cluster_nodes(c, &nodes, &n, NULL);
    assert_string_equal(nodes[0].name, "n1");
    assert_string_equal(nodes[0].engine_error, "connection refused");
    cluster_node_infos_free(nodes, n);
    /* its engine back: it takes jobs again */
    beat(c, "n1", "b1", NULL, NULL);
    cluster_nodes(c, &nodes, &n, NULL);
    assert_null(nodes[0].engine_error);
    cluster_node_infos_free(nodes, n);
    free(a);
    free(b);
    free(c2);
    free(d);
    cluster_close(c);
}

static void jobs_waiting_for_a_node_end_when_the_last_node_is_lost(void **state)
{
    struct cluster *c = NULL;
    struct err err = ERR_INIT;
    struct runner r;
    (void)state;

    assert_int_equal(cluster_open(KEY, strlen(KEY), 300, &c, &err), 0);
    beat(c, "n1", "b1", NULL, NULL);
    submit(&r, c, "ex_waits"); /* n1 never asks: the job waits in the queue */
    wait_done(&r);             /* until n1 is lost: then it ends, saying why */
    assert_int_equal(r.rc, -1);
    assert_int_equal(r.err.code, ERR_UNAVAILABLE);
    assert_non_null(strstr(r.err.msg, "no node is up"));
    assert_null(r.out.node);
    cluster_close(c);
}

static void cancels_and_shutdown_end_the_waiting(void **state)
{
    struct cluster *c = NULL;
    struct err err = ERR_INIT;
    struct runner queued, leased, late;
    (void)state;

    assert_int_equal(cluster_open(KEY, strlen(KEY), 5000, &c, &err), 0);
    beat(c, "n1", "b1", NULL, NULL);
    submit(&leased, c, "ex_leased");
    char *id = lease(c, "n1", "b1", 1000);
    submit(&queued, c, "ex_queued"); /* nobody asks: it waits in the queue */
    usleep(100000);
    assert_int_equal(cluster_cancel(c, "ex_queued", "alice", &err), 0);
    wait_done(&queued);
    assert_int_equal(queued.err.code, ERR_CANCELLED);
    assert_non_null(strstr(queued.err.msg, "cancelled by alice before it ran"));
    cluster_outcome_release(&queued.out);
    /* a leased one: its node hears of it at its next heartbeat */
    assert_int_equal(cluster_cancel(c, "ex_leased", "bob", &err), 0);
    struct cluster_reply reply;
    LIST1(running, "ex_leased");
    beat(c, "n1", "b1", running, &reply);
    assert_string_equal(reply.cancel[0], "ex_leased");
    assert_null(reply.cancel[1]);
    cluster_reply_release(&reply);
    assert_int_equal(cluster_cancel(c, "ex_none", "bob", &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    err_clear(&err);
    /* drained: new jobs are refused while no other node takes them */
    assert_int_equal(cluster_drain(c, "n1", true, &err), 0);
    submit(&late, c, "ex_late");
    wait_done(&late);
    assert_int_equal(late.err.code, ERR_UNAVAILABLE);
    assert_non_null(strstr(late.err.msg, "drained"));
    cluster_outcome_release(&late.out);
    assert_int_equal(cluster_drain(c, "nobody", true, &err), -1);
    assert_int_equal(err.code, ERR_NOT_FOUND);
    /* shutdown: what still waits ends */
    cluster_shutdown(c);
    wait_done(&leased);
    assert_int_equal(leased.err.code, ERR_UNAVAILABLE);
    assert_string_equal(leased.out.node, "n1");
    cluster_outcome_release(&leased.out);
    free(id);
    cluster_close(c);
}

/* ---- the job as it travels (executor/remote.c) ---- */

static const struct tar_out_limits LIM = {
    .max_file_size = 1000, .max_total = 1500, .max_files = 3, .max_display = 1};

static void a_spec_reads_back_as_it_was_written(void **state)
{
    struct prepared_job pj = {0}, back;
    struct err err = ERR_INIT;
    (void)state;

    pj.rec.id = xstrdup("ex_0123");
    pj.rec.image = xstrdup("127.0.0.1:5000/envhub/x@sha256:ab");
    pj.rec.principal = xstrdup("alice");
    pj.rec.timeout_s = 7;
    pj.rec.environment_version = 3;
    pj.pool_ok = true;
    pj.limits = (struct sandbox_limits){.timeout_default = 30,
                                        .timeout_max = 60,
                                        .memory = 512 << 20,
                                        .cpu_millis = 500,
                                        .pids = 64,
                                        .output_limit = 4096,
                                        .workspace_size = 1 << 20,
                                        .network = true,
                                        .pool_size = 2,
                                        .recycle = 5,
                                        .n_preload = 2,
                                        .preload = {"numpy", "pandas.core"}};
    pj.input_tar = (struct buf)BUF_INIT(BUF_UNLIMITED);
    buf_put(&pj.input_tar, "tar\0bytes", 9);
    size_t len = 0;
    _cleanup_free_ char *text = exec_remote_spec(&pj, &len);
    assert_int_equal(exec_remote_spec_parse(text, len, &back, &err), 0);
    assert_string_equal(back.rec.id, "ex_0123");
    assert_string_equal(back.rec.image, pj.rec.image);
    assert_string_equal(back.rec.principal, "alice");
    assert_int_equal(back.rec.timeout_s, 7);
    assert_int_equal(back.rec.environment_version, 3);
    assert_true(back.pool_ok);
    assert_true(sandbox_limits_equal(&back.limits, &pj.limits));
    assert_int_equal(back.input_tar.len, 9);
    assert_memory_equal(back.input_tar.data, "tar\0bytes", 9);
    exec_job_release(&back);
    /* an input larger than the workspace it names is refused */
    pj.limits.workspace_size = 4;
    free(text);
    text = exec_remote_spec(&pj, &len);
    assert_int_equal(exec_remote_spec_parse(text, len, &back, &err), -1);
    assert_non_null(strstr(err.msg, "input_tar"));
    exec_job_release(&back);
    exec_job_release(&pj);
}

static int parse_result(const char *text, struct job_result *res, struct job_outcome *out,
                        struct err *err)
{
    memset(res, 0, sizeof(*res));
    memset(out, 0, sizeof(*out));
    snprintf(res->id, sizeof(res->id), "ex_x");
    return exec_remote_result_parse(&LIM, 100, text, strlen(text), res, out, err);
}

static void a_result_reads_back_and_a_forged_one_is_refused(void **state)
{
    struct job_result res = {0}, back;
    struct job_outcome out = {0}, oback;
    struct err err = ERR_INIT;
    (void)state;

    res.status = EXEC_FAILED;
    res.exit_code = 3;
    res.stdout_text = xmemdup("out\0with nul", 13);
    res.stdout_len = 12;
    res.stderr_text = xstrdup("é");
    res.stderr_len = strlen("é");
    res.stderr_truncated = true;
    res.execution_time = 0.25;
    res.n_files = 1;
    res.files = xcalloc(1, sizeof(*res.files));
    res.files[0] = (struct job_file){xstrdup("dir/a.txt"), xstrdup("AB"), 2};
    res.n_display = 1;
    res.display = xcalloc(1, sizeof(*res.display));
    res.display[0] =
        (struct job_file){xstrdup("figure-1.png"), xmemdup("\x89PNG\r\n\x1a\nxx", 10), 10};
    strv_push(&res.files_skipped, xstrdup("big.bin: larger than the file size limit"));
    res.error = xstrdup("exit 3");
    out.image_id = xstrdup("sha256:abc");
    out.reported = true;
    strv_push(&out.preload_errors, xstrdup("numpy: ModuleNotFoundError"));
    size_t len = 0;
    _cleanup_free_ char *text = exec_remote_result_text(&res, &out, &len);
    assert_int_equal(parse_result(text, &back, &oback, &err), 0);
    assert_int_equal(back.status, EXEC_FAILED);
    assert_int_equal(back.exit_code, 3);
    assert_string_equal(back.id, "ex_x"); /* its own id kept */
    assert_int_equal(back.stdout_len, 12);
    assert_memory_equal(back.stdout_text, "out\0with nul", 12);
    assert_true(back.stderr_truncated);
    assert_string_equal(back.files[0].path, "dir/a.txt");
    assert_int_equal(back.files[0].len, 2);
    assert_int_equal(back.n_display, 1);
    assert_string_equal(back.files_skipped[0], res.files_skipped[0]);
    assert_string_equal(back.error, "exit 3");
    assert_string_equal(oback.image_id, "sha256:abc");
    assert_true(oback.reported);
    assert_string_equal(oback.preload_errors[0], "numpy: ModuleNotFoundError");
    job_result_release(&back);
    free(oback.image_id);
    strv_free(oback.preload_errors);
    job_result_release(&res);
    free(out.image_id);
    strv_free(out.preload_errors);

#define OK_HEAD "{\"status\":\"succeeded\",\"exit_code\":0,\"execution_time\":1,"
#define OK_TAIL "\"files_skipped\":[]}"
    static const struct {
        const char *text, *expect;
    } bad[] = {
        {"[]", "not a JSON object"},
        {"{\"status\":\"running\"}", "final status"},
        {"{\"status\":\"bogus\"}", "final status"},
        {OK_HEAD "\"stdout\":\"eA=\",\"stderr\":\"\",\"files\":[],\"display\":[]," OK_TAIL,
         "stdout"},
        /* 101 bytes of stdout: over the job's output limit (100) */
        {OK_HEAD "\"stdout\":\"eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4"
                 "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eH"
                 "h4eA==\",\"stderr\":\"\",\"files\":[],\"display\":[]," OK_TAIL,
         "stdout"},
        {OK_HEAD "\"stdout\":\"/w==\",\"stderr\":\"\",\"files\":[],\"display\":[]," OK_TAIL,
         "UTF-8"},
        {OK_HEAD "\"stdout\":\"\",\"stderr\":\"\",\"files\":[{\"path\":\"../x\",\"data\":\"\"}],"
                 "\"display\":[]," OK_TAIL,
         "unsafe path"},
        {OK_HEAD "\"stdout\":\"\",\"stderr\":\"\",\"files\":[{\"path\":\"/etc/x\",\"data\":\"\"}],"
                 "\"display\":[]," OK_TAIL,
         "unsafe path"},
        {OK_HEAD "\"stdout\":\"\",\"stderr\":\"\",\"files\":[{\"path\":\"a\",\"data\":\"\"},"
                 "{\"path\":\"b\",\"data\":\"\"},{\"path\":\"c\",\"data\":\"\"},"
                 "{\"path\":\"d\",\"data\":\"\"}],\"display\":[]," OK_TAIL,
         "at most 3 files"},
        {OK_HEAD "\"stdout\":\"\",\"stderr\":\"\",\"files\":[],\"display\":[{\"path\":"
                 "\"f.png\",\"data\":\"eHh4eHh4eHh4\"}]," OK_TAIL,
         "PNG"},
        {OK_HEAD "\"stdout\":\"\",\"stderr\":\"\",\"files\":[],\"display\":[]," OK_TAIL "trailing",
         "not a JSON object"},
        {"{\"status\":\"succeeded\",\"status\":\"failed\"}", "not a JSON object"},
        {OK_HEAD
         "\"exit_code\":999,\"stdout\":\"\",\"stderr\":\"\",\"files\":[],\"display\":[]," OK_TAIL,
         "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&err);
        assert_int_equal(parse_result(bad[i].text, &back, &oback, &err), -1);
        if (!strstr(err.msg, bad[i].expect))
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, bad[i].expect);
        /* refused whole: nothing of it kept */
        assert_null(back.stdout_text);
        assert_null(oback.image_id);
    }
    /* nested past the bounds before jansson sees it */
    char deep[200];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    assert_int_equal(parse_result(deep, &back, &oback, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(node_names_are_plain),
        cmocka_unit_test(a_token_is_bound_to_its_node_and_key),
        cmocka_unit_test(placement_prefers_warm_then_least_loaded_then_the_last_given),
        cmocka_unit_test(a_job_goes_to_a_node_and_its_result_comes_back),
        cmocka_unit_test(a_job_goes_to_the_warm_node_among_those_that_ask),
        cmocka_unit_test(a_lost_node_loses_what_it_started_and_gives_back_the_rest),
        cmocka_unit_test(a_restarted_node_or_a_dropped_job_ends_the_lease),
        cmocka_unit_test(a_node_without_its_engine_takes_nothing_and_gives_back_what_it_cannot_run),
        cmocka_unit_test(jobs_waiting_for_a_node_end_when_the_last_node_is_lost),
        cmocka_unit_test(cancels_and_shutdown_end_the_waiting),
        cmocka_unit_test(a_spec_reads_back_as_it_was_written),
        cmocka_unit_test(a_result_reads_back_and_a_forged_one_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

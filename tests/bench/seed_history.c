/* tests/bench/seed_history.c - fill a catalog with N realistic final
 * executions through the catalog API (catalog_history_seed: one transaction
 * per batch, every row chained), for `make bench-history` and the history
 * API tests.
 *
 *     seed_history DB COUNT [--seed N] [--days D] [--end ISO] [--batch N] [--quiet]
 *
 * Rows spread evenly over the D days (default 365) before --end (default
 * now), oldest first; code of 200 to 2000 bytes made of Python-like lines,
 * stdout up to about 4 KB, stderr on failures, 0 to 2 input and output
 * files. Seven environments (one of them the default image), 60 principals
 * with a skew, statuses in realistic proportions. Without --seed the ids
 * differ on every run, so seeding twice into one catalog works. The DB may
 * be served meanwhile: the seeder is one more writer. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog.h"
#include "core/buf.h"
#include "core/util.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define DAY_MS 86400000LL

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static int64_t rnd_in(int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static void app(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void app(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (buf_vappendf(b, fmt, ap) < 0)
        abort();
    va_end(ap);
}

static const char *const envs[] = {"data-science",
                                   "machine-learning",
                                   "web-development",
                                   "basic-python",
                                   "etl-jobs",
                                   "reporting",
                                   NULL};
static const int env_weight[] = {30, 20, 15, 10, 10, 5, 10};
static const int env_versions[] = {6, 4, 3, 2, 5, 2, 1};

static const char *const libs[] = {"pandas as pd",
                                   "numpy as np",
                                   "json",
                                   "requests",
                                   "re",
                                   "sklearn.linear_model",
                                   "matplotlib.pyplot as plt",
                                   "csv",
                                   "datetime",
                                   "statistics"};

static void make_code(struct buf *b, int64_t i)
{
    size_t target = (size_t)rnd_in(200, 2000);
    int n_imports = (int)rnd_in(1, 4);

    for (int k = 0; k < n_imports; k++)
        app(b, "import %s\n", libs[rnd() % (sizeof(libs) / sizeof(libs[0]))]);
    app(b, "# job %" PRId64 " for team %s\n", i, envs[rnd() % 6]);
    while (b->len < target) {
        switch (rnd() % 8) {
        case 0:
            app(b, "df = pd.read_csv('data_%d.csv')\n", (int)rnd_in(0, 999));
            break;
        case 1:
            app(b, "result = model_%d.fit(X_train, y_train)\n", (int)rnd_in(0, 99));
            break;
        case 2:
            app(b, "print(df.describe())\nprint(df.head(%d))\n", (int)rnd_in(1, 20));
            break;
        case 3:
            app(b, "for i in range(%d):\n    total += i * %d\n", (int)rnd_in(1, 100000),
                (int)rnd_in(1, 9));
            break;
        case 4:
            app(b, "def transform_%d(x):\n    return x ** 2 + %d\n", (int)rnd_in(0, 9999),
                (int)rnd_in(0, 99));
            break;
        case 5:
            app(b, "resp = requests.get('https://api.example.com/v1/items/%d')\n",
                (int)rnd_in(0, 99999));
            break;
        case 6:
            app(b, "values = [float(v) for v in row_%d.split(',')]\n", (int)rnd_in(0, 500));
            break;
        default:
            app(b, "summary['metric_%d'] = statistics.mean(values)\n", (int)rnd_in(0, 300));
            break;
        }
    }
}

static void make_stdout(struct buf *b, enum exec_status st)
{
    int64_t target = rnd() % 4 == 0 ? 0 : rnd_in(10, rnd() % 5 == 0 ? 4000 : 1200);
    int step = 0;
    while ((int64_t)b->len < target)
        app(b, "step %d: loss=%.4f acc=%.3f rows=%d\n", step++, (double)rnd_in(1, 99999) / 1e4,
            (double)rnd_in(500, 999) / 1e3, (int)rnd_in(1, 1000000));
    if (st == EXEC_SUCCEEDED && rnd() % 3 == 0)
        app(b, "done\n");
}

static void add_file(struct execution_record *rec, enum file_direction dir, int64_t i, int k)
{
    static const char *const names[] = {"data.csv",    "config.json",     "model.pkl",
                                        "report.html", "out/summary.txt", "plot.png"};
    struct file_entry *f = &rec->files[rec->n_files++];
    char seed[64];
    f->direction = dir;
    f->path = xstrdup(names[rnd() % 6]);
    for (size_t j = 0; j < rec->n_files - 1; j++)
        if (rec->files[j].direction == dir && strcmp(rec->files[j].path, f->path) == 0) {
            free(f->path);
            f->path = xasprintf("file_%d_%d.bin", (int)dir, k);
        }
    f->size = rnd_in(10, 2000000);
    snprintf(seed, sizeof(seed), "%" PRId64 "-%d-%d-%" PRIu64, i, (int)dir, k, rnd());
    sha256_hex(seed, strlen(seed), f->sha256);
}

static void make_record(struct execution_record *rec, int64_t i, int64_t t, const char *id_prefix)
{
    struct buf code = BUF_INIT(BUF_UNLIMITED), out = BUF_INIT(BUF_UNLIMITED);
    int w = (int)(rnd() % 100), e = 0;
    char hex[17];

    for (int acc = env_weight[0]; w >= acc; acc += env_weight[++e])
        ;
    memset(rec, 0, sizeof(*rec));
    rec->id = xasprintf("ex_%s%08" PRIx64, id_prefix, (uint64_t)i & 0xffffffffu);
    if (envs[e]) {
        rec->environment = xstrdup(envs[e]);
        rec->environment_version = rnd_in(1, env_versions[e]);
        rec->image = xasprintf("envhub-env/%s:v%" PRId64, envs[e], rec->environment_version);
    } else {
        rec->image = xstrdup("envhub/python:bookworm");
    }
    char img[65];
    snprintf(hex, sizeof(hex), "%d-%" PRId64, e, rec->environment_version);
    sha256_hex(hex, strlen(hex), img);
    rec->image_id = xasprintf("sha256:%s", img);
    /* a few principals run most jobs */
    int p = (int)(rnd() % 60);
    if (rnd() % 2)
        p %= 8;
    rec->principal = xasprintf("user%02d", p);
    rec->client_addr = xasprintf("10.0.%d.%d", p / 10, 10 + p);
    make_code(&code, i);
    rec->code = buf_detach(&code, NULL);
    sha256_hex(rec->code, strlen(rec->code), rec->code_sha256);
    rec->timeout_s = rnd() % 4 == 0 ? 300 : 30;

    int s = (int)(rnd() % 100);
    rec->status = s < 82   ? EXEC_SUCCEEDED
                  : s < 93 ? EXEC_FAILED
                  : s < 95 ? EXEC_TIMEOUT
                  : s < 96 ? EXEC_OOM
                  : s < 98 ? EXEC_ERROR
                           : EXEC_INTERRUPTED;
    rec->queued_at = t;
    rec->started_at = t + rnd_in(1, 40);
    int d = (int)(rnd() % 100);
    rec->duration_ms = d < 60 ? rnd_in(20, 500) : d < 90 ? rnd_in(500, 5000) : rnd_in(5000, 60000);
    rec->exit_code = -1;
    switch (rec->status) {
    case EXEC_SUCCEEDED:
        rec->exit_code = 0;
        break;
    case EXEC_FAILED:
        rec->exit_code = rnd() % 4 == 0 ? 2 : 1;
        rec->error = xasprintf("代码执行失败，退出码: %d", rec->exit_code);
        break;
    case EXEC_TIMEOUT:
        rec->duration_ms = rec->timeout_s * 1000;
        rec->error = xasprintf("代码执行超时(%" PRId64 "秒)", rec->timeout_s);
        break;
    case EXEC_OOM:
        rec->error = xstrdup("the job ran out of memory (MEMORY_LIMIT)");
        break;
    case EXEC_ERROR:
        rec->duration_ms = -1;
        rec->error = xstrdup("envhub could not run the job: engine: connection refused");
        break;
    default:
        rec->error = xstrdup("interrupted: envhub stopped before the execution finished");
        break;
    }
    rec->finished_at =
        rec->started_at + (rec->duration_ms > 0 ? rec->duration_ms : 0) + rnd_in(5, 60);
    make_stdout(&out, rec->status);
    rec->stdout_text = buf_detach(&out, NULL);
    if (rec->status == EXEC_FAILED)
        rec->stderr_text = xasprintf("Traceback (most recent call last):\n  File "
                                     "\"/workspace/main.py\", line %d, in <module>\n"
                                     "ValueError: invalid literal for int(): 'x%d'\n",
                                     (int)rnd_in(1, 80), (int)rnd_in(0, 999));
    else
        rec->stderr_text = xstrdup("");
    rec->stdout_truncated = false;
    rec->stderr_truncated = false;
    int n_in = (int)(rnd() % 3), n_out = (int)(rnd() % 3);
    rec->files = xcalloc((size_t)(n_in + n_out + 1), sizeof(*rec->files));
    for (int k = 0; k < n_in; k++)
        add_file(rec, FILE_IN, i, k);
    for (int k = 0; k < n_out; k++)
        add_file(rec, FILE_OUT, i, k);
}

/* One batch of records to make: [from, from + n). */
struct gen {
    struct execution_record *recs;
    int64_t from;
    size_t n;
    int64_t start;
    double step;
    const char *prefix;
    bool threaded;
};

static void gen_batch(struct gen *g)
{
    for (size_t k = 0; k < g->n; k++) {
        int64_t i = g->from + (int64_t)k;
        make_record(&g->recs[k], i, g->start + (int64_t)((double)i * g->step), g->prefix);
    }
}

static void *gen_main(void *arg)
{
    gen_batch(arg);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: seed_history DB COUNT [--seed N] [--days D] [--end ISO] [--batch N] "
                    "[--quiet]\n");
}

int main(int argc, char **argv)
{
    struct catalog *cat = NULL;
    struct err err = ERR_INIT;
    int64_t count, days = 365, batch = 10000, end = time_now_ms(), seed = 0;
    bool quiet = false;

    if (argc < 3 || parse_int(argv[2], 0, INT64_MAX, &count) < 0) {
        usage();
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            if (parse_int(argv[++i], 1, INT64_MAX, &seed) < 0)
                return usage(), 2;
        } else if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 100000, &days) < 0)
                return usage(), 2;
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 1000000, &batch) < 0)
                return usage(), 2;
        } else if (strcmp(argv[i], "--end") == 0 && i + 1 < argc) {
            if (time_parse_iso(argv[++i], &end) < 0)
                return usage(), 2;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
        } else {
            usage();
            return 2;
        }
    }
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (int64_t)ts.tv_nsec ^ ((int64_t)ts.tv_sec << 20) ^ 0x5eed;
    }
    rng_state = (uint64_t)seed * 0x9E3779B97F4A7C15ULL | 1;
    char prefix[17];
    snprintf(prefix, sizeof(prefix), "%016" PRIx64, rnd());

    if (catalog_open(argv[1], &cat, &err) < 0) {
        fprintf(stderr, "seed_history: %s\n", err.msg);
        return 1;
    }
    int64_t t0 = time_mono_ms();
    struct gen gens[2] = {
        {.start = end - days * DAY_MS,
         .step = count ? (double)(days * DAY_MS) / (double)count : 0,
         .prefix = prefix},
    };
    gens[1] = gens[0];
    gens[0].recs = xcalloc((size_t)batch, sizeof(*gens[0].recs));
    gens[1].recs = xcalloc((size_t)batch, sizeof(*gens[1].recs));
    int rc = 0, cur = 0;
    pthread_t tid;

    /* the next batch is made while the catalog takes this one */
    gens[0].from = 0;
    gens[0].n = (size_t)(count < batch ? count : batch);
    gen_batch(&gens[0]);
    for (int64_t done = 0; done < count;) {
        struct gen *g = &gens[cur], *next = &gens[1 - cur];
        int64_t from = done + (int64_t)g->n;
        bool more = from < count;
        if (more) {
            next->from = from;
            next->n = (size_t)(count - from < batch ? count - from : batch);
            if (pthread_create(&tid, NULL, gen_main, next) != 0)
                gen_batch(next);
            else
                next->threaded = true;
        }
        if (catalog_history_seed(cat, g->recs, g->n, &err) < 0) {
            fprintf(stderr, "seed_history: %s\n", err.msg);
            rc = 1;
        }
        if (more && next->threaded) {
            pthread_join(tid, NULL);
            next->threaded = false;
        }
        for (size_t k = 0; k < g->n; k++)
            execution_record_release(&g->recs[k]);
        if (rc)
            break;
        done += (int64_t)g->n;
        cur = 1 - cur;
        if (!quiet && (done % (batch * 10) == 0 || done == count)) {
            double sec = (double)(time_mono_ms() - t0) / 1000;
            fprintf(stderr, "seed_history: %" PRId64 " / %" PRId64 " (%.0f rows/s)\n", done, count,
                    sec > 0 ? (double)done / sec : 0.0);
        }
    }
    if (rc) /* the batch made ahead was never seeded */
        for (size_t k = 0; k < gens[1 - cur].n; k++)
            execution_record_release(&gens[1 - cur].recs[k]);
    free(gens[0].recs);
    free(gens[1].recs);
    catalog_close(cat);
    if (rc == 0) {
        double sec = (double)(time_mono_ms() - t0) / 1000;
        printf("seeded %" PRId64 " executions in %.1f s (%.0f rows/s)\n", count, sec,
               sec > 0 ? (double)count / sec : 0.0);
    }
    return rc;
}

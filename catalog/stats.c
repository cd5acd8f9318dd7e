/* catalog/stats.c - statistics of the executions that match a history
 * filter, grouped by environment, status or UTC day: counts, total duration,
 * nearest-rank p50 and p95. One pass over the filter's rows (the query of
 * history.c, reading only an index where it can), on one of the history's
 * read-only connections, within the query budget; percentiles by
 * quickselect over each group's durations. */
#include "catalog/catalog.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog_internal.h"
#include "core/cleanup.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define DAY_MS 86400000LL

void history_stats_free(struct history_stat *stats, size_t n)
{
    if (!stats)
        return;
    for (size_t i = 0; i < n; i++)
        free(stats[i].key);
    free(stats);
}

struct stat_acc {
    char *key;
    int64_t count, total;
    int64_t *d; /* durations */
    size_t n, cap;
};

static void stat_accs_free(struct stat_acc *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++) {
        free(a[i].key);
        free(a[i].d);
    }
    free(a);
}

static void stat_add(struct stat_acc *a, sqlite3_stmt *st)
{
    a->count++;
    if (sqlite3_column_type(st, 1) == SQLITE_NULL)
        return;
    int64_t d = sqlite3_column_int64(st, 1);
    ALLOC_GROW(a->d, a->n + 1, a->cap);
    a->d[a->n++] = d;
    a->total += d;
}

static void swap64(int64_t *a, int64_t *b)
{
    int64_t t = *a;
    *a = *b;
    *b = t;
}

static int64_t median3(int64_t a, int64_t b, int64_t c)
{
    if (a > b)
        swap64(&a, &b);
    if (b > c)
        b = c;
    return a > b ? a : b;
}

/* The k-th smallest of v[0..n) (0-based), reordering v: quickselect with a
 * three-way partition (durations repeat a lot). */
static int64_t select_kth(int64_t *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* k is in [lo, hi) */
    while (hi - lo > 1) {
        int64_t pivot = median3(v[lo], v[lo + (hi - lo) / 2], v[hi - 1]);
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            if (v[i] < pivot)
                swap64(&v[lt++], &v[i++]);
            else if (v[i] > pivot)
                swap64(&v[i], &v[--gt]);
            else
                i++;
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return pivot;
    }
    return v[lo];
}

/* Nearest rank: the ceil(p * n)-th smallest. */
static int64_t percentile(int64_t *v, size_t n, int pct)
{
    if (n == 0)
        return -1;
    size_t rank = ((size_t)pct * n + 99) / 100;
    if (rank < 1)
        rank = 1;
    return select_kth(v, n, rank - 1);
}

static void stat_finish(struct stat_acc *a, struct history_stat *out)
{
    out->key = steal_ptr(a->key);
    out->count = a->count;
    out->timed = (int64_t)a->n;
    out->total_ms = a->total;
    out->p50_ms = percentile(a->d, a->n, 50);
    out->p95_ms = percentile(a->d, a->n, 95);
}

static int key_cmp(const void *pa, const void *pb)
{
    const struct stat_acc *a = pa, *b = pb;
    if (!a->key || !b->key)
        return (a->key != NULL) - (b->key != NULL);
    return strcmp(a->key, b->key);
}

static void day_key(int64_t ms, char out[16])
{
    time_t t = (time_t)((ms >= 0 ? ms : ms - DAY_MS + 1) / DAY_MS * (DAY_MS / 1000));
    struct tm tm = {0};
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

/* Days seen so far -> their group: open addressing on the day number
 * (rows of a filter index come in no day order). */
struct day_map {
    int64_t *days;
    size_t *groups;
    size_t cap, n; /* cap a power of two, 0 when empty */
};

static void day_map_release(struct day_map *m)
{
    free(m->days);
    free(m->groups);
}

static size_t *day_map_slot(struct day_map *m, int64_t day, bool *ret_new)
{
    if (2 * (m->n + 1) > m->cap) {
        struct day_map grown = {.cap = m->cap ? 2 * m->cap : 64};
        grown.days = xmalloc(grown.cap * sizeof(*grown.days));
        grown.groups = xmalloc(grown.cap * sizeof(*grown.groups));
        for (size_t i = 0; i < grown.cap; i++)
            grown.days[i] = INT64_MIN;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->days[i] == INT64_MIN)
                continue;
            bool fresh;
            *day_map_slot(&grown, m->days[i], &fresh) = m->groups[i];
        }
        day_map_release(m);
        *m = grown;
    }
    size_t i = (size_t)((uint64_t)day * 0x9E3779B97F4A7C15ULL) & (m->cap - 1);
    while (m->days[i] != INT64_MIN && m->days[i] != day)
        i = (i + 1) & (m->cap - 1);
    *ret_new = m->days[i] == INT64_MIN;
    if (*ret_new) {
        m->days[i] = day;
        m->n++;
    }
    return &m->groups[i];
}

static size_t stat_group_new(struct stat_acc **accs, size_t *n, size_t *cap, const char *key)
{
    ALLOC_GROW(*accs, *n + 1, *cap);
    memset(&(*accs)[*n], 0, sizeof((*accs)[*n]));
    (*accs)[*n].key = key ? xstrdup(key) : NULL;
    return (*n)++;
}

static int stats_on(sqlite3 *db, const struct history_filter *f, enum history_group group,
                    struct history_stat **ret, size_t *ret_n, struct history_stat *ret_all,
                    struct err *err)
{
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    struct stat_acc *accs = NULL, all = {0};
    struct day_map days = {0};
    size_t n = 0, cap = 0;
    int rc;

    if (history_query_prepare(db, f, 0, 0, (int)group, HISTORY_SQL_STATS, &st, err) < 0)
        return -1;
    for (;;) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        size_t i;
        if (group == HISTORY_GROUP_DAY) {
            int64_t ms = sqlite3_column_int64(st, 0);
            bool fresh;
            size_t *slot = day_map_slot(&days, (ms >= 0 ? ms : ms - DAY_MS + 1) / DAY_MS, &fresh);
            if (fresh) {
                char day[16];
                day_key(ms, day);
                *slot = stat_group_new(&accs, &n, &cap, day);
            }
            i = *slot;
        } else { /* a handful of environments or statuses */
            const char *key = (const char *)sqlite3_column_text(st, 0);
            for (i = 0; i < n; i++)
                if ((!key && !accs[i].key) || (key && accs[i].key && strcmp(key, accs[i].key) == 0))
                    break;
            if (i == n)
                i = stat_group_new(&accs, &n, &cap, key);
        }
        stat_add(&accs[i], st);
        stat_add(&all, st);
    }
    day_map_release(&days);
    if (rc != SQLITE_DONE) {
        stat_accs_free(accs, n);
        free(all.d);
        return catalog_sqlite_err(db, rc, ERR_OK, err, "cannot compute history statistics");
    }
    if (n)
        qsort(accs, n, sizeof(*accs), key_cmp);
    struct history_stat *out = n ? xcalloc(n, sizeof(*out)) : NULL;
    for (size_t i = 0; i < n; i++)
        stat_finish(&accs[i], &out[i]);
    stat_finish(&all, ret_all);
    stat_accs_free(accs, n);
    free(all.d);
    *ret = out;
    *ret_n = n;
    return 0;
}

int catalog_history_stats(struct catalog *cat, const struct history_filter *f,
                          enum history_group group, struct history_stat **ret, size_t *ret_n,
                          struct history_stat *ret_all, struct err *err)
{
    CATALOG_READ(rd);

    if (history_filter_check(f, err) < 0)
        return -1;
    if ((unsigned)group > HISTORY_GROUP_DAY)
        return err_set(err, ERR_INVALID, "group: unknown grouping %d", (int)group);
    memset(ret_all, 0, sizeof(*ret_all));
    if (catalog_read_begin(cat, &rd, CATALOG_READ_POOLED, err) < 0 ||
        stats_on(rd.db, f, group, ret, ret_n, ret_all, err) < 0)
        return catalog_read_fail(&rd, err);
    return 0;
}

/* core/version.c - the version orderings of package managers and the
 * version filter of GET /packages: PEP 440 (pip) and dpkg's ordering (Debian
 * packages). Pure: no I/O, no allocation, no global state, so thread-safe;
 * unit-tested (tests/unit/test_version.c) and fuzzed
 * (tests/fuzz/fuzz_version_spec.c). */
#include "core/version.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/cleanup.h"

#include "core/banned.h"

/* ---- PEP 440 ---- */

#define PEP440_RELEASE_MAX 16
#define PEP440_LOCAL_MAX 64

struct pep440 {
    int64_t epoch;
    int64_t release[PEP440_RELEASE_MAX];
    size_t n_release;
    int pre_phase; /* -1: none; 0 a, 1 b, 2 rc */
    int64_t pre_n;
    bool has_post, has_dev;
    int64_t post_n, dev_n;
    char local[PEP440_LOCAL_MAX]; /* lower case, '.'-separated; "" when none */
};

static bool is_sep(char c)
{
    return c == '-' || c == '_' || c == '.';
}

/* Digits at *p into *ret (at most 18 of them); false when there are none. */
static bool take_number(const char **p, int64_t *ret)
{
    const char *s = *p;
    int64_t v = 0;
    size_t n = 0;
    while (isdigit((unsigned char)s[n])) {
        if (n == 18)
            return false;
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0)
        return false;
    *p = s + n;
    *ret = v;
    return true;
}

/* The first of @words (lower case) that *p starts with, case-insensitively;
 * its index, *p moved past it; -1 when none. */
static int take_word(const char **p, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(words[i]);
        if (strncasecmp(*p, words[i], len) == 0) {
            *p += len;
            return (int)i;
        }
    }
    return -1;
}

/* An optional [-_.] separator, a label of @words, another optional separator
 * and an optional number. Nothing is consumed when no label follows. */
static int take_labelled(const char **p, const char *const *words, size_t n, int64_t *num,
                         bool *has_num)
{
    const char *s = *p;
    if (is_sep(*s))
        s++;
    int w = take_word(&s, words, n);
    if (w < 0)
        return -1;
    const char *after = s;
    if (is_sep(*s))
        s++;
    *has_num = take_number(&s, num);
    if (!*has_num)
        s = after; /* a separator with no number after it is not ours */
    *p = s;
    return w;
}

static bool pep440_parse(const char *text, struct pep440 *v)
{
    static const char *const pre_words[] = {"alpha", "a", "beta", "b", "preview", "pre", "rc", "c"};
    static const int pre_phase[] = {0, 0, 1, 1, 2, 2, 2, 2};
    static const char *const post_words[] = {"post", "rev", "r"};
    static const char *const dev_words[] = {"dev"};
    const char *p = text;
    int64_t num = 0;
    bool has_num = false;

    memset(v, 0, sizeof(*v));
    v->pre_phase = -1;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == 'v' || *p == 'V')
        p++;
    /* [N!] */
    const char *bang = p;
    if (take_number(&bang, &num) && *bang == '!') {
        v->epoch = num;
        p = bang + 1;
    }
    /* N(.N)* */
    if (!take_number(&p, &v->release[0]))
        return false;
    v->n_release = 1;
    while (p[0] == '.' && isdigit((unsigned char)p[1])) {
        if (v->n_release == PEP440_RELEASE_MAX)
            return false;
        p++;
        if (!take_number(&p, &v->release[v->n_release++]))
            return false;
    }
    /* pre-release */
    int w = take_labelled(&p, pre_words, ARRAY_SIZE(pre_words), &num, &has_num);
    if (w >= 0) {
        v->pre_phase = pre_phase[w];
        v->pre_n = has_num ? num : 0;
    }
    /* post-release: "-N" or [-_.]post|rev|r[N] */
    const char *q = p + 1;
    if (*p == '-' && take_number(&q, &num)) {
        v->has_post = true;
        v->post_n = num;
        p = q;
    } else if (take_labelled(&p, post_words, ARRAY_SIZE(post_words), &num, &has_num) >= 0) {
        v->has_post = true;
        v->post_n = has_num ? num : 0;
    }
    /* dev release */
    if (take_labelled(&p, dev_words, ARRAY_SIZE(dev_words), &num, &has_num) >= 0) {
        v->has_dev = true;
        v->dev_n = has_num ? num : 0;
    }
    /* +local: alphanumerics separated by [-_.], kept lower case with '.' */
    if (*p == '+') {
        p++;
        size_t n = 0;
        bool need = true; /* a segment must follow */
        for (; *p && !isspace((unsigned char)*p); p++) {
            char c = *p;
            if (is_sep(c)) {
                if (need)
                    return false;
                c = '.';
                need = true;
            } else if (isalnum((unsigned char)c)) {
                c = (char)tolower((unsigned char)c);
                need = false;
            } else {
                return false;
            }
            if (n + 1 >= sizeof(v->local))
                return false;
            v->local[n++] = c;
        }
        if (need)
            return false;
        v->local[n] = '\0';
    }
    while (isspace((unsigned char)*p))
        p++;
    return *p == '\0';
}

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

/* The pre-release part of the sort key: a dev release of a final version
 * sorts before its pre-releases, a version without a pre-release after them. */
static void pre_key(const struct pep440 *v, int *kind, int *phase, int64_t *n)
{
    *phase = v->pre_phase;
    *n = v->pre_n;
    if (v->pre_phase < 0 && !v->has_post && v->has_dev)
        *kind = 0;
    else if (v->pre_phase < 0)
        *kind = 2;
    else
        *kind = 1;
}

/* Local versions: none sorts first; segments compared in order, numbers
 * numerically and after any text, text by byte value; a prefix first. */
static int local_compare(const char *a, const char *b)
{
    if (!*a || !*b)
        return (*a != '\0') - (*b != '\0');
    while (*a || *b) {
        if (!*a || !*b)
            return *a ? 1 : -1;
        size_t la = strcspn(a, "."), lb = strcspn(b, ".");
        bool na = strspn(a, "0123456789") >= la, nb = strspn(b, "0123456789") >= lb;
        int c;
        if (na && nb) {
            /* numbers of any length: without leading zeros, the longer is larger */
            const char *x = a, *y = b;
            while (x < a + la && *x == '0')
                x++;
            while (y < b + lb && *y == '0')
                y++;
            size_t dx = (size_t)(a + la - x), dy = (size_t)(b + lb - y);
            c = dx != dy ? (dx < dy ? -1 : 1) : strncmp(x, y, dx);
        } else if (na != nb) {
            c = na ? 1 : -1;
        } else {
            c = strncmp(a, b, la < lb ? la : lb);
            if (c == 0)
                c = cmp_i64((int64_t)la, (int64_t)lb);
        }
        if (c)
            return c < 0 ? -1 : 1;
        a += la + (a[la] == '.');
        b += lb + (b[lb] == '.');
    }
    return 0;
}

static int pep440_cmp(const struct pep440 *a, const struct pep440 *b)
{
    int c = cmp_i64(a->epoch, b->epoch);
    if (c)
        return c;
    size_t n = a->n_release > b->n_release ? a->n_release : b->n_release;
    for (size_t i = 0; i < n; i++) {
        c = cmp_i64(i < a->n_release ? a->release[i] : 0, i < b->n_release ? b->release[i] : 0);
        if (c)
            return c;
    }
    int ka, kb, pa, pb;
    int64_t na, nb;
    pre_key(a, &ka, &pa, &na);
    pre_key(b, &kb, &pb, &nb);
    if (ka != kb)
        return ka < kb ? -1 : 1;
    if (ka == 1 && (c = pa != pb ? (pa < pb ? -1 : 1) : cmp_i64(na, nb)))
        return c;
    if (a->has_post != b->has_post)
        return a->has_post ? 1 : -1;
    if (a->has_post && (c = cmp_i64(a->post_n, b->post_n)))
        return c;
    if (a->has_dev != b->has_dev)
        return a->has_dev ? -1 : 1;
    if (a->has_dev && (c = cmp_i64(a->dev_n, b->dev_n)))
        return c;
    return local_compare(a->local, b->local);
}

int version_pep440_compare(const char *a, const char *b, int *ret)
{
    struct pep440 va, vb;
    if (!pep440_parse(a, &va) || !pep440_parse(b, &vb))
        return -1;
    *ret = pep440_cmp(&va, &vb);
    return 0;
}

/* ---- dpkg ---- */

static int dpkg_order(int c)
{
    if (isdigit(c))
        return 0;
    if (isalpha(c))
        return c;
    if (c == '~')
        return -1;
    if (c)
        return c + 256;
    return 0;
}

/* dpkg's verrevcmp over [a, a_end) and [b, b_end). */
static int dpkg_verrevcmp(const char *a, const char *a_end, const char *b, const char *b_end)
{
#define AT(p, end) ((p) < (end) ? (unsigned char)*(p) : 0)
    while (AT(a, a_end) || AT(b, b_end)) {
        int first_diff = 0;
        while ((AT(a, a_end) && !isdigit(AT(a, a_end))) ||
               (AT(b, b_end) && !isdigit(AT(b, b_end)))) {
            int ac = dpkg_order(AT(a, a_end)), bc = dpkg_order(AT(b, b_end));
            if (ac != bc)
                return ac - bc;
            a++;
            b++;
        }
        while (AT(a, a_end) == '0')
            a++;
        while (AT(b, b_end) == '0')
            b++;
        while (isdigit(AT(a, a_end)) && isdigit(AT(b, b_end))) {
            if (!first_diff)
                first_diff = AT(a, a_end) - AT(b, b_end);
            a++;
            b++;
        }
        if (isdigit(AT(a, a_end)))
            return 1;
        if (isdigit(AT(b, b_end)))
            return -1;
        if (first_diff)
            return first_diff;
    }
    return 0;
#undef AT
}

struct dpkg_version {
    int64_t epoch;
    const char *up, *up_end, *rev, *rev_end;
};

static void dpkg_split(const char *v, struct dpkg_version *d)
{
    const char *colon = strchr(v, ':');
    d->epoch = 0;
    if (colon) {
        d->epoch = strtoll(v, NULL, 10);
        v = colon + 1;
    }
    const char *end = v + strlen(v);
    const char *dash = strrchr(v, '-');
    d->up = v;
    d->up_end = dash ? dash : end;
    d->rev = dash ? dash + 1 : end;
    d->rev_end = end;
}

int version_dpkg_compare(const char *a, const char *b)
{
    struct dpkg_version da, db;
    dpkg_split(a, &da);
    dpkg_split(b, &db);
    int c = cmp_i64(da.epoch, db.epoch);
    if (c)
        return c;
    c = dpkg_verrevcmp(da.up, da.up_end, db.up, db.up_end);
    if (c)
        return c < 0 ? -1 : 1;
    c = dpkg_verrevcmp(da.rev, da.rev_end, db.rev, db.rev_end);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
}

/* ---- the filter ---- */

static int spec_add(struct version_spec *s, const char *op, const char *version, size_t len,
                    bool prefix, struct err *err)
{
    if (s->n == VERSION_SPEC_MAX)
        return err_set(err, ERR_INVALID, "version: more than %d clauses", VERSION_SPEC_MAX);
    if (len == 0 || len >= sizeof(s->clauses[0].version))
        return err_set(err, ERR_INVALID, "version: a clause needs a version of 1 to %zu characters",
                       sizeof(s->clauses[0].version) - 1);
    snprintf(s->clauses[s->n].op, sizeof(s->clauses[s->n].op), "%s", op);
    memcpy(s->clauses[s->n].version, version, len);
    s->clauses[s->n].version[len] = '\0';
    s->clauses[s->n].prefix = prefix;
    s->n++;
    return 0;
}

int version_spec_parse(const char *text, struct version_spec *ret, struct err *err)
{
    static const char *const ops[] = {"===", "==", "!=", "<=", ">=", "~=", "<", ">"};
    struct version_spec s = {0};
    const char *clause = text;

    for (;;) {
        const char *comma = strchr(clause, ',');
        const char *p = clause, *end = comma ? comma : clause + strlen(clause);
        while (p < end && isspace((unsigned char)*p))
            p++;
        while (end > p && isspace((unsigned char)end[-1]))
            end--;
        const char *op = "==";
        for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
            if ((size_t)(end - p) >= strlen(ops[i]) && strncmp(p, ops[i], strlen(ops[i])) == 0) {
                op = ops[i];
                p += strlen(ops[i]);
                break;
            }
        if (strcmp(op, "===") == 0)
            return err_set(err, ERR_INVALID, "version: '===' is not supported; use '=='");
        while (p < end && isspace((unsigned char)*p))
            p++;
        for (const char *c = p; c < end; c++)
            if (!isalnum((unsigned char)*c) && !strchr(".+!_~:-*", *c))
                return err_set(err, ERR_INVALID,
                               "version: '%.60s' is not a filter (==V, !=V, <V, <=V, >V, >=V, ~=V, "
                               "comma-separated)",
                               text);
        size_t len = (size_t)(end - p);
        bool prefix = len >= 2 && p[len - 2] == '.' && p[len - 1] == '*';
        if (prefix)
            len -= 2;
        if (memchr(p, '*', len) || (prefix && strcmp(op, "==") != 0 && strcmp(op, "!=") != 0))
            return err_set(err, ERR_INVALID,
                           "version: '*' only ends a version after '==' or '!=' (==1.2.*)");
        if (strcmp(op, "~=") == 0) {
            /* ~=1.4.5 is >=1.4.5 and ==1.4.* */
            const char *dot = NULL;
            for (const char *c = p; c < p + len && (isdigit((unsigned char)*c) || *c == '.'); c++)
                if (*c == '.')
                    dot = c;
            if (!dot || dot == p)
                return err_set(err, ERR_INVALID, "version: '~=' needs at least two release parts");
            if (spec_add(&s, ">=", p, len, false, err) < 0 ||
                spec_add(&s, "==", p, (size_t)(dot - p), true, err) < 0)
                return -1;
        } else if (spec_add(&s, op, p, len, prefix, err) < 0) {
            return -1;
        }
        if (!comma)
            break;
        clause = comma + 1;
    }
    *ret = s;
    return 0;
}

/* Does @version start with the release of @prefix (pip: release numbers,
 * zero-padded; dpkg: the upstream text up to a '.')? */
static bool prefix_match(const char *manager, const char *version, const char *prefix)
{
    if (strcmp(manager, "dpkg") == 0) {
        /* a prefix without an epoch takes any (==1.24.* matches 1:1.24.2-1);
         * one with an epoch (==1:2.*) that epoch, and its upstream after it */
        const char *colon = strchr(version, ':'), *pcolon = strchr(prefix, ':');
        const char *up = colon ? colon + 1 : version;
        if (pcolon) {
            if ((colon ? strtoll(version, NULL, 10) : 0) != strtoll(prefix, NULL, 10))
                return false;
            prefix = pcolon + 1;
        }
        size_t n = strlen(prefix);
        return strncmp(up, prefix, n) == 0 && (up[n] == '\0' || !isdigit((unsigned char)up[n]));
    }
    struct pep440 v, p;
    if (!pep440_parse(version, &v) || !pep440_parse(prefix, &p) || v.epoch != p.epoch)
        return false;
    for (size_t i = 0; i < p.n_release; i++)
        if ((i < v.n_release ? v.release[i] : 0) != p.release[i])
            return false;
    return true;
}

static bool same_release(const struct pep440 *a, const struct pep440 *b)
{
    if (a->epoch != b->epoch)
        return false;
    size_t n = a->n_release > b->n_release ? a->n_release : b->n_release;
    for (size_t i = 0; i < n; i++)
        if ((i < a->n_release ? a->release[i] : 0) != (i < b->n_release ? b->release[i] : 0))
            return false;
    return true;
}

static bool clause_match(const char *op, const char *manager, const char *version,
                         const char *against, bool prefix)
{
    bool eq_op = strcmp(op, "==") == 0, ne_op = strcmp(op, "!=") == 0;
    int c;
    if (prefix) {
        bool m = prefix_match(manager, version, against);
        return eq_op ? m : !m;
    }
    if (strcmp(manager, "dpkg") == 0) {
        c = version_dpkg_compare(version, against);
    } else {
        struct pep440 v, w;
        if (!pep440_parse(version, &v) || !pep440_parse(against, &w)) {
            /* not PEP 440: only the same text is equal */
            if (eq_op || ne_op)
                return (strcmp(version, against) == 0) == eq_op;
            return false;
        }
        c = pep440_cmp(&v, &w);
        /* PEP 440's exclusive comparisons: <V takes no pre-release of V itself
         * (unless V is one), >V no post-release or local version of V */
        if (strcmp(op, "<") == 0 && c < 0 && w.pre_phase < 0 && !w.has_dev &&
            same_release(&v, &w) && (v.pre_phase >= 0 || v.has_dev) && !v.has_post)
            return false;
        if (strcmp(op, ">") == 0 && c > 0 && !w.has_post && same_release(&v, &w) &&
            v.pre_phase == w.pre_phase && v.pre_n == w.pre_n && (v.has_post || v.local[0]))
            return false;
    }
    if (eq_op)
        return c == 0;
    if (ne_op)
        return c != 0;
    if (strcmp(op, "<") == 0)
        return c < 0;
    if (strcmp(op, "<=") == 0)
        return c <= 0;
    if (strcmp(op, ">") == 0)
        return c > 0;
    return c >= 0; /* ">=" */
}

bool version_spec_match(const struct version_spec *spec, const char *manager, const char *version)
{
    for (size_t i = 0; i < spec->n; i++)
        if (!clause_match(spec->clauses[i].op, manager, version, spec->clauses[i].version,
                          spec->clauses[i].prefix))
            return false;
    return true;
}

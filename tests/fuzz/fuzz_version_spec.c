/* tests/fuzz/fuzz_version_spec.c - version_spec_parse and
 * version_spec_match (core/version.c): the ?version= filter of the
 * package search, and the PEP 440 and dpkg orderings under it.
 *
 * Input: one byte choosing the manager (pip or dpkg), then NUL-separated
 * texts: the filter, then versions. Properties: a parsed filter has 1 to
 * VERSION_SPEC_MAX clauses of known operators and non-empty versions; "==V"
 * matches V and "!=V" does not (also V.* for a release V); a failure is
 * ERR_INVALID with a one-line message; and both orderings are reflexive,
 * antisymmetric and transitive over the versions given. */
#include "core/version.h"
#include "core/xalloc.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

#define MAX_TEXTS 4

/* -2 when @manager cannot compare them (pip: not PEP 440). */
static int compare(bool dpkg, const char *a, const char *b)
{
    int c;
    if (dpkg)
        return version_dpkg_compare(a, b);
    if (version_pep440_compare(a, b, &c) < 0)
        return -2;
    FUZZ_CHECK(c >= -1 && c <= 1);
    return c;
}

static void check_order(bool dpkg, char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int self = compare(dpkg, v[i], v[i]);
        FUZZ_CHECK(self == 0 || self == -2);
        for (size_t j = 0; j < n; j++) {
            int ij = compare(dpkg, v[i], v[j]), ji = compare(dpkg, v[j], v[i]);
            if (ij == -2 || ji == -2)
                continue;
            FUZZ_CHECK(ij == -ji);
            for (size_t k = 0; k < n; k++) {
                int jk = compare(dpkg, v[j], v[k]), ik = compare(dpkg, v[i], v[k]);
                if (jk == -2 || ik == -2)
                    continue;
                if (ij <= 0 && jk <= 0)
                    FUZZ_CHECK(ik <= 0);
            }
        }
    }
}

/* "==V" matches V, "!=V" does not: for each clause's version alone. */
static void check_clauses(const struct version_spec *spec, const char *manager, bool dpkg)
{
    for (size_t i = 0; i < spec->n; i++) {
        struct version_spec one = {.n = 1};
        one.clauses[0] = spec->clauses[i];
        const char *v = one.clauses[0].version;
        if (one.clauses[0].prefix && !dpkg && compare(false, v, v) != 0)
            continue; /* a prefix must be a release to match itself */
        snprintf(one.clauses[0].op, sizeof(one.clauses[0].op), "==");
        FUZZ_CHECK(version_spec_match(&one, manager, v));
        snprintf(one.clauses[0].op, sizeof(one.clauses[0].op), "!=");
        FUZZ_CHECK(!version_spec_match(&one, manager, v));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};
    bool dpkg = fuzz_take_byte(&data, &size) & 1;
    const char *manager = dpkg ? "dpkg" : "pip";
    char *texts[MAX_TEXTS];
    size_t n = 0;
    struct version_spec spec;
    struct err err = ERR_INIT;

    /* NUL-separated texts; the last runs to the end of the input */
    for (const uint8_t *p = data, *end = data + size; n < MAX_TEXTS && p <= end;) {
        const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
        size_t len = nul ? (size_t)(nul - p) : (size_t)(end - p);
        texts[n++] = xstrndup((const char *)p, len);
        p += len + 1;
    }

    if (version_spec_parse(texts[0], &spec, &err) == 0) {
        FUZZ_CHECK(spec.n >= 1 && spec.n <= VERSION_SPEC_MAX);
        for (size_t i = 0; i < spec.n; i++) {
            bool known = false;
            for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
                known |= strcmp(spec.clauses[i].op, ops[k]) == 0;
            FUZZ_CHECK(known);
            size_t len = strnlen(spec.clauses[i].version, sizeof(spec.clauses[i].version));
            FUZZ_CHECK(len > 0 && len < sizeof(spec.clauses[i].version));
        }
        check_clauses(&spec, manager, dpkg);
        for (size_t i = 1; i < n; i++)
            (void)version_spec_match(&spec, manager, texts[i]);
    } else {
        FUZZ_CHECK(err.code == ERR_INVALID);
        fuzz_check_err(&err);
    }
    check_order(dpkg, texts, n);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    return 0;
}

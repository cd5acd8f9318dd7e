/* catalog/packages.c - which environments carry a package: the query over
 * every ready build's inventory, names compared as pip compares them. The
 * version filter of GET /packages is applied to its answer by the caller
 * (core/version.h: pure, no SQL). */
#include "catalog/catalog.h"

#include <stdlib.h>
#include <string.h>

#include "catalog/catalog_internal.h"
#include "core/cleanup.h"
#include "core/xalloc.h"

#include "core/banned.h"

void package_hits_free(struct package_hit *h, size_t n)
{
    if (!h)
        return;
    for (size_t i = 0; i < n; i++) {
        free(h[i].environment);
        free(h[i].manager);
        free(h[i].name);
        free(h[i].version);
    }
    free(h);
}

struct hit_array {
    struct package_hit *v;
    size_t n, cap;
};

static void hit_array_release(struct hit_array *a)
{
    package_hits_free(a->v, a->n);
}

/* pip's comparison of names, as the index packages_name_norm computes it:
 * ASCII lower case, '_' and '.' read as '-'. */
static char *name_normalise(const char *name)
{
    char *out = xstrdup(name);
    for (char *p = out; *p; p++) {
        if (*p == '_' || *p == '.')
            *p = '-';
        else if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    return out;
}

int catalog_packages_find(struct catalog *cat, const char *name, const char *manager,
                          struct package_hit **ret, size_t *ret_n, struct err *err)
{
    _cleanup_free_ char *norm = name_normalise(name);

    CATALOG_LOCK(cat);
    _cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
    _cleanup_(hit_array_release) struct hit_array a = {0};
    struct binder b;
    int rc;

    rc = sqlite3_prepare_v2(
        cat->db,
        "SELECT b.environment, b.version, e.version = b.version, e.lifecycle, p.manager, p.name,"
        " p.version FROM packages p JOIN builds b ON b.id = p.build_id"
        " JOIN environments e ON e.name = b.environment"
        " WHERE lower(replace(replace(p.name, '_', '-'), '.', '-')) = ?1"
        " AND (?2 IS NULL OR p.manager = ?2) AND b.status = 'ready'"
        " ORDER BY b.environment, b.version DESC, p.manager, p.name",
        -1, &st, NULL);
    if (rc == SQLITE_OK) {
        b = binder_of(st);
        bind_text(&b, norm);
        bind_text(&b, manager);
        rc = b.rc;
    }
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        struct package_hit *h = ARRAY_PUSH(&a);
        h->environment = column_strdup(st, 0);
        h->environment_version = sqlite3_column_int64(st, 1);
        h->in_service = sqlite3_column_int(st, 2) != 0;
        int l = env_lifecycle_parse((const char *)sqlite3_column_text(st, 3));
        h->lifecycle = l < 0 ? ENV_ACTIVE : (enum env_lifecycle)l;
        h->manager = column_strdup(st, 4);
        h->name = column_strdup(st, 5);
        h->version = column_strdup(st, 6);
    }
    if (rc != SQLITE_DONE)
        return catalog_sqlite_err(cat->db, rc, ERR_OK, err, "cannot find package '%s'", name);
    *ret_n = a.n;
    *ret = steal_ptr(a.v);
    a.n = 0;
    return 0;
}

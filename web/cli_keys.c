/* web/cli_keys.c - `envhub key create|list|revoke`: straight on the catalog
 * file (ENVHUB_DB), so the first admin key can be made before the server
 * runs. A running server sees new and revoked keys at its next request. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web.h"
#include "web/web_internal.h"

#include "core/banned.h"

static int usage(void)
{
    fprintf(stderr, "usage: envhub key create --name NAME --role admin|curator|runner|auditor\n"
                    "                         [--max-concurrent N] [--max-per-minute N]\n"
                    "       envhub key list\n"
                    "       envhub key revoke NAME\n");
    return 2;
}

static int key_create(struct catalog *cat, int argc, char **argv)
{
    const char *name = NULL, *role_s = NULL;
    int64_t max_conc = -1, max_min = -1;
    struct err err = ERR_INIT;
    _cleanup_free_ char *secret = NULL;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--name") == 0 && v)
            name = argv[++i];
        else if (strcmp(a, "--role") == 0 && v)
            role_s = argv[++i];
        else if (strcmp(a, "--max-concurrent") == 0 && v &&
                 parse_int(v, 0, 1000000, &max_conc) == 0)
            i++;
        else if (strcmp(a, "--max-per-minute") == 0 && v && parse_int(v, 0, 1000000, &max_min) == 0)
            i++;
        else {
            fprintf(stderr, "envhub key create: unexpected or bad '%s'\n", a);
            return usage();
        }
    }
    if (!name || !role_s)
        return usage();
    int role = role_parse(role_s);
    if (role < 0) {
        fprintf(stderr, "envhub: role '%s' is not one of admin, curator, runner, auditor\n",
                role_s);
        return 2;
    }
    _cleanup_free_ char *who = xasprintf("cli:%s", getlogin() ? getlogin() : "local");
    if (web_key_issue(cat, name, (enum role)role, max_conc, max_min, who, &secret, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 1;
    }
    /* the only time the secret is shown: on stdout, alone, for scripts */
    printf("%s\n", secret);
    fprintf(stderr, "envhub: key '%s' (%s) created; this is the only time its secret is shown\n",
            name, role_s);
    return 0;
}

static int key_list(struct catalog *cat)
{
    struct key_record *keys = NULL;
    size_t n = 0;
    struct err err = ERR_INIT;

    if (catalog_key_list(cat, &keys, &n, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 1;
    }
    printf("%-24s %-8s %-14s %-26s %s\n", "NAME", "ROLE", "ID", "CREATED", "STATE");
    for (size_t i = 0; i < n; i++) {
        char created[TIME_ISO_MAX], revoked[TIME_ISO_MAX];
        time_format_iso(keys[i].created_at, created);
        if (keys[i].revoked_at)
            time_format_iso(keys[i].revoked_at, revoked);
        printf("%-24s %-8s %-14s %-26s %s%s\n", keys[i].name, role_name(keys[i].role), keys[i].id,
               created, keys[i].revoked_at ? "revoked " : "active",
               keys[i].revoked_at ? revoked : "");
    }
    key_records_free(keys, n);
    return 0;
}

int web_key_cli(const struct config *cfg, int argc, char **argv)
{
    struct err err = ERR_INIT;
    _cleanup_(catalog_closep) struct catalog *cat = NULL;

    if (argc < 1)
        return usage();
    if (catalog_open(cfg->db_path, &cat, &err) < 0) {
        fprintf(stderr, "envhub: %s\n", err.msg);
        return 1;
    }
    if (strcmp(argv[0], "create") == 0)
        return key_create(cat, argc - 1, argv + 1);
    if (strcmp(argv[0], "list") == 0)
        return key_list(cat);
    if (strcmp(argv[0], "revoke") == 0 && argc == 2) {
        _cleanup_free_ char *who = xasprintf("cli:%s", getlogin() ? getlogin() : "local");
        if (catalog_key_revoke(cat, argv[1], time_now_ms(), who, &err) < 0) {
            fprintf(stderr, "envhub: %s\n", err.msg);
            return 1;
        }
        printf("key '%s' revoked\n", argv[1]);
        return 0;
    }
    return usage();
}

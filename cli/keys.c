/* cli/keys.c - `envhub key create|list|revoke`: straight on the catalog
 * file (--db / ENVHUB_DB), so the first admin key can be made before the
 * server runs. A running server sees new and revoked keys at its next
 * request. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "cli/cli_internal.h"
#include "core/cleanup.h"
#include "core/util.h"
#include "core/xalloc.h"
#include "web/web.h"

#include "core/banned.h"

#define KEY_QUOTA_MAX 1000000 /* --max-concurrent and --max-per-minute */

/* Who makes or revokes a key, for the catalog's record. */
static char *cli_who(void)
{
    const char *login = getlogin();
    return xasprintf("cli:%s", login ? login : "local");
}

/* The value of quota option @name into *ret (-1: not given); 0, or the exit status. */
static int quota_of(const struct cli_ctx *ctx, const char *name, int64_t *ret)
{
    const char *v = cli_value(ctx->p, name);
    *ret = -1;
    if (v && parse_int(v, 0, KEY_QUOTA_MAX, ret) < 0)
        return cli_usage_error(ctx->path, "--%s '%s' must be a number from 0 to %d", name, v,
                               KEY_QUOTA_MAX);
    return 0;
}

static int key_create(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(catalog_closep) struct catalog *cat = NULL;
    _cleanup_free_ char *secret = NULL;
    const char *name = cli_value(ctx->p, "name"), *role_s = cli_value(ctx->p, "role");
    int64_t max_conc, max_min;
    int rc;

    if (!name || !role_s)
        return cli_usage_error(ctx->path, "--name and --role are needed");
    if ((rc = quota_of(ctx, "max-concurrent", &max_conc)) != 0 ||
        (rc = quota_of(ctx, "max-per-minute", &max_min)) != 0)
        return rc;
    int role = role_parse(role_s);
    if (role < 0) {
        fprintf(stderr, "envhub: role '%s' is not one of admin, curator, runner, auditor\n",
                role_s);
        return CLI_EXIT_USAGE;
    }
    if (catalog_open(ctx->cfg->db_path, &cat, &err) < 0)
        return cli_fail(&err);
    _cleanup_free_ char *who = cli_who();
    if (web_key_issue(cat, name, (enum role)role, max_conc, max_min, who, &secret, &err) < 0)
        return cli_fail(&err);
    /* the only time the secret is shown: on stdout, alone, for scripts */
    printf("%s\n", secret);
    fprintf(stderr, "envhub: key '%s' (%s) created; this is the only time its secret is shown\n",
            name, role_s);
    return CLI_EXIT_OK;
}

static int key_list(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(catalog_closep) struct catalog *cat = NULL;
    struct key_record *keys = NULL;
    size_t n = 0;

    if (catalog_open(ctx->cfg->db_path, &cat, &err) < 0 ||
        catalog_key_list(cat, &keys, &n, &err) < 0)
        return cli_fail(&err);
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
    return CLI_EXIT_OK;
}

static int key_revoke(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(catalog_closep) struct catalog *cat = NULL;
    const char *name = ctx->p->args[0];
    _cleanup_free_ char *who = cli_who();

    if (catalog_open(ctx->cfg->db_path, &cat, &err) < 0 ||
        catalog_key_revoke(cat, name, time_now_ms(), who, &err) < 0)
        return cli_fail(&err);
    printf("key '%s' revoked\n", name);
    return CLI_EXIT_OK;
}

static const struct cli_option create_options[] = {
    {"name", 0, "NAME", "the key's name, its principal (a letter, then letters, digits, _.@-)",
     false},
    {"role", 0, "ROLE", "admin, curator, runner or auditor", false},
    {"max-concurrent", 0, "N", "executions it may have running at once (default: its role's quota)",
     false},
    {"max-per-minute", 0, "N", "executions it may start per minute (default: its role's quota)",
     false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_command key_create_cmd = {
    .name = "create",
    .summary = "make an API key; prints its secret, once, on stdout",
    .options = create_options,
    .reads = "db",
    .run = key_create,
};

static const struct cli_command key_list_cmd = {
    .name = "list",
    .summary = "list the keys: name, role, id, created, active or revoked",
    .reads = "db",
    .run = key_list,
};

static const struct cli_command key_revoke_cmd = {
    .name = "revoke",
    .args = "NAME",
    .summary = "revoke a key (a running server refuses it at its next request)",
    .min_args = 1,
    .max_args = 1,
    .reads = "db",
    .run = key_revoke,
};

static const struct cli_command *const key_subs[] = {&key_create_cmd, &key_list_cmd,
                                                     &key_revoke_cmd, NULL};

const struct cli_command cli_cmd_key = {
    .name = "key",
    .summary = "API keys, on the catalog file (no server needed)",
    .reads = "db",
    .subs = key_subs,
};

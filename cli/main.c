/* cli/main.c - the envhub command: main(), the global options and the
 * dispatch of a command line to its command (the table of cli_internal.h).
 * The only place that sees every module, through the commands, and the only
 * place that exits.
 *
 * A command line is walked down the table: the options before a command's
 * name are server settings (or -h, --help, --version); at the command that
 * has no subcommand named, its own options and the settings are parsed, the
 * settings met on the way go to config_load (after the environment, so flags
 * win), and the command runs with them. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "core/buf.h"
#include "core/cleanup.h"
#include "core/config.h"
#include "core/log.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define ENVHUB_VERSION "0.1.0"

static int cmd_version(const struct cli_ctx *ctx)
{
    (void)ctx;
    printf("envhub %s\n", ENVHUB_VERSION);
    return CLI_EXIT_OK;
}

static const struct cli_command version_cmd = {
    .name = "version",
    .summary = "print the version",
    .run = cmd_version,
};

static int cmd_help(const struct cli_ctx *ctx);

static const struct cli_command help_cmd = {
    .name = "help",
    .args = "[COMMAND [SUBCOMMAND]]",
    .summary = "show the help of envhub, or of a command (as COMMAND --help does)",
    .max_args = 2,
    .run = cmd_help,
};

static const struct cli_command *const commands[] = {
    &cli_cmd_serve, &cli_cmd_migrate, &cli_cmd_config,   &cli_cmd_image,   &cli_cmd_key,
    &cli_cmd_env,   &cli_cmd_run,     &cli_cmd_packages, &cli_cmd_history, &cli_cmd_audit,
    &cli_cmd_node,  &cli_cmd_cluster, &version_cmd,      &help_cmd,        NULL,
};

static const struct cli_option root_options[] = {
    {"version", 0, NULL, "print the version and exit", false},
    {NULL, 0, NULL, NULL, false},
};

static const struct cli_command root = {
    .name = "envhub",
    .summary = "envhub " ENVHUB_VERSION " - curated Python environments and sandboxed execution",
    .options = root_options,
    .reads = "db listen docker-host log-level",
    .notes =
        "Every server setting is a flag, before or after the command (`envhub --db F key list`,\n"
        "`envhub serve --listen 127.0.0.1:9000`), or an environment variable (ENVHUB_DB,\n"
        "ENVHUB_LISTEN, ...); a flag wins. `envhub serve --help` lists them all, `envhub config`\n"
        "prints their current values.\n"
        "\n"
        "The client commands (env, run, packages, history, audit verify) talk to the server at\n"
        "ENVHUB_URL (default http:// + ENVHUB_LISTEN) and send ENVHUB_KEY, when set, as a bearer\n"
        "token. key, migrate, history prune and audit verify --db work on the catalog file.\n"
        "\n"
        "Exit status: 0 on success, 1 when something failed (the server refused, a build failed),\n"
        "2 for a bad command line; `run` exits with the job's exit code (124: timeout).\n",
    .subs = commands,
};

/* The command @names (n of them) designate, from the root; its path in *ret_path. */
static const struct cli_command *resolve(char **names, size_t n, struct buf *ret_path)
{
    const struct cli_command *cmd = &root;
    buf_puts(ret_path, "envhub");
    for (size_t i = 0; i < n; i++) {
        const struct cli_command *sub = cli_sub(cmd, names[i]);
        if (!sub)
            return NULL;
        cmd = sub;
        buf_putf(ret_path, " %s", sub->name);
    }
    return cmd;
}

static int cmd_help(const struct cli_ctx *ctx)
{
    _cleanup_(buf_release) struct buf path = BUF_INIT(BUF_UNLIMITED);
    const struct cli_command *cmd = resolve(ctx->p->args, ctx->p->n_args, &path);
    if (!cmd)
        return cli_usage_error(ctx->path, "no command '%s'", buf_str(&path));
    cli_help(cmd, buf_str(&path), stdout);
    return CLI_EXIT_OK;
}

/* "create, list, show" */
static char *sub_names(const struct cli_command *cmd)
{
    struct buf b = BUF_INIT(BUF_UNLIMITED);
    for (size_t i = 0; cmd->subs[i]; i++)
        buf_putf(&b, "%s%s", i ? ", " : "", cmd->subs[i]->name);
    return buf_detach(&b, NULL);
}

/* Settings met on the command line, in order, for config_load. */
struct settings {
    struct cli_setting *list;
    size_t n;
    bool db_given;
};

static void settings_add(struct settings *s, const struct cli_parsed *p)
{
    for (size_t i = 0; i < p->n_settings; i++) {
        s->list[s->n++] = p->settings[i];
        if (strcmp(p->settings[i].flag, "db") == 0)
            s->db_given = true;
    }
}

/* Defaults, then the environment, then the settings as --flag VALUE. */
static int settings_load(const struct settings *s, struct config *cfg, struct err *err)
{
    _cleanup_free_ char **argv = xcalloc(2 * s->n + 2, sizeof(*argv));
    _cleanup_free_ char **flags = xcalloc(s->n + 1, sizeof(*flags));
    int argc = 0;

    argv[argc++] = (char *)"envhub";
    for (size_t i = 0; i < s->n; i++) {
        flags[i] = xasprintf("--%s", s->list[i].flag);
        argv[argc++] = flags[i];
        argv[argc++] = (char *)s->list[i].value;
    }
    int rc = config_load(cfg, &argc, argv, err);
    for (size_t i = 0; i < s->n; i++)
        free(flags[i]);
    return rc;
}

static int dispatch(int argc, char **argv)
{
    const struct cli_command *cmd = &root;
    _cleanup_(buf_release) struct buf path = BUF_INIT(BUF_UNLIMITED);
    _cleanup_(cli_parsed_release) struct cli_parsed p = {0};
    _cleanup_free_ struct cli_setting *list = xcalloc((size_t)argc + 1, sizeof(*list));
    struct settings set = {.list = list};
    struct err err = ERR_INIT;
    int at = 0; /* argv[at] names cmd */

    buf_puts(&path, "envhub");
    while (cmd->subs) {
        cli_parsed_release(&p);
        int rc = cli_parse(cmd, CLI_PARSE_LEADING, argc - at, argv + at, &p, &err);
        if (rc == 0 && p.help) {
            cli_help(cmd, buf_str(&path), stdout);
            return CLI_EXIT_OK;
        }
        const struct cli_command *sub = rc == 0 && p.n_args ? cli_sub(cmd, p.args[0]) : NULL;
        if (sub) {
            settings_add(&set, &p);
            at = argc - (int)p.n_args; /* the leading parse left the rest of argv in place */
            buf_putf(&path, " %s", sub->name);
            cmd = sub;
            continue;
        }
        if (cmd == &root && rc == 0 && cli_given(&p, "version"))
            return cmd_version(NULL);
        if (cmd->run)
            break; /* the command itself: `history --env NAME` */
        if (rc < 0)
            return cli_usage_error(buf_str(&path), "%s", err.msg);
        if (p.n_args) {
            return cli_usage_error(buf_str(&path), "unknown %s '%s'",
                                   cmd == &root ? "command" : "subcommand", p.args[0]);
        }
        if (cmd == &root) {
            cli_help(cmd, buf_str(&path), stderr);
            return CLI_EXIT_USAGE;
        }
        _cleanup_free_ char *names = sub_names(cmd);
        return cli_usage_error(buf_str(&path), "a subcommand is needed: %s", names);
    }

    cli_parsed_release(&p);
    if (cli_parse(cmd, CLI_PARSE_ALL, argc - at, argv + at, &p, &err) < 0)
        return cli_usage_error(buf_str(&path), "%s", err.msg);
    if (p.help) {
        cli_help(cmd, buf_str(&path), stdout);
        return CLI_EXIT_OK;
    }
    if (p.n_args < cmd->min_args)
        return cli_usage_error(buf_str(&path), "missing arguments: it takes %s", cmd->args);
    if (p.n_args > cmd->max_args)
        return cli_usage_error(buf_str(&path), "unexpected argument '%s'", p.args[cmd->max_args]);
    settings_add(&set, &p);

    struct config cfg;
    if (settings_load(&set, &cfg, &err) < 0) {
        config_release(&cfg);
        return cli_fail(&err);
    }
    log_set_level((enum log_level)log_level_parse(cfg.log_level));
    struct cli_ctx ctx = {.cfg = &cfg, .p = &p, .path = buf_str(&path), .db_given = set.db_given};
    int rc = cmd->run(&ctx);
    config_release(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    /* A job's output (up to megabytes) passes through a few short-lived
     * buffers on many threads. glibc would serve them from per-thread arenas
     * and keep the memory after free; mapped on their own, they go back to
     * the system when freed, and few arenas keep the heap compact. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_ARENA_MAX, 2);
    return dispatch(argc, argv);
}

/* cli/opt.c - the command line's options: one getopt_long table per command,
 * built from its own options and config.c's server settings, and the help
 * that lists them. Nothing here prints but cli_help; nothing exits. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "core/cleanup.h"
#include "core/xalloc.h"

#include "core/banned.h"

/* getopt_long's val of each entry: own options and settings by index. */
#define VAL_HELP 'h'
#define VAL_OWN 256
#define VAL_SETTING 1024

#define HELP_COLUMN 28 /* where the one-line descriptions start */

static size_t own_count(const struct cli_command *cmd)
{
    size_t n = 0;
    while (cmd->options && cmd->options[n].name)
        n++;
    return n;
}

static const struct cli_option *own_by_name(const struct cli_command *cmd, const char *name)
{
    for (size_t i = 0; cmd->options && cmd->options[i].name; i++)
        if (strcmp(cmd->options[i].name, name) == 0)
            return &cmd->options[i];
    return NULL;
}

void cli_parsed_release(struct cli_parsed *p)
{
    if (!p)
        return;
    free(p->values);
    free(p->settings);
    free(p->args);
    *p = (struct cli_parsed){0};
}

/* The option getopt refused, as the user wrote it ("--bogus", "-x"). */
static void refused_name(int argc, char **argv, int optopt_value, char *out, size_t n)
{
    if (optopt_value > 0 && optopt_value < VAL_OWN) {
        snprintf(out, n, "-%c", optopt_value);
        return;
    }
    const char *a = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    snprintf(out, n, "%.*s", (int)strcspn(a, "="), a);
}

int cli_parse(const struct cli_command *cmd, enum cli_parse_mode mode, int argc, char **argv,
              struct cli_parsed *ret, struct err *err)
{
    /* a command with subcommands only has no use for its options past them */
    bool own = mode == CLI_PARSE_ALL || !cmd->run;
    size_t n_own = own ? own_count(cmd) : 0, n_set = 0, n = 0;
    struct config_flag f;
    char shorts[2 * CLI_MAX_OPTIONS + 8];
    size_t s = 0;

    *ret = (struct cli_parsed){0};
    ret->values = xcalloc((size_t)argc + 1, sizeof(*ret->values));
    ret->settings = xcalloc((size_t)argc + 1, sizeof(*ret->settings));
    ret->args = xcalloc((size_t)argc + 1, sizeof(*ret->args));
    while (config_flag_get(n_set, &f))
        n_set++;
    if (n_own > CLI_MAX_OPTIONS)
        return err_set(err, ERR_INTERNAL, "'%s' has more than %d options", cmd->name,
                       CLI_MAX_OPTIONS);

    _cleanup_free_ struct option *table = xcalloc(n_own + n_set + 2, sizeof(*table));
    /* "+": stop at the first positional argument; "-": hand each one back in
     * order (so POSIXLY_CORRECT changes nothing); ":": report a missing value */
    shorts[s++] = mode == CLI_PARSE_LEADING ? '+' : '-';
    shorts[s++] = ':';
    shorts[s++] = 'h';
    table[n++] = (struct option){"help", no_argument, NULL, VAL_HELP};
    for (size_t i = 0; i < n_own; i++) {
        const struct cli_option *o = &cmd->options[i];
        table[n++] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL,
                                     VAL_OWN + (int)i};
        if (o->short_name) {
            shorts[s++] = o->short_name;
            if (o->arg)
                shorts[s++] = ':';
        }
    }
    for (size_t i = 0; i < n_set; i++) {
        config_flag_get(i, &f);
        /* a command's own option wins over the setting of the same name */
        if (own && own_by_name(cmd, f.flag))
            continue;
        table[n++] = (struct option){f.flag, required_argument, NULL, VAL_SETTING + (int)i};
    }
    shorts[s] = '\0';

    int c, rc = 0;
    char name[128];
    opterr = 0;
    optind = 0; /* glibc: start afresh, the mode included */
    while (rc == 0 && (c = getopt_long(argc, argv, shorts, table, NULL)) != -1) {
        if (c == 1) {
            ret->args[ret->n_args++] = optarg;
        } else if (c == VAL_HELP) {
            ret->help = true;
        } else if (c >= VAL_SETTING) {
            config_flag_get((size_t)(c - VAL_SETTING), &f);
            ret->settings[ret->n_settings++] = (struct cli_setting){f.flag, optarg};
        } else if (c >= VAL_OWN) {
            ret->values[ret->n_values++] =
                (struct cli_value){&cmd->options[c - VAL_OWN], optarg ? optarg : ""};
        } else if (c == ':') {
            refused_name(argc, argv, optopt, name, sizeof(name));
            if (optopt >= VAL_SETTING) {
                config_flag_get((size_t)(optopt - VAL_SETTING), &f);
                snprintf(name, sizeof(name), "--%s", f.flag);
            } else if (optopt >= VAL_OWN) {
                snprintf(name, sizeof(name), "--%s", cmd->options[optopt - VAL_OWN].name);
            }
            rc = err_set(err, ERR_INVALID, "option '%s' needs a value", name);
        } else if (c == '?' && (optopt >= VAL_OWN || optopt == VAL_HELP) &&
                   strncmp(argv[optind - 1], "--", 2) == 0) {
            /* a long switch given "=value" */
            refused_name(argc, argv, 0, name, sizeof(name));
            rc = err_set(err, ERR_INVALID, "option '%s' takes no value", name);
        } else if (c == '?') {
            refused_name(argc, argv, optopt, name, sizeof(name));
            rc = err_set(err, ERR_INVALID, "unknown option '%s'", name);
        } else {
            /* a short alias: the own option that has it */
            for (size_t i = 0; i < n_own; i++)
                if (cmd->options[i].short_name == c)
                    ret->values[ret->n_values++] =
                        (struct cli_value){&cmd->options[i], optarg ? optarg : ""};
        }
    }
    if (rc == 0)
        for (int i = optind; i < argc; i++)
            ret->args[ret->n_args++] = argv[i];
    optind = 0;
    return rc;
}

const char *cli_value(const struct cli_parsed *p, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < p->n_values; i++)
        if (strcmp(p->values[i].opt->name, name) == 0)
            v = p->values[i].value;
    return v;
}

bool cli_given(const struct cli_parsed *p, const char *name)
{
    return cli_value(p, name) != NULL;
}

const struct cli_command *cli_sub(const struct cli_command *cmd, const char *name)
{
    for (size_t i = 0; cmd->subs && cmd->subs[i]; i++)
        if (strcmp(cmd->subs[i]->name, name) == 0)
            return cmd->subs[i];
    return NULL;
}

/* "  LEFT   help": the description at HELP_COLUMN, or on the next line when
 * LEFT is too long for that. */
static void help_line(FILE *out, const char *left, const char *help)
{
    int w = fprintf(out, "  %s", left);
    if (w >= HELP_COLUMN - 1) {
        fputc('\n', out);
        w = 0;
    }
    fprintf(out, "%*s%s\n", HELP_COLUMN - w, "", help);
}

static void help_setting(FILE *out, const struct config_flag *f)
{
    _cleanup_free_ char *left = xasprintf("--%s VALUE", f->flag);
    _cleanup_free_ char *help =
        xasprintf("%s [%s; default %s]", f->help, f->env, f->def[0] ? f->def : "none");
    help_line(out, left, help);
}

/* Is @flag among the space-separated flags of @reads? */
static bool reads_flag(const char *reads, const char *flag)
{
    size_t len = strlen(flag);
    for (const char *p = reads; *p; p += strcspn(p, " ")) {
        p += strspn(p, " ");
        if (strncmp(p, flag, len) == 0 && (p[len] == ' ' || p[len] == '\0'))
            return true;
    }
    return false;
}

void cli_help(const struct cli_command *cmd, const char *path, FILE *out)
{
    bool own_run = cmd->run != NULL, has_opts = own_count(cmd) > 0;

    if (cmd->subs) {
        fprintf(out, "usage: %s %s [OPTIONS] [ARGS]\n", path,
                strchr(path, ' ') ? "SUBCOMMAND" : "COMMAND");
        if (own_run)
            fprintf(out, "       %s [OPTIONS]%s%s\n", path, cmd->args ? " " : "",
                    cmd->args ? cmd->args : "");
    } else {
        fprintf(out, "usage: %s%s%s%s\n", path, has_opts ? " [OPTIONS]" : "", cmd->args ? " " : "",
                cmd->args ? cmd->args : "");
    }
    fprintf(out, "\n%s\n", cmd->summary);
    if (cmd->subs) {
        fprintf(out, "\n%s:\n", strchr(path, ' ') ? "subcommands" : "commands");
        for (size_t i = 0; cmd->subs[i]; i++) {
            const struct cli_command *sub = cmd->subs[i];
            _cleanup_free_ char *left =
                xasprintf("%s%s%s", sub->name, sub->args ? " " : "", sub->args ? sub->args : "");
            help_line(out, left, sub->summary);
        }
        fprintf(out, "`%s %s --help` lists the options of each.\n", path,
                strchr(path, ' ') ? "SUBCOMMAND" : "COMMAND");
    }
    fprintf(out, "\noptions%s:\n", cmd->subs && own_run ? " (without a subcommand)" : "");
    for (size_t i = 0; cmd->options && cmd->options[i].name; i++) {
        const struct cli_option *o = &cmd->options[i];
        char sh[8] = "";
        if (o->short_name)
            snprintf(sh, sizeof(sh), "-%c, ", o->short_name);
        _cleanup_free_ char *left =
            xasprintf("%s--%s%s%s", sh, o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        _cleanup_free_ char *help =
            xasprintf("%s%s", o->help, o->repeat ? " (may be repeated)" : "");
        help_line(out, left, help);
    }
    help_line(out, "-h, --help", "show this help and exit");

    if (cmd->reads && strcmp(cmd->reads, "*") == 0) {
        fprintf(out, "\nserver settings (each also an environment variable; `envhub config` "
                     "prints their values):\n");
    } else if (cmd->reads) {
        fprintf(out, "\nserver settings it reads (each also an environment variable; `envhub "
                     "serve --help` lists all):\n");
    }
    struct config_flag f;
    for (size_t i = 0; cmd->reads && config_flag_get(i, &f); i++)
        if ((strcmp(cmd->reads, "*") == 0 || reads_flag(cmd->reads, f.flag)) &&
            !own_by_name(cmd, f.flag))
            help_setting(out, &f);
    if (cmd->notes)
        fprintf(out, "\n%s", cmd->notes);
}

/* cli/cli_internal.h - shared by the cli/ sources and the cli unit tests only:
 * the table of commands, the option parser that reads it, and the commands.
 *
 * Every command (and subcommand) is a struct cli_command: its own options,
 * the positional arguments it takes, and a run function. The parser builds a
 * getopt_long table from a command's options plus the server settings of
 * config.c's table (--db, --listen, ...), which every command accepts, as
 * they always were; a command's own option of the same name wins (`run
 * --timeout` is run's). -h/--help belongs to every command. */
#ifndef ENVHUB_CLI_INTERNAL_H
#define ENVHUB_CLI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/config.h"
#include "core/err.h"

/* Exit statuses shared by every command. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILED 1 /* the server refused, the build failed, a file is missing */
#define CLI_EXIT_USAGE 2  /* a bad command line */

#define CLI_MAX_OPTIONS 32 /* own options of one command */

/* One option of a command. */
struct cli_option {
    const char *name; /* the long name, without "--" */
    char short_name;  /* a one-letter alias (-f), or 0 */
    const char *arg;  /* the value's name in the help ("NAME"); NULL: a switch */
    const char *help; /* one line */
    bool repeat;      /* may be given more than once, each value counts (--file) */
};

struct cli_ctx;

/* A command, or a subcommand of its parent. */
struct cli_command {
    const char *name;
    const char *args;    /* positional arguments, for the synopsis ("NAME SCRIPT"), or NULL */
    const char *summary; /* one line, lower case */
    const struct cli_option *options; /* own options, ending with {NULL}; NULL: none */
    unsigned min_args, max_args;      /* positional arguments it takes */
    /* The server settings it reads, for its help: flags separated by spaces
     * ("db"), "*" for all of them, NULL for none. */
    const char *reads;
    const char *notes;                     /* more help after the options, or NULL */
    int (*run)(const struct cli_ctx *ctx); /* the exit status; NULL: subcommands only */
    const struct cli_command *const *subs; /* ending with NULL; NULL: none */
};

/* An option met on the command line. */
struct cli_value {
    const struct cli_option *opt;
    const char *value; /* "" for a switch; points into argv */
};

/* A server setting met on the command line: --flag VALUE for config_load. */
struct cli_setting {
    const char *flag;  /* config's name, static */
    const char *value; /* points into argv */
};

/* What cli_parse found. */
struct cli_parsed {
    struct cli_value *values; /* own options, in command-line order */
    size_t n_values;
    struct cli_setting *settings; /* server settings, in command-line order */
    size_t n_settings;
    char **args; /* positional arguments (into argv) */
    size_t n_args;
    bool help; /* -h or --help */
};

enum cli_parse_mode {
    /* Own options and settings anywhere; arguments after "--" are positional. */
    CLI_PARSE_ALL,
    /* Settings (and -h, --help) only, up to the first positional argument,
     * which is left unparsed in args with all after it: the options before a
     * subcommand's name (`envhub --db F key list`, `envhub key --db F list`).
     * A command that has no run function of its own (root, env, key, ...)
     * also takes its own options there (`envhub --version`). */
    CLI_PARSE_LEADING,
};

/* Parse argv[1..argc-1] (argv[0] names @cmd) by @cmd's options, -h/--help and
 * the server settings. argv may be permuted (GNU getopt). ERR_INVALID: an
 * unknown option ("unknown option '--bogus'"), an option without its value,
 * a switch given a value; the positional arguments are not counted here.
 * *ret is filled even on failure; cli_parsed_release() it. Not
 * thread-safe (getopt's state); prints nothing. */
int cli_parse(const struct cli_command *cmd, enum cli_parse_mode mode, int argc, char **argv,
              struct cli_parsed *ret, struct err *err);
void cli_parsed_release(struct cli_parsed *p);

/* The last value of option @name, "" for a switch; NULL when not given. */
const char *cli_value(const struct cli_parsed *p, const char *name);
/* Was option @name given? */
bool cli_given(const struct cli_parsed *p, const char *name);

/* The subcommand @name of @cmd, or NULL. */
const struct cli_command *cli_sub(const struct cli_command *cmd, const char *name);

/* @cmd's help on @out: synopsis, summary, subcommands, own options, the
 * server settings it reads, notes. @path names it ("envhub env create"). */
void cli_help(const struct cli_command *cmd, const char *path, FILE *out);

/* What a command's run function gets. */
struct cli_ctx {
    const struct config *cfg;   /* the settings: defaults, environment, flags */
    const struct cli_parsed *p; /* its options and positional arguments */
    const char *path;           /* "envhub env create", for messages */
    bool db_given;              /* --db was on the command line */
};

/* ---- helpers of the commands (common.c) ---- */

struct buf;
struct client;

/* "PATH: MESSAGE; see `PATH --help`" on stderr (@path: "envhub env
 * create"); returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "envhub: MESSAGE" on stderr; returns CLI_EXIT_FAILED. */
int cli_fail(const struct err *err);
/* client_init() with @ctx's settings; on failure says why on stderr (the
 * caller exits CLI_EXIT_USAGE). client_release() @c in any case. */
int cli_client(const struct cli_ctx *ctx, struct client *c);
/* Read the file @path ("-": stdin) into @out, within its limit
 * (ERR_TOO_LARGE); ERR_INVALID with strerror when it cannot be read. */
int cli_read_file(const char *path, struct buf *out, struct err *err);
#define CLI_MAX_FILE (64 * 1024 * 1024) /* bytes of a script, test, code or input file */

/* The commands, by file. */
extern const struct cli_command cli_cmd_serve;    /* serve.c */
extern const struct cli_command cli_cmd_migrate;  /* serve.c */
extern const struct cli_command cli_cmd_config;   /* serve.c */
extern const struct cli_command cli_cmd_image;    /* serve.c */
extern const struct cli_command cli_cmd_key;      /* keys.c */
extern const struct cli_command cli_cmd_env;      /* env.c */
extern const struct cli_command cli_cmd_packages; /* env.c */
extern const struct cli_command cli_cmd_run;      /* run.c */
extern const struct cli_command cli_cmd_history;  /* history.c */
extern const struct cli_command cli_cmd_audit;    /* history.c */
extern const struct cli_command cli_cmd_node;     /* node.c */
extern const struct cli_command cli_cmd_cluster;  /* node.c */

#endif

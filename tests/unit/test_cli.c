/* tests/unit/test_cli.c - the command line's option tables (cli/opt.c): a
 * command's own options, the server settings every command accepts, the
 * errors that name a bad option, the help that lists every option; the
 * server's address from ENVHUB_URL or ENVHUB_LISTEN (cli/client.c). No
 * server, no network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cli_internal.h"
#include "cli/client.h"
#include "core/cleanup.h"
#include "core/config.h"
#include "core/err.h"
#include "core/xalloc.h"

#include "core/banned.h"

static const struct cli_option demo_options[] = {
    {"base", 0, "IMAGE", "the base image", false},
    {"wait", 0, NULL, "wait for it", false},
    {"follow", 'f', NULL, "follow it", false},
    {"file", 0, "PATH", "an input file", true},
    {"timeout", 0, "SECONDS", "the job's own timeout", false},
    {NULL, 0, NULL, NULL, false},
};

static int demo_run(const struct cli_ctx *ctx)
{
    (void)ctx;
    return 0;
}

static const struct cli_command demo = {
    .name = "demo",
    .args = "NAME [SCRIPT]",
    .summary = "a command to test the parser",
    .options = demo_options,
    .min_args = 1,
    .max_args = 2,
    .reads = "db listen",
    .notes = "some notes\n",
    .run = demo_run,
};

static const struct cli_command *const parent_subs[] = {&demo, NULL};

static const struct cli_command parent = {
    .name = "parent",
    .summary = "a command with a subcommand",
    .subs = parent_subs,
};

/* A NULL-terminated argv of string literals, in a compound literal whose
 * pointers getopt may reorder (the strings stay as they are). */
#define ARGV(...) ((char **)(const char *[]){__VA_ARGS__, NULL})

static int parse(const struct cli_command *cmd, enum cli_parse_mode mode, char **argv,
                 struct cli_parsed *p, struct err *err)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return cli_parse(cmd, mode, argc, argv, p, err);
}

static void own_options_switches_and_positionals_in_any_order(void **state)
{
    (void)state;
    struct cli_parsed p;
    struct err err = ERR_INIT;
    char **argv = ARGV("demo", "name", "--base", "img:1", "--wait", "script.sh", "--file", "a",
                       "--file=b", "-f");

    assert_int_equal(parse(&demo, CLI_PARSE_ALL, argv, &p, &err), 0);
    assert_string_equal(cli_value(&p, "base"), "img:1");
    assert_string_equal(cli_value(&p, "wait"), "");
    assert_true(cli_given(&p, "follow"));
    assert_false(cli_given(&p, "timeout"));
    assert_null(cli_value(&p, "timeout"));
    assert_string_equal(cli_value(&p, "file"), "b"); /* the last one */
    size_t files = 0;
    for (size_t i = 0; i < p.n_values; i++)
        if (strcmp(p.values[i].opt->name, "file") == 0)
            assert_string_equal(p.values[i].value, files++ ? "b" : "a");
    assert_int_equal(files, 2);
    assert_int_equal(p.n_args, 2);
    assert_string_equal(p.args[0], "name");
    assert_string_equal(p.args[1], "script.sh");
    assert_int_equal(p.n_settings, 0);
    assert_false(p.help);
    cli_parsed_release(&p);
}

static void dash_is_an_argument_and_double_dash_ends_the_options(void **state)
{
    (void)state;
    struct cli_parsed p;
    struct err err = ERR_INIT;

    assert_int_equal(parse(&demo, CLI_PARSE_ALL, ARGV("demo", "-", "--", "--wait", "-f"), &p, &err),
                     0);
    assert_int_equal(p.n_args, 3);
    assert_string_equal(p.args[0], "-");
    assert_string_equal(p.args[1], "--wait");
    assert_string_equal(p.args[2], "-f");
    assert_int_equal(p.n_values, 0);
    cli_parsed_release(&p);
}

static void server_settings_are_accepted_and_own_options_win(void **state)
{
    (void)state;
    struct cli_parsed p;
    struct err err = ERR_INIT;
    char **argv = ARGV("demo", "x", "--db", "/tmp/e.db", "--timeout", "5", "--listen=127.0.0.1:9",
                       "--pool-size", "3");

    assert_int_equal(parse(&demo, CLI_PARSE_ALL, argv, &p, &err), 0);
    /* --timeout is demo's own: it does not fall through to SANDBOX_TIMEOUT */
    assert_string_equal(cli_value(&p, "timeout"), "5");
    assert_int_equal(p.n_settings, 3);
    assert_string_equal(p.settings[0].flag, "db");
    assert_string_equal(p.settings[0].value, "/tmp/e.db");
    assert_string_equal(p.settings[1].flag, "listen");
    assert_string_equal(p.settings[1].value, "127.0.0.1:9");
    assert_string_equal(p.settings[2].flag, "pool-size");
    assert_string_equal(p.settings[2].value, "3");
    cli_parsed_release(&p);

    /* a command without a timeout of its own takes it as the setting */
    assert_int_equal(
        parse(&parent, CLI_PARSE_LEADING, ARGV("parent", "--timeout", "7", "demo"), &p, &err), 0);
    assert_int_equal(p.n_settings, 1);
    assert_string_equal(p.settings[0].flag, "timeout");
    assert_string_equal(p.settings[0].value, "7");
    cli_parsed_release(&p);
}

static void expect_error(const struct cli_command *cmd, enum cli_parse_mode mode, char **argv,
                         const char *msg)
{
    struct cli_parsed p;
    struct err err = ERR_INIT;

    assert_int_equal(parse(cmd, mode, argv, &p, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    if (strcmp(err.msg, msg) != 0)
        fail_msg("'%s' instead of '%s'", err.msg, msg);
    cli_parsed_release(&p);
}

static void bad_options_are_named(void **state)
{
    (void)state;
    expect_error(&demo, CLI_PARSE_ALL, ARGV("demo", "x", "--bogus"), "unknown option '--bogus'");
    expect_error(&demo, CLI_PARSE_ALL, ARGV("demo", "--bogus=3", "x"), "unknown option '--bogus'");
    expect_error(&demo, CLI_PARSE_ALL, ARGV("demo", "x", "-x"), "unknown option '-x'");
    expect_error(&demo, CLI_PARSE_ALL, ARGV("demo", "x", "--base"),
                 "option '--base' needs a value");
    expect_error(&demo, CLI_PARSE_ALL, ARGV("demo", "x", "--db"), "option '--db' needs a value");
    expect_error(&demo, CLI_PARSE_ALL, ARGV("demo", "x", "--wait=yes"),
                 "option '--wait' takes no value");
    expect_error(&demo, CLI_PARSE_ALL, ARGV("demo", "x", "--help=me"),
                 "option '--help' takes no value");
    /* an option of another command is unknown here */
    expect_error(&demo, CLI_PARSE_ALL, ARGV("demo", "x", "--env", "e"), "unknown option '--env'");
}

static void help_is_every_commands(void **state)
{
    (void)state;
    struct cli_parsed p;
    struct err err = ERR_INIT;

    assert_int_equal(parse(&demo, CLI_PARSE_ALL, ARGV("demo", "--help"), &p, &err), 0);
    assert_true(p.help);
    cli_parsed_release(&p);
    assert_int_equal(parse(&demo, CLI_PARSE_ALL, ARGV("demo", "x", "-h"), &p, &err), 0);
    assert_true(p.help);
    cli_parsed_release(&p);
    assert_int_equal(parse(&parent, CLI_PARSE_LEADING, ARGV("parent", "-h"), &p, &err), 0);
    assert_true(p.help);
    cli_parsed_release(&p);
}

static void leading_parse_stops_at_the_subcommand(void **state)
{
    (void)state;
    struct cli_parsed p;
    struct err err = ERR_INIT;
    char **argv = ARGV("parent", "--db", "f.db", "demo", "--wait", "x");

    assert_int_equal(parse(&parent, CLI_PARSE_LEADING, argv, &p, &err), 0);
    assert_int_equal(p.n_settings, 1);
    assert_string_equal(p.settings[0].flag, "db");
    assert_int_equal(p.n_args, 3); /* the rest, untouched */
    assert_string_equal(p.args[0], "demo");
    assert_string_equal(p.args[1], "--wait");
    assert_ptr_equal(p.args[0], argv[3]);
    assert_ptr_equal(cli_sub(&parent, "demo"), &demo);
    assert_null(cli_sub(&parent, "nope"));
    cli_parsed_release(&p);

    /* a command that runs itself does not take its options before a subcommand */
    expect_error(&demo, CLI_PARSE_LEADING, ARGV("demo", "--wait", "x"), "unknown option '--wait'");
}

/* The help of @cmd as text; the caller frees. */
static char *help_text(const struct cli_command *cmd, const char *path)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    cli_help(cmd, path, f);
    long len = ftell(f);
    assert_true(len > 0);
    char *text = xcalloc((size_t)len + 1, 1);
    rewind(f);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return text;
}

static void help_lists_every_option_and_the_settings_read(void **state)
{
    (void)state;
    char *text = help_text(&demo, "envhub demo");

    assert_non_null(strstr(text, "usage: envhub demo [OPTIONS] NAME [SCRIPT]\n"));
    assert_non_null(strstr(text, "a command to test the parser"));
    assert_non_null(strstr(text, "  --base IMAGE"));
    assert_non_null(strstr(text, "  --wait "));
    assert_non_null(strstr(text, "  -f, --follow "));
    assert_non_null(strstr(text, "an input file (may be repeated)"));
    assert_non_null(strstr(text, "  -h, --help "));
    assert_non_null(strstr(text, "  --db VALUE "));
    assert_non_null(strstr(text, "[ENVHUB_DB; default envhub.db]"));
    assert_non_null(strstr(text, "  --listen VALUE "));
    assert_null(strstr(text, "--pool-size"));
    assert_non_null(strstr(text, "\nsome notes\n"));
    /* one line per option: the descriptions start in one column */
    const char *line = strstr(text, "  --base IMAGE");
    assert_int_equal(strstr(line, "the base image") - line, 28);
    free(text);

    _cleanup_free_ char *ptext = help_text(&parent, "envhub parent");
    assert_non_null(strstr(ptext, "usage: envhub parent SUBCOMMAND [OPTIONS] [ARGS]\n"));
    assert_non_null(strstr(ptext, "  demo NAME [SCRIPT]"));
    assert_non_null(strstr(ptext, "`envhub parent SUBCOMMAND --help`"));
}

/* Every command of envhub: its help names each of its options and each
 * subcommand; option names are unique, -h is nobody's, and its table builds. */
static void check_command(const struct cli_command *cmd, const char *path)
{
    _cleanup_free_ char *text = help_text(cmd, path);
    size_t n = 0;

    for (size_t i = 0; cmd->options && cmd->options[i].name; i++, n++) {
        const struct cli_option *o = &cmd->options[i];
        char want[64];
        snprintf(want, sizeof(want), "--%s%s", o->name, o->arg ? " " : "");
        if (!strstr(text, want))
            fail_msg("the help of '%s' does not list %s", path, want);
        assert_true(o->short_name != 'h');
        assert_non_null(o->help);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(cmd->options[k].name, o->name);
    }
    assert_true(n <= CLI_MAX_OPTIONS);
    assert_non_null(cmd->summary);
    assert_true(cmd->min_args <= cmd->max_args);
    struct cli_parsed p;
    struct err err = ERR_INIT;
    char *argv[] = {(char *)cmd->name, (char *)"--help", NULL};
    assert_int_equal(cli_parse(cmd, CLI_PARSE_ALL, 2, argv, &p, &err), 0);
    assert_true(p.help);
    cli_parsed_release(&p);
    for (size_t i = 0; cmd->subs && cmd->subs[i]; i++) {
        if (!strstr(text, cmd->subs[i]->name))
            fail_msg("the help of '%s' does not name '%s'", path, cmd->subs[i]->name);
        char sub[128];
        snprintf(sub, sizeof(sub), "%s %s", path, cmd->subs[i]->name);
        check_command(cmd->subs[i], sub);
    }
}

static void every_command_lists_its_options(void **state)
{
    (void)state;
    static const struct cli_command *const all[] = {
        &cli_cmd_serve, &cli_cmd_migrate, &cli_cmd_config,   &cli_cmd_image,   &cli_cmd_key,
        &cli_cmd_env,   &cli_cmd_run,     &cli_cmd_packages, &cli_cmd_history, &cli_cmd_audit,
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        char path[64];
        snprintf(path, sizeof(path), "envhub %s", all[i]->name);
        check_command(all[i], path);
    }
    /* serve lists every server setting */
    _cleanup_free_ char *text = help_text(&cli_cmd_serve, "envhub serve");
    struct config_flag f;
    for (size_t i = 0; config_flag_get(i, &f); i++) {
        char want[64];
        snprintf(want, sizeof(want), "--%s VALUE", f.flag);
        if (!strstr(text, want))
            fail_msg("serve's help does not list %s", want);
    }
}

/* ---- the server's address ---- */

static void client_at(const char *url, const char *listen, int rc, const char *host, int port,
                      const char *authority_or_msg)
{
    struct config cfg = {0};
    struct client c;
    struct err err = ERR_INIT;

    cfg.listen = (char *)listen;
    if (url)
        setenv("ENVHUB_URL", url, 1);
    else
        unsetenv("ENVHUB_URL");
    assert_int_equal(client_init(&c, &cfg, &err), rc);
    if (rc == 0) {
        assert_string_equal(c.host, host);
        assert_int_equal(c.port, port);
        assert_string_equal(c.authority, authority_or_msg);
    } else if (!strstr(err.msg, authority_or_msg)) {
        fail_msg("'%s' does not say '%s'", err.msg, authority_or_msg);
    }
    client_release(&c);
    unsetenv("ENVHUB_URL");
}

static void the_server_is_envhub_url_or_the_listen_address(void **state)
{
    (void)state;
    client_at("http://127.0.0.1:9000", "127.0.0.1:8000", 0, "127.0.0.1", 9000, "127.0.0.1:9000");
    client_at("http://Envhub.Example:81/ignored/path", "x", 0, "envhub.example", 81,
              "envhub.example:81");
    client_at("http://[::1]:8000/", "x", 0, "::1", 8000, "[::1]:8000");
    client_at("http://localhost", "x", 0, "localhost", 80, "localhost:80");
    client_at(NULL, "127.0.0.1:8123", 0, "127.0.0.1", 8123, "127.0.0.1:8123");
    client_at("", "0.0.0.0:8000", 0, "0.0.0.0", 8000, "0.0.0.0:8000");
    client_at("https://127.0.0.1:1", "x", -1, NULL, 0, "ENVHUB_URL: 'https://127.0.0.1:1' must");
    client_at("ftp://127.0.0.1", "x", -1, NULL, 0, "ENVHUB_URL");
    client_at("http://127.0.0.1:99999", "x", -1, NULL, 0, "port");
    client_at("http://user@127.0.0.1", "x", -1, NULL, 0, "user");
    client_at(NULL, "bad host:1", -1, NULL, 0, "ENVHUB_LISTEN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(own_options_switches_and_positionals_in_any_order),
        cmocka_unit_test(dash_is_an_argument_and_double_dash_ends_the_options),
        cmocka_unit_test(server_settings_are_accepted_and_own_options_win),
        cmocka_unit_test(bad_options_are_named),
        cmocka_unit_test(help_is_every_commands),
        cmocka_unit_test(leading_parse_stops_at_the_subcommand),
        cmocka_unit_test(help_lists_every_option_and_the_settings_read),
        cmocka_unit_test(every_command_lists_its_options),
        cmocka_unit_test(the_server_is_envhub_url_or_the_listen_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

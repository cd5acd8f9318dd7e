/* core/main.c - the envhub command: opens the modules a command needs, runs
 * it, closes them in reverse order. The only place that sees every module
 * and the only place that exits. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder/builder.h"
#include "catalog/catalog.h"
#include "core/cleanup.h"
#include "core/config.h"
#include "core/log.h"
#include "engine/engine.h"
#include "executor/executor.h"
#include "web/web.h"

#include "core/banned.h"

#define ENVHUB_VERSION "0.1.0"

static void usage(FILE *out)
{
    fprintf(
        out,
        "envhub %s - curated Python environments and sandboxed execution\n"
        "\n"
        "usage: envhub [--flag VALUE]... COMMAND [ARGS]\n"
        "\n"
        "commands:\n"
        "  serve                    serve the API on ENVHUB_LISTEN (127.0.0.1:8000)\n"
        "  migrate                  create or upgrade the catalog (ENVHUB_DB) and exit\n"
        "  config                   print every setting with its current value\n"
        "  image exists REF         exit 0 when the engine has image REF, 1 when not\n"
        "  image import REF TAR     import a root filesystem tar as image REF\n"
        "  key create --name NAME --role admin|curator|runner|auditor\n"
        "             [--max-concurrent N] [--max-per-minute N]\n"
        "                           make an API key (on the catalog file); prints its secret once\n"
        "  key list | key revoke NAME\n"
        "  history prune --before DATE  delete executions finished before DATE (on the\n"
        "                           catalog file), keeping a checkpoint of the audit chain\n"
        "  audit verify --db PATH   check the audit chain of a catalog file (exit 1: broken)\n"
        "\n"
        "client commands (talk to the server at ENVHUB_URL, default http://ENVHUB_LISTEN):\n"
        "  env create NAME SCRIPT [--base IMAGE] [--description TEXT] [--python VER]\n"
        "             [--test TEST.py] [--policy JSON] [--wait]\n"
        "  env list | env show NAME | env logs NAME [-f] | env rm NAME\n"
        "  env rebuild NAME [SCRIPT] [--base IMAGE] [--test TEST.py | --no-test]\n"
        "              [--policy JSON] [--wait]\n"
        "                           (--test: an acceptance check run before the version serves)\n"
        "  env diff NAME [FROM [TO]]  packages added, removed, changed and the script diff\n"
        "  env deprecate|retire NAME [--replacement OTHER] | env reinstate NAME\n"
        "  env check [NAME]         base images that drifted (exit 1), with the rebuild to run\n"
        "  packages NAME [--version SPEC] [--manager pip|dpkg] [--current]\n"
        "                           environments and versions carrying a package (SPEC: \"<2\")\n"
        "  run [--env NAME] [--file PATH]... [--out DIR] [--timeout S] CODE_FILE|-\n"
        "                           run code; exits with its exit code (124: timeout)\n"
        "  history [--env NAME] [--status S] [--principal P] [--since DATE] [--until DATE]\n"
        "          [--q WORDS] [--limit N] [--format table|json|csv]\n"
        "  history show ID | history stats [--group environment|status|day] [filters]\n"
        "  audit verify             check the audit chain through the server (exit 1: broken)\n"
        "  version                  print the version\n"
        "\n"
        "Every setting is a flag (--listen 127.0.0.1:9000) or an environment variable\n"
        "(ENVHUB_LISTEN); `envhub config` lists them.\n",
        ENVHUB_VERSION);
}

static int fail(const struct err *err)
{
    fprintf(stderr, "envhub: %s\n", err->msg);
    return 1;
}

static int cmd_migrate(const struct config *cfg)
{
    struct err err = ERR_INIT;
    _cleanup_(catalog_closep) struct catalog *cat = NULL;
    int version = 0;

    if (catalog_open(cfg->db_path, &cat, &err) < 0 ||
        catalog_schema_version(cat, &version, &err) < 0)
        return fail(&err);
    printf("catalog '%s' is at schema version %d\n", cfg->db_path, version);
    return 0;
}

static int cmd_image(const struct config *cfg, int argc, char **argv)
{
    struct err err = ERR_INIT;
    struct engine *e = NULL;
    int rc = 1;

    if (argc < 2 || (strcmp(argv[0], "exists") == 0 && argc != 2) ||
        (strcmp(argv[0], "import") == 0 && argc != 3)) {
        fprintf(stderr, "usage: envhub image exists REF | envhub image import REF TAR\n");
        return 2;
    }
    if (engine_open(cfg->docker_host, &e, &err) < 0)
        return fail(&err);
    if (strcmp(argv[0], "exists") == 0) {
        struct engine_image_info info = {0};
        if (engine_image_inspect(e, argv[1], &info, &err) == 0) {
            printf("%s %s\n", argv[1], info.id);
            rc = 0;
        } else if (err.code != ERR_NOT_FOUND) {
            fail(&err);
            rc = 2;
        }
        engine_image_info_release(&info);
    } else if (strcmp(argv[0], "import") == 0) {
        static const char *const changes[] = {"CMD [\"python3\"]", "WORKDIR /workspace",
                                              "ENV LANG=C.UTF-8", NULL};
        _cleanup_close_ int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            err_errno(&err, ERR_INVALID, errno, "cannot open '%s'", argv[2]);
            rc = fail(&err);
        } else if (engine_image_import(e, fd, argv[1], changes, &err) < 0) {
            rc = fail(&err);
        } else {
            printf("imported %s\n", argv[1]);
            rc = 0;
        }
    } else {
        fprintf(stderr, "envhub image: unknown subcommand '%s'\n", argv[0]);
        rc = 2;
    }
    engine_close(e);
    return rc;
}

static void refresh_pools(void *executor)
{
    executor_pool_refresh(executor);
}

/* An acceptance check runs in the sandbox a job of that version would get:
 * the executor reads the policy, the builder makes the container. */
static int acceptance_sandbox(void *ctx, const char *policy, struct builder_sandbox *ret,
                              struct err *err)
{
    struct exec_limits l;
    if (executor_policy_parse(ctx, policy, &l, NULL, err) < 0)
        return -1;
    *ret = (struct builder_sandbox){
        .memory = l.memory,
        .cpu_millis = l.cpu_millis,
        .pids = l.pids,
        .workspace_size = l.workspace_size,
        .timeout_s = l.timeout_max,
        .network = l.network,
    };
    return 0;
}

static int cmd_serve(const struct config *cfg)
{
    struct err err = ERR_INIT;
    struct catalog *cat = NULL;
    struct engine *e = NULL;
    struct executor *x = NULL;
    struct builder *b = NULL;
    struct web *w = NULL;
    sigset_t stop_signals;
    int sig = 0, rc = 1;

    /* Every thread started below inherits the blocked set; only sigwait sees them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (catalog_open(cfg->db_path, &cat, &err) < 0) {
        fail(&err);
        goto out;
    }
    if (engine_open(cfg->docker_host, &e, &err) < 0) {
        fprintf(stderr, "envhub: %s\nenvhub: is dockerd running? `make engine` starts it.\n",
                err.msg);
        goto out;
    }
    if (executor_open(cfg, e, cat, &x, &err) < 0) {
        fail(&err);
        goto out;
    }
    if (builder_open(cfg, e, cat, acceptance_sandbox, (void *)cfg, &b, &err) < 0) {
        fail(&err);
        goto out;
    }
    /* the warm pools follow environments' versions */
    builder_set_listener(b, refresh_pools, x);
    struct web_deps deps = {.cfg = cfg, .catalog = cat, .engine = e, .executor = x, .builder = b};
    if (web_start(&deps, &w, &err) < 0) {
        fail(&err);
        goto out;
    }
    log_info("envhub: serving on %s://%s (catalog %s, engine API %s, instance %s)",
             cfg->tls_cert[0] ? "https" : "http", cfg->listen, cfg->db_path, engine_api_version(e),
             catalog_instance_id(cat));

    sigwait(&stop_signals, &sig);
    log_info("envhub: %s received, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
out:
    if (x)
        executor_shutdown(x); /* ends running jobs so the server can stop */
    if (b)
        builder_shutdown(b); /* cancels builds, wakes log followers */
    web_stop(w);
    builder_close(b);
    executor_close(x);
    engine_close(e);
    catalog_close(cat);
    if (rc == 0)
        log_info("envhub: stopped");
    return rc;
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct err err = ERR_INIT;
    int rc;

    /* A job's output (up to megabytes) passes through a few short-lived
     * buffers on many threads. glibc would serve them from per-thread arenas
     * and keep the memory after free; mapped on their own, they go back to
     * the system when freed, and few arenas keep the heap compact. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_ARENA_MAX, 2);
    /* config_load takes --db out of argv: `audit verify --db PATH` reads that file itself */
    bool db_given = false;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--db") == 0 || strncmp(argv[i], "--db=", 5) == 0)
            db_given = true;

    if (config_load(&cfg, &argc, argv, &err) < 0) {
        config_release(&cfg);
        return fail(&err);
    }
    log_set_level((enum log_level)log_level_parse(cfg.log_level));
    if (argc < 2) {
        usage(stderr);
        config_release(&cfg);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        rc = cmd_serve(&cfg);
    else if (strcmp(cmd, "migrate") == 0)
        rc = cmd_migrate(&cfg);
    else if (strcmp(cmd, "config") == 0) {
        config_print(&cfg, stdout);
        rc = 0;
    } else if (strcmp(cmd, "env") == 0 || strcmp(cmd, "run") == 0 || strcmp(cmd, "packages") == 0)
        rc = web_cli_main(&cfg, argc - 1, argv + 1);
    else if (strcmp(cmd, "key") == 0)
        rc = web_key_cli(&cfg, argc - 2, argv + 2);
    else if (strcmp(cmd, "history") == 0 || strcmp(cmd, "audit") == 0)
        rc = web_history_cli_main(&cfg, argc - 1, argv + 1, db_given);
    else if (strcmp(cmd, "image") == 0)
        rc = cmd_image(&cfg, argc - 2, argv + 2);
    else if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("envhub %s\n", ENVHUB_VERSION);
        rc = 0;
    } else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        rc = 0;
    } else {
        fprintf(stderr, "envhub: unknown command '%s'\n\n", cmd);
        usage(stderr);
        rc = 2;
    }
    config_release(&cfg);
    return rc;
}

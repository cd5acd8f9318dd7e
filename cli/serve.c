/* cli/serve.c - the commands that open envhub's modules themselves: `serve`
 * (every module, until SIGINT or SIGTERM), `migrate` (the catalog),
 * `config` (the settings) and `image` (the engine). Each opens what it
 * needs and closes it in reverse order. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "builder/builder.h"
#include "catalog/catalog.h"
#include "cli/cli_internal.h"
#include "cluster/cluster.h"
#include "core/cleanup.h"
#include "core/config.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "engine/engine.h"
#include "executor/executor.h"
#include "web/web.h"

#include "core/banned.h"

/* ---- serve ---- */

static void refresh_pools(void *executor)
{
    executor_pool_refresh(executor);
}

static int cmd_serve(const struct cli_ctx *ctx)
{
    const struct config *cfg = ctx->cfg;
    struct err err = ERR_INIT;
    struct catalog *cat = NULL;
    struct engine *e = NULL;
    struct executor *x = NULL;
    struct builder *b = NULL;
    struct web *w = NULL;
    struct cluster *cl = NULL;
    sigset_t stop_signals;
    int sig = 0, rc = CLI_EXIT_FAILED;

    /* Every thread started below inherits the blocked set; only sigwait sees them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (catalog_open(cfg->db_path, &cat, &err) < 0) {
        cli_fail(&err);
        goto out;
    }
    catalog_set_query_budget(cat, cfg->query_budget_ms);
    if (engine_open(cfg->docker_host, &e, &err) < 0) {
        fprintf(stderr, "envhub: %s\nenvhub: is dockerd running? `make engine` starts it.\n",
                err.msg);
        goto out;
    }
    if (executor_open(cfg, e, cat, &x, &err) < 0) {
        cli_fail(&err);
        goto out;
    }
    if (builder_open(cfg, e, cat, &b, &err) < 0) {
        cli_fail(&err);
        goto out;
    }
    if (cfg->cluster[0]) {
        _cleanup_free_ char *key = NULL;
        size_t key_len = 0;
        if (cluster_key_read(cfg->node_key_file, &key, &key_len, &err) < 0 ||
            cluster_open(key, key_len, cfg->node_timeout * 1000, &cl, &err) < 0) {
            cli_fail(&err);
            goto out;
        }
        executor_use_cluster(x, cl);
        _cleanup_(strv_freep) char **drained = NULL;
        if (catalog_node_drains(cat, &drained, &err) < 0) {
            cli_fail(&err);
            goto out;
        }
        for (size_t i = 0; drained && drained[i]; i++) {
            cluster_drain_known(cl, drained[i]);
            log_info("envhub: node '%s' stays drained (envhub cluster resume %s)", drained[i],
                     drained[i]);
        }
        log_info("envhub: cluster mode (%s): jobs run on the nodes that report here; a node is "
                 "lost after %lld s of silence",
                 cfg->cluster, (long long)cfg->node_timeout);
    }
    /* the warm pools follow environments' versions */
    builder_set_listener(b, refresh_pools, x);
    struct web_deps deps = {
        .cfg = cfg, .catalog = cat, .engine = e, .executor = x, .builder = b, .cluster = cl};
    if (web_start(&deps, &w, &err) < 0) {
        cli_fail(&err);
        goto out;
    }
    log_info("envhub: serving on %s://%s (catalog %s, engine API %s, instance %s)",
             cfg->tls_cert[0] ? "https" : "http", cfg->listen, cfg->db_path, engine_api_version(e),
             catalog_instance_id(cat));

    sigwait(&stop_signals, &sig);
    log_info("envhub: %s received, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = CLI_EXIT_OK;
out:
    if (cl)
        cluster_shutdown(cl); /* jobs on nodes end interrupted; node polls return */
    if (x)
        executor_shutdown(x); /* ends running jobs so the server can stop */
    if (b)
        builder_shutdown(b); /* cancels builds, wakes log followers */
    web_stop(w);
    builder_close(b);
    executor_close(x);
    cluster_close(cl);
    engine_close(e);
    catalog_close(cat);
    if (rc == CLI_EXIT_OK)
        log_info("envhub: stopped");
    return rc;
}

const struct cli_command cli_cmd_serve = {
    .name = "serve",
    .summary = "serve the API and the UI on ENVHUB_LISTEN (127.0.0.1:8000) until SIGINT or "
               "SIGTERM",
    .reads = "*",
    .run = cmd_serve,
};

/* ---- migrate, config ---- */

static int cmd_migrate(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    _cleanup_(catalog_closep) struct catalog *cat = NULL;
    int version = 0;

    if (catalog_open(ctx->cfg->db_path, &cat, &err) < 0 ||
        catalog_schema_version(cat, &version, &err) < 0)
        return cli_fail(&err);
    printf("catalog '%s' is at schema version %d\n", ctx->cfg->db_path, version);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_migrate = {
    .name = "migrate",
    .summary = "create or upgrade the catalog (ENVHUB_DB) and exit",
    .reads = "db",
    .run = cmd_migrate,
};

static int cmd_config(const struct cli_ctx *ctx)
{
    config_print(ctx->cfg, stdout);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_config = {
    .name = "config",
    .summary = "print every setting with its current value (a Markdown table)",
    .reads = "*",
    .run = cmd_config,
};

/* ---- image ---- */

static int image_exists(const struct cli_ctx *ctx)
{
    struct err err = ERR_INIT;
    struct engine *e = NULL;
    struct engine_image_info info = {0};
    const char *ref = ctx->p->args[0];
    int rc = CLI_EXIT_FAILED;

    if (engine_open(ctx->cfg->docker_host, &e, &err) < 0)
        return cli_fail(&err);
    if (engine_image_inspect(e, ref, &info, &err) == 0) {
        printf("%s %s\n", ref, info.id);
        rc = CLI_EXIT_OK;
    } else if (err.code != ERR_NOT_FOUND) {
        cli_fail(&err);
        rc = CLI_EXIT_USAGE; /* neither yes nor no */
    }
    engine_image_info_release(&info);
    engine_close(e);
    return rc;
}

static int image_import(const struct cli_ctx *ctx)
{
    static const char *const changes[] = {"CMD [\"python3\"]", "WORKDIR /workspace",
                                          "ENV LANG=C.UTF-8", NULL};
    struct err err = ERR_INIT;
    struct engine *e = NULL;
    const char *ref = ctx->p->args[0], *tar = ctx->p->args[1];
    int rc = CLI_EXIT_FAILED;

    _cleanup_close_ int fd = open(tar, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_errno(&err, ERR_INVALID, errno, "cannot open '%s'", tar);
        return cli_fail(&err);
    }
    if (engine_open(ctx->cfg->docker_host, &e, &err) < 0)
        return cli_fail(&err);
    if (engine_image_import(e, fd, ref, changes, &err) < 0) {
        cli_fail(&err);
    } else {
        printf("imported %s\n", ref);
        rc = CLI_EXIT_OK;
    }
    engine_close(e);
    return rc;
}

static const struct cli_command image_exists_cmd = {
    .name = "exists",
    .args = "REF",
    .summary = "exit 0 when the engine has image REF (printing its id), 1 when not, 2 on error",
    .min_args = 1,
    .max_args = 1,
    .reads = "docker-host",
    .run = image_exists,
};

static const struct cli_command image_import_cmd = {
    .name = "import",
    .args = "REF TAR",
    .summary = "import a root filesystem tar as image REF (the bootstrapped base image)",
    .min_args = 2,
    .max_args = 2,
    .reads = "docker-host",
    .run = image_import,
};

static const struct cli_command *const image_subs[] = {&image_exists_cmd, &image_import_cmd, NULL};

const struct cli_command cli_cmd_image = {
    .name = "image",
    .summary = "images in the Docker engine (used by `make base-image`)",
    .reads = "docker-host",
    .subs = image_subs,
};

/* web/web.h - envhub's HTTP server (civetweb): routing, request validation,
 * JSON handlers, and the mapping of errors to HTTP statuses. The only module
 * that speaks HTTP to clients. */
#ifndef ENVHUB_WEB_H
#define ENVHUB_WEB_H

#include "builder/builder.h"
#include "catalog/catalog.h"
#include "core/config.h"
#include "core/err.h"
#include "engine/engine.h"
#include "executor/executor.h"

struct web;

/* What the handlers use; all borrowed, all must outlive the server. */
struct web_deps {
    const struct config *cfg;
    struct catalog *catalog;
    struct engine *engine;
    struct executor *executor;
    struct builder *builder;
};

/* Listen on cfg->listen and serve until web_stop(). *ret belongs to the caller. */
int web_start(const struct web_deps *deps, struct web **ret, struct err *err);
/* Stop listening and wait for the handlers in progress; NULL is fine. */
void web_stop(struct web *w);

/* The command line client of a running server: argv[0] is "env" or "run"
 * (see web/cli.c). Returns the process exit status. */
int web_cli_main(const struct config *cfg, int argc, char **argv);

/* `envhub key create|list|revoke`, straight on the catalog file. */
int web_key_cli(const struct config *cfg, int argc, char **argv);

/* `envhub history ...` and `envhub audit verify` (web/cli_history.c); argv[0]
 * is "history" or "audit". @db_given: --db was on the command line, so
 * `audit verify` reads that catalog file instead of asking the server.
 * Returns the process exit status. */
int web_history_cli_main(const struct config *cfg, int argc, char **argv, bool db_given);

/* The HTTP status for an error code (one table for the whole API). */
int web_status_for_err(enum err_code code);

#endif

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
    struct cluster *cluster; /* cluster mode (ENVHUB_CLUSTER); NULL: one engine */
};

/* Listen on cfg->listen and serve until web_stop(). *ret belongs to the caller. */
int web_start(const struct web_deps *deps, struct web **ret, struct err *err);
/* Stop listening and wait for the handlers in progress; NULL is fine. */
void web_stop(struct web *w);

/* Make an API key named @name with @role on the catalog (the API's POST /keys
 * and `envhub key create`); @max_concurrent and @max_per_minute -1 for the
 * role's quotas. *ret_secret (shown once, never stored: only its sha256 is)
 * belongs to the caller. ERR_INVALID for a bad name, ERR_CONFLICT when the
 * name is taken. */
int web_key_issue(struct catalog *cat, const char *name, enum role role, int64_t max_concurrent,
                  int64_t max_per_minute, const char *created_by, char **ret_secret,
                  struct err *err);

/* What GET /audit/verify answers for @v, as JSON text (indented), for a
 * check made without the server (`envhub audit verify --db`). The caller
 * frees it. */
char *web_verify_text(const struct history_verify *v);

/* The HTTP status for an error code (one table for the whole API). */
int web_status_for_err(enum err_code code);

#endif

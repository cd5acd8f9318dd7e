/* catalog/catalog.h - envhub's SQLite catalog: environments, builds and every
 * execution. The only module that speaks SQL.
 *
 * catalog_open() opens (creating if missing) the database in WAL mode with a
 * busy timeout and foreign keys on, then applies the migrations compiled
 * into the binary (migrations/NNNN_name.sql, in order, each in its own
 * transaction, recorded in schema_migrations).
 *
 * One struct catalog is shared by all threads: it serialises access inside.
 * Times are milliseconds since the epoch (UTC). Strings returned in structs
 * belong to the struct; the matching _release() frees them. */
#ifndef ENVHUB_CATALOG_H
#define ENVHUB_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct catalog;

/* Open @path (":memory:" works) and migrate it. *ret belongs to the caller.
 * ERR_UNAVAILABLE when the file cannot be opened or is locked, ERR_INTERNAL
 * when a migration fails (its name and SQLite's message in err). */
int catalog_open(const char *path, struct catalog **ret, struct err *err);
void catalog_close(struct catalog *cat); /* NULL is fine */
static inline void catalog_closep(struct catalog **cat)
{
    catalog_close(*cat);
}

/* The highest migration applied. */
int catalog_schema_version(struct catalog *cat, int *ret, struct err *err);
/* A random id made when the catalog was created, stable across restarts:
 * containers carry it as a label so a restarted server knows its own.
 * Borrowed until catalog_close(). */
const char *catalog_instance_id(const struct catalog *cat);

/* ---- executions ---- */

enum exec_status {
    EXEC_QUEUED = 0,
    EXEC_RUNNING,
    EXEC_SUCCEEDED,
    EXEC_FAILED,
    EXEC_TIMEOUT,
    EXEC_OOM,
    EXEC_ERROR,
    EXEC_INTERRUPTED,
};
const char *exec_status_name(enum exec_status s);
/* -1 when @name is not a status. */
int exec_status_parse(const char *name);

enum file_direction { FILE_IN = 0, FILE_OUT = 1 };

struct file_entry {
    enum file_direction direction;
    char *path;           /* relative to the workspace */
    int64_t size;
    char sha256[65];
};

struct execution_record {
    char *id;                 /* "ex_" + 24 hex characters */
    char *environment;        /* NULL: the default image */
    int64_t environment_version; /* 0 when no environment */
    char *image;              /* the image reference used */
    char *image_id;           /* "sha256:..." or NULL when not known */
    char *principal;          /* who ran it */
    char *client_addr;
    char *code;
    char code_sha256[65];
    int64_t timeout_s;
    enum exec_status status;
    int exit_code;            /* -1 when none */
    char *error;              /* NULL when none */
    int64_t queued_at, started_at, finished_at; /* 0 when not yet */
    int64_t duration_ms;      /* of the user's code; -1 when it did not run */
    char *stdout_text;        /* as stored: capped */
    char *stderr_text;
    bool stdout_truncated, stderr_truncated;
    struct file_entry *files;
    size_t n_files;
};
void execution_record_release(struct execution_record *rec);

/* Insert a new execution (status queued or running) with its input file
 * manifest. @rec's id must be unique (ERR_CONFLICT otherwise). */
int catalog_execution_insert(struct catalog *cat, const struct execution_record *rec,
                             struct err *err);
/* Record the outcome: status, exit code, error, times, duration, stdout and
 * stderr with their truncation flags, image id, and the output files of
 * @rec (those with direction FILE_OUT), in one transaction. */
int catalog_execution_finish(struct catalog *cat, const struct execution_record *rec,
                             struct err *err);
/* Mark one execution running with its start time. */
int catalog_execution_start(struct catalog *cat, const char *id, int64_t started_at,
                            struct err *err);
/* Fill *ret with execution @id and its file manifest; ERR_NOT_FOUND. */
int catalog_execution_get(struct catalog *cat, const char *id, struct execution_record *ret,
                          struct err *err);
/* Start-up recovery: every execution still queued or running was cut off by
 * a stop; mark them interrupted at @now. *ret_count says how many. */
int catalog_recover_executions(struct catalog *cat, int64_t now, int *ret_count,
                               struct err *err);
/* Number of executions (all statuses). */
int catalog_execution_count(struct catalog *cat, int64_t *ret, struct err *err);

#endif

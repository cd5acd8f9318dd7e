/* catalog/catalog_internal.h - shared by catalog.c, migrate.c and the
 * catalog's own unit tests; nobody else includes it. SQLite types may appear
 * here, never in catalog.h. */
#ifndef ENVHUB_CATALOG_INTERNAL_H
#define ENVHUB_CATALOG_INTERNAL_H

#include <sqlite3.h>

#include "core/embed.h"
#include "core/err.h"

/* The migrations compiled into the binary from migrations/NNNN_name.sql
 * (build/gen/migrations_embedded.c, made by core/embed.sh), in file name
 * order, ended by an entry whose path is NULL. */
extern const struct embedded_file migrations_embedded[];

/* Apply the pending migrations of @files (ended by a NULL path) to @db.
 *
 * Each file's basename must read NNNN_name.sql (four digits, not 0000; the
 * name of lower-case letters, digits and '_'), and the numbers must increase
 * strictly: a malformed name, a duplicate or an out-of-order number is
 * refused (ERR_INTERNAL) before anything is applied. A database that records
 * a version above the last of @files belongs to a newer build and is refused
 * (ERR_UNAVAILABLE).
 *
 * schema_migrations(version, name, applied_at) is created if missing. Each
 * migration not yet recorded there runs in its own BEGIN IMMEDIATE
 * transaction, which also records it; on failure that transaction is rolled
 * back, the migrations before it stay applied and err names the migration
 * with SQLite's message (ERR_INTERNAL; ERR_UNAVAILABLE when the database is
 * busy or locked). A migration may not begin, commit or roll back a
 * transaction itself. Foreign key enforcement is off while a migration runs
 * (so that tables can be rebuilt) and restored afterwards; a migration that
 * leaves a foreign key violation fails.
 *
 * @db must not be inside a transaction. Not thread-safe: the caller owns @db. */
int catalog_migrate_db(sqlite3 *db, const struct embedded_file *files, struct err *err);

/* The highest version recorded in schema_migrations; 0 when the table is
 * missing or empty. */
int catalog_migrate_version(sqlite3 *db, int *ret, struct err *err);

/* Fill err with "<fmt...>: <SQLite's message for @db>" (sqlite3_errstr(@rc)
 * when @db is NULL) and return -1. @code ERR_OK translates @rc:
 * SQLITE_CONSTRAINT_UNIQUE and _PRIMARYKEY are ERR_CONFLICT, SQLITE_BUSY and
 * SQLITE_LOCKED (any extended form) ERR_UNAVAILABLE, everything else
 * ERR_INTERNAL; any other @code is used as given. Call it before anything
 * else runs on @db (a ROLLBACK replaces the message). */
int catalog_sqlite_err(sqlite3 *db, int rc, enum err_code code, struct err *err, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));

#endif

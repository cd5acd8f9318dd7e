/* tests/unit/test_migrate.c - the migration runner (catalog/migrate.c) on
 * in-memory databases: the embedded migrations, upgrades from an older
 * version, failures that roll back, and file names it refuses. */
#include <stdbool.h>

#include "tests/unit/catalog_fixture.h"

#include "core/banned.h"

#define MIG(p, sql)                                                                                \
    {                                                                                              \
        (p), (const unsigned char *)(sql), sizeof(sql) - 1                                         \
    }
#define MIG_END                                                                                    \
    {                                                                                              \
        NULL, NULL, 0                                                                              \
    }

static const struct embedded_file two_first[] = {
    MIG("migrations/0001_first.sql", "CREATE TABLE t1 (x INTEGER);"),
    MIG_END,
};

static const struct embedded_file two_both[] = {
    MIG("migrations/0001_first.sql", "CREATE TABLE t1 (x INTEGER);"),
    MIG("migrations/0002_second.sql", "CREATE TABLE t2 (y TEXT); ALTER TABLE t1 ADD COLUMN z;"),
    MIG_END,
};

static sqlite3 *db_open(void)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    return db;
}

static bool table_exists(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    bool found;

    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                        " AND name = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

static int version_of(sqlite3 *db)
{
    struct err err = ERR_INIT;
    int v = -1;

    assert_int_equal(catalog_migrate_version(db, &v, &err), 0);
    return v;
}

static void migrate_applies_every_embedded_migration_to_an_empty_database(void **state)
{
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(version_of(db), 0);
    assert_int_equal(catalog_migrate_db(db, migrations_embedded, &err), 0);
    assert_int_equal(err.code, ERR_OK);
    assert_int_equal(version_of(db), embedded_last_version());
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM schema_migrations"),
                     (int)embedded_count());
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM schema_migrations WHERE version = 1"
                                    " AND name = 'init'"),
                     1);
    assert_true(table_exists(db, "meta"));
    assert_true(table_exists(db, "executions"));
    assert_true(table_exists(db, "execution_files"));
    sqlite3_close(db);
}

static void migrate_records_version_name_and_time(void **state)
{
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();
    int64_t before = time_now_ms();

    (void)state;
    assert_int_equal(catalog_migrate_db(db, two_both, &err), 0);
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM schema_migrations"), 2);
    assert_int_equal(
        raw_db_int(db,
                   "SELECT count(*) FROM schema_migrations WHERE version = 2 AND name = 'second'"),
        1);
    assert_true(raw_db_int(db, "SELECT min(applied_at) FROM schema_migrations") >= before);
    assert_true(raw_db_int(db, "SELECT max(applied_at) FROM schema_migrations") <= time_now_ms());
    sqlite3_close(db);
}

static void migrate_twice_applies_nothing_the_second_time(void **state)
{
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();
    int64_t applied_at;

    (void)state;
    assert_int_equal(catalog_migrate_db(db, two_both, &err), 0);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE schema_migrations SET applied_at = 42", NULL, NULL, NULL),
        SQLITE_OK);
    /* Re-running 0001 would fail: CREATE TABLE t1 exists already. */
    assert_int_equal(catalog_migrate_db(db, two_both, &err), 0);
    assert_int_equal(version_of(db), 2);
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM schema_migrations"), 2);
    applied_at = raw_db_int(db, "SELECT max(applied_at) FROM schema_migrations");
    assert_int_equal(applied_at, 42);
    sqlite3_close(db);
}

static void migrate_upgrades_a_database_left_at_an_older_version(void **state)
{
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(catalog_migrate_db(db, two_first, &err), 0);
    assert_int_equal(version_of(db), 1);
    assert_false(table_exists(db, "t2"));
    assert_int_equal(sqlite3_exec(db, "INSERT INTO t1 (x) VALUES (7)", NULL, NULL, NULL),
                     SQLITE_OK);

    assert_int_equal(catalog_migrate_db(db, two_both, &err), 0);
    assert_int_equal(version_of(db), 2);
    assert_true(table_exists(db, "t2"));
    assert_int_equal(raw_db_int(db, "SELECT x FROM t1 WHERE z IS NULL"), 7); /* data kept */
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM schema_migrations"), 2);
    sqlite3_close(db);
}

static void migrate_failing_migration_rolls_back_and_keeps_the_version(void **state)
{
    static const struct embedded_file broken[] = {
        MIG("migrations/0001_first.sql", "CREATE TABLE t1 (x INTEGER);"),
        MIG("migrations/0002_broken.sql", "CREATE TABLE t2 (y TEXT); INSERT INTO t1 (x) VALUES "
                                          "(1); INSERT INTO nope VALUES (1);"),
        MIG("migrations/0003_never.sql", "CREATE TABLE t3 (z TEXT);"),
        MIG_END,
    };
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(catalog_migrate_db(db, broken, &err), -1);
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "migrations/0002_broken.sql"));
    assert_non_null(strstr(err.msg, "no such table: nope"));
    assert_int_equal(version_of(db), 1);
    assert_false(table_exists(db, "t2"));
    assert_false(table_exists(db, "t3"));
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM t1"), 0);
    assert_int_equal(sqlite3_get_autocommit(db), 1); /* no transaction left open */

    /* Fixed, it applies on the next run. */
    assert_int_equal(catalog_migrate_db(db, two_both, &err), 0);
    assert_int_equal(version_of(db), 2);
    sqlite3_close(db);
}

static void migrate_refuses_malformed_file_names(void **state)
{
    static const char *const bad[] = {
        "migrations/init.sql",      "migrations/1_init.sql",     "migrations/00001_init.sql",
        "migrations/0001init.sql",  "migrations/0001_.sql",      "migrations/0001_init.txt",
        "migrations/0001_init",     "migrations/abcd_init.sql",  "migrations/0001_In-it.sql",
        "migrations/0000_zero.sql", "migrations/0001_init.sql~", "migrations/",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const struct embedded_file files[] = {
            {bad[i], (const unsigned char *)"CREATE TABLE t (x);", 19},
            MIG_END,
        };
        struct err err = ERR_INIT;
        sqlite3 *db = db_open();

        assert_int_equal(catalog_migrate_db(db, files, &err), -1);
        assert_int_equal(err.code, ERR_INTERNAL);
        assert_non_null(strstr(err.msg, bad[i]));
        assert_false(table_exists(db, "t"));
        assert_false(table_exists(db, "schema_migrations"));
        sqlite3_close(db);
    }
}

static void migrate_applies_nothing_when_a_later_name_is_malformed(void **state)
{
    static const struct embedded_file files[] = {
        MIG("migrations/0001_ok.sql", "CREATE TABLE ok (x);"),
        MIG("migrations/0002_Not-OK.sql", "CREATE TABLE t (x);"),
        MIG_END,
    };
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(catalog_migrate_db(db, files, &err), -1);
    assert_string_equal(err.msg, "migration file name 'migrations/0002_Not-OK.sql' is not "
                                 "NNNN_name.sql (name: a-z, 0-9, _)");
    assert_false(table_exists(db, "ok"));
    assert_int_equal(version_of(db), 0);
    sqlite3_close(db);
}

static void migrate_refuses_duplicate_numbers(void **state)
{
    static const struct embedded_file dup[] = {
        MIG("migrations/0001_first.sql", "CREATE TABLE t1 (x);"),
        MIG("migrations/0001_again.sql", "CREATE TABLE t2 (x);"),
        MIG_END,
    };
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(catalog_migrate_db(db, dup, &err), -1);
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "0001_first.sql"));
    assert_non_null(strstr(err.msg, "0001_again.sql"));
    assert_non_null(strstr(err.msg, "share number 0001"));
    assert_false(table_exists(db, "t1"));
    sqlite3_close(db);
}

static void migrate_refuses_out_of_order_numbers(void **state)
{
    static const struct embedded_file disorder[] = {
        MIG("migrations/0002_second.sql", "CREATE TABLE t2 (x);"),
        MIG("migrations/0001_first.sql", "CREATE TABLE t1 (x);"),
        MIG_END,
    };
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(catalog_migrate_db(db, disorder, &err), -1);
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "'migrations/0001_first.sql' comes after"));
    assert_non_null(strstr(err.msg, "out of order"));
    assert_false(table_exists(db, "t2"));
    sqlite3_close(db);
}

static void migrate_refuses_a_database_newer_than_the_build(void **state)
{
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(catalog_migrate_db(db, two_both, &err), 0);
    assert_int_equal(catalog_migrate_db(db, two_first, &err), -1);
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    assert_string_equal(err.msg, "the catalog is at schema version 2, newer than this build's 1");
    sqlite3_close(db);
}

static void migrate_refuses_a_migration_that_commits_by_itself(void **state)
{
    static const struct embedded_file commits[] = {
        MIG("migrations/0001_sneaky.sql", "CREATE TABLE t1 (x); COMMIT; CREATE TABLE t2 (x);"),
        MIG_END,
    };
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(catalog_migrate_db(db, commits, &err), -1);
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "0001_sneaky.sql"));
    assert_non_null(strstr(err.msg, "must not begin, commit or roll back"));
    assert_false(table_exists(db, "t1"));
    assert_int_equal(version_of(db), 0);
    sqlite3_close(db);
}

static void migrate_refuses_a_migration_that_breaks_a_foreign_key(void **state)
{
    static const struct embedded_file dangling[] = {
        MIG("migrations/0001_tables.sql",
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id));"),
        MIG("migrations/0002_dangling.sql", "INSERT INTO child VALUES (99);"),
        MIG_END,
    };
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(catalog_migrate_db(db, dangling, &err), -1);
    assert_non_null(strstr(err.msg, "0002_dangling.sql"));
    assert_non_null(strstr(err.msg, "foreign key violation in 'child'"));
    assert_int_equal(version_of(db), 1);
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM child"), 0);
    assert_int_equal(raw_db_int(db, "PRAGMA foreign_keys"), 1); /* restored */
    sqlite3_close(db);
}

static void migrate_can_rebuild_a_parent_table_without_cascading(void **state)
{
    static const struct embedded_file rebuild[] = {
        MIG("migrations/0001_tables.sql",
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) ON DELETE CASCADE);"
            "INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1);"),
        MIG("migrations/0002_rebuild_parent.sql",
            "CREATE TABLE parent_new (id INTEGER PRIMARY KEY, extra TEXT);"
            "INSERT INTO parent_new (id) SELECT id FROM parent;"
            "DROP TABLE parent; ALTER TABLE parent_new RENAME TO parent;"),
        MIG_END,
    };
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(catalog_migrate_db(db, rebuild, &err), 0);
    assert_int_equal(raw_db_int(db, "SELECT count(*) FROM child"), 1); /* no cascade */
    assert_int_equal(raw_db_int(db, "PRAGMA foreign_keys"), 1);
    sqlite3_close(db);
}

static void migrate_of_an_empty_list_only_creates_schema_migrations(void **state)
{
    static const struct embedded_file none[] = {MIG_END};
    struct err err = ERR_INIT;
    sqlite3 *db = db_open();

    (void)state;
    assert_int_equal(catalog_migrate_db(db, none, &err), 0);
    assert_true(table_exists(db, "schema_migrations"));
    assert_int_equal(version_of(db), 0);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migrate_applies_every_embedded_migration_to_an_empty_database),
        cmocka_unit_test(migrate_records_version_name_and_time),
        cmocka_unit_test(migrate_twice_applies_nothing_the_second_time),
        cmocka_unit_test(migrate_upgrades_a_database_left_at_an_older_version),
        cmocka_unit_test(migrate_failing_migration_rolls_back_and_keeps_the_version),
        cmocka_unit_test(migrate_refuses_malformed_file_names),
        cmocka_unit_test(migrate_applies_nothing_when_a_later_name_is_malformed),
        cmocka_unit_test(migrate_refuses_duplicate_numbers),
        cmocka_unit_test(migrate_refuses_out_of_order_numbers),
        cmocka_unit_test(migrate_refuses_a_database_newer_than_the_build),
        cmocka_unit_test(migrate_refuses_a_migration_that_commits_by_itself),
        cmocka_unit_test(migrate_refuses_a_migration_that_breaks_a_foreign_key),
        cmocka_unit_test(migrate_can_rebuild_a_parent_table_without_cascading),
        cmocka_unit_test(migrate_of_an_empty_list_only_creates_schema_migrations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_catalog_storage.c - storage that one key cannot exhaust
 * (catalog/storage.c, migration 0009) on real SQLite files in /tmp: the
 * output bytes each principal stores per UTC day, retention that drops old
 * stdout and stderr but keeps their sha256 so that the audit chain still
 * verifies (and still finds tampering), in bounded passes that resume, and
 * the sizes of the catalog's files. */
#include "core/buf.h"
#include "tests/unit/catalog_fixture.h"

#include "core/banned.h"

#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */
#define HOUR 3600000LL
#define DAY 86400000LL

/* A final execution number @i by user<i % 2>, started at T0 + i hours,
 * stdout "row <i>\n", stderr "err <i>" on odd rows and "" on even ones. */
static void record_make(struct execution_record *rec, int i)
{
    char code[64];

    memset(rec, 0, sizeof(*rec));
    rec->id = xasprintf("ex_stor%017d", i);
    rec->image = xstrdup("envhub/python:bookworm");
    rec->principal = xasprintf("user%d", i % 2);
    rec->client_addr = xstrdup("127.0.0.1");
    snprintf(code, sizeof(code), "print('row %d')\n", i);
    rec->code = xstrdup(code);
    sha256_hex(code, strlen(code), rec->code_sha256);
    rec->timeout_s = 30;
    rec->status = EXEC_SUCCEEDED;
    rec->exit_code = 0;
    rec->queued_at = T0 + (int64_t)i * HOUR;
    rec->started_at = rec->queued_at + 5;
    rec->duration_ms = 10;
    rec->finished_at = rec->started_at + 11;
    rec->stdout_text = xasprintf("row %d\n", i);
    rec->stderr_text = i % 2 ? xasprintf("err %d", i) : xstrdup("");
    record_add_file(rec, FILE_IN, "in.txt", i);
}

static void seed_range(struct catalog *cat, int from, int n)
{
    catalog_fixture_seed(cat, from, n, record_make);
}

static struct history_verify verify(struct catalog *cat)
{
    struct history_verify v;
    struct err err = ERR_INIT;
    if (catalog_history_verify(cat, &v, &err) < 0)
        fprintf(stderr, "verify: %s\n", err.msg);
    assert_int_equal(err.code, ERR_OK);
    return v;
}

/* Verified through the catalog and offline on the file: both ok, or both
 * broken at @bad_id. */
static void assert_verify(struct catalog_fixture *fx, const char *bad_id)
{
    struct history_verify v = verify(fx->cat), f;
    struct err err = ERR_INIT;

    if (v.ok != !bad_id)
        fprintf(stderr, "verify: ok=%d first_bad_id='%s': %s\n", v.ok, v.first_bad_id, v.reason);
    assert_int_equal(catalog_history_verify_file(fx->path, &f, &err), 0);
    if (!bad_id) {
        assert_true(v.ok);
        assert_true(f.ok);
        return;
    }
    assert_false(v.ok);
    assert_false(f.ok);
    assert_string_equal(v.first_bad_id, bad_id);
    assert_string_equal(f.first_bad_id, bad_id);
}

static struct output_prune prune(struct catalog *cat, int64_t before, size_t max_rows)
{
    struct output_prune p;
    struct err err = ERR_INIT;
    if (catalog_output_prune(cat, before, T0 + 1000 * DAY, max_rows, &p, &err) < 0)
        fprintf(stderr, "prune: %s\n", err.msg);
    assert_int_equal(err.code, ERR_OK);
    return p;
}

static int64_t usage(struct catalog *cat, const char *principal, int64_t day)
{
    int64_t v = -1;
    struct err err = ERR_INIT;
    assert_int_equal(catalog_output_usage(cat, principal, day, &v, &err), 0);
    return v;
}

/* Insert @rec running, then finish it with its own outcome. */
static void run_and_finish(struct catalog *cat, struct execution_record *rec)
{
    struct err err = ERR_INIT;
    enum exec_status final = rec->status;

    rec->status = EXEC_RUNNING;
    assert_int_equal(catalog_execution_insert(cat, rec, &err), 0);
    rec->status = final;
    if (catalog_execution_finish(cat, rec, &err) < 0)
        fprintf(stderr, "finish: %s\n", err.msg);
    assert_int_equal(err.code, ERR_OK);
}

/* ---- the output budget's count ---- */

static void each_finish_adds_its_stored_output_to_its_principal_and_utc_day(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record a, b, c, d;
    int64_t day = catalog_utc_day(T0);

    assert_int_equal(catalog_utc_day(0), 0);
    assert_int_equal(catalog_utc_day(DAY - 1), 0);
    assert_int_equal(catalog_utc_day(DAY), 1);
    assert_int_equal(usage(fx->cat, "user1", day), 0);

    record_make(&a, 1); /* user1: "row 1\n" + "err 1" = 11 bytes */
    a.finished_at = T0 + 100;
    run_and_finish(fx->cat, &a);
    assert_int_equal(usage(fx->cat, "user1", day), 11);

    record_make(&b, 3); /* user1 again, output with a NUL inside: every byte counts */
    free(b.stdout_text);
    b.stdout_text = xmalloc(5);
    memcpy(b.stdout_text, "ab\0cd", 5);
    b.stdout_len = 5;
    b.finished_at = T0 + 200;
    run_and_finish(fx->cat, &b);
    assert_int_equal(usage(fx->cat, "user1", day), 11 + 5 + 5);

    record_make(&c, 2); /* user0: only its own count moves */
    c.finished_at = T0 + 300;
    run_and_finish(fx->cat, &c);
    assert_int_equal(usage(fx->cat, "user0", day), 6);
    assert_int_equal(usage(fx->cat, "user1", day), 21);

    record_make(&d, 5); /* user1, finished the next UTC day: that day's count */
    d.finished_at = (day + 1) * DAY + 10;
    run_and_finish(fx->cat, &d);
    assert_int_equal(usage(fx->cat, "user1", day + 1), 11);
    assert_int_equal(usage(fx->cat, "user1", day), 21);
    assert_int_equal(usage(fx->cat, "nobody", day), 0);

    execution_record_release(&a);
    execution_record_release(&b);
    execution_record_release(&c);
    execution_record_release(&d);
}

/* ---- retention ---- */

static void retention_drops_old_output_keeps_its_digests_and_the_chain_verifies(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_verify before_v;
    struct history_item it = {0};
    struct err err = ERR_INIT;
    char hex[65];

    seed_range(fx->cat, 0, 30);
    before_v = verify(fx->cat);
    assert_true(before_v.ok);

    /* rows 0..9 were recorded before T0 + 9.5 h */
    struct output_prune p = prune(fx->cat, T0 + 9 * HOUR + HOUR / 2, 1000);
    assert_int_equal(p.rows, 10);
    assert_false(p.more);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM executions WHERE stdout = '' AND"
                                       " stderr = '' AND output_pruned_at IS NOT NULL"),
                     10);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM executions WHERE stdout <> ''"), 20);

    /* the history shows it pruned, with the digest and size of what it had */
    assert_int_equal(catalog_history_get(fx->cat, "ex_stor00000000000000003", &it, &err), 0);
    assert_int_equal(it.rec.output_pruned_at, T0 + 1000 * DAY);
    assert_int_equal(it.rec.stdout_len, 0);
    sha256_hex("row 3\n", 6, hex);
    assert_string_equal(it.rec.stdout_sha256, hex);
    assert_int_equal(it.rec.stdout_size, 6);
    sha256_hex("err 3", 5, hex);
    assert_string_equal(it.rec.stderr_sha256, hex);
    assert_int_equal(it.rec.stderr_size, 5);
    history_item_release(&it);
    /* a row it kept reads as before, its digest computed */
    assert_int_equal(catalog_history_get(fx->cat, "ex_stor00000000000000012", &it, &err), 0);
    assert_int_equal(it.rec.output_pruned_at, 0);
    assert_string_equal(it.rec.stdout_text, "row 12\n");
    sha256_hex("row 12\n", 7, hex);
    assert_string_equal(it.rec.stdout_sha256, hex);
    history_item_release(&it);

    /* every link computes as before: same head, verified online and offline */
    assert_verify(fx, NULL);
    assert_string_equal(verify(fx->cat).head_hash, before_v.head_hash);

    /* again with the same cut: nothing more; a later cut goes on from there */
    assert_int_equal(prune(fx->cat, T0 + 9 * HOUR + HOUR / 2, 1000).rows, 0);
    assert_int_equal(prune(fx->cat, T0 + 20 * HOUR, 1000).rows, 10);
    assert_verify(fx, NULL);
    /* new executions chain on top of pruned ones */
    seed_range(fx->cat, 30, 3);
    assert_verify(fx, NULL);
}

static void retention_runs_in_bounded_passes(void **state)
{
    struct catalog_fixture *fx = *state;
    int64_t total = 0;
    int passes = 0;
    struct output_prune p;

    seed_range(fx->cat, 0, 25);
    do {
        p = prune(fx->cat, T0 + 100 * HOUR, 4);
        assert_true(p.rows <= 4);
        total += p.rows;
        passes++;
    } while (p.more && passes < 100);
    assert_int_equal(total, 25);
    assert_true(passes >= 7);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM executions WHERE stdout <> ''"), 0);
    assert_verify(fx, NULL);
}

static void retention_waits_for_a_row_still_running(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record r;
    struct err err = ERR_INIT;

    seed_range(fx->cat, 0, 5);
    record_make(&r, 5); /* recorded after rows 0..4, still running */
    r.status = EXEC_RUNNING;
    assert_int_equal(catalog_execution_insert(fx->cat, &r, &err), 0);
    seed_range(fx->cat, 6, 5);

    struct output_prune p = prune(fx->cat, T0 + 1000 * HOUR, 1000);
    assert_int_equal(p.rows, 5);
    assert_false(p.more);
    /* rows 6..10 and the running row itself keep their output */
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM executions WHERE stdout <> ''"), 6);

    /* once it is final, the next pass goes past it */
    r.status = EXEC_SUCCEEDED;
    assert_int_equal(catalog_execution_finish(fx->cat, &r, &err), 0);
    assert_int_equal(prune(fx->cat, T0 + 1000 * HOUR, 1000).rows, 6);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM executions WHERE stdout <> ''"), 0);
    assert_verify(fx, NULL);
    execution_record_release(&r);
}

static void tampering_with_pruned_rows_is_still_found(void **state)
{
    struct catalog_fixture *fx = *state;
    const char *id = "ex_stor00000000000000004";

    seed_range(fx->cat, 0, 12);
    assert_int_equal(prune(fx->cat, T0 + 8 * HOUR, 1000).rows, 8);
    assert_verify(fx, NULL);
    _cleanup_free_ char *kept = NULL;
    {
        sqlite3 *db = raw_open(fx->path);
        kept = raw_db_text(db, "SELECT stdout_sha256 FROM executions"
                               " WHERE id = 'ex_stor00000000000000004'");
        sqlite3_close(db);
    }

    /* a forged digest */
    raw_exec(fx->path, "UPDATE executions SET stdout_sha256 = "
                       "'0000000000000000000000000000000000000000000000000000000000000000'"
                       " WHERE id = 'ex_stor00000000000000004'");
    assert_verify(fx, id);
    /* the digest removed: the empty text is hashed, which is not what was chained */
    raw_exec(fx->path,
             "UPDATE executions SET stdout_sha256 = NULL WHERE id = 'ex_stor00000000000000004'");
    assert_verify(fx, id);
    /* the digest restored: intact again */
    _cleanup_free_ char *restore =
        xasprintf("UPDATE executions SET stdout_sha256 = '%s' WHERE id = '%s'", kept, id);
    raw_exec(fx->path, restore);
    assert_verify(fx, NULL);
    /* other text put in the place of the dropped output */
    raw_exec(fx->path,
             "UPDATE executions SET stdout = 'forged' WHERE id = 'ex_stor00000000000000004'");
    assert_verify(fx, id);
    /* the very text that was dropped, put back: it is what was chained */
    raw_exec(
        fx->path,
        "UPDATE executions SET stdout = 'row 4' || char(10) WHERE id = 'ex_stor00000000000000004'");
    assert_verify(fx, NULL);
    /* a row kept whole is checked against its text as ever */
    raw_exec(fx->path,
             "UPDATE executions SET stderr = 'forged' WHERE id = 'ex_stor00000000000000009'");
    assert_verify(fx, "ex_stor00000000000000009");
}

static void finishing_a_pruned_head_again_chains_its_new_output(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record r;
    struct err err = ERR_INIT;

    record_make(&r, 0);
    run_and_finish(fx->cat, &r);
    assert_int_equal(prune(fx->cat, T0 + HOUR, 1000).rows, 1);
    assert_verify(fx, NULL);
    /* still the newest link: it may be finished again, and its stored
     * digests must not stand in for the new text */
    free(r.stdout_text);
    r.stdout_text = xstrdup("amended\n");
    assert_int_equal(catalog_execution_finish(fx->cat, &r, &err), 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM executions WHERE"
                                       " output_pruned_at IS NULL AND stdout_sha256 IS NULL"),
                     1);
    assert_verify(fx, NULL);
    raw_exec(fx->path, "UPDATE executions SET stdout = 'x'");
    assert_verify(fx, "ex_stor00000000000000000");
    execution_record_release(&r);
}

/* ---- disk ---- */

static void disk_usage_reads_the_files_and_their_file_system(void **state)
{
    struct catalog_fixture *fx = *state;
    struct catalog_disk d;
    struct catalog *mem = NULL;
    struct err err = ERR_INIT;

    seed_range(fx->cat, 0, 20);
    assert_int_equal(catalog_disk_usage(fx->cat, &d, &err), 0);
    assert_true(d.on_disk);
    assert_true(d.db_bytes + d.wal_bytes > 4096);
    assert_true(d.free_bytes > 0);
    assert_true(d.total_bytes >= d.free_bytes);

    assert_int_equal(catalog_open(":memory:", &mem, &err), 0);
    assert_int_equal(catalog_disk_usage(mem, &d, &err), 0);
    assert_false(d.on_disk);
    assert_int_equal(d.db_bytes, 0);
    catalog_close(mem);
}

/* ---- the migration ---- */

static void upgrade_counts_the_output_already_stored_today(void **state)
{
    struct catalog_fixture *fx = *state;
    sqlite3 *db = raw_open_migrated_before(fx->path, "0009");
    struct err err = ERR_INIT;
    int64_t now = time_now_ms();

    _cleanup_free_ char *ins = xasprintf(
        "INSERT INTO executions (id, image, principal, code, code_sha256, timeout_s, status,"
        " queued_at, started_at, finished_at, stdout, stderr) VALUES"
        " ('ex_old3', 'img', 'carol', 'x', 'h', 30, 'succeeded', %lld, %lld, %lld, 'ancient', ''),"
        " ('ex_old1', 'img', 'carol', 'x', 'h', 30, 'succeeded', %lld, %lld, %lld, 'abcd', 'ef'),"
        " ('ex_old2', 'img', 'carol', 'x', 'h', 30, 'succeeded', %lld, %lld, %lld, '12345', '')",
        (long long)(now - 30 * DAY), (long long)(now - 30 * DAY), (long long)(now - 30 * DAY),
        (long long)now, (long long)now, (long long)now, (long long)now, (long long)now,
        (long long)now);
    raw_db_exec(db, ins);
    sqlite3_close(db);

    assert_int_equal(catalog_open(fx->path, &fx->cat, &err), 0);
    assert_int_equal(usage(fx->cat, "carol", catalog_utc_day(now)), 4 + 2 + 5);
    assert_int_equal(usage(fx->cat, "carol", catalog_utc_day(now - 30 * DAY)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CATALOG_TEST(each_finish_adds_its_stored_output_to_its_principal_and_utc_day),
        CATALOG_TEST(retention_drops_old_output_keeps_its_digests_and_the_chain_verifies),
        CATALOG_TEST(retention_runs_in_bounded_passes),
        CATALOG_TEST(retention_waits_for_a_row_still_running),
        CATALOG_TEST(tampering_with_pruned_rows_is_still_found),
        CATALOG_TEST(finishing_a_pruned_head_again_chains_its_new_output),
        CATALOG_TEST(disk_usage_reads_the_files_and_their_file_system),
        CATALOG_FILE_TEST(upgrade_counts_the_output_already_stored_today),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

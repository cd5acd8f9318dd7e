/* tests/unit/test_catalog_history.c - the execution history (catalog/chain.c,
 * history.c, stats.c, verify.c) on real SQLite files in /tmp: the canonical
 * serialisation byte for byte, the audit chain (links in the order rows
 * become final, sealed rows, recovery), verification finding edits, deleted,
 * swapped and missing rows with the right id, retention with checkpoints,
 * filters, pages, export batches and statistics, and the query plan of every
 * statement the API can issue (no full scan of executions). */
#include "core/buf.h"
#include "tests/unit/catalog_fixture.h"

#include "core/banned.h"

#define T0 1700000000000LL
#define HOUR 3600000LL

/* A final execution number @i: environment, status, principal and code
 * vary with i in a known way; it started at T0 + i hours. */
static void record_make(struct execution_record *rec, int i)
{
    static const char *const envs[] = {"alpha", "beta", NULL};
    static const enum exec_status statuses[] = {EXEC_SUCCEEDED, EXEC_FAILED, EXEC_SUCCEEDED,
                                                EXEC_TIMEOUT};
    char code[128];

    memset(rec, 0, sizeof(*rec));
    rec->id = xasprintf("ex_hist%017d", i);
    if (envs[i % 3]) {
        rec->environment = xstrdup(envs[i % 3]);
        rec->environment_version = 1 + i % 2;
        rec->image = xasprintf("envhub-env/%s:v%d", envs[i % 3], 1 + i % 2);
    } else {
        rec->image = xstrdup("envhub/python:bookworm");
    }
    rec->principal = xasprintf("user%d", i % 4);
    rec->client_addr = xstrdup("127.0.0.1");
    snprintf(code, sizeof(code), "import os\nprint('row %d')\n%s", i,
             i % 5 == 0 ? "df = pd.read_csv('x.csv')\n" : "");
    rec->code = xstrdup(code);
    sha256_hex(code, strlen(code), rec->code_sha256);
    rec->timeout_s = 30;
    rec->status = statuses[i % 4];
    rec->exit_code = rec->status == EXEC_SUCCEEDED ? 0 : rec->status == EXEC_FAILED ? 1 : -1;
    rec->queued_at = T0 + (int64_t)i * HOUR;
    rec->started_at = rec->queued_at + 5;
    rec->duration_ms = 10 * (i + 1);
    rec->finished_at = rec->started_at + rec->duration_ms + 1;
    rec->stdout_text = xasprintf("row %d\n", i);
    rec->stderr_text = xstrdup("");
    record_add_file(rec, FILE_IN, "in.txt", i);
    if (i % 2)
        record_add_file(rec, FILE_OUT, "out.txt", 2 * i);
}

/* Seed executions from .. from+n-1 (record_make) in one batch. */
static void seed_range(struct catalog *cat, int from, int n)
{
    catalog_fixture_seed(cat, from, n, record_make);
}

static void seed(struct catalog *cat, int n)
{
    seed_range(cat, 0, n);
}

static int id_number(const char *id)
{
    return (int)strtol(id + strlen("ex_hist"), NULL, 10);
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

static void assert_broken_at(struct catalog *cat, const char *path, const char *id)
{
    struct history_verify v = verify(cat), f;
    struct err err = ERR_INIT;

    if (v.ok || strcmp(v.first_bad_id, id) != 0)
        fprintf(stderr, "verify: ok=%d first_bad_id='%s' (want '%s'): %s\n", v.ok, v.first_bad_id,
                id, v.reason);
    assert_false(v.ok);
    assert_string_equal(v.first_bad_id, id);
    /* the offline check of the file says the same */
    assert_int_equal(catalog_history_verify_file(path, &f, &err), 0);
    assert_false(f.ok);
    assert_string_equal(f.first_bad_id, id);
}

static struct history_filter filter_any(void)
{
    return (struct history_filter){.status = -1};
}

/* ---- the canonical serialisation ---- */

static const char expected_canonical[] =
    "envhub-chain-v1\n"
    "chain_seq=i1\n"
    "seq=i1\n"
    "id=s26:ex_canon000000000000000001\n"
    "environment=s12:data-science\n"
    "environment_version=i3\n"
    "image=s26:envhub-env/data-science:v3\n"
    "image_id=s10:sha256:abc\n"
    "principal=s5:alice\n"
    "client_addr=s9:127.0.0.1\n"
    "code_sha256=s64:caf026f25d7140209f98072605307a438914b9ce6f3c14b23d15d9667241de52\n"
    "timeout_s=i30\n"
    "status=s9:succeeded\n"
    "exit_code=i0\n"
    "error=null\n"
    "queued_at=i1700000000000\n"
    "started_at=i1700000000005\n"
    "finished_at=i1700000000100\n"
    "recorded_at=i1700000000005\n"
    "duration_ms=i90\n"
    "stdout_sha256=s64:98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4\n"
    "stdout_truncated=i0\n"
    "stderr_sha256=s64:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
    "stderr_truncated=i0\n"
    "session_id=null\n"
    "limits=s14:{\"timeout\":30}\n"
    "files=i2\n"
    "file.direction=s2:in\n"
    "file.path=s5:a.txt\n"
    "file.size=i5\n"
    "file.sha256=s64:18b7cb099a9ea3f50ba899b5ba81e0d377a5f3b16f8f6eeb8b3e58cd4692b993\n"
    "file.direction=s3:out\n"
    "file.path=s9:b/out.csv\n"
    "file.size=i12\n"
    "file.sha256=s64:a3632134c04f6bd72478cf554b18b773b910ed28f942bb1cdcdff478fb5311f1\n";
/* sha256("0" x 64 || expected_canonical), computed apart from envhub */
static const char expected_hash[] =
    "ae59bcbb68246b3a24f929188c81a02bedc26e43ca728757c1eb80c41fa492f7";

static void canonical_serialisation_is_exactly_as_documented(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec = {0};
    struct history_item it;
    struct err err = ERR_INIT;
    struct buf out = BUF_INIT(BUF_UNLIMITED);

    /* as the executor records it: running at start, finished later */
    rec.id = xstrdup("ex_canon000000000000000001");
    rec.environment = xstrdup("data-science");
    rec.environment_version = 3;
    rec.image = xstrdup("envhub-env/data-science:v3");
    rec.image_id = xstrdup("sha256:abc");
    rec.principal = xstrdup("alice");
    rec.client_addr = xstrdup("127.0.0.1");
    rec.code = xstrdup("print('hi')\n");
    sha256_hex(rec.code, strlen(rec.code), rec.code_sha256);
    rec.timeout_s = 30;
    rec.limits = xstrdup("{\"timeout\":30}");
    rec.status = EXEC_RUNNING;
    rec.exit_code = -1;
    rec.queued_at = T0;
    rec.started_at = T0 + 5;
    rec.duration_ms = -1;
    record_add_file(&rec, FILE_IN, "a.txt", 5);
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM executions WHERE chain_seq IS NULL"),
                     1);

    rec.status = EXEC_SUCCEEDED;
    rec.exit_code = 0;
    rec.finished_at = T0 + 100;
    rec.duration_ms = 90;
    rec.stdout_text = xstrdup("hi\n");
    rec.stderr_text = xstrdup("");
    record_add_file(&rec, FILE_OUT, "b/out.csv", 12);
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), 0);

    assert_int_equal(history_canonical(fx->cat->db, 1, 1, &out, &err), 0);
    assert_string_equal(buf_str(&out), expected_canonical);
    assert_int_equal(catalog_history_get(fx->cat, rec.id, &it, &err), 0);
    assert_int_equal(it.chain_seq, 1);
    assert_string_equal(it.chain_hash, expected_hash);
    assert_int_equal(it.recorded_at, T0 + 5);
    assert_int_equal(it.rec.n_files, 2);
    assert_string_equal(it.rec.code, "print('hi')\n");
    history_item_release(&it);

    struct history_verify v = verify(fx->cat);
    assert_true(v.ok);
    assert_int_equal(v.count, 1);
    assert_int_equal(v.head_seq, 1);
    assert_string_equal(v.head_hash, expected_hash);
    buf_release(&out);
    execution_record_release(&rec);
}

/* ---- a job's output, byte for byte ---- */

/* What sys.stdout.write("a\x00b\x01\x1b[0m") and sys.stderr.write("e\x00") leave. */
static const char nul_stdout[] = "a\0b\x01\x1b[0m\0";
static const char nul_stderr[] = "e\0";

static void output_with_nul_and_control_bytes_is_stored_read_and_chained_whole(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec, got = {0};
    struct history_item it;
    struct err err = ERR_INIT;
    struct buf canon = BUF_INIT(BUF_UNLIMITED);
    char want[65], line[96];

    record_make(&rec, 1);
    rec.status = EXEC_RUNNING;
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), 0);
    free(rec.stdout_text);
    free(rec.stderr_text);
    rec.stdout_text = xmemdup(nul_stdout, sizeof(nul_stdout));
    rec.stdout_len = sizeof(nul_stdout) - 1;
    rec.stderr_text = xmemdup(nul_stderr, sizeof(nul_stderr));
    rec.stderr_len = sizeof(nul_stderr) - 1;
    rec.status = EXEC_SUCCEEDED;
    assert_int_equal(catalog_execution_finish(fx->cat, &rec, &err), 0);

    /* the column holds every byte, as text */
    assert_int_equal(raw_int(fx->path, "SELECT length(CAST(stdout AS BLOB)) FROM executions"),
                     sizeof(nul_stdout) - 1);
    assert_int_equal(raw_int(fx->path, "SELECT typeof(stdout) = 'text' FROM executions"), 1);

    /* both readers give them back with their lengths */
    assert_int_equal(catalog_execution_get(fx->cat, rec.id, &got, &err), 0);
    assert_int_equal(got.stdout_len, sizeof(nul_stdout) - 1);
    assert_memory_equal(got.stdout_text, nul_stdout, sizeof(nul_stdout));
    assert_int_equal(got.stderr_len, sizeof(nul_stderr) - 1);
    assert_memory_equal(got.stderr_text, nul_stderr, sizeof(nul_stderr));
    execution_record_release(&got);
    assert_int_equal(catalog_history_get(fx->cat, rec.id, &it, &err), 0);
    assert_int_equal(it.rec.stdout_len, sizeof(nul_stdout) - 1);
    assert_memory_equal(it.rec.stdout_text, nul_stdout, sizeof(nul_stdout));
    assert_int_equal(it.rec.stderr_len, sizeof(nul_stderr) - 1);
    assert_memory_equal(it.rec.stderr_text, nul_stderr, sizeof(nul_stderr));
    history_item_release(&it);

    /* the link hashes all the bytes, not those before the first NUL */
    assert_int_equal(history_canonical(fx->cat->db, 1, 1, &canon, &err), 0);
    sha256_hex(nul_stdout, sizeof(nul_stdout) - 1, want);
    snprintf(line, sizeof(line), "\nstdout_sha256=s64:%s\n", want);
    assert_non_null(strstr(buf_str(&canon), line));
    sha256_hex(nul_stderr, sizeof(nul_stderr) - 1, want);
    snprintf(line, sizeof(line), "\nstderr_sha256=s64:%s\n", want);
    assert_non_null(strstr(buf_str(&canon), line));
    buf_release(&canon);
    assert_true(verify(fx->cat).ok);

    /* so an edit after the NUL shows: "a\0c..." for "a\0b..." */
    raw_exec(fx->path, "UPDATE executions SET stdout = CAST(X'610063011b5b306d00' AS TEXT)");
    assert_broken_at(fx->cat, fx->path, rec.id);
    execution_record_release(&rec);
}

/* Rows written without lengths (text without NUL, as every row before
 * output kept NUL) are stored and hashed as they always were. */
static void output_without_a_length_is_its_strlen(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record rec, got = {0};
    struct err err = ERR_INIT;

    record_make(&rec, 2); /* stdout "row 2\n", stderr "", no lengths */
    assert_int_equal(rec.stdout_len, 0);
    assert_int_equal(catalog_execution_insert(fx->cat, &rec, &err), 0);
    assert_int_equal(catalog_execution_get(fx->cat, rec.id, &got, &err), 0);
    assert_int_equal(got.stdout_len, strlen("row 2\n"));
    assert_string_equal(got.stdout_text, "row 2\n");
    assert_int_equal(got.stderr_len, 0);
    assert_string_equal(got.stderr_text, "");
    assert_true(verify(fx->cat).ok);
    execution_record_release(&got);
    execution_record_release(&rec);
}

/* ---- making links ---- */

static void links_follow_the_order_rows_become_final(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record a, b;
    struct history_item ia, ib;
    struct err err = ERR_INIT;

    record_make(&a, 1);
    record_make(&b, 2);
    a.status = b.status = EXEC_RUNNING;
    assert_int_equal(catalog_execution_insert(fx->cat, &a, &err), 0);
    assert_int_equal(catalog_execution_insert(fx->cat, &b, &err), 0);
    b.status = EXEC_FAILED;
    assert_int_equal(catalog_execution_finish(fx->cat, &b, &err), 0);
    a.status = EXEC_SUCCEEDED;
    assert_int_equal(catalog_execution_finish(fx->cat, &a, &err), 0);

    assert_int_equal(catalog_history_get(fx->cat, a.id, &ia, &err), 0);
    assert_int_equal(catalog_history_get(fx->cat, b.id, &ib, &err), 0);
    assert_int_equal(ib.chain_seq, 1);
    assert_int_equal(ia.chain_seq, 2);
    assert_true(verify(fx->cat).ok);
    assert_int_equal(verify(fx->cat).count, 2);

    /* b is sealed under a: finishing it again is refused and changes nothing */
    assert_int_equal(catalog_execution_finish(fx->cat, &b, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_non_null(strstr(err.msg, "sealed"));
    /* a is still the newest link: its link is recomputed in place */
    err_clear(&err);
    free(a.stdout_text);
    a.stdout_text = xstrdup("amended\n");
    assert_int_equal(catalog_execution_finish(fx->cat, &a, &err), 0);
    struct history_verify v = verify(fx->cat);
    assert_true(v.ok);
    assert_int_equal(v.head_seq, 2);
    assert_string_not_equal(v.head_hash, ia.chain_hash);

    history_item_release(&ia);
    history_item_release(&ib);
    execution_record_release(&a);
    execution_record_release(&b);
}

static void recovery_chains_interrupted_rows(void **state)
{
    struct catalog_fixture *fx = *state;
    struct execution_record a;
    struct history_item it;
    struct err err = ERR_INIT;
    int n = -1;

    seed(fx->cat, 3);
    record_make(&a, 7);
    a.status = EXEC_RUNNING;
    assert_int_equal(catalog_execution_insert(fx->cat, &a, &err), 0);
    assert_int_equal(catalog_recover_executions(fx->cat, T0 + 100 * HOUR, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(catalog_history_get(fx->cat, a.id, &it, &err), 0);
    assert_int_equal(it.rec.status, EXEC_INTERRUPTED);
    assert_int_equal(it.chain_seq, 4);
    assert_true(verify(fx->cat).ok);
    history_item_release(&it);
    execution_record_release(&a);
}

static void rows_from_before_the_chain_are_chained_by_recovery(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    int n = -1;

    seed(fx->cat, 4);
    /* what an upgraded catalog holds: final rows outside the chain */
    raw_exec(fx->path, "UPDATE executions SET chain_seq = NULL, chain_hash = NULL;"
                       " UPDATE history_head SET chain_seq = 0, chain_hash ="
                       " '0000000000000000000000000000000000000000000000000000000000000000'");
    struct history_verify v = verify(fx->cat);
    assert_false(v.ok);
    assert_string_equal(v.first_bad_id, "ex_hist00000000000000000");
    assert_non_null(strstr(v.reason, "not in the chain"));
    assert_int_equal(catalog_recover_executions(fx->cat, T0, &n, &err), 0);
    v = verify(fx->cat);
    assert_true(v.ok);
    assert_int_equal(v.count, 4);
}

/* ---- verification finds tampering ---- */

static void verify_of_an_intact_history_is_ok_on_file_and_in_memory(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_verify v, f;
    struct err err = ERR_INIT;
    struct catalog *mem = NULL;

    seed(fx->cat, 5000); /* more than one batch of links: two threads */
    v = verify(fx->cat);
    assert_true(v.ok);
    assert_int_equal(v.count, 5000);
    assert_int_equal(v.head_seq, 5000);
    assert_false(v.has_checkpoint);
    assert_int_equal(catalog_history_verify_file(fx->path, &f, &err), 0);
    assert_true(f.ok);
    assert_string_equal(f.head_hash, v.head_hash);

    assert_int_equal(catalog_open(":memory:", &mem, &err), 0);
    seed(mem, 30);
    v = verify(mem);
    assert_true(v.ok);
    assert_int_equal(v.count, 30);
    catalog_close(mem);
}

static void verify_finds_an_edited_stdout(void **state)
{
    struct catalog_fixture *fx = *state;

    seed(fx->cat, 30);
    raw_exec(fx->path,
             "UPDATE executions SET stdout = 'forged' WHERE id = 'ex_hist00000000000000012'");
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000012");
}

static void verify_finds_edited_fields_code_and_files(void **state)
{
    struct catalog_fixture *fx = *state;

    seed(fx->cat, 30);
    raw_exec(fx->path, "UPDATE executions SET status = 'succeeded', exit_code = 0"
                       " WHERE id = 'ex_hist00000000000000025'");
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000025");
    raw_exec(fx->path, "UPDATE execution_files SET size = size + 1 WHERE execution_seq ="
                       " (SELECT seq FROM executions WHERE id = 'ex_hist00000000000000009')");
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000009");
    raw_exec(fx->path,
             "UPDATE executions SET code = 'print(1)' WHERE id = 'ex_hist00000000000000004'");
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000004");
    struct history_verify v = verify(fx->cat);
    assert_non_null(strstr(v.reason, "code_sha256"));
}

static void verify_finds_a_deleted_row_at_the_next_one(void **state)
{
    struct catalog_fixture *fx = *state;

    seed(fx->cat, 30);
    raw_exec(fx->path, "DELETE FROM executions WHERE id = 'ex_hist00000000000000010'");
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000011");
    struct history_verify v = verify(fx->cat);
    assert_int_equal(v.first_bad_seq, 12);
    assert_non_null(strstr(v.reason, "missing"));
}

static void verify_finds_swapped_rows(void **state)
{
    struct catalog_fixture *fx = *state;

    seed(fx->cat, 30);
    /* rows 5 and 20 (links 6 and 21) trade places in the chain */
    raw_exec(fx->path, "UPDATE executions SET chain_seq = -chain_seq WHERE chain_seq IN (6, 21);"
                       "UPDATE executions SET chain_seq = 21 WHERE chain_seq = -6;"
                       "UPDATE executions SET chain_seq = 6 WHERE chain_seq = -21;");
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000020");

    /* their whole contents swapped, links kept: the same */
    raw_exec(fx->path, "UPDATE executions SET chain_seq = -chain_seq WHERE chain_seq IN (6, 21);"
                       "UPDATE executions SET chain_seq = 21 WHERE chain_seq = -6;"
                       "UPDATE executions SET chain_seq = 6 WHERE chain_seq = -21;");
    assert_true(verify(fx->cat).ok);
    raw_exec(
        fx->path,
        "CREATE TEMP TABLE t AS SELECT seq, stdout, code FROM executions;"
        "UPDATE executions SET stdout = (SELECT stdout FROM t WHERE t.seq = 3) WHERE seq = 2;"
        "UPDATE executions SET stdout = (SELECT stdout FROM t WHERE t.seq = 2) WHERE seq = 3;");
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000001");
}

static void verify_finds_rows_removed_at_the_end_and_beyond_the_head(void **state)
{
    struct catalog_fixture *fx = *state;

    seed(fx->cat, 30);
    raw_exec(fx->path, "DELETE FROM executions WHERE chain_seq > 28");
    struct history_verify v = verify(fx->cat);
    assert_false(v.ok);
    assert_string_equal(v.first_bad_id, "");
    assert_int_equal(v.first_bad_seq, 29);
    assert_non_null(strstr(v.reason, "removed"));

    raw_exec(fx->path, "UPDATE history_head SET chain_seq = 27, chain_hash = (SELECT chain_hash"
                       " FROM executions WHERE chain_seq = 27)");
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000027");
}

/* ---- retention ---- */

static void prune_keeps_a_checkpoint_that_verify_starts_from(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_prune p;
    struct err err = ERR_INIT;
    struct history_item *items = NULL;
    size_t n = 0;
    struct history_filter f = filter_any();

    seed(fx->cat, 40);
    /* finished before T0 + 15 h: rows 0 .. 14 */
    assert_int_equal(catalog_history_prune(fx->cat, T0 + 15 * HOUR, T0 + 1000 * HOUR, &p, &err), 0);
    assert_int_equal(p.pruned, 15);
    assert_int_equal(p.checkpoint_seq, 15);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM executions"), 25);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM execution_files WHERE execution_seq"
                                       " NOT IN (SELECT seq FROM executions)"),
                     0);
    assert_int_equal(catalog_history_list(fx->cat, &f, 0, 100, &items, &n, &err), 0);
    assert_int_equal(n, 25);
    history_items_free(items, n);

    struct history_verify v = verify(fx->cat);
    assert_true(v.ok);
    assert_int_equal(v.count, 25);
    assert_true(v.has_checkpoint);
    assert_int_equal(v.checkpoint_seq, 15);
    assert_int_equal(v.checkpoint_pruned, 15);
    assert_string_equal(v.checkpoint_hash, p.checkpoint_hash);

    /* pruning again cuts nothing more; a later date cuts on */
    assert_int_equal(catalog_history_prune(fx->cat, T0 + 15 * HOUR, T0, &p, &err), 0);
    assert_int_equal(p.pruned, 0);
    assert_int_equal(p.checkpoint_seq, 15);
    assert_int_equal(catalog_history_prune(fx->cat, T0 + 20 * HOUR, T0, &p, &err), 0);
    assert_int_equal(p.pruned, 5);
    assert_true(verify(fx->cat).ok);

    /* tampering after the cut still shows */
    raw_exec(fx->path, "UPDATE executions SET stdout = 'x' WHERE id = 'ex_hist00000000000000033'");
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000033");
    raw_exec(fx->path, "UPDATE executions SET stdout = 'row 33\n' WHERE id = "
                       "'ex_hist00000000000000033'");
    assert_true(verify(fx->cat).ok);
    /* and so does a forged checkpoint */
    raw_exec(fx->path, "UPDATE history_checkpoints SET chain_hash = "
                       "'1111111111111111111111111111111111111111111111111111111111111111'");
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000020");
}

static void prune_of_everything_leaves_an_empty_verified_history(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_prune p;
    struct err err = ERR_INIT;

    seed(fx->cat, 10);
    assert_int_equal(catalog_history_prune(fx->cat, T0 + 1000 * HOUR, T0, &p, &err), 0);
    assert_int_equal(p.pruned, 10);
    struct history_verify v = verify(fx->cat);
    assert_true(v.ok);
    assert_int_equal(v.count, 0);
    assert_int_equal(v.head_seq, 10);
    seed(fx->cat, 0);
    struct execution_record rec;
    record_make(&rec, 99);
    assert_int_equal(catalog_history_seed(fx->cat, &rec, 1, &err), 0);
    execution_record_release(&rec);
    v = verify(fx->cat);
    assert_true(v.ok);
    assert_int_equal(v.count, 1);
    assert_int_equal(v.head_seq, 11);
}

static void prune_refuses_to_cut_a_broken_chain(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_prune p;
    struct err err = ERR_INIT;

    seed(fx->cat, 20);
    raw_exec(fx->path, "UPDATE executions SET stdout = 'x' WHERE id = 'ex_hist00000000000000003'");
    assert_int_equal(catalog_history_prune(fx->cat, T0 + 10 * HOUR, T0, &p, &err), -1);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_non_null(strstr(err.msg, "ex_hist00000000000000003"));
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM executions"), 20);
}

static void prune_stops_at_the_first_link_finished_after_the_date(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_prune p;
    struct err err = ERR_INIT;

    seed(fx->cat, 10);
    /* link 4 finished late (an edit, which verify will also see): the cut
     * stops before it although links 5.. finished before the date */
    raw_exec(fx->path, "UPDATE executions SET finished_at = finished_at + 1000 * 3600000"
                       " WHERE chain_seq = 4");
    assert_int_equal(catalog_history_prune(fx->cat, T0 + 10 * HOUR, T0, &p, &err), 0);
    assert_int_equal(p.pruned, 3);
    assert_int_equal(p.checkpoint_seq, 3);
    assert_broken_at(fx->cat, fx->path, "ex_hist00000000000000003");
}

/* ---- queries ---- */

static size_t list_count(struct catalog *cat, const struct history_filter *f)
{
    struct history_item *items = NULL;
    size_t n = 0, total = 0;
    int64_t before = 0;
    struct err err = ERR_INIT;

    for (;;) {
        assert_int_equal(catalog_history_list(cat, f, before, 7, &items, &n, &err), 0);
        for (size_t i = 0; i < n; i++) {
            if (before)
                assert_true(items[i].seq < before);
            before = items[i].seq;
        }
        total += n;
        history_items_free(items, n);
        if (n < 7)
            return total;
    }
}

static void filters_select_what_they_say(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_filter f = filter_any();
    struct err err = ERR_INIT;
    struct history_item *items = NULL;
    size_t n = 0;

    seed(fx->cat, 60);
    assert_int_equal(list_count(fx->cat, &f), 60);
    f.environment = "alpha"; /* i % 3 == 0 */
    assert_int_equal(list_count(fx->cat, &f), 20);
    f.environment_version = 1; /* and i % 2 == 0 */
    assert_int_equal(list_count(fx->cat, &f), 10);
    f = filter_any();
    f.status = EXEC_FAILED; /* i % 4 == 1 */
    assert_int_equal(list_count(fx->cat, &f), 15);
    f.principal = "user1"; /* i % 4 == 1 as well */
    assert_int_equal(list_count(fx->cat, &f), 15);
    f.principal = "user2";
    assert_int_equal(list_count(fx->cat, &f), 0);
    f = filter_any();
    f.has_since = true;
    f.since = T0 + 10 * HOUR; /* started at T0 + i h + 5 ms */
    f.has_until = true;
    f.until = T0 + 20 * HOUR + 5;
    assert_int_equal(list_count(fx->cat, &f), 10);
    f.until = T0 + 20 * HOUR + 6;
    assert_int_equal(list_count(fx->cat, &f), 11);
    f.has_since = false;
    assert_int_equal(list_count(fx->cat, &f), 21);
    f = filter_any();
    f.text = "read_csv"; /* i % 5 == 0 */
    assert_int_equal(list_count(fx->cat, &f), 12);
    f.text = "pd.read_csv   import";
    assert_int_equal(list_count(fx->cat, &f), 12);
    f.text = "read_csv nowhere";
    assert_int_equal(list_count(fx->cat, &f), 0);
    f.text = "read_csv";
    f.environment = "beta"; /* i % 3 == 1 and i % 5 == 0 */
    assert_int_equal(list_count(fx->cat, &f), 4);
    f = filter_any();
    char code[128], hex[65];
    snprintf(code, sizeof(code), "import os\nprint('row %d')\n", 7);
    sha256_hex(code, strlen(code), hex);
    f.code_sha256 = hex;
    assert_int_equal(catalog_history_list(fx->cat, &f, 0, 10, &items, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].rec.id, "ex_hist00000000000000007");
    assert_null(items[0].rec.code); /* list items carry no code */
    history_items_free(items, n);

    f = filter_any();
    f.environment_version = 2;
    assert_int_equal(catalog_history_list(fx->cat, &f, 0, 10, &items, &n, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
}

static void pages_are_newest_first_and_stable_while_rows_arrive(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_filter f = filter_any();
    struct history_item *items = NULL;
    size_t n = 0;
    int64_t before = 0;
    struct err err = ERR_INIT;
    int seen[200] = {0}, next_new = 100;

    seed(fx->cat, 50);
    for (;;) {
        assert_int_equal(catalog_history_list(fx->cat, &f, before, 8, &items, &n, &err), 0);
        for (size_t i = 0; i < n; i++) {
            int k = id_number(items[i].rec.id);
            assert_true(k >= 0 && k < 200);
            seen[k]++;
            if (before)
                assert_true(items[i].seq < before);
            before = items[i].seq;
        }
        history_items_free(items, n);
        if (n < 8)
            break;
        seed_range(fx->cat, next_new, 2); /* newer rows arrive between pages */
        next_new += 2;
    }
    for (int k = 0; k < 50; k++)
        assert_int_equal(seen[k], 1);
    for (int k = 100; k < next_new; k++)
        assert_int_equal(seen[k], 0); /* newer than the first page: not in this walk */
}

static void export_batches_visit_every_row_once_in_order(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_filter f = filter_any();
    struct history_export *x = NULL;
    struct history_item *items = NULL;
    size_t n = 0, total = 0;
    int64_t last = INT64_MAX;
    struct err err = ERR_INIT;

    seed(fx->cat, 45);
    f.status = EXEC_SUCCEEDED; /* i % 4 in {0, 2} */
    assert_int_equal(catalog_history_export_open(fx->cat, &f, &x, &err), 0);
    for (;;) {
        assert_int_equal(catalog_history_export_next(x, 10, &items, &n, &err), 0);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            assert_true(items[i].seq < last);
            last = items[i].seq;
            assert_int_equal(items[i].rec.status, EXEC_SUCCEEDED);
        }
        total += n;
        history_items_free(items, n);
    }
    assert_int_equal(total, 23);
    catalog_history_export_close(x);
}

static void stats_count_and_take_nearest_rank_percentiles(void **state)
{
    struct catalog_fixture *fx = *state;
    struct history_filter f = filter_any();
    struct history_stat *st = NULL, all;
    size_t n = 0;
    struct err err = ERR_INIT;

    seed(fx->cat, 40); /* duration 10 * (i + 1) */
    assert_int_equal(
        catalog_history_stats(fx->cat, &f, HISTORY_GROUP_ENVIRONMENT, &st, &n, &all, &err), 0);
    assert_int_equal(n, 3);
    assert_null(st[0].key); /* the default image first */
    assert_string_equal(st[1].key, "alpha");
    assert_string_equal(st[2].key, "beta");
    assert_int_equal(st[1].count, 14); /* i % 3 == 0 in 0..39 */
    assert_int_equal(all.count, 40);
    assert_int_equal(all.total_ms, 10 * 40 * 41 / 2);
    assert_int_equal(all.p50_ms, 200); /* rank 20 of 10..400 */
    assert_int_equal(all.p95_ms, 380); /* rank 38 */
    history_stats_free(st, n);
    free(all.key);

    f.environment = "alpha";
    assert_int_equal(catalog_history_stats(fx->cat, &f, HISTORY_GROUP_STATUS, &st, &n, &all, &err),
                     0);
    assert_int_equal(n, 3); /* i = 0, 3, 6, 9, ...: status by i % 4 */
    assert_string_equal(st[0].key, "failed");
    assert_string_equal(st[1].key, "succeeded");
    assert_string_equal(st[2].key, "timeout");
    assert_int_equal(all.count, 14);
    history_stats_free(st, n);
    free(all.key);

    f = filter_any();
    f.has_since = true;
    f.since = T0 + 24 * HOUR; /* the second day: rows 24 .. 39 */
    assert_int_equal(catalog_history_stats(fx->cat, &f, HISTORY_GROUP_DAY, &st, &n, &all, &err), 0);
    assert_int_equal(all.count, 16);
    assert_true(n >= 1);
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(strlen(st[i].key), 10);
        if (i)
            assert_true(strcmp(st[i - 1].key, st[i].key) < 0);
        sum += st[i].count;
    }
    assert_int_equal(sum, 16);
    history_stats_free(st, n);
    free(all.key);
}

/* ---- upgrade ---- */

static void an_old_catalog_gains_recorded_at_words_and_chain(void **state)
{
    struct catalog_fixture *fx = *state;
    struct err err = ERR_INIT;
    int r = -1;

    /* a catalog at schema 3 with two executions, started out of order */
    sqlite3 *db = raw_open_migrated_before(fx->path, "0004_");
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO executions (id, image, code, code_sha256, timeout_s,"
                                  " status, queued_at, started_at, finished_at) VALUES"
                                  " ('ex_old1', 'i', 'print(\"legacy words\")', 'x', 30,"
                                  "  'succeeded', 100, 200, 300),"
                                  " ('ex_old2', 'i', 'print(2)', 'y', 30, 'running', 50, 150,"
                                  "  NULL)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(catalog_open(fx->path, &fx->cat, &err), 0);
    assert_int_equal(raw_int(fx->path, "SELECT recorded_at FROM executions WHERE id = 'ex_old1'"),
                     200);
    assert_int_equal(raw_int(fx->path, "SELECT recorded_at FROM executions WHERE id = 'ex_old2'"),
                     200); /* never before the row ahead of it */
    struct history_filter f = filter_any();
    f.text = "legacy";
    assert_int_equal(list_count(fx->cat, &f), 1);
    assert_int_equal(catalog_recover_executions(fx->cat, 1000, &r, &err), 0);
    assert_int_equal(r, 1);
    struct history_verify v = verify(fx->cat);
    /* the legacy code_sha256 values are not the code's: verify says so */
    assert_false(v.ok);
    assert_string_equal(v.first_bad_id, "ex_old1");
    assert_non_null(strstr(v.reason, "code_sha256"));
}

/* ---- query plans ---- */

/* True when a plan line reads executions without an index: "SCAN
 * executions" alone (not "... USING [COVERING] INDEX ..."), or sorts. */
static bool plan_line_bad(const char *detail, bool page)
{
    if (strncmp(detail, "SCAN executions", 15) == 0 && (detail[15] == '\0' || detail[15] == ' ') &&
        !strstr(detail, "USING INDEX") && !strstr(detail, "USING COVERING INDEX"))
        return true;
    return page && strstr(detail, "USE TEMP B-TREE") != NULL;
}

static int plan_check(sqlite3 *db, const char *sql, bool page)
{
    _cleanup_free_ char *eqp = xasprintf("EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st = NULL;
    int bad = 0, rc;

    rc = sqlite3_prepare_v2(db, eqp, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "cannot explain: %s\n  %s\n", sqlite3_errmsg(db), sql);
        return 1;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        if (plan_line_bad(detail, page)) {
            fprintf(stderr, "full scan: %s\n  in: %s\n", detail, sql);
            bad++;
        }
    }
    sqlite3_finalize(st);
    return bad;
}

static void no_query_of_the_api_scans_executions(void **state)
{
    struct catalog_fixture *fx = *state;
    struct buf sql = BUF_INIT(BUF_UNLIMITED);
    int bad = 0, checked = 0;

    seed(fx->cat, 50);
    /* every combination of filters: bit 0 environment, 1 version (with
     * environment only), 2 status, 3 principal, 4 code, 5 text, 6 since,
     * 7 until */
    for (unsigned m = 0; m < 256; m++) {
        if ((m & 2) && !(m & 1))
            continue;
        struct history_filter f = {
            .environment = (m & 1) ? "alpha" : NULL,
            .environment_version = (m & 2) ? 1 : 0,
            .status = (m & 4) ? EXEC_FAILED : -1,
            .principal = (m & 8) ? "user1" : NULL,
            .code_sha256 = (m & 16)
                               ? "0000000000000000000000000000000000000000000000000000000000000000"
                               : NULL,
            .text = (m & 32) ? "read_csv" : NULL,
            .has_since = (m & 64) != 0,
            .since = T0,
            .has_until = (m & 128) != 0,
            .until = T0 + 10 * HOUR,
        };
        history_sql(&f, 0, HISTORY_SQL_PAGE, &sql); /* a page, an export batch */
        bad += plan_check(fx->cat->db, buf_str(&sql), true);
        checked++;
        for (int g = HISTORY_GROUP_ENVIRONMENT; g <= HISTORY_GROUP_DAY; g++) {
            history_sql(&f, g, HISTORY_SQL_STATS, &sql);
            bad += plan_check(fx->cat->db, buf_str(&sql), false);
            checked++;
        }
    }
    for (size_t i = 0; history_chain_sql[i]; i++) {
        bad += plan_check(fx->cat->db, history_chain_sql[i], false);
        checked++;
    }
    for (size_t i = 0; history_verify_sql[i]; i++) {
        bad += plan_check(fx->cat->db, history_verify_sql[i], false);
        checked++;
    }
    for (size_t i = 0; catalog_storage_sql[i]; i++) { /* budget and retention (storage.c) */
        bad += plan_check(fx->cat->db, catalog_storage_sql[i], false);
        checked++;
    }
    assert_true(checked > 700);
    assert_int_equal(bad, 0);
    buf_release(&sql);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CATALOG_TEST(canonical_serialisation_is_exactly_as_documented),
        CATALOG_TEST(output_with_nul_and_control_bytes_is_stored_read_and_chained_whole),
        CATALOG_TEST(output_without_a_length_is_its_strlen),
        CATALOG_TEST(links_follow_the_order_rows_become_final),
        CATALOG_TEST(recovery_chains_interrupted_rows),
        CATALOG_TEST(rows_from_before_the_chain_are_chained_by_recovery),
        CATALOG_TEST(verify_of_an_intact_history_is_ok_on_file_and_in_memory),
        CATALOG_TEST(verify_finds_an_edited_stdout),
        CATALOG_TEST(verify_finds_edited_fields_code_and_files),
        CATALOG_TEST(verify_finds_a_deleted_row_at_the_next_one),
        CATALOG_TEST(verify_finds_swapped_rows),
        CATALOG_TEST(verify_finds_rows_removed_at_the_end_and_beyond_the_head),
        CATALOG_TEST(prune_keeps_a_checkpoint_that_verify_starts_from),
        CATALOG_TEST(prune_of_everything_leaves_an_empty_verified_history),
        CATALOG_TEST(prune_refuses_to_cut_a_broken_chain),
        CATALOG_TEST(prune_stops_at_the_first_link_finished_after_the_date),
        CATALOG_TEST(filters_select_what_they_say),
        CATALOG_TEST(pages_are_newest_first_and_stable_while_rows_arrive),
        CATALOG_TEST(export_batches_visit_every_row_once_in_order),
        CATALOG_TEST(stats_count_and_take_nearest_rank_percentiles),
        CATALOG_FILE_TEST(an_old_catalog_gains_recorded_at_words_and_chain),
        CATALOG_TEST(no_query_of_the_api_scans_executions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

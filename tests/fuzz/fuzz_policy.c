/* tests/fuzz/fuzz_policy.c - sandbox_policy_parse (sandbox/policy.c): an
 * environment's policy, JSON a curator sends with the environment.
 *
 * Input: one byte of choices (bit 0: the server allows the bridge network),
 * then the policy text (up to its first NUL). Properties: a policy that
 * parses gives limits within the server's maxima (a default timeout within
 * the maximum timeout) and a canonical text that parses again to the same
 * limits and the same text (idempotent); a failure is ERR_INVALID with a
 * one-line message. */
#include "core/config.h"
#include "core/xalloc.h"
#include "sandbox/sandbox.h"
#include "tests/fuzz/fuzz.h"

#include "core/banned.h"

/* The server's defaults, loaded once (no flags; the environment as it is). */
static struct config *server_config(void)
{
    static struct config cfg;
    static bool loaded;

    if (!loaded) {
        char name[] = "fuzz_policy";
        char *argv[] = {name, NULL};
        int argc = 1;
        struct err err = ERR_INIT;
        if (config_load(&cfg, &argc, argv, &err) < 0) {
            fprintf(stderr, "fuzz_policy: %s\n", err.msg);
            abort();
        }
        loaded = true;
    }
    return &cfg;
}

static bool same_limits(const struct sandbox_limits *a, const struct sandbox_limits *b)
{
    return sandbox_limits_equal(a, b) && a->timeout_default == b->timeout_default &&
           a->timeout_max == b->timeout_max && a->output_limit == b->output_limit &&
           a->pool_size == b->pool_size && a->recycle == b->recycle;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *cfg = server_config();
    uint8_t choice = fuzz_take_byte(&data, &size);
    char *text = xstrndup((const char *)data, size);
    struct sandbox_limits l, again;
    char *canon = NULL, *canon2 = NULL;
    struct err err = ERR_INIT;

    cfg->allow_network = choice & 1;
    if (sandbox_policy_parse(cfg, text, &l, &canon, &err) == 0) {
        FUZZ_CHECK(err.code == ERR_OK);
        FUZZ_CHECK(canon != NULL);
        FUZZ_CHECK(l.timeout_max >= 1 && l.timeout_max <= cfg->max_timeout);
        FUZZ_CHECK(l.timeout_default >= 1 && l.timeout_default <= l.timeout_max);
        FUZZ_CHECK(l.memory <= cfg->max_memory || l.memory == cfg->memory_limit);
        FUZZ_CHECK(l.cpu_millis <= cfg->max_cpu_millis || l.cpu_millis == cfg->cpu_millis);
        FUZZ_CHECK(l.pids <= cfg->max_pids || l.pids == cfg->pids_limit);
        FUZZ_CHECK(l.pool_size >= 0 && l.pool_size <= cfg->max_pool_size);
        FUZZ_CHECK(l.recycle >= 1);
        FUZZ_CHECK(!l.network || cfg->allow_network || strcmp(cfg->network_mode, "bridge") == 0);
        /* the stored text means the same policy, and is stored as it is */
        struct err err2 = ERR_INIT;
        FUZZ_CHECK(sandbox_policy_parse(cfg, canon, &again, &canon2, &err2) == 0);
        FUZZ_CHECK(same_limits(&l, &again));
        FUZZ_CHECK(strcmp(canon, canon2) == 0);
    } else {
        FUZZ_CHECK(err.code == ERR_INVALID);
        fuzz_check_err(&err);
    }
    free(canon);
    free(canon2);
    free(text);
    return 0;
}

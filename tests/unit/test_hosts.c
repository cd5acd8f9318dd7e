/* tests/unit/test_hosts.c - the Host names and origins the server trusts
 * (web/hosts.c) and the per-client counts and body budget of the connection
 * guard (web/guard.c): the security boundary against DNS rebinding, foreign
 * pages and clients that hoard connections, as pure functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/cleanup.h"
#include "core/config.h"
#include "core/err.h"
#include "web/web_internal.h"

#include "core/banned.h"

static void init_ok(struct web_hosts *h, const char *listen, bool tls, const char *allowed,
                    const char *cors)
{
    struct err err = ERR_INIT;
    if (web_hosts_init(h, listen, tls, allowed, cors, &err) != 0)
        fail_msg("web_hosts_init(%s, %s, %s): %s", listen, allowed, cors, err.msg);
}

static void init_fails(const char *listen, const char *allowed, const char *cors,
                       const char *needle)
{
    struct web_hosts h;
    struct err err = ERR_INIT;
    if (web_hosts_init(&h, listen, false, allowed, cors, &err) != -1) {
        web_hosts_release(&h);
        fail_msg("accepted listen=%s allowed=%s cors=%s", listen, allowed, cors);
    }
    assert_int_equal(err.code, ERR_INVALID);
    if (!strstr(err.msg, needle))
        fail_msg("'%s' does not say '%s'", err.msg, needle);
}

static void loopback_names_are_answered_and_others_refused(void **state)
{
    (void)state;
    struct web_hosts h;
    init_ok(&h, "127.0.0.1:8000", false, "", "");
    static const char *const ok[] = {"127.0.0.1:8000", "127.0.0.1",  "localhost:8000",
                                     "LOCALHOST:8000", "[::1]:8000", "[::1]",
                                     "localhost:80"};
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
        if (!web_hosts_host_ok(&h, ok[i]))
            fail_msg("refused Host %s", ok[i]);
    static const char *const bad[] = {"attacker.example:8000",
                                      "attacker.example",
                                      "127.0.0.1.attacker.example:8000",
                                      "localhost.:8000",
                                      "127.0.0.2:8000",
                                      "localhost:8000:1",
                                      "localhost:",
                                      "localhost:abc",
                                      "localhost:99999",
                                      "[::1",
                                      "[::1]x",
                                      ":8000",
                                      "",
                                      "localhost :8000",
                                      "user@localhost:8000"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (web_hosts_host_ok(&h, bad[i]))
            fail_msg("answered Host '%s'", bad[i]);
    assert_false(web_hosts_host_ok(&h, NULL));
    web_hosts_release(&h);
}

/* The fix for DNS rebinding: the own origin comes from the listen address,
 * never from the request's Host. */
static void own_origins_come_from_the_listen_address(void **state)
{
    (void)state;
    struct web_hosts h;
    init_ok(&h, "127.0.0.1:8000", false, "", "");
    assert_int_equal(web_hosts_origin(&h, "http://127.0.0.1:8000"), WEB_ORIGIN_OWN);
    assert_int_equal(web_hosts_origin(&h, "http://localhost:8000"), WEB_ORIGIN_OWN);
    assert_int_equal(web_hosts_origin(&h, "http://[::1]:8000"), WEB_ORIGIN_OWN);
    /* another port of the same machine is another site */
    assert_int_equal(web_hosts_origin(&h, "http://localhost:3000"), WEB_ORIGIN_FOREIGN);
    assert_int_equal(web_hosts_origin(&h, "https://127.0.0.1:8000"), WEB_ORIGIN_FOREIGN);
    assert_int_equal(web_hosts_origin(&h, "http://attacker.example:8000"), WEB_ORIGIN_FOREIGN);
    assert_int_equal(web_hosts_origin(&h, "null"), WEB_ORIGIN_FOREIGN);
    assert_int_equal(web_hosts_origin(&h, "http://127.0.0.1"), WEB_ORIGIN_FOREIGN);
    web_hosts_release(&h);

    init_ok(&h, "127.0.0.1:8443", true, "", "");
    assert_int_equal(web_hosts_origin(&h, "https://127.0.0.1:8443"), WEB_ORIGIN_OWN);
    assert_int_equal(web_hosts_origin(&h, "http://127.0.0.1:8443"), WEB_ORIGIN_FOREIGN);
    web_hosts_release(&h);

    /* the default port has an origin without it */
    init_ok(&h, "localhost:80", false, "", "");
    assert_int_equal(web_hosts_origin(&h, "http://localhost"), WEB_ORIGIN_OWN);
    assert_int_equal(web_hosts_origin(&h, "http://localhost:80"), WEB_ORIGIN_OWN);
    web_hosts_release(&h);
}

static void every_address_listens_but_names_only_loopback(void **state)
{
    (void)state;
    struct web_hosts h;
    init_ok(&h, "0.0.0.0:8000", false, "", "");
    assert_true(web_hosts_host_ok(&h, "localhost:8000"));
    assert_false(web_hosts_host_ok(&h, "0.0.0.0:8000"));
    assert_false(web_hosts_host_ok(&h, "192.168.1.5:8000"));
    web_hosts_release(&h);
    init_ok(&h, "8000", false, "", "");
    assert_false(web_hosts_host_ok(&h, "192.168.1.5:8000"));
    assert_int_equal(h.port, 8000);
    web_hosts_release(&h);
    /* a named listen address is answered to */
    init_ok(&h, "192.168.1.5:8000", false, "", "");
    assert_true(web_hosts_host_ok(&h, "192.168.1.5:8000"));
    assert_int_equal(web_hosts_origin(&h, "http://192.168.1.5:8000"), WEB_ORIGIN_OWN);
    web_hosts_release(&h);
}

static void allowed_hosts_add_names_and_their_proxied_origins(void **state)
{
    (void)state;
    struct web_hosts h;
    init_ok(&h, "0.0.0.0:8000", false, " Envhub.Example , 10.0.0.5,[fd00::1]", "");
    assert_true(web_hosts_host_ok(&h, "envhub.example"));
    assert_true(web_hosts_host_ok(&h, "ENVHUB.EXAMPLE:443"));
    assert_true(web_hosts_host_ok(&h, "10.0.0.5:8000"));
    assert_true(web_hosts_host_ok(&h, "[fd00::1]:8000"));
    assert_false(web_hosts_host_ok(&h, "sub.envhub.example"));
    assert_int_equal(web_hosts_origin(&h, "http://envhub.example:8000"), WEB_ORIGIN_OWN);
    assert_int_equal(web_hosts_origin(&h, "https://envhub.example"), WEB_ORIGIN_OWN);
    assert_int_equal(web_hosts_origin(&h, "https://envhub.example:8443"), WEB_ORIGIN_FOREIGN);
    web_hosts_release(&h);
}

static void malformed_settings_are_refused_naming_the_entry(void **state)
{
    (void)state;
    init_fails("127.0.0.1:8000", "*", "", "ENVHUB_ALLOWED_HOSTS: '*'");
    init_fails("127.0.0.1:8000", "envhub.example:80", "", "without port");
    init_fails("127.0.0.1:8000", "a b", "", "'a b'");
    init_fails("127.0.0.1:8000", "", "*", "wildcard");
    init_fails("127.0.0.1:8000", "", "http://app.example/path", "'http://app.example/path'");
    init_fails("127.0.0.1:8000", "", "ftp://app.example", "ftp://app.example");
    init_fails("127.0.0.1:8000", "", "app.example", "ENVHUB_CORS_ORIGINS");
    init_fails("127.0.0.1:8000", "", "http://user@app.example", "user@");
    init_fails("nonsense", "", "", "ENVHUB_LISTEN");
}

static void listed_origins_are_listed_and_only_those(void **state)
{
    (void)state;
    struct web_hosts h;
    init_ok(&h, "127.0.0.1:8000", false, "",
            "http://app.example.test, https://ui.example.test:8443");
    assert_int_equal(web_hosts_origin(&h, "http://app.example.test"), WEB_ORIGIN_LISTED);
    assert_int_equal(web_hosts_origin(&h, "https://ui.example.test:8443"), WEB_ORIGIN_LISTED);
    assert_int_equal(web_hosts_origin(&h, "https://app.example.test"), WEB_ORIGIN_FOREIGN);
    assert_int_equal(web_hosts_origin(&h, "http://app.example.test:80"), WEB_ORIGIN_FOREIGN);
    assert_int_equal(web_hosts_origin(&h, "http://app.example.test.evil"), WEB_ORIGIN_FOREIGN);
    assert_int_equal(web_hosts_origin(&h, "http://127.0.0.1:8000"), WEB_ORIGIN_OWN);
    web_hosts_release(&h);
}

static struct config guard_config(void)
{
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_connections_per_client = 3;
    cfg.request_deadline = 60;
    cfg.body_memory = 1000;
    return cfg;
}

static void connections_are_counted_per_address(void **state)
{
    (void)state;
    struct config cfg = guard_config();
    struct guard *g = web_guard_new(&cfg);
    assert_int_equal(web_guard_client_enter(g, "127.0.0.1"), 1);
    assert_int_equal(web_guard_client_enter(g, "127.0.0.1"), 2);
    assert_int_equal(web_guard_client_enter(g, "127.0.0.2"), 1);
    assert_int_equal(web_guard_client_enter(g, "::1"), 1);
    assert_int_equal(web_guard_client_enter(g, "127.0.0.1"), 3);
    assert_int_equal(web_guard_client_leave(g, "127.0.0.1"), 2);
    assert_int_equal(web_guard_client_leave(g, "127.0.0.2"), 0);
    /* gone when it reaches 0; leaving an unknown address changes nothing */
    assert_int_equal(web_guard_client_leave(g, "127.0.0.2"), 0);
    assert_int_equal(web_guard_client_enter(g, "127.0.0.2"), 1);
    /* many addresses, many in each bucket */
    char addr[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(addr, sizeof(addr), "10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(web_guard_client_enter(g, addr), 1);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(addr, sizeof(addr), "10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(web_guard_client_leave(g, addr), 0);
    }
    web_guard_free(g); /* frees what is still counted */
}

static void the_body_budget_is_shared_and_never_overdrawn(void **state)
{
    (void)state;
    struct config cfg = guard_config();
    struct guard *g = web_guard_new(&cfg);
    size_t held = 0;
    assert_true(web_guard_body_take(g, 600, &held));
    assert_false(web_guard_body_take(g, 401, &held));
    assert_int_equal(held, 600);
    assert_true(web_guard_body_take(g, 400, &held));
    assert_false(web_guard_body_take(g, 1, &held));
    web_guard_body_give(g, 600);
    assert_true(web_guard_body_take(g, 600, &held));
    web_guard_body_give(g, 5000); /* more than held: back to 0, not below */
    assert_true(web_guard_body_take(g, 1000, &held));
    assert_false(web_guard_body_take(g, 1, &held));
    web_guard_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loopback_names_are_answered_and_others_refused),
        cmocka_unit_test(own_origins_come_from_the_listen_address),
        cmocka_unit_test(every_address_listens_but_names_only_loopback),
        cmocka_unit_test(allowed_hosts_add_names_and_their_proxied_origins),
        cmocka_unit_test(malformed_settings_are_refused_naming_the_entry),
        cmocka_unit_test(listed_origins_are_listed_and_only_those),
        cmocka_unit_test(connections_are_counted_per_address),
        cmocka_unit_test(the_body_budget_is_shared_and_never_overdrawn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

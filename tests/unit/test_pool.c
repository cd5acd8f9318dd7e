/* tests/unit/test_pool.c - the warm pools' demand estimate and target
 * (executor/pool.c): the exponentially weighted take rate, the moving
 * average of refill times, and the target clamped between the configured
 * floor and ENVHUB_MAX_POOL_SIZE. Pure functions: no engine, no threads. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "executor/executor_internal.h"

#include "core/banned.h"

#define T0 1000000 /* a monotonic time far from 0 (0 means "no take yet") */

static void no_takes_no_rate(void **state)
{
    (void)state;
    struct pool_demand d = {0};
    assert_true(exec_demand_rate(&d, T0) == 0);
}

static void steady_takes_converge_to_their_rate(void **state)
{
    (void)state;
    struct pool_demand d = {0};
    /* 4 takes a second for 5 windows: the estimate is 4/s within 1% */
    for (int64_t t = T0; t < T0 + 5 * POOL_RATE_WINDOW_MS; t += 250)
        exec_demand_take(&d, t);
    double r = exec_demand_rate(&d, d.at_ms);
    assert_true(fabs(r - 4.0) < 0.04 + 4.0 / (POOL_RATE_WINDOW_MS / 250.0));
}

static void rate_fades_when_takes_stop(void **state)
{
    (void)state;
    struct pool_demand d = {0};
    for (int64_t t = T0; t < T0 + 3 * POOL_RATE_WINDOW_MS; t += 100)
        exec_demand_take(&d, t);
    double r0 = exec_demand_rate(&d, d.at_ms);
    double r1 = exec_demand_rate(&d, d.at_ms + POOL_RATE_WINDOW_MS);
    /* one time constant later: e^-1 of it */
    assert_true(fabs(r1 - r0 * exp(-1)) < 1e-9);
    assert_true(exec_demand_rate(&d, d.at_ms + 20 * POOL_RATE_WINDOW_MS) < 0.001);
    /* a clock read before the last take does not make the rate grow */
    assert_true(exec_demand_rate(&d, d.at_ms - 5000) == r0);
}

static void one_take_counts_once_over_the_window(void **state)
{
    (void)state;
    struct pool_demand d = {0};
    exec_demand_take(&d, T0);
    assert_true(fabs(exec_demand_rate(&d, T0) - 1000.0 / POOL_RATE_WINDOW_MS) < 1e-12);
}

static void refill_average_starts_at_the_first_and_moves_by_its_weight(void **state)
{
    (void)state;
    struct pool_demand d = {0};
    exec_demand_refill(&d, 0.5);
    assert_true(d.refill_s == 0.5 && d.refills == 1);
    exec_demand_refill(&d, 1.5);
    assert_true(fabs(d.refill_s - (POOL_REFILL_WEIGHT * 1.5 + (1 - POOL_REFILL_WEIGHT) * 0.5)) <
                1e-12);
    assert_true(fabs(d.refill_sum - 2.0) < 1e-12 && d.refills == 2);
    exec_demand_refill(&d, -1); /* a clock step: counted as 0 */
    assert_true(d.refill_s >= 0);
}

static void target_is_the_floor_without_demand(void **state)
{
    (void)state;
    assert_int_equal(exec_pool_target(2, 10, 0, 0), 2);
    assert_int_equal(exec_pool_target(2, 10, 0, 0.4), 2);
    assert_int_equal(exec_pool_target(2, 10, 5, 0), 2);    /* no refill measured yet */
    assert_int_equal(exec_pool_target(2, 10, 2, 0.5), 2);  /* 1 take per refill */
    assert_int_equal(exec_pool_target(2, 10, NAN, 1), 2);  /* nonsense stays at the floor */
    assert_int_equal(exec_pool_target(3, 10, 1, 0.25), 3); /* floor above the need */
}

static void target_follows_rate_times_refill_time(void **state)
{
    (void)state;
    assert_int_equal(exec_pool_target(2, 10, 10, 0.3), 3);  /* 3 takes per refill */
    assert_int_equal(exec_pool_target(2, 10, 10, 0.31), 4); /* 3.1: rounded up */
    assert_int_equal(exec_pool_target(1, 10, 8, 0.5), 4);
    assert_int_equal(exec_pool_target(1, 10, 3.0000000001, 1), 3); /* rounding noise */
}

static void target_stops_at_the_ceiling(void **state)
{
    (void)state;
    assert_int_equal(exec_pool_target(2, 8, 100, 1), 8);
    assert_int_equal(exec_pool_target(2, 8, 8, 1), 8);
    /* a floor above the ceiling (a policy allowed before the ceiling was lowered) wins */
    assert_int_equal(exec_pool_target(12, 8, 100, 1), 12);
}

static void pool_off_stays_off(void **state)
{
    (void)state;
    assert_int_equal(exec_pool_target(0, 10, 100, 1), 0);
    assert_int_equal(exec_pool_target(-1, 10, 100, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_takes_no_rate),
        cmocka_unit_test(steady_takes_converge_to_their_rate),
        cmocka_unit_test(rate_fades_when_takes_stop),
        cmocka_unit_test(one_take_counts_once_over_the_window),
        cmocka_unit_test(refill_average_starts_at_the_first_and_moves_by_its_weight),
        cmocka_unit_test(target_is_the_floor_without_demand),
        cmocka_unit_test(target_follows_rate_times_refill_time),
        cmocka_unit_test(target_stops_at_the_ceiling),
        cmocka_unit_test(pool_off_stays_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

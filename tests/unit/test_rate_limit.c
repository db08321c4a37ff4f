/*
 * test_rate_limit — the write limit's token buckets (rate_limit.h): refill
 * at the rate, never past the burst, a bounded LRU table of clients.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "traind/rate_limit.h"
#include "tl.h"

START_TEST(ratelimit_buckets)
{
    rate_limit *rl = rate_limit_new(10, 5, 4);   /* 10/s, burst 5, 4 clients */
    ck_assert_double_eq(rate_limit_rate(rl), 10);
    double t = 100.0;
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq(rate_limit_take(rl, "a", t), 0);
    double w = rate_limit_take(rl, "a", t);
    ck_assert_double_eq_tol(w, 0.1, 1e-9);            /* the next token in 1/rate s */
    ck_assert_double_eq_tol(rate_limit_take(rl, "a", t + 0.05), 0.05, 1e-9);
    ck_assert_double_eq(rate_limit_take(rl, "a", t + 0.1), 0);
    ck_assert(rate_limit_take(rl, "a", t + 0.1) > 0);
    /* refills at the rate, never past the burst */
    t += 100;
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq(rate_limit_take(rl, "a", t), 0);
    ck_assert(rate_limit_take(rl, "a", t) > 0);
    /* a clock that goes back does not mint tokens */
    ck_assert(rate_limit_take(rl, "a", t - 50) > 0);
    ck_assert_uint_eq(rate_limit_clients(rl), 1);

    /* bounded: the 5th client pushes out the one seen least recently */
    ck_assert_double_eq(rate_limit_take(rl, "b", t), 0);
    ck_assert_double_eq(rate_limit_take(rl, "c", t), 0);
    ck_assert_double_eq(rate_limit_take(rl, "d", t), 0);
    ck_assert_uint_eq(rate_limit_clients(rl), 4);
    ck_assert(rate_limit_take(rl, "a", t) > 0);      /* a is now the most recent */
    ck_assert_double_eq(rate_limit_take(rl, "e", t), 0);   /* evicts b */
    ck_assert_uint_eq(rate_limit_clients(rl), 4);
    ck_assert(rate_limit_take(rl, "a", t) > 0);      /* a kept its empty bucket */
    /* many clients: the table never grows past its bound and lookups stay right */
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        ck_assert_double_eq(rate_limit_take(rl, key, t), 0);
        ck_assert_uint_le(rate_limit_clients(rl), 4);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq(rate_limit_take(rl, "10.0.39.15", t), 0);
    ck_assert(rate_limit_take(rl, "10.0.39.15", t) > 0);  /* the last one kept its bucket */

    /* new settings keep the buckets, capped at the new burst */
    rate_limit_configure(rl, 1, 2);
    t += 100;
    ck_assert_double_eq(rate_limit_take(rl, "10.0.39.15", t), 0);
    ck_assert_double_eq(rate_limit_take(rl, "10.0.39.15", t), 0);
    ck_assert_double_eq_tol(rate_limit_take(rl, "10.0.39.15", t), 1.0, 1e-9);
    /* rate 0: unlimited */
    rate_limit_configure(rl, 0, 0);
    ck_assert_double_eq(rate_limit_rate(rl), 0);
    for (int i = 0; i < 1000; i++)
        ck_assert_double_eq(rate_limit_take(rl, "10.0.39.15", t), 0);
    rate_limit_free(rl);
    rate_limit_free(NULL);
    ck_assert_double_eq(rate_limit_take(NULL, "x", 0), 0);

    /* a key longer than any address is cut, not overflowed */
    rl = rate_limit_new(1, 1, 0);
    char longkey[300];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    ck_assert_double_eq(rate_limit_take(rl, longkey, 1), 0);
    ck_assert(rate_limit_take(rl, longkey, 1) > 0);
    rate_limit_free(rl);
}
END_TEST

static Suite *rate_limit_suite(void)
{
    Suite *s = suite_create("rate_limit");
    TCase *tc = tcase_create("buckets");
    tcase_add_test(tc, ratelimit_buckets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tl_run_suite(rate_limit_suite()) ? 1 : 0;
}

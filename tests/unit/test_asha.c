/*
 * test_asha — asynchronous successive halving (traind/asha.h): the rungs,
 * a hand-worked sequence, NaN last, repeated reports decided once, replay
 * giving the same decisions, and in random asynchronous sweeps the bounds
 * of the paper: at most ⌊n_k/η⌋ leave rung k, at most ⌈n/η^k⌉ reach it.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "traind/asha.h"
#include "traind/experiment_asha.h"
#include "traind/util.h"
#include "traind/rng.h"
#include "tl.h"

START_TEST(rungs_below_total_steps)
{
    asha a;
    ck_assert_int_eq(asha_init(&a, 3, 200, 2000), 0);
    ck_assert_int_eq(a.n_rungs, 3);
    ck_assert_int_eq(a.rungs[0].step, 200);
    ck_assert_int_eq(a.rungs[1].step, 600);
    ck_assert_int_eq(a.rungs[2].step, 1800);
    ck_assert_int_eq(asha_rung_at(&a, 600), 1);
    ck_assert_int_eq(asha_rung_at(&a, 601), -1);
    asha_free(&a);
    ck_assert_int_eq(asha_init(&a, 3, 200, 1800), 0);
    ck_assert_int_eq(a.n_rungs, 2);            /* a rung at the end would stop nothing */
    asha_free(&a);
    ck_assert_int_eq(asha_init(&a, 1.5, 200, 1800), -EINVAL);
    ck_assert_int_eq(asha_init(&a, 3, 0, 1800), -EINVAL);
}
END_TEST

START_TEST(hand_worked_sequence)
{
    asha a;
    asha_init(&a, 3, 100, 10000);
    asha_decision d, p[1];
    size_t np;
    /* trials 0 and 1 arrive first: ⌊1/3⌋ = ⌊2/3⌋ = 0 may continue */
    asha_report(&a, 0, 0, 2.0, &d, p, 1, &np);
    ck_assert(d.action == ASHA_STOP && np == 0 && d.quota == 0);
    asha_report(&a, 1, 0, 1.0, &d, p, 1, &np);
    ck_assert(d.action == ASHA_STOP && np == 0);
    /* trial 2 (3.0) makes the quota 1: the best so far, trial 1, is promoted */
    asha_report(&a, 2, 0, 3.0, &d, p, 1, &np);
    ck_assert(d.action == ASHA_STOP);
    ck_assert_int_eq(d.rank, 3);
    ck_assert_int_eq(np, 1);
    ck_assert_int_eq(p[0].trial, 1);
    ck_assert(p[0].action == ASHA_CONTINUE);
    ck_assert_ptr_nonnull(strstr(p[0].reason, "ranks 1 of 3"));
    /* trials 3, 4: quota stays 1, already used */
    asha_report(&a, 3, 0, 0.5, &d, p, 1, &np);
    ck_assert(d.action == ASHA_STOP && np == 0);
    ck_assert_ptr_nonnull(strstr(d.reason, "already have"));
    asha_report(&a, 4, 0, 0.7, &d, p, 1, &np);
    ck_assert(d.action == ASHA_STOP && np == 0);
    /* trial 5 makes it 2: the best unpromoted (trial 3, 0.5) goes on */
    asha_report(&a, 5, 0, 9.0, &d, p, 1, &np);
    ck_assert(d.action == ASHA_STOP && np == 1 && p[0].trial == 3);
    /* 6, 7 nothing; 8 (the best of all) makes it 3 and is promoted itself */
    asha_report(&a, 6, 0, 8.0, &d, p, 1, &np);
    asha_report(&a, 7, 0, 8.5, &d, p, 1, &np);
    asha_report(&a, 8, 0, 0.1, &d, p, 1, &np);
    ck_assert(d.action == ASHA_CONTINUE && np == 0);
    ck_assert_int_eq(asha_rung_count(&a, 0), 9);
    ck_assert_int_eq(asha_rung_promoted(&a, 0), 3);
    /* asked again: the same answers, nothing changes */
    asha_report(&a, 1, 0, 1.0, &d, p, 1, &np);
    ck_assert(d.action == ASHA_CONTINUE && np == 0);
    asha_report(&a, 0, 0, 2.0, &d, p, 1, &np);
    ck_assert(d.action == ASHA_STOP && np == 0);
    ck_assert_int_eq(asha_rung_count(&a, 0), 9);
    ck_assert_int_eq(asha_rung_promoted(&a, 0), 3);
    asha_free(&a);
}
END_TEST

START_TEST(nan_ranks_last)
{
    asha a;
    asha_init(&a, 2, 10, 1000);
    asha_decision d, p[1];
    size_t np;
    asha_report(&a, 0, 0, NAN, &d, p, 1, &np);
    asha_report(&a, 1, 0, 5.0, &d, p, 1, &np);
    ck_assert(d.action == ASHA_CONTINUE);       /* ⌊2/2⌋ = 1: 5.0 beats NaN */
    ck_assert_int_eq(d.rank, 1);
    asha_free(&a);
}
END_TEST

/* One random asynchronous sweep: n trials, each with a fixed random
 * "quality"; the metric at a rung is quality plus noise.  Trials run in a
 * random interleaving; a stopped trial waits until a later report promotes
 * it.  Returns the decisions' log for replay. */
typedef struct rep { int trial, rung; double metric; } rep;

static size_t simulate(uint64_t seed, int n, double eta, rep *log, size_t cap, asha *a)
{
    rng_t r;
    rng_seed(&r, seed, 3);
    asha_init(a, eta, 10, 10 * 81 * 2);
    double q[256];
    int next_rung[256];           /* the rung a runnable trial reaches next; -1 = waiting, -2 = done */
    for (int t = 0; t < n; t++) {
        q[t] = rng_uniform(&r);
        next_rung[t] = 0;
    }
    size_t nlog = 0;
    for (;;) {
        int runnable[256], nr = 0;
        for (int t = 0; t < n; t++)
            if (next_rung[t] >= 0)
                runnable[nr++] = t;
        if (nr == 0)
            break;
        int t = runnable[rng_below(&r, (uint64_t)nr)];
        int k = next_rung[t];
        if (k >= a->n_rungs) {
            next_rung[t] = -2;     /* trained to the end */
            continue;
        }
        double m = q[t] + 0.05 * rng_uniform(&r) * (k + 1);
        asha_decision d, p[1];
        size_t np;
        asha_report(a, t, k, m, &d, p, 1, &np);
        if (nlog < cap)
            log[nlog++] = (rep){t, k, m};
        next_rung[t] = d.action == ASHA_CONTINUE ? k + 1 : -1;
        if (np)
            next_rung[p[0].trial] = p[0].rung + 1;
    }
    return nlog;
}

START_TEST(bounds_hold_in_random_sweeps)
{
    static const double etas[] = {2, 3, 4};
    static const int ns[] = {1, 2, 5, 9, 20, 27, 50, 100, 243};
    rep log[4096];
    for (int e = 0; e < 3; e++)
        for (int i = 0; i < 9; i++)
            for (uint64_t seed = 1; seed <= 8; seed++) {
                asha a;
                size_t nlog = simulate(seed, ns[i], etas[e], log, 4096, &a);
                double eta = etas[e];
                for (int k = 0; k < a.n_rungs; k++) {
                    size_t nk = asha_rung_count(&a, k);
                    ck_assert_uint_le(asha_rung_promoted(&a, k), (size_t)floor(nk / eta + 1e-9));
                    double bound = ceil(ns[i] / pow(eta, k) - 1e-9);
                    ck_assert_msg((double)nk <= bound, "eta %g n %d seed %d: rung %d holds %zu > %g", eta,
                                  ns[i], (int)seed, k, nk, bound);
                    if (k + 1 < a.n_rungs)
                        ck_assert_uint_le(asha_rung_count(&a, k + 1), asha_rung_promoted(&a, k));
                }
                /* every trial reached rung 0 */
                ck_assert_int_eq(asha_rung_count(&a, 0), ns[i]);
                /* replaying the reports in order gives the same decisions */
                asha b;
                asha_init(&b, eta, 10, 10 * 81 * 2);
                for (size_t j = 0; j < nlog; j++) {
                    asha_decision d, p[1];
                    size_t np;
                    asha_report(&b, log[j].trial, log[j].rung, log[j].metric, &d, p, 1, &np);
                }
                for (int k = 0; k < a.n_rungs; k++) {
                    ck_assert_int_eq(asha_rung_count(&b, k), asha_rung_count(&a, k));
                    for (size_t j = 0; j < a.rungs[k].n; j++)
                        ck_assert(a.rungs[k].recs[j].promoted == b.rungs[k].recs[j].promoted);
                }
                asha_free(&a);
                asha_free(&b);
            }
}
END_TEST

/* experiment_asha: reports recorded in asha.jsonl replay into the same
 * decisions; a torn last line is cut off (and a later append stays whole);
 * junk lines are skipped; pause steps follow the promotions; the metric is
 * read from a metrics.jsonl point. */
START_TEST(record_replays_the_same_decisions)
{
    char *dir = tl_tmpdir("traind-asha-rec");
    static const double m[6] = {0.5, 0.4, 0.3, 0.6, 0.2, 0.45};
    exp_asha *a = exp_asha_new(3, 10, 90, -1, 6);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(exp_asha_pause_at(a, 0), 10);
    for (size_t k = 0; k < 6; k++) {
        ck_assert_int_eq(exp_asha_record(dir, k, 0, 10, m[k]), 0);
        asha_decision d, p;
        size_t np;
        exp_asha_apply(a, k, 0, m[k], &d, &p, &np);
    }
    /* 6 at rung 0 (quota 2): trial 2 at its report, trial 4 at its */
    ck_assert_int_eq(exp_asha_pause_at(a, 2), 30);
    ck_assert_int_eq(exp_asha_pause_at(a, 4), 30);
    ck_assert_int_eq(exp_asha_pause_at(a, 0), 10);
    ck_assert(exp_asha_known(a, 3, 0) && !exp_asha_known(a, 3, 1));
    const char *jobs[6] = {"a", "b", "c", "d", "e", "f"};
    cJSON *want = exp_asha_decisions_json(a, jobs);
    /* a torn line and a junk line */
    char *path = xasprintf("%s/" EXP_ASHA_FILE, dir), *text = tl_read(path, NULL);
    char *bad = xasprintf("%s{\"trial\":99,\"rung\":0,\"step\":10,\"metric\":1}\n{\"trial\":1,\"ru", text);
    ck_assert_int_eq(tl_write(path, bad), 0);
    exp_asha *b = exp_asha_new(3, 10, 90, -1, 6);
    ck_assert_int_eq(exp_asha_replay(b, dir), 0);
    cJSON *got = exp_asha_decisions_json(b, jobs);
    ck_assert(cJSON_Compare(want, got, 1));
    /* the torn tail is gone: a new report appends a whole line */
    ck_assert_int_eq(exp_asha_record(dir, 2, 1, 30, 0.1), 0);
    exp_asha *c = exp_asha_new(3, 10, 90, -1, 6);
    ck_assert_int_eq(exp_asha_replay(c, dir), 0);
    ck_assert(exp_asha_known(c, 2, 1));
    /* a metrics.jsonl point's value */
    char *mp = xasprintf("%s/metrics.jsonl", dir);
    ck_assert_int_eq(tl_write(mp, "{\"step\":5,\"loss_avg\":2}\n{\"step\":10,\"loss_avg\":1.25,\"eval_loss\":1.5}\n"
                                  "{\"step\":100,\"loss_avg\":0.5}\n"), 0);
    double v = 0;
    ck_assert_int_eq(exp_asha_read_metric(dir, 10, true, &v), 0);
    ck_assert(v == 1.5);
    ck_assert_int_eq(exp_asha_read_metric(dir, 10, false, &v), 0);
    ck_assert(v == 1.25);
    ck_assert_int_eq(exp_asha_read_metric(dir, 5, true, &v), -ENODATA);
    ck_assert_int_eq(exp_asha_read_metric(dir, 1, false, &v), -ENOENT);
    /* past the 64 KiB tail it looks at first: the whole file */
    size_t cap = 1 << 20, len = 0;
    char *big = xmalloc(cap);
    len += (size_t)snprintf(big, cap, "{\"step\":7,\"loss_avg\":0.75}\n");
    for (long st = 8; len < 200000; st++)
        len += (size_t)snprintf(big + len, cap - len, "{\"step\":%ld,\"loss_avg\":1}\n", st);
    ck_assert_int_eq(tl_write(mp, big), 0);
    ck_assert_int_eq(exp_asha_read_metric(dir, 7, false, &v), 0);
    ck_assert(v == 0.75);
    free(big);
    cJSON_Delete(want);
    cJSON_Delete(got);
    exp_asha_free(a);
    exp_asha_free(b);
    exp_asha_free(c);
    free(mp);
    free(bad);
    free(text);
    free(path);
    tl_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("asha");
    TCase *tc = tcase_create("asha");
    tcase_add_test(tc, rungs_below_total_steps);
    tcase_add_test(tc, hand_worked_sequence);
    tcase_add_test(tc, nan_ranks_last);
    tcase_add_test(tc, bounds_hold_in_random_sweeps);
    tcase_add_test(tc, record_replays_the_same_decisions);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

/*
 * test_asha — asynchronous successive halving (traind/asha.h): the rungs,
 * a hand-worked sequence, NaN last, repeated reports decided once, replay
 * giving the same decisions; in random asynchronous sweeps (random report
 * orders, tied metrics, NaN) every decision equals the one of the paper's
 * get_job (tests/lib/asha_ref.c, written apart from asha.c); and whatever
 * the order the trials report in, the best ⌊n/η⌋ at every rung go on.
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
#include "asha_ref.h"

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
    asha_report(&a, 0, 0, 2.0, &d, p, &np);
    ck_assert(d.action == ASHA_STOP && np == 0 && d.quota == 0);
    asha_report(&a, 1, 0, 1.0, &d, p, &np);
    ck_assert(d.action == ASHA_STOP && np == 0);
    /* trial 2 (3.0) makes ⌊n/η⌋ 1: the best so far, trial 1, is promoted */
    asha_report(&a, 2, 0, 3.0, &d, p, &np);
    ck_assert(d.action == ASHA_STOP);
    ck_assert_int_eq(d.rank, 3);
    ck_assert_int_eq(np, 1);
    ck_assert_int_eq(p[0].trial, 1);
    ck_assert(p[0].action == ASHA_CONTINUE);
    ck_assert_ptr_nonnull(strstr(p[0].reason, "ranks 1 of 3"));
    /* trial 3 (0.5) is now the best of 4: it goes on, although trial 1 has
     * already left the rung (no quota: the paper's rule) */
    asha_report(&a, 3, 0, 0.5, &d, p, &np);
    ck_assert(d.action == ASHA_CONTINUE && np == 0);
    ck_assert_int_eq(d.rank, 1);
    /* trial 4 (0.7): second of 5, ⌊5/3⌋ = 1 */
    asha_report(&a, 4, 0, 0.7, &d, p, &np);
    ck_assert(d.action == ASHA_STOP && np == 0);
    ck_assert_ptr_nonnull(strstr(d.reason, "only the best 1"));
    /* trial 5 makes it 2: the best unpromoted (trial 4, 0.7) goes on */
    asha_report(&a, 5, 0, 9.0, &d, p, &np);
    ck_assert(d.action == ASHA_STOP && np == 1 && p[0].trial == 4);
    /* 6, 7 nothing; 8 (the best of all) makes it 3 and goes on itself */
    asha_report(&a, 6, 0, 8.0, &d, p, &np);
    ck_assert(np == 0);
    asha_report(&a, 7, 0, 8.5, &d, p, &np);
    ck_assert(np == 0);
    asha_report(&a, 8, 0, 0.1, &d, p, &np);
    ck_assert(d.action == ASHA_CONTINUE && np == 0);
    ck_assert_int_eq(asha_rung_count(&a, 0), 9);
    /* the best 3 (8, 3, 4) went on, and trial 1 (4th), promoted when it led
     * 3 results, stays promoted: 4 left the rung */
    ck_assert_int_eq(asha_rung_promoted(&a, 0), 4);
    /* asked again: the same answers, nothing changes */
    asha_report(&a, 1, 0, 1.0, &d, p, &np);
    ck_assert(d.action == ASHA_CONTINUE && np == 0);
    ck_assert_ptr_nonnull(strstr(d.reason, "ranks 4 of 9 now"));
    asha_report(&a, 0, 0, 2.0, &d, p, &np);
    ck_assert(d.action == ASHA_STOP && np == 0);
    ck_assert_int_eq(asha_rung_count(&a, 0), 9);
    ck_assert_int_eq(asha_rung_promoted(&a, 0), 4);
    asha_free(&a);
}
END_TEST

/* The sweep of the bug report: 9 trials, η = 3, the best trial at rung 0
 * reports 7th.  Under the old quota rule it stopped for good ("that many
 * already have"); under the paper's rule it goes on. */
START_TEST(late_best_trial_goes_on)
{
    static const double m[9] = {0.0081, 0.0062, 0.0077, 0.0090, 0.0069, 0.0058, 0.0050455, 0.0095, 0.0071};
    asha a;
    asha_init(&a, 3, 100, 2700);
    asha_decision d, p[1];
    size_t np;
    for (int t = 0; t < 9; t++) {
        asha_report(&a, t, 0, m[t], &d, p, &np);
        if (t == 6) {
            ck_assert_msg(d.action == ASHA_CONTINUE, "the best trial stopped: %s", d.reason);
            ck_assert_int_eq(d.rank, 1);
        }
    }
    /* the best 3 of the 9 (6, 5, 1) all went on */
    int best[3] = {6, 5, 1};
    for (int i = 0; i < 3; i++)
        for (size_t j = 0; j < a.rungs[0].n; j++)
            if (a.rungs[0].recs[j].trial == best[i])
                ck_assert_msg(a.rungs[0].recs[j].promoted, "trial %d not promoted", best[i]);
    asha_free(&a);
}
END_TEST

START_TEST(nan_ranks_last)
{
    asha a;
    asha_init(&a, 2, 10, 1000);
    asha_decision d, p[1];
    size_t np;
    asha_report(&a, 0, 0, NAN, &d, p, &np);
    asha_report(&a, 1, 0, 5.0, &d, p, &np);
    ck_assert(d.action == ASHA_CONTINUE);       /* ⌊2/2⌋ = 1: 5.0 beats NaN */
    ck_assert_int_eq(d.rank, 1);
    asha_free(&a);
}
END_TEST

/* One random asynchronous sweep: n trials, each with a random "quality";
 * the metric at a rung is quality plus noise, rounded to a coarse grid so
 * that ties are common, and now and then NaN.  Trials run in a random
 * interleaving; a stopped trial waits until a later report promotes it.
 * Every report goes to asha.c and to the paper's get_job (asha_ref), and
 * their decisions must be the same.  metric_of, when given, fixes each
 * (trial, rung)'s metric, so that one set of results can be reported in
 * many orders.  Returns the number of reports, logged for replay. */
typedef struct rep { int trial, rung; double metric; } rep;

#define SIM_TOTAL (10 * 81 * 2)
#define SIM_MAX 256

static double sim_metric(uint64_t seed, int trial, int rung)
{
    rng_t r;
    rng_seed(&r, seed, (uint64_t)(trial * 64 + rung + 1));
    double q = rng_uniform(&r);
    if (q < 0.03)
        return NAN;
    return round((q + 0.1 * rng_uniform(&r) * rung) * 40) / 40;
}

static size_t simulate(uint64_t order_seed, uint64_t metric_seed, int n, int eta, rep *log, size_t cap, asha *a,
                       asha_ref *ref, size_t *compared)
{
    rng_t r;
    rng_seed(&r, order_seed, 3);
    asha_init(a, eta, 10, SIM_TOTAL);
    asha_ref_init(ref, eta, a->n_rungs);
    int next_rung[SIM_MAX];       /* the rung a runnable trial reaches next; -1 = waiting, -2 = done */
    for (int t = 0; t < n; t++)
        next_rung[t] = 0;
    size_t nlog = 0;
    for (;;) {
        int runnable[SIM_MAX], nr = 0;
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
        double m = sim_metric(metric_seed, t, k);
        asha_decision d, p[1];
        size_t np;
        asha_report(a, t, k, m, &d, p, &np);
        asha_ref_outcome o;
        asha_ref_report(ref, t, k, m, &o);
        ck_assert_msg((d.action == ASHA_CONTINUE) == o.reporter_continues,
                      "eta %d n %d seeds %llu/%llu: trial %d at rung %d (metric %g): asha.c says %s, get_job %s", eta,
                      n, (unsigned long long)order_seed, (unsigned long long)metric_seed, t, k, m,
                      d.action == ASHA_CONTINUE ? "continue" : "stop", o.reporter_continues ? "continue" : "stop");
        ck_assert_msg((int)np == o.n_others, "eta %d n %d: trial %d rung %d: asha.c promoted %zu others, get_job %d",
                      eta, n, t, k, np, o.n_others);
        if (np) {
            ck_assert_int_eq(p[0].trial, o.other_trial[0]);
            ck_assert_int_eq(p[0].rung, o.other_rung[0]);
            ck_assert(p[0].action == ASHA_CONTINUE);
        }
        (*compared)++;
        if (nlog < cap)
            log[nlog++] = (rep){t, k, m};
        next_rung[t] = d.action == ASHA_CONTINUE ? k + 1 : -1;
        if (np)
            next_rung[p[0].trial] = p[0].rung + 1;
    }
    return nlog;
}

static const int SIM_ETAS[] = {2, 3, 4};
static const int SIM_NS[] = {1, 2, 3, 5, 9, 20, 27, 50, 100, 243};

START_TEST(decisions_are_the_papers_get_job)
{
    rep *log = xmalloc(4096 * sizeof *log);
    asha_ref *ref = xmalloc(sizeof *ref);
    size_t compared = 0, mispromoted = 0;
    for (int e = 0; e < 3; e++)
        for (int i = 0; i < 10; i++)
            for (uint64_t seed = 1; seed <= 12; seed++) {
                asha a;
                int eta = SIM_ETAS[e];
                size_t nlog = simulate(seed, seed + 1000, SIM_NS[i], eta, log, 4096, &a, ref, &compared);
                for (int k = 0; k < a.n_rungs; k++) {
                    size_t nk = asha_rung_count(&a, k);
                    /* what left rung k is what reached rung k+1 (a promotion at the last
                     * rung trains to the end), and never fewer than the best ⌊n_k/η⌋ */
                    ck_assert_uint_ge(asha_rung_promoted(&a, k), nk / (size_t)eta);
                    if (k + 1 < a.n_rungs)
                        ck_assert_uint_eq(asha_rung_count(&a, k + 1), asha_rung_promoted(&a, k));
                    mispromoted += asha_rung_promoted(&a, k) - nk / (size_t)eta;
                    for (size_t j = 0; j < nk; j++)
                        ck_assert(a.rungs[k].recs[j].promoted ==
                                  asha_ref_promoted(ref, a.rungs[k].recs[j].trial, k));
                }
                /* every trial reached rung 0 */
                ck_assert_int_eq(asha_rung_count(&a, 0), SIM_NS[i]);
                /* replaying the reports in order gives the same decisions */
                asha b;
                asha_init(&b, eta, 10, SIM_TOTAL);
                for (size_t j = 0; j < nlog; j++) {
                    asha_decision d, p[1];
                    size_t np;
                    asha_report(&b, log[j].trial, log[j].rung, log[j].metric, &d, p, &np);
                }
                for (int k = 0; k < a.n_rungs; k++) {
                    ck_assert_int_eq(asha_rung_count(&b, k), asha_rung_count(&a, k));
                    for (size_t j = 0; j < a.rungs[k].n; j++)
                        ck_assert(a.rungs[k].recs[j].promoted == b.rungs[k].recs[j].promoted);
                }
                asha_free(&a);
                asha_free(&b);
            }
    fprintf(stderr, "asha: %zu reports decided as get_job decides; %zu mispromotions in all\n", compared,
            mispromoted);
    ck_assert_uint_gt(compared, 20000);
    free(ref);
    free(log);
}
END_TEST

/* The verdict on the best trials does not depend on the order: one set of
 * results reported in 10 random orders; every trial reaches rung 0, and
 * each time the best ⌊n/η⌋ there (the same trials in every order) go on,
 * and at every rung the best ⌊n_k/η⌋ of those that reached it go on. */
START_TEST(best_trials_go_on_in_any_order)
{
    asha_ref *ref = xmalloc(sizeof *ref);
    rep *log = xmalloc(4096 * sizeof *log);
    size_t compared = 0;
    for (int e = 0; e < 3; e++)
        for (int i = 0; i < 9; i++)              /* up to 100 trials: the reference is O(n²) a call */
            for (uint64_t order = 1; order <= 10; order++) {
                int eta = SIM_ETAS[e], n = SIM_NS[i];
                asha a;
                simulate(order * 7919, 42 + (uint64_t)i, n, eta, log, 4096, &a, ref, &compared);
                for (int k = 0; k < a.n_rungs; k++) {
                    const asha_rung *r = &a.rungs[k];
                    for (size_t j = 0; j < r->n; j++) {
                        /* j's place among the results at rung k: by metric, NaN last;
                         * equal metrics may fall either side, so count only strictly better */
                        size_t better = 0;
                        double mj = r->recs[j].metric;
                        for (size_t l = 0; l < r->n; l++) {
                            double ml = r->recs[l].metric;
                            better += !isnan(ml) && (isnan(mj) || ml < mj);
                        }
                        size_t ties = 0;
                        for (size_t l = 0; l < r->n; l++)
                            ties += l != j && (r->recs[l].metric == mj || (isnan(mj) && isnan(r->recs[l].metric)));
                        if (better + ties < r->n / (size_t)eta)  /* among the best whatever the order */
                            ck_assert_msg(r->recs[j].promoted, "eta %d n %d order %llu: trial %d ranks %zu of %zu at rung %d and stopped",
                                          eta, n, (unsigned long long)order, r->recs[j].trial, better + 1, r->n, k);
                    }
                }
                asha_free(&a);
            }
    free(log);
    free(ref);
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
    tcase_add_test(tc, late_best_trial_goes_on);
    tcase_add_test(tc, nan_ranks_last);
    /* thousands of random sweeps, each decision also made by the O(n²)
     * reference: seconds, and several times that under ASan or Valgrind */
    TCase *sweeps = tcase_create("random_sweeps");
    tcase_set_timeout(sweeps, 300);
    tcase_add_test(sweeps, decisions_are_the_papers_get_job);
    tcase_add_test(sweeps, best_trials_go_on_in_any_order);
    suite_add_tcase(s, sweeps);
    tcase_add_test(tc, record_replays_the_same_decisions);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

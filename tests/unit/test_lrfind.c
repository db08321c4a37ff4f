/*
 * The LR range test (traind/lrfind.h): fastai's valley and steep rules on
 * fixed curves, the exponential sweep, lr_find's window, and a real sweep
 * of a small MLP through runner_run (the EMA, the stop at 4x the best).
 *
 * The expected indices were computed outside this code, by a Python
 * transcription of fastai 2.x's valley() and steep()
 * (fastai/callback/schedule.py) run on the same numbers:
 *
 *   def valley(lrs, losses):
 *       n = len(losses); max_start, max_end = 0, 0; lds = [1]*n
 *       for i in range(1, n):
 *           for j in range(0, i):
 *               if losses[i] < losses[j] and lds[i] < lds[j] + 1: lds[i] = lds[j] + 1
 *               if lds[max_end] < lds[i]: max_end = i; max_start = max_end - lds[max_end]
 *       sections = (max_end - max_start) / 3
 *       return max_start + int(sections) + int(sections/2)
 *   def steep(lrs, losses):
 *       g = [(losses[i+1]-losses[i])/(log(lrs[i+1])-log(lrs[i])) for i in range(len(lrs)-1)]
 *       return argmin(g)
 *
 * CURVE1 (lrs 1e-4 * 10 ** (i/5)): valley 12, steep 15.  CURVE2: valley 7
 * (the longest decreasing subsequence 6 5.5 5.2 5.0 4.8 4.5 4.4 4.1 3.9
 * ends at 12 with 9 points: start 3, sections 3, 3 + 3 + 1).  CURVE3's
 * slopes are -0.1443 -0.2466 -0.2492 -0.1049 -0.1255: steep 2.
 */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/config.h"
#include "traind/lrfind.h"
#include "traind/util.h"
#include "tl.h"

static const double CURVE1[] = {2.0, 2.1, 1.9, 1.95, 1.7, 1.8, 1.6, 1.5, 1.55, 1.2,
                                1.0, 1.1, 0.9, 0.95, 1.4, 3.0, 1.3, 0.8, 2.5, 6.0};
static const double CURVE2[] = {5, 4, 6, 5.5, 5.2, 5.0, 4.8, 4.9, 4.5, 4.4, 4.6, 4.1, 3.9, 7, 8};
static const double LR3[] = {1e-3, 2e-3, 3e-3, 1e-2, 1.1e-2, 5e-2};
static const double CURVE3[] = {1.0, 0.9, 0.8, 0.5, 0.49, 0.3};
#define N1 (sizeof CURVE1 / sizeof CURVE1[0])
#define N2 (sizeof CURVE2 / sizeof CURVE2[0])
#define N3 (sizeof CURVE3 / sizeof CURVE3[0])

static void lrs_of_curve1(double *lr)
{
    for (size_t i = 0; i < N1; i++)
        lr[i] = 1e-4 * pow(10.0, (double)i / 5.0);
}

START_TEST(test_valley_fixed_curves)
{
    ck_assert_int_eq(lrfind_valley(CURVE1, N1), 12);
    ck_assert_int_eq(lrfind_valley(CURVE2, N2), 7);
}
END_TEST

START_TEST(test_steep_fixed_curves)
{
    double lr[N1];
    lrs_of_curve1(lr);
    ck_assert_int_eq(lrfind_steep(lr, CURVE1, N1), 15);
    ck_assert_int_eq(lrfind_steep(LR3, CURVE3, N3), 2);
}
END_TEST

START_TEST(test_rules_edges)
{
    double one = 1.0, lr = 1e-3;
    ck_assert_int_eq(lrfind_valley(&one, 0), -1);
    ck_assert_int_eq(lrfind_valley(&one, 1), 0);
    ck_assert_int_eq(lrfind_steep(&lr, &one, 1), -1);
    /* a flat curve: no decrease at all, fastai's idx 0 */
    const double flat[] = {1, 1, 1, 1, 1};
    ck_assert_int_eq(lrfind_valley(flat, 5), 0);
    /* the 2-point valley from index 0, where fastai's idx is -1 (Python:
     * the last point): ours is the first (lrfind.c says why) */
    const double two[] = {2, 1, 3};
    ck_assert_int_eq(lrfind_valley(two, 3), 0);
}
END_TEST

START_TEST(test_sweep_is_exponential)
{
    lrfind_opts o = {1e-7, 10.0, 100};
    ck_assert(lrfind_lr(&o, 0) == 1e-7);
    double q = pow(10.0 / 1e-7, 1.0 / 100);
    for (long i = 0; i + 1 < 100; i++)
        ck_assert_double_eq_tol(lrfind_lr(&o, i + 1) / lrfind_lr(&o, i), q, 1e-12);
    /* fastai's pos = i / num_it: step `steps` (never trained) would be end */
    ck_assert_double_eq_tol(lrfind_lr(&o, 100), 10.0, 1e-12);
    ck_assert_double_eq_tol(lrfind_lr(&o, 50), 1e-7 * sqrt(1e8), 1e-15);
}
END_TEST

START_TEST(test_check_opts)
{
    char err[256];
    lrfind_opts ok = {1e-7, 10, 100}, bad1 = {0, 10, 100}, bad2 = {1, 0.5, 100}, bad3 = {1e-7, 10, 5},
                bad4 = {1e-7, INFINITY, 100};
    ck_assert_int_eq(lrfind_check_opts(&ok, err, sizeof err), 0);
    ck_assert_int_eq(lrfind_check_opts(&bad1, err, sizeof err), -1);
    ck_assert_int_eq(lrfind_check_opts(&bad2, err, sizeof err), -1);
    ck_assert_int_eq(lrfind_check_opts(&bad3, err, sizeof err), -1);
    ck_assert_int_eq(lrfind_check_opts(&bad4, err, sizeof err), -1);
}
END_TEST

/* lr_find's window: points [steps/10, n-5) only.  CURVE1 is put at 10..29
 * between points that would change both answers if they counted. */
START_TEST(test_suggest_window)
{
    enum { PRE = 10, POST = 5, N = PRE + N1 + POST };
    double lr[N], loss[N], raw[N];
    for (int i = 0; i < N; i++)
        lr[i] = 1e-6 * pow(10.0, (double)i / 5.0);
    for (int i = 0; i < PRE; i++)
        loss[i] = 100.0 - 9.0 * i;          /* a long steep descent */
    for (size_t i = 0; i < N1; i++)
        loss[PRE + i] = CURVE1[i];
    for (int i = 0; i < POST; i++)
        loss[PRE + N1 + i] = 0.5 - 0.1 * i; /* would extend the valley */
    lrfind_result res = {.n = N, .lr = lr, .loss = loss, .raw = raw, .steps = 100};
    lrfind_suggest(&res);
    ck_assert_int_eq(res.suggestion, PRE + 12);
    ck_assert_int_eq(res.steepest, PRE + 15);
    /* too few points for the window: no suggestion */
    res.n = 14;
    lrfind_suggest(&res);
    ck_assert_int_eq(res.suggestion, -1);
    ck_assert_int_eq(res.steepest, -1);
}
END_TEST

static const char *MLP_CFG =
    "name: lrf\nseed: 3\n"
    "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 4, activation: gelu}\n"
    "data: {kind: synthetic, batch_size: 16, eval_fraction: 0.1}\n"
    "optimizer: {type: adamw, lr: 1.0e-3, weight_decay: 0.01}\n"
    "schedule: {type: cosine, warmup_steps: 10, total_steps: 50}\n"
    "train: {log_every: 5, eval_every: 10, checkpoint_every: 10}\n";

static void parse(run_config *cfg)
{
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = cfg_parse(MLP_CFG, strlen(MLP_CFG), NULL, cfg, &errs);
    if (rc != 0)
        diag_print(stderr, "test", &errs);
    ck_assert_int_eq(rc, 0);
    diag_free(&errs);
}

/* A real sweep to 10: it diverges; the points follow the sweep, the smoothed
 * loss is the debiased EMA of the raw ones (checked against its closed
 * form, sum (1-b) b^(c-k) x_k / (1 - b^c)), and the last one is the first
 * past 4x the best. */
START_TEST(test_run_diverges)
{
    run_config cfg;
    parse(&cfg);
    lrfind_opts o = {1e-7, 10.0, 200};
    lrfind_result res;
    char err[512];
    volatile sig_atomic_t stop = 0;
    ck_assert_msg(lrfind_run(&cfg, &o, NULL, 1, &stop, &res, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(res.end, LRFIND_END_DIVERGED);
    ck_assert_uint_gt(res.n, 20);
    ck_assert_uint_lt(res.n, 200);
    double best = INFINITY;
    for (size_t i = 0; i < res.n; i++) {
        ck_assert(res.lr[i] == lrfind_lr(&o, (long)i));
        double num = 0, b = LRFIND_BETA;
        for (size_t k = 0; k <= i; k++)
            num += (1 - b) * pow(b, (double)(i - k)) * res.raw[k];
        double ema = num / (1 - pow(b, (double)(i + 1)));
        ck_assert_double_eq_tol(res.loss[i], ema, 1e-9 * fabs(ema));
        if (res.loss[i] < best)
            best = res.loss[i];
        if (i + 1 < res.n)
            ck_assert(res.loss[i] <= 4 * best);
        else
            ck_assert(res.loss[i] > 4 * best);
    }
    ck_assert_int_ge(res.suggestion, 20);
    ck_assert_int_lt(res.suggestion, (long)res.n - 5);
    ck_assert_int_ge(res.steepest, 20);
    char *json = lrfind_json(&res, &o);
    ck_assert_ptr_nonnull(strstr(json, "\"stopped\":\"diverged\""));
    free(json);
    lrfind_free(&res);
    cfg_free(&cfg);
}
END_TEST

/* A gentle sweep trains every step; a stop request ends it at once. */
START_TEST(test_run_all_steps_and_stop)
{
    run_config cfg;
    parse(&cfg);
    lrfind_opts o = {1e-6, 1e-4, 30};
    lrfind_result res;
    char err[512];
    volatile sig_atomic_t stop = 0;
    ck_assert_msg(lrfind_run(&cfg, &o, NULL, 1, &stop, &res, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(res.end, LRFIND_END_STEPS);
    ck_assert_uint_eq(res.n, 30);
    ck_assert_int_ge(res.suggestion, 3);
    lrfind_free(&res);
    stop = 1;
    ck_assert_msg(lrfind_run(&cfg, &o, NULL, 1, &stop, &res, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(res.end, LRFIND_END_STOPPED);
    ck_assert_uint_eq(res.n, 0);
    ck_assert_int_eq(res.suggestion, -1);
    lrfind_free(&res);
    cfg_free(&cfg);
}
END_TEST

static Suite *lrfind_suite(void)
{
    Suite *s = suite_create("lrfind");
    TCase *tr = tcase_create("rules");
    tcase_add_test(tr, test_valley_fixed_curves);
    tcase_add_test(tr, test_steep_fixed_curves);
    tcase_add_test(tr, test_rules_edges);
    tcase_add_test(tr, test_sweep_is_exponential);
    tcase_add_test(tr, test_check_opts);
    tcase_add_test(tr, test_suggest_window);
    suite_add_tcase(s, tr);
    TCase *tn = tcase_create("run");
    tcase_set_timeout(tn, 60);
    tcase_add_test(tn, test_run_diverges);
    tcase_add_test(tn, test_run_all_steps_and_stop);
    suite_add_tcase(s, tn);
    return s;
}

int main(void)
{
    return tl_run_suite(lrfind_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * Schedules (traind-run.yaml(5) SCHEDULE) against their anchors, and a few properties.
 *
 * tests/data/schedules/CASE.yaml is a complete run config; CASE.json the lr
 * of every step s = 0 .. total_steps-1 as torch computes it through the
 * anchor (HF's lr lambdas in LambdaLR, torch's StepLR / MultiStepLR /
 * ExponentialLR / OneCycleLR / LinearLR), written once by
 * tests/gen_torch_ref.py.  Each case goes through cfg_load_file(), so the
 * parsing and resolution of the schedule keys (warmup_ratio, min_lr,
 * decay_ratio, stable_steps, timescale defaults, ...) is tested too.
 * Agreement required: 1e-12 relative, or 1e-15 of the base lr in absolute
 * terms near zero.  Tests run from the repository root.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/config.h"
#include "traind/schedule.h"
#include "traind/util.h"
#include "tl.h"

#define SCHED_DIR "tests/data/schedules"
#define MAX_CASES 256
#define REL_TOL 1e-12
#define ABS_TOL 1e-15          /* times the base lr */

static char *case_names[MAX_CASES];
static int n_cases;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void find_cases(void)
{
    DIR *d = opendir(SCHED_DIR);
    if (!d)
        return;                 /* test_cases_present reports it */
    struct dirent *e;
    while ((e = readdir(d)) && n_cases < MAX_CASES) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0)
            case_names[n_cases++] = xstrndup(e->d_name, len - 5);
    }
    closedir(d);
    qsort(case_names, n_cases, sizeof *case_names, cmp_str);
}

typedef struct case_result {
    long steps, exact;
    double worst_rel;
    long worst_step;
} case_result;

/* Loads tests/data/schedules/NAME.yaml with cfg_load_file and compares
 * sched_lr at every step with NAME.json.  Returns 0, or -1 with err set. */
static int compare_case(const char *name, case_result *res, char *err, size_t errlen)
{
    char *yaml = xasprintf("%s/%s.yaml", SCHED_DIR, name);
    char *json = xasprintf("%s/%s.json", SCHED_DIR, name);
    char *buf = NULL;
    size_t len;
    cJSON *expect = NULL;
    run_config cfg;
    bool have_cfg = false;
    int rc = -1;
    memset(res, 0, sizeof *res);
    res->worst_step = -1;

    diag_list_t errs = DIAG_LIST_INIT;
    if (cfg_load_file(yaml, NULL, &cfg, &errs) != 0) {
        diag_print(stderr, yaml, &errs);
        snprintf(err, errlen, "%s does not load (%zu errors)", yaml, errs.n);
        diag_free(&errs);
        goto out;
    }
    have_cfg = true;
    if (read_file(json, 16u << 20, &buf, &len) != 0 || !(expect = cJSON_ParseWithLength(buf, len))
        || !cJSON_IsArray(expect)) {
        snprintf(err, errlen, "cannot read %s as a JSON array", json);
        goto out;
    }
    if (cJSON_GetArraySize(expect) != cfg.sched.total_steps) {
        snprintf(err, errlen, "%s: %d lrs for total_steps %ld", name, cJSON_GetArraySize(expect),
                 cfg.sched.total_steps);
        goto out;
    }
    double base = cfg.optim.lr;
    const cJSON *x;
    cJSON_ArrayForEach(x, expect) {
        long s = res->steps++;
        double want = x->valuedouble, got = sched_lr(&cfg.sched, base, s);
        double diff = fabs(got - want), mag = fmax(fabs(got), fabs(want));
        double rel = mag > 0 ? diff / mag : 0.0;
        res->exact += got == want;
        if (rel > res->worst_rel) {
            res->worst_rel = rel;
            res->worst_step = s;
        }
        if (rel > REL_TOL && diff > ABS_TOL * base) {
            snprintf(err, errlen, "%s step %ld: lr %.17g, the anchor's %.17g (rel diff %.3g)",
                     name, s, got, want, rel);
            goto out;
        }
    }
    rc = 0;
out:
    cJSON_Delete(expect);
    free(buf);
    if (have_cfg)
        cfg_free(&cfg);
    free(yaml);
    free(json);
    return rc;
}

START_TEST(test_cases_present)
{
    ck_assert_msg(n_cases >= 40, "expected the schedule cases in %s (run from the repository root), found %d",
                  SCHED_DIR, n_cases);
}
END_TEST

/* One CASE.yaml through cfg_load_file, every step compared with CASE.json. */
START_TEST(test_case_matches_anchor)
{
    char err[512] = "";
    case_result res;
    int rc = compare_case(case_names[_i], &res, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
}
END_TEST

/* One line for the log: how close the cases came (after the Check run). */
static void report(void)
{
    long steps = 0, exact = 0;
    double worst = 0.0;
    const char *worst_name = "-";
    for (int i = 0; i < n_cases; i++) {
        char err[512];
        case_result res;
        compare_case(case_names[i], &res, err, sizeof err);
        steps += res.steps;
        exact += res.exact;
        if (res.worst_rel > worst) {
            worst = res.worst_rel;
            worst_name = case_names[i];
        }
    }
    fprintf(stderr, "schedules: %d cases, %ld steps compared, %ld bit-identical to the anchor, "
            "worst relative difference %.3g (%s)\n", n_cases, steps, exact, worst, worst_name);
}

/* ---- properties, on hand-built configs ---------------------------------- */

static sched_cfg base_cfg(sched_type type, long T, long W)
{
    sched_cfg s;
    memset(&s, 0, sizeof s);
    s.type = type;
    s.total_steps = T;
    s.warmup_steps = W;
    s.cycles = 1;
    s.power = 1;
    s.timescale = W ? W : 10000;
    s.warmup_type = SHAPE_LINEAR;
    s.decay_type = SHAPE_COSINE;
    s.decay_steps = (T - W) / 3;
    s.step_size = 7;
    s.gamma = 0.5;
    s.milestones[0] = W + 3;
    s.milestones[1] = W + 11;
    s.n_milestones = 2;
    s.pct_start = 0.3;
    s.div_factor = 25;
    s.final_div_factor = 1e4;
    s.anneal_cos = true;
    s.point_step[0] = 2;
    s.point_ratio[0] = 0.1;
    s.point_step[1] = T / 2 + 2;
    s.point_ratio[1] = 1.0;
    s.point_step[2] = T + 1;
    s.point_ratio[2] = 0.05;
    s.n_points = 3;
    return s;
}

START_TEST(test_constant_is_constant)
{
    sched_cfg s = base_cfg(SCHED_CONSTANT, 50, 10);     /* warmup ignored */
    for (long i = 0; i < 70; i++)
        ck_assert(sched_lr(&s, 3e-4, i) == 3e-4);
    s = base_cfg(SCHED_CONSTANT_WITH_WARMUP, 50, 10);
    for (long i = 10; i < 70; i++)
        ck_assert(sched_factor(&s, i) == 1.0);
}
END_TEST

START_TEST(test_cosine_ends_at_min)
{
    for (int k = 0; k < 3; k++) {
        double m = (double[]){0.0, 0.1, 0.37}[k];
        sched_cfg s = base_cfg(SCHED_COSINE, 200, 20);
        s.min_lr_ratio = m;
        ck_assert(sched_factor(&s, 20) == 1.0);                 /* peak right after the warmup */
        ck_assert(sched_factor(&s, 200) == m);                  /* p = 1: exactly the floor */
        ck_assert(sched_factor(&s, 199) > m);
        ck_assert(sched_factor(&s, 199) - m < 1e-3);
        for (long i = 200; i < 260; i++)                        /* and it stays there */
            ck_assert(sched_factor(&s, i) == m);
        for (long i = 21; i < 200; i++)                         /* monotone decay */
            ck_assert(sched_factor(&s, i) <= sched_factor(&s, i - 1));
    }
}
END_TEST

START_TEST(test_warmup_is_linear)
{
    sched_cfg s = base_cfg(SCHED_LINEAR, 100, 10);
    for (long i = 0; i < 10; i++)
        ck_assert(sched_factor(&s, i) == (double)i / 10.0);
    s.warmup_start_ratio = 0.2;
    ck_assert(sched_factor(&s, 0) == 0.2);
    ck_assert(fabs(sched_factor(&s, 5) - 0.6) < 1e-15);
    ck_assert(sched_factor(&s, 10) == 1.0);
}
END_TEST

/* Every type, a spread of shapes including the degenerate ones: finite,
 * non-negative, at most the peak, and sched_lr = base * sched_factor (to
 * an ulp: polynomial and onecycle work in absolute units, as their anchors). */
START_TEST(test_never_nan)
{
    static const long shapes[][2] = {{1, 0}, {1, 1}, {2, 0}, {2, 1}, {2, 2}, {3, 1}, {10, 0},
                                     {10, 10}, {37, 5}, {100, 99}, {1000, 30}};
    for (int t = SCHED_CONSTANT; t <= SCHED_PIECEWISE; t++) {
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
            long T = shapes[k][0], W = shapes[k][1];
            for (int variant = 0; variant < 4; variant++) {
                sched_cfg s = base_cfg((sched_type)t, T, W);
                if (variant & 1) {
                    s.min_lr_ratio = 0.1;
                    s.warmup_start_ratio = 0.05;
                    s.warmup_type = SHAPE_1_SQRT;
                    s.decay_type = SHAPE_1_SQRT;
                    s.three_phase = true;
                    s.cycles = 2.5;
                    s.power = 0.5;
                }
                if (variant & 2) {
                    s.anneal_cos = false;
                    s.decay_steps = T - W;
                    s.pct_start = 1.0 / (double)T;              /* zero-length onecycle phase */
                    s.warmup_type = SHAPE_COSINE;
                    s.decay_type = SHAPE_LINEAR;
                    s.power = 3;
                }
                for (long i = -2; i < T + 10; i++) {
                    double f = sched_factor(&s, i);
                    ck_assert_msg(isfinite(f) && f >= 0.0, "%s T=%ld W=%ld v%d step %ld: %g",
                                  sched_type_name((sched_type)t), T, W, variant, i, f);
                    ck_assert_msg(f <= 1.0 + 1e-15,
                                  "%s step %ld: factor %g > 1", sched_type_name((sched_type)t), i, f);
                    double lr = sched_lr(&s, 2e-4, i);
                    ck_assert(isfinite(lr));
                    ck_assert(fabs(lr - 2e-4 * f) <= 1e-15 * 2e-4);
                }
                ck_assert(sched_factor(&s, -5) == sched_factor(&s, 0));
            }
        }
    }
}
END_TEST

START_TEST(test_zero_base_lr)
{
    for (int t = SCHED_CONSTANT; t <= SCHED_PIECEWISE; t++) {
        sched_cfg s = base_cfg((sched_type)t, 20, 5);
        for (long i = 0; i < 25; i++)
            ck_assert(sched_lr(&s, 0.0, i) == 0.0);
    }
}
END_TEST

static Suite *schedule_suite(void)
{
    Suite *s = suite_create("schedule");
    TCase *tc = tcase_create("anchors");
    tcase_add_test(tc, test_cases_present);
    tcase_add_loop_test(tc, test_case_matches_anchor, 0, n_cases);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("properties");
    tcase_add_test(tp, test_constant_is_constant);
    tcase_add_test(tp, test_cosine_ends_at_min);
    tcase_add_test(tp, test_warmup_is_linear);
    tcase_add_test(tp, test_never_nan);
    tcase_add_test(tp, test_zero_base_lr);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    find_cases();
    int failed = tl_run_suite(schedule_suite());
    fflush(stdout);
    report();
    for (int i = 0; i < n_cases; i++)
        free(case_names[i]);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

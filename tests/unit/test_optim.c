/*
 * Optimizers and clipping against torch 1.13 (tests/data/optim, written once
 * by tests/gen_torch_ref.py), and a few properties.
 *
 * Each optimizer case: 37 initial parameters, five gradients and five lrs,
 * and torch's parameters and state (exp_avg, exp_avg_sq / momentum_buffer)
 * after every step, as float32 bit patterns.  We require every value to be
 * within 1 ulp of torch's; optim.c reproduces torch's float operations
 * (including where its kernels fuse into fma), and the summary line says
 * how many values were bit-identical (all of them, at the time of writing).
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/optim.h"
#include "traind/util.h"
#include "tl.h"
#include "optim_ref.h"

#define OPTIM_DIR "tests/data/optim"
#define MAX_CASES 64
#define MAX_ULPS 1
/* Clipping with our double norm: torch's float32 norm may be an ulp or two
 * off the exact one, and the clip coefficient with it. */
#define CLIP_ULPS 4

static char *case_names[MAX_CASES];
static int n_cases;

/* A case of this file's optimizers (adamw, adam, sgd)?  The directory also
 * holds other optimizers' cases, each replayed by its own test
 * (muon_*.json: test_optim_muon.c, schedule_free*.json: test_optim_sf.c); an
 * unreadable file is kept, to fail. */
static bool is_our_case(const char *file)
{
    char *path = xasprintf("%s/%s", OPTIM_DIR, file);
    cJSON *j = optim_ref_load(path);
    free(path);
    const char *type = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "optimizer"), "type"));
    bool ours = !type || !strcmp(type, "adamw") || !strcmp(type, "adam") || !strcmp(type, "sgd");
    cJSON_Delete(j);
    return ours;
}

static float hex_float(const cJSON *x)
{
    uint32_t u = (uint32_t)strtoul(x->valuestring, NULL, 16);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Distance in units in the last place between two floats of the same sign
 * (a large number otherwise, unless both are zero). */
static int64_t ulps(float a, float b)
{
    if (a == b)
        return 0;
    if (isnan(a) || isnan(b) || (a < 0) != (b < 0))
        return INT64_MAX;
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    return llabs((long long)ia - (long long)ib);
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(x) ? x->valuedouble : 0.0;
}

typedef struct tally {
    long values, exact;
    int64_t worst_ulps;
} tally;

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Adds n values to t; on the first one more than MAX_ULPS away from torch's
 * fills err and returns -1. */
static int compare(tally *t, const char *what, const char *name, int step, const float *got,
                   const float *want, int n, int max_ulps, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        int64_t u = ulps(got[i], want[i]);
        t->values++;
        t->exact += u == 0;
        if (u > t->worst_ulps)
            t->worst_ulps = u;
        if (u > max_ulps) {
            snprintf(err, errlen, "%s step %d %s[%d]: %.9g (0x%08x), torch %.9g (0x%08x): %lld ulps",
                     name, step, what, i, got[i], bits(got[i]), want[i], bits(want[i]), (long long)u);
            return -1;
        }
    }
    return 0;
}

static bool is_our_case_file(const char *file)
{
    return strcmp(file, "clip.json") != 0 && is_our_case(file);
}

static void find_cases(void)
{
    n_cases = optim_ref_find(OPTIM_DIR, is_our_case_file, case_names, MAX_CASES);
}

/* Replays tests/data/optim/NAME.json: same start, same gradients and lrs,
 * parameters and state compared after every step.  0, or -1 with err. */
static int replay_case(const char *name, tally *t, char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s.json", OPTIM_DIR, name);
    cJSON *j = optim_ref_load(path);
    float *p = NULL, *g = NULL, *want = NULL;
    optim_state st = {.m = NULL, .v = NULL};
    int rc = -1, k = 0;
    if (!j) {
        snprintf(err, errlen, "cannot read %s", path);
        goto out;
    }
    int n = (int)num(j, "n");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "optimizer");
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
    if (n <= 0 || n > 100000 || !type) {
        snprintf(err, errlen, "%s: no n or optimizer.type", path);
        goto out;
    }
    optim_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.type = !strcmp(type, "adamw") ? OPT_ADAMW : !strcmp(type, "adam") ? OPT_ADAM : OPT_SGD;
    cfg.beta1 = num(o, "beta1");
    cfg.beta2 = num(o, "beta2");
    cfg.eps = num(o, "eps");
    cfg.weight_decay = num(o, "weight_decay");
    cfg.momentum = num(o, "momentum");
    cfg.nesterov = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "nesterov"));

    p = xcalloc(n, sizeof *p);
    g = xcalloc(n, sizeof *g);
    want = xcalloc(n, sizeof *want);
    st.m = xcalloc(n, sizeof(float));
    st.v = xcalloc(n, sizeof(float));
    if (optim_ref_floats(cJSON_GetObjectItemCaseSensitive(j, "params0"), p, n) != n) {
        snprintf(err, errlen, "%s: params0 is not %d floats", path, n);
        goto out;
    }
    const cJSON *step;
    cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(j, "steps")) {
        k++;
        if (optim_ref_floats(cJSON_GetObjectItemCaseSensitive(step, "grad"), g, n) != n
            || optim_ref_floats(cJSON_GetObjectItemCaseSensitive(step, "params"), want, n) != n) {
            snprintf(err, errlen, "%s step %d: grad or params is not %d floats", path, k, n);
            goto out;
        }
        optim_step(&cfg, &st, p, g, n, num(step, "lr"));
        if (st.step != k) {
            snprintf(err, errlen, "%s: state step %ld after %d updates", name, st.step, k);
            goto out;
        }
        if (compare(t, "param", name, k, p, want, n, MAX_ULPS, err, errlen))
            goto out;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(step, "m");
        const char *m_name = cfg.type == OPT_SGD ? "momentum_buffer" : "exp_avg";
        if (m && (optim_ref_floats(m, want, n) != n || compare(t, m_name, name, k, st.m, want, n, MAX_ULPS, err, errlen)))
            goto out;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, "v");
        if (v && (optim_ref_floats(v, want, n) != n || compare(t, "exp_avg_sq", name, k, st.v, want, n, MAX_ULPS, err, errlen)))
            goto out;
    }
    if (k != 5) {
        snprintf(err, errlen, "%s: %d steps, expected 5", path, k);
        goto out;
    }
    rc = 0;
out:
    free(p);
    free(g);
    free(want);
    free(st.m);
    free(st.v);
    cJSON_Delete(j);
    free(path);
    return rc;
}

/* clip_grad_norm_: our double norm against torch's float32 one, and the
 * clipping itself, which given torch's norm must give torch's bits (and
 * given ours, within CLIP_ULPS). */
static int replay_clip(tally *t, char *err, size_t errlen)
{
    cJSON *j = optim_ref_load(OPTIM_DIR "/clip.json");
    if (!j) {
        snprintf(err, errlen, "cannot read %s/clip.json", OPTIM_DIR);
        return -1;
    }
    int cases = 0, rc = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "cases")) {
        int n = (int)num(c, "n");
        double max_norm = num(c, "max_norm");
        float *g = xcalloc(n, sizeof *g), *g2 = xcalloc(n, sizeof *g2), *want = xcalloc(n, sizeof *want);
        float torch_norm = hex_float(cJSON_GetObjectItemCaseSensitive(c, "torch_norm"));
        if (optim_ref_floats(cJSON_GetObjectItemCaseSensitive(c, "grad"), g, n) != n
            || optim_ref_floats(cJSON_GetObjectItemCaseSensitive(c, "clipped"), want, n) != n) {
            snprintf(err, errlen, "clip case %d: grad or clipped is not %d floats", cases, n);
            rc = -1;
        }
        memcpy(g2, g, n * sizeof *g);
        double norm = grad_global_norm(g, n);
        if (rc == 0 && !(fabs(norm - torch_norm) <= 2e-7 * torch_norm)) {
            snprintf(err, errlen, "clip case %d: norm %.17g, torch's %.9g", cases, norm, torch_norm);
            rc = -1;
        }
        if (rc == 0) {
            grad_clip(g, n, torch_norm, max_norm);
            grad_clip(g2, n, norm, max_norm);
            rc = compare(t, "grad clipped with torch's norm", "clip", cases, g, want, n, 0, err, errlen);
            if (rc == 0)
                rc = compare(t, "grad clipped with our norm", "clip", cases, g2, want, n, CLIP_ULPS, err, errlen);
        }
        free(g);
        free(g2);
        free(want);
        if (rc)
            break;
        cases++;
    }
    if (rc == 0 && cases != 5) {
        snprintf(err, errlen, "clip.json: %d cases, expected 5", cases);
        rc = -1;
    }
    cJSON_Delete(j);
    return rc;
}

START_TEST(test_cases_present)
{
    ck_assert_msg(n_cases >= 9, "expected the optimizer cases in %s (run from the repository root), found %d",
                  OPTIM_DIR, n_cases);
}
END_TEST

START_TEST(test_case_matches_torch)
{
    char err[512] = "";
    tally t = {0};
    int rc = replay_case(case_names[_i], &t, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
}
END_TEST

START_TEST(test_clip_matches_torch)
{
    char err[512] = "";
    tally t = {0};
    int rc = replay_clip(&t, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
}
END_TEST

/* One line for the log: how close to torch (after the Check run). */
static void report(void)
{
    tally t = {0}, c = {0};
    char err[512];
    for (int i = 0; i < n_cases; i++)
        replay_case(case_names[i], &t, err, sizeof err);
    replay_clip(&c, err, sizeof err);
    fprintf(stderr, "optim: %d cases, %ld values compared with torch, %ld bit-identical, worst %lld ulp; "
            "clip: %ld values, %ld bit-identical, worst %lld ulp\n", n_cases, t.values, t.exact,
            (long long)t.worst_ulps, c.values, c.exact, (long long)c.worst_ulps);
}

/* ---- properties --------------------------------------------------------- */

START_TEST(test_norm_simple)
{
    float g[] = {3.0f, 4.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 12.0f};
    ck_assert(grad_global_norm(g, 2) == 5.0);
    ck_assert(grad_global_norm(g, 10) == 13.0);
    ck_assert(grad_global_norm(g, 0) == 0.0);
}
END_TEST

START_TEST(test_clip_properties)
{
    float g[19];
    for (int i = 0; i < 19; i++)
        g[i] = (float)(i - 9) * 0.25f;
    float orig[19];
    memcpy(orig, g, sizeof g);
    double norm = grad_global_norm(g, 19);

    grad_clip(g, 19, norm, 0.0);                        /* off */
    ck_assert(memcmp(g, orig, sizeof g) == 0);
    grad_clip(g, 19, norm, norm * 2);                   /* under the limit */
    ck_assert(memcmp(g, orig, sizeof g) == 0);
    grad_clip(g, 19, norm, 1.0);                        /* clipped to norm ~1 */
    ck_assert(fabs(grad_global_norm(g, 19) - 1.0) < 1e-5);
    for (int i = 0; i < 19; i++)
        ck_assert((g[i] > 0) == (orig[i] > 0));

    float h[3] = {1.0f, 2.0f, 3.0f};
    grad_clip(h, 3, NAN, 1.0);                          /* torch: a NaN norm poisons the grads */
    ck_assert(isnan(h[0]) && isnan(h[2]));
}
END_TEST

/* The vectorized body and the scalar tail must compute the same bits: run
 * n elements at once, then the same elements one at a time (each its own
 * optimizer), from unaligned offsets. */
START_TEST(test_vector_and_scalar_paths_agree)
{
    enum { N = 203 };
    static const optim_type types[] = {OPT_ADAMW, OPT_ADAM, OPT_SGD, OPT_SGD};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        optim_cfg cfg = {.type = types[t], .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                         .weight_decay = 0.02, .momentum = 0.9, .nesterov = t == 3};
        float *pa = xcalloc(N + 1, sizeof(float)), *ga = xcalloc(N + 1, sizeof(float));
        float *ma = xcalloc(N + 1, sizeof(float)), *va = xcalloc(N + 1, sizeof(float));
        float pb[N], mb[N] = {0}, vb[N] = {0};
        optim_state sa = {.m = ma + 1, .v = va + 1}, sb[N];
        for (int i = 0; i < N; i++) {
            pa[i + 1] = pb[i] = sinf((float)i * 0.7f);
            sb[i] = (optim_state){.m = &mb[i], .v = &vb[i]};
        }
        for (int k = 0; k < 4; k++) {
            double lr = 1e-3 * (k + 1);
            for (int i = 0; i < N; i++)
                ga[i + 1] = cosf((float)(i * (k + 3))) * 0.1f;
            optim_step(&cfg, &sa, pa + 1, ga + 1, N, lr);
            for (int i = 0; i < N; i++)
                optim_step(&cfg, &sb[i], &pb[i], &ga[i + 1], 1, lr);
        }
        ck_assert(memcmp(pa + 1, pb, sizeof pb) == 0);
        ck_assert(memcmp(ma + 1, mb, sizeof mb) == 0);
        if (types[t] != OPT_SGD)
            ck_assert(memcmp(va + 1, vb, sizeof vb) == 0);
        free(pa);
        free(ga);
        free(ma);
        free(va);
    }
}
END_TEST

/* SGD without momentum needs no state buffers at all. */
START_TEST(test_sgd_plain_needs_no_state)
{
    optim_cfg cfg = {.type = OPT_SGD, .lr = 0.1};
    float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.5f, 0.25f, -1.0f};
    optim_state st = {.m = NULL, .v = NULL};
    optim_step(&cfg, &st, p, g, 3, 0.1);
    ck_assert(st.step == 1);
    ck_assert(p[0] == fmaf(0.5f, -0.1f, 1.0f));
    ck_assert(p[2] == fmaf(-1.0f, -0.1f, 0.5f));
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("torch");
    tcase_add_test(tc, test_cases_present);
    tcase_add_loop_test(tc, test_case_matches_torch, 0, n_cases);
    tcase_add_test(tc, test_clip_matches_torch);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("properties");
    tcase_add_test(tp, test_norm_simple);
    tcase_add_test(tp, test_clip_properties);
    tcase_add_test(tp, test_vector_and_scalar_paths_agree);
    tcase_add_test(tp, test_sgd_plain_needs_no_state);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    find_cases();
    int failed = tl_run_suite(optim_suite());
    fflush(stdout);
    report();
    for (int i = 0; i < n_cases; i++)
        free(case_names[i]);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

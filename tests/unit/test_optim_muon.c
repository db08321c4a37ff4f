/*
 * Muon (traind/optim_muon.h): against the torch reference
 * (tests/data/optim/muon_*.json, written by tests/gen_torch_ref.py muon),
 * the models' parameter layouts, the AdamW group, Newton-Schulz's
 * orthogonality, and end to end through the runner: the byte GPT learns, a
 * stopped run resumes bit-identically, forks continue and may not change
 * the optimizer type, and the config's keys are validated.
 *
 * Precision against torch: the momentum buffer is elementwise (torch.lerp
 * is fma on its AVX2 kernels, fmaf here) and must match bit for bit.  The
 * parameters go through Newton-Schulz's products, summed by OpenBLAS in
 * another order than torch's matmul and after a norm that we sum in double,
 * so they are held to MUON_REL_TOL of the parameter (with a floor at the
 * size of the step, for a parameter passing near 0); report() prints the
 * worst error seen and how many values were bit-identical.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/ckpt.h"
#include "traind/config.h"
#include "traind/fork.h"
#include "traind/gpt.h"
#include "traind/model.h"
#include "traind/optim.h"
#include "traind/optim_muon.h"
#include "traind/runner.h"
#include "traind/util.h"
#include "tl.h"

#define OPTIM_DIR "tests/data/optim"
#define MAX_CASES 32
#define MUON_REL_TOL 1e-6
#define MUON_STEP_TOL 2e-4

static char *case_names[MAX_CASES];
static int n_cases;

/* ---- the reference cases -------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void find_cases(void)
{
    DIR *d = opendir(OPTIM_DIR);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && n_cases < MAX_CASES) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strncmp(e->d_name, "muon", 4) == 0 && strcmp(e->d_name + len - 5, ".json") == 0)
            case_names[n_cases++] = xstrndup(e->d_name, len - 5);
    }
    closedir(d);
    qsort(case_names, n_cases, sizeof *case_names, cmp_str);
}

static cJSON *load_json(const char *path)
{
    char *buf;
    size_t len;
    if (read_file(path, 16u << 20, &buf, &len) != 0)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    return j;
}

static int hex_array(const cJSON *a, float *out, int n)
{
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (i < n && cJSON_IsString(x)) {
            uint32_t u = (uint32_t)strtoul(x->valuestring, NULL, 16);
            memcpy(&out[i], &u, sizeof u);
        }
        i++;
    }
    return i;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(x) ? x->valuedouble : 0.0;
}

typedef struct tally {
    long values, exact, m_values, m_exact;
    double worst_rel;           /* max |got - want| / max |want| of a matrix */
    double worst_step_rel;      /* max |got - want| / the largest change torch made in the step */
} tally;

/* Replays tests/data/optim/NAME.json on one hidden matrix.  0, or -1 with err. */
static int replay_case(const char *name, tally *t, char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s.json", OPTIM_DIR, name);
    cJSON *j = load_json(path);
    float *p = NULL, *g = NULL, *want = NULL, *prev = NULL, *m = NULL, *v = NULL;
    optim_muon *mu = NULL;
    int rc = -1, k = 0;
    if (!j) {
        snprintf(err, errlen, "cannot read %s", path);
        goto out;
    }
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "optimizer");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    int n = (int)num(j, "n");
    if (cJSON_GetArraySize(shape) != 2 || n <= 0 || n > 1000000) {
        snprintf(err, errlen, "%s: no shape or n", path);
        goto out;
    }
    int rows = cJSON_GetArrayItem(shape, 0)->valueint, cols = cJSON_GetArrayItem(shape, 1)->valueint;
    const char *adjust = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "adjust_lr"));
    optim_cfg cfg = {.type = OPT_MUON, .momentum = num(o, "momentum"),
                     .nesterov = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "nesterov")),
                     .ns_steps = (int)num(o, "ns_steps"), .weight_decay = num(o, "weight_decay"),
                     .adjust_lr = adjust && !strcmp(adjust, "match_rms_adamw") ? MUON_ADJUST_MATCH_RMS_ADAMW
                                                                              : MUON_ADJUST_ORIGINAL};
    if (rows * cols != n || cfg.ns_steps < 1) {
        snprintf(err, errlen, "%s: shape %d x %d, n %d, ns_steps %d", path, rows, cols, n, cfg.ns_steps);
        goto out;
    }
    model_tensor mt = {0, (size_t)rows, (size_t)cols, MODEL_TENSOR_HIDDEN};
    mu = optim_muon_create(&mt, 1, (size_t)n, err, errlen);
    if (!mu)
        goto out;
    p = xcalloc(n, sizeof *p);
    g = xcalloc(n, sizeof *g);
    want = xcalloc(n, sizeof *want);
    prev = xcalloc(n, sizeof *prev);
    m = xcalloc(n, sizeof *m);
    v = xcalloc(n, sizeof *v);
    optim_state st = {m, v, 0, mu};
    if (hex_array(cJSON_GetObjectItemCaseSensitive(j, "params0"), p, n) != n) {
        snprintf(err, errlen, "%s: params0 is not %d floats", path, n);
        goto out;
    }
    memcpy(prev, p, (size_t)n * sizeof *prev);
    const cJSON *step;
    cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(j, "steps")) {
        k++;
        double lr = num(step, "lr");
        cfg.lr = lr;
        if (hex_array(cJSON_GetObjectItemCaseSensitive(step, "grad"), g, n) != n ||
            hex_array(cJSON_GetObjectItemCaseSensitive(step, "m"), want, n) != n) {
            snprintf(err, errlen, "%s step %d: grad or m is not %d floats", path, k, n);
            goto out;
        }
        optim_step(&cfg, &st, p, g, (size_t)n, lr);
        for (int i = 0; i < n; i++) {
            t->m_values++;
            t->m_exact += memcmp(&m[i], &want[i], sizeof(float)) == 0;
            if (memcmp(&m[i], &want[i], sizeof(float)) != 0) {
                snprintf(err, errlen, "%s step %d m[%d]: %.9g, torch %.9g (must be bit-identical)", name, k, i,
                         m[i], want[i]);
                goto out;
            }
        }
        if (hex_array(cJSON_GetObjectItemCaseSensitive(step, "params"), want, n) != n) {
            snprintf(err, errlen, "%s step %d: params is not %d floats", path, k, n);
            goto out;
        }
        /* the error against the matrix's largest entry, and against the largest change torch
         * made to it this step (prev: torch's parameters before it) */
        double dmax = 0, pmax = 0, stepmax = 0;
        for (int i = 0; i < n; i++) {
            dmax = fmax(dmax, fabs((double)p[i] - (double)want[i]));
            pmax = fmax(pmax, fabs((double)want[i]));
            stepmax = fmax(stepmax, fabs((double)want[i] - (double)prev[i]));
            t->values++;
            t->exact += p[i] == want[i];
        }
        t->worst_rel = fmax(t->worst_rel, dmax / pmax);
        t->worst_step_rel = fmax(t->worst_step_rel, dmax / stepmax);
        if (dmax > MUON_REL_TOL * pmax || dmax > MUON_STEP_TOL * stepmax) {
            snprintf(err, errlen, "%s step %d: parameters %.3g from torch's, %.3g of the largest (bound %g), "
                     "%.3g of the largest change (bound %g)", name, k, dmax, dmax / pmax, MUON_REL_TOL,
                     dmax / stepmax, MUON_STEP_TOL);
            goto out;
        }
        memcpy(prev, want, (size_t)n * sizeof *prev);
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
    free(prev);
    free(m);
    free(v);
    optim_muon_free(mu);
    cJSON_Delete(j);
    free(path);
    return rc;
}

START_TEST(test_cases_present)
{
    ck_assert_msg(n_cases >= 6, "expected the muon cases in %s (run from the repository root), found %d",
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

static void report(void)
{
    tally t = {0};
    char err[512];
    for (int i = 0; i < n_cases; i++)
        replay_case(case_names[i], &t, err, sizeof err);
    fprintf(stderr, "muon: %d cases; momentum %ld values, %ld bit-identical; parameters %ld values, %ld "
            "bit-identical, worst error %.3g of the matrix's largest entry (bound %g), %.3g of the step's "
            "largest change (bound %g)\n", n_cases, t.m_values, t.m_exact, t.values, t.exact, t.worst_rel,
            MUON_REL_TOL, t.worst_step_rel, MUON_STEP_TOL);
}

static Suite *muon_suite(void)
{
    Suite *s = suite_create("optim_muon");
    TCase *tc = tcase_create("torch");
    tcase_add_test(tc, test_cases_present);
    tcase_add_loop_test(tc, test_case_matches_torch, 0, n_cases);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    find_cases();
    int failed = tl_run_suite(muon_suite());
    fflush(stdout);
    report();
    for (int i = 0; i < n_cases; i++)
        free(case_names[i]);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

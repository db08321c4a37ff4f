/*
 * Schedule-free AdamW (traind/optim_sf.h, optimizer.type schedule_free_adamw):
 * the optimizer against the committed reference data, its config keys and
 * their validation, the decaying-schedule warning, forks, and training end
 * to end (the byte GPT learns; a stop and a kill -9 resume bit-identically;
 * evaluation and checkpoints' weights are x).
 *
 * The reference data, tests/data/optim/schedule_free*.json, is written by
 * tests/gen_torch_ref.py from a torch implementation of the reference's step
 * (AdamWScheduleFree v1.4.1, its single-tensor ops) on torch 1.13's CPU
 * kernels: 37 parameters (an 8-wide vector body and a scalar tail), 8 steps,
 * five cases (defaults; weight decay; warmup_steps; r > 0 with a varying lr;
 * a schedule starting at lr 0 with beta1 0.6, so that weight_sum is 0 at
 * first and x's lerp weight 1 - 1/beta1 takes lerp's other branch).  We
 * require every float — y (the parameters), z, v and x — to be bit-identical,
 * and weight_sum and lr_max (Python doubles there) to be equal.  Bit for bit
 * is what the arithmetic allows here: every op is an IEEE op on the same
 * operands (division, square root, one fma where torch's AVX2 kernels fuse —
 * addcmul, add/sub with alpha, lerp), and fmaf() is correctly rounded by
 * C99 (libm's software fallback where the CPU has no FMA), so the result does
 * not depend on the machine running this test.  The scalars are doubles
 * computed with the same operations as Python's (pow() for **).  No 1e-6
 * tolerance was needed; the summary line prints how many values matched.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/ckpt.h"
#include "traind/config.h"
#include "traind/data.h"
#include "traind/fork.h"
#include "traind/model.h"
#include "traind/optim.h"
#include "traind/optim_sf.h"
#include "traind/runner.h"
#include "traind/util.h"
#include "tl.h"
#include "optim_ref.h"

#define OPTIM_DIR "tests/data/optim"
#define MAX_CASES 32

static char *case_names[MAX_CASES];
static int n_cases;

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

typedef struct tally {
    long values, exact;
} tally;

/* Every value bit-identical, else err names the first that is not. */
static int compare(tally *t, const char *what, const char *name, int step, const float *got, const float *want,
                   int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        t->values++;
        if (bits(got[i]) == bits(want[i])) {
            t->exact++;
            continue;
        }
        snprintf(err, errlen, "%s step %d %s[%d]: %.9g (0x%08x), reference %.9g (0x%08x)", name, step, what, i,
                 got[i], bits(got[i]), want[i], bits(want[i]));
        return -1;
    }
    return 0;
}

/* The optimizer section of a case, as the config reader would fill it. */
static int case_cfg(const cJSON *o, optim_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
    const cJSON *betas = cJSON_GetObjectItemCaseSensitive(o, "betas");
    if (!type || strcmp(type, "schedule_free_adamw") != 0 || cJSON_GetArraySize(betas) != 2)
        return -1;
    cfg->type = OPT_SCHEDULE_FREE_ADAMW;
    cfg->beta1 = cJSON_GetArrayItem(betas, 0)->valuedouble;
    cfg->beta2 = cJSON_GetArrayItem(betas, 1)->valuedouble;
    cfg->eps = num(o, "eps");
    cfg->weight_decay = num(o, "weight_decay");
    cfg->sf_warmup_steps = (long)num(o, "warmup_steps");
    cfg->sf_r = num(o, "r");
    cfg->sf_weight_lr_power = num(o, "weight_lr_power");
    return isnan(cfg->eps + cfg->weight_decay + cfg->sf_r + cfg->sf_weight_lr_power) ? -1 : 0;
}

/* This file's cases: schedule_free*.json. */
static bool is_sf_case(const char *file)
{
    return strncmp(file, "schedule_free", 13) == 0;
}

static void find_cases(void)
{
    n_cases = optim_ref_find(OPTIM_DIR, is_sf_case, case_names, MAX_CASES);
}

/* Replays tests/data/optim/NAME.json step by step through optim_step.  0, or
 * -1 with err. */
static int replay_case(const char *name, tally *t, char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s.json", OPTIM_DIR, name);
    cJSON *j = optim_ref_load(path);
    float *y = NULL, *g = NULL, *want = NULL, *x = NULL;
    optim_state st = {0};
    int rc = -1, k = 0, n = j ? (int)num(j, "n") : 0;
    optim_cfg cfg;
    if (!j || n <= 0 || n > 100000 || case_cfg(cJSON_GetObjectItemCaseSensitive(j, "optimizer"), &cfg) != 0) {
        snprintf(err, errlen, "cannot read %s, or it has no n or schedule-free optimizer", path);
        goto out;
    }
    y = xcalloc(n, sizeof *y);
    g = xcalloc(n, sizeof *g);
    x = xcalloc(n, sizeof *x);
    want = xcalloc(n, sizeof *want);
    st.m = xcalloc(n, sizeof(float));
    st.v = xcalloc(n, sizeof(float));
    if (optim_ref_floats(cJSON_GetObjectItemCaseSensitive(j, "params0"), y, n) != n) {
        snprintf(err, errlen, "%s: params0 is not %d floats", path, n);
        goto out;
    }
    const cJSON *step;
    cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(j, "steps")) {
        k++;
        if (optim_ref_floats(cJSON_GetObjectItemCaseSensitive(step, "grad"), g, n) != n) {
            snprintf(err, errlen, "%s step %d: grad is not %d floats", path, k, n);
            goto out;
        }
        optim_step(&cfg, &st, y, g, n, num(step, "lr"));
        optim_sf_eval_params(&cfg, y, st.m, x, n);
        static const char *const names[] = {"params", "z", "v", "x"};
        const float *got[] = {y, st.m, st.v, x};
        for (int a = 0; a < 4; a++)
            if (optim_ref_floats(cJSON_GetObjectItemCaseSensitive(step, names[a]), want, n) != n ||
                compare(t, names[a], name, k, got[a], want, n, err, errlen) != 0) {
                if (!err[0])
                    snprintf(err, errlen, "%s step %d: %s is not %d floats", path, k, names[a], n);
                goto out;
            }
        if (st.step != k || st.weight_sum != num(step, "weight_sum") || st.lr_max != num(step, "lr_max")) {
            snprintf(err, errlen, "%s step %d: step %ld, weight_sum %.17g, lr_max %.17g; reference %.17g, %.17g",
                     name, k, st.step, st.weight_sum, st.lr_max, num(step, "weight_sum"), num(step, "lr_max"));
            goto out;
        }
    }
    if (k != 8) {
        snprintf(err, errlen, "%s: %d steps, expected 8", path, k);
        goto out;
    }
    rc = 0;
out:
    free(y);
    free(g);
    free(x);
    free(want);
    free(st.m);
    free(st.v);
    cJSON_Delete(j);
    free(path);
    return rc;
}

START_TEST(test_cases_present)
{
    ck_assert_msg(n_cases >= 5, "expected the schedule_free*.json cases in %s (run from the repository root), found %d",
                  OPTIM_DIR, n_cases);
}
END_TEST

START_TEST(test_case_matches_reference)
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
    fprintf(stderr, "optim_sf: %d cases, %ld values compared with the reference, %ld bit-identical\n", n_cases,
            t.values, t.exact);
}

/* ---- properties --------------------------------------------------------- */

/* The vector body and the scalar tail compute the same bits: n elements at
 * once against the same elements one at a time, from an unaligned offset,
 * through both lerp branches (ckp1 = 1, 1/2, then small) and weight decay. */
START_TEST(test_vector_and_scalar_paths_agree)
{
    enum { N = 203 };
    for (int wd = 0; wd < 2; wd++) {
        optim_cfg cfg = {.type = OPT_SCHEDULE_FREE_ADAMW, .beta1 = wd ? 0.6 : 0.9, .beta2 = 0.999, .eps = 1e-8,
                         .weight_decay = wd ? 0.02 : 0.0, .sf_warmup_steps = 2, .sf_weight_lr_power = 2.0};
        float *ya = xcalloc(N + 1, sizeof(float)), *ga = xcalloc(N + 1, sizeof(float));
        float *za = xcalloc(N + 1, sizeof(float)), *va = xcalloc(N + 1, sizeof(float));
        float *xa = xcalloc(N + 1, sizeof(float)), xb[N];
        float yb[N], zb[N] = {0}, vb[N] = {0};
        optim_state sa = {.m = za + 1, .v = va + 1}, sb[N];
        for (int i = 0; i < N; i++) {
            ya[i + 1] = yb[i] = sinf((float)i * 0.7f);
            sb[i] = (optim_state){.m = &zb[i], .v = &vb[i]};
        }
        for (int k = 0; k < 5; k++) {
            double lr = 1e-3 * (k + 1);
            for (int i = 0; i < N; i++)
                ga[i + 1] = cosf((float)(i * (k + 3))) * 0.1f;
            optim_step(&cfg, &sa, ya + 1, ga + 1, N, lr);
            for (int i = 0; i < N; i++)
                optim_step(&cfg, &sb[i], &yb[i], &ga[i + 1], 1, lr);
        }
        ck_assert(memcmp(ya + 1, yb, sizeof yb) == 0);
        ck_assert(memcmp(za + 1, zb, sizeof zb) == 0);
        ck_assert(memcmp(va + 1, vb, sizeof vb) == 0);
        optim_sf_eval_params(&cfg, ya + 1, za + 1, xa + 1, N);
        for (int i = 0; i < N; i++)
            optim_sf_eval_params(&cfg, &yb[i], &zb[i], &xb[i], 1);
        ck_assert(memcmp(xa + 1, xb, sizeof xb) == 0);
        free(ya);
        free(ga);
        free(za);
        free(va);
        free(xa);
    }
}
END_TEST

/* The first step makes z a copy of y, whatever the buffer held; x lies
 * between y and z (x = y + (1 - 1/beta1)(z - y), beyond y away from z). */
START_TEST(test_first_step_and_x)
{
    optim_cfg cfg = {.type = OPT_SCHEDULE_FREE_ADAMW, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                     .sf_weight_lr_power = 2.0};
    float y[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.5f, 0.25f, -1.0f}, z[3] = {7, 7, 7}, v[3] = {0}, x[3];
    optim_state st = {.m = z, .v = v, .weight_sum = 123.0, .lr_max = 456.0};
    optim_step(&cfg, &st, y, g, 3, 0.01);
    ck_assert_int_eq(st.step, 1);
    ck_assert(st.weight_sum == 0.01 * 0.01 && st.lr_max == 0.01);
    /* ckp1 = 1: y and z take the same step from the same point */
    ck_assert(memcmp(y, z, sizeof y) == 0);
    ck_assert(y[0] < 1.0f && y[2] > 0.5f);
    optim_step(&cfg, &st, y, g, 3, 0.01);
    optim_sf_eval_params(&cfg, y, z, x, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert(z[i] != y[i]);
        ck_assert((x[i] - y[i]) * (z[i] - y[i]) < 0);   /* beyond y, away from z */
    }
}
END_TEST

/* ---- config ------------------------------------------------------------- */

#define MLP "model: {type: mlp, input_dim: 4, output_dim: 2}\n"
#define CONST "schedule: {type: constant, total_steps: 100}\n"

static int parse(const char *yaml, run_config *c, diag_list_t *errs)
{
    return cfg_parse(yaml, strlen(yaml), NULL, c, errs);
}

static void parse_ok(const char *yaml, run_config *c)
{
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = parse(yaml, c, &errs);
    if (rc != 0)
        diag_print(stderr, "test", &errs);
    ck_assert_int_eq(rc, 0);
    diag_free(&errs);
}

/* The errors of yaml include one at path whose message contains msg. */
static void expect_error(const char *yaml, const char *path, const char *msg)
{
    run_config c;
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_msg(parse(yaml, &c, &errs) == -1, "accepted: %s", yaml);
    bool found = false;
    for (size_t i = 0; i < errs.n; i++)
        found |= !strcmp(errs.items[i].path, path) && strstr(errs.items[i].message, msg) != NULL;
    if (!found)
        diag_print(stderr, "got", &errs);
    ck_assert_msg(found, "no error at %s with '%s' for %s", path, msg, yaml);
    diag_free(&errs);
}

START_TEST(test_config_defaults)
{
    run_config c;
    parse_ok(MLP "optimizer: {type: schedule_free_adamw}\n" CONST, &c);
    ck_assert_int_eq(c.optim.type, OPT_SCHEDULE_FREE_ADAMW);
    ck_assert_str_eq(optim_type_name(c.optim.type), "schedule_free_adamw");
    ck_assert(c.optim.lr == 0.0025 && c.optim.beta1 == 0.9 && c.optim.beta2 == 0.999 && c.optim.eps == 1e-8);
    ck_assert(c.optim.weight_decay == 0.0 && c.optim.sf_warmup_steps == 0 && c.optim.sf_r == 0.0 &&
              c.optim.sf_weight_lr_power == 2.0);
    cfg_free(&c);
    /* adamw's own defaults stay */
    parse_ok(MLP CONST, &c);
    ck_assert(c.optim.type == OPT_ADAMW && c.optim.lr == 1e-3 && c.optim.weight_decay == 0.01);
    cfg_free(&c);
}
END_TEST

START_TEST(test_config_keys)
{
    static const char *const yaml =
        MLP "optimizer: {type: schedule_free_adamw, lr: 0.01, betas: [0.95, 0.99], eps: 1.0e-6, weight_decay: 0.1,\n"
        "            warmup_steps: 100, r: 1.5, weight_lr_power: 1, grad_clip: 1.0}\n" CONST;
    run_config c, d;
    parse_ok(yaml, &c);
    ck_assert(c.optim.lr == 0.01 && c.optim.beta1 == 0.95 && c.optim.beta2 == 0.99 && c.optim.eps == 1e-6);
    ck_assert(c.optim.weight_decay == 0.1 && c.optim.sf_warmup_steps == 100 && c.optim.sf_r == 1.5 &&
              c.optim.sf_weight_lr_power == 1.0 && c.optim.grad_clip == 1.0);
    /* the job object shows them */
    cJSON *j = cfg_to_json(&c), *o = cJSON_GetObjectItem(j, "optimizer");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "type")), "schedule_free_adamw");
    ck_assert(cJSON_GetObjectItem(o, "warmup_steps")->valuedouble == 100);
    ck_assert(cJSON_GetObjectItem(o, "r")->valuedouble == 1.5);
    ck_assert(cJSON_GetObjectItem(o, "weight_lr_power")->valuedouble == 1.0);
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "momentum"));
    cJSON_Delete(j);
    /* each changes the numbers, hence the hash */
    char *other = xasprintf("%s", yaml);
    memcpy(strstr(other, "r: 1.5"), "r: 2.5", 6);
    parse_ok(other, &d);
    ck_assert(cfg_hash(&c) != cfg_hash(&d));
    ck_assert(cfg_lineage_hash(&c) == cfg_lineage_hash(&d));
    cfg_free(&d);
    parse_ok(MLP "optimizer: {type: adamw, lr: 0.01, betas: [0.95, 0.99], eps: 1.0e-6, weight_decay: 0.1, "
             "grad_clip: 1.0}\n" CONST, &d);
    ck_assert(cfg_hash(&c) != cfg_hash(&d));
    ck_assert(cfg_lineage_hash(&c) != cfg_lineage_hash(&d));   /* another optimizer: another line */
    cfg_free(&d);
    free(other);
    cfg_free(&c);
}
END_TEST

START_TEST(test_config_errors)
{
#define SF(keys) MLP "optimizer: {type: schedule_free_adamw, " keys "}\n" CONST
    expect_error(SF("warmup_steps: -1"), "optimizer.warmup_steps", "-1");
    expect_error(SF("warmup_steps: 2.5"), "optimizer.warmup_steps", "integer");
    expect_error(SF("r: -0.5"), "optimizer.r", "-0.5");
    expect_error(SF("r: 11"), "optimizer.r", "must be a number in [0, 10], got 11");
    expect_error(SF("r: fast"), "optimizer.r", "fast");
    expect_error(SF("weight_lr_power: -1"), "optimizer.weight_lr_power", "in [0, 10], got -1");
    expect_error(SF("weight_lr_power: 12"), "optimizer.weight_lr_power", "in [0, 10], got 12");
    expect_error(SF("betas: [0, 0.999]"), "optimizer.betas[0]", "must be > 0 for optimizer type schedule_free_adamw");
    expect_error(SF("betas: [0.9, 1.0]"), "optimizer.betas[1]", "in [0, 1), got 1.0");
    expect_error(SF("lr: 0"), "optimizer.lr", "> 0");
    expect_error(SF("eps: 0"), "optimizer.eps", "> 0");
    expect_error(SF("weight_decay: -0.1"), "optimizer.weight_decay", ">= 0");
    expect_error(SF("momentum: 0.9"), "optimizer.momentum", "only used by optimizer types sgd and muon");
    /* its keys under another optimizer */
    expect_error(MLP "optimizer: {type: adamw, r: 1}\n" CONST, "optimizer.r",
                 "only used by optimizer type schedule_free_adamw");
    expect_error(MLP "optimizer: {type: sgd, warmup_steps: 10}\n" CONST, "optimizer.warmup_steps",
                 "only used by optimizer type schedule_free_adamw, not sgd (did you mean 'schedule.warmup_steps'?)");
    expect_error(MLP "optimizer: {weight_lr_power: 1}\n" CONST, "optimizer.weight_lr_power",
                 "only used by optimizer type schedule_free_adamw");
    expect_error(MLP "optimizer: {type: schedule_free_adam}\n" CONST, "optimizer.type", "schedule_free_adamw");
    /* warmup_steps written at the top: the hint is still the schedule's */
    expect_error(MLP CONST "warmup_steps: 5\n", "warmup_steps", "did you mean 'schedule.warmup_steps'?");
#undef SF
}
END_TEST

/* The number of warnings cfg_warnings gives a config, the first in *first. */
static size_t warnings_of(const char *yaml, char *first, size_t size)
{
    run_config c;
    parse_ok(yaml, &c);
    diag_list_t w = DIAG_LIST_INIT;
    cfg_warnings(&c, &w);
    size_t n = w.n;
    snprintf(first, size, "%s: %s", n ? w.items[0].path : "", n ? w.items[0].message : "");
    diag_free(&w);
    cfg_free(&c);
    return n;
}

START_TEST(test_decaying_schedule_warned)
{
    char w[512];
#define SFO MLP "optimizer: {type: schedule_free_adamw}\n"
    ck_assert_uint_eq(warnings_of(SFO "schedule: {type: cosine, warmup_steps: 10, total_steps: 100}\n", w, sizeof w), 1);
    ck_assert_msg(strstr(w, "schedule.type: warning: schedule cosine lowers the lr") &&
                  strstr(w, "schedule_free_adamw is meant for a constant lr"), "%s", w);
    ck_assert_uint_eq(warnings_of(SFO "schedule: {type: linear, total_steps: 3000000}\n", w, sizeof w), 1);
    ck_assert_uint_eq(warnings_of(SFO "schedule: {type: warmup_stable_decay, total_steps: 1000, decay_steps: 100}\n",
                                  w, sizeof w), 1);
    ck_assert_uint_eq(warnings_of(SFO "schedule: {type: piecewise, total_steps: 100, points: [[0, 1.0], [50, 1.0], "
                                      "[60, 0.5]]}\n", w, sizeof w), 1);
    /* constant, a warmup, a rise: no decay */
    ck_assert_uint_eq(warnings_of(SFO CONST, w, sizeof w), 0);
    ck_assert_uint_eq(warnings_of(SFO "schedule: {type: constant_with_warmup, warmup_steps: 20, total_steps: 100}\n",
                                  w, sizeof w), 0);
    ck_assert_uint_eq(warnings_of(SFO "schedule: {type: piecewise, total_steps: 100, points: [[0, 0.1], [10, 1.0]]}\n",
                                  w, sizeof w), 0);
    ck_assert_uint_eq(warnings_of(SFO "schedule: {type: cosine, total_steps: 1}\n", w, sizeof w), 0);
    /* other optimizers decay as they please */
    ck_assert_uint_eq(warnings_of(MLP "schedule: {type: cosine, total_steps: 100}\n", w, sizeof w), 0);
#undef SFO
}
END_TEST

/* ---- forks -------------------------------------------------------------- */

static const char *const FORK_PARENT =
    "name: sfp\nseed: 4\n"
    "model: {type: mlp, input_dim: 6, hidden: [16], output_dim: 3, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: schedule_free_adamw, lr: 5.0e-3, warmup_steps: 10, grad_clip: 1.0}\n"
    "schedule: {type: constant, total_steps: 400}\n"
    "train: {log_every: 10, checkpoint_every: 0, keep_every: 100}\n";

/* cfg_fork of parent with one --set: its return, with the errors in err. */
static int fork_with(const char *parent, const char *set, run_config *out, char *err, size_t size)
{
    cfg_fork_req req = {.at_step = 200, .sets = &set, .n_sets = set ? 1 : 0};
    char *yaml = NULL;
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = cfg_fork(parent, strlen(parent), "sfp", &req, NULL, out, &yaml, &errs);
    err[0] = '\0';
    for (size_t i = 0; i < errs.n; i++)
        snprintf(err + strlen(err), size - strlen(err), "%s: %s\n", errs.items[i].path, errs.items[i].message);
    free(yaml);
    diag_free(&errs);
    return rc;
}

START_TEST(test_fork_keeps_optimizer_type)
{
    run_config c;
    char err[1024];
    ck_assert_int_eq(fork_with(FORK_PARENT, "optimizer.type=adamw", &c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "--set optimizer.type: a fork keeps its parent's optimizer") &&
                  strstr(err, "schedule_free_adamw, which adamw cannot continue"), "%s", err);
    char *adamw = xasprintf("%s", FORK_PARENT);
    char *t = strstr(adamw, "type: schedule_free_adamw, lr: 5.0e-3, warmup_steps: 10,");
    memcpy(t, "type: adamw, lr: 5.0e-3,                                ", 56);
    ck_assert_int_eq(fork_with(adamw, "optimizer.type=schedule_free_adamw", &c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "adamw, which schedule_free_adamw cannot continue"), "%s", err);
    free(adamw);
    /* its own averaging keys are the run's too */
    ck_assert_int_eq(fork_with(FORK_PARENT, "optimizer.r=1", &c, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "--set optimizer.r: a fork changes only"), "%s", err);
    /* lr, weight decay, a schedule: yes */
    ck_assert_int_eq(fork_with(FORK_PARENT, "optimizer.lr=1.0e-3", &c, err, sizeof err), 0);
    ck_assert(c.optim.type == OPT_SCHEDULE_FREE_ADAMW && c.optim.lr == 1e-3 && c.optim.sf_warmup_steps == 10);
    cfg_free(&c);
    ck_assert_int_eq(fork_with(FORK_PARENT, "schedule.total_steps=300", &c, err, sizeof err), 0);
    cfg_free(&c);
}
END_TEST

/* ---- training ----------------------------------------------------------- */

static const char *const RUN_CFG =
    "name: sf\nseed: 5\n"
    "model: {type: mlp, input_dim: 6, hidden: [16, 8], output_dim: 3, activation: gelu}\n"
    "data: {kind: synthetic, batch_size: 8, noise: 0.05, eval_fraction: 0.2}\n"
    "optimizer: {type: schedule_free_adamw, lr: 5.0e-3, weight_decay: 0.01, warmup_steps: 20, grad_clip: 0.5}\n"
    "schedule: {type: constant, total_steps: 300}\n"
    "train: {log_every: 7, checkpoint_every: 50, eval_every: 25}\n";

enum {
    TAG_PARAMS = 0x50524d53, TAG_OPT_M = 0x4f50544d, TAG_OPT_V = 0x4f505456,   /* runner.c's */
    TAG_SF_Y = 0x53465f59, TAG_SF_W = 0x53465f57,
};

typedef struct recorder {
    volatile sig_atomic_t stop;
    long stop_at;              /* set stop once this step is reached */
    long kill_at;              /* kill -9 this process once this step is reached */
    long start_step;
    char notices[1024];
} recorder;

static void on_event(void *ctx, const run_event *ev)
{
    recorder *r = ctx;
    if (ev->type == RUN_EVENT_START)
        r->start_step = ev->pt.step;
    if (ev->type == RUN_EVENT_NOTICE)
        strncat(r->notices, ev->message, sizeof r->notices - strlen(r->notices) - 1);
    if (r->stop_at > 0 && ev->pt.step >= r->stop_at)
        r->stop = 1;
    if (r->kill_at > 0 && ev->pt.step >= r->kill_at)
        raise(SIGKILL);
}

static run_result train(const run_config *cfg, const char *dir, bool fresh, recorder *rec, char *err)
{
    runner_opts o = {.out_dir = dir, .threads = 1, .fresh = fresh, .stop = &rec->stop,
                     .tick_interval_s = rec->kill_at > 0 ? 1e-9 : 0, .on_event = on_event, .ctx = rec};
    return runner_run(cfg, &o, err, 512);
}

static void read_ckpt(const char *dir, ckpt_file *f)
{
    char *p = xasprintf("%s/checkpoint.bin", dir), err[512];
    ck_assert_msg(ckpt_read(p, 1 << 26, f, err, sizeof err) == 0, "%s: %s", p, err);
    free(p);
}

/* The checkpoints of dirs a and b hold the same bits in every section that
 * training goes on from, and the same weights. */
static void same_state(const char *a, const char *b)
{
    ckpt_file fa, fb;
    read_ckpt(a, &fa);
    read_ckpt(b, &fb);
    ck_assert_uint_eq(fa.step, fb.step);
    static const uint32_t tags[] = {TAG_PARAMS, TAG_OPT_M, TAG_OPT_V, TAG_SF_Y, TAG_SF_W};
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++) {
        const ckpt_section *sa = ckpt_find(&fa, tags[i]), *sb = ckpt_find(&fb, tags[i]);
        ck_assert_msg(sa && sb, "section %08x missing", tags[i]);
        ck_assert_uint_eq(sa->len, sb->len);
        ck_assert_msg(memcmp(sa->data, sb->data, sa->len) == 0, "section %08x differs", tags[i]);
    }
    ckpt_close(&fa);
    ckpt_close(&fb);
}

START_TEST(test_stop_and_kill_resume_bit_identically)
{
    run_config cfg;
    parse_ok(RUN_CFG, &cfg);
    char *ref = tl_tmpdir("traind-sf"), *dir = tl_tmpdir("traind-sf"), *kdir = tl_tmpdir("traind-sf"), err[512];
    recorder r0 = {0};
    ck_assert_int_eq(train(&cfg, ref, true, &r0, err), RUN_OK);
    char *m0 = tl_dir_metrics(ref);
    ck_assert_ptr_nonnull(strstr(m0, "\"eval_loss\""));

    /* a stop between log, eval and checkpoint steps */
    recorder r1 = {.stop_at = 123};
    ck_assert_int_eq(train(&cfg, dir, false, &r1, err), RUN_STOPPED);
    recorder r2 = {0};
    ck_assert_int_eq(train(&cfg, dir, false, &r2, err), RUN_OK);
    ck_assert_int_ge(r2.start_step, 123);
    ck_assert_str_eq(r2.notices, "");
    char *m1 = tl_dir_metrics(dir);
    ck_assert_str_eq(m0, m1);
    same_state(ref, dir);

    /* kill -9 at step 130: nothing saved since the checkpoint of step 100 */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        recorder rk = {.kill_at = 130};
        train(&cfg, kdir, false, &rk, err);
        _exit(0);   /* not reached */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    recorder r3 = {0};
    ck_assert_int_eq(train(&cfg, kdir, false, &r3, err), RUN_OK);
    ck_assert_int_eq(r3.start_step, 100);
    char *m2 = tl_dir_metrics(kdir);
    ck_assert_str_eq(m0, m2);
    same_state(ref, kdir);

    free(m0);
    free(m1);
    free(m2);
    tl_rmtree(ref);
    tl_rmtree(dir);
    tl_rmtree(kdir);
    free(ref);
    free(dir);
    free(kdir);
    cfg_free(&cfg);
}
END_TEST

/* The checkpoint's weights (what trainctl sample loads) and eval_loss are
 * x = lerp(y, z, 1 - 1/beta1); evaluating changes no training number. */
START_TEST(test_evaluation_and_checkpoint_use_x)
{
    run_config cfg, quiet;
    parse_ok(RUN_CFG, &cfg);
    char *noeval = xasprintf("%s", RUN_CFG);
    memcpy(strstr(noeval, "eval_every: 25"), "eval_every:  0", 14);
    parse_ok(noeval, &quiet);
    ck_assert(cfg_hash(&cfg) == cfg_hash(&quiet));
    char *a = tl_tmpdir("traind-sf"), *b = tl_tmpdir("traind-sf"), err[512];
    recorder r = {0};
    ck_assert_int_eq(train(&cfg, a, true, &r, err), RUN_OK);
    ck_assert_int_eq(train(&quiet, b, true, &r, err), RUN_OK);
    same_state(a, b);

    ckpt_file f;
    read_ckpt(a, &f);
    const ckpt_section *p = ckpt_find(&f, TAG_PARAMS), *y = ckpt_find(&f, TAG_SF_Y), *z = ckpt_find(&f, TAG_OPT_M);
    size_t n = p->len / sizeof(float);
    float *x = xcalloc(n, sizeof *x), *loaded = xcalloc(n, sizeof *loaded);
    optim_sf_eval_params(&cfg.optim, y->data, z->data, x, n);
    ck_assert(memcmp(x, p->data, p->len) == 0);
    ck_assert(memcmp(y->data, p->data, p->len) != 0);
    char *path = xasprintf("%s/checkpoint.bin", a);
    ck_assert_int_eq(runner_load_params(&cfg, path, loaded, n, err, sizeof err), 0);
    ck_assert(memcmp(loaded, x, p->len) == 0);

    /* the last point's eval_loss is the eval batches' mean loss at x */
    data_source_t *d = data_open(&cfg, NULL, err, sizeof err);
    ck_assert_msg(d != NULL, "%s", err);
    model_t *m = model_create(&cfg.model, cfg.data.batch_size, err, sizeof err);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->n_params, n);
    double at_x = 0, at_y = 0;
    int nb = data_eval_batches(d);
    ck_assert_int_gt(nb, 0);
    for (int pass = 0; pass < 2; pass++) {
        memcpy(m->params, pass ? y->data : x, p->len);
        double sum = 0;
        for (int i = 0; i < nb; i++) {
            batch_t bt;
            data_eval_batch(d, i, &bt);
            sum += model_eval_loss(m, &bt);
        }
        *(pass ? &at_y : &at_x) = sum / nb;
    }
    char *metrics = tl_dir_metrics(a), *last = strrchr(metrics, '{'), want[64];
    snprintf(want, sizeof want, "\"eval_loss\":%.9g}", at_x);
    ck_assert_msg(strstr(last, want) != NULL, "last point %s lacks %s (at y: %.9g)", last, want, at_y);
    ck_assert(at_x != at_y);

    model_free(m);
    data_close(d);
    ckpt_close(&f);
    free(metrics);
    free(path);
    free(x);
    free(loaded);
    free(noeval);
    tl_rmtree(a);
    tl_rmtree(b);
    free(a);
    free(b);
    cfg_free(&cfg);
    cfg_free(&quiet);
}
END_TEST

/* A fork of a schedule-free run goes on from its parent's y, z, v and
 * averages: unchanged, it repeats the parent bit for bit; a run of another
 * optimizer cannot start from its checkpoint. */
START_TEST(test_fork_continues_bit_identically)
{
    run_config parent, same, other;
    parse_ok(FORK_PARENT, &parent);
    char *pdir = tl_tmpdir("traind-sf"), *fdir = tl_tmpdir("traind-sf"), *odir = tl_tmpdir("traind-sf"), err[512];
    recorder rec = {0};
    ck_assert_int_eq(train(&parent, pdir, true, &rec, err), RUN_OK);
    ck_assert_int_eq(fork_with(FORK_PARENT, NULL, &same, err, sizeof err), 0);
    char *from = xasprintf("%s/checkpoints/step-200.bin", pdir), *pm = xasprintf("%s/metrics.jsonl", pdir);
    runner_opts o = {.out_dir = fdir, .threads = 1, .stop = &rec.stop, .fork_from = from, .fork_metrics = pm};
    ck_assert_int_eq(runner_run(&same, &o, err, sizeof err), RUN_OK);
    char *a = tl_dir_metrics(pdir), *b = tl_dir_metrics(fdir);
    ck_assert_str_eq(a, b);
    same_state(pdir, fdir);

    char *adamw = xasprintf("%s", FORK_PARENT);
    char *t = strstr(adamw, "type: schedule_free_adamw, lr: 5.0e-3, warmup_steps: 10,");
    memcpy(t, "type: adamw, lr: 5.0e-3,                                ", 56);
    parse_ok(adamw, &other);
    o.out_dir = odir;
    ck_assert_int_eq(runner_run(&other, &o, err, sizeof err), RUN_FAILED);
    ck_assert_msg(strstr(err, "not of this run's line") != NULL, "%s", err);

    free(a);
    free(b);
    free(adamw);
    free(from);
    free(pm);
    tl_rmtree(pdir);
    tl_rmtree(fdir);
    tl_rmtree(odir);
    free(pdir);
    free(fdir);
    free(odir);
    cfg_free(&parent);
    cfg_free(&same);
    cfg_free(&other);
}
END_TEST

/* The byte GPT learns with it: a constant lr, its own warmup. */
START_TEST(test_gpt_learns)
{
    char *dir = tl_tmpdir("traind-sf"), *text = xasprintf("%s/text.txt", dir), err[512];
    FILE *f = fopen(text, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 200; i++)
        fputs("the quick brown fox jumps over the lazy dog. ", f);
    fclose(f);
    long steps = TL_ASAN ? 200 : 300;
    char *yaml = xasprintf("name: sfgpt\nseed: 3\n"
                           "model: {type: gpt, context: 32, d_model: 32, layers: 2, heads: 2}\n"
                           "data: {kind: text, batch_size: 8}\n"
                           "optimizer: {type: schedule_free_adamw, lr: 5.0e-3, warmup_steps: 20}\n"
                           "schedule: {type: constant, total_steps: %ld}\n"
                           "train: {log_every: 10, checkpoint_every: 0}\n", steps);
    run_config cfg;
    parse_ok(yaml, &cfg);
    char *out = xasprintf("%s/run", dir);
    recorder rec = {0};
    runner_opts o = {.out_dir = out, .data_path = text, .threads = 1, .stop = &rec.stop};
    ck_assert_msg(runner_run(&cfg, &o, err, sizeof err) == RUN_OK, "%s", err);
    char *m = tl_dir_metrics(out);
    double first = 0, last = 0;
    const char *l = strstr(m, "\"loss\":"), *e = strrchr(m, '{');
    ck_assert(l && e);
    first = strtod(l + 7, NULL);
    last = strtod(strstr(e, "\"loss_avg\":") + 11, NULL);
    fprintf(stderr, "schedule-free gpt: loss at step 10 %.3f, mean of the last 10 steps %.3f\n", first, last);
    ck_assert_msg(first - last > 1.5, "loss fell from %g to %g only", first, last);
    free(m);
    free(out);
    free(yaml);
    free(text);
    tl_rmtree(dir);
    free(dir);
    cfg_free(&cfg);
}
END_TEST

static Suite *optim_sf_suite(void)
{
    Suite *s = suite_create("optim_sf");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, test_cases_present);
    tcase_add_loop_test(tc, test_case_matches_reference, 0, n_cases);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("properties");
    tcase_add_test(tp, test_vector_and_scalar_paths_agree);
    tcase_add_test(tp, test_first_step_and_x);
    suite_add_tcase(s, tp);

    TCase *tcfg = tcase_create("config");
    tcase_add_test(tcfg, test_config_defaults);
    tcase_add_test(tcfg, test_config_keys);
    tcase_add_test(tcfg, test_config_errors);
    tcase_add_test(tcfg, test_decaying_schedule_warned);
    tcase_add_test(tcfg, test_fork_keeps_optimizer_type);
    suite_add_tcase(s, tcfg);

    /* Training runs of a GPT take minutes under Valgrind (make valgrind, ~50x
     * slower); make test and make check (ASan) run them. */
    if (tl_under_valgrind()) {
        printf("SKIPPED: 4 checks: the training runs, under Valgrind (make test and make check run them)\n");
    } else {
        TCase *tr = tcase_create("training");
        tcase_set_timeout(tr, TL_ASAN ? 600 : 120);
        tcase_add_test(tr, test_stop_and_kill_resume_bit_identically);
        tcase_add_test(tr, test_evaluation_and_checkpoint_use_x);
        tcase_add_test(tr, test_fork_continues_bit_identically);
        tcase_add_test(tr, test_gpt_learns);
        suite_add_tcase(s, tr);
    }
    return s;
}

int main(void)
{
    find_cases();
    int failed = tl_run_suite(optim_sf_suite());
    fflush(stdout);
    report();
    for (int i = 0; i < n_cases; i++)
        free(case_names[i]);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

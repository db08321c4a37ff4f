/*
 * test_law_cli — trainctl law as a user runs it (man trainctl(1), LAWS):
 * predict with the published 25M multi-power law parameters reproduces the
 * published test-set PredE on the published curves (tests/data/loss-curves,
 * through make-curves.sh), --json's shape, a fit's LAW.json read back by
 * predict, a sweep's trials ranked, optimize's config accepted by
 * `trainctl validate`, and errors that name the file and line.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/util.h"
#include "tl.h"

static char *g_dir;   /* per test: make-curves.sh's output under curves/, the files written */

static const char *const test_set[] = {"constant_72000", "cosine_72000", "wsd_20000_24000",
                                       "wsdld_20000_24000", "wsdcon_3", "wsdcon_18"};

/* The published 25M parameters (Luo et al., the authors' README). */
static const char *LAW25 =
    "{\n"
    "  \"law\": \"mpl\",\n"
    "  \"params\": {\"L0\": 3.04045406, \"A\": 0.52468604, \"alpha\": 0.50786857, \"B\": 363.78751622,\n"
    "             \"C\": 2.06560812, \"beta\": 0.58279013, \"gamma\": 0.64142257}\n"
    "}\n";

static const char *SWEEP =
    "model: {type: linear, input_dim: 3, output_dim: 2}\n"
    "data: {batch_size: 4}\n"
    "optimizer: {type: adamw, lr: 3.0e-4}\n"
    "schedule: {type: cosine, warmup_steps: 100, total_steps: 2000}\n"
    "sweep:\n"
    "  method: grid\n"
    "  metric: loss_avg\n"
    "  parameters:\n"
    "    optimizer.lr: [3.0e-4, 1.0e-4, 1.0e-3]\n";

static const char *BASE =
    "model: {type: linear, input_dim: 3, output_dim: 2}\n"
    "data: {batch_size: 4}\n"
    "optimizer: {type: adamw, lr: 3.0e-4}\n"
    "schedule: {type: cosine, warmup_steps: 100, total_steps: 1000}\n";

static void setup(void)
{
    g_dir = tl_tmpdir("traind-lawcli");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "tests/data/loss-curves/make-curves.sh tests/data/loss-curves %s/curves", g_dir);
    if (system(cmd) != 0)
        ck_abort_msg("%s failed (run from the source tree's root)", cmd);
}

static void teardown(void)
{
    tl_rmtree(g_dir);
    free(g_dir);
}

static char *path_of(const char *name)
{
    return xasprintf("%s/%s", g_dir, name);
}

static char *write_in(const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", g_dir, name);
    ck_assert_int_eq(tl_write(p, text), 0);
    return p;
}

/* Runs trainctl with args (argv[0] filled in); its output in *out. */
static int run_cli(char **out, const char **args)
{
    const char *argv[48];
    int n = 0;
    argv[n++] = tl_trainctl_path();
    for (; *args && n < 47; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    char *log = xasprintf("%s/out.txt", g_dir);
    int rc = tl_run(argv, log, 300);
    if (out) {
        *out = tl_read(log, NULL);
        ck_assert_ptr_nonnull(*out);
    }
    free(log);
    return rc;
}

static char *curve(const char *name)
{
    return xasprintf("%s/curves/25/%s", g_dir, name);
}

START_TEST(predict_reproduces_the_published_test_set_error)
{
    char *law = write_in("law25.json", LAW25);
    const char *args[12] = {"law", "predict", law};
    char *dirs[6];
    for (int i = 0; i < 6; i++)
        args[3 + i] = dirs[i] = curve(test_set[i]);
    args[9] = "--json";
    args[10] = NULL;
    char *out;
    ck_assert_int_eq(run_cli(&out, args), 0);
    cJSON *doc = cJSON_Parse(out);
    ck_assert_msg(doc != NULL, "not JSON: %.300s", out);
    const cJSON *curves = cJSON_GetObjectItemCaseSensitive(doc, "curves"), *c;
    ck_assert_int_eq(cJSON_GetArraySize(curves), 6);
    double mean = 0;
    int k = 0;
    cJSON_ArrayForEach(c, curves) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        ck_assert(cJSON_IsString(name));
        ck_assert_str_eq(name->valuestring, test_set[k]);
        const char *keys[] = {"r2", "pred_err", "worst_err", "final_err"};
        for (int j = 0; j < 4; j++)
            ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(c, keys[j])), "%s", keys[j]);
        const cJSON *pts = cJSON_GetObjectItemCaseSensitive(c, "points"), *p;
        ck_assert_int_gt(cJSON_GetArraySize(pts), 50);
        double last = -1;
        cJSON_ArrayForEach(p, pts) {
            ck_assert_int_eq(cJSON_GetArraySize(p), 3);
            double step = cJSON_GetArrayItem(p, 0)->valuedouble;
            ck_assert(step > last);
            last = step;
            ck_assert(cJSON_IsNumber(cJSON_GetArrayItem(p, 1)) && cJSON_IsNumber(cJSON_GetArrayItem(p, 2)));
        }
        mean += cJSON_GetObjectItemCaseSensitive(c, "pred_err")->valuedouble / 6;
        k++;
    }
    fprintf(stderr, "trainctl law predict, published 25M law: test-set PredE %.6f (published 0.00110)\n", mean);
    ck_assert(fabs(mean - 0.00110) < 1e-5);
    ck_assert(fabs(mean - 0.001102) <= 0.5e-6 + 1e-12);   /* the README's own float64 figure */
    cJSON_Delete(doc);
    free(out);
    /* the table and plot: the same mean */
    args[9] = NULL;
    ck_assert_int_eq(run_cli(&out, args), 0);
    ck_assert_msg(strstr(out, "0.001102") && strstr(out, "predicted") && strstr(out, "wsdcon_3"), "%s", out);
    free(out);
    for (int i = 0; i < 6; i++)
        free(dirs[i]);
    free(law);
}
END_TEST

START_TEST(fit_writes_a_law_that_predict_reads)
{
    char *a = curve("cosine_24000"), *b = curve("constant_24000"), *c = curve("wsdcon_9");
    char *law = path_of("fit.json");
    /* few starts and points: the test's time; the figures are bench-laws's */
    const char *args[] = {"law", "fit", "--starts", "2", "--max-points", "48", "-o", law, a, b, c, NULL};
    char *out;
    ck_assert_int_eq(run_cli(&out, args), 0);
    ck_assert_msg(strstr(out, "LOO PredE") && strstr(out, "cosine_24000") && strstr(out, "wsdcon_9"), "%s", out);
    free(out);
    char *text = tl_read(law, NULL);
    cJSON *doc = cJSON_Parse(text);
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(doc, "law")->valuestring, "mpl");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "params")), 7);
    const cJSON *fit = cJSON_GetObjectItemCaseSensitive(doc, "fit");
    ck_assert(cJSON_GetObjectItemCaseSensitive(fit, "peak_lr")->valuedouble == 3e-4);
    cJSON_Delete(doc);
    free(text);
    char *t = curve("wsd_20000_24000");
    const char *pargs[] = {"law", "predict", law, t, "--json", NULL};
    ck_assert_int_eq(run_cli(&out, pargs), 0);
    doc = cJSON_Parse(out);
    ck_assert_ptr_nonnull(doc);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "curves"), 0);
    double pe = cJSON_GetObjectItemCaseSensitive(c0, "pred_err")->valuedouble;
    fprintf(stderr, "fit on three curves (2 starts, 48 points each): wsd_20000_24000 PredE %.6f\n", pe);
    ck_assert(pe < 0.01);
    cJSON_Delete(doc);
    free(out);
    /* without -o the LAW.json is stdout (the report is on stderr) */
    const char *sargs[] = {"law", "fit", "--law", "momentum", "--starts", "1", "--max-points", "24", a, b, NULL};
    ck_assert_int_eq(run_cli(&out, sargs), 0);
    ck_assert_msg(strstr(out, "\"law\"") && strstr(out, "\"momentum\"") && strstr(out, "\"lambda\""), "%s", out);
    free(out);
    free(a), free(b), free(c), free(t), free(law);
}
END_TEST

START_TEST(predict_ranks_a_sweep)
{
    char *law = write_in("law25.json", LAW25), *sw = write_in("sweep.yaml", SWEEP);
    const char *args[] = {"law", "predict", law, sw, "--json", NULL};
    char *out;
    ck_assert_int_eq(run_cli(&out, args), 0);
    cJSON *doc = cJSON_Parse(out);
    ck_assert_msg(doc != NULL, "%s", out);
    const cJSON *curves = cJSON_GetObjectItemCaseSensitive(doc, "curves"), *c;
    ck_assert_int_eq(cJSON_GetArraySize(curves), 3);
    int rank = 0;
    double prev = -INFINITY;
    cJSON_ArrayForEach(c, curves) {
        ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(c, "rank")->valuedouble, ++rank);
        double f = cJSON_GetObjectItemCaseSensitive(c, "predicted_final")->valuedouble;
        ck_assert(f >= prev);
        prev = f;
        ck_assert(cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "points"), 0), 1)));
    }
    /* the law's loss falls as the lr grows: 1e-3 (trial 2) first, 1e-4 last */
    ck_assert(strstr(cJSON_GetArrayItem(curves, 0)->child->valuestring, "1.0e-3") != NULL);
    ck_assert(strstr(cJSON_GetArrayItem(curves, 2)->child->valuestring, "1.0e-4") != NULL);
    cJSON_Delete(doc);
    free(out);
    const char *targs[] = {"law", "predict", law, sw, NULL};
    ck_assert_int_eq(run_cli(&out, targs), 0);
    ck_assert_msg(strstr(out, "3 trials ranked by predicted final loss"), "%s", out);
    free(out);
    free(law), free(sw);
}
END_TEST

START_TEST(optimize_writes_a_config_validate_accepts)
{
    char *law = write_in("law25.json", LAW25), *base = write_in("base.yaml", BASE);
    char *cfg = path_of("opt.yaml");
    const char *args[] = {"law", "optimize", law, "--config", base, "-o", cfg, NULL};
    char *out;
    ck_assert_int_eq(run_cli(&out, args), 0);
    ck_assert_msg(strstr(out, "predicted final loss: optimized") && strstr(out, "cosine") && strstr(out, "wsd"),
                  "%s", out);
    free(out);
    const char *vargs[] = {"validate", cfg, NULL};
    ck_assert_int_eq(run_cli(&out, vargs), 0);
    ck_assert_msg(strstr(out, "piecewise schedule, 1000 steps"), "%s", out);
    free(out);
    /* without a base: the schedule alone, on stdout */
    const char *sargs[] = {"law", "optimize", law, "--steps", "500", "--peak", "3e-4", "--warmup", "50", NULL};
    ck_assert_int_eq(run_cli(&out, sargs), 0);
    ck_assert_msg(strstr(out, "type: piecewise") && strstr(out, "total_steps: 500"), "%s", out);
    free(out);
    const char *uargs[] = {"law", "optimize", law, NULL};   /* no length */
    ck_assert_int_eq(run_cli(NULL, uargs), 2);
    free(law), free(base), free(cfg);
}
END_TEST

START_TEST(errors_name_the_file_and_line)
{
    char *law = write_in("neg.json",
                         "{\n  \"law\": \"mpl\",\n  \"params\": {\"L0\": 3.04, \"A\": 0.52,\n    \"alpha\": -0.5,\n"
                         "    \"B\": 363.7, \"C\": 2.06, \"beta\": 0.58, \"gamma\": 0.64}\n}\n");
    char *c3 = curve("wsdcon_3");
    const char *args[] = {"law", "predict", law, c3, NULL};
    char *out;
    ck_assert_int_eq(run_cli(&out, args), 1);
    char *want = xasprintf("%s:4:", law);
    ck_assert_msg(strstr(out, want) && strstr(out, "alpha"), "%s", out);
    free(want), free(out);
    /* a curve directory whose lrs.txt has a bad third line */
    char *bad = path_of("bad"), *cmd = xasprintf("mkdir -p '%s' && cp '%s/loss.csv' '%s/' && "
                                                       "{ head -2 '%s/lrs.txt'; echo 0.0001x; tail -n +4 '%s/lrs.txt'; } "
                                                       "> '%s/lrs.txt'", bad, c3, bad, c3, c3, bad);
    ck_assert_int_eq(system(cmd), 0);
    char *good = write_in("law25.json", LAW25);
    const char *pargs[] = {"law", "predict", good, bad, NULL};
    ck_assert_int_eq(run_cli(&out, pargs), 1);
    want = xasprintf("%s/lrs.txt:3:", bad);
    ck_assert_msg(strstr(out, want) && strstr(out, "0.0001x"), "%s", out);
    free(out);
    const char *fargs[] = {"law", "fit", bad, NULL};
    ck_assert_int_eq(run_cli(&out, fargs), 1);
    ck_assert_msg(strstr(out, want), "%s", out);
    free(want), free(out);
    const char *uargs[] = {"law", "frob", NULL};
    ck_assert_int_eq(run_cli(NULL, uargs), 2);
    const char *nargs[] = {"law", "predict", good, NULL};
    ck_assert_int_eq(run_cli(NULL, nargs), 2);
    free(law), free(c3), free(bad), free(cmd), free(good);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("law_cli");
    TCase *tc = tcase_create("law_cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, predict_reproduces_the_published_test_set_error);
    tcase_add_test(tc, fit_writes_a_law_that_predict_reads);
    tcase_add_test(tc, predict_ranks_a_sweep);
    tcase_add_test(tc, optimize_writes_a_config_validate_accepts);
    tcase_add_test(tc, errors_name_the_file_and_line);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

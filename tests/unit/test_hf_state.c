/*
 * hf_state: trainer_state.json streamed from metrics.jsonl is byte for byte
 * the document the former cJSON tree gave (kept here as the reference), on
 * generated histories with evals, torn and foreign lines and odd numbers;
 * and writing it for a long history takes constant memory.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/config.h"
#include "traind/hf_state.h"
#include "traind/json.h"
#include "traind/rng.h"
#include "traind/util.h"
#include "tl.h"

/* ---- the reference: trainer_state.json as one cJSON tree, as it was --- */

static bool ref_num(const cJSON *o, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

static char *ref_trainer_state(const char *out_dir, const run_config *cfg)
{
    char *mpath = xasprintf("%s/metrics.jsonl", out_dir);
    FILE *f = fopen(mpath, "re");
    free(mpath);
    ck_assert_ptr_nonnull(f);
    cJSON *root = cJSON_CreateObject(), *hist = cJSON_CreateArray();
    double best = NAN, last_step = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *p = cJSON_Parse(line);
        double step, v;
        if (!p || !ref_num(p, "step", &step)) {
            cJSON_Delete(p);
            continue;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNullToObject(e, "epoch");
        if (ref_num(p, "grad_norm", &v))
            cJSON_AddNumberToObject(e, "grad_norm", v);
        if (ref_num(p, "lr", &v))
            cJSON_AddNumberToObject(e, "learning_rate", v);
        if (ref_num(p, "loss_avg", &v) || ref_num(p, "loss", &v))
            cJSON_AddNumberToObject(e, "loss", v);
        cJSON_AddNumberToObject(e, "step", step);
        cJSON_AddItemToArray(hist, e);
        if (ref_num(p, "eval_loss", &v)) {
            cJSON *ev = cJSON_CreateObject();
            cJSON_AddNullToObject(ev, "epoch");
            cJSON_AddNumberToObject(ev, "eval_loss", v);
            cJSON_AddNumberToObject(ev, "step", step);
            cJSON_AddItemToArray(hist, ev);
            if (isnan(best) || v < best)
                best = v;
        }
        last_step = step;
        cJSON_Delete(p);
    }
    free(line);
    fclose(f);
    if (isnan(best))
        cJSON_AddNullToObject(root, "best_metric");
    else
        cJSON_AddNumberToObject(root, "best_metric", best);
    cJSON_AddNullToObject(root, "best_model_checkpoint");
    cJSON_AddNullToObject(root, "epoch");
    cJSON_AddNumberToObject(root, "eval_steps", (double)cfg->train.eval_every);
    cJSON_AddNumberToObject(root, "global_step", last_step);
    cJSON_AddFalseToObject(root, "is_hyper_param_search");
    cJSON_AddTrueToObject(root, "is_local_process_zero");
    cJSON_AddTrueToObject(root, "is_world_process_zero");
    cJSON_AddItemToObject(root, "log_history", hist);
    cJSON_AddNumberToObject(root, "logging_steps", (double)cfg->train.log_every);
    cJSON_AddNumberToObject(root, "max_steps", (double)cfg->sched.total_steps);
    cJSON_AddNumberToObject(root, "num_input_tokens_seen", 0);
    cJSON_AddNumberToObject(root, "num_train_epochs", 0);
    cJSON_AddNumberToObject(root, "save_steps", (double)cfg->train.checkpoint_every);
    cJSON_AddNumberToObject(root, "total_flos", 0);
    cJSON_AddNumberToObject(root, "train_batch_size", cfg->data.batch_size);
    cJSON_AddNullToObject(root, "trial_name");
    cJSON_AddNullToObject(root, "trial_params");
    char *text = json_print_exact(root);
    cJSON_Delete(root);
    return text;
}

/* ---- helpers ----------------------------------------------------------- */

static const char *CFG =
    "name: hf\nseed: 3\n"
    "model: {type: mlp, input_dim: 4, hidden: [8], output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 16, eval_fraction: 0.1}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 10, total_steps: 5000}\n"
    "train: {log_every: 7, checkpoint_every: 250, eval_every: 70}\n";

static void parse(run_config *cfg)
{
    diag_list_t errs = DIAG_LIST_INIT;
    int rc = cfg_parse(CFG, strlen(CFG), NULL, cfg, &errs);
    if (rc != 0)
        diag_print(stderr, "test", &errs);
    ck_assert_int_eq(rc, 0);
    diag_free(&errs);
}

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/traind-hf-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

/* A double of any magnitude and precision, as the runner prints them. */
static double any_double(rng_t *r)
{
    double u = rng_uniform(r);
    switch (rng_below(r, 6)) {
    case 0: return u;
    case 1: return u * 1e-9;
    case 2: return (double)(float)(u * 10);
    case 3: return floor(u * 1000);          /* a whole number: printed as one */
    case 4: return u * 1e17;                 /* past the integer fast path */
    default: return -u * 3e-300;
    }
}

/* n points as the runner writes them, with eval_loss every eval_every-th,
 * and the odd lines a history may hold: torn, foreign, not JSON, a loss
 * without loss_avg, a step that is not an integer, a number out of range. */
static void write_history(const char *dir, long n, int eval_every, bool odd)
{
    char *path = xasprintf("%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "we");
    ck_assert_ptr_nonnull(f);
    rng_t r;
    rng_seed(&r, 7, 0);
    for (long s = 1; s <= n; s++) {
        fprintf(f, "{\"step\":%ld,\"lr\":%.17g,\"loss\":%.9g,\"loss_avg\":%.17g,\"grad_norm\":%.17g,\"time\":%.6f",
                s, any_double(&r), (double)(float)any_double(&r), any_double(&r), any_double(&r), s * 0.001);
        if (eval_every > 0 && s % eval_every == 0)
            fprintf(f, ",\"eval_loss\":%.9g", (double)(float)(2.0 - (double)s / (double)n + rng_uniform(&r)));
        fprintf(f, "}\n");
        if (odd && s % 97 == 0) {
            static const char *const lines[] = {
                "{\"step\":12,\"lr\":0.5,\"lo",                       /* torn */
                "{\"foreign\":true}",                                 /* no step */
                "not json at all",
                "",
                "{\"step\":13,\"loss\":1.25}",                        /* loss, no loss_avg, no lr */
                "{\"step\":13.5,\"lr\":1e400,\"loss_avg\":-1e400}",   /* infinities print as null */
                "{\"step\":\"14\",\"lr\":1}",                         /* a step that is no number */
                "{\"step\":1e300,\"eval_loss\":-0.0}",
                "[1,2,3]",
            };
            fprintf(f, "%s\n", lines[(s / 97) % (sizeof lines / sizeof *lines)]);
        }
    }
    fclose(f);
    free(path);
}

static char *read_state(const char *dir)
{
    char *path = xasprintf("%s/trainer_state.json", dir), *text;
    size_t len;
    ck_assert_int_eq(read_file(path, (size_t)1 << 32, &text, &len), 0);
    free(path);
    return text;
}

static void check_same(long n, int eval_every, bool odd)
{
    run_config cfg;
    parse(&cfg);
    char *dir = tmpdir(), err[256];
    write_history(dir, n, eval_every, odd);
    ck_assert_msg(hf_write_trainer_state(dir, &cfg, err, sizeof err) == 0, "%s", err);
    char *want = ref_trainer_state(dir, &cfg), *got = read_state(dir);
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    ck_assert_msg(want[i] == got[i], "%ld points: differ at byte %zu: want ...%.60s, got ...%.60s", n, i,
                  want + (i > 20 ? i - 20 : 0), got + (i > 20 ? i - 20 : 0));
    free(want);
    free(got);
    tl_rmtree(dir);
    free(dir);
    cfg_free(&cfg);
}

/* ---- checks ------------------------------------------------------------ */

START_TEST(empty_history_same_as_tree)
{
    check_same(0, 0, false);
}
END_TEST

START_TEST(history_same_as_tree)
{
    check_same(1, 0, false);
    check_same(1, 1, false);
    check_same(3000, 70, false);
}
END_TEST

START_TEST(odd_lines_same_as_tree)
{
    check_same(5000, 13, true);
}
END_TEST

/* Lines in the runner's exact shape whose numbers take every path of the
 * fast one (texts re-laid-out, rounded to 15 or 16 digits, kept at 17;
 * whole numbers past 1e15, -0, huge and tiny, non-finite as %.17g prints
 * them), next to torn and foreign lines. */
START_TEST(fast_path_numbers_same_as_tree)
{
    run_config cfg;
    parse(&cfg);
    char *dir = tmpdir(), err[256];
    char *path = xasprintf("%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "we");
    ck_assert_ptr_nonnull(f);
    static const double fixed[] = {0.0, -0.0, 1e15, 1e15 - 1, 1e16, 7.711821418249008e16, 0.1, 1e-5, 1e-4,
                                   123456789.0, 1234567890.0, 1.5e300, -2.5e-300, 4.9e-324, 1.7976931348623157e308,
                                   INFINITY, -INFINITY, NAN, 0.30000000000000004, 9.9999999999999995e-05};
    rng_t r;
    rng_seed(&r, 11, 0);
    for (long s = 1; s <= 40000; s++) {
        double v[4];
        for (int k = 0; k < 4; k++) {
            uint64_t bits = rng_u64(&r);
            double d;
            memcpy(&d, &bits, sizeof d);
            v[k] = s % 3 == 0 ? fixed[rng_below(&r, sizeof fixed / sizeof *fixed)] : s % 3 == 1 ? d : any_double(&r);
        }
        fprintf(f, "{\"step\":%ld,\"lr\":%.17g,\"loss\":%.9g,\"loss_avg\":%.17g,\"grad_norm\":%.17g,\"time\":%.6f", s,
                v[0], v[1], v[2], v[3], s * 0.001);
        if (s % 5 == 0)
            fprintf(f, ",\"eval_loss\":%.9g", v[(s / 5) % 4]);
        fprintf(f, "}\n");
        if (s % 101 == 0)
            fprintf(f, "{\"step\":%ld,\"lr\":0.5,\"lo\n{\"step\":%ld,\"lr\":01,\"loss\":1,\"loss_avg\":1,"
                       "\"grad_norm\":1,\"time\":1}\n",
                    s, s);
    }
    fclose(f);
    free(path);
    ck_assert_msg(hf_write_trainer_state(dir, &cfg, err, sizeof err) == 0, "%s", err);
    char *want = ref_trainer_state(dir, &cfg), *got = read_state(dir);
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    ck_assert_msg(want[i] == got[i], "differ at byte %zu: want ...%.60s, got ...%.60s", i,
                  want + (i > 20 ? i - 20 : 0), got + (i > 20 ? i - 20 : 0));
    free(want);
    free(got);
    tl_rmtree(dir);
    free(dir);
    cfg_free(&cfg);
}
END_TEST

/* The peak RSS of a child that writes trainer_state.json for an n-point
 * history, in KiB (getrusage of the child, wait4). */
static long child_peak_kib(const char *dir, const run_config *cfg)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char err[256];
        _exit(hf_write_trainer_state(dir, cfg, err, sizeof err) == 0 ? 0 : 1);
    }
    int st;
    struct rusage ru;
    ck_assert_int_eq(wait4(pid, &st, 0, &ru), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return ru.ru_maxrss;
}

/* Constant memory: the child's peak for 400,000 points stays within a few
 * MiB of its peak for 1,000 (the tree took about 850 bytes a point: 330 MB
 * here). */
START_TEST(long_history_constant_memory)
{
    run_config cfg;
    parse(&cfg);
    char *small = tmpdir(), *big = tmpdir();
    write_history(small, 1000, 70, false);
    long n = tl_under_valgrind() ? 20000 : 400000;
    write_history(big, n, 70, false);
    long k_small = child_peak_kib(small, &cfg);
    double t0 = now_monotonic();
    long k_big = child_peak_kib(big, &cfg);
    double dt = now_monotonic() - t0;
    fprintf(stderr, "trainer_state.json: %ld points: peak RSS %ld KiB in %.2f s; 1000 points: %ld KiB\n", n, k_big,
            dt, k_small);
    ck_assert_msg(k_big < k_small + 8 * 1024, "peak RSS %ld KiB for %ld points, %ld KiB for 1000", k_big, n,
                  k_small);
    tl_rmtree(small);
    tl_rmtree(big);
    free(small);
    free(big);
    cfg_free(&cfg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hf_state");
    TCase *tc = tcase_create("hf_state");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, empty_history_same_as_tree);
    tcase_add_test(tc, history_same_as_tree);
    tcase_add_test(tc, odd_lines_same_as_tree);
    tcase_add_test(tc, fast_path_numbers_same_as_tree);
    tcase_add_test(tc, long_history_constant_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tl_run_suite(suite()) ? 1 : 0;
}

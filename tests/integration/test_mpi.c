/*
 * test_mpi — data-parallel jobs under Open MPI, end to end: real mpirun,
 * real ranks ($TRAIND_BUILD/traind-mpi-worker), through `trainctl run
 * --ranks N` and through the real traind on a temporary spool.
 *
 *   same numbers    2 ranks vs 1 rank: every logged loss and grad_norm within
 *                   1e-5 relative over 200 steps (MLP on synthetic data, GPT
 *                   on random bytes); two 2-rank runs bit-identical
 *                   (metrics.jsonl without "time"); on English text
 *                   (tests/data/text/english.txt) the losses within the bound
 *                   traind-run.yaml(5), PARALLEL, states: linear and MLP
 *                   1e-6, a GPT 1e-2 over 300 steps
 *   config          batch_size not divisible by ranks: an error naming the line
 *   daemon          a 2-rank job: the numbers of `trainctl run --ranks 2`, `ranks`
 *                   in the job object; more ranks than threads_per_job, or no
 *                   MPI worker: failed, saying why
 *   faults          kill -9 of one rank: the job resumes from its checkpoint
 *                   and ends with the uninterrupted numbers, no process left;
 *                   cancel: every rank stops, checkpointed; kill -9 of the
 *                   daemon: mpirun and the ranks die with it, a restarted
 *                   daemon resumes bit-identically, as after a clean shutdown
 *                   (SIGTERM: the ranks checkpoint); SIGINT to `trainctl run
 *                   --ranks 2`: checkpoint, exit 130, and a rerun resumes it
 *
 * Without mpirun or traind-mpi-worker nothing runs: main prints
 * "SKIPPED: N checks: ..." and exits 0, which scripts/run-tests.sh counts as
 * skipped (never as passed).  TRAINDTEST_ONLY=NAME runs one test.
 */
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/util.h"
#include "../lib/tl.h"

#define MLP_CFG                                                                              \
    "name: %s\n"                                                                             \
    "seed: 3\n"                                                                              \
    "model: {type: mlp, input_dim: 16, hidden: [64, 64], output_dim: 8, activation: gelu}\n" \
    "data: {kind: synthetic, batch_size: 32, noise: 0.01}\n"                                 \
    "optimizer: {type: adamw, lr: 3.0e-3, grad_clip: 1.0}\n"                                 \
    "schedule: {type: cosine, warmup_steps: 20, total_steps: %d}\n"                          \
    "train: {log_every: %d, checkpoint_every: %d}\n"                                         \
    "%s"

#define GPT_CFG                                                                              \
    "name: %s\n"                                                                             \
    "seed: 5\n"                                                                              \
    "model: {type: gpt, vocab_size: 256, context: 16, d_model: 32, layers: 2, heads: 2}\n"   \
    "data: {kind: text, batch_size: 8}\n"                                                    \
    "optimizer: {type: adamw, lr: 1.0e-3, weight_decay: 0.1, grad_clip: 1.0}\n"              \
    "schedule: {type: cosine, warmup_steps: 10, total_steps: 200}\n"                         \
    "train: {log_every: 1}\n"

#define RANKS2 "parallel: {ranks: 2}\n"
/* A job long enough to interrupt: checkpoints every 500 of 4000 steps. */
#define LONG_STEPS 4000

static char *g_dir;
static tl_daemon g_d;
static double g_t0;

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-mpi");
    g_t0 = tl_now();
}

static void teardown(void)
{
    if (g_d.pid > 0)
        tl_daemon_stop(&g_d, SIGKILL, 10);
    tl_daemon_free(&g_d);
    tl_rmtree(g_dir);
    free(g_dir);
    fprintf(stderr, "  (%.1f s)\n", tl_now() - g_t0);
}

static char *path_in(const char *rel)
{
    return xasprintf("%s/%s", g_dir, rel);
}

static char *write_cfg(const char *file, const char *text)
{
    char *p = path_in(file);
    ck_assert_int_eq(tl_write(p, text), 0);
    return p;
}

/* trainctl run CFG --out DIR [--ranks N]; returns the exit code, output in *out. */
static int trainctl_run(const char *cfg, const char *dir, const char *ranks, char **out)
{
    char *log = xasprintf("%s.out", dir);
    const char *argv[] = {tl_trainctl_path(), "run", cfg, "--out", dir, "--fresh",
                          ranks ? "--ranks" : NULL, ranks, NULL};
    int rc = tl_run(argv, log, 120);
    char *text = tl_read(log, NULL);
    free(log);
    if (out)
        *out = text ? text : xstrdup("");
    else
        free(text);
    return rc;
}

static char *metrics_of(const char *dir, bool strip)
{
    char *p = xasprintf("%s/metrics.jsonl", dir);
    char *text = tl_read(p, NULL);
    ck_assert_msg(text != NULL, "%s cannot be read", p);
    free(p);
    if (!strip)
        return text;
    char *s = tl_strip_time(text);
    free(text);
    return s;
}

/* Every line's loss and grad_norm within tol relative; returns the largest difference. */
static double max_rel_diff(const char *a, const char *b)
{
    double worst = 0;
    long n = 0;
    const char *pa = a, *pb = b;
    while (*pa && *pb) {
        const char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n');
        ck_assert(ea && eb);
        char *la = xstrndup(pa, (size_t)(ea - pa)), *lb = xstrndup(pb, (size_t)(eb - pb));
        cJSON *x = cJSON_Parse(la), *y = cJSON_Parse(lb);
        ck_assert(x && y);
        ck_assert(tl_num(x, "step") == tl_num(y, "step"));
        const char *keys[] = {"loss", "grad_norm", "loss_avg"};
        for (int k = 0; k < 3; k++) {
            double u = tl_num(x, keys[k]), v = tl_num(y, keys[k]);
            ck_assert(isfinite(u) && isfinite(v));
            double d = fabs(u - v) / fmax(fabs(u), 1e-30);
            worst = fmax(worst, d);
        }
        cJSON_Delete(x);
        cJSON_Delete(y);
        free(la);
        free(lb);
        pa = ea + 1;
        pb = eb + 1;
        n++;
    }
    ck_assert_msg(!*pa && !*pb, "the runs logged a different number of lines");
    ck_assert_int_gt(n, 0);
    return worst;
}

static void same_numbers(const char *tmpl_text, long expect_lines)
{
    char *cfg = write_cfg("c.yaml", tmpl_text);
    char *d1 = path_in("one"), *d2 = path_in("two"), *d3 = path_in("two-again"), *out;
    ck_assert_msg(trainctl_run(cfg, d1, NULL, &out) == 0, "1 rank: %s", out);
    free(out);
    ck_assert_msg(trainctl_run(cfg, d2, "2", &out) == 0, "2 ranks: %s", out);
    ck_assert_msg(strstr(out, "2 ranks, allreduce"), "no rank count in: %s", out);
    free(out);
    ck_assert_msg(trainctl_run(cfg, d3, "2", &out) == 0, "2 ranks again: %s", out);
    free(out);
    char *m1 = metrics_of(d1, true), *m2 = metrics_of(d2, true), *m3 = metrics_of(d3, true);
    long lines = 0;
    for (const char *p = m1; (p = strchr(p, '\n')); p++)
        lines++;
    ck_assert_int_eq(lines, expect_lines);
    double worst = max_rel_diff(m1, m2);
    fprintf(stderr, "  2 ranks vs 1: largest relative difference %.3g over %ld steps\n", worst, lines);
    ck_assert_msg(worst <= 1e-5, "2 ranks differ from 1 by %.3g relative", worst);
    ck_assert_msg(strcmp(m2, m3) == 0, "two 2-rank runs differ");
    free(m1);
    free(m2);
    free(m3);
    free(cfg);
    free(d1);
    free(d2);
    free(d3);
}

START_TEST(two_ranks_same_numbers_mlp)
{
    char *text = xasprintf(MLP_CFG, "mlp", 200, 1, 50, "");
    same_numbers(text, 200);
    free(text);
}
END_TEST

START_TEST(two_ranks_same_numbers_gpt)
{
    char *text = xasprintf(GPT_CFG, "gpt");
    same_numbers(text, 200);
    free(text);
}
END_TEST

/* ---- real text: the bound traind-run.yaml(5), PARALLEL, states ----
 *
 * English text, tests/data/text/english.txt (a snapshot of this project's
 * README and man pages, frozen so that the figures do not move with every
 * edit of the docs: which seed drifts most changes with the text), copied
 * to the test's directory, as bytes for a GPT and as a CSV for the linear
 * and MLP models: each row the 16 bytes before a position (scaled to
 * [0, 1]) and 4 targets of the byte at it (itself scaled, letter, white
 * space, capital). */
#define TEXT_FILE "tests/data/text/english.txt"
#define TEXT_CSV_ROWS 4000
#define TEXT_WINDOW 16

/* TEXT_FILE copied to g_dir/text.txt; its bytes in the answer. */
static char *make_text(size_t *len)
{
    char *all = tl_read(TEXT_FILE, len);
    ck_assert_msg(all != NULL, "%s cannot be read (the test runs in the repository's root)", TEXT_FILE);
    char *p = path_in("text.txt");
    ck_assert_int_eq(tl_write(p, all), 0);
    free(p);
    return all;
}

/* text as g_dir/text.csv (see above). */
static void make_text_csv(const char *text, size_t len)
{
    ck_assert_uint_gt(len, TEXT_CSV_ROWS + TEXT_WINDOW);
    char *p = path_in("text.csv");
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < TEXT_CSV_ROWS; i++) {
        for (size_t k = 0; k < TEXT_WINDOW; k++)
            fprintf(f, "%.6g,", (unsigned char)text[i + k] / 255.0);
        unsigned char c = (unsigned char)text[i + TEXT_WINDOW];
        fprintf(f, "%.6g,%d,%d,%d\n", c / 255.0, c < 128 && isalpha(c), c < 128 && isspace(c), c >= 'A' && c <= 'Z');
    }
    ck_assert_int_eq(fclose(f), 0);
    free(p);
}

#define LINEAR_TEXT_CFG                                                     \
    "name: linear-text\nseed: 3\n"                                          \
    "model: {type: linear, input_dim: 16, output_dim: 4}\n"                 \
    "data: {kind: csv, path: text.csv, batch_size: 32}\n"                   \
    "optimizer: {type: adamw, lr: 3.0e-3, grad_clip: 1.0}\n"                \
    "schedule: {type: cosine, warmup_steps: 20, total_steps: 300}\n"        \
    "train: {log_every: 1}\n"
#define MLP_TEXT_CFG                                                                            \
    "name: mlp-text\nseed: 3\n"                                                                 \
    "model: {type: mlp, input_dim: 16, hidden: [64, 64], output_dim: 4, activation: gelu}\n"    \
    "data: {kind: csv, path: text.csv, batch_size: 32}\n"                                       \
    "optimizer: {type: adamw, lr: 3.0e-3, grad_clip: 1.0}\n"                                    \
    "schedule: {type: cosine, warmup_steps: 20, total_steps: 300}\n"                            \
    "train: {log_every: 1}\n"
/* gpt-license's model and optimizer (config/examples/), on this text, for
 * the 300 steps the bound covers.  Seed 12 is the one of 12 whose loss
 * spikes and whose difference grows the most on the frozen text (1.1e-3
 * by step 50; the others 1.1e-7 to 3.4e-5): the check sits where the bound
 * is tested, not where the runs agree to 1e-7 (bench/README.md). */
#define GPT_TEXT_CFG                                                                               \
    "name: gpt-text\nseed: 12\n"                                                                    \
    "model: {type: gpt, context: 64, d_model: 64, layers: 2, heads: 2}\n"                          \
    "data: {kind: text, path: text.txt, batch_size: 16}\n"                                         \
    "optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], grad_clip: 1.0}\n" \
    "schedule: {type: cosine, warmup_steps: 30, total_steps: 300, min_lr_ratio: 0.1}\n"            \
    "train: {log_every: 1}\n"

/* The bound on the relative difference of the logged loss between 2 ranks
 * and 1 at step s, as traind-run.yaml(5), PARALLEL, states it: linear and
 * MLP 1e-6 at every step; a GPT 1e-2 over its first 300 steps, past which
 * it states none (the difference grows on to the loss's own noise). */
static double stated_bound(bool gpt, double step)
{
    return !gpt ? 1e-6 : step <= 300 ? 1e-2 : INFINITY;
}

typedef struct vs_bound {
    double worst_ratio, worst_diff, at_step, max_diff;
} vs_bound;

/* Every line's loss and loss_avg against stated_bound. */
static vs_bound losses_vs_bound(const char *a, const char *b, bool gpt)
{
    vs_bound v = {0, 0, 0, 0};
    const char *pa = a, *pb = b;
    while (*pa && *pb) {
        const char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n');
        ck_assert(ea && eb);
        char *la = xstrndup(pa, (size_t)(ea - pa)), *lb = xstrndup(pb, (size_t)(eb - pb));
        cJSON *x = cJSON_Parse(la), *y = cJSON_Parse(lb);
        ck_assert(x && y);
        double step = tl_num(x, "step");
        ck_assert(step == tl_num(y, "step"));
        const char *keys[] = {"loss", "loss_avg"};
        for (int k = 0; k < 2; k++) {
            double u = tl_num(x, keys[k]), w = tl_num(y, keys[k]);
            ck_assert(isfinite(u) && isfinite(w));
            double d = fabs(u - w) / fmax(fabs(u), 1e-30), r = d / stated_bound(gpt, step);
            v.max_diff = fmax(v.max_diff, d);
            if (r > v.worst_ratio)
                v = (vs_bound){r, d, step, v.max_diff};
        }
        cJSON_Delete(x);
        cJSON_Delete(y);
        free(la);
        free(lb);
        pa = ea + 1;
        pb = eb + 1;
    }
    ck_assert_msg(!*pa && !*pb, "the runs logged a different number of lines");
    return v;
}

/* One model on the text, 1 rank and 2: every step within the stated bound. */
static void within_bound_on_text(const char *name, const char *text, bool gpt)
{
    char *file = xasprintf("%s.yaml", name), *cfg = write_cfg(file, text);
    char *one = xasprintf("%s/%s-1", g_dir, name), *two = xasprintf("%s/%s-2", g_dir, name), *out;
    ck_assert_msg(trainctl_run(cfg, one, NULL, &out) == 0, "%s, 1 rank: %s", name, out);
    free(out);
    ck_assert_msg(trainctl_run(cfg, two, "2", &out) == 0, "%s, 2 ranks: %s", name, out);
    free(out);
    char *m1 = metrics_of(one, true), *m2 = metrics_of(two, true);
    vs_bound v = losses_vs_bound(m1, m2, gpt);
    fprintf(stderr, "  %s on text, 2 ranks vs 1: largest relative loss difference %.3g; closest to the bound "
                    "at step %.0f: %.3g, %.0f%% of %.3g\n",
            name, v.max_diff, v.at_step, v.worst_diff, 100 * v.worst_ratio, stated_bound(gpt, v.at_step));
    ck_assert_msg(v.worst_ratio <= 1, "%s: 2 ranks differ from 1 by %.3g relative at step %.0f, over the bound %.3g",
                  name, v.worst_diff, v.at_step, stated_bound(gpt, v.at_step));
    free(m1);
    free(m2);
    free(one);
    free(two);
    free(cfg);
    free(file);
}

START_TEST(two_ranks_within_the_bound_on_text)
{
    size_t len;
    char *text = make_text(&len);
    make_text_csv(text, len);
    free(text);
    within_bound_on_text("linear-text", LINEAR_TEXT_CFG, false);
    within_bound_on_text("mlp-text", MLP_TEXT_CFG, false);
    within_bound_on_text("gpt-text", GPT_TEXT_CFG, true);
}
END_TEST

START_TEST(batch_not_divisible_is_a_config_error)
{
    char *text = xasprintf(MLP_CFG, "odd", 100, 10, 50, "parallel: {ranks: 3}\n");
    char *cfg = write_cfg("odd.yaml", text), *log = path_in("validate.out");
    const char *argv[] = {tl_trainctl_path(), "validate", cfg, NULL};
    ck_assert_int_eq(tl_run(argv, log, 30), 1);
    char *out = tl_read(log, NULL);
    /* data.batch_size is on line 4 */
    ck_assert_msg(strstr(out, "odd.yaml:4:37:") && strstr(out, "data.batch_size") &&
                      strstr(out, "divisible by parallel.ranks (3)"), "%s", out);
    free(out);
    /* --ranks on the command line is checked the same way */
    char *plain = xasprintf(MLP_CFG, "odd", 100, 10, 50, ""), *cfg2 = write_cfg("plain.yaml", plain);
    char *dir = path_in("odd-run");
    ck_assert_int_eq(trainctl_run(cfg2, dir, "5", &out), 1);
    ck_assert_msg(strstr(out, "not divisible by 5 ranks"), "%s", out);
    free(out);
    /* and an unknown key of the section gets the usual hint */
    char *typo = xasprintf(MLP_CFG, "typo", 100, 10, 50, "parallel: {rank: 2}\n");
    char *cfg3 = write_cfg("typo.yaml", typo);
    const char *argv3[] = {tl_trainctl_path(), "validate", cfg3, NULL};
    ck_assert_int_eq(tl_run(argv3, log, 30), 1);
    out = tl_read(log, NULL);
    ck_assert_msg(strstr(out, "parallel.rank") && strstr(out, "ranks"), "%s", out);
    free(out);
    free(typo);
    free(cfg3);
    free(plain);
    free(cfg2);
    free(dir);
    free(text);
    free(cfg);
    free(log);
}
END_TEST

/* ---- through the daemon ---- */

static void start_daemon(const char *threads)
{
    char *spool = path_in("spool");
    const char *extra[] = {"--threads", threads, NULL};
    int rc = tl_daemon_start(&g_d, spool, extra, 30);
    free(spool);
    ck_assert_msg(rc == 0, "traind did not start");
}

static char *job_dir(const char *id)
{
    return xasprintf("%s/spool/jobs/%s", g_dir, id);
}

static void assert_all_gone(const pid_t *pids, int n, double timeout_s, const char *when)
{
    double deadline = tl_now() + timeout_s;
    for (int i = 0; i < n; i++) {
        double left = deadline - tl_now();
        ck_assert_msg(tl_proc_gone_within(pids[i], left > 0 ? left : 0), "%s: process %d is still there", when,
                      (int)pids[i]);
    }
}

/* A running job checkpointed at least min_ckpt: its mpirun pid and rank pids (*n). */
static pid_t running_ranks(const char *id, long min_ckpt, pid_t *ranks, int *n)
{
    cJSON *j = tl_wait_job(g_d.addr, id, tl_job_running_with, &min_ckpt, 60);
    ck_assert_msg(j != NULL, "job %s never ran past a checkpoint at %ld", id, min_ckpt);
    pid_t mpirun = (pid_t)tl_num(j, "pid");
    ck_assert_int_eq((int)tl_num(j, "ranks"), 2);
    cJSON_Delete(j);
    *n = tl_children_of(mpirun, ranks, 8);
    ck_assert_msg(*n == 2, "mpirun %d has %d rank processes, not 2", (int)mpirun, *n);
    return mpirun;
}

/* The uninterrupted 2-rank numbers of text, by trainctl run --ranks 2. */
static char *reference(const char *text)
{
    char *cfg = write_cfg("ref.yaml", text), *dir = path_in("ref"), *out;
    ck_assert_msg(trainctl_run(cfg, dir, "2", &out) == 0, "reference: %s", out);
    free(out);
    char *m = metrics_of(dir, true);
    free(cfg);
    free(dir);
    return m;
}

static void assert_job_metrics(const char *id, const char *want, const char *what)
{
    char *dir = job_dir(id), *got = metrics_of(dir, true);
    ck_assert_msg(strcmp(got, want) == 0, "%s: metrics.jsonl differs from the uninterrupted run", what);
    free(got);
    free(dir);
}

START_TEST(daemon_runs_two_ranks)
{
    char *text = xasprintf(MLP_CFG, "dp", 600, 20, 200, RANKS2);
    char *want = reference(text);
    start_daemon("2");
    char *id = tl_submit(&g_d, text);
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 60);
    ck_assert_int_eq((int)tl_num(j, "ranks"), 2);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 0);
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "config"), "parallel");
    ck_assert_int_eq((int)tl_num(par, "ranks"), 2);
    cJSON_Delete(j);
    assert_job_metrics(id, want, "daemon");
    char *log = xasprintf("%s/spool/jobs/%s/worker.log", g_dir, id), *wl = tl_read(log, NULL);
    ck_assert_msg(wl && strstr(wl, "2 ranks × 1 thread") && strstr(wl, "allreduce:"), "%s", wl);
    free(wl);
    free(log);
    /* a job with more ranks than the daemon's threads budget is refused, clearly */
    char *big = xasprintf(MLP_CFG, "wide", 100, 10, 50, "parallel: {ranks: 4}\n");
    char *id2 = tl_submit(&g_d, big);
    j = tl_wait_state(&g_d, id2, "failed", 30);
    char *errs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "errors"));
    ck_assert_msg(strstr(errs, "parallel.ranks (4) exceeds the daemon's threads_per_job (2)"), "%s", errs);
    free(errs);
    cJSON_Delete(j);
    free(big);
    free(id2);
    free(id);
    free(want);
    free(text);
}
END_TEST

START_TEST(without_the_mpi_worker_the_job_fails_clearly)
{
    setenv("TRAIND_MPI_WORKER", "/nonexistent/traind-mpi-worker", 1);   /* this test's process only */
    char *text = xasprintf(MLP_CFG, "nompi", 100, 10, 50, RANKS2);
    start_daemon("2");
    char *id = tl_submit(&g_d, text);
    cJSON *j = tl_wait_state(&g_d, id, "failed", 30);
    char *errs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "errors"));
    ck_assert_msg(strstr(errs, "needs Open MPI's mpirun") && strstr(errs, "traind-mpi-worker"), "%s", errs);
    free(errs);
    cJSON_Delete(j);
    char *cfg = write_cfg("nompi.yaml", text), *dir = path_in("nompi-run"), *out;
    ck_assert_int_eq(trainctl_run(cfg, dir, NULL, &out), 1);
    ck_assert_msg(strstr(out, "needs Open MPI's mpirun") && strstr(out, "(not found)"), "%s", out);
    free(out);
    free(dir);
    free(cfg);
    free(id);
    free(text);
}
END_TEST

START_TEST(kill9_of_a_rank_restarts_from_checkpoint)
{
    char *text = xasprintf(MLP_CFG, "k9", LONG_STEPS, 100, 500, RANKS2);
    char *want = reference(text);
    char *conf = write_cfg("traind.yaml", "max_restarts: 2\nthreads_per_job: 2\n");
    const char *extra[] = {"--config", conf, NULL};
    char *spool = path_in("spool");
    ck_assert_int_eq(tl_daemon_start(&g_d, spool, extra, 30), 0);
    free(spool);
    char *id = tl_submit(&g_d, text);
    pid_t ranks[8];
    int n;
    pid_t mpirun = running_ranks(id, 500, ranks, &n);
    ck_assert_int_eq(kill(ranks[1], SIGKILL), 0);   /* a rank other than 0: nobody reports it */
    pid_t all[3] = {ranks[0], ranks[1], mpirun};
    assert_all_gone(all, 3, 15, "after kill -9 of one rank");
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 90);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 1);
    ck_assert_int_eq((int)tl_num(j, "crashes"), 1);
    char *errs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "errors"));
    ck_assert_msg(strstr(errs, "exited with status 137") && strstr(errs, "resumed from the checkpoint"), "%s",
                  errs);
    free(errs);
    cJSON_Delete(j);
    assert_job_metrics(id, want, "after kill -9 of a rank");
    pid_t left[8];
    ck_assert_int_eq(tl_children_of(g_d.pid, left, 8), 0);
    free(conf);
    free(id);
    free(want);
    free(text);
}
END_TEST

START_TEST(kill9_of_rank0_without_restarts_fails_the_job)
{
    char *text = xasprintf(MLP_CFG, "k0", LONG_STEPS * 4, 100, 500, RANKS2);
    char *conf = write_cfg("traind.yaml", "max_restarts: 0\nthreads_per_job: 2\n");
    const char *extra[] = {"--config", conf, NULL};
    char *spool = path_in("spool");
    ck_assert_int_eq(tl_daemon_start(&g_d, spool, extra, 30), 0);
    free(spool);
    char *id = tl_submit(&g_d, text);
    pid_t ranks[8];
    int n;
    pid_t mpirun = running_ranks(id, 500, ranks, &n);
    ck_assert_int_eq(kill(ranks[0], SIGKILL), 0);
    pid_t all[3] = {ranks[0], ranks[1], mpirun};
    assert_all_gone(all, 3, 15, "after kill -9 of rank 0");
    cJSON *j = tl_wait_state(&g_d, id, "failed", 30);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 0);
    cJSON_Delete(j);
    free(conf);
    free(id);
    free(text);
}
END_TEST

START_TEST(cancel_stops_every_rank_with_a_checkpoint)
{
    char *text = xasprintf(MLP_CFG, "cx", LONG_STEPS * 25, 100, 500, RANKS2);
    start_daemon("2");
    char *id = tl_submit(&g_d, text);
    pid_t ranks[8];
    int n;
    pid_t mpirun = running_ranks(id, 500, ranks, &n);
    char *p = xasprintf("/jobs/%s/cancel", id);
    tl_resp r;
    tl_http(g_d.addr, "POST", p, g_d.token, "", 0, &r);
    ck_assert_int_eq(r.status, 202);
    tl_resp_free(&r);
    cJSON *j = tl_wait_state(&g_d, id, "cancelled", 30);
    double step = tl_num(j, "step"), ckpt = tl_num(j, "checkpoint_step");
    ck_assert_msg(step > 500 && ckpt == step, "cancelled at step %.0f, checkpoint at %.0f", step, ckpt);
    cJSON_Delete(j);
    pid_t all[3] = {ranks[0], ranks[1], mpirun};
    assert_all_gone(all, 3, 5, "after cancel");
    char *dir = job_dir(id), *m = metrics_of(dir, false);
    char *last = strrchr(m, '{');
    ck_assert_msg(last && (long)strtol(last + 8, NULL, 10) <= (long)step, "metrics past the checkpoint");
    free(m);
    free(dir);
    free(p);
    free(id);
    free(text);
}
END_TEST

START_TEST(daemon_kill9_and_restart_resumes_bit_identically)
{
    char *text = xasprintf(MLP_CFG, "dk", LONG_STEPS, 100, 500, RANKS2);
    char *want = reference(text);
    start_daemon("2");
    char *id = tl_submit(&g_d, text);
    pid_t ranks[8];
    int n;
    pid_t mpirun = running_ranks(id, 500, ranks, &n);
    ck_assert_int_eq(kill(g_d.pid, SIGKILL), 0);
    waitpid(g_d.pid, NULL, 0);
    g_d.pid = 0;
    pid_t all[3] = {ranks[0], ranks[1], mpirun};
    assert_all_gone(all, 3, 10, "after kill -9 of the daemon");
    tl_daemon_free(&g_d);
    start_daemon("2");
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 90);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 1);
    cJSON_Delete(j);
    assert_job_metrics(id, want, "after kill -9 of the daemon");
    free(id);
    free(want);
    free(text);
}
END_TEST

START_TEST(daemon_sigterm_stops_ranks_and_resumes)
{
    char *text = xasprintf(MLP_CFG, "dt", LONG_STEPS, 100, 500, RANKS2);
    char *want = reference(text);
    start_daemon("2");
    char *id = tl_submit(&g_d, text);
    pid_t ranks[8];
    int n;
    pid_t mpirun = running_ranks(id, 500, ranks, &n);
    int st = tl_daemon_stop(&g_d, SIGTERM, 30);   /* the shutdown path: the ranks checkpoint */
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "traind's wait status %d", st);
    pid_t all[3] = {ranks[0], ranks[1], mpirun};
    assert_all_gone(all, 3, 5, "after traind's shutdown");
    tl_daemon_free(&g_d);
    start_daemon("2");
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 90);
    ck_assert_int_eq((int)tl_num(j, "crashes"), 0);
    cJSON_Delete(j);
    assert_job_metrics(id, want, "after a shutdown and a restart");
    free(id);
    free(want);
    free(text);
}
END_TEST

START_TEST(trainctl_ranks_sigint_then_resume)
{
    char *text = xasprintf(MLP_CFG, "ti", LONG_STEPS * 25, 100, 500, "");
    char *cfg = write_cfg("ti.yaml", text), *dir = path_in("ti"), *log = path_in("ti.out");
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(tl_trainctl_path(), "trainctl", "run", cfg, "--out", dir, "--ranks", "2", (char *)NULL);
        _exit(127);
    }
    /* wait for the first checkpoint */
    char *ck = xasprintf("%s/checkpoint.bin", dir);
    double deadline = tl_now() + 60;
    while (access(ck, F_OK) != 0 && tl_now() < deadline)
        tl_sleep_ms(20);
    ck_assert_msg(access(ck, F_OK) == 0, "no checkpoint");
    pid_t mpirun[2];
    ck_assert_int_eq(tl_children_of(pid, mpirun, 2), 1);
    pid_t ranks[8];
    ck_assert_int_eq(tl_children_of(mpirun[0], ranks, 8), 2);
    kill(pid, SIGINT);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    char *out = tl_read(log, NULL);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status %d: %s", st, out);
    ck_assert_msg(strstr(out, "stopped by signal"), "%s", out);
    free(out);
    pid_t all[3] = {ranks[0], ranks[1], mpirun[0]};
    assert_all_gone(all, 3, 5, "after SIGINT");
    /* a rerun resumes where it stopped (then is stopped the same way) */
    pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(tl_trainctl_path(), "trainctl", "run", cfg, "--out", dir, "--ranks", "2", (char *)NULL);
        _exit(127);
    }
    deadline = tl_now() + 60;
    for (;;) {
        out = tl_read(log, NULL);
        bool resumed = out && strstr(out, "resuming from step");
        free(out);
        if (resumed || tl_now() > deadline)
            break;
        tl_sleep_ms(20);
    }
    kill(pid, SIGINT);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    out = tl_read(log, NULL);
    ck_assert_msg(strstr(out, "resuming from step") && WIFEXITED(st) && WEXITSTATUS(st) == 130,
                  "status %d: %s", st, out);
    free(out);
    free(ck);
    free(log);
    free(dir);
    free(cfg);
    free(text);
}
END_TEST

#define ADD(tc, fn)                                                                    \
    do {                                                                               \
        const char *only = getenv("TRAINDTEST_ONLY");                                  \
        if (!only || !*only || strcmp(only, #fn) == 0)                                 \
            tcase_add_test(tc, fn);                                                    \
        n_tests++;                                                                     \
    } while (0)

static int n_tests;

static Suite *suite(void)
{
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpi");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    ADD(tc, two_ranks_same_numbers_mlp);
    ADD(tc, two_ranks_same_numbers_gpt);
    ADD(tc, two_ranks_within_the_bound_on_text);
    ADD(tc, batch_not_divisible_is_a_config_error);
    ADD(tc, daemon_runs_two_ranks);
    ADD(tc, without_the_mpi_worker_the_job_fails_clearly);
    ADD(tc, kill9_of_a_rank_restarts_from_checkpoint);
    ADD(tc, kill9_of_rank0_without_restarts_fails_the_job);
    ADD(tc, cancel_stops_every_rank_with_a_checkpoint);
    ADD(tc, daemon_kill9_and_restart_resumes_bit_identically);
    ADD(tc, daemon_sigterm_stops_ranks_and_resumes);
    ADD(tc, trainctl_ranks_sigint_then_resume);
    suite_add_tcase(s, tc);
    return s;
}

/* Whether the MPI pieces are here: mpirun on PATH and the MPI worker beside trainctl. */
static const char *missing(void)
{
    static char why[512];
    const char *path = getenv("PATH");
    char *copy = xstrdup(path ? path : "/usr/bin:/bin"), *save = NULL;
    bool found = false;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/mpirun", dir);
        found = access(p, X_OK) == 0;
        free(p);
    }
    free(copy);
    if (!found)
        return "mpirun is not installed (Debian: openmpi-bin libopenmpi-dev; make deps)";
    const char *b = getenv("TRAIND_BUILD");
    char *w = xasprintf("%s/traind-mpi-worker", b && *b ? b : "build");
    bool have = access(w, X_OK) == 0;
    snprintf(why, sizeof why, "%s was not built (no mpicc when make ran)", w);
    free(w);
    return have ? NULL : why;
}

int main(void)
{
    Suite *s = suite();
    const char *why = missing();
    if (why) {
        printf("SKIPPED: %d checks: %s\n", n_tests, why);
        srunner_free(srunner_create(s));   /* frees the suite, runs nothing */
        return 0;
    }
    return tl_run_suite(s) ? 1 : 0;
}

/*
 * test_stall_watchdog — a job that makes no progress is treated as crashed
 * (traind.yaml(5), stall_timeout_s; traind(8), THE JOB OBJECT), against the
 * real traind on a temporary spool with a short stall_timeout_s.
 *
 *   one rank       the training process SIGSTOPped after a checkpoint: killed
 *                  within the timeout, "no progress for N s at step S" in its
 *                  errors and the log, resumed from the checkpoint, succeeded
 *                  with the metrics of an uninterrupted run, bit for bit
 *   two ranks      one rank of a 2-rank MPI job SIGSTOPped: the same, every
 *                  process of the job gone; and meanwhile the rank left
 *                  waiting for it sleeps instead of spinning (its CPU share
 *                  measured from /proc)
 *   slow is alive  steps of ~0.3 s, 20 of them with no metrics point (longer
 *                  than the timeout), then an eval and a 25 MB checkpoint,
 *                  and a pause of the process shorter than the timeout: not
 *                  killed; the timeout shown in the job object grows to 10
 *                  times the longest silence seen
 *
 * The two-rank check needs mpirun and traind-mpi-worker: without them it is
 * not registered and main prints "SKIPPED: 1 checks: why".  Each check prints
 * its measured figures as "# FIGURE: ..." lines.  TRAINDTEST_ONLY=NAME runs
 * one check.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/util.h"
#include "../lib/tl.h"

/* The stall timeout of the daemons here (s): what a stalled job waits. */
#define STALL_S 3
/* The slow-but-alive check's: more, so that its first step (before any
 * interval is known) stays below it on a loaded machine. */
#define SLOW_STALL_S 5

/* An MLP of about 3-5 s here (20,000 steps of 4,000-17,000 a second),
 * checkpointed every 500 steps; the same seconds under ASan. */
#define MLP_CFG                                                                              \
    "name: %s\n"                                                                             \
    "seed: 3\n"                                                                              \
    "model: {type: mlp, input_dim: 16, hidden: [64, 64], output_dim: 8, activation: gelu}\n" \
    "data: {kind: synthetic, batch_size: 32, noise: 0.01}\n"                                 \
    "optimizer: {type: adamw, lr: 3.0e-3, grad_clip: 1.0}\n"                                 \
    "schedule: {type: cosine, warmup_steps: 20, total_steps: %d}\n"                          \
    "train: {log_every: 100, checkpoint_every: 500}\n"                                       \
    "%s"
#define MLP_STEPS (TL_ASAN ? 5000 : 20000)

/* Slow steps (~0.3 s here: 2048 rows through 1024-wide layers), no report
 * but ticks for 20 of them, then an eval of 8 such batches and a checkpoint
 * of 25 MB at once: the same seconds under ASan (a quarter of the batch).
 * Its 20 silent steps take longer than SLOW_STALL_S, which the daemon does
 * not see as a stall because ticks come every half second or step. */
#define SLOW_CFG                                                                                 \
    "name: %s\n"                                                                                 \
    "seed: 7\n"                                                                                  \
    "model: {type: mlp, input_dim: 512, hidden: [1024, 1024], output_dim: 512, activation: gelu}\n" \
    "data: {kind: synthetic, batch_size: %d, noise: 0.01, eval_fraction: 0.8}\n"                 \
    "optimizer: {type: adamw, lr: 1.0e-3}\n"                                                     \
    "schedule: {type: constant, total_steps: 28}\n"                                              \
    "train: {log_every: 1000, eval_every: 20, checkpoint_every: 20}\n"
#define SLOW_BATCH (TL_ASAN ? 512 : 2048)

static char *g_dir;
static tl_daemon g_d;
static double g_t0;

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-stall");
    g_t0 = tl_now();
}

static void teardown(void)
{
    if (g_d.pid > 0)
        tl_daemon_stop(&g_d, SIGKILL, 10);
    tl_fixture_end(&g_dir, &g_d);
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

/* traind on <dir>/spool with a traind.yaml of these keys. */
static void start_daemon(int stall_s, int threads)
{
    char *yaml = xasprintf("stall_timeout_s: %d\nmax_restarts: 2\nthreads_per_job: %d\n", stall_s, threads);
    char *conf = write_cfg("traind.yaml", yaml);
    const char *extra[] = {"--config", conf, NULL};
    tl_start_in(&g_d, g_dir, extra, 30);
    free(conf);
    free(yaml);
}

/* The metrics of an uninterrupted `trainctl run` of text (--ranks if given). */
static char *reference(const char *text, const char *ranks)
{
    char *cfg = write_cfg("ref.yaml", text), *dir = path_in("ref"), *log = path_in("ref.out");
    const char *argv[] = {tl_trainctl_path(), "run", cfg, "--out", dir, "--fresh",
                          ranks ? "--ranks" : NULL, ranks, NULL};
    int rc = tl_run(argv, log, 180);
    char *out = tl_read(log, NULL);
    ck_assert_msg(rc == 0, "reference run exited %d: %s", rc, out ? out : "");
    free(out);
    char *m = tl_dir_metrics(dir);
    free(log);
    free(dir);
    free(cfg);
    return m;
}

static void assert_gone(pid_t pid, double timeout_s, const char *what)
{
    ck_assert_msg(tl_proc_gone_within(pid, timeout_s), "%s (pid %d) is still there", what, (int)pid);
}

/* SIGSTOPs pid and waits for the daemon to log that it killed it for a stall;
 * the seconds that took. */
static double stop_and_time_detection(pid_t pid, double timeout_s)
{
    int before = tl_log_count(&g_d, "no progress for");
    double t0 = tl_now();
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    double deadline = t0 + timeout_s;
    while (tl_log_count(&g_d, "no progress for") == before && tl_now() < deadline && g_d.pid > 0)
        tl_sleep_ms(20);
    double took = tl_now() - t0;
    if (tl_log_count(&g_d, "no progress for") == before) {
        kill(pid, SIGCONT);   /* the teardown's kill of the daemon then takes it */
        char *log = tl_daemon_log(&g_d);
        size_t n = strlen(log);
        ck_abort_msg("a job SIGSTOPped for %.0f s was not killed as stalled: ...%s", took,
                     log + (n > 2000 ? n - 2000 : 0));
    }
    return took;
}

/* The ended job's checks after one stall: succeeded, one crash, the reason in
 * its errors, and the metrics of the uninterrupted run. */
static void assert_resumed_after_stall(const char *id, const char *want)
{
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 120);
    ck_assert_int_eq((int)tl_num(j, "crashes"), 1);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 1);
    char *errs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "errors"));
    ck_assert_msg(tl_job_has_error(j, "no progress for", "resumed from the checkpoint at step"), "%s", errs);
    ck_assert_msg(strstr(errs, " s at step "), "the error does not say where: %s", errs);
    free(errs);
    cJSON_Delete(j);
    tl_assert_log(&g_d, "no progress for", "killing its training process", 1);
    char *got = tl_job_metrics(g_d.spool, id);
    ck_assert_msg(strcmp(got, want) == 0, "metrics.jsonl after the stall differs from the uninterrupted run");
    free(got);
    tl_stop_clean(&g_d, 30);
}

START_TEST(stopped_worker_is_killed_and_resumed)
{
    char *text = xasprintf(MLP_CFG, "stop1", MLP_STEPS, "");
    char *want = reference(text, NULL);
    start_daemon(STALL_S, 1);
    char *id = tl_submit(&g_d, text);
    cJSON *j = tl_wait_running(&g_d, id, 500, 60);
    pid_t worker = (pid_t)tl_num(j, "pid");
    double shown = tl_num(j, "stall_timeout_s");
    cJSON_Delete(j);
    ck_assert_msg(shown >= STALL_S, "the running job shows stall_timeout_s %g, not at least %d", shown, STALL_S);
    double took = stop_and_time_detection(worker, 60);
    assert_gone(worker, 10, "the stalled worker");
    printf("# FIGURE: 1 rank SIGSTOPped: killed as stalled after %.1f s (stall_timeout_s %d)\n", took, STALL_S);
    ck_assert_msg(took >= STALL_S - 0.5, "killed after %.1f s, before its timeout of %d s", took, STALL_S);
    assert_resumed_after_stall(id, want);
    free(id);
    free(want);
    free(text);
}
END_TEST

/* ---- two ranks ---- */

START_TEST(stopped_rank_is_killed_and_resumed)
{
    char *text = xasprintf(MLP_CFG, "stop2", MLP_STEPS, "parallel: {ranks: 2}\n");
    char *want = reference(text, "2");
    start_daemon(STALL_S, 2);
    char *id = tl_submit(&g_d, text);
    cJSON *j = tl_wait_running(&g_d, id, 500, 60);
    pid_t mpirun = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);
    pid_t ranks[8];
    int n = tl_children_of(mpirun, ranks, 8);
    ck_assert_msg(n == 2, "mpirun %d has %d rank processes, not 2", (int)mpirun, n);

    /* the rank left waiting: its CPU over a second, from half a second after
     * its peer stopped (the job is killed no sooner than STALL_S) */
    int before = tl_log_count(&g_d, "no progress for");
    double t0 = tl_now();
    ck_assert_int_eq(kill(ranks[1], SIGSTOP), 0);
    tl_sleep_ms(500);
    double c0 = tl_proc_cpu_seconds(ranks[0]), w0 = tl_now();
    tl_sleep_ms(1000);
    double c1 = tl_proc_cpu_seconds(ranks[0]), w1 = tl_now();
    bool early = tl_log_count(&g_d, "no progress for") != before;
    double share = (c1 - c0) / (w1 - w0);
    printf("# FIGURE: 2 ranks, one SIGSTOPped: the other rank used %.0f%% of a core while it waited\n",
           100 * share);
    ck_assert_msg(!early, "the job was killed before its stall timeout of %d s", STALL_S);
    ck_assert_msg(share < 0.3, "the rank waiting for a stopped peer used %.0f%% of a core", 100 * share);

    double deadline = t0 + 60;
    while (tl_log_count(&g_d, "no progress for") == before && tl_now() < deadline && g_d.pid > 0)
        tl_sleep_ms(20);
    double took = tl_now() - t0;
    if (tl_log_count(&g_d, "no progress for") == before)
        kill(ranks[1], SIGCONT);
    ck_assert_msg(tl_log_count(&g_d, "no progress for") > before,
                  "a 2-rank job with a SIGSTOPped rank was not killed as stalled in %.0f s", took);
    printf("# FIGURE: 2 ranks, one SIGSTOPped: killed as stalled after %.1f s (stall_timeout_s %d)\n", took,
           STALL_S);
    assert_gone(ranks[1], 15, "the stopped rank");
    assert_gone(ranks[0], 15, "the waiting rank");
    assert_gone(mpirun, 15, "mpirun");
    assert_resumed_after_stall(id, want);
    free(id);
    free(want);
    free(text);
}
END_TEST

/* ---- slow but alive ---- */

/* The job's stall_timeout_s now (NAN when not shown), and its state in *running. */
static double shown_timeout(const char *id, bool *running)
{
    cJSON *j = tl_get_job(&g_d, id);
    ck_assert_ptr_nonnull(j);
    double v = tl_num(j, "stall_timeout_s");
    const char *s = tl_str(j, "state");
    *running = s && !strcmp(s, "running");
    cJSON_Delete(j);
    return v;
}

START_TEST(slow_steps_and_a_short_pause_are_not_a_stall)
{
    char *text = xasprintf(SLOW_CFG, "slow", SLOW_BATCH);
    start_daemon(SLOW_STALL_S, 1);
    char *id = tl_submit(&g_d, text);
    /* past its eval and checkpoint (step 20) */
    cJSON *j = tl_wait_running(&g_d, id, 20, 120);
    pid_t worker = (pid_t)tl_num(j, "pid");
    double first = tl_num(j, "stall_timeout_s");
    cJSON_Delete(j);
    ck_assert_msg(first >= SLOW_STALL_S, "the running job shows stall_timeout_s %g, not at least %d", first,
                  SLOW_STALL_S);

    /* a pause shorter than the timeout: not a stall, and the timeout grows */
    const double pause_s = 2.0;
    ck_assert_int_eq(kill(worker, SIGSTOP), 0);
    tl_sleep_ms((int)(pause_s * 1000));
    ck_assert_int_eq(kill(worker, SIGCONT), 0);
    double grown = first, deadline = tl_now() + 60;
    bool running = true;
    while (running && grown < 10 * pause_s - 0.5 && tl_now() < deadline) {
        double v = shown_timeout(id, &running);
        if (isfinite(v) && v > grown)
            grown = v;
        tl_sleep_ms(20);
    }
    printf("# FIGURE: slow steps: stall_timeout_s %.1f after the eval and checkpoint, %.1f after a %.0f s "
           "pause\n", first, grown, pause_s);
    ck_assert_msg(grown >= 10 * pause_s - 0.5, "after a %.0f s pause the timeout shown is %.1f s, not 10 times that",
                  pause_s, grown);

    j = tl_wait_state(&g_d, id, "succeeded", 180);
    ck_assert_msg(!tl_job_has_error(j, "no progress", NULL), "a slow but live job was killed as stalled");
    ck_assert_int_eq((int)tl_num(j, "crashes"), 0);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 0);
    cJSON_Delete(j);
    ck_assert_int_eq(tl_log_count(&g_d, "no progress for"), 0);
    char *m = tl_job_metrics(g_d.spool, id);
    ck_assert_int_eq(tl_count_in(m, "\"eval_loss\""), 1);
    free(m);
    tl_stop_clean(&g_d, 30);
    free(id);
    free(text);
}
END_TEST

/* ---- the suite ---- */

/* Why the MPI check cannot run here (NULL: it can): mpirun on PATH and the
 * MPI worker beside trainctl. */
static const char *mpi_missing(void)
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
        return "stopped_rank_is_killed_and_resumed: mpirun is not installed (Debian: openmpi-bin)";
    const char *b = getenv("TRAIND_BUILD");
    char *w = xasprintf("%s/traind-mpi-worker", b && *b ? b : "build");
    bool have = access(w, X_OK) == 0;
    snprintf(why, sizeof why, "stopped_rank_is_killed_and_resumed: %s was not built (no mpicc)", w);
    free(w);
    return have ? NULL : why;
}

#define ADD(tc, fn)                                                                    \
    do {                                                                               \
        const char *only = getenv("TRAINDTEST_ONLY");                                  \
        if (!only || !*only || strcmp(only, #fn) == 0)                                 \
            tcase_add_test(tc, fn);                                                    \
    } while (0)

int main(void)
{
    Suite *s = suite_create("stall_watchdog");
    TCase *tc = tcase_create("stall_watchdog");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    ADD(tc, stopped_worker_is_killed_and_resumed);
    const char *why = mpi_missing();
    if (why)
        printf("SKIPPED: 1 checks: %s\n", why);
    else
        ADD(tc, stopped_rank_is_killed_and_resumed);
    ADD(tc, slow_steps_and_a_short_pause_are_not_a_stall);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

/*
 * test_slurm — traind with `executor: slurm` against a real one-node Slurm
 * cluster (Debian's slurm-wlm), started for this test by tests/slurm/cluster.sh
 * in a temporary directory: munged, slurmctld and slurmd in the foreground,
 * with a generated slurm.conf and munge key.  No mock: every job goes
 * through sbatch, scontrol and scancel.
 *
 * Where the cluster cannot start (not root, slurm-wlm missing, a sandbox
 * without the needed syscalls) the test prints one line
 *     SKIP: slurm cannot start here: <reason>
 * and runs no check: scripts/run-tests.sh reports it as skipped, never as
 * passed.
 *
 * This process is a child subreaper (PR_SET_CHILD_SUBREAPER): the cluster's
 * daemons and the batch jobs they start are its descendants whatever they
 * do, and at the end every one left is killed and reaped.
 *
 * The bit-exact time-limit check sends what `--signal=B:TERM@GRACE` sends at
 * the time limit (SIGTERM to the batch shell) with `scancel --signal=TERM
 * --batch`, so it does not wait out Slurm's minute-granular --time; the path
 * through traind (checkpoint, the Slurm job ending, a fresh sbatch that
 * resumes) is the real one.  slurm_real_time_limit_requeues then lets
 * Slurm's own --time=1 limit do it (about 30 s).
 *
 * The other states are triggered for real: a 2-rank job (one srun step,
 * interrupted and resumed, then cancelled: no rank left in /proc), a
 * preemption (a job of cluster.sh's higher-tier partition `urgent`), a node
 * set down under a running job (NODE_FAIL), --mem exceeded in the job's
 * memory cgroup (OUT_OF_MEMORY), and a worker killed with SIGKILL (FAILED: a
 * crash, resumed while max_restarts allows).  The CPUs asked for: a 2-rank
 * job of threads: 1 under a threads_per_job above the node's CPUs asks 1 a
 * rank and runs; a job of more threads than the node has fails at
 * submission (sbatch --test-only) with the numbers; one raised to
 * PartitionConfig while pending (scontrol update) is cancelled and fails.
 * Checks whose prerequisites are missing (the
 * MPI worker, srun's pmix plugin, a writable memory cgroup) are not run and
 * main prints "SKIPPED: N checks: why".
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/util.h"
#include "../lib/tl.h"

static char *g_cluster;          /* the cluster's directory */
static char *g_dir;              /* this test's directory */
static tl_daemon g_d;
static double g_t0;

/* ~1.5 s of training, checkpoints every 500 steps. */
static const char QUICK_FMT[] =
    "name: %s\n"
    "seed: 3\n"
    "model: {type: linear, input_dim: 6, output_dim: 3}\n"
    "data: {kind: synthetic, batch_size: 8, noise: 0.01}\n"
    "optimizer: {type: adamw, lr: 1.0e-2}\n"
    "schedule: {type: cosine, warmup_steps: 300, total_steps: 3000, min_lr_ratio: 0.1}\n"
    "train: {log_every: 50, checkpoint_every: 500}\n";

/* Long enough to be interrupted (about 6 s of training), short enough to
 * finish.  Every check trains it under the name "medium" (in its own
 * spool), so that one local reference run serves them all.  Under
 * AddressSanitizer (make check) training runs about four times slower: a
 * quarter of the steps keeps the same seconds, rather than 27 s a run. */
#if TL_ASAN
#define MEDIUM_STEPS "40000"
#define TWO_RANK_STEPS 50000
#else
#define MEDIUM_STEPS "160000"
/* The 2-rank job must still be training when the check has seen it at step
 * 3,000 and looked for its ranks: 40,000 steps took about a second on a
 * fast machine, which ended it before the check could interrupt it. */
#define TWO_RANK_STEPS 200000
#endif
static const char MEDIUM_FMT[] =
    "name: %s\n"
    "seed: 31\n"
    "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 4, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 32, noise: 0.02}\n"
    "optimizer: {type: adamw, lr: 2.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 200, total_steps: " MEDIUM_STEPS ", min_lr_ratio: 0.05}\n"
    "train: {log_every: 500, checkpoint_every: 1000}\n";

/* Runs far longer than any test waits. */
static const char LONG_FMT[] =
    "name: %s\n"
    "seed: 1\n"
    "threads: %d\n"
    "model: {type: mlp, input_dim: 8, hidden: [16], output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: constant, total_steps: 50000000}\n"
    "train: {log_every: 100, checkpoint_every: 2000}\n";

/* A 2-rank job (parallel.ranks) of ~4 s here, checkpoints every 1000 steps. */
static const char TWO_RANK_FMT[] =
    "name: %s\n"
    "seed: 7\n"
    "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 4, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 32, noise: 0.02}\n"
    "optimizer: {type: adamw, lr: 2.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 200, total_steps: %d, min_lr_ratio: 0.05}\n"
    "train: {log_every: 500, checkpoint_every: 1000}\n"
    "parallel: {ranks: 2}\n";

/* ------------------------------------------------------------ helpers */

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-slurm");
    g_t0 = tl_now();
}

/* scancel every job of the test cluster and wait until its queue is empty. */
static void cancel_all_slurm_jobs(void)
{
    const char *argv[] = {"/usr/bin/scancel", "--user=root", NULL};
    tl_run(argv, NULL, 30);
    char *out = xasprintf("%s/squeue.out", g_cluster);
    for (int i = 0; i < 100; i++) {
        const char *q[] = {"/usr/bin/squeue", "-h", "-o", "%i", NULL};
        tl_run(q, out, 30);
        size_t n = 0;
        char *text = tl_read(out, &n);
        free(text);
        if (n == 0)
            break;
        tl_sleep_ms(200);
    }
    free(out);
}

static void node_resume(void);

static void teardown(void)
{
    node_resume();   /* after slurm_node_fail_fails, whatever it got to */
    if (g_d.pid > 0)
        tl_daemon_stop(&g_d, SIGKILL, 10);
    tl_daemon_free(&g_d);
    cancel_all_slurm_jobs();
    tl_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
    fprintf(stderr, "  (%.1f s)\n", tl_now() - g_t0);
}

static char *write_dconfig(const char *extra)
{
    char *path = xasprintf("%s/traind.yaml", g_dir);
    bool own_slurm = extra && strstr(extra, "slurm:");
    char *text = xasprintf("executor: slurm\nmax_jobs: 4\n%s%s", own_slurm ? "" : "slurm: {signal_grace_s: 30}\n",
                           extra ? extra : "");
    ck_assert_int_eq(tl_write(path, text), 0);
    free(text);
    return path;
}

static void start_daemon(const char *extra_config)
{
    char *cfg = write_dconfig(extra_config);
    char *spool = xasprintf("%s/spool", g_dir);
    const char *args[] = {"--config", cfg, NULL};
    if (tl_daemon_start(&g_d, spool, args, 30) != 0) {
        char *log = tl_daemon_log(&g_d);
        ck_abort_msg("traind did not start: %s", log);
    }
    free(spool);
    free(cfg);
}

typedef struct running_with {
    long min_step;
    const char *not_slurm_id;   /* a Slurm job id it must no longer be */
} running_with;

static bool is_running_with(const cJSON *job, void *arg)
{
    const running_with *w = arg;
    const char *st = tl_str(job, "state"), *sid = tl_str(job, "slurm_job_id");
    if (st && strcmp(st, "running") != 0 && strcmp(st, "queued") != 0)
        return true;   /* ended: let the caller see it */
    return st && !strcmp(st, "running") && tl_num(job, "step") >= (double)w->min_step && sid &&
           (!w->not_slurm_id || strcmp(sid, w->not_slurm_id) != 0);
}

static cJSON *wait_running(const char *id, long min_step, const char *not_slurm_id, double timeout_s)
{
    running_with w = {min_step, not_slurm_id};
    cJSON *j = tl_wait_job_of(&g_d, id, is_running_with, &w, timeout_s);
    ck_assert_msg(j != NULL, "job %s never ran past step %ld", id, min_step);
    ck_assert_msg(!strcmp(tl_str(j, "state"), "running"), "job %s: %s instead of running (%s)", id,
                  tl_str(j, "state"), cJSON_PrintUnformatted(j));
    return j;
}

/* What scontrol says of a Slurm job: "JobState=... Reason=..." words. */
static char *scontrol_job(const char *sid)
{
    char *out = xasprintf("%s/scontrol.out", g_dir);
    const char *argv[] = {"/usr/bin/scontrol", "-o", "show", "job", sid, NULL};
    tl_run(argv, out, 30);
    char *text = tl_read(out, NULL);
    free(out);
    return text ? text : xstrdup("");
}

/* An uninterrupted local run of text (trainctl run: the same training code
 * as the local executor's worker); its metrics without the time field. */
static char *reference_metrics_ranks(const char *text, const char *name, const char *ranks);

static char *reference_metrics(const char *text, const char *name)
{
    return reference_metrics_ranks(text, name, NULL);
}

/* ranks: "2": `trainctl run --ranks 2` (mpirun on this machine), the numbers
 * of the local executor's N-rank job (test_mpi checks those are the same). */
static char *reference_metrics_ranks(const char *text, const char *name, const char *ranks)
{
    /* made once per test run (the checks run in forked processes: a file) */
    char *cached = xasprintf("%s/ref-%s.stripped", g_cluster, name);
    char *have = tl_read(cached, NULL);
    if (have) {
        free(cached);
        return have;
    }
    char *dir = xasprintf("%s/ref-%s", g_dir, name);
    char *cfg = xasprintf("%s.yaml", dir), *out = xasprintf("%s.out", dir);
    ck_assert_int_eq(tl_write(cfg, text), 0);
    const char *argv[] = {tl_trainctl_path(), "run", cfg, "--out", dir, "--fresh",
                          ranks ? "--ranks" : NULL, ranks, NULL};
    int rc = tl_run(argv, out, 300);
    ck_assert_msg(rc == 0, "trainctl run %s exited %d", cfg, rc);
    char *m = xasprintf("%s/metrics.jsonl", dir);
    char *raw = tl_read(m, NULL);
    ck_assert_ptr_nonnull(raw);
    char *s = tl_strip_time(raw);
    ck_assert_int_eq(tl_write(cached, s), 0);
    free(cached);
    free(raw);
    free(m);
    free(cfg);
    free(out);
    free(dir);
    return s;
}

static void assert_same_metrics(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) == 0)
        return;
    size_t i = 0;
    while (got[i] && got[i] == want[i])
        i++;
    size_t from = i > 120 ? i - 120 : 0;
    ck_abort_msg("%s: metrics.jsonl differs from the local run at byte %zu:\n got: %.240s\nwant: %.240s", what, i,
                 got + from, want + from);
}

static int count_in(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ------------------------------------------------------------- checks */

START_TEST(slurm_success_same_metrics)
{
    start_daemon(NULL);
    char *cfg = xasprintf(QUICK_FMT, "quick");
    double t0 = tl_now();
    char *id = tl_submit(&g_d, cfg);
    /* submit → running: the first time the job object says running */
    running_with w = {0, NULL};
    cJSON *r = tl_wait_job_of(&g_d, id, is_running_with, &w, 60);
    double t_run = tl_now() - t0;
    ck_assert_ptr_nonnull(r);
    cJSON_Delete(r);
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 120);
    const char *sid = tl_str(j, "slurm_job_id");
    ck_assert_msg(sid && *sid, "no slurm_job_id in %s", cJSON_PrintUnformatted(j));
    ck_assert_str_eq(tl_str(j, "executor"), "slurm");
    ck_assert_int_eq((int)tl_num(j, "restarts"), 0);
    char *log = tl_daemon_log(&g_d);
    char *line = xasprintf("job %s: submitted to Slurm as job %s", id, sid);
    ck_assert_msg(strstr(log, line), "the log does not say \"%s\": %s", line, log);
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=COMPLETED") && strstr(sc, "JobName=traind-quick"), "scontrol: %s", sc);
    char *got = tl_job_metrics(g_d.spool, id), *want = reference_metrics(cfg, "quick");
    assert_same_metrics("through Slurm", got, want);
    fprintf(stderr, "slurm: submit -> running %.2f s\n", t_run);
    free(got);
    free(want);
    free(sc);
    free(line);
    free(log);
    cJSON_Delete(j);
    free(id);
    free(cfg);
}
END_TEST

START_TEST(slurm_cancel)
{
    start_daemon(NULL);
    char *cfg = xasprintf(LONG_FMT, "long", 1);
    char *id = tl_submit(&g_d, cfg);
    cJSON *r = wait_running(id, 1, NULL, 60);
    char *sid = xstrdup(tl_str(r, "slurm_job_id"));
    cJSON_Delete(r);
    tl_resp resp;
    char *path = xasprintf("/jobs/%s/cancel", id);
    tl_http(g_d.addr, "POST", path, g_d.token, "", 0, &resp);
    ck_assert_msg(resp.status == 202 || resp.status == 200, "cancel: %d %s", resp.status, resp.body);
    tl_resp_free(&resp);
    cJSON *j = tl_wait_state(&g_d, id, "cancelled", 60);
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=CANCELLED"), "scontrol: %s", sc);
    char *log = tl_daemon_log(&g_d);
    ck_assert_msg(strstr(log, "scancel"), "no scancel in the log: %s", log);
    free(log);
    free(sc);
    cJSON_Delete(j);
    free(path);
    free(sid);
    free(id);
    free(cfg);
}
END_TEST

/* Slurm's time-limit signal (what --signal=B:TERM@GRACE sends) → the worker
 * checkpoints and stops → traind resubmits → it resumes → same numbers. */
START_TEST(slurm_time_limit_checkpoint_requeue_resume)
{
    start_daemon(NULL);
    char *cfg = xasprintf(MEDIUM_FMT, "medium");
    char *id = tl_submit(&g_d, cfg);
    cJSON *r = wait_running(id, 3000, NULL, 120);
    char *sid = xstrdup(tl_str(r, "slurm_job_id"));
    cJSON_Delete(r);
    double t0 = tl_now();
    const char *argv[] = {"/usr/bin/scancel", "--signal=TERM", "--batch", sid, NULL};
    ck_assert_int_eq(tl_run(argv, NULL, 30), 0);
    r = wait_running(id, 0, sid, 120);
    double t_resumed = tl_now() - t0;
    ck_assert_int_eq((int)tl_num(r, "restarts"), 1);
    cJSON_Delete(r);
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 300);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 1);
    ck_assert_int_eq((int)tl_num(j, "crashes"), 0);
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=FAILED") && strstr(sc, "ExitCode=3:0"),
                  "the first Slurm job should have ended with the worker's stop code 3: %s", sc);
    char *log = tl_daemon_log(&g_d);
    ck_assert_msg(strstr(log, "requeued to resume from its checkpoint"), "log: %s", log);
    ck_assert_msg(strstr(log, "training resumed at step"), "log: %s", log);
    char *got = tl_job_metrics(g_d.spool, id), *want = reference_metrics(cfg, "medium");
    assert_same_metrics("checkpoint + requeue + resume", got, want);
    fprintf(stderr, "slurm: time-limit signal -> resumed (running in the new Slurm job) %.2f s\n", t_resumed);
    free(got);
    free(want);
    free(log);
    free(sc);
    cJSON_Delete(j);
    free(sid);
    free(id);
    free(cfg);
}
END_TEST

/* traind stops (cleanly, then kill -9) while its job runs in Slurm: the next
 * traind adopts the job by the id in its directory, never submits it again. */
START_TEST(slurm_daemon_restart_adopts)
{
    start_daemon(NULL);
    char *cfg = xasprintf(MEDIUM_FMT, "medium");
    char *id = tl_submit(&g_d, cfg);
    cJSON *r = wait_running(id, 1000, NULL, 120);
    char *sid = xstrdup(tl_str(r, "slurm_job_id"));
    cJSON_Delete(r);
    char *idpath = xasprintf("%s/spool/jobs/%s/slurm_job_id", g_dir, id);
    char *idtext = tl_read(idpath, NULL);
    ck_assert_msg(idtext && atol(idtext) == atol(sid), "%s: %s", idpath, idtext ? idtext : "(none)");
    free(idtext);

    int st = tl_daemon_stop(&g_d, SIGTERM, 30);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "traind's wait status %d", st);
    tl_daemon_free(&g_d);
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=RUNNING"), "the Slurm job should run on without traind: %s", sc);
    free(sc);

    start_daemon(NULL);
    r = wait_running(id, 0, NULL, 30);
    ck_assert_str_eq(tl_str(r, "slurm_job_id"), sid);
    ck_assert_int_eq((int)tl_num(r, "restarts"), 0);
    cJSON_Delete(r);

    tl_daemon_stop(&g_d, SIGKILL, 10);
    tl_daemon_free(&g_d);
    start_daemon(NULL);
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 300);
    ck_assert_str_eq(tl_str(j, "slurm_job_id"), sid);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 0);
    char *log = tl_daemon_log(&g_d);
    ck_assert_int_eq(count_in(log, "submitted to Slurm as job"), 1);
    ck_assert_int_eq(count_in(log, "adopting Slurm job"), 2);
    char *got = tl_job_metrics(g_d.spool, id), *want = reference_metrics(cfg, "medium");
    assert_same_metrics("adopted across two traind restarts", got, want);
    free(got);
    free(want);
    free(log);
    cJSON_Delete(j);
    free(idpath);
    free(sid);
    free(id);
    free(cfg);
}
END_TEST

/* A job Slurm lost (its id in the job directory is one Slurm does not know,
 * as after MinJobAge purged it) resumes from its checkpoint. */
START_TEST(slurm_lost_job_resumes_from_checkpoint)
{
    start_daemon(NULL);
    char *cfg = xasprintf(MEDIUM_FMT, "medium");
    char *id = tl_submit(&g_d, cfg);
    cJSON *r = wait_running(id, 3000, NULL, 120);
    char *sid = xstrdup(tl_str(r, "slurm_job_id"));
    cJSON_Delete(r);
    tl_daemon_stop(&g_d, SIGKILL, 10);
    tl_daemon_free(&g_d);
    /* the job checkpoints and ends while no traind watches; then Slurm "forgets" it */
    const char *argv[] = {"/usr/bin/scancel", "--signal=TERM", "--batch", sid, NULL};
    ck_assert_int_eq(tl_run(argv, NULL, 30), 0);
    /* it must be over before the next traind resubmits: else two processes train one job */
    bool over = false;
    for (double end = tl_now() + 60; !over && tl_now() < end;) {
        char *sc = scontrol_job(sid);
        over = strstr(sc, "JobState=FAILED") != NULL;
        free(sc);
        if (!over)
            tl_sleep_ms(100);
    }
    ck_assert_msg(over, "Slurm job %s did not end after its SIGTERM", sid);
    char *idpath = xasprintf("%s/spool/jobs/%s/slurm_job_id", g_dir, id);
    ck_assert_int_eq(tl_write(idpath, "99999999\n"), 0);
    start_daemon(NULL);
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 300);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 1);
    char *log = tl_daemon_log(&g_d);
    ck_assert_msg(strstr(log, "Slurm no longer knows its job 99999999"), "log: %s", log);
    char *got = tl_job_metrics(g_d.spool, id), *want = reference_metrics(cfg, "medium");
    assert_same_metrics("lost by Slurm, resumed", got, want);
    free(got);
    free(want);
    free(log);
    cJSON_Delete(j);
    free(idpath);
    free(sid);
    free(id);
    free(cfg);
}
END_TEST

/* Slurm's own time limit: --time=1 with --signal=B:TERM@55, so Slurm sends
 * SIGTERM at its first time-limit check past 5 s (slurmctld checks about
 * every 30 s).  The worker checkpoints, traind requeues, the job runs again
 * in a new Slurm job from its checkpoint. */
START_TEST(slurm_real_time_limit_requeues)
{
    start_daemon("slurm: {time_limit: \"1\", signal_grace_s: 55}\n");
    char *cfg = xasprintf(LONG_FMT, "limited", 1);
    char *id = tl_submit(&g_d, cfg);
    cJSON *r = wait_running(id, 1, NULL, 60);
    char *sid = xstrdup(tl_str(r, "slurm_job_id"));
    cJSON_Delete(r);
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "TimeLimit=00:01:00"), "scontrol: %s", sc);
    free(sc);
    /* the first job ends (Slurm's signal) and the next one runs */
    running_with w = {0, sid};
    double t0 = tl_now(), t_end = 0;
    cJSON *j = NULL;
    while (tl_now() - t0 < 90) {
        j = tl_get_job(&g_d, id);
        const char *now = j ? tl_str(j, "slurm_job_id") : NULL;
        if (t_end == 0 && j && (strcmp(tl_str(j, "state"), "running") || (now && strcmp(now, sid))))
            t_end = tl_now();
        if (j && is_running_with(j, &w))
            break;
        cJSON_Delete(j);
        j = NULL;
        tl_sleep_ms(20);
    }
    ck_assert_msg(j != NULL, "job %s was not requeued within 90 s of its time-limit signal", id);
    ck_assert_str_eq(tl_str(j, "state"), "running");
    ck_assert_int_eq((int)tl_num(j, "restarts"), 1);
    ck_assert_int_eq((int)tl_num(j, "crashes"), 0);
    ck_assert_msg(tl_num(j, "checkpoint_step") > 0, "no checkpoint: %s", cJSON_PrintUnformatted(j));
    double t_resumed = tl_now() - t_end;
    cJSON_Delete(j);
    sc = scontrol_job(sid);
    ck_assert_msg((strstr(sc, "JobState=FAILED") && strstr(sc, "ExitCode=3:0")) || strstr(sc, "JobState=TIMEOUT"),
                  "the first Slurm job: %s", sc);
    free(sc);
    char *log = tl_daemon_log(&g_d);
    ck_assert_msg(strstr(log, "requeued to resume from"), "log: %s", log);
    free(log);
    char *wl = xasprintf("%s/spool/jobs/%s/worker.log", g_dir, id);
    char *wtext = tl_read(wl, NULL);
    ck_assert_msg(wtext && strstr(wtext, "stopped on request; checkpoint written"), "worker.log: %s",
                  wtext ? wtext : "(none)");
    free(wtext);
    free(wl);
    fprintf(stderr, "slurm: real time limit: first job ended -> running in the next %.2f s (%.0f s after start)\n",
            t_resumed, t_end - t0);
    free(sid);
    free(id);
    free(cfg);
}
END_TEST

static bool has_reason(const cJSON *job, void *arg)
{
    const char *r = tl_str(job, "slurm_reason"), *st = tl_str(job, "state");
    return (r && !strcmp(r, (const char *)arg)) || (st && strcmp(st, "queued") && strcmp(st, "running"));
}

/* Two jobs of 2 CPUs on a 2-CPU node: the second waits in Slurm's queue,
 * and traind shows it queued with Slurm's reason. */
START_TEST(slurm_pending_shows_reason)
{
    start_daemon("threads_per_job: 2\n");
    char *c1 = xasprintf(LONG_FMT, "big1", 2), *c2 = xasprintf(LONG_FMT, "big2", 2);
    char *a = tl_submit(&g_d, c1);
    cJSON *r = wait_running(a, 1, NULL, 60);
    cJSON_Delete(r);
    char *b = tl_submit(&g_d, c2);
    cJSON *j = tl_wait_job_of(&g_d, b, has_reason, "Resources", 60);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(tl_str(j, "state"), "queued");
    ck_assert_str_eq(tl_str(j, "slurm_reason"), "Resources");
    ck_assert_str_eq(tl_str(j, "slurm_state"), "PENDING");
    ck_assert_ptr_nonnull(tl_str(j, "slurm_job_id"));
    cJSON_Delete(j);
    /* cancelling a job that waits in Slurm's queue */
    tl_resp resp;
    char *path = xasprintf("/jobs/%s/cancel", b);
    tl_http(g_d.addr, "POST", path, g_d.token, "", 0, &resp);
    tl_resp_free(&resp);
    j = tl_wait_state(&g_d, b, "cancelled", 60);
    cJSON_Delete(j);
    free(path);
    free(a);
    free(b);
    free(c1);
    free(c2);
}
END_TEST

/* The pids of the processes of program prog (argv[0]'s last part) that
 * have job directory dir as an argument (from /proc). */
static int procs_of(const char *dir, const char *prog, pid_t *pids, int max)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        size_t len = 0;
        char *cmd = tl_read(path, &len);
        if (!cmd)
            continue;
        /* argv[0] ends in prog and some argument is dir */
        const char *a0 = strrchr(cmd, '/') ? strrchr(cmd, '/') + 1 : cmd;
        bool mine = !strcmp(a0, prog);
        bool has_dir = false;
        for (size_t i = 0; mine && i < len; i += strlen(cmd + i) + 1)
            has_dir = has_dir || !strcmp(cmd + i, dir);
        free(cmd);
        if (mine && has_dir && n < max)
            pids[n++] = (pid_t)pid;
    }
    if (d)
        closedir(d);
    return n;
}

/* The pids of traind-mpi-worker ranks of job directory dir. */
static int mpi_ranks_of(const char *dir, pid_t *pids, int max)
{
    return procs_of(dir, "traind-mpi-worker", pids, max);
}

/* parallel.ranks: 2 under Slurm: one sbatch of --ntasks=2, the ranks one srun
 * step; interrupted by the time-limit signal (to the batch shell, forwarded
 * to both ranks), requeued, resumed; the numbers of `trainctl run --ranks 2`
 * bit for bit. */
START_TEST(slurm_two_ranks_same_metrics)
{
    start_daemon("threads_per_job: 2\n");
    char *cfg = xasprintf(TWO_RANK_FMT, "two", TWO_RANK_STEPS);
    double t0 = tl_now();
    char *id = tl_submit(&g_d, cfg);
    running_with w0 = {0, NULL};
    cJSON *r = tl_wait_job_of(&g_d, id, is_running_with, &w0, 60);
    double t_run = tl_now() - t0;
    ck_assert_ptr_nonnull(r);
    cJSON_Delete(r);
    r = wait_running(id, 3000, NULL, 120);
    ck_assert_int_eq((int)tl_num(r, "ranks"), 2);
    char *sid = xstrdup(tl_str(r, "slurm_job_id"));
    cJSON_Delete(r);
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "NumTasks=2"), "scontrol: %s", sc);
    free(sc);
    char *dir = xasprintf("%s/spool/jobs/%s", g_dir, id);
    pid_t pids[8];
    ck_assert_int_eq(mpi_ranks_of(dir, pids, 8), 2);
    double t1 = tl_now();
    const char *argv[] = {"/usr/bin/scancel", "--signal=TERM", "--batch", sid, NULL};
    ck_assert_int_eq(tl_run(argv, NULL, 30), 0);
    r = wait_running(id, 0, sid, 120);
    double t_resumed = tl_now() - t1;
    ck_assert_int_eq((int)tl_num(r, "restarts"), 1);
    cJSON_Delete(r);
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 300);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 1);
    ck_assert_int_eq((int)tl_num(j, "crashes"), 0);
    sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=FAILED") && strstr(sc, "ExitCode=3:0"),
                  "the first Slurm job should have ended with rank 0's stop code 3: %s", sc);
    free(sc);
    char *wl = xasprintf("%s/worker.log", dir), *wtext = tl_read(wl, NULL);
    ck_assert_msg(wtext && strstr(wtext, "2 ranks") && strstr(wtext, "stopped on request; checkpoint written"),
                  "worker.log: %s", wtext ? wtext : "(none)");
    free(wtext);
    free(wl);
    char *got = tl_job_metrics(g_d.spool, id), *want = reference_metrics_ranks(cfg, "two", "2");
    assert_same_metrics("2 ranks through Slurm, interrupted and resumed", got, want);
    fprintf(stderr, "slurm: 2 ranks: submit -> running %.2f s; time-limit signal -> resumed %.2f s\n", t_run,
            t_resumed);
    free(got);
    free(want);
    cJSON_Delete(j);
    free(dir);
    free(sid);
    free(id);
    free(cfg);
}
END_TEST

/* Cancel of a 2-rank Slurm job: scancel, both ranks checkpoint and stop, no
 * traind-mpi-worker left. */
START_TEST(slurm_two_ranks_cancel)
{
    start_daemon("threads_per_job: 2\n");
    char *cfg = xasprintf(TWO_RANK_FMT, "two-long", 50000000);
    char *id = tl_submit(&g_d, cfg);
    cJSON *r = wait_running(id, 1500, NULL, 120);
    char *sid = xstrdup(tl_str(r, "slurm_job_id"));
    cJSON_Delete(r);
    char *dir = xasprintf("%s/spool/jobs/%s", g_dir, id);
    pid_t pids[8];
    ck_assert_int_eq(mpi_ranks_of(dir, pids, 8), 2);
    tl_resp resp;
    char *path = xasprintf("/jobs/%s/cancel", id);
    double t0 = tl_now();
    tl_http(g_d.addr, "POST", path, g_d.token, "", 0, &resp);
    ck_assert_msg(resp.status == 202 || resp.status == 200, "cancel: %d %s", resp.status, resp.body);
    tl_resp_free(&resp);
    cJSON *j = tl_wait_state(&g_d, id, "cancelled", 60);
    double t_cancel = tl_now() - t0;
    ck_assert_msg(tl_num(j, "checkpoint_step") >= 1000, "%s", cJSON_PrintUnformatted(j));
    int left = 2;
    for (int i = 0; i < 100 && (left = mpi_ranks_of(dir, pids, 8)) > 0; i++)
        tl_sleep_ms(100);
    ck_assert_msg(left == 0, "%d traind-mpi-worker rank(s) left after cancel (pid %d)", left, (int)pids[0]);
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=CANCELLED"), "scontrol: %s", sc);
    free(sc);
    char *wl = xasprintf("%s/worker.log", dir), *wtext = tl_read(wl, NULL);
    ck_assert_msg(wtext && strstr(wtext, "stopped on request; checkpoint written"), "worker.log: %s",
                  wtext ? wtext : "(none)");
    free(wtext);
    free(wl);
    fprintf(stderr, "slurm: 2 ranks: cancel -> cancelled %.2f s\n", t_cancel);
    cJSON_Delete(j);
    free(path);
    free(dir);
    free(sid);
    free(id);
    free(cfg);
}
END_TEST

/* The CPUs of the cluster's one node, as Slurm counts them (sinfo). */
static int node_cpus(void)
{
    char *out = xasprintf("%s/sinfo.out", g_dir);
    const char *argv[] = {"/usr/bin/sinfo", "-h", "-o", "%c", NULL};
    ck_assert_int_eq(tl_run(argv, out, 30), 0);
    char *text = tl_read(out, NULL);
    int n = text ? atoi(text) : 0;
    ck_assert_msg(n >= 1, "sinfo -o %%c: %s", text ? text : "(nothing)");
    free(text);
    free(out);
    return n;
}

/* A 2-rank job of threads: 1 under a threads_per_job far above the node's
 * CPUs asks Slurm for 1 CPU a rank (the threads each rank uses), not
 * threads_per_job / 2, which no node has: it runs and succeeds. */
START_TEST(slurm_two_ranks_ask_their_threads)
{
    char *dc = xasprintf("threads_per_job: %d\n", 2 * node_cpus() + 2);
    start_daemon(dc);
    char *two = xasprintf(TWO_RANK_FMT, "two-cpus", 3000), *cfg = xasprintf("threads: 1\n%s", two);
    free(two);
    char *id = tl_submit(&g_d, cfg);
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 60);
    char *sid = xstrdup(tl_str(j, "slurm_job_id"));
    cJSON_Delete(j);
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=COMPLETED") && strstr(sc, "NumTasks=2") && strstr(sc, "CPUs/Task=1 "),
                  "scontrol: %s", sc);
    free(sc);
    char *path = xasprintf("%s/spool/jobs/%s/slurm.sh", g_dir, id), *script = tl_read(path, NULL);
    ck_assert_msg(script && strstr(script, "--ntasks=2 --cpus-per-task=1 ") && strstr(script, "--threads 1 "),
                  "slurm.sh: %s", script ? script : "(none)");
    free(script);
    free(path);
    free(sid);
    free(id);
    free(cfg);
    free(dc);
}
END_TEST

/* A job whose threads no node has fails at once, before any Slurm job
 * exists, saying what it asked for, from which keys, and what the
 * partition has. */
START_TEST(slurm_unsatisfiable_request_fails_at_submission)
{
    int cpus = node_cpus();
    char *dc = xasprintf("threads_per_job: %d\n", cpus + 8);
    start_daemon(dc);
    char *cfg = xasprintf(LONG_FMT, "too-wide", cpus + 1);
    double t0 = tl_now();
    char *id = tl_submit(&g_d, cfg);
    cJSON *j = tl_wait_state(&g_d, id, "failed", 30);
    double t_failed = tl_now() - t0;
    char *errs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "errors"));
    char *want = xasprintf("1 rank × %d CPUs (--ntasks=1 --cpus-per-task=%d: a rank's CPUs are its threads, "
                           "the config's threads %d capped by the daemon's threads_per_job %d)",
                           cpus + 1, cpus + 1, cpus + 1, cpus + 8);
    char *part = xasprintf("partition debug has nodes of at most %d CPU%s, %d in all", cpus, cpus == 1 ? "" : "s",
                           cpus);
    ck_assert_msg(strstr(errs, "Slurm cannot run this job as asked") &&
                      strstr(errs, "Requested node configuration is not available") && strstr(errs, want) &&
                      strstr(errs, part),
                  "errors: %s\nwant: %s ... %s", errs, want, part);
    ck_assert_msg(tl_str(j, "slurm_job_id") == NULL, "a Slurm job was submitted: %s", cJSON_PrintUnformatted(j));
    ck_assert_msg(t_failed < 10, "failed only after %.1f s", t_failed);
    fprintf(stderr, "slurm: %d CPUs a rank on a %d-CPU node -> failed %.2f s after submit\n", cpus + 1, cpus,
            t_failed);
    free(part);
    free(want);
    free(errs);
    cJSON_Delete(j);
    free(id);
    free(cfg);
    free(dc);
}
END_TEST

/* A job that Slurm keeps pending for a reason that never clears
 * (PartitionConfig: here its CPUs a node raised past the node's by scontrol
 * while it waits behind a job that fills the node) is cancelled and fails,
 * with the reason, instead of waiting for ever. */
START_TEST(slurm_pending_for_ever_fails)
{
    int cpus = node_cpus();
    char *dc = xasprintf("threads_per_job: %d\n", cpus);
    start_daemon(dc);
    char *c1 = xasprintf(LONG_FMT, "fill", cpus), *c2 = xasprintf(LONG_FMT, "behind", 1);
    char *a = tl_submit(&g_d, c1);
    cJSON *r = wait_running(a, 1, NULL, 60);
    cJSON_Delete(r);
    char *b = tl_submit(&g_d, c2);
    cJSON *j = tl_wait_job_of(&g_d, b, has_reason, "Resources", 60);
    ck_assert_msg(j && !strcmp(tl_str(j, "slurm_reason"), "Resources"), "%s", cJSON_PrintUnformatted(j));
    char *sid = xstrdup(tl_str(j, "slurm_job_id"));
    cJSON_Delete(j);
    char *job = xasprintf("jobid=%s", sid), *min = xasprintf("MinCPUsNode=%d", cpus + 1);
    const char *argv[] = {"/usr/bin/scontrol", "update", job, min, NULL};
    tl_run(argv, NULL, 30);   /* exits 1 ("not available now") but sets it */
    double t0 = tl_now();
    j = tl_wait_state(&g_d, b, "failed", 30);
    double t_failed = tl_now() - t0;
    char *errs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "errors"));
    char *want = xasprintf("Slurm job %s cannot start: it was pending for PartitionConfig", sid);
    ck_assert_msg(strstr(errs, want) && strstr(errs, "traind cancelled it"), "errors: %s", errs);
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=CANCELLED"), "scontrol: %s", sc);
    fprintf(stderr, "slurm: pending for PartitionConfig -> failed %.2f s later\n", t_failed);
    free(sc);
    free(want);
    free(errs);
    cJSON_Delete(j);
    free(job);
    free(min);
    free(sid);
    free(a);
    free(b);
    free(c1);
    free(c2);
    free(dc);
}
END_TEST

/* A job of partition urgent (cluster.sh: PriorityTier 10, PreemptMode=CANCEL)
 * that needs both CPUs preempts the traind job: Slurm sends it SIGTERM (it
 * checkpoints) and ends it PREEMPTED; traind resubmits, the new Slurm job
 * waits for the preemptor and resumes from the checkpoint: same numbers. */
START_TEST(slurm_preempted_resumes)
{
    start_daemon(NULL);
    char *cfg = xasprintf(MEDIUM_FMT, "medium");
    char *id = tl_submit(&g_d, cfg);
    cJSON *r = wait_running(id, 3000, NULL, 120);
    char *sid = xstrdup(tl_str(r, "slurm_job_id"));
    cJSON_Delete(r);
    double t0 = tl_now();
    const char *argv[] = {"/usr/bin/sbatch", "--partition=urgent", "--ntasks=2", "--job-name=preemptor",
                          "--output=/dev/null", "--wrap=sleep 2", NULL};
    ck_assert_int_eq(tl_run(argv, NULL, 30), 0);
    r = wait_running(id, 0, sid, 120);
    double t_resumed = tl_now() - t0;
    ck_assert_int_eq((int)tl_num(r, "restarts"), 1);
    cJSON_Delete(r);
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=PREEMPTED"), "the first Slurm job: %s", sc);
    free(sc);
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 300);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 1);
    ck_assert_int_eq((int)tl_num(j, "crashes"), 0);
    char *log = tl_daemon_log(&g_d);
    ck_assert_msg(strstr(log, "ended PREEMPTED") && strstr(log, "requeued to resume from its checkpoint"), "log: %s",
                  log);
    char *got = tl_job_metrics(g_d.spool, id), *want = reference_metrics(cfg, "medium");
    assert_same_metrics("preempted, resumed", got, want);
    fprintf(stderr, "slurm: preemptor submitted -> resumed (running again after it) %.2f s\n", t_resumed);
    free(got);
    free(want);
    free(log);
    cJSON_Delete(j);
    free(sid);
    free(id);
    free(cfg);
}
END_TEST

/* The worker of a 1-rank job is killed (SIGKILL) mid-run: Slurm ends its job
 * FAILED, which is a crash like any other (traind.yaml(5), max_restarts: "a
 * crash, a kill"), not the job's end: with max_restarts 1 traind submits it
 * again, it resumes from its checkpoint and succeeds with the same numbers,
 * its errors naming the crash. */
START_TEST(slurm_killed_worker_resumes)
{
    start_daemon("max_restarts: 1\n");
    char *cfg = xasprintf(MEDIUM_FMT, "medium");
    char *id = tl_submit(&g_d, cfg);
    cJSON *r = wait_running(id, 3000, NULL, 120);
    char *sid = xstrdup(tl_str(r, "slurm_job_id"));
    cJSON_Delete(r);
    char *dir = xasprintf("%s/spool/jobs/%s", g_dir, id);
    pid_t pids[4];
    ck_assert_int_eq(procs_of(dir, "traind", pids, 4), 1);
    ck_assert_int_eq(kill(pids[0], SIGKILL), 0);
    r = wait_running(id, 0, sid, 120);
    ck_assert_int_eq((int)tl_num(r, "restarts"), 1);
    cJSON_Delete(r);
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 300);
    ck_assert_int_eq((int)tl_num(j, "restarts"), 1);
    ck_assert_int_eq((int)tl_num(j, "crashes"), 1);
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "errors"));
    char *want = xasprintf("Slurm job %s ended FAILED", sid);
    ck_assert_msg(text && strstr(text, want) && strstr(text, "resumed from the checkpoint"), "errors: %s",
                  text ? text : "(none)");
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=FAILED"), "the killed Slurm job: %s", sc);
    char *got = tl_job_metrics(g_d.spool, id), *ref = reference_metrics(cfg, "medium");
    assert_same_metrics("worker killed, resumed", got, ref);
    free(got);
    free(ref);
    free(sc);
    free(want);
    free(text);
    cJSON_Delete(j);
    free(dir);
    free(sid);
    free(id);
    free(cfg);
}
END_TEST

/* Slurm's node name here (cluster.sh: hostname -s). */
static char *node_name(void)
{
    char h[256] = "";
    gethostname(h, sizeof h - 1);
    h[strcspn(h, ".")] = '\0';
    return xstrdup(h);
}

/* The node back in service after slurm_node_fail_fails (also its teardown). */
static void node_resume(void)
{
    char *node = node_name(), *nn = xasprintf("nodename=%s", node), *out = xasprintf("%s/sinfo.out", g_cluster);
    for (int i = 0; i < 100; i++) {
        const char *q[] = {"/usr/bin/sinfo", "-h", "-n", node, "-o", "%t", NULL};
        tl_run(q, out, 30);
        char *t = tl_read(out, NULL);
        bool idle = t && (!strncmp(t, "idle", 4) || !strncmp(t, "mix", 3) || !strncmp(t, "alloc", 5));
        free(t);
        if (idle)
            break;
        if (i % 10 == 0) {
            /* refused ("Invalid node state") once ReturnToService has done it */
            const char *a[] = {"/usr/bin/scontrol", "update", nn, "state=resume", NULL};
            tl_run(a, NULL, 30);
        }
        tl_sleep_ms(200);
    }
    free(out);
    free(nn);
    free(node);
}

/* The node fails under a running job (scontrol: state=down): Slurm ends the
 * job NODE_FAIL (reason NodeDown), and traind fails it with that reason. */
START_TEST(slurm_node_fail_fails)
{
    start_daemon(NULL);
    char *cfg = xasprintf(LONG_FMT, "nodefail", 1);
    char *id = tl_submit(&g_d, cfg);
    cJSON *r = wait_running(id, 1, NULL, 60);
    char *sid = xstrdup(tl_str(r, "slurm_job_id"));
    cJSON_Delete(r);
    char *node = node_name(), *nn = xasprintf("nodename=%s", node);
    const char *argv[] = {"/usr/bin/scontrol", "update", nn, "state=down", "reason=traind-test", NULL};
    double t0 = tl_now();
    ck_assert_int_eq(tl_run(argv, NULL, 30), 0);
    cJSON *j = tl_wait_state(&g_d, id, "failed", 60);
    double t_failed = tl_now() - t0;
    node_resume();
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "errors"));
    char *want = xasprintf("Slurm job %s ended NODE_FAIL", sid);
    ck_assert_msg(text && strstr(text, want) && strstr(text, "NodeDown"), "errors: %s", text ? text : "(none)");
    char *sc = scontrol_job(sid);
    ck_assert_msg(strstr(sc, "JobState=NODE_FAIL"), "scontrol: %s", sc);
    fprintf(stderr, "slurm: node down -> failed (NODE_FAIL) %.2f s\n", t_failed);
    free(sc);
    free(want);
    free(text);
    cJSON_Delete(j);
    free(nn);
    free(node);
    free(sid);
    free(id);
    free(cfg);
}
END_TEST

/* ~100 MB of parameters and optimizer state, under --mem=40 (extra_args):
 * the kernel's OOM killer in the job's memory cgroup (task/cgroup), which
 * Slurm reports as OUT_OF_MEMORY; traind fails the job with it. */
START_TEST(slurm_out_of_memory_fails)
{
    start_daemon("slurm: {extra_args: \"--mem=40\", signal_grace_s: 30}\n");
    char *cfg = xasprintf("name: oom\nseed: 1\n"
                          "model: {type: mlp, input_dim: 64, hidden: [2048, 2048, 2048], output_dim: 4}\n"
                          "data: {kind: synthetic, batch_size: 8}\n"
                          "optimizer: {type: adamw, lr: 1.0e-3}\n"
                          "schedule: {type: constant, total_steps: 1000000}\n"
                          "train: {log_every: 100, checkpoint_every: 100000}\n");
    double t0 = tl_now();
    char *id = tl_submit(&g_d, cfg);
    cJSON *j = tl_wait_state(&g_d, id, "failed", 120);
    double t_failed = tl_now() - t0;
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "errors"));
    ck_assert_msg(text && strstr(text, "ended OUT_OF_MEMORY") && strstr(text, "OutOfMemory"), "errors: %s",
                  text ? text : "(none)");
    fprintf(stderr, "slurm: --mem=40 -> failed (OUT_OF_MEMORY) %.2f s after submit\n", t_failed);
    free(text);
    cJSON_Delete(j);
    free(id);
    free(cfg);
}
END_TEST

/* ---------------------------------------------------------- the cluster */

/* Starts the cluster; NULL, or why it cannot start (malloc'd). */
static char *start_cluster(void)
{
    if (geteuid() != 0)
        return xstrdup("needs root (slurmd runs the jobs as their user)");
    const char *script = getenv("TRAIND_SLURM_CLUSTER");
    if (!script)
        script = "tests/slurm/cluster.sh";
    if (access(script, X_OK) != 0)
        return xasprintf("%s: %s", script, strerror(errno));
    g_cluster = tl_tmpdir("traind-slurm-cluster");
    if (!g_cluster)
        return xstrdup("cannot make a temporary directory");
    char *out = xasprintf("%s/start.out", g_cluster);
    const char *argv[] = {script, "start", g_cluster, NULL};
    double t0 = tl_now();
    int rc = tl_run(argv, out, 90);
    char *text = tl_read(out, NULL);
    free(out);
    if (rc != 0) {
        char *why = NULL;
        const char *p = text ? strstr(text, "cannot start: ") : NULL;
        if (p) {
            p += strlen("cannot start: ");
            why = xstrndup(p, strcspn(p, "\n"));
        } else {
            why = xasprintf("%s start exited %d: %.300s", script, rc, text ? text : "");
        }
        free(text);
        return why;
    }
    free(text);
    char *conf = xasprintf("%s/slurm.conf", g_cluster);
    setenv("SLURM_CONF", conf, 1);
    free(conf);
    fprintf(stderr, "slurm: one-node cluster up in %.1f s (%s)\n", tl_now() - t0, g_cluster);
    return NULL;
}

/* Kills and reaps every process left under this one (we are their subreaper). */
static void reap_all(void)
{
    for (int round = 0; round < 50; round++) {
        bool any = false;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            if (*end || pid <= 0)
                continue;
            char path[64], buf[512];
            snprintf(path, sizeof path, "/proc/%ld/stat", pid);
            FILE *f = fopen(path, "re");
            if (!f)
                continue;
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = '\0';
            const char *rp = strrchr(buf, ')');
            long ppid = 0;
            char state;
            if (rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == (long)getpid()) {
                any = true;
                if (state != 'Z')
                    kill((pid_t)pid, round < 10 ? SIGTERM : SIGKILL);
            }
        }
        if (d)
            closedir(d);
        while (waitpid(-1, NULL, WNOHANG) > 0)
        {
        }
        if (!any)
            return;
        tl_sleep_ms(100);
    }
}

static void stop_cluster(void)
{
    if (!g_cluster)
        return;
    const char *script = getenv("TRAIND_SLURM_CLUSTER");
    if (!script)
        script = "tests/slurm/cluster.sh";
    const char *cancel[] = {"/usr/bin/scancel", "--user=root", NULL};
    tl_run(cancel, NULL, 30);
    const char *argv[] = {script, "stop", g_cluster, NULL};
    tl_run(argv, NULL, 60);
    reap_all();
    tl_rmtree(g_cluster);
    free(g_cluster);
    g_cluster = NULL;
}

/* Why the 2-rank checks cannot run here, or NULL: they need the MPI worker,
 * srun's PMIx plugin, and mpirun for their local reference. */
static char *two_rank_skip(void)
{
    const char *b = getenv("TRAIND_BUILD");
    char *w = xasprintf("%s/traind-mpi-worker", b && *b ? b : "build");
    bool have = access(w, X_OK) == 0;
    free(w);
    if (!have)
        return xstrdup("no traind-mpi-worker built (Open MPI's libmpi-dev missing?)");
    const char *sh[] = {"/bin/sh", "-c", "command -v mpirun", NULL};
    if (tl_run(sh, NULL, 10) != 0)
        return xstrdup("no mpirun on PATH (openmpi-bin) for the local reference run");
    char *out = xasprintf("%s/mpi-list.out", g_cluster);
    const char *argv[] = {"/usr/bin/srun", "--mpi=list", NULL};
    tl_run(argv, out, 30);
    char *text = tl_read(out, NULL);
    free(out);
    bool pmix = text && strstr(text, "pmix");
    free(text);
    return pmix ? NULL : xstrdup("srun --mpi=list has no pmix plugin");
}

#define ADD(tc, fn)                                                                    \
    do {                                                                               \
        const char *only = getenv("TRAINDTEST_ONLY");                                  \
        if (!only || !*only || strcmp(only, #fn) == 0)                                 \
            tcase_add_test(tc, fn);                                                    \
    } while (0)

/* make check sets TRAIND_TEST_SKIP_SLOW: the one check that waits out a
 * real Slurm time limit (its minute is Slurm's smallest) runs in make test
 * only, and counts as skipped under the sanitizers. */
static Suite *suite(const char *mpi_skip, const char *oom_skip)
{
    const char *slow_env = getenv("TRAIND_TEST_SKIP_SLOW");
    const char *slow_skip = slow_env && *slow_env ? "waits a real Slurm minute: make test runs it" : NULL;
    Suite *s = suite_create("slurm");
    TCase *tc = tcase_create("slurm");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 400);
    ADD(tc, slurm_success_same_metrics);
    ADD(tc, slurm_cancel);
    ADD(tc, slurm_time_limit_checkpoint_requeue_resume);
    ADD(tc, slurm_daemon_restart_adopts);
    ADD(tc, slurm_lost_job_resumes_from_checkpoint);
    ADD(tc, slurm_pending_shows_reason);
    ADD(tc, slurm_unsatisfiable_request_fails_at_submission);
    ADD(tc, slurm_pending_for_ever_fails);
    if (!slow_skip)
        ADD(tc, slurm_real_time_limit_requeues);
    if (!mpi_skip) {
        ADD(tc, slurm_two_ranks_same_metrics);
        ADD(tc, slurm_two_ranks_cancel);
        ADD(tc, slurm_two_ranks_ask_their_threads);
    }
    ADD(tc, slurm_preempted_resumes);
    ADD(tc, slurm_killed_worker_resumes);
    ADD(tc, slurm_node_fail_fails);
    if (!oom_skip)
        ADD(tc, slurm_out_of_memory_fails);
    /* one line for all of them (scripts/run-tests.sh counts every one) */
    int n = (mpi_skip ? 3 : 0) + (oom_skip ? 1 : 0) + (slow_skip ? 1 : 0);
    if (n) {
        char why[512] = "";
        if (mpi_skip)
            snprintf(why + strlen(why), sizeof why - strlen(why), "slurm_two_ranks_*: %s; ", mpi_skip);
        if (oom_skip)
            snprintf(why + strlen(why), sizeof why - strlen(why), "slurm_out_of_memory_fails: %s; ", oom_skip);
        if (slow_skip)
            snprintf(why + strlen(why), sizeof why - strlen(why), "slurm_real_time_limit_requeues: %s; ", slow_skip);
        why[strlen(why) - 2] = '\0';
        printf("SKIPPED: %d checks: %s\n", n, why);
        fflush(stdout);
    }
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    char *why = start_cluster();
    if (why) {
        printf("SKIP: slurm cannot start here: %s\n", why);
        fflush(stdout);
        free(why);
        stop_cluster();
        return EXIT_SUCCESS;
    }
    /* cluster.sh could not give Slurm a memory cgroup: OUT_OF_MEMORY cannot happen */
    char *np = xasprintf("%s/no_oom", g_cluster), *no_oom = tl_read(np, NULL);
    free(np);
    if (no_oom)
        no_oom[strcspn(no_oom, "\n")] = '\0';
    char *no_mpi = two_rank_skip();
    int failed = tl_run_suite(suite(no_mpi, no_oom));
    free(no_mpi);
    free(no_oom);
    stop_cluster();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

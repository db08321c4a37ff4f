/*
 * test_daemon — the real traind ($TRAIND_BUILD/traind) on a temporary spool,
 * driven from outside as a user would: files renamed into incoming/, HTTP
 * over plain sockets, signals, kill -9 of a training process and of the
 * daemon itself.
 *
 * Every test starts its own daemon on 127.0.0.1:0 (it writes the bound
 * address to <spool>/traind.addr); the daemon is a child of the test
 * process and dies with it.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/config.h"
#include "traind/schedule.h"
#include "traind/util.h"
#include "../lib/tl.h"

/* A few thousand steps of a linear model: a job that ends in well under a second. */
static const char QUICK[] =
    "name: quick\n"
    "seed: 3\n"
    "model: {type: linear, input_dim: 6, output_dim: 3}\n"
    "data: {kind: synthetic, batch_size: 8, noise: 0.01}\n"
    "optimizer: {type: adamw, lr: 1.0e-2}\n"
    "schedule: {type: cosine, warmup_steps: 300, total_steps: 3000, min_lr_ratio: 0.1}\n"
    "train: {log_every: 50, checkpoint_every: 1000}\n";

/* Runs far longer than any test waits: cancelled or killed on purpose. */
static const char LONG_FMT[] =
    "name: %s\n"
    "seed: 1\n"
    "model: {type: mlp, input_dim: 8, hidden: [16], output_dim: 2}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: constant, total_steps: 50000000}\n"
    "train: {log_every: 100, checkpoint_every: 2000}\n";

/* Long enough to be killed mid-run, small checkpoint interval. */
static const char RESUME_FMT[] =
    "name: %s\n"
    "seed: 11\n"
    "model: {type: mlp, input_dim: 8, hidden: [32], output_dim: 4, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 16, noise: 0.05}\n"
    "optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0.01}\n"
    "schedule: {type: cosine, warmup_steps: 200, total_steps: 40000, min_lr_ratio: 0.05}\n"
    "train: {log_every: 100, checkpoint_every: 250}\n";

/* Invalid: the warmup on line 6. */
static const char BAD[] =
    "name: broken\n"
    "model: {type: linear, input_dim: 4, output_dim: 2}\n"
    "optimizer: {lr: 0.01}\n"
    "schedule:\n"
    "  total_steps: 100\n"
    "  warmup_steps: -5\n";

static char *g_dir;
static tl_daemon g_d;

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-itest");
}

static void teardown(void)
{
    tl_fixture_end(&g_dir, &g_d);
}

static char *spool_path(const char *rel)
{
    return xasprintf("%s/spool/%s", g_dir, rel);
}

static const char *first_error(const cJSON *job)
{
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(job, "errors"), 0);
    return tl_str(e, "message");
}

static bool pid_gone(pid_t pid, double timeout_s)
{
    double deadline = tl_now() + timeout_s;
    while (tl_now() < deadline) {
        if (!tl_pid_alive(pid))
            return true;
        /* a zombie of someone else's counts as gone once it is not running */
        char *p = xasprintf("/proc/%d/stat", (int)pid);
        char *s = tl_read(p, NULL);
        free(p);
        bool zombie = s && strstr(s, ") Z ");
        free(s);
        if (zombie)
            return true;
        tl_sleep_ms(20);
    }
    return false;
}

static void parse_cfg(const char *text, run_config *cfg)
{
    diag_list_t errs = DIAG_LIST_INIT;
    ck_assert_int_eq(cfg_parse(text, strlen(text), NULL, cfg, &errs), 0);
    diag_free(&errs);
}

static bool close_rel(double a, double b, double rel)
{
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) || a == b;
}

/* ------------------------------------------------------------------------ */

START_TEST(intake_by_rename)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    /* files intake must leave alone */
    const char *ignored[] = {".hidden.yaml", "draft.yaml.tmp", "upload.yaml.part", "notes.txt"};
    for (int i = 0; i < 4; i++) {
        char *p = xasprintf("%s/spool/incoming/%s", g_dir, ignored[i]);
        ck_assert_int_eq(tl_write(p, QUICK), 0);
        free(p);
    }
    tl_drop(g_d.spool, "quick.yaml", QUICK, 0);
    cJSON *j = tl_wait_state(&g_d, "quick", "succeeded", 30);

    run_config cfg;
    parse_cfg(QUICK, &cfg);
    ck_assert_str_eq(tl_str(j, "id"), "quick");
    ck_assert_str_eq(tl_str(j, "name"), "quick");
    ck_assert(tl_num(j, "step") == 3000);
    ck_assert(tl_num(j, "total_steps") == 3000);
    ck_assert(tl_num(j, "checkpoint_step") == 3000);
    ck_assert(tl_num(j, "restarts") == 0);
    /* lr: the rate the last update (0-based step 2999) used */
    double want = sched_lr(&cfg.sched, cfg.optim.lr, 2999);
    ck_assert_msg(close_rel(tl_num(j, "lr"), want, 1e-12), "lr %.17g, schedule says %.17g",
                  tl_num(j, "lr"), want);
    ck_assert(isfinite(tl_num(j, "loss")));
    ck_assert(isfinite(tl_num(j, "loss_avg")));
    ck_assert(isfinite(tl_num(j, "grad_norm")));
    ck_assert_ptr_nonnull(tl_str(j, "submitted_at"));
    ck_assert_ptr_nonnull(tl_str(j, "started_at"));
    ck_assert_ptr_nonnull(tl_str(j, "finished_at"));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "errors")), 0);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "config");
    ck_assert(tl_num(cJSON_GetObjectItemCaseSensitive(c, "schedule"), "total_steps") == 3000);
    cJSON_Delete(j);

    /* the file moved byte for byte; status.json on disk */
    char *p = spool_path("jobs/quick/config.yaml");
    char *text = tl_read(p, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, QUICK);
    free(text);
    free(p);
    /* status.json follows the API within moments (it is written off the loop) */
    p = spool_path("jobs/quick/status.json");
    bool on_disk = false;
    for (double deadline = tl_now() + 5; !on_disk && tl_now() < deadline; tl_sleep_ms(10)) {
        text = tl_read(p, NULL);
        cJSON *st = text ? cJSON_Parse(text) : NULL;
        on_disk = st && tl_str(st, "state") && !strcmp(tl_str(st, "state"), "succeeded");
        cJSON_Delete(st);
        free(text);
    }
    ck_assert_msg(on_disk, "status.json never said succeeded");
    free(p);
    p = spool_path("incoming/quick.yaml");
    ck_assert_int_ne(access(p, F_OK), 0);
    free(p);
    for (int i = 0; i < 4; i++) {
        char *q = xasprintf("%s/spool/incoming/%s", g_dir, ignored[i]);
        ck_assert_msg(access(q, F_OK) == 0, "%s was taken", ignored[i]);
        free(q);
    }

    /* metrics: every point's lr is the schedule's, thinning keeps the last */
    cJSON *m = tl_get_json(g_d.addr, "/jobs/quick/metrics?since=0", NULL);
    ck_assert_ptr_nonnull(m);
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(m, "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), 3000 / 50);
    const cJSON *pt;
    cJSON_ArrayForEach(pt, pts) {
        long s = (long)tl_num(pt, "step");
        ck_assert_int_eq(s % 50, 0);
        ck_assert_msg(close_rel(tl_num(pt, "lr"), sched_lr(&cfg.sched, cfg.optim.lr, s - 1), 1e-12),
                      "lr at step %ld", s);
    }
    cJSON_Delete(m);
    m = tl_get_json(g_d.addr, "/jobs/quick/metrics?since=1000&max=5", NULL);
    pts = cJSON_GetObjectItemCaseSensitive(m, "points");
    ck_assert_int_eq(cJSON_GetArraySize(pts), 5);
    ck_assert(tl_num(cJSON_GetArrayItem(pts, 0), "step") > 1000);
    ck_assert(tl_num(cJSON_GetArrayItem(pts, 4), "step") == 3000);
    cJSON_Delete(m);

    /* the same name again gets -2; a bad config is rejected, located, kept */
    tl_drop(g_d.spool, "quick.yaml", QUICK, 0);
    tl_drop(g_d.spool, "broken.yml", BAD, 0);
    cJSON_Delete(tl_wait_state(&g_d, "quick-2", "succeeded", 30));
    j = tl_wait_state(&g_d, "broken", "rejected", 10);
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "errors"), 0);
    ck_assert_str_eq(tl_str(e, "path"), "schedule.warmup_steps");
    ck_assert(tl_num(e, "line") == 6);
    ck_assert(tl_num(e, "column") > 0);
    cJSON_Delete(j);
    p = spool_path("jobs/broken/config.yaml");
    text = tl_read(p, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, BAD);
    free(text);
    free(p);

    /* the list: newest first, filters by state */
    cJSON *all = tl_get_json(g_d.addr, "/jobs", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(all), 3);
    cJSON_Delete(all);
    cJSON *ok = tl_get_json(g_d.addr, "/jobs?state=succeeded", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(ok), 2);
    ck_assert_str_eq(tl_str(cJSON_GetArrayItem(ok, 0), "id"), "quick-2");
    cJSON_Delete(ok);
    cJSON *status = tl_get_json(g_d.addr, "/status", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(status, "jobs")), 3);
    cJSON_Delete(status);
    cfg_free(&cfg);
}
END_TEST

START_TEST(post_needs_token)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    ck_assert_uint_eq(strlen(g_d.token), 64);
    char *p = spool_path("api.token");
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    free(p);

    tl_resp r;
    tl_post_job(&g_d, NULL, QUICK, strlen(QUICK), &r);
    ck_assert_int_eq(r.status, 401);
    tl_resp_free(&r);
    tl_post_job(&g_d, "wrong-token", QUICK, strlen(QUICK), &r);
    ck_assert_int_eq(r.status, 401);
    tl_resp_free(&r);

    char *id = tl_submit(&g_d, QUICK);
    ck_assert_str_eq(id, "quick");
    char *id2 = tl_submit(&g_d, QUICK);
    ck_assert_str_eq(id2, "quick-2");

    tl_post_job(&g_d, g_d.token, BAD, strlen(BAD), &r);
    ck_assert_int_eq(r.status, 400);
    cJSON *b = cJSON_Parse(r.body);
    ck_assert_ptr_nonnull(b);
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "errors"), 0);
    ck_assert_str_eq(tl_str(e, "path"), "schedule.warmup_steps");
    ck_assert(tl_num(e, "line") == 6);
    cJSON_Delete(b);
    tl_resp_free(&r);

    int status;
    cJSON *none = tl_get_json(g_d.addr, "/jobs/no-such-job", &status);
    ck_assert_ptr_null(none);
    ck_assert_int_eq(status, 404);
    tl_http(g_d.addr, "POST", "/jobs/no-such-job/cancel", g_d.token, NULL, 0, &r);
    ck_assert_int_eq(r.status, 404);
    tl_resp_free(&r);

    cJSON_Delete(tl_wait_state(&g_d, id, "succeeded", 30));
    cJSON_Delete(tl_wait_state(&g_d, id2, "succeeded", 30));
    tl_http(g_d.addr, "POST", "/jobs/quick/cancel", g_d.token, NULL, 0, &r);
    ck_assert_int_eq(r.status, 409);
    tl_resp_free(&r);
    /* the submitted body is kept as config.yaml */
    p = spool_path("jobs/quick/config.yaml");
    char *text = tl_read(p, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, QUICK);
    free(text);
    free(p);
    free(id);
    free(id2);
}
END_TEST

/* A POST /jobs answered 400 makes no job: the name stays free for the fixed
 * config, the job list does not grow.  A file dropped into incoming/ still
 * becomes a rejected job (its only report), and GET /jobs/ID/config gives
 * back the text that was refused, for the dashboard to show. */
START_TEST(refused_post_makes_no_job)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    static const char bad_demo[] = "name: bad-demo\n"
                                   "model: {type: linear, input_dim: 4, output_dim: 2}\n"
                                   "schedule: {total_steps: 100, warmup_steps: -5}\n";
    tl_resp r;
    tl_post_job(&g_d, g_d.token, bad_demo, strlen(bad_demo), &r);
    ck_assert_int_eq(r.status, 400);
    cJSON *b = cJSON_Parse(r.body);
    ck_assert_msg(b && !cJSON_GetObjectItem(b, "id"), "a 400 naming a job: %s", r.body);
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "errors"), 0);
    ck_assert_str_eq(tl_str(e, "path"), "schedule.warmup_steps");
    ck_assert(tl_num(e, "line") == 3);
    cJSON_Delete(b);
    tl_resp_free(&r);
    int status;
    cJSON *none = tl_get_json(g_d.addr, "/jobs/bad-demo", &status);
    ck_assert_ptr_null(none);
    ck_assert_int_eq(status, 404);
    cJSON *list = tl_get_json(g_d.addr, "/jobs", &status);
    ck_assert_int_eq(cJSON_GetArraySize(list), 0);
    cJSON_Delete(list);
    char *p = spool_path("jobs/bad-demo");
    ck_assert_msg(access(p, F_OK) != 0, "%s was claimed for a refused config", p);
    free(p);
    /* without a name, the ?name= stem is not taken either */
    static const char no_name[] = "model: {type: nosuch}\n";
    tl_http(g_d.addr, "POST", "/jobs?name=stemmed", g_d.token, no_name, strlen(no_name), &r);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);

    /* the fixed file gets the name */
    static const char fixed[] = "name: bad-demo\n"
                                "model: {type: linear, input_dim: 4, output_dim: 2}\n"
                                "schedule: {total_steps: 100, warmup_steps: 5}\n";
    char *id = tl_submit(&g_d, fixed);
    ck_assert_str_eq(id, "bad-demo");
    free(id);
    id = tl_submit(&g_d, "model: {type: linear, input_dim: 4, output_dim: 2}\nschedule: {total_steps: 10}\n");
    ck_assert_str_eq(id, "job");   /* the default stem, and the config's name is the id */
    cJSON *j = tl_wait_state(&g_d, id, "succeeded", 30);
    ck_assert_str_eq(tl_str(cJSON_GetObjectItem(j, "config"), "name"), "job");
    cJSON_Delete(j);
    free(id);

    /* incoming/: still a rejected job, its refused text served back */
    tl_drop(g_d.spool, "dropped.yaml", bad_demo, 0);
    j = tl_wait_state(&g_d, "dropped", "rejected", 10);   /* a rejected file is named by its stem */
    ck_assert_str_eq(tl_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "errors"), 0), "path"), "schedule.warmup_steps");
    cJSON_Delete(j);
    tl_http(g_d.addr, "GET", "/jobs/dropped/config", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, bad_demo);
    char *ct = tl_header(&r, "Content-Type");
    ck_assert_msg(ct && !strncmp(ct, "text/plain", 10), "%s", ct ? ct : "(none)");
    free(ct);
    tl_resp_free(&r);
    tl_http(g_d.addr, "GET", "/jobs/no-such-job/config", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 404);
    tl_resp_free(&r);
}
END_TEST

START_TEST(cancel_running_and_queued)
{
    tl_start_in(&g_d, g_dir, NULL, 20);   /* max_jobs 1 */
    char body[1024];
    snprintf(body, sizeof body, LONG_FMT, "long-a");
    char *a = tl_submit(&g_d, body);
    snprintf(body, sizeof body, LONG_FMT, "long-b");
    char *b = tl_submit(&g_d, body);
    cJSON *ja = tl_wait_running(&g_d, a, 0, 20);
    pid_t pid = (pid_t)tl_num(ja, "pid");
    cJSON_Delete(ja);
    cJSON *jb = tl_wait_state(&g_d, b, "queued", 5);
    ck_assert(tl_num(jb, "queue_position") == 1);
    cJSON_Delete(jb);

    tl_resp r;
    tl_http(g_d.addr, "POST", "/jobs/long-b/cancel", g_d.token, NULL, 0, &r);
    ck_assert_int_eq(r.status, 202);
    tl_resp_free(&r);
    cJSON_Delete(tl_wait_state(&g_d, b, "cancelled", 5));

    tl_http(g_d.addr, "POST", "/jobs/long-a/cancel", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 401);
    tl_resp_free(&r);
    tl_http(g_d.addr, "POST", "/jobs/long-a/cancel", g_d.token, NULL, 0, &r);
    ck_assert_int_eq(r.status, 202);
    tl_resp_free(&r);
    ja = tl_wait_state(&g_d, a, "cancelled", 30);
    /* it checkpointed where it stopped */
    ck_assert(tl_num(ja, "checkpoint_step") > 0);
    ck_assert(tl_num(ja, "checkpoint_step") >= tl_num(ja, "step") - 100);
    ck_assert_ptr_nonnull(tl_str(ja, "finished_at"));
    cJSON_Delete(ja);
    ck_assert(pid_gone(pid, 5));
    tl_http(g_d.addr, "POST", "/jobs/long-a/cancel", g_d.token, NULL, 0, &r);
    ck_assert_int_eq(r.status, 409);
    tl_resp_free(&r);
    char *p = spool_path("jobs/long-a/checkpoint.bin");
    ck_assert_int_eq(access(p, F_OK), 0);
    free(p);
    free(a);
    free(b);
}
END_TEST

START_TEST(killed_worker_fails_its_job_only)
{
    /* max_restarts 1: the first kill is survived, the second fails the job */
    char *cfgp = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(cfgp, "max_restarts: 1\nmax_jobs: 2\nmetrics_keep: 20\n"), 0);
    const char *args[] = {"--config", cfgp, NULL};
    tl_start_in(&g_d, g_dir, args, 20);
    char body[1024];
    snprintf(body, sizeof body, LONG_FMT, "victim");
    char *id = tl_submit(&g_d, body);

    cJSON *j = tl_wait_running(&g_d, id, 2000, 30);
    pid_t pid = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    /* resumed by a new process from its checkpoint */
    double deadline = tl_now() + 30;
    for (;;) {
        j = tl_get_json(g_d.addr, "/jobs/victim", NULL);
        if (j && !strcmp(tl_str(j, "state"), "running") && tl_num(j, "pid") != pid && tl_num(j, "restarts") == 1)
            break;
        cJSON_Delete(j);
        ck_assert_msg(tl_now() < deadline, "the job was not resumed after its process was killed");
        tl_sleep_ms(20);
    }
    ck_assert(tl_num(j, "crashes") == 1);
    ck_assert(tl_job_has_error(j, "killed by signal 9", NULL));
    pid = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);
    cJSON_Delete(tl_wait_running(&g_d, id, 0, 20));
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    j = tl_wait_state(&g_d, id, "failed", 20);
    ck_assert(tl_job_has_error(j, "training process killed by signal 9", NULL));
    ck_assert_ptr_nonnull(strstr(first_error(j) ? first_error(j) : "", "signal 9"));
    cJSON_Delete(j);

    /* the daemon is fine and still trains */
    int status;
    cJSON *h = tl_get_json(g_d.addr, "/healthz", &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(tl_str(h, "status"), "ok");
    cJSON_Delete(h);
    char *q = tl_submit(&g_d, QUICK);
    cJSON_Delete(tl_wait_state(&g_d, q, "succeeded", 30));
    ck_assert(tl_pid_alive(g_d.pid));
    /* metrics_keep 20: the 60 points of history are thinned, old ones first */
    cJSON *m = tl_get_json(g_d.addr, "/jobs/quick/metrics", NULL);
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(m, "points");
    int np = cJSON_GetArraySize(pts);
    ck_assert_int_le(np, 20);
    ck_assert_int_ge(np, 10);
    ck_assert(tl_num(cJSON_GetArrayItem(pts, 0), "step") == 50);
    ck_assert(tl_num(cJSON_GetArrayItem(pts, np - 1), "step") == 3000);
    ck_assert(tl_num(cJSON_GetArrayItem(pts, np - 1), "step") - tl_num(cJSON_GetArrayItem(pts, np - 2), "step") == 50);
    cJSON_Delete(m);
    free(q);
    free(id);
    free(cfgp);
}
END_TEST

START_TEST(daemon_killed_mid_run_resumes_exactly)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    char body[1024];
    snprintf(body, sizeof body, RESUME_FMT, "resume");
    char *id = tl_submit(&g_d, body);
    cJSON *j = tl_wait_running(&g_d, id, 1000, 30);
    pid_t worker = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);

    pid_t daemon = g_d.pid;
    ck_assert_int_eq(kill(daemon, SIGKILL), 0);
    waitpid(daemon, NULL, 0);
    g_d.pid = 0;
    ck_assert_msg(pid_gone(worker, 5), "the training process outlived its daemon");
    char *p = spool_path("jobs/resume/status.json");
    char *text = tl_read(p, NULL);
    cJSON *st = cJSON_Parse(text);
    ck_assert_str_eq(tl_str(st, "state"), "running");   /* as the kill left it */
    cJSON_Delete(st);
    free(text);
    free(p);

    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, NULL, 20);
    j = tl_wait_state(&g_d, id, "succeeded", 60);
    ck_assert(tl_num(j, "restarts") == 1);
    ck_assert(tl_num(j, "step") == 40000);
    double loss_resumed = tl_num(j, "loss");
    cJSON_Delete(j);

    /* the same config, never interrupted */
    snprintf(body, sizeof body, RESUME_FMT, "reference");
    char *ref = tl_submit(&g_d, body);
    j = tl_wait_state(&g_d, ref, "succeeded", 60);
    ck_assert(tl_num(j, "restarts") == 0);
    double loss_ref = tl_num(j, "loss");
    cJSON_Delete(j);
    ck_assert_msg(loss_resumed == loss_ref, "final loss %.17g after resume, %.17g uninterrupted", loss_resumed,
                  loss_ref);
    char *m1 = tl_job_metrics(g_d.spool, id), *m2 = tl_job_metrics(g_d.spool, ref);
    ck_assert_msg(strcmp(m1, m2) == 0, "metrics.jsonl differ between the resumed and the uninterrupted run");
    free(m1);
    free(m2);

    /* a corrupt status.json is rebuilt from config.yaml, never dropped */
    ck_assert_int_eq(WEXITSTATUS(tl_daemon_stop(&g_d, SIGTERM, 30)), 0);
    p = spool_path("jobs/reference/status.json");
    ck_assert_int_eq(tl_write(p, "{\"id\": \"reference\", \"state\": "), 0);
    free(p);
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, NULL, 20);
    j = tl_wait_state(&g_d, ref, "succeeded", 30);
    ck_assert(tl_num(j, "step") == 40000);
    ck_assert_msg(tl_num(j, "loss") == loss_ref, "loss %.17g vs %.17g", tl_num(j, "loss"), loss_ref);
    cJSON_Delete(j);
    j = tl_wait_state(&g_d, id, "succeeded", 5);
    ck_assert(tl_num(j, "restarts") == 1);
    cJSON_Delete(j);
    free(id);
    free(ref);
}
END_TEST

/* What intake derived from a config (total_steps, ranks, eval, tokens per
 * step) is kept in status.json: a restart takes it from there without
 * validating the config again.  A status.json from before tokens_per_step
 * was kept has it derived from config.yaml again; a job with no status.json
 * at all (killed right after its POST was answered) is rebuilt from
 * config.yaml and queues behind the jobs submitted before it. */
START_TEST(restart_keeps_what_intake_derived)
{
    const char *const one[] = {"--max-jobs", "1", NULL};
    char *spool = spool_path(""), *data = spool_path("data");
    ck_assert_int_eq(mkdir(spool, 0755), 0);
    ck_assert_int_eq(mkdir(data, 0755), 0);
    free(spool);
    char *text = xasprintf("%s/t.txt", data);
    ck_assert_int_eq(tl_write(text, "the quick brown fox jumps over the lazy dog, again and again and again.\n"), 0);
    tl_start_in(&g_d, g_dir, one, 20);
    char body[512];
    snprintf(body, sizeof body, LONG_FMT, "blocker");
    char *blocker = tl_submit(&g_d, body);
    cJSON_Delete(tl_wait_running(&g_d, blocker, 0, 30));
    static const char GPT[] = "name: waits\n"
                              "model: {type: gpt, context: 8, d_model: 8, layers: 1, heads: 1}\n"
                              "data: {kind: text, path: t.txt, batch_size: %d}\n"
                              "schedule: {total_steps: 50}\n";
    snprintf(body, sizeof body, GPT, 4);
    char *id = tl_submit(&g_d, body);
    cJSON *j = tl_wait_state(&g_d, id, "queued", 10);
    ck_assert_double_eq(tl_num(j, "tokens_per_step"), 32);
    cJSON_Delete(j);
    char *cfg_path = xasprintf("%s/spool/jobs/%s/config.yaml", g_dir, id);
    char *status_path = xasprintf("%s/spool/jobs/%s/status.json", g_dir, id);
    for (double end = tl_now() + 10; access(status_path, F_OK) != 0; tl_sleep_ms(20))
        ck_assert_msg(tl_now() < end, "no status.json for %s", id);

    static const int expect[] = {32, 16, 16};
    for (int round = 0; round < 3; round++) {
        tl_daemon_stop(&g_d, SIGKILL, 10);
        tl_daemon_free(&g_d);
        if (round == 0) {
            /* config.yaml changed behind traind's back (batch 4 -> 2): the
             * facts come from status.json, not from the file */
            snprintf(body, sizeof body, GPT, 2);
            ck_assert_int_eq(tl_write(cfg_path, body), 0);
        } else if (round == 1) {
            /* an older status.json, without the field */
            char *st = tl_read(status_path, NULL);
            cJSON *o = cJSON_Parse(st);
            ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(o, "tokens_per_step"));
            cJSON_DeleteItemFromObjectCaseSensitive(o, "tokens_per_step");
            char *out = cJSON_PrintUnformatted(o);
            ck_assert_int_eq(tl_write(status_path, out), 0);
            free(out);
            cJSON_Delete(o);
            free(st);
        } else {
            ck_assert_int_eq(unlink(status_path), 0);
        }
        tl_start_in(&g_d, g_dir, one, 20);
        /* strict FIFO: the blocker, submitted first, has the one slot again */
        cJSON_Delete(tl_wait_running(&g_d, blocker, 0, 30));
        j = tl_get_job(&g_d, id);
        char *log = tl_daemon_log(&g_d);
        ck_assert_msg(!strcmp(tl_str(j, "state"), "queued") && tl_num(j, "queue_position") == 1,
                      "round %d: %s is %s; log: %s", round, id, tl_str(j, "state"), log);
        ck_assert_msg(tl_num(j, "tokens_per_step") == expect[round], "round %d: tokens_per_step %g", round,
                      tl_num(j, "tokens_per_step"));
        free(log);
        cJSON_Delete(j);
    }
    free(cfg_path);
    free(status_path);
    free(text);
    free(data);
    free(id);
    free(blocker);
}
END_TEST

START_TEST(sigterm_checkpoints_and_exits_0)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    char body[1024];
    snprintf(body, sizeof body, LONG_FMT, "stopme");
    char *id = tl_submit(&g_d, body);
    cJSON *j = tl_wait_running(&g_d, id, 0, 20);
    pid_t worker = (pid_t)tl_num(j, "pid");
    cJSON_Delete(j);

    int st = tl_daemon_stop(&g_d, SIGTERM, 40);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "traind's wait status %d", st);
    ck_assert(pid_gone(worker, 2));
    char *p = spool_path("jobs/stopme/status.json");
    char *text = tl_read(p, NULL);
    cJSON *s = cJSON_Parse(text);
    ck_assert_str_eq(tl_str(s, "state"), "queued");
    long ckpt = (long)tl_num(s, "checkpoint_step");
    ck_assert_int_gt(ckpt, 0);
    cJSON_Delete(s);
    free(text);
    free(p);
    p = spool_path("traind.addr");
    ck_assert_int_ne(access(p, F_OK), 0);
    free(p);

    /* it resumes at the next start, from where it stopped */
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, NULL, 20);
    j = tl_wait_running(&g_d, id, ckpt, 20);
    ck_assert(tl_num(j, "restarts") == 1);
    ck_assert(tl_num(j, "step") >= (double)ckpt);
    cJSON_Delete(j);
    st = tl_daemon_stop(&g_d, SIGINT, 40);
    ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(id);
}
END_TEST

START_TEST(malformed_requests)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    tl_resp r;
    const char garbage[] = "GARBAGE\x01\x02 / NOT-HTTP\r\n\r\n";
    tl_http_raw(g_d.addr, garbage, sizeof garbage - 1, 5000, &r);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);

    char *big = xasprintf("POST /jobs HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
                          "Content-Length: 2000000\r\n\r\n", g_d.token);
    tl_http_raw(g_d.addr, big, strlen(big), 5000, &r);
    ck_assert_int_eq(r.status, 413);
    tl_resp_free(&r);
    free(big);

    size_t hl = 20000;
    char *hdr = xmalloc(hl + 200);
    int n = snprintf(hdr, 200, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ");
    memset(hdr + n, 'a', hl);
    memcpy(hdr + n + hl, "\r\n\r\n", 5);
    tl_http_raw(g_d.addr, hdr, strlen(hdr), 5000, &r);
    ck_assert_int_eq(r.status, 431);
    tl_resp_free(&r);
    free(hdr);

    /* a body that is not YAML at all, and one that is binary */
    const char *not_yaml = "{{{{ ::: not yaml";
    tl_post_job(&g_d, g_d.token, not_yaml, strlen(not_yaml), &r);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);
    tl_http(g_d.addr, "POST", "/jobs", g_d.token, "\0\xff\xfe", 3, &r);
    ck_assert_int_eq(r.status, 400);
    tl_resp_free(&r);

    int status;
    cJSON *h = tl_get_json(g_d.addr, "/healthz", &status);
    ck_assert_int_eq(status, 200);
    cJSON_Delete(h);
    ck_assert(tl_pid_alive(g_d.pid));
}
END_TEST

START_TEST(sighup_rereads_max_jobs)
{
    char *cfgp = xasprintf("%s/traind.yaml", g_dir);
    ck_assert_int_eq(tl_write(cfgp, "max_jobs: 1\n"), 0);
    const char *args[] = {"--config", cfgp, NULL};
    tl_start_in(&g_d, g_dir, args, 20);
    char body[1024];
    snprintf(body, sizeof body, LONG_FMT, "h1");
    char *a = tl_submit(&g_d, body);
    snprintf(body, sizeof body, LONG_FMT, "h2");
    char *b = tl_submit(&g_d, body);
    cJSON_Delete(tl_wait_running(&g_d, a, 0, 20));
    cJSON *j = tl_wait_state(&g_d, b, "queued", 5);
    cJSON_Delete(j);

    /* Each changed key is logged, old -> new; one that cannot
     * change while traind runs is named and kept */
    ck_assert_int_eq(tl_write(cfgp, "max_jobs: 2\nmax_trials: 5\n"), 0);
    kill(g_d.pid, SIGHUP);
    cJSON_Delete(tl_wait_running(&g_d, b, 0, 20));
    ck_assert_msg(tl_log_wait(&g_d, "SIGHUP: max_jobs: 1 -> 2", 5), "no change logged:\n%s", tl_read(g_d.log, NULL));
    ck_assert(tl_log_wait(&g_d, "SIGHUP: max_trials cannot change while traind runs (1000 -> 5); "
                                "keeping 1000 until the next start", 5));
    j = tl_get_json(g_d.addr, "/jobs/h1", NULL);
    ck_assert_str_eq(tl_str(j, "state"), "running");   /* nothing dropped */
    cJSON_Delete(j);

    /* a broken file on SIGHUP keeps the running configuration */
    ck_assert_int_eq(tl_write(cfgp, "max_jobs: nope\n"), 0);
    kill(g_d.pid, SIGHUP);
    tl_sleep_ms(200);
    ck_assert(tl_pid_alive(g_d.pid));
    int status;
    cJSON_Delete(tl_get_json(g_d.addr, "/healthz", &status));
    ck_assert_int_eq(status, 200);
    int st = tl_daemon_stop(&g_d, SIGTERM, 40);
    ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(a);
    free(b);
    free(cfgp);
}
END_TEST

/* Runs traind with args; returns its exit code, output in *out. */
static int run_traind(char **out, const char *const *args)
{
    char *log = xasprintf("%s/cli.txt", g_dir);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        (void)f;
        dup2(STDOUT_FILENO, STDERR_FILENO);
        const char *argv[16] = {tl_traind_path()};
        int n = 1;
        for (; args[n - 1] && n < 15; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    *out = tl_read(log, NULL);
    if (!*out)
        *out = xstrdup("");
    free(log);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(command_line)
{
    char *out;
    const char *help[] = {"--help", NULL};
    ck_assert_int_eq(run_traind(&out, help), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: traind"));
    free(out);
    const char *version[] = {"--version", NULL};
    ck_assert_int_eq(run_traind(&out, version), 0);
    ck_assert_ptr_nonnull(strstr(out, "traind "));
    free(out);
    const char *bogus[] = {"--bogus", NULL};
    ck_assert_int_eq(run_traind(&out, bogus), 2);
    free(out);
    const char *zero[] = {"--max-jobs", "0", NULL};
    ck_assert_int_eq(run_traind(&out, zero), 2);
    free(out);
    const char *listen[] = {"--listen", "nowhere", NULL};
    ck_assert_int_eq(run_traind(&out, listen), 2);
    free(out);

    char *cfgp = xasprintf("%s/bad.yaml", g_dir);
    ck_assert_int_eq(tl_write(cfgp, "max_jobs: 2\nmax_job: 3\n"), 0);
    char *spool = xasprintf("%s/spool", g_dir);
    const char *bad[] = {"--config", cfgp, "--spool", spool, NULL};
    ck_assert_int_eq(run_traind(&out, bad), 1);
    ck_assert_ptr_nonnull(strstr(out, ":2:1:"));
    ck_assert_ptr_nonnull(strstr(out, "did you mean 'max_jobs'"));
    ck_assert_ptr_nonnull(strstr(out, "<3>"));
    free(out);
    const char *missing[] = {"--config", "/nonexistent/traind.yaml", NULL};
    ck_assert_int_eq(run_traind(&out, missing), 1);
    free(out);

    /* the worker's own command line: numbers checked, nothing unknown */
    const char *w_threads[] = {"--worker", g_dir, "--threads", "12abc", NULL};
    ck_assert_int_eq(run_traind(&out, w_threads), 2);
    ck_assert_msg(strstr(out, "--threads must be a number from 1 to 1024, got \"12abc\""), "%s", out);
    free(out);
    const char *w_pause[] = {"--worker", g_dir, "--pause-at", "-5", NULL};
    ck_assert_int_eq(run_traind(&out, w_pause), 2);
    ck_assert_ptr_nonnull(strstr(out, "--pause-at must be a number"));
    free(out);
    const char *w_extra[] = {"--worker", g_dir, "--threads", "1", "stray", NULL};
    ck_assert_int_eq(run_traind(&out, w_extra), 2);
    ck_assert_ptr_nonnull(strstr(out, "unexpected argument \"stray\""));
    free(out);
    free(cfgp);
    free(spool);
}
END_TEST

/* A traind run from the source tree (build/traind) with no www_dir serves
 * the tree's own daemon/www: the dashboard answers at / without make
 * install or a config. */
START_TEST(dashboard_from_source_tree)
{
    char real[PATH_MAX];
    if (!realpath(tl_traind_path(), real)) {
        tl_skip("dashboard_from_source_tree: %s: %s", tl_traind_path(), strerror(errno));
        return;
    }
    char *slash = strrchr(real, '/');
    *slash = '\0';
    char *page = xasprintf("%s/../daemon/www/index.html", real);
    bool in_tree = access(page, R_OK) == 0;
    char *installed = xasprintf("%s/../share/traind/www", real);
    bool is_installed = access(installed, X_OK) == 0;
    free(page);
    free(installed);
    if (!in_tree || is_installed) {
        tl_skip("dashboard_from_source_tree: %s is not a traind in a source tree", tl_traind_path());
        return;
    }
    tl_start_in(&g_d, g_dir, NULL, 20);
    tl_resp r;
    ck_assert_int_eq(tl_http(g_d.addr, "GET", "/", NULL, NULL, 0, &r), 0);
    ck_assert_msg(r.status == 200, "GET / from build/traind: %d", r.status);
    ck_assert_msg(r.body && strstr(r.body, "<html"), "GET / is not the dashboard: %.200s", r.body ? r.body : "");
    tl_resp_free(&r);
}
END_TEST

START_TEST(diverging_job_fails_with_cause)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    const char *nan_cfg =
        "name: diverge\n"
        "model: {type: linear, input_dim: 4, output_dim: 2}\n"
        "data: {kind: synthetic, batch_size: 4}\n"
        "optimizer: {type: sgd, lr: 1.0e+12}\n"
        "schedule: {type: constant, total_steps: 5000}\n"
        "train: {log_every: 1}\n";
    char *id = tl_submit(&g_d, nan_cfg);
    cJSON *j = tl_wait_state(&g_d, id, "failed", 30);
    const char *msg = first_error(j);
    ck_assert_msg(msg && (strstr(msg, "is NaN at step") || strstr(msg, "is Inf at step")), "error: %s",
                  msg ? msg : "(none)");
    ck_assert(tl_num(j, "step") < 5000);
    ck_assert_ptr_nonnull(tl_str(j, "finished_at"));
    cJSON_Delete(j);
    /* the failure is not the daemon's: it goes on */
    char *q = tl_submit(&g_d, QUICK);
    cJSON_Delete(tl_wait_state(&g_d, q, "succeeded", 30));
    free(q);
    free(id);
}
END_TEST

/* An ended job's history, read back from its metrics.jsonl once the job is
 * compacted, pages out every point: the start-up shortcut (the last 8 MiB
 * read, the rest sampled) is not an answer's.  The file here is ~11 MiB. */
START_TEST(ended_job_metrics_pages_every_point)
{
    const long steps = 90000;
    tl_start_in(&g_d, g_dir, NULL, 20);
    char *cfg = xasprintf("name: long-history\n"
                          "model: {type: linear, input_dim: 4, output_dim: 2}\n"
                          "data: {kind: synthetic, batch_size: 4}\n"
                          "optimizer: {lr: 0.001}\n"
                          "schedule: {type: constant, total_steps: %ld}\n"
                          "train: {log_every: 1, checkpoint_every: 100000000}\n", steps);
    char *id = tl_submit(&g_d, cfg);
    cJSON_Delete(tl_wait_state(&g_d, id, "succeeded", 90));
    char *mp = xasprintf("%s/spool/jobs/%s/metrics.jsonl", g_dir, id);
    struct stat st;
    ck_assert_int_eq(stat(mp, &st), 0);
    ck_assert_msg(st.st_size > (8 << 20), "metrics.jsonl is only %lld bytes", (long long)st.st_size);
    tl_sleep_ms(1500);   /* compacted at a tick: its history is then read from the file */
    long since = -1, got = 0, expect = 1;
    for (;;) {
        char *path = since < 0 ? xasprintf("/jobs/%s/metrics?limit=10000", id)
                               : xasprintf("/jobs/%s/metrics?limit=10000&since=%ld", id, since);
        int status;
        cJSON *d = tl_get_json(g_d.addr, path, &status);
        free(path);
        ck_assert_msg(d != NULL, "GET metrics: %d", status);
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(d, "points"))
        {
            long s = (long)tl_num(p, "step");
            ck_assert_msg(s == expect, "point %ld has step %ld, want %ld", got, s, expect);
            expect++;
            got++;
        }
        const cJSON *next = cJSON_GetObjectItem(d, "next_since");
        bool more = cJSON_IsNumber(next);
        if (more)
            since = (long)next->valuedouble;
        cJSON_Delete(d);
        if (!more)
            break;
    }
    ck_assert_int_eq(got, steps);
    free(mp);
    free(id);
    free(cfg);
}
END_TEST

/* Everything the daemon told systemd so far (NUL-separated messages joined by '|'). */
static void read_notifications(int fd, char *out, size_t outlen)
{
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        size_t l = strlen(out);
        snprintf(out + l, outlen - l, "%s|", buf);
    }
}

START_TEST(startup_scan_and_systemd_notify)
{
    /* a file already waiting in incoming/ is taken at start-up */
    char *inc = spool_path("incoming");
    ck_assert_int_eq(mkdir_p(inc, 0755), 0);
    char *early_spool = spool_path("");
    tl_drop(early_spool, "early.yaml", QUICK, 0);
    free(early_spool);
    /* waiting for a while already: taken at once, before the unread
     * notification socket's queue (10 datagrams) fills and later ones are
     * dropped (traind never waits on it) */
    char *early = spool_path("incoming/early.yaml");
    struct timeval old[2] = {{time(NULL) - 60, 0}, {time(NULL) - 60, 0}};
    ck_assert_int_eq(utimes(early, old), 0);
    free(early);
    free(inc);

    char *sock = xasprintf("%s/notify.sock", g_dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    setenv("NOTIFY_SOCKET", sock, 1);
    setenv("WATCHDOG_USEC", "200000", 1);
    tl_start_in(&g_d, g_dir, NULL, 20);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");

    cJSON *j = tl_wait_state(&g_d, "early", "succeeded", 30);
    cJSON_Delete(j);
    tl_sleep_ms(300);   /* a watchdog period */
    char got[16384] = "";
    read_notifications(fd, got, sizeof got);
#ifdef HAVE_LIBSYSTEMD
    ck_assert_msg(strstr(got, "READY=1") != NULL, "notifications: %s", got);
    ck_assert_msg(strstr(got, "WATCHDOG=1") != NULL, "notifications: %s", got);
    ck_assert_msg(strstr(got, "STATUS=0 running, 0 queued, 1 done") != NULL, "notifications: %s", got);
#endif
    int st = tl_daemon_stop(&g_d, SIGTERM, 40);
    ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    read_notifications(fd, got, sizeof got);
#ifdef HAVE_LIBSYSTEMD
    ck_assert_msg(strstr(got, "STOPPING=1") != NULL, "notifications: %s", got);
#endif
    close(fd);
    free(sock);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("daemon");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, command_line);
    tcase_add_test(tc, dashboard_from_source_tree);
    tcase_add_test(tc, intake_by_rename);
    tcase_add_test(tc, post_needs_token);
    tcase_add_test(tc, cancel_running_and_queued);
    tcase_add_test(tc, killed_worker_fails_its_job_only);
    tcase_add_test(tc, daemon_killed_mid_run_resumes_exactly);
    tcase_add_test(tc, restart_keeps_what_intake_derived);
    tcase_add_test(tc, sigterm_checkpoints_and_exits_0);
    tcase_add_test(tc, malformed_requests);
    tcase_add_test(tc, sighup_rereads_max_jobs);
    tcase_add_test(tc, startup_scan_and_systemd_notify);
    tcase_add_test(tc, diverging_job_fails_with_cause);
    tcase_add_test(tc, ended_job_metrics_pages_every_point);
    suite_add_tcase(s, tc);
    TCase *rf = tcase_create("refused");
    tcase_add_checked_fixture(rf, setup, teardown);
    tcase_set_timeout(rf, 60);
    tcase_add_test(rf, refused_post_makes_no_job);
    suite_add_tcase(s, rf);
    return s;
}

int main(void)
{
    /* the daemons under test must not talk to a service manager of ours */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    int failed = tl_run_suite(suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * test_forks — forks through the real traind (traind(8) HTTP API): POST /jobs/{id}/fork,
 * `trainctl fork`, GET /jobs/{id}/checkpoints.
 *
 * The numbers are the point: a fork that changes nothing trains bit for bit
 * as its parent did (metrics.jsonl equal but for "time"); a warmup-stable-
 * decay cooldown branched where an independent run's decay begins is that
 * run, bit for bit; a fork queued or running when traind is SIGKILLed
 * resumes and still ends with the same numbers.  Refusals: no kept
 * checkpoint at the step (409 listing the steps), a change to the model
 * (400 naming the key), bad bodies, no token, no parent.
 */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "traind/util.h"
#include "../lib/tl.h"

/* One stable WSD run, %ld steps (decay over the last 100), a kept
 * checkpoint every 100 steps. */
static const char WSD_FMT[] =
    "name: %s\n"
    "seed: 2\n"
    "model: {type: mlp, input_dim: 6, hidden: [16], output_dim: 3, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 3.0e-3, grad_clip: 1.0}\n"
    "schedule: {type: warmup_stable_decay, warmup_steps: 10, total_steps: %ld, decay_steps: 100}\n"
    "train: {log_every: 10, checkpoint_every: %ld, keep_every: 100}\n";

static char *g_dir;
static tl_daemon g_d;

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-fork");
}

static void teardown(void)
{
    tl_fixture_end(&g_dir, &g_d);
}

static char *wsd(const char *name, long steps, long ckpt_every)
{
    return xasprintf(WSD_FMT, name, steps, ckpt_every);
}

/* POST /jobs/{parent}/fork with body; the status, and the answer in *out (malloc'd). */
static int fork_req(const char *parent, const char *body, const char *token, char **out)
{
    char *path = xasprintf("/jobs/%s/fork", parent);
    int st = tl_post(&g_d, path, token, body, out);
    free(path);
    return st;
}

static char *fork_ok(const char *parent, const char *body)
{
    char *ans;
    int st = fork_req(parent, body, g_d.token, &ans);
    ck_assert_msg(st == 201, "fork of %s with %s: %d %s", parent, body, st, ans);
    cJSON *j = cJSON_Parse(ans);
    char *id = xstrdup(tl_str(j, "id"));
    cJSON_Delete(j);
    free(ans);
    return id;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ------------------------------------------------------------------------ */

START_TEST(unchanged_fork_is_bit_identical)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    char *cfg = wsd("stable", 1000, 0);
    char *parent = tl_submit(&g_d, cfg);
    cJSON *pj = tl_wait_state(&g_d, parent, "succeeded", 60);
    double ploss = tl_num(pj, "loss");
    cJSON_Delete(pj);

    /* the kept checkpoints: every 100 steps, and checkpoint.bin at the end */
    char *path = xasprintf("/jobs/%s/checkpoints", parent);
    int st;
    cJSON *list = tl_get_json(g_d.addr, path, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(cJSON_GetArraySize(list), 11);
    for (int i = 0; i < 10; i++) {
        const cJSON *e = cJSON_GetArrayItem(list, i);
        ck_assert(tl_num(e, "step") == 100.0 * (i + 1));
        ck_assert(tl_num(e, "bytes") > 0);
        ck_assert_ptr_nonnull(tl_str(e, "time"));
        ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "latest")));
    }
    const cJSON *last = cJSON_GetArrayItem(list, 10);
    ck_assert(tl_num(last, "step") == 1000 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(last, "latest")));
    cJSON_Delete(list);
    free(path);
    cJSON *none = tl_get_json(g_d.addr, "/jobs/nosuch/checkpoints", &st);
    ck_assert_int_eq(st, 404);
    cJSON_Delete(none);

    char *child = fork_ok(parent, "{\"at_step\": 600}");
    cJSON *cj = tl_wait_state(&g_d, child, "succeeded", 60);
    ck_assert_str_eq(tl_str(cj, "parent"), parent);
    ck_assert(tl_num(cj, "forked_at") == 600);
    ck_assert_str_eq(tl_str(cj, "name"), "stable-fork-600");
    ck_assert_msg(tl_num(cj, "loss") == ploss, "fork loss %.17g, parent %.17g", tl_num(cj, "loss"), ploss);
    cJSON_Delete(cj);
    char *a = tl_job_metrics(g_d.spool, parent), *b = tl_job_metrics(g_d.spool, child);
    ck_assert_int_eq(lines(a), 100);
    ck_assert_msg(strcmp(a, b) == 0, "the unchanged fork's metrics.jsonl differs from its parent's");
    /* GET /compare: one grid, the two curves equal (the fork's history is the parent's up to 600) */
    char *cp = xasprintf("/compare?ids=%s,%s&max=50", parent, child);
    cJSON *cmp = tl_get_json(g_d.addr, cp, &st);
    free(cp);
    ck_assert_int_eq(st, 200);
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(cmp, "steps");
    ck_assert_int_eq(cJSON_GetArraySize(steps), 50);
    ck_assert(cJSON_GetArrayItem(steps, 0)->valuedouble == 10 && cJSON_GetArrayItem(steps, 49)->valuedouble == 1000);
    const cJSON *cj0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cmp, "jobs"), 0);
    const cJSON *cj1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cmp, "jobs"), 1);
    ck_assert(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(cj0, "loss"), cJSON_GetObjectItemCaseSensitive(cj1, "loss"), 1));
    ck_assert(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(cj0, "lr"), cJSON_GetObjectItemCaseSensitive(cj1, "lr"), 1));
    ck_assert(tl_num(cj0, "final_loss") == ploss);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cj0, "loss")), 50);
    cJSON_Delete(cmp);
    cJSON *bad = tl_get_json(g_d.addr, "/compare?ids=nosuch", &st);
    ck_assert_int_eq(st, 404);
    cJSON_Delete(bad);
    bad = tl_get_json(g_d.addr, "/compare", &st);
    ck_assert_int_eq(st, 400);
    cJSON_Delete(bad);
    /* trainctl compare: the table names what differs (only the name here: nothing), the plots */
    char *spool = xasprintf("%s/spool", g_dir), *out = xasprintf("%s/cmp.txt", g_dir);
    const char *argv[] = {tl_trainctl_path(), "compare", parent, child, "--spool", spool, NULL};
    ck_assert_int_eq(tl_run(argv, out, 30), 0);
    char *text = tl_read(out, NULL);
    ck_assert_msg(strstr(text, "final loss") && strstr(text, "\nloss\n") && strstr(text, "\nlr\n") &&
                      strstr(text, child),
                  "trainctl compare: %s", text);
    free(text);
    const char *argv2[] = {tl_trainctl_path(), "compare", parent, child, "--json", "--spool", spool, NULL};
    ck_assert_int_eq(tl_run(argv2, out, 30), 0);
    text = tl_read(out, NULL);
    cJSON *cjs = cJSON_Parse(text);
    ck_assert_msg(cjs != NULL, "trainctl compare --json: %s", text);
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(cjs, "runs");
    ck_assert_int_eq(cJSON_GetArraySize(runs), 2);
    ck_assert(tl_num(cJSON_GetArrayItem(runs, 1), "final_loss") == ploss);
    ck_assert(tl_num(cJSON_GetArrayItem(runs, 1), "steps") == 1000);
    cJSON_Delete(cjs);
    free(text);
    const char *argv3[] = {tl_trainctl_path(), "compare", "nosuch", "--spool", spool, NULL};
    ck_assert_int_eq(tl_run(argv3, out, 30), 1);
    free(spool);
    free(out);

    /* its job object survives a restart */
    ck_assert_int_eq(WEXITSTATUS(tl_daemon_stop(&g_d, SIGTERM, 30)), 0);
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, NULL, 20);
    cj = tl_wait_state(&g_d, child, "succeeded", 10);
    ck_assert_str_eq(tl_str(cj, "parent"), parent);
    ck_assert(tl_num(cj, "forked_at") == 600);
    cJSON_Delete(cj);
    pj = tl_wait_state(&g_d, parent, "succeeded", 10);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(pj, "parent")));
    cJSON_Delete(pj);
    free(a);
    free(b);
    free(cfg);
    free(parent);
    free(child);
}
END_TEST

START_TEST(cooldown_forks_equal_independent_runs)
{
    const char *const two[] = {"--max-jobs", "2", NULL};
    tl_start_in(&g_d, g_dir, two, 20);
    char *cfg = wsd("stable", 1000, 0);
    char *parent = tl_submit(&g_d, cfg);
    cJSON_Delete(tl_wait_state(&g_d, parent, "succeeded", 60));
    static const long total[] = {500, 800};
    for (int k = 0; k < 2; k++) {
        char body[160], name[32];
        snprintf(body, sizeof body, "{\"at_step\": %ld, \"set\": {\"schedule.total_steps\": %ld}, \"name\": \"cool%ld\"}",
                 total[k] - 100, total[k], total[k]);
        char *fork = fork_ok(parent, body);
        snprintf(name, sizeof name, "indep%ld", total[k]);
        char *icfg = wsd(name, total[k], 0);
        char *indep = tl_submit(&g_d, icfg);
        cJSON *fj = tl_wait_state(&g_d, fork, "succeeded", 60), *ij = tl_wait_state(&g_d, indep, "succeeded", 60);
        char want[32];
        snprintf(want, sizeof want, "cool%ld", total[k]);
        ck_assert_str_eq(tl_str(fj, "name"), want);
        ck_assert_msg(tl_num(fj, "loss") == tl_num(ij, "loss"), "cooldown %ld: fork %.17g, independent %.17g",
                      total[k], tl_num(fj, "loss"), tl_num(ij, "loss"));
        char *a = tl_job_metrics(g_d.spool, fork), *b = tl_job_metrics(g_d.spool, indep);
        ck_assert_int_eq(lines(a), (int)(total[k] / 10));
        ck_assert_msg(strcmp(a, b) == 0, "cooldown %ld: the fork's metrics.jsonl differs from the independent run's",
                      total[k]);
        cJSON_Delete(fj);
        cJSON_Delete(ij);
        free(a);
        free(b);
        free(icfg);
        free(indep);
        free(fork);
    }
    free(cfg);
    free(parent);
}
END_TEST

START_TEST(refusals)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    char *cfg = wsd("stable", 300, 0);
    char *parent = tl_submit(&g_d, cfg);
    cJSON_Delete(tl_wait_state(&g_d, parent, "succeeded", 60));
    char *ans;

    /* no kept checkpoint at 150: 409 with the steps that have one */
    ck_assert_int_eq(fork_req(parent, "{\"at_step\": 150}", g_d.token, &ans), 409);
    cJSON *j = cJSON_Parse(ans);
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(j, "steps");
    ck_assert_int_eq(cJSON_GetArraySize(steps), 4);   /* 100, 200, 300 kept; 300 checkpoint.bin */
    ck_assert(cJSON_GetArrayItem(steps, 0)->valuedouble == 100);
    ck_assert_ptr_nonnull(strstr(tl_str(j, "error"), "150"));
    cJSON_Delete(j);
    free(ans);

    /* a change to the model: 400 naming the key */
    ck_assert_int_eq(fork_req(parent, "{\"at_step\": 200, \"set\": [\"model.hidden=[32]\"]}", g_d.token, &ans), 400);
    ck_assert_msg(strstr(ans, "model.hidden") != NULL, "400 without the key: %s", ans);
    free(ans);
    /* total_steps below the fork step */
    ck_assert_int_eq(fork_req(parent, "{\"at_step\": 200, \"set\": {\"schedule.total_steps\": 100}}", g_d.token, &ans),
                     400);
    free(ans);
    /* bodies */
    static const char *const bad[] = {"", "[]", "{\"at_step\": -1}", "{\"at_step\": 1.5}", "{\"at\": 100}",
                                      "{\"at_step\": 100, \"set\": 3}", "{\"at_step\": 100, \"set\": [\"noequals\"]}",
                                      "{\"at_step\": 100, \"name\": 7}", "{\"at_step\": 100, \"set\": {\"k\": null}}",
                                      "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = fork_req(parent, bad[i], g_d.token, &ans);
        ck_assert_msg(st == 400, "body %s: %d %s", bad[i], st, ans);
        free(ans);
    }
    ck_assert_int_eq(fork_req(parent, "{\"at_step\": 100}", NULL, NULL), 401);
    ck_assert_int_eq(fork_req(parent, "{\"at_step\": 100}", "wrong", NULL), 401);
    ck_assert_int_eq(fork_req("nosuch", "{\"at_step\": 100}", g_d.token, NULL), 404);
    tl_resp r;
    tl_http(g_d.addr, "GET", "/jobs/x/fork", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 405);
    tl_resp_free(&r);

    /* from the final checkpoint.bin of an ended job (not kept under checkpoints/): fine */
    char *tail = fork_ok(parent, "{\"at_step\": 300, \"set\": {\"schedule.total_steps\": 400}}");
    cJSON *tj = tl_wait_state(&g_d, tail, "succeeded", 60);
    ck_assert(tl_num(tj, "step") == 400);
    cJSON_Delete(tj);

    /* trainctl fork */
    char *spool = xasprintf("%s/spool", g_dir), *out = xasprintf("%s/out.txt", g_dir);
    const char *argv[] = {tl_trainctl_path(), "fork", parent, "--at", "200", "--set", "optimizer.lr=1e-3",
                          "--name", "cli-fork", "--spool", spool, NULL};
    ck_assert_int_eq(tl_run(argv, out, 30), 0);
    char *text = tl_read(out, NULL);
    text[strcspn(text, "\n")] = '\0';
    cJSON *cj = tl_wait_state(&g_d, text, "succeeded", 60);
    ck_assert_str_eq(tl_str(cj, "name"), "cli-fork");
    ck_assert(tl_num(cj, "forked_at") == 200);
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cj, "config"), "optimizer");
    ck_assert(tl_num(opt, "lr") == 1e-3);
    cJSON_Delete(cj);
    free(text);
    const char *argv2[] = {tl_trainctl_path(), "fork", parent, "--at", "250", "--spool", spool, NULL};
    ck_assert_int_eq(tl_run(argv2, out, 30), 1);
    text = tl_read(out, NULL);
    ck_assert_msg(strstr(text, "kept checkpoints") && strstr(text, "100 200 300"), "trainctl fork 409: %s", text);
    free(text);
    const char *argv3[] = {tl_trainctl_path(), "fork", parent, "--spool", spool, NULL};
    ck_assert_int_eq(tl_run(argv3, out, 30), 2);
    free(spool);
    free(out);
    free(tail);
    free(cfg);
    free(parent);
}
END_TEST

/* kill -9 of traind with a fork queued (behind its running parent), then
 * with it running: it resumes and ends as an independent run of its config. */
/* The points of GET /jobs/{id}/metrics up to step (all when step < 0), as
 * "step loss\n" lines. */
static char *points_text(const char *id, long upto)
{
    char *path = xasprintf("/jobs/%s/metrics?max=100000", id);
    int st;
    cJSON *m = tl_get_json(g_d.addr, path, &st);
    free(path);
    ck_assert_int_eq(st, 200);
    size_t cap = 1 << 16, len = 0;
    char *out = xcalloc(1, cap);
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(m, "points")) {
        if (upto >= 0 && tl_num(p, "step") > upto)
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%.0f %.9g\n", tl_num(p, "step"), tl_num(p, "loss"));
        ck_assert(len < cap);
    }
    cJSON_Delete(m);
    return out;
}

/* A fork's history starts with its parent's points up to the fork step
 * before it has trained a step: while it waits in the queue behind another
 * job (its parent has ended, so the parent's history is on disk only), and
 * after a restart.  It was empty until the fork started, and then began at
 * the fork step (the dashboard's Compare drew the fork from there). */
START_TEST(queued_fork_history_is_its_parents)
{
    tl_start_in(&g_d, g_dir, NULL, 20);   /* max_jobs 1 */
    char *cfg = wsd("base", 1000, 0), *bcfg = wsd("blocker", 100000000, 0);
    char *parent = tl_submit(&g_d, cfg);
    cJSON_Delete(tl_wait_state(&g_d, parent, "succeeded", 60));
    char *blocker = tl_submit(&g_d, bcfg);
    cJSON_Delete(tl_wait_state(&g_d, blocker, "running", 60));
    char *child = fork_ok(parent, "{\"at_step\": 600}");
    char *want = points_text(parent, 600);
    ck_assert_int_eq(lines(want), 60);
    for (int round = 0; round < 2; round++) {
        char *jp = xasprintf("/jobs/%s", child);
        cJSON *cj = tl_get_json(g_d.addr, jp, NULL);
        free(jp);
        ck_assert_str_eq(tl_str(cj, "state"), "queued");
        cJSON_Delete(cj);
        /* the history is read on the pool: a moment after the 201 or the start */
        char *got = NULL;
        for (double end = tl_now() + 10; !got || (strcmp(got, want) && tl_now() < end); tl_sleep_ms(20)) {
            free(got);
            got = points_text(child, -1);
        }
        ck_assert_msg(!strcmp(got, want), "round %d: the queued fork's history:\n%.400s\nits parent's to step 600:\n%.400s",
                      round, got, want);
        free(got);
        if (round == 0) {
            ck_assert_int_eq(tl_daemon_stop(&g_d, SIGTERM, 30), 0);
            tl_daemon_free(&g_d);
            tl_start_in(&g_d, g_dir, NULL, 20);
            cJSON_Delete(tl_wait_state(&g_d, blocker, "running", 60));
        }
    }
    free(want);
    free(child);
    free(blocker);
    free(parent);
    free(bcfg);
    free(cfg);
}
END_TEST

START_TEST(fork_survives_kill9)
{
    tl_start_in(&g_d, g_dir, NULL, 20);   /* max_jobs 1: the fork waits behind its parent */
    char *cfg = wsd("stable", 40000, 200);
    char *parent = tl_submit(&g_d, cfg);
    long ck = 300;
    cJSON_Delete(tl_wait_job(g_d.addr, parent, tl_job_running_with, &ck, 60));
    char *fork = fork_ok(parent, "{\"at_step\": 300, \"set\": {\"schedule.total_steps\": 30000}}");
    cJSON *fj = tl_wait_state(&g_d, fork, "queued", 5);
    cJSON_Delete(fj);
    /* kill -9 while queued */
    ck_assert_int_eq(kill(g_d.pid, SIGKILL), 0);
    waitpid(g_d.pid, NULL, 0);
    g_d.pid = 0;
    tl_daemon_free(&g_d);
    tl_sleep_ms(300);
    tl_start_in(&g_d, g_dir, NULL, 20);
    /* queued again (it may start first: a job whose status.json was not
     * written yet is rebuilt from its config with the order it has on disk) */
    char *fpath = xasprintf("/jobs/%s", fork);
    fj = tl_get_json(g_d.addr, fpath, NULL);
    free(fpath);
    ck_assert_ptr_nonnull(fj);
    ck_assert_str_eq(tl_str(fj, "parent"), parent);
    ck_assert(tl_num(fj, "forked_at") == 300);
    ck_assert_msg(!strcmp(tl_str(fj, "state"), "queued") || !strcmp(tl_str(fj, "state"), "running"), "fork %s",
                  tl_str(fj, "state"));
    cJSON_Delete(fj);
    /* the parent goes; the fork runs; kill -9 while it runs, past its own first checkpoint */
    tl_resp r;
    char *cpath = xasprintf("/jobs/%s/cancel", parent);
    tl_http(g_d.addr, "POST", cpath, g_d.token, NULL, 0, &r);
    ck_assert_int_eq(r.status, 202);   /* queued or running: cancelled either way */
    tl_resp_free(&r);
    free(cpath);
    ck = 2000;
    fj = tl_wait_job(g_d.addr, fork, tl_job_running_with, &ck, 60);
    ck_assert_ptr_nonnull(fj);
    pid_t w = (pid_t)tl_num(fj, "pid");
    cJSON_Delete(fj);
    ck_assert_int_eq(kill(g_d.pid, SIGKILL), 0);
    waitpid(g_d.pid, NULL, 0);
    g_d.pid = 0;
    tl_daemon_free(&g_d);
    for (int i = 0; i < 250 && tl_pid_alive(w); i++)
        tl_sleep_ms(20);
    tl_start_in(&g_d, g_dir, NULL, 20);
    fj = tl_wait_state(&g_d, fork, "succeeded", 90);
    ck_assert(tl_num(fj, "restarts") >= 1);
    double floss = tl_num(fj, "loss");
    cJSON_Delete(fj);
    /* the same cooldown, never forked nor interrupted: 30000 steps decaying over the last 100 */
    char *icfg = wsd("indep", 30000, 200);
    char *indep = tl_submit(&g_d, icfg);
    cJSON *ij = tl_wait_state(&g_d, indep, "succeeded", 120);
    ck_assert_msg(tl_num(ij, "loss") == floss, "fork %.17g, independent %.17g", floss, tl_num(ij, "loss"));
    cJSON_Delete(ij);
    char *a = tl_job_metrics(g_d.spool, fork), *b = tl_job_metrics(g_d.spool, indep);
    ck_assert_msg(strcmp(a, b) == 0, "the resumed fork's metrics.jsonl differs from the independent run's");
    free(a);
    free(b);
    free(icfg);
    free(indep);
    free(fork);
    free(cfg);
    free(parent);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("forks");
    TCase *tc = tcase_create("forks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, unchanged_fork_is_bit_identical);
    tcase_add_test(tc, cooldown_forks_equal_independent_runs);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, fork_survives_kill9);
    tcase_add_test(tc, queued_fork_history_is_its_parents);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    return tl_run_suite(suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

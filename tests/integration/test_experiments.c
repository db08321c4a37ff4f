/*
 * test_experiments — sweeps run by the real traind (traind-run.yaml(5) EXPERIMENTS): POST
 * /experiments, GET /experiments[/{id}], POST /experiments/{id}/cancel,
 * `trainctl submit` of a sweep file.
 *
 * A grid runs every trial as an ordinary job naming its experiment and
 * values, never more than max_concurrent at once; the experiment lists its
 * trials best first and each trial's metric is its own metrics.jsonl's
 * last loss_avg.  An invalid trial rejects the whole experiment before any
 * job exists.  A kill -9 loop during a sweep loses no trial and runs none
 * twice (one job per trial, every step logged once).
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

/* A 2×2 grid (plus %ld steps) of a small MLP. */
static const char GRID_FMT[] =
    "name: grid\n"
    "seed: 4\n"
    "model: {type: mlp, input_dim: 8, hidden: [16], output_dim: 3, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 8}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 10, total_steps: %ld}\n"
    "train: {log_every: 10, checkpoint_every: 200}\n"
    "sweep:\n"
    "  method: grid\n"
    "  metric: loss_avg\n"
    "  parameters:\n"
    "    schedule.type: [cosine, linear]\n"
    "    optimizer.lr: [1.0e-3, 3.0e-3%s]\n"
    "  max_concurrent: 2\n";

static char *g_dir;
static tl_daemon g_d;

static void setup(void)
{
    tl_fixture_begin(&g_dir, &g_d, "traind-exp");
}

static void teardown(void)
{
    tl_fixture_end(&g_dir, &g_d);
}

static int post_exp(const char *body, char **out)
{
    return tl_post(&g_d, "/experiments", g_d.token, body, out);
}

static char *submit_exp(const char *body)
{
    char *ans;
    int st = post_exp(body, &ans);
    ck_assert_msg(st == 201, "POST /experiments: %d %s", st, ans);
    cJSON *j = cJSON_Parse(ans);
    char *id = xstrdup(tl_str(j, "id"));
    cJSON_Delete(j);
    free(ans);
    return id;
}

static cJSON *get_exp(const char *id)
{
    char *p = xasprintf("/experiments/%s", id);
    int st;
    cJSON *o = tl_get_json(g_d.addr, p, &st);
    free(p);
    return o;
}

/* Polls the experiment until it is in state (timeout_s); checks on every
 * look that at most max_active of its trials are queued or running. */
static cJSON *wait_exp(const char *id, const char *state, double timeout_s, int max_active)
{
    double end = tl_now() + timeout_s;
    for (;;) {
        cJSON *o = get_exp(id);
        if (o) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "counts");
            if (max_active > 0)
                ck_assert_msg(tl_num(c, "queued") + tl_num(c, "running") <= max_active,
                              "more than %d trials active at once", max_active);
            if (!strcmp(tl_str(o, "state"), state))
                return o;
        }
        if (tl_now() > end) {
            char *t = o ? cJSON_PrintUnformatted(o) : NULL;
            char *log = tl_read(g_d.log, NULL);
            ck_abort_msg("experiment %s never %s: %.2000s\nlog: %.3000s", id, state, t ? t : "(none)", log ? log : "");
        }
        cJSON_Delete(o);
        tl_sleep_ms(30);
    }
}

/* The last line's loss_avg in jobs/<id>/metrics.jsonl, and the line count;
 * steps must rise strictly (none logged twice). */
static double last_loss_avg(const char *id, int *n_lines)
{
    char *p = xasprintf("%s/spool/jobs/%s/metrics.jsonl", g_dir, id);
    char *text = tl_read(p, NULL);
    free(p);
    ck_assert_ptr_nonnull(text);
    double v = NAN;
    long prev = -1;
    *n_lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        ck_assert_ptr_nonnull(o);
        long step = (long)tl_num(o, "step");
        ck_assert_msg(step > prev, "job %s: step %ld logged after %ld", id, step, prev);
        prev = step;
        v = tl_num(o, "loss_avg");
        (*n_lines)++;
        cJSON_Delete(o);
    }
    free(text);
    return v;
}

/* The checks of a finished grid: n trials, one job each, best first, metrics true. */
static void check_finished(const char *id, int n, long steps)
{
    cJSON *x = get_exp(id);
    ck_assert_str_eq(tl_str(x, "state"), "succeeded");
    ck_assert_str_eq(tl_str(x, "method"), "grid");
    ck_assert_str_eq(tl_str(x, "metric"), "loss_avg");
    const cJSON *trials = cJSON_GetObjectItemCaseSensitive(x, "trials");
    ck_assert_int_eq(cJSON_GetArraySize(trials), n);
    double prev = -INFINITY;
    char seen[64][64];
    int k = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, trials) {
        const char *job = tl_str(t, "job");
        ck_assert_ptr_nonnull(job);
        for (int i = 0; i < k; i++)
            ck_assert_msg(strcmp(seen[i], job) != 0, "job %s is two trials", job);
        snprintf(seen[k++], sizeof seen[0], "%s", job);
        ck_assert_str_eq(tl_str(t, "state"), "succeeded");
        double m = tl_num(t, "metric");
        ck_assert_msg(m >= prev, "trials not best first");
        prev = m;
        int lines;
        double want = last_loss_avg(job, &lines);
        ck_assert_msg(m == want, "trial %s: metric %.17g, metrics.jsonl %.17g", job, m, want);
        ck_assert_int_eq(lines, (int)(steps / 10));
        /* the job object names its experiment and values */
        char *p = xasprintf("/jobs/%s", job);
        cJSON *jo = tl_get_json(g_d.addr, p, NULL);
        free(p);
        ck_assert_str_eq(tl_str(jo, "experiment"), id);
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(jo, "params");
        const cJSON *mine = cJSON_GetObjectItemCaseSensitive(t, "params");
        ck_assert(cJSON_Compare(params, mine, 1));
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(jo, "config");
        const cJSON *lr = cJSON_GetObjectItemCaseSensitive(params, "optimizer.lr");
        ck_assert(tl_num(cJSON_GetObjectItemCaseSensitive(cfg, "optimizer"), "lr") == lr->valuedouble);
        ck_assert_str_eq(tl_str(cJSON_GetObjectItemCaseSensitive(cfg, "schedule"), "type"),
                         tl_str(params, "schedule.type"));
        cJSON_Delete(jo);
    }
    const cJSON *best = cJSON_GetObjectItemCaseSensitive(x, "best");
    ck_assert_str_eq(tl_str(best, "job"), tl_str(cJSON_GetArrayItem(trials, 0), "job"));
    cJSON_Delete(x);
    /* exactly one job per trial in the whole table */
    cJSON *all = tl_get_json(g_d.addr, "/jobs?limit=1000", NULL);
    int mine = 0;
    ck_assert(cJSON_IsArray(all));
    cJSON_ArrayForEach(t, all) {
        const char *e = tl_str(t, "experiment");
        mine += e && !strcmp(e, id);
    }
    ck_assert_int_eq(mine, n);
    cJSON_Delete(all);
}

START_TEST(grid_runs_every_trial)
{
    const char *const three[] = {"--max-jobs", "3", NULL};
    tl_start_in(&g_d, g_dir, three, 20);
    char *body = xasprintf(GRID_FMT, 600L, "");
    char *id = submit_exp(body);
    cJSON_Delete(wait_exp(id, "succeeded", 120, 2));
    check_finished(id, 4, 600);
    cJSON *list = tl_get_json(g_d.addr, "/experiments", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(list), 1);
    ck_assert_str_eq(tl_str(cJSON_GetArrayItem(list, 0), "id"), id);
    ck_assert(tl_num(cJSON_GetArrayItem(list, 0), "n_trials") == 4);
    cJSON_Delete(list);
    /* and after a restart, the same */
    ck_assert_int_eq(WEXITSTATUS(tl_daemon_stop(&g_d, SIGTERM, 30)), 0);
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, three, 20);
    check_finished(id, 4, 600);
    int st;
    cJSON *none = tl_get_json(g_d.addr, "/experiments/nosuch", &st);
    ck_assert_int_eq(st, 404);
    cJSON_Delete(none);
    free(body);
    free(id);
}
END_TEST

/* A sweep file renamed into incoming/ becomes an experiment (not a rejected
 * job), runs every trial, and leaves incoming/; a restart makes no second one. */
START_TEST(incoming_sweep_becomes_an_experiment)
{
    const char *const three[] = {"--max-jobs", "3", NULL};
    tl_start_in(&g_d, g_dir, three, 20);
    char *body = xasprintf(GRID_FMT, 300L, "");
    char *tmp = xasprintf("%s/spool/incoming/.grid.yaml.tmp", g_dir);
    char *dst = xasprintf("%s/spool/incoming/grid.yaml", g_dir);
    ck_assert_int_eq(tl_write(tmp, body), 0);
    ck_assert_int_eq(rename(tmp, dst), 0);
    char *id = NULL;
    for (double end = tl_now() + 30; !id && tl_now() < end; tl_sleep_ms(50)) {
        cJSON *list = tl_get_json(g_d.addr, "/experiments", NULL);
        if (cJSON_GetArraySize(list) == 1)
            id = xstrdup(tl_str(cJSON_GetArrayItem(list, 0), "id"));
        cJSON_Delete(list);
    }
    ck_assert_msg(id != NULL, "no experiment from incoming/");
    cJSON_Delete(wait_exp(id, "succeeded", 120, 2));
    check_finished(id, 4, 300);
    for (double end = tl_now() + 10; access(dst, F_OK) == 0 && tl_now() < end;)
        tl_sleep_ms(50);
    ck_assert_msg(access(dst, F_OK) != 0, "incoming/grid.yaml was not removed");
    /* no job was made of the file itself */
    int st;
    cJSON *j = tl_get_json(g_d.addr, "/jobs/grid", &st);
    ck_assert_int_eq(st, 404);
    cJSON_Delete(j);
    ck_assert_int_eq(WEXITSTATUS(tl_daemon_stop(&g_d, SIGTERM, 30)), 0);
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, three, 20);
    cJSON *list = tl_get_json(g_d.addr, "/experiments", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(list), 1);
    cJSON_Delete(list);
    free(body);
    free(tmp);
    free(dst);
    free(id);
}
END_TEST

START_TEST(invalid_trial_rejects_everything)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    char *body = xasprintf(GRID_FMT, 600L, ", -2");
    char *ans;
    ck_assert_int_eq(post_exp(body, &ans), 400);
    ck_assert_msg(strstr(ans, "sweep.parameters.optimizer.lr[2]"), "400 without the trial's path: %s", ans);
    cJSON *a = cJSON_Parse(ans);
    char *id = xstrdup(tl_str(a, "id"));
    cJSON_Delete(a);
    free(ans);
    cJSON *x = get_exp(id);
    ck_assert_str_eq(tl_str(x, "state"), "rejected");
    cJSON_Delete(x);
    cJSON *jobs = tl_get_json(g_d.addr, "/jobs", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(jobs), 0);
    cJSON_Delete(jobs);
    /* no token; an early_stop whose first rung is not before the end; a sweep POSTed as a job */
    tl_resp r;
    tl_http(g_d.addr, "POST", "/experiments", NULL, body, strlen(body), &r);
    ck_assert_int_eq(r.status, 401);
    tl_resp_free(&r);
    char *asha = xasprintf("%s  early_stop: {type: asha, reduction_factor: 2, min_steps: 600}\n", body);
    char *fixed = strstr(asha, ", -2");
    memmove(fixed, fixed + 4, strlen(fixed + 4) + 1);
    ck_assert_int_eq(post_exp(asha, &ans), 400);
    ck_assert_msg(strstr(ans, "sweep.early_stop.min_steps") && strstr(ans, "before the end of training"), "%s", ans);
    free(ans);
    char *good = xasprintf(GRID_FMT, 600L, "");
    tl_http(g_d.addr, "POST", "/jobs", g_d.token, good, strlen(good), &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "/experiments"));
    tl_resp_free(&r);
    free(good);
    free(asha);
    free(body);
    free(id);
}
END_TEST

START_TEST(cancel_stops_the_rest)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    char *body = xasprintf(GRID_FMT, 50000000L, "");
    char *id = submit_exp(body);
    cJSON *x;
    for (;;) {   /* the first trial running */
        x = get_exp(id);
        if (x && tl_num(cJSON_GetObjectItemCaseSensitive(x, "counts"), "running") >= 1)
            break;
        cJSON_Delete(x);
        tl_sleep_ms(30);
    }
    cJSON_Delete(x);
    char *p = xasprintf("/experiments/%s/cancel", id);
    tl_resp r;
    tl_http(g_d.addr, "POST", p, g_d.token, NULL, 0, &r);
    ck_assert_int_eq(r.status, 202);
    tl_resp_free(&r);
    tl_http(g_d.addr, "POST", p, g_d.token, NULL, 0, &r);
    ck_assert_int_eq(r.status, 409);
    tl_resp_free(&r);
    free(p);
    x = wait_exp(id, "cancelled", 10, 0);
    cJSON_Delete(x);
    /* its submitted trials end cancelled; the others never get a job */
    double end = tl_now() + 30;
    for (;;) {
        x = get_exp(id);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "counts");
        if (tl_num(c, "queued") + tl_num(c, "running") == 0) {
            ck_assert(tl_num(c, "cancelled") >= 1 && tl_num(c, "cancelled") <= 2);
            ck_assert(tl_num(c, "waiting") >= 2);
            cJSON_Delete(x);
            break;
        }
        cJSON_Delete(x);
        ck_assert(tl_now() < end);
        tl_sleep_ms(50);
    }
    free(body);
    free(id);
}
END_TEST

/* A cancel that arrives while the first trials' jobs are still being saved
 * (right after the 201): those jobs, made after the cancel, are cancelled
 * too, none trains on; so after a kill -9 and a restart. */
START_TEST(cancel_while_trials_are_saved)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    char *body = xasprintf(GRID_FMT, 50000000L, "");
    for (int round = 0; round < 3; round++) {
        char *id = submit_exp(body);
        char *p = xasprintf("/experiments/%s/cancel", id);
        tl_resp r;
        tl_http(g_d.addr, "POST", p, g_d.token, NULL, 0, &r);
        ck_assert_int_eq(r.status, 202);
        tl_resp_free(&r);
        free(p);
        cJSON_Delete(wait_exp(id, "cancelled", 10, 0));
        for (double end = tl_now() + 20;; tl_sleep_ms(50)) {
            cJSON *x = get_exp(id);
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "counts");
            bool quiet = tl_num(c, "queued") + tl_num(c, "running") == 0;
            char *t = quiet || tl_now() < end ? NULL : cJSON_PrintUnformatted(x);
            cJSON_Delete(x);
            if (quiet)
                break;
            ck_assert_msg(!t, "a trial of cancelled experiment %s trains on: %s", id, t);
        }
        free(id);
        if (round == 1) {
            tl_daemon_stop(&g_d, SIGKILL, 10);
            tl_daemon_free(&g_d);
            tl_start_in(&g_d, g_dir, NULL, 20);
        }
    }
    /* nothing of any of them runs after the restart either */
    tl_sleep_ms(500);
    cJSON *st = tl_get_json(g_d.addr, "/status", NULL);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(st, "counts");
    if (tl_num(c, "running") + tl_num(c, "queued") != 0) {
        cJSON *all = tl_get_json(g_d.addr, "/jobs", NULL);
        char *t = cJSON_PrintUnformatted(all), *log = tl_daemon_log(&g_d);
        fprintf(stderr, "JOBS %s\nLOG %s\n", t, log);
        ck_abort_msg("jobs run on (the jobs and the log above)");
    }
    cJSON_Delete(st);
    free(body);
}
END_TEST

START_TEST(kill9_loop_loses_and_duplicates_nothing)
{
    const char *const two[] = {"--max-jobs", "2", NULL};
    tl_start_in(&g_d, g_dir, two, 20);
    char *body = xasprintf(GRID_FMT, 60000L, ", 2.0e-3");   /* 6 trials */
    char *id = submit_exp(body);
    unsigned seed = 7;
    int kills = 0;
    double end = tl_now() + 150;
    for (;;) {
        tl_sleep_ms(200 + (int)(rand_r(&seed) % 400));
        cJSON *x = get_exp(id);
        bool done = x && !strcmp(tl_str(x, "state"), "succeeded");
        cJSON_Delete(x);
        if (done)
            break;
        ck_assert_msg(tl_now() < end, "the sweep did not finish under the kill loop (%d kills)", kills);
        if (kills == 25)
            continue;   /* enough: let it finish (a slow build may train little between kills) */
        kill(g_d.pid, SIGKILL);
        waitpid(g_d.pid, NULL, 0);
        g_d.pid = 0;
        tl_daemon_free(&g_d);
        kills++;
        tl_start_in(&g_d, g_dir, two, 20);
    }
    ck_assert_msg(kills >= 3, "only %d kills", kills);
    fprintf(stderr, "experiments kill loop: %d kills of traind during a 6-trial sweep\n", kills);
    check_finished(id, 6, 60000);
    free(body);
    free(id);
}
END_TEST

/* POST /experiments with an Idempotency-Key (as trainctl submit sends):
 * the same key answers with the same experiment, also after a restart. */
static char *post_with_key(const char *body, const char *key, int *status)
{
    char *req = xasprintf("POST /experiments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                          "Idempotency-Key: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                          g_d.token, key, strlen(body), body);
    tl_resp r;
    tl_http_raw(g_d.addr, req, strlen(req), 10000, &r);
    free(req);
    *status = r.status;
    cJSON *j = r.body ? cJSON_Parse(r.body) : NULL;
    char *id = tl_str(j, "id") ? xstrdup(tl_str(j, "id")) : NULL;
    cJSON_Delete(j);
    tl_resp_free(&r);
    return id;
}

START_TEST(idempotent_submit)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    char *body = xasprintf(GRID_FMT, 300L, "");
    int st;
    char *a = post_with_key(body, "key-1", &st);
    ck_assert_int_eq(st, 201);
    char *b = post_with_key(body, "key-1", &st);
    ck_assert_int_eq(st, 201);
    ck_assert_str_eq(a, b);
    cJSON_Delete(wait_exp(a, "succeeded", 60, 0));
    ck_assert_int_eq(WEXITSTATUS(tl_daemon_stop(&g_d, SIGTERM, 30)), 0);
    tl_daemon_free(&g_d);
    tl_start_in(&g_d, g_dir, NULL, 20);
    char *c = post_with_key(body, "key-1", &st);
    ck_assert_int_eq(st, 201);
    ck_assert_str_eq(a, c);
    char *d = post_with_key(body, "key-2", &st);
    ck_assert_int_eq(st, 201);
    ck_assert_str_ne(a, d);
    cJSON *list = tl_get_json(g_d.addr, "/experiments", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(list), 2);
    cJSON_Delete(list);
    /* trainctl submit sends a sweep file to /experiments */
    char *file = xasprintf("%s/sweep.yaml", g_dir), *out = xasprintf("%s/out.txt", g_dir);
    char *spool = xasprintf("%s/spool", g_dir);
    ck_assert_int_eq(tl_write(file, body), 0);
    const char *argv[] = {tl_trainctl_path(), "submit", file, "--spool", spool, NULL};
    ck_assert_int_eq(tl_run(argv, out, 30), 0);
    char *text = tl_read(out, NULL);
    text[strcspn(text, "\n")] = '\0';
    cJSON *x = get_exp(text);
    ck_assert_msg(x != NULL, "trainctl submit of a sweep printed %s", text);
    ck_assert(tl_num(x, "n_trials") == 4);
    cJSON_Delete(x);
    free(text);
    free(file);
    free(out);
    free(spool);
    free(a);
    free(b);
    free(c);
    free(d);
    free(body);
}
END_TEST

/* fork_from: every trial is a fork of the named job at the step, its
 * history starting with the parent's points up to it. */
START_TEST(fork_from_sweep_forks_every_trial)
{
    tl_start_in(&g_d, g_dir, NULL, 20);
    static const char base[] =
        "name: stable\n"
        "seed: 2\n"
        "model: {type: mlp, input_dim: 6, hidden: [16], output_dim: 3, activation: tanh}\n"
        "data: {kind: synthetic, batch_size: 8}\n"
        "optimizer: {type: adamw, lr: 3.0e-3, grad_clip: 1.0}\n"
        "schedule: {type: warmup_stable_decay, warmup_steps: 10, total_steps: 1000, decay_steps: 100}\n"
        "train: {log_every: 10, checkpoint_every: 0, keep_every: 100}\n";
    tl_resp r;
    tl_http(g_d.addr, "POST", "/jobs", g_d.token, base, strlen(base), &r);
    ck_assert_int_eq(r.status, 201);
    tl_resp_free(&r);
    cJSON *pj = tl_wait_job(g_d.addr, "stable", tl_job_in_state, "succeeded", 60);
    ck_assert_ptr_nonnull(pj);
    cJSON_Delete(pj);
    char *sweep = xasprintf("%s"
                            "sweep:\n"
                            "  method: grid\n"
                            "  metric: loss_avg\n"
                            "  fork_from: {job: stable, at_step: 400}\n"
                            "  parameters:\n"
                            "    schedule.total_steps: [500, 800]\n",
                            base);
    char *ans;
    /* a step with no kept checkpoint is refused before any job exists */
    char *bad = xstrdup(sweep);
    memcpy(strstr(bad, "at_step: 400"), "at_step: 450", 12);
    ck_assert_int_eq(post_exp(bad, &ans), 400);
    ck_assert_ptr_nonnull(strstr(ans, "sweep.fork_from"));
    free(ans);
    free(bad);
    char *id = submit_exp(sweep);
    cJSON *x = wait_exp(id, "succeeded", 60, 0);
    char *pp = xasprintf("%s/spool/jobs/stable/metrics.jsonl", g_dir);
    char *ptext = tl_read(pp, NULL), *pstrip = tl_strip_time(ptext);
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(x, "trials")) {
        char *p = xasprintf("/jobs/%s", tl_str(t, "job"));
        cJSON *jo = tl_get_json(g_d.addr, p, NULL);
        free(p);
        ck_assert_str_eq(tl_str(jo, "parent"), "stable");
        ck_assert(tl_num(jo, "forked_at") == 400);
        ck_assert_str_eq(tl_str(jo, "state"), "succeeded");
        ck_assert(tl_num(jo, "restarts") == 0);
        cJSON_Delete(jo);
        p = xasprintf("%s/spool/jobs/%s/metrics.jsonl", g_dir, tl_str(t, "job"));
        char *text = tl_read(p, NULL), *strip = tl_strip_time(text);
        free(p);
        /* the first 40 points (steps 10..400) are the parent's */
        const char *a = pstrip, *b = strip;
        for (int i = 0; i < 40; i++) {
            const char *na = strchr(a, '\n'), *nb = strchr(b, '\n');
            ck_assert(na && nb && na - a == nb - b && memcmp(a, b, (size_t)(na - a)) == 0);
            a = na + 1;
            b = nb + 1;
        }
        free(text);
        free(strip);
    }
    cJSON_Delete(x);
    free(ptext);
    free(pstrip);
    free(pp);
    free(sweep);
    free(id);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("experiments");
    TCase *tc = tcase_create("experiments");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, grid_runs_every_trial);
    tcase_add_test(tc, invalid_trial_rejects_everything);
    tcase_add_test(tc, cancel_stops_the_rest);
    tcase_add_test(tc, cancel_while_trials_are_saved);
    tcase_add_test(tc, kill9_loop_loses_and_duplicates_nothing);
    tcase_add_test(tc, fork_from_sweep_forks_every_trial);
    tcase_add_test(tc, idempotent_submit);
    tcase_add_test(tc, incoming_sweep_becomes_an_experiment);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    return tl_run_suite(suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

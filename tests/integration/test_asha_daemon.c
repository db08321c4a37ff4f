/*
 * test_asha_daemon — ASHA early stopping run by the real traind (traind(8) EARLY STOPPING,
 * traind/experiment_asha.h): a random sweep of 9 trials with
 * early_stop {reduction_factor: 3, min_steps: 300} (rungs at 40 and 120 of
 * 360 = 40·3² steps: 9 trials, 3 past the first rung, 1 to the end), submitted with `trainctl submit` and read back with
 * `trainctl experiment`.
 *
 * Checked from the trials' own files, not from the daemon's claims: every
 * trial has a metrics.jsonl point at rung 0, and at rung k+1 exactly the
 * trials promoted from rung k; the reports in asha.jsonl, replayed in their
 * order through the paper's get_job (tests/lib/asha_ref.c, written apart
 * from the daemon's rule), give exactly the decisions the experiment lists;
 * every decision's metric is its trial's own eval_loss at that step; trials
 * that did not reach the end are `stopped` with a reason, the rest
 * succeeded; every trial's metrics.jsonl
 * (paused at each rung, promoted or not) is bit for bit a prefix of the same
 * config run as one plain job, uninterrupted.  A kill -9 loop during the
 * same sweep ends with the same decisions as the uninterrupted sweep, none
 * twice, and the same metrics.jsonl for every trial; so does a restart
 * after reports were recorded but their stops never reached status.json.
 * A cancel mid-sweep cancels what is unfinished and decides nothing more.
 *
 * max_concurrent: 1 makes the order of the rung reports, and so the
 * decisions, the same in every run (ASHA's decisions depend on that order).
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
#include "../lib/asha_ref.h"

#define N_TRIALS 9
#define TOTAL 2700
static const long RUNGS[] = {300, 900};
#define N_RUNGS 2

static const char SWEEP[] =
    "name: ashatest\n"
    "seed: 3\n"
    "model: {type: mlp, input_dim: 8, hidden: [16], output_dim: 3, activation: tanh}\n"
    "data: {kind: synthetic, batch_size: 8, noise: 0.1, eval_fraction: 0.25}\n"
    "optimizer: {type: adamw, lr: 1.0e-3}\n"
    "schedule: {type: cosine, warmup_steps: 10, total_steps: 2700}\n"
    "train: {log_every: 25, checkpoint_every: 100}\n"
    "sweep:\n"
    "  method: random\n"
    "  trials: 9\n"
    "  seed: 11\n"
    "  metric: eval_loss\n"
    "  parameters:\n"
    "    optimizer.lr: {log_uniform: [1.0e-4, 3.0e-2]}\n"
    "  max_concurrent: 1\n"
    "  early_stop: {type: asha, reduction_factor: 3, min_steps: 300}\n";

static char *g_dir;
static tl_daemon g_d;

static void setup(void)
{
    g_dir = tl_tmpdir("traind-asha");
    ck_assert_ptr_nonnull(g_dir);
    memset(&g_d, 0, sizeof g_d);
}

static void teardown(void)
{
    tl_daemon_free(&g_d);
    tl_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
}

static void start_daemon(const char *spool_name)
{
    static const char *const one[] = {"--max-jobs", "1", NULL};
    char *spool = xasprintf("%s/%s", g_dir, spool_name);
    if (tl_daemon_start(&g_d, spool, one, 60) != 0) {
        char *log = tl_read(g_d.log, NULL);
        size_t n = log ? strlen(log) : 0;
        ck_abort_msg("traind did not start in 60 s; the end of its log: %s",
                     log ? log + (n > 3000 ? n - 3000 : 0) : "(no log)");
    }
    free(spool);
}

/* `trainctl submit` of the sweep file: the experiment's id. */
static char *submit_sweep(const char *spool_name)
{
    char *file = xasprintf("%s/ashatest.yaml", g_dir), *out = xasprintf("%s/submit.out", g_dir);
    char *spool = xasprintf("%s/%s", g_dir, spool_name);
    ck_assert_int_eq(tl_write(file, SWEEP), 0);
    const char *argv[] = {tl_trainctl_path(), "submit", file, "--spool", spool, NULL};
    int rc = tl_run(argv, out, 30);
    char *text = tl_read(out, NULL);
    ck_assert_msg(rc == 0, "trainctl submit: %d %s", rc, text ? text : "");
    char *nl = strchr(text, '\n');
    if (nl)
        *nl = '\0';
    char *id = xstrdup(text);
    free(text);
    free(file);
    free(out);
    free(spool);
    return id;
}

static cJSON *get_exp(const char *id)
{
    char *p = xasprintf("/experiments/%s", id);
    cJSON *o = tl_get_json(g_d.addr, p, NULL);
    free(p);
    return o;
}

static bool exp_done(const char *id)
{
    cJSON *x = get_exp(id);
    bool done = x && !strcmp(tl_str(x, "state"), "succeeded");
    cJSON_Delete(x);
    return done;
}

static void wait_done(const char *id, double timeout_s)
{
    double end = tl_now() + timeout_s;
    while (!exp_done(id)) {
        if (tl_now() > end) {
            cJSON *x = get_exp(id);
            char *t = x ? cJSON_PrintUnformatted(x) : NULL;
            char *log = tl_read(g_d.log, NULL);
            ck_abort_msg("experiment %s did not finish: %.3000s\nlog: %.3000s", id, t ? t : "(none)",
                         log ? log + (strlen(log) > 3000 ? strlen(log) - 3000 : 0) : "");
        }
        tl_sleep_ms(50);
    }
}

static char *job_file(const char *spool_name, const char *job, const char *name)
{
    char *p = xasprintf("%s/%s/jobs/%s/%s", g_dir, spool_name, job, name);
    char *t = tl_read(p, NULL);
    free(p);
    return t;
}

/* The line of a metrics.jsonl text at step, parsed; NULL when none. */
static cJSON *point_at(const char *metrics, long step)
{
    char key[40];
    snprintf(key, sizeof key, "{\"step\":%ld,", step);
    const char *l = strstr(metrics, key);
    if (!l)
        return NULL;
    const char *e = strchr(l, '\n');
    return cJSON_ParseWithLength(l, e ? (size_t)(e - l) : strlen(l));
}

/* The trial jobs of experiment x, by trial index. */
static void trial_jobs(const cJSON *x, char jobs[N_TRIALS][64])
{
    const cJSON *t;
    int n = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(x, "trials")) {
        int k = (int)tl_num(t, "trial");
        ck_assert(k >= 0 && k < N_TRIALS);
        ck_assert_ptr_nonnull(tl_str(t, "job"));
        snprintf(jobs[k], 64, "%s", tl_str(t, "job"));
        n++;
    }
    ck_assert_int_eq(n, N_TRIALS);
}

/* The decisions as comparable text, one per line. */
static char *decisions_text(const cJSON *x)
{
    size_t cap = 1 << 16, len = 0;
    char *out = xcalloc(1, cap);
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(x, "decisions")) {
        len += (size_t)snprintf(out + len, cap - len, "trial %.0f rung %.0f %s %.17g %s\n", tl_num(d, "trial"),
                                tl_num(d, "rung"), tl_str(d, "action"), tl_num(d, "metric"), tl_str(d, "reason"));
        ck_assert(len < cap);
    }
    return out;
}

/* Everything checked against the trials' own files; returns the decisions text. */
static char *check_sweep(const char *spool_name, const char *id, char jobs[N_TRIALS][64])
{
    cJSON *x = get_exp(id);
    ck_assert_str_eq(tl_str(x, "state"), "succeeded");
    trial_jobs(x, jobs);
    char *metrics[N_TRIALS];
    for (int k = 0; k < N_TRIALS; k++) {
        metrics[k] = job_file(spool_name, jobs[k], "metrics.jsonl");
        ck_assert_ptr_nonnull(metrics[k]);
        /* no step logged twice: nothing ran twice from scratch */
        long prev = -1;
        char *copy = xstrdup(metrics[k]);
        for (char *l = strtok(copy, "\n"); l; l = strtok(NULL, "\n")) {
            cJSON *o = cJSON_Parse(l);
            long s = (long)tl_num(o, "step");
            ck_assert_msg(s > prev, "trial %d: step %ld after %ld", k, s, prev);
            prev = s;
            cJSON_Delete(o);
        }
        free(copy);
    }
    /* the reports in asha.jsonl, in their order, through the paper's get_job:
     * the decisions it makes are the experiment's, one for one */
    char *rec_path = xasprintf("%s/%s/experiments/%s/asha.jsonl", g_dir, spool_name, id);
    char *rec = tl_read(rec_path, NULL);
    ck_assert_msg(rec != NULL, "no %s", rec_path);
    asha_ref *ref = xmalloc(sizeof *ref);
    asha_ref_init(ref, 3, N_RUNGS);
    const cJSON *decs = cJSON_GetObjectItemCaseSensitive(x, "decisions");
    int di = 0, n_reports = 0;
    for (char *l = strtok(rec, "\n"); l; l = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(l);
        ck_assert_msg(o != NULL, "asha.jsonl line %d: %s", n_reports + 1, l);
        int k = (int)tl_num(o, "trial"), r = (int)tl_num(o, "rung");
        ck_assert(k >= 0 && k < N_TRIALS && r >= 0 && r < N_RUNGS);
        asha_ref_outcome out;
        asha_ref_report(ref, k, r, tl_num(o, "metric"), &out);
        n_reports++;
        const cJSON *d = cJSON_GetArrayItem(decs, di++);
        ck_assert_msg(d != NULL, "report %d (trial %d rung %d) has no decision", n_reports, k, r);
        ck_assert_int_eq((int)tl_num(d, "trial"), k);
        ck_assert_int_eq((int)tl_num(d, "rung"), r);
        ck_assert_msg(!strcmp(tl_str(d, "action"), out.reporter_continues ? "continue" : "stop"),
                      "report %d: trial %d at rung %d: the daemon says %s, get_job says %s", n_reports, k, r,
                      tl_str(d, "action"), out.reporter_continues ? "continue" : "stop");
        for (int i = 0; i < out.n_others; i++) {
            d = cJSON_GetArrayItem(decs, di++);
            ck_assert_msg(d != NULL && !strcmp(tl_str(d, "action"), "promote"),
                          "report %d: get_job promotes trial %d, the daemon does not", n_reports, out.other_trial[i]);
            ck_assert_int_eq((int)tl_num(d, "trial"), out.other_trial[i]);
            ck_assert_int_eq((int)tl_num(d, "rung"), out.other_rung[i]);
        }
        cJSON_Delete(o);
    }
    ck_assert_int_eq(di, cJSON_GetArraySize(decs));
    /* rung counts from the files: every trial at rung 0; at rung r+1 (and at
     * the end, after the last rung) exactly the trials promoted from rung r */
    int want[N_RUNGS + 1] = {N_TRIALS};
    for (int r = 0; r < N_RUNGS; r++)
        for (int k = 0; k < N_TRIALS; k++)
            want[r + 1] += asha_ref_promoted(ref, k, r);
    for (int r = 0; r < N_RUNGS; r++) {
        int reached = 0;
        for (int k = 0; k < N_TRIALS; k++) {
            cJSON *p = point_at(metrics[k], RUNGS[r]);
            reached += p != NULL;
            ck_assert_msg((p != NULL) == (r == 0 || asha_ref_promoted(ref, k, r - 1)),
                          "trial %d %s rung %d", k, p ? "reached" : "did not reach", r);
            cJSON_Delete(p);
        }
        ck_assert_int_eq(reached, want[r]);
        ck_assert_int_ge(want[r + 1], want[r] / 3);    /* the best ⌊n/η⌋ always go on */
    }
    free(ref);
    free(rec);
    free(rec_path);
    /* every decision's metric is its trial's own eval_loss at the rung */
    const cJSON *d;
    int seen[N_TRIALS][N_RUNGS] = {{0}}, n_dec = 0, n_prom = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(x, "decisions")) {
        int k = (int)tl_num(d, "trial"), r = (int)tl_num(d, "rung");
        ck_assert(k >= 0 && k < N_TRIALS && r >= 0 && r < N_RUNGS);
        ck_assert_int_eq((long)tl_num(d, "step"), RUNGS[r]);
        ck_assert_str_eq(tl_str(d, "job"), jobs[k]);
        ck_assert(strlen(tl_str(d, "reason")) > 10);
        cJSON *p = point_at(metrics[k], RUNGS[r]);
        ck_assert_msg(p != NULL, "trial %d decided at rung %d without a point there", k, r);
        ck_assert_msg(tl_num(d, "metric") == tl_num(p, "eval_loss"), "trial %d rung %d: metric %.17g, file %.17g", k,
                      r, tl_num(d, "metric"), tl_num(p, "eval_loss"));
        cJSON_Delete(p);
        if (!strcmp(tl_str(d, "action"), "promote")) {
            n_prom++;
        } else {
            ck_assert_msg(!seen[k][r]++, "trial %d decided twice at rung %d", k, r);
            n_dec++;
        }
    }
    ck_assert_int_eq(n_dec, n_reports);   /* one report per trial per rung reached */
    ck_assert_int_eq(n_dec, want[0] + want[1]);
    /* states: the one that reached the end succeeded; the others stopped, with a reason */
    int succeeded = 0;
    for (int k = 0; k < N_TRIALS; k++) {
        char *p = xasprintf("/jobs/%s", jobs[k]);
        cJSON *jo = tl_get_json(g_d.addr, p, NULL);
        free(p);
        cJSON *last = point_at(metrics[k], TOTAL);
        if (last) {
            ck_assert_str_eq(tl_str(jo, "state"), "succeeded");
            succeeded++;
        } else {
            ck_assert_str_eq(tl_str(jo, "state"), "stopped");
            ck_assert_ptr_nonnull(tl_str(jo, "stop_reason"));
            ck_assert(strstr(tl_str(jo, "stop_reason"), "rung") != NULL);
        }
        cJSON_Delete(last);
        cJSON_Delete(jo);
    }
    ck_assert_int_eq(succeeded, want[N_RUNGS]);
    /* the experiment's rung counts agree with the files */
    const cJSON *rungs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(x, "early_stop"), "rungs");
    ck_assert_int_eq(cJSON_GetArraySize(rungs), N_RUNGS);
    for (int r = 0; r < N_RUNGS; r++)
        ck_assert_int_eq((int)tl_num(cJSON_GetArrayItem(rungs, r), "reached"), want[r]);
    fprintf(stderr, "asha sweep: %d decisions, %d promotions of stopped trials; %d, %d and %d trials at rungs 0, 1 and the end\n",
            n_dec, n_prom, want[0], want[1], want[2]);
    char *text = decisions_text(x);
    for (int k = 0; k < N_TRIALS; k++)
        free(metrics[k]);
    cJSON_Delete(x);
    return text;
}

/* Each trial's config run as one plain job, uninterrupted: its trial's
 * metrics.jsonl (without time) is a prefix of that job's, bit for bit. */
static void check_against_plain_runs(const char *spool_name, char jobs[N_TRIALS][64])
{
    char ids[N_TRIALS][64];
    for (int k = 0; k < N_TRIALS; k++) {
        char *cfg = job_file(spool_name, jobs[k], "config.yaml");
        ck_assert_ptr_nonnull(cfg);
        ck_assert_ptr_nonnull(strstr(cfg, "keep_steps"));
        tl_resp r;
        tl_http(g_d.addr, "POST", "/jobs", g_d.token, cfg, strlen(cfg), &r);
        ck_assert_msg(r.status == 201, "POST /jobs: %d %s", r.status, r.body ? r.body : "");
        cJSON *o = cJSON_Parse(r.body);
        snprintf(ids[k], sizeof ids[k], "%s", tl_str(o, "id"));
        cJSON_Delete(o);
        tl_resp_free(&r);
        free(cfg);
    }
    for (int k = 0; k < N_TRIALS; k++) {
        cJSON *j = tl_wait_job(g_d.addr, ids[k], tl_job_ended, NULL, 120);
        ck_assert_str_eq(tl_str(j, "state"), "succeeded");
        cJSON_Delete(j);
        char *a = job_file(spool_name, jobs[k], "metrics.jsonl"), *b = job_file(spool_name, ids[k], "metrics.jsonl");
        char *sa = tl_strip_time(a), *sb = tl_strip_time(b);
        ck_assert_msg(strlen(sa) > 0 && !strncmp(sa, sb, strlen(sa)),
                      "trial %d's metrics are not the uninterrupted run's:\n%.600s\n---\n%.600s", k, sa, sb);
        free(a);
        free(b);
        free(sa);
        free(sb);
    }
}

START_TEST(asha_sweep_end_to_end)
{
    start_daemon("spool");
    char *id = submit_sweep("spool");
    wait_done(id, 240);
    char jobs[N_TRIALS][64];
    char *dec = check_sweep("spool", id, jobs);
    free(dec);
    /* trainctl experiment shows the trials and the decisions */
    char *spool = xasprintf("%s/spool", g_dir), *out = xasprintf("%s/exp.out", g_dir);
    const char *argv[] = {tl_trainctl_path(), "experiment", id, "--spool", spool, NULL};
    ck_assert_int_eq(tl_run(argv, out, 30), 0);
    char *text = tl_read(out, NULL);
    ck_assert_ptr_nonnull(strstr(text, "early-stopping decisions:"));
    /* every trial accounted for: "9 trials: N succeeded · M stopped" */
    int n_ok = 0, n_stopped = 0;
    const char *counts = strstr(text, "9 trials: ");
    ck_assert_msg(counts && sscanf(counts, "9 trials: %d succeeded · %d stopped", &n_ok, &n_stopped) == 2,
                  "no trial counts in: %s", text);
    ck_assert_int_eq(n_ok + n_stopped, N_TRIALS);
    ck_assert_int_ge(n_stopped, 1);
    ck_assert_ptr_nonnull(strstr(text, "stopped"));
    ck_assert_ptr_nonnull(strstr(text, jobs[0]));
    free(text);
    free(out);
    free(spool);
    check_against_plain_runs("spool", jobs);
    free(id);
}
END_TEST

START_TEST(asha_kill9_loop_same_decisions)
{
    /* the uninterrupted sweep */
    start_daemon("ref");
    char *ref_id = submit_sweep("ref");
    wait_done(ref_id, 240);
    char ref_jobs[N_TRIALS][64];
    char *ref_dec = check_sweep("ref", ref_id, ref_jobs);
    tl_daemon_stop(&g_d, SIGTERM, 20);
    tl_daemon_free(&g_d);

    /* the same sweep under kill -9 at random moments: each a random 0-40 ms
     * after a new report reaches asha.jsonl (while the daemon acts on it),
     * so that the kills land mid-sweep however fast this machine trains */
    start_daemon("kill");
    char *id = submit_sweep("kill");
    char *rec_path = xasprintf("%s/kill/experiments/%s/asha.jsonl", g_dir, id);
    unsigned seed = 5;
    int kills = 0, reports_seen = 0;
    double end = tl_now() + 240;
    while (!exp_done(id)) {
        ck_assert_msg(tl_now() < end, "the sweep did not finish under the kill loop (%d kills)", kills);
        tl_sleep_ms(5);
        char *rec = tl_read(rec_path, NULL);
        int reports = 0;
        for (const char *c = rec; c && (c = strchr(c, '\n')); c++)
            reports++;
        free(rec);
        if (reports <= reports_seen || kills >= 12 || exp_done(id))
            continue;
        reports_seen = reports;
        tl_sleep_ms((int)(rand_r(&seed) % 40));
        kill(g_d.pid, SIGKILL);
        waitpid(g_d.pid, NULL, 0);
        g_d.pid = 0;
        tl_daemon_free(&g_d);
        kills++;
        start_daemon("kill");
    }
    ck_assert_msg(kills >= 3, "only %d kills before the sweep ended", kills);
    free(rec_path);
    char jobs[N_TRIALS][64];
    char *dec = check_sweep("kill", id, jobs);
    ck_assert_msg(!strcmp(dec, ref_dec), "decisions under kill -9 differ:\n%s\n--- uninterrupted:\n%s", dec, ref_dec);
    for (int k = 0; k < N_TRIALS; k++) {
        char *a = job_file("kill", jobs[k], "metrics.jsonl"), *b = job_file("ref", ref_jobs[k], "metrics.jsonl");
        char *sa = tl_strip_time(a), *sb = tl_strip_time(b);
        ck_assert_msg(!strcmp(sa, sb), "trial %d's metrics differ from the uninterrupted sweep's", k);
        free(a);
        free(b);
        free(sa);
        free(sb);
    }
    fprintf(stderr, "asha kill loop: %d kills of traind during a 9-trial ASHA sweep\n", kills);
    free(dec);
    free(ref_dec);
    free(id);
    free(ref_id);
}
END_TEST

/* A daemon killed after recording reports but before acting on them (the
 * stops never reached status.json): the restarted daemon acts on them from
 * the record — the same decisions as the uninterrupted sweep, none twice. */
START_TEST(asha_recorded_but_not_acted_on)
{
    start_daemon("ref");
    char *ref_id = submit_sweep("ref");
    wait_done(ref_id, 240);
    char ref_jobs[N_TRIALS][64];
    char *ref_dec = check_sweep("ref", ref_id, ref_jobs);
    tl_daemon_stop(&g_d, SIGTERM, 20);
    tl_daemon_free(&g_d);

    start_daemon("cut");
    char *id = submit_sweep("cut");
    char *rec = xasprintf("%s/cut/experiments/%s/asha.jsonl", g_dir, id);
    double end = tl_now() + 120;
    for (;;) {
        char *t = tl_read(rec, NULL);
        int lines = 0;
        for (char *p = t; p && *p; p++)
            lines += *p == '\n';
        free(t);
        if (lines >= 4)
            break;
        ck_assert_msg(tl_now() < end, "no 4 reports recorded");
        tl_sleep_ms(2);
    }
    kill(g_d.pid, SIGKILL);
    waitpid(g_d.pid, NULL, 0);
    g_d.pid = 0;
    tl_daemon_free(&g_d);
    /* every stop the record holds, undone in status.json: as if traind died
     * between the fsync of the report and the stop */
    int undone = 0;
    char *jdir = xasprintf("%s/cut/jobs", g_dir);
    for (int k = 0; k < N_TRIALS; k++) {
        char *sp = xasprintf("%s/ashatest-%d/status.json", jdir, k + 1);   /* ids from the trials' names */
        char *st = tl_read(sp, NULL);
        char *at = st ? strstr(st, "\"state\":\"stopped\"") : NULL;
        if (at) {
            char *fixed = xasprintf("%.*s\"state\":\"queued\"%s", (int)(at - st), st, at + strlen("\"state\":\"stopped\""));
            ck_assert_int_eq(tl_write(sp, fixed), 0);
            free(fixed);
            undone++;
        }
        free(st);
        free(sp);
    }
    free(jdir);
    fprintf(stderr, "asha: %d recorded stops undone on disk before the restart\n", undone);
    start_daemon("cut");
    wait_done(id, 240);
    char jobs[N_TRIALS][64];
    char *dec = check_sweep("cut", id, jobs);
    ck_assert_msg(!strcmp(dec, ref_dec), "decisions differ:\n%s\n--- uninterrupted:\n%s", dec, ref_dec);
    free(dec);
    free(ref_dec);
    free(rec);
    free(id);
    free(ref_id);
}
END_TEST

static int record_lines(const char *path)
{
    char *t = tl_read(path, NULL);
    int lines = 0;
    for (char *p = t; p && *p; p++)
        lines += *p == '\n';
    free(t);
    return lines;
}

/* Cancelled mid-sweep: the unfinished trials are cancelled (a held one
 * too), stopped ones stay stopped, and nothing is decided or promoted after. */
START_TEST(asha_cancel_mid_sweep)
{
    start_daemon("spool");
    char *id = submit_sweep("spool");
    char *rec = xasprintf("%s/spool/experiments/%s/asha.jsonl", g_dir, id);
    double end = tl_now() + 120;
    while (record_lines(rec) < 3) {
        ck_assert_msg(tl_now() < end, "no 3 reports recorded");
        tl_sleep_ms(2);
    }
    char *p = xasprintf("/experiments/%s/cancel", id);
    tl_resp r;
    tl_http(g_d.addr, "POST", p, g_d.token, "", 0, &r);
    ck_assert_int_eq(r.status, 202);
    tl_resp_free(&r);
    free(p);
    tl_sleep_ms(1500);
    int lines = record_lines(rec);
    cJSON *x = get_exp(id);
    ck_assert_str_eq(tl_str(x, "state"), "cancelled");
    int stopped = 0, cancelled = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(x, "trials")) {
        const char *st = tl_str(t, "state");
        ck_assert_msg(!strcmp(st, "stopped") || !strcmp(st, "cancelled") || !strcmp(st, "waiting"),
                      "a trial is %s after the cancel", st);
        stopped += !strcmp(st, "stopped");
        cancelled += !strcmp(st, "cancelled");
    }
    ck_assert_int_ge(stopped, 1);
    ck_assert_int_ge(cancelled, 1);
    cJSON_Delete(x);
    tl_sleep_ms(1000);
    ck_assert_int_eq(record_lines(rec), lines);
    free(rec);
    free(id);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("asha_daemon");
    TCase *tc = tcase_create("asha_daemon");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, asha_sweep_end_to_end);
    tcase_add_test(tc, asha_kill9_loop_same_decisions);
    tcase_add_test(tc, asha_recorded_but_not_acted_on);
    tcase_add_test(tc, asha_cancel_mid_sweep);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    return tl_run_suite(suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * experiments — sweeps run by the daemon: the experiment table, its files
 * and the driving of its trials.  See traind/experiments.h for the rules
 * and for why trials are submitted under deterministic Idempotency-Keys.
 *
 * experiment.json is rewritten (atomically, on the thread pool, one write
 * at a time per experiment) whenever a trial gets its job or the state
 * changes; what it says is re-read at start-up as untrusted input: a file
 * that does not parse, or whose trials do not match sweep.yaml's, leaves
 * the experiment "failed" with the reason rather than guessing.
 */
#include "traind/experiments.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/api.h"
#include "traind/durable_wait.h"
#include "traind/events.h"
#include "traind/experiment_asha.h"
#include "traind/forkfile.h"
#include "traind/intake.h"
#include "traind/json.h"
#include "traind/laws.h"
#include "traind/log.h"
#include "traind/spool.h"
#include "traind/sweep.h"
#include "traind/util.h"

#define EXP_FILE "experiment.json"
#define EXP_SWEEP "sweep.yaml"
#define EXP_MAX_FILE (16u << 20)

typedef enum { EXP_RUNNING, EXP_SUCCEEDED, EXP_CANCELLED, EXP_REJECTED, EXP_FAILED } exp_state;
static const char *const exp_state_names[] = {"running", "succeeded", "cancelled", "rejected", "failed"};

typedef struct trial {
    char *params;                    /* JSON object text of its values */
    char *yaml;                      /* its config.yaml (NULL once not needed) */
    char job[SPOOL_ID_MAX + 1];      /* "" until its job exists */
    bool submitting;
} trial;

typedef struct experiment {
    struct exp_table *e;
    char id[SPOOL_ID_MAX + 1];
    char *name, *dir;
    const char *method, *metric;     /* static names */
    bool metric_eval;
    exp_state state;
    long max_concurrent;
    char *fork_job;
    long fork_step;
    char *predict_law;               /* sweep.predict.law, or NULL */
    double submitted_at;
    trial *trials;
    size_t n_trials;
    cJSON *errors;                   /* array */
    char *idem_key;                  /* its Idempotency-Key, scoped ("post:KEY", "incoming:..."), or NULL */
    uint64_t idem_fp;                /* the fingerprint of the request (jobs_idem_fp); 0 = not known */
    bool write_inflight, dirty;
    unsigned long writes_started;    /* experiment.json writes, numbered (traind/durable_wait.h) */
    durable_wait *waiters;           /* cancels answered once their state is on disk */
    /* early stopping (experiment_asha.h): NULL without sweep.early_stop */
    exp_asha *asha;
    struct rung_report *reports;     /* trials paused at a rung, in arrival order: one recorded at a time */
    size_t n_reports, cap_reports;
    bool report_inflight;
} experiment;

typedef struct rung_report {
    size_t k;
    long step;
} rung_report;

struct exp_table {
    job_table *jobs;
    char *dir;                       /* <spool>/experiments */
    char *laws_dir;                  /* <spool>/laws (sweep.predict's laws) */
    size_t max_trials;
    char **data_dirs;
    size_t n_data_dirs;
    size_t max_model_bytes;
    experiment **v;
    size_t n, cap;
    char **keys_inflight;            /* Idempotency-Keys of submits on the thread pool */
    size_t n_keys;
};

static long hook_pause_at(void *ctx, const char *job_id, const char *exp_id, const char *idem_key);
static void hook_paused(void *ctx, const char *job_id, const char *exp_id, const char *idem_key, long step);

exp_table *exps_new(job_table *jobs, const char *spool_dir, size_t max_trials, char *const *data_dirs,
                    size_t n_data_dirs, size_t max_model_bytes)
{
    exp_table *e = xcalloc(1, sizeof *e);
    e->jobs = jobs;
    e->dir = xasprintf("%s/experiments", spool_dir);
    e->laws_dir = xasprintf("%s/" LAWS_DIR, spool_dir);
    e->max_trials = max_trials ? max_trials : SWEEP_DEFAULT_MAX_TRIALS;
    e->data_dirs = strv_dup(data_dirs, n_data_dirs);
    e->n_data_dirs = n_data_dirs;
    e->max_model_bytes = max_model_bytes;
    jobs_pause_hooks h = {.pause_at = hook_pause_at, .paused = hook_paused, .ctx = e};
    jobs_set_pause_hooks(jobs, &h);
    return e;
}

static void exp_free(experiment *x)
{
    for (size_t i = 0; i < x->n_trials; i++) {
        free(x->trials[i].params);
        free(x->trials[i].yaml);
    }
    free(x->trials);
    free(x->name);
    free(x->dir);
    free(x->fork_job);
    free(x->predict_law);
    free(x->idem_key);
    cJSON_Delete(x->errors);
    durable_wait_drop_all(&x->waiters, -ECANCELED);
    exp_asha_free(x->asha);
    free(x->reports);
    free(x);
}

void exps_free(exp_table *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        exp_free(e->v[i]);
    free(e->v);
    strv_free(e->keys_inflight, e->n_keys);
    free(e->dir);
    free(e->laws_dir);
    strv_free(e->data_dirs, e->n_data_dirs);
    free(e);
}

static void table_add(exp_table *e, experiment *x)
{
    if (e->n == e->cap)
        e->v = xrealloc(e->v, (e->cap = e->cap ? 2 * e->cap : 16) * sizeof *e->v);
    e->v[e->n++] = x;
    x->e = e;
}

static experiment *find(exp_table *e, const char *id)
{
    for (size_t i = 0; i < e->n; i++)
        if (!strcmp(e->v[i]->id, id))
            return e->v[i];
    return NULL;
}

/* The trial's values as a JSON object text: each YAML flow value as JSON
 * when it reads as JSON (numbers, lists of numbers), else as a string. */
static char *params_text(const sweep *s, const sweep_trial *t)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < s->n_params; i++) {
        cJSON *v = cJSON_Parse(t->values[i]);
        if (!v || cJSON_IsObject(v)) {
            cJSON_Delete(v);
            v = cJSON_CreateString(t->values[i]);
        }
        cJSON_AddItemToObject(o, s->params[i], v);
    }
    char *text = json_print_exact(o);
    cJSON_Delete(o);
    return text;
}

/* Fills x's sweep-derived fields and trials from a parsed sweep. */
static void from_sweep(experiment *x, const sweep *s)
{
    x->name = xstrdup(s->name);
    x->method = sweep_method_name(s->method);
    x->metric = sweep_metric_name(s->metric);
    x->metric_eval = s->metric == SWEEP_EVAL_LOSS;
    x->max_concurrent = s->max_concurrent;
    x->fork_job = s->fork_job ? xstrdup(s->fork_job) : NULL;
    x->fork_step = s->fork_step;
    x->predict_law = s->predict_law ? xstrdup(s->predict_law) : NULL;
    x->n_trials = s->n_trials;
    if (s->asha) {
        long total = 0;
        for (size_t k = 0; k < s->n_trials; k++)
            if (s->trials[k].cfg.sched.total_steps > total)
                total = s->trials[k].cfg.sched.total_steps;
        x->asha = exp_asha_new(s->reduction_factor, s->min_steps, total, s->fork_job ? s->fork_step : -1,
                               s->n_trials);
    }
    x->trials = xcalloc(s->n_trials ? s->n_trials : 1, sizeof *x->trials);
    for (size_t k = 0; k < s->n_trials; k++) {
        x->trials[k].params = params_text(s, &s->trials[k]);
        x->trials[k].yaml = xstrdup(s->trials[k].yaml);
    }
}

/* experiment.json's text. */
static char *exp_file_text(const experiment *x)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", x->id);
    cJSON_AddStringToObject(o, "name", x->name ? x->name : x->id);
    cJSON_AddStringToObject(o, "state", exp_state_names[x->state]);
    if (x->method)
        cJSON_AddStringToObject(o, "method", x->method);
    if (x->metric)
        cJSON_AddStringToObject(o, "metric", x->metric);
    cJSON_AddNumberToObject(o, "max_concurrent", (double)x->max_concurrent);
    cJSON_AddNumberToObject(o, "submitted_at", x->submitted_at);
    cJSON *a = cJSON_AddArrayToObject(o, "trials");
    for (size_t k = 0; k < x->n_trials; k++) {
        cJSON *t = cJSON_CreateObject();
        cJSON *p = cJSON_Parse(x->trials[k].params);
        cJSON_AddItemToObject(t, "params", p ? p : cJSON_CreateObject());
        if (x->trials[k].job[0])
            cJSON_AddStringToObject(t, "job", x->trials[k].job);
        else
            cJSON_AddNullToObject(t, "job");
        cJSON_AddItemToArray(a, t);
    }
    cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(x->errors, 1));
    if (x->idem_key) {
        char fp[24];
        snprintf(fp, sizeof fp, "%016llx", (unsigned long long)x->idem_fp);
        cJSON_AddStringToObject(o, "idempotency_key", x->idem_key);
        cJSON_AddStringToObject(o, "idempotency_fp", fp);
    }
    char *text = json_print_exact(o);
    cJSON_Delete(o);
    return text;
}

/* ---------------------------------------------------------- persistence */

typedef struct write_req {
    uv_work_t work;
    experiment *x;
    char *path, *text;
    int rc;
    unsigned long seq;               /* x->writes_started when it began */
} write_req;

static void persist(experiment *x);

static void write_work(uv_work_t *w)
{
    write_req *r = w->data;
    r->rc = write_file_atomic(r->path, r->text, strlen(r->text), 0644);
}

static void write_done(uv_work_t *w, int status)
{
    write_req *r = w->data;
    experiment *x = r->x;
    x->write_inflight = false;
    if (r->rc < 0)
        log_error("experiment %s: cannot write %s: %s", x->id, r->path, strerror(-r->rc));
    durable_wait_wake(&x->waiters, r->seq, r->rc);
    free(r->path);
    free(r->text);
    free(r);
    job_table *t = x->e->jobs;
    if (x->dirty)
        persist(x);
    jobs_work_end(t);
}

static void persist(experiment *x)
{
    events_experiment(x->id, exp_state_names[x->state]);   /* GET /events */
    x->dirty = true;
    if (x->write_inflight)
        return;
    x->dirty = false;
    write_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->x = x;
    r->path = xasprintf("%s/" EXP_FILE, x->dir);
    r->text = exp_file_text(x);
    r->seq = ++x->writes_started;
    if (uv_queue_work(jobs_loop(x->e->jobs), &r->work, write_work, write_done) < 0) {
        log_error("experiment %s: cannot queue the write of " EXP_FILE, x->id);
        free(r->path);
        free(r->text);
        free(r);
        durable_wait_wake(&x->waiters, x->writes_started, -EIO);
        return;
    }
    x->write_inflight = true;
    jobs_work_begin(x->e->jobs);
}

/* ------------------------------------------------------------- driving */

typedef struct trial_prep {
    char exp[SPOOL_ID_MAX + 1];
    char *params;
    char *fork_dir;                  /* the parent's job directory, or NULL */
    char fork_parent[SPOOL_ID_MAX + 1];
    long fork_step;
} trial_prep;

static int prep_trial(const char *job_dir, void *arg)
{
    trial_prep *p = arg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "experiment", p->exp);
    cJSON *v = cJSON_Parse(p->params);
    cJSON_AddItemToObject(o, "params", v ? v : cJSON_CreateObject());
    char *text = json_print_exact(o);
    cJSON_Delete(o);
    char *path = xasprintf("%s/" JOBS_TRIAL_FILE, job_dir);
    int rc = text ? write_file_atomic(path, text, strlen(text), 0644) : -ENOMEM;
    free(path);
    free(text);
    if (rc == 0 && p->fork_dir)
        rc = forkfile_create(job_dir, p->fork_parent, p->fork_dir, p->fork_step, 0);
    return rc;
}

static void undo_trial(const char *job_dir, void *arg)
{
    char *path = xasprintf("%s/" JOBS_TRIAL_FILE, job_dir);
    unlink(path);
    free(path);
    forkfile_remove(job_dir);
}

static void free_prep(void *arg)
{
    trial_prep *p = arg;
    free(p->params);
    free(p->fork_dir);
    free(p);
}

typedef struct trial_answer {
    exp_table *e;
    char exp[SPOOL_ID_MAX + 1];
    size_t k;
} trial_answer;

/* A trial's job is submitted under this Idempotency-Key, so that it is
 * found again (not made twice) after any crash. */
#define TRIAL_KEY_MAX (SPOOL_ID_MAX + 48)
static void trial_key(const experiment *x, size_t k, char out[TRIAL_KEY_MAX])
{
    snprintf(out, TRIAL_KEY_MAX, "experiment:%s:%zu", x->id, k);
}

static trial_answer *trial_answer_new(const experiment *x, size_t k)
{
    trial_answer *a = xcalloc(1, sizeof *a);
    a->e = x->e;
    snprintf(a->exp, sizeof a->exp, "%s", x->id);
    a->k = k;
    return a;
}

static bool trial_ended(exp_table *e, const trial *t);

static void trial_submitted(void *arg, int rc, char *id, cJSON *errors)
{
    trial_answer *a = arg;
    experiment *x = find(a->e, a->exp);
    if (x && a->k < x->n_trials) {
        trial *t = &x->trials[a->k];
        t->submitting = false;
        if (id && (rc == API_OK || rc == API_INVALID)) {
            snprintf(t->job, sizeof t->job, "%s", id);
            free(t->yaml);
            t->yaml = NULL;
            log_info("experiment %s: trial %zu is job %s", x->id, a->k, id);
            persist(x);
            /* cancelled while this trial's submission was being saved:
             * exps_cancel did not see its job, so it is cancelled here */
            if (x->state == EXP_CANCELLED && rc == API_OK && !trial_ended(a->e, t)) {
                log_info("experiment %s: trial %zu (job %s) was submitted as the experiment ended; cancelling it",
                         x->id, a->k, id);
                jobs_cancel(a->e->jobs, t->job, NULL, NULL);
            }
        } else if (rc == API_QUEUE_FULL) {
            ;   /* no room after all: it waits in the experiment (drive) */
        } else if (rc != API_UNAVAILABLE) {
            log_error("experiment %s: trial %zu could not be submitted (%d); retried later", x->id, a->k, rc);
        }
    }
    free(id);
    cJSON_Delete(errors);
    exp_table *e = a->e;
    free(a);
    exps_poke(e);
}

static bool trial_ended(exp_table *e, const trial *t)
{
    jobs_info info;
    if (!t->job[0])
        return false;
    if (jobs_lookup(e->jobs, t->job, &info) < 0)
        return true;   /* its job is gone (removed by hand): nothing more will come of it */
    return job_state_ended(info.state);
}

static void submit_trial(experiment *x, size_t k)
{
    trial *t = &x->trials[k];
    t->submitting = true;
    trial_prep *p = xcalloc(1, sizeof *p);
    snprintf(p->exp, sizeof p->exp, "%s", x->id);
    p->params = xstrdup(t->params);
    if (x->fork_job) {
        p->fork_dir = xasprintf("%s/%s", jobs_jobs_dir(x->e->jobs), x->fork_job);
        snprintf(p->fork_parent, sizeof p->fork_parent, "%s", x->fork_job);
        p->fork_step = x->fork_step;
    }
    jobs_submit_extra ex = {.prepare = prep_trial, .undo = undo_trial, .free_arg = free_prep, .arg = p,
                            .parent = x->fork_job, .forked_at = x->fork_job ? x->fork_step : -1,
                            .experiment = x->id, .params = t->params, .admitted = true};
    trial_answer *a = trial_answer_new(x, k);
    char key[TRIAL_KEY_MAX];
    trial_key(x, k, key);
    const char *yaml = t->yaml ? t->yaml : "";
    jobs_submit_ex(x->e->jobs, yaml, strlen(yaml), x->name, key, &ex, trial_submitted, a);
}

static void asha_drive(experiment *x);
static bool asha_owes_trial(const experiment *x, size_t k);

static void drive(experiment *x)
{
    if (x->state != EXP_RUNNING || jobs_shutting_down(x->e->jobs))
        return;
    if (x->asha)
        asha_drive(x);
    size_t active = 0, ended = 0;
    for (size_t k = 0; k < x->n_trials; k++) {
        const trial *t = &x->trials[k];
        if (t->submitting)
            active++;
        else if (t->job[0])
            trial_ended(x->e, t) && !asha_owes_trial(x, k) ? ended++ : active++;
    }
    /* a rung report still to record or act on may promote a stopped trial */
    bool reports_pending = x->asha && (x->n_reports > 0 || x->report_inflight);
    if (ended == x->n_trials && !reports_pending) {
        x->state = EXP_SUCCEEDED;
        log_info("experiment %s: every trial has ended", x->id);
        persist(x);
        return;
    }
    /* Each trial is admitted as any new job is (max_queued_jobs): without
     * room it waits here, pending, and is submitted by a later drive as
     * jobs end (exps_poke) — never refused for it. */
    for (size_t k = 0; k < x->n_trials; k++) {
        if (x->max_concurrent > 0 && active >= (size_t)x->max_concurrent)
            break;
        trial *t = &x->trials[k];
        if (t->job[0] || t->submitting || !t->yaml)
            continue;
        if (!jobs_admit(x->e->jobs))
            break;
        submit_trial(x, k);
        active++;
    }
}

/* ------------------------------------------------------ early stopping */

/* Trial k of x from its job's id, else from the job's Idempotency-Key
 * "experiment:<id>:<k>" (a trial's job can start before x names it). */
static long trial_of(const experiment *x, const char *job_id, const char *idem_key)
{
    for (size_t k = 0; k < x->n_trials; k++)
        if (!strcmp(x->trials[k].job, job_id))
            return (long)k;
    char prefix[SPOOL_ID_MAX + 16];
    int n = snprintf(prefix, sizeof prefix, "experiment:%s:", x->id);
    if (idem_key && !strncmp(idem_key, prefix, (size_t)n)) {
        char *end;
        unsigned long k = strtoul(idem_key + n, &end, 10);
        if (end != idem_key + n && !*end && k < x->n_trials)
            return (long)k;
    }
    return -1;
}

static long hook_pause_at(void *ctx, const char *job_id, const char *exp_id, const char *idem_key)
{
    experiment *x = find(ctx, exp_id);
    if (!x || !x->asha || x->state != EXP_RUNNING)
        return 0;   /* an experiment that no longer runs decides nothing: its trials train on (or are cancelled) */
    long k = trial_of(x, job_id, idem_key);
    if (k < 0) {
        log_warn("experiment %s: job %s is none of its trials; it runs without early stopping", x->id, job_id);
        return 0;
    }
    return exp_asha_pause_at(x->asha, (size_t)k);
}

/* Carries a decision out: the promoted trial (if any) is queued again
 * first, then trial k goes on or stops. */
static void act(experiment *x, size_t k, const asha_decision *d, const asha_decision *prom, size_t n_prom)
{
    job_table *jobs = x->e->jobs;
    if (x->state != EXP_RUNNING) {
        /* cancelled (or failed) while the report was being recorded */
        if (x->state == EXP_CANCELLED)
            jobs_cancel(jobs, x->trials[k].job, NULL, NULL);
        else
            jobs_release(jobs, x->trials[k].job);
        return;
    }
    if (n_prom && prom->trial >= 0 && (size_t)prom->trial < x->n_trials && x->trials[prom->trial].job[0]) {
        const char *pj = x->trials[prom->trial].job;
        jobs_info info;
        if (jobs_lookup(jobs, pj, &info) == 0 && info.state == JOB_STOPPED) {
            log_info("experiment %s: trial %d (job %s) promoted: %s", x->id, prom->trial, pj, prom->reason);
            /* no room in the queue (max_queued_jobs): asha_drive queues it once there is */
            if (jobs_release(jobs, pj) == -EAGAIN)
                log_info("experiment %s: trial %d (job %s) waits for room in the queue to resume", x->id,
                         prom->trial, pj);
        }
    }
    const char *job = x->trials[k].job;
    if (d->action == ASHA_CONTINUE) {
        log_info("experiment %s: trial %zu (job %s) continues: %s", x->id, k, job, d->reason);
        jobs_release(jobs, job);
    } else {
        log_info("experiment %s: trial %zu (job %s) stops: %s", x->id, k, job, d->reason);
        jobs_stop_early(jobs, job, d->reason);
    }
}

typedef struct report_req {
    uv_work_t work;
    exp_table *e;
    char exp[SPOOL_ID_MAX + 1];
    char *exp_dir, *job_dir;
    size_t k;
    int rung;
    long step;
    bool eval;
    double metric;
    int metric_rc, rc;
} report_req;

static void next_report(experiment *x);

#define REPORT_RETRY_S 1

typedef struct retry_req {
    uv_work_t work;
    exp_table *e;
    char exp[SPOOL_ID_MAX + 1];
} retry_req;

/* A report that could not be recorded holds its experiment's later ones:
 * the wait before the next try is spent on the pool (a rare error path:
 * no timer handle to own). */
static void retry_work(uv_work_t *w)
{
    sleep(REPORT_RETRY_S);
}

static void retry_done(uv_work_t *w, int status)
{
    retry_req *r = w->data;
    experiment *x = find(r->e, r->exp);
    job_table *t = r->e->jobs;
    if (x) {
        x->report_inflight = false;
        if (!jobs_shutting_down(t))
            next_report(x);
    }
    free(r);
    jobs_work_end(t);
    (void)status;
}

static void retry_later(experiment *x)
{
    retry_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->e = x->e;
    snprintf(r->exp, sizeof r->exp, "%s", x->id);
    if (uv_queue_work(jobs_loop(x->e->jobs), &r->work, retry_work, retry_done) < 0) {
        free(r);
        return;   /* then the next change of any job tries again (asha_drive) */
    }
    x->report_inflight = true;   /* nothing else is recorded meanwhile: the order stays */
    jobs_work_begin(x->e->jobs);
}

/* Queues a trial's report: last, or first again (one that could not be recorded). */
static void push_report(experiment *x, rung_report rr, bool first)
{
    if (x->n_reports == x->cap_reports)
        x->reports = xrealloc(x->reports, (x->cap_reports = x->cap_reports ? 2 * x->cap_reports : 16) *
                                              sizeof *x->reports);
    if (first) {
        memmove(x->reports + 1, x->reports, x->n_reports * sizeof *x->reports);
        x->reports[0] = rr;
    } else {
        x->reports[x->n_reports] = rr;
    }
    x->n_reports++;
}

/* Off the loop: the trial's metric at the rung from its own metrics.jsonl,
 * then the report appended to asha.jsonl and fsync'd. */
static void report_work(uv_work_t *w)
{
    report_req *r = w->data;
    r->metric = NAN;
    r->metric_rc = exp_asha_read_metric(r->job_dir, r->step, r->eval, &r->metric);
    r->rc = exp_asha_record(r->exp_dir, r->k, r->rung, r->step, r->metric);
}

static void report_done(uv_work_t *w, int status)
{
    report_req *r = w->data;
    experiment *x = find(r->e, r->exp);
    if (x) {
        x->report_inflight = false;
        if (r->metric_rc < 0)
            log_warn("experiment %s: trial %zu has no %s at step %ld in its metrics.jsonl (%s); it ranks last there",
                     x->id, r->k, r->eval ? "eval_loss" : "loss_avg", r->step, strerror(-r->metric_rc));
        if (r->rc < 0) {
            /* not recorded, so not decided: the trial stays held and the
             * report is tried again in a second */
            log_error("experiment %s: cannot record trial %zu's report at step %ld in " EXP_ASHA_FILE ": %s; "
                      "retried in %d s", x->id, r->k, r->step, strerror(-r->rc), REPORT_RETRY_S);
            push_report(x, (rung_report){r->k, r->step}, true);
            retry_later(x);
        } else {
            asha_decision d, p;
            size_t np;
            exp_asha_apply(x->asha, r->k, r->rung, r->metric, &d, &p, &np);
            act(x, r->k, &d, &p, np);
            next_report(x);
        }
    }
    job_table *t = r->e->jobs;
    free(r->exp_dir);
    free(r->job_dir);
    free(r);
    jobs_work_end(t);
    (void)status;
}

/* Takes the pending reports in order: one already decided (a restart) is
 * acted on at once; a new one is recorded on the pool, then decided. */
static void next_report(experiment *x)
{
    while (!x->report_inflight && x->n_reports > 0) {
        rung_report rr = x->reports[0];
        memmove(x->reports, x->reports + 1, (x->n_reports - 1) * sizeof *x->reports);
        x->n_reports--;
        const char *job = x->trials[rr.k].job;
        jobs_info info;
        if (jobs_lookup(x->e->jobs, job, &info) < 0 || !info.held)
            continue;   /* cancelled meanwhile */
        int rung = exp_asha_rung_at(x->asha, rr.step);
        if (rung < 0 || x->state != EXP_RUNNING) {
            if (x->state == EXP_CANCELLED) {
                jobs_cancel(x->e->jobs, job, NULL, NULL);
            } else {
                if (rung < 0)
                    log_warn("experiment %s: trial %zu paused at step %ld, which is not a rung; it goes on", x->id,
                             rr.k, rr.step);
                jobs_release(x->e->jobs, job);
            }
            continue;
        }
        if (exp_asha_known(x->asha, rr.k, rung)) {
            asha_decision d, p;
            size_t np;
            exp_asha_apply(x->asha, rr.k, rung, NAN, &d, &p, &np);   /* the first decision; metric unused */
            act(x, rr.k, &d, &p, np);
            continue;
        }
        report_req *r = xcalloc(1, sizeof *r);
        r->work.data = r;
        r->e = x->e;
        snprintf(r->exp, sizeof r->exp, "%s", x->id);
        r->exp_dir = xstrdup(x->dir);
        r->job_dir = xasprintf("%s/%s", jobs_jobs_dir(x->e->jobs), job);
        r->k = rr.k;
        r->rung = rung;
        r->step = rr.step;
        r->eval = x->metric_eval;
        if (uv_queue_work(jobs_loop(x->e->jobs), &r->work, report_work, report_done) < 0) {
            log_error("experiment %s: cannot queue the record of trial %zu's report; retried later", x->id, rr.k);
            free(r->exp_dir);
            free(r->job_dir);
            free(r);
            push_report(x, rr, true);
            retry_later(x);
            return;
        }
        x->report_inflight = true;
        jobs_work_begin(x->e->jobs);
    }
}

static void hook_paused(void *ctx, const char *job_id, const char *exp_id, const char *idem_key, long step)
{
    exp_table *e = ctx;
    experiment *x = find(e, exp_id);
    long k = x && x->asha ? trial_of(x, job_id, idem_key) : -1;
    if (k < 0) {
        log_warn("job %s paused, but no experiment of ours early-stops it; it goes on", job_id);
        jobs_release(e->jobs, job_id);
        return;
    }
    if (!x->trials[k].job[0])
        snprintf(x->trials[k].job, sizeof x->trials[k].job, "%s", job_id);
    for (size_t i = 0; i < x->n_reports; i++)
        if (x->reports[i].k == (size_t)k)
            return;   /* already waiting */
    push_report(x, (rung_report){(size_t)k, step}, false);
    next_report(x);
}

/* A trial whose last report was promoted must not stay stopped (a daemon
 * killed between recording a promotion and queueing the trial), and
 * reports that could not be recorded are tried again. */
static void asha_drive(experiment *x)
{
    for (size_t k = 0; k < x->n_trials; k++) {
        jobs_info info;
        if (x->trials[k].job[0] && jobs_lookup(x->e->jobs, x->trials[k].job, &info) == 0 &&
            info.state == JOB_STOPPED && exp_asha_promoted_last(x->asha, k) &&
            jobs_release(x->e->jobs, x->trials[k].job) == 0)
            log_info("experiment %s: trial %zu (job %s) was promoted; queued to resume", x->id, k, x->trials[k].job);
    }
    next_report(x);
}

/* Trial k's job has ended `stopped`, but its last rung report was promoted:
 * it is to resume (asha_drive queues it), so the experiment is not over. */
static bool asha_owes_trial(const experiment *x, size_t k)
{
    jobs_info info;
    return x->asha && x->trials[k].job[0] && jobs_lookup(x->e->jobs, x->trials[k].job, &info) == 0 &&
           info.state == JOB_STOPPED && exp_asha_promoted_last(x->asha, k);
}

void exps_poke(exp_table *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        drive(e->v[i]);
}

/* -------------------------------------------------------------- submit */

typedef struct submit_req {
    uv_work_t work;
    exp_table *e;
    forks_done done;
    void *arg;
    char *yaml;
    size_t len;
    char *dir;                       /* <spool>/experiments */
    size_t max_trials;
    char **data_dirs;
    size_t n_data_dirs;
    size_t max_model_bytes;
    char *jobs_dir;
    char *laws_dir;
    char *idem_key;                  /* or NULL */
    uint64_t idem_fp;
    bool slurm;                      /* the daemon's executor is slurm */
    /* results */
    int status;
    cJSON *doc;
    experiment *x;
} submit_req;


int exps_check(const char *yaml, size_t len, const exps_check_in *in, sweep *out, cJSON **errors_out)
{
    sweep s;
    diag_list_t errs = DIAG_LIST_INIT;
    sweep_opts so = {.cfg = {.default_name = "experiment", .max_model_bytes = 0},
                     .max_trials = in->max_trials};
    cJSON *errors = NULL;
    bool ok = sweep_parse(yaml, len, &so, &s, &errs) == 0;
    if (!ok) {
        errors = json_diag_list(&errs);
    } else {
        /* as the daemon will take each trial: data.path within data_dirs */
        errors = cJSON_CreateArray();
        for (size_t k = 0; k < s.n_trials && cJSON_GetArraySize(errors) < 100; k++) {
            run_config cfg;
            char *dp = NULL;
            diag_list_t te = DIAG_LIST_INIT;
            intake_limits lim = {in->data_dirs, in->n_data_dirs, in->max_model_bytes};
            if (intake_validate(s.trials[k].yaml, strlen(s.trials[k].yaml), s.name, &lim, &cfg, &dp, &te) == 0)
                cfg_free(&cfg);
            else {
                char *vals = params_text(&s, &s.trials[k]);
                char *prefix = xasprintf("trial %s: ", vals);
                cJSON *a = json_diag_list_prefixed(&te, prefix);
                free(prefix);
                cJSON *it;
                while ((it = cJSON_DetachItemFromArray(a, 0)) != NULL)
                    cJSON_AddItemToArray(errors, it);
                cJSON_Delete(a);
                free(vals);
            }
            free(dp);
            diag_free(&te);
        }
        if (s.asha && in->slurm) {
            /* a trial pauses at each rung by exiting there (WORKER_EXIT_PAUSED): the local executor's */
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "path", "sweep.early_stop");
            cJSON_AddStringToObject(o, "message", "early stopping (asha) needs executor: local (this traind "
                                                  "runs jobs under Slurm); remove early_stop to run every "
                                                  "trial to its end");
            cJSON_AddItemToArray(errors, o);
        }
        char *pdir = s.fork_job ? xasprintf("%s/%s", in->jobs_dir, s.fork_job) : NULL;
        bool kept = !pdir || (spool_id_valid(s.fork_job) && ckpt_kept(pdir, s.fork_step));
        free(pdir);
        if (!kept) {
            cJSON *o = cJSON_CreateObject();
            char *m = xasprintf("job %s has no kept checkpoint at step %ld", s.fork_job, s.fork_step);
            cJSON_AddStringToObject(o, "path", "sweep.fork_from");
            cJSON_AddStringToObject(o, "message", m);
            cJSON_AddItemToArray(errors, o);
            free(m);
        }
        /* sweep.predict names a law fitted on this daemon (its form was checked by sweep_parse) */
        if (s.predict_law && (!in->laws_dir || !laws_stored(in->laws_dir, s.predict_law))) {
            cJSON *o = cJSON_CreateObject();
            char *m = xasprintf("no such law: %s (GET /laws lists them; POST /laws fits one)", s.predict_law);
            cJSON_AddStringToObject(o, "path", "sweep.predict.law");
            cJSON_AddStringToObject(o, "message", m);
            cJSON_AddItemToArray(errors, o);
            free(m);
        }
        if (cJSON_GetArraySize(errors) > 0)
            ok = false;
    }
    diag_free(&errs);
    *errors_out = errors;
    if (ok)
        *out = s;
    else if (errors && s.name)   /* a parsed sweep with bad trials: its name only */
    {
        *out = (sweep){.name = xstrdup(s.name)};
        sweep_free(&s);
    }
    else
        *out = (sweep){0};
    return ok ? 0 : -1;
}

/* Off the loop: expand and validate every trial, then claim the
 * experiment's directory and write sweep.yaml and experiment.json. */
static void submit_work(uv_work_t *w)
{
    submit_req *r = w->data;
    sweep s;
    cJSON *errors = NULL;
    exps_check_in in = {.max_trials = r->max_trials, .data_dirs = r->data_dirs, .n_data_dirs = r->n_data_dirs,
                        .max_model_bytes = r->max_model_bytes, .jobs_dir = r->jobs_dir, .slurm = r->slurm,
                        .laws_dir = r->laws_dir};
    bool ok = exps_check(r->yaml, r->len, &in, &s, &errors) == 0;

    experiment *x = xcalloc(1, sizeof *x);
    x->submitted_at = now_unix();
    x->idem_key = r->idem_key ? xstrdup(r->idem_key) : NULL;
    x->idem_fp = r->idem_fp;
    x->errors = ok ? cJSON_CreateArray() : errors;
    if (ok) {
        cJSON_Delete(errors);
        from_sweep(x, &s);
    } else {
        x->state = EXP_REJECTED;
        if (s.name)
            x->name = xstrdup(s.name);
    }
    const char *stem = x->name ? x->name : "experiment";
    mkdir(r->dir, 0755);
    int rc = spool_claim_id(r->dir, stem, x->id);
    if (rc == 0) {
        x->dir = xasprintf("%s/%s", r->dir, x->id);
        char *sp = xasprintf("%s/" EXP_SWEEP, x->dir), *ep = xasprintf("%s/" EXP_FILE, x->dir);
        char *text = exp_file_text(x);
        rc = write_file_atomic(sp, r->yaml, r->len, 0644);
        if (rc == 0)
            rc = write_file_atomic(ep, text, strlen(text), 0644);
        if (rc == 0)
            rc = fsync_parent_dir(x->dir);
        if (rc < 0) {
            unlink(sp);
            unlink(ep);
            rmdir(x->dir);
        }
        free(text);
        free(sp);
        free(ep);
    }
    sweep_free(&s);
    if (rc < 0) {
        char *m = xasprintf("cannot save the experiment under %s: %s", r->dir, strerror(-rc));
        r->doc = json_error_doc(m);
        free(m);
        r->status = 500;
        exp_free(x);
        return;
    }
    r->x = x;
    r->doc = cJSON_CreateObject();
    cJSON_AddStringToObject(r->doc, "id", x->id);
    if (ok) {
        r->status = 201;
    } else {
        r->status = 400;
        int n = cJSON_GetArraySize(x->errors);
        char msg[64];
        snprintf(msg, sizeof msg, "invalid experiment (%d problem%s)", n, n == 1 ? "" : "s");
        cJSON_AddStringToObject(r->doc, "error", msg);
        cJSON_AddItemToObject(r->doc, "errors", cJSON_Duplicate(x->errors, 1));
    }
}

/* Experiment files checked on the pool at once (each one expands its
 * sweep: bounded by SWEEP_MAX_WORK); past EXPS_CHECKING_MAX a POST
 * /experiments is answered 429, so that they never take the pool's
 * threads from POST /jobs (traind(8)). */
#define EXPS_CHECKING_MAX 1
static unsigned g_checking;

static void submit_done(uv_work_t *w, int status)
{
    submit_req *r = w->data;
    exp_table *e = r->e;
    g_checking--;
    if (r->x) {
        table_add(e, r->x);
        log_info("experiment %s: %s (%zu trial%s)", r->x->id, r->x->state == EXP_REJECTED ? "rejected" : "submitted",
                 r->x->n_trials, r->x->n_trials == 1 ? "" : "s");
    }
    r->done(r->arg, r->status ? r->status : 500, r->doc ? r->doc : json_error_doc("cancelled"));
    for (size_t i = 0; r->idem_key && i < e->n_keys; i++)
        if (!strcmp(e->keys_inflight[i], r->idem_key)) {
            free(e->keys_inflight[i]);
            e->keys_inflight[i] = e->keys_inflight[--e->n_keys];
            break;
        }
    free(r->idem_key);
    free(r->yaml);
    free(r->dir);
    free(r->jobs_dir);
    free(r->laws_dir);
    strv_free(r->data_dirs, r->n_data_dirs);
    free(r);
    exps_poke(e);
    jobs_work_end(e->jobs);
    (void)status;
}

void exps_submit(exp_table *e, const char *yaml, size_t len, const char *idem_key, uint64_t fp, forks_done done,
                 void *arg)
{
    if (idem_key) {
        /* a retry: the same answer as the first time, even after a restart */
        for (size_t i = e->n; i-- > 0;) {
            const experiment *x = e->v[i];
            if (!x->idem_key || strcmp(x->idem_key, idem_key))
                continue;
            if (fp && x->idem_fp && fp != x->idem_fp) {
                const char *colon = strchr(idem_key, ':');
                char *msg = xasprintf("Idempotency-Key '%s' was used before for another request (experiment %s); "
                                      "a new request needs a new key", colon ? colon + 1 : idem_key, x->id);
                cJSON *doc = json_error_doc(msg);
                free(msg);
                return done(arg, 422, doc);
            }
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", x->id);
            if (x->state == EXP_REJECTED) {
                cJSON_AddStringToObject(o, "error", "invalid experiment");
                cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(x->errors, 1));
            }
            return done(arg, x->state == EXP_REJECTED ? 400 : 201, o);
        }
        for (size_t i = 0; i < e->n_keys; i++)
            if (!strcmp(e->keys_inflight[i], idem_key))
                return done(arg, 409, json_error_doc("a request with this Idempotency-Key is still being saved; retry"));
    }
    if (jobs_shutting_down(e->jobs))
        return done(arg, 503, json_error_doc(API_SHUTTING_DOWN));
    if (g_checking >= EXPS_CHECKING_MAX) {
        cJSON *o = json_error_doc("another experiment file is being checked (at most 1 at a time); retry");
        cJSON_AddNumberToObject(o, "retry_after_s", 1);
        return done(arg, 429, o);
    }
    submit_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->e = e;
    r->done = done;
    r->arg = arg;
    r->yaml = xstrndup(yaml, len);
    r->len = len;
    r->dir = xstrdup(e->dir);
    r->jobs_dir = xstrdup(jobs_jobs_dir(e->jobs));
    r->laws_dir = xstrdup(e->laws_dir);
    r->max_trials = e->max_trials;
    r->data_dirs = strv_dup(e->data_dirs, e->n_data_dirs);
    r->n_data_dirs = e->n_data_dirs;
    r->max_model_bytes = e->max_model_bytes;
    r->idem_key = idem_key ? xstrdup(idem_key) : NULL;
    r->idem_fp = idem_key ? fp : 0;
    r->slurm = jobs_is_slurm(e->jobs);
    if (uv_queue_work(jobs_loop(e->jobs), &r->work, submit_work, submit_done) < 0) {
        free(r->idem_key);
        free(r->yaml);
        free(r->dir);
        free(r->jobs_dir);
        free(r->laws_dir);
        strv_free(r->data_dirs, r->n_data_dirs);
        free(r);
        return done(arg, 500, json_error_doc("cannot queue the experiment"));
    }
    jobs_work_begin(e->jobs);
    g_checking++;
    if (idem_key) {
        e->keys_inflight = xrealloc(e->keys_inflight, (e->n_keys + 1) * sizeof *e->keys_inflight);
        e->keys_inflight[e->n_keys++] = xstrdup(idem_key);
    }
}

/* ------------------------------------------------------------- answers */

typedef struct row {
    const trial *t;
    size_t k;
    double metric;
    jobs_info info;
    bool have;
} row;

static int cmp_row(const void *a, const void *b)
{
    const row *x = a, *y = b;
    bool fx = isfinite(x->metric), fy = isfinite(y->metric);
    if (fx != fy)
        return fx ? -1 : 1;
    if (fx && x->metric != y->metric)
        return x->metric < y->metric ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}

static void add_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *exp_json(exp_table *e, const experiment *x, bool full)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", x->id);
    cJSON_AddStringToObject(o, "name", x->name ? x->name : x->id);
    cJSON_AddStringToObject(o, "state", exp_state_names[x->state]);
    if (x->method)
        cJSON_AddStringToObject(o, "method", x->method);
    if (x->metric)
        cJSON_AddStringToObject(o, "metric", x->metric);
    char when[40];
    format_utc(x->submitted_at, when, sizeof when);
    cJSON_AddStringToObject(o, "submitted_at", when);
    cJSON_AddNumberToObject(o, "n_trials", (double)x->n_trials);
    if (x->fork_job) {
        cJSON *f = cJSON_AddObjectToObject(o, "fork_from");
        cJSON_AddStringToObject(f, "job", x->fork_job);
        cJSON_AddNumberToObject(f, "at_step", (double)x->fork_step);
    }
    if (x->predict_law) {
        cJSON *p = cJSON_AddObjectToObject(o, "predict");
        cJSON_AddStringToObject(p, "law", x->predict_law);
    } else {
        cJSON_AddNullToObject(o, "predict");
    }
    row *rows = xcalloc(x->n_trials ? x->n_trials : 1, sizeof *rows);
    int counts[JOB_NSTATES] = {0};
    size_t waiting = 0;
    for (size_t k = 0; k < x->n_trials; k++) {
        row *r = &rows[k];
        r->t = &x->trials[k];
        r->k = k;
        r->metric = NAN;
        r->have = r->t->job[0] && jobs_lookup(e->jobs, r->t->job, &r->info) == 0;
        if (r->have) {
            r->metric = x->metric_eval ? r->info.eval_loss : r->info.loss_avg;
            counts[r->info.state]++;
        } else {
            waiting++;
        }
    }
    cJSON *c = cJSON_AddObjectToObject(o, "counts");
    cJSON_AddNumberToObject(c, "waiting", (double)waiting);
    for (int s = 0; s < JOB_NSTATES; s++)
        cJSON_AddNumberToObject(c, job_state_name((job_state)s), counts[s]);
    qsort(rows, x->n_trials, sizeof *rows, cmp_row);
    if (x->n_trials && isfinite(rows[0].metric)) {
        cJSON *b = cJSON_AddObjectToObject(o, "best");
        cJSON_AddStringToObject(b, "job", rows[0].t->job);
        cJSON_AddNumberToObject(b, "metric", rows[0].metric);
        cJSON *p = cJSON_Parse(rows[0].t->params);
        cJSON_AddItemToObject(b, "params", p ? p : cJSON_CreateObject());
    } else {
        cJSON_AddNullToObject(o, "best");
    }
    if (full) {
        cJSON_AddNumberToObject(o, "max_concurrent", (double)x->max_concurrent);
        cJSON *a = cJSON_AddArrayToObject(o, "trials");
        for (size_t i = 0; i < x->n_trials; i++) {
            const row *r = &rows[i];
            cJSON *t = cJSON_CreateObject();
            cJSON_AddNumberToObject(t, "trial", (double)r->k);
            if (r->t->job[0])
                cJSON_AddStringToObject(t, "job", r->t->job);
            else
                cJSON_AddNullToObject(t, "job");
            cJSON *p = cJSON_Parse(r->t->params);
            cJSON_AddItemToObject(t, "params", p ? p : cJSON_CreateObject());
            cJSON_AddStringToObject(t, "state", r->have ? job_state_name(r->info.state) : "waiting");
            cJSON_AddNumberToObject(t, "step", r->have ? (double)r->info.step : 0);
            add_num(t, "metric", r->metric);
            cJSON_AddItemToArray(a, t);
        }
        if (x->asha) {
            const char **jobs = xcalloc(x->n_trials ? x->n_trials : 1, sizeof *jobs);
            for (size_t k = 0; k < x->n_trials; k++)
                jobs[k] = x->trials[k].job;
            cJSON_AddItemToObject(o, "early_stop", exp_asha_json(x->asha));
            cJSON_AddItemToObject(o, "decisions", exp_asha_decisions_json(x->asha, jobs));
            free(jobs);
        } else {
            cJSON_AddNullToObject(o, "early_stop");
            cJSON_AddArrayToObject(o, "decisions");
        }
        cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(x->errors, 1));
    }
    free(rows);
    return o;
}

cJSON *exps_list_json(exp_table *e)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = e->n; i-- > 0;)
        cJSON_AddItemToArray(a, exp_json(e, e->v[i], false));
    return a;
}

cJSON *exps_get_json(exp_table *e, const char *id)
{
    experiment *x = find(e, id);
    return x ? exp_json(e, x, true) : NULL;
}

int exps_cancel(exp_table *e, const char *id, void (*done)(void *arg, int rc), void *arg)
{
    experiment *x = find(e, id);
    if (!x)
        return API_NOT_FOUND;
    if (x->state != EXP_RUNNING)
        return API_CONFLICT;
    x->state = EXP_CANCELLED;
    /* answered once experiment.json says cancelled: a traind killed right
     * after the 202 does not start the experiment's next trials */
    durable_wait_add(&x->waiters, x->writes_started + 1, done, arg);
    persist(x);
    for (size_t k = 0; k < x->n_trials; k++)
        if (x->trials[k].job[0] && !trial_ended(e, &x->trials[k]))
            jobs_cancel(e->jobs, x->trials[k].job, NULL, NULL);
    log_info("experiment %s: cancelled", x->id);
    return API_OK;
}

/* ------------------------------------------------------------ start-up */

static int exp_state_from(const char *s)
{
    for (int i = 0; i < (int)(sizeof exp_state_names / sizeof exp_state_names[0]); i++)
        if (!strcmp(s, exp_state_names[i]))
            return i;
    return -1;
}

/* One experiment directory read back: experiment.json (untrusted) and,
 * for one that runs, its trials re-expanded from sweep.yaml. */
static experiment *load_one(exp_table *e, const char *id)
{
    experiment *x = xcalloc(1, sizeof *x);
    snprintf(x->id, sizeof x->id, "%.48s", id);   /* spool_id_valid: at most 48 bytes */
    x->dir = xasprintf("%s/%s", e->dir, id);
    x->errors = cJSON_CreateArray();
    char *path = xasprintf("%s/" EXP_FILE, x->dir), *buf = NULL;
    size_t len;
    const char *why = NULL;
    cJSON *o = NULL;
    if (read_file_flags(path, EXP_MAX_FILE, O_NOFOLLOW, &buf, &len) < 0)
        why = "experiment.json cannot be read";
    else if (!cJSON_IsObject(o = cJSON_ParseWithLength(buf, len)))
        why = "experiment.json is not a JSON object";
    free(buf);
    free(path);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(o, "trials");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "submitted_at");
    const cJSON *er = cJSON_GetObjectItemCaseSensitive(o, "errors");
    int state = cJSON_IsString(st) ? exp_state_from(st->valuestring) : -1;
    if (!why && (state < 0 || !cJSON_IsArray(tr)))
        why = "experiment.json has no valid state or trials";
    x->submitted_at = cJSON_IsNumber(at) ? at->valuedouble : 0;
    if (cJSON_IsArray(er)) {
        cJSON_Delete(x->errors);
        x->errors = cJSON_Duplicate(er, 1);
    }
    if (!why && state != EXP_REJECTED) {
        char *sp = xasprintf("%s/" EXP_SWEEP, x->dir), *yaml;
        size_t ylen;
        sweep s;
        diag_list_t errs = DIAG_LIST_INIT;
        sweep_opts so = {.cfg = {.default_name = "experiment", .max_model_bytes = 0},
                         .max_trials = e->max_trials > SWEEP_DEFAULT_MAX_TRIALS ? e->max_trials : SWEEP_DEFAULT_MAX_TRIALS};
        if (read_file_flags(sp, CFG_MAX_FILE_BYTES, O_NOFOLLOW, &yaml, &ylen) < 0) {
            why = "sweep.yaml cannot be read";
        } else {
            if (sweep_parse(yaml, ylen, &so, &s, &errs) != 0) {
                why = "sweep.yaml no longer expands (a newer or older traind?)";
            } else {
                if ((size_t)cJSON_GetArraySize(tr) != s.n_trials)
                    why = "experiment.json's trials do not match sweep.yaml's";
                else
                    from_sweep(x, &s);
                int arc = why || !x->asha ? 0 : exp_asha_replay(x->asha, x->dir);
                if (arc < 0) {
                    log_error("experiment %s: %s/" EXP_ASHA_FILE ": %s", id, x->dir, strerror(-arc));
                    why = EXP_ASHA_FILE " (the early-stopping record) cannot be read";
                }
                sweep_free(&s);
            }
            free(yaml);
        }
        diag_free(&errs);
        free(sp);
        for (size_t k = 0; !why && k < x->n_trials; k++) {
            const cJSON *j = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(tr, (int)k), "job");
            if (cJSON_IsString(j) && spool_id_valid(j->valuestring)) {
                snprintf(x->trials[k].job, sizeof x->trials[k].job, "%s", j->valuestring);
                free(x->trials[k].yaml);
                x->trials[k].yaml = NULL;
            }
        }
    }
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "idempotency_key");
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(o, "idempotency_fp");
    if (cJSON_IsString(key) && strlen(key->valuestring) <= SPOOL_IDEM_KEY_MAX + 16) {
        const char *k = key->valuestring;
        /* written before keys were scoped: a POST's key gets its scope */
        bool scoped = !strncmp(k, "post:", 5) || !strncmp(k, "incoming:", 9);
        x->idem_key = scoped ? xstrdup(k) : api_idem_key_valid(k) ? jobs_idem_scoped("post", k) : NULL;
        x->idem_fp = cJSON_IsString(fp) ? strtoull(fp->valuestring, NULL, 16) : 0;
    }
    if (!x->name) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
        x->name = xstrdup(cJSON_IsString(n) ? n->valuestring : id);
    }
    x->state = why ? EXP_FAILED : (exp_state)state;
    if (why) {
        log_error("experiment %s: %s; shown as failed", id, why);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "message", why);
        cJSON_AddItemToArray(x->errors, m);
    }
    cJSON_Delete(o);
    return x;
}

/* A cancelled experiment read back at start-up: its trials' jobs are
 * cancelled again (the 202 waited for experiment.json only, not for each
 * job's status.json), and a trial whose job was saved but not yet recorded
 * in experiment.json is found by its Idempotency-Key and taken back by
 * trial_submitted, which cancels it. */
static void cancel_trials_again(experiment *x)
{
    if (x->state != EXP_CANCELLED)
        return;
    for (size_t k = 0; k < x->n_trials; k++) {
        trial *t = &x->trials[k];
        if (t->job[0]) {
            if (!trial_ended(x->e, t))
                jobs_cancel(x->e->jobs, t->job, NULL, NULL);
            continue;
        }
        trial_answer *a = trial_answer_new(x, k);
        char key[TRIAL_KEY_MAX];
        trial_key(x, k, key);
        t->submitting = true;
        if (!jobs_submit_replay(x->e->jobs, key, 0, trial_submitted, a)) {
            t->submitting = false;
            free(a);
        }
    }
}

static int cmp_exp(const void *a, const void *b)
{
    const experiment *x = *(experiment *const *)a, *y = *(experiment *const *)b;
    if (x->submitted_at != y->submitted_at)
        return x->submitted_at < y->submitted_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

int exps_load(exp_table *e)
{
    DIR *d = opendir(e->dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        if (!spool_id_valid(de->d_name))
            continue;
        char *p = xasprintf("%s/%s/" EXP_FILE, e->dir, de->d_name);
        struct stat st;
        bool has = lstat(p, &st) == 0 && S_ISREG(st.st_mode);
        free(p);
        if (!has) {
            /* claimed by a daemon that died before its files: never answered */
            char *dir = xasprintf("%s/%s", e->dir, de->d_name), *sp = xasprintf("%s/" EXP_SWEEP, dir);
            unlink(sp);
            if (rmdir(dir) == 0)
                log_info("experiments/%s: never saved whole; removed", de->d_name);
            free(sp);
            free(dir);
            continue;
        }
        table_add(e, load_one(e, de->d_name));
        n++;
    }
    closedir(d);
    if (e->n > 1)
        qsort(e->v, e->n, sizeof *e->v, cmp_exp);
    for (size_t i = 0; i < e->n; i++)
        cancel_trials_again(e->v[i]);
    return n;
}

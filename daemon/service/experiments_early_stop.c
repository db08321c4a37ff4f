/*
 * experiments_early_stop — the daemon's side of ASHA: trials paused at a
 * rung, their reports recorded and acted on.  See experiments_internal.h
 * (the rule: experiment_asha.c, daemon/core/asha.c).
 */
#include "experiments_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/log.h"
#include "traind/util.h"

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

long early_stop_pause_at(void *ctx, const char *job_id, const char *exp_id, const char *idem_key)
{
    experiment *x = exp_find(ctx, exp_id);
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
    experiment *x = exp_find(r->e, r->exp);
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
    experiment *x = exp_find(r->e, r->exp);
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

void early_stop_paused(void *ctx, const char *job_id, const char *exp_id, const char *idem_key, long step)
{
    exp_table *e = ctx;
    experiment *x = exp_find(e, exp_id);
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
void early_stop_drive(experiment *x)
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
bool early_stop_owes_trial(const experiment *x, size_t k)
{
    jobs_info info;
    return x->asha && x->trials[k].job[0] && jobs_lookup(x->e->jobs, x->trials[k].job, &info) == 0 &&
           info.state == JOB_STOPPED && exp_asha_promoted_last(x->asha, k);
}

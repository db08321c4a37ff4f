/*
 * experiments_drive — an experiment's trials submitted as jobs, as room
 * allows.  See experiments_internal.h.
 */
#include "experiments_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/result.h"
#include "traind/forkfile.h"
#include "traind/json.h"
#include "traind/log.h"
#include "traind/util.h"

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

static void trial_submitted(void *arg, int rc, char *id, cJSON *errors)
{
    trial_answer *a = arg;
    experiment *x = exp_find(a->e, a->exp);
    if (x && a->k < x->n_trials) {
        trial *t = &x->trials[a->k];
        t->submitting = false;
        if (id && (rc == API_OK || rc == API_INVALID)) {
            snprintf(t->job, sizeof t->job, "%s", id);
            free(t->yaml);
            t->yaml = NULL;
            log_info("experiment %s: trial %zu is job %s", x->id, a->k, id);
            exp_persist(x);
            /* cancelled while this trial's submission was being saved:
             * exps_cancel did not see its job, so it is cancelled here */
            if (x->state == EXP_CANCELLED && rc == API_OK && !exp_trial_ended(a->e, t)) {
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

bool exp_trial_ended(exp_table *e, const trial *t)
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

static void exp_drive(experiment *x)
{
    if (x->state != EXP_RUNNING || jobs_shutting_down(x->e->jobs))
        return;
    if (x->asha)
        early_stop_drive(x);
    size_t active = 0, ended = 0;
    for (size_t k = 0; k < x->n_trials; k++) {
        const trial *t = &x->trials[k];
        if (t->submitting)
            active++;
        else if (t->job[0])
            exp_trial_ended(x->e, t) && !early_stop_owes_trial(x, k) ? ended++ : active++;
    }
    /* a rung report still to record or act on may promote a stopped trial */
    bool reports_pending = x->asha && (x->n_reports > 0 || x->report_inflight);
    if (ended == x->n_trials && !reports_pending) {
        x->state = EXP_SUCCEEDED;
        log_info("experiment %s: every trial has ended", x->id);
        exp_persist(x);
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

void exps_poke(exp_table *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        exp_drive(e->v[i]);
}

/* A cancelled experiment read back at start-up: its trials' jobs are
 * cancelled again (the 202 waited for experiment.json only, not for each
 * job's status.json), and a trial whose job was saved but not yet recorded
 * in experiment.json is found by its Idempotency-Key and taken back by
 * trial_submitted, which cancels it. */
void exp_cancel_trials_again(experiment *x)
{
    if (x->state != EXP_CANCELLED)
        return;
    for (size_t k = 0; k < x->n_trials; k++) {
        trial *t = &x->trials[k];
        if (t->job[0]) {
            if (!exp_trial_ended(x->e, t))
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

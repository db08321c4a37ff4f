/*
 * experiments — sweeps run by the daemon: the experiment table, its files
 * and the driving of its trials.  See traind/experiments.h for the rules
 * and for why trials are submitted under deterministic Idempotency-Keys.
 *
 * This file: the table (see experiments_internal.h for the map of the
 * parts).
 */
#include "experiments_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/result.h"
#include "traind/json.h"
#include "traind/laws.h"
#include "traind/log.h"
#include "traind/util.h"

const char *const exp_state_names[EXP_FAILED + 1] = {"running", "succeeded", "cancelled", "rejected", "failed"};

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
    jobs_pause_hooks h = {.pause_at = early_stop_pause_at, .paused = early_stop_paused, .ctx = e};
    jobs_set_pause_hooks(jobs, &h);
    return e;
}

void exp_free(experiment *x)
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

void exp_table_add(exp_table *e, experiment *x)
{
    if (e->n == e->cap)
        e->v = xrealloc(e->v, (e->cap = e->cap ? 2 * e->cap : 16) * sizeof *e->v);
    e->v[e->n++] = x;
    x->e = e;
}

experiment *exp_find(exp_table *e, const char *id)
{
    for (size_t i = 0; i < e->n; i++)
        if (!strcmp(e->v[i]->id, id))
            return e->v[i];
    return NULL;
}

/* The trial's values as a JSON object text: each YAML flow value as JSON
 * when it reads as JSON (numbers, lists of numbers), else as a string. */
char *exp_params_text(const sweep *s, const sweep_trial *t)
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
void exp_from_sweep(experiment *x, const sweep *s)
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
        x->trials[k].params = exp_params_text(s, &s->trials[k]);
        x->trials[k].yaml = xstrdup(s->trials[k].yaml);
    }
}

/* A cancel's answer: exps_cancel's done(arg, rc) as an api_done. */
typedef struct cancel_answer {
    api_done done;
    void *arg;
} cancel_answer;

static void cancel_answered(void *arg, int rc)
{
    cancel_answer *a = arg;
    a->done(a->arg, rc, NULL);
    free(a);
}

void exps_request_cancel(void *exps, const char *id, api_done done, void *arg)
{
    cancel_answer *a = xmalloc(sizeof *a);
    *a = (cancel_answer){done, arg};
    int rc = exps_cancel(exps, id, cancel_answered, a);
    if (rc != API_OK)
        cancel_answered(a, rc);   /* not found, already ended: answered now */
}

int exps_cancel(exp_table *e, const char *id, void (*done)(void *arg, int rc), void *arg)
{
    experiment *x = exp_find(e, id);
    if (!x)
        return API_NOT_FOUND;
    if (x->state != EXP_RUNNING)
        return API_CONFLICT;
    x->state = EXP_CANCELLED;
    /* answered once experiment.json says cancelled: a traind killed right
     * after the 202 does not start the experiment's next trials */
    durable_wait_add(&x->waiters, x->writes_started + 1, done, arg);
    exp_persist(x);
    for (size_t k = 0; k < x->n_trials; k++)
        if (x->trials[k].job[0] && !exp_trial_ended(e, &x->trials[k]))
            jobs_cancel(e->jobs, x->trials[k].job, NULL, NULL);
    log_info("experiment %s: cancelled", x->id);
    return API_OK;
}

/*
 * experiments_json — experiment objects out (traind(8)).  See
 * experiments_internal.h.
 */
#include "experiments_internal.h"

#include <math.h>
#include <stdlib.h>

#include "traind/util.h"

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

void exps_list(void *exps, api_done done, void *arg)
{
    done(arg, API_OK, exps_list_json(exps));
}

void exps_get(void *exps, const char *id, api_done done, void *arg)
{
    cJSON *o = exps_get_json(exps, id);
    done(arg, o ? API_OK : API_NOT_FOUND, o);
}

cJSON *exps_get_json(exp_table *e, const char *id)
{
    experiment *x = exp_find(e, id);
    return x ? exp_json(e, x, true) : NULL;
}

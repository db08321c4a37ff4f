/*
 * preview — POST /validate and POST /schedule: intake's checks and the
 * schedule curves of a config, on the thread pool, nothing written.  See
 * traind/preview.h.
 */
#include "traind/preview.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/result.h"
#include "traind/config.h"
#include "traind/experiments.h"
#include "traind/intake.h"
#include "traind/json.h"
#include "traind/sched_curve.h"
#include "traind/spool.h"
#include "traind/sweep.h"
#include "traind/util.h"

static cJSON *invalid_doc(const char *kind, cJSON *errors)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddFalseToObject(o, "ok");
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddItemToObject(o, "errors", errors ? errors : cJSON_CreateArray());
    return o;
}

static cJSON *curve_json(const sched_curve *c, const char *label, const char *name)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "label", label);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "total_steps", (double)c->total_steps);
    cJSON *pts = cJSON_AddArrayToObject(o, "points");
    for (size_t k = 0; k < c->n; k++) {
        cJSON *p = cJSON_CreateArray();
        cJSON_AddItemToArray(p, cJSON_CreateNumber((double)(c->steps ? c->steps[k] : (long)k)));
        cJSON_AddItemToArray(p, cJSON_CreateNumber(c->lr[k]));
        cJSON_AddItemToArray(pts, p);
    }
    return o;
}

/* max_points 0: /validate; else /schedule with that many points a curve. */
int preview_run(const preview_in *in, const char *yaml, size_t len, size_t max_points, cJSON **doc)
{
    if (sweep_is_experiment(yaml, len)) {
        exps_check_in ci = {.max_trials = in->max_trials, .data_dirs = in->data_dirs,
                            .n_data_dirs = in->n_data_dirs, .max_model_bytes = in->max_model_bytes,
                            .jobs_dir = in->jobs_dir, .slurm = in->slurm, .laws_dir = in->laws_dir};
        sweep s;
        cJSON *errors = NULL;
        if (exps_check(yaml, len, &ci, &s, &errors) != 0) {
            sweep_free(&s);
            *doc = invalid_doc("experiment", errors);
            return API_UNPROCESSABLE;
        }
        cJSON_Delete(errors);
        cJSON *o = cJSON_CreateObject();
        if (!max_points) {
            /* the sum (what the experiment costs) and each trial's own
             * length (what one run is: the editor states that) */
            double total = 0, lo = 0, hi = 0;
            for (size_t k = 0; k < s.n_trials; k++) {
                double t = (double)s.trials[k].cfg.sched.total_steps;
                total += t;
                lo = k == 0 || t < lo ? t : lo;
                hi = k == 0 || t > hi ? t : hi;
            }
            cJSON_AddTrueToObject(o, "ok");
            cJSON_AddStringToObject(o, "kind", "experiment");
            cJSON_AddStringToObject(o, "name", s.name);
            cJSON_AddNumberToObject(o, "trials", (double)s.n_trials);
            cJSON_AddNumberToObject(o, "total_steps", total);
            cJSON *per = cJSON_AddObjectToObject(o, "trial_steps");
            cJSON_AddNumberToObject(per, "min", lo);
            cJSON_AddNumberToObject(per, "max", hi);
        } else {
            size_t per = s.n_trials ? PREVIEW_MAX_TOTAL_POINTS / s.n_trials : max_points;
            if (per < 2)
                per = 2;
            if (per > max_points)
                per = max_points;
            const run_config **cfgs = xcalloc(s.n_trials ? s.n_trials : 1, sizeof *cfgs);
            for (size_t k = 0; k < s.n_trials; k++)
                cfgs[k] = &s.trials[k].cfg;
            sched_curve *cv = xcalloc(s.n_trials ? s.n_trials : 1, sizeof *cv);
            size_t n = sched_curves_distinct(cfgs, s.n_trials, per, cv);
            cJSON_AddStringToObject(o, "kind", "experiment");
            cJSON *arr = cJSON_AddArrayToObject(o, "curves");
            for (size_t c = 0; c < n; c++) {
                char *label = sweep_trial_label(&s, cv[c].trial);
                cJSON *cj = curve_json(&cv[c], label, s.trials[cv[c].trial].cfg.name);
                cJSON_AddNumberToObject(cj, "trial", (double)(cv[c].trial + 1));
                cJSON_AddItemToArray(arr, cj);
                free(label);
                sched_curve_free(&cv[c]);
            }
            free(cv);
            free(cfgs);
        }
        sweep_free(&s);
        *doc = o;
        return API_OK;
    }

    run_config cfg;
    char *data_path = NULL;
    diag_list_t errs = DIAG_LIST_INIT;
    intake_limits lim = {in->data_dirs, in->n_data_dirs, in->max_model_bytes};
    if (intake_validate(yaml, len, "job", &lim, &cfg, &data_path, &errs) != 0) {
        *doc = invalid_doc("job", json_diag_list(&errs));
        diag_free(&errs);
        return API_UNPROCESSABLE;
    }
    free(data_path);
    diag_free(&errs);
    cJSON *o = cJSON_CreateObject();
    if (!max_points) {
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddStringToObject(o, "kind", "job");
        cJSON_AddStringToObject(o, "name", cfg.name);
        cJSON_AddNumberToObject(o, "total_steps", (double)cfg.sched.total_steps);
    } else {
        sched_curve c;
        sched_curve_of(&cfg, max_points, &c);
        cJSON_AddStringToObject(o, "kind", "job");
        cJSON *arr = cJSON_AddArrayToObject(o, "curves");
        cJSON_AddItemToArray(arr, curve_json(&c, sched_type_name(cfg.sched.type), cfg.name));
        sched_curve_free(&c);
    }
    cfg_free(&cfg);
    *doc = o;
    return API_OK;
}

/* ---- on the thread pool ----------------------------------------------- */

typedef struct preview_req {
    uv_work_t work;
    struct preview_req *next; /* waiting for its turn */
    uv_loop_t *loop;
    preview_in in;            /* owned copies */
    char *yaml;
    size_t len, max;
    preview_done done;
    void *arg;
    int rc;
    cJSON *doc;
} preview_req;

static void preview_work(uv_work_t *w)
{
    preview_req *r = w->data;
    r->rc = preview_run(&r->in, r->yaml, r->len, r->max, &r->doc);
}

static void preview_req_free(preview_req *r)
{
    strv_free((char **)r->in.data_dirs, r->in.n_data_dirs);
    free((char *)r->in.jobs_dir);
    free((char *)r->in.laws_dir);
    free(r->yaml);
    free(r);
}

/* The pool's share previews may take: PREVIEW_RUNNING_MAX at once (the
 * pool's other threads stay free for POST /jobs, checkpoints' fsyncs and
 * answers), PREVIEW_WAITING_MAX more in order; past that 429.  Each one's
 * work is bounded too (SWEEP_MAX_WORK, PREVIEW_MAX_TOTAL_POINTS). */
static unsigned g_running, g_waiting;
static preview_req *g_head, *g_tail;

static void preview_after(uv_work_t *w, int status);

static void preview_next(void)
{
    while (g_running < PREVIEW_RUNNING_MAX && g_head) {
        preview_req *r = g_head;
        g_head = r->next;
        if (!g_head)
            g_tail = NULL;
        g_waiting--;
        g_running++;
        if (uv_queue_work(r->loop, &r->work, preview_work, preview_after) < 0)
            preview_after(&r->work, -1);
    }
}

static void preview_after(uv_work_t *w, int status)
{
    preview_req *r = w->data;
    g_running--;
    if (status < 0 || !r->doc) {
        cJSON_Delete(r->doc);
        r->doc = NULL;
        r->rc = API_UNAVAILABLE;
    }
    r->done(r->arg, r->rc, r->doc);
    preview_req_free(r);
    preview_next();
}

/* 429 {"error", "retry_after_s"}: as many previews as may be wait already. */
static void preview_busy(preview_done done, void *arg)
{
    char msg[160];
    snprintf(msg, sizeof msg, "too many /validate and /schedule requests at once (at most %d worked on and %d "
             "waiting); retry", PREVIEW_RUNNING_MAX, PREVIEW_WAITING_MAX);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    cJSON_AddNumberToObject(o, "retry_after_s", 1);
    done(arg, API_TRY_LATER, o);
}

static void start(uv_loop_t *loop, const preview_in *in, const char *yaml, size_t len, size_t max,
                  preview_done done, void *arg)
{
    if (!loop) {
        cJSON *doc = NULL;
        int rc = preview_run(in, yaml, len, max, &doc);
        done(arg, rc, doc);
        return;
    }
    if (g_waiting >= PREVIEW_WAITING_MAX)
        return preview_busy(done, arg);
    preview_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->loop = loop;
    r->in.data_dirs = strv_dup(in->data_dirs, in->n_data_dirs);
    r->in.n_data_dirs = in->n_data_dirs;
    r->in.max_trials = in->max_trials;
    r->in.max_model_bytes = in->max_model_bytes;
    r->in.slurm = in->slurm;
    r->in.jobs_dir = in->jobs_dir ? xstrdup(in->jobs_dir) : NULL;
    r->in.laws_dir = in->laws_dir ? xstrdup(in->laws_dir) : NULL;
    r->yaml = xmalloc(len + 1);   /* the body may hold NULs: copied whole */
    memcpy(r->yaml, yaml, len);
    r->yaml[len] = '\0';
    r->len = len;
    r->max = max;
    r->done = done;
    r->arg = arg;
    if (g_tail)
        g_tail->next = r;
    else
        g_head = r;
    g_tail = r;
    g_waiting++;
    preview_next();
}

void preview_validate(uv_loop_t *loop, const preview_in *in, const char *yaml, size_t len, preview_done done,
                      void *arg)
{
    start(loop, in, yaml, len, 0, done, arg);
}

void preview_schedule(uv_loop_t *loop, const preview_in *in, const char *yaml, size_t len, size_t max,
                      preview_done done, void *arg)
{
    start(loop, in, yaml, len, max < 2 ? 2 : max, done, arg);
}

void preview_post(void *previews, const char *yaml, size_t len, long max, preview_done done, void *arg)
{
    const preview_ctx *p = previews;
    const dconfig *c = p->cfg;
    preview_in in = {.data_dirs = c->data_dirs, .n_data_dirs = c->n_data_dirs,
                     .max_trials = (size_t)c->max_trials, .max_model_bytes = c->max_model_memory,
                     .jobs_dir = jobs_jobs_dir(p->jobs), .slurm = jobs_is_slurm(p->jobs), .laws_dir = p->laws_dir};
    if (max > 0)
        preview_schedule(p->loop, &in, yaml, len, (size_t)max, done, arg);
    else
        preview_validate(p->loop, &in, yaml, len, done, arg);
}

/*
 * experiments_submit — a sweep file checked and saved as an experiment.
 * See experiments_internal.h.
 */
#include "experiments_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/result.h"
#include "traind/forkfile.h"
#include "traind/intake.h"
#include "traind/json.h"
#include "traind/laws.h"
#include "traind/log.h"
#include "traind/util.h"

typedef struct submit_req {
    uv_work_t work;
    exp_table *e;
    api_done done;
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
    int rc;
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
                char *vals = exp_params_text(&s, &s.trials[k]);
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
        exp_from_sweep(x, &s);
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
        r->rc = -EIO;   /* 500, whatever the errno */
        exp_free(x);
        return;
    }
    r->x = x;
    r->doc = cJSON_CreateObject();
    cJSON_AddStringToObject(r->doc, "id", x->id);
    if (ok) {
        r->rc = API_OK;
    } else {
        r->rc = API_INVALID;
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
        exp_table_add(e, r->x);
        log_info("experiment %s: %s (%zu trial%s)", r->x->id, r->x->state == EXP_REJECTED ? "rejected" : "submitted",
                 r->x->n_trials, r->x->n_trials == 1 ? "" : "s");
    }
    r->done(r->arg, r->doc ? r->rc : -ECANCELED, r->doc ? r->doc : json_error_doc("cancelled"));
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

void exps_post(void *exps, const char *yaml, size_t len, const char *idem_key, api_done done, void *arg)
{
    exp_table *e = exps;
    if (jobs_stopping(e->jobs))
        return done(arg, API_UNAVAILABLE, NULL);
    /* the header's key in this endpoint's scope, the body its request */
    char *key = jobs_idem_scoped("post", idem_key);
    exps_submit(e, yaml, len, key, jobs_idem_fp(yaml, len, "", 0), done, arg);
    free(key);
}

void exps_submit(exp_table *e, const char *yaml, size_t len, const char *idem_key, uint64_t fp, api_done done,
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
                return done(arg, API_KEY_REUSED, doc);
            }
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", x->id);
            if (x->state == EXP_REJECTED) {
                cJSON_AddStringToObject(o, "error", "invalid experiment");
                cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(x->errors, 1));
            }
            return done(arg, x->state == EXP_REJECTED ? API_INVALID : API_OK, o);
        }
        for (size_t i = 0; i < e->n_keys; i++)
            if (!strcmp(e->keys_inflight[i], idem_key))
                return done(arg, API_IN_PROGRESS, NULL);
    }
    if (jobs_shutting_down(e->jobs))
        return done(arg, API_UNAVAILABLE, NULL);
    if (g_checking >= EXPS_CHECKING_MAX) {
        cJSON *o = json_error_doc("another experiment file is being checked (at most 1 at a time); retry");
        cJSON_AddNumberToObject(o, "retry_after_s", 1);
        return done(arg, API_TRY_LATER, o);
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
        return done(arg, -EIO, json_error_doc("cannot queue the experiment"));
    }
    jobs_work_begin(e->jobs);
    g_checking++;
    if (idem_key) {
        e->keys_inflight = xrealloc(e->keys_inflight, (e->n_keys + 1) * sizeof *e->keys_inflight);
        e->keys_inflight[e->n_keys++] = xstrdup(idem_key);
    }
}

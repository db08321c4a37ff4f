/*
 * laws — POST /laws, GET /laws[/{id}], POST /laws/{id}/predict: the core's
 * loss-curve laws (traind/law.h) over this daemon's jobs.  See
 * traind/laws.h for the files and the bounds.
 *
 * What runs where: the loop thread checks a request, copies the points of
 * running jobs out of their in-memory histories and names the files of the
 * rest; the thread pool reads configs and metrics.jsonl, fits or predicts,
 * and writes the law; the loop thread then adds it to the table and
 * answers.  No disk access and no law evaluation on the loop.
 *
 * The cost of the multi-power law's evaluation is one term per (point,
 * step whose lr differs from the step before) (law.h, law_eval); the
 * momentum law's is one per step.  So a fit thins every curve to the same
 * number of points p with sum over curves of (p x changes + steps) within
 * LAWS_FIT_WORK: one evaluation is then a few milliseconds, a start of
 * LAWS_FIT_MAX_ITER iterations a few seconds, whatever the request.
 */
#include "traind/laws.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "traind/result.h"
#include "traind/config.h"
#include "traind/json.h"
#include "traind/law.h"
#include "traind/log.h"
#include "traind/spool.h"
#include "traind/sweep.h"
#include "traind/util.h"

#define LAWS_MAX_FILE (4u << 20)        /* LAW.json */
#define LAWS_MAX_FIT_FILE (32u << 20)   /* fit.json */
#define LAWS_NAME_MAX 64

typedef struct law_entry {
    char id[SPOOL_ID_MAX + 1];
    cJSON *doc;                         /* LAW.json as stored */
    double created_at;
} law_entry;

struct laws_table {
    uv_loop_t *loop;
    job_table *jobs;
    exp_table *exps;
    char *dir;                          /* <spool>/laws */
    law_entry *v;                       /* oldest first */
    size_t n, cap;
    int fitting, predicting;
    double fit_started;                 /* now_monotonic() of the running fit */
    bool stopping;
};

laws_table *laws_new(uv_loop_t *loop, job_table *jobs, exp_table *exps, const char *spool_dir)
{
    laws_table *t = xcalloc(1, sizeof *t);
    t->loop = loop;
    t->jobs = jobs;
    t->exps = exps;
    t->dir = xasprintf("%s/" LAWS_DIR, spool_dir);
    return t;
}

void laws_free(laws_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        cJSON_Delete(t->v[i].doc);
    free(t->v);
    free(t->dir);
    free(t);
}

void laws_shutdown(laws_table *t)
{
    t->stopping = true;
}

static void table_add(laws_table *t, const char *id, cJSON *doc)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->v = xrealloc(t->v, t->cap * sizeof *t->v);
    }
    law_entry *e = &t->v[t->n++];
    snprintf(e->id, sizeof e->id, "%s", id);
    e->doc = doc;
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(doc, "created_at");
    e->created_at = cJSON_IsNumber(at) ? at->valuedouble : 0;
}

static law_entry *find(laws_table *t, const char *id)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].id, id))
            return &t->v[i];
    return NULL;
}

bool laws_stored(const char *laws_dir, const char *id)
{
    if (!laws_dir || !spool_id_valid(id))
        return false;
    char *p = xasprintf("%s/%s/" LAWS_FILE, laws_dir, id);
    struct stat st;
    bool ok = lstat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    return ok;
}

/* The law of a stored document, checked (law_from_json, law_check). */
static int doc_law(const cJSON *doc, law_t *law, char *err, size_t errlen)
{
    if (law_from_json(doc, law, err, errlen) != 0)
        return -1;
    return law_check(law, err, errlen);
}

static int cmp_entry(const void *a, const void *b)
{
    const law_entry *x = a, *y = b;
    if (x->created_at != y->created_at)
        return x->created_at < y->created_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

int laws_load(laws_table *t)
{
    DIR *d = opendir(t->dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!spool_id_valid(de->d_name))
            continue;
        char *p = xasprintf("%s/%s/" LAWS_FILE, t->dir, de->d_name), *buf = NULL;
        size_t len;
        int rc = read_file_flags(p, LAWS_MAX_FILE, O_NOFOLLOW, &buf, &len);
        cJSON *doc = rc == 0 ? cJSON_ParseWithLength(buf, len) : NULL;
        char err[256] = "";
        law_t law;
        if (rc == -ENOENT)
            log_warn("law %s: no " LAWS_FILE " (a fit the daemon did not finish saving); skipped", de->d_name);
        else if (rc < 0)
            log_error("law %s: %s: %s; skipped", de->d_name, p, file_error_text(rc));
        else if (!cJSON_IsObject(doc))
            log_error("law %s: %s is not a JSON object; skipped", de->d_name, p);
        else if (doc_law(doc, &law, err, sizeof err) != 0)
            log_error("law %s: %s: %s; skipped", de->d_name, p, err);
        else {
            /* the id is the directory's, whatever the file says */
            cJSON_DeleteItemFromObjectCaseSensitive(doc, "id");
            cJSON_AddStringToObject(doc, "id", de->d_name);
            table_add(t, de->d_name, doc);
            doc = NULL;
            n++;
        }
        cJSON_Delete(doc);
        free(buf);
        free(p);
    }
    closedir(d);
    qsort(t->v, t->n, sizeof *t->v, cmp_entry);
    return n;
}

/* ------------------------------------------------------------ answers */

/* A 429 the API answers with Retry-After: retry_after_s (api.c). */
static cJSON *busy_doc(const char *msg, double retry_s)
{
    cJSON *o = json_error_doc(msg);
    cJSON_AddNumberToObject(o, "retry_after_s", ceil(retry_s < 1 ? 1 : retry_s));
    return o;
}

/* 400 {"error", "errors": [{"path", "message"}]}. */
static cJSON *invalid_doc(const char *what, cJSON *errors)
{
    int n = cJSON_GetArraySize(errors);
    char msg[128];
    snprintf(msg, sizeof msg, "invalid %s (%d problem%s)", what, n, n == 1 ? "" : "s");
    if (n == 1) {   /* one problem: the error says it */
        const cJSON *e = cJSON_GetArrayItem(errors, 0);
        const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "path"));
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
        snprintf(msg, sizeof msg, "%s%s%.100s", p && *p ? p : "", p && *p ? ": " : "", m ? m : "");
    }
    cJSON *o = json_error_doc(msg);
    cJSON_AddItemToObject(o, "errors", errors);
    return o;
}

static void add_problem(cJSON *errors, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_problem(cJSON *errors, const char *path, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddItemToArray(errors, o);
}

/* A law's summary for GET /laws: LAW.json without the per-curve "fit". */
static cJSON *summary_json(const law_entry *e)
{
    cJSON *o = cJSON_Duplicate(e->doc, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "fit");
    return o;
}

void laws_list(void *laws, laws_done done, void *arg)
{
    done(arg, API_OK, laws_list_json(laws));
}

cJSON *laws_list_json(laws_table *t)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = t->n; i-- > 0;)
        cJSON_AddItemToArray(a, summary_json(&t->v[i]));
    return a;
}

/* ------------------------------------------------------------- curves */

/* One job's curve as a fit takes it: its config's lrs and its points. */
typedef struct src {
    char id[SPOOL_ID_MAX + 1];
    char *config_path;                  /* <jobs>/<id>/config.yaml */
    char *metrics_path;                 /* an ended job's metrics.jsonl, read on the pool; or NULL and: */
    size_t keep;
    train_point *pts;                   /* a running job's points, copied on the loop */
    size_t n_pts;
} src;

static void src_free(src *s)
{
    free(s->config_path);
    free(s->metrics_path);
    free(s->pts);
}

/* The value of metric in p. */
static double metric_of(const train_point *p, law_metric m)
{
    return m == LAW_METRIC_LOSS ? p->loss : m == LAW_METRIC_LOSS_AVG ? p->loss_avg : p->eval_loss;
}

/* How many steps of c change the lr (the mpl's terms per point), at least 1. */
static long lr_changes(const law_curve *c)
{
    long k = 1;
    for (long s = 1; s < c->n_steps; s++)
        if (c->lr[s] != c->lr[s - 1])
            k++;
    return k;
}

/* Reads a job's config and makes its curve with no points (pool).  0, or -1 with err. */
static int curve_of_config(const char *path, const char *name, law_curve *c, char *err, size_t errlen)
{
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    cfg_parse_opts po = {.default_name = name};
    memset(c, 0, sizeof *c);
    if (cfg_load_file(path, &po, &cfg, &errs) != 0) {
        snprintf(err, errlen, "its config.yaml does not validate%s%s", errs.n ? ": " : "",
                 errs.n ? errs.items[0].message : "");
        diag_free(&errs);
        return -1;
    }
    diag_free(&errs);
    int rc = -1;
    if (cfg.sched.total_steps > LAWS_MAX_STEPS)
        snprintf(err, errlen, "total_steps %ld is past the %ld a law is evaluated over here", cfg.sched.total_steps,
                 LAWS_MAX_STEPS);
    else
        rc = law_curve_from_config(&cfg, name, c, err, errlen);
    cfg_free(&cfg);
    return rc;
}

/* Sets c's observations from pts: the metric's finite positive values, a
 * point of step N (N updates done) being law step N - 1 (law.h's
 * convention for metrics.jsonl), steps increasing and within the schedule. */
static void observe(law_curve *c, const train_point *pts, size_t n, law_metric m)
{
    c->step = xcalloc(n ? n : 1, sizeof *c->step);
    c->loss = xcalloc(n ? n : 1, sizeof *c->loss);
    c->n = 0;
    for (size_t i = 0; i < n; i++) {
        double v = metric_of(&pts[i], m);
        long s = pts[i].step - 1;
        if (!(isfinite(v) && v > 0) || s < 0 || s >= c->n_steps || (c->n && s <= c->step[c->n - 1]))
            continue;
        c->step[c->n] = s;
        c->loss[c->n] = v;
        c->n++;
    }
}

/* Keeps at most max of c's points, evenly (util.h's rule: first and last kept). */
static void thin_curve(law_curve *c, size_t max)
{
    if (c->n <= max || max < 2)
        return;
    size_t *idx = xcalloc(max, sizeof *idx);
    size_t m = pick_even(c->n, max, idx);
    for (size_t k = 0; k < m; k++) {
        c->step[k] = c->step[idx[k]];
        c->loss[k] = c->loss[idx[k]];
    }
    c->n = m;
    free(idx);
}

/* --------------------------------------------------------------- fit */

typedef struct fit_req {
    uv_work_t work;
    laws_table *t;
    laws_done done;
    void *arg;
    /* the request */
    law_kind kind;
    law_metric metric;
    bool loo;
    int starts;
    char *name;                         /* the id's stem */
    char *experiment;                   /* or NULL */
    src *srcs;
    size_t n_srcs;
    char *dir;                          /* <spool>/laws */
    /* the answer */
    int rc;                          /* a result code (traind/result.h) */
    cJSON *doc;
    char id[SPOOL_ID_MAX + 1];
    cJSON *stored;                      /* LAW.json, for the table */
} fit_req;

static void fit_req_free(fit_req *r)
{
    for (size_t i = 0; i < r->n_srcs; i++)
        src_free(&r->srcs[i]);
    free(r->srcs);
    free(r->name);
    free(r->experiment);
    free(r->dir);
    cJSON_Delete(r->doc);
    cJSON_Delete(r->stored);
    free(r);
}

static cJSON *quality_json(const law_quality *q)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "points", (double)q->n);
    double v[] = {q->r2, q->mae, q->rmse, q->pred_err, q->worst_err, q->final_err};
    const char *k[] = {"r2", "mae", "rmse", "pred_err", "worst_err", "final_err"};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        if (isfinite(v[i]))
            cJSON_AddNumberToObject(o, k[i], v[i]);
        else
            cJSON_AddNullToObject(o, k[i]);
    }
    return o;
}

/* The law's curve over c's whole schedule at LAWS_CURVE_POINTS steps
 * ([[step, loss]...], step as metrics.jsonl counts it); NULL on error. */
static cJSON *curve_points_json(const law_t *law, const law_curve *c, size_t max)
{
    /* from the first step with an lr: before it the lr sum S1 is 0 and the
     * law has no value (a warmup from 0 starts so) */
    long s0 = 0;
    while (s0 < c->n_steps && !(c->lr[s0] > 0))
        s0++;
    if (s0 == c->n_steps)
        return NULL;
    size_t *idx = xcalloc(max, sizeof *idx);
    size_t m = pick_even((size_t)(c->n_steps - s0), max, idx);
    long *steps = xcalloc(m ? m : 1, sizeof *steps);
    double *L = xcalloc(m ? m : 1, sizeof *L);
    for (size_t k = 0; k < m; k++)
        steps[k] = s0 + (long)idx[k];
    char err[256];
    cJSON *a = NULL;
    if (law_eval(law, c->lr, c->n_steps, steps, m, L, NULL, err, sizeof err) == 0) {
        a = cJSON_CreateArray();
        for (size_t k = 0; k < m; k++) {
            if (!isfinite(L[k]))
                continue;
            cJSON *p = cJSON_CreateArray();
            cJSON_AddItemToArray(p, cJSON_CreateNumber((double)(steps[k] + 1)));
            cJSON_AddItemToArray(p, cJSON_CreateNumber(L[k]));
            cJSON_AddItemToArray(a, p);
        }
    }
    free(idx);
    free(steps);
    free(L);
    return a;
}

/* Mean and extreme of a figure over the curves (NAN: none). */
typedef struct agg {
    double sum, max;
    size_t n;
} agg;

static void agg_add(agg *a, double v, bool absval)
{
    if (!isfinite(v))
        return;
    if (absval)
        v = fabs(v);
    a->sum += v;
    a->max = a->n == 0 || v > a->max ? v : a->max;
    a->n++;
}

static void agg_put(cJSON *o, const char *mean_key, const char *max_key, const agg *a)
{
    if (mean_key) {
        if (a->n)
            cJSON_AddNumberToObject(o, mean_key, a->sum / (double)a->n);
        else
            cJSON_AddNullToObject(o, mean_key);
    }
    if (max_key) {
        if (a->n)
            cJSON_AddNumberToObject(o, max_key, a->max);
        else
            cJSON_AddNullToObject(o, max_key);
    }
}

/* The curves of the fit, loaded and thinned to the work bound; 0, or an
 * result code with r->doc. */
static int fit_load(fit_req *r, law_curve *cv)
{
    cJSON *errors = cJSON_CreateArray();
    double steps = 0, changes = 0;
    long longest = 0;
    for (size_t i = 0; i < r->n_srcs; i++) {
        src *s = &r->srcs[i];
        char err[320], path[96];
        snprintf(path, sizeof path, "jobs[%zu]", i);
        if (curve_of_config(s->config_path, s->id, &cv[i], err, sizeof err) != 0) {
            add_problem(errors, path, "job %s: %s", s->id, err);
            continue;
        }
        if (s->metrics_path) {
            long next;
            jobs_metrics_read_file(s->metrics_path, s->keep, -1, 0, LONG_MAX, &s->pts, &s->n_pts, &next);
        }
        observe(&cv[i], s->pts, s->n_pts, r->metric);
        if (cv[i].n < LAWS_MIN_POINTS) {
            add_problem(errors, path, "job %s has %zu %s point%s so far; a curve needs at least %d", s->id, cv[i].n,
                        law_metric_name(r->metric), cv[i].n == 1 ? "" : "s", LAWS_MIN_POINTS);
            continue;
        }
        steps += (double)cv[i].n_steps;
        changes += r->kind == LAW_MPL ? (double)lr_changes(&cv[i]) : 1;
        longest = cv[i].n_steps > longest ? cv[i].n_steps : longest;
    }
    if (cJSON_GetArraySize(errors) == 0 && steps + LAWS_MIN_POINTS * changes > LAWS_FIT_WORK) {
        add_problem(errors, r->experiment ? "experiment" : "jobs",
                    "too large to fit here: %.0f steps in all over %zu curves (an evaluation of the %s law would "
                    "cost more than %.0f terms even at %d points a curve); fit fewer or shorter runs, or use "
                    "trainctl law fit",
                    steps, r->n_srcs, law_kind_name(r->kind), LAWS_FIT_WORK, LAWS_MIN_POINTS);
    }
    if (cJSON_GetArraySize(errors) > 0) {
        r->doc = invalid_doc("fit request", errors);
        return API_INVALID;
    }
    cJSON_Delete(errors);
    /* the same number of points for every curve, within the work bound */
    double p = floor((LAWS_FIT_WORK - steps) / changes);
    size_t per = p > LAWS_FIT_MAX_POINTS ? LAWS_FIT_MAX_POINTS : (size_t)p;
    for (size_t i = 0; i < r->n_srcs; i++)
        thin_curve(&cv[i], per);
    return 0;
}

/* fit.json and the LAW.json document of a fit. */
static void fit_docs(fit_req *r, const law_curve *cv, const law_fit_result *res, cJSON **fit_doc, cJSON **law_doc)
{
    cJSON *law = law_to_json(&res->law, res, r->metric);
    if (!cJSON_IsObject(law)) {
        cJSON_Delete(law);
        law = cJSON_CreateObject();
        cJSON_AddStringToObject(law, "law", law_kind_name(res->law.kind));
    }
    cJSON_DeleteItemFromObjectCaseSensitive(law, "id");
    cJSON_AddStringToObject(law, "id", r->id);
    cJSON_AddStringToObject(law, "name", r->name);
    double now = now_unix();
    char when[40];
    format_utc(now, when, sizeof when);
    cJSON_AddNumberToObject(law, "created_at", now);
    cJSON_AddStringToObject(law, "created", when);
    if (!cJSON_GetObjectItemCaseSensitive(law, "metric"))
        cJSON_AddStringToObject(law, "metric", law_metric_name(r->metric));
    cJSON *jobs = cJSON_AddArrayToObject(law, "jobs");
    for (size_t i = 0; i < r->n_srcs; i++)
        cJSON_AddItemToArray(jobs, cJSON_CreateString(r->srcs[i].id));
    if (r->experiment)
        cJSON_AddStringToObject(law, "experiment", r->experiment);
    else
        cJSON_AddNullToObject(law, "experiment");

    cJSON *fit = cJSON_CreateObject();
    cJSON_AddStringToObject(fit, "id", r->id);
    cJSON *curves = cJSON_AddArrayToObject(fit, "curves");
    agg r2 = {0}, pe = {0}, we = {0}, fe = {0}, lpe = {0}, lwe = {0};
    for (size_t i = 0; i < r->n_srcs && i < res->n_curves; i++) {
        const law_curve *c = &cv[i];
        const law_fit_curve *fc = &res->curves[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "job", r->srcs[i].id);
        cJSON_AddNumberToObject(o, "total_steps", (double)c->n_steps);
        cJSON_AddItemToObject(o, "fit", quality_json(&fc->fit));
        if (fc->has_loo)
            cJSON_AddItemToObject(o, "loo", quality_json(&fc->loo));
        else
            cJSON_AddNullToObject(o, "loo");
        agg_add(&r2, fc->fit.r2, false);
        agg_add(&pe, fc->fit.pred_err, false);
        agg_add(&we, fc->fit.worst_err, false);
        agg_add(&fe, fc->fit.final_err, true);
        if (fc->has_loo) {
            agg_add(&lpe, fc->loo.pred_err, false);
            agg_add(&lwe, fc->loo.worst_err, false);
        }
        /* observed and fitted at each point the fit used: [step, observed, predicted] */
        double *pred = xcalloc(c->n ? c->n : 1, sizeof *pred);
        law_quality q;
        char err[256];
        cJSON *pts = cJSON_AddArrayToObject(o, "points");
        if (law_predict_curve(&res->law, c, pred, &q, err, sizeof err) == 0) {
            for (size_t k = 0; k < c->n; k++) {
                cJSON *p = cJSON_CreateArray();
                cJSON_AddItemToArray(p, cJSON_CreateNumber((double)(c->step[k] + 1)));
                cJSON_AddItemToArray(p, cJSON_CreateNumber(c->loss[k]));
                cJSON_AddItemToArray(p, isfinite(pred[k]) ? cJSON_CreateNumber(pred[k]) : cJSON_CreateNull());
                cJSON_AddItemToArray(pts, p);
            }
        }
        free(pred);
        cJSON *whole = curve_points_json(&res->law, c, LAWS_CURVE_POINTS);
        cJSON_AddItemToObject(o, "curve", whole ? whole : cJSON_CreateArray());
        if (fc->has_loo) {
            cJSON *lc = curve_points_json(&fc->loo_law, c, LAWS_CURVE_POINTS);
            cJSON_AddItemToObject(o, "loo_curve", lc ? lc : cJSON_CreateArray());
        }
        cJSON_AddItemToArray(curves, o);
    }
    cJSON *sum = cJSON_AddObjectToObject(law, "summary");
    cJSON_AddNumberToObject(sum, "curves", (double)res->n_curves);
    cJSON_AddNumberToObject(sum, "points", (double)res->n_points);
    agg_put(sum, "r2", NULL, &r2);
    agg_put(sum, "pred_err", NULL, &pe);
    agg_put(sum, NULL, "worst_err", &we);
    agg_put(sum, "final_err", NULL, &fe);
    agg_put(sum, "loo_pred_err", NULL, &lpe);
    agg_put(sum, NULL, "loo_worst_err", &lwe);
    cJSON_AddNumberToObject(sum, "starts", res->starts);
    cJSON_AddNumberToObject(sum, "seconds", res->seconds);
    cJSON_AddBoolToObject(sum, "truncated", res->truncated);
    *fit_doc = fit;
    *law_doc = law;
}

/* Claims <dir>/<id> and writes fit.json, then LAW.json; 0 with *stored
 * LAW.json as written, parsed back (law_to_json's numbers may be raw
 * text: the table holds what a restart reads), or -errno (nothing left behind). */
static int fit_store(fit_req *r, cJSON *fit, cJSON *law, cJSON **stored)
{
    *stored = NULL;
    int rc = mkdir_p(r->dir, 0755);
    if (rc < 0)
        return rc;
    rc = spool_claim_id(r->dir, r->name, r->id);
    if (rc < 0)
        return rc;
    /* the id is known only now */
    cJSON_ReplaceItemInObjectCaseSensitive(law, "id", cJSON_CreateString(r->id));
    cJSON_ReplaceItemInObjectCaseSensitive(fit, "id", cJSON_CreateString(r->id));
    char *dir = xasprintf("%s/%s", r->dir, r->id);
    char *fp = xasprintf("%s/" LAWS_FIT_FILE, dir), *lp = xasprintf("%s/" LAWS_FILE, dir);
    char *ft = json_print_exact(fit), *lt = json_print_exact(law);
    rc = ft && lt ? 0 : -ENOMEM;
    if (rc == 0)
        rc = write_file_atomic(fp, ft, strlen(ft), 0644);
    if (rc == 0)
        rc = write_file_atomic(lp, lt, strlen(lt), 0644);
    if (rc == 0)
        rc = fsync_parent_dir(dir);   /* the new directory's entry in laws/ */
    if (rc == 0 && !(*stored = cJSON_Parse(lt)))
        rc = -ENOMEM;
    if (rc < 0) {
        unlink(lp);
        unlink(fp);
        rmdir(dir);
    }
    free(ft);
    free(lt);
    free(fp);
    free(lp);
    free(dir);
    return rc;
}

static void fit_work(uv_work_t *w)
{
    fit_req *r = w->data;
    law_curve *cv = xcalloc(r->n_srcs, sizeof *cv);
    int st = fit_load(r, cv);
    if (st) {
        r->rc = st;
        goto out;
    }
    law_fit_opts o = {.kind = r->kind, .starts = r->starts, .max_seconds = LAWS_FIT_SECONDS,
                      .max_iter = LAWS_FIT_MAX_ITER, .loo = r->loo && r->n_srcs >= 2};
    law_fit_result res;
    char err[320];
    if (law_fit(cv, r->n_srcs, &o, &res, err, sizeof err) != 0) {
        char *m = xasprintf("the fit failed: %s", err);
        r->doc = json_error_doc(m);
        free(m);
        r->rc = API_UNPROCESSABLE;
        goto out;
    }
    if (law_check(&res.law, err, sizeof err) != 0) {
        /* a law a prediction could not use is not stored */
        char *m = xasprintf("the fit ended outside the law's domain (%s); fit more or longer curves", err);
        r->doc = json_error_doc(m);
        free(m);
        law_fit_result_free(&res);
        r->rc = API_UNPROCESSABLE;
        goto out;
    }
    cJSON *fit, *law;
    fit_docs(r, cv, &res, &fit, &law);
    law_fit_result_free(&res);
    cJSON *stored;
    int rc = fit_store(r, fit, law, &stored);
    cJSON_Delete(fit);
    cJSON_Delete(law);
    if (rc < 0) {
        char *m = xasprintf("cannot save the law under %s: %s", r->dir, strerror(-rc));
        r->doc = json_error_doc(m);
        free(m);
        r->rc = -EIO;
        goto out;
    }
    r->stored = stored;
    r->doc = cJSON_Duplicate(stored, 1);
    r->rc = API_OK;
out:
    for (size_t i = 0; i < r->n_srcs; i++)
        law_curve_free(&cv[i]);
    free(cv);
}

static void fit_after(uv_work_t *w, int status)
{
    fit_req *r = w->data;
    laws_table *t = r->t;
    t->fitting--;
    if (status < 0 || !r->doc) {
        cJSON_Delete(r->doc);
        r->doc = NULL;
        r->rc = API_UNAVAILABLE;
    }
    if (r->stored) {
        log_info("law %s: %s fitted to %zu curve%s", r->id, law_kind_name(r->kind), r->n_srcs,
                 r->n_srcs == 1 ? "" : "s");
        table_add(t, r->id, r->stored);
        r->stored = NULL;
    }
    cJSON *doc = r->doc;
    r->doc = NULL;
    r->done(r->arg, r->rc, doc);
    fit_req_free(r);
}

/* Adds job id as a source of r (loop thread): its points copied when its
 * history is in memory, its metrics.jsonl named when it is on disk. */
static int add_source(laws_table *t, fit_req *r, const char *id, char *why, size_t whylen)
{
    jobs_info info;
    if (!spool_id_valid(id) || jobs_lookup(t->jobs, id, &info) != 0) {
        snprintf(why, whylen, "no such job: %.60s", id);
        return -1;
    }
    if (info.state == JOB_REJECTED) {
        snprintf(why, whylen, "job %s was rejected: it has no curve", id);
        return -1;
    }
    for (size_t i = 0; i < r->n_srcs; i++)
        if (!strcmp(r->srcs[i].id, id)) {
            snprintf(why, whylen, "job %s is named twice", id);
            return -1;
        }
    src *s = &r->srcs[r->n_srcs];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->config_path = xasprintf("%s/%s/config.yaml", jobs_jobs_dir(t->jobs), id);
    char *path = NULL;
    size_t keep = 0;
    int rc = jobs_metrics_file(t->jobs, id, &path, &keep);
    if (rc == 0) {
        s->metrics_path = path;
        s->keep = keep;
    } else {
        long next;
        jobs_metrics_points(t->jobs, id, -1, 0, LONG_MAX, &s->pts, &s->n_pts, &next);
    }
    r->n_srcs++;
    return 0;
}

static const char *const fit_keys[] = {"law", "metric", "jobs", "experiment", "name", "loo", "starts", NULL};

void laws_fit(void *laws, const char *body, size_t len, laws_done done, void *arg)
{
    laws_table *t = laws;
    if (t->stopping)
        return done(arg, API_UNAVAILABLE, NULL);
    if (t->fitting >= LAWS_MAX_FITS) {
        char msg[160];
        double left = LAWS_FIT_SECONDS - (now_monotonic() - t->fit_started);
        snprintf(msg, sizeof msg, "a law is being fitted already (one at a time); try again in a few seconds");
        return done(arg, API_TRY_LATER, busy_doc(msg, left));
    }
    cJSON *req = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(req)) {
        cJSON_Delete(req);
        return done(arg, API_INVALID, json_error_doc("the request body must be a JSON object: {\"jobs\": [ID...] or "
                                             "\"experiment\": ID, \"law\": \"mpl\"|\"momentum\", \"metric\": "
                                             "\"loss\"|\"loss_avg\"|\"eval_loss\"}"));
    }
    cJSON *errors = cJSON_CreateArray();
    for (const cJSON *k = req->child; k; k = k->next) {
        bool known = false;
        for (size_t i = 0; fit_keys[i]; i++)
            known = known || !strcmp(k->string, fit_keys[i]);
        if (!known)
            add_problem(errors, k->string, "unknown key (the keys are law, metric, jobs, experiment, name, loo, starts)");
    }
    fit_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->t = t;
    r->done = done;
    r->arg = arg;
    r->kind = LAW_MPL;
    r->metric = LAW_METRIC_LOSS_AVG;
    r->loo = true;
    r->dir = xstrdup(t->dir);
    r->srcs = xcalloc(LAWS_MAX_CURVES, sizeof *r->srcs);

    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, "law");
    if (v && (!cJSON_IsString(v) || law_kind_parse(v->valuestring, &r->kind) != 0))
        add_problem(errors, "law", "must be \"mpl\" (the multi-power law) or \"momentum\" (the annealing law)");
    v = cJSON_GetObjectItemCaseSensitive(req, "metric");
    if (v && (!cJSON_IsString(v) || law_metric_parse(v->valuestring, &r->metric) != 0))
        add_problem(errors, "metric", "must be \"loss\", \"loss_avg\" or \"eval_loss\"");
    v = cJSON_GetObjectItemCaseSensitive(req, "loo");
    if (v && !cJSON_IsBool(v))
        add_problem(errors, "loo", "must be true or false");
    else if (v)
        r->loo = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(req, "starts");
    if (v && (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
              v->valuedouble > LAWS_MAX_STARTS))
        add_problem(errors, "starts", "must be a whole number from 1 to %d", LAWS_MAX_STARTS);
    else if (v)
        r->starts = (int)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(req, "name");
    if (v && (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > LAWS_NAME_MAX))
        add_problem(errors, "name", "must be text of 1 to %d characters", LAWS_NAME_MAX);
    else if (v)
        r->name = xstrdup(v->valuestring);

    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(req, "jobs");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(req, "experiment");
    char why[160];
    if (jobs && exp) {
        add_problem(errors, "jobs", "give jobs or experiment, not both");
    } else if (jobs) {
        int n = cJSON_GetArraySize(jobs);
        if (!cJSON_IsArray(jobs) || n < 1 || n > LAWS_MAX_CURVES)
            add_problem(errors, "jobs", "must be a list of 1 to %d job ids", LAWS_MAX_CURVES);
        else
            for (int i = 0; i < n; i++) {
                const cJSON *j = cJSON_GetArrayItem(jobs, i);
                char path[32];
                snprintf(path, sizeof path, "jobs[%d]", i);
                if (!cJSON_IsString(j))
                    add_problem(errors, path, "must be a job id");
                else if (add_source(t, r, j->valuestring, why, sizeof why) != 0)
                    add_problem(errors, path, "%s", why);
            }
    } else if (exp) {
        cJSON *x = cJSON_IsString(exp) && spool_id_valid(exp->valuestring) && t->exps
                       ? exps_get_json(t->exps, exp->valuestring) : NULL;
        if (!x) {
            add_problem(errors, "experiment", "no such experiment: %.60s",
                        cJSON_IsString(exp) ? exp->valuestring : "(not a string)");
        } else {
            r->experiment = xstrdup(exp->valuestring);
            /* its trials that have a job which trained: a curve each */
            const cJSON *tr;
            size_t usable = 0;
            cJSON_ArrayForEach(tr, cJSON_GetObjectItemCaseSensitive(x, "trials"))
            {
                const char *job = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tr, "job"));
                const cJSON *step = cJSON_GetObjectItemCaseSensitive(tr, "step");
                if (!job || !cJSON_IsNumber(step) || step->valuedouble < LAWS_MIN_POINTS)
                    continue;
                usable++;
                if (r->n_srcs < LAWS_MAX_CURVES)
                    add_source(t, r, job, why, sizeof why);
            }
            if (usable == 0)
                add_problem(errors, "experiment", "experiment %s has no trial that has trained yet",
                            exp->valuestring);
            else if (usable > LAWS_MAX_CURVES)
                add_problem(errors, "experiment", "experiment %s has %zu trials with points; a fit takes at most %d "
                            "curves: name the jobs instead", exp->valuestring, usable, LAWS_MAX_CURVES);
        }
        cJSON_Delete(x);
    } else {
        add_problem(errors, "jobs", "missing: the jobs to fit (\"jobs\": [ID...]) or an experiment (\"experiment\": ID)");
    }
    cJSON_Delete(req);
    if (cJSON_GetArraySize(errors) > 0) {
        fit_req_free(r);
        return done(arg, API_INVALID, invalid_doc("fit request", errors));
    }
    cJSON_Delete(errors);
    if (!r->name)
        r->name = xasprintf("%s-%s", law_kind_name(r->kind), r->experiment ? r->experiment : r->srcs[0].id);
    if (uv_queue_work(t->loop, &r->work, fit_work, fit_after) < 0) {
        fit_req_free(r);
        return done(arg, -EIO, json_error_doc("cannot queue the fit"));
    }
    t->fitting++;
    t->fit_started = now_monotonic();
}

/* ---------------------------------------------------------- GET one */

typedef struct get_req {
    uv_work_t work;
    laws_done done;
    void *arg;
    char *path;
    cJSON *doc;                         /* LAW.json; "curves" added from fit.json */
    int rc;                          /* a result code (traind/result.h) */
} get_req;

static void get_work(uv_work_t *w)
{
    get_req *r = w->data;
    char *buf = NULL;
    size_t len;
    int rc = read_file_flags(r->path, LAWS_MAX_FIT_FILE, O_NOFOLLOW, &buf, &len);
    cJSON *fit = rc == 0 ? cJSON_ParseWithLength(buf, len) : NULL;
    free(buf);
    cJSON *curves = cJSON_DetachItemFromObjectCaseSensitive(fit, "curves");
    cJSON_Delete(fit);
    if (!cJSON_IsArray(curves)) {
        /* the law stands without its curves (LAW.json has the figures) */
        log_warn("%s: %s", r->path, rc < 0 ? file_error_text(rc) : "not the curves of a fit");
        cJSON_Delete(curves);
        curves = cJSON_CreateArray();
    }
    cJSON_AddItemToObject(r->doc, "curves", curves);
    r->rc = API_OK;
}

static void get_after(uv_work_t *w, int status)
{
    get_req *r = w->data;
    if (status < 0) {
        cJSON_Delete(r->doc);
        r->doc = NULL;
        r->rc = API_UNAVAILABLE;
    }
    r->done(r->arg, r->rc, r->doc);
    free(r->path);
    free(r);
}

void laws_get(void *laws, const char *id, laws_done done, void *arg)
{
    laws_table *t = laws;
    law_entry *e = find(t, id);
    if (!e)
        return done(arg, API_NOT_FOUND, json_error_doc("no such law"));
    get_req *r = xcalloc(1, sizeof *r);
    r->work.data = r;
    r->done = done;
    r->arg = arg;
    r->path = xasprintf("%s/%s/" LAWS_FIT_FILE, t->dir, id);
    r->doc = cJSON_Duplicate(e->doc, 1);
    if (uv_queue_work(t->loop, &r->work, get_work, get_after) < 0)
        get_after(&r->work, -1);
}

/* ----------------------------------------------------------- predict */

typedef struct pred_req {
    uv_work_t work;
    laws_table *t;
    laws_done done;
    void *arg;
    law_t law;
    char id[SPOOL_ID_MAX + 1];
    char *body;
    size_t len;
    long max;
    char *jobs_dir;
    int rc;                          /* a result code (traind/result.h) */
    cJSON *doc;
} pred_req;

/* One config to predict: its label and where its run_config comes from. */
typedef struct pred_item {
    char *label;
    char *job;                          /* or NULL */
    long trial;                         /* 1-based, or 0 */
    run_config cfg;
    bool have;
    char *error;                        /* or NULL */
} pred_item;

/* The law's curve of one config at up to max points within *budget terms. */
static cJSON *predict_one(const pred_req *r, pred_item *it, double *budget)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "label", it->label);
    if (it->job)
        cJSON_AddStringToObject(o, "job", it->job);
    if (it->trial)
        cJSON_AddNumberToObject(o, "trial", (double)it->trial);
    char err[320] = "";
    law_curve c = {0};
    if (!it->have) {
        snprintf(err, sizeof err, "%s", it->error ? it->error : "no config");
    } else {
        cJSON_AddStringToObject(o, "name", it->cfg.name);
        cJSON_AddNumberToObject(o, "total_steps", (double)it->cfg.sched.total_steps);
        if (it->cfg.sched.total_steps > LAWS_MAX_STEPS)
            snprintf(err, sizeof err, "total_steps %ld is past the %ld a law is evaluated over here",
                     it->cfg.sched.total_steps, LAWS_MAX_STEPS);
        else if (law_curve_from_config(&it->cfg, it->label, &c, err, sizeof err) == 0) {
            double per = r->law.kind == LAW_MPL ? (double)lr_changes(&c) : 1;
            double room = (*budget - (double)c.n_steps) / per;
            size_t m = room >= (double)r->max ? (size_t)r->max : room >= 2 ? (size_t)room : 0;
            if (m < 2) {
                snprintf(err, sizeof err, "past this request's bound on the law's work (%.0f terms): predict "
                         "fewer or shorter runs at once", LAWS_PREDICT_WORK);
            } else {
                *budget -= (double)c.n_steps + per * (double)m;
                cJSON *pts = curve_points_json(&r->law, &c, m);
                if (!pts) {
                    snprintf(err, sizeof err, "the law cannot be evaluated over this schedule (an lr sum of 0?)");
                } else {
                    cJSON *last = cJSON_GetArrayItem(pts, cJSON_GetArraySize(pts) - 1);
                    if (last)
                        cJSON_AddNumberToObject(o, "final", cJSON_GetArrayItem(last, 1)->valuedouble);
                    cJSON_AddItemToObject(o, "points", pts);
                }
            }
        }
    }
    law_curve_free(&c);
    if (err[0]) {
        cJSON_AddStringToObject(o, "error", err);
        cJSON_AddArrayToObject(o, "points");
    }
    return o;
}

/* The configs of the body (pool): a YAML run config or sweep file, or JSON
 * {"configs": [...]} / {"jobs": [...]}.  0 with *items, or a result code with r->doc. */
static int pred_items(pred_req *r, pred_item **items_out, size_t *n_out, bool *truncated)
{
    pred_item *items = xcalloc(LAWS_PREDICT_MAX_CURVES, sizeof *items);
    size_t n = 0;
    *truncated = false;
    const char *p = r->body;
    while (p < r->body + r->len && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    diag_list_t errs = DIAG_LIST_INIT;
    cfg_parse_opts po = {.default_name = "run"};
    if (p < r->body + r->len && *p == '{') {
        cJSON *req = cJSON_ParseWithLength(r->body, r->len);
        const cJSON *configs = cJSON_GetObjectItemCaseSensitive(req, "configs");
        const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(req, "jobs");
        const cJSON *list = configs ? configs : jobs;
        if (!cJSON_IsObject(req) || !cJSON_IsArray(list) || (configs && jobs) || cJSON_GetArraySize(list) < 1) {
            cJSON_Delete(req);
            free(items);
            r->doc = json_error_doc("a JSON body must be {\"configs\": [YAML text...]} or {\"jobs\": [ID...]} "
                                    "(or send a run config or sweep file as YAML)");
            return API_INVALID;
        }
        const cJSON *x;
        cJSON_ArrayForEach(x, list)
        {
            if (n == LAWS_PREDICT_MAX_CURVES) {
                *truncated = true;
                break;
            }
            pred_item *it = &items[n++];
            if (!cJSON_IsString(x)) {
                it->label = xasprintf("%s[%zu]", configs ? "configs" : "jobs", n - 1);
                it->error = xstrdup(configs ? "not YAML text" : "not a job id");
                continue;
            }
            if (jobs) {
                it->label = xstrdup(x->valuestring);
                it->job = xstrdup(x->valuestring);
                char *path = spool_id_valid(x->valuestring)
                                 ? xasprintf("%s/%s/config.yaml", r->jobs_dir, x->valuestring) : NULL;
                struct stat st;
                if (!path || lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
                    it->error = xasprintf("no such job: %.60s", x->valuestring);
                else if (cfg_load_file(path, &(cfg_parse_opts){.default_name = x->valuestring}, &it->cfg, &errs) == 0)
                    it->have = true;
                else
                    it->error = xasprintf("its config does not validate: %s", errs.n ? errs.items[0].message : "?");
                free(path);
            } else {
                if (cfg_parse(x->valuestring, strlen(x->valuestring), &po, &it->cfg, &errs) == 0) {
                    it->have = true;
                    it->label = xstrdup(it->cfg.name);
                } else {
                    it->label = xasprintf("configs[%zu]", n - 1);
                    it->error = xasprintf("does not validate: %s%s%s", errs.n ? errs.items[0].path : "",
                                          errs.n && errs.items[0].path[0] ? ": " : "",
                                          errs.n ? errs.items[0].message : "?");
                }
            }
            diag_free(&errs);
            errs = (diag_list_t)DIAG_LIST_INIT;
        }
        cJSON_Delete(req);
    } else if (sweep_is_experiment(r->body, r->len)) {
        sweep s;
        sweep_opts so = {.cfg = {.default_name = "experiment"}};
        if (sweep_parse(r->body, r->len, &so, &s, &errs) != 0) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddFalseToObject(o, "ok");
            cJSON_AddStringToObject(o, "kind", "experiment");
            cJSON_AddItemToObject(o, "errors", json_diag_list(&errs));
            diag_free(&errs);
            free(items);
            r->doc = o;
            return API_UNPROCESSABLE;
        }
        for (size_t k = 0; k < s.n_trials; k++) {
            if (n == LAWS_PREDICT_MAX_CURVES) {
                *truncated = true;
                break;
            }
            pred_item *it = &items[n++];
            it->label = sweep_trial_label(&s, k);
            it->trial = (long)k + 1;
            /* the trial's own config, re-read: the sweep's is freed with it */
            if (cfg_parse(s.trials[k].yaml, strlen(s.trials[k].yaml), &po, &it->cfg, &errs) == 0)
                it->have = true;
            else
                it->error = xstrdup("the trial's config does not validate");
            diag_free(&errs);
            errs = (diag_list_t)DIAG_LIST_INIT;
        }
        sweep_free(&s);
    } else {
        pred_item *it = &items[n++];
        if (cfg_parse(r->body, r->len, &po, &it->cfg, &errs) != 0) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddFalseToObject(o, "ok");
            cJSON_AddStringToObject(o, "kind", "job");
            cJSON_AddItemToObject(o, "errors", json_diag_list(&errs));
            diag_free(&errs);
            free(items);
            r->doc = o;
            return API_UNPROCESSABLE;
        }
        it->have = true;
        it->label = xstrdup(it->cfg.name);
    }
    diag_free(&errs);
    *items_out = items;
    *n_out = n;
    return 0;
}

static void pred_work(uv_work_t *w)
{
    pred_req *r = w->data;
    pred_item *items = NULL;
    size_t n = 0;
    bool truncated;
    int st = pred_items(r, &items, &n, &truncated);
    if (st) {
        r->rc = st;
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "law", r->id);
    cJSON_AddStringToObject(o, "kind", law_kind_name(r->law.kind));
    cJSON *a = cJSON_AddArrayToObject(o, "curves");
    double budget = LAWS_PREDICT_WORK;
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(a, predict_one(r, &items[i], &budget));
        free(items[i].label);
        free(items[i].job);
        free(items[i].error);
        if (items[i].have)
            cfg_free(&items[i].cfg);
    }
    free(items);
    cJSON_AddBoolToObject(o, "truncated", truncated);
    r->doc = o;
    r->rc = API_OK;
}

static void pred_after(uv_work_t *w, int status)
{
    pred_req *r = w->data;
    r->t->predicting--;
    if (status < 0 || !r->doc) {
        cJSON_Delete(r->doc);
        r->doc = NULL;
        r->rc = API_UNAVAILABLE;
    }
    r->done(r->arg, r->rc, r->doc);
    free(r->body);
    free(r->jobs_dir);
    free(r);
}

void laws_predict(void *laws, const char *id, const char *body, size_t len, long max, laws_done done,
                  void *arg)
{
    laws_table *t = laws;
    if (t->stopping)
        return done(arg, API_UNAVAILABLE, NULL);
    law_entry *e = find(t, id);
    if (!e)
        return done(arg, API_NOT_FOUND, json_error_doc("no such law"));
    if (t->predicting >= LAWS_MAX_PREDICTS)
        return done(arg, API_TRY_LATER, busy_doc("predictions are running already; try again in a second", 1));
    pred_req *r = xcalloc(1, sizeof *r);
    char err[256];
    if (doc_law(e->doc, &r->law, err, sizeof err) != 0) {
        free(r);
        char *m = xasprintf("law %s cannot be read: %s", id, err);
        cJSON *o = json_error_doc(m);
        free(m);
        return done(arg, -EIO, o);
    }
    r->work.data = r;
    r->t = t;
    r->done = done;
    r->arg = arg;
    snprintf(r->id, sizeof r->id, "%s", id);
    r->body = xmalloc(len + 1);   /* the body may hold NULs: copied whole */
    memcpy(r->body, body, len);
    r->body[len] = '\0';
    r->len = len;
    r->max = max;
    r->jobs_dir = xstrdup(jobs_jobs_dir(t->jobs));
    if (uv_queue_work(t->loop, &r->work, pred_work, pred_after) < 0) {
        free(r->body);
        free(r->jobs_dir);
        free(r);
        return done(arg, -EIO, json_error_doc("cannot queue the prediction"));
    }
    t->predicting++;
}

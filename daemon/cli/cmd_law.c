/*
 * trainctl law — the loss-curve laws of traind/law.h without a daemon
 * (man trainctl(1), LAWS):
 *
 *   law fit [--law mpl|momentum] [--metric M] [--starts N] [--max-points N] [-o LAW.json] CURVE...
 *   law predict LAW.json (CURVE | CONFIG | SWEEP)... [--metric M] [--json]
 *   law optimize LAW.json [--config BASE] --steps T --peak LR [--warmup W] [--min-lr X]
 *                [--knots K] [-o CONFIG.yaml]
 *
 * A CURVE is a directory law_curve_load reads; a CONFIG a run config (its
 * schedule's predicted curve); a SWEEP an experiment file (every trial's
 * predicted final loss, ranked).  Steps are printed as the curve's own file
 * counts them: metrics.jsonl's N (N updates done, law step N - 1), loss.csv's
 * step as written, and for configs traind's N.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "traind/json.h"
#include "traind/law.h"
#include "traind/schedule.h"
#include "traind/sweep.h"
#include "traind/util.h"
#include "traind/yamltree.h"

enum { LAWCLI_PLOT_H = 16, LAWCLI_PLOT_W_MIN = 20, LAWCLI_PLOT_W_MAX = 160, LAWCLI_CURVE_POINTS = 200,
       LAWCLI_MAX_PLOTTED = 10 };

/* ---- shared -------------------------------------------------------------- */

static int lawcli_usage(const char *what)
{
    fprintf(stderr,
            "usage: trainctl law fit [--law mpl|momentum] [--metric loss|loss_avg|eval_loss] [--starts N]\n"
            "                        [--max-points N] [-o LAW.json] CURVE...\n"
            "       trainctl law predict LAW.json (CURVE | CONFIG | SWEEP)... [--metric M] [--json]\n"
            "       trainctl law optimize LAW.json [--config BASE.yaml] --steps T --peak LR [--warmup W]\n"
            "                        [--min-lr X] [--knots K] [-o CONFIG.yaml]\n");
    if (what)
        fprintf(stderr, "trainctl law: %s\n", what);
    return EXIT_USAGE;
}

static bool lawcli_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The offset from a curve's law step indexes to the steps its file logs:
 * metrics.jsonl counts updates done (law step s is its s + 1; it wins over
 * loss.csv when both are there, as law_curve_load reads). */
static long lawcli_step_offset(const char *dir)
{
    char *p = xasprintf("%s/metrics.jsonl", dir);
    bool jsonl = access(p, F_OK) == 0;
    free(p);
    return jsonl ? 1 : 0;
}

/* A number option's value: 0, or -1 after printing what is wrong. */
static int lawcli_num(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        fprintf(stderr, "trainctl law: %s: '%s' is not a number\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int lawcli_long(const char *opt, const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0) {
        fprintf(stderr, "trainctl law: %s: '%s' is not a whole number >= 0\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* The law of a LAW.json file, printed on failure (the core names the file
 * and line). */
static int lawcli_load_law(const char *path, law_t *law)
{
    char err[512];
    if (law_load_file(path, law, err, sizeof err) != 0) {
        fprintf(stderr, "trainctl law: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- the terminal plot ------------------------------------------------- */

/* One series of a plot: n points (x, y), drawn with glyph k. */
typedef struct lawcli_series {
    char *label;
    int layer;          /* drawn in layer order: observations (1) over the predictions (0) */
    size_t n;
    double *x, *y;
} lawcli_series;

static void lawcli_series_free(lawcli_series *s)
{
    free(s->label);
    free(s->x);
    free(s->y);
}

/*
 * The series overlaid on one plot as wide as the terminal, x from 0 to the
 * last step.  The y axis ends at the largest value past the first 5% of the
 * steps: a law's loss at the first steps (A S1^-alpha, S1 tiny) would
 * otherwise flatten everything after; what is above is not drawn.
 */
static void lawcli_plot(const char *title, const lawcli_series *ss, size_t ns, bool colour)
{
    double xmax = 0, lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < ss[k].n; i++)
            xmax = fmax(xmax, ss[k].x[i]);
    if (xmax <= 0)
        return;
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < ss[k].n; i++) {
            if (!isfinite(ss[k].y[i]))
                continue;
            lo = fmin(lo, ss[k].y[i]);
            if (ss[k].x[i] >= 0.05 * xmax)
                hi = fmax(hi, ss[k].y[i]);
        }
    if (!(hi >= lo))
        return;
    int pw = cli_term_width() - 13;   /* the label column (10) and " |" */
    pw = pw < LAWCLI_PLOT_W_MIN ? LAWCLI_PLOT_W_MIN : pw > LAWCLI_PLOT_W_MAX ? LAWCLI_PLOT_W_MAX : pw;
    int *grid = xmalloc(sizeof *grid * (size_t)LAWCLI_PLOT_H * (size_t)pw);
    for (int i = 0; i < LAWCLI_PLOT_H * pw; i++)
        grid[i] = -1;
    for (int layer = 0; layer < 2; layer++)
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < ss[k].n && ss[k].layer == layer; i++) {
            double y = ss[k].y[i];
            if (!isfinite(y) || y > hi)
                continue;
            int col = (int)(ss[k].x[i] / xmax * (pw - 1) + 0.5);
            int row = hi > lo ? (int)((y - lo) / (hi - lo) * (LAWCLI_PLOT_H - 1) + 0.5) : 0;
            grid[row * pw + col] = (int)k;
        }
    printf("\n%s\n", title);
    char top[32], bottom[32];
    snprintf(top, sizeof top, "%10.4g", hi);
    snprintf(bottom, sizeof bottom, "%10.4g", lo);
    cli_plot_grid(grid, LAWCLI_PLOT_H, pw, top, bottom, colour);
    free(grid);
    printf("\n%10s  0%*.0f\n", "", pw - 1, xmax);
    for (size_t k = 0; k < ns; k++) {
        printf("%10s  ", "");
        cli_plot_mark((int)k, colour);
        printf(" %s\n", ss[k].label);
    }
}

/* ---- fit --------------------------------------------------------------- */

static void lawcli_quality_row(FILE *f, const char *name, const law_quality *q, const law_quality *loo)
{
    fprintf(f, "%-24s %6zu %9.6f %9.6f %9.6f %+10.6f", name, q->n, q->r2, q->pred_err, q->worst_err, q->final_err);
    if (loo)
        fprintf(f, " %9.6f %9.6f %+10.6f", loo->pred_err, loo->worst_err, loo->final_err);
    fputc('\n', f);
}

static int lawcli_fit(int argc, char **argv)
{
    law_fit_opts o = {.kind = LAW_MPL, .loo = true};
    law_metric metric = LAW_METRIC_LOSS;
    const char *out_path = NULL;
    const char **dirs = xcalloc((size_t)argc + 1, sizeof *dirs);
    size_t nd = 0;
    int ret = EXIT_USAGE;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        long v;
        if (!strcmp(a, "--law") && has) {
            if (law_kind_parse(argv[++i], &o.kind) != 0) {
                lawcli_usage("--law: mpl or momentum");
                goto out;
            }
        } else if (!strcmp(a, "--metric") && has) {
            if (law_metric_parse(argv[++i], &metric) != 0) {
                lawcli_usage("--metric: loss, loss_avg or eval_loss");
                goto out;
            }
        } else if (!strcmp(a, "-o") && has) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--starts") && has) {
            if (lawcli_long(a, argv[++i], &v) != 0)
                goto out;
            o.starts = (int)(v > 1000 ? 1000 : v);
        } else if (!strcmp(a, "--max-points") && has) {
            if (lawcli_long(a, argv[++i], &v) != 0)
                goto out;
            o.max_points = v;
        } else if (!strcmp(a, "--")) {
            while (++i < argc)
                dirs[nd++] = argv[i];
        } else if (a[0] == '-') {
            fprintf(stderr, "trainctl law fit: unexpected argument '%s'\n", a);
            goto out;
        } else {
            dirs[nd++] = a;
        }
    }
    if (nd == 0) {
        lawcli_usage("law fit: no CURVE");
        goto out;
    }
    ret = EXIT_FAIL;
    law_curve *cv = xcalloc(nd, sizeof *cv);
    size_t loaded = 0;
    char err[512];
    for (; loaded < nd; loaded++) {
        if (law_curve_load(dirs[loaded], metric, &cv[loaded], err, sizeof err) != 0) {
            fprintf(stderr, "trainctl law fit: %s\n", err);
            goto free_curves;
        }
    }
    o.loo = nd >= 2;
    law_fit_result r;
    if (law_fit(cv, nd, &o, &r, err, sizeof err) != 0) {
        fprintf(stderr, "trainctl law fit: %s\n", err);
        goto free_curves;
    }
    cJSON *doc = law_to_json(&r.law, &r, metric);
    /* the peak lr the curves trained at: a fit holds for that one, and
     * `law optimize` takes it as its default --peak */
    double peak = 0;
    for (size_t i = 0; i < nd; i++)
        for (long s = 0; s < cv[i].n_steps; s++)
            peak = fmax(peak, cv[i].lr[s]);
    cJSON *fit = cJSON_GetObjectItemCaseSensitive(doc, "fit");
    if (fit)
        cJSON_AddNumberToObject(fit, "peak_lr", peak);
    char *text = json_print_exact(doc);
    cJSON_Delete(doc);
    /* without -o LAW.json goes to stdout and the report to stderr, so that
     * `trainctl law fit ... > LAW.json` works */
    FILE *rep = out_path ? stdout : stderr;
    fprintf(rep, "%s law fitted on %zu curve%s (%zu points, %s) in %.2fs: %d starts, %ld evaluations%s\n",
            law_kind_name(r.law.kind), nd, nd == 1 ? "" : "s", r.n_points, law_metric_name(metric), r.seconds,
            r.starts, r.evaluations, r.truncated ? " (cut short)" : "");
    for (int j = 0; j < law_n_params(r.law.kind); j++)
        fprintf(rep, "  %-7s %.9g\n", law_param_name(r.law.kind, j), r.law.p[j]);
    fprintf(rep, "%-24s %6s %9s %9s %9s %10s", "curve", "points", "R2", "PredE", "WorstE", "final err");
    if (o.loo)
        fprintf(rep, " %9s %9s %10s", "LOO PredE", "LOO Worst", "LOO final");
    fputc('\n', rep);
    double m[5] = {0};
    for (size_t i = 0; i < r.n_curves; i++) {
        const law_fit_curve *c = &r.curves[i];
        lawcli_quality_row(rep, c->name, &c->fit, c->has_loo ? &c->loo : NULL);
        m[0] += c->fit.r2, m[1] += c->fit.pred_err, m[2] += c->fit.worst_err;
        if (c->has_loo)
            m[3] += c->loo.pred_err, m[4] += c->loo.worst_err;
    }
    double nc = (double)r.n_curves;
    fprintf(rep, "%-24s %6s %9.6f %9.6f %9.6f", "mean", "", m[0] / nc, m[1] / nc, m[2] / nc);
    if (o.loo)
        fprintf(rep, " %10s %9.6f %9.6f", "", m[3] / nc, m[4] / nc);
    fputc('\n', rep);
    fflush(rep);
    if (out_path) {
        size_t len = strlen(text);
        text = xrealloc(text, len + 2);
        strcpy(text + len, "\n");
        if (write_file_atomic(out_path, text, len + 1, 0644) != 0) {
            fprintf(stderr, "trainctl law fit: cannot write %s: %s\n", out_path, strerror(errno));
            free(text);
            law_fit_result_free(&r);
            goto free_curves;
        }
        printf("wrote %s\n", out_path);
    } else {
        puts(text);
    }
    free(text);
    law_fit_result_free(&r);
    ret = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
free_curves:
    for (size_t i = 0; i < loaded; i++)
        law_curve_free(&cv[i]);
    free(cv);
out:
    free(dirs);
    return ret;
}

/* ---- predict ------------------------------------------------------------ */

/* One predicted curve: observed (NaN where none) and predicted at steps
 * (as the curve's file counts them). */
typedef struct lawcli_pred {
    char *name;
    char *kind;             /* "curve", "config", "trial" */
    size_t n;
    double *step, *obs, *pred;
    bool has_q;
    law_quality q;
    double final;           /* predicted loss at the last step of the schedule */
    long total_steps;
} lawcli_pred;

static void lawcli_pred_free(lawcli_pred *p)
{
    free(p->name);
    free(p->kind);
    free(p->step);
    free(p->obs);
    free(p->pred);
}

/* The law at up to LAWCLI_CURVE_POINTS steps of c (evenly, the last kept,
 * those where S1 is still 0 left out: the law has no value there). */
static int lawcli_pred_schedule(const law_t *law, const law_curve *c, long offset, lawcli_pred *p, char *err,
                                size_t errlen)
{
    long first = 0;
    while (first < c->n_steps && c->lr[first] <= 0)
        first++;
    if (first >= c->n_steps) {
        snprintf(err, errlen, "%s: the lr is 0 at every step", c->name);
        return -1;
    }
    long span = c->n_steps - 1 - first;
    size_t m = span + 1 < LAWCLI_CURVE_POINTS ? (size_t)span + 1 : LAWCLI_CURVE_POINTS;
    long *steps = xmalloc(m * sizeof *steps);
    for (size_t i = 0; i < m; i++)
        steps[i] = m == 1 ? first : first + (long)((double)span * (double)i / (double)(m - 1) + 0.5);
    p->n = m;
    p->step = xmalloc(m * sizeof *p->step);
    p->obs = xmalloc(m * sizeof *p->obs);
    p->pred = xmalloc(m * sizeof *p->pred);
    int rc = law_eval(law, c->lr, c->n_steps, steps, m, p->pred, NULL, err, errlen);
    for (size_t i = 0; i < m; i++) {
        p->step[i] = (double)(steps[i] + offset);
        p->obs[i] = NAN;
    }
    p->final = rc == 0 ? p->pred[m - 1] : NAN;
    p->total_steps = c->n_steps;
    free(steps);
    return rc;
}

static int lawcli_pred_curve(const law_t *law, const char *dir, law_metric metric, lawcli_pred *p)
{
    law_curve c;
    char err[512];
    if (law_curve_load(dir, metric, &c, err, sizeof err) != 0) {
        fprintf(stderr, "trainctl law predict: %s\n", err);
        return -1;
    }
    long off = lawcli_step_offset(dir);
    p->name = xstrdup(c.name);
    p->kind = xstrdup("curve");
    p->n = c.n;
    p->step = xmalloc(c.n * sizeof *p->step);
    p->obs = xmalloc(c.n * sizeof *p->obs);
    p->pred = xmalloc(c.n * sizeof *p->pred);
    int rc = law_predict_curve(law, &c, p->pred, &p->q, err, sizeof err);
    if (rc == 0) {
        for (size_t i = 0; i < c.n; i++) {
            p->step[i] = (double)(c.step[i] + off);
            p->obs[i] = c.loss[i];
        }
        p->has_q = true;
        long last = c.n_steps - 1;
        rc = law_eval(law, c.lr, c.n_steps, &last, 1, &p->final, NULL, err, sizeof err);
        p->total_steps = c.n_steps;
    }
    if (rc != 0)
        fprintf(stderr, "trainctl law predict: %s: %s\n", dir, err);
    law_curve_free(&c);
    return rc;
}

static int lawcli_pred_config(const law_t *law, const run_config *cfg, const char *name, const char *kind,
                              lawcli_pred *p, const char *path)
{
    law_curve c;
    char err[512];
    if (law_curve_from_config(cfg, name, &c, err, sizeof err) != 0) {
        fprintf(stderr, "trainctl law predict: %s: %s\n", path, err);
        return -1;
    }
    p->name = xstrdup(name);
    p->kind = xstrdup(kind);
    /* traind logs step N after N updates: law step N - 1 */
    int rc = lawcli_pred_schedule(law, &c, 1, p, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "trainctl law predict: %s: %s\n", path, err);
    law_curve_free(&c);
    return rc;
}

static int lawcli_cmp_final(const void *a, const void *b)
{
    const lawcli_pred *x = a, *y = b;
    return x->final < y->final ? -1 : x->final > y->final ? 1 : 0;
}

static cJSON *lawcli_num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static void lawcli_pred_json(cJSON *arr, const lawcli_pred *p, int rank)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "kind", p->kind);
    if (rank > 0)
        cJSON_AddNumberToObject(o, "rank", rank);
    cJSON *pts = cJSON_AddArrayToObject(o, "points");
    for (size_t i = 0; i < p->n; i++) {
        cJSON *pt = cJSON_CreateArray();
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(p->step[i]));
        cJSON_AddItemToArray(pt, lawcli_num_or_null(p->obs[i]));
        cJSON_AddItemToArray(pt, lawcli_num_or_null(p->pred[i]));
        cJSON_AddItemToArray(pts, pt);
    }
    cJSON_AddItemToObject(o, "r2", lawcli_num_or_null(p->has_q ? p->q.r2 : NAN));
    cJSON_AddItemToObject(o, "pred_err", lawcli_num_or_null(p->has_q ? p->q.pred_err : NAN));
    cJSON_AddItemToObject(o, "worst_err", lawcli_num_or_null(p->has_q ? p->q.worst_err : NAN));
    cJSON_AddItemToObject(o, "final_err", lawcli_num_or_null(p->has_q ? p->q.final_err : NAN));
    cJSON_AddNumberToObject(o, "total_steps", (double)p->total_steps);
    cJSON_AddItemToObject(o, "predicted_final", lawcli_num_or_null(p->final));
    cJSON_AddItemToArray(arr, o);
}

/* Adds p's series to a plot: its observations (when any) and its prediction. */
static void lawcli_add_series(lawcli_series *ss, size_t *ns, const lawcli_pred *p)
{
    size_t m = 0;
    for (size_t i = 0; i < p->n; i++)
        m += isfinite(p->obs[i]);
    if (m > 0) {
        lawcli_series *s = &ss[(*ns)++];
        s->label = xasprintf("%s observed", p->name);
        s->layer = 1;
        s->x = xmalloc(m * sizeof *s->x);
        s->y = xmalloc(m * sizeof *s->y);
        s->n = 0;
        for (size_t i = 0; i < p->n; i++)
            if (isfinite(p->obs[i])) {
                s->x[s->n] = p->step[i];
                s->y[s->n++] = p->obs[i];
            }
    }
    lawcli_series *s = &ss[(*ns)++];
    s->label = xasprintf("%s predicted", p->name);
    s->layer = 0;
    s->n = p->n;
    s->x = xmalloc(p->n * sizeof *s->x);
    s->y = xmalloc(p->n * sizeof *s->y);
    memcpy(s->x, p->step, p->n * sizeof *s->x);
    memcpy(s->y, p->pred, p->n * sizeof *s->y);
}

/* Draws ps, at most
 * LAWCLI_MAX_PLOTTED series per plot. */
static void lawcli_plot_preds(const char *title, const lawcli_pred *ps, size_t n, bool colour)
{
    size_t from = 0;
    while (from < n) {
        lawcli_series ss[LAWCLI_MAX_PLOTTED + 2];
        size_t ns = 0, to = from;
        while (to < n && ns + 2 <= LAWCLI_MAX_PLOTTED) {
            lawcli_add_series(ss, &ns, &ps[to]);
            to++;
        }
        lawcli_plot(title, ss, ns, colour);
        for (size_t k = 0; k < ns; k++)
            lawcli_series_free(&ss[k]);
        from = to;
    }
}

static int lawcli_predict(int argc, char **argv)
{
    const char *law_path = NULL;
    const char **targets = xcalloc((size_t)argc + 1, sizeof *targets);
    size_t nt = 0;
    bool json = false;
    law_metric metric = LAW_METRIC_LOSS;
    int ret = EXIT_USAGE;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--metric") && i + 1 < argc) {
            if (law_metric_parse(argv[++i], &metric) != 0) {
                lawcli_usage("--metric: loss, loss_avg or eval_loss");
                goto out;
            }
        } else if (!strcmp(a, "--")) {
            while (++i < argc) {
                if (!law_path)
                    law_path = argv[i];
                else
                    targets[nt++] = argv[i];
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "trainctl law predict: unexpected argument '%s'\n", a);
            goto out;
        } else if (!law_path) {
            law_path = a;
        } else {
            targets[nt++] = a;
        }
    }
    if (!law_path || nt == 0) {
        lawcli_usage("law predict: a LAW.json and at least one CURVE, CONFIG or SWEEP");
        goto out;
    }
    ret = EXIT_FAIL;
    law_t law;
    if (lawcli_load_law(law_path, &law) != 0)
        goto out;
    /* curves and configs in the order given; each sweep's trials ranked */
    size_t cap = 16, np = 0;
    lawcli_pred *ps = xcalloc(cap, sizeof *ps);
    typedef struct { size_t from, to; char *name; } group;
    group *sweeps = xcalloc(nt, sizeof *sweeps);
    size_t nsw = 0;
    bool bad = false;
    for (size_t t = 0; t < nt && !bad; t++) {
        const char *path = targets[t];
        if (lawcli_is_dir(path)) {
            if (np == cap)
                ps = xrealloc(ps, (cap *= 2) * sizeof *ps);
            memset(&ps[np], 0, sizeof ps[np]);
            if (lawcli_pred_curve(&law, path, metric, &ps[np]) != 0)
                bad = true;
            np++;
            continue;
        }
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "trainctl law predict: %s: %s\n", path, strerror(errno));
            bad = true;
            break;
        }
        diag_list_t errs = DIAG_LIST_INIT;
        if (cli_is_experiment(path)) {
            sweep s;
            if (sweep_load_file(path, NULL, &s, &errs) != 0) {
                diag_print(stderr, path, &errs);
                diag_free(&errs);
                bad = true;
                break;
            }
            diag_free(&errs);
            size_t from = np;
            for (size_t k = 0; k < s.n_trials && !bad; k++) {
                if (np == cap)
                    ps = xrealloc(ps, (cap *= 2) * sizeof *ps);
                memset(&ps[np], 0, sizeof ps[np]);
                char *label = sweep_trial_label(&s, k);
                char *name = xasprintf("%zu %s", k, label);
                free(label);
                if (lawcli_pred_config(&law, &s.trials[k].cfg, name, "trial", &ps[np], path) != 0)
                    bad = true;
                free(name);
                np++;
            }
            if (!bad) {
                qsort(ps + from, np - from, sizeof *ps, lawcli_cmp_final);
                sweeps[nsw++] = (group){from, np, xstrdup(s.name)};
            }
            sweep_free(&s);
            continue;
        }
        run_config cfg;
        if (cfg_load_file(path, NULL, &cfg, &errs) != 0) {
            diag_print(stderr, path, &errs);
            diag_free(&errs);
            bad = true;
            break;
        }
        diag_free(&errs);
        if (np == cap)
            ps = xrealloc(ps, (cap *= 2) * sizeof *ps);
        memset(&ps[np], 0, sizeof ps[np]);
        if (lawcli_pred_config(&law, &cfg, cfg.name, "config", &ps[np], path) != 0)
            bad = true;
        np++;
        cfg_free(&cfg);
    }
    if (bad)
        goto free_preds;
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(doc, "curves");
        for (size_t i = 0; i < np; i++) {
            int rank = 0;
            for (size_t g = 0; g < nsw; g++)
                if (i >= sweeps[g].from && i < sweeps[g].to)
                    rank = (int)(i - sweeps[g].from) + 1;
            lawcli_pred_json(arr, &ps[i], rank);
        }
        char *text = json_print_exact(doc);
        puts(text);
        free(text);
        cJSON_Delete(doc);
    } else {
        bool colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
        printf("%s law of %s\n", law_kind_name(law.kind), law_path);
        /* curves and configs */
        bool any = false;
        size_t i = 0;
        lawcli_pred *plain = xcalloc(np ? np : 1, sizeof *plain);
        size_t nplain = 0;
        for (i = 0; i < np; i++) {
            bool in_sweep = false;
            for (size_t g = 0; g < nsw; g++)
                in_sweep |= i >= sweeps[g].from && i < sweeps[g].to;
            if (in_sweep)
                continue;
            if (!any)
                printf("%-24s %-6s %8s %6s %9s %9s %9s %10s %10s\n", "curve", "kind", "steps", "points", "R2",
                       "PredE", "WorstE", "final err", "pred final");
            any = true;
            const lawcli_pred *p = &ps[i];
            if (p->has_q)
                printf("%-24s %-6s %8ld %6zu %9.6f %9.6f %9.6f %+10.6f %10.5f\n", p->name, p->kind, p->total_steps,
                       p->q.n, p->q.r2, p->q.pred_err, p->q.worst_err, p->q.final_err, p->final);
            else
                printf("%-24s %-6s %8ld %6s %9s %9s %9s %10s %10.5f\n", p->name, p->kind, p->total_steps, "-", "-",
                       "-", "-", "-", p->final);
            plain[nplain++] = *p;
        }
        size_t nq = 0;
        double mean[3] = {0};
        for (size_t k = 0; k < nplain; k++)
            if (plain[k].has_q)
                nq++, mean[0] += plain[k].q.r2, mean[1] += plain[k].q.pred_err, mean[2] += plain[k].q.worst_err;
        if (nq > 1)
            printf("%-24s %-6s %8s %6s %9.6f %9.6f %9.6f\n", "mean", "", "", "", mean[0] / (double)nq,
                   mean[1] / (double)nq, mean[2] / (double)nq);
        if (nplain)
            lawcli_plot_preds("loss: observed and predicted, by step", plain, nplain, colour);
        free(plain);   /* shallow copies of ps's entries */
        for (size_t g = 0; g < nsw; g++) {
            printf("%s%s: %zu trials ranked by predicted final loss\n", any || g ? "\n" : "", sweeps[g].name,
                   sweeps[g].to - sweeps[g].from);
            printf("%4s %10s %8s  %s\n", "rank", "pred final", "steps", "trial");
            for (size_t k = sweeps[g].from; k < sweeps[g].to; k++)
                printf("%4zu %10.5f %8ld  %s\n", k - sweeps[g].from + 1, ps[k].final, ps[k].total_steps,
                       ps[k].name);
            size_t shown = sweeps[g].to - sweeps[g].from;
            if (shown > LAWCLI_MAX_PLOTTED)
                shown = LAWCLI_MAX_PLOTTED;
            char *title = xasprintf("%s: predicted loss of the %zu best trials, by step", sweeps[g].name, shown);
            lawcli_plot_preds(title, ps + sweeps[g].from, shown, colour);
            free(title);
        }
    }
    ret = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
free_preds:
    for (size_t i = 0; i < np; i++)
        lawcli_pred_free(&ps[i]);
    free(ps);
    for (size_t g = 0; g < nsw; g++)
        free(sweeps[g].name);
    free(sweeps);
out:
    free(targets);
    return ret;
}

/* ---- optimize ------------------------------------------------------------ */

/* base with its schedule and optimizer.lr replaced by r's (the YAML text of
 * a whole run config, malloc'd), or NULL after printing why. */
static char *lawcli_merge_config(const char *base_path, const law_opt_result *r)
{
    char *buf = NULL, *opt = law_opt_yaml(r), *out = NULL;
    size_t len;
    diag_list_t errs = DIAG_LIST_INIT;
    ynode *base = NULL, *sched = NULL;
    if (read_file(base_path, YTREE_MAX_BYTES, &buf, &len) != 0) {
        fprintf(stderr, "trainctl law optimize: cannot read %s: %s\n", base_path, strerror(errno));
        goto out;
    }
    base = ytree_parse(buf, len, &errs);
    sched = ytree_parse(opt, strlen(opt), &errs);
    if (!base || !sched || base->kind != YNODE_MAP) {
        diag_print(stderr, base_path, &errs);
        if (base && base->kind != YNODE_MAP)
            fprintf(stderr, "trainctl law optimize: %s: not a mapping\n", base_path);
        goto out;
    }
    ymap_put(base, "schedule", ytree_clone(ymap_get(sched, "schedule")));
    char lr[40];
    snprintf(lr, sizeof lr, "%.17g", r->peak_lr);
    if (ytree_set_path(base, "optimizer.lr", yscalar_new(lr, true, 0, 0)) != 0) {
        fprintf(stderr, "trainctl law optimize: %s: optimizer is not a mapping\n", base_path);
        goto out;
    }
    char *body = ytree_emit(base);
    if (!body) {
        fprintf(stderr, "trainctl law optimize: cannot write %s's tree as YAML\n", base_path);
        goto out;
    }
    /* law_opt_yaml's first line is its comment (the predicted losses) */
    size_t cl = strcspn(opt, "\n");
    out = xasprintf("%.*s\n# from %s, its schedule replaced\n%s", (int)cl, opt, base_path, body);
    free(body);
out:
    diag_free(&errs);
    ytree_free(base);
    ytree_free(sched);
    free(buf);
    free(opt);
    return out;
}

static int lawcli_optimize(int argc, char **argv)
{
    const char *law_path = NULL, *out_path = NULL, *base_path = NULL;
    double peak = NAN, min_lr = 0;
    long steps = -1, warmup = -1, knots = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        int bad = 0;
        if (!strcmp(a, "--steps") && has)
            bad = lawcli_long(a, argv[++i], &steps);
        else if (!strcmp(a, "--peak") && has)
            bad = lawcli_num(a, argv[++i], &peak);
        else if (!strcmp(a, "--warmup") && has)
            bad = lawcli_long(a, argv[++i], &warmup);
        else if (!strcmp(a, "--min-lr") && has)
            bad = lawcli_num(a, argv[++i], &min_lr);
        else if (!strcmp(a, "--knots") && has)
            bad = lawcli_long(a, argv[++i], &knots);
        else if (!strcmp(a, "--config") && has)
            base_path = argv[++i];
        else if (!strcmp(a, "-o") && has)
            out_path = argv[++i];
        else if (a[0] == '-' || law_path) {
            fprintf(stderr, "trainctl law optimize: unexpected argument '%s'\n", a);
            return EXIT_USAGE;
        } else
            law_path = a;
        if (bad)
            return EXIT_USAGE;
    }
    if (!law_path)
        return lawcli_usage("law optimize: no LAW.json");
    law_t law;
    if (lawcli_load_law(law_path, &law) != 0)
        return EXIT_FAIL;
    /* defaults: the base config's length, peak and warmup, else the peak
     * lr the law was fitted at (LAW.json's fit.peak_lr) */
    if (base_path) {
        run_config cfg;
        diag_list_t errs = DIAG_LIST_INIT;
        if (cfg_load_file(base_path, NULL, &cfg, &errs) != 0) {
            diag_print(stderr, base_path, &errs);
            diag_free(&errs);
            return EXIT_FAIL;
        }
        diag_free(&errs);
        if (steps < 0)
            steps = cfg.sched.total_steps;
        if (!isfinite(peak))
            peak = cfg.optim.lr;
        if (warmup < 0)
            warmup = cfg.sched.warmup_steps;
        cfg_free(&cfg);
    }
    if (!isfinite(peak)) {
        char *text = NULL;
        size_t len;
        if (read_file(law_path, 1 << 24, &text, &len) == 0) {
            cJSON *doc = cJSON_Parse(text);
            const cJSON *pk = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "fit"), "peak_lr");
            if (cJSON_IsNumber(pk))
                peak = pk->valuedouble;
            cJSON_Delete(doc);
            free(text);
        }
    }
    if (steps <= 0)
        return lawcli_usage("law optimize: --steps T (> 0) or --config BASE is needed");
    if (!(peak > 0))
        return lawcli_usage("law optimize: --peak LR (> 0) is needed: LAW.json has no fit.peak_lr");
    law_opt_opts o = {.total_steps = steps, .peak_lr = peak, .warmup_steps = warmup < 0 ? 0 : warmup,
                      .min_lr = min_lr, .knots = (int)(knots > 250 ? 250 : knots)};
    law_opt_result *r = xcalloc(1, sizeof *r);
    char err[512];
    int ret = EXIT_FAIL;
    if (law_optimize(&law, &o, r, err, sizeof err) != 0) {
        fprintf(stderr, "trainctl law optimize: %s\n", err);
        goto out;
    }
    char *yaml = base_path ? lawcli_merge_config(base_path, r) : law_opt_yaml(r);
    if (!yaml)
        goto out;
    printf("%s law of %s: %ld steps, peak lr %.4g, warmup %ld, min lr %.4g\n", law_kind_name(law.kind), law_path,
           steps, peak, o.warmup_steps, min_lr);
    printf("predicted final loss: optimized %.5f, cosine %.5f (%+.5f), wsd %.5f (%+.5f)\n", r->predicted_final,
           r->cosine_final, r->cosine_final - r->predicted_final, r->wsd_final, r->wsd_final - r->predicted_final);
    printf("schedule: piecewise through %d points (step, fraction of the peak):", r->n_points);
    for (int i = 0; i < r->n_points; i++)
        printf("%s(%ld, %.4f)", i % 6 ? " " : "\n  ", r->point_step[i], r->point_ratio[i]);
    putchar('\n');
    if (out_path) {
        if (write_file_atomic(out_path, yaml, strlen(yaml), 0644) != 0) {
            fprintf(stderr, "trainctl law optimize: cannot write %s: %s\n", out_path, strerror(errno));
            free(yaml);
            goto out;
        }
        printf("wrote %s\n", out_path);
    } else {
        fputs(yaml, stdout);
    }
    free(yaml);
    ret = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
    free(r);
    return ret;
}

int cmd_law(int argc, char **argv)
{
    if (argc < 1)
        return lawcli_usage(NULL);
    if (!strcmp(argv[0], "fit"))
        return lawcli_fit(argc - 1, argv + 1);
    if (!strcmp(argv[0], "predict"))
        return lawcli_predict(argc - 1, argv + 1);
    if (!strcmp(argv[0], "optimize"))
        return lawcli_optimize(argc - 1, argv + 1);
    char *m = xasprintf("unknown subcommand '%s'", argv[0]);
    lawcli_usage(m);
    free(m);
    return EXIT_USAGE;
}

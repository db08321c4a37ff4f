/*
 * law — loss-curve laws: predict a run's loss curve from its lr schedule,
 * fit a law to curves that were trained, and find the schedule a law
 * predicts is best (trainctl law, man trainctl(1)).
 *
 * Two laws, each L(s) of a per-step lr array eta[0..T-1] (warmup included),
 * s a 0-based step index:
 *
 *   mpl       the multi-power law (Luo et al., "A Multi-Power Law for Loss
 *             Curve Prediction Across Learning Rate Schedules", ICLR 2025,
 *             arXiv 2503.12811), parameters L0 A alpha B C beta gamma:
 *               S1(s)  = eta[0] + ... + eta[s]
 *               LD(s)  = sum_{k=1..s} (eta[k] - eta[k-1])
 *                          * (1 - (1 + C eta[k]^-gamma (S1(s) - S1(k-1)))^-beta)
 *               L(s)   = L0 + A S1(s)^-alpha + B LD(s)
 *             (every gap, the warmup's rising ones too: the convention the
 *             published parameters assume)
 *   momentum  the annealing law (Tissue et al., "Scaling Law with Learning
 *             Rate Annealing", arXiv 2408.11029), parameters L0 A alpha C
 *             lambda:
 *               m_i = lambda m_{i-1} + (eta[i-1] - eta[i]),  m_0 = 0
 *               L(s) = L0 + A S1(s)^-alpha - C (m_1 + ... + m_s)
 *
 * A fit holds for one model, data, batch size and peak lr.  Errors are
 * reported as one sentence in err, naming the file and line when they come
 * from a file ("PATH:LINE: ...").
 */
#ifndef TRAIND_LAW_H
#define TRAIND_LAW_H

#include <stdbool.h>
#include <stddef.h>

#include "traind/config.h"

struct cJSON;

#define LAW_MAX_PARAMS 7

typedef enum { LAW_MPL, LAW_MOMENTUM } law_kind;

/* Indexes into law_t.p. */
enum { LAW_MPL_L0, LAW_MPL_A, LAW_MPL_ALPHA, LAW_MPL_B, LAW_MPL_C, LAW_MPL_BETA, LAW_MPL_GAMMA };
enum { LAW_MOM_L0, LAW_MOM_A, LAW_MOM_ALPHA, LAW_MOM_C, LAW_MOM_LAMBDA };

/* The momentum law's lambda in every public reimplementation. */
#define LAW_MOM_DEFAULT_LAMBDA 0.999
/* Huber's delta on log residuals, as the authors fit. */
#define LAW_HUBER_DELTA 1e-3

typedef struct law {
    law_kind kind;
    double p[LAW_MAX_PARAMS];   /* law_n_params(kind) used, in the order above */
} law_t;

/* The number of parameters of a law (mpl 7, momentum 5). */
int law_n_params(law_kind k);
/* "mpl", "momentum". */
const char *law_kind_name(law_kind k);
/* "mpl" or "momentum" into *out: 0, or -1 when neither. */
int law_kind_parse(const char *s, law_kind *out);
/* Parameter i's name as LAW.json spells it ("L0", "alpha", "lambda"). */
const char *law_param_name(law_kind k, int i);
/* Are the parameters in the law's domain (finite; A, alpha, B, C, beta,
 * gamma >= 0; 0 <= lambda < 1)?  0, or -1 with the first one that is not
 * named in err ("alpha = -0.5: an exponent must be >= 0"). */
int law_check(const law_t *law, char *err, size_t errlen);

/* ---- curves ---------------------------------------------------------- */

/* Which column of metrics.jsonl a curve reads (loss.csv has one loss). */
typedef enum { LAW_METRIC_LOSS, LAW_METRIC_LOSS_AVG, LAW_METRIC_EVAL_LOSS } law_metric;

/* "loss", "loss_avg", "eval_loss"; law_metric_parse: 0, or -1 when none. */
const char *law_metric_name(law_metric m);
int law_metric_parse(const char *s, law_metric *out);

/* A loss curve: the lr of every step and the losses observed at some. */
typedef struct law_curve {
    char *name;         /* the directory's base name (or as given) */
    char *path;         /* the directory, or NULL */
    long n_steps;       /* T: lr has one entry per step 0..T-1 */
    double *lr;
    size_t n;           /* observed points (0: a prediction only) */
    long *step;         /* n law step indexes, increasing, each < n_steps */
    double *loss;       /* n observed losses, finite and > 0 */
} law_curve;

/*
 * Loads the curve in directory dir:
 *   the loss   metrics.jsonl (traind's; metric picks the column; the line
 *              of step N, N updates done, is law step N-1, the lr index of
 *              the last update) or loss.csv (a header naming `step` and
 *              `loss` columns, any others ignored; step s is law step s);
 *   the lrs    config.yaml (traind's schedule, evaluated exactly by
 *              sched_lr) or lrs.txt (one lr per line, steps 0, 1, 2, ...).
 * When both are present metrics.jsonl and config.yaml win.  Errors (a bad
 * lr line, a NaN loss, a loss at a step past the schedule, ...) name the
 * file and line.  0, or -1 with err.  Free with law_curve_free.
 */
int law_curve_load(const char *dir, law_metric metric, law_curve *out, char *err, size_t errlen);

/* A curve with no observations whose lrs are cfg's schedule (sched_lr of
 * every step, optimizer.lr as base).  0, or -1 with err. */
int law_curve_from_config(const run_config *cfg, const char *name, law_curve *out, char *err, size_t errlen);

/* A curve with no observations over a copy of lr[0..n_steps-1]. */
int law_curve_from_lrs(const char *name, const double *lr, long n_steps, law_curve *out, char *err,
                       size_t errlen);

void law_curve_free(law_curve *c);

/* ---- evaluation -------------------------------------------------------- */

/*
 * L at steps[0..n-1] (each 0 <= step < n_steps, any order) for the lrs
 * lr[0..n_steps-1], into L[0..n-1].  With grad non-NULL also dL/dp:
 * grad[i * law_n_params + j] = dL(steps[i]) / dp[j].  Costs one pass over
 * the steps plus, for mpl, one term per (point, step with a nonzero lr
 * change before it), each a log and an exp (a pow per step is hoisted
 * out); equal to law_eval_naive within 1e-12 relative.  An lr of 0 at a
 * step with a gap makes that term 0 (its limit).  0, or -1 when a step is
 * out of range or S1 is 0 at a point (err).
 */
int law_eval(const law_t *law, const double *lr, long n_steps, const long *steps, size_t n, double *L,
             double *grad, char *err, size_t errlen);

/* The law's sums written as they read (the O(points x steps) double sum of
 * pow() calls): the reference law_eval is tested against.  No gradient. */
int law_eval_naive(const law_t *law, const double *lr, long n_steps, const long *steps, size_t n, double *L,
                   char *err, size_t errlen);

/* dL(T-1)/d eta[s] for every s into dlr[0..n_steps-1] and L(T-1) into *L:
 * what law_optimize descends.  0, or -1 with err. */
int law_eval_lr_grad(const law_t *law, const double *lr, long n_steps, double *L, double *dlr, char *err,
                     size_t errlen);

/* ---- quality ----------------------------------------------------------- */

/* How well predictions match one curve's observations. */
typedef struct law_quality {
    size_t n;           /* points */
    double r2;          /* 1 - SS_res / SS_tot */
    double mae;         /* mean |obs - pred| */
    double rmse;
    double pred_err;    /* mean |obs - pred| / obs (the paper's PredE) */
    double worst_err;   /* max |obs - pred| / obs (WorstE) */
    double final_err;   /* (pred - obs) / obs at the last point (signed) */
} law_quality;

/* The figures of pred against obs over n >= 1 points. */
void law_quality_of(const double *obs, const double *pred, size_t n, law_quality *q);

/* law_eval at c's observed steps, and law_quality_of against its losses;
 * pred (n entries) may be NULL.  0, or -1 with err (or c has no points). */
int law_predict_curve(const law_t *law, const law_curve *c, double *pred, law_quality *q, char *err,
                      size_t errlen);

/* ---- fitting ----------------------------------------------------------- */

typedef struct law_fit_opts {
    law_kind kind;          /* default mpl (0) */
    int starts;             /* starting points tried; 0 = the default (8) */
    double max_seconds;     /* stop starting new starts (and LOO refits) past this; 0 = no bound */
    long max_points;        /* thin each curve to at most this many points (evenly, last kept); 0 = all */
    int max_iter;           /* minimiser iterations per start; 0 = default (2000) */
    bool loo;               /* also leave-one-curve-out (needs >= 2 curves) */
    bool fit_lambda;        /* momentum: fit lambda too; default false: lambda stays 0.999 (init's
                             * lambda when init is given), as Tissue et al. and every reimplementation */
    const law_t *init;      /* an extra first start (of kind), or NULL */
} law_fit_opts;

/* One curve in a fit. */
typedef struct law_fit_curve {
    char *name;
    law_quality fit;        /* the fitted law on this curve */
    bool has_loo;
    law_quality loo;        /* a law fitted on the other curves, on this one */
    law_t loo_law;
} law_fit_curve;

typedef struct law_fit_result {
    law_t law;
    double objective;       /* sum of Huber(log obs - log pred) over every point */
    size_t n_points;
    int starts;             /* starts run */
    long evaluations;       /* law evaluations (with gradient) */
    double seconds;         /* wall time of the whole fit, LOO included */
    bool truncated;         /* max_seconds stopped starts or LOO refits */
    size_t n_curves;
    law_fit_curve *curves;  /* in the order given */
} law_fit_result;

/*
 * Fits opts->kind to curves (each with points) by minimising the sum over
 * every point of Huber_delta(log L_obs - log L_pred), delta = 1e-3, from
 * several starting points (positive parameters are fitted as logs), each
 * with GSL's Levenberg-Marquardt (multifit_nlinear, reweighted for Huber)
 * then GSL's BFGS (multimin vector_bfgs2) on the Huber objective, both on
 * the law's analytic gradient; starts run on at most 16 points per curve,
 * the best start is refined on every point (or max_points).  Then, with opts->loo, one refit without
 * each curve (from the best law) predicts that curve.  0, or -1 with err.
 * Free with law_fit_result_free.
 */
int law_fit(const law_curve *curves, size_t n, const law_fit_opts *opts, law_fit_result *out, char *err,
            size_t errlen);

void law_fit_result_free(law_fit_result *r);

/* ---- LAW.json ---------------------------------------------------------- */

/*
 * {"law": "mpl", "params": {"L0": .., "A": .., ...}, "fit": {...}} where
 * "fit" (only with fit non-NULL) holds the metric, the curves fitted on
 * (name, path, points, r2, pred_err, worst_err, final_err and the LOO
 * figures), the objective, seconds and the averages.  metric: as fitted.
 * Caller owns the result (cJSON_Delete); print it with json_print_exact
 * (traind/json.h) so that the parameters read back as the same doubles.
 */
struct cJSON *law_to_json(const law_t *law, const law_fit_result *fit, law_metric metric);

/* The law of a LAW.json document (anything but "law" and "params" is
 * ignored; momentum's lambda defaults to 0.999).  0, or -1 with err. */
int law_from_json(const struct cJSON *doc, law_t *out, char *err, size_t errlen);

/* Reads and checks a LAW.json file (law_from_json, law_check): errors name
 * the file, and the line of the offending key where there is one. */
int law_load_file(const char *path, law_t *out, char *err, size_t errlen);

/* ---- optimize ---------------------------------------------------------- */

typedef struct law_opt_opts {
    long total_steps;       /* T, required */
    double peak_lr;         /* required > 0: the lr after warmup (the law's loss falls as lr grows) */
    long warmup_steps;      /* linear from 0 to the peak over steps 0..W (traind's s/W) */
    double min_lr;          /* floor, >= 0, < peak; default 0 */
    int knots;              /* piecewise points after warmup; 0 = default (64), at most 250 */
    int max_iter;           /* 0 = default */
} law_opt_opts;

#define LAW_OPT_MAX_POINTS 256

typedef struct law_opt_result {
    long total_steps;
    double peak_lr;
    int n_points;                           /* the piecewise schedule's points */
    long point_step[LAW_OPT_MAX_POINTS];
    double point_ratio[LAW_OPT_MAX_POINTS]; /* of the peak; non-increasing after warmup */
    double predicted_final;                 /* L(T-1) under this schedule, as traind trains it */
    double cosine_final;                    /* L(T-1) for traind's cosine to min_lr, same warmup */
    double wsd_final;                       /* L(T-1) for traind's warmup_stable_decay (decay_ratio 0.2,
                                             * its default shapes) to min_lr, same warmup steps */
} law_opt_result;

/*
 * The schedule that minimises the law's predicted L(T-1) over schedules
 * that warm up linearly to peak_lr and then never increase (down to
 * min_lr): piecewise linear through opts->knots points, its lr per step as
 * traind's piecewise schedule computes it, descended with GSL's BFGS on
 * dL(T-1)/d(knots).  0, or -1 with err.
 */
int law_optimize(const law_t *law, const law_opt_opts *opts, law_opt_result *out, char *err, size_t errlen);

/* The result as the `optimizer.lr` and `schedule:` of a run config (YAML,
 * malloc'd): `schedule: {type: piecewise, total_steps: T, points: [...]}`
 * that traind trains as it is. */
char *law_opt_yaml(const law_opt_result *r);

/* Fills *s with r's piecewise schedule (type, total_steps, points). */
void law_opt_sched(const law_opt_result *r, sched_cfg *s);

#endif

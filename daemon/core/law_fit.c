/*
 * law_fit — fitting a law to curves, and the schedule a law predicts best
 * (traind/law.h).  The minimisation is GSL's (multimin, vector_bfgs2 on
 * the analytic gradients of law.c); this file only states the objectives.
 *
 * A fit minimises mean Huber_delta(log obs - log pred) / delta^2 (the
 * authors' objective, scaled so that its values and gradients are of order
 * 1 for BFGS's tolerances) over parameters on scales where BFGS steps well:
 * L0 as it is, every other positive parameter as its log, the momentum
 * law's lambda as its logit.  Starts run on at most FIT_COARSE_POINTS
 * points of each curve (the curves are smooth, the law's cost is linear in
 * points), the best one is then refined on every point.
 */
#include "traind/law.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_vector.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "traind/schedule.h"
#include "traind/util.h"

#define FIT_DEFAULT_STARTS 8
#define FIT_DEFAULT_ITER 400
#define FIT_COARSE_POINTS 16
#define FIT_COARSE_ITER 150
#define FIT_GRAD_TOL 1e-7

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One curve's points as a fit uses them (a subset of the curve's). */
typedef struct fit_curve {
    const law_curve *c;
    size_t n;
    long *step;
    double *logobs;
} fit_curve;

typedef struct fit_ctx {
    law_kind kind;
    int np;                 /* the law's parameters */
    int nt;                 /* fitted coordinates (momentum without lambda: 4) */
    double lambda;          /* momentum's lambda when it is not fitted */
    size_t nc;
    fit_curve *fc;
    size_t npts;
    double *L, *G;          /* scratch: the largest curve's points x np */
    long evals;
} fit_ctx;

static void fit_curves_make(fit_ctx *ctx, const law_curve *curves, size_t n, const size_t *which, long max_points)
{
    ctx->nc = n;
    ctx->fc = xcalloc(n ? n : 1, sizeof *ctx->fc);
    ctx->npts = 0;
    size_t most = 1;
    for (size_t i = 0; i < n; i++) {
        const law_curve *c = &curves[which ? which[i] : i];
        fit_curve *f = &ctx->fc[i];
        f->c = c;
        size_t m = max_points > 0 && (size_t)max_points < c->n ? (size_t)max_points : c->n;
        f->n = m;
        f->step = xmalloc(m * sizeof *f->step);
        f->logobs = xmalloc(m * sizeof *f->logobs);
        for (size_t k = 0; k < m; k++) {
            /* Evenly spread, the first and the last kept. */
            size_t idx = m == c->n ? k : m == 1 ? c->n - 1 : (size_t)llround((double)k * (double)(c->n - 1) / (double)(m - 1));
            f->step[k] = c->step[idx];
            f->logobs[k] = log(c->loss[idx]);
        }
        ctx->npts += m;
        if (m > most)
            most = m;
    }
    ctx->L = xmalloc(most * sizeof *ctx->L);
    ctx->G = xmalloc(most * LAW_MAX_PARAMS * sizeof *ctx->G);
}

static void fit_curves_free(fit_ctx *ctx)
{
    for (size_t i = 0; i < ctx->nc; i++)
        free(ctx->fc[i].step), free(ctx->fc[i].logobs);
    free(ctx->fc), free(ctx->L), free(ctx->G);
    ctx->fc = NULL;
    ctx->L = ctx->G = NULL;
}

static double sigmoid(double x)
{
    return 1 / (1 + exp(-x));
}

/* theta -> law, and dp/dtheta for the chain rule. */
static void theta_to_law(const fit_ctx *ctx, const double *th, law_t *law, double *dp)
{
    memset(law, 0, sizeof *law);
    law->kind = ctx->kind;
    law->p[0] = th[0];
    dp[0] = 1;
    int last = ctx->kind == LAW_MOMENTUM ? LAW_MOM_LAMBDA : ctx->np;
    for (int i = 1; i < ctx->np; i++) {
        if (i == last) {
            if (ctx->nt > i) {
                double s = sigmoid(th[i]);
                law->p[i] = s;
                dp[i] = s * (1 - s);
            } else {
                law->p[i] = ctx->lambda;
                dp[i] = 0;
            }
            continue;
        }
        law->p[i] = exp(th[i]);
        dp[i] = law->p[i];
    }
}

static void law_to_theta(const fit_ctx *ctx, const law_t *law, double *th)
{
    th[0] = law->p[0];
    for (int i = 1; i < ctx->nt; i++) {
        if (ctx->kind == LAW_MOMENTUM && i == LAW_MOM_LAMBDA) {
            double l = fmin(fmax(law->p[i], 1e-9), 1 - 1e-9);
            th[i] = log(l / (1 - l));
        } else {
            th[i] = log(fmax(law->p[i], 1e-300));
        }
    }
}

#define FIT_BAD 1e30   /* the objective where the law leaves its domain (a loss <= 0) */

/* The objective and (g non-NULL) its gradient in theta. */
static double objective(fit_ctx *ctx, const double *th, double *g)
{
    law_t law;
    double dp[LAW_MAX_PARAMS];
    theta_to_law(ctx, th, &law, dp);
    const double delta = LAW_HUBER_DELTA, scale = 1 / (delta * delta * (double)ctx->npts);
    double f = 0, gp[LAW_MAX_PARAMS] = {0};
    char err[160];
    ctx->evals++;
    for (size_t i = 0; i < ctx->nc; i++) {
        const fit_curve *fc = &ctx->fc[i];
        if (law_eval(&law, fc->c->lr, fc->c->n_steps, fc->step, fc->n, ctx->L, g ? ctx->G : NULL, err, sizeof err))
            goto bad;
        for (size_t k = 0; k < fc->n; k++) {
            double pred = ctx->L[k];
            if (!(pred > 0) || !isfinite(pred))
                goto bad;
            double r = fc->logobs[k] - log(pred), a = fabs(r);
            f += a <= delta ? 0.5 * r * r : delta * (a - 0.5 * delta);
            if (g) {
                double psi = a <= delta ? r : (r > 0 ? delta : -delta);
                double w = -psi / pred;
                for (int j = 0; j < ctx->np; j++)
                    gp[j] += w * ctx->G[k * (size_t)ctx->np + j];
            }
        }
    }
    if (g)
        for (int j = 0; j < ctx->nt; j++)
            g[j] = gp[j] * dp[j] * scale;
    return f * scale;
bad:
    if (g)
        for (int j = 0; j < ctx->nt; j++)
            g[j] = 0;
    return FIT_BAD;
}

static double gsl_f(const gsl_vector *x, void *p)
{
    return objective(p, x->data, NULL);
}

static void gsl_df(const gsl_vector *x, void *p, gsl_vector *g)
{
    objective(p, x->data, g->data);
}

static void gsl_fdf(const gsl_vector *x, void *p, double *f, gsl_vector *g)
{
    *f = objective(p, x->data, g->data);
}

/* BFGS from th (updated in place to the best point); returns the objective. */
static double minimise(fit_ctx *ctx, double *th, int max_iter)
{
    gsl_multimin_function_fdf fn = {.f = gsl_f, .df = gsl_df, .fdf = gsl_fdf, .n = (size_t)ctx->nt, .params = ctx};
    gsl_vector *x = gsl_vector_alloc((size_t)ctx->nt);
    for (int i = 0; i < ctx->nt; i++)
        gsl_vector_set(x, (size_t)i, th[i]);
    gsl_multimin_fdfminimizer *m = gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2,
                                                                   (size_t)ctx->nt);
    double best = objective(ctx, th, NULL);
    if (gsl_multimin_fdfminimizer_set(m, &fn, x, 0.1, 0.1) == GSL_SUCCESS) {
        /* Stop at a small gradient, or when 20 iterations gained less than
         * 1e-7 of the objective (the law's valleys are long and flat: the
         * last digits of B, C, beta move the predictions by far less than
         * the curves' noise). */
        double f_then = m->f;
        for (int it = 1; it <= max_iter; it++) {
            if (gsl_multimin_fdfminimizer_iterate(m) != GSL_SUCCESS)
                break;   /* GSL_ENOPROG: no further progress along the line */
            if (gsl_multimin_test_gradient(m->gradient, FIT_GRAD_TOL) == GSL_SUCCESS)
                break;
            if (it % 20 == 0) {
                if (f_then - m->f < 1e-7 * fabs(m->f))
                    break;
                f_then = m->f;
            }
        }
        if (getenv("TRAIND_LAW_DEBUG"))
            fprintf(stderr, "law fit: start f %.6g after %ld evaluations\n", m->f, ctx->evals);
        if (m->f < best && isfinite(m->f)) {
            best = m->f;
            for (int i = 0; i < ctx->nt; i++)
                th[i] = gsl_vector_get(m->x, (size_t)i);
        }
    }
    gsl_multimin_fdfminimizer_free(m);
    gsl_vector_free(x);
    return best;
}


/* ---- Levenberg-Marquardt on the log residuals, reweighted for Huber ----
 * BFGS alone needs thousands of evaluations in the law's long valleys;
 * GSL's trust-region Levenberg-Marquardt (multifit_nlinear) uses the
 * per-point Jacobian law_eval gives anyway and converges in tens.  Huber's
 * loss is reached by iteratively reweighted least squares: weight 1 where
 * |r| <= delta, delta/|r| beyond (its fixed point is Huber's minimum); BFGS
 * then polishes on the Huber objective itself. */

typedef struct lm_cache {
    fit_ctx *ctx;
    double th[LAW_MAX_PARAMS];
    bool have;
    double *r, *J;      /* residuals and d r / d theta of the cached theta */
    bool bad;
} lm_cache;

static int lm_eval(lm_cache *lc, const double *th)
{
    fit_ctx *ctx = lc->ctx;
    if (lc->have && !memcmp(th, lc->th, (size_t)ctx->nt * sizeof *th))
        return lc->bad ? -1 : 0;
    memcpy(lc->th, th, (size_t)ctx->nt * sizeof *th);
    lc->have = true;
    lc->bad = false;
    law_t law;
    double dp[LAW_MAX_PARAMS];
    theta_to_law(ctx, th, &law, dp);
    char err[160];
    size_t row = 0;
    ctx->evals++;
    for (size_t i = 0; i < ctx->nc; i++) {
        const fit_curve *fc = &ctx->fc[i];
        if (law_eval(&law, fc->c->lr, fc->c->n_steps, fc->step, fc->n, ctx->L, ctx->G, err, sizeof err)) {
            lc->bad = true;
            return -1;
        }
        for (size_t k = 0; k < fc->n; k++, row++) {
            double pred = ctx->L[k];
            if (!(pred > 0) || !isfinite(pred)) {
                lc->bad = true;
                return -1;
            }
            lc->r[row] = fc->logobs[k] - log(pred);
            for (int j = 0; j < ctx->nt; j++)
                lc->J[row * (size_t)ctx->nt + (size_t)j] = -ctx->G[k * (size_t)ctx->np + (size_t)j] * dp[j] / pred;
        }
    }
    return 0;
}

static int lm_f(const gsl_vector *x, void *p, gsl_vector *f)
{
    lm_cache *lc = p;
    if (lm_eval(lc, x->data) != 0)
        return GSL_EDOM;
    memcpy(f->data, lc->r, lc->ctx->npts * sizeof *lc->r);
    return GSL_SUCCESS;
}

static int lm_df(const gsl_vector *x, void *p, gsl_matrix *J)
{
    lm_cache *lc = p;
    if (lm_eval(lc, x->data) != 0)
        return GSL_EDOM;
    for (size_t i = 0; i < lc->ctx->npts; i++)
        for (int j = 0; j < lc->ctx->nt; j++)
            gsl_matrix_set(J, i, (size_t)j, lc->J[i * (size_t)lc->ctx->nt + (size_t)j]);
    return GSL_SUCCESS;
}

static void lm_irls(fit_ctx *ctx, double *th, int max_iter)
{
    size_t n = ctx->npts, p = (size_t)ctx->nt;
    if (n < p)
        return;
    lm_cache lc = {.ctx = ctx};
    lc.r = xmalloc(n * sizeof *lc.r);
    lc.J = xmalloc(n * p * sizeof *lc.J);
    gsl_multifit_nlinear_fdf fdf = {.f = lm_f, .df = lm_df, .n = n, .p = p, .params = &lc};
    gsl_multifit_nlinear_parameters par = gsl_multifit_nlinear_default_parameters();
    gsl_multifit_nlinear_workspace *w = gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &par, n, p);
    gsl_vector *x = gsl_vector_alloc(p), *wt = gsl_vector_alloc(n);
    for (size_t j = 0; j < p; j++)
        gsl_vector_set(x, j, th[j]);
    gsl_vector_set_all(wt, 1);
    for (int outer = 0; outer < 8; outer++) {
        if (gsl_multifit_nlinear_winit(x, wt, &fdf, w) != GSL_SUCCESS)
            break;
        int info;
        gsl_multifit_nlinear_driver((size_t)max_iter, 1e-10, 1e-10, 1e-12, NULL, NULL, &info, w);
        gsl_vector *xs = gsl_multifit_nlinear_position(w);
        if (lm_eval(&lc, xs->data) != 0)
            break;
        gsl_vector_memcpy(x, xs);
        bool same = true;
        for (size_t i = 0; i < n; i++) {
            double a = fabs(lc.r[i]), nw = a <= LAW_HUBER_DELTA ? 1 : LAW_HUBER_DELTA / a;
            if (fabs(nw - gsl_vector_get(wt, i)) > 1e-3)
                same = false;
            gsl_vector_set(wt, i, nw);
        }
        if (same)
            break;
    }
    /* Keep the result only where it improves the Huber objective. */
    double before = objective(ctx, th, NULL), after = objective(ctx, x->data, NULL);
    if (after < before)
        for (size_t j = 0; j < p; j++)
            th[j] = gsl_vector_get(x, j);
    gsl_vector_free(x), gsl_vector_free(wt);
    gsl_multifit_nlinear_free(w);
    free(lc.r), free(lc.J);
}

/* LM, then BFGS on the Huber objective; returns the objective. */
static double fit_from(fit_ctx *ctx, double *th, int max_iter)
{
    lm_irls(ctx, th, max_iter);
    return minimise(ctx, th, max_iter);
}

/* Start k of the deterministic set: every combination of two values of
 * alpha, L0 (below the lowest loss by a tenth or a half of the losses'
 * range), B (for mpl; the momentum law's C) and, past 8, C's scale.  The
 * scales come from the data: the peak lr, the losses' range. */
static void start_law(law_kind kind, const law_curve *curves, size_t n, int k, law_t *out)
{
    double lo = INFINITY, hi = -INFINITY, peak = 0, s1_first = INFINITY, l_first = 0;
    for (size_t i = 0; i < n; i++) {
        const law_curve *c = &curves[i];
        double s1 = 0;
        long at = 0;
        for (size_t j = 0; j < c->n; j++) {
            lo = fmin(lo, c->loss[j]);
            hi = fmax(hi, c->loss[j]);
            for (; at <= c->step[j]; at++)
                s1 += c->lr[at];
            if (j == 0 && s1 < s1_first && s1 > 0) {
                s1_first = s1;
                l_first = c->loss[j];
            }
        }
        for (long s = 0; s < c->n_steps; s++)
            peak = fmax(peak, c->lr[s]);
    }
    double range = hi > lo ? hi - lo : 0.1 * hi;
    if (!(peak > 0))
        peak = 1e-3;
    if (!isfinite(s1_first))
        s1_first = 1, l_first = hi;
    double alpha = (k & 1) ? 0.6 : 0.3;
    double L0 = lo - ((k & 2) ? 0.5 : 0.1) * range;
    double A = fmax(l_first - L0, 0.1 * range) * pow(s1_first, alpha);
    double bfrac = (k & 4) ? 0.4 : 0.1;
    double cscale = (k / 8) % 3 == 0 ? 1 : (k / 8) % 3 == 1 ? 0.1 : 10;
    memset(out, 0, sizeof *out);
    out->kind = kind;
    if (kind == LAW_MPL) {
        double gamma = 0.5;
        out->p[LAW_MPL_L0] = L0;
        out->p[LAW_MPL_A] = A;
        out->p[LAW_MPL_ALPHA] = alpha;
        out->p[LAW_MPL_B] = bfrac * range / peak;
        out->p[LAW_MPL_C] = cscale * pow(peak, gamma - 1) / 20;   /* saturates ~20 steps after a drop */
        out->p[LAW_MPL_BETA] = 0.5;
        out->p[LAW_MPL_GAMMA] = gamma;
    } else {
        out->p[LAW_MOM_L0] = L0;
        out->p[LAW_MOM_A] = A;
        out->p[LAW_MOM_ALPHA] = alpha;
        /* S2 of a full decay is ~ peak / (1 - lambda) */
        out->p[LAW_MOM_C] = cscale * bfrac * range / (peak / (1 - LAW_MOM_DEFAULT_LAMBDA));
        out->p[LAW_MOM_LAMBDA] = LAW_MOM_DEFAULT_LAMBDA;
    }
}

static void ctx_init(fit_ctx *ctx, const law_fit_opts *o)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->kind = o->kind;
    ctx->np = law_n_params(o->kind);
    ctx->nt = o->kind == LAW_MOMENTUM && !o->fit_lambda ? ctx->np - 1 : ctx->np;
    ctx->lambda = o->kind == LAW_MOMENTUM && o->init && o->init->kind == LAW_MOMENTUM ? o->init->p[LAW_MOM_LAMBDA]
                                                                                    : LAW_MOM_DEFAULT_LAMBDA;
}

static void theta_law(const fit_ctx *ctx, const double *th, law_t *law)
{
    double dp[LAW_MAX_PARAMS];
    theta_to_law(ctx, th, law, dp);
}

void law_fit_result_free(law_fit_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_curves; i++)
        free(r->curves[i].name);
    free(r->curves);
    memset(r, 0, sizeof *r);
}

int law_fit(const law_curve *curves, size_t n, const law_fit_opts *opts, law_fit_result *out, char *err,
            size_t errlen)
{
    memset(out, 0, sizeof *out);
    law_fit_opts o = opts ? *opts : (law_fit_opts){0};
    if (n == 0) {
        snprintf(err, errlen, "no curves to fit");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (curves[i].n == 0) {
            snprintf(err, errlen, "%s: no observed losses to fit", curves[i].name ? curves[i].name : "curve");
            return -1;
        }
    if (o.init && o.init->kind != o.kind) {
        snprintf(err, errlen, "the starting law is %s, the fit %s", law_kind_name(o.init->kind), law_kind_name(o.kind));
        return -1;
    }
    if (o.loo && n < 2) {
        snprintf(err, errlen, "leave-one-curve-out needs at least 2 curves");
        return -1;
    }
    gsl_set_error_handler_off();   /* GSL's default handler aborts; its status codes are checked here */
    int starts = o.starts > 0 ? o.starts : FIT_DEFAULT_STARTS;
    int max_iter = o.max_iter > 0 ? o.max_iter : FIT_DEFAULT_ITER;
    double t0 = now_s(), deadline = o.max_seconds > 0 ? t0 + o.max_seconds : INFINITY;

    fit_ctx ctx;
    ctx_init(&ctx, &o);
    long coarse = o.max_points > 0 && o.max_points < FIT_COARSE_POINTS ? o.max_points : FIT_COARSE_POINTS;
    fit_curves_make(&ctx, curves, n, NULL, coarse);
    double best_th[LAW_MAX_PARAMS] = {0}, best = INFINITY;
    int run = 0;
    for (int k = -1; k < starts; k++) {
        law_t start;
        if (k < 0) {
            if (!o.init)
                continue;
            start = *o.init;
        } else {
            start_law(o.kind, curves, n, k, &start);
            if (o.kind == LAW_MOMENTUM)
                start.p[LAW_MOM_LAMBDA] = ctx.lambda;
        }
        if (run > 0 && now_s() > deadline) {
            out->truncated = true;
            break;
        }
        double th[LAW_MAX_PARAMS];
        law_to_theta(&ctx, &start, th);
        double f = fit_from(&ctx, th, FIT_COARSE_ITER);
        run++;
        if (f < best) {
            best = f;
            memcpy(best_th, th, sizeof th);
        }
    }
    long evals = ctx.evals;
    fit_curves_free(&ctx);
    if (!(best < FIT_BAD)) {
        snprintf(err, errlen, "no start gave a law with a loss > 0 at every point");
        return -1;
    }
    /* The best start, refined on every point. */
    ctx_init(&ctx, &o);
    fit_curves_make(&ctx, curves, n, NULL, o.max_points);
    out->objective = fit_from(&ctx, best_th, max_iter) * LAW_HUBER_DELTA * LAW_HUBER_DELTA * (double)ctx.npts;
    out->n_points = ctx.npts;
    evals += ctx.evals;
    fit_curves_free(&ctx);
    theta_law(&ctx, best_th, &out->law);
    out->starts = run;

    out->n_curves = n;
    out->curves = xcalloc(n, sizeof *out->curves);
    for (size_t i = 0; i < n; i++) {
        law_fit_curve *fc = &out->curves[i];
        fc->name = xstrdup(curves[i].name ? curves[i].name : "curve");
        if (law_predict_curve(&out->law, &curves[i], NULL, &fc->fit, err, errlen) != 0) {
            law_fit_result_free(out);
            return -1;
        }
    }
    /* Leave one curve out: refit on the others from the fitted law, predict the one left out. */
    if (o.loo) {
        size_t *which = xmalloc(n * sizeof *which);
        for (size_t i = 0; i < n; i++) {
            if (now_s() > deadline) {
                out->truncated = true;
                break;
            }
            size_t m = 0;
            for (size_t j = 0; j < n; j++)
                if (j != i)
                    which[m++] = j;
            ctx_init(&ctx, &o);
            fit_curves_make(&ctx, curves, m, which, o.max_points);
            double th[LAW_MAX_PARAMS];
            memcpy(th, best_th, sizeof th);
            fit_from(&ctx, th, max_iter);
            evals += ctx.evals;
            fit_curves_free(&ctx);
            law_fit_curve *fc = &out->curves[i];
            theta_law(&ctx, th, &fc->loo_law);
            char e2[256];
            fc->has_loo = law_predict_curve(&fc->loo_law, &curves[i], NULL, &fc->loo, e2, sizeof e2) == 0;
        }
        free(which);
    }
    out->evaluations = evals;
    out->seconds = now_s() - t0;
    return 0;
}

/* ---- optimize --------------------------------------------------------- */

void law_opt_sched(const law_opt_result *r, sched_cfg *s)
{
    memset(s, 0, sizeof *s);
    s->type = SCHED_PIECEWISE;
    s->total_steps = r->total_steps;
    s->n_points = r->n_points;
    for (int i = 0; i < r->n_points; i++) {
        s->point_step[i] = r->point_step[i];
        s->point_ratio[i] = r->point_ratio[i];
    }
}

char *law_opt_yaml(const law_opt_result *r)
{
    size_t cap = 256 + (size_t)r->n_points * 48, len = 0;
    char *s = xmalloc(cap);
    len += (size_t)snprintf(s + len, cap - len,
                            "# trainctl law optimize: predicted final loss %.6g (cosine %.6g, wsd %.6g)\n"
                            "optimizer:\n  lr: %.17g\nschedule:\n  type: piecewise\n  total_steps: %ld\n  points: [",
                            r->predicted_final, r->cosine_final, r->wsd_final, r->peak_lr, r->total_steps);
    for (int i = 0; i < r->n_points; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s[%ld, %.17g]", i ? ", " : "", r->point_step[i],
                                r->point_ratio[i]);
    snprintf(s + len, cap - len, "]\n");
    return s;
}

typedef struct opt_ctx {
    const law_t *law;
    law_opt_result *r;
    int first;          /* index of the first free knot (after the warmup's points) */
    int K;              /* free knots */
    double m;           /* min ratio */
    double *lr, *dlr;
    long T;
    bool bad;
} opt_ctx;

/* u -> the knots' ratios: r_j = m + (1 - m) prod_{i <= j} sigmoid(u_i). */
static void opt_ratios(opt_ctx *c, const double *u)
{
    double P = 1;
    for (int j = 0; j < c->K; j++) {
        P *= sigmoid(u[j]);
        c->r->point_ratio[c->first + j] = c->m + (1 - c->m) * P;
    }
}

static double opt_objective(opt_ctx *c, const double *u, double *g)
{
    opt_ratios(c, u);
    sched_cfg s;
    law_opt_sched(c->r, &s);
    for (long t = 0; t < c->T; t++)
        c->lr[t] = sched_lr(&s, c->r->peak_lr, t);
    double L;
    char err[160];
    if (law_eval_lr_grad(c->law, c->lr, c->T, &L, c->dlr, err, sizeof err) != 0 || !isfinite(L)) {
        c->bad = true;
        if (g)
            memset(g, 0, (size_t)c->K * sizeof *g);
        return FIT_BAD;
    }
    if (g) {
        /* dL/d ratio_j through the hat function of knot j (f_piecewise's interpolation). */
        double *dr = xcalloc((size_t)c->r->n_points, sizeof *dr);
        const long *ps = c->r->point_step;
        int np = c->r->n_points;
        for (long t = 0; t < c->T; t++) {
            if (t <= ps[0]) {
                dr[0] += c->dlr[t];
                continue;
            }
            int i = 1;
            while (i < np && t > ps[i])
                i++;
            if (i == np) {
                dr[np - 1] += c->dlr[t];
                continue;
            }
            double w = (double)(t - ps[i - 1]) / (double)(ps[i] - ps[i - 1]);
            dr[i - 1] += c->dlr[t] * (1 - w);
            dr[i] += c->dlr[t] * w;
        }
        /* dr_j/du_i = (1 - m) P_j (1 - sigmoid(u_i)) for i <= j: a suffix sum. */
        double acc = 0;
        for (int j = c->K - 1; j >= 0; j--) {
            double rj = c->r->point_ratio[c->first + j];
            acc += dr[c->first + j] * c->r->peak_lr * (rj - c->m);
            g[j] = acc * (1 - sigmoid(u[j]));
        }
        free(dr);
    }
    return L;
}

static double opt_f(const gsl_vector *x, void *p)
{
    return opt_objective(p, x->data, NULL);
}

static void opt_df(const gsl_vector *x, void *p, gsl_vector *g)
{
    opt_objective(p, x->data, g->data);
}

static void opt_fdf(const gsl_vector *x, void *p, double *f, gsl_vector *g)
{
    *f = opt_objective(p, x->data, g->data);
}

/* L(T-1) of a traind schedule, same peak. */
static double final_of(const law_t *law, const sched_cfg *s, double peak, double *lr, long T)
{
    for (long t = 0; t < T; t++)
        lr[t] = sched_lr(s, peak, t);
    long last = T - 1;
    double L;
    char err[160];
    return law_eval(law, lr, T, &last, 1, &L, NULL, err, sizeof err) == 0 ? L : NAN;
}

int law_optimize(const law_t *law, const law_opt_opts *opts, law_opt_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    long T = opts->total_steps, W = opts->warmup_steps;
    if (law_check(law, err, errlen) != 0)
        return -1;
    if (T < 2 || T > 10000000L) {
        snprintf(err, errlen, "--steps %ld: 2 to 10000000", T);
        return -1;
    }
    if (!(opts->peak_lr > 0) || !isfinite(opts->peak_lr)) {
        snprintf(err, errlen, "--peak must be > 0");
        return -1;
    }
    if (W < 0 || W >= T - 1) {
        snprintf(err, errlen, "--warmup %ld: 0 to %ld (fewer than the steps)", W, T - 2);
        return -1;
    }
    if (!(opts->min_lr >= 0) || opts->min_lr >= opts->peak_lr) {
        snprintf(err, errlen, "--min-lr must be >= 0 and below the peak");
        return -1;
    }
    gsl_set_error_handler_off();
    int K = opts->knots > 0 ? opts->knots : 64;
    if (K > LAW_OPT_MAX_POINTS - 6)
        K = LAW_OPT_MAX_POINTS - 6;
    if (K > T - 1 - W)
        K = (int)(T - 1 - W);
    out->total_steps = T;
    out->peak_lr = opts->peak_lr;
    int np = 0;
    if (W > 0) {   /* traind's warmup lr(s) = peak s / W, as its other schedules warm up */
        out->point_step[np] = 0;
        out->point_ratio[np++] = 0;
    }
    out->point_step[np] = W;
    out->point_ratio[np++] = 1;
    int first = np;
    /* Knots closer together toward the end, where schedules differ most:
     * x_j = W + (T-1-W) (1 - (1 - j/K)^2), made strictly increasing. */
    for (int j = 1; j <= K; j++) {
        double q = 1 - (double)j / K;
        long x = W + (long)llround((double)(T - 1 - W) * (1 - q * q));
        long prev = out->point_step[np - 1];
        if (x <= prev)
            x = prev + 1;
        if (x > T - 1)
            break;
        out->point_step[np++] = x;
    }
    out->n_points = np;
    K = np - first;
    opt_ctx c = {.law = law, .r = out, .first = first, .K = K, .m = opts->min_lr / opts->peak_lr, .T = T};
    c.lr = xmalloc((size_t)T * 2 * sizeof *c.lr);
    c.dlr = c.lr + T;

    /* Two starts, a cosine and a WSD (stable, then a linear decay over the
     * last fifth) through the knots (u_j = logit(f_j / f_{j-1})); the
     * better descent wins. */
    gsl_multimin_function_fdf fn = {.f = opt_f, .df = opt_df, .fdf = opt_fdf, .n = (size_t)K, .params = &c};
    int max_iter = opts->max_iter > 0 ? opts->max_iter : 500;
    double *best = xmalloc((size_t)K * sizeof *best), fbest = INFINITY;
    gsl_vector *x = gsl_vector_alloc((size_t)K);
    for (int st = 0; st < 2; st++) {
        double prevf = 1;
        for (int j = 0; j < K; j++) {
            double p = (double)(out->point_step[first + j] - W) / (double)(T - 1 - W);
            double f = st == 0 ? 0.5 * (1 + cos(M_PI * p)) : p < 0.8 ? 1 : 1 - (p - 0.8) / 0.2;
            f = fmax(f, 1e-3);
            double s = fmin(fmax(f / prevf, 1e-6), 1 - 1e-6);
            gsl_vector_set(x, (size_t)j, log(s / (1 - s)));
            prevf = f;
        }
        double f0 = opt_objective(&c, x->data, NULL);
        if (f0 < fbest) {
            fbest = f0;
            memcpy(best, x->data, (size_t)K * sizeof *best);
        }
        gsl_multimin_fdfminimizer *m = gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2,
                                                                       (size_t)K);
        if (gsl_multimin_fdfminimizer_set(m, &fn, x, 0.5, 0.1) == GSL_SUCCESS) {
            for (int it = 0; it < max_iter; it++)
                if (gsl_multimin_fdfminimizer_iterate(m) != GSL_SUCCESS)
                    break;   /* no further progress */
            if (m->f < fbest) {
                fbest = m->f;
                memcpy(best, m->x->data, (size_t)K * sizeof *best);
            }
        }
        gsl_multimin_fdfminimizer_free(m);
    }
    gsl_vector_free(x);
    out->predicted_final = opt_objective(&c, best, NULL);
    free(best);
    int rc = 0;
    if (!isfinite(out->predicted_final) || out->predicted_final >= FIT_BAD) {
        snprintf(err, errlen, "the law cannot be evaluated on these schedules");
        rc = -1;
    }
    sched_cfg s = {.type = SCHED_COSINE, .total_steps = T, .warmup_steps = W, .min_lr_ratio = c.m};
    out->cosine_final = final_of(law, &s, opts->peak_lr, c.lr, T);
    long D = (long)llround(0.2 * (double)T);
    if (D > T - W)
        D = T - W;
    sched_cfg w = {.type = SCHED_WSD, .total_steps = T, .warmup_steps = W, .min_lr_ratio = c.m, .decay_steps = D,
                   .warmup_type = SHAPE_LINEAR, .decay_type = SHAPE_COSINE};
    out->wsd_final = final_of(law, &w, opts->peak_lr, c.lr, T);
    free(c.lr);
    return rc;
}

/*
 * law — the loss-curve laws (traind/law.h): their parameters, evaluation
 * with the analytic gradient, the naive reference, quality figures and
 * LAW.json.  Curves are read in law_curve.c, fits and the schedule
 * optimisation are in law_fit.c.
 *
 * Why law_eval is cheap: the multi-power law's LD(t) is a sum over every
 * earlier step k of a term in (1 + C eta[k]^-gamma (S1(t) - S1(k-1)))^-beta.
 * Written as it reads that is O(points x steps) pow() calls per curve, two
 * per term.  But (1) a step whose lr equals the one before has a zero gap
 * and adds exactly 0 (a constant phase is most of a WSD run), (2)
 * C eta[k]^-gamma depends on k alone, so its pow is hoisted out of the
 * point loop, and (3) the remaining term is one log1p and one expm1, whose
 * values also give the gradient (d/dbeta needs the log, d/dC and d/dgamma
 * the power) with a multiply or two.  1 - z^-beta as -expm1(-beta log1p(u))
 * is, if anything, more accurate than 1 - pow(1 + u, -beta).
 */
#include "traind/law.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/util.h"

static const char *const mpl_names[] = {"L0", "A", "alpha", "B", "C", "beta", "gamma"};
static const char *const mom_names[] = {"L0", "A", "alpha", "C", "lambda"};

int law_n_params(law_kind k)
{
    return k == LAW_MPL ? 7 : 5;
}

const char *law_kind_name(law_kind k)
{
    return k == LAW_MPL ? "mpl" : "momentum";
}

int law_kind_parse(const char *s, law_kind *out)
{
    if (s && !strcmp(s, "mpl")) {
        *out = LAW_MPL;
        return 0;
    }
    if (s && !strcmp(s, "momentum")) {
        *out = LAW_MOMENTUM;
        return 0;
    }
    return -1;
}

const char *law_param_name(law_kind k, int i)
{
    if (i < 0 || i >= law_n_params(k))
        return "?";
    return k == LAW_MPL ? mpl_names[i] : mom_names[i];
}

const char *law_metric_name(law_metric m)
{
    switch (m) {
    case LAW_METRIC_LOSS: return "loss";
    case LAW_METRIC_LOSS_AVG: return "loss_avg";
    case LAW_METRIC_EVAL_LOSS: return "eval_loss";
    }
    return "loss";
}

int law_metric_parse(const char *s, law_metric *out)
{
    static const law_metric all[] = {LAW_METRIC_LOSS, LAW_METRIC_LOSS_AVG, LAW_METRIC_EVAL_LOSS};
    for (size_t i = 0; s && i < sizeof all / sizeof *all; i++)
        if (!strcmp(s, law_metric_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    return -1;
}

int law_check(const law_t *law, char *err, size_t errlen)
{
    int np = law_n_params(law->kind);
    for (int i = 0; i < np; i++) {
        double v = law->p[i];
        const char *name = law_param_name(law->kind, i);
        if (!isfinite(v)) {
            snprintf(err, errlen, "%s is not a finite number", name);
            return -1;
        }
        if (i == 0)   /* L0: any finite value */
            continue;
        bool exponent = !strcmp(name, "alpha") || !strcmp(name, "beta") || !strcmp(name, "gamma");
        if (v < 0) {
            snprintf(err, errlen, "%s = %g: %s must be >= 0", name, v,
                     exponent ? "an exponent" : "this coefficient");
            return -1;
        }
        if (law->kind == LAW_MOMENTUM && i == LAW_MOM_LAMBDA && v >= 1) {
            snprintf(err, errlen, "lambda = %g: the momentum's decay must be in [0, 1)", v);
            return -1;
        }
    }
    return 0;
}

/* ---- evaluation --------------------------------------------------------- */

static int check_steps(long n_steps, const long *steps, size_t n, long *max_step, char *err, size_t errlen)
{
    long mx = -1;
    for (size_t i = 0; i < n; i++) {
        if (steps[i] < 0 || steps[i] >= n_steps) {
            snprintf(err, errlen, "step %ld is outside the schedule's steps 0..%ld", steps[i], n_steps - 1);
            return -1;
        }
        if (steps[i] > mx)
            mx = steps[i];
    }
    *max_step = mx;
    return 0;
}

/* cum[s] = lr[0] + ... + lr[s], summed in order (the naive sums do the same). */
static double *prefix_sums(const double *lr, long n)
{
    double *cum = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *cum);
    double s = 0;
    for (long i = 0; i < n; i++) {
        s += lr[i];
        cum[i] = s;
    }
    return cum;
}

static int s1_ok(double s1, long step, char *err, size_t errlen)
{
    if (s1 > 0 && isfinite(s1))
        return 0;
    snprintf(err, errlen, "the lr sum S1 is %g at step %ld: the law needs S1 > 0 (a step after lr > 0)", s1, step);
    return -1;
}

static int eval_mpl(const law_t *law, const double *lr, long T, const long *steps, size_t n, double *L,
                    double *grad, char *err, size_t errlen)
{
    const double L0 = law->p[LAW_MPL_L0], A = law->p[LAW_MPL_A], alpha = law->p[LAW_MPL_ALPHA];
    const double B = law->p[LAW_MPL_B], C = law->p[LAW_MPL_C], beta = law->p[LAW_MPL_BETA];
    const double gamma = law->p[LAW_MPL_GAMMA];
    long mx;
    if (check_steps(T, steps, n, &mx, err, errlen) != 0)
        return -1;
    double *cum = prefix_sums(lr, mx + 1);
    /* The steps with a gap, and what each term needs that k alone decides. */
    size_t nk = 0;
    for (long k = 1; k <= mx; k++)
        nk += lr[k] != lr[k - 1];
    long *kk = xmalloc((nk ? nk : 1) * sizeof *kk);
    double *buf = xmalloc((nk ? nk : 1) * 5 * sizeof *buf);
    double *gap = buf, *c = buf + nk, *cprev = buf + 2 * nk, *ge = buf + 3 * nk, *gcl = buf + 4 * nk;
    size_t j = 0;
    for (long k = 1; k <= mx; k++) {
        if (lr[k] == lr[k - 1])
            continue;
        kk[j] = k;
        gap[j] = lr[k] - lr[k - 1];
        cprev[j] = cum[k - 1];
        if (lr[k] > 0) {
            double lg = log(lr[k]), e = pow(lr[k], -gamma);
            c[j] = C * e;
            ge[j] = gap[j] * e;
            gcl[j] = gap[j] * c[j] * lg;
        } else {   /* eta^-gamma infinite: the term is the whole gap once anything trained after */
            c[j] = INFINITY;
            ge[j] = gcl[j] = 0;
        }
        j++;
    }
    for (size_t i = 0; i < n; i++) {
        long t = steps[i];
        double S1 = cum[t];
        if (s1_ok(S1, t, err, errlen) != 0) {
            free(cum), free(kk), free(buf);
            return -1;
        }
        double ls1 = log(S1), pw = pow(S1, -alpha);
        double LD = 0, sb = 0, sC = 0, sg = 0;
        for (size_t q = 0; q < nk && kk[q] <= t; q++) {
            double x = S1 - cprev[q];
            if (isinf(c[q])) {
                LD += x > 0 ? gap[q] : 0;
                continue;
            }
            double z = 1 + c[q] * x, lz = log(z), p = exp(-beta * lz);
            LD += gap[q] * (1 - p);
            if (grad) {
                double w = p * x / z;
                sb += gap[q] * p * lz;
                sC += ge[q] * w;
                sg += gcl[q] * w;
            }
        }
        L[i] = L0 + A * pw + B * LD;
        if (grad) {
            double *g = grad + i * 7;
            g[LAW_MPL_L0] = 1;
            g[LAW_MPL_A] = pw;
            g[LAW_MPL_ALPHA] = -A * pw * ls1;
            g[LAW_MPL_B] = LD;
            g[LAW_MPL_C] = B * beta * sC;
            g[LAW_MPL_BETA] = B * sb;
            g[LAW_MPL_GAMMA] = -B * beta * sg;
        }
    }
    free(cum), free(kk), free(buf);
    return 0;
}

static int eval_momentum(const law_t *law, const double *lr, long T, const long *steps, size_t n, double *L,
                         double *grad, char *err, size_t errlen)
{
    const double L0 = law->p[LAW_MOM_L0], A = law->p[LAW_MOM_A], alpha = law->p[LAW_MOM_ALPHA];
    const double C = law->p[LAW_MOM_C], lambda = law->p[LAW_MOM_LAMBDA];
    long mx;
    if (check_steps(T, steps, n, &mx, err, errlen) != 0)
        return -1;
    double *cum = prefix_sums(lr, mx + 1);
    /* S2[s] = m_1 + ... + m_s and its derivative in lambda, every step up to the last point. */
    double *s2 = xmalloc((size_t)(mx + 1) * 2 * sizeof *s2), *ds2 = s2 + mx + 1;
    double m = 0, dm = 0, S2 = 0, dS2 = 0;
    s2[0] = ds2[0] = 0;
    for (long s = 1; s <= mx; s++) {
        dm = m + lambda * dm;   /* d/dlambda of lambda m_{s-1} + gap, with the old m */
        m = lambda * m + (lr[s - 1] - lr[s]);
        S2 += m;
        dS2 += dm;
        s2[s] = S2;
        ds2[s] = dS2;
    }
    for (size_t i = 0; i < n; i++) {
        long t = steps[i];
        double S1 = cum[t];
        if (s1_ok(S1, t, err, errlen) != 0) {
            free(cum), free(s2);
            return -1;
        }
        double pw = pow(S1, -alpha);
        L[i] = L0 + A * pw - C * s2[t];
        if (grad) {
            double *g = grad + i * 5;
            g[LAW_MOM_L0] = 1;
            g[LAW_MOM_A] = pw;
            g[LAW_MOM_ALPHA] = -A * pw * log(S1);
            g[LAW_MOM_C] = -s2[t];
            g[LAW_MOM_LAMBDA] = -C * ds2[t];
        }
    }
    free(cum), free(s2);
    return 0;
}

int law_eval(const law_t *law, const double *lr, long n_steps, const long *steps, size_t n, double *L,
             double *grad, char *err, size_t errlen)
{
    if (law->kind == LAW_MPL)
        return eval_mpl(law, lr, n_steps, steps, n, L, grad, err, errlen);
    return eval_momentum(law, lr, n_steps, steps, n, L, grad, err, errlen);
}

int law_eval_naive(const law_t *law, const double *lr, long n_steps, const long *steps, size_t n, double *L,
                   char *err, size_t errlen)
{
    if (law->kind != LAW_MPL)   /* the momentum law's sums are one pass already */
        return eval_momentum(law, lr, n_steps, steps, n, L, NULL, err, errlen);
    const double L0 = law->p[LAW_MPL_L0], A = law->p[LAW_MPL_A], alpha = law->p[LAW_MPL_ALPHA];
    const double B = law->p[LAW_MPL_B], C = law->p[LAW_MPL_C], beta = law->p[LAW_MPL_BETA];
    const double gamma = law->p[LAW_MPL_GAMMA];
    long mx;
    if (check_steps(n_steps, steps, n, &mx, err, errlen) != 0)
        return -1;
    double *cum = prefix_sums(lr, mx + 1);
    for (size_t i = 0; i < n; i++) {
        long t = steps[i];
        if (s1_ok(cum[t], t, err, errlen) != 0) {
            free(cum);
            return -1;
        }
        double LD = 0;
        for (long k = 1; k <= t; k++) {
            double x = cum[t] - cum[k - 1];
            if (lr[k] == 0 && lr[k] != lr[k - 1]) {
                LD += x > 0 ? lr[k] - lr[k - 1] : 0;
                continue;
            }
            LD += (lr[k] - lr[k - 1]) * (1 - pow(1 + C * pow(lr[k], -gamma) * x, -beta));
        }
        L[i] = L0 + A * pow(cum[t], -alpha) + B * LD;
    }
    free(cum);
    return 0;
}

int law_eval_lr_grad(const law_t *law, const double *lr, long T, double *L, double *dlr, char *err,
                     size_t errlen)
{
    if (T < 1) {
        snprintf(err, errlen, "no steps");
        return -1;
    }
    long t = T - 1;
    double *cum = prefix_sums(lr, T);
    double S1 = cum[t];
    if (s1_ok(S1, t, err, errlen) != 0) {
        free(cum);
        return -1;
    }
    if (law->kind == LAW_MOMENTUM) {
        /* L = ... - C sum_{s=1..t} m_s, m_s = sum_{i=1..s} lambda^(s-i) (lr[i-1] - lr[i]):
         * the gap at i counts w_i = sum_{s=i..t} lambda^(s-i) times. */
        const double A = law->p[LAW_MOM_A], alpha = law->p[LAW_MOM_ALPHA];
        const double C = law->p[LAW_MOM_C], lambda = law->p[LAW_MOM_LAMBDA];
        double *w = xcalloc((size_t)T + 1, sizeof *w);
        for (long i = t; i >= 1; i--)
            w[i] = 1 + lambda * w[i + 1];
        double ds1 = -alpha * A * pow(S1, -alpha - 1);
        for (long j = 0; j <= t; j++)   /* lr[j] is the minuend of gap j+1 and the subtrahend of gap j */
            dlr[j] = ds1 - C * ((j + 1 <= t ? w[j + 1] : 0) - (j >= 1 ? w[j] : 0));
        long step = t;
        int rc = eval_momentum(law, lr, T, &step, 1, L, NULL, err, errlen);
        free(w), free(cum);
        return rc;
    }
    const double L0 = law->p[LAW_MPL_L0], A = law->p[LAW_MPL_A], alpha = law->p[LAW_MPL_ALPHA];
    const double B = law->p[LAW_MPL_B], C = law->p[LAW_MPL_C], beta = law->p[LAW_MPL_BETA];
    const double gamma = law->p[LAW_MPL_GAMMA];
    /* om[k] = 1 - z_k^-beta; own[k] = d term_k / d lr[k] through lr[k]^-gamma;
     * pre[k] = d term_k / d x_k, x_k = S1 - cum[k-1] (every lr[j], j >= k). */
    double *om = xcalloc((size_t)T + 1, 3 * sizeof *om), *own = om + T + 1, *pre = om + 2 * (T + 1);
    double LD = 0;
    for (long k = 1; k <= t; k++) {
        double g = lr[k] - lr[k - 1];
        double x = S1 - cum[k - 1];
        if (lr[k] <= 0) {   /* the limit: the whole gap, nothing to differentiate */
            om[k] = x > 0 ? 1 : 0;
            LD += g * om[k];
            continue;
        }
        double ck = C * pow(lr[k], -gamma), u = ck * x, lz = log1p(u);
        om[k] = -expm1(-beta * lz);
        LD += g * om[k];
        if (g != 0) {
            double pz = (1 - om[k]) / (1 + u);   /* z^-beta / z */
            pre[k] = g * beta * pz * ck;
            own[k] = g * beta * pz * (-gamma * u / lr[k]);
        }
    }
    double ds1 = -alpha * A * pow(S1, -alpha - 1), acc = 0;
    for (long j = 0; j <= t; j++) {
        if (j >= 1)
            acc += pre[j];
        double d = acc + (j >= 1 ? om[j] + own[j] : 0) - (j + 1 <= t ? om[j + 1] : 0);
        dlr[j] = ds1 + B * d;
    }
    *L = L0 + A * pow(S1, -alpha) + B * LD;
    free(om), free(cum);
    return 0;
}

/* ---- quality ---------------------------------------------------------- */

void law_quality_of(const double *obs, const double *pred, size_t n, law_quality *q)
{
    memset(q, 0, sizeof *q);
    q->n = n;
    if (n == 0) {
        q->r2 = NAN;
        return;
    }
    double mean = 0;
    for (size_t i = 0; i < n; i++)
        mean += obs[i];
    mean /= (double)n;
    double ss_res = 0, ss_tot = 0, abs_sum = 0, rel_sum = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = obs[i] - pred[i], rel = fabs(e) / obs[i];
        ss_res += e * e;
        ss_tot += (obs[i] - mean) * (obs[i] - mean);
        abs_sum += fabs(e);
        rel_sum += rel;
        if (rel > worst)
            worst = rel;
    }
    q->r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : NAN;
    q->mae = abs_sum / (double)n;
    q->rmse = sqrt(ss_res / (double)n);
    q->pred_err = rel_sum / (double)n;
    q->worst_err = worst;
    q->final_err = (pred[n - 1] - obs[n - 1]) / obs[n - 1];
}

int law_predict_curve(const law_t *law, const law_curve *c, double *pred, law_quality *q, char *err,
                      size_t errlen)
{
    if (c->n == 0) {
        snprintf(err, errlen, "%s: no observed losses to compare with", c->name ? c->name : "curve");
        return -1;
    }
    double *p = pred ? pred : xmalloc(c->n * sizeof *p);
    int rc = law_eval(law, c->lr, c->n_steps, c->step, c->n, p, NULL, err, errlen);
    if (rc == 0 && q)
        law_quality_of(c->loss, p, c->n, q);
    if (!pred)
        free(p);
    return rc;
}

/* ---- LAW.json -------------------------------------------------------- */

static cJSON *quality_json(const law_quality *q)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "points", (double)q->n);
    cJSON_AddNumberToObject(o, "r2", q->r2);
    cJSON_AddNumberToObject(o, "mae", q->mae);
    cJSON_AddNumberToObject(o, "rmse", q->rmse);
    cJSON_AddNumberToObject(o, "pred_err", q->pred_err);
    cJSON_AddNumberToObject(o, "worst_err", q->worst_err);
    cJSON_AddNumberToObject(o, "final_err", q->final_err);
    return o;
}

cJSON *law_to_json(const law_t *law, const law_fit_result *fit, law_metric metric)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "law", law_kind_name(law->kind));
    cJSON *params = cJSON_AddObjectToObject(doc, "params");
    for (int i = 0; i < law_n_params(law->kind); i++)
        cJSON_AddNumberToObject(params, law_param_name(law->kind, i), law->p[i]);
    if (fit) {
        cJSON *f = cJSON_AddObjectToObject(doc, "fit");
        cJSON_AddStringToObject(f, "metric", law_metric_name(metric));
        cJSON_AddStringToObject(f, "loss", "Huber(log observed - log predicted), delta 1e-3");
        cJSON_AddStringToObject(f, "minimiser", "GSL multimin vector_bfgs2");
        cJSON_AddNumberToObject(f, "objective", fit->objective);
        cJSON_AddNumberToObject(f, "points", (double)fit->n_points);
        cJSON_AddNumberToObject(f, "starts", fit->starts);
        cJSON_AddNumberToObject(f, "evaluations", (double)fit->evaluations);
        cJSON_AddNumberToObject(f, "seconds", fit->seconds);
        cJSON_AddBoolToObject(f, "truncated", fit->truncated);
        cJSON *curves = cJSON_AddArrayToObject(f, "curves");
        double sum_fit = 0, sum_loo = 0, worst_loo = 0;
        size_t n_loo = 0;
        for (size_t i = 0; i < fit->n_curves; i++) {
            const law_fit_curve *c = &fit->curves[i];
            cJSON *o = quality_json(&c->fit);
            cJSON_AddItemToObject(o, "name", cJSON_CreateString(c->name ? c->name : ""));
            if (c->has_loo) {
                cJSON *l = quality_json(&c->loo);
                cJSON *lp = cJSON_AddObjectToObject(l, "params");
                for (int k = 0; k < law_n_params(c->loo_law.kind); k++)
                    cJSON_AddNumberToObject(lp, law_param_name(c->loo_law.kind, k), c->loo_law.p[k]);
                cJSON_AddItemToObject(o, "loo", l);
                sum_loo += c->loo.pred_err;
                if (c->loo.worst_err > worst_loo)
                    worst_loo = c->loo.worst_err;
                n_loo++;
            }
            sum_fit += c->fit.pred_err;
            cJSON_AddItemToArray(curves, o);
        }
        if (fit->n_curves)
            cJSON_AddNumberToObject(f, "pred_err", sum_fit / (double)fit->n_curves);
        if (n_loo) {
            cJSON_AddNumberToObject(f, "loo_pred_err", sum_loo / (double)n_loo);
            cJSON_AddNumberToObject(f, "loo_worst_err", worst_loo);
        }
    }
    return doc;
}

int law_from_json(const cJSON *doc, law_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(doc)) {
        snprintf(err, errlen, "not a JSON object");
        return -1;
    }
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(doc, "law");
    if (!cJSON_IsString(kind) || law_kind_parse(kind->valuestring, &out->kind) != 0) {
        snprintf(err, errlen, "\"law\" must be \"mpl\" or \"momentum\"");
        return -1;
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(doc, "params");
    if (!cJSON_IsObject(params)) {
        snprintf(err, errlen, "\"params\" must be an object of the law's parameters");
        return -1;
    }
    for (const cJSON *it = params->child; it; it = it->next) {
        int i, np = law_n_params(out->kind);
        for (i = 0; i < np; i++)
            if (it->string && !strcmp(it->string, law_param_name(out->kind, i)))
                break;
        if (i == np) {
            snprintf(err, errlen, "params: \"%s\" is not a parameter of the %s law", it->string ? it->string : "",
                     law_kind_name(out->kind));
            return -1;
        }
    }
    for (int i = 0; i < law_n_params(out->kind); i++) {
        const char *name = law_param_name(out->kind, i);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
        if (!v && out->kind == LAW_MOMENTUM && i == LAW_MOM_LAMBDA) {
            out->p[i] = LAW_MOM_DEFAULT_LAMBDA;
            continue;
        }
        if (!cJSON_IsNumber(v)) {
            snprintf(err, errlen, "params.%s: %s", name, v ? "must be a number" : "missing");
            return -1;
        }
        out->p[i] = v->valuedouble;
    }
    return 0;
}

/* The 1-based line of text's first `"key"` followed by a colon (0: none). */
static int line_of_key(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; (p = strchr(p, '"')); p++) {
        if (!strncmp(p + 1, key, kl) && p[1 + kl] == '"') {
            const char *q = p + 2 + kl;
            while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
                q++;
            if (*q == ':') {
                int line = 1;
                for (const char *r = text; r < p; r++)
                    line += *r == '\n';
                return line;
            }
        }
    }
    return 0;
}

int law_load_file(const char *path, law_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    int rc = read_file(path, 1u << 24, &text, &len);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return -1;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!doc) {
        int line = 1;
        for (const char *r = text; end && r < end && r < text + len; r++)
            line += *r == '\n';
        snprintf(err, errlen, "%s:%d: not valid JSON", path, line);
        free(text);
        return -1;
    }
    char msg[256];
    rc = law_from_json(doc, out, msg, sizeof msg);
    if (rc == 0)
        rc = law_check(out, msg, sizeof msg);
    if (rc != 0) {
        /* The line of the parameter (or key) the message starts with. */
        int line = 0;
        for (int i = 0; i < law_n_params(out->kind) && !line; i++) {
            const char *name = law_param_name(out->kind, i);
            size_t nl = strlen(name);
            if ((!strncmp(msg, name, nl) && (msg[nl] == ' ' || msg[nl] == ':')) ||
                (!strncmp(msg, "params.", 7) && !strncmp(msg + 7, name, nl) && msg[7 + nl] == ':'))
                line = line_of_key(text, name);
        }
        if (!line && strstr(msg, "\"law\""))
            line = line_of_key(text, "law");
        if (!line && strstr(msg, "\"params\""))
            line = line_of_key(text, "params");
        if (line)
            snprintf(err, errlen, "%s:%d: %s", path, line, msg);
        else
            snprintf(err, errlen, "%s: %s", path, msg);
    }
    cJSON_Delete(doc);
    free(text);
    return rc;
}

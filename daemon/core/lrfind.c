/*
 * lrfind — the LR range test as fastai's lr_find.  See traind/lrfind.h.
 *
 * Matched against fastai/callback/schedule.py (fastai 2.x) and
 * fastai/learner.py's Recorder:
 *   - the sweep: LRFinder.before_batch sets lr = SchedExp(start, end)(train_iter / num_it),
 *     sched_exp = start * (end/start) ** pos, for train_iter 0..num_it-1 (so the last lr
 *     is end ** ((n-1)/n) of the way, never end itself); num_it < 6 becomes 6;
 *   - the loss: Recorder's AvgSmoothLoss(beta=0.98): val = torch.lerp(loss, val, beta)
 *     (= loss + beta * (val - loss)) from val = 0, value = val / (1 - beta ** count);
 *   - the stop: LRFinder.after_batch, after the point is recorded:
 *     best = min(best, smooth); stop if smooth > 4 * best;
 *   - the suggestions: lr_find keeps recorder.lrs/losses[num_it//10 : -5] (cut at the
 *     first NaN; we never record one), then `valley` and `steep` as below.
 */
#include "traind/lrfind.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/json.h"
#include "traind/util.h"

int lrfind_check_opts(const lrfind_opts *o, char *err, size_t errlen)
{
    if (!(isfinite(o->start) && o->start > 0 && isfinite(o->end) && o->end > o->start)) {
        snprintf(err, errlen, "the sweep needs 0 < start < end, finite (got start %g, end %g)", o->start, o->end);
        return -1;
    }
    if (o->steps < LRFIND_MIN_STEPS || o->steps > LRFIND_MAX_STEPS) {
        snprintf(err, errlen, "steps must be %d to %d, got %ld", LRFIND_MIN_STEPS, LRFIND_MAX_STEPS, o->steps);
        return -1;
    }
    return 0;
}

double lrfind_lr(const lrfind_opts *o, long i)
{
    double pos = (double)i / (double)o->steps;      /* fastai: self.train_iter / self.num_it */
    return o->start * pow(o->end / o->start, pos);  /* sched_exp: start * (end/start) ** pos */
}

/* fastai's valley (schedule.py):
 *     lds = [1]*n
 *     for i in range(1,n):
 *         for j in range(0,i):
 *             if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
 *                 lds[i] = lds[j] + 1
 *             if lds[max_end] < lds[i]:
 *                 max_end = i
 *                 max_start = max_end - lds[max_end]
 *     sections = (max_end - max_start) / 3
 *     idx = max_start + int(sections) + int(sections/2)
 * lds[i] is the length of the longest strictly decreasing subsequence
 * ending at i; the first i with the longest one ends the "valley", which
 * is taken to start lds[i] points before it (the subsequence need not be
 * contiguous: that is fastai's approximation, kept), and the suggestion
 * lies half a third past its first third — in the lower middle of the
 * descent, where the loss still falls fast.  max_end's update inside the
 * inner loop is the same as after it (lds[i] only grows), strict < keeps
 * the first of equal lengths. */
long lrfind_valley(const double *loss, size_t n)
{
    if (n == 0)
        return -1;
    long *lds = xmalloc(n * sizeof *lds);
    for (size_t i = 0; i < n; i++)
        lds[i] = 1;
    size_t max_end = 0;
    long max_start = 0;
    for (size_t i = 1; i < n; i++) {
        for (size_t j = 0; j < i; j++)
            if (loss[i] < loss[j] && lds[i] < lds[j] + 1)
                lds[i] = lds[j] + 1;
        if (lds[max_end] < lds[i]) {
            max_end = i;
            max_start = (long)max_end - lds[max_end];
        }
    }
    free(lds);
    double sections = (double)((long)max_end - max_start) / 3.0;
    /* Python's int() truncates toward zero (sections >= 0 here). */
    long idx = max_start + (long)sections + (long)(sections / 2.0);
    /* The one departure: max_start = max_end - lds[max_end] is -1 when the
     * valley starts at index 0, and with a valley of 2 points (lds 2 ending
     * at 1) idx is -1, which Python reads as the LAST point; we take the
     * first.  Every longer valley gives idx >= 0 on both sides. */
    if (idx < 0)
        idx = 0;
    if (idx >= (long)n)
        idx = (long)n - 1;
    return idx;
}

/* fastai's steep (schedule.py):
 *     grads = (losses[1:]-losses[:-1]) / (lrs[1:].log()-lrs[:-1].log())
 *     lr_steep = lrs[grads.argmin()]
 * argmin: the first of equal minima. */
long lrfind_steep(const double *lr, const double *loss, size_t n)
{
    if (n < 2)
        return -1;
    long best = -1;
    double best_g = INFINITY;
    for (size_t i = 0; i + 1 < n; i++) {
        double g = (loss[i + 1] - loss[i]) / (log(lr[i + 1]) - log(lr[i]));
        if (best < 0 || g < best_g) {
            best = (long)i;
            best_g = g;
        }
    }
    return best;
}

void lrfind_suggest(lrfind_result *res)
{
    res->suggestion = res->steepest = -1;
    /* lr_find: lrs[num_it//10 : -5] */
    long lo = res->steps / 10, hi = (long)res->n - 5;
    if (hi <= lo)
        return;
    size_t m = (size_t)(hi - lo);
    long v = lrfind_valley(res->loss + lo, m), s = lrfind_steep(res->lr + lo, res->loss + lo, m);
    res->suggestion = v < 0 ? -1 : lo + v;
    res->steepest = s < 0 ? -1 : lo + s;
}

/* ---- the probe over runner_run --------------------------------------- */

typedef struct probe_state {
    const lrfind_opts *o;
    lrfind_result *res;
    double val;                 /* the EMA, before debiasing */
    long count;
    double best;
} probe_state;

static double probe_lr(void *ctx, long step)
{
    probe_state *p = ctx;
    return lrfind_lr(p->o, step);
}

static bool probe_record(void *ctx, long step, double lr, double loss, double grad_norm)
{
    probe_state *p = ctx;
    lrfind_result *res = p->res;
    if (!isfinite(loss) || !isfinite(grad_norm)) {
        /* fastai records a NaN and cuts the curve there; we stop at once
         * (the update would make every later loss NaN as well) */
        res->end = LRFIND_END_NOT_FINITE;
        return false;
    }
    p->val = loss + LRFIND_BETA * (p->val - loss);                  /* torch.lerp(loss, val, beta) */
    p->count++;
    double smooth = p->val / (1.0 - pow(LRFIND_BETA, (double)p->count));
    res->lr[res->n] = lr;
    res->loss[res->n] = smooth;
    res->raw[res->n] = loss;
    res->n++;
    if (smooth < p->best)
        p->best = smooth;
    if (smooth > LRFIND_DIV * p->best) {
        res->end = LRFIND_END_DIVERGED;
        return false;
    }
    (void)step;
    return true;
}

int lrfind_run(const run_config *cfg, const lrfind_opts *o, const char *data_path, int threads,
               volatile sig_atomic_t *stop, lrfind_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (lrfind_check_opts(o, err, errlen) != 0)
        return -1;
    res->steps = o->steps;
    res->suggestion = res->steepest = -1;
    res->lr = xcalloc((size_t)o->steps, sizeof *res->lr);
    res->loss = xcalloc((size_t)o->steps, sizeof *res->loss);
    res->raw = xcalloc((size_t)o->steps, sizeof *res->raw);
    res->end = LRFIND_END_STEPS;
    probe_state ps = {.o = o, .res = res, .val = 0.0, .count = 0, .best = INFINITY};
    runner_probe probe = {.steps = o->steps, .lr = probe_lr, .record = probe_record, .ctx = &ps};
    runner_opts ro = {.data_path = data_path, .threads = threads, .fresh = true, .stop = stop, .probe = &probe};
    run_result r = runner_run(cfg, &ro, err, errlen);
    if (r == RUN_STOPPED)
        res->end = LRFIND_END_STOPPED;
    else if (r != RUN_OK) {
        lrfind_free(res);
        return -1;
    }
    lrfind_suggest(res);
    return 0;
}

const char *lrfind_end_name(lrfind_end e)
{
    switch (e) {
    case LRFIND_END_DIVERGED: return "diverged";
    case LRFIND_END_NOT_FINITE: return "not_finite";
    case LRFIND_END_STOPPED: return "stopped";
    default: return "steps";
    }
}

static cJSON *lr_or_null(const lrfind_result *res, long i)
{
    return i >= 0 ? cJSON_CreateNumber(res->lr[i]) : cJSON_CreateNull();
}

char *lrfind_json(const lrfind_result *res, const lrfind_opts *o)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "suggestion", lr_or_null(res, res->suggestion));
    cJSON_AddItemToObject(doc, "steepest", lr_or_null(res, res->steepest));
    cJSON_AddNumberToObject(doc, "suggestion_index", (double)res->suggestion);
    cJSON_AddNumberToObject(doc, "steepest_index", (double)res->steepest);
    cJSON_AddStringToObject(doc, "stopped", lrfind_end_name(res->end));
    cJSON_AddNumberToObject(doc, "steps", (double)res->steps);
    cJSON_AddNumberToObject(doc, "start", o->start);
    cJSON_AddNumberToObject(doc, "end", o->end);
    cJSON *pts = cJSON_AddArrayToObject(doc, "points"), *raw = cJSON_AddArrayToObject(doc, "raw_losses");
    for (size_t i = 0; i < res->n; i++) {
        cJSON *pt = cJSON_CreateArray();
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(res->lr[i]));
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(res->loss[i]));
        cJSON_AddItemToArray(pts, pt);
        cJSON_AddItemToArray(raw, cJSON_CreateNumber(res->raw[i]));
    }
    char *text = json_print_exact(doc);
    cJSON_Delete(doc);
    return text;
}

void lrfind_free(lrfind_result *res)
{
    free(res->lr);
    free(res->loss);
    free(res->raw);
    memset(res, 0, sizeof *res);
    res->suggestion = res->steepest = -1;
}

/*
 * compare — aligned, thinned series of several jobs (traind/compare.h).
 */
#include "traind/compare.h"

#include <cjson/cJSON.h>
#include <math.h>

static cJSON *num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

cJSON *compare_doc(const char *const *ids, const train_point *const *pts, const size_t *n, size_t n_jobs, long max)
{
    if (max < 2)
        max = 2;
    if (max > COMPARE_MAX_POINTS)
        max = COMPARE_MAX_POINTS;
    long lo = -1, hi = -1;
    for (size_t k = 0; k < n_jobs; k++) {
        if (!n[k])
            continue;
        if (lo < 0 || pts[k][0].step < lo)
            lo = pts[k][0].step;
        if (pts[k][n[k] - 1].step > hi)
            hi = pts[k][n[k] - 1].step;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *steps = cJSON_AddArrayToObject(o, "steps");
    long g = 0;   /* grid size */
    long grid[COMPARE_MAX_POINTS];
    if (lo >= 0) {
        long span = hi - lo;
        g = span + 1 < max ? span + 1 : max;
        for (long i = 0; i < g; i++) {
            grid[i] = g == 1 ? lo : lo + (long)((double)span * i / (double)(g - 1) + 0.5);
            cJSON_AddItemToArray(steps, cJSON_CreateNumber((double)grid[i]));
        }
    }
    cJSON *jobs = cJSON_AddArrayToObject(o, "jobs");
    for (size_t k = 0; k < n_jobs; k++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", ids[k]);
        cJSON *loss = cJSON_AddArrayToObject(j, "loss"), *lr = cJSON_AddArrayToObject(j, "lr");
        size_t at = 0;   /* the last point at or before grid[i] is pts[k][at - 1] */
        for (long i = 0; i < g; i++) {
            while (at < n[k] && pts[k][at].step <= grid[i])
                at++;
            bool in = at > 0 && grid[i] <= pts[k][n[k] - 1].step;
            cJSON_AddItemToArray(loss, num_or_null(in ? pts[k][at - 1].loss : NAN));
            cJSON_AddItemToArray(lr, num_or_null(in ? pts[k][at - 1].lr : NAN));
        }
        double best = NAN;
        long best_step = -1;
        for (size_t p = 0; p < n[k]; p++)
            if (isfinite(pts[k][p].eval_loss) && !(pts[k][p].eval_loss >= best)) {
                best = pts[k][p].eval_loss;
                best_step = pts[k][p].step;
            }
        cJSON_AddItemToObject(j, "final_loss", num_or_null(n[k] ? pts[k][n[k] - 1].loss : NAN));
        cJSON_AddItemToObject(j, "final_loss_avg", num_or_null(n[k] ? pts[k][n[k] - 1].loss_avg : NAN));
        cJSON_AddItemToObject(j, "best_eval_loss", num_or_null(best));
        if (best_step >= 0)
            cJSON_AddNumberToObject(j, "best_eval_step", (double)best_step);
        else
            cJSON_AddNullToObject(j, "best_eval_step");
        cJSON_AddNumberToObject(j, "points", (double)n[k]);
        cJSON_AddItemToArray(jobs, j);
    }
    return o;
}

/*
 * compare — GET /compare?ids=a,b,c&max=N: several jobs' loss and lr curves
 * on one shared, thinned step grid (what a page overlays), plus what a
 * comparison table needs of each (final loss, best eval loss and its step).
 *
 * A pure function of copied-out points (train_point, api.h), so it is tested
 * without a daemon.  The grid is at most max steps spread evenly from the
 * first step any job logged to the last; a job's value at a grid step is
 * that of its last point at or before it, null before its first point and
 * after its last.
 */
#ifndef TRAIND_COMPARE_H
#define TRAIND_COMPARE_H

#include <stddef.h>
#include "traind/api.h"

#define COMPARE_MAX_IDS 32
#define COMPARE_MAX_POINTS 2000
/* What one job may cost a request on the loop: a history in memory is
 * copied thinned evenly to at most this many points, first and last kept,
 * whatever metrics_keep is ("points" and the best eval loss are then of
 * those); an id named twice is copied or read once. */
#define COMPARE_COPY_POINTS 8000

/* {"steps":[...], "jobs":[{"id","loss":[...],"lr":[...],"final_loss",
 * "best_eval_loss","best_eval_step","points"}]}; pts[k] ascending by step. */
cJSON *compare_doc(const char *const *ids, const train_point *const *pts, const size_t *n, size_t n_jobs, long max);

#endif

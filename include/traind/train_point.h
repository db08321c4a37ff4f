/*
 * train_point — one training point: the numbers a run reports at a step.
 * The one record of them, owned by the core: the runner's events
 * (traind/runner.h), the worker → daemon progress lines (traind/progress.h),
 * a job's latest progress and its metrics history (traind/jobs.h) and the
 * API's metrics points all embed it.  A new metric is a field here and its
 * key in the JSON that carries it (progress.c, jobs_json.c/jobs_history.c,
 * api.c).
 */
#ifndef TRAIND_TRAIN_POINT_H
#define TRAIND_TRAIN_POINT_H

typedef struct train_point {
    long step;             /* updates completed; -1 when unknown */
    double lr;             /* the lr the last update used */
    double loss;           /* that update's loss (before the update) */
    double loss_avg;       /* mean loss since the previous metrics point */
    double grad_norm;      /* global L2 norm before clipping */
    double eval_loss;      /* NAN when none */
    double time;           /* seconds of training ("time" in metrics.jsonl, "elapsed_s" in progress) */
    double steps_per_s;    /* recent rate */
} train_point;

struct cJSON;

/* step -1, every number NAN (unknown). */
void train_point_clear(train_point *p);

/* A metrics point as metrics.jsonl and GET /jobs/{id}/metrics show it:
 * {"step","lr","loss","loss_avg","grad_norm","time"[,"eval_loss"]}, a
 * non-finite number as null, eval_loss only when there is one. */
struct cJSON *train_point_json(const train_point *p);

/* Such an object read back (a missing or non-number field is NAN; no
 * steps_per_s).  0, or -EINVAL when it has no step >= 0. */
int train_point_from_json(const struct cJSON *o, train_point *p);

#endif

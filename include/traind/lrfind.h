/*
 * lrfind — the LR range test (Smith 2017, "Cyclical Learning Rates for
 * Training Neural Networks"), as fastai's Learner.lr_find does it: train the
 * config's model, data and optimizer from their initialisation for `steps`
 * updates while the lr grows exponentially from `start` to `end`, record
 * the debiased exponential moving average of the loss (beta 0.98) against
 * the lr, stop once that exceeds 4x the best seen (or the loss is not
 * finite), and suggest an lr by fastai's "valley" rule; the steepest point
 * of the curve comes with it.
 *
 * The training is runner_run's own loop (traind/runner.h, runner_probe):
 * only the lr of each update is the sweep's instead of the schedule's, and
 * nothing is written anywhere.
 *
 * Its limit (man/trainctl.1, lr-find): for pre-training it brackets the
 * peak lr — the loss of a few hundred steps says where training is too
 * slow and where it blows up — but the best peak lr of a real run still
 * depends on its schedule (warmup, decay) and on its horizon (total_steps).
 */
#ifndef TRAIND_LRFIND_H
#define TRAIND_LRFIND_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "traind/config.h"
#include "traind/runner.h"

#define LRFIND_DEFAULT_START 1e-7
#define LRFIND_DEFAULT_END 10.0
#define LRFIND_DEFAULT_STEPS 100
#define LRFIND_MIN_STEPS 6          /* fastai: num_it < 6 becomes 6 */
#define LRFIND_MAX_STEPS 100000
#define LRFIND_BETA 0.98            /* the loss EMA's beta (fastai's AvgSmoothLoss) */
#define LRFIND_DIV 4.0              /* stop once the smoothed loss > LRFIND_DIV x the best */

typedef struct lrfind_opts {
    double start, end;              /* 0 < start < end */
    long steps;                     /* LRFIND_MIN_STEPS..LRFIND_MAX_STEPS */
} lrfind_opts;

/* Why the sweep ended. */
typedef enum {
    LRFIND_END_STEPS,               /* all steps trained */
    LRFIND_END_DIVERGED,            /* the smoothed loss went over LRFIND_DIV x its best */
    LRFIND_END_NOT_FINITE,          /* the loss or the gradient norm was NaN or Inf */
    LRFIND_END_STOPPED,             /* asked to stop (a signal) */
} lrfind_end;

typedef struct lrfind_result {
    size_t n;                       /* points recorded */
    double *lr, *loss, *raw;        /* the lr of each update, the smoothed loss, the batch's own loss */
    lrfind_end end;
    long steps;                     /* the sweep's length asked for */
    long suggestion, steepest;      /* indices into the points; -1: too few points to say */
} lrfind_result;

/* "1e-07".."10" and 6..100000: 0, or -1 with a message in err. */
int lrfind_check_opts(const lrfind_opts *o, char *err, size_t errlen);

/* The lr of the update at 0-based step i: fastai's SchedExp at pos i/steps,
 * start * (end / start) ** (i / steps). */
double lrfind_lr(const lrfind_opts *o, long i);

/* fastai's valley rule on n losses: the index it suggests; -1 when n == 0. */
long lrfind_valley(const double *loss, size_t n);

/* fastai's steep rule: the index i of the most negative slope
 * (loss[i+1] - loss[i]) / (ln lr[i+1] - ln lr[i]); -1 when n < 2. */
long lrfind_steep(const double *lr, const double *loss, size_t n);

/* Sets res->suggestion and res->steepest from res's points as fastai's
 * lr_find does: both rules see the points [steps / 10, n - 5) only. */
void lrfind_suggest(lrfind_result *res);

/* Runs the test on cfg (data_path: the resolved data file or NULL).  0
 * with *res (lrfind_free it), or -1 with a message in err (the model or
 * data could not be set up). */
int lrfind_run(const run_config *cfg, const lrfind_opts *o, const char *data_path, int threads,
               volatile sig_atomic_t *stop, lrfind_result *res, char *err, size_t errlen);

/* {"suggestion": lr|null, "steepest": lr|null, "suggestion_index", "steepest_index",
 *  "stopped": "steps"|"diverged"|"not_finite"|"stopped", "steps", "start", "end",
 *  "points": [[lr, smoothed loss], ...], "raw_losses": [...]} — malloc'd text, NULL when out of memory. */
char *lrfind_json(const lrfind_result *res, const lrfind_opts *o);

const char *lrfind_end_name(lrfind_end e);

void lrfind_free(lrfind_result *res);

#endif

/*
 * sched_curve — a config's lr schedule as a curve of (step, lr) points,
 * thinned to at most max points (the first and last step always kept), and
 * the distinct curves of a sweep's trials.  Shared by `trainctl schedule`
 * (every step) and POST /schedule (thinned for the dashboard).
 */
#ifndef TRAIND_SCHED_CURVE_H
#define TRAIND_SCHED_CURVE_H

#include <stddef.h>

#include "traind/config.h"

typedef struct sched_curve {
    size_t trial;         /* the first config (index) with this curve */
    long total_steps;
    size_t n;             /* points */
    long *steps;          /* n steps, increasing; NULL = every step (steps[i] = i) */
    double *lr;           /* n lrs: sched_lr of each step */
} sched_curve;

/* The k-th of m steps evenly spread over 0..T-1 (round(k (T-1) / (m-1));
 * m == 1: step 0). */
long sched_curve_step(long T, size_t m, size_t k);

/* cfg's curve: every step when max is 0 (or >= total_steps), else max
 * evenly spread steps.  Free with sched_curve_free. */
void sched_curve_of(const run_config *cfg, size_t max, sched_curve *out);

/* The distinct curves of n configs, in config order: a config whose curve
 * equals (at every point shown) one found before adds none.  out has room
 * for n; returns how many were found. */
size_t sched_curves_distinct(const run_config *const *cfgs, size_t n, size_t max, sched_curve *out);

void sched_curve_free(sched_curve *c);

#endif

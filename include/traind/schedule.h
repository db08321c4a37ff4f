/*
 * schedule — the learning-rate schedules of traind-run.yaml(5) SCHEDULE as closed-form
 * functions of the step, in double precision.  Nothing to save, nothing to
 * drift: resuming at step s gives exactly the lr of an uninterrupted run.
 */
#ifndef TRAIND_SCHEDULE_H
#define TRAIND_SCHEDULE_H

#include "traind/config.h"

/* The multiplier f(s) of the base lr for the update at 0-based step s. */
double sched_factor(const sched_cfg *s, long step);

/* base_lr * sched_factor(): the lr the update at step s uses. */
double sched_lr(const sched_cfg *s, double base_lr, long step);

#endif

/*
 * optim_sf — schedule-free AdamW (optimizer.type: schedule_free_adamw):
 * Defazio et al., "The Road Less Scheduled" (NeurIPS 2024), as
 * facebookresearch/schedule_free computes it (schedulefree/
 * adamw_schedulefree.py, AdamWScheduleFree, v1.4.1).
 *
 * Three sequences of parameters: z, the plain AdamW-like iterate; x, the
 * weighted average of the z's (the evaluation weights); y, the point between
 * them where the gradient is taken.  The parameters hold y while training;
 * the optimizer keeps z (optim_state.m), the second moment v (.v), the step
 * count k (.step), weight_sum and lr_max, and never stores x: it is
 * optim_sf_eval_params(y, z).  One step, k from 0:
 *
 *   lr      = lr_sched * ((k+1)/warmup_steps if k < warmup_steps else 1)
 *   lr_max  = max(lr_max, lr)                              (starts at -1)
 *   weight  = (k+1)^r * lr_max^weight_lr_power;  weight_sum += weight
 *   c       = weight / weight_sum                  (0 while the sum is 0)
 *   v       = b2*v + (1-b2)*g^2;  gn = g / (sqrt(v / (1 - b2^(k+1))) + eps)
 *   gn     += weight_decay * y
 *   y       = lerp(y, z, c);  y += lr*(b1*(1-c) - 1)*gn;  z -= lr*gn
 *
 * with z a copy of y before the first step.  Evaluation, sampling and
 * checkpoints' weights are x = lerp(y, z, 1 - 1/b1) (the reference's
 * optimizer.eval()); training goes on from y, which a checkpoint keeps too.
 */
#ifndef TRAIND_OPTIM_SF_H
#define TRAIND_OPTIM_SF_H

#include <stddef.h>
#include "traind/config.h"
#include "traind/optim.h"

/* One step of y (n floats, the parameters) with grads at the schedule's lr
 * lr_sched.  Expects st->step already incremented (optim_step does it):
 * k = st->step - 1; at k = 0 it copies y into z and starts weight_sum and
 * lr_max (st->v must be zeros then, as optim_state's buffers start). */
void optim_sf_step(const optim_cfg *cfg, optim_state *st, float *y, const float *grads, size_t n,
                   double lr_sched);

/* The evaluation weights x = lerp(y, z, 1 - 1/beta1) into x (n floats; x
 * may not alias y or z). */
void optim_sf_eval_params(const optim_cfg *cfg, const float *y, const float *z, float *x, size_t n);

#endif

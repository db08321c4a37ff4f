/*
 * optim — AdamW, Adam and SGD over one flat float array of parameters, as
 * torch.optim computes them (torch 1.13 single-tensor CPU path), plus
 * gradient clipping as torch.nn.utils.clip_grad_norm_.  Schedule-free
 * AdamW is traind/optim_sf.h and Muon, which needs the model's matrices,
 * traind/optim_muon.h, both reached through optim_step.
 */
#ifndef TRAIND_OPTIM_H
#define TRAIND_OPTIM_H

#include <stddef.h>
#include "traind/config.h"

struct optim_muon;

/* State buffers are n floats each, zeroed before the first step.  m is
 * exp_avg (or the SGD / Muon momentum buffer; schedule_free_adamw's z), v
 * is exp_avg_sq (unused by SGD).  muon: the plan of OPT_MUON
 * (traind/optim_muon.h: which tensors are hidden matrices, and scratch),
 * NULL for the other types. */
typedef struct optim_state {
    float *m;
    float *v;
    long step;      /* updates taken so far */
    /* schedule_free_adamw only (traind/optim_sf.h); set by its first step */
    double weight_sum;  /* sum of the averaging weights so far */
    double lr_max;      /* the largest lr so far */
    struct optim_muon *muon;
} optim_state;

/* One update of params (n floats) with grads at learning rate lr.
 * Increments st->step first (torch's step_t += 1). */
void optim_step(const optim_cfg *cfg, optim_state *st, float *params,
                const float *grads, size_t n, double lr);

/* Global L2 norm of the gradient (before clipping), computed in double. */
double grad_global_norm(const float *grads, size_t n);

/* torch.nn.utils.clip_grad_norm_: if max_norm > 0 scales grads by
 * min(1, max_norm / (norm + 1e-6)).  Returns norm unchanged. */
void grad_clip(float *grads, size_t n, double norm, double max_norm);

#endif

/*
 * model_impl (private to the core) — what model.c needs from the model
 * implementations: their constructors and the sizes each counts from its
 * own layout (model_mlp.c's widths, model_gpt.c's parameter table), and the
 * saturating size arithmetic they count with.  Callers use traind/model.h.
 */
#ifndef TRAIND_MODEL_IMPL_H
#define TRAIND_MODEL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "traind/model.h"

model_t *mlp_create(const model_cfg *cfg, int batch_size, char *err, size_t errlen);
model_t *gpt_create(const model_cfg *cfg, int batch_size, char *err, size_t errlen);

/* Parameters of a linear/mlp cfg (weight in·out + bias out per layer),
 * saturating at SIZE_MAX; dimensions below 1 count as 0. */
size_t mlp_param_count(const model_cfg *cfg);
size_t mlp_memory_bytes(const model_cfg *cfg, int batch_size);
/* gpt_param_count, gpt_memory_bytes: traind/gpt.h. */

/* model_tensor_count / model_tensor_at (traind/model.h) of each model. */
int mlp_tensor_count(const model_cfg *cfg);
int mlp_tensor_at(const model_cfg *cfg, int i, model_tensor *out);
int gpt_model_tensor_at(const model_cfg *cfg, int i, model_tensor *out);

/* a·b and a+b, SIZE_MAX instead of wrapping (the dimensions are user input). */
static inline size_t size_sat_mul(size_t a, size_t b)
{
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

static inline size_t size_sat_add(size_t a, size_t b)
{
    size_t r;
    return __builtin_add_overflow(a, b, &r) ? SIZE_MAX : r;
}

#endif

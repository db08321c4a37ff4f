/*
 * optim_muon — Muon (`optimizer.type: muon`), Keller Jordan's variant:
 * KellerJordan/Muon, muon.py, MuonWithAuxAdam.  Not Moonshot's Muon
 * (heavy-ball momentum, 0.2·sqrt(max(rows, cols)) scaling: adjust_lr
 * match_rms_adamw gives only its scaling) and not torch.optim.Muon.
 *
 * The hidden 2-D weights (model_tensor kind MODEL_TENSOR_HIDDEN) get, per
 * matrix G of rows × cols, with β = momentum, lr and wd = weight_decay:
 *
 *     M = lerp(M, G, 1 - β)                      momentum as an EMA
 *     U = nesterov ? lerp(G, M, β) : M
 *     X = U / (‖U‖_F + 1e-7), transposed when rows > cols
 *     ns_steps × { A = X·Xᵀ;  B = b·A + c·A·A;  X = a·X + B·X }
 *                 (a, b, c) = (3.4445, -4.7750, 2.0315)
 *     p = p·(1 - lr·wd) - lr·s·X     s = sqrt(max(1, rows/cols))  (adjust_lr original)
 *                                      s = 0.2·sqrt(max(rows, cols)) (match_rms_adamw)
 *
 * in float32 throughout (the reference runs Newton-Schulz in bfloat16, for
 * GPUs), the products as sgemm through the kernel layer.  Every other
 * tensor (embeddings, the output layer, gains and biases) gets traind's
 * AdamW (traind/optim.h, torch.optim.AdamW's arithmetic) with the keys of
 * optimizer.adamw, its lr scaled by the schedule as optimizer.lr is:
 * adamw.lr · lr_t / lr.  MuonWithAuxAdam's own adam_update is the same
 * formula, rounded in another order.
 *
 * State: the optimizer state of traind/optim.h as it is — m is Muon's
 * momentum buffer on the matrices and exp_avg elsewhere, v is exp_avg_sq
 * (zero on the matrices), step counts updates — so a checkpoint holds
 * Muon's state in the sections AdamW's uses.  The plan below holds only the
 * layout and scratch: rebuilt from the model at every start.
 *
 * Bits: the elementwise parts are torch's float operations (torch.lerp is
 * fma on its AVX2 kernels; fmaf here, exact on every CPU).  The norm is
 * summed in double, the products are OpenBLAS's, so the result agrees
 * with torch's float32 Muon to rounding, not bit for bit
 * (tests/unit/test_optim_muon.c states the bound); it is the same on every
 * run and thread count (kern_gemm's tiles depend on the shape alone).
 */
#ifndef TRAIND_OPTIM_MUON_H
#define TRAIND_OPTIM_MUON_H

#include <stddef.h>
#include "traind/config.h"
#include "traind/model.h"
#include "traind/optim.h"

#define MUON_NS_A 3.4445f
#define MUON_NS_B (-4.7750f)
#define MUON_NS_C 2.0315f
#define MUON_NS_EPS 1e-7f
#define MUON_MAX_NS_STEPS 100

/* Which tensors get Muon, which AdamW, and the scratch of one matrix. */
typedef struct optim_muon optim_muon;

/* The plan of a model's tensors (model_tensor_at's, in params order, covering
 * all n_params floats).  NULL with err when the tensors do not tile the
 * array or memory runs out. */
optim_muon *optim_muon_create(const model_tensor *tensors, int n_tensors, size_t n_params, char *err,
                              size_t errlen);
/* The same from the model's own layout (model_tensor_at of cfg). */
optim_muon *optim_muon_for_model(const model_cfg *cfg, size_t n_params, char *err, size_t errlen);
void optim_muon_free(optim_muon *mu);

/* Hidden matrices of the plan (0: Muon would be AdamW on everything). */
int optim_muon_matrices(const optim_muon *mu);

/* Does cfg's model have a hidden matrix (model_tensor_at), and the bytes of
 * the plan's scratch for it (SIZE_MAX on overflow). */
bool optim_muon_model_has_hidden(const model_cfg *cfg);
size_t optim_muon_scratch_bytes(const model_cfg *cfg);

/* One update (optim_step calls it for OPT_MUON, st->step already counted). */
void optim_muon_step(const optim_cfg *cfg, optim_muon *mu, optim_state *st, float *params,
                     const float *grads, double lr);

#endif

/*
 * model_gpt (private) — the inside of the byte-level GPT, shared by its three
 * files: model_gpt.c (the parameter table, create/init, the forward and
 * backward passes as a sequence of layer calls), model_gpt_layers.c (those
 * layers: each one pass over the batch on the compute pool, over the row
 * kernels of kernels.h) and model_gpt_sample.c (gpt_logits, gpt_sample).
 * Callers outside the core use traind/gpt.h and traind/model.h.
 *
 * Shapes (llm.c's names): B sequences of T tokens, C = d_model channels,
 * NH heads of hs = C/NH, V vocabulary, L layers, BT = B·T rows.
 */
#ifndef TRAIND_MODEL_GPT_H
#define TRAIND_MODEL_GPT_H

#include <stddef.h>
#include <stdint.h>

#include "traind/model.h"

#define GPT_NCHUNK_MAX 64      /* row chunks of the reductions */

/* One block's parameter tensors (or their gradients): views into m->params. */
typedef struct layer_params {
    float *ln1w, *ln1b, *ln2w, *ln2b;
    float *qkvw, *qkvb, *projw, *projb, *fcw, *fcb, *fc2w, *fc2b;
} layer_params;

/* Every parameter tensor (or gradient): the globals and one layer_params per block. */
typedef struct gpt_weights {
    float *wte, *wpe, *lnfw, *lnfb;
    layer_params *layer;
} gpt_weights;

typedef struct layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd;   /* (BT,C), (BT), (BT) */
    float *qkv;                         /* (BT,3C) */
    float *att;                         /* (B,NH,T,T) probabilities */
    float *atty;                        /* (BT,C) attention output before proj */
    float *res2;                        /* (BT,C) residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fchg;                  /* (BT,4C) pre-GELU (bias added), post-GELU */
    float *res3;                        /* (BT,C) layer output */
} layer_acts;

typedef struct gpt {
    model_t base;
    int V, T, C, L, NH, hs, maxB;
    gpt_weights w, dw;                  /* parameters and gradients */
    layer_acts *la;
    float *encoded;                     /* (BT,C) */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;                      /* (BT,V) probabilities / dlogits after the loss */
    float *losses;                      /* (BT) */
    float *dres, *dln, *dqkv, *datty, *dfch;
    float *datt;                        /* attention scratch, one slot per (b, h) */
    size_t att_slot;                    /* floats per slot */
    int att_fused;                      /* kern_attn_fused(hs) at create */
    float *partials;                    /* (GPT_NCHUNK_MAX, 4C) */
    float *bpartials;                   /* (B, 3C) qkv bias partials per sequence */
    float *arena;
} gpt_t;

/* One forward (and backward) over a batch. */
typedef struct step_ctx {
    gpt_t *g;
    int B, T, BT, nchunk;
    const int32_t *tokens, *targets;
    int train;                   /* gpt_crossentropy_forward leaves dlogits */
} step_ctx;

/* model_gpt.c: the step of B sequences of T tokens (targets may be NULL
 * without train; checked by the caller); the forward pass through the final
 * LayerNorm; is m a gpt model. */
void gpt_step_init(step_ctx *s, gpt_t *g, int B, int T, const int32_t *tokens,
                   const int32_t *targets, int train);
void gpt_forward(step_ctx *s);
int gpt_is(const model_t *m);

/* ---- model_gpt_layers.c ------------------------------------------------- */

/* out = wte[tokens] + wpe[t];  dwte[token] += dout, dwpe[t] = Σ_b dout. */
void gpt_encoder_forward(step_ctx *s, float *out);
void gpt_encoder_backward(step_ctx *s, const float *dout);

/* What a LayerNorm pass also writes, row by row, for the products after it:
 * res = x + res_bias (the residual stream a product then adds onto) and
 * bc = bc_bias in every row of width bc_width (a bias a product adds onto). */
typedef struct ln_preset {
    float *res;
    const float *res_bias;
    float *bc;
    const float *bc_bias;
    int bc_width;
} ln_preset;
/* out = LN(x)·w + b per row of C, keeping mean and rstd; pre may be NULL. */
void gpt_layernorm_forward(step_ctx *s, const float *x, const float *w, const float *b, float *out,
                           float *mean, float *rstd, const ln_preset *pre);
/* dx (+)= LN'(dout); dw, db the parameter gradients; colsum (if not NULL)
 * the column sums of the new dx (the bias gradient of the product before). */
void gpt_layernorm_backward(step_ctx *s, const float *dout, const float *x, const float *mean,
                            const float *rstd, const float *w, float *dx, int accumulate,
                        float *dw, float *db, float *colsum);

/* out (BT, OC) = inp (BT, IC) · weight^T (weight (OC, IC) as torch stores
 * it), + beta·out;  backward: dinp = dout · weight, dweight = dout^T · inp. */
void gpt_matmul_forward(step_ctx *s, float *out, const float *inp, const float *weight, int IC,
                        int OC, float beta);
void gpt_matmul_backward(step_ctx *s, float *dinp, float *dweight, const float *dout,
                         const float *inp, const float *weight, int IC, int OC);

/* atty = causal softmax(q·k^T/√hs)·v per (b, h) from a->qkv;  backward
 * from g->datty into g->dqkv, and dqkvb = the qkv bias gradient. */
void gpt_attention_forward(step_ctx *s, layer_acts *a);
void gpt_attention_backward(step_ctx *s, layer_acts *a, float *dqkvb);

/* fch += bias; fchg = gelu(fch) (width 4C);  backward: dfch *= gelu'(fch),
 * dbias = its column sums. */
void gpt_gelu_forward(step_ctx *s, float *fch, float *fchg, const float *bias);
void gpt_gelu_backward(step_ctx *s, const float *fch, float *dfch, float *dbias);

/* Softmax cross-entropy of g->logits against the targets: the mean loss;
 * with s->train the logits become dloss/dlogits. */
float gpt_crossentropy_forward(step_ctx *s);

#endif

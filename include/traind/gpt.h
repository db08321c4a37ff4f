/*
 * gpt — what the byte-level GPT (model_gpt.c) offers beyond model.h:
 * generation for `trainctl sample`, the logits of one sequence, its
 * parameter tensors by name (gradient checks, checkpoint tools) and the
 * memory it will allocate.
 *
 * The model is GPT-2 shaped as shared/reference/torch_ref.py builds it:
 * token + position embeddings, `layers` pre-LayerNorm blocks (causal
 * multi-head self-attention, GELU-tanh MLP of width 4·d_model, biases on
 * every linear layer), a final LayerNorm and an output head tied to the token
 * embedding.  Parameters sit in m->params in torch's named_parameters()
 * order (wte, wpe, the blocks, lnf; linear weights (out, in) row-major as in
 * torch), as gpt_tensor_info lists them: the one table of them is
 * model_gpt.c's PARAMS.
 */
#ifndef TRAIND_GPT_H
#define TRAIND_GPT_H

#include <stddef.h>
#include <stdint.h>
#include "traind/config.h"
#include "traind/model.h"
#include "traind/rng.h"

/* Samples n_new tokens after the prompt (n_prompt >= 1 tokens, each in
 * [0, vocab_size)) into out[0 .. n_new).  Each step runs the model over the
 * last `context` tokens (a sliding window) and draws the next token from
 * softmax(logits / temperature) with rng; temperature <= 0 is greedy (argmax,
 * lowest id on ties).  Uses the model's activation buffers (not safe
 * concurrently with a training step on the same model).  Returns 0, or -1 if
 * m is not a gpt model or an argument is out of range. */
int gpt_sample(model_t *m, const int32_t *prompt, int n_prompt, int n_new,
               double temperature, rng_t *rng, int32_t *out);

/* The logits (vocab_size floats) that follow tokens[0 .. n), computed over
 * the last min(n, context) tokens.  Returns 0, or -1 on bad arguments. */
int gpt_logits(model_t *m, const int32_t *tokens, int n, float *logits);

/* One parameter tensor: name as torch's named_parameters() ("wte.weight",
 * "blocks.0.qkv.weight", ...), offset into params/grads, element count. */
typedef struct gpt_tensor {
    char name[40];
    size_t offset;
    size_t size;
} gpt_tensor;

/* Number of parameter tensors of cfg (4 + 12·layers). */
int gpt_tensor_count(const model_cfg *cfg);
/* Fills the i-th tensor (0 <= i < gpt_tensor_count); returns 0 or -1. */
int gpt_tensor_info(const model_cfg *cfg, int i, gpt_tensor *out);

/* Parameters of cfg: V·d + T·d + layers·(12·d² + 13·d) + 2·d. */
size_t gpt_param_count(const model_cfg *cfg);
/* Bytes gpt_create allocates for cfg at batch_size: parameters, gradients
 * and every activation/backward buffer (not the optimizer state).
 * SIZE_MAX if it overflows. */
size_t gpt_memory_bytes(const model_cfg *cfg, int batch_size);

#endif

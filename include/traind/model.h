/*
 * model — the trainable models behind one interface.  Parameters and
 * gradients each live in one contiguous float buffer (per-tensor views into
 * it are the implementation's business), so the optimizer is one loop over a
 * flat array and a checkpoint is one write.  No allocation happens inside a
 * step: activations are sized for batch_size at creation.
 *
 * Implementations: model_mlp.c (linear = mlp with no hidden layer), model_gpt*.c,
 * both over daemon/core/kernels.h; their constructors: daemon/core/model_impl.h.
 */
#ifndef TRAIND_MODEL_H
#define TRAIND_MODEL_H

#include <stddef.h>
#include "traind/batch.h"
#include "traind/config.h"
#include "traind/rng.h"

typedef struct model model_t;

typedef struct model_ops {
    void (*destroy)(model_t *m);
    /* Initialise params (PyTorch default for nn.Linear; GPT-2 init for gpt). */
    void (*init)(model_t *m, rng_t *rng);
    /* Forward + loss + backward.  Gradients are overwritten, not accumulated.
     * Returns the mean loss of the batch. */
    float (*train_step)(model_t *m, const batch_t *b);
    /* Forward + loss only. */
    float (*eval_loss)(model_t *m, const batch_t *b);
} model_ops;

/* Shared fields; implementations embed this as their first member. */
struct model {
    const model_ops *ops;
    model_cfg cfg;
    int batch_size;           /* largest batch train_step/eval_loss accept */
    size_t n_params;
    float *params;            /* n_params floats */
    float *grads;             /* n_params floats */
};

/* Creates the model of cfg for batches of up to batch_size rows/sequences.
 * Returns NULL with a message in err on failure (e.g. out of memory). */
model_t *model_create(const model_cfg *cfg, int batch_size, char *err, size_t errlen);
void model_free(model_t *m);

/* Bytes model_create allocates for cfg at batch_size: parameters, gradients
 * and activations, counted by the same layout the constructor uses.
 * SIZE_MAX when the dimensions are invalid or the count overflows, so a
 * caller comparing against a cap never sees a wrapped small number. */
size_t model_memory_bytes(const model_cfg *cfg, int batch_size);

/* Parameters of cfg, counted from the model's own layout (the same the
 * constructor uses), saturating at SIZE_MAX. */
size_t model_param_count(const model_cfg *cfg);

/* The parameter tensors as an optimizer sees them: where each sits in the
 * flat array, its shape and its role in the network.  Muon
 * (traind/optim_muon.h) orthogonalizes the hidden matrices only and leaves
 * the rest to AdamW, so the role is the model's own knowledge, told here.
 * Matrices are row-major (out, in) as torch stores nn.Linear.weight;
 * vectors are (1, n). */
typedef enum {
    MODEL_TENSOR_HIDDEN,    /* a 2-D weight inside the network: the GPT's attention and MLP
                             * matrices, the MLP's hidden-to-hidden layers */
    MODEL_TENSOR_INPUT,     /* embeddings, the MLP's first layer (the GPT's wte is its tied head too) */
    MODEL_TENSOR_OUTPUT,    /* the MLP's last layer (a linear model's only one) */
    MODEL_TENSOR_VECTOR,    /* gains and biases */
} model_tensor_kind;

typedef struct model_tensor {
    size_t offset;          /* into params/grads */
    size_t rows, cols;      /* rows·cols floats */
    model_tensor_kind kind;
} model_tensor;

/* The number of tensors of cfg (0 when its dimensions are invalid), and
 * the i-th of them in the order they sit in params: 0, or -1 when i is out
 * of range. */
int model_tensor_count(const model_cfg *cfg);
int model_tensor_at(const model_cfg *cfg, int i, model_tensor *out);

static inline void model_init(model_t *m, rng_t *rng) { m->ops->init(m, rng); }
static inline float model_train_step(model_t *m, const batch_t *b) { return m->ops->train_step(m, b); }
static inline float model_eval_loss(model_t *m, const batch_t *b) { return m->ops->eval_loss(m, b); }

#endif

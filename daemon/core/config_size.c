/*
 * config_size — how big the configured model is: its parameter count and an
 * estimate of the memory its training process needs, so that a config asking
 * for a 10^12-parameter model is rejected at validation instead of dying of
 * OOM in the worker.
 *
 * All arithmetic saturates at SIZE_MAX instead of wrapping: the inputs are
 * user-controlled, and a product that wrapped could make a huge model look
 * small.  The memory figure is what the model and optimizer allocate; the
 * data reader's buffers and the process itself come on top.
 */
#include <stdint.h>
#include "traind/config.h"
#include "traind/model.h"

static size_t sat_mul(size_t a, size_t b)
{
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

static size_t sat_add(size_t a, size_t b)
{
    size_t r;
    return __builtin_add_overflow(a, b, &r) ? SIZE_MAX : r;
}

static size_t dim(int v)
{
    return v > 0 ? (size_t)v : 0;
}

/* The widths of a dense model: input, hidden..., output; returns the count. */
static int dense_widths(const model_cfg *m, size_t w[CFG_MAX_HIDDEN + 2])
{
    int n = 0;
    w[n++] = dim(m->input_dim);
    if (m->type == MODEL_MLP)
        for (int i = 0; i < m->n_hidden && i < CFG_MAX_HIDDEN; i++)
            w[n++] = dim(m->hidden[i]);
    w[n++] = dim(m->output_dim);
    return n;
}

size_t cfg_param_count(const model_cfg *m)
{
    if (m->type == MODEL_GPT) {
        /* wte V*d, wpe T*d; per block ln1 2d, qkv 3d*d+3d, proj d*d+d, ln2 2d,
         * fc 4d*d+4d, fc2 4d*d+d = 12d^2 + 13d; final ln 2d; the head is tied. */
        size_t V = dim(m->vocab_size), T = dim(m->context), d = dim(m->d_model), L = dim(m->layers);
        size_t block = sat_add(sat_mul(12, sat_mul(d, d)), sat_mul(13, d));
        size_t p = sat_add(sat_mul(V, d), sat_mul(T, d));
        p = sat_add(p, sat_mul(L, block));
        return sat_add(p, sat_mul(2, d));
    }
    size_t w[CFG_MAX_HIDDEN + 2];
    int n = dense_widths(m, w);
    size_t p = 0;
    for (int i = 0; i + 1 < n; i++)     /* weight in*out + bias out */
        p = sat_add(p, sat_add(sat_mul(w[i], w[i + 1]), w[i + 1]));
    return p;
}

size_t cfg_model_bytes(const run_config *cfg)
{
    /* What model_create allocates (counted by the models' own layout code,
     * so the cap matches what the worker will really ask for), plus the
     * optimizer's two moment buffers of one float per parameter; with
     * parallel.ranks, that for each rank's slice of the batch, once per rank. */
    size_t ranks = cfg->ranks > 1 ? (size_t)cfg->ranks : 1;
    int slice = cfg->data.batch_size / (int)ranks > 0 ? cfg->data.batch_size / (int)ranks : 1;
    size_t model = model_memory_bytes(&cfg->model, slice);
    return sat_mul(ranks, sat_add(model, sat_mul(cfg_param_count(&cfg->model), 2 * sizeof(float))));
}

/*
 * model_mlp — linear and MLP regression with MSE loss.  See traind/model.h.
 *
 * The model is L = n_hidden + 1 layers Linear(d[l], d[l+1]) with the
 * activation between them and none after the last (linear: L = 1).  In
 * params (and grads, same layout) each layer is its weight, (d[l+1], d[l])
 * row-major as torch stores nn.Linear.weight, then its bias (d[l+1]).
 *
 * Activations are kept feature-major, (features, B): with the weights in
 * torch's layout that makes every product one of OpenBLAS's faster
 * orientations (measured on mlp-medium: the row-major x·W^T form of the
 * 1024×1024 layer is ~20% slower), and the bias becomes one scalar per row.
 *
 * Forward, layer l (A[-1] = x^T; x itself is (B, d[0]) row-major):
 *     Z[l] = W[l] · A[l-1]                   (d[l+1], B)   sgemm
 *     A[l] = act(Z[l] + b[l])                (d[l+1], B)   one fused pass
 * and the last layer's product goes straight into the loss pass, which forms
 * G = dL/dout = 2 (out - y) / (B·d[L]) and its row sums (the bias gradient)
 * without storing the prediction.  For gelu the fused pass also leaves
 * gelu'(z) in Z[l] so that the backward pass is a single multiply; relu and
 * tanh get their derivative from A[l] (a > 0, 1 - a²).
 *
 * Backward, layer l from the last down:
 *     dW[l]   = G · A[l-1]^T                 (d[l+1], d[l])  sgemm, beta 0
 *     dA[l-1] = W[l]^T · G                   (d[l], B)       sgemm, skipped for l = 0
 *     G'      = dA[l-1] ⊙ act'(...)  and  db[l-1] = row sums of G'   one fused pass
 *
 * Small products (seed-linear is 4×10×10) skip BLAS for plain loops
 * (kern_matmul): a BLAS call costs more than the whole product there.
 * Everything a step needs is allocated in mlp_create, sized for batch_size
 * rows; a smaller batch uses the front of each buffer (row stride B).  The
 * activations (gelu, tanh, relu) are kernels_act.c's; the parameter layout
 * is param_layout() below, which also gives the parameter count.
 */
#include "traind/model.h"

#include "kernels.h"
#include "model_impl.h"
#include "traind/compute.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mlp {
    model_t base;
    int L;                          /* layers */
    int dim[CFG_MAX_HIDDEN + 2];    /* d[0] = input_dim ... d[L] = output_dim */
    size_t w_off[CFG_MAX_HIDDEN + 1], b_off[CFG_MAX_HIDDEN + 1];
    activation_type act;
    /* Activations are feature-major: (features, B) with row stride B. */
    float *z[CFG_MAX_HIDDEN];       /* hidden layers: pre-activation, then gelu' (d[l+1], B) */
    float *a[CFG_MAX_HIDDEN];       /* hidden layers: activation (d[l+1], B) */
    float *out;                     /* last layer's product (d[L], B) */
    float *g[2];                    /* backward ping-pong (max d, B) */
    float *rowloss;                 /* the loss pass's sum per output feature (d[L]) */
    void *mem;                      /* one block behind all of the above */
} mlp_t;

/* ---- the elementwise passes, split over the compute threads -------------
 * Each pass works row by row (a row = one feature over the batch) and every
 * row's result depends on that row alone, so any split of the rows gives the
 * same bits; the loss is summed over the rows afterwards, in row order. */

enum { PASS_ACT_FWD, PASS_ACT_BWD, PASS_LOSS };

/* Below this many values a pass runs on the caller alone. */
#define PAR_MIN_VALUES 32768

typedef struct pass {
    const struct mlp *m;
    int kind, B, deriv;
    float *Z, *A, *G, *db;      /* ACT_FWD: Z, A;  ACT_BWD: G, Z, A, db;  LOSS: Z (out), G, db */
    const float *bias, *y;      /* ACT_FWD, LOSS: bias;  LOSS: y (B, rows) row-major */
    float scale;                /* LOSS: 2 / (B · rows) */
} pass_t;

static void loss_rows(const pass_t *p, int lo, int hi)
{
    int B = p->B, dl = p->m->dim[p->m->L];
    float *rowloss = p->m->rowloss;
    for (int j = lo; j < hi; j++) {
        const float *o = p->Z + (size_t)j * B, *y = p->y + j;
        float bj = p->bias[j], acc = 0.0f, gs = 0.0f;
        if (p->G) {
            float *g = p->G + (size_t)j * B;
            for (int r = 0; r < B; r++) {
                float diff = (o[r] + bj) - y[(size_t)r * dl];
                acc += diff * diff;
                float gr = diff * p->scale;
                g[r] = gr;
                gs += gr;
            }
            p->db[j] = gs;
        } else {
            for (int r = 0; r < B; r++) {
                float diff = (o[r] + bj) - y[(size_t)r * dl];
                acc += diff * diff;
            }
        }
        rowloss[j] = acc;
    }
}

static void pass_range(void *ctx, int lo, int hi)
{
    const pass_t *p = ctx;
    size_t off = (size_t)lo * p->B;
    switch (p->kind) {
    case PASS_ACT_FWD:
        kern_act_forward(p->m->act, hi - lo, p->B, p->Z + off, p->A + off, p->bias + lo, p->deriv);
        break;
    case PASS_ACT_BWD:
        kern_act_backward(p->m->act, hi - lo, p->B, p->G + off, p->Z + off, p->A + off, p->db + lo);
        break;
    default:
        loss_rows(p, lo, hi);
        break;
    }
}

static void run_pass(pass_t *p, int rows)
{
    if ((long)rows * p->B >= PAR_MIN_VALUES && compute_threads() > 1)
        compute_parallel_for(rows, pass_range, p);
    else
        pass_range(p, 0, rows);
}

/* ---- forward / backward ------------------------------------------------ */

/* Runs every layer; leaves the hidden activations in z/a and the last
 * layer's W·a (no bias) in m->out, all feature-major. */
static void mlp_forward(mlp_t *m, const float *x, int B, int deriv)
{
    const float *P = m->base.params;
    for (int l = 0; l < m->L; l++) {
        int din = m->dim[l], dout = m->dim[l + 1];
        float *z = l < m->L - 1 ? m->z[l] : m->out;
        if (l == 0)     /* x is (B, din) row-major: Z^T = W · x^T */
            kern_matmul(0, 1, dout, B, din, P + m->w_off[l], din, x, din, z, B);
        else            /* Z^T = W · A^T */
            kern_matmul(0, 0, dout, B, din, P + m->w_off[l], din, m->a[l - 1], B, z, B);
        if (l < m->L - 1) {
            pass_t p = {.m = m, .kind = PASS_ACT_FWD, .B = B, .deriv = deriv,
                        .Z = z, .A = m->a[l], .bias = P + m->b_off[l]};
            run_pass(&p, dout);
        }
    }
}

static int batch_ok(const mlp_t *m, const batch_t *b)
{
    return b->B >= 1 && b->B <= m->base.batch_size && b->x && b->y &&
           b->n_in == m->dim[0] && b->n_out == m->dim[m->L];
}

/* Mean of (out + bias - y)² over the batch; with G, also G = dL/dout
 * (feature-major) and db = its row sums. */
static float mse(const mlp_t *m, const batch_t *b, float *G, float *db)
{
    int B = b->B, dl = m->dim[m->L];
    pass_t p = {.m = m, .kind = PASS_LOSS, .B = B, .Z = m->out, .G = G, .db = db,
                .bias = m->base.params + m->b_off[m->L - 1], .y = b->y,
                .scale = 2.0f / (float)((size_t)B * dl)};
    run_pass(&p, dl);
    double loss = 0.0;
    for (int j = 0; j < dl; j++)
        loss += m->rowloss[j];
    return (float)(loss / ((double)B * dl));
}

static float mlp_train_step(model_t *base, const batch_t *b)
{
    mlp_t *m = (mlp_t *)base;
    if (!batch_ok(m, b))
        return NAN;
    int B = b->B, L = m->L;
    const float *P = base->params;
    float *Gr = base->grads;
    mlp_forward(m, b->x, B, 1);
    float *G = m->g[0];
    float loss = mse(m, b, G, Gr + m->b_off[L - 1]);

    for (int l = L - 1; l >= 0; l--) {
        int din = m->dim[l], dout = m->dim[l + 1];
        /* G is dL/dZ[l], (dout, B) */
        if (l == 0)     /* dW = G · x */
            kern_matmul(0, 0, dout, din, B, G, B, b->x, din, Gr + m->w_off[l], din);
        else            /* dW = G · A[l-1]^T */
            kern_matmul(0, 1, dout, din, B, G, B, m->a[l - 1], B, Gr + m->w_off[l], din);
        if (l > 0) {
            /* dA[l-1] = W^T · G, then back through layer l-1's activation */
            float *H = G == m->g[0] ? m->g[1] : m->g[0];
            kern_matmul(1, 0, din, B, dout, P + m->w_off[l], din, G, B, H, B);
            pass_t p = {.m = m, .kind = PASS_ACT_BWD, .B = B, .G = H, .Z = m->z[l - 1],
                        .A = m->a[l - 1], .db = Gr + m->b_off[l - 1]};
            run_pass(&p, din);
            G = H;
        }
    }
    return loss;
}

static float mlp_eval_loss(model_t *base, const batch_t *b)
{
    mlp_t *m = (mlp_t *)base;
    if (!batch_ok(m, b))
        return NAN;
    mlp_forward(m, b->x, b->B, 0);
    return mse(m, b, NULL, NULL);
}

/* PyTorch's nn.Linear.reset_parameters: kaiming_uniform_(a=√5) for the
 * weight, which is U(-1/√fan_in, 1/√fan_in), and the same bound for the bias. */
static void mlp_init(model_t *base, rng_t *rng)
{
    mlp_t *m = (mlp_t *)base;
    for (int l = 0; l < m->L; l++) {
        int din = m->dim[l], dout = m->dim[l + 1];
        float bound = (float)(1.0 / sqrt((double)din));
        rng_fill_uniform(rng, base->params + m->w_off[l], (size_t)dout * din, -bound, bound);
        rng_fill_uniform(rng, base->params + m->b_off[l], (size_t)dout, -bound, bound);
    }
    memset(base->grads, 0, sizeof(float) * base->n_params);
}

static void mlp_destroy(model_t *base)
{
    mlp_t *m = (mlp_t *)base;
    free(m->mem);
    free(base->params);
    free(base->grads);
    free(m);
}

static const model_ops mlp_ops = {
    .destroy = mlp_destroy,
    .init = mlp_init,
    .train_step = mlp_train_step,
    .eval_loss = mlp_eval_loss,
};

static float *alloc_floats(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0)
        return NULL;
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

/* The activation arena of a model with widths dim[0..L] at batch B, in
 * floats: Z and A per hidden layer, the output, two gradient buffers of the
 * widest layer and the per-row losses; each region rounded up to 16 floats
 * so every buffer is 64-byte aligned.  0 on overflow. */
#define R16(x) (((x) + 15) & ~(size_t)15)
static size_t act_floats(const int *dim, int L, size_t B)
{
    size_t total = 0, maxd = 0, bm, sum;
    for (int l = 0; l <= L; l++)
        if ((size_t)dim[l] > maxd)
            maxd = (size_t)dim[l];
    for (int l = 0; l < L - 1; l++) {
        if (__builtin_mul_overflow(B, (size_t)dim[l + 1], &bm) || bm > SIZE_MAX / 4 ||
            __builtin_add_overflow(total, 2 * R16(bm), &total))
            return 0;
    }
    size_t tail[3];
    if (__builtin_mul_overflow(B, (size_t)dim[L], &tail[0]) || __builtin_mul_overflow(B, maxd, &tail[1]) ||
        tail[0] > SIZE_MAX / 4 || tail[1] > SIZE_MAX / 8)
        return 0;
    tail[2] = (size_t)dim[L];
    sum = R16(tail[0]) + 2 * R16(tail[1]) + R16(tail[2]);
    if (__builtin_add_overflow(total, sum, &total) || total > SIZE_MAX / sizeof(float))
        return 0;
    return total;
}

/* The parameters of a model with widths w[0..L]: layer l's weight
 * (w[l+1], w[l]) row-major at w_off[l], then its bias (w[l+1]) at b_off[l]
 * (both may be NULL).  Returns the float count, saturating at SIZE_MAX. */
static size_t param_layout(const size_t *w, int L, size_t *w_off, size_t *b_off)
{
    size_t n = 0;
    for (int l = 0; l < L; l++) {
        if (w_off)
            w_off[l] = n;
        n = size_sat_add(n, size_sat_mul(w[l + 1], w[l]));
        if (b_off)
            b_off[l] = n;
        n = size_sat_add(n, w[l + 1]);
    }
    return n;
}

size_t mlp_param_count(const model_cfg *cfg)
{
    size_t w[CFG_MAX_HIDDEN + 2];
    int n = 0;
    w[n++] = cfg->input_dim > 0 ? (size_t)cfg->input_dim : 0;
    if (cfg->type == MODEL_MLP)
        for (int i = 0; i < cfg->n_hidden && i < CFG_MAX_HIDDEN; i++)
            w[n++] = cfg->hidden[i] > 0 ? (size_t)cfg->hidden[i] : 0;
    w[n++] = cfg->output_dim > 0 ? (size_t)cfg->output_dim : 0;
    return param_layout(w, n - 1, NULL, NULL);
}

/* The widths of cfg's layers into dim[0..L]; returns L, or -1 if invalid. */
static int mlp_widths(const model_cfg *cfg, int dim[CFG_MAX_HIDDEN + 2])
{
    int nh = cfg->type == MODEL_MLP ? cfg->n_hidden : 0;
    if ((cfg->type != MODEL_LINEAR && cfg->type != MODEL_MLP) || nh < 0 || nh > CFG_MAX_HIDDEN ||
        cfg->input_dim < 1 || cfg->output_dim < 1)
        return -1;
    dim[0] = cfg->input_dim;
    for (int i = 0; i < nh; i++) {
        if (cfg->hidden[i] < 1)
            return -1;
        dim[i + 1] = cfg->hidden[i];
    }
    dim[nh + 1] = cfg->output_dim;
    return nh + 1;
}

size_t mlp_memory_bytes(const model_cfg *cfg, int batch_size)
{
    int dim[CFG_MAX_HIDDEN + 2];
    int L = mlp_widths(cfg, dim);
    if (L < 0 || batch_size < 1)
        return SIZE_MAX;
    size_t acts = act_floats(dim, L, (size_t)batch_size);
    size_t np = mlp_param_count(cfg), total;
    /* params and grads, each at least one float (alloc_floats) */
    if (acts == 0 || np > SIZE_MAX / 16 || __builtin_add_overflow(acts, 2 * (np ? np : 1), &total) ||
        total > SIZE_MAX / sizeof(float))
        return SIZE_MAX;
    return total * sizeof(float);
}

/* Two tensors per layer, the weight (d[l+1], d[l]) then the bias: the first
 * layer's weight is the input layer, the last's the output layer and those
 * between hidden-to-hidden (a linear model's one weight counts as output). */
int mlp_tensor_count(const model_cfg *cfg)
{
    int dim[CFG_MAX_HIDDEN + 2];
    int L = mlp_widths(cfg, dim);
    return L < 0 ? 0 : 2 * L;
}

int mlp_tensor_at(const model_cfg *cfg, int i, model_tensor *out)
{
    int dim[CFG_MAX_HIDDEN + 2];
    int L = mlp_widths(cfg, dim);
    if (L < 0 || i < 0 || i >= 2 * L)
        return -1;
    int l = i / 2;
    size_t off = 0, in = (size_t)dim[l], outw = (size_t)dim[l + 1];
    for (int k = 0; k < l; k++)     /* param_layout's order: weight, bias, layer by layer */
        off = size_sat_add(off, size_sat_mul((size_t)dim[k + 1], (size_t)dim[k] + 1));
    if (i % 2 == 0)
        *out = (model_tensor){off, outw, in,
                              l == L - 1 ? MODEL_TENSOR_OUTPUT : l == 0 ? MODEL_TENSOR_INPUT : MODEL_TENSOR_HIDDEN};
    else
        *out = (model_tensor){size_sat_add(off, size_sat_mul(outw, in)), 1, outw, MODEL_TENSOR_VECTOR};
    return 0;
}

model_t *mlp_create(const model_cfg *cfg, int batch_size, char *err, size_t errlen)
{
    int dim[CFG_MAX_HIDDEN + 2];
    int L = mlp_widths(cfg, dim);
    size_t B = batch_size > 0 ? (size_t)batch_size : 0;
    size_t total = L > 0 && B ? act_floats(dim, L, B) : 0;
    if (L < 0 || batch_size < 1) {
        snprintf(err, errlen, "invalid model dimensions");
        return NULL;
    }
    if (total == 0 || mlp_memory_bytes(cfg, batch_size) == SIZE_MAX) {
        snprintf(err, errlen, "model too large");
        return NULL;
    }
    mlp_t *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->base.ops = &mlp_ops;
    m->base.cfg = *cfg;
    m->base.batch_size = batch_size;
    m->L = L;
    m->act = cfg->activation;
    kern_simd_refresh();
    memcpy(m->dim, dim, sizeof dim);

    size_t widths[CFG_MAX_HIDDEN + 2];
    int maxd = 0;
    for (int l = 0; l <= m->L; l++)
        widths[l] = (size_t)m->dim[l];
    size_t n = param_layout(widths, m->L, m->w_off, m->b_off);
    for (int l = 0; l <= m->L; l++)
        if (m->dim[l] > maxd)
            maxd = m->dim[l];
    m->base.n_params = n;

    /* The arena act_floats() sized, carved up in the same order. */
    m->base.params = alloc_floats(n);
    m->base.grads = alloc_floats(n);
    m->mem = alloc_floats(total);
    if (!m->base.params || !m->base.grads || !m->mem) {
        snprintf(err, errlen, "out of memory for the model (%zu parameters)", n);
        mlp_destroy(&m->base);
        return NULL;
    }
    float *p = m->mem;
    for (int l = 0; l < m->L - 1; l++) {
        m->z[l] = p;
        p += R16(B * m->dim[l + 1]);
        m->a[l] = p;
        p += R16(B * m->dim[l + 1]);
    }
    m->out = p;
    p += R16(B * m->dim[m->L]);
    m->g[0] = p;
    p += R16(B * (size_t)maxd);
    m->g[1] = p;
    p += R16(B * (size_t)maxd);
    m->rowloss = p;
    return &m->base;
}
#undef R16

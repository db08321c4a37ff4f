/*
 * model_mlp — linear and MLP regression with MSE loss.  See traind/model.h.
 *
 * The model is L = n_hidden + 1 layers Linear(d[l], d[l+1]) with the
 * activation between them and none after the last (linear: L = 1).  In
 * params (and grads, same layout) each layer is its weight, (d[l+1], d[l])
 * row-major as torch stores nn.Linear.weight, then its bias (d[l+1]).
 *
 * Forward, layer l (shapes for a batch of B rows):
 *     Z[l] = A[l-1] · W[l]^T                 (B, d[l+1])   sgemm, A[-1] = x
 *     A[l] = act(Z[l] + b[l])                (B, d[l+1])   one fused pass
 * and the last layer's output goes straight into the loss pass, which forms
 * dL/dout = 2 (out - y) / (B·d[L]) and its column sums (the bias gradient)
 * without storing the prediction.  For gelu the fused pass also leaves
 * gelu'(z) in Z[l] so that the backward pass is a single multiply; relu and
 * tanh get their derivative from A[l] (a > 0, 1 - a²).
 *
 * Backward, layer l from the last down:
 *     dW[l]   = G^T · A[l-1]                 (d[l+1], d[l])  sgemm, beta 0
 *     dA[l-1] = G · W[l]                     (B, d[l])       sgemm, skipped for l = 0
 *     G'      = dA[l-1] ⊙ act'(...)  and  db[l-1] = Σ_rows G'   one fused pass
 *
 * Small layers (seed-linear is 4×10×10) skip BLAS for plain loops: a BLAS
 * call costs more than the whole product there.  Everything the step needs
 * is allocated in mlp_create, sized for batch_size rows.
 *
 * GELU is torch's tanh approximation, 0.5 z (1 + tanh(√(2/π)(z + 0.044715 z³))),
 * computed as z · σ(2u) (the same function: 1 + tanh(u) = 2σ(2u)) with a
 * vectorised expf; it agrees with the tanh form to a few float ulps and has
 * no cancellation for negative z.
 */
#include "traind/model.h"

#include <cblas.h>
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
    float *z[CFG_MAX_HIDDEN];       /* hidden layers: pre-activation, then gelu' (B, d[l+1]) */
    float *a[CFG_MAX_HIDDEN];       /* hidden layers: activation (B, d[l+1]) */
    float *out;                     /* last layer's product (B, d[L]) */
    float *g[2];                    /* backward ping-pong (B, max d) */
    void *mem;                      /* one block behind all of the above */
} mlp_t;

/* Below this many multiply-adds a product is done with plain loops. */
#define SMALL_GEMM_MACS 32768

/* ---- matrix products ----------------------------------------------------
 * C = A · B^T   A (M,K), B (N,K), C (M,N)     forward
 * C = A · B     A (M,K), B (K,N), C (M,N)     dX
 * C = A^T · B   A (K,M), B (K,N), C (M,N)     dW
 * All row-major, dense, C overwritten. */

static void mm_abt(int M, int N, int K, const float *A, const float *B, float *C)
{
    if ((long)M * N * K >= SMALL_GEMM_MACS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K,
                    1.0f, A, K, B, K, 0.0f, C, N);
        return;
    }
    for (int i = 0; i < M; i++) {
        const float *a = A + (size_t)i * K;
        for (int j = 0; j < N; j++) {
            const float *b = B + (size_t)j * K;
            float s = 0.0f;
            for (int k = 0; k < K; k++)
                s += a[k] * b[k];
            C[(size_t)i * N + j] = s;
        }
    }
}

static void mm_ab(int M, int N, int K, const float *A, const float *B, float *C)
{
    if ((long)M * N * K >= SMALL_GEMM_MACS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K,
                    1.0f, A, K, B, N, 0.0f, C, N);
        return;
    }
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * N;
        memset(c, 0, sizeof(float) * N);
        for (int k = 0; k < K; k++) {
            float s = A[(size_t)i * K + k];
            const float *b = B + (size_t)k * N;
            for (int j = 0; j < N; j++)
                c[j] += s * b[j];
        }
    }
}

static void mm_atb(int M, int N, int K, const float *A, const float *B, float *C)
{
    if ((long)M * N * K >= SMALL_GEMM_MACS) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K,
                    1.0f, A, M, B, N, 0.0f, C, N);
        return;
    }
    memset(C, 0, sizeof(float) * M * N);
    for (int k = 0; k < K; k++) {
        const float *a = A + (size_t)k * M;
        const float *b = B + (size_t)k * N;
        for (int i = 0; i < M; i++) {
            float s = a[i];
            float *c = C + (size_t)i * N;
            for (int j = 0; j < N; j++)
                c[j] += s * b[j];
        }
    }
}

/* ---- activations --------------------------------------------------------
 * Written with GCC vector extensions (4 lanes: plain SSE2 at the baseline
 * x86-64 target) so they vectorise without -O3 or -march.  Lanes and the
 * scalar tail run the same operations in the same order, so a value's result
 * never depends on its position. */

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f vload(const float *p) { v4f v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(float *p, v4f v) { memcpy(p, &v, sizeof v); }
static inline v4f vset(float x) { return (v4f){x, x, x, x}; }
static inline v4f vsel(v4i m, v4f a, v4f b) { return (v4f)(((v4i)a & m) | ((v4i)b & ~m)); }
static inline v4f vmin(v4f a, v4f b) { return vsel(a < b, a, b); }   /* NaN a gives b */
static inline v4f vmax(v4f a, v4f b) { return vsel(a > b, a, b); }

/* exp(x) for x in [-87, 80] (clamped; NaN stays NaN), ~1 ulp. */
static inline v4f vexp(v4f x0)
{
    v4i nan = x0 != x0;
    v4f x = vmax(vmin(x0, vset(80.0f)), vset(-87.0f));
    v4f t = x * vset(1.44269504088896341f) + vset(12582912.0f);   /* round(x/ln2) + 1.5·2^23 */
    v4f n = t - vset(12582912.0f);
    v4f r = x - n * vset(0.693145751953125f);
    r = r - n * vset(1.428606765330187045e-06f);
    /* exp(r), |r| <= ln2/2: Taylor to degree 7 (truncation < 2e-9 relative). */
    v4f p = vset(1.0f / 5040.0f);
    p = p * r + vset(1.0f / 720.0f);
    p = p * r + vset(1.0f / 120.0f);
    p = p * r + vset(1.0f / 24.0f);
    p = p * r + vset(1.0f / 6.0f);
    p = p * r + vset(0.5f);
    p = p * r + vset(1.0f);
    p = p * r + vset(1.0f);
    v4i e = ((v4i)t - (v4i)vset(12582912.0f) + 127) << 23;
    return vsel(nan, x0, p * (v4f)e);
}

#define GELU_K 0.7978845608028654f     /* sqrt(2/pi) */
#define GELU_C 0.044715f

/* a = gelu(z); if d, also d = gelu'(z). */
static inline v4f vgelu(v4f z, v4f *d)
{
    v4f zc = vmax(vmin(z, vset(20.0f)), vset(-20.0f));   /* beyond ±20 gelu is 0 or z */
    v4i nan = z != z;
    zc = vsel(nan, z, zc);
    v4f z2 = zc * zc;
    v4f u = vset(GELU_K) * (zc + vset(GELU_C) * z2 * zc);
    v4f s = vset(1.0f) / (vset(1.0f) + vexp(vset(-2.0f) * u));   /* σ(2u) = (1 + tanh u) / 2 */
    if (d) {
        v4f du = vset(GELU_K) * (vset(1.0f) + vset(3.0f * GELU_C) * z2);
        *d = s + vset(2.0f) * zc * s * (vset(1.0f) - s) * du;
    }
    return z * s;
}

static inline v4f vrelu(v4f z) { return vsel(z < vset(0.0f), vset(0.0f), z); }

/* One group of 4: z = Z + b; A = act(z); for gelu with deriv, Z = gelu'(z). */
static inline void act4(activation_type act, const float *zp, const float *bp, float *ap,
                        float *dp)
{
    v4f z = vload(zp) + vload(bp);
    if (act == ACT_GELU) {
        v4f d;
        vstore(ap, vgelu(z, dp ? &d : NULL));
        if (dp)
            vstore(dp, d);
    } else {
        vstore(ap, vrelu(z));
    }
}

/* A = act(Z + b) over (rows, cols); for gelu with deriv, Z = gelu'(Z + b). */
static void act_forward(activation_type act, int rows, int cols, float *Z, float *A,
                        const float *b, int deriv)
{
    if (act == ACT_TANH) {
        for (int r = 0; r < rows; r++) {
            const float *zr = Z + (size_t)r * cols;
            float *ar = A + (size_t)r * cols;
            for (int j = 0; j < cols; j++)
                ar[j] = tanhf(zr[j] + b[j]);
        }
        return;
    }
    int c4 = cols & ~3, tail = cols - c4;
    deriv = deriv && act == ACT_GELU;
    for (int r = 0; r < rows; r++) {
        float *zr = Z + (size_t)r * cols, *ar = A + (size_t)r * cols;
        for (int j = 0; j < c4; j += 4)
            act4(act, zr + j, b + j, ar + j, deriv ? zr + j : NULL);
        if (tail) {
            float zb[4] = {0}, bb[4] = {0}, ab[4], db[4];
            memcpy(zb, zr + c4, sizeof(float) * tail);
            memcpy(bb, b + c4, sizeof(float) * tail);
            act4(act, zb, bb, ab, deriv ? db : NULL);
            memcpy(ar + c4, ab, sizeof(float) * tail);
            if (deriv)
                memcpy(zr + c4, db, sizeof(float) * tail);
        }
    }
}

/* G = G ⊙ act'(.) in place, db = column sums of the result. */
static void act_backward(activation_type act, int rows, int cols, float *G,
                         const float *Z, const float *A, float *db)
{
    memset(db, 0, sizeof(float) * cols);
    for (int r = 0; r < rows; r++) {
        float *gr = G + (size_t)r * cols;
        const float *zr = Z + (size_t)r * cols, *ar = A + (size_t)r * cols;
        switch (act) {
        case ACT_GELU:
            for (int j = 0; j < cols; j++) {
                float g = gr[j] * zr[j];
                gr[j] = g;
                db[j] += g;
            }
            break;
        case ACT_TANH:
            for (int j = 0; j < cols; j++) {
                float g = gr[j] * (1.0f - ar[j] * ar[j]);
                gr[j] = g;
                db[j] += g;
            }
            break;
        default:
            for (int j = 0; j < cols; j++) {
                float g = ar[j] > 0.0f ? gr[j] : 0.0f;
                gr[j] = g;
                db[j] += g;
            }
            break;
        }
    }
}

/* ---- forward / backward ------------------------------------------------ */

/* Runs the hidden layers and the last product; leaves the last layer's
 * x·W^T (no bias) in m->out. */
static void mlp_forward(mlp_t *m, const float *x, int B, int deriv)
{
    const float *in = x;
    const float *P = m->base.params;
    for (int l = 0; l < m->L; l++) {
        int din = m->dim[l], dout = m->dim[l + 1];
        float *z = l < m->L - 1 ? m->z[l] : m->out;
        mm_abt(B, dout, din, in, P + m->w_off[l], z);
        if (l < m->L - 1) {
            act_forward(m->act, B, dout, z, m->a[l], P + m->b_off[l], deriv);
            in = m->a[l];
        }
    }
}

static int batch_ok(const mlp_t *m, const batch_t *b)
{
    return b->B >= 1 && b->B <= m->base.batch_size && b->x && b->y &&
           b->n_in == m->dim[0] && b->n_out == m->dim[m->L];
}

static float mlp_train_step(model_t *base, const batch_t *b)
{
    mlp_t *m = (mlp_t *)base;
    if (!batch_ok(m, b))
        return NAN;
    int B = b->B, L = m->L, dl = m->dim[L];
    const float *P = base->params;
    float *Gr = base->grads;
    mlp_forward(m, b->x, B, 1);

    /* Loss and dL/dout = 2 (out + b - y) / N, with the last bias gradient. */
    const float *bias = P + m->b_off[L - 1];
    float *db = Gr + m->b_off[L - 1];
    float *G = m->g[0];
    float scale = 2.0f / (float)((size_t)B * dl);
    double loss = 0.0;
    memset(db, 0, sizeof(float) * dl);
    for (int r = 0; r < B; r++) {
        const float *o = m->out + (size_t)r * dl, *y = b->y + (size_t)r * dl;
        float *g = G + (size_t)r * dl;
        float acc = 0.0f;
        for (int j = 0; j < dl; j++) {
            float diff = (o[j] + bias[j]) - y[j];
            acc += diff * diff;
            float gj = diff * scale;
            g[j] = gj;
            db[j] += gj;
        }
        loss += acc;
    }

    for (int l = L - 1; l >= 0; l--) {
        int din = m->dim[l], dout = m->dim[l + 1];
        const float *in = l > 0 ? m->a[l - 1] : b->x;
        mm_atb(dout, din, B, G, in, Gr + m->w_off[l]);
        if (l > 0) {
            float *H = G == m->g[0] ? m->g[1] : m->g[0];
            mm_ab(B, din, dout, G, P + m->w_off[l], H);
            act_backward(m->act, B, din, H, m->z[l - 1], m->a[l - 1], Gr + m->b_off[l - 1]);
            G = H;
        }
    }
    return (float)(loss / ((double)B * dl));
}

static float mlp_eval_loss(model_t *base, const batch_t *b)
{
    mlp_t *m = (mlp_t *)base;
    if (!batch_ok(m, b))
        return NAN;
    int B = b->B, L = m->L, dl = m->dim[L];
    mlp_forward(m, b->x, B, 0);
    const float *bias = base->params + m->b_off[L - 1];
    double loss = 0.0;
    for (int r = 0; r < B; r++) {
        const float *o = m->out + (size_t)r * dl, *y = b->y + (size_t)r * dl;
        float acc = 0.0f;
        for (int j = 0; j < dl; j++) {
            float diff = (o[j] + bias[j]) - y[j];
            acc += diff * diff;
        }
        loss += acc;
    }
    return (float)(loss / ((double)B * dl));
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

model_t *mlp_create(const model_cfg *cfg, int batch_size, char *err, size_t errlen)
{
    if (cfg->type != MODEL_LINEAR && cfg->type != MODEL_MLP) {
        snprintf(err, errlen, "mlp_create: not a linear or mlp model");
        return NULL;
    }
    int nh = cfg->type == MODEL_MLP ? cfg->n_hidden : 0;
    if (nh < 0 || nh > CFG_MAX_HIDDEN || batch_size < 1 || cfg->input_dim < 1 || cfg->output_dim < 1) {
        snprintf(err, errlen, "invalid model dimensions");
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
    m->L = nh + 1;
    m->act = cfg->activation;
    m->dim[0] = cfg->input_dim;
    for (int i = 0; i < nh; i++) {
        if (cfg->hidden[i] < 1) {
            snprintf(err, errlen, "hidden layer %d has width %d", i + 1, cfg->hidden[i]);
            free(m);
            return NULL;
        }
        m->dim[i + 1] = cfg->hidden[i];
    }
    m->dim[m->L] = cfg->output_dim;

    size_t n = 0, acts = 0;
    int maxd = 0;
    for (int l = 0; l < m->L; l++) {
        size_t din = m->dim[l], dout = m->dim[l + 1];
        m->w_off[l] = n;
        n += dout * din;
        m->b_off[l] = n;
        n += dout;
        if (l < m->L - 1)
            acts += 2 * dout;
    }
    for (int l = 0; l <= m->L; l++)
        if (m->dim[l] > maxd)
            maxd = m->dim[l];
    m->base.n_params = n;

    /* Activation memory: Z and A per hidden layer, out, two gradient buffers;
     * each region rounded up to 16 floats so every buffer is 64-byte aligned. */
    size_t B = batch_size;
#define R16(x) (((x) + 15) & ~(size_t)15)
    size_t total = 0;
    for (int l = 0; l < m->L - 1; l++)
        total += 2 * R16(B * m->dim[l + 1]);
    total += R16(B * m->dim[m->L]) + 2 * R16(B * (size_t)maxd);
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
#undef R16
    (void)acts;
    return &m->base;
}

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
 * Small products (seed-linear is 4×10×10) skip BLAS for plain loops: a BLAS
 * call costs more than the whole product there.  Everything a step needs is
 * allocated in mlp_create, sized for batch_size rows; a smaller batch uses
 * the front of each buffer (row stride B).
 *
 * GELU is torch's tanh approximation, 0.5 z (1 + tanh(√(2/π)(z + 0.044715 z³))),
 * computed as z · σ(2u) (the same function: 1 + tanh(u) = 2σ(2u)) with a
 * vectorised expf.  It is within a few ulps of the exact value of that
 * formula (torch's float evaluation is off by ~100 ulps at z = -3, from
 * 1 + tanh(u) cancelling) and its derivative is torch's GeluBackward formula.
 */
#include "traind/model.h"

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
    int avx2;                       /* run the AVX2 build of the activation loops */
    /* Activations are feature-major: (features, B) with row stride B. */
    float *z[CFG_MAX_HIDDEN];       /* hidden layers: pre-activation, then gelu' (d[l+1], B) */
    float *a[CFG_MAX_HIDDEN];       /* hidden layers: activation (d[l+1], B) */
    float *out;                     /* last layer's product (d[L], B) */
    float *g[2];                    /* backward ping-pong (max d, B) */
    float *rowloss;                 /* the loss pass's sum per output feature (d[L]) */
    void *mem;                      /* one block behind all of the above */
} mlp_t;

/* Below this many multiply-adds a product is done with plain loops. */
#define SMALL_GEMM_MACS 32768

/* C (M,N) = op(A) · op(B), op(X) = X or X^T, all row-major with leading
 * dimensions; C overwritten.  BLAS for real sizes (compute_sgemm: the same
 * bits for every thread count), loops for tiny ones. */
static void gemm(int ta, int tb, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float *C, int ldc)
{
    if ((long)M * N * K >= SMALL_GEMM_MACS) {
        compute_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        return;
    }
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (tb) {
            /* c[j] = Σ_k op(A)[i][k] · B[j][k]: dot products along B's rows */
            for (int j = 0; j < N; j++) {
                const float *b = B + (size_t)j * ldb;
                float s = 0.0f;
                if (ta)
                    for (int k = 0; k < K; k++)
                        s += A[(size_t)k * lda + i] * b[k];
                else
                    for (int k = 0; k < K; k++)
                        s += A[(size_t)i * lda + k] * b[k];
                c[j] = s;
            }
        } else {
            /* c += op(A)[i][k] · B[k][:]: axpys along B's rows */
            for (int j = 0; j < N; j++)
                c[j] = 0.0f;
            for (int k = 0; k < K; k++) {
                float s = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                const float *b = B + (size_t)k * ldb;
                for (int j = 0; j < N; j++)
                    c[j] += s * b[j];
            }
        }
    }
}

/* ---- activations --------------------------------------------------------
 * Written with GCC vector extensions, 8 lanes, so they vectorise without
 * -O3 or -march: at the baseline x86-64 target each operation is two SSE
 * instructions; on CPUs with AVX2 the same source is also compiled for AVX2
 * (one 256-bit instruction) and picked at run time.  FMA is not enabled, so
 * both builds do the same IEEE operations in the same order and give
 * bit-identical results (test_mlp checks; TRAIND_NO_AVX2=1 in the
 * environment forces the baseline build).  Lanes and the partial last group
 * of a row run the same operations, so a value's result never depends on its
 * position. */

#if defined(__GNUC__)
/* The helpers below are always inlined: no vector ever crosses a call, so the
 * ABI of 32-byte vector returns does not matter.  (Vector arguments go by
 * pointer: GCC's matching note about them cannot be silenced.)  Clang (the
 * fuzz build) understands the same pragma. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define VL 8
typedef float vf __attribute__((vector_size(4 * VL)));
typedef int32_t vi __attribute__((vector_size(4 * VL)));
#define VI static inline __attribute__((always_inline))

VI vf vload(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
VI void vstore(float *p, const vf *v) { memcpy(p, v, sizeof *v); }
VI vf vset(float x) { return (vf){x, x, x, x, x, x, x, x}; }
/* m ? a : b, lane by lane (m from a vector comparison: all ones or zero) */
#define vsel(m, a, b) ((vf)(((vi)(a) & (m)) | ((vi)(b) & ~(m))))
/* clamp to [lo, hi]; NaN gives hi */
#define vclamp(x, lo, hi) vsel((x) > vset(lo), vsel((x) < vset(hi), (x), vset(hi)), vset(lo))

/* exp(x) for x in [-87, 80] (clamped; NaN stays NaN), ~1 ulp. */
VI vf vexp(const vf *xp)
{
    vf x0 = *xp;
    vi nan = x0 != x0;
    vf x = vclamp(x0, -87.0f, 80.0f);
    vf t = x * vset(1.44269504088896341f) + vset(12582912.0f);   /* round(x/ln2) + 1.5·2^23 */
    vf n = t - vset(12582912.0f);
    vf r = x - n * vset(0.693145751953125f);                      /* ln2, hi + lo */
    r = r - n * vset(1.428606765330187045e-06f);
    /* exp(r), |r| <= ln2/2: Taylor to degree 7 (truncation < 2e-9 relative). */
    vf p = vset(1.0f / 5040.0f);
    p = p * r + vset(1.0f / 720.0f);
    p = p * r + vset(1.0f / 120.0f);
    p = p * r + vset(1.0f / 24.0f);
    p = p * r + vset(1.0f / 6.0f);
    p = p * r + vset(0.5f);
    p = p * r + vset(1.0f);
    p = p * r + vset(1.0f);
    vi e = ((vi)t - (vi)vset(12582912.0f) + 127) << 23;           /* 2^n */
    return vsel(nan, x0, p * (vf)e);
}

#define GELU_K 0.7978845608028654f     /* sqrt(2/pi) */
#define GELU_C 0.044715f

/* gelu(z); if d, also *d = gelu'(z) = σ + 2 z σ (1 - σ) u'  (σ = σ(2u)). */
VI vf vgelu(const vf *zp, vf *d)
{
    vf z = *zp;
    vi nan = z != z;
    vf zc = vclamp(z, -20.0f, 20.0f);   /* beyond ±20, gelu is 0 or z */
    zc = vsel(nan, z, zc);
    vf z2 = zc * zc;
    vf u = vset(GELU_K) * (zc + vset(GELU_C) * z2 * zc);
    vf m2u = vset(-2.0f) * u;
    vf s = vset(1.0f) / (vset(1.0f) + vexp(&m2u));   /* σ(2u) = (1 + tanh u) / 2 */
    if (d) {
        vf du = vset(GELU_K) * (vset(1.0f) + vset(3.0f * GELU_C) * z2);
        *d = s + vset(2.0f) * zc * s * (vset(1.0f) - s) * du;
    }
    return z * s;
}

/* tanh(z), a few ulps: odd Taylor polynomial for |z| < 0.3125 (terms to
 * z^13, truncation < 1e-9 relative), else sign(z) (1 - 2 / (1 + exp(2|z|))). */
VI vf vtanh(const vf *zp)
{
    vf z = *zp;
    vf az = vsel(z < vset(0.0f), -z, z);
    vf z2 = z * z;
    vf p = vset(21844.0f / 6081075.0f);
    p = p * z2 - vset(1382.0f / 155925.0f);
    p = p * z2 + vset(62.0f / 2835.0f);
    p = p * z2 - vset(17.0f / 315.0f);
    p = p * z2 + vset(2.0f / 15.0f);
    p = p * z2 - vset(1.0f / 3.0f);
    vf small = z + z * z2 * p;
    vf az2 = vset(2.0f) * az;
    vf big = vset(1.0f) - vset(2.0f) / (vset(1.0f) + vexp(&az2));
    big = vsel(z < vset(0.0f), -big, big);
    return vsel(az < vset(0.3125f), small, big);   /* NaN: big, which is NaN */
}

VI vf vrelu(const vf *z) { return vsel(*z < vset(0.0f), vset(0.0f), *z); }   /* NaN stays */

/* z = Z + bias; A = act(z); with D (gelu), D = gelu'(z).  n <= VL values. */
VI void act_lanes(activation_type act, const float *zp, float bias, float *ap, float *dp, int n)
{
    vf z;
    if (n == VL) {
        z = vload(zp);
    } else {
        float t[VL] = {0};
        memcpy(t, zp, sizeof(float) * n);
        z = vload(t);
    }
    z += vset(bias);
    vf a, d = vset(0.0f);
    switch (act) {
    case ACT_GELU: a = vgelu(&z, dp ? &d : NULL); break;
    case ACT_TANH: a = vtanh(&z); break;
    default: a = vrelu(&z); break;
    }
    if (n == VL) {
        vstore(ap, &a);
        if (dp)
            vstore(dp, &d);
    } else {
        float t[VL];
        vstore(t, &a);
        memcpy(ap, t, sizeof(float) * n);
        if (dp) {
            vstore(t, &d);
            memcpy(dp, t, sizeof(float) * n);
        }
    }
}

/* Feature-major (rows = features, B values each): A = act(Z + b[row]); with
 * deriv and gelu, Z = gelu'(Z + b[row]) in place. */
VI void act_forward_body(activation_type act, int rows, int B, float *Z, float *A,
                         const float *b, int deriv)
{
    deriv = deriv && act == ACT_GELU;
    for (int j = 0; j < rows; j++) {
        float *zr = Z + (size_t)j * B, *ar = A + (size_t)j * B;
        for (int r = 0; r < B; r += VL)
            act_lanes(act, zr + r, b[j], ar + r, deriv ? zr + r : NULL, B - r < VL ? B - r : VL);
    }
}

VI float hsum(const vf *v)
{
    return (((*v)[0] + (*v)[1]) + ((*v)[2] + (*v)[3])) + (((*v)[4] + (*v)[5]) + ((*v)[6] + (*v)[7]));
}

/* G = G ⊙ act'(.) in place (feature-major), db[row] = Σ of the row. */
VI void act_backward_body(activation_type act, int rows, int B, float *G,
                          const float *Z, const float *A, float *db)
{
    int Bv = B - B % VL;
    for (int j = 0; j < rows; j++) {
        float *gr = G + (size_t)j * B;
        const float *zr = Z + (size_t)j * B, *ar = A + (size_t)j * B;
        vf acc = vset(0.0f);
        int r = 0;
        switch (act) {
        case ACT_GELU:
            for (; r < Bv; r += VL) {
                vf g = vload(gr + r) * vload(zr + r);
                vstore(gr + r, &g);
                acc += g;
            }
            break;
        case ACT_TANH:
            for (; r < Bv; r += VL) {
                vf a = vload(ar + r);
                vf g = vload(gr + r) * (vset(1.0f) - a * a);
                vstore(gr + r, &g);
                acc += g;
            }
            break;
        default:
            for (; r < Bv; r += VL) {
                vf g = vsel(vload(ar + r) > vset(0.0f), vload(gr + r), vset(0.0f));
                vstore(gr + r, &g);
                acc += g;
            }
            break;
        }
        float s = hsum(&acc);
        for (; r < B; r++) {
            float g;
            switch (act) {
            case ACT_GELU: g = gr[r] * zr[r]; break;
            case ACT_TANH: g = gr[r] * (1.0f - ar[r] * ar[r]); break;
            default: g = ar[r] > 0.0f ? gr[r] : 0.0f; break;
            }
            gr[r] = g;
            s += g;
        }
        db[j] = s;
    }
}

static void act_forward_base(activation_type act, int rows, int B, float *Z, float *A,
                             const float *b, int deriv)
{
    act_forward_body(act, rows, B, Z, A, b, deriv);
}

static void act_backward_base(activation_type act, int rows, int B, float *G,
                              const float *Z, const float *A, float *db)
{
    act_backward_body(act, rows, B, G, Z, A, db);
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2")))
static void act_forward_avx2(activation_type act, int rows, int B, float *Z, float *A,
                             const float *b, int deriv)
{
    act_forward_body(act, rows, B, Z, A, b, deriv);
}

__attribute__((target("avx2")))
static void act_backward_avx2(activation_type act, int rows, int B, float *G,
                              const float *Z, const float *A, float *db)
{
    act_backward_body(act, rows, B, G, Z, A, db);
}

static int cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#define ACT_DISPATCH(avx2, name, ...) ((avx2) ? name##_avx2(__VA_ARGS__) : name##_base(__VA_ARGS__))
#else
static int cpu_has_avx2(void) { return 0; }
#define ACT_DISPATCH(avx2, name, ...) name##_base(__VA_ARGS__)
#endif

static void act_forward(const struct mlp *m, int rows, int B, float *Z, float *A,
                        const float *b, int deriv)
{
    ACT_DISPATCH(m->avx2, act_forward, m->act, rows, B, Z, A, b, deriv);
}

static void act_backward(const struct mlp *m, int rows, int B, float *G,
                         const float *Z, const float *A, float *db)
{
    ACT_DISPATCH(m->avx2, act_backward, m->act, rows, B, G, Z, A, db);
}

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
        act_forward(p->m, hi - lo, p->B, p->Z + off, p->A + off, p->bias + lo, p->deriv);
        break;
    case PASS_ACT_BWD:
        act_backward(p->m, hi - lo, p->B, p->G + off, p->Z + off, p->A + off, p->db + lo);
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
            gemm(0, 1, dout, B, din, P + m->w_off[l], din, x, din, z, B);
        else            /* Z^T = W · A^T */
            gemm(0, 0, dout, B, din, P + m->w_off[l], din, m->a[l - 1], B, z, B);
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
            gemm(0, 0, dout, din, B, G, B, b->x, din, Gr + m->w_off[l], din);
        else            /* dW = G · A[l-1]^T */
            gemm(0, 1, dout, din, B, G, B, m->a[l - 1], B, Gr + m->w_off[l], din);
        if (l > 0) {
            /* dA[l-1] = W^T · G, then back through layer l-1's activation */
            float *H = G == m->g[0] ? m->g[1] : m->g[0];
            gemm(1, 0, din, B, dout, P + m->w_off[l], din, G, B, H, B);
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
    size_t np = cfg_param_count(cfg), total;
    /* params and grads, each at least one float (alloc_floats) */
    if (acts == 0 || np > SIZE_MAX / 16 || __builtin_add_overflow(acts, 2 * (np ? np : 1), &total) ||
        total > SIZE_MAX / sizeof(float))
        return SIZE_MAX;
    return total * sizeof(float);
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
    m->avx2 = cpu_has_avx2() && !getenv("TRAIND_NO_AVX2");
    memcpy(m->dim, dim, sizeof dim);

    size_t n = 0;
    int maxd = 0;
    for (int l = 0; l < m->L; l++) {
        size_t din = m->dim[l], dout = m->dim[l + 1];
        m->w_off[l] = n;
        n += dout * din;
        m->b_off[l] = n;
        n += dout;
    }
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

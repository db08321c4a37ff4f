/*
 * model_gpt — a byte-level GPT-2 (pre-LayerNorm) trained in C.  See
 * traind/model.h and traind/gpt.h; torch_ref.py's GPT/Block is the same model.
 *
 * Shapes (llm.c's names): B sequences of T tokens, C = d_model channels,
 * NH heads of hs = C/NH, V vocabulary, L layers, BT = B·T rows.
 *
 *   encoded = wte[tokens] + wpe[0..T)                        (BT, C)
 *   per layer:  ln1 = LN(x);  qkv = ln1·Wqkv^T + b           (BT, 3C)
 *               att = softmax(q·k^T/√hs, causal)  per (b, h)  (B, NH, T, T)
 *               res2 = x + (att·v)·Wproj^T + b
 *               ln2 = LN(res2);  fch = ln2·Wfc^T + b          (BT, 4C)
 *               res3 = res2 + gelu_tanh(fch)·Wfc2^T + b      (next x)
 *   logits = LN_f(x)·wte^T                                    (BT, V)
 *   loss = mean cross-entropy
 *
 * Where the time goes and how it is spent (gpt-tiny: V=256, T=128, d=128,
 * 4 layers, 4 heads, batch 8, on the 2-core dev box; tests/bench/ has the
 * harnesses):
 *  - The linear layers are ~85% of the FLOPs.  Every matrix product is one
 *    cblas_sgemm over all BT rows (the tied head is one sgemm against wte);
 *    OpenBLAS runs them at ~95-100 GFLOP/s per core.
 *  - Threads: every product goes through compute_sgemm: OpenBLAS at 1
 *    thread, C cut into tiles (a grid from the shape alone) spread over
 *    the compute pool, each tile a single-threaded sgemm.  One pool, so
 *    nothing spins beside it, and the bits do not depend on the thread
 *    count; measured 1.8x from 1 to 2 threads, where switching OpenBLAS's
 *    own threads on around each product gave less than 1x.
 *  - Attention runs per (b, head) on the pool.  With AVX2 and a head size
 *    that is a multiple of 8, register-blocked kernels (4 rows x 16 columns)
 *    compute only the causal part, 4 rows at a time, with k or v transposed
 *    into a per-range scratch; otherwise row blocks of ATT_BLOCK go through
 *    small sgemms.  Scale, mask and softmax are one pass.  The AVX2 kernels
 *    took attention from 1.8 to 1.5 ms per layer (forward + backward).
 *  - LayerNorm, GELU and softmax/cross-entropy are fused loops (AVX2+FMA
 *    where the CPU has it, plain C otherwise; TRAIND_GPT_SCALAR=1 forces the
 *    plain ones); bias adds and residual copies ride along in those passes.
 *  - Reductions over rows (LayerNorm and bias gradients) go through a fixed
 *    number of row chunks summed in a fixed order, so they do not depend on
 *    the thread count at all.
 *  - Every activation lives in one arena allocated at create time.
 */
#include "traind/gpt.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/compute.h"
#include "traind/model.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GPT_X86 1
#define AVX2 __attribute__((target("avx2,fma")))
#else
#define GPT_X86 0
#endif

/* The AVX2+FMA kernels are used (set by gpt_create: the CPU has them and
 * TRAIND_GPT_SCALAR is not set; process-wide, the last create decides). */
static int g_simd_ok = -1;

#define LN_EPS 1e-5f
#define NCHUNK_MAX 64          /* row chunks of the reductions */
#define GELU_K 0.7978845608028654f   /* sqrt(2/pi) */
#define GELU_A 0.044715f
/* Rows of one attention block (the causal triangle is cut into these). */
#ifndef ATT_BLOCK
#define ATT_BLOCK 32
#endif

typedef struct layer_params {
    float *ln1w, *ln1b, *ln2w, *ln2b;
    float *qkvw, *qkvb, *projw, *projb, *fcw, *fcb, *fc2w, *fc2b;
} layer_params;

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
    float *wte, *wpe, *lnfw, *lnfb;
    float *gwte, *gwpe, *glnfw, *glnfb;
    layer_params *lp, *lg;
    layer_acts *la;
    float *encoded;                     /* (BT,C) */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;                      /* (BT,V) probabilities / dlogits after the loss */
    float *losses;                      /* (BT) */
    float *dres, *dln, *dqkv, *datty, *dfch;
    float *datt;                        /* attention scratch, one slot per (b, h) */
    size_t att_slot;                    /* floats per slot */
    int att_fused;                      /* AVX2 attention kernels (hs % 8 == 0) */
    float *partials;                    /* (NCHUNK_MAX, 4C) */
    float *bpartials;                   /* (B, 3C) qkv bias partials per sequence */
    float *arena;
} gpt_t;

/* ------------------------------------------------------------------------ */
/* sizes */

static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* The activation arena as a list of buffer sizes (floats, each rounded up to
 * 64 bytes).  Fills g's pointers when g and base are given.  Returns the
 * total float count, or 0 on overflow. */
static size_t layout(const model_cfg *cfg, int B, gpt_t *g, float *base)
{
    size_t V = cfg->vocab_size, T = cfg->context, C = cfg->d_model, L = cfg->layers;
    size_t NH = cfg->heads;
    size_t BT, btc, tt, att, off = 0;
    int ok = 1;
    if (!mul_ok((size_t)B, T, &BT) || !mul_ok(BT, C, &btc) || !mul_ok(T, T, &tt) ||
        !mul_ok(tt, NH, &att) || !mul_ok(att, (size_t)B, &att))
        return 0;
    if (btc > SIZE_MAX / 64 || att > SIZE_MAX / 64 || BT > SIZE_MAX / 64 / (V + 1))
        return 0;
#define TAKE(ptr, n)                                                       \
    do {                                                                   \
        size_t n_ = round16(n);                                            \
        if (off > SIZE_MAX / 2 - n_) ok = 0;                               \
        if (ok && base) *(ptr) = base + off;                                \
        off += n_;                                                         \
    } while (0)
    float *dummy = NULL;
    TAKE(g ? &g->encoded : &dummy, btc);
    for (size_t l = 0; l < L && ok; l++) {
        layer_acts *a = g ? &g->la[l] : NULL;
        TAKE(a ? &a->ln1 : &dummy, btc);
        TAKE(a ? &a->ln1_mean : &dummy, BT);
        TAKE(a ? &a->ln1_rstd : &dummy, BT);
        TAKE(a ? &a->qkv : &dummy, 3 * btc);
        TAKE(a ? &a->att : &dummy, att);
        TAKE(a ? &a->atty : &dummy, btc);
        TAKE(a ? &a->res2 : &dummy, btc);
        TAKE(a ? &a->ln2 : &dummy, btc);
        TAKE(a ? &a->ln2_mean : &dummy, BT);
        TAKE(a ? &a->ln2_rstd : &dummy, BT);
        TAKE(a ? &a->fch : &dummy, 4 * btc);
        TAKE(a ? &a->fchg : &dummy, 4 * btc);
        TAKE(a ? &a->res3 : &dummy, btc);
    }
    TAKE(g ? &g->lnf : &dummy, btc);
    TAKE(g ? &g->lnf_mean : &dummy, BT);
    TAKE(g ? &g->lnf_rstd : &dummy, BT);
    TAKE(g ? &g->logits : &dummy, BT * V);
    TAKE(g ? &g->losses : &dummy, BT);
    TAKE(g ? &g->dres : &dummy, btc);
    TAKE(g ? &g->dln : &dummy, btc);
    TAKE(g ? &g->dqkv : &dummy, 3 * btc);
    TAKE(g ? &g->datty : &dummy, btc);
    TAKE(g ? &g->dfch : &dummy, 4 * btc);
    {   /* per (b, h) slot: dP (T,T) and a transposed K or V (hs, T rounded up to 8) */
        size_t slot = T * T + (C / NH) * ((T + 7) & ~(size_t)7), slots;
        if (!mul_ok(slot, (size_t)B * NH, &slots))
            return 0;
        TAKE(g ? &g->datt : &dummy, slots);
    }
    TAKE(g ? &g->partials : &dummy, NCHUNK_MAX * 4 * C);
    TAKE(g ? &g->bpartials : &dummy, (size_t)B * 3 * C);
#undef TAKE
    (void)dummy;
    return ok ? off : 0;
}

size_t gpt_param_count(const model_cfg *cfg)
{
    return cfg_param_count(cfg);     /* one formula, saturating at SIZE_MAX */
}

int gpt_tensor_count(const model_cfg *cfg)
{
    return 4 + 12 * cfg->layers;
}

int gpt_tensor_info(const model_cfg *cfg, int i, gpt_tensor *out)
{
    static const char *const names[12] = {
        "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "qkv.weight", "qkv.bias",
        "proj.weight", "proj.bias", "fc.weight", "fc.bias", "fc2.weight", "fc2.bias"};
    size_t V = cfg->vocab_size, T = cfg->context, C = cfg->d_model;
    size_t sizes[12] = {C, C, C, C, 3 * C * C, 3 * C, C * C, C, 4 * C * C, 4 * C, 4 * C * C, C};
    size_t per_layer = 12 * C * C + 13 * C;
    int n = gpt_tensor_count(cfg);
    if (i < 0 || i >= n)
        return -1;
    memset(out, 0, sizeof *out);
    if (i == 0) {
        snprintf(out->name, sizeof out->name, "wte.weight");
        out->offset = 0;
        out->size = V * C;
    } else if (i == 1) {
        snprintf(out->name, sizeof out->name, "wpe.weight");
        out->offset = V * C;
        out->size = T * C;
    } else if (i >= n - 2) {
        int k = i - (n - 2);
        snprintf(out->name, sizeof out->name, "lnf.%s", k ? "bias" : "weight");
        out->offset = V * C + T * C + (size_t)cfg->layers * per_layer + (size_t)k * C;
        out->size = C;
    } else {
        int l = (i - 2) / 12, k = (i - 2) % 12;
        size_t off = V * C + T * C + (size_t)l * per_layer;
        for (int j = 0; j < k; j++)
            off += sizes[j];
        snprintf(out->name, sizeof out->name, "blocks.%d.%s", l, names[k]);
        out->offset = off;
        out->size = sizes[k];
    }
    return 0;
}

size_t gpt_memory_bytes(const model_cfg *cfg, int batch_size)
{
    if (batch_size < 1 || cfg->vocab_size < 1 || cfg->context < 1 || cfg->d_model < 1 ||
        cfg->heads < 1 || cfg->layers < 0)
        return SIZE_MAX;
    size_t acts = layout(cfg, batch_size, NULL, NULL);
    size_t np = gpt_param_count(cfg);
    if (acts == 0 || np > SIZE_MAX / 16)
        return SIZE_MAX;
    size_t floats = acts + 2 * round16(np);
    if (floats < acts || floats > SIZE_MAX / sizeof(float))
        return SIZE_MAX;
    return floats * sizeof(float);
}

/* ------------------------------------------------------------------------ */
/* SIMD helpers (AVX2 + FMA) */

#if GPT_X86
/* Cephes' expf, 8 lanes; inputs clamped to [-87.3, 88] (no inf, no denormals). */
AVX2 static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.0f));
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}

AVX2 static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Lanes [0, r) set, 0 <= r <= 8. */
AVX2 static inline __m256i tail_mask(int r)
{
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - r));
}

/* out[c] = Σ_r src[r·ld + c] for c < width rounded down to 8. */
AVX2 static void gpt_colsum_avx2(const float *src, int rows, int ld, int width, float *out)
{
    int c = 0;
    for (; c + 32 <= width; c += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int r = 0; r < rows; r++) {
            const float *s = src + (size_t)r * ld + c;
            a0 = _mm256_add_ps(a0, _mm256_loadu_ps(s));
            a1 = _mm256_add_ps(a1, _mm256_loadu_ps(s + 8));
            a2 = _mm256_add_ps(a2, _mm256_loadu_ps(s + 16));
            a3 = _mm256_add_ps(a3, _mm256_loadu_ps(s + 24));
        }
        _mm256_storeu_ps(out + c, a0);
        _mm256_storeu_ps(out + c + 8, a1);
        _mm256_storeu_ps(out + c + 16, a2);
        _mm256_storeu_ps(out + c + 24, a3);
    }
    for (; c + 8 <= width; c += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (int r = 0; r < rows; r++)
            a0 = _mm256_add_ps(a0, _mm256_loadu_ps(src + (size_t)r * ld + c));
        _mm256_storeu_ps(out + c, a0);
    }
}


AVX2 static inline __m256 sigmoid2u8(__m256 v, __m256 *du_out)
{
    __m256 v2 = _mm256_mul_ps(v, v);
    __m256 k = _mm256_set1_ps(GELU_K);
    /* -2u = -2K(v + A v³) */
    __m256 u = _mm256_mul_ps(_mm256_mul_ps(k, v), _mm256_fmadd_ps(_mm256_set1_ps(GELU_A), v2, _mm256_set1_ps(1.0f)));
    __m256 e = exp8(_mm256_mul_ps(u, _mm256_set1_ps(-2.0f)));
    if (du_out)
        *du_out = _mm256_mul_ps(k, _mm256_fmadd_ps(_mm256_set1_ps(3.0f * GELU_A), v2, _mm256_set1_ps(1.0f)));
    return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

AVX2 static void gpt_gelu_fwd_avx2(float *x, float *y, const float *b, int W)
{
    int c = 0;
    for (; c + 8 <= W; c += 8) {
        __m256 v = _mm256_add_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(b + c));
        _mm256_storeu_ps(x + c, v);
        _mm256_storeu_ps(y + c, _mm256_mul_ps(v, sigmoid2u8(v, NULL)));
    }
    if (c < W) {
        __m256i m = tail_mask(W - c);
        __m256 v = _mm256_add_ps(_mm256_maskload_ps(x + c, m), _mm256_maskload_ps(b + c, m));
        _mm256_maskstore_ps(x + c, m, v);
        _mm256_maskstore_ps(y + c, m, _mm256_mul_ps(v, sigmoid2u8(v, NULL)));
    }
}

AVX2 static void gpt_gelu_bwd_avx2(const float *x, float *d, float *p, int W)
{
    int c = 0;
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    for (; c + 8 <= W; c += 8) {
        __m256 v = _mm256_loadu_ps(x + c), du;
        __m256 sg = sigmoid2u8(v, &du);
        /* gd = sg + 2 v sg (1 - sg) du */
        __m256 gd = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(two, v), _mm256_mul_ps(sg, _mm256_sub_ps(one, sg))), du, sg);
        __m256 dd = _mm256_mul_ps(_mm256_loadu_ps(d + c), gd);
        _mm256_storeu_ps(d + c, dd);
        _mm256_storeu_ps(p + c, _mm256_add_ps(_mm256_loadu_ps(p + c), dd));
    }
    if (c < W) {
        __m256i m = tail_mask(W - c);
        __m256 v = _mm256_maskload_ps(x + c, m), du;
        __m256 sg = sigmoid2u8(v, &du);
        __m256 gd = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(two, v), _mm256_mul_ps(sg, _mm256_sub_ps(one, sg))), du, sg);
        __m256 dd = _mm256_mul_ps(_mm256_maskload_ps(d + c, m), gd);
        _mm256_maskstore_ps(d + c, m, dd);
        _mm256_maskstore_ps(p + c, m, _mm256_add_ps(_mm256_maskload_ps(p + c, m), dd));
    }
}


AVX2 static float gpt_dot_avx2(const float *a, const float *b, int n)
{
    int j;
    __m256 s = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8)
        s = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s);
    if (j < n) {
        __m256i m = tail_mask(n - j);
        s = _mm256_fmadd_ps(_mm256_maskload_ps(a + j, m), _mm256_maskload_ps(b + j, m), s);
    }
    return hsum8(s);
}

AVX2 static void gpt_softmax_bwd_avx2(const float *p, float *dp, int n, float dot)
{
    int j;
    __m256 vd = _mm256_set1_ps(dot);
    for (j = 0; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dp + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_sub_ps(_mm256_loadu_ps(dp + j), vd)));
    if (j < n) {
        __m256i m = tail_mask(n - j);
        _mm256_maskstore_ps(dp + j, m, _mm256_mul_ps(_mm256_maskload_ps(p + j, m), _mm256_sub_ps(_mm256_maskload_ps(dp + j, m), vd)));
    }
}


/* row = exp(row - max) in place; returns the sum, *mx_out the max.  Shared by
 * the cross-entropy over the vocabulary and the attention softmax. */
AVX2 static float exp_sum_row_avx2(float *row, int V, float *mx_out)
{
    int j;
    __m256 vmx = _mm256_set1_ps(-INFINITY);
    for (j = 0; j + 8 <= V; j += 8)
        vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(row + j));
    float mx = hmax8(vmx);
    for (; j < V; j++)
        mx = row[j] > mx ? row[j] : mx;
    vmx = _mm256_set1_ps(mx);
    __m256 vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= V; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), vmx));
        _mm256_storeu_ps(row + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    if (j < V) {
        __m256i m = tail_mask(V - j);
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(row + j, m), vmx));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(row + j, m, e);
        vs = _mm256_add_ps(vs, e);
    }
    *mx_out = mx;
    return hsum8(vs);
}
#endif

/* ------------------------------------------------------------------------ */
/* GEMM: compute_sgemm (tiles over the pool, the same bits for every
 * thread count) in this file's CBLAS spelling */

static void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    compute_sgemm(ta == CblasTrans, tb == CblasTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ------------------------------------------------------------------------ */
/* embedding */

typedef struct step_ctx {
    gpt_t *g;
    int B, T, BT, nchunk;
    const int32_t *tokens, *targets;
    int train;                   /* compute dlogits */
} step_ctx;

static void embed_range(void *ctx, int lo, int hi)
{
    const step_ctx *s = ctx;
    const gpt_t *g = s->g;
    int C = g->C;
    for (int r = lo; r < hi; r++) {
        const float *te = g->wte + (size_t)s->tokens[r] * C;
        const float *pe = g->wpe + (size_t)(r % s->T) * C;
        float *o = g->encoded + (size_t)r * C;
        for (int c = 0; c < C; c++)
            o[c] = te[c] + pe[c];
    }
}

/* ------------------------------------------------------------------------ */
/* LayerNorm forward: out = (x - mean) * rstd * w + b, per row.  Optionally
 * also res = x + resb (the next residual, ready for an sgemm with beta 1)
 * and bc = bcb (a bias broadcast of width bw, ditto). */

typedef struct ln_job {
    const float *x, *w, *b;
    float *out, *mean, *rstd;
    int C;
    float *res;
    const float *resb;
    float *bc;
    const float *bcb;
    int bw;
} ln_job;

static void ln_row_scalar(const ln_job *j, int r)
{
    int C = j->C;
    const float *x = j->x + (size_t)r * C;
    float *o = j->out + (size_t)r * C;
    float m = 0.0f, v = 0.0f;
    for (int c = 0; c < C; c++)
        m += x[c];
    m /= C;
    for (int c = 0; c < C; c++) {
        float d = x[c] - m;
        v += d * d;
    }
    v /= C;
    float rs = 1.0f / sqrtf(v + LN_EPS);
    for (int c = 0; c < C; c++)
        o[c] = (x[c] - m) * rs * j->w[c] + j->b[c];
    j->mean[r] = m;
    j->rstd[r] = rs;
    if (j->res) {
        float *res = j->res + (size_t)r * C;
        for (int c = 0; c < C; c++)
            res[c] = x[c] + j->resb[c];
    }
}

#if GPT_X86
AVX2 static void ln_row_avx2(const ln_job *j, int r)
{
    int C = j->C, c;
    const float *x = j->x + (size_t)r * C;
    float *o = j->out + (size_t)r * C;
    __m256 acc = _mm256_setzero_ps();
    float m, v;
    for (c = 0; c + 8 <= C; c += 8)
        acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + c));
    m = hsum8(acc);
    for (; c < C; c++)
        m += x[c];
    m /= C;
    __m256 vm = _mm256_set1_ps(m);
    acc = _mm256_setzero_ps();
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + c), vm);
        acc = _mm256_fmadd_ps(d, d, acc);
    }
    v = hsum8(acc);
    for (; c < C; c++)
        v += (x[c] - m) * (x[c] - m);
    v /= C;
    float rs = 1.0f / sqrtf(v + LN_EPS);
    __m256 vr = _mm256_set1_ps(rs);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 n = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vr);
        _mm256_storeu_ps(o + c, _mm256_fmadd_ps(n, _mm256_loadu_ps(j->w + c), _mm256_loadu_ps(j->b + c)));
    }
    for (; c < C; c++)
        o[c] = (x[c] - m) * rs * j->w[c] + j->b[c];
    j->mean[r] = m;
    j->rstd[r] = rs;
    if (j->res) {
        float *res = j->res + (size_t)r * C;
        for (c = 0; c + 8 <= C; c += 8)
            _mm256_storeu_ps(res + c, _mm256_add_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(j->resb + c)));
        for (; c < C; c++)
            res[c] = x[c] + j->resb[c];
    }
}
#endif

static void ln_fwd_range(void *ctx, int lo, int hi)
{
    const ln_job *j = ctx;
    for (int r = lo; r < hi; r++) {
#if GPT_X86
        if (g_simd_ok == 1)
            ln_row_avx2(j, r);
        else
#endif
            ln_row_scalar(j, r);
        if (j->bc)
            memcpy(j->bc + (size_t)r * j->bw, j->bcb, (size_t)j->bw * sizeof(float));
    }
}

/* ------------------------------------------------------------------------ */
/* LayerNorm backward over row chunks: dx (+)= LN'(dout); per chunk partials
 * of dw, db and of the column sums of the new dx (the next bias gradient
 * upstream).  partials: chunk k at k*3C: [dw | db | colsum(dx)]. */

typedef struct lnb_job {
    const float *dout, *x, *mean, *rstd, *w;
    float *dx;
    int accumulate;
    float *partials;
    int C, BT, nchunk;
} lnb_job;

static void lnb_row_scalar(const lnb_job *j, int r, float *pw, float *pb, float *px)
{
    int C = j->C;
    const float *dout = j->dout + (size_t)r * C, *x = j->x + (size_t)r * C;
    float *dx = j->dx + (size_t)r * C;
    float m = j->mean[r], rs = j->rstd[r];
    float a = 0.0f, b = 0.0f;
    for (int c = 0; c < C; c++) {
        float xh = (x[c] - m) * rs, dn = dout[c] * j->w[c];
        a += dn;
        b += dn * xh;
    }
    a /= C;
    b /= C;
    for (int c = 0; c < C; c++) {
        float xh = (x[c] - m) * rs, dn = dout[c] * j->w[c];
        float d = (dn - a - xh * b) * rs;
        float nd = j->accumulate ? dx[c] + d : d;
        dx[c] = nd;
        pw[c] += dout[c] * xh;
        pb[c] += dout[c];
        px[c] += nd;
    }
}

#if GPT_X86
AVX2 static void lnb_row_avx2(const lnb_job *j, int r, float *pw, float *pb, float *px)
{
    int C = j->C, c;
    const float *dout = j->dout + (size_t)r * C, *x = j->x + (size_t)r * C;
    float *dx = j->dx + (size_t)r * C;
    float m = j->mean[r], rs = j->rstd[r];
    __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(rs);
    __m256 va = _mm256_setzero_ps(), vb = _mm256_setzero_ps();
    float a, b;
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vr);
        __m256 dn = _mm256_mul_ps(_mm256_loadu_ps(dout + c), _mm256_loadu_ps(j->w + c));
        va = _mm256_add_ps(va, dn);
        vb = _mm256_fmadd_ps(dn, xh, vb);
    }
    a = hsum8(va);
    b = hsum8(vb);
    for (; c < C; c++) {
        float xh = (x[c] - m) * rs, dn = dout[c] * j->w[c];
        a += dn;
        b += dn * xh;
    }
    a /= C;
    b /= C;
    va = _mm256_set1_ps(a);
    vb = _mm256_set1_ps(b);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vr);
        __m256 g = _mm256_loadu_ps(dout + c);
        __m256 dn = _mm256_mul_ps(g, _mm256_loadu_ps(j->w + c));
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(dn, va), _mm256_mul_ps(xh, vb)), vr);
        if (j->accumulate)
            d = _mm256_add_ps(d, _mm256_loadu_ps(dx + c));
        _mm256_storeu_ps(dx + c, d);
        _mm256_storeu_ps(pw + c, _mm256_fmadd_ps(g, xh, _mm256_loadu_ps(pw + c)));
        _mm256_storeu_ps(pb + c, _mm256_add_ps(g, _mm256_loadu_ps(pb + c)));
        _mm256_storeu_ps(px + c, _mm256_add_ps(d, _mm256_loadu_ps(px + c)));
    }
    for (; c < C; c++) {
        float xh = (x[c] - m) * rs, dn = dout[c] * j->w[c];
        float d = (dn - a - xh * b) * rs;
        float nd = j->accumulate ? dx[c] + d : d;
        dx[c] = nd;
        pw[c] += dout[c] * xh;
        pb[c] += dout[c];
        px[c] += nd;
    }
}
#endif

static void lnb_range(void *ctx, int lo, int hi)
{
    const lnb_job *j = ctx;
    int C = j->C;
    for (int k = lo; k < hi; k++) {
        float *pw = j->partials + (size_t)k * 3 * C, *pb = pw + C, *px = pb + C;
        memset(pw, 0, 3 * (size_t)C * sizeof(float));
        int r0 = (int)((int64_t)k * j->BT / j->nchunk), r1 = (int)((int64_t)(k + 1) * j->BT / j->nchunk);
        for (int r = r0; r < r1; r++) {
#if GPT_X86
            if (g_simd_ok == 1)
                lnb_row_avx2(j, r, pw, pb, px);
            else
#endif
                lnb_row_scalar(j, r, pw, pb, px);
        }
    }
}

/* Sums `width` columns of the chunk partials (stride `stride`, starting at
 * column `col`) in chunk order into out (or nothing if out is NULL). */
static void reduce_partials(const float *partials, int nchunk, int stride, int col, int width, float *out)
{
    if (!out)
        return;
    for (int c = 0; c < width; c++) {
        float s = 0.0f;
        for (int k = 0; k < nchunk; k++)
            s += partials[(size_t)k * stride + col + c];
        out[c] = s;
    }
}

/* LayerNorm backward of rows [0, BT) into dx; dw/db get the weight and bias
 * gradients; colsum (if not NULL) the column sums of the new dx. */
static void ln_backward(step_ctx *s, const float *dout, const float *x, const float *mean,
                        const float *rstd, const float *w, float *dx, int accumulate,
                        float *dw, float *db, float *colsum)
{
    gpt_t *g = s->g;
    lnb_job j = {dout, x, mean, rstd, w, dx, accumulate, g->partials, g->C, s->BT, s->nchunk};
    compute_parallel_for(s->nchunk, lnb_range, &j);
    reduce_partials(g->partials, s->nchunk, 3 * g->C, 0, g->C, dw);
    reduce_partials(g->partials, s->nchunk, 3 * g->C, g->C, g->C, db);
    reduce_partials(g->partials, s->nchunk, 3 * g->C, 2 * g->C, g->C, colsum);
}

/* ------------------------------------------------------------------------ */
/* GELU (tanh form): gelu(x) = x·σ(2u), u = √(2/π)(x + 0.044715x³),
 * since 0.5(1 + tanh u) = σ(2u);  gelu'(x) = σ + 2x·σ(1-σ)·u'. */

typedef struct gelu_job {
    float *fch, *fchg, *dfch;
    const float *bias;
    int W;                 /* 4C */
    float *partials;       /* bwd: (nchunk, W) bias-gradient partials */
    int BT, nchunk;
} gelu_job;

static inline float sigmoidf_(float z)
{
    return 1.0f / (1.0f + expf(-z));
}

static void gelu_fwd_range(void *ctx, int lo, int hi)
{
    const gelu_job *j = ctx;
    int W = j->W;
    for (int r = lo; r < hi; r++) {
        float *x = j->fch + (size_t)r * W, *y = j->fchg + (size_t)r * W;
        int c = 0;
#if GPT_X86
        if (g_simd_ok == 1) {
            gpt_gelu_fwd_avx2(x, y, j->bias, W);
            continue;
        }
#endif
        for (; c < W; c++) {
            float v = x[c] + j->bias[c];
            x[c] = v;
            float u = GELU_K * (v + GELU_A * v * v * v);
            y[c] = v * sigmoidf_(2.0f * u);
        }
    }
}

static void gelu_bwd_range(void *ctx, int lo, int hi)
{
    const gelu_job *j = ctx;
    int W = j->W;
    for (int k = lo; k < hi; k++) {
        float *p = j->partials + (size_t)k * W;
        memset(p, 0, (size_t)W * sizeof(float));
        int r0 = (int)((int64_t)k * j->BT / j->nchunk), r1 = (int)((int64_t)(k + 1) * j->BT / j->nchunk);
        for (int r = r0; r < r1; r++) {
            const float *x = j->fch + (size_t)r * W;
            float *d = j->dfch + (size_t)r * W;
#if GPT_X86
            if (g_simd_ok == 1) {
                gpt_gelu_bwd_avx2(x, d, p, W);
                continue;
            }
#endif
            for (int c = 0; c < W; c++) {
                float v = x[c];
                float u = GELU_K * (v + GELU_A * v * v * v);
                float du = GELU_K * (1.0f + 3.0f * GELU_A * v * v);
                float sg = sigmoidf_(2.0f * u);
                float gd = sg + 2.0f * v * sg * (1.0f - sg) * du;
                d[c] *= gd;
                p[c] += d[c];
            }
        }
    }
}


/* ------------------------------------------------------------------------ */
/* softmax helpers */

/* row[0..n) = softmax(row[0..n)) in place; row[n..T) = 0. */
static void softmax_row_scalar(float *row, int n, int T)
{
    float mx = row[0];
    for (int j = 1; j < n; j++)
        mx = row[j] > mx ? row[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++)
        row[j] *= inv;
    for (int j = n; j < T; j++)
        row[j] = 0.0f;
}

#if GPT_X86
AVX2 static void softmax_row_avx2(float *row, int n, int T)
{
    float mx;
    float inv = 1.0f / exp_sum_row_avx2(row, n, &mx);   /* exp(row - max) in place, and its sum */
    int j;
    __m256 vi = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= n; j += 8)
        _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), vi));
    for (; j < n; j++)
        row[j] *= inv;
    for (j = n; j < T; j++)
        row[j] = 0.0f;
}
#endif

static void softmax_row(float *row, int n, int T)
{
#if GPT_X86
    if (g_simd_ok == 1) {
        softmax_row_avx2(row, n, T);
        return;
    }
#endif
    softmax_row_scalar(row, n, T);
}

/* dS = P ⊙ (dP - Σ_j P·dP) over j < n, in place in dp; dp[n..T) = 0. */
static void softmax_bwd_row(const float *p, float *dp, int n, int T)
{
    int j = 0;
    float dot = 0.0f;
#if GPT_X86
    if (g_simd_ok == 1) {
        dot = gpt_dot_avx2(p, dp, n);
        gpt_softmax_bwd_avx2(p, dp, n, dot);
        j = n;
    }
#endif
    if (j == 0) {
        for (j = 0; j < n; j++)
            dot += p[j] * dp[j];
        for (j = 0; j < n; j++)
            dp[j] = p[j] * (dp[j] - dot);
    }
    for (j = n; j < T; j++)
        dp[j] = 0.0f;
}


/* out[c] = Σ_r src[r·ld + c] for c < width. */
static void colsum(const float *src, int rows, int ld, int width, float *out)
{
    int c0 = 0;
#if GPT_X86
    if (g_simd_ok == 1) {
        gpt_colsum_avx2(src, rows, ld, width, out);
        c0 = width & ~7;
    }
#endif
    for (int c = c0; c < width; c++)
        out[c] = 0.0f;
    for (int r = 0; r < rows; r++)
        for (int c = c0; c < width; c++)
            out[c] += src[(size_t)r * ld + c];
}

/* ------------------------------------------------------------------------ */
/* attention kernels (AVX2): small products of one (b, h) in registers,
 * 4 rows x 16 columns at a time, exactly as far as the causal mask needs */

#if GPT_X86
/* Stores the first n (1..16) lanes of (v0, v1) at p. */
AVX2 static inline void store_cols(float *p, __m256 v0, __m256 v1, int n)
{
    if (n >= 16) {
        _mm256_storeu_ps(p, v0);
        _mm256_storeu_ps(p + 8, v1);
    } else if (n >= 8) {
        _mm256_storeu_ps(p, v0);
        if (n > 8)
            _mm256_maskstore_ps(p + 8, tail_mask(n - 8), v1);
    } else {
        _mm256_maskstore_ps(p, tail_mask(n), v0);
    }
}

/* O[r][j] = alpha Σ_{c<K} X[r·ldx + c] · M[c·ldm + j] for r < nr (1..4),
 * j < ncols.  M's rows must be readable up to ncols rounded up to 8. */
AVX2 static void rb_gemm(const float *X, int ldx, int nr, int K, const float *M, int ldm,
                         int ncols, float alpha, float *O, int ldo)
{
    const float *x0 = X, *x1 = X + (nr > 1 ? (size_t)ldx : 0);
    const float *x2 = X + (nr > 2 ? 2 * (size_t)ldx : 0), *x3 = X + (nr > 3 ? 3 * (size_t)ldx : 0);
    const __m256 va = _mm256_set1_ps(alpha);
    for (int j = 0; j < ncols; j += 16) {
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
        __m256 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        const float *m = M + j;
        if (j + 8 < ncols) {
            for (int c = 0; c < K; c++, m += ldm) {
                __m256 m0 = _mm256_loadu_ps(m), m1 = _mm256_loadu_ps(m + 8), b;
                b = _mm256_broadcast_ss(x0 + c);
                a00 = _mm256_fmadd_ps(b, m0, a00);
                a01 = _mm256_fmadd_ps(b, m1, a01);
                b = _mm256_broadcast_ss(x1 + c);
                a10 = _mm256_fmadd_ps(b, m0, a10);
                a11 = _mm256_fmadd_ps(b, m1, a11);
                b = _mm256_broadcast_ss(x2 + c);
                a20 = _mm256_fmadd_ps(b, m0, a20);
                a21 = _mm256_fmadd_ps(b, m1, a21);
                b = _mm256_broadcast_ss(x3 + c);
                a30 = _mm256_fmadd_ps(b, m0, a30);
                a31 = _mm256_fmadd_ps(b, m1, a31);
            }
        } else {
            for (int c = 0; c < K; c++, m += ldm) {
                __m256 m0 = _mm256_loadu_ps(m);
                a00 = _mm256_fmadd_ps(_mm256_broadcast_ss(x0 + c), m0, a00);
                a10 = _mm256_fmadd_ps(_mm256_broadcast_ss(x1 + c), m0, a10);
                a20 = _mm256_fmadd_ps(_mm256_broadcast_ss(x2 + c), m0, a20);
                a30 = _mm256_fmadd_ps(_mm256_broadcast_ss(x3 + c), m0, a30);
            }
        }
        int n = ncols - j;
        store_cols(O + j, _mm256_mul_ps(a00, va), _mm256_mul_ps(a01, va), n);
        if (nr > 1)
            store_cols(O + (size_t)ldo + j, _mm256_mul_ps(a10, va), _mm256_mul_ps(a11, va), n);
        if (nr > 2)
            store_cols(O + 2 * (size_t)ldo + j, _mm256_mul_ps(a20, va), _mm256_mul_ps(a21, va), n);
        if (nr > 3)
            store_cols(O + 3 * (size_t)ldo + j, _mm256_mul_ps(a30, va), _mm256_mul_ps(a31, va), n);
    }
}

/* O[j][c] = alpha Σ_{r=j0}^{R-1} X[r·ldx + j] · Y[r·ldy + c] for j in
 * [j0, j0 + nj) (nj 1..4), c < W (a multiple of 8): a block of X^T·Y where X
 * is zero above its diagonal, so the rows before j0 add nothing. */
AVX2 static void tb_gemm(const float *X, int ldx, const float *Y, int ldy, int j0, int nj, int R,
                         int W, float alpha, float *O, int ldo)
{
    const int k1 = nj > 1, k2 = nj > 2 ? 2 : 0, k3 = nj > 3 ? 3 : 0;
    const __m256 va = _mm256_set1_ps(alpha);
    for (int c = 0; c < W; c += 16) {
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
        __m256 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        const float *x = X + (size_t)j0 * ldx + j0, *y = Y + (size_t)j0 * ldy + c;
        if (c + 8 < W) {
            for (int r = j0; r < R; r++, x += ldx, y += ldy) {
                __m256 m0 = _mm256_loadu_ps(y), m1 = _mm256_loadu_ps(y + 8), b;
                b = _mm256_broadcast_ss(x);
                a00 = _mm256_fmadd_ps(b, m0, a00);
                a01 = _mm256_fmadd_ps(b, m1, a01);
                b = _mm256_broadcast_ss(x + k1);
                a10 = _mm256_fmadd_ps(b, m0, a10);
                a11 = _mm256_fmadd_ps(b, m1, a11);
                b = _mm256_broadcast_ss(x + k2);
                a20 = _mm256_fmadd_ps(b, m0, a20);
                a21 = _mm256_fmadd_ps(b, m1, a21);
                b = _mm256_broadcast_ss(x + k3);
                a30 = _mm256_fmadd_ps(b, m0, a30);
                a31 = _mm256_fmadd_ps(b, m1, a31);
            }
        } else {
            for (int r = j0; r < R; r++, x += ldx, y += ldy) {
                __m256 m0 = _mm256_loadu_ps(y);
                a00 = _mm256_fmadd_ps(_mm256_broadcast_ss(x), m0, a00);
                a10 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + k1), m0, a10);
                a20 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + k2), m0, a20);
                a30 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + k3), m0, a30);
            }
        }
        int n = W - c;
        float *o = O + (size_t)j0 * ldo + c;
        store_cols(o, _mm256_mul_ps(a00, va), _mm256_mul_ps(a01, va), n);
        if (nj > 1)
            store_cols(o + (size_t)ldo, _mm256_mul_ps(a10, va), _mm256_mul_ps(a11, va), n);
        if (nj > 2)
            store_cols(o + 2 * (size_t)ldo, _mm256_mul_ps(a20, va), _mm256_mul_ps(a21, va), n);
        if (nj > 3)
            store_cols(o + 3 * (size_t)ldo, _mm256_mul_ps(a30, va), _mm256_mul_ps(a31, va), n);
    }
}

/* D[c·Tp + j] = S[j·lds + c] for j < T, c < hs (a multiple of 8); D's rows
 * are zero from T to Tp (T rounded up to 8). */
AVX2 static void transpose_head(const float *S, int lds, int T, int hs, float *D, int Tp)
{
    int j = 0;
    for (; j + 8 <= T; j += 8)
        for (int c = 0; c < hs; c += 8) {
            const float *s = S + (size_t)j * lds + c;
            __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds);
            __m256 r2 = _mm256_loadu_ps(s + 2 * (size_t)lds), r3 = _mm256_loadu_ps(s + 3 * (size_t)lds);
            __m256 r4 = _mm256_loadu_ps(s + 4 * (size_t)lds), r5 = _mm256_loadu_ps(s + 5 * (size_t)lds);
            __m256 r6 = _mm256_loadu_ps(s + 6 * (size_t)lds), r7 = _mm256_loadu_ps(s + 7 * (size_t)lds);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
            __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
            __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
            __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
            float *d = D + (size_t)c * Tp + j;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + Tp, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * (size_t)Tp, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * (size_t)Tp, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * (size_t)Tp, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * (size_t)Tp, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * (size_t)Tp, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * (size_t)Tp, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    for (; j < Tp; j++)
        for (int c = 0; c < hs; c++)
            D[(size_t)c * Tp + j] = j < T ? S[(size_t)j * lds + c] : 0.0f;
}
#endif

/* ------------------------------------------------------------------------ */
/* attention, per (b, h) */

typedef struct att_job {
    step_ctx *s;
    layer_acts *a;
} att_job;

/* Causal rows are processed in blocks of ATT_BLOCK: block [t0, t1) needs
 * keys [0, t1) only. */
static void att_fwd_range(void *ctx, int lo, int hi)
{
    const att_job *aj = ctx;
    const step_ctx *s = aj->s;
    const gpt_t *g = s->g;
    int T = s->T, C = g->C, NH = g->NH, hs = g->hs, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int bh = lo; bh < hi; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = aj->a->qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
        float *P = aj->a->att + (size_t)bh * T * T;
        float *y = aj->a->atty + (size_t)b * T * C + h * hs;
#if GPT_X86
        if (g->att_fused) {
            /* k^T into the scratch, then per 4 query rows: S = scale q k^T
             * over the keys they see, softmax, y = P v */
            int Tp = (T + 7) & ~7;
            float *kt = g->datt + (size_t)lo * g->att_slot + (size_t)T * T;
            transpose_head(k, C3, T, hs, kt, Tp);
            for (int t0 = 0; t0 < T; t0 += 4) {
                int nr = T - t0 < 4 ? T - t0 : 4, n = t0 + nr;
                rb_gemm(q + (size_t)t0 * C3, C3, nr, hs, kt, Tp, n, scale, P + (size_t)t0 * T, T);
                for (int t = t0; t < n; t++)
                    softmax_row(P + (size_t)t * T, t + 1, T);
                rb_gemm(P + (size_t)t0 * T, T, nr, n, v, C3, hs, 1.0f, y + (size_t)t0 * C, C);
            }
            continue;
        }
#endif
        for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
            int t1 = t0 + ATT_BLOCK < T ? t0 + ATT_BLOCK : T;
            /* S[t0:t1, 0:t1] = scale q k^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t1 - t0, t1, hs, scale,
                        q + (size_t)t0 * C3, C3, k, C3, 0.0f, P + (size_t)t0 * T, T);
            for (int t = t0; t < t1; t++)
                softmax_row(P + (size_t)t * T, t + 1, T);
            /* y[t0:t1] = P[t0:t1, 0:t1] v[0:t1] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t1 - t0, hs, t1, 1.0f,
                        P + (size_t)t0 * T, T, v, C3, 0.0f, y + (size_t)t0 * C, C);
        }
    }
}

static void att_bwd_range(void *ctx, int lo, int hi)
{
    const att_job *aj = ctx;
    step_ctx *s = aj->s;
    gpt_t *g = s->g;
    int T = s->T, C = g->C, NH = g->NH, hs = g->hs, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int bh = lo; bh < hi; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = aj->a->qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
        const float *P = aj->a->att + (size_t)bh * T * T;
        const float *dy = g->datty + (size_t)b * T * C + h * hs;
        float *dq = g->dqkv + (size_t)b * T * C3 + h * hs, *dk = dq + C, *dv = dq + 2 * C;
        /* dP/dS scratch: the range's first slot, reused for each of its
         * (b, h) so it stays in cache (ranges never overlap) */
        float *dP = g->datt + (size_t)lo * g->att_slot;
#if GPT_X86
        if (g->att_fused) {
            int Tp = (T + 7) & ~7;
            float *vt = dP + (size_t)T * T;
            transpose_head(v, C3, T, hs, vt, Tp);
            for (int t0 = 0; t0 < T; t0 += 4) {
                int nr = T - t0 < 4 ? T - t0 : 4, n = t0 + nr;
                /* dP = dY v^T, dS in place (zero above the diagonal), dQ = scale dS k */
                rb_gemm(dy + (size_t)t0 * C, C, nr, hs, vt, Tp, n, 1.0f, dP + (size_t)t0 * T, T);
                for (int t = t0; t < n; t++)
                    softmax_bwd_row(P + (size_t)t * T, dP + (size_t)t * T, t + 1, T);
                rb_gemm(dP + (size_t)t0 * T, T, nr, n, k, C3, hs, scale, dq + (size_t)t0 * C3, C3);
            }
            /* dK = scale dS^T q, dV = P^T dY, 4 keys at a time from their diagonal */
            for (int j0 = 0; j0 < T; j0 += 4) {
                int nj = T - j0 < 4 ? T - j0 : 4;
                tb_gemm(dP, T, q, C3, j0, nj, T, hs, scale, dk, C3);
                tb_gemm(P, T, dy, C, j0, nj, T, hs, 1.0f, dv, C3);
            }
        } else
#endif
        {
        /* Row blocks from the last: block [t0, t1) touches keys [0, t1), so
         * the first one processed writes all of dK, dV (beta 0) and the
         * others add to their prefix. */
        int nblk = (T + ATT_BLOCK - 1) / ATT_BLOCK;
        for (int blk = nblk - 1; blk >= 0; blk--) {
            int t0 = blk * ATT_BLOCK, t1 = t0 + ATT_BLOCK < T ? t0 + ATT_BLOCK : T;
            float beta = blk == nblk - 1 ? 0.0f : 1.0f;
            /* dV[0:t1] += P[t0:t1, 0:t1]^T dY[t0:t1] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t1, hs, t1 - t0, 1.0f,
                        P + (size_t)t0 * T, T, dy + (size_t)t0 * C, C, beta, dv, C3);
            /* dP[t0:t1, 0:t1] = dY v^T, then dS in place */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t1 - t0, t1, hs, 1.0f,
                        dy + (size_t)t0 * C, C, v, C3, 0.0f, dP + (size_t)t0 * T, T);
            for (int t = t0; t < t1; t++)
                softmax_bwd_row(P + (size_t)t * T, dP + (size_t)t * T, t + 1, t1);
            /* dQ[t0:t1] = scale dS[t0:t1, 0:t1] k[0:t1] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t1 - t0, hs, t1, scale,
                        dP + (size_t)t0 * T, T, k, C3, 0.0f, dq + (size_t)t0 * C3, C3);
            /* dK[0:t1] += scale dS[t0:t1, 0:t1]^T q[t0:t1] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t1, hs, t1 - t0, scale,
                        dP + (size_t)t0 * T, T, q + (size_t)t0 * C3, C3, beta, dk, C3);
        }
        }
        /* this sequence's share of the qkv bias gradient, for this head */
        float *bp = g->bpartials + (size_t)b * C3 + h * hs;
        for (int part = 0; part < 3; part++)
            colsum(dq + part * C, T, C3, hs, bp + part * C);
    }
}

/* ------------------------------------------------------------------------ */
/* cross-entropy over the vocabulary, fused with the softmax */

typedef struct ce_job {
    step_ctx *s;
} ce_job;

static void ce_range(void *ctx, int lo, int hi)
{
    const step_ctx *s = ((const ce_job *)ctx)->s;
    const gpt_t *g = s->g;
    int V = g->V;
    float inv_bt = 1.0f / (float)s->BT;
    for (int r = lo; r < hi; r++) {
        float *row = g->logits + (size_t)r * V;
        int y = s->targets[r];
        float ly = row[y];
        float mx, sum = 0.0f;
        int j = 0;
#if GPT_X86
        if (g_simd_ok == 1) {
            sum = exp_sum_row_avx2(row, V, &mx);
            j = V;
        }
#endif
        if (j == 0) {
            mx = row[0];
            for (j = 1; j < V; j++)
                mx = row[j] > mx ? row[j] : mx;
            for (j = 0; j < V; j++) {
                float e = expf(row[j] - mx);
                row[j] = e;
                sum += e;
            }
        }
        g->losses[r] = logf(sum) + mx - ly;
        if (s->train) {
            float sc = inv_bt / sum;
            for (j = 0; j < V; j++)
                row[j] *= sc;
            row[y] -= inv_bt;
        }
    }
}


/* ------------------------------------------------------------------------ */
/* forward / backward */

static void gelu_fwd(step_ctx *s, layer_acts *a, const float *bias)
{
    gelu_job j = {a->fch, a->fchg, NULL, bias, 4 * s->g->C, NULL, s->BT, s->nchunk};
    compute_parallel_for(s->BT, gelu_fwd_range, &j);
}

/* Forward through the final LayerNorm; the head and loss are separate. */
static void forward_body(step_ctx *s)
{
    gpt_t *g = s->g;
    int C = g->C, BT = s->BT, C3 = 3 * C, C4 = 4 * C;
    compute_parallel_for(BT, embed_range, s);
    const float *x = g->encoded;
    for (int l = 0; l < g->L; l++) {
        layer_params *p = &g->lp[l];
        layer_acts *a = &g->la[l];
        /* ln1; res2 = x + proj.b; qkv = qkv.b */
        ln_job j1 = {x, p->ln1w, p->ln1b, a->ln1, a->ln1_mean, a->ln1_rstd, C,
                     a->res2, p->projb, a->qkv, p->qkvb, C3};
        compute_parallel_for(BT, ln_fwd_range, &j1);
        gemm(CblasNoTrans, CblasTrans, BT, C3, C, 1.0f, a->ln1, C, p->qkvw, C, 1.0f, a->qkv, C3);
        att_job aj = {s, a};
        compute_parallel_for(s->B * g->NH, att_fwd_range, &aj);
        gemm(CblasNoTrans, CblasTrans, BT, C, C, 1.0f, a->atty, C, p->projw, C, 1.0f, a->res2, C);
        /* ln2; res3 = res2 + fc2.b */
        ln_job j2 = {a->res2, p->ln2w, p->ln2b, a->ln2, a->ln2_mean, a->ln2_rstd, C,
                     a->res3, p->fc2b, NULL, NULL, 0};
        compute_parallel_for(BT, ln_fwd_range, &j2);
        gemm(CblasNoTrans, CblasTrans, BT, C4, C, 1.0f, a->ln2, C, p->fcw, C, 0.0f, a->fch, C4);
        gelu_fwd(s, a, p->fcb);
        gemm(CblasNoTrans, CblasTrans, BT, C, C4, 1.0f, a->fchg, C4, p->fc2w, C4, 1.0f, a->res3, C);
        x = a->res3;
    }
    ln_job jf = {x, g->lnfw, g->lnfb, g->lnf, g->lnf_mean, g->lnf_rstd, C, NULL, NULL, NULL, NULL, 0};
    compute_parallel_for(BT, ln_fwd_range, &jf);
}

static const float *final_x(const gpt_t *g)
{
    return g->L > 0 ? g->la[g->L - 1].res3 : g->encoded;
}

/* Loss of the batch (head + cross-entropy); with s->train also dlogits. */
static float head_loss(step_ctx *s)
{
    gpt_t *g = s->g;
    int BT = s->BT;
    gemm(CblasNoTrans, CblasTrans, BT, g->V, g->C, 1.0f, g->lnf, g->C, g->wte, g->C, 0.0f, g->logits, g->V);
    ce_job cj = {s};
    compute_parallel_for(BT, ce_range, &cj);
    double sum = 0.0;
    for (int r = 0; r < BT; r++)
        sum += g->losses[r];
    return (float)(sum / BT);
}

static void backward(step_ctx *s)
{
    gpt_t *g = s->g;
    int C = g->C, BT = s->BT, C3 = 3 * C, C4 = 4 * C, V = g->V;
    /* head: dlnf = dlogits wte; dwte = dlogits^T lnf */
    gemm(CblasNoTrans, CblasNoTrans, BT, C, V, 1.0f, g->logits, V, g->wte, C, 0.0f, g->dln, C);
    gemm(CblasTrans, CblasNoTrans, V, C, BT, 1.0f, g->logits, V, g->lnf, C, 0.0f, g->gwte, C);
    /* lnf: dres = LN'(dlnf); its column sums are the last layer's fc2.b grad */
    float *next_bias = g->L > 0 ? g->lg[g->L - 1].fc2b : NULL;
    ln_backward(s, g->dln, final_x(g), g->lnf_mean, g->lnf_rstd, g->lnfw, g->dres, 0,
                g->glnfw, g->glnfb, next_bias);
    for (int l = g->L - 1; l >= 0; l--) {
        layer_params *p = &g->lp[l], *gr = &g->lg[l];
        layer_acts *a = &g->la[l];
        const float *x = l > 0 ? g->la[l - 1].res3 : g->encoded;
        /* fc2: dfchg = dres fc2w; dfc2w = dres^T fchg (fc2.b done above) */
        gemm(CblasNoTrans, CblasNoTrans, BT, C4, C, 1.0f, g->dres, C, p->fc2w, C4, 0.0f, g->dfch, C4);
        gemm(CblasTrans, CblasNoTrans, C, C4, BT, 1.0f, g->dres, C, a->fchg, C4, 0.0f, gr->fc2w, C4);
        /* gelu' in place, fc.b from the partials */
        gelu_job gj = {a->fch, a->fchg, g->dfch, NULL, C4, g->partials, BT, s->nchunk};
        compute_parallel_for(s->nchunk, gelu_bwd_range, &gj);
        reduce_partials(g->partials, s->nchunk, C4, 0, C4, gr->fcb);
        /* fc: dln2 = dfch fcw; dfcw = dfch^T ln2 */
        gemm(CblasNoTrans, CblasNoTrans, BT, C, C4, 1.0f, g->dfch, C4, p->fcw, C, 0.0f, g->dln, C);
        gemm(CblasTrans, CblasNoTrans, C4, C, BT, 1.0f, g->dfch, C4, a->ln2, C, 0.0f, gr->fcw, C);
        /* ln2: dres += LN'(dln2); colsum(dres) = proj.b grad */
        ln_backward(s, g->dln, a->res2, a->ln2_mean, a->ln2_rstd, p->ln2w, g->dres, 1,
                    gr->ln2w, gr->ln2b, gr->projb);
        /* proj: datty = dres projw; dprojw = dres^T atty */
        gemm(CblasNoTrans, CblasNoTrans, BT, C, C, 1.0f, g->dres, C, p->projw, C, 0.0f, g->datty, C);
        gemm(CblasTrans, CblasNoTrans, C, C, BT, 1.0f, g->dres, C, a->atty, C, 0.0f, gr->projw, C);
        /* attention */
        att_job aj = {s, a};
        compute_parallel_for(s->B * g->NH, att_bwd_range, &aj);
        for (int c = 0; c < C3; c++) {
            float acc = 0.0f;
            for (int b = 0; b < s->B; b++)
                acc += g->bpartials[(size_t)b * C3 + c];
            gr->qkvb[c] = acc;
        }
        /* qkv: dln1 = dqkv qkvw; dqkvw = dqkv^T ln1 */
        gemm(CblasNoTrans, CblasNoTrans, BT, C, C3, 1.0f, g->dqkv, C3, p->qkvw, C, 0.0f, g->dln, C);
        gemm(CblasTrans, CblasNoTrans, C3, C, BT, 1.0f, g->dqkv, C3, a->ln1, C, 0.0f, gr->qkvw, C);
        /* ln1: dres += LN'(dln1); colsum = the previous layer's fc2.b grad */
        ln_backward(s, g->dln, x, a->ln1_mean, a->ln1_rstd, p->ln1w, g->dres, 1,
                    gr->ln1w, gr->ln1b, l > 0 ? g->lg[l - 1].fc2b : NULL);
    }
    /* embeddings: dwte[token] += dres, dwpe[t] = Σ_b dres[b, t] */
    memset(g->gwpe, 0, (size_t)g->T * C * sizeof(float));
    for (int r = 0; r < BT; r++) {
        const float *d = g->dres + (size_t)r * C;
        float *te = g->gwte + (size_t)s->tokens[r] * C, *pe = g->gwpe + (size_t)(r % s->T) * C;
        for (int c = 0; c < C; c++) {
            te[c] += d[c];
            pe[c] += d[c];
        }
    }
}

/* ------------------------------------------------------------------------ */
/* model_ops */

static int setup_step(gpt_t *g, const batch_t *b, step_ctx *s, int train)
{
    memset(s, 0, sizeof *s);
    if (!b || b->B < 1 || b->B > g->maxB || b->T < 1 || b->T > g->T || !b->tokens || !b->targets)
        return -1;
    int BT = b->B * b->T;
    for (int r = 0; r < BT; r++)
        if ((unsigned)b->tokens[r] >= (unsigned)g->V || (unsigned)b->targets[r] >= (unsigned)g->V)
            return -1;
    s->g = g;
    s->B = b->B;
    s->T = b->T;
    s->BT = BT;
    s->nchunk = BT < NCHUNK_MAX ? BT : NCHUNK_MAX;
    s->tokens = b->tokens;
    s->targets = b->targets;
    s->train = train;
    return 0;
}

static float gpt_train_step(model_t *m, const batch_t *b)
{
    gpt_t *g = (gpt_t *)m;
    step_ctx s;
    if (setup_step(g, b, &s, 1) != 0)
        return NAN;
    forward_body(&s);
    float loss = head_loss(&s);
    backward(&s);
    return loss;
}

static float gpt_eval_loss(model_t *m, const batch_t *b)
{
    gpt_t *g = (gpt_t *)m;
    step_ctx s;
    if (setup_step(g, b, &s, 0) != 0)
        return NAN;
    forward_body(&s);
    float loss = head_loss(&s);
    return loss;
}

static void gpt_init(model_t *m, rng_t *rng)
{
    gpt_t *g = (gpt_t *)m;
    int n = gpt_tensor_count(&m->cfg);
    float resid_std = 0.02f / sqrtf(2.0f * (g->L > 0 ? g->L : 1));
    for (int i = 0; i < n; i++) {
        gpt_tensor t;
        gpt_tensor_info(&m->cfg, i, &t);
        float *p = m->params + t.offset;
        size_t len = strlen(t.name);
        if (len > 5 && strcmp(t.name + len - 5, ".bias") == 0) {
            memset(p, 0, t.size * sizeof(float));
        } else if (strncmp(t.name, "lnf.", 4) == 0 || strstr(t.name, ".ln")) {
            for (size_t k = 0; k < t.size; k++)
                p[k] = 1.0f;
        } else {
            int resid = strstr(t.name, "proj.weight") || strstr(t.name, "fc2.weight");
            rng_fill_normal(rng, p, t.size, 0.0f, resid ? resid_std : 0.02f);
        }
    }
}

static void gpt_destroy(model_t *m)
{
    gpt_t *g = (gpt_t *)m;
    if (!g)
        return;
    free(g->arena);
    free(m->params);
    free(m->grads);
    free(g->lp);
    free(g->lg);
    free(g->la);
    free(g);
}

static const model_ops gpt_ops = {
    .destroy = gpt_destroy,
    .init = gpt_init,
    .train_step = gpt_train_step,
    .eval_loss = gpt_eval_loss,
};

static void *alloc_floats(size_t n)
{
    void *p = NULL;
    if (n == 0)
        n = 16;
    if (n > SIZE_MAX / sizeof(float) || posix_memalign(&p, 64, n * sizeof(float)) != 0)
        return NULL;
    return p;
}

static void bind_layer(const model_cfg *cfg, float *base, int l, layer_params *lp)
{
    gpt_tensor t;
    float **slots[12] = {&lp->ln1w, &lp->ln1b, &lp->ln2w, &lp->ln2b, &lp->qkvw, &lp->qkvb,
                         &lp->projw, &lp->projb, &lp->fcw, &lp->fcb, &lp->fc2w, &lp->fc2b};
    for (int k = 0; k < 12; k++) {
        gpt_tensor_info(cfg, 2 + 12 * l + k, &t);
        *slots[k] = base + t.offset;
    }
}

model_t *gpt_create(const model_cfg *cfg, int batch_size, char *err, size_t errlen)
{
    if (cfg->vocab_size < 1 || cfg->context < 1 || cfg->d_model < 1 || cfg->heads < 1 ||
        cfg->layers < 0 || batch_size < 1) {
        snprintf(err, errlen, "gpt: vocab_size, context, d_model, heads and batch_size must be at least 1");
        return NULL;
    }
    if (cfg->d_model % cfg->heads != 0) {
        snprintf(err, errlen, "gpt: d_model (%d) must be a multiple of heads (%d)", cfg->d_model, cfg->heads);
        return NULL;
    }
    size_t bytes = gpt_memory_bytes(cfg, batch_size);
    size_t acts = layout(cfg, batch_size, NULL, NULL);
    if (bytes == SIZE_MAX || acts == 0 || (uint64_t)batch_size * cfg->context > INT32_MAX / 4 ||
        (uint64_t)cfg->vocab_size * cfg->d_model > INT32_MAX) {
        snprintf(err, errlen, "gpt: model too large");
        return NULL;
    }
    /* AVX2+FMA kernels where the CPU has them; TRAIND_GPT_SCALAR=1 forces the
     * plain-C ones (the tests check both). */
    static int cpu_simd = -1;
    if (cpu_simd < 0) {
#if GPT_X86
        __builtin_cpu_init();
        cpu_simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        cpu_simd = 0;
#endif
    }
    const char *force_scalar = getenv("TRAIND_GPT_SCALAR");
    g_simd_ok = cpu_simd && !(force_scalar && *force_scalar && strcmp(force_scalar, "0") != 0);
    gpt_t *g = calloc(1, sizeof *g);
    if (!g)
        goto oom;
    model_t *m = &g->base;
    m->ops = &gpt_ops;
    m->cfg = *cfg;
    m->batch_size = batch_size;
    m->n_params = gpt_param_count(cfg);
    g->V = cfg->vocab_size;
    g->T = cfg->context;
    g->C = cfg->d_model;
    g->L = cfg->layers;
    g->NH = cfg->heads;
    g->hs = g->C / g->NH;
    g->maxB = batch_size;
    g->att_slot = (size_t)g->T * g->T + (size_t)g->hs * (((size_t)g->T + 7) & ~(size_t)7);
    g->att_fused = GPT_X86 && g_simd_ok && g->hs % 8 == 0;
    m->params = alloc_floats(m->n_params);
    m->grads = alloc_floats(m->n_params);
    g->lp = calloc((size_t)(g->L > 0 ? g->L : 1), sizeof *g->lp);
    g->lg = calloc((size_t)(g->L > 0 ? g->L : 1), sizeof *g->lg);
    g->la = calloc((size_t)(g->L > 0 ? g->L : 1), sizeof *g->la);
    g->arena = alloc_floats(acts);
    if (!m->params || !m->grads || !g->lp || !g->lg || !g->la || !g->arena) {
        gpt_destroy(m);
        goto oom;
    }
    memset(m->params, 0, m->n_params * sizeof(float));
    memset(m->grads, 0, m->n_params * sizeof(float));
    memset(g->arena, 0, acts * sizeof(float));
    layout(cfg, batch_size, g, g->arena);
    size_t V = g->V, T = g->T, C = g->C, L = g->L;
    g->wte = m->params;
    g->wpe = m->params + V * C;
    g->lnfw = m->params + V * C + T * C + L * (12 * C * C + 13 * C);
    g->lnfb = g->lnfw + C;
    g->gwte = m->grads;
    g->gwpe = m->grads + V * C;
    g->glnfw = m->grads + (g->lnfw - m->params);
    g->glnfb = g->glnfw + C;
    for (int l = 0; l < g->L; l++) {
        bind_layer(cfg, m->params, l, &g->lp[l]);
        bind_layer(cfg, m->grads, l, &g->lg[l]);
    }
    return m;
oom:
    snprintf(err, errlen, "gpt: out of memory (%zu MiB for parameters and activations)", bytes >> 20);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* sampling */

static int is_gpt(const model_t *m)
{
    return m && m->ops == &gpt_ops;
}

/* Forward of one sequence; logits of its last position into out. */
static int last_logits(gpt_t *g, const int32_t *tokens, int n, float *out)
{
    if (n > g->T) {
        tokens += n - g->T;
        n = g->T;
    }
    for (int i = 0; i < n; i++)
        if ((unsigned)tokens[i] >= (unsigned)g->V)
            return -1;
    step_ctx s;
    memset(&s, 0, sizeof s);
    s.g = g;
    s.B = 1;
    s.T = n;
    s.BT = n;
    s.nchunk = n < NCHUNK_MAX ? n : NCHUNK_MAX;
    s.tokens = tokens;
    s.targets = tokens;
    forward_body(&s);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, g->V, g->C, 1.0f, g->wte, g->C,
                g->lnf + (size_t)(n - 1) * g->C, 1, 0.0f, out, 1);
    return 0;
}

int gpt_logits(model_t *m, const int32_t *tokens, int n, float *logits)
{
    if (!is_gpt(m) || !tokens || n < 1 || !logits)
        return -1;
    return last_logits((gpt_t *)m, tokens, n, logits);
}

int gpt_sample(model_t *m, const int32_t *prompt, int n_prompt, int n_new,
               double temperature, rng_t *rng, int32_t *out)
{
    if (!is_gpt(m) || !prompt || n_prompt < 1 || n_new < 0 || (n_new > 0 && !out) ||
        (temperature > 0 && !rng) || isnan(temperature))
        return -1;
    gpt_t *g = (gpt_t *)m;
    int T = g->T, V = g->V;
    for (int i = 0; i < n_prompt; i++)
        if ((unsigned)prompt[i] >= (unsigned)V)
            return -1;
    int32_t *win = malloc(sizeof(int32_t) * (size_t)T);
    float *logits = malloc(sizeof(float) * (size_t)V);
    if (!win || !logits) {
        free(win);
        free(logits);
        return -1;
    }
    /* the window: the last min(T, n_prompt) prompt tokens */
    int n = n_prompt < T ? n_prompt : T;
    memcpy(win, prompt + (n_prompt - n), sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n_new; i++) {
        last_logits(g, win, n, logits);
        int next = 0;
        if (temperature <= 0) {
            for (int j = 1; j < V; j++)
                if (logits[j] > logits[next])
                    next = j;
        } else {
            double mx = logits[0], sum = 0.0;
            for (int j = 1; j < V; j++)
                mx = logits[j] > mx ? logits[j] : mx;
            for (int j = 0; j < V; j++)
                sum += exp((logits[j] - mx) / temperature);
            double u = rng_uniform(rng) * sum, acc = 0.0;
            next = V - 1;
            for (int j = 0; j < V; j++) {
                acc += exp((logits[j] - mx) / temperature);
                if (u < acc) {
                    next = j;
                    break;
                }
            }
        }
        out[i] = next;
        if (n < T) {
            win[n++] = next;
        } else {
            memmove(win, win + 1, sizeof(int32_t) * (size_t)(T - 1));
            win[T - 1] = next;
        }
    }
    free(win);
    free(logits);
    return 0;
}

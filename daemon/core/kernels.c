/*
 * kernels — the SIMD switch, the matrix-product wrappers and the row kernels
 * (LayerNorm, GELU, softmax, cross-entropy's exp-sum, column sums) of
 * traind's models.  See kernels.h: each kernel is written twice, plain C and
 * AVX2+FMA, and the public function picks one by kern_simd().
 */
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_x86.h"
#include "traind/compute.h"

/* ---- the SIMD switch ---------------------------------------------------- */

static int g_simd;          /* the SIMD kernels run (kern_simd_refresh) */

void kern_simd_refresh(void)
{
    static int cpu = -1;    /* the CPU has AVX2 and FMA */
    if (cpu < 0) {
#if KERN_X86
        __builtin_cpu_init();
        cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        cpu = 0;
#endif
    }
    const char *off = getenv("TRAIND_SCALAR");
    g_simd = cpu && !(off && *off && strcmp(off, "0") != 0);
}

int kern_simd(void)
{
    return g_simd;
}

/* ---- matrix products ---------------------------------------------------- */

void kern_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    compute_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void kern_matmul(int ta, int tb, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float *C, int ldc)
{
    if ((long)M * N * K >= KERN_SMALL_GEMM_MACS) {
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

/* ---- LayerNorm backward's column loops, shared by both builds ------------
 * Always inlined, so that each build compiles them as its own code (the AVX2
 * build runs them on the row's tail only). */

#define KERN_INLINE static inline __attribute__((always_inline))

/* Columns [c0, C): *a += Σ dn, *b += Σ dn·x̂ (dn = dout·w, x̂ = (x - m)·rs). */
KERN_INLINE void lnb_sums(const float *dout, const float *x, float m, float rs, const float *w,
                          int c0, int C, float *a, float *b)
{
    float sa = *a, sb = *b;
    for (int c = c0; c < C; c++) {
        float xh = (x[c] - m) * rs, dn = dout[c] * w[c];
        sa += dn;
        sb += dn * xh;
    }
    *a = sa;
    *b = sb;
}

/* Columns [c0, C) of dx (+)= (dn - a - x̂·b)·rs and the partials. */
KERN_INLINE void lnb_cols(const float *dout, const float *x, float m, float rs, const float *w,
                          float a, float b, int c0, int C, float *dx, int accumulate,
                          float *pw, float *pb, float *px)
{
    for (int c = c0; c < C; c++) {
        float xh = (x[c] - m) * rs, dn = dout[c] * w[c];
        float d = (dn - a - xh * b) * rs;
        float nd = accumulate ? dx[c] + d : d;
        dx[c] = nd;
        pw[c] += dout[c] * xh;
        pb[c] += dout[c];
        px[c] += nd;
    }
}

/* ---- the AVX2+FMA row kernels ------------------------------------------- */

#if KERN_X86
KERN_AVX2 static void colsum_avx2(const float *src, int rows, int ld, int width, float *out)
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


KERN_AVX2 static inline __m256 sigmoid2u8(__m256 v, __m256 *du_out)
{
    __m256 v2 = _mm256_mul_ps(v, v);
    __m256 k = _mm256_set1_ps(KERN_GELU_K);
    /* -2u = -2K(v + A v³) */
    __m256 u = _mm256_mul_ps(_mm256_mul_ps(k, v), _mm256_fmadd_ps(_mm256_set1_ps(KERN_GELU_A), v2, _mm256_set1_ps(1.0f)));
    __m256 e = exp8(_mm256_mul_ps(u, _mm256_set1_ps(-2.0f)));
    if (du_out)
        *du_out = _mm256_mul_ps(k, _mm256_fmadd_ps(_mm256_set1_ps(3.0f * KERN_GELU_A), v2, _mm256_set1_ps(1.0f)));
    return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

KERN_AVX2 static void gelu_row_avx2(float *x, float *y, const float *b, int W)
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

KERN_AVX2 static void gelu_bwd_row_avx2(const float *x, float *d, float *p, int W)
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


KERN_AVX2 static float dot_avx2(const float *a, const float *b, int n)
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

KERN_AVX2 static void softmax_bwd_avx2(const float *p, float *dp, int n, float dot)
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
KERN_AVX2 static float exp_sum_row_avx2(float *row, int V, float *mx_out)
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

KERN_AVX2 static void softmax_row_avx2(float *row, int n, int T)
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

KERN_AVX2 static void ln_row_avx2(const float *x, const float *w, const float *b, int C, float *o,
                                  float *mean, float *rstd)
{
    int c;
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
    float rs = 1.0f / sqrtf(v + KERN_LN_EPS);
    __m256 vr = _mm256_set1_ps(rs);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 n = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vr);
        _mm256_storeu_ps(o + c, _mm256_fmadd_ps(n, _mm256_loadu_ps(w + c), _mm256_loadu_ps(b + c)));
    }
    for (; c < C; c++)
        o[c] = (x[c] - m) * rs * w[c] + b[c];
    *mean = m;
    *rstd = rs;
}

KERN_AVX2 static void add_row_avx2(float *out, const float *x, const float *b, int n)
{
    int c;
    for (c = 0; c + 8 <= n; c += 8)
        _mm256_storeu_ps(out + c, _mm256_add_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(b + c)));
    for (; c < n; c++)
        out[c] = x[c] + b[c];
}

KERN_AVX2 static void lnb_row_avx2(const float *dout, const float *x, float m, float rs,
                                   const float *w, int C, float *dx, int accumulate,
                                   float *pw, float *pb, float *px)
{
    int c;
    __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(rs);
    __m256 va = _mm256_setzero_ps(), vb = _mm256_setzero_ps();
    float a, b;
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vr);
        __m256 dn = _mm256_mul_ps(_mm256_loadu_ps(dout + c), _mm256_loadu_ps(w + c));
        va = _mm256_add_ps(va, dn);
        vb = _mm256_fmadd_ps(dn, xh, vb);
    }
    a = hsum8(va);
    b = hsum8(vb);
    lnb_sums(dout, x, m, rs, w, c, C, &a, &b);
    a /= C;
    b /= C;
    va = _mm256_set1_ps(a);
    vb = _mm256_set1_ps(b);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vr);
        __m256 g = _mm256_loadu_ps(dout + c);
        __m256 dn = _mm256_mul_ps(g, _mm256_loadu_ps(w + c));
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(dn, va), _mm256_mul_ps(xh, vb)), vr);
        if (accumulate)
            d = _mm256_add_ps(d, _mm256_loadu_ps(dx + c));
        _mm256_storeu_ps(dx + c, d);
        _mm256_storeu_ps(pw + c, _mm256_fmadd_ps(g, xh, _mm256_loadu_ps(pw + c)));
        _mm256_storeu_ps(pb + c, _mm256_add_ps(g, _mm256_loadu_ps(pb + c)));
        _mm256_storeu_ps(px + c, _mm256_add_ps(d, _mm256_loadu_ps(px + c)));
    }
    lnb_cols(dout, x, m, rs, w, a, b, c, C, dx, accumulate, pw, pb, px);
}
#endif /* KERN_X86 */

/* ---- the plain-C row kernels, and the public functions that pick -------- */

/* Runs the AVX2 kernel call and returns, when the SIMD kernels are on. */
#if KERN_X86
#define TRY_SIMD(call) do { if (g_simd) { call; return; } } while (0)
#else
#define TRY_SIMD(call) do { } while (0)
#endif

void kern_layernorm_row(const float *x, const float *w, const float *b, int C, float *o,
                        float *mean, float *rstd)
{
    TRY_SIMD(ln_row_avx2(x, w, b, C, o, mean, rstd));
    float m = 0.0f, v = 0.0f;
    for (int c = 0; c < C; c++)
        m += x[c];
    m /= C;
    for (int c = 0; c < C; c++) {
        float d = x[c] - m;
        v += d * d;
    }
    v /= C;
    float rs = 1.0f / sqrtf(v + KERN_LN_EPS);
    for (int c = 0; c < C; c++)
        o[c] = (x[c] - m) * rs * w[c] + b[c];
    *mean = m;
    *rstd = rs;
}

void kern_add_row(float *out, const float *x, const float *b, int n)
{
    TRY_SIMD(add_row_avx2(out, x, b, n));
    for (int c = 0; c < n; c++)
        out[c] = x[c] + b[c];
}

void kern_layernorm_bwd_row(const float *dout, const float *x, float m, float rs,
                            const float *w, int C, float *dx, int accumulate,
                            float *pw, float *pb, float *px)
{
    TRY_SIMD(lnb_row_avx2(dout, x, m, rs, w, C, dx, accumulate, pw, pb, px));
    float a = 0.0f, b = 0.0f;
    lnb_sums(dout, x, m, rs, w, 0, C, &a, &b);
    a /= C;
    b /= C;
    lnb_cols(dout, x, m, rs, w, a, b, 0, C, dx, accumulate, pw, pb, px);
}

static inline float sigmoidf_(float z)
{
    return 1.0f / (1.0f + expf(-z));
}

/* gelu(x) = x·σ(2u), u = K(x + A x³), since 0.5(1 + tanh u) = σ(2u);
 * gelu'(x) = σ + 2x·σ(1-σ)·u'. */
void kern_gelu_row(float *x, float *y, const float *bias, int W)
{
    TRY_SIMD(gelu_row_avx2(x, y, bias, W));
    for (int c = 0; c < W; c++) {
        float v = x[c] + bias[c];
        x[c] = v;
        float u = KERN_GELU_K * (v + KERN_GELU_A * v * v * v);
        y[c] = v * sigmoidf_(2.0f * u);
    }
}

void kern_gelu_bwd_row(const float *x, float *d, float *p, int W)
{
    TRY_SIMD(gelu_bwd_row_avx2(x, d, p, W));
    for (int c = 0; c < W; c++) {
        float v = x[c];
        float u = KERN_GELU_K * (v + KERN_GELU_A * v * v * v);
        float du = KERN_GELU_K * (1.0f + 3.0f * KERN_GELU_A * v * v);
        float sg = sigmoidf_(2.0f * u);
        float gd = sg + 2.0f * v * sg * (1.0f - sg) * du;
        d[c] *= gd;
        p[c] += d[c];
    }
}

static float exp_sum_row_scalar(float *row, int n, float *mx_out)
{
    float mx = row[0], sum = 0.0f;
    for (int j = 1; j < n; j++)
        mx = row[j] > mx ? row[j] : mx;
    for (int j = 0; j < n; j++) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    *mx_out = mx;
    return sum;
}

float kern_exp_sum_row(float *row, int n, float *mx)
{
#if KERN_X86
    if (g_simd)
        return exp_sum_row_avx2(row, n, mx);
#endif
    return exp_sum_row_scalar(row, n, mx);
}

void kern_softmax_row(float *row, int n, int T)
{
    TRY_SIMD(softmax_row_avx2(row, n, T));
    float mx;
    float inv = 1.0f / exp_sum_row_scalar(row, n, &mx);
    for (int j = 0; j < n; j++)
        row[j] *= inv;
    for (int j = n; j < T; j++)
        row[j] = 0.0f;
}

void kern_softmax_bwd_row(const float *p, float *dp, int n, int T)
{
    int j;
    float dot = 0.0f;
#if KERN_X86
    if (g_simd) {
        dot = dot_avx2(p, dp, n);
        softmax_bwd_avx2(p, dp, n, dot);
    } else
#endif
    {
        for (j = 0; j < n; j++)
            dot += p[j] * dp[j];
        for (j = 0; j < n; j++)
            dp[j] = p[j] * (dp[j] - dot);
    }
    for (j = n; j < T; j++)
        dp[j] = 0.0f;
}

void kern_colsum(const float *src, int rows, int ld, int width, float *out)
{
    int c0 = 0;
#if KERN_X86
    if (g_simd) {
        colsum_avx2(src, rows, ld, width, out);
        c0 = width & ~7;
    }
#endif
    for (int c = c0; c < width; c++)
        out[c] = 0.0f;
    for (int r = 0; r < rows; r++)
        for (int c = c0; c < width; c++)
            out[c] += src[(size_t)r * ld + c];
}

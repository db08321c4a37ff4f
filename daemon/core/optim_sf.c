/*
 * optim_sf — schedule-free AdamW.  See traind/optim_sf.h for the method.
 *
 * The arithmetic is the reference's, op by op, as torch 1.13 computes it on
 * the CPU (the reference's single-tensor path; tests/gen_torch_ref.py writes
 * it in those ops and tests/data/optim/schedule_free*.json holds the result):
 *
 *   - the per-step scalars (the warmup factor, lr, lr_max, weight,
 *     weight_sum, c, 1 - b2^(k+1), lr*(b1*(1-c) - 1)) are Python doubles,
 *     computed here in double with the same operations (pow() for **), and
 *     reach the float32 kernels converted to float;
 *   - `v.mul_(b2).addcmul_(g, g, value=1-b2)` is fma((1-b2)*g, g, v*b2) and
 *     `a.add_(b, alpha=s)` / `a.sub_(b, alpha=s)` are fma(b, ±s, a), as for
 *     AdamW (optim.c says how that was established);
 *   - `v.div(bc2).sqrt_().add_(eps)` and `g / denom` are plain IEEE float
 *     division, square root and addition;
 *   - `y.lerp_(z, w)` is torch's scalar-weight lerp kernel: with the weight
 *     w as a float, y + w*(z - y) when |w| < 0.5, else z - (z - y)*(1 - w),
 *     and torch's AVX2 build (gcc, -mfma, fp-contract on) fuses each into
 *     one fma: fma(w, z - y, y) and fma(-(z - y), 1 - w, z).  Separate
 *     multiply-add does not reproduce torch's bits; fma does, every value.
 *
 * fmaf() is correctly rounded by C99's definition (a software fallback in
 * libm where the CPU has no FMA), so these numbers are the same on every
 * machine; only their speed differs.  Like optim.c, x86-64 CPUs with
 * AVX2+FMA (checked at run time) run an 8-wide intrinsics loop, others the
 * scalar loop with fmaf — same bits (tests/unit/test_optim_sf.c checks the
 * vector body against the scalar tail).
 */
#include "traind/optim_sf.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "optim_impl.h"   /* no fp contraction: torch's roundings */

/* One step's constants, in the precision torch uses them. */
typedef struct sf_coef {
    float b2, a2;       /* beta2, 1 - beta2 */
    float bc2;          /* 1 - beta2^(k+1) */
    float eps, wd;
    float c, c1;        /* the lerp weight ckp1, and 1 - ckp1 in float (lerp's other branch) */
    float y_step;       /* lr*(beta1*(1 - ckp1) - 1) */
    float neg_lr;       /* -lr */
} sf_coef;

/* torch's lerp(a, b, w) with a float weight w (w1 = 1 - w in float); small:
 * |w| < 0.5.  Fused as torch's AVX2 kernel is. */
INLINE float sf_lerp(float a, float b, float w, float w1, bool small)
{
    float d = b - a;
    return small ? fmaf(w, d, a) : fmaf(-d, w1, b);
}

INLINE void sf_elem(sf_coef c, bool wd, bool small, float *y, float *z, float *v, float g)
{
    float vi = fmaf(c.a2 * g, g, *v * c.b2);        /* v.mul_(b2).addcmul_(g, g, value=1-b2) */
    float d = sqrtf(vi / c.bc2) + c.eps;            /* v.div(bc2).sqrt_().add_(eps) */
    float gn = g / d;                               /* grad.div(denom) */
    float yi = *y, zi = *z;
    if (wd)
        gn = fmaf(yi, c.wd, gn);                    /* gn.add_(y, alpha=wd): at y before the step */
    yi = sf_lerp(yi, zi, c.c, c.c1, small);         /* y.lerp_(z, ckp1) */
    *y = fmaf(gn, c.y_step, yi);                    /* y.add_(gn, alpha=lr*(b1*(1-ckp1)-1)) */
    *z = fmaf(gn, c.neg_lr, zi);                    /* z.sub_(gn, alpha=lr) */
    *v = vi;
}

INLINE void sf_loop(sf_coef c, bool wd, bool small, float *restrict y, float *restrict z,
                    float *restrict v, const float *restrict g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sf_elem(c, wd, small, &y[i], &z[i], &v[i], g[i]);
}

INLINE void lerp_loop(const float *restrict a, const float *restrict b, float *restrict out, float w,
                      float w1, bool small, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = sf_lerp(a[i], b[i], w, w1, small);
}

/* The kernels, flags constant so that the loops specialise; one copy per
 * instruction set (the FMA copy makes fmaf one instruction). */
#define SF_KERNELS(SFX, ATTR)                                                                       \
    static ATTR NO_CONTRACT void sf_kernel##SFX(const sf_coef *c, bool wd, bool small, float *y,    \
                                                float *z, float *v, const float *g, size_t n)       \
    {                                                                                               \
        if (wd && small)  sf_loop(*c, true, true, y, z, v, g, n);                                   \
        else if (wd)      sf_loop(*c, true, false, y, z, v, g, n);                                  \
        else if (small)   sf_loop(*c, false, true, y, z, v, g, n);                                  \
        else              sf_loop(*c, false, false, y, z, v, g, n);                                 \
    }                                                                                               \
    static ATTR NO_CONTRACT void lerp_kernel##SFX(const float *a, const float *b, float *out,       \
                                                  float w, float w1, bool small, size_t n)          \
    {                                                                                               \
        if (small) lerp_loop(a, b, out, w, w1, true, n);                                            \
        else       lerp_loop(a, b, out, w, w1, false, n);                                           \
    }

SF_KERNELS(_base, )

#if defined(__x86_64__) && defined(__GNUC__) && !defined(OPTIM_BASELINE_ONLY)
#define HAVE_FMA_KERNELS 1
#define FMA_TARGET __attribute__((target("avx2,fma")))
SF_KERNELS(_fma, FMA_TARGET)

static FMA_TARGET NO_CONTRACT __m256 sf_lerp8(__m256 a, __m256 b, __m256 w, __m256 w1, bool small)
{
    __m256 d = _mm256_sub_ps(b, a);
    return small ? _mm256_fmadd_ps(w, d, a) : _mm256_fnmadd_ps(d, w1, b);   /* fnmadd: -(d*w1) + b */
}

/* sf_elem 8 floats at a time (gcc does not vectorize sqrtf without
 * -fno-math-errno; see optim.c).  Same operations, same bits. */
static FMA_TARGET NO_CONTRACT void sf_kernel_avx2(const sf_coef *c, bool wd, bool small, float *y, float *z,
                                                  float *v, const float *g, size_t n)
{
    const __m256 b2 = _mm256_set1_ps(c->b2), a2 = _mm256_set1_ps(c->a2), bc2 = _mm256_set1_ps(c->bc2);
    const __m256 eps = _mm256_set1_ps(c->eps), wdv = _mm256_set1_ps(c->wd);
    const __m256 w = _mm256_set1_ps(c->c), w1 = _mm256_set1_ps(c->c1);
    const __m256 y_step = _mm256_set1_ps(c->y_step), neg_lr = _mm256_set1_ps(c->neg_lr);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i), yi = _mm256_loadu_ps(y + i), zi = _mm256_loadu_ps(z + i);
        __m256 vi = _mm256_fmadd_ps(_mm256_mul_ps(a2, gi), gi, _mm256_mul_ps(_mm256_loadu_ps(v + i), b2));
        __m256 d = _mm256_add_ps(_mm256_sqrt_ps(_mm256_div_ps(vi, bc2)), eps);
        __m256 gn = _mm256_div_ps(gi, d);
        if (wd)
            gn = _mm256_fmadd_ps(yi, wdv, gn);
        yi = sf_lerp8(yi, zi, w, w1, small);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(gn, y_step, yi));
        _mm256_storeu_ps(z + i, _mm256_fmadd_ps(gn, neg_lr, zi));
        _mm256_storeu_ps(v + i, vi);
    }
    sf_kernel_fma(c, wd, small, y + i, z + i, v + i, g + i, n - i);
}

static FMA_TARGET NO_CONTRACT void lerp_kernel_avx2(const float *a, const float *b, float *out, float w,
                                                    float w1, bool small, size_t n)
{
    const __m256 wv = _mm256_set1_ps(w), w1v = _mm256_set1_ps(w1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, sf_lerp8(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), wv, w1v, small));
    lerp_kernel_fma(a + i, b + i, out + i, w, w1, small, n - i);
}

static bool cpu_has_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

/* torch's lerp with the weight as its kernel takes it: a float, the branch
 * on |w| < 0.5 and 1 - w both in float. */
static void lerp(const float *a, const float *b, float *out, double weight, size_t n)
{
    float w = (float)weight, w1 = 1.0f - w;
    bool small = fabsf(w) < 0.5f;
#ifdef HAVE_FMA_KERNELS
    if (cpu_has_fma()) {
        lerp_kernel_avx2(a, b, out, w, w1, small, n);
        return;
    }
#endif
    lerp_kernel_base(a, b, out, w, w1, small, n);
}

void optim_sf_step(const optim_cfg *cfg, optim_state *st, float *y, const float *grads, size_t n,
                   double lr_sched)
{
    long k = st->step - 1;
    if (k == 0) {   /* the reference's lazy state: z = clone(y), exp_avg_sq = 0 */
        memcpy(st->m, y, n * sizeof *y);
        st->weight_sum = 0.0;
        st->lr_max = -1.0;
    }
    const double b1 = cfg->beta1, b2 = cfg->beta2;
    const long W = cfg->sf_warmup_steps;
    double lr = lr_sched * (k < W ? (double)(k + 1) / (double)W : 1.0);
    if (lr > st->lr_max)
        st->lr_max = lr;
    double weight = pow((double)(k + 1), cfg->sf_r) * pow(st->lr_max, cfg->sf_weight_lr_power);
    st->weight_sum += weight;
    double ckp1 = st->weight_sum != 0.0 ? weight / st->weight_sum : 0.0;   /* Python: ZeroDivisionError -> 0 */
    float w = (float)ckp1;
    sf_coef c = {
        .b2 = (float)b2, .a2 = (float)(1.0 - b2),
        .bc2 = (float)(1.0 - pow(b2, (double)(k + 1))),
        .eps = (float)cfg->eps, .wd = (float)cfg->weight_decay,
        .c = w, .c1 = 1.0f - w,
        .y_step = (float)(lr * (b1 * (1.0 - ckp1) - 1.0)),
        .neg_lr = (float)(-lr),
    };
    bool wd = cfg->weight_decay != 0.0, small = fabsf(w) < 0.5f;   /* the reference: if decay != 0 */
#ifdef HAVE_FMA_KERNELS
    if (cpu_has_fma()) {
        sf_kernel_avx2(&c, wd, small, y, st->m, st->v, grads, n);
        return;
    }
#endif
    sf_kernel_base(&c, wd, small, y, st->m, st->v, grads, n);
}

void optim_sf_eval_params(const optim_cfg *cfg, const float *y, const float *z, float *x, size_t n)
{
    lerp(y, z, x, 1.0 - 1.0 / cfg->beta1, n);   /* optimizer.eval(): p.lerp_(z, 1 - 1/beta1) */
}

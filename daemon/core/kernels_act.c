/*
 * kernels_act — the MLP's activation passes (see kernels.h), feature-major:
 * a row is one feature over the batch.  Forward: A = act(Z + b[row]), gelu
 * also leaving gelu'(z) in Z; backward: G ⊙ act'(.) and the row sums (the
 * bias gradient).
 *
 * Written with GCC vector extensions, 8 lanes, so they vectorise without
 * -O3 or -march: at the baseline x86-64 target each operation is two SSE
 * instructions; with the SIMD kernels on (kernels.h: the CPU has AVX2, the
 * build has KERN_X86, TRAIND_SCALAR unset) the same source compiled for AVX2
 * (one 256-bit instruction) runs instead.  FMA is not enabled, so both builds
 * do the same IEEE operations in the same order and give bit-identical
 * results (test_mlp checks).  Lanes and the partial last group of a row run
 * the same operations, so a value's result never depends on its position.
 *
 * GELU is torch's tanh approximation, 0.5 z (1 + tanh(√(2/π)(z + 0.044715 z³))),
 * computed as z · σ(2u) (the same function: 1 + tanh(u) = 2σ(2u)) with a
 * vectorised expf.  It is within a few ulps of the exact value of that
 * formula (torch's float evaluation is off by ~100 ulps at z = -3, from
 * 1 + tanh(u) cancelling) and its derivative is torch's GeluBackward formula.
 */
#include "kernels.h"

#include <stdint.h>
#include <string.h>

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


/* gelu(z); if d, also *d = gelu'(z) = σ + 2 z σ (1 - σ) u'  (σ = σ(2u)). */
VI vf vgelu(const vf *zp, vf *d)
{
    vf z = *zp;
    vi nan = z != z;
    vf zc = vclamp(z, -20.0f, 20.0f);   /* beyond ±20, gelu is 0 or z */
    zc = vsel(nan, z, zc);
    vf z2 = zc * zc;
    vf u = vset(KERN_GELU_K) * (zc + vset(KERN_GELU_A) * z2 * zc);
    vf m2u = vset(-2.0f) * u;
    vf s = vset(1.0f) / (vset(1.0f) + vexp(&m2u));   /* σ(2u) = (1 + tanh u) / 2 */
    if (d) {
        vf du = vset(KERN_GELU_K) * (vset(1.0f) + vset(3.0f * KERN_GELU_A) * z2);
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

/* The same loops compiled for AVX2 (no FMA: the same operations, the same bits). */
#if KERN_X86
#define AVX2_BUILD __attribute__((target("avx2")))
#else
#define AVX2_BUILD
#endif

AVX2_BUILD static void act_forward_avx2(activation_type act, int rows, int B, float *Z, float *A,
                                        const float *b, int deriv)
{
    act_forward_body(act, rows, B, Z, A, b, deriv);
}

AVX2_BUILD static void act_backward_avx2(activation_type act, int rows, int B, float *G,
                                         const float *Z, const float *A, float *db)
{
    act_backward_body(act, rows, B, G, Z, A, db);
}

void kern_act_forward(activation_type act, int rows, int B, float *Z, float *A,
                      const float *b, int deriv)
{
    if (KERN_X86 && kern_simd())
        act_forward_avx2(act, rows, B, Z, A, b, deriv);
    else
        act_forward_body(act, rows, B, Z, A, b, deriv);
}

void kern_act_backward(activation_type act, int rows, int B, float *G, const float *Z,
                       const float *A, float *db)
{
    if (KERN_X86 && kern_simd())
        act_backward_avx2(act, rows, B, G, Z, A, db);
    else
        act_backward_body(act, rows, B, G, Z, A, db);
}

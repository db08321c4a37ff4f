/*
 * kernels — the numeric kernels both models are written on (private to the
 * core): matrix products over the compute pool, LayerNorm / GELU / softmax /
 * cross-entropy rows, the causal attention of one (sequence, head) and the
 * MLP's activation passes.  The models (model_gpt*.c, model_mlp.c) hold the
 * shapes, the buffers and the order of the calls; the arithmetic is here.
 *
 *   kernels.c       the SIMD switch, gemm, the row kernels (scalar + AVX2/FMA)
 *   kernels_attn.c  attention of one (b, h): register-blocked AVX2, or sgemm blocks
 *   kernels_act.c   the MLP's feature-major activation passes (GCC vectors)
 *   kernels_x86.h   AVX2 helpers shared by those files (exp8, hsum8, masks)
 *
 * SIMD, one switch.  AVX2+FMA kernels are compiled only on x86-64 with GCC or
 * Clang (KERN_X86) and run only where the CPU has both (checked at run time
 * with __builtin_cpu_supports); everything else runs the plain-C kernels.
 * Build with -DTRAIND_NO_SIMD to leave the SIMD kernels out; set
 * TRAIND_SCALAR=1 in the environment to run the plain ones (read when a
 * model is created: kern_simd_refresh).  Never AVX-512: the trainer runs on
 * the user's CPU, not ours.
 *
 * Bits.  Matrix products go through compute_sgemm, whose tiles depend on the
 * shape alone, so they are the same for every thread count; every row kernel
 * depends on its row alone.  The GPT's AVX2 kernels use FMA and a Cephes exp
 * and so differ in the last bits from its plain ones (the tests check both);
 * the MLP's activations do the same IEEE operations in both builds (no FMA)
 * and give the same bits with or without SIMD.  The two exps (exp8 here, the
 * MLP's vexp) are therefore kept as they are: merging them would change the
 * numbers of one model, and with them every recorded run and checkpoint.
 */
#ifndef TRAIND_KERNELS_H
#define TRAIND_KERNELS_H

#include <stddef.h>
#include "traind/config.h"

#if (defined(__x86_64__) && defined(__GNUC__)) && !defined(TRAIND_NO_SIMD)
#define KERN_X86 1
#else
#define KERN_X86 0
#endif

/* GELU, tanh form: gelu(x) = 0.5x(1 + tanh(K(x + A x³))) = x·σ(2K(x + A x³)). */
#define KERN_GELU_K 0.7978845608028654f    /* sqrt(2/pi) */
#define KERN_GELU_A 0.044715f
#define KERN_LN_EPS 1e-5f

/* ---- the SIMD switch ---------------------------------------------------- */

/* Decides, process-wide, whether the SIMD kernels run: the CPU has AVX2 and
 * FMA (asked once), the build has them (KERN_X86) and TRAIND_SCALAR is unset
 * or "0".  The model constructors call it; the last call decides. */
void kern_simd_refresh(void);
/* 1 while the SIMD kernels run (after kern_simd_refresh). */
int kern_simd(void);

/* ---- matrix products ---------------------------------------------------- */

/* C (M,N) = alpha·op(A)·op(B) + beta·C, row-major with leading dimensions,
 * op(X) = X^T when its flag is set: compute_sgemm (tiles over the pool, the
 * same bits for every thread count). */
void kern_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);

/* Below this many multiply-adds kern_matmul uses plain loops. */
#define KERN_SMALL_GEMM_MACS 32768
/* C = op(A)·op(B) (overwritten): kern_gemm, but products under
 * KERN_SMALL_GEMM_MACS multiply-adds run as plain loops, where a BLAS call
 * costs more than the whole product (the MLP's seed-linear is 4×10×10).  The
 * GPT uses kern_gemm for every size: its numbers were fixed that way. */
void kern_matmul(int ta, int tb, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float *C, int ldc);

/* ---- rows --------------------------------------------------------------- */

/* out = (x - mean)·rstd·w + b over one row of C; *mean, *rstd as used. */
void kern_layernorm_row(const float *x, const float *w, const float *b, int C, float *out,
                        float *mean, float *rstd);
/* LayerNorm backward of one row: d = LN'(dout); dx = d (or dx + d with
 * accumulate); pw += dout·x̂, pb += dout, px += the new dx (column partials). */
void kern_layernorm_bwd_row(const float *dout, const float *x, float mean, float rstd,
                            const float *w, int C, float *dx, int accumulate,
                            float *pw, float *pb, float *px);
/* out[c] = x[c] + b[c], c < n. */
void kern_add_row(float *out, const float *x, const float *b, int n);
/* x += bias; y = gelu(x), over W values. */
void kern_gelu_row(float *x, float *y, const float *bias, int W);
/* d *= gelu'(x); p += the new d, over W values. */
void kern_gelu_bwd_row(const float *x, float *d, float *p, int W);
/* row[0..n) = exp(row - max) in place; returns their sum, *mx the max. */
float kern_exp_sum_row(float *row, int n, float *mx);
/* row[0..n) = softmax(row[0..n)) in place; row[n..T) = 0. */
void kern_softmax_row(float *row, int n, int T);
/* dp = p ⊙ (dp - Σ p·dp) over j < n in place; dp[n..T) = 0. */
void kern_softmax_bwd_row(const float *p, float *dp, int n, int T);
/* out[c] = Σ_r src[r·ld + c], c < width. */
void kern_colsum(const float *src, int rows, int ld, int width, float *out);

/* ---- attention of one (sequence, head) ----------------------------------
 * q, k, v: T rows of hs values with row stride ld (views into a qkv buffer);
 * P: (T, T) softmax probabilities, zero above the diagonal; y/dy: T rows
 * of hs with stride ldy.  slot: kern_attn_slot(T, hs) floats of scratch.
 * fused (kern_attn_fused): the AVX2 register-blocked kernels, which compute
 * only the causal part; otherwise row blocks of KERN_ATT_BLOCK go through
 * single-threaded sgemms. */
#ifndef KERN_ATT_BLOCK
#define KERN_ATT_BLOCK 32
#endif
size_t kern_attn_slot(size_t T, size_t hs);
/* 1 when kern_attn_* take the fused kernels for head size hs. */
int kern_attn_fused(int hs);
/* P = softmax(q·k^T/√hs, causal); y = P·v. */
void kern_attn_forward(const float *q, const float *k, const float *v, int ld, int T, int hs,
                       float *P, float *y, int ldy, float *slot, int fused);
/* dq = dS·k/√hs, dk = dS^T·q/√hs, dv = P^T·dy with dS the softmax backward
 * of dy·v^T (strides: dq, dk, dv ld; dy ldy). */
void kern_attn_backward(const float *q, const float *k, const float *v, int ld, const float *P,
                        const float *dy, int ldy, float *dq, float *dk, float *dv, int T, int hs,
                        float *slot, int fused);

/* ---- the MLP's activations (feature-major: rows of B values) ------------ */

/* A = act(Z + b[row]); with deriv and gelu, Z = gelu'(Z + b[row]) in place. */
void kern_act_forward(activation_type act, int rows, int B, float *Z, float *A,
                      const float *b, int deriv);
/* G = G ⊙ act'(.) in place (Z holds gelu', A the activation); db[row] = Σ of the row. */
void kern_act_backward(activation_type act, int rows, int B, float *G, const float *Z,
                       const float *A, float *db);

#endif

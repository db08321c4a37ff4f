/*
 * test_kernels — the kernel layer both models run on (daemon/core/kernels.h):
 * the SIMD switch acts, each row kernel matches a double-precision reference,
 * the SIMD and plain kernels agree (the GPT's up to rounding, the MLP's
 * activations bit for bit), kern_matmul's loops agree with BLAS, and the two
 * attention paths agree with a naive causal attention.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/core/kernels.h"
#include "traind/rng.h"
#include "tl.h"

static void set_simd(int on)
{
    if (on)
        unsetenv("TRAIND_SCALAR");
    else
        setenv("TRAIND_SCALAR", "1", 1);
    kern_simd_refresh();
}

static int cpu_simd(void)
{
#if KERN_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static void fill(float *x, int n, unsigned seed, float scale)
{
    rng_t r;
    rng_seed(&r, seed, RNG_STREAM_DATA);
    for (int i = 0; i < n; i++)
        x[i] = (float)(scale * rng_normal(&r));
}

static const int WIDTHS[] = {1, 7, 8, 9, 17, 37, 128};
#define NW ((int)(sizeof WIDTHS / sizeof WIDTHS[0]))

START_TEST(switch_acts)
{
    set_simd(0);
    ck_assert_int_eq(kern_simd(), 0);
    setenv("TRAIND_SCALAR", "0", 1);       /* "0" means not set */
    kern_simd_refresh();
    ck_assert_int_eq(kern_simd(), cpu_simd());
    set_simd(1);
    ck_assert_int_eq(kern_simd(), cpu_simd());
    ck_assert_int_eq(kern_attn_fused(16), cpu_simd());
    ck_assert_int_eq(kern_attn_fused(12), 0);
}
END_TEST

/* Each row kernel against doubles, in both modes. */
START_TEST(rows_match_reference)
{
    for (int mode = 0; mode < 2; mode++) {
        set_simd(mode);
        for (int k = 0; k < NW; k++) {
            int C = WIDTHS[k];
            float x[128], w[128], b[128], out[128], y[128], mean, rstd;
            fill(x, C, 1 + k, 2.0f);
            fill(w, C, 2 + k, 1.0f);
            fill(b, C, 3 + k, 1.0f);
            kern_layernorm_row(x, w, b, C, out, &mean, &rstd);
            double m = 0, v = 0;
            for (int c = 0; c < C; c++)
                m += x[c];
            m /= C;
            for (int c = 0; c < C; c++)
                v += (x[c] - m) * (x[c] - m);
            v /= C;
            for (int c = 0; c < C; c++) {
                double ref = (x[c] - m) / sqrt(v + 1e-5) * w[c] + b[c];
                ck_assert_msg(fabs(out[c] - ref) < 1e-4 * (1 + fabs(ref)), "ln C=%d c=%d simd=%d", C, c, mode);
            }
            /* gelu with the bias added into x */
            float x0[128];
            memcpy(x0, x, sizeof x);
            kern_gelu_row(x, y, b, C);
            for (int c = 0; c < C; c++) {
                double z = (double)x0[c] + b[c];
                double ref = 0.5 * z * (1 + tanh(sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
                ck_assert(fabsf(x[c] - (float)z) <= 1e-6f * (1 + fabsf(x[c])));
                ck_assert_msg(fabs(y[c] - ref) < 1e-5 * (1 + fabs(ref)), "gelu %g: %g vs %g", z, y[c], ref);
            }
            /* softmax over n of T, zero tail; the exp-sum row */
            int T = C + 3;
            float row[131];
            fill(row, T, 4 + k, 3.0f);
            float keep[131];
            memcpy(keep, row, sizeof row);
            kern_softmax_row(row, C, T);
            double mx = keep[0], s = 0;
            for (int j = 1; j < C; j++)
                mx = fmax(mx, keep[j]);
            for (int j = 0; j < C; j++)
                s += exp(keep[j] - mx);
            for (int j = 0; j < T; j++) {
                double ref = j < C ? exp(keep[j] - mx) / s : 0.0;
                ck_assert_msg(fabs(row[j] - ref) < 1e-6, "softmax C=%d j=%d", C, j);
            }
            float mxf;
            memcpy(row, keep, sizeof row);
            float sum = kern_exp_sum_row(row, C, &mxf);
            ck_assert(mxf == (float)mx);
            ck_assert(fabs(sum - s) < 1e-5 * s);
        }
    }
    set_simd(1);
}
END_TEST

/* SIMD and plain kernels: the same function up to float rounding. */
START_TEST(simd_agrees_with_plain)
{
    if (!cpu_simd()) {
        tl_skip("simd_agrees_with_plain: no AVX2+FMA kernels here (CPU or -DTRAIND_NO_SIMD build)");
        return;
    }
    for (int k = 0; k < NW; k++) {
        int C = WIDTHS[k], R = 5;
        float x[5 * 128], w[128], dout[5 * 128], dx[2][5 * 128], p[2][3 * 128];
        fill(x, R * C, 10 + k, 1.5f);
        fill(w, C, 11 + k, 1.0f);
        fill(dout, R * C, 12 + k, 1.0f);
        for (int mode = 0; mode < 2; mode++) {
            set_simd(mode);
            memset(p[mode], 0, sizeof p[mode]);
            for (int r = 0; r < R; r++) {
                float mean, rstd, o[128];
                kern_layernorm_row(x + r * C, w, w, C, o, &mean, &rstd);
                kern_layernorm_bwd_row(dout + r * C, x + r * C, mean, rstd, w, C, dx[mode] + r * C, 0,
                                       p[mode], p[mode] + C, p[mode] + 2 * C);
            }
        }
        for (int i = 0; i < R * C; i++)
            ck_assert_msg(fabsf(dx[0][i] - dx[1][i]) < 1e-4f * (1 + fabsf(dx[0][i])), "lnb C=%d i=%d", C, i);
        for (int i = 0; i < 3 * C; i++)
            ck_assert(fabsf(p[0][i] - p[1][i]) < 1e-4f * (1 + fabsf(p[0][i])));
        /* gelu backward and the column sums */
        float d[2][128], gp[2][128], cs[2][128];
        for (int mode = 0; mode < 2; mode++) {
            set_simd(mode);
            memcpy(d[mode], dout, C * sizeof(float));
            memset(gp[mode], 0, sizeof gp[mode]);
            kern_gelu_bwd_row(x, d[mode], gp[mode], C);
            kern_colsum(x, R, C, C, cs[mode]);
        }
        for (int c = 0; c < C; c++) {
            ck_assert(fabsf(d[0][c] - d[1][c]) < 1e-5f * (1 + fabsf(d[0][c])));
            ck_assert(fabsf(cs[0][c] - cs[1][c]) < 1e-5f * (1 + fabsf(cs[0][c])));
        }
    }
    set_simd(1);
}
END_TEST

/* The MLP's activations: the AVX2 and the baseline builds give the same bits. */
START_TEST(activations_same_bits)
{
    const activation_type acts[] = {ACT_RELU, ACT_TANH, ACT_GELU};
    int rows = 3, B = 13;
    float z0[39], bias[3], dz[39];
    fill(z0, rows * B, 20, 3.0f);
    fill(bias, rows, 21, 1.0f);
    fill(dz, rows * B, 22, 1.0f);
    for (int k = 0; k < 3; k++) {
        float Z[2][39], A[2][39], G[2][39], db[2][3];
        for (int mode = 0; mode < 2; mode++) {
            set_simd(mode);
            memcpy(Z[mode], z0, sizeof z0);
            memcpy(G[mode], dz, sizeof dz);
            kern_act_forward(acts[k], rows, B, Z[mode], A[mode], bias, 1);
            kern_act_backward(acts[k], rows, B, G[mode], Z[mode], A[mode], db[mode]);
        }
        ck_assert(memcmp(A[0], A[1], sizeof A[0]) == 0);
        ck_assert(memcmp(G[0], G[1], sizeof G[0]) == 0);
        ck_assert(memcmp(db[0], db[1], sizeof db[0]) == 0);
    }
    set_simd(1);
}
END_TEST

/* kern_matmul below and above KERN_SMALL_GEMM_MACS, every orientation, against doubles. */
START_TEST(matmul_matches_reference)
{
    set_simd(1);
    const int shapes[][3] = {{4, 10, 10}, {64, 48, 40}};   /* 400 and 122880 multiply-adds */
    for (int sh = 0; sh < 2; sh++) {
        int M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
        float *C = malloc(sizeof(float) * M * N);
        fill(A, M * K, 30, 1.0f);
        fill(B, K * N, 31, 1.0f);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int lda = ta ? M : K, ldb = tb ? K : N;
                kern_matmul(ta, tb, M, N, K, A, lda, B, ldb, C, N);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double s = 0;
                        for (int k = 0; k < K; k++)
                            s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
                                 (tb ? B[j * ldb + k] : B[k * ldb + j]);
                        ck_assert_msg(fabs(C[i * N + j] - s) < 1e-4 * (1 + fabs(s)),
                                      "M=%d ta=%d tb=%d (%d,%d)", M, ta, tb, i, j);
                    }
            }
        free(A);
        free(B);
        free(C);
    }
}
END_TEST

/* Causal attention of one head: both paths against a naive reference; their
 * gradients agree with each other. */
START_TEST(attention_paths_agree)
{
    const int T = 11, hs = 16, ld = 3 * hs;
    set_simd(1);
    float qkv[11 * 48], dy[11 * 16];
    fill(qkv, T * ld, 40, 1.0f);
    fill(dy, T * hs, 41, 1.0f);
    size_t slot_n = kern_attn_slot(T, hs);
    float *slot = malloc(sizeof(float) * slot_n);
    float P[2][121], y[2][11 * 16], dqkv[2][11 * 48];
    int paths = kern_attn_fused(hs) ? 2 : 1;
    for (int f = 0; f < paths; f++) {
        kern_attn_forward(qkv, qkv + hs, qkv + 2 * hs, ld, T, hs, P[f], y[f], hs, slot, f);
        memset(dqkv[f], 0, sizeof dqkv[f]);
        kern_attn_backward(qkv, qkv + hs, qkv + 2 * hs, ld, P[f], dy, hs, dqkv[f], dqkv[f] + hs,
                           dqkv[f] + 2 * hs, T, hs, slot, f);
    }
    for (int t = 0; t < T; t++) {
        double s[11], mx = -1e30, sum = 0;
        for (int j = 0; j <= t; j++) {
            s[j] = 0;
            for (int c = 0; c < hs; c++)
                s[j] += (double)qkv[t * ld + c] * qkv[j * ld + hs + c];
            s[j] /= sqrt(hs);
            mx = fmax(mx, s[j]);
        }
        for (int j = 0; j <= t; j++)
            sum += exp(s[j] - mx);
        for (int c = 0; c < hs; c++) {
            double ref = 0;
            for (int j = 0; j <= t; j++)
                ref += exp(s[j] - mx) / sum * qkv[j * ld + 2 * hs + c];
            for (int f = 0; f < paths; f++)
                ck_assert_msg(fabs(y[f][t * hs + c] - ref) < 1e-5, "y path %d t=%d c=%d", f, t, c);
        }
        for (int f = 0; f < paths; f++)
            for (int j = t + 1; j < T; j++)
                ck_assert(P[f][t * T + j] == 0.0f);
    }
    if (paths == 2)
        for (int i = 0; i < T * ld; i++)
            ck_assert_msg(fabsf(dqkv[0][i] - dqkv[1][i]) < 1e-5f * (1 + fabsf(dqkv[0][i])), "dqkv %d", i);
    else
        tl_skip("attention_paths_agree: the fused path is compared only where its AVX2+FMA kernels run");
    free(slot);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kernels");
    tcase_add_test(tc, switch_acts);
    tcase_add_test(tc, rows_match_reference);
    tcase_add_test(tc, simd_agrees_with_plain);
    tcase_add_test(tc, activations_same_bits);
    tcase_add_test(tc, matmul_matches_reference);
    tcase_add_test(tc, attention_paths_agree);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

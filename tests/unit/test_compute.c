/*
 * test_compute — compute_sgemm: every transpose and beta against a double
 * reference, over shapes that give one tile, a row of tiles, a column of
 * tiles, a 2D grid and partial edge tiles; and the same bits for 1, 2, 3 and
 * 5 threads (the property that lets a job resume with another thread count).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "traind/compute.h"
#include "tl.h"

static float *random_matrix(size_t n, unsigned *seed)
{
    float *m = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        m[i] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
    return m;
}

/* Small enough for Valgrind, large enough for every kind of grid: one
 * tile, 64-row and 128-row tiles, tiles across N, 2D grids, partial edges. */
static const int shapes[][3] = {
    {1, 1, 1}, {7, 5, 3}, {130, 130, 40}, {300, 70, 24}, {40, 300, 17},
    {520, 90, 16}, {70, 520, 16}, {260, 260, 9}, {1031, 33, 5},
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

/* op(A)·op(B) in double, with A and B laid out as compute_sgemm reads them. */
static double ref_elem(int ta, int tb, int K, const float *A, int lda, const float *B, int ldb, int i,
                       int j)
{
    double s = 0.0;
    for (int k = 0; k < K; k++) {
        double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        s += a * b;
    }
    return s;
}

START_TEST(matches_double_reference)
{
    unsigned seed = 7;
    for (int si = 0; si < N_SHAPES; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        for (int ta = 0; ta <= 1; ta++)
            for (int tb = 0; tb <= 1; tb++) {
                int lda = ta ? M : K, ldb = tb ? K : N;
                float *A = random_matrix((size_t)M * K, &seed), *B = random_matrix((size_t)K * N, &seed);
                float *C = random_matrix((size_t)M * N, &seed), *C0 = malloc(sizeof(float) * M * N);
                memcpy(C0, C, sizeof(float) * M * N);
                float alpha = 0.75f, beta = (si & 1) ? 0.0f : 0.5f;
                compute_set_threads(2);
                compute_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, N);
                /* Counted, then asserted once: Check reports every
                 * assertion's location through a pipe. */
                double tol = 1e-5 * sqrt((double)K) + 1e-6;
                long bad = 0;
                int bi = -1, bj = -1;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double want = alpha * ref_elem(ta, tb, K, A, lda, B, ldb, i, j) +
                                      (beta == 0.0f ? 0.0 : beta * (double)C0[(size_t)i * N + j]);
                        if (!(fabs(C[(size_t)i * N + j] - want) <= tol * (1.0 + fabs(want))) && bad++ == 0)
                            bi = i, bj = j;
                    }
                ck_assert_msg(bad == 0, "%dx%dx%d ta %d tb %d: %ld elements off, first C[%d][%d]", M, N,
                              K, ta, tb, bad, bi, bj);
                free(A);
                free(B);
                free(C);
                free(C0);
            }
    }
    compute_set_threads(1);
}
END_TEST

START_TEST(same_bits_for_every_thread_count)
{
    unsigned seed = 11;
    static const int threads[] = {2, 3, 5};
    for (int si = 0; si < N_SHAPES; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        for (int ta = 0; ta <= 1; ta++)
            for (int tb = 0; tb <= 1; tb++) {
                int lda = ta ? M : K, ldb = tb ? K : N;
                float *A = random_matrix((size_t)M * K, &seed), *B = random_matrix((size_t)K * N, &seed);
                float *C1 = calloc((size_t)M * N, sizeof(float)), *Ct = calloc((size_t)M * N, sizeof(float));
                compute_set_threads(1);
                compute_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C1, N);
                for (int t = 0; t < 3; t++) {
                    compute_set_threads(threads[t]);
                    memset(Ct, 0xff, sizeof(float) * M * N);      /* NaNs where a tile is missed */
                    compute_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, Ct, N);
                    ck_assert_msg(memcmp(C1, Ct, sizeof(float) * M * N) == 0,
                                  "%dx%dx%d ta %d tb %d: %d threads differ from 1", M, N, K, ta, tb,
                                  threads[t]);
                }
                free(A);
                free(B);
                free(C1);
                free(Ct);
            }
    }
    compute_set_threads(1);
}
END_TEST

START_TEST(empty_k_scales_c)
{
    float C[6] = {1, 2, 3, 4, 5, 6};
    compute_sgemm(0, 0, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 2.0f, C, 3);
    ck_assert(C[0] == 2.0f && C[5] == 12.0f);
    compute_sgemm(0, 0, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 0.0f, C, 3);
    for (int i = 0; i < 6; i++)
        ck_assert(C[i] == 0.0f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compute");
    TCase *tc = tcase_create("sgemm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, matches_double_reference);
    tcase_add_test(tc, same_bits_for_every_thread_count);
    tcase_add_test(tc, empty_k_scales_c);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}

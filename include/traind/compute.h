/*
 * compute — the job's compute threads: one count for OpenBLAS (pthread
 * build) and for our own parallel loops, so two pools never fight over the
 * cores.  Loops split work into fixed contiguous ranges per thread, so results
 * are bit-identical for a given thread count; matrix products are split by
 * the shape alone, so they are bit-identical for every thread count.
 */
#ifndef TRAIND_COMPUTE_H
#define TRAIND_COMPUTE_H

/* Sets the thread count (>= 1) for BLAS and compute_parallel_for. */
void compute_set_threads(int n);
int compute_threads(void);

/* Calls fn(ctx, lo, hi) over a partition of [0, n) into compute_threads()
 * contiguous ranges, in parallel; returns when all are done. */
void compute_parallel_for(int n, void (*fn)(void *ctx, int lo, int hi), void *ctx);

/* C (M,N) = alpha·op(A)·op(B) + beta·C, all row-major with leading
 * dimensions; op(X) is X^T when its flag is set.  Runs on the pool as
 * single-threaded sgemm calls over tiles of C chosen from the shape alone: the result
 * does not depend on the thread count.  K = 0 gives C = beta·C (0 for beta 0). */
void compute_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc);

#endif

/*
 * compute — the job's compute threads: one count for OpenBLAS (pthread
 * build) and for our own parallel loops, so two pools never fight over the
 * cores.  Loops split work into fixed contiguous ranges per thread, so results
 * are bit-identical for a given thread count.
 */
#ifndef TRAIND_COMPUTE_H
#define TRAIND_COMPUTE_H

/* Sets the thread count (>= 1) for BLAS and compute_parallel_for. */
void compute_set_threads(int n);
int compute_threads(void);

/* Calls fn(ctx, lo, hi) over a partition of [0, n) into compute_threads()
 * contiguous ranges, in parallel; returns when all are done. */
void compute_parallel_for(int n, void (*fn)(void *ctx, int lo, int hi), void *ctx);

#endif

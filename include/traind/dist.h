/*
 * dist — the data-parallel seam of the training loop (DDP semantics).
 *
 * The runner trains on one rank of `size`: every rank draws the same global
 * batch, trains on its own contiguous slice of it (dist_slice), and averages
 * its flat gradient buffer with the others (allreduce_mean) before the same
 * optimizer update, so the parameters never drift apart.  A NULL dist_t *
 * everywhere means one process: no MPI, no library, nothing to link.
 *
 * The implementation behind the function pointers lives outside the core:
 * dist_mpi.c (Open MPI), linked only into build/traind-mpi-worker, so the
 * core, traind and trainctl never need libmpi at build or run time.
 */
#ifndef TRAIND_DIST_H
#define TRAIND_DIST_H

#include <stddef.h>

typedef struct dist dist_t;

struct dist {
    int rank;                 /* 0..size-1; rank 0 writes files and reports */
    int size;                 /* >= 1 */
    /* Replaces buf (n floats, the same n on every rank) by its mean over the
     * ranks.  Deterministic: every rank gets the same bits, and the same
     * inputs give the same bits on every run (the sum is taken in rank
     * order, not in whatever order the network delivers).  0 or -errno. */
    int (*allreduce_mean)(dist_t *d, float *buf, size_t n);
    double comm_s;            /* seconds spent inside allreduce_mean so far */
    void *impl;
};

/* The contiguous slice [*lo, *lo + *n) of a batch of B rows that `rank` of
 * `size` trains on (B divisible by size: the config requires it). */
static inline void dist_slice(int B, int rank, int size, int *lo, int *n)
{
    *n = B / size;
    *lo = rank * *n;
}

#endif

/* compute — one thread count for OpenBLAS and our own loops.  See traind/compute.h. */
#include "traind/compute.h"

#include <cblas.h>

static int g_threads = 1;

void compute_set_threads(int n)
{
    if (n < 1)
        n = 1;
    g_threads = n;
    openblas_set_num_threads(n);
}

int compute_threads(void)
{
    return g_threads;
}

void compute_parallel_for(int n, void (*fn)(void *ctx, int lo, int hi), void *ctx)
{
    /* TODO(gpt): a persistent pthread pool; until then the loops run on the caller. */
    if (n > 0)
        fn(ctx, 0, n);
}

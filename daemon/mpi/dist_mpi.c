/*
 * dist_mpi — traind/dist.h over Open MPI: a deterministic mean of one flat
 * float buffer across the ranks of MPI_COMM_WORLD.  Why not a plain
 * MPI_Allreduce: see traind/dist_mpi.h.
 */
#include "traind/dist_mpi.h"

#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Under LeakSanitizer (make check).  Open MPI 4.1 keeps some allocations of
 * MPI_Init, of its collectives and of its helper threads past MPI_Finalize.
 * They are suppressed by module (libmpi, libopen-pal, libopen-rte, pmix,
 * hwloc, libevent, the MCA components), built into this program so that no
 * environment has to carry a suppression file; a leak with no Open MPI frame
 * is still reported, so our own code stays checked.  Two things make the
 * frames nameable: many allocations are made in components that Open MPI
 * dlclose()s before the leak check runs (some right after querying them),
 * so this program's own dlclose() — which the libraries' calls bind to —
 * keeps every library mapped; and some are made through libc's vasprintf,
 * whose callers the fast unwinder cannot follow (no frame pointers). */
#if defined(__SANITIZE_ADDRESS__)
int dlclose(void *handle);
int dlclose(void *handle)
{
    (void)handle;
    return 0;
}

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    /* the loop allocates nothing per step: slow unwinding costs nothing to speak of */
    return "fast_unwind_on_malloc=0:print_suppressions=0";
}

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:/openmpi/lib/\n"
           "leak:libmpi.so\n"
           "leak:libopen-pal.so\n"
           "leak:libopen-rte.so\n"
           "leak:libpmix.so\n"
           "leak:libhwloc.so\n"
           "leak:libevent\n";
}
#endif

typedef struct mpi_impl {
    int *counts, *displs;     /* per rank: its chunk of the buffer */
    int *rcounts, *rdispls;   /* per rank: where its copy of my chunk lands in recv */
    float *recv;              /* size × my chunk */
    size_t recv_cap;          /* floats */
} mpi_impl;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* How long a wait spins on MPI_Test before it starts sleeping between
 * tests, and the longest sleep.  A blocking collective spins for as long as
 * it waits (mpi_yield_when_idle only adds sched_yield, which returns at once
 * on an idle core): a rank whose peer was stopped burned all the CPU it was
 * given (up to a whole core) for as long as the job hung, and on a busy
 * machine a spinning rank starves the one it waits for.  Peers that arrive
 * within the spin cost nothing more; a later one costs at most one sleep
 * (1 ms) of latency; a stopped one, about 1% of a core. */
#define WAIT_SPIN_S 0.005
#define WAIT_SLEEP_MAX_NS 1000000L

/* Waits for req, polling it with a growing sleep once the spin is over.
 * MPI_SUCCESS or MPI's error code. */
static int wait_politely(MPI_Request *req)
{
    double t0 = mono();
    long sleep_ns = 20000;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || done)
            return rc;
        if (mono() - t0 < WAIT_SPIN_S)
            continue;
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < WAIT_SLEEP_MAX_NS)
            sleep_ns *= 2;
    }
}

static int allreduce_mean(dist_t *d, float *buf, size_t n)
{
    mpi_impl *m = d->impl;
    const int N = d->size, me = d->rank;
    if (N == 1 || n == 0)
        return 0;
    if (n > (size_t)0x7fffffff)
        return -EOVERFLOW;
    double t0 = mono();
    /* Rank j owns the j-th of N near-equal contiguous chunks. */
    size_t base = n / (size_t)N, extra = n % (size_t)N, off = 0;
    for (int j = 0; j < N; j++) {
        m->counts[j] = (int)(base + ((size_t)j < extra));
        m->displs[j] = (int)off;
        off += (size_t)m->counts[j];
    }
    const int mine = m->counts[me];
    size_t need = (size_t)N * (size_t)(mine > 0 ? mine : 1);
    if (need > m->recv_cap) {
        float *r = realloc(m->recv, need * sizeof *r);
        if (!r)
            return -ENOMEM;
        m->recv = r;
        m->recv_cap = need;
    }
    for (int j = 0; j < N; j++) {
        m->rcounts[j] = mine;
        m->rdispls[j] = j * mine;
    }
    /* Reduce-scatter: every rank's copy of chunk `me` arrives at rank `me`. */
    /* Non-blocking, waited for by wait_politely: the same data moved (no
     * arithmetic in either collective), so the same bits as the blocking ones. */
    MPI_Request req;
    int rc = MPI_Ialltoallv(buf, m->counts, m->displs, MPI_FLOAT, m->recv, m->rcounts, m->rdispls,
                            MPI_FLOAT, MPI_COMM_WORLD, &req);
    if (rc == MPI_SUCCESS)
        rc = wait_politely(&req);
    if (rc != MPI_SUCCESS)
        return -EIO;
    /* The sum in rank order 0..N-1, then the mean; for N = 2, (a + b) * 0.5
     * is exact but for the one rounding of the sum. */
    float *out = buf + m->displs[me];
    const float inv = 1.0f / (float)N;
    for (int k = 0; k < mine; k++) {
        float s = m->recv[k];
        for (int j = 1; j < N; j++)
            s += m->recv[(size_t)j * (size_t)mine + (size_t)k];
        out[k] = s * inv;
    }
    /* Every rank gets every reduced chunk, in place. */
    rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, m->counts, m->displs, MPI_FLOAT,
                         MPI_COMM_WORLD, &req);
    if (rc == MPI_SUCCESS)
        rc = wait_politely(&req);
    if (rc != MPI_SUCCESS)
        return -EIO;
    d->comm_s += mono() - t0;
    return 0;
}

int dist_mpi_init(int *argc, char ***argv, dist_t *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    int rc = MPI_Init(argc, argv);
    if (rc != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Init failed");
        return -1;
    }
    /* Errors come back as return codes (then the job fails with a message)
     * instead of MPI's default abort of every rank. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    mpi_impl *m = calloc(1, sizeof *m);
    int N = d->size;
    if (m) {
        m->counts = calloc((size_t)N, sizeof(int));
        m->displs = calloc((size_t)N, sizeof(int));
        m->rcounts = calloc((size_t)N, sizeof(int));
        m->rdispls = calloc((size_t)N, sizeof(int));
    }
    if (!m || !m->counts || !m->displs || !m->rcounts || !m->rdispls) {
        d->impl = m;
        dist_mpi_finalize(d);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->impl = m;
    d->allreduce_mean = allreduce_mean;
    return 0;
}

void dist_mpi_finalize(dist_t *d)
{
    mpi_impl *m = d->impl;
    if (m) {
        free(m->counts);
        free(m->displs);
        free(m->rcounts);
        free(m->rdispls);
        free(m->recv);
        free(m);
    }
    d->impl = NULL;
    MPI_Finalize();
}

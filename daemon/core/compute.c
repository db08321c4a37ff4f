/*
 * compute — one thread count for OpenBLAS and our own loops.  See traind/compute.h.
 *
 * compute_parallel_for runs on a persistent pool of compute_threads() - 1
 * worker threads plus the caller.  [0, n) is cut into compute_threads()
 * fixed contiguous ranges (range i is [i*n/t, (i+1)*n/t)), so what each
 * fn(ctx, lo, hi) call computes — and any per-range partial result — depends
 * only on n and the thread count.  Which thread runs a range does not change
 * the result, so the threads claim ranges from a shared counter: a worker
 * the kernel has not scheduled yet (another process on its core) costs the
 * caller only the range it takes over, instead of a wait.
 *
 * Waiting threads spin only briefly (50 µs, so a step's back-to-back loops
 * do not each pay a futex wake-up) and then sleep on a condition variable:
 * the pool never competes with OpenBLAS's own threads for the cores while a
 * BLAS call runs.
 *
 * A parallel_for called from inside a pool range (nested), or while another
 * thread is using the pool, runs its ranges serially on the caller — the
 * partition is the same, so the result is too.  Workers are started on first
 * use and never exit; compute_set_threads may be called between loops.
 *
 * Matrix products (compute_sgemm) keep OpenBLAS single-threaded and cut C
 * into tiles whose grid depends on the shape alone, each tile one sgemm
 * call, the tiles spread over the pool.  Every element of C is thus
 * computed by the same single-threaded OpenBLAS call whatever the thread
 * count: results are bit-identical across thread counts on every CPU, so a
 * job resumed with another `threads` continues the same numbers.  Letting
 * OpenBLAS split a product itself does not give that: on some kernels (Zen,
 * Haswell) its blocking of K depends on the thread count.
 */
#include "traind/compute.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define POOL_MAX 256
/* How long a waiting thread spins before it sleeps. */
#ifndef SPIN_NS
#define SPIN_NS 50000
#endif

typedef void (*range_fn)(void *ctx, int lo, int hi);

static atomic_int g_threads = 1;

static struct pool {
    pthread_mutex_t use;          /* held by the thread dispatching a loop */
    pthread_mutex_t mu;           /* guards the sleeps on wake / done */
    pthread_cond_t wake;          /* workers: a new job was published */
    pthread_cond_t done;          /* caller: the job's last range finished */
    int n_workers;                /* started so far */
    int caller_asleep;
    /* The current job.  fn, ctx and n are written before the job is
     * published and not again until all its ranges are finished, which
     * cannot happen while a thread holds a claimed range. */
    range_fn fn;
    void *ctx;
    int n;
    /* (job number << 16) | parts: tells a worker there is a job and how
     * many ranges it has. */
    atomic_ullong job;
    /* (job number << 32) | next unclaimed range: a claim is a CAS that only
     * succeeds for the job the claimer was woken for. */
    atomic_ullong claim;
    atomic_int pending;           /* ranges of the job not yet finished */
} g_pool = {
    .use = PTHREAD_MUTEX_INITIALIZER,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

/* The job word each worker starts from (set before it is created). */
static unsigned long long g_start_job[POOL_MAX];

static _Thread_local int t_in_pool;   /* inside a range: nested loops run serially */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spins until *word != old or SPIN_NS pass; returns the last value read. */
static unsigned long long spin_while_eq(atomic_ullong *word, unsigned long long old)
{
    unsigned long long v;
    uint64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        if ((v = atomic_load_explicit(word, memory_order_acquire)) != old)
            return v;
        if ((i & 31) == 31) {
            uint64_t t = now_ns();
            if (t0 == 0)
                t0 = t;
            else if (t - t0 > SPIN_NS)
                return v;
        }
        cpu_relax();
    }
}

static inline int range_lo(int i, int n, int parts)
{
    return (int)((int64_t)i * n / parts);
}

/* Claims and runs ranges of job `jobno` (of `parts` ranges) until none is
 * left.  Returns whether this thread finished the job's last range. */
static int run_ranges(unsigned long long jobno, int parts)
{
    struct pool *p = &g_pool;
    int last = 0;
    unsigned long long w = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        if ((w >> 32) != (jobno & 0xffffffffULL) || (int)(w & 0xffffffffULL) >= parts)
            break;
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        int i = (int)(w & 0xffffffffULL);
        int lo = range_lo(i, p->n, parts), hi = range_lo(i + 1, p->n, parts);
        if (hi > lo)
            p->fn(p->ctx, lo, hi);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1)
            last = 1;
        w = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
    return last;
}

static void *worker_main(void *arg)
{
    struct pool *p = &g_pool;
    int id = (int)(intptr_t)arg;          /* 1 .. POOL_MAX-1 */
    unsigned long long seen = g_start_job[id];
    t_in_pool = 1;
    for (;;) {
        unsigned long long j = spin_while_eq(&p->job, seen);
        if (j == seen) {
            pthread_mutex_lock(&p->mu);
            while ((j = atomic_load_explicit(&p->job, memory_order_acquire)) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        seen = j;
        int parts = (int)(j & 0xffff);
        if (id >= parts)                  /* more threads than this job's ranges */
            continue;
        if (run_ranges(j >> 16, parts)) {
            pthread_mutex_lock(&p->mu);
            if (p->caller_asleep)
                pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* A child of fork() has none of the parent's workers: it starts its own. */
static void pool_atfork_child(void)
{
    struct pool *p = &g_pool;
    pthread_mutex_init(&p->use, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n_workers = 0;
    p->caller_asleep = 0;
}

static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static void pool_register_atfork(void)
{
    pthread_atfork(NULL, NULL, pool_atfork_child);
}

/* Starts workers up to n - 1; returns the threads available (workers + 1).
 * Called with p->use held. */
static int pool_grow(int n)
{
    struct pool *p = &g_pool;
    pthread_once(&g_atfork_once, pool_register_atfork);
    while (p->n_workers < n - 1) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        g_start_job[p->n_workers + 1] = atomic_load_explicit(&p->job, memory_order_relaxed);
        int rc = pthread_create(&th, &attr, worker_main, (void *)(intptr_t)(p->n_workers + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0)
            break;
        p->n_workers++;
    }
    return p->n_workers + 1;
}

void compute_set_threads(int n)
{
    if (n < 1)
        n = 1;
    if (n > POOL_MAX)
        n = POOL_MAX;
    atomic_store(&g_threads, n);
    /* The pool splits products (compute_sgemm); OpenBLAS stays at one
     * thread so that its own split never depends on n. */
    openblas_set_num_threads(1);
}

int compute_threads(void)
{
    return atomic_load(&g_threads);
}

static void run_serial(int n, int parts, range_fn fn, void *ctx)
{
    for (int i = 0; i < parts; i++) {
        int lo = range_lo(i, n, parts), hi = range_lo(i + 1, n, parts);
        if (hi > lo)
            fn(ctx, lo, hi);
    }
}

void compute_parallel_for(int n, void (*fn)(void *ctx, int lo, int hi), void *ctx)
{
    struct pool *p = &g_pool;
    int parts = compute_threads();
    if (n <= 0)
        return;
    if (parts > n)            /* ranges of one element each: the same partition */
        parts = n;
    if (parts <= 1) {
        fn(ctx, 0, n);
        return;
    }
    if (t_in_pool || pthread_mutex_trylock(&p->use) != 0) {
        run_serial(n, parts, fn, ctx);
        return;
    }
    if (pool_grow(parts) < parts) {       /* could not start threads */
        pthread_mutex_unlock(&p->use);
        run_serial(n, parts, fn, ctx);
        return;
    }
    unsigned long long jobno = (atomic_load_explicit(&p->job, memory_order_relaxed) >> 16) + 1;
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store_explicit(&p->pending, parts, memory_order_relaxed);
    atomic_store_explicit(&p->claim, (jobno & 0xffffffffULL) << 32, memory_order_release);
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->job, jobno << 16 | (unsigned)parts, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    t_in_pool = 1;
    run_ranges(jobno, parts);
    t_in_pool = 0;

    uint64_t t0 = 0;
    for (unsigned i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
        if ((i & 31) == 31) {
            uint64_t t = now_ns();
            if (t0 == 0)
                t0 = t;
            else if (t - t0 > SPIN_NS)
                break;
        }
        cpu_relax();
    }
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        p->caller_asleep = 1;
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        p->caller_asleep = 0;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->use);
}

/* ---- matrix products ----------------------------------------------------- */

typedef struct sgemm_job {
    int ta, tb;
    int M, N, K;
    int rows, cols, col_tiles;    /* the tile grid */
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} sgemm_job;

/* The tile grid is a function of the shape only, never of the thread count.
 *
 * A tile of C is one single-threaded sgemm call, which packs its own rows of
 * op(A) and columns of op(B): a TM x TN tile costs about (TM + TN) K packed
 * elements against 2 TM TN K flops, so tiles are kept at 128 x 128 or more
 * where the shape allows (measured on gpt-tiny and mlp-medium at 1 thread:
 * 16-row blocks cost ~25% against one whole call, 128-row blocks ~3%), and
 * at 64 x 64 or more when that leaves fewer than 4 tiles.  TILES_WANTED
 * tiles give a pool of up to 8 threads pieces to balance. */
#define TILES_WANTED 8

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ceil(n / parts) rounded up to a multiple of 16, at most n. */
static int tile_len(int n, int parts)
{
    int len = (n + parts - 1) / parts;
    len = (len + 15) / 16 * 16;
    return len < n ? len : n;
}

static void sgemm_grid(sgemm_job *j)
{
    int mb = clampi(j->M / 128, 1, TILES_WANTED);
    int nb = clampi(j->N / 128, 1, TILES_WANTED / mb);
    if (mb * nb < 4) {
        mb = clampi(j->M / 64, 1, 4);
        nb = clampi(j->N / 64, 1, 4 / mb > 1 ? 4 / mb : 1);
    }
    j->rows = tile_len(j->M, mb);
    j->cols = tile_len(j->N, nb);
    j->col_tiles = (j->N + j->cols - 1) / j->cols;
}

/* For a process that never called compute_set_threads (OpenBLAS starts with
 * one thread per core). */
static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;

static void blas_single_thread(void)
{
    openblas_set_num_threads(1);
}

/* Tile t is the same sgemm call whether one thread runs all tiles in turn or
 * several threads share them. */
static void sgemm_tiles(void *ctx, int lo, int hi)
{
    const sgemm_job *j = ctx;
    for (int t = lo; t < hi; t++) {
        int m0 = t / j->col_tiles * j->rows, n0 = t % j->col_tiles * j->cols;
        int m1 = m0 + j->rows < j->M ? m0 + j->rows : j->M;
        int n1 = n0 + j->cols < j->N ? n0 + j->cols : j->N;
        /* op(A) rows m0.. and op(B) columns n0.. */
        const float *A = j->ta ? j->A + m0 : j->A + (size_t)m0 * j->lda;
        const float *B = j->tb ? j->B + (size_t)n0 * j->ldb : j->B + n0;
        cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
                    m1 - m0, n1 - n0, j->K, j->alpha, A, j->lda, B, j->ldb, j->beta,
                    j->C + (size_t)m0 * j->ldc + n0, j->ldc);
    }
}

void compute_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {           /* BLAS leaves C alone for alpha·0; say what it means */
        for (int i = 0; i < M; i++)
            for (int k = 0; k < N; k++)
                C[(size_t)i * ldc + k] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + k];
        return;
    }
    pthread_once(&g_blas_once, blas_single_thread);
    sgemm_job j = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
                   .A = A, .B = B, .C = C, .lda = lda, .ldb = ldb, .ldc = ldc};
    sgemm_grid(&j);
    int tiles = (M + j.rows - 1) / j.rows * j.col_tiles;
    compute_parallel_for(tiles, sgemm_tiles, &j);
}

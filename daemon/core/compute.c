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
    openblas_set_num_threads(n);
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

/*
 * compute — one thread count for OpenBLAS and our own loops.  See traind/compute.h.
 *
 * compute_parallel_for runs on a persistent pool of compute_threads() - 1
 * worker threads plus the caller.  [0, n) is cut into compute_threads()
 * fixed contiguous ranges (range i is [i*n/t, (i+1)*n/t)), range 0 runs on
 * the caller, range i on worker i, so the work each thread does — and any
 * per-range partial result — depends only on n and the thread count.
 *
 * Waiting workers spin only briefly (a few tens of microseconds, so a step's
 * back-to-back loops do not pay a futex wake each) and then sleep on a
 * condition variable: they never compete with OpenBLAS's own threads for the
 * cores while a BLAS call runs.
 *
 * A parallel_for called from inside a pool range (nested), or while another
 * thread is using the pool, runs serially on the caller — the partition is
 * the same, so the result is too.
 */
#include "traind/compute.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define POOL_MAX 256
/* Spin iterations (each a cpu pause) before a waiting thread sleeps. */
#define SPIN_ITERS 20000

static atomic_int g_threads = 1;

typedef void (*range_fn)(void *ctx, int lo, int hi);

static struct pool {
    pthread_mutex_t use;          /* held by the thread dispatching a loop */
    pthread_mutex_t mu;
    pthread_cond_t wake;          /* workers: a new job (generation changed) */
    pthread_cond_t done;          /* caller: pending reached 0 */
    int n_workers;                /* started so far (they never exit) */
    /* the current job: fn, ctx and n are written before gen is bumped and
     * not again until every worker of the job is done */
    range_fn fn;
    void *ctx;
    int n;
    /* (job counter << 16) | parts: a worker learns whether it takes part
     * from the same word that tells it a job is there */
    atomic_ullong gen;
    atomic_int pending;           /* workers of this job not yet finished */
    int sleepers_done;            /* caller is asleep on done */
} g_pool = {
    .use = PTHREAD_MUTEX_INITIALIZER,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

/* The job word each worker starts from (set before it is created). */
static unsigned long long g_start_gen[POOL_MAX];

static _Thread_local int t_in_pool;   /* inside a range: nested loops run serially */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline int range_lo(int i, int n, int parts)
{
    return (int)((int64_t)i * n / parts);
}

static void run_part(int i, int parts)
{
    struct pool *p = &g_pool;
    int lo = range_lo(i, p->n, parts), hi = range_lo(i + 1, p->n, parts);
    if (hi > lo)
        p->fn(p->ctx, lo, hi);
}

static void *worker_main(void *arg)
{
    struct pool *p = &g_pool;
    int id = (int)(intptr_t)arg;          /* 1 .. */
    unsigned long long seen = g_start_gen[id];
    t_in_pool = 1;
    for (;;) {
        unsigned long long g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && spins < SPIN_ITERS) {
            cpu_relax();
            spins++;
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        int parts = (int)(g & 0xffff);
        if (id >= parts)                  /* not part of this job */
            continue;
        run_part(id, parts);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            if (p->sleepers_done)
                pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* Starts workers up to n - 1.  Called with p->use held. */
static int pool_grow(int n)
{
    struct pool *p = &g_pool;
    while (p->n_workers < n - 1) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        g_start_gen[p->n_workers + 1] = atomic_load_explicit(&p->gen, memory_order_relaxed);
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
    if (parts > n)
        parts = n;
    if (parts <= 1) {
        fn(ctx, 0, n);
        return;
    }
    /* Nested, or the pool is busy with another caller: same partition, serially. */
    if (t_in_pool || pthread_mutex_trylock(&p->use) != 0) {
        run_serial(n, parts, fn, ctx);
        return;
    }
    int avail = pool_grow(parts);
    if (avail < parts) {                  /* could not start threads */
        pthread_mutex_unlock(&p->use);
        run_serial(n, parts, fn, ctx);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store_explicit(&p->pending, parts - 1, memory_order_relaxed);
    unsigned long long next = ((atomic_load_explicit(&p->gen, memory_order_relaxed) >> 16) + 1) << 16 | (unsigned)parts;
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->gen, next, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    t_in_pool = 1;
    run_part(0, parts);
    t_in_pool = 0;

    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0 && spins < SPIN_ITERS) {
        cpu_relax();
        spins++;
    }
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        p->sleepers_done = 1;
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        p->sleepers_done = 0;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->use);
}

/*
 * rng — xoshiro256** seeded through splitmix64, with uniform and normal
 * draws.  One generator per purpose (init, data, ...), each derived from the
 * run's seed and a stream number, so adding draws to one purpose never shifts
 * another.  The state is plain data: a checkpoint stores it byte for byte.
 */
#ifndef TRAIND_RNG_H
#define TRAIND_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
    double spare;        /* second Box-Muller value */
    int has_spare;
    int pad_;
} rng_t;

/* Stream numbers used by the core, so they stay distinct. */
enum { RNG_STREAM_INIT = 1, RNG_STREAM_DATA = 2, RNG_STREAM_TEACHER = 3,
       RNG_STREAM_SAMPLE = 4, RNG_STREAM_EVAL = 5 };

void rng_seed(rng_t *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(rng_t *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform(rng_t *r);
/* Uniform integer in [0, n), unbiased; n >= 1. */
uint64_t rng_below(rng_t *r, uint64_t n);
/* Standard normal (Box-Muller in double). */
double rng_normal(rng_t *r);
/* out[i] = mean + std * N(0,1) for i < n. */
void rng_fill_normal(rng_t *r, float *out, size_t n, float mean, float std);
/* out[i] ~ U(lo, hi) for i < n. */
void rng_fill_uniform(rng_t *r, float *out, size_t n, float lo, float hi);

#endif

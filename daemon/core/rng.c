/*
 * rng — xoshiro256** (Blackman & Vigna) seeded through splitmix64.  See
 * traind/rng.h.
 *
 * Every draw is a pure function of the rng_t contents, so a checkpoint that
 * stores the struct byte for byte resumes the exact sequence.
 *
 * Normals: rng_normal() is Box-Muller in double and caches the second value
 * of each pair in r->spare.  rng_fill_normal() is the bulk path (synthetic
 * data needs ~130k normals a step for mlp-medium): it first hands out a cached
 * spare, if any, then uses a 256-layer ziggurat (Marsaglia & Tsang, 2000),
 * which costs one 64-bit draw and a multiply for ~99% of the values instead
 * of a log, a sqrt and a sincos per pair.  Both give exact N(0,1) samples;
 * they are just different (equally deterministic) sequences.
 */
#include "traind/rng.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The xoshiro256** step, on a local copy of the state in hot loops. */
static inline uint64_t xnext(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void rng_seed(rng_t *r, uint64_t seed, uint64_t stream)
{
    /* Hash (seed, stream) into one splitmix64 state, then expand it: nearby
     * seeds and streams land on unrelated states. */
    uint64_t x = seed;
    uint64_t h = splitmix64(&x);
    x = h ^ (stream * 0xD1B54A32D192ED03ULL + 0x8CB92BA72F3D8DD7ULL);
    (void)splitmix64(&x);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)   /* the one forbidden state */
        r->s[0] = 1;
    r->spare = 0.0;
    r->has_spare = 0;
    r->pad_ = 0;
}

uint64_t rng_u64(rng_t *r)
{
    return xnext(r->s);
}

static inline double u53(uint64_t x)
{
    return (double)(x >> 11) * 0x1.0p-53;
}

double rng_uniform(rng_t *r)
{
    return u53(xnext(r->s));
}

/* Lemire's nearly divisionless method: unbiased, one multiply in the common case. */
uint64_t rng_below(rng_t *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    unsigned __int128 m = (unsigned __int128)xnext(r->s) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t thresh = -n % n;           /* 2^64 mod n */
        while (lo < thresh) {
            m = (unsigned __int128)xnext(r->s) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double rng_normal(rng_t *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        double z = r->spare;
        r->spare = 0.0;
        return z;
    }
    /* u1 in (0, 1] so the log is finite. */
    double u1 = 1.0 - rng_uniform(r);
    double u2 = rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double th = 2.0 * M_PI * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

/* ---- ziggurat ---------------------------------------------------------- */

#define ZIG_N 256
#define ZIG_R 3.6541528853610088     /* rightmost layer edge for 256 layers */
#define ZIG_V 0.00492867323399       /* area of each layer */

/* zx[i]: right edge of layer i (zx[0] = V / f(R), the base strip's width,
 * zx[1] = R, decreasing to zx[256] = 0); zf[i] = f(zx[i]) with f(x) = exp(-x²/2). */
static double zx[ZIG_N + 1], zf[ZIG_N + 1];
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void zig_setup(void)
{
    double f = exp(-0.5 * ZIG_R * ZIG_R);
    zx[0] = ZIG_V / f;
    zx[1] = ZIG_R;
    zf[0] = 0.0;            /* only used for layer 0's (never taken) wedge */
    zf[1] = f;
    for (int i = 2; i < ZIG_N; i++) {
        zx[i] = sqrt(-2.0 * log(ZIG_V / zx[i - 1] + zf[i - 1]));
        zf[i] = exp(-0.5 * zx[i] * zx[i]);
    }
    zx[ZIG_N] = 0.0;
    zf[ZIG_N] = 1.0;
}

/* The rare path: u was rejected by the fast test for layer i. */
static double zig_slow(uint64_t s[4], uint64_t u)
{
    for (;;) {
        int i = (int)(u & 0xff);
        double sign = (u & 0x100) ? -1.0 : 1.0;
        double x = u53(u) * zx[i];
        if (x < zx[i + 1])
            return sign * x;
        if (i == 0) {
            /* Tail beyond R (Marsaglia 1964). */
            double a, b;
            do {
                a = -log(1.0 - u53(xnext(s))) / ZIG_R;
                b = -log(1.0 - u53(xnext(s)));
            } while (b + b < a * a);
            return sign * (ZIG_R + a);
        }
        /* Wedge: accept if a uniform height in layer i lies under the curve. */
        double y = zf[i] + u53(xnext(s)) * (zf[i + 1] - zf[i]);
        if (y < exp(-0.5 * x * x))
            return sign * x;
        u = xnext(s);
    }
}

void rng_fill_normal(rng_t *r, float *out, size_t n, float mean, float std)
{
    if (n == 0)
        return;
    pthread_once(&zig_once, zig_setup);
    size_t i = 0;
    if (r->has_spare) {
        out[i++] = (float)(mean + std * r->spare);
        r->has_spare = 0;
        r->spare = 0.0;
    }
    /* The state lives in four scalars so that it stays in registers; only
     * the rare slow path goes through memory. */
    uint64_t s0 = r->s[0], s1 = r->s[1], s2 = r->s[2], s3 = r->s[3];
    double m = mean, sd = std;
    for (; i < n; i++) {
        uint64_t u = rotl(s1 * 5, 7) * 9;
        uint64_t t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = rotl(s3, 45);
        int k = (int)(u & 0xff);
        double x = u53(u) * zx[k];
        double z;
        if (__builtin_expect(x < zx[k + 1], 1)) {
            /* sign from bit 8, without a (50/50, unpredictable) branch */
            uint64_t xb;
            memcpy(&xb, &x, sizeof xb);
            xb ^= (u & 0x100) << 55;
            memcpy(&z, &xb, sizeof z);
        } else {
            uint64_t st[4] = {s0, s1, s2, s3};
            z = zig_slow(st, u);
            s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3];
        }
        out[i] = (float)(m + sd * z);
    }
    r->s[0] = s0, r->s[1] = s1, r->s[2] = s2, r->s[3] = s3;
}

void rng_fill_uniform(rng_t *r, float *out, size_t n, float lo, float hi)
{
    double a = lo, w = (double)hi - (double)lo;
    uint64_t s[4] = {r->s[0], r->s[1], r->s[2], r->s[3]};
    for (size_t i = 0; i < n; i++) {
        float v = (float)(a + w * u53(xnext(s)));
        /* Rounding to float can land on hi; keep the interval half-open. */
        out[i] = v < hi ? v : lo;
    }
    for (int k = 0; k < 4; k++)
        r->s[k] = s[k];
}

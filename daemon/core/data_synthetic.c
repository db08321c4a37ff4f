/*
 * data_synthetic — regression data from a fixed random teacher, as
 * torch_ref.py makes it (traind-run.yaml(5)):
 *
 *     W* (input_dim, output_dim), entries N(0, 1/input_dim)   stream RNG_STREAM_TEACHER
 *     x  (B, input_dim) ~ N(0, 1)                              stream RNG_STREAM_DATA
 *     y  = x · W* + noise · N(0, 1)                            same stream, after x
 *
 * With eval_fraction > 0 a fixed eval set of ceil(10 · eval_fraction)
 * batches is drawn once, at open, from RNG_STREAM_EVAL (the same teacher).
 * The state is the data stream's rng: the batches are a function of it alone.
 */
#include "data_impl.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/rng.h"

typedef struct synth {
    data_source_t base;
    int in, out, B;
    float noise;
    float *teacher;         /* (in, out) */
    float *x, *y;           /* (B, in), (B, out) */
    rng_t rng;
    int n_eval;
    float *ex, *ey;         /* n_eval batches, each (B, in) / (B, out) */
} synth_t;

#define SYNTH_TAG 0x314e5953u   /* "SYN1" */

typedef struct synth_state {
    uint32_t tag, in, out, B;
    uint64_t s[4];
    double spare;
    int32_t has_spare, pad;
} synth_state;

/* x ~ N(0,1), y = x·W* + noise·N(0,1), for one batch. */
static void synth_draw(const synth_t *d, rng_t *r, float *x, float *y)
{
    int B = d->B, in = d->in, out = d->out;
    rng_fill_normal(r, x, (size_t)B * in, 0.0f, 1.0f);
    rng_fill_normal(r, y, (size_t)B * out, 0.0f, d->noise);
    if ((long)B * in * out >= 32768) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, out, in,
                    1.0f, x, in, d->teacher, out, 1.0f, y, out);
        return;
    }
    for (int i = 0; i < B; i++) {
        float *yr = y + (size_t)i * out;
        for (int k = 0; k < in; k++) {
            float s = x[(size_t)i * in + k];
            const float *w = d->teacher + (size_t)k * out;
            for (int j = 0; j < out; j++)
                yr[j] += s * w[j];
        }
    }
}

static void fill_batch(const synth_t *d, const float *x, const float *y, batch_t *b)
{
    memset(b, 0, sizeof *b);
    b->B = d->B;
    b->n_in = d->in;
    b->n_out = d->out;
    b->x = x;
    b->y = y;
}

static void synth_next(data_source_t *base, batch_t *out)
{
    synth_t *d = (synth_t *)base;
    synth_draw(d, &d->rng, d->x, d->y);
    fill_batch(d, d->x, d->y, out);
}

static int synth_eval_batches(const data_source_t *base)
{
    return ((const synth_t *)base)->n_eval;
}

static void synth_eval_batch(data_source_t *base, int i, batch_t *out)
{
    synth_t *d = (synth_t *)base;
    if (i < 0 || i >= d->n_eval) {
        memset(out, 0, sizeof *out);
        return;
    }
    fill_batch(d, d->ex + (size_t)i * d->B * d->in, d->ey + (size_t)i * d->B * d->out, out);
}

static size_t synth_state_size(const data_source_t *base)
{
    return sizeof(synth_state);
}

static void synth_save_state(const data_source_t *base, void *buf)
{
    const synth_t *d = (const synth_t *)base;
    synth_state st = {.tag = SYNTH_TAG, .in = d->in, .out = d->out, .B = d->B,
                      .spare = d->rng.spare, .has_spare = d->rng.has_spare};
    memcpy(st.s, d->rng.s, sizeof st.s);
    memcpy(buf, &st, sizeof st);
}

static int synth_load_state(data_source_t *base, const void *buf, size_t len)
{
    synth_t *d = (synth_t *)base;
    synth_state st;
    if (len != sizeof st)
        return -1;
    memcpy(&st, buf, sizeof st);
    if (st.tag != SYNTH_TAG || st.in != (uint32_t)d->in || st.out != (uint32_t)d->out ||
        st.B != (uint32_t)d->B || (st.s[0] | st.s[1] | st.s[2] | st.s[3]) == 0 ||
        (st.has_spare != 0 && st.has_spare != 1))
        return -1;
    memcpy(d->rng.s, st.s, sizeof st.s);
    d->rng.spare = st.spare;
    d->rng.has_spare = st.has_spare;
    return 0;
}

static void synth_close(data_source_t *base)
{
    synth_t *d = (synth_t *)base;
    free(d->teacher);
    free(d->x);
    free(d->y);
    free(d->ex);
    free(d->ey);
    free(d);
}

static const data_ops synth_ops = {
    .next = synth_next,
    .eval_batches = synth_eval_batches,
    .eval_batch = synth_eval_batch,
    .state_size = synth_state_size,
    .save_state = synth_save_state,
    .load_state = synth_load_state,
    .close = synth_close,
};

data_source_t *data_synthetic_open(const run_config *cfg, char *err, size_t errlen)
{
    const model_cfg *m = &cfg->model;
    if (m->type != MODEL_LINEAR && m->type != MODEL_MLP) {
        snprintf(err, errlen, "synthetic data is regression data: it needs a linear or mlp model");
        return NULL;
    }
    if (m->input_dim < 1 || m->output_dim < 1) {
        snprintf(err, errlen, "synthetic data needs input_dim and output_dim >= 1");
        return NULL;
    }
    if (!(cfg->data.noise >= 0.0) || !isfinite(cfg->data.noise)) {
        snprintf(err, errlen, "data.noise must be a finite number >= 0");
        return NULL;
    }
    double ef = cfg->data.eval_fraction;
    if (!(ef >= 0.0 && ef <= 1.0)) {
        snprintf(err, errlen, "data.eval_fraction must be in [0, 1]");
        return NULL;
    }
    synth_t *d = calloc(1, sizeof *d);
    if (!d)
        goto oom;
    d->base.ops = &synth_ops;
    d->base.kind = DATA_SYNTHETIC;
    d->base.batch_size = cfg->data.batch_size;
    d->in = m->input_dim;
    d->out = m->output_dim;
    d->B = cfg->data.batch_size;
    d->noise = (float)cfg->data.noise;
    d->n_eval = ef > 0.0 ? (int)ceil(ef * 10.0 - 1e-9) : 0;
    if (ef > 0.0 && d->n_eval < 1)
        d->n_eval = 1;
    size_t nx = (size_t)d->B * d->in, ny = (size_t)d->B * d->out;
    d->teacher = malloc(sizeof(float) * (size_t)d->in * d->out);
    d->x = malloc(sizeof(float) * nx);
    d->y = malloc(sizeof(float) * ny);
    if (d->n_eval) {
        d->ex = malloc(sizeof(float) * nx * d->n_eval);
        d->ey = malloc(sizeof(float) * ny * d->n_eval);
    }
    if (!d->teacher || !d->x || !d->y || (d->n_eval && (!d->ex || !d->ey)))
        goto oom;

    rng_t r;
    rng_seed(&r, cfg->seed, RNG_STREAM_TEACHER);
    rng_fill_normal(&r, d->teacher, (size_t)d->in * d->out, 0.0f, (float)(1.0 / sqrt((double)d->in)));
    rng_seed(&r, cfg->seed, RNG_STREAM_EVAL);
    for (int i = 0; i < d->n_eval; i++)
        synth_draw(d, &r, d->ex + (size_t)i * nx, d->ey + (size_t)i * ny);
    rng_seed(&d->rng, cfg->seed, RNG_STREAM_DATA);
    return &d->base;

oom:
    snprintf(err, errlen, "out of memory for synthetic data");
    if (d)
        synth_close(&d->base);
    return NULL;
}

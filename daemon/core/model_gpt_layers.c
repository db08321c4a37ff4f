/*
 * model_gpt_layers — the GPT's layers, forward and backward (see
 * model_gpt.h): each is one pass over the batch, split over the compute pool
 * in fixed ranges, calling the row and attention kernels of kernels.h.
 *
 * Bits: rows are independent, and the reductions over rows (LayerNorm, GELU
 * and qkv bias gradients) go through a fixed number of row chunks (or one
 * partial per sequence) summed in a fixed order, so no result depends on the
 * thread count.
 */
#include "model_gpt.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "traind/compute.h"

/* ---- encoder ------------------------------------------------------------ */

typedef struct enc_job {
    const step_ctx *s;
    float *out;
} enc_job;

static void encoder_range(void *ctx, int lo, int hi)
{
    const enc_job *j = ctx;
    const gpt_t *g = j->s->g;
    int C = g->C;
    for (int r = lo; r < hi; r++) {
        const float *te = g->w.wte + (size_t)j->s->tokens[r] * C;
        const float *pe = g->w.wpe + (size_t)(r % j->s->T) * C;
        float *o = j->out + (size_t)r * C;
        for (int c = 0; c < C; c++)
            o[c] = te[c] + pe[c];
    }
}

void gpt_encoder_forward(step_ctx *s, float *out)
{
    enc_job j = {s, out};
    compute_parallel_for(s->BT, encoder_range, &j);
}

void gpt_encoder_backward(step_ctx *s, const float *dout)
{
    gpt_t *g = s->g;
    int C = g->C;
    memset(g->dw.wpe, 0, (size_t)g->T * C * sizeof(float));
    for (int r = 0; r < s->BT; r++) {
        const float *d = dout + (size_t)r * C;
        float *te = g->dw.wte + (size_t)s->tokens[r] * C, *pe = g->dw.wpe + (size_t)(r % s->T) * C;
        for (int c = 0; c < C; c++) {
            te[c] += d[c];
            pe[c] += d[c];
        }
    }
}

/* ---- LayerNorm ---------------------------------------------------------- */

typedef struct ln_job {
    const float *x, *w, *b;
    float *out, *mean, *rstd;
    int C;
    ln_preset pre;
} ln_job;

static void ln_fwd_range(void *ctx, int lo, int hi)
{
    const ln_job *j = ctx;
    int C = j->C;
    for (int r = lo; r < hi; r++) {
        const float *x = j->x + (size_t)r * C;
        kern_layernorm_row(x, j->w, j->b, C, j->out + (size_t)r * C, &j->mean[r], &j->rstd[r]);
        if (j->pre.res)
            kern_add_row(j->pre.res + (size_t)r * C, x, j->pre.res_bias, C);
        if (j->pre.bc)
            memcpy(j->pre.bc + (size_t)r * j->pre.bc_width, j->pre.bc_bias,
                   (size_t)j->pre.bc_width * sizeof(float));
    }
}

void gpt_layernorm_forward(step_ctx *s, const float *x, const float *w, const float *b, float *out,
                           float *mean, float *rstd, const ln_preset *pre)
{
    ln_job j = {x, w, b, out, mean, rstd, s->g->C, {0}};
    if (pre)
        j.pre = *pre;
    compute_parallel_for(s->BT, ln_fwd_range, &j);
}

/* Row chunk k of nchunk over BT rows: [r0, r1). */
static void chunk_rows(int k, int BT, int nchunk, int *r0, int *r1)
{
    *r0 = (int)((int64_t)k * BT / nchunk);
    *r1 = (int)((int64_t)(k + 1) * BT / nchunk);
}

/* partials: chunk k at k·3C: [dw | db | colsum(dx)]. */
typedef struct lnb_job {
    const float *dout, *x, *mean, *rstd, *w;
    float *dx;
    int accumulate;
    float *partials;
    int C, BT, nchunk;
} lnb_job;

static void lnb_range(void *ctx, int lo, int hi)
{
    const lnb_job *j = ctx;
    int C = j->C;
    for (int k = lo; k < hi; k++) {
        float *pw = j->partials + (size_t)k * 3 * C, *pb = pw + C, *px = pb + C;
        int r0, r1;
        memset(pw, 0, 3 * (size_t)C * sizeof(float));
        chunk_rows(k, j->BT, j->nchunk, &r0, &r1);
        for (int r = r0; r < r1; r++)
            kern_layernorm_bwd_row(j->dout + (size_t)r * C, j->x + (size_t)r * C, j->mean[r],
                                   j->rstd[r], j->w, C, j->dx + (size_t)r * C, j->accumulate,
                                   pw, pb, px);
    }
}

/* Sums `width` columns of the chunk partials (stride `stride`, starting at
 * column `col`) in chunk order into out (or nothing if out is NULL). */
static void reduce_partials(const float *partials, int nchunk, int stride, int col, int width, float *out)
{
    if (!out)
        return;
    for (int c = 0; c < width; c++) {
        float sum = 0.0f;
        for (int k = 0; k < nchunk; k++)
            sum += partials[(size_t)k * stride + col + c];
        out[c] = sum;
    }
}

void gpt_layernorm_backward(step_ctx *s, const float *dout, const float *x, const float *mean,
                            const float *rstd, const float *w, float *dx, int accumulate,
                        float *dw, float *db, float *colsum)
{
    gpt_t *g = s->g;
    lnb_job j = {dout, x, mean, rstd, w, dx, accumulate, g->partials, g->C, s->BT, s->nchunk};
    compute_parallel_for(s->nchunk, lnb_range, &j);
    reduce_partials(g->partials, s->nchunk, 3 * g->C, 0, g->C, dw);
    reduce_partials(g->partials, s->nchunk, 3 * g->C, g->C, g->C, db);
    reduce_partials(g->partials, s->nchunk, 3 * g->C, 2 * g->C, g->C, colsum);
}

/* ---- matmul ------------------------------------------------------------- */

void gpt_matmul_forward(step_ctx *s, float *out, const float *inp, const float *weight, int IC,
                        int OC, float beta)
{
    kern_gemm(0, 1, s->BT, OC, IC, 1.0f, inp, IC, weight, IC, beta, out, OC);
}

void gpt_matmul_backward(step_ctx *s, float *dinp, float *dweight, const float *dout,
                         const float *inp, const float *weight, int IC, int OC)
{
    kern_gemm(0, 0, s->BT, IC, OC, 1.0f, dout, OC, weight, IC, 0.0f, dinp, IC);
    kern_gemm(1, 0, OC, IC, s->BT, 1.0f, dout, OC, inp, IC, 0.0f, dweight, IC);
}

/* ---- attention, per (b, h) ---------------------------------------------- */

typedef struct att_job {
    step_ctx *s;
    layer_acts *a;
} att_job;

static void att_fwd_range(void *ctx, int lo, int hi)
{
    const att_job *aj = ctx;
    const step_ctx *s = aj->s;
    const gpt_t *g = s->g;
    int T = s->T, C = g->C, NH = g->NH, hs = g->hs, C3 = 3 * C;
    /* scratch: the range's first slot, reused for each of its (b, h) so it
     * stays in cache (ranges never overlap) */
    float *slot = g->datt + (size_t)lo * g->att_slot;
    for (int bh = lo; bh < hi; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = aj->a->qkv + (size_t)b * T * C3 + h * hs;
        kern_attn_forward(q, q + C, q + 2 * C, C3, T, hs, aj->a->att + (size_t)bh * T * T,
                          aj->a->atty + (size_t)b * T * C + h * hs, C, slot, g->att_fused);
    }
}

static void att_bwd_range(void *ctx, int lo, int hi)
{
    const att_job *aj = ctx;
    step_ctx *s = aj->s;
    gpt_t *g = s->g;
    int T = s->T, C = g->C, NH = g->NH, hs = g->hs, C3 = 3 * C;
    float *slot = g->datt + (size_t)lo * g->att_slot;
    for (int bh = lo; bh < hi; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = aj->a->qkv + (size_t)b * T * C3 + h * hs;
        float *dq = g->dqkv + (size_t)b * T * C3 + h * hs;
        kern_attn_backward(q, q + C, q + 2 * C, C3, aj->a->att + (size_t)bh * T * T,
                           g->datty + (size_t)b * T * C + h * hs, C, dq, dq + C, dq + 2 * C,
                           T, hs, slot, g->att_fused);
        /* this sequence's share of the qkv bias gradient, for this head */
        float *bp = g->bpartials + (size_t)b * C3 + h * hs;
        for (int part = 0; part < 3; part++)
            kern_colsum(dq + part * C, T, C3, hs, bp + part * C);
    }
}

void gpt_attention_forward(step_ctx *s, layer_acts *a)
{
    att_job aj = {s, a};
    compute_parallel_for(s->B * s->g->NH, att_fwd_range, &aj);
}

void gpt_attention_backward(step_ctx *s, layer_acts *a, float *dqkvb)
{
    gpt_t *g = s->g;
    int C3 = 3 * g->C;
    att_job aj = {s, a};
    compute_parallel_for(s->B * g->NH, att_bwd_range, &aj);
    for (int c = 0; c < C3; c++) {
        float acc = 0.0f;
        for (int b = 0; b < s->B; b++)
            acc += g->bpartials[(size_t)b * C3 + c];
        dqkvb[c] = acc;
    }
}

/* ---- GELU --------------------------------------------------------------- */

typedef struct gelu_job {
    float *fch, *fchg, *dfch;
    const float *bias;
    int W;                 /* 4C */
    float *partials;       /* bwd: (nchunk, W) bias-gradient partials */
    int BT, nchunk;
} gelu_job;

static void gelu_fwd_range(void *ctx, int lo, int hi)
{
    const gelu_job *j = ctx;
    for (int r = lo; r < hi; r++)
        kern_gelu_row(j->fch + (size_t)r * j->W, j->fchg + (size_t)r * j->W, j->bias, j->W);
}

static void gelu_bwd_range(void *ctx, int lo, int hi)
{
    const gelu_job *j = ctx;
    int W = j->W;
    for (int k = lo; k < hi; k++) {
        float *p = j->partials + (size_t)k * W;
        int r0, r1;
        memset(p, 0, (size_t)W * sizeof(float));
        chunk_rows(k, j->BT, j->nchunk, &r0, &r1);
        for (int r = r0; r < r1; r++)
            kern_gelu_bwd_row(j->fch + (size_t)r * W, j->dfch + (size_t)r * W, p, W);
    }
}

void gpt_gelu_forward(step_ctx *s, float *fch, float *fchg, const float *bias)
{
    gelu_job j = {fch, fchg, NULL, bias, 4 * s->g->C, NULL, s->BT, s->nchunk};
    compute_parallel_for(s->BT, gelu_fwd_range, &j);
}

void gpt_gelu_backward(step_ctx *s, const float *fch, float *dfch, float *dbias)
{
    int C4 = 4 * s->g->C;
    gelu_job j = {(float *)fch, NULL, dfch, NULL, C4, s->g->partials, s->BT, s->nchunk};
    compute_parallel_for(s->nchunk, gelu_bwd_range, &j);
    reduce_partials(s->g->partials, s->nchunk, C4, 0, C4, dbias);
}

/* ---- cross-entropy over the vocabulary, fused with the softmax ---------- */

static void ce_range(void *ctx, int lo, int hi)
{
    const step_ctx *s = ctx;
    const gpt_t *g = s->g;
    int V = g->V;
    float inv_bt = 1.0f / (float)s->BT;
    for (int r = lo; r < hi; r++) {
        float *row = g->logits + (size_t)r * V;
        int y = s->targets[r];
        float ly = row[y], mx;
        float sum = kern_exp_sum_row(row, V, &mx);
        g->losses[r] = logf(sum) + mx - ly;
        if (s->train) {
            float sc = inv_bt / sum;
            for (int j = 0; j < V; j++)
                row[j] *= sc;
            row[y] -= inv_bt;
        }
    }
}

float gpt_crossentropy_forward(step_ctx *s)
{
    compute_parallel_for(s->BT, ce_range, s);
    double sum = 0.0;
    for (int r = 0; r < s->BT; r++)
        sum += s->g->losses[r];
    return (float)(sum / s->BT);
}

/*
 * model_gpt — a byte-level GPT-2 (pre-LayerNorm) trained in C: its parameter
 * table, create/init, and the forward and backward passes as a sequence of
 * layer calls (model_gpt_layers.c) over the kernels of kernels.h.  See
 * traind/model.h and traind/gpt.h; torch_ref.py's GPT/Block is the same
 * model; model_gpt.h has the shapes and the structs.
 *
 *   encoded = wte[tokens] + wpe[0..T)                        (BT, C)
 *   per layer:  ln1 = LN(x);  qkv = ln1·Wqkv^T + b           (BT, 3C)
 *               att = softmax(q·k^T/√hs, causal)  per (b, h)  (B, NH, T, T)
 *               res2 = x + (att·v)·Wproj^T + b
 *               ln2 = LN(res2);  fch = ln2·Wfc^T + b          (BT, 4C)
 *               res3 = res2 + gelu_tanh(fch)·Wfc2^T + b      (next x)
 *   logits = LN_f(x)·wte^T                                    (BT, V)
 *   loss = mean cross-entropy
 *
 * Where the time goes and how it is spent (gpt-tiny: V=256, T=128, d=128,
 * 4 layers, 4 heads, batch 8, on the 2-core dev box; tests/bench/ has the
 * harnesses):
 *  - The linear layers are ~85% of the FLOPs.  Every matrix product is one
 *    sgemm over all BT rows (the tied head is one sgemm against wte).
 *  - Threads: every product goes through compute_sgemm (kern_gemm): OpenBLAS
 *    at 1 thread, C cut into tiles (a grid from the shape alone) spread over
 *    the compute pool, each tile a single-threaded sgemm.  One pool, so
 *    nothing spins beside it, and the bits do not depend on the thread
 *    count; measured 1.8x from 1 to 2 threads.
 *  - Attention runs per (b, head) on the pool (kernels_attn.c).
 *  - LayerNorm, GELU and softmax/cross-entropy are fused row loops; the bias
 *    adds and residual copies ride along in the LayerNorm pass before the
 *    product that adds onto them (ln_preset), which is why a product
 *    "accumulates" (beta 1) onto the residual.
 *  - Every activation lives in one arena allocated at create time.
 */
#include "traind/gpt.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_gpt.h"
#include "model_impl.h"

/* ------------------------------------------------------------------------ */
/* The parameter table: every tensor, in torch's named_parameters() order.
 * The parameter count, gpt_tensor_info's names and offsets, the pointers of
 * gpt_create and the initialisation of gpt_init all come from it. */

enum { AT_START, PER_LAYER, AT_END };                   /* where a tensor sits */
enum { INIT_ZERO, INIT_ONE, INIT_NORMAL, INIT_RESID };  /* GPT-2 init: 0, 1, N(0, 0.02), N(0, 0.02/√(2L)) */

typedef struct param_def {
    const char *name;          /* per-layer tensors are "blocks.<l>.<name>" */
    int where;
    int mult;                  /* size = mult · rows · C */
    char rows;                 /* 'V' vocab_size, 'T' context, 'C' d_model, '1' */
    size_t field;              /* offsetof the pointer in gpt_weights or layer_params */
    int init;
    char kind;                 /* 'H' hidden matrix, 'E' embedding, 'G' gain or bias (model_tensor_kind) */
    int in_mult;               /* matrices: cols = in_mult · C (fc2 takes the 4C-wide input) */
} param_def;

#define G(f) offsetof(gpt_weights, f)
#define LP(f) offsetof(layer_params, f)
static const param_def PARAMS[] = {
    {"wte.weight",  AT_START,  1, 'V', G(wte),   INIT_NORMAL, 'E', 1},   /* (V, C), also the output head */
    {"wpe.weight",  AT_START,  1, 'T', G(wpe),   INIT_NORMAL, 'E', 1},   /* (T, C) */
    {"ln1.weight",  PER_LAYER, 1, '1', LP(ln1w), INIT_ONE,    'G', 1},
    {"ln1.bias",    PER_LAYER, 1, '1', LP(ln1b), INIT_ZERO,   'G', 1},
    {"ln2.weight",  PER_LAYER, 1, '1', LP(ln2w), INIT_ONE,    'G', 1},
    {"ln2.bias",    PER_LAYER, 1, '1', LP(ln2b), INIT_ZERO,   'G', 1},
    {"qkv.weight",  PER_LAYER, 3, 'C', LP(qkvw), INIT_NORMAL, 'H', 1},   /* (3C, C), linear weights (out, in) */
    {"qkv.bias",    PER_LAYER, 3, '1', LP(qkvb), INIT_ZERO,   'G', 1},
    {"proj.weight", PER_LAYER, 1, 'C', LP(projw), INIT_RESID, 'H', 1},   /* (C, C) */
    {"proj.bias",   PER_LAYER, 1, '1', LP(projb), INIT_ZERO,  'G', 1},
    {"fc.weight",   PER_LAYER, 4, 'C', LP(fcw),  INIT_NORMAL, 'H', 1},   /* (4C, C) */
    {"fc.bias",     PER_LAYER, 4, '1', LP(fcb),  INIT_ZERO,   'G', 1},
    {"fc2.weight",  PER_LAYER, 4, 'C', LP(fc2w), INIT_RESID,  'H', 4},   /* (C, 4C) */
    {"fc2.bias",    PER_LAYER, 1, '1', LP(fc2b), INIT_ZERO,   'G', 1},
    {"lnf.weight",  AT_END,    1, '1', G(lnfw),  INIT_ONE,    'G', 1},
    {"lnf.bias",    AT_END,    1, '1', G(lnfb),  INIT_ZERO,   'G', 1},
};
#undef G
#undef LP
#define NPARAMS ((int)(sizeof PARAMS / sizeof PARAMS[0]))

static size_t dimz(int v)
{
    return v > 0 ? (size_t)v : 0;
}

static size_t def_size(const param_def *d, const model_cfg *cfg)
{
    size_t rows = d->rows == 'V' ? dimz(cfg->vocab_size) : d->rows == 'T' ? dimz(cfg->context)
                : d->rows == 'C' ? dimz(cfg->d_model) : 1;
    return size_sat_mul((size_t)d->mult, size_sat_mul(rows, dimz(cfg->d_model)));
}

/* Floats of the tensors at `where`, those of PARAMS[0 .. upto) only. */
static size_t group_size(const model_cfg *cfg, int where, int upto)
{
    size_t n = 0;
    for (int k = 0; k < upto; k++)
        if (PARAMS[k].where == where)
            n = size_sat_add(n, def_size(&PARAMS[k], cfg));
    return n;
}

static int group_count(int where)
{
    int n = 0;
    for (int k = 0; k < NPARAMS; k++)
        n += PARAMS[k].where == where;
    return n;
}

size_t gpt_param_count(const model_cfg *cfg)
{
    size_t n = group_size(cfg, AT_START, NPARAMS);
    n = size_sat_add(n, size_sat_mul(dimz(cfg->layers), group_size(cfg, PER_LAYER, NPARAMS)));
    return size_sat_add(n, group_size(cfg, AT_END, NPARAMS));
}

int gpt_tensor_count(const model_cfg *cfg)
{
    return group_count(AT_START) + group_count(PER_LAYER) * cfg->layers + group_count(AT_END);
}

/* The i-th tensor: its row of PARAMS, its layer (-1 for the others), and
 * out.  Returns 0, or -1 when i is out of range. */
static int tensor_at(const model_cfg *cfg, int i, const param_def **def, int *layer, gpt_tensor *out)
{
    int n0 = group_count(AT_START), nl = group_count(PER_LAYER);
    int where, l = -1, k;
    if (i < 0 || i >= gpt_tensor_count(cfg))
        return -1;
    if (i < n0) {
        where = AT_START, k = i;
    } else if (i < n0 + nl * cfg->layers) {
        where = PER_LAYER, l = (i - n0) / nl, k = (i - n0) % nl;
    } else {
        where = AT_END, k = i - n0 - nl * cfg->layers;
    }
    int row = 0;                /* the k-th row of PARAMS at `where` */
    while (PARAMS[row].where != where || k-- > 0)
        row++;
    size_t off = group_size(cfg, AT_START, where == AT_START ? row : NPARAMS);
    if (where != AT_START)
        off += (size_t)(where == PER_LAYER ? l : cfg->layers) * group_size(cfg, PER_LAYER, NPARAMS);
    if (where == PER_LAYER)
        off += group_size(cfg, PER_LAYER, row);
    else if (where == AT_END)
        off += group_size(cfg, AT_END, row);
    memset(out, 0, sizeof *out);
    if (where == PER_LAYER)
        snprintf(out->name, sizeof out->name, "blocks.%d.%s", l, PARAMS[row].name);
    else
        snprintf(out->name, sizeof out->name, "%s", PARAMS[row].name);
    out->offset = off;
    out->size = def_size(&PARAMS[row], cfg);
    *def = &PARAMS[row];
    *layer = l;
    return 0;
}

int gpt_tensor_info(const model_cfg *cfg, int i, gpt_tensor *out)
{
    const param_def *def;
    int layer;
    return tensor_at(cfg, i, &def, &layer, out);
}

/* The i-th tensor's shape and role (traind/model.h): matrices (mult·R/in_mult,
 * in_mult·C), gains and biases (1, size).  qkv stays one (3C, C) matrix, as
 * the reference model's fused nn.Linear is one parameter. */
int gpt_model_tensor_at(const model_cfg *cfg, int i, model_tensor *out)
{
    const param_def *def;
    int layer;
    gpt_tensor t;
    if (tensor_at(cfg, i, &def, &layer, &t) != 0)
        return -1;
    out->offset = t.offset;
    if (def->kind == 'G') {
        out->rows = 1, out->cols = t.size;
        out->kind = MODEL_TENSOR_VECTOR;
    } else {
        out->cols = (size_t)def->in_mult * dimz(cfg->d_model);
        out->rows = out->cols ? t.size / out->cols : 0;
        out->kind = def->kind == 'H' ? MODEL_TENSOR_HIDDEN : MODEL_TENSOR_INPUT;
    }
    return 0;
}

/* Points every tensor of w into base (params or grads). */
static void bind_weights(const model_cfg *cfg, float *base, gpt_weights *w)
{
    int n = gpt_tensor_count(cfg);
    for (int i = 0; i < n; i++) {
        const param_def *def;
        int l;
        gpt_tensor t;
        tensor_at(cfg, i, &def, &l, &t);
        char *holder = l >= 0 ? (char *)&w->layer[l] : (char *)w;
        float *p = base + t.offset;
        memcpy(holder + def->field, &p, sizeof p);
    }
}

/* ------------------------------------------------------------------------ */
/* The activation arena */

static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* The activation arena as a list of buffer sizes (floats, each rounded up to
 * 64 bytes).  Fills g's pointers when g and base are given.  Returns the
 * total float count, or 0 on overflow. */
static size_t layout(const model_cfg *cfg, int B, gpt_t *g, float *base)
{
    size_t V = cfg->vocab_size, T = cfg->context, C = cfg->d_model, L = cfg->layers;
    size_t NH = cfg->heads;
    size_t BT, btc, tt, att, off = 0;
    int ok = 1;
    if (!mul_ok((size_t)B, T, &BT) || !mul_ok(BT, C, &btc) || !mul_ok(T, T, &tt) ||
        !mul_ok(tt, NH, &att) || !mul_ok(att, (size_t)B, &att))
        return 0;
    if (btc > SIZE_MAX / 64 || att > SIZE_MAX / 64 || BT > SIZE_MAX / 64 / (V + 1))
        return 0;
#define TAKE(ptr, n)                                                       \
    do {                                                                   \
        size_t n_ = round16(n);                                            \
        if (off > SIZE_MAX / 2 - n_) ok = 0;                               \
        if (ok && base) *(ptr) = base + off;                                \
        off += n_;                                                         \
    } while (0)
    float *dummy = NULL;
    TAKE(g ? &g->encoded : &dummy, btc);
    for (size_t l = 0; l < L && ok; l++) {
        layer_acts *a = g ? &g->la[l] : NULL;
        TAKE(a ? &a->ln1 : &dummy, btc);
        TAKE(a ? &a->ln1_mean : &dummy, BT);
        TAKE(a ? &a->ln1_rstd : &dummy, BT);
        TAKE(a ? &a->qkv : &dummy, 3 * btc);
        TAKE(a ? &a->att : &dummy, att);
        TAKE(a ? &a->atty : &dummy, btc);
        TAKE(a ? &a->res2 : &dummy, btc);
        TAKE(a ? &a->ln2 : &dummy, btc);
        TAKE(a ? &a->ln2_mean : &dummy, BT);
        TAKE(a ? &a->ln2_rstd : &dummy, BT);
        TAKE(a ? &a->fch : &dummy, 4 * btc);
        TAKE(a ? &a->fchg : &dummy, 4 * btc);
        TAKE(a ? &a->res3 : &dummy, btc);
    }
    TAKE(g ? &g->lnf : &dummy, btc);
    TAKE(g ? &g->lnf_mean : &dummy, BT);
    TAKE(g ? &g->lnf_rstd : &dummy, BT);
    TAKE(g ? &g->logits : &dummy, BT * V);
    TAKE(g ? &g->losses : &dummy, BT);
    TAKE(g ? &g->dres : &dummy, btc);
    TAKE(g ? &g->dln : &dummy, btc);
    TAKE(g ? &g->dqkv : &dummy, 3 * btc);
    TAKE(g ? &g->datty : &dummy, btc);
    TAKE(g ? &g->dfch : &dummy, 4 * btc);
    {   /* one attention slot per (b, h) */
        size_t slots;
        if (!mul_ok(kern_attn_slot(T, C / NH), (size_t)B * NH, &slots))
            return 0;
        TAKE(g ? &g->datt : &dummy, slots);
    }
    TAKE(g ? &g->partials : &dummy, GPT_NCHUNK_MAX * 4 * C);
    TAKE(g ? &g->bpartials : &dummy, (size_t)B * 3 * C);
#undef TAKE
    (void)dummy;
    return ok ? off : 0;
}

size_t gpt_memory_bytes(const model_cfg *cfg, int batch_size)
{
    if (batch_size < 1 || cfg->vocab_size < 1 || cfg->context < 1 || cfg->d_model < 1 ||
        cfg->heads < 1 || cfg->layers < 0)
        return SIZE_MAX;
    size_t acts = layout(cfg, batch_size, NULL, NULL);
    size_t np = gpt_param_count(cfg);
    if (acts == 0 || np > SIZE_MAX / 16)
        return SIZE_MAX;
    size_t floats = acts + 2 * round16(np);
    if (floats < acts || floats > SIZE_MAX / sizeof(float))
        return SIZE_MAX;
    return floats * sizeof(float);
}

/* ------------------------------------------------------------------------ */
/* forward / backward */

void gpt_step_init(step_ctx *s, gpt_t *g, int B, int T, const int32_t *tokens,
                   const int32_t *targets, int train)
{
    memset(s, 0, sizeof *s);
    s->g = g;
    s->B = B;
    s->T = T;
    s->BT = B * T;
    s->nchunk = s->BT < GPT_NCHUNK_MAX ? s->BT : GPT_NCHUNK_MAX;
    s->tokens = tokens;
    s->targets = targets;
    s->train = train;
}

/* Forward through the final LayerNorm (g->lnf); the head and loss are separate. */
void gpt_forward(step_ctx *s)
{
    gpt_t *g = s->g;
    int C = g->C, C3 = 3 * C, C4 = 4 * C;
    gpt_encoder_forward(s, g->encoded);
    const float *x = g->encoded;
    for (int l = 0; l < g->L; l++) {
        layer_params *p = &g->w.layer[l];
        layer_acts *a = &g->la[l];
        /* ln1, and the residual and bias the products below add onto:
         * res2 = x + proj.b, qkv = qkv.b */
        ln_preset pre1 = {a->res2, p->projb, a->qkv, p->qkvb, C3};
        gpt_layernorm_forward(s, x, p->ln1w, p->ln1b, a->ln1, a->ln1_mean, a->ln1_rstd, &pre1);
        gpt_matmul_forward(s, a->qkv, a->ln1, p->qkvw, C, C3, 1.0f);
        gpt_attention_forward(s, a);
        gpt_matmul_forward(s, a->res2, a->atty, p->projw, C, C, 1.0f);   /* res2 += atty·Wproj^T */
                           /* ln2; res3 = res2 + fc2.b */
        ln_preset pre2 = {a->res3, p->fc2b, NULL, NULL, 0};
        gpt_layernorm_forward(s, a->res2, p->ln2w, p->ln2b, a->ln2, a->ln2_mean, a->ln2_rstd, &pre2);
        gpt_matmul_forward(s, a->fch, a->ln2, p->fcw, C, C4, 0.0f);
        gpt_gelu_forward(s, a->fch, a->fchg, p->fcb);
        gpt_matmul_forward(s, a->res3, a->fchg, p->fc2w, C4, C, 1.0f);   /* res3 += fchg·Wfc2^T */
                           x = a->res3;
    }
    gpt_layernorm_forward(s, x, g->w.lnfw, g->w.lnfb, g->lnf, g->lnf_mean, g->lnf_rstd, NULL);
}

/* Loss of the batch (tied head + cross-entropy); with s->train also dlogits. */
static float head_loss(step_ctx *s)
{
    gpt_t *g = s->g;
    gpt_matmul_forward(s, g->logits, g->lnf, g->w.wte, g->C, g->V, 0.0f);
    return gpt_crossentropy_forward(s);
}

static void gpt_backward(step_ctx *s)
{
    gpt_t *g = s->g;
    int C = g->C, C3 = 3 * C, C4 = 4 * C;
    /* head: dlnf = dlogits wte; dwte = dlogits^T lnf */
    gpt_matmul_backward(s, g->dln, g->dw.wte, g->logits, g->lnf, g->w.wte, C, g->V);
    /* lnf: dres = LN'(dlnf); its column sums are the last layer's fc2.b grad */
    const float *xl = g->L > 0 ? g->la[g->L - 1].res3 : g->encoded;
    gpt_layernorm_backward(s, g->dln, xl, g->lnf_mean, g->lnf_rstd, g->w.lnfw, g->dres, 0,
                           g->dw.lnfw, g->dw.lnfb, g->L > 0 ? g->dw.layer[g->L - 1].fc2b : NULL);
    for (int l = g->L - 1; l >= 0; l--) {
        layer_params *p = &g->w.layer[l], *gr = &g->dw.layer[l];
        layer_acts *a = &g->la[l];
        const float *x = l > 0 ? g->la[l - 1].res3 : g->encoded;
        gpt_matmul_backward(s, g->dfch, gr->fc2w, g->dres, a->fchg, p->fc2w, C4, C);   /* fc2.b: above */
                            gpt_gelu_backward(s, a->fch, g->dfch, gr->fcb);
        gpt_matmul_backward(s, g->dln, gr->fcw, g->dfch, a->ln2, p->fcw, C, C4);
        /* dres += LN2'(dln); its column sums are proj.b's grad */
        gpt_layernorm_backward(s, g->dln, a->res2, a->ln2_mean, a->ln2_rstd, p->ln2w, g->dres, 1,
                               gr->ln2w, gr->ln2b, gr->projb);
        gpt_matmul_backward(s, g->datty, gr->projw, g->dres, a->atty, p->projw, C, C);
        gpt_attention_backward(s, a, gr->qkvb);
        gpt_matmul_backward(s, g->dln, gr->qkvw, g->dqkv, a->ln1, p->qkvw, C, C3);
        /* dres += LN1'(dln); its column sums are the previous layer's fc2.b grad */
        gpt_layernorm_backward(s, g->dln, x, a->ln1_mean, a->ln1_rstd, p->ln1w, g->dres, 1,
                               gr->ln1w, gr->ln1b, l > 0 ? g->dw.layer[l - 1].fc2b : NULL);
    }
    gpt_encoder_backward(s, g->dres);
}

/* ------------------------------------------------------------------------ */
/* model_ops */

static int batch_ok(const gpt_t *g, const batch_t *b)
{
    if (!b || b->B < 1 || b->B > g->maxB || b->T < 1 || b->T > g->T || !b->tokens || !b->targets)
        return 0;
    for (int r = 0; r < b->B * b->T; r++)
        if ((unsigned)b->tokens[r] >= (unsigned)g->V || (unsigned)b->targets[r] >= (unsigned)g->V)
            return 0;
    return 1;
}

/* Forward + loss; with train also the backward pass into m->grads. */
static float run_step(model_t *m, const batch_t *b, int train)
{
    gpt_t *g = (gpt_t *)m;
    step_ctx s;
    if (!batch_ok(g, b))
        return NAN;
    gpt_step_init(&s, g, b->B, b->T, b->tokens, b->targets, train);
    gpt_forward(&s);
    float loss = head_loss(&s);
    if (train)
        gpt_backward(&s);
    return loss;
}

static float gpt_train_step(model_t *m, const batch_t *b)
{
    return run_step(m, b, 1);
}

static float gpt_eval_loss(model_t *m, const batch_t *b)
{
    return run_step(m, b, 0);
}

/* GPT-2's init, tensor by tensor in table order (the order of the draws). */
static void gpt_init(model_t *m, rng_t *rng)
{
    gpt_t *g = (gpt_t *)m;
    int n = gpt_tensor_count(&m->cfg);
    float resid_std = 0.02f / sqrtf(2.0f * (g->L > 0 ? g->L : 1));
    for (int i = 0; i < n; i++) {
        const param_def *def;
        int l;
        gpt_tensor t;
        tensor_at(&m->cfg, i, &def, &l, &t);
        float *p = m->params + t.offset;
        switch (def->init) {
        case INIT_ZERO:
            memset(p, 0, t.size * sizeof(float));
            break;
        case INIT_ONE:
            for (size_t k = 0; k < t.size; k++)
                p[k] = 1.0f;
            break;
        default:
            rng_fill_normal(rng, p, t.size, 0.0f, def->init == INIT_RESID ? resid_std : 0.02f);
            break;
        }
    }
}

static void gpt_destroy(model_t *m)
{
    gpt_t *g = (gpt_t *)m;
    if (!g)
        return;
    free(g->arena);
    free(m->params);
    free(m->grads);
    free(g->w.layer);
    free(g->dw.layer);
    free(g->la);
    free(g);
}

static const model_ops gpt_ops = {
    .destroy = gpt_destroy,
    .init = gpt_init,
    .train_step = gpt_train_step,
    .eval_loss = gpt_eval_loss,
};

int gpt_is(const model_t *m)
{
    return m && m->ops == &gpt_ops;
}

static void *alloc_floats(size_t n)
{
    void *p = NULL;
    if (n == 0)
        n = 16;
    if (n > SIZE_MAX / sizeof(float) || posix_memalign(&p, 64, n * sizeof(float)) != 0)
        return NULL;
    return p;
}

model_t *gpt_create(const model_cfg *cfg, int batch_size, char *err, size_t errlen)
{
    if (cfg->vocab_size < 1 || cfg->context < 1 || cfg->d_model < 1 || cfg->heads < 1 ||
        cfg->layers < 0 || batch_size < 1) {
        snprintf(err, errlen, "gpt: vocab_size, context, d_model, heads and batch_size must be at least 1");
        return NULL;
    }
    if (cfg->d_model % cfg->heads != 0) {
        snprintf(err, errlen, "gpt: d_model (%d) must be a multiple of heads (%d)", cfg->d_model, cfg->heads);
        return NULL;
    }
    size_t bytes = gpt_memory_bytes(cfg, batch_size);
    size_t acts = layout(cfg, batch_size, NULL, NULL);
    if (bytes == SIZE_MAX || acts == 0 || (uint64_t)batch_size * cfg->context > INT32_MAX / 4 ||
        (uint64_t)cfg->vocab_size * cfg->d_model > INT32_MAX) {
        snprintf(err, errlen, "gpt: model too large");
        return NULL;
    }
    kern_simd_refresh();
    gpt_t *g = calloc(1, sizeof *g);
    if (!g)
        goto oom;
    model_t *m = &g->base;
    m->ops = &gpt_ops;
    m->cfg = *cfg;
    m->batch_size = batch_size;
    m->n_params = gpt_param_count(cfg);
    g->V = cfg->vocab_size;
    g->T = cfg->context;
    g->C = cfg->d_model;
    g->L = cfg->layers;
    g->NH = cfg->heads;
    g->hs = g->C / g->NH;
    g->maxB = batch_size;
    g->att_slot = kern_attn_slot((size_t)g->T, (size_t)g->hs);
    g->att_fused = kern_attn_fused(g->hs);
    m->params = alloc_floats(m->n_params);
    m->grads = alloc_floats(m->n_params);
    g->w.layer = calloc((size_t)(g->L > 0 ? g->L : 1), sizeof *g->w.layer);
    g->dw.layer = calloc((size_t)(g->L > 0 ? g->L : 1), sizeof *g->dw.layer);
    g->la = calloc((size_t)(g->L > 0 ? g->L : 1), sizeof *g->la);
    g->arena = alloc_floats(acts);
    if (!m->params || !m->grads || !g->w.layer || !g->dw.layer || !g->la || !g->arena) {
        gpt_destroy(m);
        goto oom;
    }
    memset(m->params, 0, m->n_params * sizeof(float));
    memset(m->grads, 0, m->n_params * sizeof(float));
    memset(g->arena, 0, acts * sizeof(float));
    layout(cfg, batch_size, g, g->arena);
    bind_weights(cfg, m->params, &g->w);
    bind_weights(cfg, m->grads, &g->dw);
    return m;
oom:
    snprintf(err, errlen, "gpt: out of memory (%zu MiB for parameters and activations)", bytes >> 20);
    return NULL;
}

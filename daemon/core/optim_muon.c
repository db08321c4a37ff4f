/*
 * optim_muon — Muon, Keller Jordan's variant, over the flat parameter array.
 * See traind/optim_muon.h for the algorithm and where it comes from.
 *
 * Per hidden matrix, one update is three passes and 3·ns_steps products:
 *   1. the momentum pass: M and U elementwise, U written into X (transposed
 *      when rows > cols, so that X is m × k with m = min(rows, cols) and the
 *      Gram matrix X·Xᵀ is the small one), its sum of squares in double;
 *   2. Newton-Schulz on X: A = X·Xᵀ, B = c·A·A + b·A, X' = B·X + a·X, each a
 *      kern_gemm whose beta adds the elementwise term (b·A, a·X) written just
 *      before;
 *   3. the update pass: p = p·(1 - lr·wd) + (-lr)·(s·X), X read back in p's
 *      orientation.
 * The tensors that are not hidden matrices go, in contiguous runs, through
 * optim_step as AdamW over views of the same state (m, v, step).
 *
 * The elementwise passes reproduce torch's float32 ops, so that where the
 * products agree so do the bits: torch.lerp(a, b, w) on its AVX2 kernels is
 * fma(w, b - a, a) for |w| < 0.5 and fma(-(b - a), 1 - w, b) otherwise
 * (measured on torch 1.13: every element of 10^5, both branches), and
 * p.add_(u, alpha=-lr) is fma(u, -lr, p) (optim.c).  Like optim.c those
 * passes are compiled twice, plain and for AVX2+FMA (where fmaf is one
 * instruction and the loops vectorize), same bits either way.
 */
#include "traind/optim_muon.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_impl.h"

#include "optim_impl.h"   /* no fp contraction: torch's roundings */

typedef struct muon_matrix {
    size_t offset, rows, cols;
} muon_matrix;

typedef struct aux_range {
    size_t offset, len;
} aux_range;

struct optim_muon {
    muon_matrix *mat;
    int n_mat;
    aux_range *aux;             /* the other tensors, merged into contiguous runs */
    int n_aux;
    float *x, *y, *a, *b;       /* scratch: X and X' (m·k), A and B (m·m) of the largest matrix */
};

/* ---- the elementwise passes ---------------------------------------------- */

typedef struct mom_coef {
    float w_m;          /* 1 - β: M = lerp(M, G, w_m) */
    float w_n, w_n1;    /* β and 1 - β in float: U = lerp(G, M, β) */
    bool nesterov;
} mom_coef;

/* torch.lerp(a, b, w) (ATen's lerp, as its AVX2 kernel rounds it). */
static inline __attribute__((always_inline)) NO_CONTRACT float lerp_small(float a, float b, float w)
{
    return fmaf(w, b - a, a);
}

static inline __attribute__((always_inline)) NO_CONTRACT float lerp_large(float a, float b, float one_minus_w)
{
    return fmaf(-(b - a), one_minus_w, b);
}

/* |w| < 0.5 picks the branch, as torch's is_lerp_weight_small. */
static inline __attribute__((always_inline)) NO_CONTRACT float lerp_f(float a, float b, float w, float one_minus_w)
{
    return fabsf(w) < 0.5f ? lerp_small(a, b, w) : lerp_large(a, b, one_minus_w);
}

#define PASSES(SFX, ATTR)                                                                           \
    /* M = lerp(M, G, 1-β); U = nesterov ? lerp(G, M, β) : M into x (k = cols) or its transpose   \
     * (k = rows); returns Σ U² in double (eight partial sums in a fixed order). */               \
    static ATTR NO_CONTRACT double momentum_pass##SFX(const mom_coef *c, float *restrict m,         \
                                                      const float *restrict g, float *restrict x,   \
                                                      size_t rows, size_t cols, bool transpose)     \
    {                                                                                               \
        float w_m = c->w_m, one_minus_w_m = 1.0f - c->w_m, w_n = c->w_n, w_n1 = c->w_n1;            \
        double acc[8] = {0};                                                                        \
        for (size_t i = 0; i < rows; i++) {                                                         \
            float *mi = m + i * cols;                                                               \
            const float *gi = g + i * cols;                                                         \
            float *xi = transpose ? x + i : x + i * cols;                                           \
            size_t xs = transpose ? rows : 1;                                                       \
            for (size_t j = 0; j < cols; j++) {                                                     \
                float mv = lerp_f(mi[j], gi[j], w_m, one_minus_w_m);                                \
                mi[j] = mv;                                                                         \
                float u = c->nesterov ? lerp_f(gi[j], mv, w_n, w_n1) : mv;                          \
                xi[j * xs] = u;                                                                     \
                acc[j & 7] += (double)u * (double)u;                                                \
            }                                                                                       \
        }                                                                                           \
        double s = 0;                                                                               \
        for (int k = 0; k < 8; k++)                                                                 \
            s += acc[k];                                                                            \
        return s;                                                                                   \
    }                                                                                               \
    /* x *= 1 / denom as torch's X / (norm + eps): a division per element. */                      \
    static ATTR NO_CONTRACT void scale_pass##SFX(float *restrict x, size_t n, float denom)          \
    {                                                                                               \
        for (size_t i = 0; i < n; i++)                                                              \
            x[i] = x[i] / denom;                                                                    \
    }                                                                                               \
    /* out = s·in (the elementwise term the next product adds onto). */                            \
    static ATTR NO_CONTRACT void mul_pass##SFX(float *restrict out, const float *restrict in,       \
                                               size_t n, float s)                                   \
    {                                                                                               \
        for (size_t i = 0; i < n; i++)                                                              \
            out[i] = s * in[i];                                                                     \
    }                                                                                               \
    /* p = p·decay; p = fma(s·X, -lr, p), X (m × k) read in p's orientation. */                    \
    static ATTR NO_CONTRACT void update_pass##SFX(float *restrict p, const float *restrict x,       \
                                                  size_t rows, size_t cols, bool transpose,         \
                                                  float decay, float scale, float neg_lr)           \
    {                                                                                               \
        for (size_t i = 0; i < rows; i++) {                                                         \
            float *pi = p + i * cols;                                                               \
            const float *xi = transpose ? x + i : x + i * cols;                                     \
            size_t xs = transpose ? rows : 1;                                                       \
            for (size_t j = 0; j < cols; j++) {                                                     \
                float u = xi[j * xs] * scale;                                                       \
                pi[j] = fmaf(u, neg_lr, pi[j] * decay);                                             \
            }                                                                                       \
        }                                                                                           \
    }

PASSES(_base, )

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_FMA_PASSES 1
PASSES(_fma, __attribute__((target("avx2,fma"))))

static bool use_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#define PASS(name, ...) (use_fma() ? name##_fma(__VA_ARGS__) : name##_base(__VA_ARGS__))
#else
#define PASS(name, ...) name##_base(__VA_ARGS__)
#endif

/* ---- one matrix ---------------------------------------------------------- */

static double adjust_scale(muon_adjust how, size_t rows, size_t cols)
{
    if (how == MUON_ADJUST_MATCH_RMS_ADAMW)
        return 0.2 * sqrt((double)(rows > cols ? rows : cols));
    double r = (double)rows / (double)cols;          /* Python's rows / cols, a double */
    return sqrt(r > 1.0 ? r : 1.0);
}

static void matrix_update(const optim_cfg *cfg, optim_muon *mu, const muon_matrix *mt, float *m,
                          float *p, const float *g, double lr)
{
    size_t rows = mt->rows, cols = mt->cols, n = rows * cols;
    bool tr = rows > cols;
    int M = (int)(tr ? cols : rows), K = (int)(tr ? rows : cols);
    float beta = (float)cfg->momentum;
    mom_coef c = {.w_m = (float)(1.0 - cfg->momentum), .w_n = beta, .w_n1 = 1.0f - beta,
                  .nesterov = cfg->nesterov};
    float *x = mu->x, *y = mu->y;
    double ss = PASS(momentum_pass, &c, m, g, x, rows, cols, tr);
    /* torch: X / (X.norm() + 1e-7), the norm a float32 tensor */
    float denom = (float)sqrt(ss) + MUON_NS_EPS;
    PASS(scale_pass, x, n, denom);
    for (int s = 0; s < cfg->ns_steps; s++) {
        kern_gemm(0, 1, M, M, K, 1.0f, x, K, x, K, 0.0f, mu->a, M);            /* A = X·Xᵀ */
        PASS(mul_pass, mu->b, mu->a, (size_t)M * M, MUON_NS_B);
        kern_gemm(0, 0, M, M, M, MUON_NS_C, mu->a, M, mu->a, M, 1.0f, mu->b, M); /* B = c·A·A + b·A */
        PASS(mul_pass, y, x, n, MUON_NS_A);
        kern_gemm(0, 0, M, K, M, 1.0f, mu->b, M, x, K, 1.0f, y, K);             /* X' = B·X + a·X */
        float *t = x;
        x = y;
        y = t;
    }
    float scale = (float)adjust_scale(cfg->adjust_lr, rows, cols);
    float decay = (float)(1.0 - lr * cfg->weight_decay);
    PASS(update_pass, p, x, rows, cols, tr, decay, scale, (float)(-lr));
}

/* ---- the plan ------------------------------------------------------------ */

static bool grow(size_t *have, size_t want)
{
    if (want == SIZE_MAX)
        return false;
    if (want > *have)
        *have = want;
    return true;
}

/* Scratch floats of one rows × cols matrix: X, X' (m·k), A, B (m·m); SIZE_MAX on overflow. */
static void scratch_floats(size_t rows, size_t cols, size_t *mk, size_t *mm)
{
    size_t m = rows < cols ? rows : cols;
    *mk = size_sat_mul(rows, cols);
    *mm = size_sat_mul(m, m);
}

void optim_muon_free(optim_muon *mu)
{
    if (!mu)
        return;
    free(mu->mat);
    free(mu->aux);
    free(mu->x);
    free(mu->y);
    free(mu->a);
    free(mu->b);
    free(mu);
}

optim_muon *optim_muon_create(const model_tensor *t, int n_tensors, size_t n_params, char *err,
                              size_t errlen)
{
    optim_muon *mu = calloc(1, sizeof *mu);
    if (!mu || n_tensors < 0)
        goto oom;
    mu->mat = calloc(n_tensors > 0 ? (size_t)n_tensors : 1, sizeof *mu->mat);
    mu->aux = calloc(n_tensors > 0 ? (size_t)n_tensors : 1, sizeof *mu->aux);
    if (!mu->mat || !mu->aux)
        goto oom;
    size_t at = 0, mk = 0, mm = 0;
    for (int i = 0; i < n_tensors; i++) {
        size_t len = size_sat_mul(t[i].rows, t[i].cols);
        if (t[i].offset != at || len == SIZE_MAX || len > n_params - at) {
            snprintf(err, errlen, "muon: the model's tensor %d (offset %zu, %zu x %zu) does not follow the "
                     "one before (at %zu of %zu parameters)", i, t[i].offset, t[i].rows, t[i].cols, at,
                     n_params);
            optim_muon_free(mu);
            return NULL;
        }
        if (t[i].kind == MODEL_TENSOR_HIDDEN && t[i].rows > 0 && t[i].cols > 0) {
            size_t a, b;
            scratch_floats(t[i].rows, t[i].cols, &a, &b);
            if (t[i].rows > INT32_MAX || t[i].cols > INT32_MAX || !grow(&mk, a) || !grow(&mm, b)) {
                snprintf(err, errlen, "muon: a %zu x %zu matrix is too large", t[i].rows, t[i].cols);
                optim_muon_free(mu);
                return NULL;
            }
            mu->mat[mu->n_mat++] = (muon_matrix){t[i].offset, t[i].rows, t[i].cols};
        } else if (len > 0) {
            if (mu->n_aux > 0 && mu->aux[mu->n_aux - 1].offset + mu->aux[mu->n_aux - 1].len == at)
                mu->aux[mu->n_aux - 1].len += len;
            else
                mu->aux[mu->n_aux++] = (aux_range){at, len};
        }
        at += len;
    }
    if (at != n_params) {
        snprintf(err, errlen, "muon: the model's tensors cover %zu of its %zu parameters", at, n_params);
        optim_muon_free(mu);
        return NULL;
    }
    if (mu->n_mat > 0) {
        mu->x = malloc(mk * sizeof(float));
        mu->y = malloc(mk * sizeof(float));
        mu->a = malloc(mm * sizeof(float));
        mu->b = malloc(mm * sizeof(float));
        if (!mu->x || !mu->y || !mu->a || !mu->b)
            goto oom;
    }
    return mu;
oom:
    snprintf(err, errlen, "out of memory for the muon optimizer's scratch");
    optim_muon_free(mu);
    return NULL;
}

optim_muon *optim_muon_for_model(const model_cfg *cfg, size_t n_params, char *err, size_t errlen)
{
    int n = model_tensor_count(cfg);
    model_tensor *t = calloc(n > 0 ? (size_t)n : 1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory for the muon optimizer's plan");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        model_tensor_at(cfg, i, &t[i]);
    optim_muon *mu = optim_muon_create(t, n, n_params, err, errlen);
    free(t);
    return mu;
}

int optim_muon_matrices(const optim_muon *mu)
{
    return mu ? mu->n_mat : 0;
}

bool optim_muon_model_has_hidden(const model_cfg *cfg)
{
    int n = model_tensor_count(cfg);
    model_tensor t;
    for (int i = 0; i < n; i++)
        if (model_tensor_at(cfg, i, &t) == 0 && t.kind == MODEL_TENSOR_HIDDEN)
            return true;
    return false;
}

size_t optim_muon_scratch_bytes(const model_cfg *cfg)
{
    int n = model_tensor_count(cfg);
    size_t mk = 0, mm = 0;
    model_tensor t;
    for (int i = 0; i < n; i++) {
        if (model_tensor_at(cfg, i, &t) != 0 || t.kind != MODEL_TENSOR_HIDDEN)
            continue;
        size_t a, b;
        scratch_floats(t.rows, t.cols, &a, &b);
        if (!grow(&mk, a) || !grow(&mm, b))
            return SIZE_MAX;
    }
    return size_sat_mul(size_sat_add(size_sat_mul(mk, 2), size_sat_mul(mm, 2)), sizeof(float));
}

/* ---- the update ---------------------------------------------------------- */

void optim_muon_step(const optim_cfg *cfg, optim_muon *mu, optim_state *st, float *params,
                     const float *grads, double lr)
{
    if (!mu)
        return;
    /* The AdamW group: torch's AdamW over a view of the same state, at its
     * own lr scaled as the schedule scales optimizer.lr (exactly adamw.lr
     * while lr_t == lr).  optim_step counts the view's step again. */
    optim_cfg aux = {.type = OPT_ADAMW, .lr = cfg->adamw.lr, .beta1 = cfg->adamw.beta1,
                     .beta2 = cfg->adamw.beta2, .eps = cfg->adamw.eps,
                     .weight_decay = cfg->adamw.weight_decay};
    double aux_lr = lr == cfg->lr ? cfg->adamw.lr : cfg->adamw.lr * (lr / cfg->lr);
    for (int i = 0; i < mu->n_aux; i++) {
        size_t o = mu->aux[i].offset;
        optim_state view = {.m = st->m + o, .v = st->v + o, .step = st->step - 1};
        optim_step(&aux, &view, params + o, grads + o, mu->aux[i].len, aux_lr);
    }
    for (int i = 0; i < mu->n_mat; i++) {
        const muon_matrix *mt = &mu->mat[i];
        matrix_update(cfg, mu, mt, st->m + mt->offset, params + mt->offset, grads + mt->offset, lr);
    }
}

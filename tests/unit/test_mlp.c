/*
 * The linear / MLP model against a double-precision reference written here:
 * the loss, every gradient (central differences of the reference loss, for
 * every parameter of every tensor, for linear and for mlp with each
 * activation, on the small-loop and the BLAS paths), GELU and tanh to a few
 * ulps over a wide range, the parameter layout and PyTorch's init bounds,
 * batches smaller than batch_size, and that plain SGD on synthetic data
 * learns.
 */
#include <check.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/compute.h"
#include "traind/data.h"
#include "traind/model.h"
#include "traind/rng.h"
#include "tl.h"

/* ---- the reference --------------------------------------------------------- */

static model_cfg make_cfg(model_type t, int in, const int *hidden, int nh, int out, activation_type act)
{
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.type = t;
    c.input_dim = in;
    c.output_dim = out;
    c.n_hidden = nh;
    for (int i = 0; i < nh; i++)
        c.hidden[i] = hidden[i];
    c.activation = act;
    return c;
}

/* Layer dims as the contract says: linear ignores hidden. */
static int dims_of(const model_cfg *c, int *d)
{
    int nh = c->type == MODEL_MLP ? c->n_hidden : 0;
    d[0] = c->input_dim;
    for (int i = 0; i < nh; i++)
        d[i + 1] = c->hidden[i];
    d[nh + 1] = c->output_dim;
    return nh + 1;
}

static double ref_act(activation_type a, double z)
{
    switch (a) {
    case ACT_GELU: return 0.5 * z * (1.0 + tanh(sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z)));
    case ACT_TANH: return tanh(z);
    default: return z > 0 ? z : 0.0;
    }
}

/* Mean squared error of the model with params p (double), in double. */
static double ref_loss(const model_cfg *c, const double *p, const float *x, const float *y, int B)
{
    int d[CFG_MAX_HIDDEN + 2];
    int L = dims_of(c, d);
    double h[256], z[256], sum = 0.0;
    for (int r = 0; r < B; r++) {
        for (int i = 0; i < d[0]; i++)
            h[i] = x[(size_t)r * d[0] + i];
        const double *q = p;
        for (int l = 0; l < L; l++) {
            const double *W = q, *b = q + (size_t)d[l + 1] * d[l];
            for (int o = 0; o < d[l + 1]; o++) {
                double s = b[o];
                for (int i = 0; i < d[l]; i++)
                    s += W[(size_t)o * d[l] + i] * h[i];
                z[o] = s;
            }
            for (int o = 0; o < d[l + 1]; o++)
                h[o] = l < L - 1 ? ref_act(c->activation, z[o]) : z[o];
            q = b + d[l + 1];
        }
        for (int o = 0; o < d[L]; o++) {
            double e = h[o] - y[(size_t)r * d[L] + o];
            sum += e * e;
        }
    }
    return sum / ((double)B * d[L]);
}

static model_t *create(const model_cfg *c, int batch_size)
{
    char err[256] = "";
    model_t *m = model_create(c, batch_size, err, sizeof err);
    ck_assert_msg(m != NULL, "model_create: %s", err);
    return m;
}

static void random_batch(rng_t *r, int B, int in, int out, float *x, float *y, batch_t *b)
{
    rng_fill_normal(r, x, (size_t)B * in, 0.0f, 1.0f);
    rng_fill_normal(r, y, (size_t)B * out, 0.0f, 1.0f);
    memset(b, 0, sizeof *b);
    b->B = B;
    b->n_in = in;
    b->n_out = out;
    b->x = x;
    b->y = y;
}

/* Gradient check: the model's loss against the reference, and each checked
 * parameter's gradient against central differences of the reference loss. */
static void grad_check(const model_cfg *c, int batch_size, int B, int stride, uint64_t seed)
{
    model_t *m = create(c, batch_size);
    rng_t r;
    rng_seed(&r, seed, RNG_STREAM_INIT);
    model_init(m, &r);
    /* Move the biases away from the init so they matter. */
    int d[CFG_MAX_HIDDEN + 2];
    int L = dims_of(c, d);
    size_t n = 0;
    for (int l = 0; l < L; l++)
        n += (size_t)d[l + 1] * d[l] + d[l + 1];
    ck_assert_uint_eq(m->n_params, n);

    float *x = malloc(sizeof(float) * B * d[0]), *y = malloc(sizeof(float) * B * d[L]);
    batch_t b;
    random_batch(&r, B, d[0], d[L], x, y, &b);

    float loss = model_train_step(m, &b);
    double *p = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++)
        p[i] = m->params[i];
    double ref = ref_loss(c, p, x, y, B);
    ck_assert_msg(fabs(loss - ref) <= 2e-6 * fabs(ref) + 1e-7, "loss %.9g vs reference %.9g", loss, ref);

    double max_err = 0.0;
    size_t checked = 0;
    for (size_t i = 0; i < n; i += stride) {
        double h = 1e-5 * fmax(1.0, fabs(p[i]));
        double keep = p[i];
        p[i] = keep + h;
        double lp = ref_loss(c, p, x, y, B);
        p[i] = keep - h;
        double lm = ref_loss(c, p, x, y, B);
        p[i] = keep;
        double fd = (lp - lm) / (2 * h);
        double g = m->grads[i];
        double err = fabs(g - fd) / (fabs(fd) + 1e-4);
        if (err > max_err)
            max_err = err;
        ck_assert_msg(fabs(g - fd) <= 2e-4 * fabs(fd) + 5e-7,
                      "param %zu: grad %.9g vs finite difference %.9g", i, g, fd);
        checked++;
    }
    ck_assert_uint_gt(checked, 0);
    free(p);
    free(x);
    free(y);
    model_free(m);
}

/* ---- gradients -------------------------------------------------------------- */

START_TEST(grad_linear)
{
    model_cfg c = make_cfg(MODEL_LINEAR, 6, NULL, 0, 4, ACT_RELU);
    grad_check(&c, 5, 5, 1, 1);
    /* hidden is ignored for linear */
    int h[1] = {9};
    c = make_cfg(MODEL_LINEAR, 3, h, 1, 2, ACT_GELU);
    grad_check(&c, 3, 3, 1, 2);
    /* mlp with no hidden layer is the same model */
    c = make_cfg(MODEL_MLP, 7, NULL, 0, 3, ACT_TANH);
    grad_check(&c, 4, 4, 1, 3);
}
END_TEST

static const activation_type ACTS[3] = {ACT_RELU, ACT_GELU, ACT_TANH};

START_TEST(grad_mlp_each_activation)
{
    activation_type a = ACTS[_i];
    int h2[2] = {7, 6};
    model_cfg c = make_cfg(MODEL_MLP, 5, h2, 2, 3, a);
    grad_check(&c, 9, 9, 1, 10 + _i);      /* batch not a multiple of the vector width */
    int h3[3] = {8, 16, 5};
    c = make_cfg(MODEL_MLP, 4, h3, 3, 2, a);
    grad_check(&c, 16, 16, 1, 20 + _i);
    int h1[1] = {1};
    c = make_cfg(MODEL_MLP, 1, h1, 1, 1, a);
    grad_check(&c, 3, 3, 1, 30 + _i);
}
END_TEST

START_TEST(grad_mlp_blas_path)
{
    /* Big enough that the products go through cblas_sgemm (>= 32768 MACs).
     * Every 7th of its 6,724 parameters is checked; under Valgrind, which
     * is here for the memory and not the numbers, every 61st (a minute less). */
    activation_type a = ACTS[_i];
    int h[2] = {64, 48};
    int stride = tl_under_valgrind() ? 61 : 7;
    model_cfg c = make_cfg(MODEL_MLP, 40, h, 2, 20, a);
    grad_check(&c, 24, 24, stride, 40 + _i);
    /* ... and with a short batch, which drops one product back to loops */
    grad_check(&c, 24, 11, stride, 50 + _i);
}
END_TEST

START_TEST(grads_overwritten_and_eval_matches)
{
    int h[1] = {12};
    model_cfg c = make_cfg(MODEL_MLP, 5, h, 1, 3, ACT_GELU);
    model_t *m = create(&c, 6);
    rng_t r;
    rng_seed(&r, 4, 1);
    model_init(m, &r);
    float x[30], y[18];
    batch_t b;
    random_batch(&r, 6, 5, 3, x, y, &b);
    float l1 = model_train_step(m, &b);
    float *g1 = malloc(sizeof(float) * m->n_params);
    memcpy(g1, m->grads, sizeof(float) * m->n_params);
    float l2 = model_train_step(m, &b);
    ck_assert(l1 == l2);
    ck_assert_mem_eq(g1, m->grads, sizeof(float) * m->n_params);   /* not accumulated */
    float le = model_eval_loss(m, &b);
    ck_assert(le == l1);
    ck_assert_mem_eq(g1, m->grads, sizeof(float) * m->n_params);   /* eval leaves grads */
    free(g1);
    model_free(m);
}
END_TEST

START_TEST(short_batch_equals_exact_batch)
{
    /* A model made for 32 rows given 5 computes what a model made for 5
     * computes, bit for bit, and both pass the gradient check. */
    int h[2] = {10, 9};
    model_cfg c = make_cfg(MODEL_MLP, 6, h, 2, 4, ACT_GELU);
    model_t *a = create(&c, 32), *b5 = create(&c, 5);
    rng_t r1, r2;
    rng_seed(&r1, 8, 1);
    rng_seed(&r2, 8, 1);
    model_init(a, &r1);
    model_init(b5, &r2);
    ck_assert_mem_eq(a->params, b5->params, sizeof(float) * a->n_params);
    float x[30], y[20];
    batch_t b;
    random_batch(&r1, 5, 6, 4, x, y, &b);
    float la = model_train_step(a, &b), lb = model_train_step(b5, &b);
    ck_assert(la == lb);
    ck_assert_mem_eq(a->grads, b5->grads, sizeof(float) * a->n_params);
    /* More rows than the model was made for, or the wrong shape: NaN, no crash. */
    float xb[60], yb[40];
    batch_t big;
    random_batch(&r1, 10, 6, 4, xb, yb, &big);
    ck_assert(isnan(model_train_step(b5, &big)));
    ck_assert(isnan(model_eval_loss(b5, &big)));
    b.n_in = 5;
    ck_assert(isnan(model_train_step(a, &b)));
    model_free(a);
    model_free(b5);
    grad_check(&c, 32, 5, 1, 77);
    grad_check(&c, 32, 1, 1, 78);
}
END_TEST

/* ---- activations to float precision ----------------------------------------- */

/* One hidden unit with weight 1 and bias 0, output weight 1 and bias 0: the
 * loss of a row (z, act_ref(z)) is (act(z) - act_ref(z))².  The allowed
 * error is `ulps` float spacings, plus, for gelu left of -1, what rounding
 * the argument u = √(2/π)(z + 0.044715 z³) to float costs in any float
 * evaluation (the result's relative error grows as 2|u| times u's): torch's
 * own float GELU is off by ~100 ulps at z = -3 and returns 0 below about -5. */
static void act_accuracy(activation_type a, double lo, double hi, int n, double ulps)
{
    int h[1] = {1};
    model_cfg c = make_cfg(MODEL_MLP, 1, h, 1, 1, a);
    model_t *m = create(&c, 1);
    m->params[0] = 1.0f;   /* W1 */
    m->params[1] = 0.0f;   /* b1 */
    m->params[2] = 1.0f;   /* W2 */
    m->params[3] = 0.0f;   /* b2 */
    double worst = 0.0, worst_z = 0.0;
    for (int i = 0; i <= n; i++) {
        float z = (float)(lo + (hi - lo) * i / n);
        double ref = ref_act(a, z);
        float y = (float)ref;
        batch_t b = {.B = 1, .n_in = 1, .n_out = 1, .x = &z, .y = &y};
        double err = sqrt(model_eval_loss(m, &b));
        double ulp = fmax(fabs(ref), 1e-30) * 0x1p-23;
        double allow = ulps;
        if (a == ACT_GELU && z < -1.0f)
            allow += 4.0 * fabs(sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z));
        double e = err / ulp / allow;
        if (fabs(ref) < 1e-6 && err < 1e-12)
            e = 0;   /* tiny values: absolute accuracy is what matters */
        if (e > worst)
            worst = e, worst_z = z;
    }
    ck_assert_msg(worst <= 1.0, "activation %d: %.2f of the allowed error at z = %.9g",
                  (int)a, worst, worst_z);
    model_free(m);
}

START_TEST(gelu_matches_tanh_formula)
{
    act_accuracy(ACT_GELU, -6.0, 10.0, 40000, 4.0);
    act_accuracy(ACT_GELU, -0.01, 0.01, 2000, 4.0);
    /* far left: torch's form is 0 (1 + tanh rounds to 0); ours is a tiny
     * negative number: both within 1e-12 of the true value */
    int h[1] = {1};
    model_cfg c = make_cfg(MODEL_MLP, 1, h, 1, 1, ACT_GELU);
    model_t *m = create(&c, 1);
    m->params[0] = 1.0f, m->params[1] = 0.0f, m->params[2] = 1.0f, m->params[3] = 0.0f;
    float zs[] = {-5.0f, -8.0f, -30.0f, -1e10f, 1e10f, 40.0f};
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) {
        float y = zs[i] > 0 ? zs[i] : 0.0f;
        batch_t b = {.B = 1, .n_in = 1, .n_out = 1, .x = &zs[i], .y = &y};
        float l = model_eval_loss(m, &b);
        ck_assert_msg(l <= 1e-12f * fmaxf(1.0f, y * y), "gelu(%g): loss %g", zs[i], l);
        /* and the gradient is finite */
        ck_assert(isfinite(model_train_step(m, &b)));
        for (size_t k = 0; k < m->n_params; k++)
            ck_assert(isfinite(m->grads[k]));
    }
    model_free(m);
}
END_TEST

START_TEST(tanh_and_relu_accuracy)
{
    act_accuracy(ACT_TANH, -12.0, 12.0, 20000, 4.0);
    act_accuracy(ACT_TANH, -0.5, 0.5, 20000, 4.0);
    act_accuracy(ACT_TANH, -1e-4, 1e-4, 2000, 4.0);
    act_accuracy(ACT_RELU, -5.0, 5.0, 2001, 0.0);
}
END_TEST

START_TEST(simd_builds_agree)
{
    /* The AVX2 and the baseline builds of the activation loops give the same
     * bits (TRAIND_SCALAR forces the baseline one). */
    for (int k = 0; k < 3; k++) {
        int h[2] = {37, 21};
        model_cfg c = make_cfg(MODEL_MLP, 13, h, 2, 5, ACTS[k]);
        model_t *a = create(&c, 19);
        setenv("TRAIND_SCALAR", "1", 1);
        model_t *b = create(&c, 19);
        unsetenv("TRAIND_SCALAR");
        rng_t r;
        rng_seed(&r, 6, 1);
        model_init(a, &r);
        memcpy(b->params, a->params, sizeof(float) * a->n_params);
        float x[19 * 13], y[19 * 5];
        batch_t bt;
        random_batch(&r, 19, 13, 5, x, y, &bt);
        for (int i = 0; i < 19 * 13; i += 7)
            x[i] *= 8.0f;   /* reach the tails of the activations */
        float la = model_train_step(a, &bt), lb = model_train_step(b, &bt);
        ck_assert(la == lb);
        ck_assert_mem_eq(a->grads, b->grads, sizeof(float) * a->n_params);
        model_free(a);
        model_free(b);
    }
}
END_TEST

START_TEST(threads_give_same_bits)
{
    /* The elementwise passes split rows over the compute threads and every
     * row is computed alone; the products go through compute_sgemm, whose
     * row blocks depend on the shape alone (OpenBLAS single-threaded inside
     * each).  So 1, 2 and 3 threads give the same bits on every CPU, whatever
     * kernels OpenBLAS picks there (the same test under Valgrind, where it
     * picks other ones, checks that too).  Odd sizes leave partial blocks. */
    int h[2] = {261, 133};
    model_cfg c = make_cfg(MODEL_MLP, 64, h, 2, 83, ACT_GELU);
    model_t *m = create(&c, 96);
    rng_t r;
    rng_seed(&r, 12, 1);
    model_init(m, &r);
    static float x[96 * 64], y[96 * 83];
    batch_t b;
    random_batch(&r, 96, 64, 83, x, y, &b);
    float *g1 = malloc(sizeof(float) * m->n_params);
    compute_set_threads(1);
    float l1 = model_train_step(m, &b);
    memcpy(g1, m->grads, sizeof(float) * m->n_params);
    for (int t = 2; t <= 3; t++) {
        compute_set_threads(t);
        float lt = model_train_step(m, &b);
        float et = model_eval_loss(m, &b);
        ck_assert(lt == l1);
        ck_assert(et == l1);
        ck_assert_mem_eq(g1, m->grads, sizeof(float) * m->n_params);
    }
    compute_set_threads(1);
    free(g1);
    model_free(m);
}
END_TEST

START_TEST(nan_propagates)
{
    for (int k = 0; k < 3; k++) {
        int h[1] = {4};
        model_cfg c = make_cfg(MODEL_MLP, 2, h, 1, 1, ACTS[k]);
        model_t *m = create(&c, 2);
        rng_t r;
        rng_seed(&r, 1, 1);
        model_init(m, &r);
        float x[4] = {NAN, 1.0f, 0.5f, -0.5f}, y[2] = {0.0f, 0.0f};
        batch_t b = {.B = 2, .n_in = 2, .n_out = 1, .x = x, .y = y};
        ck_assert_msg(isnan(model_train_step(m, &b)), "activation %d hides a NaN", k);
        model_free(m);
    }
}
END_TEST

/* ---- layout and init ---------------------------------------------------------- */

START_TEST(init_is_torch_default)
{
    int h[2] = {300, 40};
    model_cfg c = make_cfg(MODEL_MLP, 50, h, 2, 7, ACT_RELU);
    model_t *m = create(&c, 4);
    rng_t r;
    rng_seed(&r, 3, RNG_STREAM_INIT);
    model_init(m, &r);
    int d[4] = {50, 300, 40, 7};
    size_t off = 0;
    for (int l = 0; l < 3; l++) {
        double bound = 1.0 / sqrt(d[l]);
        size_t nw = (size_t)d[l + 1] * d[l], nb = d[l + 1];
        for (int part = 0; part < 2; part++) {
            size_t cnt = part ? nb : nw;
            double mx = 0, sum = 0, sum2 = 0;
            for (size_t i = 0; i < cnt; i++) {
                double v = m->params[off + i];
                ck_assert_msg(fabs(v) <= bound, "layer %d %s[%zu] = %g out of ±%g", l,
                              part ? "bias" : "weight", i, v, bound);
                mx = fmax(mx, fabs(v));
                sum += v;
                sum2 += v * v;
            }
            if (cnt >= 300) {
                /* U(-a, a): mean 0, variance a²/3, reaches near the bound */
                ck_assert(mx > 0.95 * bound);
                ck_assert(fabs(sum / cnt) < 0.1 * bound);
                ck_assert(fabs(sum2 / cnt / (bound * bound / 3) - 1.0) < 0.15);
            }
            off += cnt;
        }
    }
    ck_assert_uint_eq(off, m->n_params);
    for (size_t i = 0; i < m->n_params; i++)
        ck_assert(m->grads[i] == 0.0f);

    /* same rng state -> same params; another seed -> different */
    model_t *m2 = create(&c, 4);
    rng_seed(&r, 3, RNG_STREAM_INIT);
    model_init(m2, &r);
    ck_assert_mem_eq(m->params, m2->params, sizeof(float) * m->n_params);
    rng_seed(&r, 4, RNG_STREAM_INIT);
    model_init(m2, &r);
    ck_assert(memcmp(m->params, m2->params, sizeof(float) * m->n_params) != 0);
    model_free(m);
    model_free(m2);
}
END_TEST

START_TEST(layout_is_torch_linear)
{
    /* Weight (out, in) row-major, then bias: out[o] = Σ_i W[o][i] x[i] + b[o]. */
    model_cfg c = make_cfg(MODEL_LINEAR, 3, NULL, 0, 2, ACT_RELU);
    model_t *m = create(&c, 1);
    ck_assert_uint_eq(m->n_params, 8);
    float p[8] = {1, 2, 3, 4, 5, 6, 0.5f, -1};
    memcpy(m->params, p, sizeof p);
    float x[3] = {1, 10, 100};
    float y[2] = {321.5f, 653.0f};   /* 1+20+300+0.5, 4+50+600-1 */
    batch_t b = {.B = 1, .n_in = 3, .n_out = 2, .x = x, .y = y};
    ck_assert(model_eval_loss(m, &b) == 0.0f);
    model_free(m);
}
END_TEST

START_TEST(create_rejects_bad_dims)
{
    char err[128];
    model_cfg c = make_cfg(MODEL_MLP, 0, NULL, 0, 2, ACT_RELU);
    ck_assert_ptr_null(model_create(&c, 4, err, sizeof err));
    ck_assert(err[0] != '\0');
    int h[1] = {0};
    c = make_cfg(MODEL_MLP, 3, h, 1, 2, ACT_RELU);
    ck_assert_ptr_null(model_create(&c, 4, err, sizeof err));
    c = make_cfg(MODEL_MLP, 3, NULL, 0, 2, ACT_RELU);
    ck_assert_ptr_null(model_create(&c, 0, err, sizeof err));
}
END_TEST

/* ---- learning ------------------------------------------------------------------- */

static double sgd_run(model_type t, const int *h, int nh, activation_type act, int steps, float lr,
                      double *first)
{
    run_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.seed = 2;
    cfg.model = make_cfg(t, 8, h, nh, 3, act);
    cfg.data.kind = DATA_SYNTHETIC;
    cfg.data.batch_size = 16;
    cfg.data.noise = 0.01;
    char err[256];
    data_source_t *d = data_open(&cfg, NULL, err, sizeof err);
    ck_assert_msg(d != NULL, "%s", err);
    model_t *m = create(&cfg.model, 16);
    rng_t r;
    rng_seed(&r, cfg.seed, RNG_STREAM_INIT);
    model_init(m, &r);
    double head = 0, tail = 0;
    for (int s = 0; s < steps; s++) {
        batch_t b;
        data_next(d, &b);
        float loss = model_train_step(m, &b);
        ck_assert(isfinite(loss));
        if (s < 20)
            head += loss / 20;
        if (s >= steps - 20)
            tail += loss / 20;
        for (size_t i = 0; i < m->n_params; i++)
            m->params[i] -= lr * m->grads[i];
    }
    data_close(d);
    model_free(m);
    *first = head;
    return tail;
}

START_TEST(sgd_learns_synthetic)
{
    double first, last;
    last = sgd_run(MODEL_LINEAR, NULL, 0, ACT_RELU, 400, 0.1f, &first);
    ck_assert_msg(last < 0.01 * first, "linear: %g -> %g", first, last);
    int h[2] = {32, 32};
    for (int k = 0; k < 3; k++) {
        last = sgd_run(MODEL_MLP, h, 2, ACTS[k], 600, 0.05f, &first);
        ck_assert_msg(last < 0.2 * first, "mlp act %d: %g -> %g", k, first, last);
    }
}
END_TEST

START_TEST(no_allocation_in_step)
{
    compute_set_threads(1);
    int h[2] = {64, 64};
    model_cfg c = make_cfg(MODEL_MLP, 32, h, 2, 16, ACT_GELU);
    model_t *m = create(&c, 32);
    rng_t r;
    rng_seed(&r, 1, 1);
    model_init(m, &r);
    static float x[32 * 32], y[32 * 16];
    batch_t b;
    random_batch(&r, 32, 32, 16, x, y, &b);
    model_train_step(m, &b);   /* warm up BLAS's buffers */
    model_eval_loss(m, &b);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 5; i++) {
        model_train_step(m, &b);
        model_eval_loss(m, &b);
    }
    struct mallinfo2 after = mallinfo2();
    ck_assert_uint_eq(before.uordblks, after.uordblks);
    ck_assert_uint_eq(before.hblkhd, after.hblkhd);
    model_free(m);
}
END_TEST

int main(void)
{
    compute_set_threads(1);
    Suite *s = suite_create("mlp");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, grad_linear);
    tcase_add_loop_test(tc, grad_mlp_each_activation, 0, 3);
    tcase_add_loop_test(tc, grad_mlp_blas_path, 0, 3);
    tcase_add_test(tc, grads_overwritten_and_eval_matches);
    tcase_add_test(tc, short_batch_equals_exact_batch);
    tcase_add_test(tc, gelu_matches_tanh_formula);
    tcase_add_test(tc, tanh_and_relu_accuracy);
    tcase_add_test(tc, simd_builds_agree);
    tcase_add_test(tc, threads_give_same_bits);
    tcase_add_test(tc, nan_propagates);
    tcase_add_test(tc, init_is_torch_default);
    tcase_add_test(tc, layout_is_torch_linear);
    tcase_add_test(tc, create_rejects_bad_dims);
    tcase_add_test(tc, sgd_learns_synthetic);
    tcase_add_test(tc, no_allocation_in_step);
    suite_add_tcase(s, tc);
    int failed = tl_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

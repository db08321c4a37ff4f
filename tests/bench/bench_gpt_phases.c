/*
 * bench_gpt_phases — the time of each part of the gpt training step at
 * gpt-tiny's shapes (V=256, T=128, d=128, 4 layers, 4 heads, batch 8), by
 * including model_gpt.c to reach its static kernels.  Each part is timed in
 * isolation (its operands hot in cache), so the parts add up to a little
 * less than the full step.  Not part of `make test`.  Build by hand after
 * `make`:
 *
 *   cc -O2 -std=gnu11 -D_GNU_SOURCE -Iinclude $(pkg-config --cflags openblas) tests/bench/bench_gpt_phases.c \
 *      build/libtraind_core.a $(pkg-config --libs openblas) -lm -pthread -o build/bench_gpt_phases
 *   build/bench_gpt_phases [THREADS]
 */
#include "../../daemon/core/model_gpt.c"

#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define REPS 20
#define TIME(name, code)                                              \
    do {                                                              \
        double t0_ = now();                                           \
        for (int i_ = 0; i_ < REPS; i_++) {                           \
            code;                                                     \
        }                                                             \
        printf("%-16s %8.3f ms\n", name, (now() - t0_) / REPS * 1e3); \
    } while (0)

int main(int argc, char **argv)
{
    compute_set_threads(argc > 1 ? atoi(argv[1]) : 1);
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.type = MODEL_GPT;
    c.vocab_size = 256;
    c.context = 128;
    c.d_model = 128;
    c.layers = 4;
    c.heads = 4;
    const int B = 8, T = 128, BT = B * T, C = 128, C3 = 3 * C, C4 = 4 * C;
    char err[256];
    model_t *m = model_create(&c, B, err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rng_t r;
    rng_seed(&r, 1, RNG_STREAM_INIT);
    model_init(m, &r);
    gpt_t *g = (gpt_t *)m;
    int32_t *tok = malloc(sizeof(int32_t) * BT), *tgt = malloc(sizeof(int32_t) * BT);
    for (int i = 0; i < BT; i++) {
        tok[i] = (int32_t)rng_below(&r, 256);
        tgt[i] = (int32_t)rng_below(&r, 256);
    }
    batch_t b = {.B = B, .T = T, .tokens = tok, .targets = tgt};
    for (int i = 0; i < 3; i++)
        model_train_step(m, &b);

    step_ctx s;
    setup_step(g, &b, &s, 1);
    int nb = blas_enter();
    layer_acts *a = &g->la[1];
    layer_params *p = &g->lp[1], *gr = &g->lg[1];
    att_job aj = {&s, a};
    ln_job j1 = {a->res2, p->ln1w, p->ln1b, a->ln1, a->ln1_mean, a->ln1_rstd, C,
                 a->res3, p->projb, a->qkv, p->qkvb, C3};
    ln_job j2 = {a->res2, p->ln1w, p->ln1b, a->ln1, a->ln1_mean, a->ln1_rstd, C, NULL, NULL, NULL, NULL, 0};
    gelu_job gj = {a->fch, a->fchg, g->dfch, NULL, C4, g->partials, BT, s.nchunk};
    ce_job cj = {&s};

    TIME("full step", forward_body(&s); head_loss(&s); backward(&s));
    TIME("forward body", forward_body(&s));
    TIME("head + ce", head_loss(&s));
    TIME("backward", backward(&s));
    printf("-- one layer --\n");
    TIME("att fwd", compute_parallel_for(B * g->NH, att_fwd_range, &aj));
    TIME("att bwd", compute_parallel_for(B * g->NH, att_bwd_range, &aj));
    TIME("ln fwd + copies", compute_parallel_for(BT, ln_fwd_range, &j1));
    TIME("ln fwd", compute_parallel_for(BT, ln_fwd_range, &j2));
    TIME("ln bwd", ln_backward(&s, g->dln, a->res2, a->ln2_mean, a->ln2_rstd, p->ln2w, g->dres, 1,
                               gr->ln2w, gr->ln2b, gr->projb));
    TIME("gelu fwd", gelu_fwd(&s, a, p->fcb));
    TIME("gelu bwd", compute_parallel_for(s.nchunk, gelu_bwd_range, &gj));
    TIME("qkv", gemm(CblasNoTrans, CblasTrans, BT, C3, C, 1.0f, a->ln1, C, p->qkvw, C, 1.0f, a->qkv, C3));
    TIME("proj", gemm(CblasNoTrans, CblasTrans, BT, C, C, 1.0f, a->atty, C, p->projw, C, 1.0f, a->res2, C));
    TIME("fc", gemm(CblasNoTrans, CblasTrans, BT, C4, C, 1.0f, a->ln2, C, p->fcw, C, 0.0f, a->fch, C4));
    TIME("fc2", gemm(CblasNoTrans, CblasTrans, BT, C, C4, 1.0f, a->fchg, C4, p->fc2w, C4, 1.0f, a->res3, C));
    TIME("fc2 dX", gemm(CblasNoTrans, CblasNoTrans, BT, C4, C, 1.0f, g->dres, C, p->fc2w, C4, 0.0f, g->dfch, C4));
    TIME("fc2 dW", gemm(CblasTrans, CblasNoTrans, C, C4, BT, 1.0f, g->dres, C, a->fchg, C4, 0.0f, gr->fc2w, C4));
    TIME("fc dX", gemm(CblasNoTrans, CblasNoTrans, BT, C, C4, 1.0f, g->dfch, C4, p->fcw, C, 0.0f, g->dln, C));
    TIME("fc dW", gemm(CblasTrans, CblasNoTrans, C4, C, BT, 1.0f, g->dfch, C4, a->ln2, C, 0.0f, gr->fcw, C));
    TIME("qkv dX", gemm(CblasNoTrans, CblasNoTrans, BT, C, C3, 1.0f, g->dqkv, C3, p->qkvw, C, 0.0f, g->dln, C));
    TIME("qkv dW", gemm(CblasTrans, CblasNoTrans, C3, C, BT, 1.0f, g->dqkv, C3, a->ln1, C, 0.0f, gr->qkvw, C));
    TIME("proj dX", gemm(CblasNoTrans, CblasNoTrans, BT, C, C, 1.0f, g->dres, C, p->projw, C, 0.0f, g->datty, C));
    TIME("proj dW", gemm(CblasTrans, CblasNoTrans, C, C, BT, 1.0f, g->dres, C, a->atty, C, 0.0f, gr->projw, C));
    printf("-- head --\n");
    TIME("head fwd", gemm(CblasNoTrans, CblasTrans, BT, g->V, C, 1.0f, g->lnf, C, g->wte, C, 0.0f, g->logits, g->V));
    TIME("cross-entropy", compute_parallel_for(BT, ce_range, &cj));
    TIME("head dX", gemm(CblasNoTrans, CblasNoTrans, BT, C, g->V, 1.0f, g->logits, g->V, g->wte, C, 0.0f, g->dln, C));
    TIME("head dW", gemm(CblasTrans, CblasNoTrans, g->V, C, BT, 1.0f, g->logits, g->V, g->lnf, C, 0.0f, g->gwte, C));
    blas_leave(nb);
    model_free(m);
    free(tok);
    free(tgt);
    return 0;
}

/*
 * bench_gpt — tokens/s of the gpt model's training step, the way the worker
 * runs it: data_next, train_step, grad-norm clip, AdamW (optim_step).
 * Not part of `make test`.  Build by hand after `make`:
 *
 *   cc -O2 -std=gnu11 -Iinclude $(pkg-config --cflags openblas) tests/bench/bench_gpt.c \
 *      build/libtraind_core.a $(pkg-config --libs yaml-0.1 libcjson openblas) -lm -pthread -o build/bench_gpt
 *   build/bench_gpt CONFIG.yaml [--threads N] [--steps N] [--warmup N] [--data PATH] [--log]
 *
 * Prints one JSON line: tokens/s, steps/s, GFLOP/s (6·N_matmul + attention
 * FLOPs per token, as counted below), mean loss of the last 100 steps.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "traind/compute.h"
#include "traind/config.h"
#include "traind/data.h"
#include "traind/model.h"
#include "traind/optim.h"
#include "traind/schedule.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* FLOPs of one training step per token: forward 2·(matmul params) plus the
 * attention products at full T×T (what torch computes), backward twice that. */
static double flops_per_token(const model_cfg *m)
{
    double C = m->d_model, L = m->layers, V = m->vocab_size, T = m->context;
    double matmul = L * 12 * C * C + V * C;
    double attn = L * 2 * T * C;          /* q·k and p·v, per token: 2·T·C MACs */
    return 6 * matmul + 6 * attn;
}

int main(int argc, char **argv)
{
    const char *cfg_path = NULL, *data_path = NULL;
    int threads = 1, steps = 0, warmup = 5, log = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data_path = argv[++i];
        else if (!strcmp(argv[i], "--log"))
            log = 1;
        else
            cfg_path = argv[i];
    }
    if (!cfg_path) {
        fprintf(stderr, "usage: bench_gpt CONFIG.yaml [--threads N] [--steps N] [--warmup N] [--data PATH] [--log]\n");
        return 2;
    }
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    if (cfg_load_file(cfg_path, NULL, &cfg, &errs) != 0) {
        diag_print(stderr, cfg_path, &errs);
        return 1;
    }
    diag_free(&errs);
    if (!data_path)
        data_path = cfg.data.path;
    if (steps <= 0)
        steps = (int)cfg.sched.total_steps;
    compute_set_threads(threads);
    char err[512] = "";
    data_source_t *d = data_open(&cfg, data_path, err, sizeof err);
    if (!d) {
        fprintf(stderr, "data: %s\n", err);
        return 1;
    }
    model_t *m = model_create(&cfg.model, cfg.data.batch_size, err, sizeof err);
    if (!m) {
        fprintf(stderr, "model: %s\n", err);
        return 1;
    }
    rng_t r;
    rng_seed(&r, cfg.seed, RNG_STREAM_INIT);
    model_init(m, &r);
    optim_state st = {calloc(m->n_params, sizeof(float)), calloc(m->n_params, sizeof(float)), 0, NULL};
    double t_step = 0, t_opt = 0, t0 = 0, tail = 0;
    int n_tail = 0;
    long tokens = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            t0 = now();
            tokens = 0;
            t_step = t_opt = 0;
        }
        batch_t b;
        data_next(d, &b);
        double a = now();
        float loss = model_train_step(m, &b);
        double c = now();
        double norm = grad_global_norm(m->grads, m->n_params);
        grad_clip(m->grads, m->n_params, norm, cfg.optim.grad_clip);
        long step = s - warmup < 0 ? 0 : s - warmup;
        optim_step(&cfg.optim, &st, m->params, m->grads, m->n_params, sched_lr(&cfg.sched, cfg.optim.lr, step));
        double e = now();
        t_step += c - a;
        t_opt += e - c;
        tokens += (long)b.B * b.T;
        if (s >= warmup && s - warmup >= steps - 100) {
            tail += loss;
            n_tail++;
        }
        if (log && s >= warmup && ((s - warmup) % 10 == 0 || s == warmup + steps - 1))
            fprintf(stderr, "{\"step\": %d, \"loss\": %.4f}\n", s - warmup + 1, loss);
    }
    double dt = now() - t0;
    double fpt = flops_per_token(&cfg.model);
    printf("{\"threads\": %d, \"steps\": %d, \"seconds\": %.3f, \"tokens_per_s\": %.1f, \"steps_per_s\": %.2f, "
           "\"gflops\": %.1f, \"step_ms\": %.2f, \"optim_ms\": %.2f, \"last100_mean_loss\": %.4f}\n",
           threads, steps, dt, tokens / dt, steps / dt, tokens * fpt / dt / 1e9, 1e3 * t_step / steps,
           1e3 * t_opt / steps, n_tail ? tail / n_tail : NAN);
    free(st.m);
    free(st.v);
    model_free(m);
    data_close(d);
    cfg_free(&cfg);
    return 0;
}

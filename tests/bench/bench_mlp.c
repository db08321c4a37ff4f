/*
 * bench_mlp — time the MLP model's train_step and the synthetic data source
 * (not part of `make test`).
 *
 *   make build/libtraind_core.a
 *   cc -O2 -Iinclude tests/bench/bench_mlp.c build/libtraind_core.a \
 *      $(pkg-config --libs openblas) -lm -pthread -o build/bench_mlp
 *   build/bench_mlp [threads]
 *
 * Compare with the same model in PyTorch (forward + backward, 1 thread):
 *   mlp-medium: 512 -> 1024 -> 1024 -> 512, gelu, batch 128
 *   seed-linear: 10 -> 10, batch 4
 * e.g. (best of 5 runs of 20 steps):
 *   m = nn.Sequential(nn.Linear(512,1024), nn.GELU(approximate="tanh"), ...)
 *   m.zero_grad(set_to_none=True); F.mse_loss(m(x), y).backward()
 * Debian's torch (BLAS_INFO=generic) does not pass torch.set_num_threads(1)
 * on to OpenBLAS, whose matrix products then use every core: run it with
 * OPENBLAS_NUM_THREADS=1 for a one-core figure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "traind/compute.h"
#include "traind/data.h"
#include "traind/model.h"
#include "traind/rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static run_config make_cfg(model_type t, int in, const int *hidden, int nh, int out,
                           activation_type act, int B)
{
    run_config c;
    memset(&c, 0, sizeof c);
    c.seed = 1;
    c.model.type = t;
    c.model.input_dim = in;
    c.model.output_dim = out;
    c.model.n_hidden = nh;
    for (int i = 0; i < nh; i++)
        c.model.hidden[i] = hidden[i];
    c.model.activation = act;
    c.data.kind = DATA_SYNTHETIC;
    c.data.batch_size = B;
    c.data.noise = 0.01;
    return c;
}

/* Best of `reps` runs of `steps` train steps, in seconds per step; also the data time. */
static void bench(const char *name, run_config *c, int steps, int reps, double scale, const char *unit)
{
    char err[256];
    model_t *m = model_create(&c->model, c->data.batch_size, err, sizeof err);
    data_source_t *d = data_open(c, NULL, err, sizeof err);
    if (!m || !d) {
        fprintf(stderr, "%s: %s\n", name, err);
        exit(1);
    }
    rng_t r;
    rng_seed(&r, c->seed, RNG_STREAM_INIT);
    model_init(m, &r);
    batch_t b;
    data_next(d, &b);
    float loss = 0;
    for (int i = 0; i < 3; i++)
        loss += model_train_step(m, &b);
    double best = 1e30, best_data = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now();
        for (int i = 0; i < steps; i++)
            loss += model_train_step(m, &b);
        double t = (now() - t0) / steps;
        if (t < best)
            best = t;
        t0 = now();
        for (int i = 0; i < steps; i++)
            data_next(d, &b);
        t = (now() - t0) / steps;
        if (t < best_data)
            best_data = t;
    }
    printf("%-12s model step %8.3f %s   data_next %8.3f %s   (loss %g)\n", name, best * scale, unit,
           best_data * scale, unit, loss);
    data_close(d);
    model_free(m);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    compute_set_threads(threads);
    int h2[2] = {1024, 1024};
    run_config medium = make_cfg(MODEL_MLP, 512, h2, 2, 512, ACT_GELU, 128);
    bench("mlp-medium", &medium, 20, 5, 1e3, "ms");
    medium.model.activation = ACT_RELU;
    bench("  (relu)", &medium, 20, 3, 1e3, "ms");
    medium.model.activation = ACT_TANH;
    bench("  (tanh)", &medium, 20, 3, 1e3, "ms");
    run_config lin = make_cfg(MODEL_LINEAR, 10, NULL, 0, 10, ACT_RELU, 4);
    bench("seed-linear", &lin, 5000, 5, 1e6, "us");

    /* Raw normal generation. */
    static float buf[1 << 17];
    rng_t r;
    rng_seed(&r, 1, 2);
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        for (int i = 0; i < 10; i++)
            rng_fill_normal(&r, buf, 1 << 17, 0.0f, 1.0f);
        double t = (now() - t0) / (10.0 * (1 << 17));
        if (t < best)
            best = t;
    }
    printf("rng_fill_normal %.2f ns/value\n", best * 1e9);
    return 0;
}

/*
 * fuzz_csv — the CSV reader (data_open with data.kind csv, daemon/core/data_csv.c).
 *
 * Input: a 4-byte prefix that picks the config, then the file's bytes, which
 * go to a scratch file on tmpfs (data_open reads a path).  Each prefix byte
 * counts as its digit value when it is an ASCII digit ('0' = 0), else as
 * its byte value:
 *   [0] input_dim  = 1 + v % 8       [2] batch_size    = 1 + v % 8
 *   [1] output_dim = 1 + v % 4       [3] eval_fraction = {0, .1, .25, .5, .9, .999, .3, 0}[v % 8],
 *                                        seed = v / 8
 * so "2100" then "a,b,c,y\n1,2,3,4\n..." is a file of 3 inputs, 1 target.
 *
 * Oracle: a refusal says why; an opened source gives batches of the
 * configured shape with finite numbers, whole eval batches, and a state that
 * replays: save, next, load, next gives the same batch twice; a state of the
 * wrong size or with a bad tag is refused.
 */
#include <math.h>
#include <string.h>

#include "fuzz.h"
#include "traind/data.h"
#include "traind/util.h"

static int val(uint8_t b)
{
    return b >= '0' && b <= '9' ? b - '0' : b;
}

static void check_batch(const batch_t *b, int B, int in, int out)
{
    FUZZ_CHECK(b->B == B && b->n_in == in && b->n_out == out && b->x && b->y);
    for (int i = 0; i < B * in; i++)
        FUZZ_CHECK(isfinite(b->x[i]));
    for (int i = 0; i < B * out; i++)
        FUZZ_CHECK(isfinite(b->y[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    static const double fractions[] = {0, 0.1, 0.25, 0.5, 0.9, 0.999, 0.3, 0};
    run_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.model.type = MODEL_LINEAR;
    cfg.model.input_dim = 1 + val(data[0]) % 8;
    cfg.model.output_dim = 1 + val(data[1]) % 4;
    cfg.data.kind = DATA_CSV;
    cfg.data.batch_size = 1 + val(data[2]) % 8;
    cfg.data.eval_fraction = fractions[val(data[3]) % 8];
    cfg.seed = (uint64_t)(val(data[3]) / 8);
    int B = cfg.data.batch_size, in = cfg.model.input_dim, out = cfg.model.output_dim;

    const char *path = fuzz_scratch_file("csv", data + 4, size - 4);
    char err[512];
    data_source_t *d = data_open(&cfg, path, err, sizeof err);
    if (fuzz_verbose())
        fprintf(stderr, "  %s\n", d ? "opened" : err);
    if (!d) {
        FUZZ_CHECK(err[0] && memchr(err, '\0', sizeof err));
        return 0;
    }
    batch_t b;
    for (int i = 0; i < 3; i++) {
        data_next(d, &b);
        check_batch(&b, B, in, out);
    }
    int ne = data_eval_batches(d);
    FUZZ_CHECK(ne >= 0 && (ne > 0) == (cfg.data.eval_fraction > 0));
    for (int i = 0; i < ne; i++) {
        data_eval_batch(d, i, &b);
        check_batch(&b, B, in, out);
    }
    data_eval_batch(d, ne, &b);
    FUZZ_CHECK(b.B == 0);

    size_t ss = data_state_size(d);
    FUZZ_CHECK(ss > 0 && ss < 4096);
    unsigned char *state = xcalloc(1, ss + 1);
    data_save_state(d, state);
    data_next(d, &b);
    size_t nx = (size_t)B * in, ny = (size_t)B * out;
    float *x = xmalloc(sizeof(float) * nx), *y = xmalloc(sizeof(float) * ny);
    memcpy(x, b.x, sizeof(float) * nx);
    memcpy(y, b.y, sizeof(float) * ny);
    FUZZ_CHECK(data_load_state(d, state, ss) == 0);
    data_next(d, &b);
    FUZZ_CHECK(memcmp(x, b.x, sizeof(float) * nx) == 0 && memcmp(y, b.y, sizeof(float) * ny) == 0);
    FUZZ_CHECK(data_load_state(d, state, ss + 1) == -1);
    FUZZ_CHECK(data_load_state(d, state, ss - 1) == -1);
    state[0] ^= 0x55;
    FUZZ_CHECK(data_load_state(d, state, ss) == -1);
    free(x);
    free(y);
    free(state);
    data_close(d);
    return 0;
}

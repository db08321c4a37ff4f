/*
 * fuzz_tokens — the token-stream readers (data_open with data.kind tokens,
 * llm.c's .bin format, and text; daemon/core/data_text.c).
 *
 * Input: a 4-byte prefix that picks the config, then the file's bytes, which
 * go to a scratch file on tmpfs (data_open reads a path).  Each prefix byte
 * counts as its digit value when it is an ASCII digit ('0' = 0), else as
 * its byte value:
 *   [0] kind and vocab_size: v % 8 → tokens 256, tokens 50257, tokens 100,
 *       tokens 65536, tokens 1, text 256, text 300, text 64
 *   [1] context    = 1 + v % 16
 *   [2] batch_size = 1 + v % 4
 *   [3] eval_fraction = {0, .1, .25, .5, .9, .999, .3, 0}[v % 8], seed = v / 8
 * The token file itself: 256 little-endian int32 (magic 20240520, version 1,
 * token count N, then zeros), then N little-endian uint16 tokens.
 *
 * Oracle: a refusal says why; an opened source gives batches of the
 * configured shape whose tokens are all below vocab_size and whose targets
 * are the tokens shifted by one, at most 8 eval batches, and a state that
 * replays (save, next, load, next gives the same batch twice) and refuses a
 * blob of the wrong size or tag.
 */
#include <string.h>

#include "fuzz.h"
#include "traind/data.h"
#include "traind/util.h"

static int val(uint8_t b)
{
    return b >= '0' && b <= '9' ? b - '0' : b;
}

static void check_batch(const batch_t *b, int rows_max, int T, int V)
{
    FUZZ_CHECK(b->B >= 1 && b->B <= rows_max && b->T == T && b->tokens && b->targets);
    for (int r = 0; r < b->B; r++) {
        const int32_t *x = b->tokens + (size_t)r * T, *y = b->targets + (size_t)r * T;
        for (int t = 0; t < T; t++) {
            FUZZ_CHECK(x[t] >= 0 && x[t] < V && y[t] >= 0 && y[t] < V);
            if (t + 1 < T)
                FUZZ_CHECK(y[t] == x[t + 1]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    static const struct {
        data_kind kind;
        int vocab;
    } kinds[] = {{DATA_TOKENS, 256}, {DATA_TOKENS, 50257}, {DATA_TOKENS, 100}, {DATA_TOKENS, 65536},
                 {DATA_TOKENS, 1},   {DATA_TEXT, 256},     {DATA_TEXT, 300},   {DATA_TEXT, 64}};
    static const double fractions[] = {0, 0.1, 0.25, 0.5, 0.9, 0.999, 0.3, 0};
    run_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int k = val(data[0]) % 8;
    cfg.model.type = MODEL_GPT;
    cfg.model.vocab_size = kinds[k].vocab;
    cfg.model.context = 1 + val(data[1]) % 16;
    cfg.data.kind = kinds[k].kind;
    cfg.data.batch_size = 1 + val(data[2]) % 4;
    cfg.data.eval_fraction = fractions[val(data[3]) % 8];
    cfg.seed = (uint64_t)(val(data[3]) / 8);
    int B = cfg.data.batch_size, T = cfg.model.context, V = cfg.model.vocab_size;

    const char *path = fuzz_scratch_file("tokens", data + 4, size - 4);
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
        check_batch(&b, B, T, V);
        FUZZ_CHECK(b.B == B);
    }
    int ne = data_eval_batches(d);
    FUZZ_CHECK(ne >= 0 && ne <= 8 && (ne > 0) == (cfg.data.eval_fraction > 0));
    for (int i = 0; i < ne; i++) {
        data_eval_batch(d, i, &b);
        check_batch(&b, B, T, V);
    }

    size_t ss = data_state_size(d);
    FUZZ_CHECK(ss > 0 && ss < 4096);
    unsigned char *state = xcalloc(1, ss + 1);
    data_save_state(d, state);
    data_next(d, &b);
    size_t n = (size_t)B * T;
    int32_t *x = xmalloc(sizeof(int32_t) * n), *y = xmalloc(sizeof(int32_t) * n);
    memcpy(x, b.tokens, sizeof(int32_t) * n);
    memcpy(y, b.targets, sizeof(int32_t) * n);
    FUZZ_CHECK(data_load_state(d, state, ss) == 0);
    data_next(d, &b);
    FUZZ_CHECK(memcmp(x, b.tokens, sizeof(int32_t) * n) == 0 && memcmp(y, b.targets, sizeof(int32_t) * n) == 0);
    FUZZ_CHECK(data_load_state(d, state, ss + 1) == -1);
    state[0] ^= 0x55;
    FUZZ_CHECK(data_load_state(d, state, ss) == -1);
    free(x);
    free(y);
    free(state);
    data_close(d);
    return 0;
}

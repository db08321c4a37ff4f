/*
 * data_text — token streams for the gpt model: `text` (every byte of the file
 * is a token) and `tokens` (llm.c's .bin format).  See traind/data_impl.h.
 *
 *   text    the file's bytes; with no path, 64 KiB of random tokens in
 *           [0, vocab_size) from the data stream (torch_ref.py does the same
 *           with its generator), drawn before the first batch.
 *   tokens  a 256 x int32 little-endian header — [0] magic 20240520,
 *           [1] version 1, [2] token count N — then N uint16 tokens.
 *
 * Batches as torch_ref.py makes them: B start offsets i uniform in
 * [0, N_train - T - 1) from the data rng, x = tok[i, i+T), y = tok[i+1, i+T+1).
 * With eval_fraction > 0 the END of the stream (floor(N·eval_fraction)
 * tokens) is held out: training draws from the head only, and the eval set
 * is the first (at most 8) full batches of consecutive, non-overlapping
 * windows of the tail (one smaller batch if the tail holds fewer than B).
 *
 * Tokens are kept as the file stores them (1 or 2 bytes) — a 2 GiB file costs
 * 2 GiB — and widened to int32 only for the batch.  The state is the data rng
 * plus what identifies the stream (kind, length, a sampled hash).
 */
#include "data_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/rng.h"
#include "traind/util.h"

#define TEXT_MAX_BYTES ((size_t)2 << 30)     /* 2 GiB */
#define RANDOM_TEXT_TOKENS (1u << 16)
#define TOK_MAGIC 20240520
#define TOK_VERSION 1
#define TOK_HEADER_BYTES (256 * 4)
#define EVAL_MAX_BATCHES 8
#define TEXT_TAG 0x31545854u                 /* "TXT1" */

typedef struct text_src {
    data_source_t base;
    char *buf;                  /* the file (or the random stream) */
    const uint8_t *tok8;        /* text: one byte per token */
    const uint8_t *tok16;       /* tokens: little-endian uint16 per token */
    size_t n;                   /* tokens in the stream */
    size_t n_train;             /* the head that training draws from */
    int B, T;
    uint64_t ident;             /* hash identifying the stream */
    rng_t rng;
    int32_t *x, *y;             /* (B, T) */
    int n_eval;                 /* eval batches */
    int eval_rows_last;         /* sequences in the last eval batch */
    int32_t *ex, *ey;           /* n_eval x (B, T) */
} text_src;

typedef struct text_state {
    uint32_t tag, kind;
    uint64_t n, ident;
    uint64_t s[4];
    double spare;
    int32_t has_spare, pad;
} text_state;

static inline int32_t tok_at(const text_src *d, size_t i)
{
    if (d->tok8)
        return d->tok8[i];
    const uint8_t *p = d->tok16 + 2 * i;
    return (int32_t)(p[0] | (uint32_t)p[1] << 8);
}

static void window(const text_src *d, size_t i, int32_t *x, int32_t *y)
{
    int T = d->T;
    if (d->tok8) {
        const uint8_t *p = d->tok8 + i;
        for (int t = 0; t < T; t++) {
            x[t] = p[t];
            y[t] = p[t + 1];
        }
        return;
    }
    for (int t = 0; t < T; t++) {
        x[t] = tok_at(d, i + t);
        y[t] = tok_at(d, i + t + 1);
    }
}

static void fill(batch_t *out, int B, int T, const int32_t *x, const int32_t *y)
{
    memset(out, 0, sizeof *out);
    out->B = B;
    out->T = T;
    out->tokens = x;
    out->targets = y;
}

static void text_next(data_source_t *base, batch_t *out)
{
    text_src *d = (text_src *)base;
    uint64_t range = d->n_train - (size_t)d->T - 1;
    for (int b = 0; b < d->B; b++) {
        size_t i = (size_t)rng_below(&d->rng, range);
        window(d, i, d->x + (size_t)b * d->T, d->y + (size_t)b * d->T);
    }
    fill(out, d->B, d->T, d->x, d->y);
}

static int text_eval_batches(const data_source_t *base)
{
    return ((const text_src *)base)->n_eval;
}

static void text_eval_batch(data_source_t *base, int i, batch_t *out)
{
    text_src *d = (text_src *)base;
    if (i < 0 || i >= d->n_eval) {
        memset(out, 0, sizeof *out);
        return;
    }
    size_t off = (size_t)i * d->B * d->T;
    fill(out, i == d->n_eval - 1 ? d->eval_rows_last : d->B, d->T, d->ex + off, d->ey + off);
}

static size_t text_state_size(const data_source_t *base)
{
    return sizeof(text_state);
}

static void text_save_state(const data_source_t *base, void *buf)
{
    const text_src *d = (const text_src *)base;
    text_state st;
    memset(&st, 0, sizeof st);
    st.tag = TEXT_TAG;
    st.kind = (uint32_t)d->base.kind;
    st.n = d->n;
    st.ident = d->ident;
    memcpy(st.s, d->rng.s, sizeof st.s);
    st.spare = d->rng.spare;
    st.has_spare = d->rng.has_spare;
    memcpy(buf, &st, sizeof st);
}

static int text_load_state(data_source_t *base, const void *buf, size_t len)
{
    text_src *d = (text_src *)base;
    text_state st;
    if (!buf || len != sizeof st)
        return -1;
    memcpy(&st, buf, sizeof st);
    if (st.tag != TEXT_TAG || st.kind != (uint32_t)d->base.kind || st.n != d->n ||
        st.ident != d->ident || (st.s[0] | st.s[1] | st.s[2] | st.s[3]) == 0 ||
        (st.has_spare != 0 && st.has_spare != 1))
        return -1;
    memcpy(d->rng.s, st.s, sizeof st.s);
    d->rng.spare = st.spare;
    d->rng.has_spare = st.has_spare;
    return 0;
}

static void text_close(data_source_t *base)
{
    text_src *d = (text_src *)base;
    if (!d)
        return;
    free(d->buf);
    free(d->x);
    free(d->y);
    free(d->ex);
    free(d->ey);
    free(d);
}

static const data_ops text_ops = {
    .next = text_next,
    .eval_batches = text_eval_batches,
    .eval_batch = text_eval_batch,
    .state_size = text_state_size,
    .save_state = text_save_state,
    .load_state = text_load_state,
    .close = text_close,
};

/* FNV-1a of the length, the first and the last 64 KiB: tells one stream from
 * another without reading 2 GiB at open. */
static uint64_t stream_ident(const void *data, size_t bytes)
{
    const size_t span = 64 << 10;
    uint64_t n = bytes;
    uint64_t h = fnv64_update(FNV64_INIT, &n, sizeof n);
    if (bytes <= 2 * span)
        return fnv64_update(h, data, bytes);
    h = fnv64_update(h, data, span);
    return fnv64_update(h, (const char *)data + bytes - span, span);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Parses an llm.c token file already in d->buf (len bytes). */
static int parse_tokens(text_src *d, const char *path, size_t len, int vocab, char *err, size_t errlen)
{
    const unsigned char *p = (const unsigned char *)d->buf;
    if (len < TOK_HEADER_BYTES) {
        snprintf(err, errlen, "%s: truncated token file: %zu bytes, shorter than the %d-byte header",
                 path, len, TOK_HEADER_BYTES);
        return -1;
    }
    uint32_t magic = le32(p), version = le32(p + 4), count = le32(p + 8);
    if (magic != TOK_MAGIC) {
        snprintf(err, errlen, "%s: not an llm.c token file (magic %u, expected %d)", path, magic, TOK_MAGIC);
        return -1;
    }
    if (version != TOK_VERSION) {
        snprintf(err, errlen, "%s: unsupported token file version %u (expected %d)", path, version, TOK_VERSION);
        return -1;
    }
    size_t have = (len - TOK_HEADER_BYTES) / 2;
    if (have < count) {
        snprintf(err, errlen, "%s: truncated token file: header says %u tokens, file holds %zu", path, count, have);
        return -1;
    }
    if (len != TOK_HEADER_BYTES + 2 * (size_t)count) {
        snprintf(err, errlen, "%s: %zu trailing bytes after the %u tokens the header announces", path,
                 len - TOK_HEADER_BYTES - 2 * (size_t)count, count);
        return -1;
    }
    d->tok16 = p + TOK_HEADER_BYTES;
    d->n = count;
    for (size_t i = 0; i < d->n; i++) {
        int32_t t = tok_at(d, i);
        if (t >= vocab) {
            snprintf(err, errlen, "%s: token %d at byte offset %zu (token %zu) is not below vocab_size %d",
                     path, t, TOK_HEADER_BYTES + 2 * i, i, vocab);
            return -1;
        }
    }
    return 0;
}

data_source_t *data_text_open(const run_config *cfg, const char *path, char *err, size_t errlen)
{
    const model_cfg *m = &cfg->model;
    data_kind kind = cfg->data.kind;
    const char *kname = kind == DATA_TOKENS ? "tokens" : "text";
    int V = m->vocab_size, T = m->context, B = cfg->data.batch_size;
    if (m->type != MODEL_GPT) {
        snprintf(err, errlen, "%s data is a token stream: it needs a gpt model", kname);
        return NULL;
    }
    if (V < 1 || T < 1 || B < 1) {
        snprintf(err, errlen, "%s data needs vocab_size, context and batch_size >= 1", kname);
        return NULL;
    }
    if (kind == DATA_TOKENS && !path) {
        snprintf(err, errlen, "tokens data needs a path");
        return NULL;
    }
    double ef = cfg->data.eval_fraction;
    if (!(ef >= 0.0 && ef < 1.0)) {
        snprintf(err, errlen, "data.eval_fraction must be in [0, 1)");
        return NULL;
    }
    const char *name = path ? path : "random text";
    text_src *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->base.ops = &text_ops;
    d->base.kind = kind;
    d->base.batch_size = B;
    d->B = B;
    d->T = T;
    rng_seed(&d->rng, cfg->seed, RNG_STREAM_DATA);

    size_t len = 0;
    if (path) {
        int rc = read_file(path, TEXT_MAX_BYTES, &d->buf, &len);
        if (rc == -EFBIG) {
            snprintf(err, errlen, "%s: file is larger than %zu MiB", path, TEXT_MAX_BYTES >> 20);
            goto fail;
        }
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(-rc));
            goto fail;
        }
        if (kind == DATA_TOKENS) {
            if (parse_tokens(d, path, len, V, err, errlen) < 0)
                goto fail;
        } else {
            d->tok8 = (const uint8_t *)d->buf;
            d->n = len;
            if (V < 256)
                for (size_t i = 0; i < len; i++)
                    if (d->tok8[i] >= V) {
                        snprintf(err, errlen, "%s: byte %d at offset %zu is not below vocab_size %d "
                                 "(text data needs vocab_size >= 256)", path, d->tok8[i], i, V);
                        goto fail;
                    }
        }
    } else {
        /* torch_ref.py: torch.randint(0, V, (1 << 16,)) from the data generator */
        d->buf = malloc(RANDOM_TEXT_TOKENS);
        if (!d->buf) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        len = RANDOM_TEXT_TOKENS;
        int Vb = V < 256 ? V : 256;
        for (size_t i = 0; i < len; i++)
            d->buf[i] = (char)(uint8_t)rng_below(&d->rng, (uint64_t)Vb);
        d->tok8 = (const uint8_t *)d->buf;
        d->n = len;
    }
    d->ident = stream_ident(d->buf, len);

    size_t n_eval = ef > 0.0 ? (size_t)floor(ef * (double)d->n) : 0;
    d->n_train = d->n - n_eval;
    if (d->n_train < (size_t)T + 2) {
        if (n_eval)
            snprintf(err, errlen, "%s: %zu tokens, %zu after eval_fraction %g holds out the end: "
                     "training needs at least context + 2 = %d", name, d->n, d->n_train, ef, T + 2);
        else
            snprintf(err, errlen, "%s: %zu tokens is too short: needs at least context + 2 = %d",
                     name, d->n, T + 2);
        goto fail;
    }
    if (ef > 0.0) {
        size_t windows = n_eval > 0 ? (n_eval - 1) / (size_t)T : 0;
        if (windows < 1) {
            snprintf(err, errlen, "%s: eval_fraction %g holds out %zu tokens, fewer than one window "
                     "(context + 1 = %d)", name, ef, n_eval, T + 1);
            goto fail;
        }
        if (windows >= (size_t)B) {
            size_t nb = windows / (size_t)B;
            d->n_eval = nb < EVAL_MAX_BATCHES ? (int)nb : EVAL_MAX_BATCHES;
            d->eval_rows_last = B;
        } else {
            d->n_eval = 1;
            d->eval_rows_last = (int)windows;
        }
    }

    size_t bt = (size_t)B * T;
    d->x = malloc(sizeof(int32_t) * bt);
    d->y = malloc(sizeof(int32_t) * bt);
    if (d->n_eval) {
        d->ex = malloc(sizeof(int32_t) * bt * d->n_eval);
        d->ey = malloc(sizeof(int32_t) * bt * d->n_eval);
    }
    if (!d->x || !d->y || (d->n_eval && (!d->ex || !d->ey))) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto fail;
    }
    for (int k = 0; k < d->n_eval; k++) {
        int rows = k == d->n_eval - 1 ? d->eval_rows_last : B;
        for (int b = 0; b < rows; b++) {
            size_t w = (size_t)k * B + b, off = ((size_t)k * B + b) * T;
            window(d, d->n_train + w * T, d->ex + off, d->ey + off);
        }
    }
    return &d->base;

fail:
    text_close(&d->base);
    return NULL;
}

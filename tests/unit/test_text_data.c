/*
 * Token-stream data (data_text.c): text files, the random stream with no
 * path, llm.c token files (good, truncated, bad magic/version, tokens out of
 * the vocabulary, trailing bytes), batches as torch_ref.py draws them, the
 * eval split at the end of the file, determinism and state save/restore.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/config.h"
#include "traind/data.h"
#include "tl.h"

static char g_dir[64];

static void setup(void)
{
    strcpy(g_dir, "/tmp/traind-textdata-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* The path of name in the test's folder (one of 4 rotating buffers). */
static char *path_of(const char *name)
{
    static char buf[4][128];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 128, "%s/%s", g_dir, name);
    return p;
}

static char *write_bytes(const char *name, const void *data, size_t len)
{
    char *p = path_of(name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    return p;
}

/* An llm.c token file: header (magic, version, count) then uint16 tokens. */
static char *write_tokens(const char *name, int32_t magic, int32_t version, int32_t count,
                          const uint16_t *tok, size_t n_tok)
{
    size_t len = 1024 + 2 * n_tok;
    unsigned char *buf = calloc(1, len);
    int32_t h[3] = {magic, version, count};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++)
            buf[4 * i + b] = (unsigned char)((uint32_t)h[i] >> (8 * b));
    for (size_t i = 0; i < n_tok; i++) {
        buf[1024 + 2 * i] = (unsigned char)(tok[i] & 0xff);
        buf[1024 + 2 * i + 1] = (unsigned char)(tok[i] >> 8);
    }
    char *p = write_bytes(name, buf, len);
    free(buf);
    return p;
}

static run_config gpt_cfg(data_kind kind, int V, int T, int B, double eval_fraction, uint64_t seed)
{
    run_config c;
    memset(&c, 0, sizeof c);
    c.seed = seed;
    c.model.type = MODEL_GPT;
    c.model.vocab_size = V;
    c.model.context = T;
    c.model.d_model = 8;
    c.model.layers = 1;
    c.model.heads = 2;
    c.data.kind = kind;
    c.data.batch_size = B;
    c.data.eval_fraction = eval_fraction;
    return c;
}

static data_source_t *open_ok(const run_config *c, const char *path)
{
    char err[512] = "";
    data_source_t *d = data_open(c, path, err, sizeof err);
    ck_assert_msg(d != NULL, "data_open failed: %s", err);
    return d;
}

static void open_fails(const run_config *c, const char *path, const char *want)
{
    char err[512] = "";
    data_source_t *d = data_open(c, path, err, sizeof err);
    ck_assert_msg(d == NULL, "data_open should fail (%s)", want);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

/* A text whose bytes tell their position: "abcdefghij..." cycling, 26 per lap. */
static char *cyclic_text(const char *name, size_t n, char **content)
{
    char *t = malloc(n);
    for (size_t i = 0; i < n; i++)
        t[i] = (char)('a' + i % 26);
    char *p = write_bytes(name, t, n);
    *content = t;
    return p;
}

START_TEST(test_text_batches)
{
    char *text;
    size_t N = 5000;
    char *p = cyclic_text("a.txt", N, &text);
    int T = 16, B = 4;
    run_config c = gpt_cfg(DATA_TEXT, 256, T, B, 0, 1);
    data_source_t *d = open_ok(&c, p);
    ck_assert_int_eq(data_eval_batches(d), 0);
    for (int s = 0; s < 50; s++) {
        batch_t b;
        data_next(d, &b);
        ck_assert_int_eq(b.B, B);
        ck_assert_int_eq(b.T, T);
        for (int r = 0; r < B; r++) {
            const int32_t *x = b.tokens + r * T, *y = b.targets + r * T;
            /* x is a substring of the file, y is x shifted by one */
            const char *at = memchr(text, x[0], 26);
            ck_assert_ptr_nonnull(at);
            for (int t = 0; t < T; t++) {
                ck_assert_int_eq(y[t], 'a' + (x[t] - 'a' + 1) % 26);
                if (t + 1 < T)
                    ck_assert_int_eq(x[t + 1], y[t]);
            }
        }
    }
    data_close(d);
    free(text);
}
END_TEST

/* Every start offset is in [0, N - T - 1): the file's last token is never a target. */
START_TEST(test_text_offsets_range)
{
    int T = 4, B = 8;
    unsigned char t[8];                 /* N = T + 4: starts in [0, 3) */
    for (int i = 0; i < 8; i++)
        t[i] = (unsigned char)i;
    char *p = write_bytes("s.txt", t, 8);
    run_config c = gpt_cfg(DATA_TEXT, 256, T, B, 0, 9);
    data_source_t *d = open_ok(&c, p);
    int seen[8] = {0};
    for (int s = 0; s < 100; s++) {
        batch_t b;
        data_next(d, &b);
        for (int r = 0; r < B; r++) {
            int start = b.tokens[r * T];
            ck_assert_int_lt(start, 8 - T - 1);
            seen[start]++;
            ck_assert_int_le(b.targets[r * T + T - 1], 6);
        }
    }
    ck_assert(seen[0] && seen[1] && seen[2]);
    data_close(d);
}
END_TEST

START_TEST(test_text_too_short)
{
    int T = 10;
    unsigned char t[12] = "abcdefghijk";
    run_config c = gpt_cfg(DATA_TEXT, 256, T, 2, 0, 1);
    open_fails(&c, write_bytes("short.txt", t, 11), "too short");
    data_source_t *d = open_ok(&c, write_bytes("ok.txt", t, 12));    /* T + 2 */
    batch_t b;
    data_next(d, &b);
    ck_assert_int_eq(b.tokens[0], 'a');
    ck_assert_int_eq(b.targets[T - 1], 'k');
    data_close(d);
    open_fails(&c, path_of("missing.txt"), "No such file");
    open_fails(&c, g_dir, "directory");
    run_config tk = gpt_cfg(DATA_TOKENS, 256, T, 2, 0, 1);
    open_fails(&tk, NULL, "needs a path");
    run_config mlp = c;
    mlp.model.type = MODEL_MLP;
    open_fails(&mlp, write_bytes("x.txt", t, 12), "gpt");
    /* text bytes are tokens: a vocabulary below 256 must hold them */
    run_config small = gpt_cfg(DATA_TEXT, 100, 4, 1, 0, 1);
    open_fails(&small, write_bytes("hi.txt", "abcdefgh", 8), "byte 100 at offset 3");
}
END_TEST

START_TEST(test_random_text)
{
    run_config c = gpt_cfg(DATA_TEXT, 256, 32, 4, 0, 5);
    data_source_t *a = open_ok(&c, NULL), *b2 = open_ok(&c, NULL);
    c.seed = 6;
    data_source_t *o = open_ok(&c, NULL);
    int differ = 0;
    for (int s = 0; s < 10; s++) {
        batch_t x, y, z;
        data_next(a, &x);
        data_next(b2, &y);
        data_next(o, &z);
        ck_assert(memcmp(x.tokens, y.tokens, 4 * 32 * sizeof(int32_t)) == 0);
        ck_assert(memcmp(x.targets, y.targets, 4 * 32 * sizeof(int32_t)) == 0);
        differ |= memcmp(x.tokens, z.tokens, 4 * 32 * sizeof(int32_t)) != 0;
        for (int i = 0; i < 4 * 32; i++)
            ck_assert(x.tokens[i] >= 0 && x.tokens[i] < 256);
    }
    ck_assert(differ);
    data_close(a);
    data_close(b2);
    data_close(o);
}
END_TEST

START_TEST(test_determinism_and_state)
{
    char *text;
    char *p = cyclic_text("d.txt", 3000, &text);
    run_config c = gpt_cfg(DATA_TEXT, 256, 8, 3, 0, 42);
    data_source_t *a = open_ok(&c, p), *b = open_ok(&c, p);
    batch_t x, y;
    for (int s = 0; s < 5; s++) {
        data_next(a, &x);
        data_next(b, &y);
        ck_assert(memcmp(x.tokens, y.tokens, 24 * sizeof(int32_t)) == 0);
    }
    size_t n = data_state_size(a);
    ck_assert_uint_gt(n, 0);
    void *st = malloc(n);
    data_save_state(a, st);
    int32_t seq[10][24];
    for (int s = 0; s < 10; s++) {
        data_next(a, &x);
        memcpy(seq[s], x.tokens, sizeof seq[s]);
    }
    /* restore into a fresh source (as a resumed run would) */
    data_source_t *r = open_ok(&c, p);
    ck_assert_int_eq(data_load_state(r, st, n), 0);
    for (int s = 0; s < 10; s++) {
        data_next(r, &x);
        ck_assert(memcmp(seq[s], x.tokens, sizeof seq[s]) == 0);
    }
    /* and into the same one */
    ck_assert_int_eq(data_load_state(a, st, n), 0);
    data_next(a, &x);
    ck_assert(memcmp(seq[0], x.tokens, sizeof seq[0]) == 0);
    /* wrong sizes, another file, another kind: refused */
    ck_assert_int_eq(data_load_state(r, st, n - 1), -1);
    char *other;
    char *p2 = cyclic_text("e.txt", 3001, &other);
    data_source_t *o = open_ok(&c, p2);
    ck_assert_int_eq(data_load_state(o, st, n), -1);
    unsigned char *bad = malloc(n);
    memcpy(bad, st, n);
    bad[0] ^= 1;
    ck_assert_int_eq(data_load_state(r, bad, n), -1);
    data_close(a);
    data_close(b);
    data_close(r);
    data_close(o);
    free(st);
    free(bad);
    free(text);
    free(other);
}
END_TEST

START_TEST(test_eval_split)
{
    /* head: lowercase, tail (the last 25%): uppercase */
    size_t N = 4000, tail = 1000;
    char *t = malloc(N);
    for (size_t i = 0; i < N; i++)
        t[i] = (char)(i < N - tail ? 'a' + i % 26 : 'A' + (i - (N - tail)) % 26);
    char *p = write_bytes("ev.txt", t, N);
    int T = 20, B = 4;
    run_config c = gpt_cfg(DATA_TEXT, 256, T, B, 0.25, 3);
    data_source_t *d = open_ok(&c, p);
    for (int s = 0; s < 200; s++) {
        batch_t b;
        data_next(d, &b);
        for (int i = 0; i < B * T; i++) {
            ck_assert(b.tokens[i] >= 'a' && b.tokens[i] <= 'z');
            ck_assert(b.targets[i] >= 'a' && b.targets[i] <= 'z');
        }
    }
    /* (1000 - 1) / 20 = 49 windows = 12 full batches, capped at 8 */
    int ne = data_eval_batches(d);
    ck_assert_int_eq(ne, 8);
    for (int k = 0; k < ne; k++) {
        batch_t b, b2;
        data_eval_batch(d, k, &b);
        ck_assert_int_eq(b.B, B);
        ck_assert_int_eq(b.T, T);
        for (int r = 0; r < B; r++)
            for (int i = 0; i < T; i++) {
                size_t pos = N - tail + (size_t)(k * B + r) * T + i;
                ck_assert_int_eq(b.tokens[r * T + i], t[pos]);
                ck_assert_int_eq(b.targets[r * T + i], t[pos + 1]);
            }
        data_eval_batch(d, k, &b2);    /* fixed: the same every time */
        ck_assert(memcmp(b.tokens, b2.tokens, sizeof(int32_t) * B * T) == 0);
    }
    batch_t none;
    data_eval_batch(d, ne, &none);
    ck_assert_int_eq(none.B, 0);
    data_close(d);

    /* fewer windows than a batch: one smaller batch */
    run_config c2 = gpt_cfg(DATA_TEXT, 256, 100, 16, 0.25, 3);
    d = open_ok(&c2, p);
    ck_assert_int_eq(data_eval_batches(d), 1);
    batch_t b;
    data_eval_batch(d, 0, &b);
    ck_assert_int_eq(b.B, 9);          /* (1000 - 1) / 100 */
    data_close(d);

    /* a tail shorter than one window, or a head too short to train on */
    run_config c3 = gpt_cfg(DATA_TEXT, 256, 20, 2, 0.004, 3);      /* 16 tokens */
    open_fails(&c3, p, "fewer than one window");
    run_config c4 = gpt_cfg(DATA_TEXT, 256, 1000, 2, 0.8, 3);
    open_fails(&c4, p, "training needs");
    free(t);
}
END_TEST

START_TEST(test_token_files)
{
    enum { N = 600 };
    uint16_t tok[N];
    for (int i = 0; i < N; i++)
        tok[i] = (uint16_t)(i * 37 % 1000);
    run_config c = gpt_cfg(DATA_TOKENS, 1000, 16, 4, 0, 2);
    char good[128];
    snprintf(good, sizeof good, "%s", write_tokens("good.bin", 20240520, 1, N, tok, N));
    data_source_t *d = open_ok(&c, good);
    for (int s = 0; s < 20; s++) {
        batch_t b;
        data_next(d, &b);
        for (int r = 0; r < 4; r++) {
            const int32_t *x = b.tokens + r * 16, *y = b.targets + r * 16;
            /* locate the window: x[0] = i*37 % 1000 with i < N - 17 */
            int start = -1;
            for (int i = 0; i < N - 16 - 1; i++)
                if (tok[i] == x[0] && tok[i + 1] == x[1]) {
                    start = i;
                    break;
                }
            ck_assert_int_ge(start, 0);
            for (int t = 0; t < 16; t++) {
                ck_assert_int_eq(x[t], tok[start + t]);
                ck_assert_int_eq(y[t], tok[start + t + 1]);
            }
        }
    }
    data_close(d);

    /* a token at or above vocab_size: the error names its byte offset */
    tok[300] = 1000;
    char *big = write_tokens("big.bin", 20240520, 1, N, tok, N);
    open_fails(&c, big, "byte offset 1624");
    tok[300] = 5;
    run_config c50k = gpt_cfg(DATA_TOKENS, 50257, 16, 4, 0, 2);
    tok[10] = 50256;
    d = open_ok(&c50k, write_tokens("gpt2.bin", 20240520, 1, N, tok, N));
    data_close(d);
    tok[10] = 50257;
    open_fails(&c50k, write_tokens("gpt2b.bin", 20240520, 1, N, tok, N), "token 50257");
    tok[10] = 1;

    open_fails(&c, write_tokens("magic.bin", 20240521, 1, N, tok, N), "magic");
    open_fails(&c, write_tokens("ver.bin", 20240520, 2, N, tok, N), "version 2");
    open_fails(&c, write_tokens("trunc.bin", 20240520, 1, N, tok, N - 100), "truncated");
    open_fails(&c, write_tokens("trail.bin", 20240520, 1, N - 100, tok, N), "trailing");
    open_fails(&c, write_bytes("hdr.bin", tok, 500), "truncated");
    open_fails(&c, write_tokens("few.bin", 20240520, 1, 17, tok, 17), "too short");
    d = open_ok(&c, write_tokens("min.bin", 20240520, 1, 18, tok, 18));
    data_close(d);

    /* token state does not load into a text source of another stream */
    d = open_ok(&c, good);
    size_t n = data_state_size(d);
    void *st = malloc(n);
    data_save_state(d, st);
    char *text;
    run_config ct = gpt_cfg(DATA_TEXT, 256, 16, 4, 0, 2);
    data_source_t *tx = open_ok(&ct, cyclic_text("t.txt", 2000, &text));
    ck_assert_int_eq(data_load_state(tx, st, n), -1);
    ck_assert_int_eq(data_load_state(d, st, n), 0);
    data_close(d);
    data_close(tx);
    free(st);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("text_data");
    TCase *tc = tcase_create("text");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_text_batches);
    tcase_add_test(tc, test_text_offsets_range);
    tcase_add_test(tc, test_text_too_short);
    tcase_add_test(tc, test_random_text);
    tcase_add_test(tc, test_determinism_and_state);
    tcase_add_test(tc, test_eval_split);
    tcase_add_test(tc, test_token_files);
    suite_add_tcase(s, tc);
    int failed = tl_run_suite(s);
    return failed ? 1 : 0;
}

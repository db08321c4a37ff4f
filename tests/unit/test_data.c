/*
 * Data sources: synthetic (determinism, the teacher and the noise, the eval
 * set, state save/restore mid-stream) and CSV (parsing good files, headers,
 * blank lines, CRLF; ragged rows, non-numbers, empty files with FILE:LINE in
 * the error; the eval split; per-epoch shuffling and its exact resume).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/data.h"
#include "traind/util.h"
#include "tl.h"

static run_config synth_cfg(uint64_t seed, int in, int out, int B, double noise)
{
    run_config c;
    memset(&c, 0, sizeof c);
    c.seed = seed;
    c.model.type = MODEL_MLP;
    c.model.input_dim = in;
    c.model.output_dim = out;
    c.data.kind = DATA_SYNTHETIC;
    c.data.batch_size = B;
    c.data.noise = noise;
    return c;
}

static data_source_t *open_ok(const run_config *c, const char *path)
{
    char err[512] = "";
    data_source_t *d = data_open(c, path, err, sizeof err);
    ck_assert_msg(d != NULL, "data_open: %s", err);
    return d;
}

/* Opens expecting failure; returns the message (static). */
static const char *open_err(const run_config *c, const char *path)
{
    static char err[512];
    err[0] = '\0';
    data_source_t *d = data_open(c, path, err, sizeof err);
    ck_assert_msg(d == NULL, "data_open of %s succeeded", path ? path : "(synthetic)");
    ck_assert(err[0] != '\0');
    return err;
}

static void batch_eq(const batch_t *a, const batch_t *b)
{
    ck_assert_int_eq(a->B, b->B);
    ck_assert_int_eq(a->n_in, b->n_in);
    ck_assert_int_eq(a->n_out, b->n_out);
    ck_assert_mem_eq(a->x, b->x, sizeof(float) * a->B * a->n_in);
    ck_assert_mem_eq(a->y, b->y, sizeof(float) * a->B * a->n_out);
}

/* ---- synthetic ------------------------------------------------------------- */

START_TEST(synthetic_deterministic)
{
    run_config c = synth_cfg(7, 5, 3, 8, 0.01);
    data_source_t *a = open_ok(&c, NULL), *b = open_ok(&c, NULL);
    for (int i = 0; i < 20; i++) {
        batch_t ba, bb;
        data_next(a, &ba);
        data_next(b, &bb);
        ck_assert_int_eq(ba.B, 8);
        ck_assert_int_eq(ba.n_in, 5);
        ck_assert_int_eq(ba.n_out, 3);
        batch_eq(&ba, &bb);
    }
    /* another seed: other data */
    run_config c2 = synth_cfg(8, 5, 3, 8, 0.01);
    data_source_t *o = open_ok(&c2, NULL);
    batch_t ba, bo;
    data_next(a, &ba);
    data_next(o, &bo);
    ck_assert(memcmp(ba.x, bo.x, sizeof(float) * 40) != 0);
    ck_assert_int_eq(data_eval_batches(a), 0);
    data_close(a);
    data_close(b);
    data_close(o);
}
END_TEST

/* Least squares fit of y = x·W over n rows (in <= 8), returning the RMS residual. */
static double fit_residual(const float *x, const float *y, int n, int in, int out, double *W)
{
    double A[8][8] = {{0}}, R[8][8] = {{0}};
    for (int r = 0; r < n; r++)
        for (int i = 0; i < in; i++) {
            for (int k = 0; k < in; k++)
                A[i][k] += (double)x[r * in + i] * x[r * in + k];
            for (int j = 0; j < out; j++)
                R[i][j] += (double)x[r * in + i] * y[r * out + j];
        }
    /* Gauss-Jordan on A | R */
    for (int p = 0; p < in; p++) {
        double piv = A[p][p];
        for (int k = 0; k < in; k++)
            A[p][k] /= piv;
        for (int j = 0; j < out; j++)
            R[p][j] /= piv;
        for (int i = 0; i < in; i++) {
            if (i == p)
                continue;
            double f = A[i][p];
            for (int k = 0; k < in; k++)
                A[i][k] -= f * A[p][k];
            for (int j = 0; j < out; j++)
                R[i][j] -= f * R[p][j];
        }
    }
    double ss = 0;
    for (int r = 0; r < n; r++)
        for (int j = 0; j < out; j++) {
            double pred = 0;
            for (int i = 0; i < in; i++)
                pred += x[r * in + i] * R[i][j];
            double e = y[r * out + j] - pred;
            ss += e * e;
        }
    for (int i = 0; i < in; i++)
        for (int j = 0; j < out; j++)
            W[i * out + j] = R[i][j];
    return sqrt(ss / (n * out));
}

static double synth_fit(uint64_t seed, int B, double noise, double *W)
{
    enum { IN = 6, OUT = 3, N = 240 };
    run_config c = synth_cfg(seed, IN, OUT, B, noise);
    data_source_t *d = open_ok(&c, NULL);
    static float x[N * IN], y[N * OUT];
    int n = 0;
    while (n < N) {
        batch_t b;
        data_next(d, &b);
        int take = b.B < N - n ? b.B : N - n;
        memcpy(x + n * IN, b.x, sizeof(float) * take * IN);
        memcpy(y + n * OUT, b.y, sizeof(float) * take * OUT);
        n += take;
    }
    /* inputs are N(0, 1) */
    double s = 0, s2 = 0;
    for (int i = 0; i < N * IN; i++)
        s += x[i], s2 += (double)x[i] * x[i];
    ck_assert(fabs(s / (N * IN)) < 0.1);
    ck_assert(fabs(s2 / (N * IN) - 1.0) < 0.12);
    data_close(d);
    return fit_residual(x, y, N, IN, OUT, W);
}

START_TEST(synthetic_teacher_and_noise)
{
    double W0[18], W1[18], W2[18];
    /* noise 0: y is exactly linear in x */
    double r0 = synth_fit(3, 16, 0.0, W0);
    ck_assert_msg(r0 < 1e-5, "residual %g", r0);
    /* the teacher depends on the seed only (not on the batch size), with
     * N(0, 1/in) entries */
    double r1 = synth_fit(3, 5, 0.0, W1);
    ck_assert(r1 < 1e-5);
    double ss = 0;
    for (int i = 0; i < 18; i++) {
        ck_assert_msg(fabs(W0[i] - W1[i]) < 1e-4, "W[%d] %g vs %g", i, W0[i], W1[i]);
        ss += W0[i] * W0[i];
    }
    ck_assert_msg(ss / 18 > 1.0 / 6 / 4 && ss / 18 < 1.0 / 6 * 4, "teacher variance %g", ss / 18);
    /* noise 0.5: the residual is the noise */
    double r2 = synth_fit(3, 16, 0.5, W2);
    ck_assert_msg(fabs(r2 - 0.5) < 0.06, "residual %g for noise 0.5", r2);
    for (int i = 0; i < 18; i++)
        ck_assert(fabs(W2[i] - W0[i]) < 0.15);
}
END_TEST

START_TEST(synthetic_state_roundtrip)
{
    run_config c = synth_cfg(11, 4, 2, 6, 0.1);
    data_source_t *a = open_ok(&c, NULL);
    batch_t b;
    for (int i = 0; i < 3; i++)
        data_next(a, &b);
    size_t n = data_state_size(a);
    ck_assert_uint_gt(n, 0);
    void *st = malloc(n);
    data_save_state(a, st);
    float xs[5][24], ys[5][12];
    for (int i = 0; i < 5; i++) {
        data_next(a, &b);
        memcpy(xs[i], b.x, sizeof xs[i]);
        memcpy(ys[i], b.y, sizeof ys[i]);
    }
    /* a fresh source, fast-forwarded by the state, continues identically */
    data_source_t *r = open_ok(&c, NULL);
    ck_assert_int_eq(data_load_state(r, st, n), 0);
    for (int i = 0; i < 5; i++) {
        data_next(r, &b);
        ck_assert_mem_eq(b.x, xs[i], sizeof xs[i]);
        ck_assert_mem_eq(b.y, ys[i], sizeof ys[i]);
    }
    /* so does the original, rewound */
    ck_assert_int_eq(data_load_state(a, st, n), 0);
    data_next(a, &b);
    ck_assert_mem_eq(b.x, xs[0], sizeof xs[0]);
    /* refused: wrong length, another shape, garbage */
    ck_assert_int_eq(data_load_state(r, st, n - 1), -1);
    run_config c2 = synth_cfg(11, 5, 2, 6, 0.1);
    data_source_t *o = open_ok(&c2, NULL);
    ck_assert_int_eq(data_load_state(o, st, n), -1);
    memset(st, 0xab, n);
    ck_assert_int_eq(data_load_state(r, st, n), -1);
    free(st);
    data_close(a);
    data_close(r);
    data_close(o);
}
END_TEST

START_TEST(synthetic_eval_set)
{
    run_config c = synth_cfg(5, 3, 2, 4, 0.01);
    c.data.eval_fraction = 0.25;    /* ceil(2.5) = 3 batches */
    data_source_t *a = open_ok(&c, NULL), *b = open_ok(&c, NULL);
    ck_assert_int_eq(data_eval_batches(a), 3);
    batch_t e0, e0b, t;
    data_eval_batch(a, 0, &e0);
    float keep[12];
    memcpy(keep, e0.x, sizeof keep);
    for (int i = 0; i < 10; i++)
        data_next(a, &t);
    ck_assert(memcmp(t.x, keep, sizeof keep) != 0);
    data_eval_batch(a, 0, &e0);
    data_eval_batch(b, 0, &e0b);
    ck_assert_mem_eq(e0.x, keep, sizeof keep);   /* fixed, whatever training did */
    batch_eq(&e0, &e0b);                          /* and the same for the same seed */
    batch_t e2;
    data_eval_batch(a, 2, &e2);
    ck_assert_int_eq(e2.B, 4);
    ck_assert(memcmp(e2.x, e0.x, sizeof keep) != 0);
    /* the eval set does not shift the training stream */
    run_config c0 = synth_cfg(5, 3, 2, 4, 0.01);
    data_source_t *n0 = open_ok(&c0, NULL), *n1 = open_ok(&c, NULL);
    batch_t b0, b1;
    data_next(n0, &b0);
    data_next(n1, &b1);
    batch_eq(&b0, &b1);
    c.data.eval_fraction = 0.01;
    data_source_t *s = open_ok(&c, NULL);
    ck_assert_int_eq(data_eval_batches(s), 1);
    data_close(a);
    data_close(b);
    data_close(n0);
    data_close(n1);
    data_close(s);
}
END_TEST

START_TEST(synthetic_rejects_gpt)
{
    run_config c = synth_cfg(1, 3, 2, 4, 0.01);
    c.model.type = MODEL_GPT;
    ck_assert_ptr_nonnull(strstr(open_err(&c, NULL), "linear or mlp"));
}
END_TEST

/* ---- csv ---------------------------------------------------------------------- */

static char g_dir[64];

static void setup_dir(void)
{
    strcpy(g_dir, "/tmp/traind-data-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_dir);
}

/* Writes text to DIR/name; returns the path (static, one at a time per name slot). */
static const char *write_tmp(const char *name, const char *text)
{
    static char paths[4][256];
    static int slot;
    char *p = paths[slot++ % 4];
    snprintf(p, 256, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static run_config csv_cfg(int in, int out, int B, double eval_fraction)
{
    run_config c = synth_cfg(9, in, out, B, 0.0);
    c.data.kind = DATA_CSV;
    c.data.eval_fraction = eval_fraction;
    return c;
}

/* n rows "id, 2·id, -id" (in 2, out 1), ids 0..n-1 */
static char *rows_text(int n, const char *header)
{
    size_t cap = 64 + (size_t)n * 40;
    char *s = malloc(cap);
    size_t k = (size_t)snprintf(s, cap, "%s", header ? header : "");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(s + k, cap - k, "%d,%d,%d\n", i, 2 * i, -i);
    return s;
}

START_TEST(csv_good_file)
{
    const char *p = write_tmp("good.csv", "1,2,3\n4,5,6\n7,8,9\n10,11,12\n");
    run_config c = csv_cfg(2, 1, 2, 0.0);
    data_source_t *d = open_ok(&c, p);
    int seen[4] = {0};
    for (int k = 0; k < 2; k++) {
        batch_t b;
        data_next(d, &b);
        ck_assert_int_eq(b.B, 2);
        ck_assert_int_eq(b.n_in, 2);
        ck_assert_int_eq(b.n_out, 1);
        for (int r = 0; r < 2; r++) {
            /* rows stay whole: x = (a, a+1), y = a+2 */
            float a = b.x[r * 2];
            ck_assert(b.x[r * 2 + 1] == a + 1);
            ck_assert(b.y[r] == a + 2);
            seen[(int)(a - 1) / 3]++;
        }
    }
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(seen[i], 1);   /* one epoch = each row once */
    ck_assert_int_eq(data_eval_batches(d), 0);
    data_close(d);
}
END_TEST

START_TEST(csv_header_blank_lines_crlf_quotes)
{
    const char *p = write_tmp("h.csv",
                              "\xEF\xBB\xBF\"x1\", x2 ,target\r\n"
                              "\r\n"
                              "1.5, -2e1 ,\"3\"\r\n"
                              "   \n"
                              "4,5,6");   /* no final newline */
    run_config c = csv_cfg(2, 1, 2, 0.0);
    data_source_t *d = open_ok(&c, p);
    batch_t b;
    data_next(d, &b);
    float sum = 0;
    for (int r = 0; r < 2; r++)
        sum += b.x[r * 2] + b.x[r * 2 + 1] + b.y[r];
    ck_assert(sum == 1.5f - 20.0f + 3.0f + 4 + 5 + 6);
    data_close(d);

    /* a first row of numbers is data, not a header */
    p = write_tmp("nohdr.csv", "1,2,3\n");
    run_config c1 = csv_cfg(2, 1, 1, 0.0);
    d = open_ok(&c1, p);
    data_next(d, &b);
    ck_assert(b.x[0] == 1.0f && b.x[1] == 2.0f && b.y[0] == 3.0f);
    data_close(d);

    /* several target columns: the last output_dim */
    p = write_tmp("multi.csv", "a,b,c,d\n1,2,3,4\n");
    run_config c2 = csv_cfg(1, 3, 1, 0.0);
    d = open_ok(&c2, p);
    data_next(d, &b);
    ck_assert(b.x[0] == 1.0f && b.y[0] == 2.0f && b.y[1] == 3.0f && b.y[2] == 4.0f);
    data_close(d);
}
END_TEST

START_TEST(csv_errors_name_file_and_line)
{
    run_config c = csv_cfg(2, 1, 2, 0.0);
    char want[512];
    const char *p, *e;

    p = write_tmp("ragged.csv", "a,b,c\n1,2,3\n4,5\n7,8,9\n");
    e = open_err(&c, p);
    snprintf(want, sizeof want, "%s:3: expected 3 columns, got 2", p);
    ck_assert_str_eq(e, want);

    p = write_tmp("long.csv", "1,2,3\n1,2,3,4\n");
    e = open_err(&c, p);
    snprintf(want, sizeof want, "%s:2: expected 3 columns, got 4", p);
    ck_assert_str_eq(e, want);

    p = write_tmp("nan.csv", "x,y,z\n1,2,3\n\n1,2,abc\n");
    e = open_err(&c, p);
    snprintf(want, sizeof want, "%s:4: column 3: not a number: 'abc'", p);
    ck_assert_str_eq(e, want);

    p = write_tmp("empty-field.csv", "1,2,3\n1,,3\n");
    e = open_err(&c, p);
    snprintf(want, sizeof want, "%s:2: column 2: not a number: ''", p);
    ck_assert_str_eq(e, want);

    p = write_tmp("inf.csv", "1,2,3\n1,inf,3\n");
    e = open_err(&c, p);
    snprintf(want, sizeof want, "%s:2: column 2: not a finite number: 'inf'", p);
    ck_assert_str_eq(e, want);

    p = write_tmp("trail.csv", "1,2,3\n1,2,3x\n");
    e = open_err(&c, p);
    snprintf(want, sizeof want, "%s:2: column 3: not a number: '3x'", p);
    ck_assert_str_eq(e, want);

    p = write_tmp("empty.csv", "");
    e = open_err(&c, p);
    ck_assert_msg(strstr(e, p) && strstr(e, "empty"), "%s", e);

    p = write_tmp("blank.csv", "\n  \n\r\n");
    e = open_err(&c, p);
    ck_assert_msg(strstr(e, "empty"), "%s", e);

    p = write_tmp("hdr.csv", "a,b,c\n");
    e = open_err(&c, p);
    ck_assert_msg(strstr(e, p) && strstr(e, "no data rows"), "%s", e);

    p = write_tmp("badhdr.csv", "a,b\n1,2,3\n");
    e = open_err(&c, p);
    snprintf(want, sizeof want, "%s:1: expected 3 columns, got 2", p);
    ck_assert_str_eq(e, want);

    snprintf(want, sizeof want, "%s/missing.csv", g_dir);
    e = open_err(&c, want);
    ck_assert_msg(strstr(e, want) && strstr(e, "No such file"), "%s", e);

    e = open_err(&c, NULL);
    ck_assert_msg(strstr(e, "path"), "%s", e);

    /* a long bad field is shortened in the message */
    char line[400] = "1,2,";
    memset(line + 4, 'q', 300);
    line[304] = '\n';
    line[305] = '\0';
    char text[512];
    snprintf(text, sizeof text, "1,2,3\n%s", line);
    p = write_tmp("longfield.csv", text);
    e = open_err(&c, p);
    ck_assert_msg(strlen(e) < strlen(p) + 100, "%s", e);
    ck_assert_ptr_nonnull(strstr(e, ":2: column 3: not a number: 'qqqq"));
}
END_TEST

START_TEST(csv_eval_split)
{
    char *text = rows_text(100, "id,twice,neg\n");
    const char *p = write_tmp("split.csv", text);
    free(text);
    run_config c = csv_cfg(2, 1, 8, 0.2);   /* 20 eval rows: 2 batches of 8 (rows 80..95) */
    data_source_t *d = open_ok(&c, p);
    ck_assert_int_eq(data_eval_batches(d), 2);
    for (int i = 0; i < 2; i++) {
        batch_t b;
        data_eval_batch(d, i, &b);
        ck_assert_int_eq(b.B, 8);
        for (int r = 0; r < 8; r++) {
            ck_assert(b.x[r * 2] == 80 + 8 * i + r);   /* in file order */
            ck_assert(b.y[r] == -b.x[r * 2]);
        }
    }
    /* training sees only rows 0..79, each once per epoch */
    int count[80] = {0};
    for (int k = 0; k < 20; k++) {   /* 2 epochs */
        batch_t b;
        data_next(d, &b);
        for (int r = 0; r < 8; r++) {
            int id = (int)b.x[r * 2];
            ck_assert_int_lt(id, 80);
            count[id]++;
        }
    }
    for (int i = 0; i < 80; i++)
        ck_assert_int_eq(count[i], 2);
    data_close(d);

    /* an eval split smaller than one batch, or no training rows left: error */
    run_config small = csv_cfg(2, 1, 8, 0.05);
    ck_assert_ptr_nonnull(strstr(open_err(&small, p), "fewer than one batch"));
    run_config all = csv_cfg(2, 1, 8, 1.0);
    open_err(&all, p);
}
END_TEST

START_TEST(csv_epochs_shuffled)
{
    char *text = rows_text(12, NULL);
    const char *p = write_tmp("ep.csv", text);
    free(text);
    run_config c = csv_cfg(2, 1, 4, 0.0);
    data_source_t *d = open_ok(&c, p);
    int order[4][12];
    for (int e = 0; e < 4; e++) {
        int seen[12] = {0};
        for (int k = 0; k < 3; k++) {
            batch_t b;
            data_next(d, &b);
            for (int r = 0; r < 4; r++) {
                int id = (int)b.x[r * 2];
                order[e][k * 4 + r] = id;
                seen[id]++;
            }
        }
        for (int i = 0; i < 12; i++)
            ck_assert_int_eq(seen[i], 1);   /* each epoch a permutation */
    }
    int differ = 0, sorted = 1;
    for (int e = 1; e < 4; e++)
        differ += memcmp(order[e], order[0], sizeof order[0]) != 0;
    for (int i = 0; i < 12; i++)
        sorted &= order[0][i] == i;
    ck_assert_int_ge(differ, 2);
    ck_assert(!sorted);
    data_close(d);
}
END_TEST

START_TEST(csv_resume_identical)
{
    char *text = rows_text(10, "a,b,c\n");
    const char *p = write_tmp("res.csv", text);
    free(text);
    run_config c = csv_cfg(2, 1, 4, 0.0);   /* batches straddle epoch ends */
    /* the stream without interruption */
    data_source_t *ref = open_ok(&c, p);
    float want[40][4];
    for (int k = 0; k < 40; k++) {
        batch_t b;
        data_next(ref, &b);
        for (int r = 0; r < 4; r++)
            want[k][r] = b.x[r * 2];
    }
    data_close(ref);
    /* stop after s batches, save, resume in a fresh source */
    for (int s = 0; s < 12; s++) {
        data_source_t *a = open_ok(&c, p);
        batch_t b;
        for (int k = 0; k < s; k++)
            data_next(a, &b);
        size_t n = data_state_size(a);
        void *st = malloc(n);
        data_save_state(a, st);
        data_close(a);
        data_source_t *r = open_ok(&c, p);
        data_next(r, &b);   /* a fresh source has moved on: the load must rewind it */
        ck_assert_int_eq(data_load_state(r, st, n), 0);
        for (int k = s; k < 40; k++) {
            data_next(r, &b);
            for (int q = 0; q < 4; q++)
                ck_assert_msg(b.x[q * 2] == want[k][q], "resumed at %d: batch %d row %d", s, k, q);
        }
        data_close(r);
        free(st);
    }
    /* the state of other data is refused */
    data_source_t *a = open_ok(&c, p);
    size_t n = data_state_size(a);
    void *st = malloc(n);
    data_save_state(a, st);
    text = rows_text(10, NULL);
    text[0] = '9';   /* same size, other content */
    const char *p2 = write_tmp("res2.csv", text);
    free(text);
    data_source_t *o = open_ok(&c, p2);
    ck_assert_int_eq(data_load_state(o, st, n), -1);
    ck_assert_int_eq(data_load_state(a, st, n - 8), -1);
    run_config syn = synth_cfg(9, 2, 1, 4, 0.0);
    data_source_t *sy = open_ok(&syn, NULL);
    size_t sn = data_state_size(sy);
    void *sst = malloc(sn);
    data_save_state(sy, sst);
    ck_assert_int_eq(data_load_state(a, sst, sn), -1);   /* a synthetic state */
    ck_assert_int_eq(data_load_state(sy, st, n), -1);    /* and the other way */
    free(sst);
    free(st);
    data_close(a);
    data_close(o);
    data_close(sy);
}
END_TEST

START_TEST(text_kinds_dispatch)
{
    /* text and tokens go to data_text_open (whatever it answers, it answers) */
    run_config c = synth_cfg(1, 3, 2, 4, 0.0);
    c.model.type = MODEL_GPT;
    c.model.vocab_size = 256;
    c.model.context = 8;
    c.data.kind = DATA_TEXT;
    char err[256] = "";
    data_source_t *d = data_open(&c, NULL, err, sizeof err);
    if (d)
        data_close(d);
    else
        ck_assert(err[0] != '\0');
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data");
    TCase *syn = tcase_create("synthetic");
    tcase_add_test(syn, synthetic_deterministic);
    tcase_add_test(syn, synthetic_teacher_and_noise);
    tcase_add_test(syn, synthetic_state_roundtrip);
    tcase_add_test(syn, synthetic_eval_set);
    tcase_add_test(syn, synthetic_rejects_gpt);
    tcase_add_test(syn, text_kinds_dispatch);
    suite_add_tcase(s, syn);
    TCase *csv = tcase_create("csv");
    tcase_add_checked_fixture(csv, setup_dir, teardown_dir);
    tcase_add_test(csv, csv_good_file);
    tcase_add_test(csv, csv_header_blank_lines_crlf_quotes);
    tcase_add_test(csv, csv_errors_name_file_and_line);
    tcase_add_test(csv, csv_eval_split);
    tcase_add_test(csv, csv_epochs_shuffled);
    tcase_add_test(csv, csv_resume_identical);
    suite_add_tcase(s, csv);
    int failed = tl_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

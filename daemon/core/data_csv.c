/*
 * data_csv — numeric CSV regression data (traind-run.yaml(5)).
 *
 * File: comma-separated numbers, input_dim + output_dim columns per row (the
 * first input_dim are the inputs, the last output_dim the targets).  The
 * first row is a header, and skipped, when one of its fields is not a number.
 * Blank lines are skipped; CRLF line ends, a UTF-8 BOM, spaces around fields
 * and double quotes around a field are accepted.  Any other problem stops
 * the open with "FILE:LINE: ..." (ragged row, field that is not a finite
 * number).  Caps: CSV_MAX_BYTES of file, CSV_MAX_ROWS rows, CSV_MAX_VALUES
 * numbers.
 *
 * Split: with eval_fraction f > 0 the last floor(f · rows) rows are the eval
 * set, served as floor(n_eval / batch_size) full batches (so every eval batch
 * weighs the same and their mean is the mean over the rows they cover); it
 * must hold at least one batch.  The rest is the training set.
 *
 * Order: every epoch visits the training rows in a fresh Fisher-Yates
 * permutation of 0..n-1 drawn from the data rng (RNG_STREAM_DATA); batches
 * run on across epoch ends.  The state is the rng as it was when the current
 * epoch's permutation was drawn, the epoch number and the position in it; a
 * load redraws that permutation, so a resumed run sees the same batches.
 */
#include "data_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/rng.h"
#include "traind/util.h"

#define CSV_MAX_BYTES ((size_t)1 << 30)
#define CSV_MAX_ROWS ((size_t)1 << 26)
#define CSV_MAX_VALUES ((size_t)1 << 28)

typedef struct csv {
    data_source_t base;
    int in, out, B;
    size_t n_rows, n_train, n_eval;     /* n_eval: rows in the eval batches */
    float *X, *Y;                       /* all rows: (n_rows, in), (n_rows, out) */
    float *x, *y;                       /* the training batch */
    uint32_t *perm;                     /* this epoch's order of the n_train rows */
    uint64_t checksum;                  /* of X and Y, to refuse a state of other data */
    rng_t rng;                          /* the data rng, now */
    rng_t epoch_rng;                    /* the data rng when perm was drawn */
    uint64_t epoch, pos;
} csv_t;

#define CSV_TAG 0x31565343u   /* "CSV1" */

typedef struct csv_state {
    uint32_t tag, in, out, B;
    uint64_t n_rows, n_train, checksum;
    uint64_t s[4];
    double spare;
    int32_t has_spare, pad;
    uint64_t epoch, pos;
} csv_state;

/* ---- training order ------------------------------------------------------ */

static void csv_shuffle(csv_t *d)
{
    d->epoch_rng = d->rng;
    uint32_t *p = d->perm;
    for (size_t i = 0; i < d->n_train; i++)
        p[i] = (uint32_t)i;
    for (size_t i = d->n_train; i > 1; i--) {
        size_t j = rng_below(&d->rng, i);
        uint32_t t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
    d->pos = 0;
}

static void csv_next(data_source_t *base, batch_t *b)
{
    csv_t *d = (csv_t *)base;
    int in = d->in, out = d->out;
    for (int r = 0; r < d->B; r++) {
        if (d->pos >= d->n_train) {
            d->epoch++;
            csv_shuffle(d);
        }
        size_t row = d->perm[d->pos++];
        memcpy(d->x + (size_t)r * in, d->X + row * in, sizeof(float) * in);
        memcpy(d->y + (size_t)r * out, d->Y + row * out, sizeof(float) * out);
    }
    memset(b, 0, sizeof *b);
    b->B = d->B;
    b->n_in = in;
    b->n_out = out;
    b->x = d->x;
    b->y = d->y;
}

static int csv_eval_batches(const data_source_t *base)
{
    const csv_t *d = (const csv_t *)base;
    return (int)(d->n_eval / d->B);
}

static void csv_eval_batch(data_source_t *base, int i, batch_t *b)
{
    csv_t *d = (csv_t *)base;
    memset(b, 0, sizeof *b);
    if (i < 0 || i >= csv_eval_batches(base))
        return;
    size_t row = d->n_train + (size_t)i * d->B;
    b->B = d->B;
    b->n_in = d->in;
    b->n_out = d->out;
    b->x = d->X + row * d->in;
    b->y = d->Y + row * d->out;
}

static size_t csv_state_size(const data_source_t *base)
{
    return sizeof(csv_state);
}

static void csv_save_state(const data_source_t *base, void *buf)
{
    const csv_t *d = (const csv_t *)base;
    csv_state st = {.tag = CSV_TAG, .in = d->in, .out = d->out, .B = d->B,
                    .n_rows = d->n_rows, .n_train = d->n_train, .checksum = d->checksum,
                    .spare = d->epoch_rng.spare, .has_spare = d->epoch_rng.has_spare,
                    .epoch = d->epoch, .pos = d->pos};
    memcpy(st.s, d->epoch_rng.s, sizeof st.s);
    memcpy(buf, &st, sizeof st);
}

static int csv_load_state(data_source_t *base, const void *buf, size_t len)
{
    csv_t *d = (csv_t *)base;
    csv_state st;
    if (len != sizeof st)
        return -1;
    memcpy(&st, buf, sizeof st);
    if (st.tag != CSV_TAG || st.in != (uint32_t)d->in || st.out != (uint32_t)d->out ||
        st.B != (uint32_t)d->B || st.n_rows != d->n_rows || st.n_train != d->n_train ||
        st.checksum != d->checksum || st.pos > d->n_train ||
        (st.s[0] | st.s[1] | st.s[2] | st.s[3]) == 0 || (st.has_spare != 0 && st.has_spare != 1))
        return -1;
    memcpy(d->rng.s, st.s, sizeof st.s);
    d->rng.spare = st.spare;
    d->rng.has_spare = st.has_spare;
    csv_shuffle(d);
    d->epoch = st.epoch;
    d->pos = st.pos;
    return 0;
}

static void csv_close(data_source_t *base)
{
    csv_t *d = (csv_t *)base;
    free(d->X);
    free(d->Y);
    free(d->x);
    free(d->y);
    free(d->perm);
    free(d);
}

static const data_ops csv_ops = {
    .next = csv_next,
    .eval_batches = csv_eval_batches,
    .eval_batch = csv_eval_batch,
    .state_size = csv_state_size,
    .save_state = csv_save_state,
    .load_state = csv_load_state,
    .close = csv_close,
};

/* ---- parsing --------------------------------------------------------------- */

/* A field of a line: [s, e) with surrounding blanks and one pair of quotes removed. */
static void trim_field(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
    if (*e - *s >= 2 && **s == '"' && (*e)[-1] == '"') {
        (*s)++;
        (*e)--;
    }
}

/* Parses [s, e) as a finite float.  Returns 0, or -1 (not a number), -2 (not finite). */
static int parse_float(const char *s, const char *e, float *out)
{
    char tmp[64];
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (tmp[0] == ' ' || tmp[0] == '\t')
        return -1;
    char *end;
    errno = 0;
    float v = strtof(tmp, &end);
    if (end != tmp + n)
        return -1;
    if (!isfinite(v))
        return -2;
    *out = v;
    return 0;
}

/* 'field' for an error message: at most 40 bytes, control bytes as '?'. */
static void quote_field(char *buf, size_t len, const char *s, const char *e)
{
    size_t n = (size_t)(e - s), k = 0;
    int cut = n > 40;
    if (cut)
        n = 40;
    for (size_t i = 0; i < n && k + 1 < len; i++)
        buf[k++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (cut)
        for (int i = 0; i < 3 && k + 1 < len; i++)
            buf[k++] = '.';
    buf[k] = '\0';
}

static uint64_t hash_floats(uint64_t h, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, &v[i], sizeof w);
        h = (h ^ w) * 0x100000001B3ULL;
        h ^= h >> 29;
    }
    return h;
}

/* Reads and parses the file into d->X, d->Y, d->n_rows.  Returns 0 or -1 with err. */
static int csv_parse(csv_t *d, const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int rc = read_file(path, CSV_MAX_BYTES, &buf, &len);
    if (rc == -EFBIG) {
        snprintf(err, errlen, "%s: file is larger than %zu MiB", path, CSV_MAX_BYTES >> 20);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return -1;
    }
    int in = d->in, out = d->out, cols = in + out;

    /* Upper bound on the rows: the line count, within the caps. */
    size_t lines = 1;
    for (const char *p = buf; (p = memchr(p, '\n', buf + len - p)) != NULL; p++)
        lines++;
    size_t cap = lines;
    if (cap > CSV_MAX_ROWS)
        cap = CSV_MAX_ROWS;
    if (cap > CSV_MAX_VALUES / cols)
        cap = CSV_MAX_VALUES / cols;
    d->X = malloc(sizeof(float) * (cap ? cap : 1) * in);
    d->Y = malloc(sizeof(float) * (cap ? cap : 1) * out);
    float *row = malloc(sizeof(float) * cols);
    if (!d->X || !d->Y || !row) {
        snprintf(err, errlen, "%s: out of memory for %zu rows", path, cap);
        goto fail;
    }

    const char *p = buf, *end = buf + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    size_t n = 0;
    long lineno = 0;
    int seen_first = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', end - p);
        const char *le = nl ? nl : end;
        const char *ls = p;
        p = nl ? nl + 1 : end;
        lineno++;
        if (le > ls && le[-1] == '\r')
            le--;
        const char *q = ls;
        while (q < le && (*q == ' ' || *q == '\t'))
            q++;
        if (q == le)
            continue;   /* blank line */

        /* Count the fields first so a ragged row is reported as such. */
        int nf = 1;
        for (const char *c = ls; c < le; c++)
            nf += *c == ',';
        if (nf != cols) {
            snprintf(err, errlen, "%s:%ld: expected %d columns, got %d", path, lineno, cols, nf);
            goto fail;
        }
        int first = !seen_first;
        seen_first = 1;
        int bad = 0, bad_col = 0, bad_kind = 0, text = 0;
        const char *bs = NULL, *be = NULL;
        const char *f = ls;
        for (int c = 0; c < cols; c++) {
            const char *fe = memchr(f, ',', le - f);
            if (!fe)
                fe = le;
            const char *s = f, *e = fe;
            trim_field(&s, &e);
            int r = parse_float(s, e, &row[c]);
            text |= r == -1;
            if (r != 0 && !bad) {
                bad = 1;
                bad_col = c + 1;
                bad_kind = r;
                bs = s;
                be = e;
            }
            f = fe + 1;
        }
        if (bad) {
            if (first && text)
                continue;   /* a header row */
            char shown[64];
            quote_field(shown, sizeof shown, bs, be);
            snprintf(err, errlen, "%s:%ld: column %d: %s: '%s'", path, lineno, bad_col,
                     bad_kind == -2 ? "not a finite number" : "not a number", shown);
            goto fail;
        }
        if (n >= cap) {
            snprintf(err, errlen, "%s:%ld: too many rows (at most %zu of %d columns)",
                     path, lineno, cap, cols);
            goto fail;
        }
        memcpy(d->X + n * in, row, sizeof(float) * in);
        memcpy(d->Y + n * out, row + in, sizeof(float) * out);
        n++;
    }
    if (n == 0) {
        snprintf(err, errlen, seen_first ? "%s: no data rows (only a header)" : "%s: empty file (no rows)",
                 path);
        goto fail;
    }
    d->n_rows = n;
    free(row);
    free(buf);
    return 0;

fail:
    free(row);
    free(buf);
    return -1;
}

data_source_t *data_csv_open(const run_config *cfg, const char *path, char *err, size_t errlen)
{
    const model_cfg *m = &cfg->model;
    if (!path) {
        snprintf(err, errlen, "csv data needs a path");
        return NULL;
    }
    if (m->type != MODEL_LINEAR && m->type != MODEL_MLP) {
        snprintf(err, errlen, "%s: csv data is regression data: it needs a linear or mlp model", path);
        return NULL;
    }
    if (m->input_dim < 1 || m->output_dim < 1) {
        snprintf(err, errlen, "%s: csv data needs input_dim and output_dim >= 1", path);
        return NULL;
    }
    double ef = cfg->data.eval_fraction;
    if (!(ef >= 0.0 && ef < 1.0)) {
        snprintf(err, errlen, "data.eval_fraction must be in [0, 1)");
        return NULL;
    }
    csv_t *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->base.ops = &csv_ops;
    d->base.kind = DATA_CSV;
    d->base.batch_size = cfg->data.batch_size;
    d->in = m->input_dim;
    d->out = m->output_dim;
    d->B = cfg->data.batch_size;
    if (csv_parse(d, path, err, errlen) < 0)
        goto fail;

    size_t n_eval = ef > 0.0 ? (size_t)floor(ef * (double)d->n_rows) : 0;
    if (ef > 0.0 && n_eval < (size_t)d->B) {
        snprintf(err, errlen, "%s: eval_fraction %g of %zu rows is %zu rows, fewer than one batch (%d)",
                 path, ef, d->n_rows, n_eval, d->B);
        goto fail;
    }
    if (n_eval >= d->n_rows) {
        snprintf(err, errlen, "%s: eval_fraction %g leaves no rows to train on", path, ef);
        goto fail;
    }
    d->n_train = d->n_rows - n_eval;
    d->n_eval = n_eval - n_eval % d->B;
    d->checksum = hash_floats(hash_floats(0xcbf29ce484222325ULL, d->X, d->n_rows * d->in),
                              d->Y, d->n_rows * d->out);
    d->x = malloc(sizeof(float) * d->B * d->in);
    d->y = malloc(sizeof(float) * d->B * d->out);
    d->perm = malloc(sizeof(uint32_t) * d->n_train);
    if (!d->x || !d->y || !d->perm) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    rng_seed(&d->rng, cfg->seed, RNG_STREAM_DATA);
    d->epoch = 0;
    csv_shuffle(d);
    return &d->base;

fail:
    csv_close(&d->base);
    return NULL;
}

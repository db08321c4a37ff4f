/*
 * hf_state — trainer_state.json from metrics.jsonl.  See traind/hf_state.h.
 *
 * Streamed, in constant memory whatever the history's length: the document
 * is printed as it goes, never built as a tree (a tree of 1.37 M points
 * took 1.16 GB and 12.8 s, at every stop).  One pass over metrics.jsonl
 * writes log_history into an unnamed file and finds what the head of the
 * document needs (best_metric, global_step); the document is then the
 * head, a kernel copy of that file, and the tail.  A line in the runner's
 * exact shape has its number texts re-laid-out (exact_text), not parsed
 * and printed again; any other line goes through cJSON.  The text is
 * byte for byte what cJSON_PrintUnformatted gives for the same document
 * after json_exact_numbers (the key order, "null" for a non-finite number):
 * test_hf_state compares the two on generated histories.
 */
#include "traind/hf_state.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traind/json.h"
#include "traind/util.h"

/* One metrics.jsonl point, as far as trainer_state.json uses it. */
typedef struct hf_point {
    double step, grad_norm, lr, loss, eval_loss;
    bool has_grad_norm, has_lr, has_loss, has_eval_loss;
} hf_point;

static bool num(const cJSON *o, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

/* One number of a line the runner wrote, at *p, then sep: as cJSON reads a
 * number (the run of [0-9+-.eE], strtod), so the double is the one cJSON
 * would give.  false for anything else (the caller then asks cJSON). */
static bool fast_num(const char **p, char sep, double *out)
{
    const char *s = *p, *e = s;
    while ((*e >= '0' && *e <= '9') || *e == '+' || *e == '-' || *e == '.' || *e == 'e' || *e == 'E')
        e++;
    if (e == s || e - s > 40 || *e != sep)
        return false;
    char *end;
    *out = strtod(s, &end);
    if (end != e)
        return false;
    *p = e + 1;
    return true;
}

static bool fast_key(const char **p, const char *key)
{
    size_t n = strlen(key);
    if (strncmp(*p, key, n) != 0)
        return false;
    *p += n;
    return true;
}

/* The one shape the runner writes (runner.c, write_metrics), read without
 * building a tree: {"step":N,"lr":X,"loss":X,"loss_avg":X,"grad_norm":X,
 * "time":X[,"eval_loss":X]} and the newline.  Three times faster than
 * cJSON_Parse; any other line goes to cJSON. */
static bool fast_point(const char *line, hf_point *pt)
{
    const char *p = line;
    double loss, t;
    if (!fast_key(&p, "{\"step\":") || !fast_num(&p, ',', &pt->step) || !fast_key(&p, "\"lr\":") ||
        !fast_num(&p, ',', &pt->lr) || !fast_key(&p, "\"loss\":") || !fast_num(&p, ',', &loss) ||
        !fast_key(&p, "\"loss_avg\":") || !fast_num(&p, ',', &pt->loss) ||
        !fast_key(&p, "\"grad_norm\":") || !fast_num(&p, ',', &pt->grad_norm) || !fast_key(&p, "\"time\":"))
        return false;
    pt->has_eval_loss = false;
    if (!fast_num(&p, '}', &t)) {
        if (!fast_num(&p, ',', &t) || !fast_key(&p, "\"eval_loss\":") || !fast_num(&p, '}', &pt->eval_loss))
            return false;
        pt->has_eval_loss = true;
    }
    if (!(*p == '\0' || (p[0] == '\n' && p[1] == '\0')))
        return false;
    pt->has_lr = pt->has_loss = pt->has_grad_norm = true;
    return true;
}

/* ---- the runner's number texts, re-printed without parse+format -------- */

/*
 * exact_text: json_format_exact(strtod(s)) for a number text s the runner
 * printed ("%ld", "%.17g", "%.9g"), mostly without converting it at all.
 * json_format_exact prints the integer of a whole v < 1e15, else the first
 * of %.15g, %.16g, %.17g that reads back as v.  With t's significant
 * digits D (no leading or trailing zeros, n of them) and decimal exponent X:
 *
 *  - n <= 15 (any text, in the normal range): a decimal of at most DBL_DIG
 *    digits survives decimal -> double -> %.15g, so %.15g(v) has the digits
 *    D; it reads back as v, so the text is D laid out as %.15g lays it out
 *    (exponent form when X < -4 or X >= 15), which for a whole v < 1e15 is
 *    also its integer text.  Zero (and -0) is "0".  No conversion at all.
 *  - n = 16 or 17 (only for a line in the runner's exact shape, whose
 *    texts are %.17g(v)): rounding t to 15 (16) digits gives %.15g(v)
 *    (%.16g(v)) unless the digits dropped are a tie (5, then zeros): a
 *    17-digit rounding boundary between v and t would be nearer to v than
 *    t, the nearest.  Whether it reads back as v takes strtod; one failing
 *    both, the text is t's own digits (%.17g).  v here is not whole below
 *    1e15 (%.17g prints those with at most 15 digits).
 *
 * false when t is none of these (then the caller converts it).
 */
typedef struct dec {
    bool neg;
    int n, x;                 /* significant digits, exponent of the first */
    char d[40];
} dec;

/* A text of JSON's number grammar as a dec; false for anything else. */
static bool dec_parse(const char *s, size_t len, dec *o)
{
    const char *p = s, *e = s + len;
    o->neg = p < e && *p == '-';
    p += o->neg;
    if (p == e || *p < '0' || *p > '9' || (*p == '0' && p + 1 < e && p[1] >= '0' && p[1] <= '9'))
        return false;
    int n = 0, x = -1;        /* x: the first digit's exponent, before E */
    bool seen = false, dot = false;
    int pos = 0, first = 0;   /* digits before the point; the first nonzero's place among them */
    for (; p < e && ((*p >= '0' && *p <= '9') || (*p == '.' && !dot)); p++) {
        if (*p == '.') {
            dot = true;
            if (p + 1 == e || p[1] < '0' || p[1] > '9')
                return false;
            continue;
        }
        if (!dot)
            pos++;
        if (!seen && *p == '0') {
            if (dot)
                x--;
            continue;
        }
        if (!seen) {
            seen = true;
            first = dot ? 0 : pos;
        }
        if (n >= (int)sizeof o->d - 1)
            return false;
        o->d[n++] = *p;
    }
    if (!seen)
        x = 0;
    else if (first > 0)
        x = pos - first;
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        int sign = 1, ev = 0, nd = 0;
        if (p < e && (*p == '+' || *p == '-'))
            sign = *p++ == '-' ? -1 : 1;
        for (; p < e && *p >= '0' && *p <= '9'; p++, nd++)
            if (ev < 10000)
                ev = ev * 10 + (*p - '0');
        if (nd == 0)
            return false;
        x += sign * ev;
    }
    if (p != e)
        return false;
    while (n > 0 && o->d[n - 1] == '0')
        n--;
    o->n = n;
    o->x = seen ? x : 0;
    return true;
}

/* D's first p digits laid out as %.{P}g lays them out (P = prec). */
static void dec_print(const dec *v, int n, int prec, char *out)
{
    char *o = out;
    if (v->neg)
        *o++ = '-';
    int x = v->x;
    if (x < -4 || x >= prec) {
        *o++ = v->d[0];
        if (n > 1) {
            *o++ = '.';
            memcpy(o, v->d + 1, (size_t)n - 1);
            o += n - 1;
        }
        o += sprintf(o, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
        return;
    }
    if (x < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -x - 1; i++)
            *o++ = '0';
        memcpy(o, v->d, (size_t)n);
        o += n;
    } else {
        for (int i = 0; i <= x; i++)
            *o++ = i < n ? v->d[i] : '0';
        if (n > x + 1) {
            *o++ = '.';
            memcpy(o, v->d + x + 1, (size_t)(n - x - 1));
            o += n - x - 1;
        }
    }
    *o = '\0';
}

/* v's digits rounded to p (< v->n) as a dec; false at a tie. */
static bool dec_round(const dec *v, int p, dec *r)
{
    const char *drop = v->d + p;
    if (drop[0] == '5') {
        int i = 1;
        while (p + i < v->n && drop[i] == '0')
            i++;
        if (p + i == v->n)
            return false;
    }
    *r = *v;
    r->n = p;
    if (drop[0] >= '5') {
        int i = p - 1;
        while (i >= 0 && r->d[i] == '9')
            r->d[i--] = '0';
        if (i < 0) {          /* 999... -> 1000... */
            r->d[0] = '1';
            r->x++;
        } else {
            r->d[i]++;
        }
    }
    while (r->n > 1 && r->d[r->n - 1] == '0')
        r->n--;
    return true;
}

static bool exact_text(const char *s, size_t len, bool runner_text, char *out)
{
    dec v;
    if (!dec_parse(s, len, &v))
        return false;
    if (v.n == 0) {
        strcpy(out, "0");
        return true;
    }
    if (v.x < -300 || v.x > 300)
        return false;
    if (v.n <= 15) {
        dec_print(&v, v.n, 15, out);
        return true;
    }
    if (!runner_text || v.n > 17)
        return false;
    char buf[48];
    memcpy(buf, s, len);
    buf[len] = '\0';
    double d = strtod(buf, NULL);
    for (int p = 15; p <= 16; p++) {
        if (p >= v.n) {       /* t's own digits: they read back as v */
            dec_print(&v, v.n, p, out);
            return true;
        }
        dec r;
        if (!dec_round(&v, p, &r))
            return false;
        dec_print(&r, r.n, p, buf);
        if (strtod(buf, NULL) == d) {
            strcpy(out, buf);
            return true;
        }
    }
    dec_print(&v, v.n, 17, out);
    return true;
}

/* A line in the runner's exact shape (see fast_point), as the texts of the
 * numbers trainer_state.json takes from it. */
typedef struct text_point {
    const char *step, *lr, *loss, *grad_norm, *eval_loss;
    size_t step_n, lr_n, loss_n, grad_norm_n, eval_loss_n;
} text_point;

/* The run of number characters at *p up to sep, strictly a JSON number. */
static bool span_num(const char **p, char sep, const char **s, size_t *n)
{
    const char *b = *p, *e = b;
    while ((*e >= '0' && *e <= '9') || *e == '+' || *e == '-' || *e == '.' || *e == 'e' || *e == 'E')
        e++;
    dec d;
    if (e == b || e - b > 40 || *e != sep || !dec_parse(b, (size_t)(e - b), &d))
        return false;
    *s = b;
    *n = (size_t)(e - b);
    *p = e + 1;
    return true;
}

static bool fast_key(const char **p, const char *key);

static bool text_point_of(const char *line, text_point *tp)
{
    const char *p = line, *ls, *ts;
    size_t ln, tn;
    if (!fast_key(&p, "{\"step\":") || !span_num(&p, ',', &tp->step, &tp->step_n) || !fast_key(&p, "\"lr\":") ||
        !span_num(&p, ',', &tp->lr, &tp->lr_n) || !fast_key(&p, "\"loss\":") || !span_num(&p, ',', &ls, &ln) ||
        !fast_key(&p, "\"loss_avg\":") || !span_num(&p, ',', &tp->loss, &tp->loss_n) ||
        !fast_key(&p, "\"grad_norm\":") || !span_num(&p, ',', &tp->grad_norm, &tp->grad_norm_n) ||
        !fast_key(&p, "\"time\":"))
        return false;
    tp->eval_loss = NULL;
    if (!span_num(&p, '}', &ts, &tn)) {
        if (!span_num(&p, ',', &ts, &tn) || !fast_key(&p, "\"eval_loss\":") ||
            !span_num(&p, '}', &tp->eval_loss, &tp->eval_loss_n))
            return false;
    }
    return *p == '\0' || (p[0] == '\n' && p[1] == '\0');
}

/* A line of metrics.jsonl as a point; false for a torn or foreign line
 * (not JSON, or no numeric "step"), which is skipped. */
static bool parse_point(const char *line, hf_point *pt)
{
    if (fast_point(line, pt))
        return true;
    cJSON *p = cJSON_Parse(line);
    if (!p || !num(p, "step", &pt->step)) {
        cJSON_Delete(p);
        return false;
    }
    pt->has_grad_norm = num(p, "grad_norm", &pt->grad_norm);
    pt->has_lr = num(p, "lr", &pt->lr);
    pt->has_loss = num(p, "loss_avg", &pt->loss) || num(p, "loss", &pt->loss);
    pt->has_eval_loss = num(p, "eval_loss", &pt->eval_loss);
    cJSON_Delete(p);
    return true;
}

/* ---- a buffered writer on the temp file's descriptor ------------------ */

typedef struct out_buf {
    int fd;
    int err;              /* first write error, as -errno */
    size_t n;
    char buf[1 << 16];
} out_buf;

static void out_flush(out_buf *o)
{
    size_t done = 0;
    while (o->err == 0 && done < o->n) {
        ssize_t w = write(o->fd, o->buf + done, o->n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            o->err = -errno;
        else
            done += (size_t)w;
    }
    o->n = 0;
}

static void out_str(out_buf *o, const char *s)
{
    size_t len = strlen(s);
    if (o->n + len > sizeof o->buf)
        out_flush(o);
    if (len > sizeof o->buf) {   /* never: our texts are short */
        o->err = o->err ? o->err : -EOVERFLOW;
        return;
    }
    memcpy(o->buf + o->n, s, len);
    o->n += len;
}

/* "key":v with json_exact_numbers' text; null when v is not finite, as
 * cJSON prints it. */
static void out_num(out_buf *o, const char *key, double v)
{
    char text[64];
    if (isfinite(v))
        json_format_exact(v, text, sizeof text);
    else
        snprintf(text, sizeof text, "null");
    out_str(o, "\"");
    out_str(o, key);
    out_str(o, "\":");
    out_str(o, text);
}

/* "key": and the exact text of the number text t (n bytes) of a line in
 * the runner's shape: t itself re-laid-out when exact_text can, else
 * converted as any other. */
static void out_text_num(out_buf *o, const char *key, const char *t, size_t n)
{
    char text[64];
    if (exact_text(t, n, true, text)) {
        out_str(o, "\"");
        out_str(o, key);
        out_str(o, "\":");
        out_str(o, text);
        return;
    }
    memcpy(text, t, n);
    text[n] = '\0';
    out_num(o, key, strtod(text, NULL));
}

/* ---- one pass --------------------------------------------------------- */

typedef struct history_facts {
    double best;          /* lowest eval_loss, NAN when none */
    double last_step;     /* 0 when no point */
} history_facts;

/* log_history's entries, comma-separated: a point's own and, when it has
 * eval_loss, an eval entry after it; and, on the way, the facts the head
 * of the document needs. */
static void write_history(FILE *f, out_buf *o, history_facts *h)
{
    char *line = NULL;
    size_t cap = 0;
    bool first = true;
    hf_point pt;
    text_point tp;
    char tbuf[48];
    h->best = NAN;
    h->last_step = 0;
    while (getline(&line, &cap, f) > 0 && o->err == 0) {
        if (text_point_of(line, &tp)) {
            out_str(o, first ? "{\"epoch\":null," : ",{\"epoch\":null,");
            first = false;
            out_text_num(o, "grad_norm", tp.grad_norm, tp.grad_norm_n);
            out_str(o, ",");
            out_text_num(o, "learning_rate", tp.lr, tp.lr_n);
            out_str(o, ",");
            out_text_num(o, "loss", tp.loss, tp.loss_n);
            out_str(o, ",");
            out_text_num(o, "step", tp.step, tp.step_n);
            out_str(o, "}");
            memcpy(tbuf, tp.step, tp.step_n);
            tbuf[tp.step_n] = '\0';
            h->last_step = strtod(tbuf, NULL);
            if (tp.eval_loss) {
                out_str(o, ",{\"epoch\":null,");
                out_text_num(o, "eval_loss", tp.eval_loss, tp.eval_loss_n);
                out_str(o, ",");
                out_text_num(o, "step", tp.step, tp.step_n);
                out_str(o, "}");
                memcpy(tbuf, tp.eval_loss, tp.eval_loss_n);
                tbuf[tp.eval_loss_n] = '\0';
                double ev = strtod(tbuf, NULL);
                if (isnan(h->best) || ev < h->best)
                    h->best = ev;
            }
            continue;
        }
        if (!parse_point(line, &pt))
            continue;
        out_str(o, first ? "{\"epoch\":null" : ",{\"epoch\":null");
        first = false;
        if (pt.has_grad_norm) {
            out_str(o, ",");
            out_num(o, "grad_norm", pt.grad_norm);
        }
        if (pt.has_lr) {
            out_str(o, ",");
            out_num(o, "learning_rate", pt.lr);
        }
        if (pt.has_loss) {
            out_str(o, ",");
            out_num(o, "loss", pt.loss);
        }
        out_str(o, ",");
        out_num(o, "step", pt.step);
        out_str(o, "}");
        if (pt.has_eval_loss) {
            out_str(o, ",{\"epoch\":null,");
            out_num(o, "eval_loss", pt.eval_loss);
            out_str(o, ",");
            out_num(o, "step", pt.step);
            out_str(o, "}");
            if (isnan(h->best) || pt.eval_loss < h->best)
                h->best = pt.eval_loss;
        }
        h->last_step = pt.step;
    }
    free(line);
}

/* The head of the document, in the key order HF and the former cJSON tree
 * had, up to log_history's '['. */
static void write_head(const history_facts *h, const run_config *cfg, out_buf *o)
{
    out_str(o, "{");
    if (isnan(h->best))
        out_str(o, "\"best_metric\":null");
    else
        out_num(o, "best_metric", h->best);
    out_str(o, ",\"best_model_checkpoint\":null,\"epoch\":null,");
    out_num(o, "eval_steps", (double)cfg->train.eval_every);
    out_str(o, ",");
    out_num(o, "global_step", h->last_step);
    out_str(o, ",\"is_hyper_param_search\":false,\"is_local_process_zero\":true,"
               "\"is_world_process_zero\":true,\"log_history\":[");
}

/* From log_history's ']' to the end. */
static void write_tail(const run_config *cfg, out_buf *o)
{
    out_str(o, "],");
    out_num(o, "logging_steps", (double)cfg->train.log_every);
    out_str(o, ",");
    out_num(o, "max_steps", (double)cfg->sched.total_steps);
    out_str(o, ",\"num_input_tokens_seen\":0,\"num_train_epochs\":0,");
    out_num(o, "save_steps", (double)cfg->train.checkpoint_every);
    out_str(o, ",\"total_flos\":0,");
    out_num(o, "train_batch_size", cfg->data.batch_size);
    out_str(o, ",\"trial_name\":null,\"trial_params\":null}");
    out_flush(o);
}

/* len bytes of from (at its offset 0) appended to to: copy_file_range (a
 * copy in the kernel, or a reflink), else read and write. */
static int copy_fd(int from, int to, off_t len)
{
    off_t in = 0;
    bool kernel = true;
    char *buf = NULL;
    while (in < len) {
        ssize_t n;
        if (kernel) {
            n = copy_file_range(from, &in, to, NULL, (size_t)(len - in), 0);
            if (n < 0 && (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP)) {
                kernel = false;
                continue;
            }
        } else {
            if (!buf)
                buf = xmalloc(1 << 16);
            n = pread(from, buf, (size_t)(len - in > (1 << 16) ? (1 << 16) : len - in), in);
            for (ssize_t done = 0; n > 0 && done < n;) {
                ssize_t w = write(to, buf + done, (size_t)(n - done));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w < 0) {
                    n = -1;
                    break;
                }
                done += w;
            }
            if (n > 0)
                in += n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            return -e;
        }
    }
    free(buf);
    return 0;
}

int hf_write_trainer_state(const char *out_dir, const run_config *cfg, char *err, size_t errlen)
{
    char *mpath = xasprintf("%s/metrics.jsonl", out_dir);
    FILE *f = fopen(mpath, "re");
    free(mpath);
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "cannot read metrics.jsonl: %s", strerror(e));
        return -e;
    }
    /* log_history first, into an unnamed file beside (the head needs
     * best_metric and global_step, known at the end), then the document:
     * head, a copy of that file, tail. */
    int hist = open(out_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (hist < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot write trainer_state.json: %s", strerror(e));
        fclose(f);
        return -e;
    }
    out_buf *o = xmalloc(sizeof *o);
    *o = (out_buf){.fd = hist};
    history_facts h;
    write_history(f, o, &h);
    out_flush(o);
    int rc = o->err ? o->err : ferror(f) ? -EIO : 0;
    off_t hist_len = rc == 0 ? lseek(hist, 0, SEEK_CUR) : 0;
    if (rc == 0 && hist_len < 0)
        rc = -errno;
    fclose(f);
    char *path = xasprintf("%s/trainer_state.json", out_dir);
    atomic_file af;
    if (rc == 0)
        rc = atomic_file_open(&af, path, 0644);
    if (rc == 0) {
        *o = (out_buf){.fd = af.fd};
        write_head(&h, cfg, o);
        out_flush(o);
        rc = o->err ? o->err : copy_fd(hist, af.fd, hist_len);
        if (rc == 0) {
            write_tail(cfg, o);
            rc = o->err;
        }
        if (rc == 0)
            rc = atomic_file_commit(&af);
        else
            atomic_file_abort(&af);
    }
    if (rc < 0)
        snprintf(err, errlen, "cannot write trainer_state.json: %s", strerror(-rc));
    close(hist);
    free(o);
    free(path);
    return rc;
}

/*
 * hf_state — trainer_state.json from metrics.jsonl.  See traind/hf_state.h.
 *
 * Streamed, in constant memory whatever the history's length: the document
 * is printed as it goes, never built as a tree (a tree of 1.37 M points
 * took 1.16 GB and 12.8 s, at every stop).  One pass over the lines of
 * metrics.jsonl not seen yet appends their log_history to the cache beside
 * it (see "the cache" below; an unnamed file when there is none to be had)
 * and carries on what the head of the document needs (best_metric,
 * global_step); the document is then the head, a kernel copy of the
 * cache's log_history, and the tail.  A line in the runner's
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
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
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

/* ---- a buffered writer on a descriptor (or in memory: fd -1) ---------- */

typedef struct out_buf {
    int fd;
    int err;              /* first write error, as -errno */
    size_t n;
    char buf[1 << 16];
} out_buf;

static void out_flush(out_buf *o)
{
    size_t done = 0;
    if (o->fd < 0) {      /* a buffer in memory only (never: one line's entries are short) */
        if (o->n > 0 && o->err == 0)
            o->err = -EOVERFLOW;
        return;
    }
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


/* ---- one line --------------------------------------------------------- */

/* What the head of the document needs from the history so far, and
 * whether log_history has an entry yet (the next one then starts with a
 * comma).  A running state: the facts after lines a + b are those after a,
 * carried on through b — what lets the cache resume where it stopped. */
typedef struct history_facts {
    double best;          /* lowest eval_loss, NAN when none */
    double last_step;     /* 0 when no point */
    bool any;             /* an entry written */
} history_facts;

static const history_facts NO_HISTORY = {.best = NAN, .last_step = 0, .any = false};

/* One line of metrics.jsonl as log_history's entries: a point's own and,
 * when it has eval_loss, an eval entry after it; a torn or foreign line
 * gives none. */
static void history_line(const char *line, out_buf *o, history_facts *h)
{
    hf_point pt;
    text_point tp;
    char tbuf[48];
    if (text_point_of(line, &tp)) {
        out_str(o, h->any ? ",{\"epoch\":null," : "{\"epoch\":null,");
        h->any = true;
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
        return;
    }
    if (!parse_point(line, &pt))
        return;
    out_str(o, h->any ? ",{\"epoch\":null" : "{\"epoch\":null");
    h->any = true;
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

/* len bytes of from at start appended to to: copy_file_range (a copy in
 * the kernel, or a reflink), else read and write. */
static int copy_fd(int from, off_t start, int to, off_t len)
{
    off_t in = start, end = start + len;
    bool kernel = true;
    char *buf = NULL;
    while (in < end) {
        ssize_t n;
        if (kernel) {
            n = copy_file_range(from, &in, to, NULL, (size_t)(end - in), 0);
            if (n < 0 && (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP)) {
                kernel = false;
                continue;
            }
        } else {
            if (!buf)
                buf = xmalloc(1 << 16);
            n = pread(from, buf, (size_t)(end - in > (1 << 16) ? (1 << 16) : end - in), in);
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

/* ---- the cache: log_history so far, beside metrics.jsonl ---------------
 *
 * out_dir/.trainer_state.cache (HF_CACHE_NAME) is a fixed head of
 * CACHE_HEAD bytes, then the log_history text of metrics.jsonl's first
 * `covered` bytes (whole lines), exactly as the one pass writes it,
 * separators included.  The head says which file and how much of it
 * (device, inode, covered, CRC-32s of the covered prefix's first and last
 * 4 KiB — the last line's bytes among them), the facts after those lines,
 * log_history's length, and a CRC-32 of itself.
 *
 * Only metrics.jsonl's bytes past `covered` are parsed: each stop, and
 * each checkpoint (hf_cache_update), costs the lines written since the
 * last, whatever the history's length.
 *
 * Committing: log_history's new bytes are appended past the committed
 * length, fdatasync'd, and only then is the head rewritten (one pwrite of
 * CACHE_HEAD bytes at 0, CRC'd).  A process killed at any point leaves the
 * old head (describing bytes that were all written before it) or the new
 * one; bytes past the committed length are cut off before the next append.
 * A head that does not check — torn, foreign, of another file, covering
 * more than metrics.jsonl holds or bytes that have changed under it — is
 * thrown away and the cache rebuilt from the first line: first the head is
 * zeroed (so that a kill leaves no head to trust), then the file cut to it.
 * Whoever cuts metrics.jsonl back or replaces it (the runner's resume and
 * fork start, the daemon's thinning) removes the cache first (hf_cache_cut,
 * hf_cache_remove); the checks catch whatever else rewrote it. */

enum { CACHE_HEAD = 256, CACHE_WINDOW = 4096 };

static const char CACHE_MAGIC[8] = "TDHFC01\n";

typedef struct cache_head {
    char magic[8];
    uint64_t dev, ino;         /* metrics.jsonl's */
    uint64_t covered;          /* its bytes covered: whole lines */
    uint64_t hist_len;         /* log_history's bytes after the head */
    uint64_t best, last_step;  /* history_facts' doubles, as bits */
    uint32_t any;
    uint32_t first_crc, last_crc;  /* CRC-32 of covered's first, last min(covered, CACHE_WINDOW) bytes */
    uint32_t crc;              /* of the bytes before it */
} cache_head;

_Static_assert(sizeof(cache_head) <= CACHE_HEAD, "the cache head outgrew its room");

typedef struct hist_cache {
    int fd;                    /* the cache, or an unnamed file when there is none to be had */
    bool keep;                 /* the cache: a head at 0 to check and commit */
    off_t base;                /* log_history's start in fd: CACHE_HEAD, or 0 */
    uint64_t covered, hist_len;
    history_facts facts;       /* after the covered lines */
} hist_cache;

static size_t pread_full(int fd, void *buf, size_t n, off_t at)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, at + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static int pwrite_full(int fd, const void *buf, size_t n, off_t at)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(fd, (const char *)buf + done, n - done, at + (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        done += (size_t)w;
    }
    return 0;
}

/* CRC-32 of metrics.jsonl's len (<= CACHE_WINDOW) bytes at at. */
static int window_crc(int mfd, uint64_t at, uint64_t len, uint32_t *out)
{
    char buf[CACHE_WINDOW];
    if (pread_full(mfd, buf, (size_t)len, (off_t)at) != (size_t)len)
        return -EIO;
    *out = crc32_update(0, buf, (size_t)len);
    return 0;
}

static int prefix_crcs(int mfd, uint64_t covered, uint32_t *first, uint32_t *last)
{
    uint64_t w = covered < CACHE_WINDOW ? covered : CACHE_WINDOW;
    int rc = window_crc(mfd, 0, w, first);
    return rc ? rc : window_crc(mfd, covered - w, w, last);
}

static uint32_t head_crc(const cache_head *h)
{
    return crc32_update(0, h, offsetof(cache_head, crc));
}

/* Whether the head read from cfd describes metrics.jsonl (mfd, *mst) as it
 * is now. */
static bool cache_head_valid(int cfd, const cache_head *h, int mfd, const struct stat *mst)
{
    struct stat cst;
    if (memcmp(h->magic, CACHE_MAGIC, sizeof h->magic) != 0 || h->crc != head_crc(h) || fstat(cfd, &cst) < 0)
        return false;
    if ((uint64_t)cst.st_size < CACHE_HEAD || h->hist_len > (uint64_t)cst.st_size - CACHE_HEAD ||
        (h->hist_len > 0) != (h->any != 0))
        return false;
    if (h->dev != (uint64_t)mst->st_dev || h->ino != (uint64_t)mst->st_ino || h->covered > (uint64_t)mst->st_size)
        return false;
    uint32_t first, last;
    return prefix_crcs(mfd, h->covered, &first, &last) == 0 && first == h->first_crc && last == h->last_crc;
}

/* Opens (creates) the cache, locked; -errno when it is not a regular file
 * of ours to use (a planted link or FIFO, another writer at it). */
static int cache_open(const char *out_dir)
{
    char *path = xasprintf("%s/" HF_CACHE_NAME, out_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    free(path);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL : 0;
    if (rc == 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
        rc = -errno;
    if (rc < 0)
        close(fd);
    return rc < 0 ? rc : fd;
}

/* Takes the cache's committed state when it describes metrics.jsonl, else
 * starts it over (empty).  Either way fd's bytes past the committed end
 * are gone, so that appends go right after it. */
static int cache_load(hist_cache *c, int mfd, const struct stat *mst)
{
    cache_head h;
    memset(&h, 0, sizeof h);
    bool ok = pread_full(c->fd, &h, sizeof h, 0) == sizeof h && cache_head_valid(c->fd, &h, mfd, mst);
    if (ok) {
        c->covered = h.covered;
        c->hist_len = h.hist_len;
        memcpy(&c->facts.best, &h.best, sizeof c->facts.best);
        memcpy(&c->facts.last_step, &h.last_step, sizeof c->facts.last_step);
        c->facts.any = h.any != 0;
    } else {
        c->covered = c->hist_len = 0;
        c->facts = NO_HISTORY;
        /* no head to trust first, then nothing after it */
        char zero[CACHE_HEAD] = {0};
        int rc = pwrite_full(c->fd, zero, sizeof zero, 0);
        if (rc < 0)
            return rc;
    }
    struct stat cst;
    if (fstat(c->fd, &cst) < 0)
        return -errno;
    off_t end = c->base + (off_t)c->hist_len;
    if (cst.st_size != end && ftruncate(c->fd, end) < 0)
        return -errno;
    return 0;
}

/* The new state as the committed one: log_history's bytes on disk first,
 * then the head that names them. */
static int cache_commit(hist_cache *c, int mfd, const struct stat *mst, bool grew)
{
    cache_head h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CACHE_MAGIC, sizeof h.magic);
    h.dev = (uint64_t)mst->st_dev;
    h.ino = (uint64_t)mst->st_ino;
    h.covered = c->covered;
    h.hist_len = c->hist_len;
    memcpy(&h.best, &c->facts.best, sizeof h.best);
    memcpy(&h.last_step, &c->facts.last_step, sizeof h.last_step);
    h.any = c->facts.any;
    int rc = prefix_crcs(mfd, c->covered, &h.first_crc, &h.last_crc);
    if (rc < 0)
        return rc;
    h.crc = head_crc(&h);
    if (grew && fdatasync(c->fd) < 0)
        return -errno;
    char buf[CACHE_HEAD] = {0};
    memcpy(buf, &h, sizeof h);
    return pwrite_full(c->fd, buf, sizeof buf, 0);
}

/* The cache of out_dir ready to go on from (c->keep), or, when there is
 * none to be had and scratch, an unnamed file to write log_history into
 * from the first line. */
static int cache_begin(const char *out_dir, hist_cache *c, int mfd, const struct stat *mst, bool scratch)
{
    *c = (hist_cache){.fd = -1, .facts = NO_HISTORY};
    int fd = cache_open(out_dir);
    if (fd >= 0) {
        c->fd = fd;
        c->keep = true;
        c->base = CACHE_HEAD;
        int rc = cache_load(c, mfd, mst);
        if (rc == 0 || !scratch)
            return rc;
        close(fd);   /* a cache we cannot write: do without */
        *c = (hist_cache){.fd = -1, .facts = NO_HISTORY};
    } else if (!scratch) {
        return fd;
    }
    c->fd = open(out_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    return c->fd < 0 ? -errno : 0;
}

/* metrics.jsonl (f) past what c covers into c: its whole lines appended
 * to log_history, then committed (when c is the cache).  A last line
 * without its newline (a writer killed mid-line, or one not done) is never
 * covered; with torn, its entries go there and *doc is the facts after it
 * (otherwise the covered lines'). */
static int cache_advance(hist_cache *c, FILE *f, const struct stat *mst, out_buf *o, out_buf *torn,
                         history_facts *doc)
{
    int mfd = fileno(f);
    if (fseeko(f, (off_t)c->covered, SEEK_SET) < 0 || lseek(c->fd, c->base + (off_t)c->hist_len, SEEK_SET) < 0)
        return -errno;
    *o = (out_buf){.fd = c->fd};
    uint64_t covered0 = c->covered;
    bool partial = false;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (o->err == 0 && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') {
            partial = true;
            break;
        }
        history_line(line, o, &c->facts);
        c->covered += (uint64_t)len;
    }
    history_facts fin = c->facts;
    if (partial && torn)
        history_line(line, torn, &fin);
    free(line);
    off_t start = c->base + (off_t)c->hist_len;
    out_flush(o);
    int rc = o->err ? o->err : ferror(f) ? -EIO : torn && torn->err ? torn->err : 0;
    off_t end = rc == 0 ? lseek(c->fd, 0, SEEK_CUR) : 0;
    if (rc == 0 && end < 0)
        rc = -errno;
    if (rc < 0)
        return rc;
    c->hist_len = (uint64_t)(end - c->base);
    if (doc)
        *doc = fin;
    if (c->keep && c->covered != covered0) {
        rc = cache_commit(c, mfd, mst, end != start);
        if (rc < 0 && torn)
            rc = 0;   /* log_history is whole in fd: the document can still be written */
    }
    return rc;
}

static FILE *open_metrics(const char *out_dir, struct stat *st)
{
    char *mpath = xasprintf("%s/metrics.jsonl", out_dir);
    FILE *f = fopen(mpath, "re");
    free(mpath);
    if (f && fstat(fileno(f), st) < 0) {
        int e = errno;
        fclose(f);
        errno = e;
        return NULL;
    }
    return f;
}

int hf_cache_update(const char *out_dir)
{
    struct stat mst;
    FILE *f = open_metrics(out_dir, &mst);
    if (!f)
        return -errno;
    hist_cache c;
    int rc = cache_begin(out_dir, &c, fileno(f), &mst, false);
    if (rc == 0) {
        out_buf *o = xmalloc(sizeof *o);
        rc = cache_advance(&c, f, &mst, o, NULL, NULL);
        free(o);
    }
    if (c.fd >= 0)
        close(c.fd);
    fclose(f);
    return rc;
}

int hf_cache_remove(const char *out_dir)
{
    char *path = xasprintf("%s/" HF_CACHE_NAME, out_dir);
    int rc = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
    free(path);
    return rc;
}

int hf_cache_cut(const char *out_dir, uint64_t keep)
{
    char *path = xasprintf("%s/" HF_CACHE_NAME, out_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    free(path);
    if (fd < 0 && errno == ENOENT)
        return 0;
    cache_head h;
    memset(&h, 0, sizeof h);
    struct stat st;
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && pread_full(fd, &h, sizeof h, 0) == sizeof h &&
              memcmp(h.magic, CACHE_MAGIC, sizeof h.magic) == 0 && h.crc == head_crc(&h) && h.covered <= keep;
    if (fd >= 0)
        close(fd);
    return ok ? 0 : hf_cache_remove(out_dir);
}

int hf_write_trainer_state(const char *out_dir, const run_config *cfg, char *err, size_t errlen)
{
    struct stat mst;
    FILE *f = open_metrics(out_dir, &mst);
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "cannot read metrics.jsonl: %s", strerror(e));
        return -e;
    }
    /* log_history first: the cache brought up to date (or, without one, an
     * unnamed file beside), since the head needs best_metric and
     * global_step, known at the end; then the document: head, a copy of
     * log_history, a torn last line's entries, tail. */
    hist_cache c;
    int rc = cache_begin(out_dir, &c, fileno(f), &mst, true);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write trainer_state.json: %s", strerror(-rc));
        fclose(f);
        return rc;
    }
    out_buf *o = xmalloc(sizeof *o), *torn = xmalloc(sizeof *torn);
    *torn = (out_buf){.fd = -1};
    history_facts h;
    rc = cache_advance(&c, f, &mst, o, torn, &h);
    fclose(f);
    char *path = xasprintf("%s/trainer_state.json", out_dir);
    atomic_file af;
    if (rc == 0)
        rc = atomic_file_open(&af, path, 0644);
    if (rc == 0) {
        *o = (out_buf){.fd = af.fd};
        write_head(&h, cfg, o);
        out_flush(o);
        rc = o->err ? o->err : copy_fd(c.fd, c.base, af.fd, (off_t)c.hist_len);
        if (rc == 0) {
            if (torn->n > 0) {
                memcpy(o->buf, torn->buf, torn->n);
                o->n = torn->n;
            }
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
    close(c.fd);
    free(torn);
    free(o);
    free(path);
    return rc;
}

/*
 * hf_state — trainer_state.json from metrics.jsonl.  See traind/hf_state.h.
 *
 * Streamed, in constant memory whatever the history's length: the document
 * is printed as it goes, never built as a tree (a tree of 1.37 M points
 * took 1.16 GB and 12.8 s, at every stop).  Two passes over metrics.jsonl:
 * the first finds what the head of the document needs (best_metric,
 * global_step), the second writes log_history entry by entry.  The text is
 * byte for byte what cJSON_PrintUnformatted gives for the same document
 * after json_exact_numbers (the key order, "null" for a non-finite number):
 * test_hf_state compares the two on generated histories.
 */
#include "traind/hf_state.h"

#include <cjson/cJSON.h>
#include <errno.h>
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

/* ---- the two passes --------------------------------------------------- */

typedef struct history_facts {
    double best;          /* lowest eval_loss, NAN when none */
    double last_step;     /* 0 when no point */
} history_facts;

static void scan_facts(FILE *f, history_facts *h)
{
    h->best = NAN;
    h->last_step = 0;
    char *line = NULL;
    size_t cap = 0;
    hf_point pt;
    while (getline(&line, &cap, f) > 0) {
        if (!parse_point(line, &pt))
            continue;
        if (pt.has_eval_loss && (isnan(h->best) || pt.eval_loss < h->best))
            h->best = pt.eval_loss;
        h->last_step = pt.step;
    }
    free(line);
}

/* log_history's entries, comma-separated: a point's own and, when it has
 * eval_loss, an eval entry after it. */
static void write_history(FILE *f, out_buf *o)
{
    char *line = NULL;
    size_t cap = 0;
    bool first = true;
    hf_point pt;
    while (getline(&line, &cap, f) > 0 && o->err == 0) {
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
        }
    }
    free(line);
}

/* The document, in the key order HF and the former cJSON tree had. */
static void write_document(FILE *f, const history_facts *h, const run_config *cfg, out_buf *o)
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
    write_history(f, o);
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
    history_facts h;
    scan_facts(f, &h);
    int rc = ferror(f) ? -EIO : 0;
    if (rc == 0 && fseek(f, 0, SEEK_SET) != 0)
        rc = -errno;
    if (rc < 0) {
        snprintf(err, errlen, "cannot read metrics.jsonl: %s", strerror(-rc));
        fclose(f);
        return rc;
    }
    char *path = xasprintf("%s/trainer_state.json", out_dir);
    atomic_file af;
    rc = atomic_file_open(&af, path, 0644);
    if (rc == 0) {
        out_buf *o = xmalloc(sizeof *o);
        o->fd = af.fd;
        o->err = 0;
        o->n = 0;
        write_document(f, &h, cfg, o);
        rc = o->err ? o->err : ferror(f) ? -EIO : 0;
        free(o);
        if (rc == 0)
            rc = atomic_file_commit(&af);
        else
            atomic_file_abort(&af);
    }
    if (rc < 0)
        snprintf(err, errlen, "cannot write trainer_state.json: %s", strerror(-rc));
    fclose(f);
    free(path);
    return rc;
}

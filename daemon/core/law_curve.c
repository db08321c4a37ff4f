/*
 * law_curve — loss curves for the laws (traind/law.h): a directory's
 * losses (metrics.jsonl or loss.csv) and lrs (config.yaml or lrs.txt).
 * Every error names the file, and the line where there is one.
 */
#include "traind/law.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "traind/schedule.h"
#include "traind/util.h"

/* Curves of up to 10M steps and 10M points: far past any run, short of exhausting memory. */
#define LAW_MAX_STEPS 10000000L
#define LAW_MAX_FILE ((size_t)1 << 30)

void law_curve_free(law_curve *c)
{
    if (!c)
        return;
    free(c->name), free(c->path), free(c->lr), free(c->step), free(c->loss);
    memset(c, 0, sizeof *c);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* path's text (at most LAW_MAX_FILE bytes), or NULL with why in err. */
static char *read_text(const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len;
    int rc = read_file(path, LAW_MAX_FILE, &text, &len);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return NULL;
    }
    return text;
}

/* The next line of text (NUL-terminating it in place) or NULL at the end. */
static char *next_line(char **cur)
{
    char *s = *cur;
    if (!s || !*s)
        return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = 0;
        *cur = nl + 1;
    } else {
        *cur = s + strlen(s);
    }
    size_t n = strlen(s);
    if (n && s[n - 1] == '\r')
        s[n - 1] = 0;
    return s;
}

static bool blank(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return !*s;
}

/* A whole field as a double: 0, or -1 when it is not a number. */
static int parse_double(const char *s, double *out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (*end || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

static int load_lrs_txt(const char *path, law_curve *c, char *err, size_t errlen)
{
    char *text = read_text(path, err, errlen);
    if (!text)
        return -1;
    size_t cap = 1024, n = 0;
    double *lr = xmalloc(cap * sizeof *lr);
    char *cur = text, *line;
    int lineno = 0, last_blank = 0;
    while ((line = next_line(&cur))) {
        lineno++;
        if (blank(line)) {
            if (!last_blank)
                last_blank = lineno;
            continue;
        }
        if (last_blank) {
            snprintf(err, errlen, "%s:%d: an empty line inside the lrs (one lr per line, for steps 0, 1, 2, ...)",
                     path, last_blank);
            goto fail;
        }
        double v;
        if (parse_double(line, &v) != 0 || !isfinite(v) || v < 0) {
            snprintf(err, errlen, "%s:%d: \"%.40s\" is not an lr (a finite number >= 0)", path, lineno, line);
            goto fail;
        }
        if (n == cap)
            lr = xrealloc(lr, (cap *= 2) * sizeof *lr);
        if ((long)n >= LAW_MAX_STEPS) {
            snprintf(err, errlen, "%s:%d: more than %ld steps", path, lineno, LAW_MAX_STEPS);
            goto fail;
        }
        lr[n++] = v;
    }
    if (n == 0) {
        snprintf(err, errlen, "%s: no lrs (one per line, for steps 0, 1, 2, ...)", path);
        goto fail;
    }
    free(text);
    c->lr = lr;
    c->n_steps = (long)n;
    return 0;
fail:
    free(text), free(lr);
    return -1;
}

int law_curve_from_lrs(const char *name, const double *lr, long n_steps, law_curve *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (n_steps < 1 || n_steps > LAW_MAX_STEPS) {
        snprintf(err, errlen, "%s: %ld steps (1 to %ld)", name ? name : "curve", n_steps, LAW_MAX_STEPS);
        return -1;
    }
    for (long s = 0; s < n_steps; s++)
        if (!isfinite(lr[s]) || lr[s] < 0) {
            snprintf(err, errlen, "%s: the lr at step %ld is %g (a finite number >= 0)", name ? name : "curve", s,
                     lr[s]);
            return -1;
        }
    out->name = xstrdup(name ? name : "curve");
    out->n_steps = n_steps;
    out->lr = xmalloc((size_t)n_steps * sizeof *out->lr);
    memcpy(out->lr, lr, (size_t)n_steps * sizeof *out->lr);
    return 0;
}

int law_curve_from_config(const run_config *cfg, const char *name, law_curve *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    long T = cfg->sched.total_steps;
    if (T < 1 || T > LAW_MAX_STEPS) {
        snprintf(err, errlen, "%s: schedule.total_steps %ld (1 to %ld)", name ? name : cfg->name, T, LAW_MAX_STEPS);
        return -1;
    }
    out->name = xstrdup(name ? name : cfg->name ? cfg->name : "config");
    out->n_steps = T;
    out->lr = xmalloc((size_t)T * sizeof *out->lr);
    for (long s = 0; s < T; s++)
        out->lr[s] = sched_lr(&cfg->sched, cfg->optim.lr, s);
    return 0;
}

static int load_config_lrs(const char *path, law_curve *c, char *err, size_t errlen)
{
    run_config cfg;
    diag_list_t errs = DIAG_LIST_INIT;
    if (cfg_load_file(path, NULL, &cfg, &errs) != 0) {
        if (errs.n) {
            const diag_t *d = &errs.items[0];
            if (d->line)
                snprintf(err, errlen, "%s:%d: %s%s%s", path, d->line, d->path && *d->path ? d->path : "",
                         d->path && *d->path ? ": " : "", d->message);
            else
                snprintf(err, errlen, "%s: %s%s%s", path, d->path && *d->path ? d->path : "",
                         d->path && *d->path ? ": " : "", d->message);
        } else {
            snprintf(err, errlen, "%s: not a valid run config", path);
        }
        diag_free(&errs);
        return -1;
    }
    diag_free(&errs);
    law_curve tmp;
    int rc = law_curve_from_config(&cfg, NULL, &tmp, err, errlen);
    cfg_free(&cfg);
    if (rc != 0)
        return -1;
    c->lr = tmp.lr;
    c->n_steps = tmp.n_steps;
    free(tmp.name);
    return 0;
}

typedef struct points {
    size_t n, cap;
    long *step;
    double *loss;
    int *line;      /* each point's line in its file (for "past the schedule") */
} points;

static void points_add(points *p, long step, double loss, int line)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 256;
        p->step = xrealloc(p->step, p->cap * sizeof *p->step);
        p->loss = xrealloc(p->loss, p->cap * sizeof *p->loss);
        p->line = xrealloc(p->line, p->cap * sizeof *p->line);
    }
    p->step[p->n] = step;
    p->loss[p->n] = loss;
    p->line[p->n] = line;
    p->n++;
}

static void points_free(points *p)
{
    free(p->step), free(p->loss), free(p->line);
}

/* A point's checks shared by both formats: a finite loss > 0 and steps increasing. */
static int point_ok(const char *path, int lineno, const points *p, long step, double loss, const char *what,
                    char *err, size_t errlen)
{
    if (isnan(loss)) {
        snprintf(err, errlen, "%s:%d: the %s is NaN (the run diverged here?)", path, lineno, what);
        return -1;
    }
    if (!isfinite(loss) || loss <= 0) {
        snprintf(err, errlen, "%s:%d: the %s is %g (the laws need a finite loss > 0)", path, lineno, what, loss);
        return -1;
    }
    if (p->n && step <= p->step[p->n - 1]) {
        snprintf(err, errlen, "%s:%d: step %ld after step %ld (steps must increase)", path, lineno, step,
                 p->step[p->n - 1]);
        return -1;
    }
    return 0;
}

static int load_loss_csv(const char *path, points *p, char *err, size_t errlen)
{
    char *text = read_text(path, err, errlen);
    if (!text)
        return -1;
    char *cur = text, *line;
    int lineno = 0, col_step = -1, col_loss = -1, ncols = 0;
    while ((line = next_line(&cur))) {
        lineno++;
        if (blank(line) || line[0] == '#')
            continue;
        /* Split on commas in place. */
        char *f[64];
        int nf = 0;
        for (char *s = line;;) {
            if (nf == 64)
                break;
            f[nf++] = s;
            char *comma = strchr(s, ',');
            if (!comma)
                break;
            *comma = 0;
            s = comma + 1;
        }
        if (col_step < 0) {   /* the header */
            for (int i = 0; i < nf; i++) {
                char *s = f[i];
                while (isspace((unsigned char)*s) || *s == '"')
                    s++;
                size_t n = strlen(s);
                while (n && (isspace((unsigned char)s[n - 1]) || s[n - 1] == '"'))
                    s[--n] = 0;
                if (!strcmp(s, "step"))
                    col_step = i;
                else if (!strcmp(s, "loss"))
                    col_loss = i;
            }
            if (col_step < 0 || col_loss < 0) {
                snprintf(err, errlen, "%s:%d: the header must name a `step` and a `loss` column", path, lineno);
                goto fail;
            }
            ncols = nf;
            continue;
        }
        if (nf != ncols) {
            snprintf(err, errlen, "%s:%d: %d fields where the header has %d", path, lineno, nf, ncols);
            goto fail;
        }
        double sv, loss;
        if (parse_double(f[col_step], &sv) != 0 || sv < 0 || sv != floor(sv) || sv > (double)LAW_MAX_STEPS) {
            snprintf(err, errlen, "%s:%d: step \"%.30s\" is not a whole number >= 0", path, lineno, f[col_step]);
            goto fail;
        }
        if (parse_double(f[col_loss], &loss) != 0) {
            snprintf(err, errlen, "%s:%d: loss \"%.30s\" is not a number", path, lineno, f[col_loss]);
            goto fail;
        }
        if (point_ok(path, lineno, p, (long)sv, loss, "loss", err, errlen) != 0)
            goto fail;
        points_add(p, (long)sv, loss, lineno);
    }
    if (col_step < 0) {
        snprintf(err, errlen, "%s: empty (a header naming `step` and `loss`, then one row per point)", path);
        goto fail;
    }
    free(text);
    return 0;
fail:
    free(text);
    return -1;
}

/* metrics.jsonl: the line of step N (N updates done) is law step N-1. */
static int load_metrics(const char *path, law_metric metric, points *p, char *err, size_t errlen)
{
    char *text = read_text(path, err, errlen);
    if (!text)
        return -1;
    const char *key = law_metric_name(metric);
    char *cur = text, *line;
    int lineno = 0;
    while ((line = next_line(&cur))) {
        lineno++;
        if (blank(line))
            continue;
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            /* traind prints a NaN loss as nan, which is not JSON. */
            char pat[64];
            snprintf(pat, sizeof pat, "\"%s\":", key);
            const char *at = strstr(line, pat);
            if (at && (!strncmp(at + strlen(pat), "nan", 3) || !strncmp(at + strlen(pat), "-nan", 4)))
                snprintf(err, errlen, "%s:%d: the %s is NaN (the run diverged here?)", path, lineno, key);
            else
                snprintf(err, errlen, "%s:%d: not a JSON object", path, lineno);
            goto fail;
        }
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!v || cJSON_IsNull(v)) {   /* eval_loss is on the eval steps only */
            cJSON_Delete(o);
            continue;
        }
        if (!cJSON_IsNumber(st) || st->valuedouble < 1 || st->valuedouble != floor(st->valuedouble) ||
            st->valuedouble > (double)LAW_MAX_STEPS) {
            snprintf(err, errlen, "%s:%d: \"step\" must be a whole number >= 1", path, lineno);
            cJSON_Delete(o);
            goto fail;
        }
        if (!cJSON_IsNumber(v)) {
            snprintf(err, errlen, "%s:%d: \"%s\" is not a number", path, lineno, key);
            cJSON_Delete(o);
            goto fail;
        }
        long step = (long)st->valuedouble - 1;
        double loss = v->valuedouble;
        cJSON_Delete(o);
        if (point_ok(path, lineno, p, step, loss, key, err, errlen) != 0)
            goto fail;
        points_add(p, step, loss, lineno);
    }
    free(text);
    return 0;
fail:
    free(text);
    return -1;
}

int law_curve_load(const char *dir, law_metric metric, law_curve *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *metrics = xasprintf("%s/metrics.jsonl", dir), *csv = xasprintf("%s/loss.csv", dir);
    char *config = xasprintf("%s/config.yaml", dir), *lrs = xasprintf("%s/lrs.txt", dir);
    const char *loss_file = exists(metrics) ? metrics : exists(csv) ? csv : NULL;
    const char *lr_file = exists(config) ? config : exists(lrs) ? lrs : NULL;
    points p = {0};
    int rc = -1;
    if (!loss_file || !lr_file) {
        snprintf(err, errlen, "%s: not a curve: it needs %s", dir,
                 !loss_file && !lr_file ? "a loss (metrics.jsonl or loss.csv) and lrs (config.yaml or lrs.txt)"
                 : !loss_file           ? "a loss (metrics.jsonl or loss.csv)"
                                        : "lrs (config.yaml or lrs.txt)");
        goto out;
    }
    if (lr_file == config ? load_config_lrs(config, out, err, errlen) : load_lrs_txt(lrs, out, err, errlen))
        goto out;
    if (loss_file == metrics ? load_metrics(metrics, metric, &p, err, errlen)
                             : load_loss_csv(csv, &p, err, errlen))
        goto out;
    if (p.n == 0) {
        snprintf(err, errlen, "%s: no %s values", loss_file, loss_file == metrics ? law_metric_name(metric) : "loss");
        goto out;
    }
    for (size_t i = 0; i < p.n; i++)
        if (p.step[i] >= out->n_steps) {
            snprintf(err, errlen, "%s:%d: step %ld is past the schedule's %ld steps (%s)", loss_file, p.line[i],
                     loss_file == metrics ? p.step[i] + 1 : p.step[i], out->n_steps, lr_file);
            goto out;
        }
    out->n = p.n;
    out->step = p.step;
    out->loss = p.loss;
    p.step = NULL;
    p.loss = NULL;
    {
        /* The name: the directory's last component. */
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        size_t b = n;
        while (b > 0 && dir[b - 1] != '/')
            b--;
        out->name = xasprintf("%.*s", (int)(n - b), dir + b);
    }
    out->path = xstrdup(dir);
    rc = 0;
out:
    points_free(&p);
    if (rc != 0)
        law_curve_free(out);
    free(metrics), free(csv), free(config), free(lrs);
    return rc;
}

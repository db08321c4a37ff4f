/*
 * prom — Prometheus text format 0.0.4.  See include/traind/prom.h.
 */
#include "traind/prom.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/util.h"

void prom_buf_init(prom_buf *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
}

void prom_buf_free(prom_buf *b)
{
    free(b->p);
    prom_buf_init(b);
}

char *prom_buf_take(prom_buf *b, size_t *len)
{
    char *p = b->p ? b->p : xstrdup("");
    if (len)
        *len = b->len;
    prom_buf_init(b);
    return p;
}

static void put(prom_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(prom_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

void prom_format_value(double v, char *out, size_t n)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* the shortest of %.15g .. %.17g that reads back as the same double */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

void prom_escape_label_value(prom_buf *b, const char *v)
{
    const char *run = v;
    for (; *v; v++) {
        const char *esc = NULL;
        if (*v == '\\')
            esc = "\\\\";
        else if (*v == '"')
            esc = "\\\"";
        else if (*v == '\n')
            esc = "\\n";
        if (esc) {
            put(b, run, (size_t)(v - run));
            puts_(b, esc);
            run = v + 1;
        }
    }
    put(b, run, (size_t)(v - run));
}

/* HELP text escapes only backslash and newline. */
static void escape_help(prom_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            puts_(b, "\\\\");
        else if (*v == '\n')
            puts_(b, "\\n");
        else
            put(b, v, 1);
    }
}

void prom_family(prom_buf *b, const char *name, const char *type, const char *help)
{
    puts_(b, "# HELP ");
    puts_(b, name);
    put(b, " ", 1);
    escape_help(b, help ? help : "");
    puts_(b, "\n# TYPE ");
    puts_(b, name);
    put(b, " ", 1);
    puts_(b, type ? type : "untyped");
    put(b, "\n", 1);
}

void prom_sample(prom_buf *b, const char *name, const char *const *labels, double value)
{
    puts_(b, name);
    if (labels && labels[0]) {
        put(b, "{", 1);
        for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
            if (i)
                put(b, ",", 1);
            puts_(b, labels[i]);
            put(b, "=\"", 2);
            prom_escape_label_value(b, labels[i + 1]);
            put(b, "\"", 1);
        }
        put(b, "}", 1);
    }
    char num[64];
    prom_format_value(value, num, sizeof num);
    put(b, " ", 1);
    puts_(b, num);
    put(b, "\n", 1);
}

/* ------------------------------------------------------------------ */

typedef struct job_family {
    const char *name;
    const char *field; /* in the job object */
    const char *help;
} job_family;

static const job_family job_families[] = {
    {"traind_job_step", "step", "Updates completed by the job."},
    {"traind_job_total_steps", "total_steps", "Updates the job trains in all."},
    {"traind_job_lr", "lr", "Learning rate used by the job's last completed update."},
    {"traind_job_loss", "loss", "Training loss of the job's last completed update."},
    {"traind_job_steps_per_second", "steps_per_s", "Training speed of the job in updates per second."},
    {"traind_job_eval_loss", "eval_loss", "Latest evaluation loss of the job."},
};

static bool job_number(const cJSON *job, const char *field, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(job, field);
    if (!cJSON_IsNumber(x))
        return false;
    *v = x->valuedouble;
    return true;
}

void prom_render_traind(prom_buf *b, const cJSON *jobs, const cJSON *counts, const char *const *states,
                        double uptime_s)
{
    prom_family(b, "traind_up", "gauge", "1 while traind is serving.");
    prom_sample(b, "traind_up", NULL, 1);
    if (uptime_s >= 0) {
        prom_family(b, "traind_uptime_seconds", "gauge", "Seconds since traind started.");
        prom_sample(b, "traind_uptime_seconds", NULL, uptime_s);
    }

    prom_family(b, "traind_jobs", "gauge", "Jobs in each state.");
    for (size_t s = 0; states && states[s]; s++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(counts, states[s]);
        double n = cJSON_IsNumber(c) ? c->valuedouble : 0;
        const char *labels[] = {"state", states[s], NULL};
        prom_sample(b, "traind_jobs", labels, n);
    }

    for (size_t f = 0; f < sizeof job_families / sizeof job_families[0]; f++) {
        const job_family *jf = &job_families[f];
        bool header = false;
        const cJSON *job;
        cJSON_ArrayForEach(job, jobs)
        {
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "id"));
            double v;
            if (!id || !job_number(job, jf->field, &v))
                continue;
            if (!header) {
                prom_family(b, jf->name, "gauge", jf->help);
                header = true;
            }
            const char *labels[] = {"job", id, NULL};
            prom_sample(b, jf->name, labels, v);
        }
    }
}

/*
 * prom — Prometheus text exposition format 0.0.4, written into a growable
 * buffer: "# HELP"/"# TYPE" once per family, then its samples
 *
 *     # HELP traind_job_step Updates completed.
 *     # TYPE traind_job_step gauge
 *     traind_job_step{job="cosine-demo"} 1200
 *
 * Label values are escaped (backslash, double quote, newline), HELP text
 * too (backslash, newline); values print as Prometheus parses them (NaN,
 * +Inf, -Inf, shortest round-trip decimals).
 */
#ifndef TRAIND_PROM_H
#define TRAIND_PROM_H

#include <stddef.h>

typedef struct cJSON cJSON;

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct prom_buf {
    char *p;
    size_t len, cap;
} prom_buf;

void prom_buf_init(prom_buf *b);
void prom_buf_free(prom_buf *b);
/* The malloc'd NUL-terminated text (never NULL) and its length; b is empty after. */
char *prom_buf_take(prom_buf *b, size_t *len);

/* "# HELP name help\n# TYPE name type\n"; type is gauge, counter, untyped, ... */
void prom_family(prom_buf *b, const char *name, const char *type, const char *help);

/* "name{k1="v1",k2="v2"} value\n".  labels: NULL-terminated list of
 * key, value, key, value, ..., NULL (NULL itself for no labels). */
void prom_sample(prom_buf *b, const char *name, const char *const *labels, double value);

/* Appends v with \ " and newline escaped (the quotes are not added). */
void prom_escape_label_value(prom_buf *b, const char *v);

/* v as Prometheus writes it into out (at least 32 bytes). */
void prom_format_value(double v, char *out, size_t n);

/* traind's own families from the job objects of traind(8) THE JOB OBJECT (a cJSON array):
 * traind_up, traind_uptime_seconds (when uptime_s >= 0), traind_jobs{state}
 * for every state in states (NULL-terminated; from counts, an object
 * state → number, 0 where it has none), and per job of jobs (label job=<id>)
 * traind_job_step, traind_job_total_steps, traind_job_lr, traind_job_loss,
 * traind_job_steps_per_second, traind_job_eval_loss — each sample only when
 * the job has that number. */
void prom_render_traind(prom_buf *b, const cJSON *jobs, const cJSON *counts, const char *const *states,
                        double uptime_s);

#endif

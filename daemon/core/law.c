/*
 * law — loss-curve laws (traind/law.h).  Skeleton: the API compiles; the
 * bodies follow.
 */
#include "traind/law.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int todo(char *err, size_t errlen)
{
    snprintf(err, errlen, "not implemented yet");
    return -1;
}

int law_n_params(law_kind k) { return k == LAW_MPL ? 7 : 5; }
const char *law_kind_name(law_kind k) { return k == LAW_MPL ? "mpl" : "momentum"; }
int law_kind_parse(const char *s, law_kind *out)
{
    if (!strcmp(s, "mpl")) { *out = LAW_MPL; return 0; }
    if (!strcmp(s, "momentum")) { *out = LAW_MOMENTUM; return 0; }
    return -1;
}
const char *law_param_name(law_kind k, int i) { (void)k; (void)i; return "?"; }
int law_check(const law_t *law, char *err, size_t errlen) { return todo(err, errlen); }
const char *law_metric_name(law_metric m) { return m == LAW_METRIC_LOSS ? "loss" : m == LAW_METRIC_LOSS_AVG ? "loss_avg" : "eval_loss"; }
int law_metric_parse(const char *s, law_metric *out) { (void)s; (void)out; return -1; }
int law_curve_load(const char *dir, law_metric metric, law_curve *out, char *err, size_t errlen) { memset(out, 0, sizeof *out); return todo(err, errlen); }
int law_curve_from_config(const run_config *cfg, const char *name, law_curve *out, char *err, size_t errlen) { memset(out, 0, sizeof *out); return todo(err, errlen); }
int law_curve_from_lrs(const char *name, const double *lr, long n_steps, law_curve *out, char *err, size_t errlen) { memset(out, 0, sizeof *out); return todo(err, errlen); }
void law_curve_free(law_curve *c) { (void)c; }
int law_eval(const law_t *law, const double *lr, long n_steps, const long *steps, size_t n, double *L, double *grad, char *err, size_t errlen) { return todo(err, errlen); }
int law_eval_naive(const law_t *law, const double *lr, long n_steps, const long *steps, size_t n, double *L, char *err, size_t errlen) { return todo(err, errlen); }
int law_eval_lr_grad(const law_t *law, const double *lr, long n_steps, double *L, double *dlr, char *err, size_t errlen) { return todo(err, errlen); }
void law_quality_of(const double *obs, const double *pred, size_t n, law_quality *q) { memset(q, 0, sizeof *q); }
int law_predict_curve(const law_t *law, const law_curve *c, double *pred, law_quality *q, char *err, size_t errlen) { return todo(err, errlen); }
int law_fit(const law_curve *curves, size_t n, const law_fit_opts *opts, law_fit_result *out, char *err, size_t errlen) { memset(out, 0, sizeof *out); return todo(err, errlen); }
void law_fit_result_free(law_fit_result *r) { (void)r; }
struct cJSON *law_to_json(const law_t *law, const law_fit_result *fit, law_metric metric) { return NULL; }
int law_from_json(const struct cJSON *doc, law_t *out, char *err, size_t errlen) { return todo(err, errlen); }
int law_load_file(const char *path, law_t *out, char *err, size_t errlen) { return todo(err, errlen); }
int law_optimize(const law_t *law, const law_opt_opts *opts, law_opt_result *out, char *err, size_t errlen) { return todo(err, errlen); }
char *law_opt_yaml(const law_opt_result *r) { return NULL; }
void law_opt_sched(const law_opt_result *r, sched_cfg *s) { (void)r; (void)s; }

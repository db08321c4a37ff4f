/*
 * sweep — an experiment file: a run config with a top-level `sweep:` section
 * (traind-run.yaml(5) EXPERIMENTS), read into its trials, each one a whole, validated run config.
 *
 *   sweep:
 *     method: grid | random          grid: every combination, first parameter slowest
 *     metric: eval_loss | loss_avg   minimized; default eval_loss when the data has an eval split
 *     parameters: {PATH: [v, ...] | {log_uniform|uniform|int_uniform: [lo, hi]} | {choice: [...]}}
 *     trials: N                      random only
 *     seed: S                        random only; default 0
 *     max_concurrent: N              optional
 *     early_stop: {type: asha, reduction_factor: 3, min_steps: 200}
 *     fork_from: {job: ID, at_step: S}
 *     predict: {law: ID}             a fitted law (POST /laws): the trials' predicted curves
 *
 * Every PATH must be a key of the run config ("did you mean" otherwise).
 * Every trial is expanded and validated as a whole config before any is
 * used; an error in a swept value points at it in the sweep section
 * (`sweep.parameters.optimizer.lr[2]`, with its line and column) and names
 * the trial's values.  Random trials are drawn from the core's PCG stream
 * seeded by `seed`, parameter by parameter in file order: the same file
 * gives the same trials on every machine.
 */
#ifndef TRAIND_SWEEP_H
#define TRAIND_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include "traind/config.h"
#include "traind/diag.h"

#define SWEEP_DEFAULT_MAX_TRIALS 1000
#define SWEEP_MAX_PARAMS 32
/* trials × the file's YAML nodes at most: each trial clones and validates
 * the whole file, so this bounds a sweep's work whatever its size. */
#define SWEEP_MAX_WORK 500000

typedef enum { SWEEP_GRID, SWEEP_RANDOM } sweep_method;
typedef enum { SWEEP_EVAL_LOSS, SWEEP_LOSS_AVG } sweep_metric;

typedef struct sweep_trial {
    char **values;              /* n_params: each swept value as YAML flow text ("3.0e-4", "[0.9, 0.95]") */
    run_config cfg;             /* the trial's whole config, validated (name "<name>-<k>") */
    char *yaml;                 /* that config as a YAML document (its config.yaml) */
} sweep_trial;

typedef struct sweep {
    char *name;                 /* the experiment's name (the file's name: or stem) */
    sweep_method method;
    sweep_metric metric;
    size_t n_params;
    char **params;              /* "optimizer.lr", ... in file order */
    unsigned long long seed;
    long max_concurrent;        /* 0 = no cap of its own */
    bool asha;                  /* early_stop present */
    double reduction_factor;    /* asha's eta, >= 2 */
    long min_steps;             /* asha's first rung */
    char *fork_job;             /* fork_from.job, or NULL */
    long fork_step;
    char *predict_law;          /* sweep.predict.law (its form checked; whether it exists, the daemon's), or NULL */
    size_t n_trials;
    sweep_trial *trials;
} sweep;

typedef struct sweep_opts {
    cfg_parse_opts cfg;         /* how each trial is validated (default_name: the experiment's) */
    size_t max_trials;          /* 0 = SWEEP_DEFAULT_MAX_TRIALS */
} sweep_opts;

/* Does the document have a top-level `sweep` key?  (Cheap enough for
 * intake: it parses the YAML tree only.)  False for invalid YAML. */
bool sweep_is_experiment(const char *buf, size_t len);

/* Reads an experiment.  0 and *out filled (free with sweep_free), or -1
 * with every problem in errs (at most 100) and *out zeroed. */
int sweep_parse(const char *buf, size_t len, const sweep_opts *opts, sweep *out, diag_list_t *errs);
/* sweep_parse of a file; the default name is its stem. */
int sweep_load_file(const char *path, const sweep_opts *opts, sweep *out, diag_list_t *errs);
void sweep_free(sweep *s);

/* Trial k's swept values, "optimizer.lr=3e-4 schedule.type=wsd" (malloc'd). */
char *sweep_trial_label(const sweep *s, size_t k);

const char *sweep_method_name(sweep_method m);
const char *sweep_metric_name(sweep_metric m);

/* May a fork (and so a fork_from sweep) change this key?  The schedule,
 * optimizer lr / weight_decay / betas / grad_clip and the train cadences. */
bool sweep_fork_may_change(const char *path);

#endif

/*
 * experiments_internal — what the experiments*.c files share and nobody
 * else needs: the experiment record, the table, and the functions one part
 * calls in another.  Not part of any public contract (traind/experiments.h
 * is).  A map of the parts:
 *
 *   experiments.c             the table: new, free, find, an experiment made
 *                             from a parsed sweep, cancel (the one change of
 *                             state a client asks for)
 *   experiments_submit.c      submissions: a sweep file checked (exps_check)
 *                             and saved on the pool (POST /experiments and
 *                             sweep files dropped in incoming/), the Idempotency-Key
 *   experiments_drive.c       driving trials: admission (max_concurrent,
 *                             max_queued_jobs), each trial submitted as a
 *                             job under its own key, the end of an
 *                             experiment; a cancelled one's trials at start-up
 *   experiments_early_stop.c  the ASHA glue: trials paused at a rung, their
 *                             reports recorded (experiment_asha.c) and acted
 *                             on in order; promotions
 *   experiments_file.c        experiment.json: written (atomically, on the
 *                             pool, one write at a time) and read back at
 *                             start-up (exps_load) as untrusted input
 *   experiments_json.c        experiment objects out (traind(8) GET
 *                             /experiments, GET /experiments/{id})
 *
 * Every function here runs on the loop thread unless it says otherwise.
 */
#ifndef TRAIND_EXPERIMENTS_INTERNAL_H
#define TRAIND_EXPERIMENTS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "traind/durable_wait.h"
#include "traind/experiment_asha.h"
#include "traind/experiments.h"
#include "traind/spool.h"
#include "traind/sweep.h"

#define EXP_FILE "experiment.json"
#define EXP_SWEEP "sweep.yaml"
#define EXP_MAX_FILE (16u << 20)

typedef enum { EXP_RUNNING, EXP_SUCCEEDED, EXP_CANCELLED, EXP_REJECTED, EXP_FAILED } exp_state;
extern const char *const exp_state_names[EXP_FAILED + 1];   /* indexed by exp_state */

typedef struct trial {
    char *params;                    /* JSON object text of its values */
    char *yaml;                      /* its config.yaml (NULL once not needed) */
    char job[SPOOL_ID_MAX + 1];      /* "" until its job exists */
    bool submitting;
} trial;

typedef struct experiment {
    struct exp_table *e;
    char id[SPOOL_ID_MAX + 1];
    char *name, *dir;
    const char *method, *metric;     /* static names */
    bool metric_eval;
    exp_state state;
    long max_concurrent;
    char *fork_job;
    long fork_step;
    char *predict_law;               /* sweep.predict.law, or NULL */
    double submitted_at;
    trial *trials;
    size_t n_trials;
    cJSON *errors;                   /* array */
    char *idem_key;                  /* its Idempotency-Key, scoped ("post:KEY", "incoming:..."), or NULL */
    uint64_t idem_fp;                /* the fingerprint of the request (jobs_idem_fp); 0 = not known */
    bool write_inflight, dirty;
    unsigned long writes_started;    /* experiment.json writes, numbered (traind/durable_wait.h) */
    durable_wait *waiters;           /* cancels answered once their state is on disk */
    /* early stopping (experiment_asha.h): NULL without sweep.early_stop */
    exp_asha *asha;
    struct rung_report *reports;     /* trials paused at a rung, in arrival order: one recorded at a time */
    size_t n_reports, cap_reports;
    bool report_inflight;
} experiment;

typedef struct rung_report {
    size_t k;
    long step;
} rung_report;

struct exp_table {
    job_table *jobs;
    char *dir;                       /* <spool>/experiments */
    char *laws_dir;                  /* <spool>/laws (sweep.predict's laws) */
    size_t max_trials;
    char **data_dirs;
    size_t n_data_dirs;
    size_t max_model_bytes;
    experiment **v;
    size_t n, cap;
    char **keys_inflight;            /* Idempotency-Keys of submits on the thread pool */
    size_t n_keys;
};

/* experiments.c: the table */
void exp_free(experiment *x);
void exp_table_add(exp_table *e, experiment *x);
experiment *exp_find(exp_table *e, const char *id);
/* The trial's values as a JSON object text (experiment.json, trial.json, errors). */
char *exp_params_text(const sweep *s, const sweep_trial *t);
void exp_from_sweep(experiment *x, const sweep *s);

/* experiments_file.c: experiment.json */
char *exp_file_text(const experiment *x);
/* Queues a write of x's experiment.json (and tells GET /events); a write
 * under way is followed by one more. */
void exp_persist(experiment *x);

/* experiments_drive.c: trials */
/* Whether trial t's job has ended (or is gone). */
bool exp_trial_ended(exp_table *e, const trial *t);
void exp_cancel_trials_again(experiment *x);

/* experiments_early_stop.c: ASHA (jobs_pause_hooks and the drive's part) */
long early_stop_pause_at(void *ctx, const char *job_id, const char *exp_id, const char *idem_key);
void early_stop_paused(void *ctx, const char *job_id, const char *exp_id, const char *idem_key, long step);
void early_stop_drive(experiment *x);
bool early_stop_owes_trial(const experiment *x, size_t k);

#endif

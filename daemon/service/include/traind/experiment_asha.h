/*
 * experiment_asha — ASHA early stopping for one experiment in the daemon:
 * the asha state machine (asha.h) fed from the experiment's on-disk record
 * of rung reports, <spool>/experiments/<id>/asha.jsonl.
 *
 * How a trial meets its rungs: each trial's config keeps, logs and (with an
 * eval split) evaluates every rung step (train.keep_steps, set by sweep.h),
 * and its training process is started with a pause at the next rung it has
 * not passed (exp_asha_pause_at: the first rung above the highest one it
 * was promoted from).  There it checkpoints and exits; the job waits, held
 * (jobs.h), while the daemon
 *   1. reads the trial's metric at that step from its own metrics.jsonl
 *      (eval_loss or loss_avg, the sweep's metric: exp_asha_read_metric),
 *   2. appends the report {"trial","rung","step","metric"} to asha.jsonl
 *      and fsyncs it (exp_asha_record) — one report at a time per
 *      experiment, so the file's order is the order of the decisions,
 *   3. then applies it (exp_asha_apply): the trial goes on (released) or
 *      ends `stopped` with the reason, and at most one trial that stopped
 *      earlier at that rung is promoted (queued again; it resumes from its
 *      rung checkpoint, bit for bit, since trials are deterministic).
 * At start-up the record is replayed into a fresh state (exp_asha_replay):
 * the same decisions, none made twice.  A report recorded but not acted on
 * is acted on when its trial, started again with the same pause, pauses at
 * once (exp_asha_known says it was decided; asha_report returns that
 * decision); a report never recorded is made then.  A torn last line (a
 * daemon killed mid-append, before it acted) is cut off.
 *
 * asha.jsonl is untrusted at start-up: lines that do not describe a trial
 * at one of its rungs are logged and skipped.
 */
#ifndef TRAIND_EXPERIMENT_ASHA_H
#define TRAIND_EXPERIMENT_ASHA_H

#include <stdbool.h>
#include <stddef.h>
#include "traind/asha.h"

struct cJSON;

#define EXP_ASHA_FILE "asha.jsonl"

typedef struct exp_asha exp_asha;

/* Rungs at min_steps·eta^k below total_steps (the longest trial's); rungs
 * at or below fork_step (a fork_from sweep's start; -1 = none) are never
 * paused at.  NULL for invalid parameters (sweep.h checked them). */
exp_asha *exp_asha_new(double eta, long min_steps, long total_steps, long fork_step, size_t n_trials);
void exp_asha_free(exp_asha *a);

/* Reads dir/asha.jsonl (blocking: start-up), cutting off a torn last line,
 * and replays every report.  0 (no file: nothing yet), or -errno. */
int exp_asha_replay(exp_asha *a, const char *dir);

/* The step trial k's next start pauses at; 0 = none (past its last rung). */
long exp_asha_pause_at(const exp_asha *a, size_t k);
/* The rung at step, or -1. */
int exp_asha_rung_at(const exp_asha *a, long step);
/* Has trial k been reported at rung already? */
bool exp_asha_known(const exp_asha *a, size_t k, int rung);
/* Trial k's last report was promoted (it should be training, not stopped). */
bool exp_asha_promoted_last(const exp_asha *a, size_t k);

/* Applies a recorded report: the decision for k (*d) and at most one
 * promotion (*prom, *n_prom).  A new report is added to the decision list;
 * a known one only answers with its decision. */
void exp_asha_apply(exp_asha *a, size_t k, int rung, double metric, asha_decision *d, asha_decision *prom,
                    size_t *n_prom);

/* The decisions so far, oldest first: [{"trial","job","rung","step","action":
 * "continue"|"stop"|"promote","metric","rank","n","quota","reason"}].
 * jobs[k]: trial k's job id ("" = none yet). */
struct cJSON *exp_asha_decisions_json(const exp_asha *a, const char *const *jobs);
/* {"reduction_factor","min_steps","rungs":[{"step","reached","promoted"}]} */
struct cJSON *exp_asha_json(const exp_asha *a);

/* --- file work, for the thread pool (touch nothing but files) --- */

/* The metric of job_dir/metrics.jsonl's point at step: its eval_loss (eval)
 * or loss_avg.  The last 64 KiB are searched first (a paused trial's point
 * is its last line), then the whole file (at most 1 GiB).  0, -ENOENT (no point at that step), -ENODATA (the point has
 * no such value), or -errno. */
int exp_asha_read_metric(const char *job_dir, long step, bool eval, double *metric);
/* Appends one report to dir/asha.jsonl with a single write and fsyncs it
 * (the directory too when the file is new).  0 or -errno. */
int exp_asha_record(const char *dir, size_t k, int rung, long step, double metric);

#endif

/*
 * asha — asynchronous successive halving (Li et al., "A System for Massively
 * Parallel Hyperparameter Tuning", 2018/2020), the early-stopping rule of a
 * sweep's `early_stop: {type: asha, reduction_factor: η, min_steps: r}`.
 *
 * Rungs sit at r·η^k steps (k = 0, 1, ...) below the trials' total_steps.
 * A trial that reaches rung k reports its metric (minimized) there.  The
 * rule is the paper's (Algorithm 2, get_job: at a rung holding n results,
 * every trial among the best ⌊n/η⌋ that has not been promoted yet is
 * promotable), applied when a trial reports rather than when a worker
 * frees up:
 *   - the reporting trial continues iff it ranks within ⌊n/η⌋ of the n
 *     trials now recorded at rung k; otherwise it stops there (state
 *     `stopped`, its checkpoint kept);
 *   - a trial that stopped at rung k earlier and now ranks within ⌊n/η⌋
 *     (and was never promoted from it) is promoted: it resumes.
 * There is no quota on how many have left a rung: a trial promoted early,
 * when few had reported, stays promoted even if later reports push it out
 * of the best ⌊n/η⌋ (the paper's "mispromotions"), so more than ⌊n/η⌋ may
 * leave a rung.  What holds after every report: each of the best ⌊n/η⌋ at
 * every rung has been promoted — so the best trials are never stopped for
 * good, whatever order the trials report in.  One report promotes at most
 * one trial: the reporter, or (when ⌊n/η⌋ grows by one and the reporter is
 * not among the best) the one that moved into the best ⌊n/η⌋.
 *
 * The state is a pure function of the reports in their order: replaying the
 * recorded reports after a restart gives the same state, and a report that
 * was already recorded (the same trial at the same rung) changes nothing
 * and returns the decision made the first time — no decision is made twice.
 * Ties in the metric are broken by the earlier report.  NaN ranks last.
 */
#ifndef TRAIND_ASHA_H
#define TRAIND_ASHA_H

#include <stdbool.h>
#include <stddef.h>

#define ASHA_MAX_RUNGS 64

typedef enum { ASHA_CONTINUE, ASHA_STOP } asha_action;

typedef struct asha_record {
    int trial;
    double metric;
    bool promoted;
} asha_record;

typedef struct asha_rung {
    long step;
    asha_record *recs;          /* in report order */
    size_t n, cap;
    size_t promoted;
} asha_rung;

typedef struct asha {
    double eta;
    int n_rungs;
    asha_rung rungs[ASHA_MAX_RUNGS];
} asha;

/* One decision: what happened to which trial at which rung, and why. */
typedef struct asha_decision {
    int trial;
    int rung;
    long step;
    asha_action action;
    double metric;
    size_t rank;                /* 1-based among the n recorded at the rung then */
    size_t n;
    size_t quota;               /* ⌊n/η⌋: how many of the best may go on */
    char reason[200];
} asha_decision;

/* Rungs at min_steps·eta^k < total_steps.  0, or -EINVAL for eta < 2,
 * min_steps < 1. */
int asha_init(asha *a, double eta, long min_steps, long total_steps);
void asha_free(asha *a);

/* The rung at step, or -1 when step is not a rung. */
int asha_rung_at(const asha *a, long step);

/* Trial `trial` reached rung `rung` with `metric`.  Writes the decision for
 * it to *d and, when the report promoted a trial that had stopped at this
 * rung earlier, that trial's decision to *promoted with *n_promoted = 1
 * (else 0) — the caller resumes it.  A repeated report returns the first
 * decision and promotes nothing. */
void asha_report(asha *a, int trial, int rung, double metric, asha_decision *d, asha_decision *promoted,
                 size_t *n_promoted);

/* How many trials have been recorded at, and promoted from, a rung (the
 * second may exceed ⌊n/η⌋: see above). */
size_t asha_rung_count(const asha *a, int rung);
size_t asha_rung_promoted(const asha *a, int rung);

#endif

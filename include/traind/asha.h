/*
 * asha — asynchronous successive halving (Li et al., "A System for Massively
 * Parallel Hyperparameter Tuning", 2018/2020), the early-stopping rule of a
 * sweep's `early_stop: {type: asha, reduction_factor: η, min_steps: r}`.
 *
 * Rungs sit at r·η^k steps (k = 0, 1, ...) below the trials' total_steps.
 * A trial that reaches rung k reports its metric (minimized) there.  It is
 * promoted — it trains on — when it is among the best ⌊n_k/η⌋ of the n_k
 * trials recorded at rung k and fewer than ⌊n_k/η⌋ have been promoted from
 * rung k so far; otherwise it stops there (state `stopped`, its checkpoint
 * kept).  A stopped trial is promoted later, when enough other trials have
 * reached the rung that it is among the best ⌊n_k/η⌋ after all.  So at most
 * ⌊n_k/η⌋ trials ever leave rung k, and at most ⌈n/η^k⌉ of n trials reach
 * rung k.  This is the paper's promotion rule, applied when a trial reports
 * (the paper applies it when a worker frees up; with a fixed set of trials
 * the two promote the same trials).
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
    size_t quota;               /* ⌊n/η⌋: how many may leave the rung */
    char reason[200];
} asha_decision;

/* Rungs at min_steps·eta^k < total_steps.  0, or -EINVAL for eta < 2,
 * min_steps < 1. */
int asha_init(asha *a, double eta, long min_steps, long total_steps);
void asha_free(asha *a);

/* The rung at step, or -1 when step is not a rung. */
int asha_rung_at(const asha *a, long step);

/* Trial `trial` reached rung `rung` with `metric`.  Writes the decision for
 * it to *d.  A report promotes at most one trial: this one, or (when
 * max_promoted >= 1) one that stopped at this rung earlier, written to
 * promoted[0] with *n_promoted = 1 — the caller resumes it.  A repeated
 * report returns the first decision and promotes nothing. */
void asha_report(asha *a, int trial, int rung, double metric, asha_decision *d, asha_decision *promoted,
                 size_t max_promoted, size_t *n_promoted);

/* How many trials have been recorded at, and promoted from, a rung. */
size_t asha_rung_count(const asha *a, int rung);
size_t asha_rung_promoted(const asha *a, int rung);

#endif

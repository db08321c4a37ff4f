/*
 * asha_ref — ASHA's promotion rule written for the tests straight from the
 * paper, apart from daemon/core/asha.c, so that the two can be compared:
 * Li et al., "A System for Massively Parallel Hyperparameter Tuning"
 * (MLSys 2020), Algorithm 2:
 *
 *     get_job():
 *         for k = top rung - 1, ..., 1, 0:
 *             candidates = top_k(rung k, |rung k| / η)
 *             promotable = {t ∈ candidates : t not already promoted}
 *             if |promotable| > 0: return promotable[0], k + 1
 *         return a new configuration, rung 0
 *
 * Driven in traind's report-time form: after each report, get_job is asked
 * until it has nothing to promote; every trial it returns is promoted (a
 * reporter it returns "continues"; another trial it returns resumes).
 * top_k orders by the metric, smaller first, NaN after every number, and
 * equal metrics by the earlier report.  η is an integer here (the tests
 * use 2, 3 and 4), so |rung k| / η is integer division.
 */
#ifndef TRAIND_TESTS_ASHA_REF_H
#define TRAIND_TESTS_ASHA_REF_H

#include <stdbool.h>
#include <stddef.h>

#define ASHA_REF_MAX_RUNGS 16
#define ASHA_REF_MAX_TRIALS 512

typedef struct asha_ref_result {
    int trial;
    double metric;
    bool promoted;
} asha_ref_result;

typedef struct asha_ref {
    int eta, n_rungs;
    asha_ref_result rung[ASHA_REF_MAX_RUNGS][ASHA_REF_MAX_TRIALS];  /* in report order */
    int n[ASHA_REF_MAX_RUNGS];
} asha_ref;

/* What one report led to: whether the reporter continues, and the other
 * trials get_job promoted after it (trial, and the rung they left). */
typedef struct asha_ref_outcome {
    bool reporter_continues;
    int n_others;
    int other_trial[ASHA_REF_MAX_TRIALS], other_rung[ASHA_REF_MAX_TRIALS];
} asha_ref_outcome;

void asha_ref_init(asha_ref *r, int eta, int n_rungs);
/* Records trial's result at rung (a repeated report is ignored and
 * answers reporter_continues as first decided), then drains get_job. */
void asha_ref_report(asha_ref *r, int trial, int rung, double metric, asha_ref_outcome *out);
/* Whether trial was promoted from rung. */
bool asha_ref_promoted(const asha_ref *r, int trial, int rung);

#endif

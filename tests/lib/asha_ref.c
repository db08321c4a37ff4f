/*
 * asha_ref — the paper's get_job, for the tests.  See asha_ref.h.
 * Deliberately simple (insertion order kept, a selection of the best by
 * repeated scans) and sharing no code with daemon/core/asha.c.
 */
#include "asha_ref.h"

#include <math.h>
#include <string.h>

void asha_ref_init(asha_ref *r, int eta, int n_rungs)
{
    memset(r, 0, sizeof *r);
    r->eta = eta;
    r->n_rungs = n_rungs;
}

/* Does result i come before result j in rung k's ranking? */
static bool before(const asha_ref *r, int k, int i, int j)
{
    double a = r->rung[k][i].metric, b = r->rung[k][j].metric;
    if (isnan(a) || isnan(b)) {
        if (isnan(a) && isnan(b))
            return i < j;
        return isnan(b);
    }
    if (a != b)
        return a < b;
    return i < j;
}

/* top_k(rung k, |rung k| / η): whether result i is among them (its place
 * in the ranking is the number of results before it). */
static bool in_top(const asha_ref *r, int k, int i)
{
    int ahead = 0;
    for (int j = 0; j < r->n[k]; j++)
        if (j != i && before(r, k, j, i))
            ahead++;
    return ahead < r->n[k] / r->eta;
}

/* get_job: the best promotable result of the highest rung that has one;
 * false when it would start a new configuration. */
static bool get_job(const asha_ref *r, int *rung, int *idx)
{
    for (int k = r->n_rungs - 1; k >= 0; k--) {
        int best = -1;
        for (int i = 0; i < r->n[k]; i++)
            if (!r->rung[k][i].promoted && in_top(r, k, i) && (best < 0 || before(r, k, i, best)))
                best = i;
        if (best >= 0) {
            *rung = k;
            *idx = best;
            return true;
        }
    }
    return false;
}

void asha_ref_report(asha_ref *r, int trial, int rung, double metric, asha_ref_outcome *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < r->n[rung]; i++)
        if (r->rung[rung][i].trial == trial) {
            out->reporter_continues = r->rung[rung][i].promoted;
            return;
        }
    r->rung[rung][r->n[rung]++] = (asha_ref_result){trial, metric, false};
    int k, i;
    while (get_job(r, &k, &i)) {
        asha_ref_result *x = &r->rung[k][i];
        x->promoted = true;
        if (k == rung && x->trial == trial) {
            out->reporter_continues = true;
        } else {
            out->other_trial[out->n_others] = x->trial;
            out->other_rung[out->n_others++] = k;
        }
    }
}

bool asha_ref_promoted(const asha_ref *r, int trial, int rung)
{
    for (int i = 0; i < r->n[rung]; i++)
        if (r->rung[rung][i].trial == trial)
            return r->rung[rung][i].promoted;
    return false;
}

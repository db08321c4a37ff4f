/*
 * asha — asynchronous successive halving.  See traind/asha.h for the rule.
 *
 * A rung keeps its records in report order; the ranking is recomputed on
 * each report (n is at most the number of trials, ~1000, and a report
 * happens once per trial per rung, so a sort each time is cheap and keeps
 * the state nothing but the list of reports).
 */
#include "traind/asha.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/util.h"

int asha_init(asha *a, double eta, long min_steps, long total_steps)
{
    memset(a, 0, sizeof *a);
    if (!(eta >= 2) || min_steps < 1)
        return -EINVAL;
    a->eta = eta;
    double step = (double)min_steps;
    while (a->n_rungs < ASHA_MAX_RUNGS && step < (double)total_steps) {
        a->rungs[a->n_rungs++].step = (long)step;
        step *= eta;
    }
    return 0;
}

void asha_free(asha *a)
{
    for (int k = 0; k < a->n_rungs; k++)
        free(a->rungs[k].recs);
    memset(a, 0, sizeof *a);
}

int asha_rung_at(const asha *a, long step)
{
    for (int k = 0; k < a->n_rungs; k++)
        if (a->rungs[k].step == step)
            return k;
    return -1;
}

size_t asha_rung_count(const asha *a, int rung)
{
    return rung >= 0 && rung < a->n_rungs ? a->rungs[rung].n : 0;
}

size_t asha_rung_promoted(const asha *a, int rung)
{
    return rung >= 0 && rung < a->n_rungs ? a->rungs[rung].promoted : 0;
}

/* ⌊n/η⌋, exact for integral η (n/η is computed in double, with a margin
 * against η = 3 making 6/3 = 1.9999...). */
static size_t quota_of(const asha *a, size_t n)
{
    return (size_t)floor((double)n / a->eta + 1e-9);
}

/* a better than b: smaller metric, NaN last, then the earlier report. */
static const asha_rung *g_sort_rung;

static int cmp_rank(const void *pa, const void *pb)
{
    size_t i = *(const size_t *)pa, j = *(const size_t *)pb;
    double x = g_sort_rung->recs[i].metric, y = g_sort_rung->recs[j].metric;
    bool xn = isnan(x), yn = isnan(y);
    if (xn != yn)
        return xn ? 1 : -1;
    if (!xn && x != y)
        return x < y ? -1 : 1;
    return i < j ? -1 : i > j ? 1 : 0;
}

/* Indices of the rung's records, best first.  Not reentrant (qsort has no
 * context argument in C11); the core is used from one thread per table. */
static size_t *ranking(const asha_rung *r)
{
    size_t *idx = xmalloc((r->n ? r->n : 1) * sizeof *idx);
    for (size_t i = 0; i < r->n; i++)
        idx[i] = i;
    g_sort_rung = r;
    qsort(idx, r->n, sizeof *idx, cmp_rank);
    g_sort_rung = NULL;
    return idx;
}

static void describe(const asha *a, int rung, const asha_rung *r, const size_t *idx, size_t rec,
                     asha_decision *d)
{
    const asha_record *x = &r->recs[rec];
    size_t rank = 0;
    while (idx[rank] != rec)
        rank++;
    *d = (asha_decision){.trial = x->trial, .rung = rung, .step = r->step,
                         .action = x->promoted ? ASHA_CONTINUE : ASHA_STOP, .metric = x->metric,
                         .rank = rank + 1, .n = r->n, .quota = quota_of(a, r->n)};
    if (x->promoted && rank >= d->quota) /* promoted while few had reported: it stays promoted */
        snprintf(d->reason, sizeof d->reason,
                 "rung %d (step %ld): metric %.6g ranks %zu of %zu now; it was among the best n/%g when promoted",
                 rung, r->step, x->metric, rank + 1, r->n, a->eta);
    else
        snprintf(d->reason, sizeof d->reason, "rung %d (step %ld): metric %.6g ranks %zu of %zu; %s %zu (n/%g) continue",
                 rung, r->step, x->metric, rank + 1, r->n, x->promoted ? "the best" : "only the best", d->quota,
                 a->eta);
}

void asha_report(asha *a, int trial, int rung, double metric, asha_decision *d, asha_decision *promoted,
                 size_t *n_promoted)
{
    *n_promoted = 0;
    memset(d, 0, sizeof *d);
    if (rung < 0 || rung >= a->n_rungs) {
        d->trial = trial;
        d->rung = rung;
        d->action = ASHA_CONTINUE;
        snprintf(d->reason, sizeof d->reason, "step is not a rung");
        return;
    }
    asha_rung *r = &a->rungs[rung];
    for (size_t i = 0; i < r->n; i++)
        if (r->recs[i].trial == trial) {       /* already decided: the same answer */
            size_t *idx = ranking(r);
            describe(a, rung, r, idx, i, d);
            free(idx);
            return;
        }
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->recs = xrealloc(r->recs, r->cap * sizeof *r->recs);
    }
    size_t me = r->n++;
    r->recs[me] = (asha_record){trial, metric, false};
    size_t quota = quota_of(a, r->n);
    size_t *idx = ranking(r);
    /* Promote every unpromoted trial among the best `quota` (the paper's
     * promotable set).  Before this report all of the best ⌊(n-1)/η⌋ were
     * promoted, and the best `quota` differ from them by this report and
     * at most one more trial (quota grows by at most one): so besides this
     * trial at most one that stopped here earlier is promoted, and never
     * both (see asha.h). */
    size_t newly = SIZE_MAX;
    for (size_t k = 0; k < quota; k++) {
        asha_record *x = &r->recs[idx[k]];
        if (x->promoted)
            continue;
        x->promoted = true;
        r->promoted++;
        if (idx[k] != me)
            newly = idx[k];
    }
    describe(a, rung, r, idx, me, d);
    if (newly != SIZE_MAX) {
        describe(a, rung, r, idx, newly, promoted);
        *n_promoted = 1;
    }
    free(idx);
}

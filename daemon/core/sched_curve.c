/*
 * sched_curve — lr curves of schedules, thinned, and the distinct ones of a
 * sweep.  See traind/sched_curve.h.
 */
#include "traind/sched_curve.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "traind/schedule.h"
#include "traind/util.h"

long sched_curve_step(long T, size_t m, size_t k)
{
    if (m <= 1 || T <= 1)
        return 0;
    /* in long double: (T-1) k overflows nothing for T <= 1e9, k <= m */
    long double x = (long double)(T - 1) * (long double)k / (long double)(m - 1);
    return (long)(x + 0.5L);
}

void sched_curve_of(const run_config *cfg, size_t max, sched_curve *out)
{
    long T = cfg->sched.total_steps > 0 ? cfg->sched.total_steps : 0;
    bool every = max == 0 || (size_t)T <= max;
    size_t n = every ? (size_t)T : max;
    *out = (sched_curve){.total_steps = T, .n = n};
    out->lr = xmalloc((n ? n : 1) * sizeof *out->lr);
    if (!every)
        out->steps = xmalloc(n * sizeof *out->steps);
    for (size_t k = 0; k < n; k++) {
        long step = every ? (long)k : sched_curve_step(T, n, k);
        if (!every)
            out->steps[k] = step;
        out->lr[k] = sched_lr(&cfg->sched, cfg->optim.lr, step);
    }
}

static bool same_curve(const sched_curve *a, const sched_curve *b)
{
    if (a->total_steps != b->total_steps || a->n != b->n || !a->steps != !b->steps)
        return false;
    if (a->steps && memcmp(a->steps, b->steps, a->n * sizeof *a->steps) != 0)
        return false;
    return memcmp(a->lr, b->lr, a->n * sizeof *a->lr) == 0;
}

size_t sched_curves_distinct(const run_config *const *cfgs, size_t n, size_t max, sched_curve *out)
{
    size_t found = 0;
    for (size_t k = 0; k < n; k++) {
        sched_curve c;
        sched_curve_of(cfgs[k], max, &c);
        c.trial = k;
        bool dup = false;
        for (size_t j = 0; j < found && !dup; j++)
            dup = same_curve(&out[j], &c);
        if (dup)
            sched_curve_free(&c);
        else
            out[found++] = c;
    }
    return found;
}

void sched_curve_free(sched_curve *c)
{
    if (!c)
        return;
    free(c->steps);
    free(c->lr);
    c->steps = NULL;
    c->lr = NULL;
    c->n = 0;
}

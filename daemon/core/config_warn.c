/*
 * config_warn — warnings about a valid run config (traind/config.h,
 * cfg_warnings): things a config may do but probably should not.  They
 * never refuse a config; `trainctl validate` prints them.
 *
 *   - schedule_free_adamw under a schedule whose lr decays.  The method
 *     replaces the decay by averaging its iterates and is meant for a
 *     constant lr (a warmup is fine: its own optimizer.warmup_steps, or a
 *     schedule's); a decay on top is allowed, as in the reference, which
 *     simply multiplies it in, but it is rarely what was meant.
 */
#include "traind/config.h"
#include "traind/schedule.h"

/* Whether the schedule's lr ever falls below what it was at an earlier step.
 * The factor is a pure function of the step: it is looked at on every step
 * up to 2^16 and on 2^16 evenly spread steps beyond (a decay shorter than
 * the spacing of a billion-step run is missed; a warning only).  Float
 * noise of a flat stretch is not a decay. */
static bool sched_decays(const sched_cfg *s)
{
    const long T = s->total_steps, samples = 1L << 16;
    long stride = T > samples ? T / samples : 1;
    double peak = -1;
    for (long k = 0; k < T; k += stride) {
        double f = sched_factor(s, k);
        if (f < peak * (1 - 1e-12))
            return true;
        if (f > peak)
            peak = f;
    }
    return T > 1 && sched_factor(s, T - 1) < peak * (1 - 1e-12);
}

void cfg_warnings(const run_config *cfg, diag_list_t *warns)
{
    if (cfg->optim.type == OPT_SCHEDULE_FREE_ADAMW && sched_decays(&cfg->sched))
        diag_add(warns, "schedule.type", 0, 0,
                 "warning: schedule %s lowers the lr as training goes on; optimizer type "
                 "schedule_free_adamw is meant for a constant lr (schedule type constant, or "
                 "constant_with_warmup): its averaging does what the decay would",
                 sched_type_name(cfg->sched.type));
}

/*
 * schedule — the learning-rate schedules of traind-run.yaml(5) SCHEDULE, closed form, double
 * precision.  See traind/schedule.h.
 *
 * Every type is one small function of the 0-based step whose arithmetic
 * follows its anchor's code operation for operation (same operands, same
 * order), so that the lr agrees with the anchor's to the last bit or
 * within a few ulps (traind-run.yaml(5) SCHEDULE: 1e-12 relative).  The anchors are HuggingFace
 * transformers/optimization.py's lr lambdas (through torch's LambdaLR,
 * lr = base_lr * lambda(step)) and torch.optim.lr_scheduler's classes.
 * tests/gen_torch_ref.py produced tests/data/schedules/ from those anchors.
 *
 * Two types compute the lr in absolute units the way their anchor does
 * (onecycle: torch keeps initial_lr/max_lr/min_lr in the param group;
 * polynomial: HF interpolates between lr_init and lr_end and divides by
 * lr_init), because the anchor's rounding near the end of those schedules
 * only survives when the same operations are done on the same numbers.
 * For them sched_lr() is base_lr * sched_factor() to within an ulp, not
 * bit for bit; for every other type it is exactly that product.
 *
 * Notation: s the step, W warmup_steps, T total_steps, m min_lr_ratio,
 * r warmup_start_ratio, D = max(1, T - W), p = (s - W) / D.
 *
 * Steps past the end (s >= T) never produce NaN: decaying schedules stay at
 * their end value (the value at s = T), open-ended ones (inverse_sqrt,
 * step, multistep, exponential) keep following their formula.  A negative
 * step is treated as 0.
 */
#include "traind/schedule.h"

#include <math.h>

/* Length of the decay phase, as HF's float(max(1, num_training_steps - num_warmup_steps)). */
static double decay_len(const sched_cfg *s)
{
    long d = s->total_steps - s->warmup_steps;
    return (double)(d > 1 ? d : 1);
}

/* The linear warmup shared by the types that have one: HF's
 * float(current_step) / float(max(1, num_warmup_steps)), generalised by
 * warmup_start_ratio r as torch LinearLR(start_factor=r) does:
 * r + (1 - r) * s / W  (exactly s / W when r = 0). */
static double warmup_factor(const sched_cfg *s, long step)
{
    double w = (double)(s->warmup_steps > 1 ? s->warmup_steps : 1);
    double r = s->warmup_start_ratio;
    return r + (1.0 - r) * (double)step / w;
}

/* p = (s - W) / max(1, T - W), held at 1 past the end of training. */
static double decay_progress(const sched_cfg *s, long step)
{
    double p = (double)(step - s->warmup_steps) / decay_len(s);
    return p > 1.0 ? 1.0 : p;
}

/* HF get_constant_schedule_with_warmup: 1 after the warmup. */
static double f_constant_with_warmup(const sched_cfg *s, long step)
{
    return step < s->warmup_steps ? warmup_factor(s, step) : 1.0;
}

/* HF get_linear_schedule_with_warmup:
 *   max(0, float(T - s) / float(max(1, T - W))),
 * with a floor m: max(0, m + (1 - m) * that) (exactly HF's when m = 0;
 * torch LinearLR(1, m, T - W) after the warmup otherwise). */
static double f_linear(const sched_cfg *s, long step)
{
    if (step < s->warmup_steps)
        return warmup_factor(s, step);
    long sc = step < s->total_steps ? step : s->total_steps;
    double rem = (double)(s->total_steps - sc) / decay_len(s);
    double m = s->min_lr_ratio;
    double f = m + (1.0 - m) * rem;
    return f > 0.0 ? f : 0.0;
}

/* HF get_cosine_schedule_with_warmup / get_cosine_with_min_lr_schedule_with_warmup
 * (num_cycles 0.5, so cos(pi * 0.5 * 2.0 * p) is cos(pi * p)):
 *   factor = 0.5 * (1 + cos(pi * p)); factor * (1 - m) + m; max(0, .) */
static double f_cosine(const sched_cfg *s, long step)
{
    if (step < s->warmup_steps)
        return warmup_factor(s, step);
    double p = decay_progress(s, step);
    double m = s->min_lr_ratio;
    double f = 0.5 * (1.0 + cos(M_PI * p));
    f = f * (1.0 - m) + m;
    return f > 0.0 ? f : 0.0;
}

/* HF get_cosine_with_hard_restarts_schedule_with_warmup:
 *   0 if p >= 1, else max(0, 0.5 * (1 + cos(pi * ((cycles * p) % 1.0)))) */
static double f_cosine_with_restarts(const sched_cfg *s, long step)
{
    if (step < s->warmup_steps)
        return warmup_factor(s, step);
    double p = decay_progress(s, step);
    if (p >= 1.0)
        return 0.0;
    double f = 0.5 * (1.0 + cos(M_PI * fmod(s->cycles * p, 1.0)));
    return f > 0.0 ? f : 0.0;
}

/* HF get_polynomial_decay_schedule_with_warmup with lr_init = base_lr and
 * lr_end = m * base_lr, in HF's own units and order:
 *   lr_range = lr_init - lr_end
 *   pct_remaining = 1 - (s - W) / (T - W)
 *   decay = lr_range * pct_remaining ** power + lr_end;  lambda = decay / lr_init
 * and lr_end / lr_init from s = T on.  Returns the lr, not the factor. */
static double lr_polynomial(const sched_cfg *s, double base_lr, long step)
{
    if (step < s->warmup_steps)
        return base_lr * warmup_factor(s, step);
    if (base_lr == 0.0)
        return 0.0;
    double lr_end = s->min_lr_ratio * base_lr;
    if (step >= s->total_steps)             /* HF: current_step > num_training_steps (and = gives the same) */
        return base_lr * (lr_end / base_lr);
    double lr_range = base_lr - lr_end;
    double pct_remaining = 1.0 - (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
    double decay = lr_range * pow(pct_remaining, s->power) + lr_end;
    return base_lr * (decay / base_lr);
}

/* HF get_inverse_sqrt_schedule:
 *   shift = timescale - W;  1 / sqrt((s + shift) / timescale) */
static double f_inverse_sqrt(const sched_cfg *s, long step)
{
    if (step < s->warmup_steps)
        return warmup_factor(s, step);
    long ts = s->timescale > 0 ? s->timescale : 10000;
    long shift = ts - s->warmup_steps;
    return 1.0 / sqrt((double)(step + shift) / (double)ts);
}

/* HF get_wsd_schedule with num_training_steps = T, num_decay_steps = D
 * (so num_stable_steps = T - W - D), num_cycles 0.5.  Its warmup starts
 * at m, not at warmup_start_ratio:
 *   s < W:      w(s / max(1, W)) * (1 - m) + m
 *   s < T - D:  1
 *   s < T:      g((s - (T - D)) / max(1, D)) * (1 - m) + m
 *   then:       m                                   (each max(0, .)) */
static double f_wsd(const sched_cfg *s, long step)
{
    double m = s->min_lr_ratio, f;
    long W = s->warmup_steps, D = s->decay_steps;
    long S = s->total_steps - W - D;               /* HF's num_stable_steps */
    if (step < W) {
        double u = (double)step / (double)(W > 1 ? W : 1);
        switch (s->warmup_type) {
        case SHAPE_COSINE: f = 0.5 * (1.0 - cos(M_PI * u)); break;
        case SHAPE_1_SQRT: f = 1.0 - sqrt(1.0 - u); break;
        default:           f = u; break;
        }
    } else if (step < W + S) {
        return 1.0;
    } else if (step < W + S + D) {
        double q = (double)(step - W - S) / (double)(D > 1 ? D : 1);
        switch (s->decay_type) {
        case SHAPE_LINEAR: f = 1.0 - q; break;
        case SHAPE_1_SQRT: f = 1.0 - sqrt(q); break;
        default:           f = 0.5 * (1.0 + cos(M_PI * q)); break;
        }
    } else {
        return m;
    }
    f = f * (1.0 - m) + m;
    return f > 0.0 ? f : 0.0;
}

/* torch StepLR(step_size, gamma) started after the warmup:
 *   gamma ** ((s - W) // step_size) */
static double f_step(const sched_cfg *s, long step)
{
    if (step < s->warmup_steps)
        return warmup_factor(s, step);
    if (s->step_size <= 0)
        return 1.0;
    return pow(s->gamma, (double)((step - s->warmup_steps) / s->step_size));
}

/* torch MultiStepLR(milestones, gamma), milestones counted in absolute steps:
 *   gamma ** (number of milestones <= s) */
static double f_multistep(const sched_cfg *s, long step)
{
    if (step < s->warmup_steps)
        return warmup_factor(s, step);
    int k = 0;
    for (int i = 0; i < s->n_milestones; i++)
        k += s->milestones[i] <= step;
    return pow(s->gamma, (double)k);
}

/* torch ExponentialLR(gamma) started after the warmup: gamma ** (s - W) */
static double f_exponential(const sched_cfg *s, long step)
{
    if (step < s->warmup_steps)
        return warmup_factor(s, step);
    return pow(s->gamma, (double)(step - s->warmup_steps));
}

/* torch OneCycleLR(max_lr = base_lr, total_steps = T), in torch's units:
 * initial_lr = max_lr / div_factor, min_lr = initial_lr / final_div_factor;
 * phases end at pct_start*T - 1 (initial -> max), [2*pct_start*T - 2
 * (max -> initial) when three_phase], T - 1 (-> min); within a phase
 * pct = (s - start) / (end - start) and
 *   cos:    end + (start - end) / 2.0 * (cos(pi * pct) + 1)
 *   linear: (end - start) * pct + start
 * Returns the lr, not the factor.  torch refuses a zero-length phase
 * (division by zero); here it counts as complete (pct = 1). */
static double lr_onecycle(const sched_cfg *s, double base_lr, long step)
{
    double T = (double)s->total_steps;
    double max_lr = base_lr;
    double initial_lr = max_lr / s->div_factor;
    double min_lr = initial_lr / s->final_div_factor;
    struct { double end, from, to; } ph[3];
    int n = 0;
    ph[n].end = s->pct_start * T - 1.0;          ph[n].from = initial_lr; ph[n++].to = max_lr;
    if (s->three_phase) {
        ph[n].end = 2.0 * s->pct_start * T - 2.0; ph[n].from = max_lr;  ph[n++].to = initial_lr;
        ph[n].end = T - 1.0;                      ph[n].from = initial_lr; ph[n++].to = min_lr;
    } else {
        ph[n].end = T - 1.0;                      ph[n].from = max_lr;  ph[n++].to = min_lr;
    }
    if (step > s->total_steps - 1)               /* past the end: hold the last lr */
        step = s->total_steps - 1;

    double x = (double)step, start = 0.0;
    for (int i = 0; i < n; i++) {
        if (x <= ph[i].end || i == n - 1) {
            double len = ph[i].end - start;
            double pct = len != 0.0 ? (x - start) / len : 1.0;
            if (s->anneal_cos) {
                double cos_out = cos(M_PI * pct) + 1.0;
                return ph[i].to + (ph[i].from - ph[i].to) / 2.0 * cos_out;
            }
            return (ph[i].to - ph[i].from) * pct + ph[i].from;
        }
        start = ph[i].end;
    }
    return min_lr;                               /* not reached */
}

/* piecewise (no outside anchor; torch_ref.py's): linear interpolation
 * ra + (rb - ra) * (s - a) / (b - a) between consecutive points, the first
 * ratio up to the first point, the last after the last. */
static double f_piecewise(const sched_cfg *s, long step)
{
    int n = s->n_points;
    if (n <= 0)
        return 1.0;
    if (step <= s->point_step[0])
        return s->point_ratio[0];
    for (int i = 1; i < n; i++) {
        long a = s->point_step[i - 1], b = s->point_step[i];
        if (step <= b) {
            double ra = s->point_ratio[i - 1], rb = s->point_ratio[i];
            if (b == a)
                return rb;
            return ra + (rb - ra) * (double)(step - a) / (double)(b - a);
        }
    }
    return s->point_ratio[n - 1];
}

double sched_lr(const sched_cfg *s, double base_lr, long step)
{
    if (step < 0)
        step = 0;
    switch (s->type) {
    case SCHED_CONSTANT:             return base_lr;      /* HF get_constant_schedule; warmup ignored */
    case SCHED_CONSTANT_WITH_WARMUP: return base_lr * f_constant_with_warmup(s, step);
    case SCHED_LINEAR:               return base_lr * f_linear(s, step);
    case SCHED_COSINE:               return base_lr * f_cosine(s, step);
    case SCHED_COSINE_WITH_RESTARTS: return base_lr * f_cosine_with_restarts(s, step);
    case SCHED_POLYNOMIAL:           return lr_polynomial(s, base_lr, step);
    case SCHED_INVERSE_SQRT:         return base_lr * f_inverse_sqrt(s, step);
    case SCHED_WSD:                  return base_lr * f_wsd(s, step);
    case SCHED_STEP:                 return base_lr * f_step(s, step);
    case SCHED_MULTISTEP:            return base_lr * f_multistep(s, step);
    case SCHED_EXPONENTIAL:          return base_lr * f_exponential(s, step);
    case SCHED_ONECYCLE:             return lr_onecycle(s, base_lr, step);
    case SCHED_PIECEWISE:            return base_lr * f_piecewise(s, step);
    }
    return base_lr;
}

double sched_factor(const sched_cfg *s, long step)
{
    return sched_lr(s, 1.0, step);
}

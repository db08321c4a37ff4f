/*
 * config_schedule — the schedule section of a run config (traind-run.yaml(5) SCHEDULE) read
 * into a fully resolved sched_cfg, so that schedule.c only ever evaluates
 * closed forms and never interprets user input.
 *
 * "Resolved" means: warmup_ratio is turned into warmup_steps (W = ceil(ratio
 * * T) in double, as HF's get_warmup_steps), min_lr into min_lr_ratio
 * (min_lr / optimizer.lr), the WSD decay length into decay_steps (decay_ratio
 * with Python's round(), i.e. half to even, as the reference does), and the
 * inverse_sqrt timescale default (W, or 10000 when W is 0) applied.
 *
 * Keys shared by every type: type, total_steps.  Every other key belongs to
 * the types whose formula uses it, and giving it to another type is an error
 * ("cycles is only used by schedule type cosine_with_restarts"): a key that
 * is accepted but silently ignored would let a user believe, say, that
 * min_lr_ratio floors an exponential decay.  The one exception is warmup on
 * `constant`, which traind-run.yaml(5) SCHEDULE and HF's get_constant_schedule accept and ignore.
 */
#include <limits.h>
#include <math.h>
#include <string.h>
#include "config_internal.h"

#define NELEM(a) ((int)(sizeof(a) / sizeof *(a)))
#define MAX_STEPS 1000000000LL          /* total_steps, step_size, timescale */
#define ANY_STEPS LLONG_MAX             /* step counts bounded by a cross-check instead */

static const char *const sched_names[] = {
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
    "inverse_sqrt", "warmup_stable_decay", "step", "multistep", "exponential", "onecycle",
    "piecewise"};
static const char *const shape_names[] = {"linear", "cosine", "1-sqrt"};
static const char *const anneal_names[] = {"cos", "linear"};

static const cv_range POSITIVE = {0, INFINITY, true, false};
static const cv_range NON_NEGATIVE = {0, INFINITY, false, false};
static const cv_range UNIT = {0, 1, false, false};

const char *sched_type_name(sched_type t)
{
    return (unsigned)t < (unsigned)NELEM(sched_names) ? sched_names[t] : "?";
}

const char *wsd_shape_name(wsd_shape s)
{
    return (unsigned)s < (unsigned)NELEM(shape_names) ? shape_names[s] : "?";
}

#define S(t) CV_BIT(SCHED_##t)

/* Types whose formula has a warmup phase (constant takes the key and ignores
 * it, as HF's get_constant_schedule does and traind-run.yaml(5) SCHEDULE says). */
#define WARMUP_TYPES (ALL_TYPES & ~S(ONECYCLE) & ~S(PIECEWISE))
/* Types whose warmup is the linear s/W ramp that warmup_start_ratio shifts. */
#define LINEAR_WARMUP_TYPES (WARMUP_TYPES & ~S(CONSTANT) & ~S(WSD))
/* Types that decay to a floor m. */
#define FLOOR_TYPES (S(LINEAR) | S(COSINE) | S(POLYNOMIAL) | S(WSD))
#define ALL_TYPES ((S(PIECEWISE) << 1) - 1)

const cv_key cfg_schedule_keys[] = {
    {"type", 0}, {"total_steps", 0},
    {"warmup_steps", WARMUP_TYPES}, {"warmup_ratio", WARMUP_TYPES},
    {"min_lr_ratio", FLOOR_TYPES}, {"min_lr", FLOOR_TYPES},
    {"warmup_start_ratio", LINEAR_WARMUP_TYPES},
    {"cycles", S(COSINE_WITH_RESTARTS)},
    {"power", S(POLYNOMIAL)},
    {"timescale", S(INVERSE_SQRT)},
    {"warmup_type", S(WSD)}, {"decay_type", S(WSD)}, {"decay_steps", S(WSD)},
    {"decay_ratio", S(WSD)}, {"stable_steps", S(WSD)},
    {"step_size", S(STEP)},
    {"gamma", S(STEP) | S(MULTISTEP) | S(EXPONENTIAL)},
    {"milestones", S(MULTISTEP)},
    {"pct_start", S(ONECYCLE)}, {"anneal", S(ONECYCLE)}, {"div_factor", S(ONECYCLE)},
    {"final_div_factor", S(ONECYCLE)}, {"three_phase", S(ONECYCLE)},
    {"points", S(PIECEWISE)},
    {NULL, 0}};

/* What the type-specific readers need to know about the shared keys. */
typedef struct sched_ctx {
    const cv_section *s;
    sched_cfg *sc;
    bool total_ok;              /* sc->total_steps is valid */
    bool warmup_ok;             /* sc->warmup_steps is valid (given or defaulted) */
} sched_ctx;

static void set_defaults(sched_cfg *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->type = SCHED_COSINE;
    sc->cycles = 1;
    sc->power = 1;
    sc->warmup_type = SHAPE_LINEAR;
    sc->decay_type = SHAPE_COSINE;
    sc->gamma = 0.1;
    sc->pct_start = 0.3;
    sc->div_factor = 25;
    sc->final_div_factor = 1e4;
    sc->anneal_cos = true;
}

static cv_result get_long(const cv_section *s, const char *key, bool required, long long lo,
                          long long hi, long *out)
{
    long long v;
    cv_result r = cv_get_int(s, key, required, lo, hi, &v);
    if (r == CV_OK)
        *out = (long)v;
    return r;
}

/* ---- shared keys ------------------------------------------------------- */

static void parse_warmup(sched_ctx *c)
{
    const cv_section *s = c->s;
    sched_cfg *sc = c->sc;
    const ynode *steps = cv_get(s, "warmup_steps"), *ratio = cv_get(s, "warmup_ratio");
    if (steps && ratio) {
        cv_error(s->errs, "schedule.warmup_ratio", ratio, "give warmup_steps or warmup_ratio, not both");
        c->warmup_ok = false;
    }
    long long w;
    if (steps && cv_int(s->errs, steps, "schedule.warmup_steps", 0, ANY_STEPS, &w) == CV_OK) {
        if (c->total_ok && w > sc->total_steps) {
            cv_error(s->errs, "schedule.warmup_steps", steps,
                     "must be <= schedule.total_steps (%ld), got %lld", sc->total_steps, w);
            c->warmup_ok = false;
        } else {
            sc->warmup_steps = (long)w;
        }
    } else if (steps) {
        c->warmup_ok = false;
    }
    double r;
    if (ratio && cv_num(s->errs, ratio, "schedule.warmup_ratio", UNIT, &r) == CV_OK) {
        if (!steps && c->total_ok)
            sc->warmup_steps = (long)ceil(r * (double)sc->total_steps);   /* HF: math.ceil(ratio * T) */
    } else if (ratio) {
        c->warmup_ok = false;
    }
    if (!c->total_ok && ratio)
        c->warmup_ok = false;
}

static void parse_min_lr(sched_ctx *c, double lr, bool lr_ok)
{
    const cv_section *s = c->s;
    const ynode *ratio = cv_get(s, "min_lr_ratio"), *abs_node = cv_get(s, "min_lr");
    cv_get_num(s, "min_lr_ratio", false, UNIT, &c->sc->min_lr_ratio);
    if (!abs_node)
        return;
    double min_lr;
    if (cv_num(s->errs, abs_node, "schedule.min_lr", NON_NEGATIVE, &min_lr) != CV_OK)
        return;
    if (ratio) {
        cv_error(s->errs, "schedule.min_lr", abs_node, "give min_lr_ratio or min_lr, not both");
        return;
    }
    if (!lr_ok)
        return;
    if (min_lr > lr) {
        cv_error(s->errs, "schedule.min_lr", abs_node, "must be <= optimizer.lr (%g), got %g", lr, min_lr);
        return;
    }
    c->sc->min_lr_ratio = min_lr / lr;
}

/* ---- warmup_stable_decay ----------------------------------------------- */

static void parse_wsd_decay(sched_ctx *c)
{
    const cv_section *s = c->s;
    sched_cfg *sc = c->sc;
    static const char *const keys[] = {"decay_steps", "decay_ratio", "stable_steps"};
    const ynode *given[3];
    int n_given = 0;
    for (int i = 0; i < 3; i++) {
        given[i] = cv_get(s, keys[i]);
        if (given[i] && ++n_given > 1) {
            char path[CV_PATH_MAX];
            cv_path_key(path, "schedule", keys[i]);
            cv_error(s->errs, path, given[i], "give only one of decay_steps, decay_ratio and stable_steps");
        }
    }
    if (n_given == 0)
        cv_missing(s, "decay_steps",
                   "warmup_stable_decay needs one of decay_steps, decay_ratio or stable_steps");
    if (n_given != 1)
        return;

    /* The decay length D, and the key it came from. */
    long long v = 0;
    double r;
    long d = 0;
    bool have = false;
    if (given[0] && cv_int(s->errs, given[0], "schedule.decay_steps", 0, ANY_STEPS, &v) == CV_OK) {
        d = (long)v;
        have = true;
    } else if (given[1] && cv_num(s->errs, given[1], "schedule.decay_ratio", UNIT, &r) == CV_OK) {
        d = (long)rint(r * (double)sc->total_steps);   /* Python round(): half to even */
        have = true;
    } else if (given[2] && cv_int(s->errs, given[2], "schedule.stable_steps", 0, ANY_STEPS, &v) == CV_OK) {
        d = sc->total_steps - sc->warmup_steps - (long)v;
        have = true;
    }
    if (!have || !c->total_ok || !c->warmup_ok)
        return;                 /* reported already, or nothing sensible to compare against */

    long avail = sc->total_steps - sc->warmup_steps;   /* steps after warmup */
    if (given[0] && d > avail)
        cv_error(s->errs, "schedule.decay_steps", given[0],
                 "must be <= total_steps - warmup_steps (%ld), got %ld", avail, d);
    else if (given[1] && d > avail)
        cv_error(s->errs, "schedule.decay_ratio", given[1],
                 "gives %ld decay steps, more than total_steps - warmup_steps (%ld)", d, avail);
    else if (given[2] && d < 0)
        cv_error(s->errs, "schedule.stable_steps", given[2],
                 "must be <= total_steps - warmup_steps (%ld), got %lld", avail, v);
    else
        sc->decay_steps = d;
}

static void parse_wsd(sched_ctx *c)
{
    int v;
    if (cv_get_enum(c->s, "warmup_type", false, shape_names, NELEM(shape_names), &v) == CV_OK)
        c->sc->warmup_type = (wsd_shape)v;
    if (cv_get_enum(c->s, "decay_type", false, shape_names, NELEM(shape_names), &v) == CV_OK)
        c->sc->decay_type = (wsd_shape)v;
    parse_wsd_decay(c);
}

/* ---- step, multistep, exponential -------------------------------------- */

static void parse_milestones(sched_ctx *c)
{
    const cv_section *s = c->s;
    const ynode *n = cv_get(s, "milestones");
    if (!n) {
        cv_missing(s, "milestones", "the steps at which multistep multiplies the lr by gamma");
        return;
    }
    if (!cv_list(s->errs, n, "schedule.milestones", 1, CFG_MAX_MILESTONES))
        return;
    long m[CFG_MAX_MILESTONES];
    bool ok = true, prev_ok = false;
    for (size_t i = 0; i < n->n; i++) {
        char path[CV_PATH_MAX];
        cv_path_index(path, "schedule.milestones", i);
        long long v;
        if (cv_int(s->errs, n->items[i], path, 0, ANY_STEPS, &v) != CV_OK) {
            ok = prev_ok = false;
            continue;
        }
        if (prev_ok && v <= m[i - 1]) {
            cv_error(s->errs, path, n->items[i],
                     "must be greater than the previous milestone (%ld), got %lld", m[i - 1], v);
            ok = false;
        }
        m[i] = (long)v;
        prev_ok = true;
    }
    if (ok) {
        memcpy(c->sc->milestones, m, n->n * sizeof *m);
        c->sc->n_milestones = (int)n->n;
    }
}

/* ---- onecycle ---------------------------------------------------------- */

/* torch's OneCycleLR divides by each phase's length; an empty phase would be
 * a division by zero, so refuse the configs that make one. */
static void check_onecycle_phases(sched_ctx *c, bool pct_ok)
{
    const sched_cfg *sc = c->sc;
    if (!c->total_ok || !pct_ok)
        return;
    double T = (double)sc->total_steps, end1 = sc->pct_start * T - 1, end2 = 2 * sc->pct_start * T - 2;
    const ynode *at = cv_get(c->s, "pct_start");
    if (!(end1 > 0)) {
        cv_error(c->s->errs, "schedule.pct_start", at ? at : c->s->at,
                 "pct_start * total_steps must be > 1 so the warm-up phase has a step, got %g * %ld",
                 sc->pct_start, sc->total_steps);
        return;
    }
    if (sc->three_phase && !(T - 1 > end2))
        cv_error(c->s->errs, "schedule.three_phase", cv_get(c->s, "three_phase"),
                 "needs 2 * pct_start * total_steps - 2 (%g) < total_steps - 1 (%g); lower pct_start",
                 end2, T - 1);
}

static void parse_onecycle(sched_ctx *c)
{
    const cv_section *s = c->s;
    sched_cfg *sc = c->sc;
    bool pct_ok = cv_get_num(s, "pct_start", false, (cv_range){0, 1, true, true}, &sc->pct_start) != CV_BAD;
    int anneal;
    if (cv_get_enum(s, "anneal", false, anneal_names, NELEM(anneal_names), &anneal) == CV_OK)
        sc->anneal_cos = anneal == 0;
    cv_get_num(s, "div_factor", false, POSITIVE, &sc->div_factor);
    cv_get_num(s, "final_div_factor", false, POSITIVE, &sc->final_div_factor);
    bool three_ok = cv_get_bool(s, "three_phase", &sc->three_phase) != CV_BAD;
    check_onecycle_phases(c, pct_ok && three_ok);
}

/* ---- piecewise --------------------------------------------------------- */

/* One [step, ratio] point; false if invalid.  prev_step < 0: no previous. */
static bool parse_point(const cv_section *s, const ynode *n, size_t i, long prev_step, long *step,
                        double *ratio)
{
    char path[CV_PATH_MAX], sub[CV_PATH_MAX];
    cv_path_index(path, "schedule.points", i);
    if (!cv_list(s->errs, n, path, 2, 2))
        return false;
    long long st = -1;
    cv_path_index(sub, path, 0);
    bool ok = cv_int(s->errs, n->items[0], sub, 0, ANY_STEPS, &st) == CV_OK;
    if (ok && prev_step >= 0 && st <= prev_step) {
        cv_error(s->errs, sub, n->items[0],
                 "must be greater than the previous point's step (%ld), got %lld", prev_step, st);
        ok = false;
    }
    cv_path_index(sub, path, 1);
    ok &= cv_num(s->errs, n->items[1], sub, NON_NEGATIVE, ratio) == CV_OK;
    *step = (long)st;
    return ok;
}

static void parse_points(sched_ctx *c)
{
    const cv_section *s = c->s;
    const ynode *n = cv_get(s, "points");
    if (!n) {
        cv_missing(s, "points", "[[step, ratio], ...] for piecewise");
        return;
    }
    if (!cv_list(s->errs, n, "schedule.points", 1, CFG_MAX_POINTS))
        return;
    long steps[CFG_MAX_POINTS];
    double ratios[CFG_MAX_POINTS];
    bool ok = true;
    long prev = -1;
    for (size_t i = 0; i < n->n; i++) {
        if (parse_point(s, n->items[i], i, prev, &steps[i], &ratios[i])) {
            prev = steps[i];
        } else {
            ok = false;
            prev = -1;          /* do not compare the next point against a bad one */
        }
    }
    if (ok) {
        memcpy(c->sc->point_step, steps, n->n * sizeof *steps);
        memcpy(c->sc->point_ratio, ratios, n->n * sizeof *ratios);
        c->sc->n_points = (int)n->n;
    }
}

/* ---- the section ------------------------------------------------------- */

static void parse_type_keys(sched_ctx *c)
{
    const cv_section *s = c->s;
    sched_cfg *sc = c->sc;
    switch (sc->type) {
    case SCHED_COSINE_WITH_RESTARTS:
        cv_get_num(s, "cycles", false, POSITIVE, &sc->cycles);
        break;
    case SCHED_POLYNOMIAL:
        cv_get_num(s, "power", false, POSITIVE, &sc->power);
        break;
    case SCHED_INVERSE_SQRT:
        get_long(s, "timescale", false, 1, MAX_STEPS, &sc->timescale);
        break;
    case SCHED_WSD:
        parse_wsd(c);
        break;
    case SCHED_STEP:
        get_long(s, "step_size", true, 1, MAX_STEPS, &sc->step_size);
        cv_get_num(s, "gamma", false, POSITIVE, &sc->gamma);
        break;
    case SCHED_MULTISTEP:
        parse_milestones(c);
        cv_get_num(s, "gamma", false, POSITIVE, &sc->gamma);
        break;
    case SCHED_EXPONENTIAL:
        cv_get_num(s, "gamma", true, POSITIVE, &sc->gamma);
        break;
    case SCHED_ONECYCLE:
        parse_onecycle(c);
        break;
    case SCHED_PIECEWISE:
        parse_points(c);
        break;
    default:
        break;
    }
}

void cfg_parse_schedule(const cv_section *root, run_config *cfg, bool lr_ok)
{
    sched_cfg *sc = &cfg->sched;
    set_defaults(sc);
    cv_section s;
    cv_section_open(&s, root, "schedule");
    int type = SCHED_COSINE;
    if (cv_get_enum(&s, "type", false, sched_names, NELEM(sched_names), &type) == CV_BAD)
        type = -1;
    cv_check_keys(&s, cfg_schedule_keys, type, sched_names, "schedule type");

    sched_ctx c = {&s, sc, false, true};
    c.total_ok = get_long(&s, "total_steps", true, 1, MAX_STEPS, &sc->total_steps) == CV_OK;
    parse_warmup(&c);
    parse_min_lr(&c, cfg->optim.lr, lr_ok);
    cv_get_num(&s, "warmup_start_ratio", false, UNIT, &sc->warmup_start_ratio);
    sc->timescale = sc->warmup_steps ? sc->warmup_steps : 10000;   /* HF's default */
    if (type < 0)
        return;
    sc->type = (sched_type)type;
    parse_type_keys(&c);
}

"""Learning-rate schedules of traind-run.yaml(5) SCHEDULE as LambdaLR multipliers, in plain Python.

    lr_lambda(schedule, base_lr) -> f, with lr(s) = base_lr * f(s) for the update at 0-based step s

Shared by bench/torch_ref.py (which wraps f in torch.optim.lr_scheduler.LambdaLR) and
tests/gen_torch_ref.py (which builds the anchors of the schedule tests from the HF lambdas
below and cross-checks lr_lambda against them).  No torch here, so `torch_ref.py --schedule`
and the check in bench/check_schedules.sh need only python3-yaml.

The _get_* functions are HuggingFace transformers/optimization.py's lr lambdas, verbatim
(names as there; transformers cannot be installed here).  The types HF does not have
(step, multistep, exponential, onecycle, piecewise, and the floor of `linear`) are the closed
forms of torch's schedulers, as traind-run.yaml(5) writes them.
"""
import math


# ---------------------------------------------------------------------------
# HuggingFace transformers/optimization.py lr lambdas, verbatim
# ---------------------------------------------------------------------------

def _get_constant_lambda(_=None):                                   # get_constant_schedule
    return 1


def _get_constant_schedule_with_warmup_lr_lambda(current_step, *, num_warmup_steps):
    if current_step < num_warmup_steps:                             # get_constant_schedule_with_warmup
        return float(current_step) / float(max(1.0, num_warmup_steps))
    return 1.0


def _get_linear_schedule_with_warmup_lr_lambda(current_step, *, num_warmup_steps, num_training_steps):
    if current_step < num_warmup_steps:                             # get_linear_schedule_with_warmup
        return float(current_step) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))


def _get_cosine_schedule_with_warmup_lr_lambda(current_step, *, num_warmup_steps, num_training_steps, num_cycles,
                                               min_lr_rate=0.0):
    # get_cosine_schedule_with_warmup and get_cosine_with_min_lr_schedule_with_warmup
    # (HF defines this name twice; the second definition, with min_lr_rate, is the one both use)
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    factor = factor * (1 - min_lr_rate) + min_lr_rate
    return max(0, factor)


def _get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda(current_step, *, num_warmup_steps,
                                                                  num_training_steps, num_cycles):
    if current_step < num_warmup_steps:                 # get_cosine_with_hard_restarts_schedule_with_warmup
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(num_cycles) * progress) % 1.0))))


def _get_polynomial_decay_schedule_with_warmup_lr_lambda(current_step, *, num_warmup_steps, num_training_steps,
                                                         lr_end, power, lr_init):
    if current_step < num_warmup_steps:                 # get_polynomial_decay_schedule_with_warmup
        return float(current_step) / float(max(1, num_warmup_steps))
    elif current_step > num_training_steps:
        return lr_end / lr_init  # as LambdaLR multiplies by lr_init
    else:
        lr_range = lr_init - lr_end
        decay_steps = num_training_steps - num_warmup_steps
        pct_remaining = 1 - (current_step - num_warmup_steps) / decay_steps
        decay = lr_range * pct_remaining**power + lr_end
        return decay / lr_init  # as LambdaLR multiplies by lr_init


def _get_inverse_sqrt_schedule_lr_lambda(current_step, *, num_warmup_steps, timescale=None):
    if current_step < num_warmup_steps:                 # get_inverse_sqrt_schedule
        return float(current_step) / float(max(1, num_warmup_steps))
    shift = timescale - num_warmup_steps
    decay = 1.0 / math.sqrt((current_step + shift) / timescale)
    return decay


def _get_wsd_scheduler_lambda(current_step, *, num_warmup_steps, num_stable_steps, num_decay_steps,
                              warmup_type, decay_type, min_lr_ratio, num_cycles):
    if current_step < num_warmup_steps:                 # get_wsd_schedule
        progress = float(current_step) / float(max(1, num_warmup_steps))
        if warmup_type == "linear":
            factor = progress
        elif warmup_type == "cosine":
            factor = 0.5 * (1.0 - math.cos(math.pi * progress))
        elif warmup_type == "1-sqrt":
            factor = 1.0 - math.sqrt(1.0 - progress)
        factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
        return max(0.0, factor)

    if current_step < num_warmup_steps + num_stable_steps:
        return 1.0

    if current_step < num_warmup_steps + num_stable_steps + num_decay_steps:
        progress = float(current_step - num_warmup_steps - num_stable_steps) / float(max(1, num_decay_steps))
        if decay_type == "linear":
            factor = 1.0 - progress
        elif decay_type == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
        elif decay_type == "1-sqrt":
            factor = 1.0 - math.sqrt(progress)
        factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
        return max(0.0, factor)
    return min_lr_ratio


# ---------------------------------------------------------------------------
# The rest: the seed's lambda and our own shapes
# ---------------------------------------------------------------------------

def seed_cosine_with_warmup(W, T, m):
    """The seed's cosine_with_warmup lambda (traind-run.yaml(5), type `cosine`)."""
    def f(s):
        if s < W:
            return s / max(1, W)
        p = (s - W) / max(1, T - W)
        return m + (1 - m) * 0.5 * (1 + math.cos(math.pi * p))
    return f


def piecewise_lambda(points):
    """No outside anchor: linear interpolation through the points; the first ratio before
    the first point, the last after the last."""
    def f(i):
        if i <= points[0][0]:
            return points[0][1]
        for (a, ra), (b, rb) in zip(points, points[1:]):
            if i <= b:
                return ra + (rb - ra) * (i - a) / (b - a)
        return points[-1][1]
    return f


def onecycle_lambda(T, max_lr, pct_start=0.3, div_factor=25.0, final_div_factor=1e4, anneal_cos=True,
                    three_phase=False):
    """torch.optim.lr_scheduler.OneCycleLR's get_lr as a closed form, divided by max_lr.  The rates
    are computed in absolute terms, as torch does: the linear anneal's last step, (min - max) + max,
    loses digits, and the same ones as torch's."""
    lo = max_lr / div_factor                # torch's initial_lr
    floor = lo / final_div_factor           # torch's min_lr
    up = float(pct_start * T) - 1           # the step where the rise ends
    if three_phase:
        phases = [(up, lo, max_lr), (float(2 * pct_start * T) - 2, max_lr, lo), (T - 1, lo, floor)]
    else:
        phases = [(up, lo, max_lr), (T - 1, max_lr, floor)]

    def anneal(a, b, x):
        if anneal_cos:
            return b + (a - b) / 2.0 * (math.cos(math.pi * x) + 1)
        return (b - a) * x + a

    def f(s):
        begin = 0.0
        for k, (end, a, b) in enumerate(phases):
            if s <= end or k == len(phases) - 1:
                return anneal(a, b, (s - begin) / (end - begin)) / max_lr
            begin = end
    return f


def resolve(lr, sc):
    """The config layer's resolution of a schedule block (traind-run.yaml(5), as HF does it)."""
    T = int(sc["total_steps"])
    W = int(sc.get("warmup_steps", 0))
    if "warmup_ratio" in sc:
        W = math.ceil(float(sc["warmup_ratio"]) * T)          # HF TrainingArguments.get_warmup_steps
    m = float(sc["min_lr"]) / lr if "min_lr" in sc else float(sc.get("min_lr_ratio", 0.0))
    r = float(sc.get("warmup_start_ratio", 0.0))
    t = sc.get("type", "cosine")
    D = 0
    if t == "warmup_stable_decay":
        if "decay_steps" in sc:
            D = int(sc["decay_steps"])
        elif "decay_ratio" in sc:
            D = round(float(sc["decay_ratio"]) * T)              # Python's round: halves to even
        else:
            D = T - W - int(sc["stable_steps"])
    return dict(type=t, T=T, W=W, m=m, r=r, D=D,
                cycles=float(sc.get("cycles", 1.0)), power=float(sc.get("power", 1.0)),
                timescale=int(sc.get("timescale", W or 10000)),
                warmup_type=sc.get("warmup_type", "linear"), decay_type=sc.get("decay_type", "cosine"),
                step_size=int(sc.get("step_size", 0)), gamma=float(sc.get("gamma", 0.1)),
                milestones=list(sc.get("milestones", [])),
                pct_start=float(sc.get("pct_start", 0.3)), div_factor=float(sc.get("div_factor", 25.0)),
                final_div_factor=float(sc.get("final_div_factor", 1e4)),
                anneal_cos=sc.get("anneal", "cos") == "cos", three_phase=bool(sc.get("three_phase", False)),
                points=sc.get("points", []))


def lr_lambda(sc, base_lr):
    """The multiplier f(s) of base_lr for the update at 0-based step s, for the schedule block sc."""
    R = resolve(base_lr, sc)
    t, T, W, m, r = R["type"], R["T"], R["W"], R["m"], R["r"]

    # Types that have no separate warmup phase (or their own).
    if t == "constant":
        return _get_constant_lambda
    if t == "onecycle":
        return onecycle_lambda(T, base_lr, R["pct_start"], R["div_factor"], R["final_div_factor"],
                               R["anneal_cos"], R["three_phase"])
    if t == "piecewise":
        return piecewise_lambda(R["points"])
    if t == "warmup_stable_decay":
        def wsd(s, _kw=dict(num_warmup_steps=W, num_stable_steps=T - W - R["D"], num_decay_steps=R["D"],
                             warmup_type=R["warmup_type"], decay_type=R["decay_type"], min_lr_ratio=m,
                             num_cycles=0.5)):
            return _get_wsd_scheduler_lambda(s, **_kw)
        return wsd

    # The rest: a warmup over s < W, then `after(s)` for s >= W.
    if t == "constant_with_warmup":
        def after(s):
            return 1.0
    elif t == "linear":
        if m == 0:
            def after(s):
                return _get_linear_schedule_with_warmup_lr_lambda(s, num_warmup_steps=W, num_training_steps=T)
        else:                                   # HF has no floor: torch LinearLR(1, m, T - W)'s closed form
            def after(s):
                p = (s - W) / max(1, T - W)
                return max(0.0, m + (1 - m) * (1 - p))
    elif t == "cosine":
        def after(s):
            return _get_cosine_schedule_with_warmup_lr_lambda(s, num_warmup_steps=W, num_training_steps=T,
                                                              num_cycles=0.5, min_lr_rate=m)
    elif t == "cosine_with_restarts":
        def after(s):
            return _get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda(
                s, num_warmup_steps=W, num_training_steps=T, num_cycles=R["cycles"])
    elif t == "polynomial":
        def after(s):
            return _get_polynomial_decay_schedule_with_warmup_lr_lambda(
                s, num_warmup_steps=W, num_training_steps=T, lr_end=m * base_lr, power=R["power"],
                lr_init=base_lr)
    elif t == "inverse_sqrt":
        def after(s):
            return _get_inverse_sqrt_schedule_lr_lambda(s, num_warmup_steps=W, timescale=R["timescale"])
    elif t == "step":                           # torch StepLR, counted from the end of the warmup
        def after(s):
            return R["gamma"] ** ((s - W) // R["step_size"])
    elif t == "multistep":                      # torch MultiStepLR, milestones absolute
        def after(s):
            return R["gamma"] ** sum(1 for x in R["milestones"] if x <= s)
    elif t == "exponential":                    # torch ExponentialLR from the end of the warmup
        def after(s):
            return R["gamma"] ** (s - W)
    else:
        raise ValueError(f"unknown schedule type {t!r}")

    def f(s):
        if s < W:
            if r > 0:                           # torch LinearLR(start_factor=r)
                return r + (1 - r) * s / W
            return s / max(1, W)
        return after(s)
    return f


def schedule_lrs(cfg):
    """The lr of every step s = 0 .. total_steps-1 of a parsed run config."""
    base = float(cfg.get("optimizer", {}).get("lr", 1e-3))
    sc = cfg.get("schedule") or {}
    f = lr_lambda(sc, base)
    return [base * f(s) for s in range(int(sc["total_steps"]))]

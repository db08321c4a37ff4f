#!/usr/bin/env python3
"""Generates the committed reference data of the schedule and optimizer tests.

    /usr/bin/python3 tests/gen_torch_ref.py          # from the repository root

Run once, by hand, on a machine with PyTorch (Debian's python3-torch 1.13) and
python3-yaml; commit what it writes.  The unit tests read the files and never
need torch.

tests/data/schedules/CASE.yaml, CASE.json
    A complete run config and the lr of every step s = 0 .. total_steps-1 as
    torch computes it: opt.param_groups[0]['lr'] read before each opt.step(),
    then scheduler.step().  The schedulers are the anchors of traind-run.yaml(5) SCHEDULE:
    torch.optim.lr_scheduler.LambdaLR over HuggingFace's lr lambdas (copied
    in bench/schedules.py, verbatim from transformers/optimization.py, which
    cannot be installed here),
    torch's own StepLR / MultiStepLR / ExponentialLR / OneCycleLR / LinearLR,
    chained after a warmup with SequentialLR.  Every case is also checked
    against bench/schedules.py's lr_lambda (bench/torch_ref.py's); disagreements above
    1e-12 relative are printed (float rounding of torch's recursive
    schedulers is expected; anything else is a real disagreement).

tests/data/optim/CASE.json
    Initial parameters, five gradients, hyper-parameters and torch's
    parameters and state after every step of torch.optim.AdamW / Adam / SGD
    (torch 1.13 single-tensor CPU path, foreach=False), and
    torch.nn.utils.clip_grad_norm_ cases.  Floats are written as the hex bit
    patterns of the float32 values ("0x3f800000"), so nothing is lost.

tests/data/optim/schedule_free*.json
    Schedule-free AdamW (Defazio et al., "The Road Less Scheduled", NeurIPS
    2024; facebookresearch/schedule_free, AdamWScheduleFree v1.4.1), written
    here from its formulas in torch's single-tensor ops (schedule_free_step;
    the package cannot be installed here): per step the lr the schedule hands
    the optimizer, the gradient, y (the parameters while training), z, v and
    x = lerp(y, z, 1 - 1/beta1) (the evaluation weights), and the Python
    doubles weight_sum and lr_max.  `python3 tests/gen_torch_ref.py sf` writes
    only these.

tests/data/optim/muon_*.json
    Muon (Keller Jordan's, in float32) on one matrix per case, from the torch
    code below (gen_muon), with its shape; `gen_torch_ref.py muon` writes only these.
"""
import json
import math
import os
import struct
import sys
import warnings
from functools import partial

import torch
from torch.optim.lr_scheduler import (LambdaLR, LinearLR, SequentialLR, StepLR, MultiStepLR,
                                      ExponentialLR, OneCycleLR)

HERE = os.path.dirname(os.path.abspath(__file__))
SCHED_DIR = os.path.join(HERE, "data", "schedules")
OPTIM_DIR = os.path.join(HERE, "data", "optim")
BENCH_DIR = os.path.join(os.path.dirname(HERE), "bench")

warnings.filterwarnings("ignore")   # SequentialLR's step(epoch) deprecation notice


# ---------------------------------------------------------------------------
# HuggingFace transformers/optimization.py lr lambdas (verbatim, in bench/schedules.py, which
# bench/torch_ref.py uses too), the seed's lambda, the piecewise interpolation and the
# config layer's resolution of a schedule block.
# ---------------------------------------------------------------------------

sys.dont_write_bytecode = True           # no bench/__pycache__ in the work tree
sys.path.insert(0, BENCH_DIR)
from schedules import (_get_constant_lambda, _get_constant_schedule_with_warmup_lr_lambda,  # noqa: E402
                       _get_linear_schedule_with_warmup_lr_lambda, _get_cosine_schedule_with_warmup_lr_lambda,
                       _get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda,
                       _get_polynomial_decay_schedule_with_warmup_lr_lambda, _get_inverse_sqrt_schedule_lr_lambda,
                       _get_wsd_scheduler_lambda, seed_cosine_with_warmup, piecewise_lambda, resolve)
import schedules as bench_schedules  # noqa: E402


def get_wsd_schedule(optimizer, num_warmup_steps, num_decay_steps, num_training_steps=None, num_stable_steps=None,
                     warmup_type="linear", decay_type="cosine", min_lr_ratio=0, num_cycles=0.5):
    if num_stable_steps is None:
        num_stable_steps = num_training_steps - num_warmup_steps - num_decay_steps
    return LambdaLR(optimizer, partial(_get_wsd_scheduler_lambda, num_warmup_steps=num_warmup_steps,
                                       num_stable_steps=num_stable_steps, num_decay_steps=num_decay_steps,
                                       warmup_type=warmup_type, decay_type=decay_type,
                                       min_lr_ratio=min_lr_ratio, num_cycles=num_cycles))


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------

# (name, optimizer lr, schedule keys as written in the YAML, note)
SCHED_CASES = [
    ("constant", 1e-3, dict(type="constant", warmup_steps=3, total_steps=10), "HF get_constant_schedule; warmup ignored"),
    ("constant_with_warmup", 1e-3, dict(type="constant_with_warmup", warmup_steps=5, total_steps=20),
     "HF get_constant_schedule_with_warmup"),
    ("constant_with_warmup_start", 2e-4, dict(type="constant_with_warmup", warmup_steps=5, total_steps=20,
                                              warmup_start_ratio=0.25), "torch LinearLR(start_factor=0.25)"),
    ("linear", 1e-3, dict(type="linear", warmup_steps=10, total_steps=100), "HF get_linear_schedule_with_warmup"),
    ("linear_min_lr_ratio", 1e-3, dict(type="linear", warmup_steps=10, total_steps=50, min_lr_ratio=0.1),
     "HF warmup lambda, then torch LinearLR(1, 0.1, T - W) (SequentialLR)"),
    ("linear_w0", 2e-4, dict(type="linear", warmup_steps=0, total_steps=25), "HF linear, W = 0"),
    ("linear_w_eq_t", 1e-3, dict(type="linear", warmup_steps=20, total_steps=20), "HF linear, W = T"),
    ("linear_t1", 1e-3, dict(type="linear", total_steps=1), "HF linear, T = 1"),
    ("linear_t2", 1e-3, dict(type="linear", warmup_steps=1, total_steps=2), "HF linear, T = 2, W = 1"),
    ("linear_warmup_start", 1e-3, dict(type="linear", warmup_steps=4, total_steps=30, warmup_start_ratio=0.1),
     "torch LinearLR(start_factor=0.1), then HF linear (SequentialLR)"),
    ("cosine", 1e-3, dict(type="cosine", warmup_steps=10, total_steps=100), "HF get_cosine_schedule_with_warmup"),
    ("cosine_default_type", 2e-4, dict(warmup_steps=3, total_steps=17), "no type: cosine is the default"),
    ("cosine_seed", 1e-3, dict(type="cosine", warmup_steps=10, total_steps=100, min_lr_ratio=0.1),
     "the seed's cosine_with_warmup LambdaLR"),
    ("cosine_min_lr_ratio", 1e-3, dict(type="cosine", warmup_steps=5, total_steps=60, min_lr_ratio=0.05),
     "HF get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=0.05)"),
    ("cosine_min_lr", 2e-4, dict(type="cosine", warmup_steps=5, total_steps=60, min_lr=2e-5),
     "HF get_cosine_with_min_lr_schedule_with_warmup(min_lr=2e-5)"),
    ("cosine_warmup_ratio", 1e-3, dict(type="cosine", warmup_ratio=0.25, total_steps=40),
     "warmup_ratio 0.25 of 40: W = 10"),
    ("cosine_warmup_ratio_ceil", 1e-3, dict(type="cosine", warmup_ratio=0.07, total_steps=100),
     "warmup_ratio 0.07 of 100: HF's math.ceil(0.07 * 100) = ceil(7.000000000000001) = 8"),
    ("cosine_warmup_start", 1e-3, dict(type="cosine", warmup_steps=8, total_steps=40, warmup_start_ratio=0.01),
     "torch LinearLR(start_factor=0.01), then HF cosine (SequentialLR)"),
    ("cosine_w0", 1e-3, dict(type="cosine", warmup_steps=0, total_steps=30), "HF cosine, W = 0"),
    ("cosine_w_eq_t", 1e-3, dict(type="cosine", warmup_steps=12, total_steps=12), "HF cosine, W = T"),
    ("cosine_t1", 1e-3, dict(type="cosine", total_steps=1), "HF cosine, T = 1"),
    ("cosine_t1_w1", 1e-3, dict(type="cosine", warmup_steps=1, total_steps=1), "HF cosine, T = W = 1"),
    ("cosine_t2", 1e-3, dict(type="cosine", total_steps=2), "HF cosine, T = 2"),
    ("cosine_t2_w1", 1e-3, dict(type="cosine", warmup_steps=1, total_steps=2), "HF cosine, T = 2, W = 1"),
    ("cosine_with_restarts", 1e-3, dict(type="cosine_with_restarts", warmup_steps=5, total_steps=65, cycles=3),
     "HF get_cosine_with_hard_restarts_schedule_with_warmup(num_cycles=3)"),
    ("cosine_with_restarts_1", 2e-4, dict(type="cosine_with_restarts", total_steps=20),
     "HF hard restarts, num_cycles default 1"),
    ("cosine_with_restarts_2_5", 1e-3, dict(type="cosine_with_restarts", warmup_steps=4, total_steps=44, cycles=2.5),
     "HF hard restarts, num_cycles 2.5"),
    ("polynomial_power2", 1e-3, dict(type="polynomial", warmup_steps=10, total_steps=80, power=2.0,
                                     min_lr_ratio=0.01), "HF get_polynomial_decay_schedule_with_warmup(lr_end=1e-5, power=2)"),
    ("polynomial_linear", 2e-4, dict(type="polynomial", warmup_steps=5, total_steps=40),
     "HF polynomial, power 1, lr_end 0"),
    ("polynomial_sqrt", 1e-3, dict(type="polynomial", total_steps=33, power=0.5, min_lr=1e-5),
     "HF polynomial, power 0.5, lr_end = min_lr 1e-5, W = 0"),
    ("inverse_sqrt", 1e-3, dict(type="inverse_sqrt", warmup_steps=10, total_steps=60),
     "HF get_inverse_sqrt_schedule, timescale default W"),
    ("inverse_sqrt_timescale", 1e-3, dict(type="inverse_sqrt", warmup_steps=10, total_steps=60, timescale=25),
     "HF get_inverse_sqrt_schedule(timescale=25)"),
    ("inverse_sqrt_w0", 1e-3, dict(type="inverse_sqrt", total_steps=50), "HF inverse_sqrt, W = 0: timescale 10000"),
    ("inverse_sqrt_warmup_start", 2e-4, dict(type="inverse_sqrt", warmup_steps=6, total_steps=30,
                                             warmup_start_ratio=0.5),
     "torch LinearLR(start_factor=0.5), then HF inverse_sqrt (SequentialLR)"),
    ("wsd", 1e-3, dict(type="warmup_stable_decay", warmup_steps=10, total_steps=100, decay_steps=20),
     "HF get_wsd_schedule, linear warmup, cosine decay"),
    ("wsd_warmup_cosine", 1e-3, dict(type="warmup_stable_decay", warmup_steps=10, total_steps=60, decay_ratio=0.2,
                                     warmup_type="cosine", decay_type="linear"),
     "HF get_wsd_schedule, cosine warmup, linear decay, decay_ratio 0.2 (D = 12)"),
    ("wsd_1sqrt", 2e-4, dict(type="warmup_stable_decay", warmup_steps=8, total_steps=50, stable_steps=30,
                             warmup_type="1-sqrt", decay_type="1-sqrt", min_lr_ratio=0.1),
     "HF get_wsd_schedule(num_stable_steps=30), 1-sqrt both ways, min_lr_ratio 0.1"),
    ("wsd_min_lr", 1e-3, dict(type="warmup_stable_decay", warmup_steps=5, total_steps=40, decay_steps=15,
                              min_lr=1e-4, warmup_type="linear", decay_type="cosine"),
     "HF get_wsd_schedule, min_lr 1e-4 (min_lr_ratio 0.1)"),
    ("wsd_w0", 1e-3, dict(type="warmup_stable_decay", total_steps=30, decay_steps=10, decay_type="1-sqrt"),
     "HF get_wsd_schedule, W = 0"),
    ("wsd_no_stable", 1e-3, dict(type="warmup_stable_decay", warmup_steps=5, total_steps=25, stable_steps=0,
                                 decay_type="linear", min_lr_ratio=0.05),
     "HF get_wsd_schedule, stable_steps 0 (D = 20)"),
    ("step", 1e-3, dict(type="step", total_steps=40, step_size=7, gamma=0.5), "torch StepLR(7, 0.5)"),
    ("step_warmup", 1e-3, dict(type="step", warmup_steps=5, total_steps=50, step_size=10),
     "HF warmup lambda, then torch StepLR(10, gamma default 0.1)"),
    ("step_warmup_start", 2e-4, dict(type="step", warmup_steps=5, total_steps=30, step_size=4, gamma=0.8,
                                     warmup_start_ratio=0.2), "torch LinearLR(start_factor=0.2), then StepLR(4, 0.8)"),
    ("multistep", 1e-3, dict(type="multistep", total_steps=40, milestones=[10, 25, 30]),
     "torch MultiStepLR([10, 25, 30], gamma default 0.1)"),
    ("multistep_warmup", 1e-3, dict(type="multistep", warmup_steps=4, total_steps=30, milestones=[3, 12, 20],
                                    gamma=0.5),
     "HF warmup lambda, then torch MultiStepLR (milestones absolute: 3 <= W counts from W on)"),
    ("exponential", 1e-3, dict(type="exponential", total_steps=50, gamma=0.9), "torch ExponentialLR(0.9)"),
    ("exponential_warmup", 1e-3, dict(type="exponential", warmup_steps=5, total_steps=60, gamma=0.95),
     "HF warmup lambda, then torch ExponentialLR(0.95)"),
    ("onecycle", 1e-3, dict(type="onecycle", total_steps=100), "torch OneCycleLR defaults"),
    ("onecycle_three_phase", 1e-3, dict(type="onecycle", total_steps=100, three_phase=True),
     "torch OneCycleLR(three_phase=True)"),
    ("onecycle_linear", 2e-4, dict(type="onecycle", total_steps=100, anneal="linear"),
     "torch OneCycleLR(anneal_strategy='linear')"),
    ("onecycle_custom", 1e-3, dict(type="onecycle", total_steps=57, pct_start=0.25, div_factor=10.0,
                                   final_div_factor=100.0, anneal="linear", three_phase=True),
     "torch OneCycleLR(pct_start=0.25, div_factor=10, final_div_factor=100, linear, three_phase)"),
    ("onecycle_t4", 1e-3, dict(type="onecycle", total_steps=4), "torch OneCycleLR, T = 4 (warm-up ends at 0.2)"),
    ("onecycle_t5_three_phase", 1e-3, dict(type="onecycle", total_steps=5, pct_start=0.4, three_phase=True),
     "torch OneCycleLR, T = 5, three_phase, phases end at 1, 2, 4"),
    ("piecewise", 1e-3, dict(type="piecewise", total_steps=100, points=[[0, 0.0], [10, 1.0], [50, 0.2], [80, 0.2]]),
     "linear interpolation (torch_ref.py's); ends at the last point"),
    ("piecewise_outside", 2e-4, dict(type="piecewise", total_steps=80, points=[[5, 0.5], [20, 1.0], [60, 0.1]]),
     "first ratio before the first point, last ratio after the last"),
]


def torch_schedule(lr, sc):
    """Builds the anchor's torch scheduler for one case; returns the lr of every step."""
    R = resolve(lr, sc)
    t, T, W, m, r = R["type"], R["T"], R["W"], R["m"], R["r"]
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)

    def hf_warmup():
        return partial(_get_linear_schedule_with_warmup_lr_lambda, num_warmup_steps=W, num_training_steps=W)

    def after_warmup(make_after):
        """make_after() builds the scheduler of the steps from W on (its epoch 0 = step W)."""
        if W == 0:
            return make_after()
        warm = LinearLR(opt, start_factor=r, end_factor=1.0, total_iters=W) if r > 0 else LambdaLR(opt, hf_warmup())
        return SequentialLR(opt, [warm, make_after()], milestones=[W])

    def hf(lam):
        """An HF lambda (which has its own 0 -> 1 warmup); with warmup_start_ratio, torch
        LinearLR(start_factor) does the warmup and the lambda takes over at W."""
        if r == 0 or W == 0:
            return LambdaLR(opt, lam)
        return after_warmup(lambda: LambdaLR(opt, lambda e: lam(e + W)))

    if t == "constant":
        sched = LambdaLR(opt, _get_constant_lambda)
    elif t == "constant_with_warmup":
        sched = hf(partial(_get_constant_schedule_with_warmup_lr_lambda, num_warmup_steps=W))
    elif t == "linear":
        if m == 0:
            sched = hf(partial(_get_linear_schedule_with_warmup_lr_lambda, num_warmup_steps=W, num_training_steps=T))
        else:
            sched = after_warmup(lambda: LinearLR(opt, start_factor=1.0, end_factor=m, total_iters=T - W))
    elif t == "cosine":
        if sc is SEED_CASE:
            sched = LambdaLR(opt, seed_cosine_with_warmup(W, T, m))
        else:
            sched = hf(partial(_get_cosine_schedule_with_warmup_lr_lambda, num_warmup_steps=W, num_training_steps=T,
                               num_cycles=0.5, min_lr_rate=m))
    elif t == "cosine_with_restarts":
        sched = hf(partial(_get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda, num_warmup_steps=W,
                           num_training_steps=T, num_cycles=R["cycles"]))
    elif t == "polynomial":
        assert lr > m * lr
        sched = hf(partial(_get_polynomial_decay_schedule_with_warmup_lr_lambda, num_warmup_steps=W,
                           num_training_steps=T, lr_end=m * lr, power=R["power"], lr_init=lr))
    elif t == "inverse_sqrt":
        sched = hf(partial(_get_inverse_sqrt_schedule_lr_lambda, num_warmup_steps=W, timescale=R["timescale"]))
    elif t == "warmup_stable_decay":
        if "stable_steps" in sc:
            sched = get_wsd_schedule(opt, W, R["D"], num_stable_steps=int(sc["stable_steps"]),
                                     warmup_type=R["warmup_type"], decay_type=R["decay_type"], min_lr_ratio=m)
        else:
            sched = get_wsd_schedule(opt, W, R["D"], num_training_steps=T,
                                     warmup_type=R["warmup_type"], decay_type=R["decay_type"], min_lr_ratio=m)
    elif t == "step":
        sched = after_warmup(lambda: StepLR(opt, step_size=R["step_size"], gamma=R["gamma"]))
    elif t == "multistep":
        sched = after_warmup(lambda: MultiStepLR(opt, milestones=[x - W for x in R["milestones"]], gamma=R["gamma"]))
    elif t == "exponential":
        sched = after_warmup(lambda: ExponentialLR(opt, gamma=R["gamma"]))
    elif t == "onecycle":
        sched = OneCycleLR(opt, max_lr=lr, total_steps=T, pct_start=R["pct_start"],
                           anneal_strategy="cos" if R["anneal_cos"] else "linear", cycle_momentum=False,
                           div_factor=R["div_factor"], final_div_factor=R["final_div_factor"],
                           three_phase=R["three_phase"])
    elif t == "piecewise":
        sched = LambdaLR(opt, piecewise_lambda(R["points"]))
    else:
        raise SystemExit(f"unknown type {t}")

    lrs = []
    for _ in range(T):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if len(lrs) < T:      # OneCycleLR refuses to step past total_steps
            sched.step()
    return lrs


SEED_CASE = next(c[2] for c in SCHED_CASES if c[0] == "cosine_seed")


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        s = repr(v)
        if "e" in s and "." not in s.split("e")[0]:         # YAML 1.1 (PyYAML) wants 2.0e-05, not 2e-05
            mant, exp = s.split("e")
            s = f"{mant}.0e{exp}"
        return s
    if isinstance(v, list):
        return "[" + ", ".join(yaml_scalar(x) for x in v) + "]"
    return str(v)


def write_schedule_case(name, lr, sc, note):
    lines = [f"# {name}: {note}",
             "# Generated by tests/gen_torch_ref.py; the expected lr of every step is " + name + ".json.",
             f"name: {name}",
             "model:", "  type: linear", "  input_dim: 2", "  output_dim: 1",
             "optimizer:", "  type: adamw", f"  lr: {yaml_scalar(lr)}",
             "schedule:"]
    for k, v in sc.items():
        lines.append(f"  {k}: {yaml_scalar(v)}")
    with open(os.path.join(SCHED_DIR, name + ".yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def gen_schedules():
    os.makedirs(SCHED_DIR, exist_ok=True)
    import yaml
    worst_all = 0.0
    for name, lr, sc, note in SCHED_CASES:
        write_schedule_case(name, lr, sc, note)
        lrs = torch_schedule(lr, sc)
        with open(os.path.join(SCHED_DIR, name + ".json"), "w") as f:
            f.write("[" + ",\n ".join(repr(x) for x in lrs) + "]\n")   # repr: shortest exact round trip
        # bench/torch_ref.py's lambda, reading the YAML file as a user would
        cfg = yaml.safe_load(open(os.path.join(SCHED_DIR, name + ".yaml")))
        base = float(cfg["optimizer"]["lr"])
        f = bench_schedules.lr_lambda(cfg["schedule"], base)
        worst, at = 0.0, -1
        for i, x in enumerate(lrs):
            y = base * f(i)
            d = abs(x - y) / max(abs(x), abs(y)) if max(abs(x), abs(y)) > 1e-300 else 0.0
            if d > worst:
                worst, at = d, i
        worst_all = max(worst_all, worst)
        flag = "  <-- DISAGREES" if worst > 1e-12 else ""
        print(f"{name:32s} T={len(lrs):4d}  torch_ref vs anchor: max rel diff {worst:.3g}"
              + (f" at step {at} ({lrs[at]!r} vs {base * f(at)!r})" if worst > 0 else "") + flag)
    print(f"{len(SCHED_CASES)} schedule cases; worst torch_ref disagreement {worst_all:.3g}")


# ---------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------

def f32hex(x):
    return "0x%08x" % struct.unpack("<I", struct.pack("<f", float(x)))[0]


def hexlist(t):
    return [f32hex(x) for x in t.detach().flatten().tolist()]


def dump_json(path, obj):
    """One top-level key per line, list-valued keys' items one per line: diffable, not huge."""
    lines = []
    for k, v in obj.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            inner = ",\n  ".join(json.dumps(x) for x in v)
            lines.append(f' {json.dumps(k)}: [\n  {inner}\n ]')
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}")
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def gen_optim():
    os.makedirs(OPTIM_DIR, exist_ok=True)
    g = torch.Generator().manual_seed(20240520)
    N, STEPS = 37, 5
    LRS = [1e-3, 3e-3, 2.5e-4, 1e-2, 7e-4]      # a different lr at every step
    cases = [
        ("adamw_wd001", dict(type="adamw", weight_decay=0.01)),
        ("adamw_wd01", dict(type="adamw", weight_decay=0.1, betas=[0.8, 0.95], eps=1e-6)),
        ("adam_wd0", dict(type="adam", weight_decay=0.0)),
        ("adam_wd001", dict(type="adam", weight_decay=0.01)),
        ("sgd_plain", dict(type="sgd", momentum=0.0, weight_decay=0.0)),
        ("sgd_momentum", dict(type="sgd", momentum=0.9, weight_decay=0.0)),
        ("sgd_nesterov", dict(type="sgd", momentum=0.9, nesterov=True, weight_decay=0.0)),
        ("sgd_wd", dict(type="sgd", momentum=0.9, weight_decay=0.01)),
        ("sgd_wd_nomomentum", dict(type="sgd", momentum=0.0, weight_decay=0.05)),
    ]
    for name, hp in cases:
        # 37 floats: 32 go through torch's 8-wide AVX2 loop (16 per iteration), 5 through its scalar tail
        p0 = torch.randn(N, generator=g)
        grads = [torch.randn(N, generator=g) * (0.1 * (k + 1)) for k in range(STEPS)]
        grads[2][3] = 0.0                    # a zero gradient entry
        param = torch.nn.Parameter(p0.clone())
        t = hp["type"]
        if t == "sgd":
            opt = torch.optim.SGD([param], lr=LRS[0], momentum=hp["momentum"], weight_decay=hp["weight_decay"],
                                  nesterov=hp.get("nesterov", False), foreach=False)
        else:
            cls = torch.optim.AdamW if t == "adamw" else torch.optim.Adam
            opt = cls([param], lr=LRS[0], betas=tuple(hp.get("betas", (0.9, 0.999))), eps=hp.get("eps", 1e-8),
                      weight_decay=hp["weight_decay"], foreach=False)
        steps = []
        for k in range(STEPS):
            for group in opt.param_groups:
                group["lr"] = LRS[k]
            param.grad = grads[k].clone()
            opt.step()
            st = opt.state[param]
            rec = {"lr": LRS[k], "grad": hexlist(grads[k]), "params": hexlist(param)}
            if t == "sgd":
                if hp["momentum"] != 0:
                    rec["m"] = hexlist(st["momentum_buffer"])
            else:
                rec["m"] = hexlist(st["exp_avg"])
                rec["v"] = hexlist(st["exp_avg_sq"])
                rec["step"] = int(st["step"].item())
            steps.append(rec)
        out = {"torch": torch.__version__, "case": name, "n": N,
               "optimizer": dict({"type": t, "beta1": hp.get("betas", (0.9, 0.999))[0],
                                  "beta2": hp.get("betas", (0.9, 0.999))[1], "eps": hp.get("eps", 1e-8),
                                  "weight_decay": hp["weight_decay"], "momentum": hp.get("momentum", 0.0),
                                  "nesterov": hp.get("nesterov", False)}),
               "params0": hexlist(p0), "steps": steps}
        dump_json(os.path.join(OPTIM_DIR, name + ".json"), out)

    # clip_grad_norm_: one tensor of N floats (torch reduces each tensor in float32 and takes the norm of
    # the norms; with one tensor that is the tensor's own norm).  max_norm large (no clipping), small, equal-ish.
    clips = []
    for k, (n, scale, max_norm) in enumerate([(37, 1.0, 1.0), (37, 1.0, 100.0), (1000, 0.05, 0.5),
                                              (64, 3.0, 2.5), (5, 1e-3, 1e-4)]):
        grad = torch.randn(n, generator=g) * scale
        p = torch.nn.Parameter(torch.zeros(n))
        p.grad = grad.clone()
        total = torch.nn.utils.clip_grad_norm_([p], max_norm)
        clips.append({"n": n, "max_norm": max_norm, "grad": hexlist(grad), "torch_norm": f32hex(total.item()),
                      "clipped": hexlist(p.grad)})
    dump_json(os.path.join(OPTIM_DIR, "clip.json"), {"torch": torch.__version__, "cases": clips})
    print(f"{len(cases)} optimizer cases, {len(clips)} clip cases")


# ---------------------------------------------------------------------------
# Schedule-free AdamW
# ---------------------------------------------------------------------------

def schedule_free_step(st, y, grad, lr_sched, hp):
    """One step of schedule-free AdamW on y (the parameters while training), in
    the order and with the tensor ops of the reference's single-tensor path:
    Python doubles for the scalars, float32 tensor ops for the rest."""
    b1, b2 = hp["betas"]
    k, W = st["k"], hp["warmup_steps"]
    lr = lr_sched * ((k + 1) / W if k < W else 1.0)       # its own linear warmup
    st["lr_max"] = lr_max = max(st["lr_max"], lr)
    weight = ((k + 1) ** hp["r"]) * (lr_max ** hp["weight_lr_power"])
    st["weight_sum"] += weight
    ckp1 = weight / st["weight_sum"] if st["weight_sum"] != 0 else 0.0   # the reference: ZeroDivisionError -> 0
    if k == 0:
        st["z"] = y.clone()
        st["v"] = torch.zeros_like(y)
    z, v = st["z"], st["v"]
    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    denom = v.div(1 - b2 ** (k + 1)).sqrt_().add_(hp["eps"])
    gn = grad.div(denom)
    if hp["weight_decay"] != 0:
        gn.add_(y, alpha=hp["weight_decay"])
    y.lerp_(z, ckp1)
    y.add_(gn, alpha=lr * (b1 * (1 - ckp1) - 1))
    z.sub_(gn, alpha=lr)
    st["k"] = k + 1


def gen_schedule_free():
    os.makedirs(OPTIM_DIR, exist_ok=True)
    g = torch.Generator().manual_seed(20250611)     # its own stream: the other cases' data stay as they are
    N, STEPS = 37, 8
    base = dict(betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0)
    # (name, hyper-parameters over the defaults, the lr of each step as the schedule hands it)
    cases = [
        ("schedule_free_default", {}, [2.5e-3] * STEPS),
        ("schedule_free_wd", dict(weight_decay=0.05, eps=1e-6), [1e-2] * STEPS),
        ("schedule_free_warmup", dict(warmup_steps=5, weight_decay=0.01), [3e-3] * STEPS),
        ("schedule_free_r", dict(r=1.5, weight_lr_power=1.0, betas=[0.95, 0.99]),
         [1e-3, 3e-3, 2.5e-4, 1e-2, 7e-4, 5e-3, 5e-3, 2e-3]),
        # beta1 0.6: x's lerp weight 1 - 1/0.6 = -0.667 takes lerp's other branch;
        # a schedule warming up from lr 0: the first weights are 0 (weight_sum 0: ckp1 = 0)
        ("schedule_free_lr0", dict(betas=[0.6, 0.95], warmup_steps=2, weight_decay=0.1),
         [0.0, 1e-3, 2e-3, 3e-3, 4e-3, 4e-3, 4e-3, 4e-3]),
    ]
    for name, over, lrs in cases:
        hp = dict(base, **over)
        p0 = torch.randn(N, generator=g)
        grads = [torch.randn(N, generator=g) * (0.1 * (k + 1)) for k in range(STEPS)]
        grads[2][3] = 0.0                    # a zero gradient entry
        y = p0.clone()
        st = {"k": 0, "lr_max": -1.0, "weight_sum": 0.0}
        steps = []
        for k in range(STEPS):
            schedule_free_step(st, y, grads[k].clone(), lrs[k], hp)
            x = torch.lerp(y, st["z"], 1 - 1 / hp["betas"][0])      # the reference's optimizer.eval()
            steps.append({"lr": lrs[k], "grad": hexlist(grads[k]), "params": hexlist(y), "x": hexlist(x),
                          "z": hexlist(st["z"]), "v": hexlist(st["v"]), "weight_sum": st["weight_sum"],
                          "lr_max": st["lr_max"]})
        out = {"torch": torch.__version__, "case": name, "n": N,
               "optimizer": dict({"type": "schedule_free_adamw"}, **hp),
               "params0": hexlist(p0), "steps": steps}
        dump_json(os.path.join(OPTIM_DIR, name + ".json"), out)
    print(f"{len(cases)} schedule-free cases")


# Muon, Keller Jordan's variant (KellerJordan/Muon muon.py, MuonWithAuxAdam), written here from its
# formulas (the package cannot be installed): momentum as an EMA, nesterov as a second lerp, five
# quintic Newton-Schulz steps on the Frobenius-normalized update, the shape scaling, decoupled weight
# decay.  In float32: the reference runs Newton-Schulz in bfloat16, for GPUs; traind runs float32.
# ---------------------------------------------------------------------------

MUON_NS = (3.4445, -4.7750, 2.0315)


def muon_orthogonalize(u, steps):
    """X ~ U·V^T of u's SVD, by Newton-Schulz on the wide orientation (m <= k)."""
    a, b, c = MUON_NS
    tall = u.size(0) > u.size(1)
    x = u.T if tall else u
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        A = x @ x.T
        B = b * A + c * A @ A
        x = a * x + B @ x
    return x.T if tall else x


def muon_update(p, grad, buf, lr, hp):
    """One Muon update of the matrix p in place (buf: its momentum buffer)."""
    beta = hp["momentum"]
    buf.lerp_(grad, 1 - beta)
    u = grad.lerp(buf, beta) if hp["nesterov"] else buf
    x = muon_orthogonalize(u, hp["ns_steps"])
    rows, cols = p.shape
    if hp["adjust_lr"] == "original":
        x = x * max(1, rows / cols) ** 0.5
    else:                                    # Moonshot's scaling: the update RMS of AdamW's
        x = x * (0.2 * math.sqrt(max(rows, cols)))
    p.mul_(1 - lr * hp["weight_decay"])
    p.add_(x, alpha=-lr)


def gen_muon():
    """tests/data/optim/muon_*.json: one matrix per case, five steps at five lrs, the parameters and
    the momentum buffer after each (test_optim_muon.c replays them)."""
    os.makedirs(OPTIM_DIR, exist_ok=True)
    g = torch.Generator().manual_seed(20250611)
    STEPS = 5
    LRS = [0.02, 0.01, 0.03, 0.005, 0.02]
    base = dict(momentum=0.95, nesterov=True, ns_steps=5, weight_decay=0.0, adjust_lr="original")
    cases = [
        ("muon_wide", [12, 40], {}),
        ("muon_tall", [40, 12], {}),
        ("muon_square", [24, 24], dict(nesterov=False)),
        ("muon_tall_plain_wd", [30, 8], dict(nesterov=False, weight_decay=0.1, momentum=0.9)),
        ("muon_wide_match_rms", [16, 48], dict(adjust_lr="match_rms_adamw", weight_decay=0.01)),
        ("muon_square_ns3", [20, 20], dict(ns_steps=3, momentum=0.8)),
    ]
    for name, shape, over in cases:
        hp = dict(base, **over)
        rows, cols = shape
        p = torch.randn(rows, cols, generator=g) * 0.5
        p0 = p.clone()
        buf = torch.zeros_like(p)
        steps = []
        for k in range(STEPS):
            grad = torch.randn(rows, cols, generator=g) * (0.05 * (k + 1))
            grad[k % rows, (3 * k) % cols] = 0.0       # a zero gradient entry
            muon_update(p, grad.clone(), buf, LRS[k], hp)
            steps.append({"lr": LRS[k], "grad": hexlist(grad), "params": hexlist(p), "m": hexlist(buf)})
        out = {"torch": torch.__version__, "case": name, "n": rows * cols, "shape": shape,
               "optimizer": dict(type="muon", **hp), "params0": hexlist(p0), "steps": steps}
        dump_json(os.path.join(OPTIM_DIR, name + ".json"), out)
    print(f"{len(cases)} muon cases")


if __name__ == "__main__":
    torch.set_num_threads(1)
    what = sys.argv[1:] or ["schedules", "optim", "muon"]
    if "schedules" in what:
        gen_schedules()
    if "optim" in what:
        gen_optim()
    if "optim" in what or "sf" in what:
        gen_schedule_free()
    if "muon" in what:
        gen_muon()

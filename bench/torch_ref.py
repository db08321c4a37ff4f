#!/usr/bin/env python3
"""traind's PyTorch reference trainer: the same model, optimizer and schedule as a traind run
config (man traind-run.yaml(5)), trained by torch, so that `make bench` can set traind's speed
and loss curve beside torch's.

    /usr/bin/python3 bench/torch_ref.py CONFIG.yaml [--threads N] [--steps N] [--quiet]
    /usr/bin/python3 bench/torch_ref.py CONFIG.yaml --schedule    # the lr of every step, a JSON array

Output, one JSON object a line: {"step", "lr", "loss"} every train.log_every steps and at the
last step, as traind's metrics.jsonl (step 1-based, lr the rate that step's update used), then
{"done": true, "steps", "seconds", "steps_per_s", "tokens_per_s", "final_loss"}.
"seconds" is the training loop alone (not the imports, the model's construction or the file
reads).  --steps N stops after N updates; the schedule still spans schedule.total_steps.

What matches traind and what does not: the architecture, the init's distributions, the
optimizer and the schedule (bench/schedules.py; `--schedule` agrees with
`trainctl schedule --json`, see bench/check_schedules.sh) are the same; the random numbers
are torch's, so the loss curves have the same shape, not the same bits.

Threads: torch.set_num_threads(N) sets torch's own pool only.  Debian's python3-torch does its
matrix products in the system OpenBLAS, which that call does not limit, so the caller pins
OPENBLAS_NUM_THREADS and OMP_NUM_THREADS to N as well (scripts/bench.sh does).

Needs python3-torch and python3-yaml (Debian).
"""
import argparse
import json
import math
import os
import sys
import time

import yaml

sys.dont_write_bytecode = True           # no bench/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import schedules  # noqa: E402  (bench/schedules.py)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------

def make_models(torch):
    nn, F = torch.nn, torch.nn.functional

    def gelu_tanh(x):
        return F.gelu(x, approximate="tanh")

    class Dense(nn.Module):
        """linear (no hidden layer) and mlp: affine layers with the activation between them."""

        def __init__(self, dims, act):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
            self.act = act

        def forward(self, x):
            last = len(self.layers) - 1
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i < last:
                    x = self.act(x)
            return x

    class Block(nn.Module):
        """A pre-LN GPT-2 block (daemon/core/model_gpt.c's names: ln1, qkv, proj, ln2, fc, fc2)."""

        def __init__(self, d, heads, ctx):
            super().__init__()
            self.heads = heads
            self.ln1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.fc = nn.Linear(d, 4 * d)
            self.fc2 = nn.Linear(4 * d, d)
            future = torch.triu(torch.ones(ctx, ctx, dtype=torch.bool), diagonal=1)
            self.register_buffer("future", future, persistent=False)

        def attend(self, h):
            B, T, C = h.shape
            hs = C // self.heads
            # (B, T, 3C) -> three (B, heads, T, hs)
            q, k, v = self.qkv(h).view(B, T, 3, self.heads, hs).permute(2, 0, 3, 1, 4)
            scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hs))
            scores = scores.masked_fill(self.future[:T, :T], float("-inf"))
            out = torch.matmul(torch.softmax(scores, dim=-1), v)           # (B, heads, T, hs)
            return self.proj(out.transpose(1, 2).reshape(B, T, C))

        def forward(self, x):
            x = x + self.attend(self.ln1(x))
            return x + self.fc2(gelu_tanh(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        """Byte-level GPT-2: token + position embeddings, pre-LN blocks, a final LN, and the
        output head tied to the token embedding."""

        def __init__(self, vocab, ctx, d, layers, heads):
            super().__init__()
            self.wte = nn.Embedding(vocab, d)
            self.wpe = nn.Embedding(ctx, d)
            self.blocks = nn.ModuleList(Block(d, heads, ctx) for _ in range(layers))
            self.lnf = nn.LayerNorm(d)
            self.register_buffer("pos", torch.arange(ctx), persistent=False)
            # GPT-2's init, as gpt_init does it: biases 0, LayerNorm gains 1, every other weight
            # N(0, 0.02) except the two residual projections, N(0, 0.02 / sqrt(2 * layers)).
            resid_std = 0.02 / math.sqrt(2 * max(1, layers))
            with torch.no_grad():
                for name, p in self.named_parameters():
                    if name.endswith(".bias"):
                        p.zero_()
                    elif name.startswith("lnf.") or ".ln" in name:
                        p.fill_(1.0)
                    elif name.endswith(("proj.weight", "fc2.weight")):
                        p.normal_(0.0, resid_std)
                    else:
                        p.normal_(0.0, 0.02)

        def forward(self, tokens):
            x = self.wte(tokens) + self.wpe(self.pos[:tokens.shape[1]])
            for block in self.blocks:
                x = block(x)
            return F.linear(self.lnf(x), self.wte.weight)                 # tied head: (B, T, V)

    def build(m):
        kind = m["type"]
        if kind == "gpt":
            return GPT(int(m.get("vocab_size", 256)), int(m["context"]), int(m["d_model"]),
                       int(m["layers"]), int(m["heads"]))
        if kind not in ("linear", "mlp"):
            raise SystemExit(f"torch_ref: unknown model type {kind!r}")
        hidden = [int(h) for h in m.get("hidden", [64])] if kind == "mlp" else []
        acts = {"relu": torch.relu, "gelu": gelu_tanh, "tanh": torch.tanh}
        act = m.get("activation", "relu")
        if act not in acts:
            raise SystemExit(f"torch_ref: unknown activation {act!r}")
        return Dense([int(m["input_dim"])] + hidden + [int(m["output_dim"])], acts[act])

    return build


# ---------------------------------------------------------------------------
# Data: an endless iterator of (inputs, targets, items counted for tokens_per_s)
# ---------------------------------------------------------------------------

def data_path(cfg_path, path):
    """As trainctl takes it: relative to the config file's folder."""
    return path if os.path.isabs(path) else os.path.join(os.path.dirname(os.path.abspath(cfg_path)), path)


def sequence_batches(torch, stream, B, T, gen):
    """Random windows of T + 1 tokens: inputs the first T, targets the last T."""
    if stream.numel() < T + 1:
        raise SystemExit(f"torch_ref: {stream.numel()} tokens, fewer than context + 1 = {T + 1}")
    windows = stream.unfold(0, T + 1, 1)                 # (N - T, T + 1), a view
    while True:
        rows = windows[torch.randint(0, windows.shape[0], (B,), generator=gen)]
        yield rows[:, :-1], rows[:, 1:], B * T


def batches(torch, cfg, cfg_path, gen):
    m, d = cfg["model"], cfg.get("data") or {}
    B = int(d.get("batch_size", 32))
    if m["type"] == "gpt":
        T, V = int(m["context"]), int(m.get("vocab_size", 256))
        kind = d.get("kind", "text")
        if kind == "text" and d.get("path"):
            with open(data_path(cfg_path, d["path"]), "rb") as f:
                stream = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).long()
        elif kind == "text":                             # no file: 64 KiB of random tokens
            stream = torch.randint(0, V, (1 << 16,), generator=gen)
        elif kind == "tokens":                           # llm.c: 256 int32 header, then uint16 tokens
            with open(data_path(cfg_path, d["path"]), "rb") as f:
                raw = f.read()
            head = torch.frombuffer(bytearray(raw[:1024]), dtype=torch.int32)
            if int(head[0]) != 20240520:
                raise SystemExit("torch_ref: not an llm.c token file (magic)")
            n = int(head[2])
            stream = torch.frombuffer(bytearray(raw[1024:1024 + 2 * n]), dtype=torch.int16).long() & 0xFFFF
        else:
            raise SystemExit(f"torch_ref: data kind {kind!r} is not for gpt")
        return sequence_batches(torch, stream, B, T, gen)

    nin, nout = int(m["input_dim"]), int(m["output_dim"])
    kind = d.get("kind", "synthetic")
    if kind == "synthetic":
        def synthetic():
            teacher = torch.randn(nin, nout, generator=gen) * (1.0 / math.sqrt(nin))   # W*: N(0, 1/input_dim)
            noise = float(d.get("noise", 0.01))
            while True:
                x = torch.randn(B, nin, generator=gen)
                y = torch.addmm(torch.randn(B, nout, generator=gen), x, teacher, beta=noise)
                yield x, y, B
        return synthetic()
    if kind == "csv":
        rows = []
        with open(data_path(cfg_path, d["path"])) as f:
            for k, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    rows.append([float(v) for v in line.split(",")])
                except ValueError:
                    if k == 0 and not rows:                # a header row
                        continue
                    raise
        table = torch.tensor(rows, dtype=torch.float32)

        def from_csv():
            while True:
                pick = table[torch.randint(0, table.shape[0], (B,), generator=gen)]
                yield pick[:, :nin], pick[:, nin:nin + nout], B
        return from_csv()
    raise SystemExit(f"torch_ref: data kind {kind!r} is not for {m['type']}")


# ---------------------------------------------------------------------------
# Optimizer
# ---------------------------------------------------------------------------

def make_optimizer(torch, params, o):
    kind = o.get("type", "adamw")
    lr = float(o.get("lr", 1e-3))
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(o.get("momentum", 0.0)),
                               nesterov=bool(o.get("nesterov", False)),
                               weight_decay=float(o.get("weight_decay", 0.0)))
    if kind in ("adamw", "adam"):
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        b1, b2 = (float(b) for b in o.get("betas", (0.9, 0.999)))
        return cls(params, lr=lr, betas=(b1, b2), eps=float(o.get("eps", 1e-8)),
                   weight_decay=float(o.get("weight_decay", 0.01 if kind == "adamw" else 0.0)))
    raise SystemExit(f"torch_ref: unknown optimizer type {kind!r}")


# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch reference trainer for traind run configs")
    ap.add_argument("config")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (pin OpenBLAS yourself)")
    ap.add_argument("--steps", type=int, default=0, help="stop after N updates (default: total_steps)")
    ap.add_argument("--quiet", action="store_true", help="only the last line")
    ap.add_argument("--schedule", action="store_true", help="print the lr of every step as a JSON array")
    a = ap.parse_args(argv)

    with open(a.config) as f:
        cfg = yaml.safe_load(f)
    if a.schedule:
        print(json.dumps(schedules.schedule_lrs(cfg)))
        return 0

    import torch
    torch.set_num_threads(max(1, a.threads))
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)                                   # the init
    gen = torch.Generator().manual_seed(seed + 1)             # the data

    model = make_models(torch)(cfg["model"])
    o = cfg.get("optimizer") or {}
    opt = make_optimizer(torch, model.parameters(), o)
    base_lr = float(o.get("lr", 1e-3))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedules.lr_lambda(cfg["schedule"], base_lr))
    clip = float(o.get("grad_clip", 0.0) or 0.0)
    gpt = cfg["model"]["type"] == "gpt"
    F = torch.nn.functional
    if gpt:
        def loss_of(out, y):
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    else:
        loss_of = F.mse_loss

    total = int(cfg["schedule"]["total_steps"])
    steps = min(a.steps, total) if a.steps > 0 else total
    log_every = max(1, int((cfg.get("train") or {}).get("log_every", 10)))
    data = batches(torch, cfg, a.config, gen)
    params = list(model.parameters())

    items, loss = 0, None
    start = time.perf_counter()
    for step in range(1, steps + 1):
        x, y, n = next(data)
        lr = opt.param_groups[0]["lr"]                        # the rate this update uses
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model(x), y)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        sched.step()
        items += n
        if not a.quiet and (step % log_every == 0 or step == steps):
            print(json.dumps({"step": step, "lr": lr, "loss": loss.item()}), flush=True)
    seconds = time.perf_counter() - start
    print(json.dumps({"done": True, "steps": steps, "seconds": seconds, "steps_per_s": steps / seconds,
                      "tokens_per_s": items / seconds, "final_loss": loss.item() if loss is not None else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

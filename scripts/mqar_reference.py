#!/usr/bin/env python3
"""An independent PyTorch trainer for E6's MQAR setting, to compare attnlab's seeds with.

    .venv/bin/python scripts/mqar_reference.py --seeds 0-9                  # the reference's choices
    .venv/bin/python scripts/mqar_reference.py --seeds 0-9 --clip 1.0       # one choice changed
    .venv/bin/python scripts/mqar_reference.py --seeds 0-9 --init gpt2 --tie --clip 1.0 --beta2 0.95

Written from the setting in docs/experiments.md (E6, "the reference's choices") and docs/tasks.md
(the mqar layout), not from attnlab's C++: a decoder of 2 pre-LN attention-only blocks, d = 64,
one head, learned positions, a final LayerNorm and an output head; the mqar task over 512 ids
(filler 0, keys 1..255, values 256..511), 8 pairs then filler, each key queried once at a random
filler position, the loss and the accuracy over the queried positions only. AdamW with weight
decay on every parameter, linear warm-up then cosine, fresh batches every step, a fixed
validation set of 256 sequences.

The choices E6b ablates are options: --init torch_default (nn.Linear's own default: weights and
biases U(+-1/sqrt(fan_in)); embeddings N(0, 0.02)) or gpt2 (every Linear N(0, 0.02), biases 0, the
output projections N(0, 0.02/sqrt(2 L))); --tie (the head shares the token embedding, keeping its
bias); --clip (global gradient-norm clipping, 0 = none); --beta2. --decay matrices applies weight
decay the way attnlab does (weight matrices and embeddings only); the reference decayed every
parameter. --min-lr 1e-5 is attnlab's floor of the cosine (the reference's is 0).

Each seed seeds torch, so its draws are not attnlab's: compare pass rates over seeds, not seed by
seed. One line per seed is printed, the accuracy at each evaluation; --json writes them all.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_seeds(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def mqar_batch(gen, batch, length, pairs, vocab):
    """(x [B, T] int64, y [B, T] int64 with -100 off the queries)."""
    half = vocab // 2

    def draw(n):  # per row, `pairs` distinct values of 0..n-1 in random order
        return torch.rand(batch, n, generator=gen).argsort(dim=1)[:, :pairs]

    keys = draw(half - 1) + 1
    vals = draw(half) + half
    slots = draw(length - 2 * pairs) + 2 * pairs
    x = torch.zeros(batch, length, dtype=torch.long)
    y = torch.full((batch, length), -100, dtype=torch.long)
    x[:, 0:2 * pairs:2] = keys
    x[:, 1:2 * pairs:2] = vals
    # slot j asks for pair j; the slots are in random order, so the queries are too
    x.scatter_(1, slots, keys)
    y.scatter_(1, slots, vals)
    return x, y


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)

    def forward(self, x):
        h = self.ln(x)
        a = F.scaled_dot_product_attention(self.q(h), self.k(h), self.v(h), is_causal=True)
        return x + self.o(a)


class Model(nn.Module):
    def __init__(self, vocab, length, d, layers, init, tie):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(length, d)
        self.blocks = nn.ModuleList(Block(d) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        if init == "gpt2":
            for name, m in self.named_modules():
                if isinstance(m, nn.Linear):
                    std = 0.02 / math.sqrt(2 * layers) if name.endswith(".o") else 0.02
                    nn.init.normal_(m.weight, std=std)
                    nn.init.zeros_(m.bias)
        if tie:
            self.head.weight = self.tok.weight

    def forward(self, x, where):
        """The logits at the positions `where` ([B, T] bool) only: the loss and the accuracy
        read nothing else."""
        h = self.tok(x) + self.pos(torch.arange(x.shape[1]))
        h = h.unsqueeze(1)  # one head: [B, 1, T, d] for SDPA
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.ln_f(h.squeeze(1)[where]))


def lr_at(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def accuracy(model, vx, vy):
    mask = vy >= 0
    return (model(vx, mask).argmax(-1) == vy[mask]).float().mean().item()


def run(seed, a):
    torch.manual_seed(seed)
    model = Model(a.vocab, a.length, a.d, a.layers, a.init, a.tie)
    if a.decay == "all":
        groups = [{"params": list(model.parameters()), "weight_decay": a.weight_decay}]
    else:  # attnlab's rule: weight matrices (embeddings included) only, not biases or norms
        params = list(model.parameters())
        groups = [{"params": [q for q in params if q.dim() >= 2], "weight_decay": a.weight_decay},
                  {"params": [q for q in params if q.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, a.beta2))
    train_gen = torch.Generator().manual_seed(seed)
    val_gen = torch.Generator().manual_seed(10_000 + seed)
    vx, vy = mqar_batch(val_gen, a.n_val, a.length, a.pairs, a.vocab)
    evals = []
    for step in range(1, a.steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr_at(step - 1, a)
        x, y = mqar_batch(train_gen, a.batch, a.length, a.pairs, a.vocab)
        mask = y >= 0
        loss = F.cross_entropy(model(x, mask), y[mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        if not math.isfinite(loss.item()):
            raise SystemExit(f"seed {seed}: the loss is {loss.item()} at step {step}")
        if step % a.eval_interval == 0:
            evals.append({"step": step, "loss": loss.item(), "acc": accuracy(model, vx, vy)})
    return evals


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0-2", help="e.g. 0-9 or 1,5,7")
    p.add_argument("--init", choices=["torch_default", "gpt2"], default="torch_default")
    p.add_argument("--tie", action="store_true", help="tie the head to the token embedding")
    p.add_argument("--clip", type=float, default=0.0)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--min-lr", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--decay", choices=["all", "matrices"], default="all",
                   help="weight decay on every parameter (the reference) or on weight matrices only (attnlab)")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--n-val", type=int, default=256)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pass-at", type=float, default=0.99, help="the accuracy a seed must reach to count")
    p.add_argument("--json", help="write every seed's evaluations here")
    a = p.parse_args()
    if a.vocab // 2 - 1 < a.pairs or a.length < 3 * a.pairs:
        p.error("needs vocab/2 - 1 >= pairs and length >= 3 * pairs")
    torch.set_num_threads(a.threads)
    results = {}
    for seed in parse_seeds(a.seeds):
        t0 = time.time()
        evals = run(seed, a)
        first = next((e["step"] for e in evals if e["acc"] >= a.pass_at), None)
        results[seed] = {"evals": evals, "first_pass": first, "seconds": time.time() - t0}
        accs = " ".join(f"{100 * e['acc']:.1f}" for e in evals)
        print(f"seed {seed}: final {100 * evals[-1]['acc']:.1f}%  first >= {100 * a.pass_at:g}%: "
              f"{first if first else '-'}  [{accs}]  {time.time() - t0:.0f} s", flush=True)
    n_pass = sum(1 for r in results.values() if r["first_pass"])
    print(f"{n_pass} of {len(results)} seeds reach {100 * a.pass_at:g}% within {a.steps} steps")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "seeds": results}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""How the two-layer recall circuit of MQAR forms, read off a run's checkpoints (docs/experiments.md, E6b).

  .venv/bin/python scripts/mqar_mechanism.py RUN_DIR [RUN_DIR ...] [--init CKPT ...] [--csv F] [--plot F.png]

RUN_DIR is an `attnlab train` run of data.task mqar (a decoder of the scaled_dot_product family,
or of differential attention)
saved with train.checkpoint_interval; every RUN_DIR/checkpoints/step_*.safetensors is read with
scripts/torch_model.py (an independent PyTorch forward of the checkpoint). --init adds checkpoints
saved before the first step (`--set train.steps=0`, same seed), one per RUN_DIR in order.

Each checkpoint runs on the same --examples MQAR sequences (drawn here, with --seed, in the layout of
src/data/task_recall.cpp: pairs k v at positions 2i, 2i+1, then filler 0 with each key queried once
at a random later position; data.filler random as the checkpoint's config says). Per checkpoint it reports:
  acc        label accuracy at the query positions (argmax of the output)
  prev       layer 0, the weight a value position 2i+1 puts on its key at 2i (the previous token)
  lookup     last layer, the weight a query position puts on the value position 2i+1 of its key
             (where layer 0 has copied the key to)
  prev_next  layer 0, the weight position 2i+2 puts on the value at 2i+1 (the shifted circuit's copy)
  next       last layer, the weight a query puts on position 2i+2, just after its pair: the
             shifted circuit, in which layer 0 copies each value into the next position (the next
             pair's key, or the first filler after the last pair) and layer 1 matches the key there
  std_L<l>   the attention-logit scale of layer l (differential: of its first map): the standard
             deviation over the visible keys of q.k/sqrt(d) in each row, averaged over rows (first 2
             rows left out) and sequences
  lam_L<l>   differential only: layer l's λ (the weight of the second map)
  rms_L<l>   differential only: the RMS of layer l's head output (A1 − λA2)V before the headwise
             norm, averaged over rows (first 2 left out); rms_q the same at the last layer's query rows
  gap        last layer at the query rows: the logit of the right value position minus the largest
             other logit (positive once the lookup picks it)
"""
import argparse
import csv
import glob
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model  # noqa: E402


def make_examples(n_symbols, n_pairs, length, count, seed, random_filler=False):
    """(ids [count, length], query positions [count, n_pairs], value positions [count, n_pairs],
    labels [count, n_pairs]) in the layout of attnlab's mqar task (data.filler random: the filler
    positions hold uniform ids 1..n_symbols-1)."""
    rng = np.random.default_rng(seed)
    n_keys = n_symbols // 2 - 1
    ids = np.zeros((count, length), dtype=np.int64)
    qpos = np.zeros((count, n_pairs), dtype=np.int64)
    vpos = np.tile(2 * np.arange(n_pairs) + 1, (count, 1))
    labels = np.zeros((count, n_pairs), dtype=np.int64)
    for b in range(count):
        keys = 1 + rng.choice(n_keys, n_pairs, replace=False)
        vals = n_symbols // 2 + rng.choice(n_symbols - n_symbols // 2, n_pairs, replace=False)
        pos = 2 * n_pairs + rng.choice(length - 2 * n_pairs, n_pairs, replace=False)
        for i in range(n_pairs):
            ids[b, 2 * i], ids[b, 2 * i + 1], ids[b, pos[i]] = keys[i], vals[i], keys[i]
        qpos[b], labels[b] = pos, vals
        if random_filler:
            filler = np.setdiff1d(np.arange(2 * n_pairs, length), pos)
            ids[b, filler] = rng.integers(1, n_symbols, size=filler.size)
    return ids, qpos, vpos, labels


def measure(ckpt, examples):
    torch = torch_model._torch()
    model, info = torch_model.load_model(ckpt)
    if info.kind != "decoder" or info.cfg["data"].get("task") != "mqar":
        raise SystemExit(f"{ckpt}: needs a decoder trained on data.task mqar")
    ids, qpos, vpos, labels = examples
    mods = [a for _, a in model.attention_modules()]
    for a in mods:
        a.keep_weights = True
    with torch.no_grad():
        logits = model(torch.from_numpy(ids)).numpy()
    B = ids.shape[0]
    rows = np.arange(B)[:, None]
    acc = float((logits[rows, qpos].argmax(-1) == labels).mean())
    w0 = mods[0].weights.numpy()[:, 0]  # head 0: E6's model has one head
    prev = float(w0[rows, vpos, vpos - 1].mean())
    prev_next = float(w0[rows, vpos + 1, vpos].mean())
    wl = mods[-1].weights.numpy()[:, 0]
    lookup = float(wl[rows, qpos, vpos].mean())
    nxt = float(wl[rows, qpos, vpos + 1].mean())  # vpos + 1 <= 2 n_pairs < length
    out = {"acc": acc, "prev": prev, "prev_next": prev_next, "lookup": lookup, "next": nxt}
    for layer, a in enumerate(mods):
        s = a.scores.numpy()[:, 0].astype(np.float64)  # [B, T, T], -inf above the diagonal
        fin = np.isfinite(s)
        s0 = np.where(fin, s, 0.0)
        n = fin.sum(-1)
        mean = s0.sum(-1) / n
        var = (np.where(fin, (s0 - mean[..., None]) ** 2, 0.0)).sum(-1) / n
        out[f"std_L{layer}"] = float(np.sqrt(var)[:, 2:].mean())
    for layer, a in enumerate(mods):
        if getattr(a, "lam", None) is not None:  # differential: λ, and the output's scale before the norm
            rms = a.pre_rms.numpy()[:, 0]
            out[f"lam_L{layer}"] = a.lam
            out[f"rms_L{layer}"] = float(rms[:, 2:].mean())
            if layer == len(mods) - 1:
                out["rms_q"] = float(rms[rows, qpos].mean())
    s = mods[-1].scores.numpy()[:, 0].astype(np.float64)
    sq = s[rows, qpos]  # [B, P, T]
    right = sq[rows, np.arange(qpos.shape[1])[None, :], vpos]
    other = sq.copy()
    other[rows, np.arange(qpos.shape[1])[None, :], vpos] = -np.inf
    out["gap"] = float((right - other.max(-1)).mean())
    for a in mods:
        a.keep_weights, a.weights, a.scores = False, None, None
        if hasattr(a, "lam"):
            a.lam = a.pre_rms = None
    return out


def step_of(path):
    m = re.search(r"step_(\d+)\.safetensors$", path)
    return int(m.group(1)) if m else -1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories with checkpoints/step_*.safetensors")
    ap.add_argument("--init", nargs="*", default=[], help="a step-0 checkpoint per run, in the same order")
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", help="write every row here as well")
    ap.add_argument("--plot", help="PNG: accuracy, prev, lookup and logit scale against step, one line per run")
    a = ap.parse_args()
    if a.init and len(a.init) != len(a.runs):
        ap.error("--init needs one checkpoint per run")
    table = []
    for r, run in enumerate(a.runs):
        ckpts = sorted((c for c in glob.glob(os.path.join(run, "checkpoints", "step_*.safetensors")) if step_of(c) >= 0),
                       key=step_of)
        if a.init:
            ckpts = [a.init[r]] + ckpts
        if not ckpts:
            raise SystemExit(f"{run}: no checkpoints/step_*.safetensors (train with train.checkpoint_interval)")
        _, info = torch_model.load_model(ckpts[0])
        d = info.cfg["data"]
        ex = make_examples(int(d["n_symbols"]), int(d["n_pairs"]), int(d["max_len"]), a.examples, a.seed,
                           d.get("filler", "zero") == "random")
        name = os.path.basename(os.path.normpath(run))
        for c in ckpts:
            m = measure(c, ex)
            row = {"run": name, "step": 0 if c in a.init else step_of(c), **m}
            table.append(row)
            print(f"{name:>14} step {row['step']:5d}  acc {m['acc']:.3f}  prev {m['prev']:.3f}  prev_next {m['prev_next']:.3f}  "
                  f"lookup {m['lookup']:.3f}  next {m['next']:.3f}  "
                  + "  ".join(f"{k} {v:.3f}" for k, v in m.items() if k.startswith(("std", "lam", "rms")))
                  + f"  gap {m['gap']:+.2f}", flush=True)
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0].keys()))
            w.writeheader()
            w.writerows(table)
    if a.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        keys = ["acc", "prev", "lookup", "next"] + [k for k in table[0] if k.startswith(("std_", "lam_", "rms_"))]
        fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.0))
        for name in dict.fromkeys(r["run"] for r in table):
            rows = [r for r in table if r["run"] == name]
            for ax, k in zip(axes, keys):
                ax.plot([r["step"] for r in rows], [r[k] for r in rows], label=name)
        for ax, k in zip(axes, keys):
            ax.set_title(k)
            ax.set_xlabel("step")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(a.plot, dpi=110)


if __name__ == "__main__":
    main()

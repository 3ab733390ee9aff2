#!/usr/bin/env python3
"""Plots of an experiment's results: one PNG per `plot:` entry of the experiment file.

    /usr/bin/python3 scripts/plot_experiment.py runs/experiments/<name>

Reads DIR/experiment.json (written by `attnlab experiment run`: the plots' x, y, series and
file names) and DIR/results.csv (one row per finished cell), and writes DIR/<file> for each plot:
y against x, one line per value of `series` (if given). An x whose values are all numbers gets a
numeric axis (log2 when they are powers of two spanning a factor of 4 or more); otherwise the
values are categories in the order they first appear. Cells sharing (series, x) are averaged
(e.g. several seeds), with their min..max as an error bar. A plot with `log: true` has log-log
axes (numeric x only; points with y <= 0 are left out).

`x: step` draws learning curves instead: the columns `y@STEP` against STEP, one line per cell
(labelled with its grid values), or per value of `series` when given (averaged as above).
"""
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def as_float(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def plot_one(rows, spec, out_path, title):
    x_key, y_key, s_key = spec["x"], spec["y"], spec.get("series") or ""
    loglog = bool(spec.get("log"))
    # only the cells with a value of y define the axis (a kind's figures may not apply to every cell)
    rows = [r for r in rows if as_float(r.get(y_key)) is not None]
    xs = []
    for r in rows:
        if r.get(x_key, "") not in xs:
            xs.append(r.get(x_key, ""))
    numeric = all(as_float(x) is not None for x in xs)
    if numeric:
        xs.sort(key=float)
    series = []
    for r in rows:
        s = r.get(s_key, "") if s_key else ""
        if s not in series:
            series.append(s)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for s in series:
        px, py, lo, hi = [], [], [], []
        for i, x in enumerate(xs):
            vals = [as_float(r.get(y_key)) for r in rows
                    if r.get(x_key, "") == x and (not s_key or r.get(s_key, "") == s)]
            vals = [v for v in vals if v is not None and (not loglog or v > 0)]
            if not vals:
                continue
            m = sum(vals) / len(vals)
            px.append(float(x) if numeric else i)
            py.append(m)
            lo.append(m - min(vals))
            hi.append(max(vals) - m)
        if not px:
            continue
        label = f"{s_key.split('.')[-1]}={s}" if s_key else None
        if any(lo) or any(hi):
            ax.errorbar(px, py, yerr=[lo, hi], marker="o", capsize=3, label=label)
        else:
            ax.plot(px, py, marker="o", label=label)
    if loglog:
        ax.set_yscale("log")
    if numeric:
        vals = [float(x) for x in xs]
        pow2 = all(v > 0 and (int(v) & (int(v) - 1)) == 0 and v == int(v) for v in vals)
        if loglog and all(v > 0 for v in vals) and not pow2:
            ax.set_xscale("log")
        elif pow2 and len(vals) > 1 and (loglog or max(vals) / min(vals) >= 4):
            ax.set_xscale("log", base=2)
            ax.set_xticks(vals)
            ax.set_xticklabels([x for x in xs])
        elif len(vals) <= 12:
            ax.set_xticks(vals)
            ax.set_xticklabels([x for x in xs])
    else:
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels(xs)
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if s_key and len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)


def plot_steps(rows, spec, grid_keys, out_path, title):
    y_key, s_key = spec["y"], spec.get("series") or ""
    cols = []
    for c in rows[0].keys():
        if c.startswith(y_key + "@") and c[len(y_key) + 1:].isdigit():
            cols.append((int(c[len(y_key) + 1:]), c))
    cols.sort()
    if s_key:
        groups = []
        for r in rows:
            if r.get(s_key, "") not in [g for g, _ in groups]:
                groups.append((r.get(s_key, ""), f"{s_key.split('.')[-1]}={r.get(s_key, '')}"))
        members = {g: [r for r in rows if r.get(s_key, "") == g] for g, _ in groups}
    else:  # one line per cell, named by its grid values
        groups = [(i, " ".join(f"{k.split('.')[-1]}={r.get(k, '')}" for k in grid_keys)) for i, r in enumerate(rows)]
        members = {i: [r] for i, r in enumerate(rows)}
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for g, label in groups:
        px, py, lo, hi = [], [], [], []
        for step, c in cols:
            vals = [v for v in (as_float(r.get(c)) for r in members[g]) if v is not None]
            if not vals:
                continue
            m = sum(vals) / len(vals)
            px.append(step)
            py.append(m)
            lo.append(m - min(vals))
            hi.append(max(vals) - m)
        if not px:
            continue
        if any(lo) or any(hi):
            ax.errorbar(px, py, yerr=[lo, hi], marker="o", markersize=3, capsize=3, label=label)
        else:
            ax.plot(px, py, marker="o", markersize=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(y_key)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plot_experiment.py EXPERIMENT_DIR")
    d = sys.argv[1]
    try:
        with open(os.path.join(d, "experiment.json")) as f:
            exp = json.load(f)
        with open(os.path.join(d, "results.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f"plot_experiment.py: {e} (run `attnlab experiment run` first)")
    if not rows:
        sys.exit(f"plot_experiment.py: {d}/results.csv has no finished cells yet")
    for spec in exp.get("plots", []):
        out = os.path.join(d, spec["file"])
        if spec["x"] == "step":
            if not any(c.startswith(spec["y"] + "@") for c in rows[0]):
                sys.exit(f"plot_experiment.py: results.csv has no column '{spec['y']}@STEP'")
            plot_steps(rows, spec, exp.get("grid_keys", []), out, exp["experiment"])
            print(f"plot: {out}")
            continue
        for key in (spec["x"], spec["y"], spec.get("series") or spec["x"]):
            if key not in rows[0]:
                sys.exit(f"plot_experiment.py: results.csv has no column '{key}'")
        plot_one(rows, spec, out, exp["experiment"])
        print(f"plot: {out}")


if __name__ == "__main__":
    main()

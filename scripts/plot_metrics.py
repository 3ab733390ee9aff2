#!/usr/bin/env python3
"""Loss curves of one or several attnlab runs -> PNG.

    scripts/plot_metrics.py RUN_DIR [RUN_DIR ...] [-o loss.png] [--logy] [--title TEXT]

Reads each RUN_DIR/metrics.jsonl (written by `attnlab train`): the train loss as a
line, the val loss as dots on a dashed line in the same colour, steps skipped for a
NaN/Inf loss as red ticks; a second panel shows the learning-rate schedule. The
held-out exact match of synthetic tasks goes into the legend. Needs matplotlib
(Debian: python3-matplotlib); uses the Agg backend, so no display is needed.
"""
import argparse
import json
import os
import sys


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_run(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isdir(run_dir):
        die(f"'{run_dir}' is not a directory")
    if not os.path.isfile(path):
        die(f"'{run_dir}' has no metrics.jsonl (is it a run directory written by `attnlab train`?)")
    run = {"train": [], "val": [], "lr": [], "skipped": [], "exact_match": None}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                print(f"warning: {path}:{n}: not JSON, skipped (a torn last line?)", file=sys.stderr)
                continue
            step = row.get("step")
            if row.get("skipped"):
                run["skipped"].append(step)
            elif row.get("split") == "train" and isinstance(row.get("loss"), (int, float)):
                run["train"].append((step, row["loss"]))
                if isinstance(row.get("lr"), (int, float)):
                    run["lr"].append((step, row["lr"]))
            elif row.get("split") == "val" and isinstance(row.get("loss"), (int, float)):
                run["val"].append((step, row["loss"]))
            if "exact_match" in row:
                run["exact_match"] = row["exact_match"]
    if not run["train"] and not run["val"]:
        die(f"{path} has no loss rows yet")
    return run


def labels_for(run_dirs):
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    if len(set(names)) < len(names):  # same basenames: show the parent too
        names = [os.path.join(os.path.basename(os.path.dirname(os.path.normpath(d))), n)
                 for d, n in zip(run_dirs, names)]
    return names


def main():
    ap = argparse.ArgumentParser(description="Plot the loss curves of attnlab runs to a PNG.")
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("-o", "--output", help="PNG to write (default: RUN_DIR/loss.png of the first run)")
    ap.add_argument("--logy", action="store_true", help="logarithmic loss axis")
    ap.add_argument("--title", help="figure title")
    ap.add_argument("--dpi", type=int, default=100)
    args = ap.parse_args()

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        die("matplotlib is not installed for this Python (Debian: apt install python3-matplotlib; "
            "or pip install matplotlib)")

    runs = [load_run(d) for d in args.runs]
    out = args.output or os.path.join(args.runs[0], "loss.png")

    fig, (ax, axlr) = plt.subplots(2, 1, figsize=(7.5, 5.0), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (run, name) in enumerate(zip(runs, labels_for(args.runs))):
        c = colors[i % len(colors)]
        label = name
        if run["exact_match"] is not None:
            label += f" (exact match {100 * run['exact_match']:.0f}%)"
        if run["train"]:
            s, l = zip(*run["train"])
            ax.plot(s, l, color=c, lw=1.4, label=f"{label}: train")
        if run["val"]:
            s, l = zip(*run["val"])
            ax.plot(s, l, color=c, lw=1.0, ls="--", marker="o", ms=4, label=f"{name}: val")
        for k, step in enumerate(run["skipped"]):
            ax.axvline(step, color="tab:red", lw=0.6, alpha=0.6, label="skipped step" if k == 0 and i == 0 else None)
        if run["lr"]:
            s, l = zip(*run["lr"])
            axlr.plot(s, l, color=c, lw=1.2)
    ax.set_ylabel("loss (nats / token)")
    if args.logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    axlr.set_ylabel("learning rate", fontsize=8)
    axlr.set_xlabel("step")
    axlr.grid(alpha=0.3)
    axlr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    axlr.tick_params(labelsize=8)
    ax.set_title(args.title or ("loss: " + ", ".join(labels_for(args.runs))), fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=args.dpi)
    except OSError as e:
        die(f"cannot write '{out}': {e.strerror}")
    print(out)


if __name__ == "__main__":
    main()

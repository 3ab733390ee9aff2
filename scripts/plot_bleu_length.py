#!/usr/bin/env python3
"""BLEU (or chrF) against source length, one line per model: the bleu_by_length measurement of an
experiment (docs/experiments.md, "Running experiments"; E9), in the manner of Bahdanau et al. 2014
Fig. 2.

    .venv/bin/python scripts/plot_bleu_length.py runs/experiments/e9_translation [-o FILE.png]
        [--metric bleu|chrf] [--series KEY] [--markdown]

Reads DIR/results.csv (one row per finished cell) and its columns bleu_len_<lo>-<hi> (chrf_len_...).
A cell's series label is its value of --series (default model.decoder.cross_attention.type), or
"bottleneck" when its model.bottleneck is true. Cells sharing a label (seeds) are averaged; the
error bars are their sample standard deviation. Writes DIR/<experiment>_<metric>_by_length.png,
and with --markdown prints a table "mean ± sd (n cells)" per label and bucket on stdout
("mean (1)" where one cell has finished).
"""
import argparse
import csv
import os
import statistics
import sys


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def bucket_columns(header, metric):
    prefix = metric + "_len_"
    cols = [c for c in header if c.startswith(prefix)]
    return sorted(cols, key=lambda c: int(c[len(prefix):].split("-")[0]))


def label_of(row, series_key):
    if row.get("model.bottleneck", "").lower() == "true":
        return "bottleneck"
    return row.get(series_key, "") or "attention"


def summarize(rows, cols, series_key):
    """label -> [(mean, sd, n) per column], labels in order of first appearance."""
    out = {}
    for r in rows:
        out.setdefault(label_of(r, series_key), [])
    for label in out:
        for c in cols:
            vals = [float(r[c]) for r in rows if label_of(r, series_key) == label and r.get(c, "") != ""]
            mean = statistics.fmean(vals) if vals else float("nan")
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            out[label].append((mean, sd, len(vals)))
    return out


def cell_text(mean, sd, n):
    """A table cell: "mean ± sd (n)", "mean (1)" for one cell, "–" for none."""
    if n == 0:
        return "–"
    return f"{mean:.1f} (1)" if n == 1 else f"{mean:.1f} ± {sd:.1f} ({n})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", help="experiment output directory (with results.csv)")
    ap.add_argument("-o", "--out", help="PNG to write (default DIR/<experiment>_<metric>_by_length.png)")
    ap.add_argument("--metric", choices=["bleu", "chrf"], default="bleu")
    ap.add_argument("--series", default="model.decoder.cross_attention.type")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    a = ap.parse_args()
    path = os.path.join(a.dir, "results.csv")
    if not os.path.isfile(path):
        fail(f"{path} not found: run `attnlab experiment run` first")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = list(reader)
    cols = bucket_columns(header, a.metric)
    if not cols:
        fail(f"{path} has no {a.metric}_len_* columns (metrics: [{a.metric}_by_length] with bleu_by_length: in the file)")
    if not rows:
        fail(f"{path} has no finished cells")
    table = summarize(rows, cols, a.series)
    buckets = [c[len(a.metric) + 5:] for c in cols]
    if a.markdown:
        print("| model | " + " | ".join(f"{a.metric.upper() if a.metric == 'bleu' else 'chrF'} {b}" for b in buckets) + " |")
        print("|---|" + "---:|" * len(buckets))
        for label, cells in table.items():
            print(f"| {label} | " + " | ".join(cell_text(*c) for c in cells) + " |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mids = []
    for b in buckets:
        lo, hi = (int(x) for x in b.split("-"))
        mids.append((lo + hi) / 2)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for label, cells in table.items():
        pts = [(x, m, s) for x, (m, s, n) in zip(mids, cells) if n > 0]
        if pts:
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                        capsize=3, label=label)
    ax.set_xticks(mids)
    ax.set_xticklabels(buckets)
    ax.set_xlabel("source length (tokens)")
    ax.set_ylabel(a.metric.upper() if a.metric == "bleu" else "chrF")
    ax.grid(alpha=0.3)
    ax.legend()
    name = os.path.basename(os.path.normpath(a.dir))
    ax.set_title(f"{name}: {a.metric} by source length (mean ± sd over seeds)")
    out = a.out or os.path.join(a.dir, f"{name}_{a.metric}_by_length.png")
    fig.tight_layout()
    fig.savefig(out + ".tmp.png")
    os.replace(out + ".tmp.png", out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

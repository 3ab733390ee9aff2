#!/usr/bin/env python3
"""Time and peak extra memory against sequence length, log-log, from `attnlab bench attention --csv`.

    ./build/attnlab bench attention --types causal,flash,linear --impl naive \\
        --lengths 256,512,1024,2048,4096,8192 --backward --csv scaling.csv
    scripts/bench/plot_scaling.py scaling.csv [more.csv ...] -o docs/img/w3_scaling.png

One line per attention type (rows with status ok; several CSVs are merged, e.g. a separate
n = 16384 run for flash). The attention core's time is plotted as `ms - proj ms` (the module's time
minus its projections timed alone), the quantity whose growth with n differs between the types.
Prints the log-log slope of each line between its first and last point. Needs NumPy and matplotlib
(Debian: python3-numpy, python3-matplotlib).
"""
import argparse
import csv
import math
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+")
    ap.add_argument("-o", "--output", default="scaling.png")
    ap.add_argument("--title", default="one causal attention layer, forward + backward")
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: matplotlib is not installed for this Python (Debian: apt install python3-matplotlib)")

    series = {}
    for path in args.csv:
        try:
            rows = list(csv.DictReader(open(path)))
        except OSError as e:
            sys.exit(f"error: cannot read '{path}': {e.strerror}")
        for r in rows:
            if r.get("status") != "ok":
                continue
            label = r["type"] if r["type"] != "causal" else f"causal ({r['impl']})"
            core_ms = max(float(r["ms_median"]) - float(r["proj_ms"]), 1e-3)
            series.setdefault(label, []).append((int(r["n"]), core_ms, float(r["peak_extra_mb"])))
    if not series:
        sys.exit("error: no rows with status ok in the given CSV files")

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for label, pts in sorted(series.items()):
        pts.sort()
        n = [p[0] for p in pts]
        ax_t.loglog(n, [p[1] for p in pts], "o-", label=label)
        ax_m.loglog(n, [max(p[2], 0.1) for p in pts], "o-", label=label)
        if len(pts) >= 2:
            slope_t = math.log(pts[-1][1] / pts[0][1]) / math.log(pts[-1][0] / pts[0][0])
            slope_m = math.log(max(pts[-1][2], 0.1) / max(pts[0][2], 0.1)) / math.log(pts[-1][0] / pts[0][0])
            print(f"{label:<20} n {pts[0][0]}..{pts[-1][0]}: time slope {slope_t:.2f}, memory slope {slope_m:.2f}")
    for ax, what in ((ax_t, "attention core ms (module − projections)"), (ax_m, "peak extra memory, MB")):
        ax.set_xlabel("sequence length n")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(args.title, fontsize=10)
    try:
        fig.savefig(args.output, dpi=100)
    except OSError as e:
        sys.exit(f"error: cannot write '{args.output}': {e.strerror}")
    print(args.output)


if __name__ == "__main__":
    main()

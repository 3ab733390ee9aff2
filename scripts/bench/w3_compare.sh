#!/usr/bin/env bash
# W3 side by side: attnlab's causal attention module, naive (`causal --impl naive`) and tiled
# (`flash`), and PyTorch's naive attention, forward + backward, batch 1, 8 heads × 64, in turn
# ROUNDS times (alternating, so drift on a shared machine hits both). attnlab's module includes
# the Q/K/V/O projections, so it is compared with PyTorch's `layer` form (the same projections);
# PyTorch's `core` form (q, k, v given) is what the W3 peer figures of docs/performance.md time,
# and is compared with attnlab's time minus its projections' (proj ms, the same GEMMs timed
# alone). Prints the medians per length and the ratios.
#   scripts/bench/w3_compare.sh [ROUNDS] [LENGTHS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
lengths=${2:-256,1024,2048,4096}
repeats=${3:-3}
bin=build/attnlab
python=${PYTHON:-/usr/bin/python3}  # the interpreter with torch (a venv: docs/performance.md)
[ -x "$bin" ] || scripts/build.sh --target attnlab >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
  echo "round $r: attnlab" >&2
  "$bin" bench attention --types causal,flash --impl naive --lengths "$lengths" --backward --repeats "$repeats" --threads 2 \
    --csv "$tmp/a$r.csv" >/dev/null
  echo "round $r: PyTorch" >&2
  "$python" scripts/bench/w3_pytorch.py --lengths "$lengths" --form both --repeats "$repeats" --threads 2 \
    --csv "$tmp/p$r.csv" >/dev/null
done
/usr/bin/python3 - "$tmp" "$rounds" <<'PY'
import csv, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
a, p = {}, {}
for r in range(1, rounds + 1):
    for row in csv.DictReader(open(f"{tmp}/a{r}.csv")):
        if row["status"] == "ok":
            a.setdefault((row["type"], int(row["n"])), []).append(row)
    for row in csv.DictReader(open(f"{tmp}/p{r}.csv")):
        p.setdefault((row["form"], int(row["n"])), []).append(row)
med = lambda rows, k: statistics.median(float(x[k]) for x in rows)
print(f"medians over {rounds} round(s), forward + backward, 2 threads\n")
print("| attnlab type | n | attnlab ms | attnlab proj ms | attnlab MB | PyTorch layer ms | PyTorch layer MB | "
      "PyTorch core ms | PyTorch core MB | layer: PyTorch / attnlab | core: PyTorch / (attnlab − proj) | "
      "memory: PyTorch core / (attnlab) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for t, n in sorted(a, key=lambda k: (k[0] != "causal", k[1])):
    rows = a[(t, n)]
    am, ap, amb = med(rows, "ms_median"), med(rows, "proj_ms"), med(rows, "peak_extra_mb")
    if ("layer", n) not in p:
        print(f"| {t} | {n} | {am:.1f} | {ap:.1f} | {amb:.0f} | – | – | – | – | – | – | – |")
        continue
    lm, lmb = med(p[("layer", n)], "ms_median"), med(p[("layer", n)], "peak_extra_mb")
    cm, cmb = med(p[("core", n)], "ms_median"), med(p[("core", n)], "peak_extra_mb")
    core = f"{cm / (am - ap):.2f} x" if am > ap else "n/a"
    mem = f"{cmb / amb:.0f} x" if amb > 0 else "n/a"
    print(f"| {t} | {n} | {am:.1f} | {ap:.1f} | {amb:.0f} | {lm:.1f} | {lmb:.0f} | {cm:.1f} | {cmb:.0f} | "
          f"{lm / am:.2f} x | {core} | {mem} |")
print("\nratios > 1: attnlab faster")
PY

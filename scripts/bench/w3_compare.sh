#!/usr/bin/env bash
# W3 side by side: attnlab's causal attention module, naive (`causal --impl naive`) and tiled
# (`flash`), and PyTorch's attention, naive and F.scaled_dot_product_attention (sdpa), forward +
# backward, batch 1, 8 heads × 64, in turn ROUNDS times (alternating, so drift on a shared
# machine hits both). attnlab's module includes the Q/K/V/O projections, so it is compared with
# PyTorch's layer forms (the same projections; `layer` naive, `layer-sdpa`); PyTorch's core forms
# (q, k, v given; `core` naive, what the W3 peer figures of docs/performance.md time, and `sdpa`)
# are compared with attnlab's time minus its projections' (proj ms, the same GEMMs timed alone).
# For each length the faster PyTorch form of each pair (by median over the rounds) is the peer.
# Prints the medians per length, every PyTorch form's ms and MB, and the ratios.
#   scripts/bench/w3_compare.sh [ROUNDS] [LENGTHS] [REPEATS]
# PYTHON: the interpreter with torch, by default the repository's .venv/bin/python when there
# is one, else /usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
lengths=${2:-256,1024,2048,4096}
repeats=${3:-3}
bin=build/attnlab
. scripts/bench/common.sh  # python, and $bin built if missing
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
  echo "round $r: attnlab" >&2
  "$bin" bench attention --types causal,flash --impl naive --lengths "$lengths" --backward --repeats "$repeats" --threads 2 \
    --csv "$tmp/a$r.csv" >/dev/null
  echo "round $r: PyTorch" >&2
  "$python" scripts/bench/w3_pytorch.py --lengths "$lengths" --form all --repeats "$repeats" --threads 2 \
    --csv "$tmp/p$r.csv" >/dev/null
done
"$python" - "$tmp" "$rounds" <<'PY'
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
print("PyTorch per length (peer: the faster form of each pair)\n")
print("| n | core ms | core MB | sdpa ms | sdpa MB | core peer | layer ms | layer MB | layer-sdpa ms | layer-sdpa MB | "
      "layer peer |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
peer = {}  # (pair, n) -> (form, ms, MB)
for n in sorted({n for _, n in p}):
    cells = []
    for pair in (("core", "sdpa"), ("layer", "layer-sdpa")):
        got = {}  # form -> (ms, MB)
        for f in pair:
            if (f, n) in p:
                got[f] = med(p[(f, n)], "ms_median"), med(p[(f, n)], "peak_extra_mb")
                cells.append(f"{got[f][0]:.1f} | {got[f][1]:.0f}")
            else:
                cells.append("– | –")
        if got:
            f = min(got, key=lambda f: got[f][0])
            peer[(pair[0], n)] = (f, *got[f])
        cells.append(f if got else "–")
    print(f"| {n} | " + " | ".join(cells) + " |")
print("\n| attnlab type | n | attnlab ms | attnlab proj ms | attnlab MB | PyTorch layer peer | ms | MB | "
      "PyTorch core peer | ms | MB | layer: PyTorch / attnlab | core: PyTorch / (attnlab − proj) | "
      "memory: PyTorch core peer / attnlab |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for t, n in sorted(a, key=lambda k: (k[0] != "causal", k[1])):
    rows = a[(t, n)]
    am, ap, amb = med(rows, "ms_median"), med(rows, "proj_ms"), med(rows, "peak_extra_mb")
    if ("layer", n) not in peer or ("core", n) not in peer:
        print(f"| {t} | {n} | {am:.1f} | {ap:.1f} | {amb:.0f} | – | – | – | – | – | – | – | – | – |")
        continue
    lf, lm, lmb = peer[("layer", n)]
    cf, cm, cmb = peer[("core", n)]
    core = f"{cm / (am - ap):.2f} x" if am > ap else "n/a"
    mem = f"{cmb / amb:.1f} x" if amb > 0 else "n/a"
    print(f"| {t} | {n} | {am:.1f} | {ap:.1f} | {amb:.0f} | {lf} | {lm:.1f} | {lmb:.0f} | {cf} | {cm:.1f} | {cmb:.0f} | "
          f"{lm / am:.2f} x | {core} | {mem} |")
print("\nratios > 1: attnlab faster (memory: attnlab smaller)")
PY

#!/usr/bin/env bash
# W3's kernel against PyTorch's, side by side: attnlab's flash kernel alone (`bench attention
# --types flash --core`) and F.scaled_dot_product_attention on the same head-major q, k, v
# (`w3_pytorch.py --form sdpa`), causal, forward + backward, batch 1, 8 heads × 64, 2 threads,
# in turn ROUNDS times (alternating, so drift on a shared machine hits both), with the cores'
# FP32 peak (`bench peak`) measured once per round. Prints per length the medians, the speed and
# memory ratios, and each side's GFLOP/s as a fraction of the peak, counting the FLOPs as
# `bench attention --core` does (the causal half; backward 2.5× the forward).
#   scripts/bench/w3_core_compare.sh [ROUNDS] [LENGTHS] [REPEATS]
# DTYPE=bf16: both sides on bf16 inputs (attnlab `--dtype bf16`, its bf16 kernel; PyTorch SDPA on
# bf16 tensors); the fraction of the peak is then still of the FP32 peak.
# PYTHON: the interpreter with torch (default: .venv/bin/python when there is one).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
lengths=${2:-1024,2048,4096,8192,16384}
repeats=${3:-3}
dtype=${DTYPE:-f32}
case "$dtype" in f32|bf16) ;; *) echo "error: DTYPE='$dtype': use f32 or bf16" >&2; exit 2 ;; esac
bin=build/attnlab
. scripts/bench/common.sh  # python, and $bin built if missing
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
  echo "round $r: peak" >&2
  "$bin" bench peak --threads 2 | awk '$1 == 2 {print $2}' > "$tmp/peak$r"
  echo "round $r: attnlab" >&2
  "$bin" bench attention --types flash --core --lengths "$lengths" --backward --repeats "$repeats" --threads 2 \
    --dtype "$dtype" --quiet --csv "$tmp/a$r.csv" >/dev/null
  echo "round $r: PyTorch" >&2
  "$python" scripts/bench/w3_pytorch.py --lengths "$lengths" --form sdpa --repeats "$repeats" --threads 2 \
    --dtype "$dtype" --csv "$tmp/p$r.csv" >/dev/null
done
"$python" - "$tmp" "$rounds" "$dtype" <<'PY'
import csv, statistics, sys
tmp, rounds, dtype = sys.argv[1], int(sys.argv[2]), sys.argv[3]
a, p, peaks = {}, {}, []
for r in range(1, rounds + 1):
    peaks.append(float(open(f"{tmp}/peak{r}").read()))
    for row in csv.DictReader(open(f"{tmp}/a{r}.csv")):
        if row["status"] == "ok":
            a.setdefault(int(row["n"]), []).append(row)
    for row in csv.DictReader(open(f"{tmp}/p{r}.csv")):
        p.setdefault(int(row["n"]), []).append(row)
med = lambda rows, k: statistics.median(float(x[k]) for x in rows)
peak = statistics.median(peaks)
print(f"medians over {rounds} round(s); {dtype} inputs; causal, forward + backward, 2 threads; FP32 peak {peak:.1f} GFLOP/s "
      f"(bench peak, rounds: {', '.join(f'{x:.1f}' for x in peaks)})\n")
print("| n | flash kernel ms | MB | SDPA ms | MB | speed: SDPA / flash | memory: flash / SDPA | GFLOP | "
      "flash GFLOP/s | of peak | SDPA GFLOP/s | of peak |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for n in sorted(a):
    if n not in p:
        continue
    am, amb, gf = med(a[n], "ms_median"), med(a[n], "peak_extra_mb"), float(a[n][0]["gflop"])
    pm, pmb = med(p[n], "ms_median"), med(p[n], "peak_extra_mb")
    ag, pg = gf / (am / 1e3), gf / (pm / 1e3)
    print(f"| {n} | {am:.1f} | {amb:.0f} | {pm:.1f} | {pmb:.0f} | {pm / am:.2f}x | {amb / pmb:.2f} | {gf:.1f} | "
          f"{ag:.0f} | {100 * ag / peak:.0f}% | {pg:.0f} | {100 * pg / peak:.0f}% |")
print("\nspeed > 1: the flash kernel faster; memory < 1: it needs less extra memory than SDPA")
PY

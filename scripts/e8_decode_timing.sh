#!/usr/bin/env bash
# E8's decode timing, re-measured with the three trained models taking turns: ROUNDS rounds, each
# timing every checkpoint of the experiment once with `attnlab bench generate CKPT --context N`
# (REPEATS repeats of TOKENS greedy tokens after N random tokens, median), the order rotated from
# round to round so that drift on a shared machine hits every model alike. Prints each round's
# ms/token, then the median over the rounds per model.
#   scripts/e8_decode_timing.sh [ROUNDS] [CONTEXT] [TOKENS] [REPEATS] [THREADS] [EXPERIMENT_DIR]
# Needs the trained cells of `attnlab experiment run configs/experiments/e8.yaml` (EXPERIMENT_DIR:
# its --out, default runs/experiments/e8_grouped_kv_heads).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
context=${2:-2048}
tokens=${3:-128}
repeats=${4:-9}
threads=${5:-1}
bin=build/attnlab
cells=${6:-runs/experiments/e8_grouped_kv_heads}/cells
kvs=(8 2 1)
for kv in "${kvs[@]}"; do
  [ -f "$cells/n_kv_heads=$kv/done.json" ] || { echo "error: $cells/n_kv_heads=$kv is not done (run the experiment first)" >&2; exit 2; }
done
checkpoint() { ls "$cells/n_kv_heads=$1"/checkpoints/step_*.safetensors | grep -v "\.state\.safetensors$" | sort | tail -n 1; }
declare -A all
printf '| round | order | n_kv_heads=8 | n_kv_heads=2 | n_kv_heads=1 |\n|---|---|---:|---:|---:|\n'
for r in $(seq 1 "$rounds"); do
  declare -A ms=()
  order=()
  for i in 0 1 2; do order+=("${kvs[$(((i + r - 1) % 3))]}"); done
  for kv in "${order[@]}"; do
    out=$("$bin" bench generate "$(checkpoint "$kv")" --context "$context" --tokens "$tokens" --repeats "$repeats" --threads "$threads")
    ms[$kv]=$(awk '/^ms\/token/ {print $2}' <<<"$out")
    all[$kv]+="${ms[$kv]} "
  done
  printf '| %d | %s | %s | %s | %s |\n' "$r" "${order[*]}" "${ms[8]}" "${ms[2]}" "${ms[1]}"
done
med() { printf '%s\n' $@ | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '| median | | %s | %s | %s |\n' "$(med ${all[8]})" "$(med ${all[2]})" "$(med ${all[1]})"

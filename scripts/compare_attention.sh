#!/usr/bin/env bash
# Trains the same small char-level LM once per attention variant (same data,
# seed, size and steps) and prints a table of final validation losses.
#   scripts/compare_attention.sh [CORPUS] [extra --set ...]
# Each run goes to runs/compare/<variant>, replacing what an earlier comparison left there.
# CORPUS defaults to tinyshakespeare.txt in $ATTNLAB_DATA_DIR (an absolute path), or in data/
# when that is unset (scripts/get_data.sh tinyshakespeare writes data/tinyshakespeare.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-${ATTNLAB_DATA_DIR:-data}/tinyshakespeare.txt}
shift || true
bin=build/attnlab
[ -x "$bin" ] || scripts/build.sh --target attnlab >/dev/null
printf '| attention | val loss | train time |\n|---|---|---|\n'
for spec in "scaled_dot_product" "bahdanau" "luong score=dot" "luong score=general" "luong score=concat" \
            "linear" "differential" "scaled_dot_product n_kv_heads=1" "scaled_dot_product window=16"; do
  set -- $spec
  type=$1
  shift
  sets=(--set "model.attention.type=$type" --set "data.path=$corpus")
  for kv in "$@"; do sets+=(--set "model.attention.$kv"); done
  dir=runs/compare/$(echo "$spec" | tr ' =' '__')
  mkdir -p runs/compare
  start=$(date +%s.%N)
  "$bin" train configs/compare/char_lm_small.yaml "${sets[@]}" --run-dir "$dir" --overwrite > "$dir.log" 2>&1 || {
    echo "| $spec | failed (see $dir.log) | |"; continue; }
  end=$(date +%s.%N)
  val=$(grep -o 'val loss [0-9.]*' "$dir.log" | tail -n 1 | cut -d' ' -f3)
  printf '| %s | %s | %s s |\n' "$spec" "$val" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')"
done

#!/usr/bin/env bash
# W1 side by side: attnlab and PyTorch train gpt-char-small in turn, ROUNDS times
# each (alternating, so drift on a shared machine hits both), and print each run's
# median ms/step and tokens/s, then the median ratio. Workload and peers: docs/performance.md.
#   scripts/bench/w1_compare.sh [ROUNDS] [CORPUS]
# attnlab reads CORPUS (a path relative to the repository root), by default tinyshakespeare.txt in
# $ATTNLAB_DATA_DIR, or in the repository's data/ when that variable is unset (get it with
# scripts/get_data.sh tinyshakespeare). PyTorch trains on random tokens and needs no corpus.
set -euo pipefail
data_dir=data
if [ -n "${ATTNLAB_DATA_DIR:-}" ]; then  # resolved here, before the cd, like any relative path given
  data_dir=$(cd "$ATTNLAB_DATA_DIR" 2>/dev/null && pwd) ||
    { echo "error: ATTNLAB_DATA_DIR='$ATTNLAB_DATA_DIR' is not a directory" >&2; exit 2; }
fi
cd "$(dirname "$0")/../.."
rounds=${1:-3}
corpus=${2:-$data_dir/tinyshakespeare.txt}
[ -f "$corpus" ] || {
  echo "error: corpus $corpus not found: run scripts/get_data.sh tinyshakespeare, set ATTNLAB_DATA_DIR or pass CORPUS" >&2
  exit 2
}
bin=build/attnlab
python=${PYTHON:-/usr/bin/python3}  # the interpreter with torch (a venv: docs/performance.md)
[ -x "$bin" ] || scripts/build.sh --target attnlab >/dev/null
a=() p=()
printf '| round | attnlab ms/step | attnlab tokens/s | PyTorch ms/step | PyTorch tokens/s |\n|---|---|---|---|---|\n'
for r in $(seq 1 "$rounds"); do
  am=$("$bin" bench train configs/bench/gpt_char_small.yaml --set "data.path=$corpus" --steps 10 --warmup 2 |
       awk '/^ms\/step/ {print $3}')
  pm=$("$python" scripts/bench/w1_pytorch.py --threads 2 --steps 10 --warmup 2 | awk '/^ms\/step/ {print $3}')
  a+=("$am") p+=("$pm")
  awk -v r="$r" -v a="$am" -v p="$pm" 'BEGIN { printf "| %d | %.1f | %.0f | %.1f | %.0f |\n", r, a, 2048000/a, p, 2048000/p }'
done
med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
am=$(med "${a[@]}") pm=$(med "${p[@]}")
awk -v a="$am" -v p="$pm" 'BEGIN { printf "\nmedian: attnlab %.1f ms/step, PyTorch %.1f ms/step: attnlab tokens/s = %.2f x PyTorch\n", a, p, p / a }'

#!/usr/bin/env bash
# W1 side by side: attnlab and PyTorch train gpt-char-small in turn, ROUNDS times
# each (alternating, so drift on a shared machine hits both), and print each run's
# median ms/step and tokens/s, then the median ratio.
#   scripts/bench/w1_compare.sh [ROUNDS] [CORPUS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
corpus=${2:-../shared/data/tinyshakespeare.txt}
bin=build/attnlab
[ -x "$bin" ] || scripts/build.sh --target attnlab >/dev/null
a=() p=()
printf '| round | attnlab ms/step | attnlab tokens/s | PyTorch ms/step | PyTorch tokens/s |\n|---|---|---|---|---|\n'
for r in $(seq 1 "$rounds"); do
  am=$("$bin" bench train configs/bench/gpt_char_small.yaml --set "data.path=$corpus" --steps 10 --warmup 2 |
       awk '/^ms\/step/ {print $3}')
  pm=$(/usr/bin/python3 scripts/bench/w1_pytorch.py --threads 2 --steps 10 --warmup 2 | awk '/^ms\/step/ {print $3}')
  a+=("$am") p+=("$pm")
  awk -v r="$r" -v a="$am" -v p="$pm" 'BEGIN { printf "| %d | %.1f | %.0f | %.1f | %.0f |\n", r, a, 2048000/a, p, 2048000/p }'
done
med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
am=$(med "${a[@]}") pm=$(med "${p[@]}")
awk -v a="$am" -v p="$pm" 'BEGIN { printf "\nmedian: attnlab %.1f ms/step, PyTorch %.1f ms/step: attnlab tokens/s = %.2f x PyTorch\n", a, p, p / a }'

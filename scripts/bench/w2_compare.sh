#!/usr/bin/env bash
# W2 side by side: attnlab and PyTorch generate with gpt-char-small (random weights, batch 1,
# TOKENS new tokens from a 1-token prompt), with and without the KV cache, in turn ROUNDS times
# (alternating, so drift on a shared machine hits both). Prints each round's tokens/s, then the
# medians and the ratios attnlab / PyTorch.
#   scripts/bench/w2_compare.sh [ROUNDS] [TOKENS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
tokens=${2:-256}
repeats=${3:-1}
bin=build/attnlab
python=${PYTHON:-/usr/bin/python3}  # the interpreter with torch (a venv: docs/performance.md)
[ -x "$bin" ] || scripts/build.sh --target attnlab >/dev/null
ac=() an=() pc=() pn=()
printf '| round | attnlab cache | attnlab no cache | PyTorch cache | PyTorch no cache |\n|---|---|---|---|---|\n'
for r in $(seq 1 "$rounds"); do
  out=$("$bin" bench generate configs/bench/gpt_char_small.yaml --vocab 65 --tokens "$tokens" --repeats "$repeats" --threads 2)
  a1=$(awk '/^cache / {print $2}' <<<"$out") a2=$(awk '/^no-cache / {print $2}' <<<"$out")
  out=$("$python" scripts/bench/w2_pytorch.py --tokens "$tokens" --repeats "$repeats" --threads 2)
  p1=$(awk '/^cache / {print $2}' <<<"$out") p2=$(awk '/^no-cache / {print $2}' <<<"$out")
  ac+=("$a1") an+=("$a2") pc+=("$p1") pn+=("$p2")
  printf '| %d | %s | %s | %s | %s |\n' "$r" "$a1" "$a2" "$p1" "$p2"
done
med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
awk -v ac="$(med "${ac[@]}")" -v an="$(med "${an[@]}")" -v pc="$(med "${pc[@]}")" -v pn="$(med "${pn[@]}")" 'BEGIN {
  printf "\nmedian tokens/s: attnlab cache %.1f, no cache %.1f; PyTorch cache %.1f, no cache %.1f\n", ac, an, pc, pn
  printf "attnlab / PyTorch: cache %.2f x, no cache %.2f x; attnlab cache / PyTorch no cache %.1f x\n", ac / pc, an / pn, ac / pn }'

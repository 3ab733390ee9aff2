#!/usr/bin/env bash
# W2 side by side: attnlab and PyTorch generate with gpt-char-small (random weights, BATCH
# sequences, TOKENS new tokens from a 1-token prompt), with and without the KV cache, in turn
# ROUNDS times (alternating, so drift on a shared machine hits both). PyTorch runs all three
# modes of w2_pytorch.py: its torch.cat cache, its preallocated cache (SDPA) and no cache; the
# faster of its two cached modes (by median over the rounds) is the peer of attnlab's cache.
# Prints each round's tokens/s, then the medians and the ratios attnlab / PyTorch.
#   scripts/bench/w2_compare.sh [ROUNDS] [TOKENS] [REPEATS] [BATCH]
# CACHED_ONLY=1 leaves out both sides' no-cache paths (at batch 8 and 256 tokens PyTorch's takes
# minutes a round); their columns then read "-".
# PYTHON: the interpreter with torch, by default the repository's .venv/bin/python when there
# is one, else /usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
tokens=${2:-256}
repeats=${3:-1}
batch=${4:-1}
bin=build/attnlab
. scripts/bench/common.sh  # python, and $bin built if missing
abatch=$batch
if ! "$bin" bench generate --help | grep -q -- '--batch'; then
  echo "note: this attnlab's bench generate has no --batch: attnlab runs batch 1, PyTorch batch $batch" >&2
  abatch=1
fi
echo "batch: attnlab $abatch, PyTorch $batch; $tokens new tokens, $repeats repeat(s) per round"
echo
ac=() an=() pc=() pp=() pn=()
printf '| round | attnlab cache | attnlab no cache | PyTorch cache (cat) | PyTorch prealloc (SDPA) | PyTorch no cache |\n|---|---|---|---|---|---|\n'
for r in $(seq 1 "$rounds"); do
  out=$("$bin" bench generate configs/bench/gpt_char_small.yaml --vocab 65 --tokens "$tokens" --repeats "$repeats" \
        --threads 2 --batch "$abatch" --quiet ${CACHED_ONLY:+--cache-only})
  a1=$(awk '/^cache / {print $2}' <<<"$out") a2=$(awk '/^no-cache / {print $2}' <<<"$out")
  out=$("$python" scripts/bench/w2_pytorch.py --tokens "$tokens" --repeats "$repeats" --threads 2 --batch "$batch" \
        --mode "$([ -n "${CACHED_ONLY:-}" ] && echo cached || echo all)")
  p1=$(awk '/^cache / {print $2}' <<<"$out") p2=$(awk '/^prealloc / {print $2}' <<<"$out")
  p3=$(awk '/^no-cache / {print $2}' <<<"$out")
  a2=${a2:--} p3=${p3:--}
  ac+=("$a1") an+=("$a2") pc+=("$p1") pp+=("$p2") pn+=("$p3")
  printf '| %d | %s | %s | %s | %s | %s |\n' "$r" "$a1" "$a2" "$p1" "$p2" "$p3"
done
med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
awk -v ac="$(med "${ac[@]}")" -v an="$(med "${an[@]}")" -v pc="$(med "${pc[@]}")" -v pp="$(med "${pp[@]}")" \
    -v pn="$(med "${pn[@]}")" 'BEGIN {
  best = (pp > pc) ? pp : pc; form = (pp > pc) ? "prealloc" : "cache"
  printf "\nmedian tokens/s: attnlab cache %.1f, no cache %s; PyTorch cache %.1f, prealloc %.1f, no cache %s\n", ac, an, pc, pp, pn
  printf "PyTorch fastest cached form: %s (%.1f tokens/s; cache / prealloc = %.2f)\n", form, best, pc / pp
  if (pn > 0 && an > 0)
    printf "attnlab / PyTorch: cache %.2f x (vs %s), no cache %.2f x; attnlab cache / PyTorch no cache %.1f x\n", ac / best, form, an / pn, ac / pn
  else
    printf "attnlab / PyTorch: cache %.2f x (vs %s)\n", ac / best, form }'

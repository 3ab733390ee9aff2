#!/usr/bin/env bash
# W1 side by side: attnlab and PyTorch train gpt-char-small in turn, ROUNDS times
# each (alternating, so drift on a shared machine hits both). PyTorch runs in every form of
# w1_pytorch.py (written-out attention, sdpa, compile, fused: FORMS, by default all), each in
# its own process. Prints each round's median ms/step, then per PyTorch form the median over
# the rounds and its ratio to the fastest form, and the ratio of attnlab to the fastest form
# (the peer). Workload and peers: docs/performance.md.
#   scripts/bench/w1_compare.sh [ROUNDS] [CORPUS] [FORMS]
# FORMS: a comma list of w1_pytorch.py forms, or all (the default; also read from $FORMS).
# attnlab reads CORPUS (a path relative to the repository root), by default tinyshakespeare.txt in
# $ATTNLAB_DATA_DIR, or in the repository's data/ when that variable is unset (get it with
# scripts/get_data.sh tinyshakespeare). PyTorch trains on random tokens and needs no corpus.
# STEPS, WARMUP: timed and warm-up steps per run (default 10 and 2; the warm-up absorbs compile time).
# PRECISION=bf16: attnlab trains with train.precision: bf16, and once more in fp32 each round (for
# the bf16 / fp32 ratio), and the PyTorch forms default to the bf16 ones (autocast,
# autocast-compile: torch.autocast("cpu", dtype=torch.bfloat16)).
# PYTHON: the interpreter with torch, by default the repository's .venv/bin/python when there
# is one, else /usr/bin/python3.
set -euo pipefail
data_dir=data
if [ -n "${ATTNLAB_DATA_DIR:-}" ]; then  # resolved here, before the cd, like any relative path given
  data_dir=$(cd "$ATTNLAB_DATA_DIR" 2>/dev/null && pwd) ||
    { echo "error: ATTNLAB_DATA_DIR='$ATTNLAB_DATA_DIR' is not a directory" >&2; exit 2; }
fi
cd "$(dirname "$0")/../.."
rounds=${1:-3}
corpus=${2:-$data_dir/tinyshakespeare.txt}
precision=${PRECISION:-fp32}
case "$precision" in fp32|bf16) ;; *) echo "error: PRECISION='$precision': use fp32 or bf16" >&2; exit 2 ;; esac
default_forms=all
[ "$precision" = bf16 ] && default_forms=autocast,autocast-compile
forms=${3:-${FORMS:-$default_forms}}
steps=${STEPS:-10} warmup=${WARMUP:-2}
[ "$forms" = all ] && forms=written,sdpa,compile,fused
IFS=, read -r -a fl <<<"$forms"
[ -f "$corpus" ] || {
  echo "error: corpus $corpus not found: run scripts/get_data.sh tinyshakespeare, set ATTNLAB_DATA_DIR or pass CORPUS" >&2
  exit 2
}
bin=build/attnlab
. scripts/bench/common.sh  # python, and $bin built if missing
declare -A p  # p[form]: that form's ms/step per round, space-separated
a=() a32=()  # attnlab's ms/step per round (a32: fp32, with PRECISION=bf16)
bench() {
  "$bin" bench train configs/bench/gpt_char_small.yaml --set "data.path=$corpus" --set "train.precision=$1" \
    --steps "$steps" --warmup "$warmup" | awk '/^ms\/step/ {print $3}'
}
med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
[ "$precision" = bf16 ] && printf '| round | attnlab fp32 ms/step |' || printf '| round |'
printf ' attnlab %s ms/step | attnlab tokens/s |' "$precision"
for f in "${fl[@]}"; do printf ' PyTorch %s ms/step |' "$f"; done
printf ' PyTorch fastest | its tokens/s |\n|---|---|---|'
[ "$precision" = bf16 ] && printf -- '---|'
for f in "${fl[@]}"; do printf -- '---|'; done
printf -- '---|---|\n'
for r in $(seq 1 "$rounds"); do
  row=$(printf '| %d |' "$r")
  if [ "$precision" = bf16 ]; then
    am32=$(bench fp32)
    a32+=("$am32")
    row+=$(printf ' %.1f |' "$am32")
  fi
  am=$(bench "$precision")
  out=$("$python" scripts/bench/w1_pytorch.py --threads 2 --steps "$steps" --warmup "$warmup" --form "$forms")
  a+=("$am")
  row+=$(printf ' %.1f | %.0f |' "$am" "$(awk -v a="$am" 'BEGIN { print 2048000 / a }')")
  bf='' bm=''
  for f in "${fl[@]}"; do
    if [ "${#fl[@]}" -eq 1 ]; then  # one form: the plain layout
      pm=$(awk '/^ms\/step/ {print $3}' <<<"$out")
    else
      pm=$(awk -v f="$f" '$1 == "form" && $2 == f && $3 == "ms/step" {print $4}' <<<"$out")
    fi
    if [ -z "$pm" ]; then  # unavailable (or failed): the reason is in its output
      row+=" – |"
      grep -q "^form $f unavailable" <<<"$out" && [ "$r" -eq 1 ] && grep "^form $f unavailable" <<<"$out" >&2
      continue
    fi
    p[$f]+="$pm "
    row+=$(printf ' %.1f |' "$pm")
    if [ -z "$bm" ] || awk -v x="$pm" -v y="$bm" 'BEGIN { exit !(x < y) }'; then bf=$f bm=$pm; fi
  done
  if [ -n "$bm" ]; then row+=$(printf ' %s %.1f | %.0f |' "$bf" "$bm" "$(awk -v p="$bm" 'BEGIN { print 2048000 / p }')")
  else row+=" – | – |"; fi
  echo "$row"
done
am=$(med "${a[@]}")
# per form: the median over the rounds; the peer is the form with the lowest median
bf='' bm=''
for f in "${fl[@]}"; do
  [ -n "${p[$f]:-}" ] || continue
  # shellcheck disable=SC2086  # the list is meant to split
  m=$(med ${p[$f]})
  if [ -z "$bm" ] || awk -v x="$m" -v y="$bm" 'BEGIN { exit !(x < y) }'; then bf=$f bm=$m; fi
done
[ -n "$bm" ] || { echo "error: no PyTorch form ran" >&2; exit 1; }
printf '\nmedians over %d round(s)\n\n| PyTorch form | ms/step | tokens/s | ms/step / fastest form | attnlab tokens/s / this form |\n|---|---|---|---|---|\n' "$rounds"
for f in "${fl[@]}"; do
  if [ -z "${p[$f]:-}" ]; then printf '| %s | unavailable | – | – | – |\n' "$f"; continue; fi
  # shellcheck disable=SC2086
  m=$(med ${p[$f]})
  awk -v f="$f" -v m="$m" -v b="$bm" -v a="$am" 'BEGIN { printf "| %s | %.1f | %.0f | %.2f | %.2f x |\n", f, m, 2048000 / m, m / b, m / a }'
done
awk -v a="$am" -v p="$bm" -v f="$bf" -v pr="$precision" 'BEGIN { printf "\nmedian: attnlab %s %.1f ms/step, PyTorch (fastest form: %s) %.1f ms/step: attnlab tokens/s = %.2f x PyTorch\n", pr, a, f, p, p / a }'
if [ "$precision" = bf16 ]; then
  a32m=$(med "${a32[@]}")
  awk -v a="$am" -v b="$a32m" 'BEGIN { printf "median: attnlab bf16 %.1f ms/step, attnlab fp32 %.1f ms/step: bf16 tokens/s = %.2f x fp32\n", a, b, b / a }'
fi

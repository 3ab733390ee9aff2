#!/usr/bin/env bash
# E1 in full (it takes seconds): Var(q·k)/d_k, flash ≡ naive (values and gradients), RoPE's
# shift invariance; `--strict` exits 1 when any cell's check fails.
# Args: ATTNLAB_BINARY SOURCE_DIR
bin=$1
src=$2
. "$src/tests/paper_experiments/common.sh"
"$bin" experiment run "$src/configs/experiments/e1.yaml" --out "$tmp/e1" --no-plot --strict --set threads=1 \
  >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "e1 checks failed (exit $?)"; }
tail -2 "$tmp/log"

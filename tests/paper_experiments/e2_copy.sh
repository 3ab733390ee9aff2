#!/usr/bin/env bash
# E2, small: the Annotated Transformer's copy task (configs/experiments/e2_copy.yaml) for 200 of
# its 1000 steps. The full run reaches val loss 0.014 and 100% exact match at step 200 (three
# seeds: docs/experiments.md); a model that cannot learn stays at loss ~2.3 and 0%.
# Args: ATTNLAB_BINARY SOURCE_DIR
bin=$1
src=$2
. "$src/tests/paper_experiments/common.sh"
"$bin" train "$src/configs/experiments/e2_copy.yaml" --run-dir "$tmp/run" \
  --set train.steps=200 --set train.eval_interval=200 --set train.threads=2 >"$tmp/log" 2>&1 \
  || { cat "$tmp/log"; fail "training failed"; }
loss=$(val_at "$tmp/run" 200 loss)  # an assignment, so that a missing row stops the script (set -e)
exact=$(val_at "$tmp/run" 200 exact_match)
at_most "val loss at step 200" "$loss" 0.30
at_least "exact match at step 200" "$exact" 0.90

#!/usr/bin/env bash
# End to end: the summaries tell the truth about what was trained and how it was measured.
#   1. the dates demo with --set on the cross-attention type, n_kv_heads, window and positions:
#      the train banner (train.log) and `inspect RUN_DIR` name each slot's attention type, the
#      options set, the positions; inspect's data line gives the dates task's own options only;
#   2. a decoder whose one slot has n_kv_heads 1: one attention entry, with the option;
#   3. `eval --beam 2` labels the decoded accuracy beam_token_acc (table and --json), plain
#      `eval` keeps greedy_token_acc, and metrics.jsonl keeps greedy_token_acc;
#   4. `experiment run --set ...`: results.md says the table was made with those overrides and
#      the final line repeats them; without --set, results.md has no such note.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
has() { grep -qF -e "$2" <<<"$1" || fail "$3: '$2' missing in: $1"; }
hasnt() { ! grep -qF -e "$2" <<<"$1" || fail "$3: '$2' should not be in: $1"; }

# ---- 1. the dates demo, every slot and option visible ----
"$bin" train "$src/configs/default.yaml" --run-dir demo --set train.steps=2 --set train.threads=1 \
  --set data.n_val=20 --set model.decoder.cross_attention.type=bahdanau --set model.attention.n_kv_heads=2 \
  --set model.attention.window=8 --set model.positions=sinusoidal >demo.out 2>demo.err \
  || { cat demo.out demo.err; fail "train exited $?"; }
banner=$(grep '^model: ' demo/train.log) || fail "train.log has no model line"
view=$("$bin" inspect demo)
model=$(grep '^model ' <<<"$view") || fail "inspect has no model line"
for line in "$banner" "$model"; do
  has "$line" "encoder self scaled_dot_product (n_kv_heads 2, window 8)" "slot types"
  has "$line" "decoder self scaled_dot_product (n_kv_heads 2, window 8)" "slot types"
  has "$line" "decoder cross bahdanau (n_kv_heads 2, window 8)" "slot types"
  has "$line" "positions sinusoidal" "positions"
  has "$line" "2 encoder + 2 decoder layers" "layers"
done
data=$(grep '^data ' <<<"$view") || fail "inspect has no data line"
has "$data" "dates (val_fraction 0.1, n_val 20)" "inspect data line"
for other in symbols n_symbols min_len max_len length n_pairs n_digits; do hasnt "$data" "$other" "dates options"; done
"$bin" inspect demo --json | python3 -c "
import json, sys
c = json.load(sys.stdin)['config']
assert c['attention_slots'] == {'model.encoder.self_attention': 'scaled_dot_product',
                                'model.decoder.self_attention': 'scaled_dot_product',
                                'model.decoder.cross_attention': 'bahdanau'}, c['attention_slots']
" || fail "inspect --json attention_slots"

# ---- 2. a decoder: one slot, its option shown, defaults left out ----
"$bin" train "$src/configs/tasks/reverse_decoder.yaml" --run-dir dec --set train.steps=1 --set train.threads=1 \
  --set data.n_val=20 --set model.attention.n_kv_heads=1 >dec.out 2>&1 || { cat dec.out; fail "train exited $?"; }
banner=$(grep '^model: ' dec/train.log)
has "$banner" "| attention causal (n_kv_heads 1) |" "decoder banner"
has "$banner" "positions learned" "decoder banner"
hasnt "$banner" "window" "decoder banner (window off)"
has "$("$bin" inspect dec | grep '^data ')" "reverse (n_symbols 8, min_len 4, max_len 8, val_fraction 0.1, n_val 20)" \
  "inspect data line of reverse"

# ---- 3. the decoded accuracy is named after the decoding ----
ck=demo/checkpoints/step_0000002.safetensors
beam=$("$bin" eval "$ck" --beam 2 --examples 4 --show 0)
has "$beam" "beam_token_acc" "eval --beam 2"
hasnt "$beam" "greedy_token_acc" "eval --beam 2"
has "$beam" "beam search, width 2" "eval --beam 2"
"$bin" eval "$ck" --beam 2 --examples 4 --json | python3 -c "
import json, sys
m = json.load(sys.stdin)['metrics']
assert 'beam_token_acc' in m and 'greedy_token_acc' not in m, m
" || fail "eval --beam 2 --json"
has "$("$bin" eval "$ck" --examples 4 --show 0)" "greedy_token_acc" "plain eval"
grep -q '"greedy_token_acc"' demo/metrics.jsonl || fail "metrics.jsonl lost greedy_token_acc"

# ---- 4. experiment results made with --set say so ----
mkdir -p exp
cat >exp/base.yaml <<'YAML'
model: {kind: decoder, n_layers: 1, d_model: 16, n_heads: 2, d_ff: 32, block_size: 16}
data: {task: reverse, n_symbols: 6, min_len: 4, max_len: 4, n_val: 16}
train: {steps: 4, batch_size: 8, warmup_steps: 1, eval_interval: 2, eval_batches: 1, log_interval: 2, threads: 1}
YAML
cat >exp/e.yaml <<'YAML'
experiment: esum
base: base.yaml
grid:
  data.n_symbols: [6]
metrics: [loss]
YAML
"$bin" experiment run exp/e.yaml --out eo --no-plot --set train.steps=2 --set train.lr=0.01 >e1.out 2>&1 \
  || { cat e1.out; fail "experiment run exited $?"; }
md=$(cat eo/results.md)
has "$md" "Made with command-line overrides" "results.md with --set"
has "$md" '`--set train.steps=2` `--set train.lr=0.01`' "results.md with --set"
has "$(tail -1 e1.out)" "(made with --set train.steps=2 --set train.lr=0.01)" "experiment run's last line"
"$bin" experiment run exp/e.yaml --out eo --no-plot >e2.out 2>&1 || { cat e2.out; fail "experiment rerun exited $?"; }
hasnt "$(cat eo/results.md)" "overrides" "results.md without --set"
echo "ok"

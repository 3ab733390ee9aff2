#!/usr/bin/env bash
# `attnlab eval/sample --set data.KEY=VALUE` (other data settings for a checkpoint) and
# `attnlab sample --stop`: a copy decoder trained at length 6 with RoPE and one with ALiBi are
# evaluated on inputs of 7..12 symbols (rows longer than model.block_size); the same with learned
# positions is refused naming the limit; keys that would change the model or the task are refused;
# --stop ends a sample exactly where the free sample first holds the string.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"

# copy, L = 6: rows of 6 + separator + 6 + end - 1 = 13 tokens; block_size 13
cat > copy.yaml <<'YAML'
model: {kind: decoder, n_layers: 1, d_model: 32, n_heads: 2, block_size: 13, positions: rope}
data: {task: copy, n_symbols: 6, min_len: 2, max_len: 6, n_val: 40}
train: {steps: 30, batch_size: 16, lr: 3.0e-3, warmup_steps: 5, eval_interval: 30, eval_batches: 2, threads: 1,
        log_interval: 30}
YAML
for pos in rope alibi learned; do
  "$bin" train copy.yaml --set model.positions=$pos --run-dir $pos --quiet
done

for pos in rope alibi; do
  # 2L: every input longer than any seen in training, rows of 25 tokens through a block of 13
  "$bin" eval $pos --set data.min_len=7 --set data.max_len=12 --show 40 --quiet > $pos.out 2>/dev/null
  grep -q "^overridden   data.max_len = 12 (trained with 6)" $pos.out || fail "$pos: overrides shown: $(cat $pos.out)"
  grep -q "^overridden   data.min_len = 7 (trained with 2)" $pos.out || fail "$pos: min_len shown: $(cat $pos.out)"
  grep -q "^decoded      40 examples" $pos.out || fail "$pos: 40 examples decoded: $(cat $pos.out)"
  # the examples shown are the new, longer inputs
  /usr/bin/python3 - $pos.out <<'PY'
import sys
rows = [l.split(" -> ")[0].strip() for l in open(sys.argv[1]) if " -> " in l]
assert len(rows) == 40 and all(7 <= len(r) <= 12 for r in rows), rows
assert max(len(r) for r in rows) > 8, rows
PY
  "$bin" eval $pos --set data.max_len=12 --json --quiet > $pos.json 2>/dev/null
  /usr/bin/python3 - $pos.json <<'PY'
import json, math, sys
j = json.load(open(sys.argv[1]))
assert j["overrides"] == {"data.max_len": {"value": 12, "trained": 6}}, j.get("overrides")
assert math.isfinite(j["metrics"]["loss"]) and 0 <= j["metrics"]["exact_match"] <= 1, j
PY
  # sample: an input of 10 symbols, with the task's lengths raised
  "$bin" sample $pos --input abcdefabcd --set data.max_len=12 2>/dev/null | grep -q "^abcdefabcd -> " ||
    fail "$pos: sample --input with --set data.max_len"
done
# the training settings: no override line, no overrides in the JSON
"$bin" eval rope --json --quiet 2>/dev/null | grep -q overrides && fail "eval without --set records overrides"

# learned positions hold block_size positions: the limit is named
expect_error "data.max_len 12 needs rows of 25 tokens; this checkpoint's learned positions hold 13 (model.block_size); RoPE and ALiBi have no such limit" \
  "$bin" eval learned --set data.max_len=12
"$bin" eval learned --set data.max_len=5 --set data.n_val=20 --quiet >/dev/null 2>&1 || fail "shorter rows fit a learned table"
expect_error "'model.d_model' is part of the model" "$bin" eval rope --set model.d_model=64
expect_error "'data.task' would change the task" "$bin" eval rope --set data.task=reverse
expect_error "'train.lr' is not a data key" "$bin" eval rope --set train.lr=0.1
expect_error "data.task copy does not read 'data.path'" "$bin" eval rope --set data.path=x.txt
expect_error "data.n_symbols 9 does not fit this checkpoint's vocabulary" "$bin" eval rope --set data.n_symbols=9
expect_error "unknown key 'data.max_lne'" "$bin" eval rope --set data.max_lne=9
expect_error "data.min_len" "$bin" eval rope --set data.min_len=9
"$bin" eval rope --set data.n_symbols=4 --quiet >/dev/null 2>&1 || fail "fewer symbols are within the vocabulary"
expect_error "--stop is for text" "$bin" sample rope --input abc --stop x

# --stop on text: the sample ends just before the first occurrence of the string
corpus_or_standin 300
cat > text.yaml <<YAML
model: {kind: decoder, n_layers: 1, d_model: 32, n_heads: 2, block_size: 16}
data: {task: text, path: $corpus}
train: {steps: 20, batch_size: 8, lr: 3.0e-3, warmup_steps: 5, eval_interval: 20, eval_batches: 1, threads: 1,
        log_interval: 20}
YAML
"$bin" train text.yaml --run-dir text --quiet
"$bin" sample text --prompt "the" --max-new-tokens 60 --temperature 1 --seed 5 > free.txt 2>/dev/null
/usr/bin/python3 - free.txt "$bin" <<'PY'
import subprocess, sys
free = open(sys.argv[1], encoding="latin-1").read()[:-1][len("the"):]  # generated text, final newline dropped
stop = free[20:23]  # three characters: a stop string spanning three tokens
first = free.find(stop)
got = subprocess.run([sys.argv[2], "sample", "text", "--prompt", "the", "--max-new-tokens", "60", "--temperature",
                      "1", "--seed", "5", "--stop", stop], capture_output=True, check=True).stdout.decode("latin-1")
assert got == "the" + free[:first] + "\n", (stop, free, got)
print(f"--stop {stop!r}: {first} of 60 characters kept")
PY
expect_error "--set data.\* sets a seq2seq task's data" "$bin" sample text --set data.val_fraction=0.2
# another text file, read with the checkpoint's own characters
head -c 3000 "$corpus" > other.txt
"$bin" eval text --set data.path=other.txt --set data.val_fraction=0.5 --quiet > other.out 2>/dev/null
grep -q "^overridden   data.path = other.txt (trained with $corpus)" other.out || fail "text override: $(cat other.out)"
grep -q "^loss " other.out || fail "eval on another text prints its loss: $(cat other.out)"
printf 'the \x01 of the and to %.0s' $(seq 200) > odd.txt
expect_error "odd.txt" "$bin" eval text --set data.path=odd.txt
expect_error "cannot read" "$bin" eval text --set data.path=missing.txt
echo "eval_set: ok"

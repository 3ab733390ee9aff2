#!/usr/bin/env bash
# A tiny decoder trained on BPE tokens (data.tokenizer: bpe): `attnlab tokenizer train` makes the
# file, training reports loss_per_char, and `sample`, `eval` and `inspect` work from the checkpoint
# alone once the tokenizer file is gone (the checkpoint carries it). Also the errors of a missing
# or broken tokenizer file. Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
corpus_or_standin 3000
head -c 200000 "$corpus" >text.txt
"$bin" tokenizer train text.txt --vocab-size 400 -o tok.json --quiet
[ -s tok.json ] || fail "tokenizer train wrote no tok.json"
# 400 on tinyshakespeare; the small stand-in corpus may run out of pairs before
n_vocab=$(python3 -c "import json; print(len(json.load(open('tok.json'))['model']['vocab']))")
[ "$n_vocab" -gt 256 ] && [ "$n_vocab" -le 400 ] || fail "tok.json has $n_vocab tokens, expected 257..400"
"$bin" tokenizer train text.txt --vocab-size 300 -o /nonexistent/dir/t.json --quiet 2>err && fail "an unwritable -o succeeded"
grep -q "^error: " err || { cat err; fail "an unwritable -o is not an error line"; }
# encode/decode round-trip the file
"$bin" tokenizer encode --tokenizer tok.json text.txt >ids.txt
"$bin" tokenizer decode --tokenizer tok.json <ids.txt >back.txt
cmp -s text.txt back.txt || fail "tokenizer decode(encode(text.txt)) differs from text.txt"

cat >cfg.yaml <<YAML
model: {kind: decoder, n_layers: 1, d_model: 32, n_heads: 2, block_size: 32}
data: {task: text, path: text.txt, tokenizer: bpe, tokenizer_file: tok.json}
train: {steps: 6, batch_size: 4, eval_interval: 3, eval_batches: 2, log_interval: 1, warmup_steps: 1}
YAML
"$bin" train cfg.yaml --run-dir run >out 2>err || { cat out err; fail "training with data.tokenizer bpe failed"; }
grep -q "loss_per_char" run/metrics.jsonl || { head -5 run/metrics.jsonl; fail "metrics.jsonl has no loss_per_char"; }
grep -Eq "val loss .* loss_per_char [0-9]+\.[0-9]{4}( |$)" out || { cat out; fail "the val line does not show loss_per_char in nats"; }
rm tok.json
"$bin" sample run --max-new-tokens 20 --seed 1 >sample.txt 2>err || { cat err; fail "sample without the tokenizer file failed"; }
[ "$(wc -c <sample.txt)" -gt 5 ] || fail "sample printed almost nothing"
"$bin" inspect run/checkpoints/best.safetensors >inspect.txt 2>err || { cat err; fail "inspect failed"; }
grep -q "tokenizer *bpe, $n_vocab tokens" inspect.txt || { cat inspect.txt; fail "inspect does not show the bpe tokenizer"; }
"$bin" eval run >eval.txt 2>err || { cat err; fail "eval failed"; }
grep -q "loss_per_char" eval.txt || { cat eval.txt; fail "eval does not report loss_per_char"; }

# errors: a missing file, a file that is not a tokenizer, no file named
"$bin" config check cfg.yaml >out 2>err && fail "config check passed with the tokenizer file missing"
grep -q "^error: .*data.tokenizer_file.*cannot read tokenizer file 'tok.json'" err || { cat err; fail "missing tokenizer file: unclear error"; }
echo '{"model": {"type": "WordPiece"}}' >tok.json
"$bin" train cfg.yaml --run-dir run2 >out 2>err && fail "training with a WordPiece file succeeded"
grep -q "^error: .*model.type is 'WordPiece'" err || { cat err; fail "WordPiece file: unclear error"; }
sed -i 's/, tokenizer_file: tok.json//' cfg.yaml
"$bin" config check cfg.yaml >out 2>err && fail "data.tokenizer bpe without a file passed"
grep -q "data.tokenizer_file" err || { cat err; fail "no tokenizer_file: the error does not name data.tokenizer_file"; }
echo "bpe: tokenizer train/encode/decode, a decoder trained on BPE tokens, sample/inspect/eval from the checkpoint"

#!/usr/bin/env bash
# End to end: the encoder and encoder_decoder kinds through the binary: short training runs, eval
# (table, JSON, test split), sample --input, the attention dump with cross-attention, and the
# errors a user meets. Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_error() {  # expect_error PATTERN CMD...: exit 2 and an error line matching PATTERN
  local pat=$1; shift
  set +e
  out=$("$@" 2>&1); rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "expected exit 2 from '$*', got $rc: $out"
  grep -q "error:.*$pat" <<<"$out" || fail "expected an error matching '$pat' from '$*': $out"
}

small="--set model.n_layers=1 --set model.d_model=32 --set model.n_heads=2 --set train.threads=1 --set train.log_interval=20"

# ---- encoder_decoder on reversal
cat > "$tmp/ed.yaml" <<'EOF'
model: {kind: encoder_decoder, block_size: 16}
data: {task: reverse, n_symbols: 6, min_len: 3, max_len: 6, n_val: 30}
train: {steps: 80, batch_size: 16, lr: 3.0e-3, warmup_steps: 10, eval_interval: 40, eval_batches: 2}
EOF
# shellcheck disable=SC2086
"$bin" train "$tmp/ed.yaml" --run-dir "$tmp/ed" $small > "$tmp/ed.out"
grep -q "held-out reverse examples: exact match [0-9]*/30" "$tmp/ed.out" || fail "enc-dec train summary: $(cat "$tmp/ed.out")"
grep -q '"exact_match"' "$tmp/ed/metrics.jsonl" || fail "exact_match in metrics.jsonl"
head -1 "$tmp/ed/metrics.csv" | grep -q "greedy_token_acc" || fail "metrics.csv header"
ck="$tmp/ed/checkpoints/$(cat "$tmp/ed/checkpoints/latest")"

"$bin" eval "$ck" > "$tmp/eval.out"
for m in loss ppl token_acc exact_match greedy_token_acc bleu chrf; do
  grep -q "^$m " "$tmp/eval.out" || fail "eval prints $m: $(cat "$tmp/eval.out")"
done
"$bin" eval "$ck" --split test --json > "$tmp/eval.json"
/usr/bin/python3 - "$tmp/eval.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["split"] == "test" and j["kind"] == "encoder_decoder" and j["examples"] == 30, j
m = j["metrics"]
assert set(m) == {"loss", "ppl", "token_acc", "exact_match", "greedy_token_acc", "bleu", "chrf"}, m
assert all(0.0 <= m[k] <= 1.0 for k in ("token_acc", "exact_match", "greedy_token_acc")), m
assert all(0.0 <= m[k] <= 100.0 for k in ("bleu", "chrf")), m
EOF
"$bin" eval "$ck" --beam 3 --examples 5 | grep -q "decoded      5 examples (beam search, width 3)" || fail "eval --beam"

"$bin" sample "$ck" --input abc --input fed --beam 2 > "$tmp/sample.out"
[ "$(grep -c ' -> ' "$tmp/sample.out")" -eq 2 ] || fail "sample --input prints one line per input: $(cat "$tmp/sample.out")"
grep -q '^abc -> ' "$tmp/sample.out" || fail "sample --input echoes the input"
expect_error "needs --input" "$bin" sample "$ck"
expect_error "unknown character 'z'\|'z'" "$bin" sample "$ck" --input abz

"$bin" inspect "$ck" --input abcd --dump "$tmp/dump" > /dev/null
for f in attn_encoder_self_L0.npy attn_decoder_self_L0.npy attn_decoder_cross_L0.npy tokens.json logits.npy; do
  [ -s "$tmp/dump/$f" ] || fail "dump wrote $f"
done
/usr/bin/python3 - "$tmp/dump" <<'EOF'
import json, sys, numpy as np
d = sys.argv[1]
t = json.load(open(f"{d}/tokens.json"))
S, T = len(t["ids"]), len(t["decoder_ids"])
x = np.load(f"{d}/attn_decoder_cross_L0.npy")
assert x.shape == (2, T, S), (x.shape, S, T)
assert np.allclose(x.sum(-1), 1.0, atol=1e-5), "cross-attention rows sum to 1"
e = np.load(f"{d}/attn_encoder_self_L0.npy")
assert e.shape == (2, S, S), e.shape
EOF

# the bottleneck variant trains and has no cross-attention to dump
# shellcheck disable=SC2086
"$bin" train "$tmp/ed.yaml" --run-dir "$tmp/bn" $small --set model.bottleneck=true --set train.steps=20 > /dev/null
ckb="$tmp/bn/checkpoints/$(cat "$tmp/bn/checkpoints/latest")"
"$bin" inspect "$ckb" --input abcd --dump "$tmp/dumpb" > /dev/null
[ ! -e "$tmp/dumpb/attn_decoder_cross_L0.npy" ] || fail "a bottleneck model has no cross-attention"

# ---- encoder: classification (parity) and masked-token prediction (text)
cat > "$tmp/parity.yaml" <<'EOF'
model: {kind: encoder, block_size: 16}
data: {task: parity, min_len: 6, max_len: 10, n_val: 40}
train: {steps: 30, batch_size: 16, warmup_steps: 5, eval_interval: 15, eval_batches: 2}
EOF
# shellcheck disable=SC2086
"$bin" train "$tmp/parity.yaml" --run-dir "$tmp/par" $small > /dev/null
ckp="$tmp/par/checkpoints/$(cat "$tmp/par/checkpoints/latest")"
"$bin" eval "$ckp" | grep -q "^class_acc " || fail "parity eval prints class_acc"
"$bin" inspect "$ckp" | grep -q "cls_head.w" || fail "inspect lists the classification head"
expect_error "encoder" "$bin" sample "$ckp"

/usr/bin/python3 -c "print(('the quick brown fox jumps over the lazy dog. ' * 40))" > "$tmp/text.txt"
# shellcheck disable=SC2086
"$bin" train "$src/configs/tasks/reverse_decoder.yaml" --run-dir "$tmp/mlm" $small --set model.kind=encoder \
  --set model.attention.type=scaled_dot_product --set data.task=text --set data.path="$tmp/text.txt" \
  --set train.steps=20 --set train.eval_interval=10 > /dev/null
ckm="$tmp/mlm/checkpoints/$(cat "$tmp/mlm/checkpoints/latest")"
"$bin" eval "$ckm" | grep -q "^token_acc " || fail "MLM eval prints token_acc"
"$bin" inspect "$ckm" --json | /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); assert '<mask>' in j['tokenizer']['vocab'], j['tokenizer']"

# ---- config errors: a task on a kind it does not suit, a slot the kind lacks
expect_error "parity" "$bin" train "$tmp/parity.yaml" --run-dir "$tmp/no1" --set model.kind=decoder
expect_error "model.decoder.cross_attention" "$bin" config check "$tmp/parity.yaml" \
  --set model.decoder.cross_attention.type=bahdanau
[ ! -e "$tmp/no1" ] || fail "a rejected run must not create its directory"
echo "kinds e2e: ok"

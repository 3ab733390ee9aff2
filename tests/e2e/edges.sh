#!/usr/bin/env bash
# End to end: edges a new user meets after training (issue 20, item 5).
#   sample --input on a decoder, with an input that leaves no room in model.block_size -> exit 2
#     and one `error:` line with the sizes (as the encoder-decoder's "source of N tokens" error);
#   eval and sample accept a run directory: its best checkpoint, else its latest, named on a
#     `note:` line on stderr (stdout unchanged: --json still parses); a directory that is not a
#     run -> one clear error;
#   inspect RUN/checkpoints/latest inspects the checkpoint the pointer names;
#   train.steps=0 closes with "no evaluation", not "best 0.0000 at step -1";
#   an error is one line on stderr with no blank line before it; on a terminal, an error that
#     comes while a live progress line is shown starts on a line of its own.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"

# exit 2 and stderr exactly one `error:` line (no blank line before it) that contains $1
expect_error() {
  local want=$1
  shift
  local rc=0
  "$bin" "$@" >out 2>err || rc=$?
  [ "$rc" = 2 ] || { cat out err; fail "$*: exit $rc, expected 2"; }
  [ "$(wc -l <err)" = 1 ] && grep -q '^error: ' err || { cat -A err; fail "$*: expected exactly one error line"; }
  grep -qF -e "$want" err || { cat err; fail "$*: the error does not say '$want'"; }
}

cat >dec.yaml <<'EOF'
model: {kind: decoder, n_layers: 1, d_model: 16, n_heads: 2, block_size: 16}
data: {task: reverse, n_symbols: 4, min_len: 2, max_len: 5, n_val: 20}
train: {steps: 20, batch_size: 8, lr: 0.003, warmup_steps: 2, eval_interval: 10, eval_batches: 1,
        log_interval: 10, checkpoint_interval: 10, keep_checkpoints: 2, threads: 1}
EOF
"$bin" train dec.yaml --run-dir dec >/dev/null || fail "train"

# ---- a decoder's input must leave room for the separator and an answer ----
expect_error "input of 20 tokens exceeds what model.block_size 16 leaves for it" \
  sample dec/checkpoints/best.safetensors --input abcdabcdabcdabcdabcd
expect_error "at most 14 tokens" sample dec/checkpoints/best.safetensors --input abcdabcdabcdab --input abcdabcdabcdabc
"$bin" sample dec/checkpoints/best.safetensors --input abcdabcdabcdab >out || fail "an input of 14 tokens was refused"
grep -q '^abcdabcdabcdab -> ' out || fail "sample --input: $(cat out)"

# ---- eval and sample take a run directory: its best checkpoint ----
"$bin" eval dec >out 2>err || fail "eval RUN_DIR: exit $?: $(cat err)"
[ "$(cat err)" = "note: using dec/checkpoints/best.safetensors: the run's best checkpoint (lowest val loss)" ] ||
  fail "eval RUN_DIR: stderr '$(cat err)'"
grep -q '^checkpoint   dec/checkpoints/best.safetensors (step ' out || fail "eval RUN_DIR: $(head -1 out)"
"$bin" eval dec --json >out 2>/dev/null || fail "eval RUN_DIR --json"
/usr/bin/python3 -c 'import json, sys; j = json.load(open("out")); sys.exit(j["checkpoint"] != "dec/checkpoints/best.safetensors")' ||
  fail "eval RUN_DIR --json: $(cat out)"
"$bin" sample dec --input abc >out 2>err || fail "sample RUN_DIR: exit $?: $(cat err)"
grep -q '^abc -> ' out && [ "$(wc -l <out)" = 1 ] || fail "sample RUN_DIR: stdout '$(cat out)'"
grep -qF "note: using dec/checkpoints/best.safetensors" err || fail "sample RUN_DIR: stderr '$(cat err)'"
mkdir notarun
expect_error "'notarun' is a directory without checkpoints/best.safetensors or checkpoints/latest" eval notarun

# ---- inspect follows checkpoints/latest ----
"$bin" inspect dec/checkpoints/latest >out 2>err || fail "inspect latest: exit $?: $(cat err)"
grep -qF "using dec/checkpoints/step_0000020.safetensors" err || fail "inspect latest: stderr '$(cat err)'"
"$bin" inspect dec/checkpoints/step_0000020.safetensors >want 2>/dev/null
cmp -s out want || { diff out want | head; fail "inspect latest differs from inspect of the checkpoint it names"; }
printf 'step_0000099.safetensors\n' >dec/checkpoints/latest
expect_error "the checkpoint it names, 'dec/checkpoints/step_0000099.safetensors', does not exist" inspect dec/checkpoints/latest
printf 'step_0000020.safetensors\n' >dec/checkpoints/latest

# ---- train.steps=0: a checkpoint of the initial weights and no evaluation ----
"$bin" train dec.yaml --run-dir zero --set train.steps=0 >out || fail "steps=0: exit $?"
grep -q '^done: 0 steps in .* | no evaluation (train.steps is 0) | checkpoint zero/checkpoints/step_0000000.safetensors$' out ||
  fail "steps=0: $(tail -1 out)"
! grep -q 'step -1' out || fail "steps=0 still prints 'step -1'"
"$bin" eval zero >/dev/null 2>err || fail "eval of a run without best.safetensors"
grep -qF "using zero/checkpoints/step_0000000.safetensors: the run's latest checkpoint (it has no best.safetensors)" err ||
  fail "eval zero: stderr '$(cat err)'"

# ---- an error on a terminal, during a live progress line ----
# (the weights at step 10 cannot be written under a file-size limit; `script` gives a terminal)
if script -qec true /dev/null >/dev/null 2>&1; then
  rc=0
  script -qec "ulimit -f 8; exec '$bin' train dec.yaml --run-dir tty --set train.log_interval=1" typescript \
    >/dev/null 2>&1 || rc=$?
  [ "$rc" = 2 ] || fail "tty: exit $rc: $(cat typescript)"
  tr -d '\r' <typescript | sed 's/\x1b\[K//g' >tty.txt
  grep -q '^error: .* at step 10 not saved: cannot write' tty.txt || { cat -A typescript; fail "tty: the error does not start a line"; }
  ! grep -B1 '^error: ' tty.txt | head -1 | grep -q '^$' || { cat -A typescript; fail "tty: a blank line before the error"; }
fi
echo "ok"

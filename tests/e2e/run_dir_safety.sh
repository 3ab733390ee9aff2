#!/usr/bin/env bash
# End to end: a new run never deletes an earlier run unless asked (README "Runs",
# docs/checkpoint-format.md "Run directory"), and a closed stdout does not stop training.
#   train CONFIG --run-dir D, where D holds a finished run -> exit 2, one `error:` line that says
#     what D holds and names `attnlab train --resume D` and --overwrite; every file of D unchanged;
#   the same where D holds only what a run that failed before its first checkpoint leaves
#     (config.yaml, metrics) -> refused as well;
#   an empty directory, or one with files that are not a run's, trains;
#   with --overwrite -> the new run replaces the old one and train.log says so;
#   --resume with --overwrite -> exit 2;
#   train ... | head -1 -> the run goes on to the end: exit 0 (not 141), the final checkpoint,
#     the metrics of the last step and the closing line in train.log.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"

# exit 2 and exactly one line on stderr, an `error:` line that contains each of the other arguments
expect_error() {
  local rc=0
  "$bin" "${cmd[@]}" >out 2>err || rc=$?
  [ "$rc" = 2 ] || { cat out err; fail "${cmd[*]}: exit $rc, expected 2"; }
  [ "$(wc -l <err)" = 1 ] && grep -q '^error: ' err || { cat err; fail "${cmd[*]}: expected one error line"; }
  for want in "$@"; do
    grep -qF -e "$want" err || { cat err; fail "${cmd[*]}: the error does not say '$want'"; }
  done
}
fingerprint() { (cd "$1" && find . -type f | sort | xargs sha256sum); }

cat >run.yaml <<'EOF'
model: {n_layers: 1, d_model: 16, n_heads: 2, block_size: 16}
data: {task: reverse, n_symbols: 4, min_len: 2, max_len: 5, n_val: 20}
train: {steps: 20, batch_size: 8, lr: 0.003, warmup_steps: 2, eval_interval: 10, eval_batches: 1,
        log_interval: 5, checkpoint_interval: 10, keep_checkpoints: 1, threads: 1}
EOF

"$bin" train run.yaml --run-dir d >/dev/null || fail "first run"
before=$(fingerprint d)
cmd=(train run.yaml --run-dir d --set train.steps=30)
expect_error "run directory 'd' already holds a run at step 20 with 1 checkpoint and best.safetensors" \
  "attnlab train --resume d" "--overwrite"
[ "$(fingerprint d)" = "$before" ] || fail "a refused run changed the earlier run's files"

# a run that stopped before its first checkpoint (a diverged start) still counts as a run
mkdir -p failed/checkpoints
cp d/config.yaml d/metrics.jsonl failed/
cmd=(train run.yaml --run-dir failed)
expect_error "run directory 'failed' already holds a run without checkpoints (config.yaml, metrics.jsonl)"

# an empty directory, or one holding only the user's own files, is not an earlier run
mkdir -p empty other && echo mine >other/notes.txt
"$bin" train run.yaml --run-dir empty --set train.steps=2 >/dev/null || fail "an empty directory was refused"
"$bin" train run.yaml --run-dir other --set train.steps=2 >/dev/null || fail "a directory with other files was refused"
[ "$(cat other/notes.txt)" = mine ] || fail "the user's own file was touched"

cmd=(train --resume d --overwrite)
expect_error "--overwrite starts a new one"

"$bin" train run.yaml --run-dir d --set train.steps=30 --overwrite >out || fail "--overwrite: exit $?"
grep -qF "note: --overwrite: deleted an earlier run in d (1 checkpoint)" d/train.log || fail "train.log does not say what --overwrite deleted"
[ "$(cat d/checkpoints/latest)" = step_0000030.safetensors ] || fail "--overwrite: latest is $(cat d/checkpoints/latest)"
[ ! -e d/checkpoints/step_0000020.safetensors ] || fail "--overwrite kept the old run's checkpoint"

# a reader that goes away after one line: the run still trains to the end (today: SIGPIPE, exit 141)
set +e
"$bin" train run.yaml --run-dir piped --set train.steps=400 --set train.log_interval=1 | head -1 >head.out
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || fail "train piped into head -1 exited $rc"
[ "$(wc -l <head.out)" = 1 ] || fail "head -1 printed $(wc -l <head.out) lines"
[ "$(cat piped/checkpoints/latest)" = step_0000400.safetensors ] || fail "piped: latest is '$(cat piped/checkpoints/latest 2>/dev/null)'"
[ -f piped/checkpoints/step_0000400.state.safetensors ] || fail "piped: the final training state is missing"
tail -n 1 piped/metrics.jsonl | grep -q '"step":400' || fail "piped: the last metrics row is $(tail -n 1 piped/metrics.jsonl)"
grep -q '^done: 400 steps' piped/train.log || fail "piped: train.log lacks the closing line"
[ "$(grep -c '^step ' piped/train.log)" -ge 400 ] || fail "piped: train.log lacks progress lines"
echo "ok"

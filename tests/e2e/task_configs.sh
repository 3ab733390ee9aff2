#!/usr/bin/env bash
# End to end: every config in configs/tasks/ trains. Each file is named <task>_<kind>.yaml and
# must set exactly that data.task and model.kind; every task has a config for each model kind it
# suits (docs/tasks.md); each one trains 3 steps (the last step evaluates) and leaves its
# checkpoint, `checkpoints/latest` and a val row at step 3 in metrics.jsonl.
# The text configs read $ATTNLAB_DATA_DIR/tinyshakespeare.txt or SOURCE_DIR/data/; when neither
# has it, a generated text stands in (and ATTNLAB_DATA_DIR set without the file fails).
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"

# the task x kind pairs docs/tasks.md lists
expected="copy_decoder copy_encoder_decoder reverse_decoder reverse_encoder_decoder sort_decoder
sort_encoder_decoder addition_decoder addition_encoder_decoder dates_decoder dates_encoder_decoder
mqar_decoder mqar_encoder needle_decoder needle_encoder induction_decoder parity_encoder
balanced_parens_encoder text_decoder text_encoder"
for name in $expected; do
  [ -f "$src/configs/tasks/$name.yaml" ] || fail "configs/tasks/$name.yaml is missing"
done

corpus_or_standin 3000

n=0
for cfg in "$src"/configs/tasks/*.yaml; do
  name=$(basename "$cfg" .yaml)
  case " $(echo $expected) " in *" $name "*) ;; *) fail "configs/tasks/$name.yaml: not a <task>_<kind> pair of docs/tasks.md" ;; esac
  kind=decoder
  case $name in *_encoder_decoder) kind=encoder_decoder ;; *_encoder) kind=encoder ;; esac
  task=${name%_"$kind"}
  "$bin" config show "$cfg" >shown 2>err || { cat err; fail "$name: config show failed"; }
  grep -qxE "  task: \"?$task\"?" shown || fail "$name.yaml does not set data.task $task"
  grep -qxE "  kind: \"?$kind\"?" shown || fail "$name.yaml does not set model.kind $kind"
  extra=()
  [ "$task" != text ] || extra=(--set "data.path=$corpus")
  rc=0
  "$bin" train "$cfg" --run-dir "$name" --set train.steps=3 --set train.threads=1 --set train.log_interval=1 \
    "${extra[@]}" >"$name.out" 2>"$name.err" || rc=$?
  [ "$rc" = 0 ] || { cat "$name.out" "$name.err"; fail "$name: train exited $rc"; }
  [ -f "$name/checkpoints/step_0000003.safetensors" ] || fail "$name: no checkpoint of step 3"
  [ -e "$name/checkpoints/latest" ] || fail "$name: no checkpoints/latest"
  grep '"split":"val"' "$name/metrics.jsonl" | grep -q '"step":3' || fail "$name: no val row at step 3"
  n=$((n + 1))
done
[ "$n" -ge 19 ] || fail "only $n configs trained"
echo "ok: $n task configs trained 3 steps each"
